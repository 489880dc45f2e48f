//! The controller's reconcile path end to end against the CPP simulator,
//! with the Kubernetes API played by a stateful fake.

mod common;

use common::fake_api::FakeApi;
use common::*;
use kube::runtime::controller::Action;
use marketplace_simulator::scenario::DEFAULT_TOKEN;
use marketplace_simulator::{self as simulator, Scenario};
use offer_cancel_operator::context::{self, Context};
use offer_cancel_operator::crd::{OfferCancellation, Phase};
use offer_cancel_operator::reconcile::{counted_round, reconcile};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

fn fast_backoff() -> context::Config {
    context::Config {
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..context::Config::default()
    }
}

async fn start(scenario: Scenario) -> simulator::Running {
    // Tests here build their own reqwest clients too.
    offer_cancel_operator::http::install_crypto_provider();
    simulator::spawn(scenario, "127.0.0.1:0").await.unwrap()
}

async fn stats(sim: &simulator::Running) -> Value {
    reqwest::get(format!("{}/_sim/stats", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn counter(stats: &Value, offer: &str, name: &str) -> u64 {
    stats["offers"][format!("contoso/{offer}")][name]
        .as_u64()
        .unwrap_or(0)
}

/// Reconciles as the controller's queue would (early wake-ups included)
/// until the resource is final and nothing is requeued.
async fn drive(fake: &FakeApi, ctx: &Arc<Context>, limit: Duration) -> OfferCancellation {
    let run = async {
        loop {
            let obj = fake.object();
            let wait = counted_round(
                Arc::new(obj.clone()),
                ctx.clone(),
                offer_cancel_operator::metrics::StageClock::since(std::time::Instant::now()),
            )
            .await
            .expect("reconcile failed");
            let phase = obj.status.as_ref().and_then(|s| s.phase);
            if wait.is_none() && matches!(phase, Some(Phase::Cancelled | Phase::Failed)) {
                return fake.object();
            }
            // As the scheduler would: after the requeue the reconcile asked
            // for (no sooner: our own writes wake nothing).
            tokio::time::sleep(wait.unwrap_or(Duration::from_millis(200))).await;
        }
    };
    tokio::time::timeout(limit, run)
        .await
        .expect("resource never reached a final phase")
}

async fn drive_until(fake: &FakeApi, ctx: &Arc<Context>, phase: Phase) {
    for _ in 0..100 {
        let obj = fake.object();
        reconcile(Arc::new(obj), ctx.clone()).await.unwrap();
        if fake.object().status.and_then(|s| s.phase) == Some(phase) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never reached {phase:?}");
}

fn phase(obj: &OfferCancellation) -> Option<Phase> {
    obj.status.as_ref().and_then(|s| s.phase)
}

fn setup(
    sim: &simulator::Running,
    offer: &str,
    secret: k8s_openapi::api::core::v1::Secret,
) -> (FakeApi, Arc<Context>) {
    let fake = FakeApi::new(resource(offer, None), Some(secret));
    let ctx = fake.context(&sim.url(), fast_backoff());
    (fake, ctx)
}

fn default_principal() -> k8s_openapi::api::core::v1::Secret {
    use marketplace_simulator::scenario::*;
    principal_secret(DEFAULT_TENANT, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
}

#[tokio::test]
async fn sync_offer_is_cancelled_with_one_post() {
    let sim = start(Scenario::default_scenario()).await;
    let (fake, ctx) = setup(&sim, "sync-offer", default_principal());
    let obj = drive(&fake, &ctx, Duration::from_secs(20)).await;
    assert_eq!(phase(&obj), Some(Phase::Cancelled));
    assert_eq!(obj.status.unwrap().http_status, Some(200));
    assert_eq!(counter(&stats(&sim).await, "sync-offer", "cancelPosts"), 1);
    let world = fake.0.lock().unwrap();
    assert_eq!(world.events, vec!["CancelRequested", "Cancelled"]);
    assert!(world.unexpected.is_empty(), "{:?}", world.unexpected);
}

#[tokio::test]
async fn async_offers_of_both_location_shapes_are_polled_to_cancelled() {
    let sim = start(Scenario::default_scenario()).await;
    for (offer, shape) in [
        ("contoso-offer", "/operations/"),
        ("legacy-offer", "$preview"),
    ] {
        let (fake, ctx) = setup(&sim, offer, token_secret(DEFAULT_TOKEN));
        let obj = drive(&fake, &ctx, Duration::from_secs(30)).await;
        let status = obj.status.unwrap();
        assert_eq!(
            status.phase,
            Some(Phase::Cancelled),
            "{offer}: {:?}",
            status.message
        );
        assert!(
            status
                .operation_location
                .as_deref()
                .unwrap()
                .contains(shape),
            "{offer}"
        );
        assert_eq!(status.operation_status.as_deref(), Some("completed"));
        let s = stats(&sim).await;
        assert_eq!(counter(&s, offer, "cancelPosts"), 1, "{offer}");
        assert_eq!(
            counter(&s, offer, "operationGets"),
            2,
            "{offer}: exactly the polls the scenario needs"
        );
        let world = fake.0.lock().unwrap();
        assert_eq!(
            world.events,
            vec!["CancelRequested", "CancelAccepted", "Cancelled"],
            "{offer}"
        );
        assert_eq!(
            world.secret_gets, 1,
            "{offer}: polls reuse the cached credentials"
        );
    }
}

#[tokio::test]
async fn forbidden_stays_failed_and_is_never_posted() {
    let sim = start(Scenario::default_scenario()).await;
    let mut obj = resource("fabrikam-offer", None);
    obj.spec.publisher_id = Some("fabrikam".into());
    let fake = FakeApi::new(obj, Some(default_principal()));
    let ctx = fake.context(&sim.url(), fast_backoff());
    let obj = drive(&fake, &ctx, Duration::from_secs(20)).await;
    let status = obj.status.clone().unwrap();
    assert_eq!(status.phase, Some(Phase::Failed));
    assert!(
        status.message.unwrap_or_default().contains("HTTP 403"),
        "the operations list was refused"
    );
    // Several requeue periods and a restart later, still no POST.
    for round in 0..3 {
        let ctx = if round == 2 {
            fake.context(&sim.url(), fast_backoff())
        } else {
            ctx.clone()
        };
        let action = reconcile(Arc::new(fake.object()), ctx).await.unwrap();
        assert_eq!(action, Action::await_change());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let s = stats(&sim).await;
    let posts = &s["offers"]["fabrikam/fabrikam-offer"]["cancelPosts"];
    assert_eq!(posts.as_u64().unwrap_or(0), 0, "{s}");
    assert_eq!(
        fake.object().status,
        obj.status,
        "no rewrite of a final status"
    );
}

#[tokio::test]
async fn thirty_percent_throttling_and_outages_still_end_cancelled_with_one_post() {
    let mut scenario = Scenario::default_scenario();
    scenario.seed = 1234;
    scenario.faults.throttle_rate = 0.15;
    scenario.faults.error_rate = 0.15;
    let sim = start(scenario).await;
    let (fake, ctx) = setup(&sim, "contoso-offer", token_secret(DEFAULT_TOKEN));
    let obj = drive(&fake, &ctx, Duration::from_secs(60)).await;
    assert_eq!(phase(&obj), Some(Phase::Cancelled), "{:?}", obj.status);
    let s = stats(&sim).await;
    assert_eq!(counter(&s, "contoso-offer", "cancelPosts"), 1, "{s}");
    assert!(
        s["faultsInjected"].as_u64().unwrap() > 0,
        "the faults must have fired: {s}"
    );
}

#[tokio::test]
async fn token_expiring_mid_poll_is_refreshed() {
    let mut scenario = Scenario::default_scenario();
    scenario.token_lifetime_seconds = 2;
    let sim = start(scenario).await;
    let (fake, ctx) = setup(&sim, "contoso-offer", default_principal());
    let obj = drive(&fake, &ctx, Duration::from_secs(30)).await;
    assert_eq!(phase(&obj), Some(Phase::Cancelled), "{:?}", obj.status);
    let s = stats(&sim).await;
    assert!(s["tokensIssued"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(counter(&s, "contoso-offer", "cancelPosts"), 1);
}

#[tokio::test]
async fn restart_mid_poll_resumes_polling_without_a_second_post() {
    let mut scenario = Scenario::default_scenario();
    scenario.publishers[0].offers[0].polls_until_done = 3;
    let sim = start(scenario).await;
    let (fake, ctx) = setup(&sim, "contoso-offer", default_principal());
    drive_until(&fake, &ctx, Phase::Cancelling).await;
    drop(ctx);
    let restarted = fake.context(&sim.url(), fast_backoff());
    let obj = drive(&fake, &restarted, Duration::from_secs(30)).await;
    assert_eq!(phase(&obj), Some(Phase::Cancelled));
    let s = stats(&sim).await;
    assert_eq!(counter(&s, "contoso-offer", "cancelPosts"), 1);
    assert_eq!(counter(&s, "contoso-offer", "operationGets"), 3);
}

#[tokio::test]
async fn crash_between_post_and_status_write_adopts_the_operation() {
    let sim = start(Scenario::default_scenario()).await;
    // The POST went out and was accepted, but its answer never reached status.
    let sent = reqwest::Client::new()
        .post(format!(
            "{}/api/publishers/contoso/offers/contoso-offer/cancel?api-version=2017-10-31",
            sim.url()
        ))
        .bearer_auth(DEFAULT_TOKEN)
        .json(&serde_json::json!({"metadata": {"notification-emails": ""}}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let status = status_after(
        "contoso-offer",
        vec![offer_cancel_operator::fixtures::intent()],
    );
    let fake = FakeApi::new(
        resource("contoso-offer", Some(status)),
        Some(token_secret(DEFAULT_TOKEN)),
    );
    let ctx = fake.context(&sim.url(), fast_backoff());
    let obj = drive(&fake, &ctx, Duration::from_secs(30)).await;
    assert_eq!(phase(&obj), Some(Phase::Cancelled), "{:?}", obj.status);
    assert_eq!(
        counter(&stats(&sim).await, "contoso-offer", "cancelPosts"),
        1
    );
}

#[tokio::test]
async fn accepted_without_location_is_found_in_the_operations_list() {
    let sim = start(Scenario::default_scenario()).await;
    let (fake, ctx) = setup(&sim, "untracked-offer", token_secret(DEFAULT_TOKEN));
    let obj = drive(&fake, &ctx, Duration::from_secs(40)).await;
    let status = obj.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Cancelled), "{:?}", status.message);
    assert!(status.operation_location.unwrap().contains("/operations/"));
    assert_eq!(
        counter(&stats(&sim).await, "untracked-offer", "cancelPosts"),
        1
    );
}

#[tokio::test]
async fn failing_cancel_operation_fails_with_its_messages() {
    let sim = start(Scenario::default_scenario()).await;
    let (fake, ctx) = setup(&sim, "failing-offer", token_secret(DEFAULT_TOKEN));
    let obj = drive(&fake, &ctx, Duration::from_secs(30)).await;
    let status = obj.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Failed));
    let message = status.message.unwrap();
    assert!(
        message.contains("Cancel could not stop step Deployment"),
        "{message}"
    );
}

#[tokio::test]
async fn secret_appearing_later_unblocks_the_cancel() {
    let sim = start(Scenario::default_scenario()).await;
    let fake = FakeApi::new(resource("sync-offer", None), None);
    let ctx = fake.context(&sim.url(), fast_backoff());
    reconcile(Arc::new(fake.object()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(phase(&fake.object()), Some(Phase::Pending));
    fake.0.lock().unwrap().secret = Some(token_secret(DEFAULT_TOKEN));
    // What the Secret watch does on the Secret's creation: the missing
    // Secret was cached, and the change drops it.
    ctx.credentials.invalidate(NS, SECRET);
    let obj = drive(&fake, &ctx, Duration::from_secs(20)).await;
    assert_eq!(phase(&obj), Some(Phase::Cancelled));
}

#[tokio::test]
async fn retry_annotation_asks_for_exactly_one_new_attempt() {
    let sim = start(Scenario::default_scenario()).await;
    let (fake, ctx) = setup(&sim, "idle-offer", token_secret(DEFAULT_TOKEN));
    let obj = drive(&fake, &ctx, Duration::from_secs(20)).await;
    assert_eq!(phase(&obj), Some(Phase::Failed), "nothing to cancel");
    assert_eq!(
        counter(&stats(&sim).await, "idle-offer", "submissionGets"),
        1
    );
    fake.0
        .lock()
        .unwrap()
        .object
        .as_mut()
        .unwrap()
        .metadata
        .annotations = Some([("offercancel.dev/retry".to_string(), "1".to_string())].into());
    drive(&fake, &ctx, Duration::from_secs(20)).await;
    drive(&fake, &ctx, Duration::from_secs(20)).await;
    // One new look for the one new value, and still nothing to send.
    assert_eq!(
        counter(&stats(&sim).await, "idle-offer", "submissionGets"),
        2
    );
    assert_eq!(counter(&stats(&sim).await, "idle-offer", "cancelPosts"), 0);
}
