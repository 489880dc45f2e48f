//! Credentials and Entra ID (Azure AD) tokens, one per API audience. Secrets live in `SecretString`, whose
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

/// Which API a token is for: a token is requested, cached and sent for
/// one audience only, so a Graph token never reaches CPP, nor the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// The Cloud Partner Portal API.
    Cpp,
    /// Microsoft Graph, where the Product Ingestion API lives.
    Graph,
}

impl Audience {
    /// The `resource` of the v1 client-credentials grant.
    pub fn resource(self) -> &'static str {
        match self {
            Audience::Cpp => "https://cloudpartner.azure.com",
            Audience::Graph => "https://graph.microsoft.com/",
        }
    }
}
/// Refresh a token this long before it expires, at most.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// How the operator authenticates to the APIs.
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

/// One cached token's owner and audience: scope, tenant, client, a keyed
/// hash of the client secret (the key is random per process, so the hash
/// says nothing about the secret outside it), and the API it is for.
type SlotKey = (String, String, String, u64, Audience);

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
    #[error("the token given in the Secret was issued for another API, not {}; it is not sent", wanted.resource())]
    WrongAudience { wanted: Audience },
}

impl AuthError {
    pub fn retry_class(&self) -> RetryClass {
        match self {
            AuthError::Request { source, .. } => classify_request_error(source),
            AuthError::Rejected { status, .. } => classify_status(*status, None),
            AuthError::Malformed(_) | AuthError::BadTenant | AuthError::WrongAudience { .. } => {
                RetryClass::Terminal
            }
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
    pub(crate) async fn token(
        &self,
        creds: &Credentials,
        audience: Audience,
    ) -> Result<SecretString, AuthError> {
        match creds {
            Credentials::Token(token) => given_token_for(token, audience),
            Credentials::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
                scope,
            } => {
                let key = self.key(scope, tenant_id, client_id, client_secret, audience);
                let principal = Principal {
                    tenant_id,
                    client_id,
                    client_secret,
                    audience,
                };
                self.principal_token(self.slot(key), principal).await
            }
        }
    }

    async fn principal_token(
        &self,
        slot: Slot,
        principal: Principal<'_>,
    ) -> Result<SecretString, AuthError> {
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch(principal).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Drops the cached token, after its API answered 401 to it.
    pub(crate) async fn forget(&self, creds: &Credentials, audience: Audience) {
        if let Credentials::ClientSecret {
            tenant_id,
            client_id,
            client_secret,
            scope,
        } = creds
        {
            let key = self.key(scope, tenant_id, client_id, client_secret, audience);
            *self.slot(key).lock().await = None;
        }
    }

    fn key(
        &self,
        scope: &str,
        tenant: &str,
        client: &str,
        secret: &SecretString,
        audience: Audience,
    ) -> SlotKey {
        use std::hash::BuildHasher;
        let secret = self.hasher.hash_one(secret.expose_secret());
        (scope.into(), tenant.into(), client.into(), secret, audience)
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

    async fn fetch(&self, principal: Principal<'_>) -> Result<CachedToken, AuthError> {
        let tenant_id = principal.tenant_id;
        if tenant_id.is_empty() || tenant_id == "." || tenant_id == ".." {
            return Err(AuthError::BadTenant);
        }
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", principal.client_id),
            ("client_secret", principal.client_secret.expose_secret()),
            ("resource", principal.audience.resource()),
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

/// Whose token [`TokenSource::fetch`] asks for, and for which API.
#[derive(Clone, Copy)]
struct Principal<'a> {
    tenant_id: &'a str,
    client_id: &'a str,
    client_secret: &'a SecretString,
    audience: Audience,
}

/// A token given as is goes to the target's API, unless it says itself
/// that it was issued for the other one: a JWT whose `aud` claim names the
/// other API is refused before it is sent. (It is not verified: only the
/// API can; this keeps a token from the wrong host.) A token that is not a
/// readable JWT is sent as given.
fn given_token_for(token: &SecretString, audience: Audience) -> Result<SecretString, AuthError> {
    match token_audience(token.expose_secret()) {
        Some(other) if other != audience => Err(AuthError::WrongAudience { wanted: audience }),
        _ => Ok(token.clone()),
    }
}

/// The API a JWT's `aud` claim names, if it names one of ours.
fn token_audience(token: &str) -> Option<Audience> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let aud = claims.get("aud")?.as_str()?.trim_end_matches('/');
    [Audience::Cpp, Audience::Graph]
        .into_iter()
        .find(|a| a.resource().trim_end_matches('/').eq_ignore_ascii_case(aud))
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

    fn jwt(aud: &str) -> SecretString {
        use base64::Engine;
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let claims = format!(r#"{{"aud":"{aud}","exp":1}}"#);
        SecretString::from(format!("{}.{}.sig", b64(r#"{"alg":"none"}"#), b64(&claims)))
    }

    #[test]
    fn a_given_token_for_the_other_api_is_never_sent() {
        let cpp = jwt("https://cloudpartner.azure.com");
        let graph = jwt("https://graph.microsoft.com");
        assert!(given_token_for(&cpp, Audience::Cpp).is_ok());
        assert!(given_token_for(&graph, Audience::Graph).is_ok());
        let refused = given_token_for(&cpp, Audience::Graph).unwrap_err();
        assert!(matches!(refused, AuthError::WrongAudience { .. }));
        assert!(!refused.to_string().contains(cpp.expose_secret()));
        assert!(given_token_for(&graph, Audience::Cpp).is_err());
        let opaque = SecretString::from("sim-0123");
        assert!(
            given_token_for(&opaque, Audience::Graph).is_ok(),
            "not a JWT: sent as given"
        );
    }
}
