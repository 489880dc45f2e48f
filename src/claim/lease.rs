//! Claims as `coordination.k8s.io/v1` Leases in one namespace (the
//! operator's), one per target, named from a digest of the target's key.
//! A Lease because every cluster has the type, it is small, RBAC can
//! grant it in one namespace only, and the operator already holds rights
//! on Leases there for leader election. The claim's fields are
//! annotations (the Lease spec's holder and times say the same for
//! `kubectl get lease`); a claim whose annotations do not read is taken
//! for one whose window has passed, without an answer.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use crate::crd::OfferCancellation;

use super::{Acquire, Claim, ClaimAnswer, Claimant};

/// Why a claim was not written.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Someone else created or changed the claim first: decide again.
    #[error("another resource claimed the target first")]
    Lost,
    #[error("writing the target's claim: {0}")]
    Api(#[source] kube::Error),
}

/// Where claims are kept: the API server in the controller, nowhere in
/// the one-shot CLI (one resource, one process: nothing to arbitrate).
pub trait ClaimStore: Sync {
    /// The target's claim (`key`: [`crate::crd::Target::key`]).
    fn read(&self, key: &str) -> impl Future<Output = Result<Option<Claim>, ClaimError>> + Send;

    /// Takes the target's claim as `claim` says; returns it as written.
    fn acquire(
        &self,
        key: &str,
        claim: &Claim,
        how: &Acquire,
    ) -> impl Future<Output = Result<Claim, ClaimError>> + Send;

    /// Records what the API answered our POST on our claim.
    fn answer(
        &self,
        key: &str,
        claim: &Claim,
        answer: &ClaimAnswer,
    ) -> impl Future<Output = Result<(), ClaimError>> + Send;

    /// Lets go of the target, if `me` still holds its claim.
    fn release(
        &self,
        key: &str,
        me: &Claimant,
    ) -> impl Future<Output = Result<(), ClaimError>> + Send;
}

/// The CLI's store: every claim is granted, nothing is kept.
pub struct Unshared;

impl ClaimStore for Unshared {
    async fn read(&self, _key: &str) -> Result<Option<Claim>, ClaimError> {
        Ok(None)
    }
    async fn acquire(&self, _: &str, claim: &Claim, _: &Acquire) -> Result<Claim, ClaimError> {
        Ok(claim.clone())
    }
    async fn answer(&self, _: &str, _: &Claim, _: &ClaimAnswer) -> Result<(), ClaimError> {
        Ok(())
    }
    async fn release(&self, _: &str, _: &Claimant) -> Result<(), ClaimError> {
        Ok(())
    }
}

const LABEL: &str = "offercancel.dev/claim";
const TARGET: &str = "offercancel.dev/target";
const OPERATION: &str = "offercancel.dev/operation";
const CLAIMANT: &str = "offercancel.dev/claimant";
const CLAIMANT_UID: &str = "offercancel.dev/claimant-uid";
const CLAIMED_AT: &str = "offercancel.dev/claimed-at";
const IN_FLIGHT_UNTIL: &str = "offercancel.dev/in-flight-until";
const ANSWER: &str = "offercancel.dev/answer";
const ANSWERED_AT: &str = "offercancel.dev/answered-at";
const LOCATION: &str = "offercancel.dev/location";

