//! Credentials and Azure AD tokens. Secrets live in `SecretString`, whose
//! `Debug` prints `[REDACTED]`, and no error here carries a secret or the
//! token endpoint's free-text answer (it holds trace ids and timestamps).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use super::{
    Endpoint, RequestObserver, RetryClass, classify_request_error, classify_status, read_limited,
};

/// The resource every CPP token is requested for.
const CPP_RESOURCE: &str = "https://cloudpartner.azure.com";
/// Refresh a token this long before it expires, at most.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// How the operator authenticates to CPP.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// A bearer token given as is; it cannot be refreshed.
    Token(SecretString),
    /// An Azure AD service principal (client-credentials grant).
    ClientSecret {
        tenant_id: String,
        client_id: String,
        client_secret: SecretString,
        /// Where these credentials came from (`namespace/secret` for a
        /// Secret). A token is reused only within one scope and for the
        /// same client secret: one namespace never borrows another's token.
        scope: String,
    },
}

impl Credentials {
    /// Whether a 401 may be cured by fetching a fresh token.
    pub fn can_refresh(&self) -> bool {
        matches!(self, Credentials::ClientSecret { .. })
    }
}

/// One cached token's owner: scope, tenant, client, and a keyed hash of
/// the client secret (the key is random per process, so the hash says
/// nothing about the secret outside it).
type SlotKey = (String, String, String, u64);

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token request failed: {kind}")]
    Request {
        kind: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("token request rejected with HTTP {status}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Rejected { status: u16, code: Option<String> },
    #[error("token answer unreadable: {0}")]
    Malformed(String),
    #[error("tenantId cannot be used in the token URL")]
    BadTenant,
}

impl AuthError {
    pub fn retry_class(&self) -> RetryClass {
        match self {
            AuthError::Request { source, .. } => classify_request_error(source),
            AuthError::Rejected { status, .. } => classify_status(*status, None),
            AuthError::Malformed(_) | AuthError::BadTenant => RetryClass::Terminal,
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TokenErrorAnswer {
    error: Option<String>,
}

#[derive(Clone)]
struct CachedToken {
    token: SecretString,
    refresh_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// Fetches tokens and caches one per principal until shortly before expiry.
/// Concurrent callers for one principal wait for a single fetch.
pub(crate) struct TokenSource {
    http: reqwest::Client,
    authority: reqwest::Url,
    slots: Mutex<HashMap<SlotKey, Slot>>,
    /// Keys the client-secret hash in [`SlotKey`].
    hasher: std::collections::hash_map::RandomState,
    observer: Arc<dyn RequestObserver>,
}

/// Past this many cached principals, slots whose token has expired go.
const MAX_SLOTS: usize = 1024;

impl TokenSource {
    pub(crate) fn new(
        http: reqwest::Client,
        authority: reqwest::Url,
        observer: Arc<dyn RequestObserver>,
    ) -> Self {
        TokenSource {
            http,
            authority,
            slots: Mutex::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            observer,
        }
    }

    /// A token for these credentials, from the cache when it is still fresh.
    pub(crate) async fn token(&self, creds: &Credentials) -> Result<SecretString, AuthError> {
        match creds {
            Credentials::Token(token) => Ok(token.clone()),
            Credentials::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
                scope,
            } => {
                let slot = self.slot(self.key(scope, tenant_id, client_id, client_secret));
                self.principal_token(slot, tenant_id, client_id, client_secret)
                    .await
            }
        }
    }

    async fn principal_token(
        &self,
        slot: Slot,
        tenant_id: &str,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<SecretString, AuthError> {
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch(tenant_id, client_id, client_secret).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Drops the cached token, after CPP answered 401 to it.
    pub(crate) async fn forget(&self, creds: &Credentials) {
        if let Credentials::ClientSecret {
            tenant_id,
            client_id,
            client_secret,
            scope,
        } = creds
        {
            let slot = self.slot(self.key(scope, tenant_id, client_id, client_secret));
            *slot.lock().await = None;
        }
    }

    fn key(&self, scope: &str, tenant: &str, client: &str, secret: &SecretString) -> SlotKey {
        use std::hash::BuildHasher;
        let secret = self.hasher.hash_one(secret.expose_secret());
        (scope.into(), tenant.into(), client.into(), secret)
    }

    fn slot(&self, key: SlotKey) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= MAX_SLOTS && !slots.contains_key(&key) {
            // Rotated secrets leave slots behind; keep those still in use.
            let now = Instant::now();
            slots.retain(|_, slot| match slot.try_lock() {
                Ok(cached) => cached.as_ref().is_some_and(|c| now < c.refresh_at),
                Err(_) => true,
            });
        }
        slots.entry(key).or_default().clone()
    }

    fn token_url(&self, tenant_id: &str) -> Result<reqwest::Url, AuthError> {
        let mut url = self.authority.clone();
        url.path_segments_mut()
            .map_err(|_| AuthError::BadTenant)?
            .pop_if_empty()
            .push(tenant_id)
            .push("oauth2")
            .push("token");
        Ok(url)
    }

    async fn fetch(
        &self,
        tenant_id: &str,
        client_id: &str,
        secret: &SecretString,
    ) -> Result<CachedToken, AuthError> {
        if tenant_id.is_empty() || tenant_id == "." || tenant_id == ".." {
            return Err(AuthError::BadTenant);
        }
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret.expose_secret()),
            ("resource", CPP_RESOURCE),
        ];
        let started = Instant::now();
        let sent = self
            .http
            .post(self.token_url(tenant_id)?)
            .form(&form)
            .send()
            .await;
        let code = sent.as_ref().ok().map(|r| r.status().as_u16());
        self.observer
            .observe(Endpoint::Token, code, started.elapsed());
        let response = sent.map_err(auth_request_error)?;
        let status = response.status().as_u16();
        let body = read_limited(response)
            .await
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        if status != 200 {
            let code = serde_json::from_slice::<TokenErrorAnswer>(&body)
                .ok()
                .and_then(|e| e.error)
                .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()));
            return Err(AuthError::Rejected { status, code });
        }
        cached_token(&body)
    }
}

fn auth_request_error(source: reqwest::Error) -> AuthError {
    AuthError::Request {
        kind: super::request_error_kind(&source),
        source,
    }
}

fn cached_token(body: &[u8]) -> Result<CachedToken, AuthError> {
    let answer: TokenAnswer = serde_json::from_slice(body)
        .map_err(|_| AuthError::Malformed("no access_token in the answer".into()))?;
    if answer.access_token.is_empty() {
        return Err(AuthError::Malformed("empty access_token".into()));
    }
    let lifetime = Duration::from_secs(expires_in_seconds(answer.expires_in.as_ref()));
    let margin = (lifetime / 4).min(MAX_REFRESH_MARGIN);
    Ok(CachedToken {
        token: SecretString::from(answer.access_token),
        refresh_at: Instant::now() + lifetime - margin,
    })
}

/// The v1 endpoint sends `expires_in` as a string; v2 as a number. Missing
/// or odd values get a conservative five minutes.
fn expires_in_seconds(value: Option<&serde_json::Value>) -> u64 {
    let parsed = match value {
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        _ => None,
    };
    parsed.unwrap_or(300).min(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_accepts_string_or_number() {
        assert_eq!(expires_in_seconds(Some(&serde_json::json!("3599"))), 3599);
        assert_eq!(expires_in_seconds(Some(&serde_json::json!(60))), 60);
        assert_eq!(expires_in_seconds(Some(&serde_json::json!("soon"))), 300);
        assert_eq!(expires_in_seconds(None), 300);
        assert_eq!(
            expires_in_seconds(Some(&serde_json::json!(u64::MAX))),
            86_400
        );
    }

    #[test]
    fn credentials_debug_never_shows_the_secret() {
        let creds = Credentials::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: SecretString::from("hunter2-very-secret"),
            scope: "ns/cpp".into(),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let token = Credentials::Token(SecretString::from("eyJ-secret-token"));
        assert!(!format!("{token:?}").contains("eyJ"));
    }

    #[test]
    fn token_url_escapes_the_tenant() {
        super::super::install_crypto_provider();
        let source = TokenSource::new(
            reqwest::Client::new(),
            reqwest::Url::parse("https://login.example/base").unwrap(),
            Arc::new(super::super::Unobserved),
        );
        let url = source.token_url("a/b?c").unwrap();
        assert_eq!(
            url.as_str(),
            "https://login.example/base/a%2Fb%3Fc/oauth2/token"
        );
    }
}
