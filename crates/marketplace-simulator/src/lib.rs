//! A local Cloud Partner Portal and Product Ingestion API: the parts of
//! both that offer-cancel-operator uses, with their odd corners and
//! injectable faults. It is a test tool, kept
//! out of the operator's image: the operator reaches it only through its
//! default `simulator` cargo feature. See the operator's README for the
//! `/_sim` endpoints, and `docs/cpp-api.md` and
//! `docs/product-ingestion-api.md` for the APIs it follows.
//!
//! Tokens come from Azure AD's v1 endpoint (`POST /{tenant}/oauth2/token`,
//! a client secret and a `resource`) or Entra ID's v2.0 one (`POST
//! /{tenant}/oauth2/v2.0/token`, a `scope` and a client assertion signed
//! by one of the principal's `certificates` or issued for one of its
//! `federatedCredentials`, or a secret): see [`entra`] and [`assertion`].
//! Either endpoint's token is taken alike by the CPP and Product Ingestion
//! routes.

pub mod assertion;
pub mod entra;
pub mod job;
pub mod jobs;
pub mod jwks;
pub mod log;
pub mod reply;
pub mod scenario;
pub mod state;

/// Keys and signed assertions for the tests, shared with tests/.
#[cfg(test)]
#[path = "../tests/support/keys.rs"]
mod test_keys;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use reply::Reply;
use scenario::Faults;
pub use scenario::{FederatedCredential, Issuer, Principal, Scenario};
use state::{Fault, SimState};

type Shared = Arc<Mutex<SimState>>;
type Params = Query<HashMap<String, String>>;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
}

/// A running simulator.
pub struct Running {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Binds `addr` and serves in the background.
pub async fn spawn(scenario: Scenario, addr: &str) -> Result<Running, Error> {
    scenario
        .validate()
        .map_err(scenario::ScenarioError::Invalid)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let app = router(Arc::new(Mutex::new(SimState::new(scenario))));
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "simulator stopped");
        }
    });
    Ok(Running { addr, task })
}

/// Serves the scenario at `path` (default: the built-in one) on `listen`
/// until `stop` completes.
pub async fn serve(
    scenario: Option<&std::path::Path>,
    listen: &str,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let scenario = match scenario {
        Some(path) => Scenario::from_file(path)?,
        None => Scenario::default_scenario(),
    };
    let running = spawn(scenario, listen).await?;
    tracing::info!(url = %running.url(), "CPP simulator listening");
    stop.await;
    running.task.abort();
    Ok(())
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/token", post(token))
        .route("/{tenant}/oauth2/v2.0/token", post(token_v2))
        .route("/api/publishers/{p}/offers/{o}/cancel", post(cancel))
        .route(
            "/api/publishers/{p}/offers/{o}/operations/{id}",
            get(operation),
        )
        .route(
            "/api/publishers/{p}/offers/{o}/submissions",
            get(submissions),
        )
        .route(
            "/api/publishers/{p}/offers/{o}/submissions/",
            get(submissions),
        )
        .route("/api/operations/{id}", get(legacy_operation))
        .route(
            "/rp/product-ingestion/configure/{id}/cancel",
            post(cancel_job),
        )
        .route(
            "/rp/product-ingestion/configure/{id}/status",
            get(job_status),
        )
        .route("/rp/product-ingestion/configure/{id}", get(job_detail))
        .route("/_sim/jobs", post(start_job))
        .route("/_sim/stats", get(stats))
        .route("/_sim/requests", get(requests))
        .route("/_sim/reset", post(reset))
        .route("/_sim/faults", post(set_faults))
        .route("/_sim/publish", post(start_publish))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(worked_to_the_end))
        .with_state(state)
}

