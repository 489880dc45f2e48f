//! The CPP client against a local HTTP server (wiremock).

use offer_cancel_operator::apis::Apis;
use offer_cancel_operator::cpp::{CppClient, OfferRef};
use offer_cancel_operator::http::{ApiError, ClientConfig, Credentials, RetryClass};
use offer_cancel_operator::metrics::Metrics;
use offer_cancel_operator::operation::CancelOutcome;
use offer_cancel_operator::operation::OperationState;
use offer_cancel_operator::scheduling::fair::Turn;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{body_json, body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OFFER: OfferRef<'static> = OfferRef {
    publisher_id: "contoso",
    offer_id: "contoso-offer",
    api_version: "2017-10-31",
};
const CANCEL_PATH: &str = "/api/publishers/contoso/offers/contoso-offer/cancel";

fn client(server: &MockServer) -> CppClient {
    let url: reqwest::Url = server.uri().parse().unwrap();
    let mut config = ClientConfig::new(url.clone(), url);
    config.request_timeout = Duration::from_millis(500);
    Apis::new(config, Arc::new(Metrics::default())).unwrap().cpp
}

fn token() -> Credentials {
    Credentials::Token(SecretString::from("static-token"))
}

fn principal() -> Credentials {
    Credentials::ClientSecret {
        tenant_id: "tenant-1".into(),
        client_id: "app-1".into(),
        client_secret: SecretString::from("very-secret-value"),
        scope: "test/cpp".into(),
    }
}

fn token_answer(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "token_type": "Bearer", "expires_in": "3599", "access_token": token
    }))
}

#[tokio::test]
async fn cancel_posts_the_documented_request_and_reads_200() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CANCEL_PATH))
        .and(query_param("api-version", "2017-10-31"))
        .and(header("authorization", "Bearer static-token"))
        .and(header("content-type", "application/json"))
        .and(body_json(
            serde_json::json!({"metadata": {"notification-emails": "a@b.c,d@e.f"}}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let answer = client(&server)
        .cancel(OFFER, "a@b.c,d@e.f", &token(), Turn::any())
        .await
        .unwrap();
    assert_eq!(answer, CancelOutcome::Cancelled);
}

#[tokio::test]
async fn accepted_202_reads_location_header_and_retry_after_seconds() {
    let server = MockServer::start().await;
    let loc = "/api/operations/contoso$contoso-offer$2$preview?api-version=2017-10-31";
    Mock::given(method("POST"))
        .and(path(CANCEL_PATH))
        .respond_with(
            ResponseTemplate::new(202)
                .insert_header("Location", loc)
                .insert_header("Retry-After", "12"),
        )
        .mount(&server)
        .await;
    let answer = client(&server)
        .cancel(OFFER, "", &token(), Turn::any())
        .await
        .unwrap();
    assert_eq!(
        answer,
        CancelOutcome::Accepted {
            http: 202,
            location: Some(loc.into()),
            retry_after: Some(Duration::from_secs(12)),
        }
    );
}

#[tokio::test]
async fn accepted_202_takes_location_from_body_when_header_is_absent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CANCEL_PATH))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(serde_json::json!({"operationLocation": "/api/x"})),
        )
        .mount(&server)
        .await;
    let answer = client(&server)
        .cancel(OFFER, "", &token(), Turn::any())
        .await
        .unwrap();
    assert!(matches!(answer, CancelOutcome::Accepted { location: Some(l), .. } if l == "/api/x"));
}

#[tokio::test]
async fn retry_after_as_http_date_is_honoured() {
    let server = MockServer::start().await;
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&at)
        .unwrap();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", date.as_str()))
        .mount(&server)
        .await;
    let err = client(&server)
        .cancel(OFFER, "", &token(), Turn::any())
        .await
        .unwrap_err();
    let RetryClass::Transient {
        retry_after: Some(wait),
    } = err.retry_class()
    else {
        panic!("429 must be transient with a wait: {err:?}");
    };
    assert!(
        wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );
}

