//! Client assertions against a local token endpoint (wiremock) that
//! checks the v2.0 form exactly: workload identity (a ServiceAccount token
//! from a stand-in for the API server) and client certificates.

use futures::future::BoxFuture;
use offer_cancel_operator::apis::Apis;
use offer_cancel_operator::cpp::{CppClient, OfferRef};
use offer_cancel_operator::fixtures::certificate::{self, Validity};
use offer_cancel_operator::http::{
    ApiError, AuthError, ClientCertificate, ClientConfig, Credentials, Proof,
    ServiceAccountTokenError, ServiceAccountTokens,
};
use offer_cancel_operator::metrics::Metrics;
use offer_cancel_operator::scheduling::fair::Turn;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const OFFER: OfferRef<'static> = OfferRef {
    publisher_id: "contoso",
    offer_id: "contoso-offer",
    api_version: "2017-10-31",
};
const CANCEL_PATH: &str = "/api/publishers/contoso/offers/contoso-offer/cancel";
const V2_TOKEN_PATH: &str = "/tenant-1/oauth2/v2.0/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Issues `sa-token-<namespace>-<name>` and records every request; answers
/// NotFound for ServiceAccounts named `absent`.
#[derive(Default)]
struct FakeApiServer {
    asked: Mutex<Vec<(String, String)>>,
}

impl ServiceAccountTokens for FakeApiServer {
    fn token<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<SecretString, ServiceAccountTokenError>> {
        self.asked
            .lock()
            .unwrap()
            .push((namespace.into(), name.into()));
        Box::pin(async move {
            if name == "absent" {
                return Err(ServiceAccountTokenError::NotFound {
                    namespace: namespace.into(),
                    name: name.into(),
                });
            }
            Ok(SecretString::from(format!("sa-token-{namespace}-{name}")))
        })
    }
}

impl FakeApiServer {
    fn asked(&self) -> Vec<(String, String)> {
        self.asked.lock().unwrap().clone()
    }
}

fn client(server: &MockServer, api_server: Arc<FakeApiServer>) -> CppClient {
    let url: reqwest::Url = server.uri().parse().unwrap();
    let mut config = ClientConfig::new(url.clone(), url);
    config.request_timeout = Duration::from_millis(2000);
    Apis::with_service_accounts(config, Arc::new(Metrics::default()), api_server)
        .unwrap()
        .cpp
}

fn workload_identity(namespace: &str, account: &str) -> Credentials {
    Credentials::Assertion {
        tenant_id: "tenant-1".into(),
        client_id: "app-1".into(),
        proof: Proof::ServiceAccount {
            namespace: namespace.into(),
            name: account.into(),
        },
        scope: format!("{namespace}/cpp"),
    }
}

/// The v2.0 form the operator must send for app-1's CPP token, with
/// `assertion`, exactly.
fn v2_form_for_cpp(assertion: &str) -> FormIs {
    form_is(&[
        ("grant_type", "client_credentials"),
        ("client_id", "app-1"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
        ("scope", "https://cloudpartner.azure.com/.default"),
    ])
}

/// app-1 signing in with `made`'s certificate.
fn certificate_credentials(made: &certificate::Made) -> Credentials {
    let cert = ClientCertificate::from_pem(made.pem.as_bytes(), None).unwrap();
    Credentials::Assertion {
        tenant_id: "tenant-1".into(),
        client_id: "app-1".into(),
        proof: Proof::Certificate(Arc::new(cert)),
        scope: "team-a/cpp".into(),
    }
}

/// Matches a form body whose fields are exactly `fields`.
struct FormIs(BTreeMap<String, String>);

fn form_is(fields: &[(&str, &str)]) -> FormIs {
    FormIs(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn form(request: &Request) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

impl Match for FormIs {
    fn matches(&self, request: &Request) -> bool {
        form(request) == self.0
    }
}

fn token_answer(token: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "token_type": "Bearer", "expires_in": expires_in, "access_token": token
    }))
}

async fn cancel_accepted_with(server: &MockServer, bearer: &str) {
    Mock::given(method("POST"))
        .and(path(CANCEL_PATH))
        .and(header("authorization", format!("Bearer {bearer}").as_str()))
        .respond_with(ResponseTemplate::new(200))
        .mount(server)
        .await;
}

