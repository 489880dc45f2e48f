//! Kubernetes Events (events.k8s.io/v1) for transitions: one Event per
//! notice, created and forgotten.
//!
//! It may not decide which transitions are announced: the decision's
//! `Notice` says.
//!
//! kube-runtime's `Recorder` keeps every Event it published for six minutes
//! to fold repeats into a series, and scans that cache on each publish. The
//! decision already announces each transition once (a streak of transient
//! errors once, not per retry), so there is nothing to fold; at 10,000
//! resources the cache held tens of MiB and made each publish O(n).

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, Resource, ResourceExt};

use crate::crd::OfferCancellation;
use crate::decide::Notice;
use crate::text::clip;

/// Longest part of an Event's name taken from the resource's name, leaving
/// room for the unique suffix within the 253 characters a name may have.
const MAX_NAME_PREFIX: usize = 200;

/// Publishes Events under one reporting controller.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
}

impl EventPublisher {
    /// `instance` names this replica (the pod); defaults to the controller.
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        EventPublisher {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
        }
    }

    /// Creates the Event for `notice` about `regarding`.
    pub async fn publish(
        &self,
        regarding: &OfferCancellation,
        notice: &Notice,
    ) -> Result<(), kube::Error> {
        let ns = regarding.namespace().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let event = event(&self.controller, &self.instance, regarding, notice);
        api.create(&PostParams::default(), &event).await.map(|_| ())
    }
}

/// The Event for `notice` about `regarding`, named uniquely after it.
fn event(
    controller: &str,
    instance: &str,
    regarding: &OfferCancellation,
    notice: &Notice,
) -> Event {
    let now = jiff::Timestamp::now();
    let name = format!(
        "{}.{:x}",
        clip(&regarding.name_any(), MAX_NAME_PREFIX).trim_end_matches('.'),
        now.as_nanosecond()
    );
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: regarding.namespace(),
            ..ObjectMeta::default()
        },
        action: Some("Reconcile".into()),
        reason: Some(notice.reason.into()),
        note: Some(notice.note.clone()),
        type_: Some(if notice.warning { "Warning" } else { "Normal" }.into()),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding.object_ref(&())),
        reporting_controller: Some(controller.to_string()),
        reporting_instance: Some(instance.to_string()),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_resource_and_fits_the_name_limit() {
        let spec = serde_json::from_value(serde_json::json!({
            "publisherId": "p", "offerId": "o", "credentialsSecretRef": {"name": "cpp"}
        }))
        .unwrap();
        let mut resource = OfferCancellation::new(&"r".repeat(253), spec);
        resource.metadata.namespace = Some("team-a".into());
        let notice = Notice {
            reason: "Cancelled",
            warning: false,
            note: "done".into(),
        };
        let event = event("offer-cancel-operator", "pod-1", &resource, &notice);
        assert!(event.metadata.name.unwrap().len() <= 253);
        assert_eq!(event.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(event.type_.as_deref(), Some("Normal"));
        assert_eq!(event.reporting_instance.as_deref(), Some("pod-1"));
        let regarding = event.regarding.unwrap();
        assert_eq!(regarding.kind.as_deref(), Some("OfferCancellation"));
        assert_eq!(regarding.namespace.as_deref(), Some("team-a"));
    }
}
