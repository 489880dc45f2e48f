//! Test builders and a mocked Kubernetes API server: one scenario per test,
//! each expected call checked for method, path and body, in order, with a
//! timeout that catches calls that never came.
#![allow(dead_code)]

pub mod conversation;
pub mod fake_api;
pub mod leases;
pub mod rbac;

#[allow(unused_imports)] // not every test file holds a conversation
pub use conversation::{Conversation, JOB_BASE, JOB_ID, OPERATION_LOCATION};

use http::{Request, Response};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::{Client, Resource, ResourceExt};
use offer_cancel_operator::apis::Apis;
use offer_cancel_operator::context::{self, Context};
use offer_cancel_operator::crd::{OfferCancellation, OfferCancellationStatus};
use offer_cancel_operator::decide::Outcome;
use offer_cancel_operator::fixtures::SECRET_VERSION;
use offer_cancel_operator::http::ClientConfig;
use offer_cancel_operator::metrics::Metrics;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const NS: &str = "default";
pub const NAME: &str = "contoso-offer-cancel";
pub const SECRET: &str = "cpp-credentials";
pub const STATUS_PATH: &str = "/apis/offercancel.dev/v1alpha1/namespaces/default/offercancellations/contoso-offer-cancel/status";
pub const RESOURCE_PATH: &str =
    "/apis/offercancel.dev/v1alpha1/namespaces/default/offercancellations/contoso-offer-cancel";
pub const SECRET_PATH: &str = "/api/v1/namespaces/default/secrets/cpp-credentials";
pub const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

/// The fixture resource, polling every 5 s.
pub fn contoso() -> OfferCancellation {
    OfferCancellation::test().poll_every(5)
}

/// The fixture resource on `offer`, polling every 5 s, with `status`.
pub fn resource(offer: &str, status: Option<OfferCancellationStatus>) -> OfferCancellation {
    let mut oc = OfferCancellation::test().offer(offer).poll_every(5);
    oc.status = status;
    oc
}

/// The status a resource has after these outcomes, as the operator wrote it.
pub fn status_after(offer: &str, outcomes: Vec<Outcome>) -> OfferCancellationStatus {
    let oc = resource(offer, None).after(outcomes);
    oc.status.unwrap_or_default()
}

pub fn token_secret(token: &str) -> Secret {
    let mut secret = Secret::default();
    secret.meta_mut().name = Some(SECRET.into());
    secret.meta_mut().namespace = Some(NS.into());
    secret.meta_mut().resource_version = Some(SECRET_VERSION.into());
    secret.data = Some(BTreeMap::from([(
        "token".to_string(),
        ByteString(token.as_bytes().to_vec()),
    )]));
    secret
}

pub fn principal_secret(tenant: &str, client: &str, client_secret: &str) -> Secret {
    let mut secret = token_secret("");
    secret.data = Some(BTreeMap::from([
        (
            "tenantId".to_string(),
            ByteString(tenant.as_bytes().to_vec()),
        ),
        (
            "clientId".to_string(),
            ByteString(client.as_bytes().to_vec()),
        ),
        (
            "clientSecret".to_string(),
            ByteString(client_secret.as_bytes().to_vec()),
        ),
    ]));
    secret
}

/// One call the scenario expects.
pub enum Call {
    /// GET of the credentials Secret; `None` answers 404.
    GetSecret(Box<Option<Secret>>),
    /// Server-side apply of status; the closure checks the applied status.
    PatchStatus(Box<dyn FnOnce(&Value) + Send>),
    /// An Event with this reason.
    Event(&'static str),
    /// A status apply refused with 409: the object moved on since it was read.
    PatchConflict,
    /// A fresh GET of the resource: it is as the last status apply left
    /// it, one version on (someone else wrote to it), and then as the
    /// closure edits it (labels, or another writer's status).
    GetMovedOn(Box<dyn FnOnce(&mut Value) + Send>),
}

/// A fresh read finds the resource edited by someone else (a label, as
/// GitOps tools add), its status as we last wrote it.
pub fn labelled_meanwhile() -> Call {
    Call::GetMovedOn(Box::new(|o| {
        o["metadata"]["labels"] = json!({"argocd.argoproj.io/instance": "publishing"});
    }))
}

pub fn patch(check: impl FnOnce(&Value) + Send + 'static) -> Call {
    Call::PatchStatus(Box::new(check))
}

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The mocked API server, handing out answers in scenario order; Lease
/// calls (the targets' claims) are answered by a store of Leases beside
/// the scenario, which a test can read afterwards.
pub struct ApiServerVerifier(Handle, Arc<std::sync::Mutex<leases::Leases>>);

/// A Context whose kube client talks to the verifier and whose CPP client
/// talks to `cpp_url`.
pub fn context(cpp_url: &str) -> (Arc<Context>, ApiServerVerifier) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NS);
    let url: reqwest::Url = cpp_url.parse().unwrap();
    let mut config = ClientConfig::new(url.clone(), url.clone());
    config.product_ingestion_endpoint = url.join(conversation::JOB_BASE).unwrap();
    config.request_timeout = Duration::from_secs(2);
    let metrics = Arc::new(Metrics::default());
    let cpp = Arc::new(Apis::new(config, metrics.clone()).unwrap());
    let ctx = Context::new(client, cpp, metrics, context::Config::default());
    (Arc::new(ctx), ApiServerVerifier(handle, Arc::default()))
}

