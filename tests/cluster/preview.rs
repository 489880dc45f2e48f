//! A preview (`spec.preview: true`) on the real control plane: it sends
//! nothing and records the running publish; turning it off cancels that
//! publish and no other; and the tools read it as waiting for the user
//! (`kubectl wait` does not return, kstatus in progress, Argo CD
//! Suspended, `kubectl get` shows what it would cancel). Written in JSON,
//! as a user's manifest is, so the same trials run on a release without
//! the field (where they are red: its API server drops `preview`).

use crate::support::{self, Fixture};
use crate::{Plane, stalled_reason};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A manifest asking for a preview of the cancel on `offer`.
fn previewing(name: &str, offer: &str) -> Value {
    json!({
        "apiVersion": "offercancel.dev/v1alpha1",
        "kind": "OfferCancellation",
        "metadata": {"name": name},
        "spec": {
            "publisherId": "contoso",
            "offerId": offer,
            "pollIntervalSeconds": 5,
            "credentialsSecretRef": {"name": "cpp"},
            "preview": true
        }
    })
}

/// The Ready condition's reason in a status.
fn ready_reason(status: &Value) -> String {
    condition(status, "Ready")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

/// Waits until `name`'s status satisfies `done`; returns it. Panics with
/// the last status after `limit`.
async fn wait_status(
    fx: &Fixture,
    name: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let r = fx.api.get(name).await.expect("read resource");
        let status = serde_json::to_value(&r.status).expect("status");
        if done(&status) {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "{name} after {limit:?}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_previewed(fx: &Fixture, name: &str) -> Value {
    wait_status(fx, name, Duration::from_secs(60), |s| {
        ready_reason(s) == "PreviewReady" || s["phase"] == "Failed" || s["phase"] == "Cancelled"
    })
    .await
}

async fn confirm(fx: &Fixture, name: &str) {
    let off = Patch::Merge(json!({"spec": {"preview": false}}));
    fx.api
        .patch(name, &PatchParams::default(), &off)
        .await
        .expect("turn the preview off");
}

/// A preview sends nothing and records the publish in progress;
/// confirming cancels that publish; a publish started between the preview
/// and its confirmation is not cancelled; an idle offer's preview fails as
/// its cancel would, having sent nothing.
pub async fn a_preview_sends_nothing_and_its_confirmation_cancels_only_that_publish(plane: Plane) {
    let fx = Fixture::new(&plane, "preview").await;
    let operator = fx.operator(&plane, &[]);
    let (kept, moved, idle) = ("async-kept", "sync-moved", "idle-preview");
    for offer in [kept, moved, idle] {
        support::create_raw(&fx.client, &fx.ns, previewing(offer, offer)).await;
    }
    for offer in [kept, moved] {
        let status = wait_previewed(&fx, offer).await;
        assert_eq!(ready_reason(&status), "PreviewReady", "{offer}: {status}");
        assert_eq!(status["phase"], "Pending", "{offer}: {status}");
        assert_eq!(
            status["targetOperation"]["id"],
            format!("{offer}-publish-1"),
            "{offer}: the preview names the publish in progress"
        );
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains("would cancel publish"), "{message}");
    }
    let status = wait_previewed(&fx, idle).await;
    assert_eq!(status["phase"], "Failed", "{status}");
    assert_eq!(stalled_reason(&status), "NothingToCancel");
    // Read once, sent nothing; a few seconds more change neither.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for offer in [kept, moved, idle] {
        assert_eq!(fx.posts(offer).await, 0, "{offer}: a preview sends nothing");
    }
    let first = format!("{moved}-publish-1");
    let second = fx.start_publish(moved).await;
    assert_ne!(second, first);
    for offer in [kept, moved] {
        confirm(&fx, offer).await;
    }
    let ended = |s: &Value| s["phase"] == "Cancelled" || s["phase"] == "Failed";
    let status = wait_status(&fx, kept, Duration::from_secs(60), ended).await;
    assert_eq!(status["phase"], "Cancelled", "{status}");
    assert_eq!(status["targetOperation"]["id"], format!("{kept}-publish-1"));
    assert_eq!(fx.posts(kept).await, 1, "confirmed: one cancel");
    let status = wait_status(&fx, moved, Duration::from_secs(60), ended).await;
    assert_eq!(status["phase"], "Failed", "{status}");
    assert_eq!(stalled_reason(&status), "OperationEnded", "{status}");
    assert_eq!(fx.posts(moved).await, 0, "the previewed publish had ended");
    let running = (second, "running".to_string());
    assert!(
        fx.operations(moved).await.contains(&running),
        "the publish started after the preview still runs"
    );
    operator.sigkill();
    fx.cleanup().await;
}

