//! A preview (`spec.preview: true`): what the cancel would be for, read
//! from the target's record and recorded, with nothing sent; and what
//! turning it off confirms (that operation, and no other). It decides
//! nothing else: a record that shows nothing to cancel fails as a cancel
//! would ([`super::transition`]), since confirming would send nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

use super::conditions::{Readiness, notice, set_readiness};
use super::model::{Outcome, Requeue, Step, Transition, reason};
use super::observed::{Observed, Stage, stage, stale};
use super::target::Targeting;
use super::words::words;
use crate::crd::{OfferCancellationStatus, Phase, TargetOperation};

/// What the decision does with a previewed resource: `None` when it is not
/// one (a first cancel goes on as usual).
pub(super) fn next_step(obs: &Observed) -> Option<Step> {
    if stage(&obs.status) != Stage::Fresh || obs.status.previewed_at.is_none() {
        return None;
    }
    if obs.spec.is_preview() {
        return Some(match (stale(obs), until_not_after(obs)) {
            (true, _) => Step::Record(Outcome::Acknowledged),
            (false, Requeue::After(wait)) => Step::Wait(wait),
            (false, _) => Step::Idle,
        });
    }
    // Confirmed; a preview that found a cancel already running and no
    // operation of its own recorded nothing to confirm.
    obs.status.target_operation.is_none().then(|| {
        Step::Record(Outcome::Rejected {
            reason: reason::NOTHING_TO_CANCEL,
            message: "the preview recorded no operation to cancel; nothing was sent".into(),
            cancel_status: None,
        })
    })
}

/// Why a preview that found only another request's cancel running fails:
/// confirming it could send nothing of its own.
pub(super) const ONLY_ANOTHER_CANCEL: &str = "preview: a cancel is already in progress on the target and no operation of its own is; confirming would send nothing";

/// Whether this resource is a preview its user confirmed: from then on
/// (retries included) it cancels what the preview recorded, and nothing
/// else, as if `operationId` named it.
pub(super) fn confirmed(obs: &Observed) -> bool {
    obs.status.previewed_at.is_some() && !obs.spec.is_preview()
}

/// The operation a confirmed preview cancels: the one it recorded.
pub(super) fn confirmed_operation(obs: &Observed) -> Option<&str> {
    let confirmed = confirmed(obs) && stage(&obs.status) == Stage::Fresh;
    let target = obs.status.target_operation.as_ref();
    target.filter(|_| confirmed).map(|t| t.id.as_str())
}

/// Whether what the target's record says is for a preview to record: a
/// cancel would be sent, or another's cancel of the same operation would
/// be followed. Anything else means nothing would be sent, and fails as a
/// cancel would.
pub(super) fn records(obs: &Observed, found: &Targeting) -> bool {
    let recordable = match found {
        Targeting::Send(_) => true,
        Targeting::Follow { target, .. } => target.is_some(),
        _ => false,
    };
    obs.spec.is_preview() && recordable
}

/// When a recorded preview is looked at again though nothing changes:
/// at `notAfter`, to end as Expired. Anything else: never.
pub(super) fn wake(obs: &Observed) -> Requeue {
    let previewing = obs.spec.is_preview()
        && obs.status.previewed_at.is_some()
        && stage(&obs.status) == Stage::Fresh;
    match previewing {
        true => until_not_after(obs),
        false => Requeue::Never,
    }
}

/// Records what a cancel would be for: Pending, `PreviewReady`, nothing
/// sent, looked at again only when the spec changes (or when `notAfter`
/// passes, which ends it).
pub(super) fn ready(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    found: Targeting,
) -> Transition {
    let (target, following) = match found {
        Targeting::Send(target) => (Some(target), false),
        Targeting::Follow { target, .. } => (target, true),
        _ => (None, false),
    };
    // `records` let in only an operation to cancel.
    let message = message(obs, target.as_ref(), following);
    next.phase = Some(Phase::Pending);
    next.target_operation = target;
    next.previewed_at = Some(Time(obs.now));
    next.credentials_version = obs.credentials_version.clone();
    set_readiness(
        obs,
        &mut next,
        Readiness::AwaitingConfirmation,
        reason::PREVIEW_READY,
        &message,
    );
    Transition {
        status: next,
        requeue: until_not_after(obs),
        notice: notice(reason::PREVIEW_READY, false, &message),
        post: false,
        progress: None,
        claim: None,
    }
}

fn message(obs: &Observed, target: Option<&TargetOperation>, following: bool) -> String {
    let confirm = "set spec.preview to false to confirm";
    let Some(target) = target else {
        return ONLY_ANOTHER_CANCEL.into();
    };
    let what = describe(target);
    match following {
        true => format!(
            "preview: the cancel of {what} was already requested; confirming follows it and sends nothing ({confirm})"
        ),
        false => format!(
            "preview: would cancel {what} through {}; nothing was sent ({confirm})",
            words(obs).api
        ),
    }
}