fn json_response(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

/// Answers a Lease call from the store of Leases, once RBAC is seen to
/// grant it.
async fn answer_lease(
    leases: &std::sync::Mutex<leases::Leases>,
    request: Request<Body>,
    send: tower_test::mock::SendResponse<Response<Body>>,
) {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    assert!(
        rbac::required(&method, &path, &query).is_some(),
        "{method} {path} is not granted by tests/common/rbac.rs"
    );
    let body = request
        .into_body()
        .collect_bytes()
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let response = leases.lock().unwrap().answer(&method, &path, body);
    send.send_response(response);
}

impl ApiServerVerifier {
    /// The Leases the operator wrote (its claims), to read after a run.
    pub fn leases(&self) -> Arc<std::sync::Mutex<leases::Leases>> {
        self.1.clone()
    }

    /// The next request that is not a Lease call; Lease calls on the way
    /// are answered from the store of Leases.
    async fn next_scripted(
        &mut self,
        i: usize,
    ) -> (
        Request<Body>,
        tower_test::mock::SendResponse<Response<Body>>,
    ) {
        loop {
            let (request, send) =
                tokio::time::timeout(Duration::from_secs(5), self.0.next_request())
                    .await
                    .unwrap_or_else(|_| panic!("call {i} never came"))
                    .expect("service not called");
            let path = request.uri().path().to_string();
            if !leases::Leases::handles(&path) {
                return (request, send);
            }
            answer_lease(&self.1, request, send).await;
        }
    }

    /// Serves the calls in order; returns the applied statuses.
    pub fn run(
        mut self,
        obj: OfferCancellation,
        calls: Vec<Call>,
    ) -> tokio::task::JoinHandle<Vec<Value>> {
        tokio::spawn(async move {
            let mut applied: Vec<Value> = Vec::new();
            let mut version: u64 = obj
                .metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            for (i, call) in calls.into_iter().enumerate() {
                let (request, send) = self.next_scripted(i).await;
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or("").to_string();
                let body = request.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                assert!(
                    rbac::required(method.as_str(), &path, &query).is_some(),
                    "call {i}: {method} {path} is not granted by tests/common/rbac.rs"
                );
                match call {
                    Call::GetSecret(secret) => {
                        assert_eq!(
                            (method.as_str(), path.as_str()),
                            ("GET", SECRET_PATH),
                            "call {i}"
                        );
                        let response = match *secret {
                            Some(s) => json_response(200, &serde_json::to_value(s).unwrap()),
                            None => json_response(
                                404,
                                &json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"secrets \"cpp-credentials\" not found"}),
                            ),
                        };
                        send.send_response(response);
                    }
                    Call::PatchStatus(check) => {
                        assert_eq!(
                            (method.as_str(), path.as_str()),
                            ("PATCH", STATUS_PATH),
                            "call {i}"
                        );
                        assert!(
                            query.contains("fieldManager=offer-cancel-operator"),
                            "{query}"
                        );
                        assert!(query.contains("force=true"), "{query}");
                        assert_eq!(body["apiVersion"], "offercancel.dev/v1alpha1");
                        assert_eq!(body["kind"], "OfferCancellation");
                        // Every write is conditional on the version it was
                        // decided from: the view's, then each write's own.
                        assert_eq!(
                            body["metadata"]["resourceVersion"],
                            version.to_string(),
                            "call {i}: resourceVersion precondition"
                        );
                        check(&body["status"]);
                        applied.push(body["status"].clone());
                        version += 1;
                        let mut answer = serde_json::to_value(&obj).unwrap();
                        answer["status"] = body["status"].clone();
                        answer["metadata"]["resourceVersion"] = json!(version.to_string());
                        send.send_response(json_response(200, &answer));
                    }
                    Call::PatchConflict => {
                        assert_eq!(
                            (method.as_str(), path.as_str()),
                            ("PATCH", STATUS_PATH),
                            "call {i}"
                        );
                        send.send_response(json_response(
                            409,
                            &json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Conflict","code":409,"message":"the object has been modified"}),
                        ));
                    }
                    Call::GetMovedOn(edit) => {
                        assert_eq!(
                            (method.as_str(), path.as_str()),
                            ("GET", RESOURCE_PATH),
                            "call {i}"
                        );
                        version += 1;
                        let mut answer = serde_json::to_value(&obj).unwrap();
                        if let Some(last) = applied.last() {
                            answer["status"] = last.clone();
                        }
                        answer["metadata"]["resourceVersion"] = json!(version.to_string());
                        edit(&mut answer);
                        send.send_response(json_response(200, &answer));
                    }
                    Call::Event(reason) => {
                        assert_eq!(
                            (method.as_str(), path.as_str()),
                            ("POST", EVENTS_PATH),
                            "call {i}"
                        );
                        assert_eq!(body["reason"], reason, "call {i}");
                        assert_eq!(body["regarding"]["name"], obj.name_any());
                        send.send_response(json_response(201, &body));
                    }
                }
            }
            // What follows the last scripted call: the claim told its
            // answer, or let go, from the store of Leases; anything else
            // is answered as a server gone away would (the scenario ended).
            while let Ok(Some((request, send))) =
                tokio::time::timeout(Duration::from_millis(300), self.0.next_request()).await
            {
                if !leases::Leases::handles(request.uri().path()) {
                    send.send_response(json_response(503, &json!({"kind": "Status", "code": 503})));
                    continue;
                }
                answer_lease(&self.1, request, send).await;
            }
            applied
        })
    }
}