#[tokio::test]
async fn non_migrated_location_is_requested_with_dollar_signs_as_is() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/operations/contoso$contoso-offer$2$preview"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!([{"status": "Not Started"}])),
        )
        .mount(&server)
        .await;
    let loc = "/api/operations/contoso$contoso-offer$2$preview?api-version=2017-10-31";
    let answer = client(&server)
        .poll(loc, &token(), Turn::any())
        .await
        .unwrap();
    assert_eq!(answer.operation.state(), OperationState::InProgress);
    let seen = server.received_requests().await.unwrap();
    assert_eq!(
        seen[0].url.path(),
        "/api/operations/contoso$contoso-offer$2$preview"
    );
    assert_eq!(seen[0].url.query(), Some("api-version=2017-10-31"));
}

#[tokio::test]
async fn poll_reads_object_or_array_and_every_status_spelling() {
    for (body, want) in [
        (
            serde_json::json!({"status": "completed"}),
            OperationState::Done,
        ),
        (
            serde_json::json!([{"status": "Complete"}]),
            OperationState::Done,
        ),
        (
            serde_json::json!({"status": "succeeded"}),
            OperationState::Done,
        ),
        (
            serde_json::json!({"status": "Cancelled"}),
            OperationState::Done,
        ),
        (
            serde_json::json!({"status": "canceled"}),
            OperationState::Done,
        ),
        (
            serde_json::json!([{"status": "failed", "error": "nope"}]),
            OperationState::Failed,
        ),
        (
            serde_json::json!({"status": "running"}),
            OperationState::InProgress,
        ),
        (
            serde_json::json!({"status": "notStarted"}),
            OperationState::InProgress,
        ),
        (
            serde_json::json!({"status": "brandNewValue"}),
            OperationState::InProgress,
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
            .mount(&server)
            .await;
        let answer = client(&server)
            .poll("/api/op", &token(), Turn::any())
            .await
            .unwrap();
        assert_eq!(answer.operation.state(), want, "{body}");
    }
}

#[tokio::test]
async fn a_new_location_on_a_poll_is_reported() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Location", "/api/op2")
                .set_body_json(serde_json::json!({"status": "running"})),
        )
        .mount(&server)
        .await;
    let answer = client(&server)
        .poll("/api/op1", &token(), Turn::any())
        .await
        .unwrap();
    assert_eq!(answer.location.as_deref(), Some("/api/op2"));
}

#[tokio::test]
async fn foreign_host_location_is_refused_without_any_request() {
    let server = MockServer::start().await;
    let err = client(&server)
        .poll("https://attacker.example/api/op", &token(), Turn::any())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Location(_)), "{err:?}");
    assert_eq!(err.retry_class(), RetryClass::Terminal);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn unauthorized_refreshes_the_token_once_and_retries_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/tenant-1/oauth2/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains(
            "resource=https%3A%2F%2Fcloudpartner.azure.com",
        ))
        .respond_with(token_answer("tok"))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CANCEL_PATH))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CANCEL_PATH))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let answer = client(&server)
        .cancel(OFFER, "", &principal(), Turn::any())
        .await
        .unwrap();
    assert_eq!(answer, CancelOutcome::Cancelled);
}

#[tokio::test]
async fn a_second_401_is_terminal_and_not_retried_again() {
    let server = MockServer::start().await;
    Mock::given(path("/tenant-1/oauth2/token"))
        .respond_with(token_answer("tok"))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path(CANCEL_PATH))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    let err = client(&server)
        .cancel(OFFER, "", &principal(), Turn::any())
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(401));
    assert_eq!(err.retry_class(), RetryClass::Terminal);
}

