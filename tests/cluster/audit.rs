//! Audit probes of issue 26's promises (one cancel per target): each
//! asserts what the issue promises, so it fails where the change leaves a
//! hole.

use crate::envtest::wait_phase;
use crate::support::{self, Fixture};
use crate::{Plane, own_plane};
use futures::StreamExt;
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

/// Applies `offers` in `ns` one by one, each once the one before has had
/// its own cancel answered (status httpStatus set); apply → answer, in ms.
/// (POST counts cannot tell whose POST arrived: refused ones count too.)
async fn one_by_one_answered(fx: &Fixture, ns: &str, offers: &[String]) -> Vec<u128> {
    let api: Api<OfferCancellation> = Api::namespaced(fx.client.clone(), ns);
    let mut took = Vec::new();
    for offer in offers {
        api.create(&Default::default(), &support::resource(offer, offer))
            .await
            .expect("create");
        let started = Instant::now();
        loop {
            let r = api.get(offer).await.expect("read");
            let answered = r.status.as_ref().is_some_and(|s| {
                s.http_status.is_some() || s.phase == Some(Phase::Cancelled)
            });
            if answered {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{ns}/{offer}: no answer within 60 s: {:?}",
                r.status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        took.push(started.elapsed().as_millis());
    }
    took
}

/// As tenants_without_credentials_delay_no_first_cancel, but the 300
/// resources of namespace `noisy` hold credentials CPP lets read the
/// offers and refuses to cancel them (403): "resources without working
/// credentials, or refused ones, in another namespace cannot measurably
/// delay a first cancel". The victim's apply → answer with that noise is
/// at most a second worse than without it (the worst of 20 each).
pub async fn audit_refused_tenants_delay_no_first_cancel(_shared: Plane) {
    let plane = own_plane().await;
    let fx = Fixture::cluster_wide(&plane).await;
    support::namespace_with_secret(&fx.client, "victim", "s3cret").await;
    support::namespace_with_secret(&fx.client, "noisy", "s3cret").await;
    support::add_reader_secret(&fx.client, "noisy").await;
    let operator = fx.operator(&plane, &[]);
    let quiet: Vec<String> = (0..20).map(|i| format!("sync-quiet-{i}")).collect();
    let baseline = one_by_one_answered(&fx, "victim", &quiet).await;
    let offers: Vec<String> = (0..20).map(|i| format!("sync-refused-{i}")).collect();
    let noisy: Api<OfferCancellation> = Api::namespaced(fx.client.clone(), "noisy");
    let noise = futures::stream::iter(0..300)
        .map(|i| {
            let r = support::resource_using(&format!("noise-{i}"), &offers[i % 20], "reader");
            let api = noisy.clone();
            async move { api.create(&Default::default(), &r).await.expect("create") }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>();
    let victim = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        one_by_one_answered(&fx, "victim", &offers).await
    };
    let (_, with_noise) = futures::join!(noise, victim);
    let worst = |v: &[u128]| v.iter().copied().max().unwrap_or(0);
    eprintln!("apply → answer, ms: baseline {baseline:?}; with 300 refused resources {with_noise:?}");
    assert!(
        worst(&with_noise) <= worst(&baseline) + 1_000,
        "apply → answer with refused noise up to {} ms, without it {} ms: {with_noise:?}",
        worst(&with_noise),
        worst(&baseline)
    );
    operator.sigkill();
    fx.cleanup().await;
}

/// Status GETs of configure job `target`, in arrival order (Unix ms).
fn status_reads(requests: &[(i64, String, String)], target: &str) -> Vec<i64> {
    let name = support::log_name(target);
    requests
        .iter()
        .filter(|(_, e, t)| e == "job_status" && *t == name)
        .map(|(at, _, _)| *at)
        .collect()
}

/// A resource cancels a configure job; a second resource, with another
/// principal's credentials (as a resource in another namespace has),
/// follows the same job. "At most one status request per job per minute
/// across everything that follows it": the job's status GETs, over the
/// whole run, at least 55 s apart.
pub async fn audit_followers_with_other_credentials_poll_a_job_once_a_minute(plane: Plane) {
    let fx = Fixture::new(&plane, "audit-jobcreds").await;
    support::add_reader_secret(&fx.client, &fx.ns).await;
    let operator = fx.operator(&plane, &[]);
    let job = "jobtwice-creds";
    fx.api
        .create(&Default::default(), &support::resource("a", job))
        .await
        .expect("create a");
    let started = Instant::now();
    while fx.posts(job).await == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "a sent no POST");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fx.api
        .create(
            &Default::default(),
            &support::resource_using("b", job, "reader"),
        )
        .await
        .expect("create b");
    loop {
        let reads = status_reads(&fx.requests().await, job);
        let gaps: Vec<i64> = reads.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|g| *g >= 55_000),
            "{} status GETs of the job within {:?}, ms apart: {gaps:?}",
            reads.len(),
            started.elapsed()
        );
        let open = fx
            .phases()
            .await
            .values()
            .filter(|p| !matches!(p, Some(Phase::Cancelled | Phase::Failed)))
            .count();
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "{open} still open"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(fx.posts(job).await, 1);
    operator.sigkill();
    fx.cleanup().await;
}
