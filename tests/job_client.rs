//! The Product Ingestion client against local HTTP servers (wiremock): the
//! documented requests and answers, the ones the reference leaves unsaid,
//! and that a token reaches only the host and audience it was issued for.

use offer_cancel_operator::apis::Apis;
use offer_cancel_operator::cpp::OfferRef;
use offer_cancel_operator::http::{ApiError, ClientConfig, Credentials, Endpoint, RetryClass};
use offer_cancel_operator::ingestion::JobRef;
use offer_cancel_operator::metrics::Metrics;
use offer_cancel_operator::operation::{CancelOutcome, OperationState};
use offer_cancel_operator::scheduling::fair::Turn;
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{body_string, body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const JOB_ID: &str = "9f1c0e2a-1b2c-4d5e-8f90-123456789abc";
const JOB: JobRef<'static> = JobRef {
    job_id: JOB_ID,
    api_version: "2022-03-01-preview2",
};
const CANCEL: &str = "/rp/product-ingestion/configure/9f1c0e2a-1b2c-4d5e-8f90-123456789abc/cancel";
const STATUS: &str = "/rp/product-ingestion/configure/9f1c0e2a-1b2c-4d5e-8f90-123456789abc/status";

/// Clients whose CPP is `cpp`, whose Product Ingestion is `graph` (at
/// its `/rp/product-ingestion` path), and whose Entra ID is `login`.
fn apis(cpp: &MockServer, graph: &MockServer, login: &MockServer) -> Apis {
    let cpp: reqwest::Url = cpp.uri().parse().unwrap();
    let mut config = ClientConfig::new(cpp, login.uri().parse().unwrap());
    config.product_ingestion_endpoint = format!("{}/rp/product-ingestion", graph.uri())
        .parse()
        .unwrap();
    config.request_timeout = Duration::from_millis(500);
    Apis::new(config, Arc::new(Metrics::default())).unwrap()
}

fn token() -> Credentials {
    Credentials::Token(SecretString::from("graph-token"))
}

fn job_status(status: &str, result: &str) -> serde_json::Value {
    json!({"jobId": JOB_ID, "jobStatus": status, "jobResult": result,
           "jobStart": "2026-11-30T01:00:00Z", "errors": []})
}

async fn servers() -> (MockServer, MockServer, MockServer) {
    (
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
    )
}

#[tokio::test]
async fn cancel_posts_the_documented_request_and_a_cancelled_job_is_cancelled() {
    let (cpp, graph, login) = servers().await;
    Mock::given(method("POST"))
        .and(path(CANCEL))
        .and(query_param("$version", "2022-03-01-preview2"))
        .and(header("authorization", "Bearer graph-token"))
        .and(body_string(""))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(job_status("completed", "cancelled")),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let answer = apis(&cpp, &graph, &login)
        .jobs
        .cancel(JOB, &token(), Turn::any())
        .await;
    assert_eq!(answer.unwrap(), CancelOutcome::Cancelled);
    let sent = &graph.received_requests().await.unwrap()[0];
    assert!(
        sent.url.as_str().contains("?$version="),
        "the literal $version, not %24version: {}",
        sent.url
    );
}

#[tokio::test]
async fn a_job_still_running_after_the_cancel_is_followed_at_its_status() {
    let (cpp, graph, login) = servers().await;
    Mock::given(method("POST"))
        .and(path(CANCEL))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "jobID": JOB_ID, "jobStatus": "running", "jobResult": "pending"
        })))
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(STATUS))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(job_status("completed", "cancelled")),
        )
        .mount(&graph)
        .await;
    let jobs = apis(&cpp, &graph, &login).jobs;
    let answer = jobs.cancel(JOB, &token(), Turn::any()).await.unwrap();
    let CancelOutcome::Accepted {
        http: 200,
        location: Some(location),
        ..
    } = answer
    else {
        panic!("accepted with its status location: {answer:?}");
    };
    assert!(location.starts_with(&graph.uri()), "{location}");
    let polled = jobs
        .poll(JOB, &location, &token(), Turn::any())
        .await
        .unwrap();
    assert_eq!(polled.state, OperationState::Done);
    assert_eq!(polled.operation.status, "cancelled");
}

#[tokio::test]
async fn a_job_that_succeeded_is_not_a_cancel_that_succeeded() {
    let (cpp, graph, login) = servers().await;
    let mut ended = job_status("completed", "failed");
    ended["errors"] = json!([{"code": "badRequest", "message": "plan 2 invalid", "details": []}]);
    Mock::given(path(STATUS))
        .respond_with(ResponseTemplate::new(200).set_body_json(ended))
        .mount(&graph)
        .await;
    let jobs = apis(&cpp, &graph, &login).jobs;
    let location = jobs.status_location(JOB).unwrap();
    let polled = jobs
        .poll(JOB, &location, &token(), Turn::any())
        .await
        .unwrap();
    assert_eq!(polled.state, OperationState::Failed);
    assert!(polled.operation.detail.contains("plan 2 invalid"));
    let listed = jobs
        .operations(JOB, &token(), Turn::any(), None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, "failed");
}

