//! What the API clients share: one HTTP client (timeouts, no redirects),
//! the rate limit, the token cache, which errors may pass by themselves,
//! body caps, Location rules, and the observer the metrics listen
//! through. The CPP client and the Product Ingestion client are peers on
//! top of it; neither knows the other.
//!
//! It may not know which target or resource a request is for, beyond its
//! turn in line.

mod assertion;
mod auth;
mod location;
pub(crate) mod wire;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, Url};
use secrecy::{ExposeSecret, SecretString};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::scheduling::budget::Budget;
pub use assertion::{
    CertificateError, ClientCertificate, Proof, ServiceAccountTokenError, ServiceAccountTokens,
    TOKEN_EXCHANGE_AUDIENCE,
};
pub use auth::{Audience, AuthError, Credentials};
use auth::{TokenSource, TokenSourceParts};
pub use location::LocationError;
pub(crate) use location::resolve_location;
pub use wire::ErrorBody;

use crate::scheduling::fair::{Turn, Urgency};

/// Largest body read from an API or Entra ID; a larger one is an error.
const MAX_BODY: usize = 1 << 20;

/// Which call a request was; also the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// CPP's cancel POST.
    Cancel,
    /// CPP's cancel operation.
    Operation,
    /// CPP's operations list of an offer.
    Submissions,
    /// Product Ingestion's cancel of a configure job.
    JobCancel,
    /// Product Ingestion's status of a configure job.
    JobStatus,
    /// Product Ingestion's detail of a configure job (its resources).
    JobDetail,
    /// Entra ID's token endpoint.
    Token,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Cancel => "cancel",
            Endpoint::Operation => "operation",
            Endpoint::Submissions => "submissions",
            Endpoint::JobCancel => "job_cancel",
            Endpoint::JobStatus => "job_status",
            Endpoint::JobDetail => "job_detail",
            Endpoint::Token => "token",
        }
    }

    /// The API a call belongs to: its token is requested for that API's
    /// audience alone.
    pub fn audience(self) -> Audience {
        match self {
            Endpoint::Cancel | Endpoint::Operation | Endpoint::Submissions | Endpoint::Token => {
                Audience::Cpp
            }
            Endpoint::JobCancel | Endpoint::JobStatus | Endpoint::JobDetail => Audience::Graph,
        }
    }
}

impl std::fmt::Display for Endpoint {
    /// As error messages name it: `CPP cancel`, `Product Ingestion status`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Cancel => f.write_str("CPP cancel"),
            Endpoint::Operation => f.write_str("CPP operation"),
            Endpoint::Submissions => f.write_str("CPP submissions"),
            Endpoint::JobCancel => f.write_str("Product Ingestion cancel"),
            Endpoint::JobStatus => f.write_str("Product Ingestion status"),
            Endpoint::JobDetail => f.write_str("Product Ingestion detail"),
            Endpoint::Token => f.write_str("Entra ID token"),
        }
    }
}

/// Told of every request the clients send (the APIs' and Entra ID's): which
/// call, the HTTP status if one came back, and how long it took. The
/// controller's metrics listen; the client knows nothing of Prometheus.
pub trait RequestObserver: Send + Sync {
    fn observe(&self, endpoint: Endpoint, status: Option<u16>, took: Duration);

    /// How long a request waited for its slot of the rate limit.
    fn waited(&self, _urgency: Urgency, _took: Duration) {}
}

/// Listens to nothing: the CLI's observer.
pub struct Unobserved;

impl RequestObserver for Unobserved {
    fn observe(&self, _: Endpoint, _: Option<u16>, _: Duration) {}
}

/// Waits for `turn`'s slot of `budget` (none: no limit), and tells
/// `observer` how long it waited: every request to the APIs and to
/// Entra ID, and every TokenRequest, goes through here.
pub(crate) async fn wait_for_slot(
    budget: Option<&Budget>,
    turn: Turn<'_>,
    observer: &dyn RequestObserver,
) {
    if let Some(budget) = budget {
        let waiting = tokio::time::Instant::now();
        budget.slot(turn).await;
        observer.waited(turn.urgency, waiting.elapsed());
    }
}

/// Whether an error may go away by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    Transient { retry_after: Option<Duration> },
    Terminal,
}

/// 408, 429 and 5xx are transient (docs/cpp-api.md); other 4xx are terminal.
pub(crate) fn classify_status(status: u16, retry_after: Option<Duration>) -> RetryClass {
    match status {
        408 | 429 | 500..=599 => RetryClass::Transient { retry_after },
        _ => RetryClass::Terminal,
    }
}

/// Timeouts and connection errors are transient; a request that could not
/// even be built is not.
pub(crate) fn classify_request_error(e: &reqwest::Error) -> RetryClass {
    if e.is_builder() {
        RetryClass::Terminal
    } else {
        RetryClass::Transient { retry_after: None }
    }
}

/// A stable, secret-free word for what went wrong with a request.
pub(crate) fn request_error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the answer"
    } else if e.is_builder() {
        "could not build the request"
    } else {
        "connection error"
    }
}

