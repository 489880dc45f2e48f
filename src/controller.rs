//! Controller wiring: the reconcile that reads state (never a copy older
//! than our own last write) and hands it to the engine, the status writer
//! (server-side apply under one field manager, only when changed, and only
//! while the object is still at the version the decision was made from),
//! and the run loop over what `watch` provides.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use crate::cpp::{CppClient, Credentials};
use crate::crd::{
    OfferCancellation, OfferCancellationStatus, Phase, RETRY_ANNOTATION, retry_request_token,
};
use crate::credentials::{self, CredentialsCache, CredentialsError, Resolved};
use crate::decide::{Requeue, Transition};
use crate::engine::{self, StatusSink, Subject};
use crate::events::EventPublisher;
use crate::health::Probes;
use crate::metrics::{ErrorLabels, Metrics, OutcomeLabels};
use crate::watch;

/// The one field manager for everything the operator writes.
pub const FIELD_MANAGER: &str = "offer-cancel-operator";
/// Requeue after an error that left no recorded outcome.
const ERROR_REQUEUE: Duration = Duration::from_secs(30);
/// Requeue after a write refused as stale.
const CONFLICT_REQUEUE: Duration = Duration::from_secs(2);

/// What failed in the controller layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("resource has no namespace")]
    NoNamespace,
    #[error("reading Secret {name}: {source}")]
    ReadSecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading the resource: {0}")]
    ReadResource(#[source] kube::Error),
    #[error("writing status: {0}")]
    WriteStatus(#[source] kube::Error),
    /// The object moved past the version the decision was made from.
    #[error("status write refused: the resource changed since it was read")]
    Conflict,
}

impl Error {
    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NoNamespace => "no_namespace",
            Error::ReadSecret { .. } => "read_secret",
            Error::ReadResource(_) => "read_resource",
            Error::WriteStatus(_) => "write_status",
            Error::Conflict => "conflict",
        }
    }
}

/// Controller settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Watch one namespace; `None`: all.
    pub namespace: Option<String>,
    pub concurrency: u16,
    /// First wait of the backoff after transient errors.
    pub min_backoff: Duration,
    /// Cap of the backoff after transient errors.
    pub max_backoff: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: None,
            concurrency: 16,
            min_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub cpp: Arc<CppClient>,
    pub events: EventPublisher,
    pub metrics: Arc<Metrics>,
    pub config: Config,
    /// Invalidated by the Secret watch.
    pub credentials: Arc<CredentialsCache>,
    /// Our last status write per resource (see [`behind`]).
    written: PerResource<String>,
    /// Transient errors in a row per resource: they drive the backoff, and
    /// only the first of a streak is written to status.
    errors_in_row: PerResource<u32>,
}

impl Context {
    pub fn new(client: Client, cpp: Arc<CppClient>, metrics: Arc<Metrics>, config: Config) -> Self {
        let instance = std::env::var("POD_NAME").ok();
        Context {
            events: EventPublisher::new(client.clone(), FIELD_MANAGER, instance),
            client,
            cpp,
            metrics,
            config,
            credentials: Arc::default(),
            written: PerResource::default(),
            errors_in_row: PerResource::default(),
        }
    }
}

/// Something kept in memory per resource, swept when the resource goes.
struct PerResource<T> {
    map: Mutex<HashMap<ObjectRef<OfferCancellation>, T>>,
}

impl<T> Default for PerResource<T> {
    fn default() -> Self {
        PerResource {
            map: Mutex::default(),
        }
    }
}

impl<T: Clone> PerResource<T> {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<OfferCancellation>, T>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &ObjectRef<OfferCancellation>) -> Option<T> {
        self.map().get(key).cloned()
    }

    /// Sets the value; `None` forgets it.
    fn set(&self, key: ObjectRef<OfferCancellation>, value: Option<T>) {
        match value {
            Some(v) => self.map().insert(key, v),
            None => self.map().remove(&key),
        };
    }

    /// Keeps the entries `keep` says yes to.
    fn retain(&self, keep: impl Fn(&ObjectRef<OfferCancellation>, &T) -> bool) {
        self.map().retain(|k, v| keep(k, v));
    }
}

