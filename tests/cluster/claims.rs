//! One cancel per target across resources, as the API server arbitrates
//! it: what the other resources naming the same offer or job did must
//! neither block a cancel (an annotation on a finished one, a refused one,
//! tenants without credentials), nor stand in for one it did not make (a
//! cancel of the previous publish), nor make a resource report a cancel
//! CPP's record does not show (a publish that went live before a resend);
//! two active writers still send one POST per target, and resources
//! following one configure job read its status at most once a minute.

use crate::envtest::wait_phase;
use crate::support::{self, Fixture};
use crate::{Plane, assert_all_cancelled, own_plane, stalled_reason};
use futures::StreamExt;
use kube::Api;
use kube::api::{Patch, PatchParams};
use offer_cancel_operator::crd::{OfferCancellation, Phase};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Waits until `name` is Cancelled or Failed; returns its status as JSON.
/// Panics after `limit` with the status it has then.
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

/// A condition of a status as JSON: (status, reason).
fn condition(status: &Value, kind: &str) -> (String, String) {
    let found = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let text = |k: &str| {
        found
            .and_then(|c| c[k].as_str())
            .unwrap_or_default()
            .to_string()
    };
    (text("status"), text("reason"))
}

/// Polls the simulator's request log until a cancel POST to `target`
/// arrived (dropped ones too); panics after `limit`.
async fn wait_cancel_arrived(fx: &Fixture, target: &str, limit: Duration) {
    let started = Instant::now();
    while support::first_cancel_at(&fx.requests().await, target).is_none() {
        assert!(
            started.elapsed() < limit,
            "no cancel POST to {target} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resource r1 ended Cancelled; a pipeline then annotates and labels it (a
/// routine edit of a finished resource). A new publish starts on the offer
/// and r2 names it: r2 is not held back by r1, sends its own POST and ends
/// Cancelled, and the new publish is `canceled`.
pub async fn an_annotation_on_a_finished_resource_blocks_no_later_cancel(plane: Plane) {
    let fx = Fixture::new(&plane, "annotated").await;
    let operator = fx.operator(&plane, &[]);
    let offer = "sync-annotated";
    let create = |name: &str| {
        let (api, r) = (fx.api.clone(), support::resource(name, offer));
        async move { api.create(&Default::default(), &r).await.expect("create") }
    };
    create("r1").await;
    wait_phase(&fx.api, "r1", Phase::Cancelled, Duration::from_secs(30)).await;
    // At once: the edit lands before the operator's own last write to r1
    // has been seen in its cache by anything that would forget it.
    let edit = serde_json::json!({"metadata": {
        "annotations": {"example.com/pipeline": "done"},
        "labels": {"example.com/stage": "done"},
    }});
    fx.api
        .patch("r1", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .expect("annotate r1");
    let new_publish = fx.start_publish(offer).await;
    create("r2").await;
    let status = wait_ended(&fx.api, "r2", Duration::from_secs(15)).await;
    assert_eq!(status["phase"], "Cancelled", "r2: {status}");
    assert_eq!(fx.posts(offer).await, 2, "r2 sent its own POST: {status}");
    let canceled = (new_publish, "canceled".to_string());
    assert!(
        fx.operations(offer).await.contains(&canceled),
        "the new publish was cancelled: {:?}",
        fx.operations(offer).await
    );
    operator.sigkill();
    fx.cleanup().await;
}

/// A resource whose Secret names a principal that may read the offer (or
/// the job) but whose cancel is refused (403) ends Failed/Forbidden; a
/// resource with a principal that may cancel, applied after it on the same
/// target, is not stopped by that: it sends its own POST, accepted, and
/// ends Cancelled. Each target got exactly two POSTs.
pub async fn a_refused_peer_never_stops_a_cancel(plane: Plane) {
    let fx = Fixture::new(&plane, "refused").await;
    support::add_reader_secret(&fx.client, &fx.ns).await;
    let operator = fx.operator(&plane, &[]);
    let targets = ["sync-refused", "jobnow-refused"];
    for target in targets {
        let r = support::resource_using(&format!("a-{target}"), target, "reader");
        fx.api
            .create(&Default::default(), &r)
            .await
            .expect("create");
    }
    for target in targets {
        let name = format!("a-{target}");
        let status = wait_ended(&fx.api, &name, Duration::from_secs(30)).await;
        assert_eq!(status["phase"], "Failed", "{name}: {status}");
        assert_eq!(stalled_reason(&status), "Forbidden", "{name}: {status}");
        assert_eq!(fx.posts(target).await, 1, "{name}: its POST was refused");
    }
    for target in targets {
        let r = support::resource(&format!("b-{target}"), target);
        fx.api
            .create(&Default::default(), &r)
            .await
            .expect("create");
    }
    let mut seen = Vec::new();
    for target in targets {
        let name = format!("b-{target}");
        // A job's status is read at most once a minute, A's read included.
        let status = wait_ended(&fx.api, &name, Duration::from_secs(90)).await;
        let (_, reason) = condition(&status, "Ready");
        let phase = status["phase"].as_str().unwrap_or_default().to_string();
        seen.push((name, phase, reason, status["httpStatus"].clone()));
    }
    let want: Vec<_> = targets
        .iter()
        .map(|t| {
            let (phase, reason) = ("Cancelled".to_string(), "Cancelled".to_string());
            (format!("b-{t}"), phase, reason, serde_json::json!(200))
        })
        .collect();
    assert_eq!(seen, want, "(resource, phase, reason, httpStatus)");
    for target in targets {
        assert_eq!(
            fx.posts(target).await,
            2,
            "{target}: one refused POST, one accepted"
        );
    }
    let stopped = ("sync-refused-publish-1".to_string(), "canceled".to_string());
    assert!(fx.operations("sync-refused").await.contains(&stopped));
    operator.sigkill();
    fx.cleanup().await;
}

/// p (no operationId) cancelled the publish in progress; a new publish
/// starts and q (no operationId) is applied seconds later: q's cancel is
/// its own (a second POST), not p's, and the new publish is `canceled`.
pub async fn a_cancel_of_the_previous_publish_is_never_shared(plane: Plane) {
    let fx = Fixture::new(&plane, "previous").await;
    let operator = fx.operator(&plane, &[]);
    let offer = "sync-previous";
    let p = support::resource("p", offer);
    fx.api
        .create(&Default::default(), &p)
        .await
        .expect("create p");
    let status = wait_ended(&fx.api, "p", Duration::from_secs(30)).await;
    assert_eq!(status["phase"], "Cancelled", "p: {status}");
    let new_publish = fx.start_publish(offer).await;
    let q = support::resource("q", offer);
    fx.api
        .create(&Default::default(), &q)
        .await
        .expect("create q");
    let status = wait_ended(&fx.api, "q", Duration::from_secs(20)).await;
    assert_eq!(
        fx.posts(offer).await,
        2,
        "q sent a POST of its own: {status}"
    );
    assert_eq!(status["phase"], "Cancelled", "q: {status}");
    let ops = fx.operations(offer).await;
    assert!(
        ops.contains(&(new_publish, "canceled".to_string())),
        "the new publish was cancelled: {ops:?}"
    );
    operator.sigkill();
    fx.cleanup().await;
}

/// The first cancel POST is dropped before CPP acts on it (the publish runs
/// on); the operator settles it from the list after the in-flight window
/// and resends, but the publish went live (`succeeded`) as the resend
/// arrives, which CPP answers 404. That is no cancel: Failed with reason
/// OperationEnded, naming the publish, Ready not True.
pub async fn a_publish_that_went_live_before_a_resend_is_not_cancelled(plane: Plane) {
    let fx = Fixture::new(&plane, "live").await;
    let offer = "late-live";
    let drop_cancels = |rate: f64| serde_json::json!({"dropRate": rate, "cancelOnly": true, "offer": format!("contoso/{offer}")});
    fx.set_faults(drop_cancels(1.0)).await;
    let operator = fx.operator(&plane, &[]);
    fx.create_all(&[offer.to_string()], 1).await;
    wait_cancel_arrived(&fx, offer, Duration::from_secs(30)).await;
    fx.set_faults(drop_cancels(0.0)).await;
    let status = wait_ended(&fx.api, offer, Duration::from_secs(60)).await;
    let publish = format!("{offer}-publish-1");
    let arrived = fx
        .requests()
        .await
        .iter()
        .filter(|(_, e, o)| e == "cancel" && *o == support::log_name(offer))
        .count();
    assert_eq!(
        (arrived, fx.posts(offer).await),
        (2, 1),
        "a dropped POST, then one resend: {status}"
    );
    assert_eq!(status["phase"], "Failed", "{status}");
    assert_eq!(stalled_reason(&status), "OperationEnded", "{status}");
    let (ready, reason) = condition(&status, "Ready");
    assert_ne!(ready, "True", "{status}");
    assert_eq!(reason, "OperationEnded", "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains(&publish), "names {publish}: {status}");
    assert!(
        fx.operations(offer)
            .await
            .contains(&(publish, "succeeded".to_string())),
        "the publish went live"
    );
    operator.sigkill();
    fx.cleanup().await;
}

/// Two controllers without leader election, both active, on targets each
/// named by several resources (8 offers by 2, 4 offers by 5, 2 configure
/// jobs by 2; a third of the offers answered slowly), all created before
/// either starts; 30% CPP faults; one of them SIGKILLed and restarted 3
/// times. One POST per target, every
/// resource Cancelled.
pub async fn two_active_writers_with_shared_offers_one_post_per_target(plane: Plane) {
    let fx = Fixture::new(&plane, "shared-writers").await;
    // A third answered in 6 s (every call): both writers look at the
    // offer before either's POST lands.
    let kinds = [
        "sync",
        "slow-sync",
        "async",
        "slow-async",
        "legacy",
        "slow-sync",
    ];
    let mut named: Vec<(String, usize)> = (0..8)
        .map(|i| (format!("{}-pair-{i}", kinds[i % 6]), 2))
        .collect();
    named.extend((0..4).map(|i| (format!("{}-five-{i}", kinds[(i + 1) % 6]), 5)));
    named.extend((0..2).map(|i| (format!("jobnow-pair-{i}"), 2)));
    let resources: Vec<(String, String)> = named
        .iter()
        .flat_map(|(target, n)| (0..*n).map(move |k| (format!("{target}-r{k}"), target.clone())))
        .collect();
    let targets: Vec<String> = named.into_iter().map(|(t, _)| t).collect();
    fx.create_pairs(&resources, 16).await;
    fx.set_faults(serde_json::json!({
        "throttleRate": 0.1, "errorRate": 0.1, "dropAfterRate": 0.1
    }))
    .await;
    let flags = crate::SLOW_AND_FAULTY;
    let started = Instant::now();
    let a = fx.operator(&plane, &flags);
    // The first b lives until its slow offers' POSTs are in flight (a
    // list read of 6 s, then the POST), racing a the whole way; the next
    // ones a second or three each.
    for alive in [7_000..9_000, 1_000..3_000, 1_000..3_000] {
        let b = fx.operator(&plane, &flags);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(alive))).await;
        b.sigkill();
    }
    let b = fx.operator(&plane, &flags);
    fx.wait_all_ended(Duration::from_secs(240)).await;
    eprintln!(
        "two active writers on shared targets: all ended within {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let phases = fx.phases().await;
    let not_cancelled: Vec<_> = fx
        .statuses()
        .await
        .into_iter()
        .filter(|(_, s)| s["phase"] != "Cancelled")
        .map(|(name, s)| (name, s["phase"].clone(), condition(&s, "Ready").1))
        .collect();
    assert_eq!(
        fx.duplicate_posts(&targets).await,
        vec![],
        "targets without exactly one POST; resources not Cancelled: {not_cancelled:?}"
    );
    assert_all_cancelled(&phases);
    let stats = fx.stats().await;
    assert_eq!(stats["wrongAudience"], 0, "a token reached the other API");
    a.sigkill();
    b.sigkill();
    fx.cleanup().await;
}

/// Applies `offers` in namespace `ns` one by one, each once the one before
/// reached CPP; returns apply → first cancel POST per offer, in ms (the
/// apply taken when the create returned; the POST's arrival from the
/// simulator's log, on the same clock).
async fn one_by_one(fx: &Fixture, ns: &str, offers: &[String]) -> Vec<i64> {
    let api: Api<OfferCancellation> = Api::namespaced(fx.client.clone(), ns);
    let mut applied = Vec::new();
    for offer in offers {
        api.create(&Default::default(), &support::resource(offer, offer))
            .await
            .expect("create");
        applied.push(jiff::Timestamp::now().as_millisecond());
        let started = Instant::now();
        while fx.posts(offer).await == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{ns}/{offer}: no POST within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let requests = fx.requests().await;
    offers
        .iter()
        .zip(applied)
        .map(|(offer, at)| {
            let posted = support::first_cancel_at(&requests, offer).expect("its POST");
            posted - at
        })
        .collect()
}

/// Namespace `noisy`'s Secret holds another publisher's token (CPP refuses
/// it): 300 resources there name the offers namespace `victim` cancels,
/// created while the victim applies its 20 first cancels one by one. Apply
/// → POST of the victim's resources with that noise is at most a second
/// worse than a baseline of 20 without it (the worst of each); every
/// victim resource Cancelled, one POST per offer.
pub async fn tenants_without_credentials_delay_no_first_cancel(_shared: Plane) {
    let plane = own_plane().await;
    let fx = Fixture::cluster_wide(&plane).await;
    support::namespace_with_secret(&fx.client, "victim", "s3cret").await;
    support::namespace_with_foreign_token(&fx.client, "noisy").await;
    let operator = fx.operator(&plane, &[]);
    let quiet: Vec<String> = (0..20).map(|i| format!("sync-victim-base-{i}")).collect();
    let baseline = one_by_one(&fx, "victim", &quiet).await;
    let noisy_offers: Vec<String> = (0..20).map(|i| format!("sync-victim-{i}")).collect();
    let noisy: Api<OfferCancellation> = Api::namespaced(fx.client.clone(), "noisy");
    let noise = futures::stream::iter(0..300)
        .map(|i| {
            let r = support::resource(&format!("noise-{i}"), &noisy_offers[i % 20]);
            let api = noisy.clone();
            async move { api.create(&Default::default(), &r).await.expect("create") }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>();
    let victim = async {
        // The noise is under way before the victim's first apply.
        tokio::time::sleep(Duration::from_millis(500)).await;
        one_by_one(&fx, "victim", &noisy_offers).await
    };
    let (_, with_noise) = futures::join!(noise, victim);
    let worst = |v: &[i64]| v.iter().copied().max().unwrap_or(0);
    eprintln!("apply → POST, ms: baseline {baseline:?}; with 300 noisy resources {with_noise:?}");
    assert!(
        worst(&with_noise) <= worst(&baseline) + 1_000,
        "apply → POST with the noise up to {} ms, without it {} ms: {with_noise:?}",
        worst(&with_noise),
        worst(&baseline)
    );
    fx.wait_all_ended(Duration::from_secs(120)).await;
    let phases = fx.phases().await;
    let victims: std::collections::BTreeMap<_, _> = phases
        .into_iter()
        .filter(|(k, _)| k.starts_with("victim/"))
        .collect();
    assert_eq!(victims.len(), 40);
    assert_all_cancelled(&victims);
    let all = [quiet, noisy_offers].concat();
    assert_eq!(fx.duplicate_posts(&all).await, vec![]);
    operator.sigkill();
    fx.cleanup().await;
}

/// 300 namespaces (each its own Secret, so its own token), one resource
/// each on an offer of its own, sync and async in turn, under the default
/// rate limit of 10 requests a second: every resource Cancelled, one POST
/// each.
pub async fn three_hundred_namespaces_one_cancel_each_under_the_rate_limit(_shared: Plane) {
    let plane = own_plane().await;
    let fx = Fixture::cluster_wide(&plane).await;
    let namespaces: Vec<String> = (0..300).map(|i| format!("tenant-{i}")).collect();
    futures::stream::iter(&namespaces)
        .map(|ns| support::namespace_with_secret(&fx.client, ns, "s3cret"))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let operator = fx.operator(&plane, &["--rate-limit-rps", "10"]);
    let started = Instant::now();
    let offers: Vec<String> = (0..300)
        .map(|i| format!("{}-tenant-{i}", ["sync", "async"][i % 2]))
        .collect();
    futures::stream::iter(namespaces.iter().zip(&offers))
        .map(|(ns, offer)| {
            let api: Api<OfferCancellation> = Api::namespaced(fx.client.clone(), ns);
            let r = support::resource(offer, offer);
            async move { api.create(&Default::default(), &r).await.expect("create") }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let phases = fx.wait_all_ended(Duration::from_secs(300)).await;
    eprintln!(
        "300 namespaces under 10 requests/s: all ended within {:?}",
        started.elapsed()
    );
    assert_eq!(phases.len(), 300);
    assert_all_cancelled(&phases);
    assert_eq!(fx.duplicate_posts(&offers).await, vec![]);
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

/// Twenty resources in one namespace name one configure job, whose cancel
/// is accepted while it runs and which reads `cancelled` at the second
/// status poll after it: one POST, all twenty Cancelled, and the job's
/// status GETs, over the whole run, at least 55 s apart (the API asks for
/// at most one a minute). Checked as the run goes, so a burst fails fast.
pub async fn twenty_resources_following_one_job_poll_it_once_a_minute(plane: Plane) {
    let fx = Fixture::new(&plane, "follow").await;
    let operator = fx.operator(&plane, &[]);
    let job = "jobtwice-follow";
    let pairs: Vec<(String, String)> = (0..20)
        .map(|i| (format!("follow-{i}"), job.to_string()))
        .collect();
    fx.create_pairs(&pairs, 20).await;
    let started = Instant::now();
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
            started.elapsed() < Duration::from_secs(200),
            "{open} still open"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "twenty resources on one job: ended within {:?}",
        started.elapsed()
    );
    assert_all_cancelled(&fx.phases().await);
    assert_eq!(fx.posts(job).await, 1);
    operator.sigkill();
    fx.cleanup().await;
}

/// Resource a's cancel of a publish is accepted (202, a location); a is
/// deleted while its cancel runs, and that cancel operation then fails
/// (the publish runs on). Resource c, applied afterwards, names the same
/// offer: no claim of a's may keep c from a cancel of its own for longer
/// than one in-flight window, and a failed peer never stops a cancel.
/// c must send a POST of its own (the offer gets two).
pub async fn a_deleted_claimants_failed_cancel_blocks_no_later_cancel(plane: Plane) {
    let fx = Fixture::new(&plane, "deleted").await;
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