/// What failed while talking to an API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{endpoint} request{} failed: {kind}", to_host(source))]
    Request {
        endpoint: Endpoint,
        kind: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{endpoint} call answered HTTP {status}{}", body.as_ref().map(|b| format!(" ({b})")).unwrap_or_default())]
    Rejected {
        endpoint: Endpoint,
        status: u16,
        body: Option<ErrorBody>,
        retry_after: Option<Duration>,
    },
    #[error("{endpoint} answer unreadable: {detail}")]
    Malformed { endpoint: Endpoint, detail: String },
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("getting a token: {0}")]
    Auth(#[from] AuthError),
    #[error("the request path cannot be built from the endpoint URL")]
    BadEndpoint,
}

impl ApiError {
    pub fn retry_class(&self) -> RetryClass {
        match self {
            ApiError::Request { source, .. } => classify_request_error(source),
            ApiError::Rejected {
                status,
                retry_after,
                ..
            } => classify_status(*status, *retry_after),
            ApiError::Auth(e) => e.retry_class(),
            ApiError::Malformed { .. } | ApiError::Location(_) | ApiError::BadEndpoint => {
                RetryClass::Terminal
            }
        }
    }

    /// The HTTP status the API answered, when it answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ApiError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A response whose status and headers are in. Its body is read only by
/// the caller that needs it: an accepted cancel with a Location needs none,
/// so a huge or slow body cannot lose the acceptance.
pub(crate) struct Received {
    endpoint: Endpoint,
    response: Response,
}

impl Received {
    pub(crate) fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// The body, at most [`MAX_BODY`] bytes.
    pub(crate) async fn body(self) -> Result<Vec<u8>, ApiError> {
        let endpoint = self.endpoint;
        read_limited(self.response)
            .await
            .map_err(|e| body_error(endpoint, e))
    }

    /// The body, read by `parse`; what it cannot read is `Malformed`.
    pub(crate) async fn parsed<T>(
        self,
        parse: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, ApiError> {
        let endpoint = self.endpoint;
        parse(&self.body().await?).map_err(|detail| ApiError::Malformed { endpoint, detail })
    }

    /// The answer as a refusal. The body is read for the API's error text; one
    /// that cannot be read is left out, since the status is the answer.
    pub(crate) async fn rejected(self) -> ApiError {
        let (endpoint, status) = (self.endpoint, self.status());
        let retry_after = retry_after(self.headers());
        let body = read_limited(self.response).await.ok();
        ApiError::Rejected {
            endpoint,
            status,
            body: body.as_deref().and_then(ErrorBody::parse),
            retry_after,
        }
    }
}

/// Settings for the API clients.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// CPP's base URL.
    pub endpoint: Url,
    /// Product Ingestion's base URL.
    pub product_ingestion_endpoint: Url,
    pub authority_host: Url,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Requests per second to both APIs together, shared by all callers;
    /// `None`: unlimited.
    pub rate_limit: Option<(NonZeroU32, NonZeroU32)>,
}

/// Where the Product Ingestion API is, unless told otherwise.
pub const PRODUCT_INGESTION_ENDPOINT: &str = "https://graph.microsoft.com/rp/product-ingestion";

impl ClientConfig {
    /// Product Ingestion at its public address; timeouts of 30 s and 10 s.
    pub fn new(endpoint: Url, authority_host: Url) -> Self {
        ClientConfig {
            endpoint,
            #[allow(clippy::expect_used)]
            product_ingestion_endpoint: Url::parse(PRODUCT_INGESTION_ENDPOINT)
                .expect("a static URL parses"),
            authority_host,
            request_timeout: crate::timing::REQUEST_TIMEOUT,
            connect_timeout: crate::timing::CONNECT_TIMEOUT,
            rate_limit: None,
        }
    }
}

/// The one HTTP client, rate limit and token cache, built once: reqwest
/// pools connections, and the limit and cache hold across both APIs.
pub(crate) struct Transport {
    http: reqwest::Client,
    tokens: TokenSource,
    budget: Option<Arc<Budget>>,
    observer: Arc<dyn RequestObserver>,
    request_timeout: Duration,
}

impl Transport {
    /// `service_accounts` issues the ServiceAccount tokens of workload
    /// identity; without it, such credentials get no token.
    pub(crate) fn new(
        config: &ClientConfig,
        observer: Arc<dyn RequestObserver>,
        service_accounts: Option<Arc<dyn ServiceAccountTokens>>,
    ) -> Result<Self, reqwest::Error> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            // A redirect could carry the request (and its token) elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("offer-cancel-operator/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let authority = config.authority_host.clone();
        let budget = config
            .rate_limit
            .map(|(rps, burst)| Arc::new(Budget::new(rps, burst)));
        let parts = TokenSourceParts {
            budget: budget.clone(),
            service_accounts,
            request_timeout: config.request_timeout,
        };
        Ok(Transport {
            tokens: TokenSource::new(http.clone(), authority, observer.clone(), parts),
            budget,
            http,
            observer,
            request_timeout: config.request_timeout,
        })
    }

