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

/// Where the mocked Product Ingestion API lives, beside CPP.
pub const JOB_BASE: &str = "/rp/product-ingestion";
/// The configure job of the job conversations.
pub const JOB_ID: &str = "9f1c0e2a-1b2c-4d5e-8f90-123456789abc";
const JOB_CANCEL: &str =
    "/rp/product-ingestion/configure/9f1c0e2a-1b2c-4d5e-8f90-123456789abc/cancel";
const JOB_STATUS: &str =
    "/rp/product-ingestion/configure/9f1c0e2a-1b2c-4d5e-8f90-123456789abc/status";
const JOB_DETAIL: &str = "/rp/product-ingestion/configure/9f1c0e2a-1b2c-4d5e-8f90-123456789abc";

/// A conversation with CPP about contoso/contoso-offer. Every first
/// cancel is preceded by one read of the operations list, which shows the
/// publish `publish-1` running (the fixtures' target).
pub enum Conversation {
    /// The list, then one POST answered 200: cancelled at once.
    SyncCancel,
    /// The list, then one POST answered 202 with this Location.
    AsyncCancel(&'static str),
    /// The list read is refused with 403 and CPP's error body: no POST.
    Forbidden,
    /// The list, then one POST answered 503 with `Retry-After: 40`.
    Unavailable,
    /// One GET of [`OPERATION`]: still running. No POST.
    StillRunning,
    /// One GET of the operations list, which shows these. No POST.
    Lists(Value),
    /// The list shows only the publish still running; then one POST, 200.
    ListsTargetRunningThenSyncCancel,
    /// Azure AD refuses the client secret (and echoes it in its text).
    TokenRefused,
    /// Product Ingestion: the job's status shows it running; one cancel
    /// POST answered 200 with the job `completed`/`cancelled`; its detail
    /// lists one resource processed and one the cancel stopped.
    JobCancelledAtOnce,
    /// Product Ingestion: the job's status shows it `completed`/`succeeded`.
    /// No POST.
    JobAlreadySucceeded,
    /// Nothing at all.
    Silent,
}

fn job_status(status: &str, result: &str) -> Value {
    json!({"jobId": JOB_ID, "jobStatus": status, "jobResult": result, "errors": []})
}

impl Conversation {
    /// A CPP that holds this conversation and no other.
    pub async fn serve(self) -> MockServer {
        let cpp = MockServer::start().await;
        match self {
            Conversation::JobCancelledAtOnce => {
                get(&cpp, JOB_STATUS, job_status("running", "pending")).await;
                let done =
                    ResponseTemplate::new(200).set_body_json(job_status("completed", "cancelled"));
                Mock::given(method("POST"))
                    .and(path(JOB_CANCEL))
                    .respond_with(done)
                    .expect(1)
                    .mount(&cpp)
                    .await;
                let detail = json!({"resources": [
                    {"$schema": "https://schema.mp.microsoft.com/schema/plan/2022-03-01-preview2",
                     "id": "plan/1", "status": "succeeded"},
                    {"id": "listing/2", "status": "cancelled"},
                ]});
                Mock::given(method("GET"))
                    .and(path(JOB_DETAIL))
                    .respond_with(ResponseTemplate::new(200).set_body_json(detail))
                    .expect(1)
                    .mount(&cpp)
                    .await;
            }
            Conversation::JobAlreadySucceeded => {
                get(&cpp, JOB_STATUS, job_status("completed", "succeeded")).await;
                post(&cpp, ResponseTemplate::new(200), 0).await;
                Mock::given(method("POST"))
                    .and(path(JOB_CANCEL))
                    .respond_with(ResponseTemplate::new(200))
                    .expect(0)
                    .mount(&cpp)
                    .await;
            }
            Conversation::SyncCancel => {
                get(&cpp, SUBMISSIONS, publish_1_running()).await;
                post(&cpp, ResponseTemplate::new(200), 1).await
            }
            Conversation::AsyncCancel(location) => {
                get(&cpp, SUBMISSIONS, publish_1_running()).await;
                let accepted = ResponseTemplate::new(202).insert_header("Location", location);
                post(&cpp, accepted, 1).await
            }
            Conversation::Forbidden => {
                let error = json!({"error": {"code": "Forbidden", "message": "no access"}});
                Mock::given(method("GET"))
                    .and(path(SUBMISSIONS))
                    .respond_with(ResponseTemplate::new(403).set_body_json(error))
                    .expect(1)
                    .mount(&cpp)
                    .await;
                post(&cpp, ResponseTemplate::new(200), 0).await
            }
            Conversation::Unavailable => {
                get(&cpp, SUBMISSIONS, publish_1_running()).await;
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
                get(&cpp, SUBMISSIONS, publish_1_running()).await;
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

/// The operations list with the fixtures' target in progress.
fn publish_1_running() -> Value {
    json!([{"id": "publish-1", "submissionType": "publish", "status": "running"}])
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