/// The claim's object name: `oc-` and 40 hex digits of the key's SHA-256
/// (a Lease name is a DNS-1123 subdomain; a target's key is not).
pub fn claim_name(key: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let hex: String = digest.as_ref()[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("oc-{hex}")
}

/// Claims kept as Leases in one namespace.
pub struct LeaseClaims {
    api: Api<Lease>,
    field_manager: &'static str,
    waiting: Waiting,
}

/// Who waits on a claim in this process, and how to wake them: the
/// moment it is let go or told its answer, they look again (instead of at
/// their next look, a second on), so a refusal costs the others one round
/// trip. It only ever brings a look forward; nothing here keeps anyone
/// waiting.
#[derive(Default)]
struct Waiting {
    by_key: std::sync::Mutex<HashMap<String, HashSet<ObjectRef<OfferCancellation>>>>,
    wake:
        std::sync::OnceLock<futures::channel::mpsc::UnboundedSender<ObjectRef<OfferCancellation>>>,
}

impl Waiting {
    fn add(&self, key: &str, who: ObjectRef<OfferCancellation>) {
        let mut by_key = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        by_key.entry(key.to_string()).or_default().insert(who);
    }

    fn wake(&self, key: &str) {
        let woken = {
            let mut by_key = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
            by_key.remove(key).unwrap_or_default()
        };
        if let Some(wake) = self.wake.get() {
            for who in woken {
                let _ = wake.unbounded_send(who);
            }
        }
    }
}

impl LeaseClaims {
    pub fn new(client: kube::Client, namespace: &str, field_manager: &'static str) -> Self {
        LeaseClaims {
            api: Api::namespaced(client, namespace),
            field_manager,
            waiting: Waiting::default(),
        }
    }

    /// Where waiters are woken (the control loop's queue); set once.
    pub fn wake_through(
        &self,
        wake: futures::channel::mpsc::UnboundedSender<ObjectRef<OfferCancellation>>,
    ) {
        let _ = self.waiting.wake.set(wake);
    }

    /// `who` waits on the claim of target `key`.
    pub fn wait_on(&self, key: &str, who: ObjectRef<OfferCancellation>) {
        self.waiting.add(key, who);
    }

    /// Deletes claims whose window passed more than `ttl` ago: once it
    /// has, the target's own record (a listed cancel, an operation no
    /// longer running) says what happened, and a claim only ever served
    /// until that record shows it. Each delete is fenced on the version
    /// read, so a claim renewed meanwhile stays.
    pub async fn sweep(
        &self,
        now: Timestamp,
        ttl: jiff::SignedDuration,
    ) -> Result<usize, ClaimError> {
        let listed = self
            .api
            .list(&ListParams::default().labels(LABEL))
            .await
            .map_err(ClaimError::Api)?;
        let mut deleted = 0;
        for lease in listed.items {
            let Some(claim) = read_claim(&lease) else {
                continue;
            };
            // A time no clock reaches (a hand-edited Lease) is never old.
            let old = claim
                .in_flight_until
                .checked_add(ttl)
                .is_ok_and(|t| t <= now);
            if !old {
                continue;
            }
            let name = lease.metadata.name.clone().unwrap_or_default();
            if self.delete_at(&name, &claim.version).await.is_ok() {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.field_manager.into()),
            ..PatchParams::default()
        }
    }

    async fn delete_at(&self, name: &str, version: &str) -> Result<(), ClaimError> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(version.to_string()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(e) if is_lost(&e) => Err(ClaimError::Lost),
            Err(e) => Err(ClaimError::Api(e)),
        }
    }
}

impl ClaimStore for LeaseClaims {
    async fn read(&self, key: &str) -> Result<Option<Claim>, ClaimError> {
        let lease = self
            .api
            .get_opt(&claim_name(key))
            .await
            .map_err(ClaimError::Api)?;
        Ok(lease.map(|l| read_claim(&l).unwrap_or_else(|| unreadable(&l))))
    }

    async fn acquire(&self, key: &str, claim: &Claim, how: &Acquire) -> Result<Claim, ClaimError> {
        let name = claim_name(key);
        let lost = match how {
            // 404 to a create: the namespace is missing, nobody won.
            Acquire::Create => is_taken,
            Acquire::TakeOver { .. } => is_lost,
        };
        let written = match how {
            Acquire::Create => {
                let lease = lease(&name, key, claim);
                let params = PostParams {
                    field_manager: Some(self.field_manager.into()),
                    ..PostParams::default()
                };
                self.api.create(&params, &lease).await
            }
            Acquire::TakeOver { version } => {
                // A merge patch carrying the version is refused (409) once
                // the object moved past it: the API server fences it.
                let mut patch = serde_json::to_value(lease(&name, key, claim))
                    .map_err(|e| ClaimError::Api(kube::Error::SerdeError(e)))?;
                patch["metadata"]["resourceVersion"] = serde_json::json!(version);
                clear_answer(&mut patch, claim);
                let params = self.patch_params();
                self.api.patch(&name, &params, &Patch::Merge(&patch)).await
            }
        };
        match written {
            Ok(lease) => Ok(Claim {
                version: lease.metadata.resource_version.unwrap_or_default(),
                ..claim.clone()
            }),
            Err(e) if lost(&e) => Err(ClaimError::Lost),
            Err(e) => Err(ClaimError::Api(e)),
        }
    }