/// `publish 7f3c… started 2026-12-08T10:00:00Z`.
fn describe(target: &TargetOperation) -> String {
    let kind = target.type_.as_deref().unwrap_or("operation");
    match &target.created {
        Some(started) => format!("{kind} {} started {:.0}", target.id, started.0),
        None => format!("{kind} {}", target.id),
    }
}

/// A preview past `notAfter` could never be confirmed: it is looked at
/// again then, to end as Expired.
fn until_not_after(obs: &Observed) -> Requeue {
    let Some(at) = obs.spec.not_after.as_ref() else {
        return Requeue::Never;
    };
    let left = Duration::try_from(obs.now.duration_until(at.0)).unwrap_or(Duration::ZERO);
    Requeue::After(left + Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::OfferCancellation;
    use crate::decide::{Call, Listing, Said, condition, meaning, next_step, transition};
    use crate::fixtures::{at, intent};
    use crate::operation::Operation;

    fn operation(id: &str, status: &str) -> Operation {
        Operation {
            id: Some(id.into()),
            kind: Some("publish".into()),
            status: status.into(),
            ..Operation::default()
        }
    }

    /// What the target's record says, read for `obs`, as the decision
    /// takes it.
    fn read(obs: &Observed, ops: Vec<Operation>) -> Transition {
        let listing = Listing {
            operations: ops,
            ..Listing::default()
        };
        transition(obs, meaning(obs, Said::Target(Ok(listing))))
    }

    /// The reason the Ready condition gives after `t`.
    fn ready_reason(t: &Transition) -> Option<&str> {
        let ready = t
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == condition::READY);
        ready.map(|c| c.reason.as_str())
    }

    #[test]
    fn a_preview_records_the_running_operation_and_sends_nothing() {
        let obs = OfferCancellation::test().previewing().observed();
        assert_eq!(next_step(&obs), Step::Call(Call::ReadTarget));
        let mut obs = obs;
        let t = obs.apply(intent());
        assert!(!t.post, "a preview never sends");
        assert_eq!(t.claim, None, "nor claims the target");
        assert_eq!(t.requeue, Requeue::Never);
        assert_eq!(t.status.phase, Some(Phase::Pending));
        assert_eq!(t.status.requested_at, None);
        assert_eq!(t.status.previewed_at, Some(Time(at(0))));
        let target = t.status.target_operation.as_ref().map(|t| t.id.as_str());
        assert_eq!(target, Some("publish-1"));
        let message = t.status.message.clone().unwrap_or_default();
        assert!(
            message.contains("would cancel publish publish-1"),
            "{message}"
        );
        let readiness = [condition::READY, condition::RECONCILING, condition::STALLED]
            .map(|kind| obs.condition(kind));
        assert_eq!(
            readiness.map(|(status, reason)| format!("{status}/{reason}")),
            [
                "False/PreviewReady",
                "True/PreviewReady",
                "False/PreviewReady"
            ],
            "neither done nor failed"
        );
        assert_eq!(t.notice.map(|n| n.reason), Some(reason::PREVIEW_READY));
        assert_eq!(next_step(&obs), Step::Idle, "read once");
    }

    #[test]
    fn confirming_cancels_the_previewed_operation_while_it_runs() {
        let obs = OfferCancellation::test().previewed().confirmed().observed();
        assert_eq!(next_step(&obs), Step::Call(Call::ReadTarget));
        assert_eq!(obs.operation_named(), Some("publish-1"));
        let ops = vec![
            operation("publish-0", "running"),
            operation("publish-1", "running"),
        ];
        let t = read(&obs, ops);
        assert!(t.post, "the cancel is sent");
        let target = t.status.target_operation.map(|t| t.id);
        assert_eq!(target.as_deref(), Some("publish-1"));
    }

    #[test]
    fn a_publish_started_after_the_preview_is_never_cancelled() {
        let obs = OfferCancellation::test().previewed().confirmed().observed();
        let ops = vec![
            operation("publish-1", "canceled"),
            operation("publish-2", "running"),
        ];
        let t = read(&obs, ops);
        assert!(!t.post);
        assert_eq!(t.status.phase, Some(Phase::Failed));
        assert_eq!(ready_reason(&t), Some(reason::OPERATION_ENDED));
    }

    #[test]
    fn a_preview_that_finds_nothing_to_cancel_fails_as_the_cancel_would() {
        let obs = OfferCancellation::test().previewing().observed();
        let t = read(&obs, vec![operation("publish-1", "succeeded")]);
        assert!(!t.post);
        assert_eq!(t.status.phase, Some(Phase::Failed));
        assert_eq!(ready_reason(&t), Some(reason::NOTHING_TO_CANCEL));
    }

    #[test]
    fn a_preview_of_a_cancel_already_running_confirms_only_its_operation() {
        let mut cancel = operation("cancel-1", "running");
        cancel.kind = Some("cancel".into());
        let obs = OfferCancellation::test().previewing().observed();
        let t = read(
            &obs,
            vec![operation("publish-1", "running"), cancel.clone()],
        );
        assert_eq!(t.status.operation_location, None, "nothing followed yet");
        assert_eq!(t.status.phase, Some(Phase::Pending));
        let message = t.status.message.clone().unwrap_or_default();
        assert!(message.contains("confirming follows it"), "{message}");
        let mut previewed = OfferCancellation::test().previewing();
        previewed.status = Some(t.status);
        let confirmed = previewed.confirmed().observed();
        assert_eq!(confirmed.operation_named(), Some("publish-1"));
    }

    #[test]
    fn an_edit_that_keeps_the_preview_is_only_acknowledged() {
        let obs = OfferCancellation::test().previewed().edited().observed();
        assert_eq!(next_step(&obs), Step::Record(Outcome::Acknowledged));
        let t = transition(&obs, Outcome::Acknowledged);
        assert_eq!(t.status.observed_generation, Some(2));
        assert_eq!(t.status.previewed_at, obs.status.previewed_at);
    }

    #[test]
    fn a_preview_ends_expired_at_not_after() {
        let mut previewing = OfferCancellation::test().previewing();
        previewing.spec.not_after = Some(Time(at(60)));
        let t = transition(&previewing.observed(), intent());
        assert_eq!(t.requeue, Requeue::After(Duration::from_secs(61)));
        previewing.status = Some(t.status);
        let mut later = previewing.observed();
        assert!(matches!(next_step(&later), Step::Wait(_)));
        later.now = at(60);
        assert_eq!(next_step(&later), Step::Record(Outcome::Expired));
    }

    #[test]
    fn a_retried_preview_previews_again() {
        let mut failed = OfferCancellation::test()
            .previewing()
            .after([Outcome::Rejected {
                reason: reason::NOTHING_TO_CANCEL,
                message: "nothing".into(),
                cancel_status: None,
            }]);
        failed
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(crate::crd::RETRY_ANNOTATION.into(), "1".into());
        let mut obs = failed.observed();
        assert_eq!(next_step(&obs), Step::Record(Outcome::Restarted));
        obs.apply(Outcome::Restarted);
        assert_eq!(obs.status.previewed_at, None);
        assert_eq!(next_step(&obs), Step::Call(Call::ReadTarget));
        obs.apply(intent());
        assert_eq!(obs.condition(condition::READY).1, reason::PREVIEW_READY);
    }

    #[test]
    fn a_confirmed_preview_rearmed_by_a_rotated_secret_cancels_only_its_operation() {
        let mut obs = OfferCancellation::test().previewed().confirmed().observed();
        obs.apply(Outcome::Rejected {
            reason: reason::CREDENTIALS_REJECTED,
            message: "AADSTS7000222: client secret expired".into(),
            cancel_status: None,
        });
        assert_eq!(obs.status.phase, Some(Phase::Failed));
        obs.credentials_version = Some("101".into());
        let Step::Record(outcome) = next_step(&obs) else {
            panic!("re-armed: {:?}", next_step(&obs));
        };
        obs.apply(outcome);
        assert_eq!(
            obs.operation_named(),
            Some("publish-1"),
            "still the previewed one"
        );
        let ops = vec![
            operation("publish-1", "canceled"),
            operation("publish-2", "running"),
        ];
        let t = read(&obs, ops);
        assert!(!t.post, "publish-2 was never previewed");
    }

    #[test]
    fn a_preview_that_finds_only_another_cancel_would_send_nothing() {
        let mut cancel = operation("cancel-1", "running");
        cancel.kind = Some("cancel".into());
        let obs = OfferCancellation::test().previewing().observed();
        let t = read(&obs, vec![cancel]);
        assert!(!t.post);
        assert_eq!(
            t.status.phase,
            Some(Phase::Failed),
            "confirming could send nothing"
        );
        assert_eq!(t.status.operation_location, None, "and nothing is followed");
    }

    #[test]
    fn an_edited_preview_still_wakes_at_not_after() {
        let mut previewing = OfferCancellation::test().previewing();
        previewing.spec.not_after = Some(Time(at(60)));
        let previewed = previewing.after([intent()]).edited();
        let obs = previewed.observed();
        assert_eq!(next_step(&obs), Step::Record(Outcome::Acknowledged));
        let t = transition(&obs, Outcome::Acknowledged);
        assert_eq!(t.requeue, Requeue::After(Duration::from_secs(61)));
    }
}