#[tokio::test]
async fn tokens_are_cached_per_principal() {
    let server = MockServer::start().await;
    Mock::given(path("/tenant-1/oauth2/token"))
        .respond_with(token_answer("tok"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(CANCEL_PATH))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let c = client(&server);
    for _ in 0..3 {
        c.cancel(OFFER, "", &principal(), Turn::any())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn rejected_token_request_never_shows_the_secret_or_aad_text() {
    let server = MockServer::start().await;
    Mock::given(path("/tenant-1/oauth2/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret very-secret-value. Trace ID: 1234"
        })))
        .mount(&server)
        .await;
    let err = client(&server)
        .cancel(OFFER, "", &principal(), Turn::any())
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(!text.contains("very-secret-value"), "{text}");
    assert!(!text.contains("Trace ID"), "{text}");
}

#[tokio::test]
async fn terminal_4xx_carries_the_parsed_error_body() {
    let server = MockServer::start().await;
    Mock::given(path(CANCEL_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": {"code": "InvalidAPIVersion", "message": "Invalid api version. Allowed values are [2016-08-01-preview]"}
        })))
        .mount(&server)
        .await;
    let err = client(&server)
        .cancel(OFFER, "", &token(), Turn::any())
        .await
        .unwrap_err();
    assert_eq!(err.retry_class(), RetryClass::Terminal);
    assert_eq!(
        err.to_string(),
        "CPP cancel call answered HTTP 400 (InvalidAPIVersion: Invalid api version. Allowed values are [2016-08-01-preview])"
    );
}

#[tokio::test]
async fn server_errors_and_timeouts_are_transient() {
    for code in [408u16, 500, 502, 503] {
        let server = MockServer::start().await;
        Mock::given(path(CANCEL_PATH))
            .respond_with(ResponseTemplate::new(code))
            .mount(&server)
            .await;
        let err = client(&server)
            .cancel(OFFER, "", &token(), Turn::any())
            .await
            .unwrap_err();
        assert!(
            matches!(err.retry_class(), RetryClass::Transient { .. }),
            "{code}"
        );
    }
    let server = MockServer::start().await;
    Mock::given(path(CANCEL_PATH))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let err = client(&server)
        .cancel(OFFER, "", &token(), Turn::any())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Request {
                kind: "timed out",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(err.retry_class(), RetryClass::Transient { .. }));
}

#[tokio::test]
async fn connection_refused_is_transient_and_names_the_host_alone() {
    let url: reqwest::Url = "http://127.0.0.1:9".parse().unwrap();
    let c = Apis::new(
        ClientConfig::new(url.clone(), url),
        Arc::new(Metrics::default()),
    )
    .unwrap()
    .cpp;
    let err = c
        .cancel(OFFER, "", &token(), Turn::any())
        .await
        .unwrap_err();
    assert!(
        matches!(err.retry_class(), RetryClass::Transient { .. }),
        "{err:?}"
    );
    let said = err.to_string();
    assert!(said.contains("request to 127.0.0.1 failed"), "{said}");
    assert!(!said.contains("/api/"), "no path in the error: {said}");
}

#[tokio::test]
async fn oversized_bodies_are_refused_not_buffered() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(2 << 20)))
        .mount(&server)
        .await;
    let err = client(&server)
        .poll("/api/op", &token(), Turn::any())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Malformed { .. }), "{err:?}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = MockServer::start().await;
    Mock::given(path(CANCEL_PATH))
        .respond_with(
            ResponseTemplate::new(307).insert_header("Location", "https://attacker.example/steal"),
        )
        .mount(&server)
        .await;
    let err = client(&server)
        .cancel(OFFER, "", &token(), Turn::any())
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(307));
}

#[tokio::test]
async fn operations_list_is_read_from_submissions() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/api/publishers/contoso/offers/contoso-offer/submissions/",
        ))
        .and(query_param("api-version", "2017-10-31"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            {"id": "p1", "submissionType": "publish", "status": "running"},
            {"id": "c1", "submissionType": "cancel", "status": "notStarted"}
        ])))
        .mount(&server)
        .await;
    let ops = client(&server)
        .operations(OFFER, &token(), Turn::any())
        .await
        .unwrap();
    assert_eq!(ops.len(), 2);
    assert!(ops[1].is_cancel());
    assert_eq!(ops[1].id.as_deref(), Some("c1"));
}