/// The resourceVersion of our last status write is kept until the watch
/// cache has caught up with it. A reconcile handed an older copy reads the
/// object from the API server instead: deciding from the copy could repeat
/// what the write already recorded. Says whether `seen` is such a copy,
/// and forgets our write once the cache shows it.
fn behind(
    written: &PerResource<String>,
    key: &ObjectRef<OfferCancellation>,
    seen: Option<&str>,
) -> bool {
    match written.get(key) {
        Some(ours) if Some(ours.as_str()) == seen => {
            written.set(key.clone(), None);
            false
        }
        Some(_) => true,
        None => false,
    }
}

/// Capped exponential backoff for the n-th error in a row, with equal
/// jitter (half fixed, half random), in closed form: O(1) whatever the
/// count (status is input: a huge `consecutiveErrors` must not cost a
/// worker), and never longer than `cap`.
pub fn backoff_delay(errors: u32, min: Duration, cap: Duration) -> Duration {
    let doublings = errors.saturating_sub(1).min(31);
    let full = min.saturating_mul(1 << doublings).min(cap);
    full / 2 + full.mul_f64(fastrand::f64()) / 2
}

/// When to look again; `None`: only on a change.
pub fn requeue_delay(requeue: Requeue, min: Duration, cap: Duration) -> Option<Duration> {
    match requeue {
        Requeue::Never => None,
        Requeue::After(d) => Some(d),
        Requeue::Backoff { errors, at_least } => {
            Some(backoff_delay(errors, min, cap).max(at_least))
        }
    }
}

/// Reads the credentials Secret (from the cache when the watch reported no
/// change since): its resourceVersion and what it yields.
async fn read_credentials(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<(Option<String>, Result<Credentials, String>), Error> {
    let (epoch, cached) = ctx.credentials.get(ns, name);
    if let Some(hit) = cached {
        return Ok((hit.version, Ok(hit.credentials)));
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret = api
        .get_opt(name)
        .await
        .map_err(|source| Error::ReadSecret {
            name: name.to_string(),
            source,
        })?;
    let Some(secret) = secret else {
        let missing = CredentialsError::NotFound { name: name.into() };
        return Ok((None, Err(missing.to_string())));
    };
    let version = secret.resource_version();
    let creds = credentials::from_secret(&secret, name).map_err(|e| e.to_string());
    if let Ok(credentials) = &creds {
        let resolved = Resolved {
            version: version.clone(),
            credentials: credentials.clone(),
        };
        ctx.credentials.put(ns, name, epoch, resolved);
    }
    Ok((version, creds))
}

/// One reconcile: read, decide and act through the engine, schedule.
/// Every log line inside carries the resource's namespace and name.
pub async fn reconcile(obj: Arc<OfferCancellation>, ctx: Arc<Context>) -> Result<Action, Error> {
    let wait = next_look(obj, ctx).await?;
    Ok(wait.map_or_else(Action::await_change, Action::requeue))
}

/// One reconcile; returns when to look again (`None`: only on a change).
pub async fn next_look(
    obj: Arc<OfferCancellation>,
    ctx: Arc<Context>,
) -> Result<Option<Duration>, Error> {
    use tracing::Instrument;
    let started = Instant::now();
    ctx.metrics.reconciliations.inc();
    let span = tracing::info_span!(
        "reconcile",
        namespace = obj.namespace().unwrap_or_default(),
        name = obj.name_any()
    );
    let result = reconcile_current(&obj, &ctx).instrument(span).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    match result {
        // A newer version exists; its watch event brings it back. The
        // requeue only covers a watch that missed it.
        Err(Error::Conflict) => {
            tracing::debug!("stale view: decision dropped");
            ctx.metrics.status_conflicts.inc();
            Ok(Some(CONFLICT_REQUEUE))
        }
        other => other,
    }
}

/// Reconciles the object as the API server has it now: the watch cache's
/// copy, unless it is older than our own last write.
async fn reconcile_current(
    obj: &OfferCancellation,
    ctx: &Context,
) -> Result<Option<Duration>, Error> {
    let key = ObjectRef::from_obj(obj);
    if !behind(&ctx.written, &key, obj.meta().resource_version.as_deref()) {
        return reconcile_inner(obj, ctx).await;
    }
    ctx.metrics.stale_reads.inc();
    let ns = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<OfferCancellation> = Api::namespaced(ctx.client.clone(), &ns);
    match api.get_opt(&obj.name_any()).await {
        Ok(Some(current)) => {
            ctx.written
                .set(key, current.meta().resource_version.clone());
            reconcile_inner(&current, ctx).await
        }
        Ok(None) => {
            ctx.written.set(key, None);
            Ok(None)
        }
        Err(e) => Err(Error::ReadResource(e)),
    }
}

async fn reconcile_inner(
    obj: &OfferCancellation,
    ctx: &Context,
) -> Result<Option<Duration>, Error> {
    let ns = obj.namespace().ok_or(Error::NoNamespace)?;
    let key = ObjectRef::from_obj(obj);
    let status = obj.status.clone().unwrap_or_default();
    if status.phase == Some(Phase::Cancelled) && status.observed_generation == obj.meta().generation
    {
        return Ok(None);
    }
    let (version, creds) =
        read_credentials(ctx, &ns, &obj.spec.credentials_secret_ref.name).await?;
    let mut subject = Subject {
        spec: obj.spec.clone(),
        status,
        generation: obj.meta().generation.unwrap_or_default(),
        retry_request: obj
            .annotations()
            .get(RETRY_ANNOTATION)
            .map(|v| retry_request_token(v)),
        credentials_version: version,
        errors_in_row: ctx.errors_in_row.get(&key).unwrap_or(0),
    };
    let mut sink = KubeSink {
        ctx,
        obj,
        resource_version: obj.meta().resource_version.clone(),
    };
    let requeue = engine::run_step(
        &ctx.cpp,
        &mut subject,
        creds.as_ref().map_err(Clone::clone),
        &mut sink,
    )
    .await?;
    let streak = requeue.errors_in_row();
    ctx.errors_in_row.set(key, (streak > 0).then_some(streak));
    Ok(requeue_delay(
        requeue,
        ctx.config.min_backoff,
        ctx.config.max_backoff,
    ))
}

/// Requeues after an error that the engine could not record in status.
pub fn error_policy(_obj: Arc<OfferCancellation>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %error, "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            error: error.kind(),
        })
        .inc();
    Action::requeue(ERROR_REQUEUE)
}

