//! Audit probes of issue 26's promises (one cancel per target): each
//! asserts what the issue promises, so it fails where the change leaves a
//! hole.

use crate::envtest::wait_phase;
use crate::support::{self, Fixture};
use crate::Plane;
use kube::Api;
use offer_cancel_operator::crd::{OfferCancellation, Phase};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Waits until `name` is Cancelled or Failed; returns its status as JSON.
async fn wait_ended(api: &Api<OfferCancellation>, name: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let r = api.get(name).await.expect("read resource");
        let status = serde_json::to_value(&r.status).expect("status");
        if matches!(
            r.status.as_ref().and_then(|s| s.phase),
            Some(Phase::Cancelled | Phase::Failed)
        ) {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "{name} still open after {limit:?}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Resource a's cancel of a publish is accepted (202, a location); a is
/// deleted while its cancel runs, and that cancel operation then fails
/// (the publish runs on). Resource c, applied afterwards, names the same
/// offer: no claim of a's may keep c from a cancel of its own for longer
/// than one in-flight window, and a failed peer never stops a cancel.
/// c must send a POST of its own (the offer gets two).
pub async fn audit_a_deleted_claimants_failed_cancel_blocks_no_later_cancel(plane: Plane) {
    let fx = Fixture::new(&plane, "audit-deleted").await;
    let operator = fx.operator(&plane, &[]);
    let offer = "failcancel-deleted";
    fx.api
        .create(&Default::default(), &support::resource("a", offer))
        .await
        .expect("create a");
    wait_phase(&fx.api, "a", Phase::Cancelling, Duration::from_secs(30)).await;
    assert_eq!(fx.posts(offer).await, 1, "a's cancel was sent and accepted");
    fx.api
        .delete("a", &Default::default())
        .await
        .expect("delete a");
    // a's cancel operation ends failed 8 s after it began.
    tokio::time::sleep(Duration::from_secs(12)).await;
    fx.api
        .create(&Default::default(), &support::resource("c", offer))
        .await
        .expect("create c");
    let status = wait_ended(&fx.api, "c", Duration::from_secs(90)).await;
    assert_eq!(
        fx.posts(offer).await,
        2,
        "c sent a cancel of its own, not following a's failed one: {status}"
    );
    operator.sigkill();
    fx.cleanup().await;
}