/// A request the service received is worked through to its end even when
/// its sender goes away meanwhile (a client SIGKILLed with its POST in
/// flight): a real service does not undo a cancel because its caller
/// left, while a handler future here would be dropped with the connection.
async fn worked_to_the_end(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    tokio::spawn(next.run(request))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, SimState> {
    // A panic elsewhere must not take the simulator down with it.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn auth(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()
}

fn api_version(q: &HashMap<String, String>) -> Option<&str> {
    q.get("api-version").map(String::as_str)
}

fn respond(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if reply.body.is_null() {
        status.into_response()
    } else {
        (status, axum::Json(reply.body)).into_response()
    };
    for (name, value) in reply.headers {
        if let Ok(v) = value.parse() {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

/// Latency first, then the fault rolled for this request: an answer in
/// place of the real one (the service never sees the request), or the real
/// one acted on and its connection dropped (the answer is lost).
async fn answer(
    state: &Shared,
    endpoint: &'static str,
    offer: Option<(&str, &str)>,
    act: impl FnOnce(&mut SimState) -> Reply,
) -> Response {
    let rolled = {
        let mut state = lock(state);
        state.log.record(endpoint, offer);
        state.roll_faults(offer, endpoint == "cancel")
    };
    deliver(state, rolled, act).await
}

/// After the latency, the answer as the rolled fault has it.
async fn deliver(
    state: &Shared,
    (latency, fault): (std::time::Duration, Option<Fault>),
    act: impl FnOnce(&mut SimState) -> Reply,
) -> Response {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        None => respond(act(&mut lock(state))),
        Some(Fault::DropAfter) => {
            act(&mut lock(state));
            dropped_connection()
        }
        Some(Fault::Throttle) => respond(
            Reply::error(429, "TooManyRequests", "Rate limit exceeded.")
                .with_header("Retry-After", "1"),
        ),
        Some(Fault::ServerError(code)) => {
            respond(Reply::error(code, "ServiceUnavailable", "Try again later."))
        }
        Some(Fault::Drop) => dropped_connection(),
    }
}

/// Headers go out, then the body breaks: the client sees a dropped connection.
fn dropped_connection() -> Response {
    let broken = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "dropped",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::from_stream(broken))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn token(State(state): State<Shared>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded_pairs(&body);
    answer(&state, "token", None, |s| s.issue_token(&tenant, &form)).await
}

/// As [`answer`], with one step more: a federated assertion's issuer keys
/// are fetched between the dice and the answer, with the state unlocked.
async fn token_v2(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded_pairs(&body);
    let (rolled, issuer) = {
        let mut state = lock(&state);
        state.log.record("token", None);
        let rolled = state.roll_faults(None, false);
        (rolled, state.issuer_to_fetch(&tenant, &form))
    };
    // A request a fault answers in place never reached the service, nor
    // would Entra have fetched anything for it.
    let reached = matches!(rolled.1, None | Some(Fault::DropAfter));
    let keys = match issuer {
        Some(issuer) if reached => Some(jwks::fetch(&issuer).await),
        _ => None,
    };
    deliver(&state, rolled, |s| s.issue_token_v2(&tenant, &form, keys)).await
}

fn form_urlencoded_pairs(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

async fn cancel(
    State(state): State<Shared>,
    Path((p, o)): Path<(String, String)>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&state, "cancel", Some((&p, &o)), |s| {
        s.cancel(auth(&headers), api_version(&q), &p, &o, &body)
    })
    .await
}

async fn operation(
    State(state): State<Shared>,
    Path((p, o, id)): Path<(String, String, String)>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    answer(&state, "operation", Some((&p, &o)), |s| {
        s.get_operation(auth(&headers), api_version(&q), &p, &o, &id)
    })
    .await
}

async fn legacy_operation(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    answer(&state, "operation", None, |s| {
        s.get_legacy_operation(auth(&headers), api_version(&q), &id)
    })
    .await
}

async fn submissions(
    State(state): State<Shared>,
    Path((p, o)): Path<(String, String)>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    let status = q.get("status").map(String::as_str);
    answer(&state, "submissions", Some((&p, &o)), |s| {
        s.submissions(auth(&headers), api_version(&q), &p, &o, status)
    })
    .await
}

/// As [`answer`], for a configure job: its own faults, its id in the log.
async fn answer_job(
    state: &Shared,
    endpoint: &'static str,
    id: &str,
    act: impl FnOnce(&mut SimState) -> Reply,
) -> Response {
    let rolled = {
        let mut state = lock(state);
        state.log.record(endpoint, Some(("job", id)));
        let local = state.job_faults(id);
        state.roll_faults_with(local, endpoint == "job_cancel")
    };
    deliver(state, rolled, act).await
}

fn job_version(q: &HashMap<String, String>) -> Option<&str> {
    q.get("$version").map(String::as_str)
}

async fn cancel_job(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    answer_job(&state, "job_cancel", &id, |s| {
        s.cancel_job(auth(&headers), job_version(&q), &id)
    })
    .await
}

async fn job_status(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    answer_job(&state, "job_status", &id, |s| {
        s.job_status(auth(&headers), job_version(&q), &id)
    })
    .await
}

async fn job_detail(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    answer_job(&state, "job_detail", &id, |s| {
        s.job_detail(auth(&headers), job_version(&q), &id)
    })
    .await
}

/// Body: `{"publisher": "contoso", "job": {"id": ..., "cancel": ...}}` (a
/// scenario job). Starts it running (again); answers `{"jobId": ...}`.
async fn start_job(State(state): State<Shared>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Start {
        publisher: String,
        job: scenario::Job,
    }
    let start = match serde_json::from_slice::<Start>(&body) {
        Ok(start) => start,
        Err(e) => return respond(Reply::error(400, "BadRequest", &format!("body: {e}"))),
    };
    match lock(&state).start_job(&start.publisher, start.job) {
        Ok(id) => axum::Json(serde_json::json!({ "jobId": id })).into_response(),
        Err(message) => respond(Reply::error(400, "BadRequest", &message)),
    }
}

async fn stats(State(state): State<Shared>) -> Response {
    axum::Json(lock(&state).stats()).into_response()
}

/// `?after=N&limit=M` (default 0 and 10,000, at most 100,000): the
/// requests received after the N-th, in arrival order, with their time.
async fn requests(State(state): State<Shared>, Query(q): Params) -> Response {
    let number =
        |key: &str, default: u64| q.get(key).map_or(Some(default), |v| v.parse::<u64>().ok());
    let (Some(after), Some(limit)) = (number("after", 0), number("limit", 10_000)) else {
        return (StatusCode::BAD_REQUEST, "after and limit are whole numbers").into_response();
    };
    let limit = usize::try_from(limit.min(100_000)).unwrap_or(100_000);
    let (requests, lost) = lock(&state).log.after(after, limit);
    axum::Json(serde_json::json!({ "requests": requests, "lost": lost })).into_response()
}

async fn reset(State(state): State<Shared>) -> Response {
    lock(&state).reset();
    StatusCode::NO_CONTENT.into_response()
}

/// Body: the [`Faults`] fields, plus `offer: "publisher/offer"` to scope them.
async fn set_faults(State(state): State<Shared>, body: Bytes) -> Response {
    let result = parse_faults_request(&body)
        .and_then(|(offer, faults)| lock(&state).set_faults(offer.as_deref(), faults));
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(message) => respond(Reply::error(400, "BadRequest", &message)),
    }
}

/// Body: `{"offer": "publisher/offer"}`. Answers `{"id": ...}` of the new
/// publish, which runs until a cancel stops it.
async fn start_publish(State(state): State<Shared>, body: Bytes) -> Response {
    let request = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let offer = request
        .as_ref()
        .and_then(|v| v["offer"].as_str().map(str::to_string));
    // How long ago it started (a test's clock for an operation older than
    // a recorded intent); at most a year.
    let age = request
        .as_ref()
        .map(|v| &v["createdSecondsAgo"])
        .filter(|v| !v.is_null())
        .map(|v| v.as_u64().filter(|s| *s <= 366 * 86_400));
    let (Some(offer), None | Some(Some(_))) = (offer, age) else {
        return respond(Reply::error(
            400,
            "BadRequest",
            "body must be {\"offer\": \"publisher/offer\"} with an optional \"createdSecondsAgo\" of at most a year",
        ));
    };
    let age = std::time::Duration::from_secs(age.flatten().unwrap_or(0));
    match lock(&state).start_publish(&offer, age) {
        Ok(id) => axum::Json(serde_json::json!({ "id": id })).into_response(),
        Err(message) => respond(Reply::error(404, "NotFound", &message)),
    }
}

fn parse_faults_request(body: &[u8]) -> Result<(Option<String>, Faults), String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("Malformed JSON body: {e}"))?;
    let object = value.as_object_mut().ok_or("body must be a JSON object")?;
    let offer = match object.remove("offer") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => return Err("offer must be a string publisher/offer".into()),
    };
    let faults = serde_json::from_value(value).map_err(|e| format!("faults: {e}"))?;
    Ok((offer, faults))
}

async fn not_found() -> Response {
    respond(Reply::error(404, "NotFound", "No such resource."))
}

async fn method_not_allowed() -> Response {
    respond(Reply::error(
        405,
        "MethodNotAllowed",
        "Method not allowed on this resource.",
    ))
}