#[tokio::test]
async fn twenty_readers_of_one_job_make_one_status_request() {
    let (cpp, graph, login) = servers().await;
    Mock::given(method("GET"))
        .and(path(STATUS))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"jobId": JOB_ID, "jobStatus": "running", "jobResult": "pending"}),
                )
                .set_delay(Duration::from_millis(100)),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let jobs = apis(&cpp, &graph, &login).jobs;
    let location = jobs.status_location(JOB).unwrap();
    let creds = token();
    let reads = (0..20).map(|i| {
        let (jobs, creds, location) = (&jobs, &creds, &location);
        async move {
            if i % 2 == 0 {
                jobs.operations(JOB, creds, Turn::any(), None)
                    .await
                    .map(|_| ())
            } else {
                jobs.poll(JOB, location, creds, Turn::any())
                    .await
                    .map(|_| ())
            }
        }
    });
    for read in futures::future::join_all(reads).await {
        read.unwrap();
    }
    // wiremock checks `expect(1)` when the server drops.
}

#[tokio::test]
async fn refusals_keep_the_apis_error_and_are_classified() {
    let (cpp, graph, login) = servers().await;
    let too_late = json!({"error": {"code": "badRequest",
        "message": "Cannot cancel job, job has already completed.", "details": []}});
    for (status, body, transient) in [
        (400, too_late, false),
        (
            403,
            json!({"error": {"code": "forbidden", "message": "no"}}),
            false,
        ),
        (404, json!({}), false),
        (429, json!({}), true),
        (503, json!({}), true),
    ] {
        graph.reset().await;
        Mock::given(path(CANCEL))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(body)
                    .insert_header("Retry-After", "7"),
            )
            .mount(&graph)
            .await;
        let jobs = apis(&cpp, &graph, &login).jobs;
        let err = jobs.cancel(JOB, &token(), Turn::any()).await.unwrap_err();
        assert_eq!(err.http_status(), Some(status));
        assert!(matches!(
            err,
            ApiError::Rejected {
                endpoint: Endpoint::JobCancel,
                ..
            }
        ));
        assert_eq!(
            matches!(err.retry_class(), RetryClass::Transient { .. }),
            transient,
            "{status}"
        );
        if status == 400 {
            assert!(err.to_string().contains("already completed"), "{err}");
        }
    }
}

#[tokio::test]
async fn hostile_answers_are_errors_not_panics_and_never_lose_an_accepted_cancel() {
    let (cpp, graph, login) = servers().await;
    let other_job =
        json!({"jobId": "someone-else", "jobStatus": "completed", "jobResult": "cancelled"});
    let hostile = || {
        [
            ResponseTemplate::new(200).set_body_string("<html>"),
            ResponseTemplate::new(200).set_body_json(json!([])),
            ResponseTemplate::new(200).set_body_json(other_job.clone()),
            // Over the 1 MiB body cap: not even read.
            ResponseTemplate::new(200).set_body_string("x".repeat((1 << 20) + 1)),
        ]
    };
    for body in hostile() {
        graph.reset().await;
        Mock::given(path(STATUS))
            .respond_with(body)
            .mount(&graph)
            .await;
        let jobs = apis(&cpp, &graph, &login).jobs;
        let location = jobs.status_location(JOB).unwrap();
        let err = jobs
            .poll(JOB, &location, &token(), Turn::any())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApiError::Malformed { .. } | ApiError::Request { .. }),
            "{err:?}"
        );
    }
    for body in hostile() {
        graph.reset().await;
        Mock::given(path(CANCEL))
            .respond_with(body)
            .mount(&graph)
            .await;
        let jobs = apis(&cpp, &graph, &login).jobs;
        let answer = jobs.cancel(JOB, &token(), Turn::any()).await.unwrap();
        assert!(
            matches!(
                answer,
                CancelOutcome::Accepted {
                    http: 200,
                    location: Some(_),
                    ..
                }
            ),
            "a 200 is the acceptance; the status says the rest: {answer:?}"
        );
    }
}

#[tokio::test]
async fn a_status_location_on_another_host_is_never_followed() {
    let (cpp, graph, login) = servers().await;
    let jobs = apis(&cpp, &graph, &login).jobs;
    let elsewhere = format!(
        "{}/rp/product-ingestion/configure/{JOB_ID}/status",
        cpp.uri()
    );
    let err = jobs
        .poll(JOB, &elsewhere, &token(), Turn::any())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Location(_)), "{err:?}");
    assert!(cpp.received_requests().await.unwrap().is_empty());
}

fn principal() -> Credentials {
    Credentials::ClientSecret {
        tenant_id: "tenant-1".into(),
        client_id: "app-1".into(),
        client_secret: SecretString::from("very-secret-value"),
        scope: "test/pc".into(),
    }
}

