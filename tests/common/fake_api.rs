//! A stateful stand-in for the Kubernetes API server, for runs of many
//! reconciles: it keeps one OfferCancellation and its Secret, applies status
//! patches as server-side apply with one manager would (the applied status
//! replaces the old one), and records Events. Any other call fails the test.

use http::{Request, Response};
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::{Client, ResourceExt};
use offer_cancel_operator::apis::Apis;
use offer_cancel_operator::context::{self, Context};
use offer_cancel_operator::crd::OfferCancellation;
use offer_cancel_operator::http::ClientConfig;
use offer_cancel_operator::metrics::Metrics;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{EVENTS_PATH, SECRET_PATH, STATUS_PATH};

#[derive(Default)]
pub struct World {
    pub object: Option<OfferCancellation>,
    pub secret: Option<Secret>,
    pub events: Vec<String>,
    pub status_writes: usize,
    pub watches: usize,
    pub secret_gets: usize,
    pub unexpected: Vec<String>,
    /// The targets' claims.
    pub leases: super::leases::Leases,
}

#[derive(Clone)]
pub struct FakeApi(pub Arc<Mutex<World>>);

impl FakeApi {
    pub fn new(object: OfferCancellation, secret: Option<Secret>) -> Self {
        FakeApi(Arc::new(Mutex::new(World {
            object: Some(object),
            secret,
            ..World::default()
        })))
    }

    pub fn object(&self) -> OfferCancellation {
        self.0.lock().unwrap().object.clone().unwrap()
    }

    /// A Context on this fake and CPP at `cpp_url`, as a freshly started
    /// controller would have (empty caches, empty gate).
    pub fn context(&self, cpp_url: &str, config: context::Config) -> Arc<Context> {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(serve(self.0.clone(), handle));
        let url: reqwest::Url = cpp_url.parse().unwrap();
        let mut cpp_config = ClientConfig::new(url.clone(), url);
        cpp_config.request_timeout = Duration::from_secs(2);
        let metrics = Arc::new(Metrics::default());
        let cpp = Arc::new(Apis::new(cpp_config, metrics.clone()).unwrap());
        Arc::new(Context::new(
            Client::new(service, super::NS),
            cpp,
            metrics,
            config,
        ))
    }
}

fn respond(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

async fn serve(
    world: Arc<Mutex<World>>,
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
) {
    // Watches get no answer: held open, as a long watch would be.
    let mut watches = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let method = request.method().as_str().to_string();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or("").to_string();
        let body = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if super::rbac::required(&method, &path, &query).is_none() {
            let call = format!("not granted: {method} {path}?{query}");
            world.lock().unwrap().unexpected.push(call);
        }
        if query.split('&').any(|kv| kv == "watch=true") {
            world.lock().unwrap().watches += 1;
            watches.push(send);
            continue;
        }
        let response = answer(&world, &method, &path, body);
        send.send_response(response);
    }
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Response<Body> {
    let body = serde_json::json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"resourceVersion": "1"}, "items": items
    });
    respond(200, &body)
}

fn answer(world: &Mutex<World>, method: &str, path: &str, body: Value) -> Response<Body> {
    let mut w = world.lock().unwrap();
    if super::leases::Leases::handles(path) {
        return w.leases.answer(method, path, body);
    }
    match (method, path) {
        ("GET", "/apis/offercancel.dev/v1alpha1/offercancellations") => {
            let items = w
                .object
                .iter()
                .map(|o| serde_json::to_value(o).unwrap())
                .collect();
            list("OfferCancellationList", "offercancel.dev/v1alpha1", items)
        }
        ("GET", "/api/v1/secrets") => {
            let items = w
                .secret
                .iter()
                .map(|s| serde_json::to_value(s).unwrap())
                .collect();
            list("SecretList", "v1", items)
        }
        ("GET", SECRET_PATH) => {
            w.secret_gets += 1;
            match &w.secret {
                Some(s) => respond(200, &serde_json::to_value(s).unwrap()),
                None => respond(
                    404,
                    &serde_json::json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"not found"}),
                ),
            }
        }
        ("PATCH", STATUS_PATH) => {
            let Some(obj) = w.object.as_mut() else {
                return respond(404, &serde_json::json!({"kind":"Status","code":404}));
            };
            obj.status = serde_json::from_value(body["status"].clone()).ok();
            let rv: u64 = obj
                .resource_version()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            obj.metadata.resource_version = Some((rv + 1).to_string());
            let answer = serde_json::to_value(&*obj).unwrap();
            w.status_writes += 1;
            respond(200, &answer)
        }
        ("POST", EVENTS_PATH) => {
            w.events
                .push(body["reason"].as_str().unwrap_or("").to_string());
            respond(201, &body)
        }
        _ => {
            w.unexpected.push(format!("{method} {path}"));
            respond(500, &serde_json::json!({"kind":"Status","code":500}))
        }
    }
}
