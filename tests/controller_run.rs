//! The whole controller (watches, queue, reconcile, status writes) against
//! the stateful fake API server and the simulator; every call it makes must
//! be one tests/common/rbac.rs lists.

mod common;

use common::fake_api::FakeApi;
use common::*;
use marketplace_simulator::scenario::DEFAULT_TOKEN;
use marketplace_simulator::{self as simulator, Scenario};
use offer_cancel_operator::context;
use offer_cancel_operator::control_loop::{self, in_flight};
use offer_cancel_operator::crd::Phase;
use offer_cancel_operator::health::Probes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test]
async fn controller_watches_reconciles_to_cancelled_and_becomes_ready() {
    let sim = simulator::spawn(Scenario::default_scenario(), "127.0.0.1:0")
        .await
        .unwrap();
    let fake = FakeApi::new(
        resource("sync-offer", None),
        Some(token_secret(DEFAULT_TOKEN)),
    );
    let ctx = fake.context(&sim.url(), context::Config::default());
    let probes = Arc::new(Probes::new(ctx.metrics.clone()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        let _ = stop_rx.await;
    };
    let running = tokio::spawn(control_loop::run(ctx.clone(), probes.clone(), stop));
    let done = async {
        loop {
            if fake.object().status.and_then(|s| s.phase) == Some(Phase::Cancelled) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), done)
        .await
        .is_err()
    {
        let w = fake.0.lock().unwrap();
        panic!(
            "never Cancelled: unexpected {:?}, watches {}, status {:?}",
            w.unexpected,
            w.watches,
            w.object.as_ref().unwrap().status
        );
    }
    let ready = async {
        while !probes.ready.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), ready)
        .await
        .expect("ready after the caches synced");
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("controller did not shut down")
        .unwrap();
    let world = fake.0.lock().unwrap();
    assert!(world.unexpected.is_empty(), "{:?}", world.unexpected);
    assert!(world.watches >= 2, "resources and Secrets are watched");
    assert_eq!(world.events, vec!["CancelRequested", "Cancelled"]);
    assert_eq!(in_flight(&[Arc::new(fake_obj(&world))]), 0);
}

fn fake_obj(world: &common::fake_api::World) -> offer_cancel_operator::crd::OfferCancellation {
    world.object.clone().unwrap()
}

#[test]
fn in_flight_counts_pending_and_cancelling_only() {
    let pending = resource(
        "a",
        Some(status_after(
            "a",
            vec![offer_cancel_operator::fixtures::intent()],
        )),
    );
    let fresh = resource("b", None);
    let done = resource(
        "c",
        Some(status_after(
            "c",
            vec![
                offer_cancel_operator::fixtures::intent(),
                offer_cancel_operator::decide::Outcome::Answered(
                    offer_cancel_operator::operation::CancelOutcome::Cancelled,
                ),
            ],
        )),
    );
    assert_eq!(
        in_flight(&[Arc::new(pending), Arc::new(fresh), Arc::new(done)]),
        2
    );
}