    async fn answer(
        &self,
        key: &str,
        claim: &Claim,
        answer: &ClaimAnswer,
    ) -> Result<(), ClaimError> {
        let mut annotations = serde_json::Map::new();
        let (word, location) = match answer {
            ClaimAnswer::Cancelled => ("cancelled", None),
            ClaimAnswer::Accepted { location } => ("accepted", location.clone()),
        };
        annotations.insert(ANSWER.into(), word.into());
        annotations.insert(LOCATION.into(), location.into());
        // Written with the answer: the others read the target's record
        // from then on to see what it did.
        annotations.insert(ANSWERED_AT.into(), Timestamp::now().to_string().into());
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": claim.version, "annotations": annotations},
        });
        let params = self.patch_params();
        match self
            .api
            .patch(&claim_name(key), &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_lost(&e) => Err(ClaimError::Lost),
            Err(e) => Err(ClaimError::Api(e)),
        }
    }

    async fn release(&self, key: &str, me: &Claimant) -> Result<(), ClaimError> {
        let Some(claim) = self.read(key).await? else {
            return Ok(());
        };
        if claim.claimant.uid != me.uid {
            return Ok(());
        }
        self.delete_at(&claim_name(key), &claim.version).await?;
        self.waiting.wake(key);
        Ok(())
    }
}

/// A create that found the object there (409 AlreadyExists).
fn is_taken(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// A fenced write that found the object moved on (409 Conflict) or gone
/// (404).
fn is_lost(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if matches!(s.code, 404 | 409))
}

/// The Lease that holds `claim` on target `key`.
fn lease(name: &str, key: &str, claim: &Claim) -> Lease {
    let mut annotations = BTreeMap::from([
        (TARGET.to_string(), key.to_string()),
        (OPERATION.to_string(), claim.operation.clone()),
        (
            CLAIMANT.to_string(),
            format!("{}/{}", claim.claimant.namespace, claim.claimant.name),
        ),
        (CLAIMANT_UID.to_string(), claim.claimant.uid.clone()),
        (CLAIMED_AT.to_string(), claim.claimed_at.to_string()),
        (
            IN_FLIGHT_UNTIL.to_string(),
            claim.in_flight_until.to_string(),
        ),
    ]);
    if let Some(answer) = &claim.answer {
        let (word, location) = match answer {
            ClaimAnswer::Cancelled => ("cancelled", None),
            ClaimAnswer::Accepted { location } => ("accepted", location.clone()),
        };
        annotations.insert(ANSWER.into(), word.into());
        if let Some(location) = location {
            annotations.insert(LOCATION.into(), location);
        }
        if let Some(at) = claim.answered_at {
            annotations.insert(ANSWERED_AT.into(), at.to_string());
        }
    }
    let window = claim.in_flight_until.duration_since(claim.claimed_at);
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(LABEL.to_string(), "true".to_string())])),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(format!(
                "{}/{}",
                claim.claimant.namespace, claim.claimant.name
            )),
            acquire_time: Some(MicroTime(claim.claimed_at)),
            renew_time: Some(MicroTime(claim.claimed_at)),
            lease_duration_seconds: i32::try_from(window.as_secs()).ok(),
            ..LeaseSpec::default()
        }),
    }
}

/// A take-over replaces the whole claim: an answer the old one carried
/// is removed (a merge patch removes a key set to null).
fn clear_answer(patch: &mut serde_json::Value, claim: &Claim) {
    if claim.answer.is_none() {
        patch["metadata"]["annotations"][ANSWER] = serde_json::Value::Null;
    }
    if claim.answered_at.is_none() {
        patch["metadata"]["annotations"][ANSWERED_AT] = serde_json::Value::Null;
    }
    let has_location = matches!(
        &claim.answer,
        Some(ClaimAnswer::Accepted { location: Some(_) })
    );
    if !has_location {
        patch["metadata"]["annotations"][LOCATION] = serde_json::Value::Null;
    }
}

