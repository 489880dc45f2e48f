//! Leases as an API server keeps them, for the mocked API servers: the
//! targets' claims live there. Create refuses an existing name (409
//! AlreadyExists), a merge patch carrying a resourceVersion is refused once
//! the object moved past it (409 Conflict), a delete honours its
//! resourceVersion precondition. Every call is recorded, so a test can say
//! what the claim went through.

use http::Response;
use kube::client::Body;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const PREFIX: &str = "/apis/coordination.k8s.io/v1/namespaces/";

#[derive(Default)]
pub struct Leases {
    objects: BTreeMap<String, Value>,
    version: u64,
    /// `METHOD name` of every call, in order.
    pub calls: Vec<String>,
    /// The namespace does not exist: every create is 404.
    pub no_namespace: bool,
}

fn respond(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("response")
}

fn status(code: u16, reason: &str) -> Response<Body> {
    respond(
        code,
        &json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":reason,"code":code,"message":reason}),
    )
}

/// Merges `patch` into `target` as a JSON merge patch does.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

impl Leases {
    /// Whether `path` is a Lease call.
    pub fn handles(path: &str) -> bool {
        path.starts_with(PREFIX) && path.contains("/leases")
    }

    /// The claims held now, by name.
    pub fn held(&self) -> Vec<Value> {
        self.objects.values().cloned().collect()
    }

    fn stamp(&mut self, mut object: Value) -> Value {
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        object
    }

    pub fn answer(&mut self, method: &str, path: &str, body: Value) -> Response<Body> {
        let name = path
            .rsplit_once("/leases")
            .map(|(_, n)| n.trim_matches('/'));
        let name = name.unwrap_or_default().to_string();
        self.calls.push(format!("{method} {name}"));
        match (method, name.is_empty()) {
            ("GET", true) => {
                let items: Vec<Value> = self.objects.values().cloned().collect();
                respond(
                    200,
                    &json!({"apiVersion":"coordination.k8s.io/v1","kind":"LeaseList","metadata":{"resourceVersion":"1"},"items":items}),
                )
            }
            ("GET", false) => match self.objects.get(&name) {
                Some(o) => respond(200, o),
                None => status(404, "NotFound"),
            },
            ("POST", _) if self.no_namespace => status(404, "NotFound"),
            ("POST", _) => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if self.objects.contains_key(&name) {
                    return status(409, "AlreadyExists");
                }
                let object = self.stamp(body);
                self.objects.insert(name, object.clone());
                respond(201, &object)
            }
            ("PATCH", false) => {
                let Some(current) = self.objects.get(&name).cloned() else {
                    return status(404, "NotFound");
                };
                let wanted = &body["metadata"]["resourceVersion"];
                if !wanted.is_null() && *wanted != current["metadata"]["resourceVersion"] {
                    return status(409, "Conflict");
                }
                let mut object = current;
                merge(&mut object, &body);
                let object = self.stamp(object);
                self.objects.insert(name, object.clone());
                respond(200, &object)
            }
            ("DELETE", false) => {
                let Some(current) = self.objects.get(&name) else {
                    return status(404, "NotFound");
                };
                let wanted = &body["preconditions"]["resourceVersion"];
                if !wanted.is_null() && *wanted != current["metadata"]["resourceVersion"] {
                    return status(409, "Conflict");
                }
                let gone = self.objects.remove(&name).unwrap_or_default();
                respond(200, &gone)
            }
            _ => status(405, "MethodNotAllowed"),
        }
    }
}
