//! What every reconcile shares: the clients, the Event publisher, metrics,
//! settings, and what is remembered per resource between reconciles.

use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::apis::Apis;
use crate::crd::OfferCancellation;
use crate::credentials::CredentialsCache;
use crate::events::EventPublisher;
use crate::gate::Gate;
use crate::metrics::Metrics;

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: None,
            concurrency: 16,
            min_backoff: crate::timing::MIN_BACKOFF,
            max_backoff: crate::timing::MAX_BACKOFF,
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
    /// The watch's cache of every resource, once the controller runs: the
    /// other resources naming the same offer.
    pub(crate) resources: OnceLock<Store<OfferCancellation>>,
    /// Offers a reconcile that may send a first cancel is deciding about:
    /// one at a time per offer in this process.
    pub(crate) targets_deciding: TargetsDeciding,
    /// Which resources name each offer, as the watch saw them.
    pub(crate) target_index: Arc<TargetIndex>,
    /// Reconcile workers: a pool for first cancels and one for routine
    /// work, `concurrency` per namespace in each (see `gate`).
    pub(crate) gate: Gate,
}

/// A target as `Target::key` spells it (`offer/{publisher}/{offer}`, `job/{id}`).
type TargetKey = String;

/// Which resources name each offer, as the watch saw them: a first cancel
/// finds the other resources on its offer without looking at every
/// resource (a scan of all of them per first cancel made latency grow with
/// their number). It follows the watch's events as the reflector's store
/// does, relists included: during a relist the old entries stay until the
/// new list is complete, so it never lacks a resource the store has.
#[derive(Default)]
pub(crate) struct TargetIndex {
    state: Mutex<IndexState>,
}

type Refs = HashMap<TargetKey, HashSet<ObjectRef<OfferCancellation>>>;

#[derive(Default)]
struct IndexState {
    by_offer: Refs,
    /// What a relist in progress has listed so far.
    relisting: Option<Refs>,
}

/// A spec that names no valid target is in no one's way: it never sends.
fn target_key(resource: &OfferCancellation) -> Option<TargetKey> {
    resource.spec.target().ok().map(|t| t.key())
}

fn add(refs: &mut Refs, resource: &OfferCancellation) {
    let Some(key) = target_key(resource) else {
        return;
    };
    refs.entry(key)
        .or_default()
        .insert(ObjectRef::from_obj(resource));
}

impl TargetIndex {
    /// Follows one watch event.
    pub(crate) fn seen(&self, event: &watcher::Event<OfferCancellation>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let IndexState {
            by_offer,
            relisting,
        } = &mut *state;
        match event {
            watcher::Event::Init => *relisting = Some(Refs::new()),
            watcher::Event::InitApply(r) => {
                add(by_offer, r);
                relisting.iter_mut().for_each(|fresh| add(fresh, r));
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = relisting.take() {
                    *by_offer = fresh;
                }
            }
            watcher::Event::Apply(r) => add(by_offer, r),
            watcher::Event::Delete(r) => {
                let Some(key) = target_key(r) else {
                    return;
                };
                if let Some(refs) = by_offer.get_mut(&key) {
                    refs.remove(&ObjectRef::from_obj(r));
                    if refs.is_empty() {
                        by_offer.remove(&key);
                    }
                }
            }
        }
    }

    /// The resources seen naming this target (by [`crate::crd::Target::key`]).
    pub(crate) fn naming(&self, key: &str) -> Vec<ObjectRef<OfferCancellation>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let refs = state.by_offer.get(key);
        refs.map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Which offers a reconcile that may send a first cancel holds.
#[derive(Default)]
pub(crate) struct TargetsDeciding {
    held: Mutex<HashSet<TargetKey>>,
}

/// Held while one reconcile decides about, and maybe cancels on, an offer.
pub(crate) struct TargetHeld<'a> {
    owner: &'a TargetsDeciding,
    key: TargetKey,
}

impl TargetsDeciding {
    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<TargetKey>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The offer, unless another reconcile holds it now.
    pub(crate) fn hold(&self, key: &str) -> Option<TargetHeld<'_>> {
        let key = key.to_string();
        // The set's lock is let go before a guard exists: dropping a
        // guard takes it again.
        let taken = self.held().insert(key.clone());
        taken.then(|| TargetHeld { owner: self, key })
    }
}

impl Drop for TargetHeld<'_> {
    fn drop(&mut self) {
        self.owner.held().remove(&self.key);
    }
}

impl Context {
    pub fn new(client: Client, apis: Arc<Apis>, metrics: Arc<Metrics>, config: Config) -> Self {
        let instance = std::env::var("POD_NAME").ok();
        Context {
            events: EventPublisher::new(client.clone(), FIELD_MANAGER, instance),
            gate: Gate::new(usize::from(config.concurrency)),
            client,
            apis,
            metrics,
            config,
            credentials: Arc::default(),
            written: PerResource::default(),
            errors_in_row: PerResource::default(),
            resources: OnceLock::new(),
            targets_deciding: TargetsDeciding::default(),
            target_index: Arc::default(),
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

    /// Keeps the entries `keep` says yes to.
    pub(crate) fn retain(&self, keep: impl Fn(&ObjectRef<OfferCancellation>, &T) -> bool) {
        self.map().retain(|k, v| keep(k, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_offer(name: &str, offer: &str) -> OfferCancellation {
        let spec = serde_yaml::from_str(&format!(
            "publisherId: contoso\nofferId: {offer}\ncredentialsSecretRef: {{name: cpp}}\n"
        ))
        .unwrap();
        let mut r = OfferCancellation::new(name, spec);
        r.metadata.namespace = Some("ns".into());
        r
    }

    fn names(index: &TargetIndex, offer: &str) -> Vec<String> {
        let mut names: Vec<_> = index
            .naming(&format!("offer/contoso/{offer}"))
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_target_index_follows_applies_and_deletes() {
        use kube::runtime::watcher::Event;
        let index = TargetIndex::default();
        index.seen(&Event::Apply(on_offer("a", "o")));
        index.seen(&Event::Apply(on_offer("b", "o")));
        index.seen(&Event::Apply(on_offer("c", "other")));
        assert_eq!(names(&index, "o"), ["a", "b"]);
        index.seen(&Event::Delete(on_offer("a", "o")));
        assert_eq!(names(&index, "o"), ["b"]);
    }

    #[test]
    fn during_a_relist_the_index_keeps_what_the_store_still_has() {
        use kube::runtime::watcher::Event;
        let index = TargetIndex::default();
        index.seen(&Event::Apply(on_offer("old", "o")));
        index.seen(&Event::Init);
        index.seen(&Event::InitApply(on_offer("new", "o")));
        assert_eq!(names(&index, "o"), ["new", "old"], "mid-relist");
        index.seen(&Event::InitDone);
        assert_eq!(names(&index, "o"), ["new"], "the relist no longer has old");
    }

    #[test]
    fn an_offer_is_held_by_one_at_a_time_and_let_go_on_drop() {
        let deciding = TargetsDeciding::default();
        let first = deciding.hold("offer/contoso/offer");
        assert!(first.is_some());
        assert!(deciding.hold("offer/contoso/offer").is_none(), "held");
        assert!(deciding.hold("job/9f1c").is_some(), "another target");
        drop(first);
        assert!(deciding.hold("offer/contoso/offer").is_some(), "let go");
    }
}
