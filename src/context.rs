//! What every reconcile shares: the clients, the Event publisher, metrics,
//! settings, and what is remembered per resource between reconciles.
//!
//! It holds what reconciles share and may not decide or call anything
//! itself.

use kube::Client;
use kube::runtime::reflector::ObjectRef;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::apis::Apis;
use crate::claim::lease::LeaseClaims;
use crate::crd::OfferCancellation;
use crate::credentials::CredentialsCache;
use crate::events::EventPublisher;
use crate::metrics::Metrics;
use crate::scheduling::gate::Gate;

/// The one field manager for everything the operator writes.
pub(crate) const FIELD_MANAGER: &str = "offer-cancel-operator";

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
    /// Where the targets' claims are kept: one namespace for every
    /// controller that may cancel the same targets.
    pub claim_namespace: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: None,
            concurrency: 16,
            min_backoff: crate::timing::MIN_BACKOFF,
            max_backoff: crate::timing::MAX_BACKOFF,
            claim_namespace: "default".into(),
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub apis: Arc<Apis>,
    pub events: EventPublisher,
    pub metrics: Arc<Metrics>,
    pub config: Config,
    /// Invalidated by the Secret watch.
    pub credentials: Arc<CredentialsCache>,
    /// The resourceVersion of our last status write, until the watch cache
    /// shows it: a reconcile handed an older copy reads the object again.
    pub(crate) written: PerResource<String>,
    /// Transient errors in a row: they drive the backoff, and only the
    /// first of a streak is written to status.
    pub(crate) errors_in_row: PerResource<u32>,
    /// When the watch brought a resource not yet reconciled: the start of
    /// its first cancel's clock (`metrics::Stage::Queued`).
    pub(crate) first_seen: PerResource<std::time::Instant>,
    /// One cancel per target: the claims, kept by the API server.
    pub(crate) claims: LeaseClaims,
    /// Reconcile workers: a pool for first cancels and one for routine
    /// work, `concurrency` per namespace in each (see `gate`).
    pub(crate) gate: Gate,
}

impl Context {
    pub fn new(client: Client, apis: Arc<Apis>, metrics: Arc<Metrics>, config: Config) -> Self {
        let instance = std::env::var("POD_NAME").ok();
        Context {
            events: EventPublisher::new(client.clone(), FIELD_MANAGER, instance),
            claims: LeaseClaims::new(client.clone(), &config.claim_namespace, FIELD_MANAGER),
            gate: Gate::new(usize::from(config.concurrency)),
            client,
            apis,
            metrics,
            config,
            credentials: Arc::default(),
            written: PerResource::default(),
            errors_in_row: PerResource::default(),
            first_seen: PerResource::default(),
        }
    }
}

/// Something kept in memory per resource, swept when the resource goes.
pub(crate) struct PerResource<T> {
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

    pub(crate) fn get(&self, key: &ObjectRef<OfferCancellation>) -> Option<T> {
        self.map().get(key).cloned()
    }

    /// Sets the value; `None` forgets it.
    pub(crate) fn set(&self, key: ObjectRef<OfferCancellation>, value: Option<T>) {
        match value {
            Some(v) => self.map().insert(key, v),
            None => self.map().remove(&key),
        };
    }

    /// Sets the value unless one is there.
    pub(crate) fn set_if_absent(&self, key: ObjectRef<OfferCancellation>, value: T) {
        self.map().entry(key).or_insert(value);
    }

    /// The resources something is kept for.
    pub(crate) fn keys(&self) -> Vec<ObjectRef<OfferCancellation>> {
        self.map().keys().cloned().collect()
    }

    /// Keeps the entries `keep` says yes to.
    pub(crate) fn retain(&self, keep: impl Fn(&ObjectRef<OfferCancellation>, &T) -> bool) {
        self.map().retain(|k, v| keep(k, v));
    }
}
