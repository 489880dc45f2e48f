//! The Cloud Partner Portal client: the cancel call, polling its operation,
//! and the offer's operations list, with auth and Location handling.

mod auth;
mod budget;
mod location;
mod wire;

use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{Response, Url};
use secrecy::{ExposeSecret, SecretString};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use auth::TokenSource;
pub use auth::{AuthError, Credentials};
use budget::Budget;
pub use budget::ROUTINE_PATIENCE;
pub use location::LocationError;
use location::resolve_location;
pub use wire::ErrorBody;

use crate::fair::{Turn, Urgency};
use crate::operation::Operation;

/// Largest body read from CPP or Azure AD; a larger one is an error.
const MAX_BODY: usize = 1 << 20;

/// Which CPP call a request was; also the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Cancel,
    Operation,
    Submissions,
    Token,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Cancel => "cancel",
            Endpoint::Operation => "operation",
            Endpoint::Submissions => "submissions",
            Endpoint::Token => "token",
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Told of every request the client sends (CPP's and Azure AD's): which
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

/// What failed while talking to CPP.
#[derive(Debug, thiserror::Error)]
pub enum CppError {
    #[error("CPP {endpoint} request failed: {kind}")]
    Request {
        endpoint: Endpoint,
        kind: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("CPP {endpoint} call answered HTTP {status}{}", body.as_ref().map(|b| format!(" ({b})")).unwrap_or_default())]
    Rejected {
        endpoint: Endpoint,
        status: u16,
        body: Option<ErrorBody>,
        retry_after: Option<Duration>,
    },
    #[error("CPP {endpoint} answer unreadable: {detail}")]
    Malformed { endpoint: Endpoint, detail: String },
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("getting a CPP token: {0}")]
    Auth(#[from] AuthError),
    #[error("offer path cannot be built from the endpoint URL")]
    BadEndpoint,
}

impl CppError {
    pub fn retry_class(&self) -> RetryClass {
        match self {
            CppError::Request { source, .. } => classify_request_error(source),
            CppError::Rejected {
                status,
                retry_after,
                ..
            } => classify_status(*status, *retry_after),
            CppError::Auth(e) => e.retry_class(),
            CppError::Malformed { .. } | CppError::Location(_) | CppError::BadEndpoint => {
                RetryClass::Terminal
            }
        }
    }

    /// The HTTP status CPP answered, when it answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            CppError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Metric label; exhaustive so a new variant gets a name.
    pub fn kind(&self) -> &'static str {
        match self {
            CppError::Request { .. } => "request",
            CppError::Rejected { .. } => "rejected",
            CppError::Malformed { .. } => "malformed",
            CppError::Location(_) => "location",
            CppError::Auth(_) => "auth",
            CppError::BadEndpoint => "endpoint",
        }
    }
}

/// Which offer a call is about.
#[derive(Debug, Clone, Copy)]
pub struct OfferRef<'a> {
    pub publisher_id: &'a str,
    pub offer_id: &'a str,
    pub api_version: &'a str,
}

/// CPP's answer to the cancel call when it was not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// 200: cancelled synchronously.
    Cancelled,
    /// 202: cancelling; where to poll (header, else body), and when.
    Accepted {
        location: Option<String>,
        retry_after: Option<Duration>,
    },
}

/// One poll of the cancel operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolledOperation {
    pub operation: Operation,
    /// A new `Location` header, which replaces the URL to poll.
    pub location: Option<String>,
    pub retry_after: Option<Duration>,
}

/// Settings for [`CppClient::new`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub endpoint: Url,
    pub authority_host: Url,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Requests per second to CPP, shared by all callers; `None`: unlimited.
    pub rate_limit: Option<(NonZeroU32, NonZeroU32)>,
}

impl ClientConfig {
    pub fn new(endpoint: Url, authority_host: Url) -> Self {
        ClientConfig {
            endpoint,
            authority_host,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            rate_limit: None,
        }
    }
}

/// A response whose status and headers are in. Its body is read only by
/// the caller that needs it: an accepted cancel with a Location needs none,
/// so a huge or slow body cannot lose the acceptance.
struct Received {
    endpoint: Endpoint,
    response: Response,
}

