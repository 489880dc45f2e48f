//! Re-arming and releases on the real control plane: a kept Failed
//! resource is tried again only when someone asks, and an upgrade or a
//! rollback with cancels in flight (slow answers, lost answers) sends one
//! POST per target and never cancels a publish started since. The
//! previous release is built from git by `tests/build-previous-release.sh`
//! (run by `tests/run-all.sh`), which names it in
//! `OCO_PREVIOUS_RELEASE`.

use crate::envtest::{ControlPlane, install_crd, install_envtest_crd, without_transition_rules};
use crate::support::{Fixture, Operator};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A kept `Failed/NothingToCancel` resource while a new publish runs: a
/// label on its Secret and an unrelated spec edit send nothing; a new
/// value of the retry annotation sends one POST, which cancels it.
pub async fn a_kept_failure_is_rearmed_only_by_the_retry_annotation(plane: &ControlPlane) {
    let fx = Fixture::new(plane, "rearm").await;
    let offer = "idle-rearm";
    let operator = fx.operator(plane, &[]);
    fx.create_all(&[offer.to_string()], 1).await;
    fx.wait_all_ended(Duration::from_secs(60)).await;
    let status = &fx.statuses().await[offer];
    assert_eq!(reason(status), "NothingToCancel", "{status}");

    let publish = fx.start_publish(offer).await;
    let merge = |v: Value| Patch::Merge(v);
    let secrets: Api<Secret> = Api::namespaced(fx.client.clone(), &fx.ns);
    let labelled = json!({"metadata": {"labels": {"team": "publishing"}}});
    secrets
        .patch("cpp", &PatchParams::default(), &merge(labelled))
        .await
        .expect("label the Secret");
    let emails = json!({"spec": {"notificationEmails": ["jondoe@contoso.com"]}});
    fx.api
        .patch(offer, &PatchParams::default(), &merge(emails))
        .await
        .expect("edit the spec");
    wait_observed_generation(&fx, offer, 2).await;
    // The Secret's watch event, and any requeue, have had their turn.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fx.posts(offer).await, 0, "a label or an edit sent a cancel");
    let status = &fx.statuses().await[offer];
    assert_eq!(reason(status), "NothingToCancel", "{status}");
    let running = (publish.clone(), "running".to_string());
    assert!(fx.operations(offer).await.contains(&running));

    let retry = json!({"metadata": {"annotations": {"offercancel.dev/retry": "1"}}});
    fx.api
        .patch(offer, &PatchParams::default(), &merge(retry))
        .await
        .expect("annotate");
    crate::envtest::wait_phase(
        &fx.api,
        offer,
        offer_cancel_operator::crd::Phase::Cancelled,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(fx.posts(offer).await, 1, "the annotation asks for one");
    let cancelled = (publish, "canceled".to_string());
    assert!(fx.operations(offer).await.contains(&cancelled));
    operator.sigkill();
    fx.cleanup().await;
}

/// Which release runs first, and which takes over its cancels in flight.
#[derive(Clone, Copy, Debug)]
pub enum Change {
    Upgrade,
    Rollback,
}

/// The previous release's binary, as `tests/run-all.sh` built it.
fn previous_release() -> PathBuf {
    let path = std::env::var_os("OCO_PREVIOUS_RELEASE").map(PathBuf::from);
    match path {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "OCO_PREVIOUS_RELEASE names no binary: run the suite through tests/run-all.sh, \
             or set it to the output of tests/build-previous-release.sh"
        ),
    }
}

fn this_release() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_offer-cancel-operator"))
}

/// Installs the CRD `binary` prints (as `kubectl apply` of its release's
/// `crds/` would), less the rules this v1.24 server cannot hold.
async fn install_crd_of(fx: &Fixture, binary: &Path) {
    if binary == this_release() {
        return install_envtest_crd(&fx.client).await.expect("this CRD");
    }
    let out = std::process::Command::new(binary)
        .arg("crd")
        .output()
        .expect("the previous release prints its CRD");
    let mut crd: Value = serde_yaml::from_slice(&out.stdout).expect("its CRD");
    without_transition_rules(&mut crd);
    install_crd(&fx.client, crd, "envtest")
        .await
        .expect("the previous CRD");
}

