//! The Entra ID v2.0 token endpoint over HTTP: a certificate assertion
//! and a federated one (keys from a local JWKS) get tokens the CPP and
//! Product Ingestion routes take; refusals are Entra's and counted.

mod support;

use jsonwebtoken::Algorithm;
use marketplace_simulator::entra::{CPP_SCOPE, GRAPH_SCOPE};
use marketplace_simulator::scenario::{DEFAULT_JOB_API_VERSION, DEFAULT_JOB_ID, DEFAULT_TENANT};
use marketplace_simulator::{self as simulator, FederatedCredential, Issuer, Principal, Scenario};
use serde_json::{Value, json};
use support::keys::{TestKey, client_claims, now, service_account_claims};

const K8S: &str = "https://kubernetes.default.svc";
const SA: &str = "system:serviceaccount:team-a:offercancel";
const JWT_BEARER: &str = marketplace_simulator::assertion::JWT_BEARER;

/// `federated-client`, trusting [`SA`]'s tokens from each of `issuers`.
fn federated_principal(issuers: &[&str]) -> Principal {
    let mut p = principal("federated-client");
    for issuer in issuers {
        p.federated_credentials.push(FederatedCredential {
            issuer: issuer.to_string(),
            subject: SA.into(),
            audiences: vec!["api://AzureADTokenExchange".into()],
        });
    }
    p
}

fn principal(client_id: &str) -> Principal {
    Principal {
        tenant_id: DEFAULT_TENANT.into(),
        client_id: client_id.into(),
        client_secret: None,
        certificates: vec![],
        federated_credentials: vec![],
        publishers: vec!["contoso".into()],
        read_only: false,
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A v2.0 token request with `assertion`: status and body.
async fn ask(
    c: &reqwest::Client,
    sim: &str,
    client_id: &str,
    scope: &str,
    assertion: &str,
) -> (u16, Value) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("scope", scope),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    let url = format!("{sim}/{DEFAULT_TENANT}/oauth2/v2.0/token");
    let resp = c.post(url).form(&form).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn stats(c: &reqwest::Client, sim: &str) -> Value {
    let resp = c.get(format!("{sim}/_sim/stats")).send().await.unwrap();
    resp.json().await.unwrap()
}

/// Serves `{"keys": [jwk]}` at `/openid/v1/jwks` on a port of its own.
async fn jwks_server(jwk: Value) -> String {
    let keys = json!({ "keys": [jwk] });
    let app = axum::Router::new().route(
        "/openid/v1/jwks",
        axum::routing::get(move || async move { axum::Json(keys) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/openid/v1/jwks")
}

#[tokio::test]
async fn a_certificate_assertion_gets_a_cpp_token_the_cpp_routes_take() {
    let key = TestKey::generate(1);
    let mut scenario = Scenario::default_scenario();
    let mut p = principal("cert-client");
    p.certificates.push(key.cert_pem.clone());
    scenario.principals.push(p);
    let sim = simulator::spawn(scenario, "127.0.0.1:0").await.unwrap();
    let (url, c) = (sim.url(), client());

    let claims = client_claims("cert-client", DEFAULT_TENANT, &url, now());
    let assertion = key.certificate_assertion(Algorithm::PS256, &claims);
    let (status, body) = ask(&c, &url, "cert-client", CPP_SCOPE, &assertion).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body["expires_in"].is_u64() && body["ext_expires_in"].is_u64(),
        "{body}"
    );
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("sim-"));

    let submissions = format!(
        "{url}/api/publishers/contoso/offers/contoso-offer/submissions?api-version=2017-10-31"
    );
    let resp = c.get(&submissions).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // A CPP token, not a Graph one.
    let job = format!(
        "{url}/rp/product-ingestion/configure/{DEFAULT_JOB_ID}/status?$version={DEFAULT_JOB_API_VERSION}"
    );
    let resp = c.get(&job).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // The same assertion for another tenant's endpoint is refused.
    let mut wrong = claims.clone();
    wrong["aud"] = json!(format!("{url}/other/oauth2/v2.0/token"));
    let assertion = key.certificate_assertion(Algorithm::RS256, &wrong);
    let (status, body) = ask(&c, &url, "cert-client", CPP_SCOPE, &assertion).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_client")),
        "{body}"
    );
    assert_eq!(body["error_codes"], json!([700_023]));
    let (status, body) = ask(&c, &url, "nobody", CPP_SCOPE, &assertion).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("unauthorized_client"))
    );
    let (status, body) = ask(
        &c,
        &url,
        "cert-client",
        "https://example.com/.default",
        &assertion,
    )
    .await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_scope")));
    assert_eq!(body["error_codes"], json!([70_011]));

    let s = stats(&c, &url).await;
    assert_eq!(
        (s["tokensIssued"].as_u64(), s["assertionsRefused"].as_u64()),
        (Some(1), Some(3)),
        "{s}"
    );
}

