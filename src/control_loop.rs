//! The control loop: what is watched (through `watch`), which resources a
//! Secret change wakes, readiness, and the periodic sweep. Each reconcile
//! is [`reconcile::reconcile`], read top to bottom in `reconcile.rs`.
//!
//! It may not decide a resource's next step nor write status: that is one
//! round's work, in `reconcile.rs`.

use futures::StreamExt;
use kube::ResourceExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::claim::adoption;
use crate::claim::lease::{ClaimError, ClaimStore};
use crate::context::Context;
use crate::crd::{OfferCancellation, Phase};
use crate::decide::Observed;
use crate::health::Probes;
use crate::metrics::ErrorLabels;
use crate::reconcile::{self, Error};
use crate::scheduling::fair::Urgency;
use crate::timing::{CLAIM_SWEEP_EVERY, CLAIM_TTL, ERROR_REQUEUE, STATUS_GRACE, SWEEP_EVERY};
use crate::watch;

/// Requeues after an error that the reconcile could not record in status.
fn error_policy(_obj: Arc<OfferCancellation>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %error, "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            error: error.label(),
        })
        .inc();
    Action::requeue(ERROR_REQUEUE)
}

/// Runs the controller until SIGTERM, SIGINT or `stop`; marks `probes`
/// ready once the resource cache has synced.
pub async fn run(
    ctx: Arc<Context>,
    probes: Arc<Probes>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let namespace = ctx.config.namespace.as_deref();
    claim_intents_in_flight(&ctx).await;
    let (store, resources) = watch::resources(client.clone(), namespace, ctx.metrics.clone());
    let secrets = watch::secrets(client, namespace);
    tokio::spawn(mark_ready_when_synced(store.clone(), probes));
    let (wake, woken) = futures::channel::mpsc::unbounded();
    ctx.claims.wake_through(wake.clone());
    let sweeping = tokio::spawn(sweep_and_count(store.clone(), ctx.clone(), wake));
    let claims_swept = tokio::spawn(sweep_claims(ctx.clone()));
    let cache = ctx.credentials.clone();
    ctx.metrics.leader.set(1);
    let metrics = ctx.metrics.clone();
    let stamped = ctx.clone();
    let resources = resources.inspect(move |event| stamp_first_seen(&stamped, event));
    Controller::for_stream(resources, store.clone())
        .watches_stream(secrets, move |secret| {
            // Any touch (add, change, delete) drops what was read before.
            let ns = secret.namespace().unwrap_or_default();
            let name = secret.name_any();
            cache.invalidate(&ns, &name);
            referencing(&store.state(), &ns, &name)
        })
        .reconcile_on(woken)
        // Unbounded here: the gate (`scheduling/gate.rs`) limits and orders the work,
        // since kube-runtime takes waiting work in hash order.
        .with_config(controller::Config::default().concurrency(0))
        .shutdown_on_signal()
        .graceful_shutdown_on(stop)
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile loop");
            }
        })
        .await;
    // Stopped (signal, or the Lease lost): no longer the one that runs,
    // and no sweep sets the gauges again.
    sweeping.abort();
    claims_swept.abort();
    metrics.leader.set(0);
    metrics.set_phases(by_phase(&[]));
}

/// A resource with no status yet starts its first cancel's clock.
fn stamp_first_seen<E>(ctx: &Context, event: &Result<OfferCancellation, E>) {
    if let Ok(resource) = event
        && resource.status.is_none()
    {
        let key = ObjectRef::from_obj(resource);
        ctx.first_seen.set_if_absent(key, std::time::Instant::now());
    }
}