/// How long a slow offer's cancel takes to answer: longer than the kill,
/// the CRD and the other release's start together.
const SLOW_ANSWER_MS: u64 = 12_000;

fn start(fx: &Fixture, plane: &ControlPlane, binary: &Path) -> Operator {
    // Each release gives a POST longer than a slow answer takes.
    fx.operator_of(
        binary,
        plane.kubeconfig(false),
        &["--request-timeout-seconds", "20"],
        &[],
    )
}

/// One release records its intents and sends its POSTs (answers slow on
/// some offers, lost on others) and is SIGKILLed while they are in
/// flight, a second resource on each slow offer waiting on the first's
/// POST; a new publish starts where an answer was lost; the other release
/// takes over on the same resources, its CRD applied over the first's.
/// Then the first runs again (rolling back or forward once more).
/// Counted: one POST per target, the new publishes run, every resource
/// ends as CPP shows.
pub async fn cancels_in_flight_survive(plane: &ControlPlane, change: Change) {
    let previous = previous_release();
    let (first, second) = match change {
        Change::Upgrade => (previous, this_release()),
        Change::Rollback => (this_release(), previous),
    };
    let fx = Fixture::new(plane, &format!("{change:?}").to_lowercase()).await;
    install_crd_of(&fx, &first).await;
    let slow: Vec<String> = (0..4)
        .map(|i| format!("sync-slow-{i}"))
        .chain((0..2).map(|i| format!("async-slow-{i}")))
        .collect();
    let lost: Vec<String> = (0..3).map(|i| format!("sync-lost-{i}")).collect();
    for offer in &slow {
        let faults = json!({"latencyMs": SLOW_ANSWER_MS, "cancelOnly": true, "offer": format!("contoso/{offer}")});
        fx.set_faults(faults).await;
    }
    for offer in &lost {
        let faults =
            json!({"dropAfterRate": 1.0, "cancelOnly": true, "offer": format!("contoso/{offer}")});
        fx.set_faults(faults).await;
    }
    let all: Vec<String> = slow.iter().chain(&lost).cloned().collect();
    let operator = start(&fx, plane, &first);
    fx.create_all(&all, 8).await;
    wait_every_post_sent(&fx, &all).await;
    // A second resource on each slow offer, its first one's POST in flight.
    let twins: Vec<(String, String)> = slow
        .iter()
        .map(|o| (format!("twin-{o}"), o.clone()))
        .collect();
    fx.create_pairs(&twins, 8).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    operator.sigkill();

    for offer in slow.iter().chain(&lost) {
        fx.set_faults(json!({"offer": format!("contoso/{offer}")}))
            .await;
    }
    let mut new_publishes = Vec::new();
    for offer in &lost {
        new_publishes.push((offer.clone(), fx.start_publish(offer).await));
    }
    install_crd_of(&fx, &second).await;
    let operator = start(&fx, plane, &second);
    let phases = fx.wait_all_ended(Duration::from_secs(120)).await;
    operator.sigkill();
    let statuses = fx.statuses().await;
    let twin_names = twins.iter().map(|(name, _)| name);
    for name in all.iter().chain(twin_names) {
        let status = &statuses[name];
        assert_eq!(status["phase"], "Cancelled", "{name}: {status}");
    }

    // And back once more: the first release reads what the second wrote.
    install_crd_of(&fx, &first).await;
    let operator = start(&fx, plane, &first);
    tokio::time::sleep(Duration::from_secs(5)).await;
    operator.sigkill();
    assert_eq!(fx.phases().await, phases, "nothing moved when taken back");
    assert_eq!(
        fx.duplicate_posts(&all).await,
        vec![],
        "one POST per target"
    );
    for offer in &all {
        assert_eq!(fx.posts(offer).await, 1, "{offer}");
    }
    for (offer, publish) in new_publishes {
        let running = (publish, "running".to_string());
        assert!(
            fx.operations(&offer).await.contains(&running),
            "{offer}: the publish started since was cancelled"
        );
    }
    fx.cleanup().await;
}

