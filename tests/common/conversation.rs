//! CPP's side of a test, by name: what it answers and how many calls of
//! each kind it expects (checked when the mock server drops).

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const CANCEL: &str = "/api/publishers/contoso/offers/contoso-offer/cancel";
pub const SUBMISSIONS: &str = "/api/publishers/contoso/offers/contoso-offer/submissions/";
/// The operation a migrated offer's Location names.
pub const OPERATION: &str = "/api/publishers/contoso/offers/contoso-offer/operations/op-1";
pub const OPERATION_LOCATION: &str =
    "/api/publishers/contoso/offers/contoso-offer/operations/op-1?api-version=2017-10-31";

/// A conversation with CPP about contoso/contoso-offer.
pub enum Conversation {
    /// One POST, answered 200: cancelled at once.
    SyncCancel,
    /// One POST, answered 202 with this Location.
    AsyncCancel(&'static str),
    /// One POST, answered 403 with CPP's error body.
    Forbidden,
    /// One POST, answered 503 with `Retry-After: 40`.
    Unavailable,
    /// One GET of [`OPERATION`]: still running. No POST.
    StillRunning,
    /// One GET of the operations list, which shows these. No POST.
    Lists(Value),
    /// The list shows only the publish still running; then one POST, 200.
    ListsTargetRunningThenSyncCancel,
    /// Azure AD refuses the client secret (and echoes it in its text).
    TokenRefused,
    /// Nothing at all.
    Silent,
}

impl Conversation {
    /// A CPP that holds this conversation and no other.
    pub async fn serve(self) -> MockServer {
        let cpp = MockServer::start().await;
        match self {
            Conversation::SyncCancel => post(&cpp, ResponseTemplate::new(200), 1).await,
            Conversation::AsyncCancel(location) => {
                let accepted = ResponseTemplate::new(202).insert_header("Location", location);
                post(&cpp, accepted, 1).await
            }
            Conversation::Forbidden => {
                let error = json!({"error": {"code": "Forbidden", "message": "no access"}});
                post(&cpp, ResponseTemplate::new(403).set_body_json(error), 1).await
            }
            Conversation::Unavailable => {
                let busy = ResponseTemplate::new(503).insert_header("Retry-After", "40");
                post(&cpp, busy, 1).await
            }
            Conversation::StillRunning => {
                post(&cpp, ResponseTemplate::new(200), 0).await;
                get(&cpp, OPERATION, json!({"status": "running"})).await
            }
            Conversation::Lists(operations) => {
                post(&cpp, ResponseTemplate::new(200), 0).await;
                get(&cpp, SUBMISSIONS, operations).await
            }
            Conversation::ListsTargetRunningThenSyncCancel => {
                let running =
                    json!([{"id": "pub-1", "submissionType": "publish", "status": "running"}]);
                get(&cpp, SUBMISSIONS, running).await;
                post(&cpp, ResponseTemplate::new(200), 1).await
            }
            Conversation::TokenRefused => {
                let refused = ResponseTemplate::new(401).set_body_json(json!({
                    "error": "invalid_client", "error_description": "bad secret s3cr3t-value"
                }));
                Mock::given(method("POST"))
                    .and(path("/t1/oauth2/token"))
                    .respond_with(refused)
                    .mount(&cpp)
                    .await
            }
            Conversation::Silent => {}
        }
        cpp
    }
}

/// The cancel POST answered `answer`, expected `times` times.
async fn post(cpp: &MockServer, answer: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path(CANCEL))
        .respond_with(answer)
        .expect(times)
        .mount(cpp)
        .await
}

/// One GET of `at`, answered 200 with `body`.
async fn get(cpp: &MockServer, at: &str, body: Value) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(cpp)
        .await
}