#[tokio::test]
async fn workload_identity_exchanges_the_namespaces_service_account_token_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(V2_TOKEN_PATH))
        .and(v2_form_for_cpp("sa-token-team-a-offercancel"))
        .respond_with(token_answer("cpp-token", 3599))
        .expect(1)
        .mount(&server)
        .await;
    cancel_accepted_with(&server, "cpp-token").await;
    let api_server = Arc::new(FakeApiServer::default());
    let c = client(&server, api_server.clone());
    for _ in 0..3 {
        c.cancel(
            OFFER,
            "",
            &workload_identity("team-a", "offercancel"),
            Turn::any(),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        api_server.asked(),
        [("team-a".to_string(), "offercancel".to_string())],
        "the ServiceAccount token is asked for only when the Entra token is"
    );
}

#[tokio::test]
async fn the_service_account_token_is_asked_for_again_when_the_entra_token_needs_renewing() {
    let server = MockServer::start().await;
    Mock::given(path(V2_TOKEN_PATH))
        .respond_with(token_answer("short-lived", 1))
        .expect(2)
        .mount(&server)
        .await;
    cancel_accepted_with(&server, "short-lived").await;
    let api_server = Arc::new(FakeApiServer::default());
    let c = client(&server, api_server.clone());
    let creds = workload_identity("team-a", "offercancel");
    c.cancel(OFFER, "", &creds, Turn::any()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.cancel(OFFER, "", &creds, Turn::any()).await.unwrap();
    assert_eq!(api_server.asked().len(), 2);
}

#[tokio::test]
async fn no_namespace_reaches_another_namespaces_token() {
    let server = MockServer::start().await;
    for ns in ["team-a", "team-b"] {
        let assertion = format!("sa-token-{ns}-offercancel");
        Mock::given(path(V2_TOKEN_PATH))
            .and(v2_form_for_cpp(&assertion))
            .respond_with(token_answer(&format!("token-of-{ns}"), 3599))
            .expect(1)
            .mount(&server)
            .await;
        cancel_accepted_with(&server, &format!("token-of-{ns}")).await;
    }
    let api_server = Arc::new(FakeApiServer::default());
    let c = client(&server, api_server.clone());
    // Same tenant, client and ServiceAccount name: still two identities.
    for ns in ["team-a", "team-b", "team-a", "team-b"] {
        c.cancel(
            OFFER,
            "",
            &workload_identity(ns, "offercancel"),
            Turn::any(),
        )
        .await
        .unwrap();
    }
    assert_eq!(api_server.asked().len(), 2);
}

#[tokio::test]
async fn an_entra_refusal_names_the_subject_the_federated_credential_needs() {
    let server = MockServer::start().await;
    Mock::given(path(V2_TOKEN_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_client",
            "error_description": "AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:team-b:offercancel'. Trace ID: 1234",
            "error_codes": [700213]
        })))
        .mount(&server)
        .await;
    let c = client(&server, Arc::new(FakeApiServer::default()));
    let err = c
        .cancel(
            OFFER,
            "",
            &workload_identity("team-b", "offercancel"),
            Turn::any(),
        )
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("AADSTS700213"), "{text}");
    assert!(
        text.contains("system:serviceaccount:team-b:offercancel"),
        "{text}"
    );
    assert!(
        !text.contains("Trace ID") && !text.contains("sa-token"),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_service_account_sends_nothing_to_entra() {
    let server = MockServer::start().await;
    Mock::given(path(V2_TOKEN_PATH))
        .respond_with(token_answer("never", 3599))
        .expect(0)
        .mount(&server)
        .await;
    let c = client(&server, Arc::new(FakeApiServer::default()));
    let err = c
        .cancel(
            OFFER,
            "",
            &workload_identity("team-a", "absent"),
            Turn::any(),
        )
        .await
        .unwrap_err();
    let ApiError::Auth(auth) = &err else {
        panic!("{err:?}")
    };
    assert!(auth.is_unavailable(), "{auth:?}");
    assert!(
        err.to_string()
            .contains("ServiceAccount team-a/absent not found")
    );
}

/// Checks a certificate assertion as Entra would, with the certificate's
/// public key, and records what it saw.
struct VerifiedAssertion {
    public_pem: String,
    audience: String,
    thumbprint: String,
}

impl Match for VerifiedAssertion {
    fn matches(&self, request: &Request) -> bool {
        let fields = form(request);
        let Some(jwt) = fields.get("client_assertion") else {
            return false;
        };
        let Ok(header) = jsonwebtoken::decode_header(jwt) else {
            return false;
        };
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(self.public_pem.as_bytes()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::PS256);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&["app-1"]);
        let verified = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation);
        header.x5t_s256.as_deref() == Some(self.thumbprint.as_str())
            && verified.is_ok_and(|t| t.claims["sub"] == "app-1")
            && fields.get("client_assertion_type").map(String::as_str) == Some(JWT_BEARER)
            && fields.get("scope").map(String::as_str)
                == Some("https://cloudpartner.azure.com/.default")
            && !fields.contains_key("client_secret")
    }
}