/// Until a cancel POST for every offer has reached the simulator (by its
/// request log, which counts arrivals: its stats count a slow POST only
/// once answered). Then the slow ones are in flight, the lost ones
/// answered into the void.
async fn wait_every_post_sent(fx: &Fixture, offers: &[String]) {
    let started = Instant::now();
    loop {
        let requests = fx.requests().await;
        let missing: Vec<&String> = offers
            .iter()
            .filter(|o| {
                let target = format!("contoso/{o}");
                !requests
                    .iter()
                    .any(|(_, endpoint, t)| endpoint == "cancel" && *t == target)
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no POST yet for {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_observed_generation(fx: &Fixture, name: &str, generation: i64) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if fx.statuses().await[name]["observedGeneration"] == generation {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{name} never observed generation {generation}");
}

fn reason(status: &Value) -> String {
    crate::stalled_reason(status)
}

/// What a build before the guards (up to 1d17ef8) wrote with its intent,
/// `seconds_ago`: no `postDeadline`, no `targetOperation`, no `startedAt`.
fn intent_before_the_guards(seconds_ago: i64) -> Value {
    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds_ago);
    let at = jiff::Timestamp::from_second(at.as_second()).expect("a time");
    let condition = |kind: &str, on: &str| {
        json!({"type": kind, "status": on, "reason": "CancelRequested",
               "message": "sending the cancel request to CPP", "observedGeneration": 1,
               "lastTransitionTime": at.to_string()})
    };
    json!({"status": {
        "phase": "Pending",
        "conditions": [condition("Ready", "False"), condition("Reconciling", "True"),
                       condition("Stalled", "False")],
        "observedGeneration": 1,
        "message": "sending the cancel request to CPP",
        "requestedAt": at.to_string(),
        "attempts": 1
    }})
}

/// Builds before the guards recorded intents this release must read
/// conservatively. One's POST is still in flight (its answer slow) when
/// this release starts, almost ten minutes after the intent: no second
/// POST. Another's POST took effect but its answer was lost, and a new
/// publish started since: it is never taken for the intent's target.
pub async fn intents_from_before_the_guards(plane: &ControlPlane) {
    let fx = Fixture::new(plane, "preguards").await;
    let (in_flight, lost) = ("idle-pre-flight", "idle-pre-lost");
    let slow =
        json!({"latencyMs": 6000, "cancelOnly": true, "offer": format!("contoso/{in_flight}")});
    fx.set_faults(slow).await;
    // The publishes the old intents were for: running twenty minutes.
    for offer in [in_flight, lost] {
        fx.start_publish_created(offer, 1200).await;
        fx.create_all(&[offer.to_string()], 1).await;
    }
    let write = |name: &'static str, status: Value| {
        let api = fx.api.clone();
        async move {
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
                .await
                .expect("write the old status")
        }
    };
    write(in_flight, intent_before_the_guards(595)).await;
    write(lost, intent_before_the_guards(900)).await;
    // The old build's POSTs: one answered into the void, one in flight.
    let token = fx.cpp_token().await;
    let post = |offer: &'static str| {
        let (url, token) = (fx.sim.url(), token.clone());
        async move {
            reqwest::Client::new()
                .post(format!(
                    "{url}/api/publishers/contoso/offers/{offer}/cancel?api-version=2017-10-31"
                ))
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status())
        }
    };
    assert_eq!(post(lost).await.ok(), Some(reqwest::StatusCode::OK));
    let new_publish = fx.start_publish(lost).await;
    let slow_post = tokio::spawn(post(in_flight));
    wait_every_post_sent(&fx, &[in_flight.to_string(), lost.to_string()]).await;

    let operator = fx.operator(plane, &[]);
    fx.wait_all_ended(Duration::from_secs(90)).await;
    operator.sigkill();
    let answered = slow_post.await.expect("the slow POST").ok();
    assert_eq!(
        answered,
        Some(reqwest::StatusCode::OK),
        "the old POST's answer"
    );
    let statuses = fx.statuses().await;
    assert_eq!(fx.posts(in_flight).await, 1, "{}", statuses[in_flight]);
    assert_eq!(fx.posts(lost).await, 1, "{}", statuses[lost]);
    assert_eq!(
        statuses[in_flight]["phase"], "Cancelled",
        "{}",
        statuses[in_flight]
    );
    assert_eq!(statuses[lost]["phase"], "Cancelled", "{}", statuses[lost]);
    let running = (new_publish, "running".to_string());
    assert!(
        fx.operations(lost).await.contains(&running),
        "the publish started since was cancelled: {}",
        statuses[lost]
    );
    fx.cleanup().await;
}