impl Received {
    fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// The body, at most [`MAX_BODY`] bytes.
    async fn body(self) -> Result<Vec<u8>, CppError> {
        let endpoint = self.endpoint;
        read_limited(self.response)
            .await
            .map_err(|e| body_error(endpoint, e))
    }

    /// The answer as a refusal. The body is read for CPP's error text; one
    /// that cannot be read is left out, since the status is the answer.
    async fn rejected(self) -> CppError {
        let (endpoint, status) = (self.endpoint, self.status());
        let retry_after = retry_after(self.headers());
        let body = read_limited(self.response).await.ok();
        CppError::Rejected {
            endpoint,
            status,
            body: body.as_deref().and_then(ErrorBody::parse),
            retry_after,
        }
    }
}

/// One client for all reconciles: reqwest pools connections, so it is built once.
pub struct CppClient {
    http: reqwest::Client,
    endpoint: Url,
    tokens: TokenSource,
    budget: Option<Budget>,
    observer: Arc<dyn RequestObserver>,
    request_timeout: Duration,
}

/// rustls needs one process-wide crypto provider; ring is the one kube uses.
pub fn install_crypto_provider() {
    // An Err means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl CppClient {
    /// A client whose requests `observer` hears of.
    pub fn new(
        config: ClientConfig,
        observer: Arc<dyn RequestObserver>,
    ) -> Result<Self, reqwest::Error> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            // A redirect could carry the request (and its token) elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("offer-cancel-operator/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let budget = config
            .rate_limit
            .map(|(rps, burst)| Budget::new(rps, burst));
        Ok(CppClient {
            tokens: TokenSource::new(http.clone(), config.authority_host, observer.clone()),
            http,
            endpoint: config.endpoint,
            budget,
            observer,
            request_timeout: config.request_timeout,
        })
    }

    /// How long a cancel POST may take in all (rate limit, token, request):
    /// one request timeout. A 401 answered late leaves no time for the
    /// resend with a fresh token; that POST is then in doubt and settled.
    pub fn post_budget(&self) -> Duration {
        self.request_timeout
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// POSTs the cancel. Callers send it at most once per recorded intent.
    /// `turn`: its place in the rate limit's line.
    pub async fn cancel(
        &self,
        offer: OfferRef<'_>,
        notification_emails: &str,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<CancelOutcome, CppError> {
        let url = self.offer_url(offer, &["cancel"], &[])?;
        let body =
            serde_json::json!({ "metadata": { "notification-emails": notification_emails } });
        let answer = self
            .send(Endpoint::Cancel, creds, turn, |token| {
                self.http.post(url.clone()).bearer_auth(token).json(&body)
            })
            .await?;
        match answer.status() {
            200 => Ok(CancelOutcome::Cancelled),
            202 => {
                let retry_after = retry_after(answer.headers());
                let location = match header_text(answer.headers(), LOCATION) {
                    Some(header) => Some(header),
                    None => wire::location_from_body(&answer.body().await?),
                };
                Ok(CancelOutcome::Accepted {
                    location: self.checked_location(location)?,
                    retry_after,
                })
            }
            _ => Err(answer.rejected().await),
        }
    }

    /// GETs the cancel operation at a location CPP gave.
    pub async fn poll(
        &self,
        location: &str,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<PolledOperation, CppError> {
        let url = resolve_location(&self.endpoint, location)?;
        let answer = self.get_ok(Endpoint::Operation, url, creds, turn).await?;
        let location = self.checked_location(header_text(answer.headers(), LOCATION))?;
        let retry_after = retry_after(answer.headers());
        let operation =
            wire::parse_operation(&answer.body().await?).map_err(|detail| CppError::Malformed {
                endpoint: Endpoint::Operation,
                detail,
            })?;
        Ok(PolledOperation {
            operation,
            location,
            retry_after,
        })
    }

    /// The offer's operations (`submissions/`). Unfiltered on purpose: a
    /// cancel operation that is still `notStarted` would be missing from
    /// `status=running`, and then a second POST would go out.
    pub async fn operations(
        &self,
        offer: OfferRef<'_>,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<Vec<Operation>, CppError> {
        let url = self.offer_url(offer, &["submissions", ""], &[])?;
        let body = self
            .get_ok(Endpoint::Submissions, url, creds, turn)
            .await?
            .body()
            .await?;
        wire::parse_operation_list(&body).map_err(|detail| CppError::Malformed {
            endpoint: Endpoint::Submissions,
            detail,
        })
    }

    /// A location CPP gave, refused unless it can be followed (size, host,
    /// no user credentials, no fragment): nothing unusable reaches status.
    fn checked_location(&self, location: Option<String>) -> Result<Option<String>, CppError> {
        match location {
            Some(l) => {
                resolve_location(&self.endpoint, &l)?;
                Ok(Some(l.trim().to_string()))
            }
            None => Ok(None),
        }
    }

    /// GET with a token; anything but 200 is an error.
    async fn get_ok(
        &self,
        endpoint: Endpoint,
        url: Url,
        creds: &Credentials,
        turn: Turn<'_>,
    ) -> Result<Received, CppError> {
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

    /// The path of one operation, as a migrated offer's Location has it.
    pub fn operation_location(offer: OfferRef<'_>, operation_id: &str) -> String {
        let seg = |s: &str| {
            let mut u = Url::parse("http://x/").expect("static URL parses");
            u.path_segments_mut().expect("http URL has a path").push(s);
            u.path().trim_start_matches('/').to_string()
        };
        format!(
            "/api/publishers/{}/offers/{}/operations/{}?api-version={}",
            seg(offer.publisher_id),
            seg(offer.offer_id),
            seg(operation_id),
            seg(offer.api_version)
        )
    }

    /// `{endpoint}/api/publishers/{p}/offers/{o}/{tail...}?api-version=..`,
    /// each segment percent-encoded.
    fn offer_url(
        &self,
        offer: OfferRef<'_>,
        tail: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Url, CppError> {
        let mut url = self.endpoint.clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| CppError::BadEndpoint)?;
            path.pop_if_empty()
                .extend([
                    "api",
                    "publishers",
                    offer.publisher_id,
                    "offers",
                    offer.offer_id,
                ])
                .extend(tail);
        }
        url.query_pairs_mut()
            .clear()
            .append_pair("api-version", offer.api_version)
            .extend_pairs(query);
        Ok(url)
    }

    /// Sends with a token; on 401 with refreshable credentials, fetches a
    /// fresh token once and sends once more.
    async fn send(
        &self,
        endpoint: Endpoint,
        creds: &Credentials,
        turn: Turn<'_>,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<Received, CppError> {
        let token = self.token(creds).await?;
        let answer = self
            .send_once(endpoint, turn, build(token.expose_secret()))
            .await?;
        if answer.status() != 401 || !creds.can_refresh() {
            return Ok(answer);
        }
        self.tokens.forget(creds).await;
        let token = self.token(creds).await?;
        self.send_once(endpoint, turn, build(token.expose_secret()))
            .await
    }

    async fn token(&self, creds: &Credentials) -> Result<SecretString, CppError> {
        Ok(self.tokens.token(creds).await?)
    }

    async fn send_once(
        &self,
        endpoint: Endpoint,
        turn: Turn<'_>,
        request: reqwest::RequestBuilder,
    ) -> Result<Received, CppError> {
        if let Some(budget) = &self.budget {
            let waiting = Instant::now();
            budget.slot(turn).await;
            self.observer.waited(turn.urgency, waiting.elapsed());
        }
        let started = Instant::now();
        let result = request.send().await;
        let code = result.as_ref().ok().map(|r| r.status().as_u16());
        self.observer.observe(endpoint, code, started.elapsed());
        let response = result.map_err(|source| CppError::Request {
            endpoint,
            kind: request_error_kind(&source),
            source,
        })?;
        Ok(Received { endpoint, response })
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("answer larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("{}", request_error_kind(.0))]
    Read(#[source] reqwest::Error),
}

fn body_error(endpoint: Endpoint, e: BodyError) -> CppError {
    match e {
        BodyError::Read(source) => CppError::Request {
            endpoint,
            kind: request_error_kind(&source),
            source,
        },
        BodyError::TooLarge => CppError::Malformed {
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

fn header_text(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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
    fn operation_location_escapes_segments() {
        let offer = OfferRef {
            publisher_id: "contoso",
            offer_id: "offer.one",
            api_version: "2017-10-31",
        };
        assert_eq!(
            CppClient::operation_location(offer, "a/b"),
            "/api/publishers/contoso/offers/offer.one/operations/a%2Fb?api-version=2017-10-31"
        );
    }
}