    /// How long a cancel POST may take in all (rate limit, token, request):
    /// one request timeout. A 401 answered late leaves no time for the
    /// resend with a fresh token; that POST is then in doubt and settled.
    pub(crate) fn post_budget(&self) -> Duration {
        self.request_timeout
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// GET with a token; anything but 200 is an error.
    pub(crate) async fn get_ok(
        &self,
        endpoint: Endpoint,
        url: Url,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<Received, ApiError> {
        let answer = self
            .send(endpoint, creds, turn, |token| {
                self.http.get(url.clone()).bearer_auth(token)
            })
            .await?;
        if answer.status() != 200 {
            return Err(answer.rejected().await);
        }
        Ok(answer)
    }

    /// Sends with a token for the endpoint's audience; on 401 with
    /// refreshable credentials, fetches a fresh token once and sends once
    /// more.
    pub(crate) async fn send(
        &self,
        endpoint: Endpoint,
        creds: &Credentials,
        turn: Turn<'_>,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<Received, ApiError> {
        let audience = endpoint.audience();
        let token = self.token(creds, audience, turn).await?;
        let answer = self
            .send_once(endpoint, turn, build(token.expose_secret()))
            .await?;
        if answer.status() != 401 || !creds.can_refresh() {
            return Ok(answer);
        }
        self.tokens.forget(creds, audience).await;
        let token = self.token(creds, audience, turn).await?;
        self.send_once(endpoint, turn, build(token.expose_secret()))
            .await
    }

    async fn token(
        &self,
        creds: &Credentials,
        audience: Audience,
        turn: Turn<'_>,
    ) -> Result<SecretString, ApiError> {
        Ok(self.tokens.token(creds, audience, turn).await?)
    }

    /// One request, once the rate limit grants `turn` its slot (see
    /// [`Urgency`]).
    async fn send_once(
        &self,
        endpoint: Endpoint,
        turn: Turn<'_>,
        request: reqwest::RequestBuilder,
    ) -> Result<Received, ApiError> {
        wait_for_slot(self.budget.as_deref(), turn, self.observer.as_ref()).await;
        let started = Instant::now();
        let result = request.send().await;
        let code = result.as_ref().ok().map(|r| r.status().as_u16());
        self.observer.observe(endpoint, code, started.elapsed());
        let response = result.map_err(|source| ApiError::Request {
            endpoint,
            kind: request_error_kind(&source),
            source,
        })?;
        Ok(Received { endpoint, response })
    }
}

/// A location an API gave, refused unless it can be followed from
/// `endpoint` (size, host, no user credentials, no fragment): nothing
/// unusable reaches status.
pub(crate) fn checked_location(
    endpoint: &Url,
    location: Option<String>,
) -> Result<Option<String>, ApiError> {
    match location {
        Some(l) => {
            resolve_location(endpoint, &l)?;
            Ok(Some(l.trim().to_string()))
        }
        None => Ok(None),
    }
}

/// ` to HOST` for a request that failed on its way to HOST (no path, no
/// query: nothing the request carried), so an error says where it could
/// not go; empty when reqwest does not say.
pub(crate) fn to_host(e: &reqwest::Error) -> String {
    e.url()
        .and_then(|u| u.host_str())
        .map(|h| format!(" to {}", crate::text::clip(h, 253)))
        .unwrap_or_default()
}

/// rustls needs one process-wide crypto provider; ring is the one kube uses.
pub fn install_crypto_provider() {
    // An Err means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("answer larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("{}", request_error_kind(.0))]
    Read(#[source] reqwest::Error),
}

fn body_error(endpoint: Endpoint, e: BodyError) -> ApiError {
    match e {
        BodyError::Read(source) => ApiError::Request {
            endpoint,
            kind: request_error_kind(&source),
            source,
        },
        BodyError::TooLarge => ApiError::Malformed {
            endpoint,
            detail: e.to_string(),
        },
    }
}

/// Reads a body, refusing one larger than [`MAX_BODY`].
pub(crate) async fn read_limited(mut response: Response) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(crate) fn header_text(
    headers: &HeaderMap,
    name: reqwest::header::HeaderName,
) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = header_text(headers, RETRY_AFTER)?;
    wire::parse_retry_after(&value, jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_cpp_api_md_says() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify_status(s, None), RetryClass::Transient { .. }),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert_eq!(classify_status(s, None), RetryClass::Terminal, "{s}");
        }
    }

    #[test]
    fn every_endpoint_has_the_audience_of_its_api() {
        assert_eq!(Endpoint::Cancel.audience(), Audience::Cpp);
        assert_eq!(Endpoint::Submissions.audience(), Audience::Cpp);
        assert_eq!(Endpoint::JobCancel.audience(), Audience::Graph);
        assert_eq!(Endpoint::JobStatus.audience(), Audience::Graph);
    }
}