/// Writes status to the API server and publishes the transition's Event.
struct KubeSink<'a> {
    ctx: &'a Context,
    obj: &'a OfferCancellation,
    /// What the object must still be at for the next write to land: the
    /// version the decision was made from, then each write's own.
    resource_version: Option<String>,
}

impl StatusSink for KubeSink<'_> {
    type Error = Error;

    async fn save(
        &mut self,
        before: &OfferCancellationStatus,
        t: &Transition,
    ) -> Result<(), Error> {
        if &t.status == before {
            return Ok(());
        }
        let version = self.resource_version.as_deref().unwrap_or_default();
        let written = write_status(self.ctx, self.obj, version, &t.status).await?;
        self.ctx
            .written
            .set(ObjectRef::from_obj(self.obj), Some(written.clone()));
        self.resource_version = Some(written);
        tracing::info!(
            phase = t.status.phase.map(Phase::as_str),
            message = t.status.message.as_deref(),
            "status changed"
        );
        count_final(&self.ctx.metrics, before, &t.status);
        if let Some(notice) = &t.notice
            && let Err(e) = self.ctx.events.publish(self.obj, notice).await
        {
            tracing::warn!(error = %e, reason = notice.reason, "publishing event failed");
        }
        Ok(())
    }
}

fn count_final(
    metrics: &Metrics,
    before: &OfferCancellationStatus,
    after: &OfferCancellationStatus,
) {
    let outcome = match after.phase {
        _ if before.phase == after.phase => return,
        Some(Phase::Cancelled) => "cancelled",
        Some(Phase::Failed) => "failed",
        Some(Phase::Pending) | Some(Phase::Cancelling) | None => return,
    };
    metrics
        .cancellations
        .get_or_create(&OutcomeLabels { outcome })
        .inc();
}

/// Server-side apply of the whole status, on condition that the object is
/// still at `resource_version` (the API server refuses it with 409
/// otherwise); returns the new resourceVersion. A failed write is retried a
/// few times: losing the answer to a POST would leave the request in doubt.
async fn write_status(
    ctx: &Context,
    obj: &OfferCancellation,
    resource_version: &str,
    status: &OfferCancellationStatus,
) -> Result<String, Error> {
    use backon::Retryable;
    let ns = obj.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<OfferCancellation> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": OfferCancellation::api_version(&()),
        "kind": OfferCancellation::kind(&()),
        "metadata": { "resourceVersion": resource_version },
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = obj.name_any();
    let write = || async {
        api.patch_status(&name, &params, &Patch::Apply(&patch))
            .await
    };
    write
        .retry(
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_times(3),
        )
        .when(|e| !matches!(e, kube::Error::Api(s) if matches!(s.code, 404 | 409 | 422)))
        .await
        .map(|written| written.meta().resource_version.clone().unwrap_or_default())
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 409 => Error::Conflict,
            e => Error::WriteStatus(e),
        })
}