/// The claim a Lease holds; `None` when its annotations do not read.
fn read_claim(lease: &Lease) -> Option<Claim> {
    let a = lease.metadata.annotations.as_ref()?;
    let get = |k: &str| a.get(k).map(String::as_str);
    let time = |k: &str| get(k)?.parse::<Timestamp>().ok();
    let (namespace, name) = get(CLAIMANT)?.split_once('/')?;
    let answer = match get(ANSWER) {
        None => None,
        Some("cancelled") => Some(ClaimAnswer::Cancelled),
        Some("accepted") => Some(ClaimAnswer::Accepted {
            location: get(LOCATION).map(str::to_string),
        }),
        Some(_) => return None,
    };
    Some(Claim {
        claimant: Claimant {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: get(CLAIMANT_UID)?.to_string(),
        },
        operation: get(OPERATION)?.to_string(),
        claimed_at: time(CLAIMED_AT)?,
        in_flight_until: time(IN_FLIGHT_UNTIL)?,
        answered_at: answer.as_ref().and(time(ANSWERED_AT)),
        answer,
        version: lease.metadata.resource_version.clone().unwrap_or_default(),
    })
}

/// A Lease by our name whose annotations do not read (edited by hand, or
/// by a release that wrote them otherwise): held by nobody, its window
/// long past, so the next resource that finds its operation running with
/// no cancel listed takes it over, fenced on its version.
fn unreadable(lease: &Lease) -> Claim {
    tracing::warn!(
        claim = lease.metadata.name.as_deref().unwrap_or_default(),
        "a claim's annotations do not read; it is taken for one whose window has passed"
    );
    Claim {
        claimant: Claimant {
            namespace: String::new(),
            name: String::new(),
            uid: String::new(),
        },
        operation: String::new(),
        claimed_at: Timestamp::UNIX_EPOCH,
        in_flight_until: Timestamp::UNIX_EPOCH,
        answer: None,
        answered_at: None,
        version: lease.metadata.resource_version.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(answer: Option<ClaimAnswer>) -> Claim {
        Claim {
            claimant: Claimant {
                namespace: "team-a".into(),
                name: "cancel".into(),
                uid: "u-1".into(),
            },
            operation: "publish-1".into(),
            claimed_at: "2026-12-01T10:00:00Z".parse().expect("time"),
            in_flight_until: "2026-12-01T10:00:40Z".parse().expect("time"),
            answer,
            answered_at: None,
            version: "12".into(),
        }
    }

    fn as_stored(c: &Claim) -> Lease {
        let mut l = lease(&claim_name("offer/contoso/o"), "offer/contoso/o", c);
        l.metadata.resource_version = Some("12".into());
        l
    }

    #[test]
    fn a_claim_reads_back_as_written() {
        for answer in [
            None,
            Some(ClaimAnswer::Cancelled),
            Some(ClaimAnswer::Accepted { location: None }),
            Some(ClaimAnswer::Accepted {
                location: Some("/api/operations/x?api-version=1".into()),
            }),
        ] {
            let c = claim(answer);
            assert_eq!(read_claim(&as_stored(&c)), Some(c.clone()));
            let answered_at = c.answer.as_ref().map(|_| c.claimed_at);
            let timed = Claim { answered_at, ..c };
            assert_eq!(read_claim(&as_stored(&timed)), Some(timed));
        }
    }

    #[test]
    fn an_unreadable_claim_is_held_by_nobody_and_long_expired() {
        let mut l = as_stored(&claim(None));
        if let Some(a) = l.metadata.annotations.as_mut() {
            a.insert(IN_FLIGHT_UNTIL.into(), "soon".into());
        }
        assert_eq!(read_claim(&l), None);
        let c = unreadable(&l);
        assert_eq!(c.version, "12");
        assert_eq!(c.in_flight_until, Timestamp::UNIX_EPOCH);
        assert!(c.claimant.uid.is_empty());
    }

    #[test]
    fn claim_names_are_lease_names_one_per_key() {
        let a = claim_name("offer/contoso/o");
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert_ne!(a, claim_name("offer/contoso/p"));
        assert_eq!(a, claim_name("offer/contoso/o"));
    }

    #[test]
    fn a_take_over_removes_the_old_answer() {
        let c = claim(None);
        let mut patch = serde_json::to_value(as_stored(&c)).expect("json");
        clear_answer(&mut patch, &c);
        assert!(patch["metadata"]["annotations"][ANSWER].is_null());
        assert!(patch["metadata"]["annotations"][ANSWERED_AT].is_null());
        assert!(
            patch["metadata"]["annotations"]
                .as_object()
                .is_some_and(|a| a.contains_key(ANSWER)),
            "set to null, so the merge removes it"
        );
    }
}