/// Entra ID issues one token per resource.
async fn issue_tokens_per_audience(login: &MockServer) {
    for (resource, token) in [
        ("resource=https%3A%2F%2Fcloudpartner.azure.com", "cpp-token"),
        (
            "resource=https%3A%2F%2Fgraph.microsoft.com%2F",
            "graph-token",
        ),
    ] {
        Mock::given(path("/tenant-1/oauth2/token"))
            .and(body_string_contains(resource))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "token_type": "Bearer", "expires_in": "3599", "access_token": token
            })))
            .expect(1)
            .mount(login)
            .await;
    }
}

#[tokio::test]
async fn a_token_goes_only_to_the_api_it_was_requested_for() {
    let (cpp, graph, login) = servers().await;
    issue_tokens_per_audience(&login).await;
    Mock::given(path(STATUS))
        .and(header("authorization", "Bearer graph-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(job_status("running", "pending")))
        .mount(&graph)
        .await;
    Mock::given(path("/api/publishers/contoso/offers/o/submissions/"))
        .and(header("authorization", "Bearer cpp-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&cpp)
        .await;
    let apis = apis(&cpp, &graph, &login);
    let offer = OfferRef {
        publisher_id: "contoso",
        offer_id: "o",
        api_version: "2017-10-31",
    };
    let creds = principal();
    // Interleaved, and twice: each audience's token comes from its own
    // cache slot, fetched once.
    for _ in 0..2 {
        // Read anew each time (the job's reads are shared otherwise).
        apis.jobs
            .operations(JOB, &creds, Turn::any(), Some(jiff::Timestamp::now()))
            .await
            .unwrap();
        apis.cpp
            .operations(offer, &creds, Turn::any())
            .await
            .unwrap();
    }
    let auth = |r: &wiremock::Request| {
        r.headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("").to_string())
    };
    for r in graph.received_requests().await.unwrap() {
        assert_eq!(auth(&r).as_deref(), Some("Bearer graph-token"));
    }
    for r in cpp.received_requests().await.unwrap() {
        assert_eq!(auth(&r).as_deref(), Some("Bearer cpp-token"));
    }
}

#[tokio::test]
async fn a_given_cpp_token_is_never_sent_to_graph() {
    use base64::Engine;
    let (cpp, graph, login) = servers().await;
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let cpp_jwt = format!(
        "{}.{}.sig",
        b64("{}"),
        b64(r#"{"aud":"https://cloudpartner.azure.com"}"#)
    );
    let creds = Credentials::Token(SecretString::from(cpp_jwt));
    let err = apis(&cpp, &graph, &login)
        .jobs
        .cancel(JOB, &creds, Turn::any())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Auth(_)), "{err:?}");
    assert_eq!(err.retry_class(), RetryClass::Terminal);
    assert!(graph.received_requests().await.unwrap().is_empty());
}

const DETAIL: &str = "/rp/product-ingestion/configure/9f1c0e2a-1b2c-4d5e-8f90-123456789abc";

/// The job's detail: `GET configure/{jobId}` at the job's `$version`, with
/// the Graph token; each resource by id, kind and state; a body that is
/// not a detail is an error that says so, never a panic.
#[tokio::test]
async fn detail_reads_each_resource_by_id_kind_and_state() {
    let (cpp, graph, login) = servers().await;
    Mock::given(method("GET"))
        .and(path(DETAIL))
        .and(query_param("$version", "2022-03-01-preview2"))
        .and(header("authorization", "Bearer graph-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "$schema": "https://schema.mp.microsoft.com/schema/configure/2022-03-01-preview2",
            "resources": [
                {"$schema": "https://schema.mp.microsoft.com/schema/plan/2022-03-01-preview2",
                 "id": "plan/1", "status": "succeeded"},
                {"$schema": "https://schema.mp.microsoft.com/schema/listing/2022-03-01-preview2",
                 "id": "listing/2", "status": "cancelled"}
            ]
        })))
        .expect(1)
        .mount(&graph)
        .await;
    let apis = apis(&cpp, &graph, &login);
    let read = apis.jobs.detail(JOB, &token(), Turn::any()).await.unwrap();
    let seen: Vec<(&str, Option<&str>, &str)> = read
        .iter()
        .map(|r| (r.id.as_str(), r.kind.as_deref(), r.state.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("plan/1", Some("plan"), "succeeded"),
            ("listing/2", Some("listing"), "cancelled")
        ]
    );
    let sent = &graph.received_requests().await.unwrap()[0];
    assert!(sent.url.as_str().contains("?$version="), "{}", sent.url);
    assert!(cpp.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_detail_that_is_not_one_is_an_error_not_a_panic() {
    let (cpp, graph, login) = servers().await;
    Mock::given(method("GET"))
        .and(path(DETAIL))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .mount(&graph)
        .await;
    let apis = apis(&cpp, &graph, &login);
    let error = apis
        .jobs
        .detail(JOB, &token(), Turn::any())
        .await
        .unwrap_err();
    assert!(matches!(error, ApiError::Malformed { .. }), "{error}");
    assert!(error.to_string().contains("not JSON"), "{error}");
}