/// Before the first reconcile: every intent whose POST may still be in
/// flight holds its target's claim. One recorded by a release before the
/// claims (an upgrade from 0.1.0 with a POST in flight) has none, and
/// another resource on its target, which reads only the claim, would send
/// beside it. A claim whose window is open is left as it is; a stale one
/// (left before a rollback) is taken over. Each candidate is read again
/// right before its claim is written, so a list read a moment ago never
/// holds a target for a POST another writer has since seen answered.
/// Best effort: a failure is logged, and the window it would have covered
/// is short.
async fn claim_intents_in_flight(ctx: &Context) {
    use kube::api::{Api, ApiResource, DynamicObject, ListParams};
    let resource = ApiResource::erase::<OfferCancellation>(&());
    let api: Api<DynamicObject> = match ctx.config.namespace.as_deref() {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    let listed = match api.list(&ListParams::default()).await {
        Ok(listed) => listed,
        Err(e) => {
            tracing::warn!(error = %e, "listing OfferCancellations for intents in flight failed");
            return;
        }
    };
    let now = jiff::Timestamp::now();
    for object in listed.items {
        let Some(listed) = watch::readable(object, &ctx.metrics) else {
            continue;
        };
        let observed = Observed::of(&listed, None, 0, now);
        if observed.claim_of_intent_in_flight().is_some() {
            claim_for_intent(ctx, &listed).await;
        }
    }
}

/// Writes the claim of one intent in flight, from a fresh read of it.
async fn claim_for_intent(ctx: &Context, listed: &OfferCancellation) {
    let (ns, name) = (listed.namespace().unwrap_or_default(), listed.name_any());
    let warn = |what: &str, e: &dyn std::fmt::Display| {
        tracing::warn!(namespace = %ns, name = %name, error = %e, "{what}");
    };
    let api: kube::Api<OfferCancellation> = kube::Api::namespaced(ctx.client.clone(), &ns);
    let fresh = match api.get(&name).await {
        Ok(fresh) => fresh,
        Err(e) => return warn("reading an intent in flight again failed", &e),
    };
    let now = jiff::Timestamp::now();
    let observed = Observed::of(&fresh, None, 0, now);
    let (Some(claim), Ok(target)) = (observed.claim_of_intent_in_flight(), fresh.spec.target())
    else {
        return;
    };
    let key = target.key();
    let held = match ctx.claims.read(&key).await {
        Ok(held) => held,
        Err(e) => return warn("reading the claim of an intent in flight failed", &e),
    };
    let Some(how) = adoption(held.as_ref(), now) else {
        return;
    };
    match ctx.claims.acquire(&key, &claim, &how).await {
        Ok(_) => {
            tracing::info!(namespace = %ns, name = %name, "an intent in flight now holds its target's claim")
        }
        Err(ClaimError::Lost) => {}
        Err(e) => warn("could not claim the target of an intent in flight", &e),
    }
}

/// Sets `probes.ready` once the resource cache has synced. The wait is
/// re-armed every second: with several waiters on the store, this one was
/// seen never to be woken (kube-runtime 5's DelayedInit wakes one waiter),
/// while a fresh wait after the sync returns at once.
async fn mark_ready_when_synced(
    store: kube::runtime::reflector::Store<OfferCancellation>,
    probes: Arc<Probes>,
) {
    loop {
        match tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready()).await {
            Ok(Ok(())) => {
                probes
                    .ready
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            Ok(Err(_)) => return,
            Err(_) => {}
        }
    }
}

/// Every 10 s: the in-flight gauge, counted from the cache so that deleted
/// resources drop out too; a wake-up for resources whose status is gone;
/// and a sweep of what is kept per resource or per Secret for resources
/// that are gone.
async fn sweep_and_count(
    store: kube::runtime::reflector::Store<OfferCancellation>,
    ctx: Arc<Context>,
    wake: futures::channel::mpsc::UnboundedSender<ObjectRef<OfferCancellation>>,
) {
    let metrics = &ctx.metrics;
    loop {
        let resources = store.state();
        metrics.in_flight.set(in_flight(&resources));
        metrics.set_phases(by_phase(&resources));
        for wiped in without_status(&resources, jiff::Timestamp::now()) {
            let _ = wake.unbounded_send(wiped);
        }
        let cached: HashMap<_, _> = resources
            .iter()
            .map(|r| (ObjectRef::from_obj(r.as_ref()), r.resource_version()))
            .collect();
        // A write the cache already shows needs no guarding any more.
        ctx.written.retain(|k, ours| {
            cached
                .get(k)
                .is_some_and(|v| v.as_deref() != Some(ours.as_str()))
        });
        ctx.errors_in_row.retain(|k, _| cached.contains_key(k));
        // A clock runs while the resource's first cancel is still to go;
        // decided outside the map's lock, which reconciles also take.
        let now = jiff::Timestamp::now();
        let waiting: std::collections::HashSet<_> = ctx
            .first_seen
            .keys()
            .into_iter()
            .filter(|k| {
                store.get(k).is_some_and(|r| {
                    Observed::of(&r, None, 0, now).urgency() == Urgency::FirstCancel
                })
            })
            .collect();
        ctx.first_seen.retain(|k, _| waiting.contains(k));
        let secrets = resources
            .iter()
            .map(|r| {
                let ns = r.namespace().unwrap_or_default();
                (ns, r.spec.credentials_secret_ref.name.clone())
            })
            .collect();
        ctx.credentials.retain(&secrets);
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}

/// Every [`CLAIM_SWEEP_EVERY`], deletes the targets' claims that are past
/// [`CLAIM_TTL`] (while this controller runs: with leader election, the
/// leader). Two controllers sweeping at once do no harm: each delete is
/// fenced on the version it read.
async fn sweep_claims(ctx: Arc<Context>) {
    loop {
        match ctx.claims.sweep(jiff::Timestamp::now(), CLAIM_TTL).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(claims = n, "deleted claims past their time"),
            Err(e) => tracing::warn!(error = %e, "sweeping the targets' claims failed"),
        }
        tokio::time::sleep(CLAIM_SWEEP_EVERY).await;
    }
}

/// Resources older than [`STATUS_GRACE`] without a phase.
fn without_status(
    resources: &[Arc<OfferCancellation>],
    now: jiff::Timestamp,
) -> Vec<ObjectRef<OfferCancellation>> {
    resources
        .iter()
        .filter(|r| r.status.as_ref().and_then(|s| s.phase).is_none())
        .filter(|r| {
            let created = r.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created.is_some_and(|c| c + STATUS_GRACE <= now)
        })
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// Resources in Pending or Cancelling.
pub fn in_flight(resources: &[Arc<OfferCancellation>]) -> i64 {
    let busy = |r: &&Arc<OfferCancellation>| {
        matches!(
            r.status.as_ref().and_then(|s| s.phase),
            None | Some(Phase::Pending) | Some(Phase::Cancelling)
        )
    };
    resources.iter().filter(busy).count() as i64
}

/// How many resources are in each phase; one without a phase yet is
/// Pending.
pub fn by_phase(resources: &[Arc<OfferCancellation>]) -> [(&'static str, i64); 4] {
    let mut counts = [
        Phase::Pending,
        Phase::Cancelling,
        Phase::Cancelled,
        Phase::Failed,
    ]
    .map(|p| (p.as_str(), 0));
    for r in resources {
        let phase = r
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(Phase::Pending);
        let slot = match phase {
            Phase::Pending => 0,
            Phase::Cancelling => 1,
            Phase::Cancelled => 2,
            Phase::Failed => 3,
        };
        counts[slot].1 += 1;
    }
    counts
}

/// The resources whose credentials live in Secret `ns/name`.
fn referencing(
    resources: &[Arc<OfferCancellation>],
    ns: &str,
    name: &str,
) -> Vec<ObjectRef<OfferCancellation>> {
    resources
        .iter()
        .filter(|r| {
            r.namespace().as_deref() == Some(ns) && r.spec.credentials_secret_ref.name == name
        })
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_change_triggers_only_the_resources_that_use_it() {
        let make = |ns: &str, name: &str, secret: &str| {
            let spec = serde_yaml::from_str(&format!(
                "publisherId: p\nofferId: o\ncredentialsSecretRef: {{name: {secret}}}\n"
            ))
            .unwrap();
            let mut r = OfferCancellation::new(name, spec);
            r.metadata.namespace = Some(ns.into());
            Arc::new(r)
        };
        let resources = [
            make("a", "uses", "cpp"),
            make("a", "other-secret", "cpp2"),
            make("b", "other-namespace", "cpp"),
        ];
        let hits = referencing(&resources, "a", "cpp");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].name, "uses");
    }
}
