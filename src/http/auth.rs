//! Credentials and Entra ID (Azure AD) tokens, one per API audience. Secrets live in `SecretString`, whose
//! `Debug` prints `[REDACTED]`, and no error here carries a secret or the
//! token endpoint's free-text answer (it holds trace ids and timestamps).
//!
//! A client secret is exchanged at the v1 endpoint (`resource=`), a client
//! assertion ([`Proof`]) at the v2.0 one (`scope={resource}/.default`).
//! Token requests wait for the rate limit like every other request.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use super::assertion::{CertificateError, Proof, ServiceAccountTokenError, ServiceAccountTokens};
use super::{
    Endpoint, RequestObserver, RetryClass, classify_request_error, classify_status, read_limited,
};
use crate::scheduling::budget::Budget;
use crate::scheduling::fair::Turn;

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

    /// The `scope` of the v2.0 client-credentials grant.
    pub fn scope(self) -> &'static str {
        match self {
            Audience::Cpp => "https://cloudpartner.azure.com/.default",
            Audience::Graph => "https://graph.microsoft.com/.default",
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
    /// An Entra ID app that proves itself with a client assertion: a
    /// namespace's ServiceAccount token, or a certificate.
    Assertion {
        tenant_id: String,
        client_id: String,
        proof: Proof,
        /// As for a client secret: `namespace/secret`.
        scope: String,
    },
}

impl Credentials {
    /// Whether a 401 may be cured by fetching a fresh token.
    pub fn can_refresh(&self) -> bool {
        !matches!(self, Credentials::Token(_))
    }

    /// Who these credentials are, for keys and digests: the scope, tenant,
    /// client and what proves them (a secret only by `hash`, a keyed hash).
    pub(crate) fn identity(&self, hash: impl Fn(&str) -> u64) -> Identity {
        match self {
            Credentials::Token(token) => Identity {
                proof: ProofKey::Token(hash(token.expose_secret())),
                ..Identity::default()
            },
            Credentials::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
                scope,
            } => Identity {
                scope: scope.clone(),
                tenant: tenant_id.clone(),
                client: client_id.clone(),
                proof: ProofKey::Secret(hash(client_secret.expose_secret())),
            },
            Credentials::Assertion {
                tenant_id,
                client_id,
                proof,
                scope,
            } => Identity {
                scope: scope.clone(),
                tenant: tenant_id.clone(),
                client: client_id.clone(),
                proof: match proof {
                    Proof::ServiceAccount { namespace, name } => {
                        ProofKey::ServiceAccount(namespace.clone(), name.clone())
                    }
                    Proof::TokenFile(path) => ProofKey::TokenFile(path.clone()),
                    Proof::Certificate(c) => ProofKey::Certificate(c.thumbprint().to_string()),
                },
            },
        }
    }
}

/// Who credentials are: see [`Credentials::identity`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    scope: String,
    tenant: String,
    client: String,
    proof: ProofKey,
}

/// What proves an identity, as a cache key: never a secret in the clear.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
enum ProofKey {
    #[default]
    None,
    Token(u64),
    Secret(u64),
    ServiceAccount(String, String),
    TokenFile(std::path::PathBuf),
    Certificate(String),
}

