//! What the controller watches, and how little of it it keeps: resources
//! are read leniently (one that does not deserialise is reported and
//! skipped, never stopping the others) and trimmed to what the operator
//! reads; Secrets are watched as metadata only.
//!
//! It may not decide or write: it only brings resources and Secret metadata
//! in.

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::crd::{OfferCancellation, RETRY_ANNOTATION};
use crate::metrics::Metrics;
use crate::text::clip;
use std::sync::Arc;

/// Longest deserialisation error quoted in a log line.
const MAX_ERROR_SHOWN: usize = 300;

/// The resources as the controller sees them: a store, and the stream of
/// applied objects that triggers reconciles (it also feeds the store).
pub(crate) fn resources(
    client: Client,
    namespace: Option<&str>,
    metrics: Arc<Metrics>,
) -> (
    Store<OfferCancellation>,
    impl Stream<Item = Result<OfferCancellation, watcher::Error>> + Send + 'static,
) {
    let resource = ApiResource::erase::<OfferCancellation>(&());
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    };
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .filter_map(move |event| std::future::ready(typed(event, &metrics)))
        .reflect(writer)
        .applied_objects()
        .predicate_filter(asks_for_work, Default::default());
    (reader, stream)
}

/// What makes a resource worth a reconcile when it changes: its spec
/// (generation) and the retry annotation. The operator's own status writes
/// change neither, so they wake nothing: follow-ups come from the requeue
/// each reconcile asks for. (Every write used to wake its resource at once,
/// and at load those wake-ups crowded out new resources: kube-runtime holds
/// due work in a set, not a queue, so some waited minutes.)
fn asks_for_work(resource: &OfferCancellation) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    resource.metadata.generation.hash(&mut hasher);
    resource
        .annotations()
        .get(RETRY_ANNOTATION)
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// Secrets' metadata: enough to know that one changed, never its data.
pub(crate) fn secrets(
    client: Client,
    namespace: Option<&str>,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static {
    // An Api of PartialObjectMeta makes metadata-only requests.
    let api: Api<PartialObjectMeta<Secret>> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .touched_objects()
}

type Event<K> = Result<watcher::Event<K>, watcher::Error>;

/// One watch event, typed; an object that does not read is dropped here.
fn typed(event: Event<DynamicObject>, metrics: &Metrics) -> Option<Event<OfferCancellation>> {
    use watcher::Event::*;
    let parse = |o| readable(o, metrics);
    Some(Ok(match event {
        Err(e) => return Some(Err(e)),
        Ok(Apply(o)) => Apply(parse(o)?),
        Ok(InitApply(o)) => InitApply(parse(o)?),
        Ok(Delete(o)) => Delete(parse(o)?),
        Ok(Init) => Init,
        Ok(InitDone) => InitDone,
    }))
}

/// The object as the operator uses it, or `None` (logged, counted) when it
/// cannot be read: a value no schema stopped (an older CRD, say) must not
/// take the whole watch down.
pub(crate) fn readable(mut object: DynamicObject, metrics: &Metrics) -> Option<OfferCancellation> {
    trim(object.meta_mut());
    let (ns, name) = (object.namespace(), object.name_any());
    match object.try_parse::<OfferCancellation>() {
        Ok(parsed) => Some(parsed),
        Err(e) => {
            metrics.unreadable_resources.inc();
            tracing::warn!(
                namespace = ns.as_deref().unwrap_or_default(),
                name = %name,
                error = %clip(&e.to_string(), MAX_ERROR_SHOWN),
                "skipping an OfferCancellation that cannot be read"
            );
            None
        }
    }
}

/// Drops what the operator never reads: managed fields, and annotations
/// other than the retry request (kubectl's last-applied copy is often the
/// largest part of an object).
fn trim(meta: &mut kube::core::ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|k, _| k == RETRY_ANNOTATION);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(spec: serde_json::Value) -> DynamicObject {
        let resource = ApiResource::erase::<OfferCancellation>(&());
        let mut o = DynamicObject::new("poison", &resource).within("team-a");
        o.data = serde_json::json!({ "spec": spec });
        o.metadata.annotations = Some(
            [
                (RETRY_ANNOTATION.to_string(), "1".to_string()),
                (
                    "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                    "x".repeat(10_000),
                ),
            ]
            .into(),
        );
        o
    }

    fn valid_spec() -> serde_json::Value {
        serde_json::json!({"publisherId": "p", "offerId": "o", "credentialsSecretRef": {"name": "cpp"}})
    }

    #[test]
    fn an_unreadable_resource_is_skipped_and_counted() {
        let metrics = Metrics::default();
        let mut spec = valid_spec();
        spec["timeoutSeconds"] = serde_json::json!(5_000_000_000u64);
        assert!(readable(object(spec), &metrics).is_none());
        assert_eq!(metrics.unreadable_resources.get(), 1);
        let ok = readable(object(valid_spec()), &metrics).expect("readable");
        assert_eq!(ok.spec.offer_id.as_deref(), Some("o"));
    }

    #[test]
    fn only_the_retry_annotation_and_no_managed_fields_are_kept() {
        let metrics = Metrics::default();
        let kept = readable(object(valid_spec()), &metrics).expect("readable");
        let annotations = kept.metadata.annotations.unwrap_or_default();
        assert_eq!(annotations.len(), 1);
        assert!(annotations.contains_key(RETRY_ANNOTATION));
        assert!(kept.metadata.managed_fields.is_none());
    }

    #[test]
    fn only_spec_and_retry_changes_ask_for_work() {
        let metrics = Metrics::default();
        let base = readable(object(valid_spec()), &metrics).expect("readable");
        let mut status_only = base.clone();
        status_only.status = Some(Default::default());
        status_only.metadata.resource_version = Some("99".into());
        assert_eq!(asks_for_work(&base), asks_for_work(&status_only));
        let mut edited = base.clone();
        edited.metadata.generation = Some(2);
        assert_ne!(asks_for_work(&base), asks_for_work(&edited));
        let mut retried = base.clone();
        retried
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(RETRY_ANNOTATION.into(), "2".into());
        assert_ne!(asks_for_work(&base), asks_for_work(&retried));
    }

    #[test]
    fn a_poisonous_event_leaves_the_stream_going() {
        let metrics = Metrics::default();
        let mut bad = valid_spec();
        bad["offerId"] = serde_json::json!(42);
        assert!(typed(Ok(watcher::Event::InitApply(object(bad))), &metrics).is_none());
        assert!(matches!(
            typed(Ok(watcher::Event::InitDone), &metrics),
            Some(Ok(watcher::Event::InitDone))
        ));
    }
}