/// The tools read a preview as waiting for the user: `kubectl wait
/// --for=condition=Ready` does not return, kstatus reads it in progress
/// (Reconciling=True, Stalled=False), Argo CD's health check says
/// Suspended, and `kubectl get` shows what it would cancel (`CANCELS`).
pub async fn kubectl_wait_and_argo_cd_read_a_preview_as_waiting(plane: Plane) {
    let fx = Fixture::new(&plane, "preview-tools").await;
    let operator = fx.operator(&plane, &[]);
    let name = "async-tools";
    support::create_raw(&fx.client, &fx.ns, previewing(name, name)).await;
    let status = wait_previewed(&fx, name).await;
    assert_eq!(ready_reason(&status), "PreviewReady", "{status}");
    let kubeconfig = plane.kubeconfig(false);
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["-n", &fx.ns])
            .args(args)
            .output()
            .expect("kubectl (it is on every machine of this project)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (returned, _) = kubectl(&[
        "wait",
        "--for=condition=Ready",
        &format!("ocancel/{name}"),
        "--timeout=4s",
    ]);
    assert!(!returned, "a preview is never Ready");
    let object = fx.api.get(name).await.expect("read");
    let generation = object.metadata.generation;
    let status = serde_json::to_value(&object.status).expect("status");
    for kind in ["Reconciling", "Stalled", "Ready"] {
        assert_eq!(
            condition(&status, kind)["observedGeneration"].as_i64(),
            generation,
            "{kind}: kstatus reads conditions of the current generation"
        );
    }
    assert_eq!(
        condition(&status, "Reconciling")["status"],
        "True",
        "kstatus: InProgress"
    );
    assert_eq!(
        condition(&status, "Stalled")["status"],
        "False",
        "kstatus: not Failed"
    );
    let health = argo_health(&serde_json::to_value(&object).expect("object"));
    assert_eq!(health, "Suspended");
    let (_, listed) = kubectl(&["get", "offercancel"]);
    let header: Vec<&str> = listed
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "TARGET", "PHASE", "READY", "REASON", "AGE", "CANCELS"
        ],
        "{listed}"
    );
    let row = listed.lines().find(|l| l.starts_with(name)).unwrap_or("");
    assert!(row.contains(&format!("{name}-publish-1")), "{listed}");
    assert!(row.contains("PreviewReady"), "{listed}");
    assert_eq!(fx.posts(name).await, 0);
    operator.sigkill();
    fx.cleanup().await;
}

/// The Argo CD health check (Lua 5.1, as Argo CD's gopher-lua) on an
/// object as the API server serves it.
fn argo_health(object: &Value) -> String {
    use mlua::LuaSerdeExt;
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/argocd/resource_customizations/offercancel.dev/OfferCancellation/health.lua"
    ))
    .expect("health.lua");
    let lua = mlua::Lua::new();
    let options = mlua::serde::SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let obj = lua.to_value_with(object, options).expect("object into Lua");
    lua.globals().set("obj", obj).expect("global obj");
    let out: mlua::Value = lua.load(&script).eval().expect("health.lua runs");
    let out: Value = lua.from_value(out).expect("health status");
    out["status"].as_str().unwrap_or_default().to_string()
}