/// Runs the controller until SIGTERM, SIGINT or `stop`; marks `health`
/// ready once the resource cache has synced.
pub async fn run(
    ctx: Arc<Context>,
    health: Arc<Probes>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let namespace = ctx.config.namespace.as_deref();
    let (store, resources) = watch::resources(client.clone(), namespace, ctx.metrics.clone());
    let secrets = watch::secrets(client, namespace);
    tokio::spawn(mark_ready_when_synced(store.clone(), health));
    tokio::spawn(sweep_and_count(store.clone(), ctx.clone()));
    let cache = ctx.credentials.clone();
    Controller::for_stream(resources, store.clone())
        .watches_stream(secrets, move |secret| {
            // Any touch (add, change, delete) drops what was read before.
            let ns = secret.namespace().unwrap_or_default();
            let name = secret.name_any();
            cache.invalidate(&ns, &name);
            referencing(&store.state(), &ns, &name)
        })
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency))
        .shutdown_on_signal()
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile loop");
            }
        })
        .await;
}

/// Sets `health.ready` once the resource cache has synced. The wait is
/// re-armed every second: with several waiters on the store, this one was
/// seen never to be woken (kube-runtime 5's DelayedInit wakes one waiter),
/// while a fresh wait after the sync returns at once.
async fn mark_ready_when_synced(
    store: kube::runtime::reflector::Store<OfferCancellation>,
    health: Arc<Probes>,
) {
    loop {
        match tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready()).await {
            Ok(Ok(())) => {
                health
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
/// resources drop out too, and a sweep of what is kept per resource or per
/// Secret for resources that are gone.
async fn sweep_and_count(
    store: kube::runtime::reflector::Store<OfferCancellation>,
    ctx: Arc<Context>,
) {
    let metrics = &ctx.metrics;
    loop {
        let resources = store.state();
        metrics.in_flight.set(in_flight(&resources));
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
        let secrets = resources
            .iter()
            .map(|r| {
                let ns = r.namespace().unwrap_or_default();
                (ns, r.spec.credentials_secret_ref.name.clone())
            })
            .collect();
        ctx.credentials.retain(&secrets);
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
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

/// The resources whose credentials live in Secret `ns/name`.
pub fn referencing(
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
    fn a_copy_older_than_our_last_write_is_behind_until_the_cache_shows_it() {
        let written = PerResource::default();
        let key = ObjectRef::<OfferCancellation>::new("r").within("ns");
        assert!(!behind(&written, &key, Some("7")), "nothing written yet");
        written.set(key.clone(), Some("9".to_string()));
        assert!(
            behind(&written, &key, Some("8")),
            "the copy predates our write"
        );
        assert!(behind(&written, &key, None));
        assert!(!behind(&written, &key, Some("9")), "the cache caught up");
        assert!(!behind(&written, &key, Some("8")), "forgotten once seen");
        written.set(key.clone(), Some("12".to_string()));
        written.retain(|_, _| false);
        assert!(
            !behind(&written, &key, Some("11")),
            "deleted resources are dropped"
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_costs_nothing_for_huge_counts() {
        let (min, cap) = (Duration::from_secs(2), Duration::from_secs(60));
        let first = backoff_delay(1, min, cap);
        assert!(first >= min / 2 && first <= min, "{first:?}");
        for n in (1..40).chain([u32::MAX - 1, u32::MAX]) {
            let d = backoff_delay(n, min, cap);
            assert!(d <= cap, "n={n}: {d:?}");
        }
        assert!(backoff_delay(10, min, cap) >= cap / 2);
        let started = std::time::Instant::now();
        backoff_delay(4_000_000_000, min, cap);
        assert!(started.elapsed() < Duration::from_millis(50));
    }

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

    #[test]
    fn retry_after_wins_over_a_shorter_backoff() {
        let d = requeue_delay(
            Requeue::Backoff {
                errors: 1,
                at_least: Duration::from_secs(45),
            },
            Duration::from_secs(2),
            Duration::from_secs(300),
        );
        assert_eq!(d, Some(Duration::from_secs(45)));
        let never = requeue_delay(
            Requeue::Never,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert_eq!(never, None);
    }
}