#[tokio::test]
async fn a_federated_assertion_verified_against_the_issuers_jwks_gets_a_graph_token() {
    let key = TestKey::generate(1);
    let jwks_uri = jwks_server(key.jwk("sa-key")).await;
    let mut scenario = Scenario::default_scenario();
    scenario.issuers.push(Issuer {
        issuer: K8S.into(),
        jwks_uri,
        ca_file: None,
    });
    // An issuer whose keys cannot be fetched: nothing listens there.
    scenario.issuers.push(Issuer {
        issuer: "https://down.example".into(),
        jwks_uri: "http://127.0.0.1:9/jwks".into(),
        ca_file: None,
    });
    scenario
        .principals
        .push(federated_principal(&[K8S, "https://down.example"]));
    let sim = simulator::spawn(scenario, "127.0.0.1:0").await.unwrap();
    let (url, c) = (sim.url(), client());
    let sign = |issuer: &str, subject: &str| {
        let claims = service_account_claims(issuer, subject, "api://AzureADTokenExchange", now());
        key.sign(Algorithm::RS256, |h| h.kid = Some("sa-key".into()), &claims)
    };

    let (status, body) = ask(&c, &url, "federated-client", GRAPH_SCOPE, &sign(K8S, SA)).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let job = format!(
        "{url}/rp/product-ingestion/configure/{DEFAULT_JOB_ID}/status?$version={DEFAULT_JOB_API_VERSION}"
    );
    let resp = c.get(&job).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let other = "system:serviceaccount:team-b:offercancel";
    let (status, body) = ask(&c, &url, "federated-client", GRAPH_SCOPE, &sign(K8S, other)).await;
    assert_eq!(
        (status, &body["error_codes"]),
        (400, &json!([700_213])),
        "{body}"
    );
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("AADSTS700213:") && description.contains(other),
        "{description}"
    );

    let (status, body) = ask(
        &c,
        &url,
        "federated-client",
        GRAPH_SCOPE,
        &sign("https://down.example", SA),
    )
    .await;
    assert_eq!(
        (status, &body["error_codes"]),
        (400, &json!([50_166])),
        "{body}"
    );
    let (status, body) = ask(&c, &url, "federated-client", GRAPH_SCOPE, "not.a.jwt").await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_request")),
        "{body}"
    );

    let s = stats(&c, &url).await;
    assert_eq!(
        (s["tokensIssued"].as_u64(), s["assertionsRefused"].as_u64()),
        (Some(1), Some(3)),
        "{s}"
    );
}

#[tokio::test]
async fn a_principal_without_a_secret_refuses_every_secret_on_v1_and_v2() {
    let mut scenario = Scenario::default_scenario();
    scenario.principals.push(principal("no-secret"));
    let sim = simulator::spawn(scenario, "127.0.0.1:0").await.unwrap();
    let (url, c) = (sim.url(), client());
    let v1 = c
        .post(format!("{url}/{DEFAULT_TENANT}/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "no-secret"),
            ("client_secret", ""),
            ("resource", "https://cloudpartner.azure.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), 401);
    let v2 = |client_id: &'static str, secret: &'static str| {
        c.post(format!("{url}/{DEFAULT_TENANT}/oauth2/v2.0/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", CPP_SCOPE),
            ])
            .send()
    };
    assert_eq!(v2("no-secret", "anything").await.unwrap().status(), 401);
    // The default principal's secret works on v2.0 too.
    let ok = v2("offer-cancel-operator", "simulated-client-secret")
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn an_https_jwks_is_trusted_through_the_issuers_ca_file_only() {
    let key = TestKey::generate(1);
    let server = support::tls::serve(json!({ "keys": [key.jwk("sa-key")] }).to_string());
    let jwks_uri = format!("{}/openid/v1/jwks", server.url);
    let mut scenario = Scenario::default_scenario();
    let ca_file = server.ca_file.display().to_string();
    // The same server, once with its CA and once with the system's roots.
    for (issuer, ca_file) in [(K8S, Some(ca_file)), ("https://no-ca.example", None)] {
        scenario.issuers.push(Issuer {
            issuer: issuer.into(),
            jwks_uri: jwks_uri.clone(),
            ca_file,
        });
    }
    scenario
        .principals
        .push(federated_principal(&[K8S, "https://no-ca.example"]));
    let sim = simulator::spawn(scenario, "127.0.0.1:0").await.unwrap();
    let (url, c) = (sim.url(), client());
    let sign = |issuer: &str| {
        let claims = service_account_claims(issuer, SA, "api://AzureADTokenExchange", now());
        key.sign(Algorithm::RS256, |h| h.kid = Some("sa-key".into()), &claims)
    };

    let (status, body) = ask(&c, &url, "federated-client", CPP_SCOPE, &sign(K8S)).await;
    assert_eq!(status, 200, "{body}");
    let untrusted = sign("https://no-ca.example");
    let (status, body) = ask(&c, &url, "federated-client", CPP_SCOPE, &untrusted).await;
    assert_eq!(
        (status, &body["error_codes"]),
        (400, &json!([50_166])),
        "{body}"
    );
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains("certificate"),
        "a TLS refusal: {description}"
    );
}