/// One cached token's owner and the API it is for. The owner's scope
/// begins with its namespace, and a ServiceAccount proof names it again:
/// one namespace never reaches another's slot.
type SlotKey = (Identity, Audience);

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token request{} failed: {kind}", super::to_host(source))]
    Request {
        kind: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("token request rejected with HTTP {status}{}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(), hint.as_ref().map(|h| format!(": {h}")).unwrap_or_default())]
    Rejected {
        status: u16,
        code: Option<String>,
        /// What to do about it, when the answer says (see [`hint`]).
        hint: Option<String>,
    },
    #[error("token answer unreadable: {0}")]
    Malformed(String),
    #[error("tenantId cannot be used in the token URL")]
    BadTenant,
    #[error("the token given in the Secret was issued for another API, not {}; it is not sent", wanted.resource())]
    WrongAudience { wanted: Audience },
    #[error("key clientCertificate: {0}")]
    Certificate(#[from] CertificateError),
    #[error(transparent)]
    ServiceAccount(#[from] ServiceAccountTokenError),
    #[error("federated token file {path}: {detail}")]
    TokenFile { path: String, detail: String },
}

impl AuthError {
    pub fn retry_class(&self) -> RetryClass {
        match self {
            AuthError::Request { source, .. } => classify_request_error(source),
            AuthError::Rejected { status, .. } => classify_status(*status, None),
            AuthError::ServiceAccount(e) if e.is_transient() => {
                RetryClass::Transient { retry_after: None }
            }
            AuthError::Malformed(_)
            | AuthError::BadTenant
            | AuthError::WrongAudience { .. }
            | AuthError::Certificate(_)
            | AuthError::ServiceAccount(_)
            | AuthError::TokenFile { .. } => RetryClass::Terminal,
        }
    }

    /// Whether what is missing is outside the credentials themselves (the
    /// ServiceAccount, or the operator's permission to ask for its token):
    /// it is waited for, not a final failure.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::ServiceAccount(e) if !e.is_transient())
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
    #[serde(default)]
    error_codes: Vec<u64>,
}

#[derive(Clone)]
struct CachedToken {
    token: SecretString,
    refresh_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

use super::assertion::TOKEN_EXCHANGE_AUDIENCE;

/// Fetches tokens and caches one per principal until shortly before expiry.
/// Concurrent callers for one principal wait for a single fetch.
pub(crate) struct TokenSource {
    http: reqwest::Client,
    authority: reqwest::Url,
    slots: Mutex<HashMap<SlotKey, Slot>>,
    /// Keys the client-secret hash in [`SlotKey`].
    hasher: std::collections::hash_map::RandomState,
    observer: Arc<dyn RequestObserver>,
    budget: Option<Arc<Budget>>,
    service_accounts: Option<Arc<dyn ServiceAccountTokens>>,
    request_timeout: Duration,
}

/// Past this many cached principals, slots whose token has expired go.
const MAX_SLOTS: usize = 1024;

/// Where token requests go besides the HTTP client: the rate limit they
/// wait for, who issues ServiceAccount tokens, and how long a request may
/// take.
pub(crate) struct TokenSourceParts {
    pub budget: Option<Arc<Budget>>,
    pub service_accounts: Option<Arc<dyn ServiceAccountTokens>>,
    pub request_timeout: Duration,
}

impl TokenSource {
    pub(crate) fn new(
        http: reqwest::Client,
        authority: reqwest::Url,
        observer: Arc<dyn RequestObserver>,
        parts: TokenSourceParts,
    ) -> Self {
        TokenSource {
            http,
            authority,
            slots: Mutex::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            observer,
            budget: parts.budget,
            service_accounts: parts.service_accounts,
            request_timeout: parts.request_timeout,
        }
    }

    /// A token for these credentials, from the cache when it is still
    /// fresh; a fetch waits for `turn`'s slot of the rate limit.
    pub(crate) async fn token(
        &self,
        creds: &Credentials,
        audience: Audience,
        turn: Turn<'_>,
    ) -> Result<SecretString, AuthError> {
        if let Credentials::Token(token) = creds {
            return given_token_for(token, audience);
        }
        let mut cached = self.slot(self.key(creds, audience)).lock_owned().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch(creds, audience, turn).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Drops the cached token, after its API answered 401 to it.
    pub(crate) async fn forget(&self, creds: &Credentials, audience: Audience) {
        if creds.can_refresh() {
            *self.slot(self.key(creds, audience)).lock().await = None;
        }
    }

    fn key(&self, creds: &Credentials, audience: Audience) -> SlotKey {
        use std::hash::BuildHasher;
        (creds.identity(|s| self.hasher.hash_one(s)), audience)
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

    /// `{authority}/{tenant}/oauth2/token` (v1) or `…/oauth2/v2.0/token`.
    fn token_url(&self, tenant_id: &str, v2: bool) -> Result<reqwest::Url, AuthError> {
        if tenant_id.is_empty() || tenant_id == "." || tenant_id == ".." {
            return Err(AuthError::BadTenant);
        }
        let mut url = self.authority.clone();
        let mut path = url.path_segments_mut().map_err(|_| AuthError::BadTenant)?;
        path.pop_if_empty().push(tenant_id).push("oauth2");
        if v2 {
            path.push("v2.0");
        }
        path.push("token");
        drop(path);
        Ok(url)
    }

    /// Asks Entra ID for a token: the client secret at the v1 endpoint, a
    /// client assertion at the v2.0 one.
    async fn fetch(
        &self,
        creds: &Credentials,
        audience: Audience,
        turn: Turn<'_>,
    ) -> Result<CachedToken, AuthError> {
        // The exchange's slot first: an assertion made before a long wait
        // for the rate limit could be stale by the time it is sent.
        self.wait_for_slot(turn).await;
        let (url, form, hint) = match creds {
            Credentials::Token(_) => return Err(AuthError::Malformed("not a principal".into())),
            Credentials::ClientSecret {
                tenant_id,
                client_id,
                client_secret,
                ..
            } => {
                let form = vec![
                    ("grant_type", "client_credentials".to_string()),
                    ("client_id", client_id.clone()),
                    ("client_secret", client_secret.expose_secret().to_string()),
                    ("resource", audience.resource().to_string()),
                ];
                let hint = Hint {
                    client: client_id.clone(),
                    kind: ProofKind::Secret,
                };
                (self.token_url(tenant_id, false)?, form, hint)
            }
            Credentials::Assertion {
                tenant_id,
                client_id,
                proof,
                ..
            } => {
                self.assertion_request(tenant_id, client_id, proof, audience, turn)
                    .await?
            }
        };
        self.exchange(url, &form, &hint).await
    }

    /// The v2.0 endpoint's request for a token signed in with `proof`.
    async fn assertion_request(
        &self,
        tenant_id: &str,
        client_id: &str,
        proof: &Proof,
        audience: Audience,
        turn: Turn<'_>,
    ) -> Result<(reqwest::Url, Vec<(&'static str, String)>, Hint), AuthError> {
        let url = self.token_url(tenant_id, true)?;
        let assertion = self.assertion(proof, client_id, &url, turn).await?;
        let form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", client_id.to_string()),
            ("client_assertion_type", JWT_BEARER.to_string()),
            ("client_assertion", assertion.expose_secret().to_string()),
            ("scope", audience.scope().to_string()),
        ];
        let hint = Hint {
            client: client_id.to_string(),
            kind: match proof {
                Proof::ServiceAccount { .. } => ProofKind::Federated(proof.subject()),
                Proof::TokenFile(_) => ProofKind::Federated(None),
                Proof::Certificate(_) => ProofKind::Certificate,
            },
        };
        Ok((url, form, hint))
    }

    /// The client assertion `proof` gives: a ServiceAccount token asked
    /// for now (only when the Entra token needs renewing), a federated
    /// token file read now, or a fresh certificate-signed JWT.
    async fn assertion(
        &self,
        proof: &Proof,
        client_id: &str,
        token_url: &reqwest::Url,
        turn: Turn<'_>,
    ) -> Result<SecretString, AuthError> {
        match proof {
            Proof::Certificate(certificate) => {
                Ok(certificate.assertion(client_id, token_url.as_str(), jiff::Timestamp::now())?)
            }
            Proof::TokenFile(path) => read_token_file(path),
            Proof::ServiceAccount { namespace, name } => {
                let issuer = self
                    .service_accounts
                    .as_ref()
                    .ok_or(ServiceAccountTokenError::NoApiServer)?;
                self.wait_for_slot(turn).await;
                let asked = issuer.token(namespace, name);
                match tokio::time::timeout(self.request_timeout, asked).await {
                    Ok(answer) => Ok(answer?),
                    Err(_) => Err(ServiceAccountTokenError::Unreachable {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        detail: "timed out".into(),
                    }
                    .into()),
                }
            }
        }
    }

    async fn wait_for_slot(&self, turn: Turn<'_>) {
        super::wait_for_slot(self.budget.as_deref(), turn, self.observer.as_ref()).await;
    }

    /// POSTs `form` to the token endpoint and reads the token it gives.
    async fn exchange(
        &self,
        url: reqwest::Url,
        form: &[(&str, String)],
        hint: &Hint,
    ) -> Result<CachedToken, AuthError> {
        let started = Instant::now();
        let sent = self.http.post(url).form(form).send().await;
        let code = sent.as_ref().ok().map(|r| r.status().as_u16());
        self.observer
            .observe(Endpoint::Token, code, started.elapsed());
        let response = sent.map_err(auth_request_error)?;
        let status = response.status().as_u16();
        let body = read_limited(response)
            .await
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        if status != 200 {
            return Err(rejection(status, &body, hint));
        }
        cached_token(&body)
    }
}

/// `client_assertion_type` of a JWT client assertion.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a refusal's message may add: the client, and how it proved
/// itself.
struct Hint {
    client: String,
    kind: ProofKind,
}

enum ProofKind {
    Secret,
    Certificate,
    /// A federated token; a ServiceAccount's names the subject an Entra
    /// federated credential must have.
    Federated(Option<String>),
}

/// The token endpoint's refusal. Only its `error` word and AADSTS numbers
/// are read: the free text carries trace ids and timestamps.
fn rejection(status: u16, body: &[u8], hint: &Hint) -> AuthError {
    let answer = serde_json::from_slice::<TokenErrorAnswer>(body).ok();
    let aadsts = answer.as_ref().and_then(|a| a.error_codes.first().copied());
    let code = answer
        .and_then(|a| a.error)
        .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()))
        .map(|c| match aadsts {
            Some(n) => format!("{c}, AADSTS{n}"),
            None => c,
        });
    AuthError::Rejected {
        status,
        code,
        hint: aadsts.and_then(|n| what_to_do(n, hint)),
    }
}

/// What a user can do about an AADSTS refusal. (Entra's own text is not
/// kept: it carries trace ids and timestamps.)
fn what_to_do(aadsts: u64, hint: &Hint) -> Option<String> {
    let client = &hint.client;
    let federated = |what: &str| match &hint.kind {
        ProofKind::Federated(Some(subject)) => format!(
            "app {client} has no federated credential {what}; it needs one with subject {subject}, \
             audience {TOKEN_EXCHANGE_AUDIENCE} and this cluster's service-account issuer"
        ),
        _ => format!("app {client} has no federated credential {what}"),
    };
    Some(match (aadsts, &hint.kind) {
        // 70021 was Entra's answer before 700213; 7002138: only the case differs.
        (70021 | 700213, _) => federated("for this subject"),
        (7002138, _) => federated("for this subject (one differs only in letter case)"),
        (700211, _) => federated("for this cluster's service-account issuer"),
        (700212, _) => federated("for audience api://AzureADTokenExchange"),
        (700016, _) => format!("no app {client} in this tenant"),
        (700024, _) => "the client assertion is not within its valid time range (clocks?)".into(),
        (50166, _) => {
            "Entra ID could not read the service-account issuer's keys: is the cluster's OIDC \
             issuer public?"
                .into()
        }
        (700027, ProofKind::Certificate) => format!(
            "app {client} has no valid certificate with this thumbprint: upload the certificate, \
             or renew an expired one"
        ),
        (700027, ProofKind::Federated(_)) => {
            "the token's signature does not verify with the issuer's published keys".into()
        }
        (7000215, ProofKind::Secret) => format!("the client secret of app {client} is not valid"),
        _ => return None,
    })
}

fn read_token_file(path: &std::path::Path) -> Result<SecretString, AuthError> {
    let failed = |detail: String| AuthError::TokenFile {
        path: path.display().to_string(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| failed(e.kind().to_string()))?;
    match text.trim() {
        "" => Err(failed("empty".into())),
        token => Ok(SecretString::from(token.to_string())),
    }
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
            TokenSourceParts {
                budget: None,
                service_accounts: None,
                request_timeout: Duration::from_secs(1),
            },
        );
        let url = source.token_url("a/b?c", false).unwrap();
        assert_eq!(
            url.as_str(),
            "https://login.example/base/a%2Fb%3Fc/oauth2/token"
        );
        let v2 = source.token_url("t", true).unwrap();
        assert_eq!(
            v2.as_str(),
            "https://login.example/base/t/oauth2/v2.0/token"
        );
        assert!(source.token_url("..", true).is_err());
    }

    fn workload_identity(namespace: &str) -> Credentials {
        Credentials::Assertion {
            tenant_id: "t".into(),
            client_id: "c".into(),
            proof: Proof::ServiceAccount {
                namespace: namespace.into(),
                name: "offercancel".into(),
            },
            scope: format!("{namespace}/cpp"),
        }
    }

    #[test]
    fn cache_keys_keep_every_namespace_and_audience_apart() {
        let hash = |s: &str| s.len() as u64;
        let a = workload_identity("team-a").identity(hash);
        let b = workload_identity("team-b").identity(hash);
        assert_ne!(a, b, "same tenant, client and ServiceAccount name");
        assert_eq!(a, workload_identity("team-a").identity(hash));
        let (ka, kg) = ((a.clone(), Audience::Cpp), (a, Audience::Graph));
        assert_ne!(ka, kg, "a Graph token is never a CPP token");
        let secret = |scope: &str| Credentials::ClientSecret {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: SecretString::from("s"),
            scope: scope.into(),
        };
        assert_ne!(
            secret("team-a/cpp").identity(hash),
            secret("team-b/cpp").identity(hash)
        );
    }

    #[test]
    fn an_entra_refusal_keeps_only_its_code_and_says_what_to_do() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS700213: No match. Trace ID: 99","error_codes":[700213]}"#;
        let hint = Hint {
            client: "app-1".into(),
            kind: ProofKind::Federated(Some("system:serviceaccount:team-b:offercancel".into())),
        };
        let text = rejection(400, body, &hint).to_string();
        assert!(text.contains("invalid_client, AADSTS700213"), "{text}");
        assert!(
            text.contains("subject system:serviceaccount:team-b:offercancel"),
            "{text}"
        );
        assert!(!text.contains("Trace ID"), "{text}");
        let unknown = rejection(
            400,
            br#"{"error":"invalid_request","error_codes":[1]}"#,
            &hint,
        );
        assert_eq!(
            unknown.to_string(),
            "token request rejected with HTTP 400 (invalid_request, AADSTS1)"
        );
        let hostile = rejection(
            400,
            br#"{"error":"bad word
newline","error_codes":[70021]}"#,
            &hint,
        );
        assert!(!hostile.to_string().contains("newline"));
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