#[tokio::test]
async fn the_rate_limit_spaces_requests_out() {
    let server = MockServer::start().await;
    Mock::given(path(CANCEL_PATH))
        .respond_with(ResponseTemplate::new(200))
        .expect(3)
        .mount(&server)
        .await;
    let url: reqwest::Url = server.uri().parse().unwrap();
    let mut config = ClientConfig::new(url.clone(), url);
    let two = std::num::NonZeroU32::new(2).unwrap();
    config.rate_limit = Some((two, std::num::NonZeroU32::new(1).unwrap()));
    let c = Apis::new(config, Arc::new(Metrics::default())).unwrap().cpp;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        c.cancel(OFFER, "", &token(), Turn::any()).await.unwrap();
    }
    // 2 per second with a burst of 1: the third request waits for ~1 s.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_token_is_never_shared_across_scopes_or_client_secrets() {
    let server = MockServer::start().await;
    Mock::given(path("/tenant-1/oauth2/token"))
        .and(body_string_contains("client_secret=very-secret-value"))
        .respond_with(token_answer("team-a-token"))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path("/tenant-1/oauth2/token"))
        .and(body_string_contains("client_secret=i-do-not-know-it"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": "invalid_client"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(CANCEL_PATH))
        .and(header("authorization", "Bearer team-a-token"))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&server)
        .await;
    let c = client(&server);
    let team = |scope: &str, secret: &str| Credentials::ClientSecret {
        tenant_id: "tenant-1".into(),
        client_id: "app-1".into(),
        client_secret: SecretString::from(secret.to_string()),
        scope: scope.into(),
    };
    c.cancel(OFFER, "", &team("a/cpp", "very-secret-value"), Turn::any())
        .await
        .unwrap();
    // Same tenant and client, wrong secret, other namespace: no borrowed token.
    let err = c
        .cancel(OFFER, "", &team("b/cpp", "i-do-not-know-it"), Turn::any())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid_client"), "{err}");
    // The right secret in another namespace gets a token of its own.
    c.cancel(OFFER, "", &team("b/cpp", "very-secret-value"), Turn::any())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_accepted_cancel_survives_a_huge_or_slow_body() {
    let server = MockServer::start().await;
    let location =
        "/api/publishers/contoso/offers/contoso-offer/operations/1?api-version=2017-10-31";
    Mock::given(path(CANCEL_PATH))
        .respond_with(
            ResponseTemplate::new(202)
                .insert_header("Location", location)
                .set_body_string("x".repeat(3 << 20))
                .set_delay(Duration::from_millis(50)),
        )
        .mount(&server)
        .await;
    let answer = client(&server)
        .cancel(OFFER, "", &token(), Turn::any())
        .await
        .unwrap();
    assert_eq!(
        answer,
        CancelOutcome::Accepted {
            http: 202,
            location: Some(location.into()),
            retry_after: None
        }
    );
}

#[tokio::test]
async fn unusable_locations_are_refused_at_the_202_and_never_stored() {
    let server = MockServer::start().await;
    let huge = format!("/api/operations/{}", "a".repeat(300_000));
    for (offer, loc) in [
        ("huge", huge.as_str()),
        ("userinfo", "http://user:pw@127.0.0.1/api/operations/x"),
        ("fragment", "/api/operations/x#y"),
    ] {
        Mock::given(path(format!(
            "/api/publishers/contoso/offers/{offer}/cancel"
        )))
        .respond_with(ResponseTemplate::new(202).set_body_json(serde_json::json!({
            "location": loc
        })))
        .mount(&server)
        .await;
        let target = OfferRef {
            offer_id: offer,
            ..OFFER
        };
        let err = client(&server)
            .cancel(target, "", &token(), Turn::any())
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::Location(_)), "{offer}: {err:?}");
        assert!(err.to_string().len() < 300, "{offer}: message too long");
    }
}