#[tokio::test]
async fn a_certificate_signs_an_assertion_its_public_key_verifies() {
    let server = MockServer::start().await;
    let made = certificate::made(Validity::Current);
    Mock::given(path(V2_TOKEN_PATH))
        .and(VerifiedAssertion {
            public_pem: made.public_pem.clone(),
            audience: format!("{}{V2_TOKEN_PATH}", server.uri()),
            thumbprint: made.thumbprint.clone(),
        })
        .respond_with(token_answer("cert-token", 3599))
        .expect(1)
        .mount(&server)
        .await;
    cancel_accepted_with(&server, "cert-token").await;
    let creds = certificate_credentials(&made);
    let c = client(&server, Arc::new(FakeApiServer::default()));
    c.cancel(OFFER, "", &creds, Turn::any()).await.unwrap();
}

#[tokio::test]
async fn an_expired_certificate_is_refused_before_anything_is_sent() {
    let server = MockServer::start().await;
    Mock::given(path(V2_TOKEN_PATH))
        .respond_with(token_answer("never", 3599))
        .expect(0)
        .mount(&server)
        .await;
    let made = certificate::made(Validity::Expired);
    let creds = certificate_credentials(&made);
    let err = client(&server, Arc::new(FakeApiServer::default()))
        .cancel(OFFER, "", &creds, Turn::any())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Auth(AuthError::Certificate(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("clientCertificate"), "{err}");
}

#[tokio::test]
async fn a_federated_token_file_is_read_at_each_exchange() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    let creds = Credentials::Assertion {
        tenant_id: "tenant-1".into(),
        client_id: "app-1".into(),
        proof: Proof::TokenFile(file.clone()),
        scope: "cli".into(),
    };
    // One client: its Entra token lives a second, so the second cancel
    // exchanges again, with what the file holds by then (the webhook
    // rotates it).
    let c = client(&server, Arc::new(FakeApiServer::default()));
    for (round, content) in ["first-federated-token", "rotated-federated-token"]
        .into_iter()
        .enumerate()
    {
        std::fs::write(&file, format!("{content}\n")).unwrap();
        Mock::given(path(V2_TOKEN_PATH))
            .and(v2_form_for_cpp(content))
            .respond_with(token_answer(&format!("token-{round}"), 1))
            .expect(1)
            .mount(&server)
            .await;
        cancel_accepted_with(&server, &format!("token-{round}")).await;
        c.cancel(OFFER, "", &creds, Turn::any()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
}

/// Hears how often, and for which urgency, a request waited for the rate
/// limit.
#[derive(Default)]
struct Waits(Mutex<Vec<offer_cancel_operator::scheduling::fair::Urgency>>);

impl offer_cancel_operator::http::RequestObserver for Waits {
    fn observe(&self, _: offer_cancel_operator::http::Endpoint, _: Option<u16>, _: Duration) {}

    fn waited(&self, urgency: offer_cancel_operator::scheduling::fair::Urgency, _: Duration) {
        self.0.lock().unwrap().push(urgency);
    }
}

#[tokio::test]
async fn the_token_request_and_the_exchange_wait_for_the_rate_limit_in_the_callers_turn() {
    use offer_cancel_operator::scheduling::fair::Urgency;
    use std::num::NonZeroU32;
    let server = MockServer::start().await;
    Mock::given(path(V2_TOKEN_PATH))
        .respond_with(token_answer("cpp-token", 3599))
        .mount(&server)
        .await;
    cancel_accepted_with(&server, "cpp-token").await;
    let url: reqwest::Url = server.uri().parse().unwrap();
    let mut config = ClientConfig::new(url.clone(), url);
    let rate = NonZeroU32::new(1000).unwrap();
    config.rate_limit = Some((rate, NonZeroU32::new(1).unwrap()));
    let waits = Arc::new(Waits::default());
    let c = Apis::with_service_accounts(config, waits.clone(), Arc::new(FakeApiServer::default()))
        .unwrap()
        .cpp;
    let creds = workload_identity("team-a", "offercancel");
    c.cancel(OFFER, "", &creds, Turn::now(Urgency::FirstCancel, "team-a"))
        .await
        .unwrap();
    let seen = waits.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [Urgency::FirstCancel; 3],
        "the exchange, the TokenRequest and the POST each waited, as a first cancel"
    );
}
