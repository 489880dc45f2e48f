//! What re-arms a Failed resource: the one table, as a pure function of
//! what is observed. A Failed resource is kept by GitOps users for weeks,
//! and its labels, unrelated spec fields and Secret change for reasons
//! of their own; a new attempt reads the list and may cancel a publish
//! started long after the failure. So only an explicit ask, or a change
//! that answers the recorded failure, tries again (the README's table).

use jiff::Timestamp;

use super::model::{condition, reason};
use super::observed::{Observed, Stage, stage, stale};
use crate::crd::OfferCancellationStatus;

/// Why a Failed resource gets a new attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rearm {
    /// `offercancel.dev/retry` has a new, non-empty value.
    RetryAnnotation,
    /// The Secret changed, and the failure was about credentials.
    CredentialsChanged,
    /// `spec.notAfter` moved past the moment the resource expired (or was
    /// removed), and the failure was `Expired`.
    NotAfterMoved,
    /// `spec.timeoutSeconds` changed so that the attempt would not have
    /// timed out when it did (or was removed), and the failure was `Timeout`.
    TimeoutMoved,
    /// The spec changed, and the failure was that the spec was invalid.
    SpecChanged,
    /// A retry an earlier release began and left Failed in the middle
    /// (a transient error, or a Secret missing, on its way): it goes on.
    Unfinished,
}

impl Rearm {
    /// In words, for the retry's message.
    pub fn describe(self) -> &'static str {
        match self {
            Rearm::RetryAnnotation => "the retry annotation has a new value",
            Rearm::CredentialsChanged => "the credentials Secret changed",
            Rearm::NotAfterMoved => "spec.notAfter moved later",
            Rearm::TimeoutMoved => "spec.timeoutSeconds moved later",
            Rearm::SpecChanged => "the spec changed",
            Rearm::Unfinished => "a retry an earlier release began was unfinished",
        }
    }
}

/// Failures that a change of the Secret can answer. (A Secret that could
/// not be read at all leaves a first cancel Pending, not Failed; 0.1.0's
/// Failed `CredentialsUnavailable` is a retry left unfinished, below.)
const CREDENTIALS_FAILURES: [&str; 3] = [
    reason::CREDENTIALS_REJECTED,
    reason::UNAUTHORIZED,
    reason::FORBIDDEN,
];

/// Reasons no failure is recorded with: a Failed resource that shows one
/// is a retry in the middle, as 0.1.0 left its retries (it kept them
/// Failed through a transient error or a missing Secret). This release
/// starts a retry over as Pending, so never writes them on a Failed one.
const NOT_A_FAILURE: [&str; 2] = [reason::TRANSIENT_ERROR, reason::CREDENTIALS_UNAVAILABLE];

/// Whether, and why, a Failed resource is tried again. Nothing else
/// re-arms it: not a label, not another annotation, not the retry
/// annotation's removal, not a spec edit that leaves the failure as it
/// was, and for a failure about the target (nothing to cancel, ended,
/// not found, refused) not the Secret either: only the annotation.
pub(super) fn rearmed(obs: &Observed) -> Option<Rearm> {
    if stage(&obs.status) != Stage::Failed {
        return None;
    }
    if new_retry_request(obs) {
        return Some(Rearm::RetryAnnotation);
    }
    let failure = failure_reason(&obs.status)?;
    if NOT_A_FAILURE.contains(&failure) {
        return Some(Rearm::Unfinished);
    }
    let spec_changed = stale(obs);
    match failure {
        r if CREDENTIALS_FAILURES.contains(&r) && secret_changed(obs) => {
            Some(Rearm::CredentialsChanged)
        }
        reason::EXPIRED if spec_changed && not_after_moved(obs) => Some(Rearm::NotAfterMoved),
        reason::TIMEOUT if spec_changed && timeout_moved(obs) => Some(Rearm::TimeoutMoved),
        reason::INVALID_SPEC if spec_changed => Some(Rearm::SpecChanged),
        _ => None,
    }
}

/// A value of the retry annotation that no attempt answered yet; its
/// removal, an empty value, or a value answered before asks for nothing
/// (GitOps self-heal undoing a `kubectl annotate` must not retry).
fn new_retry_request(obs: &Observed) -> bool {
    let status = &obs.status;
    obs.retry_request.as_deref().is_some_and(|v| {
        !v.is_empty()
            && Some(v) != status.retry_request.as_deref()
            && !status.earlier_retry_requests.iter().any(|e| e == v)
    })
}

/// The reason the failure was recorded with (the Ready condition's).
pub(super) fn failure_reason(status: &OfferCancellationStatus) -> Option<&str> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::READY)
        .map(|c| c.reason.as_str())
}

/// The Secret is readable now at another version than the attempt used
/// (also when that attempt could not read it at all).
fn secret_changed(obs: &Observed) -> bool {
    obs.credentials_version.is_some()
        && obs.credentials_version.as_deref() != obs.status.credentials_version.as_deref()
}

/// When the failure was recorded; without it, no spec change can be
/// shown to answer it.
fn failed_at(status: &OfferCancellationStatus) -> Option<Timestamp> {
    status.completed_at.as_ref().map(|t| t.0)
}

/// `notAfter` now lies past the moment the resource was found expired.
fn not_after_moved(obs: &Observed) -> bool {
    let Some(failed) = failed_at(&obs.status) else {
        return false;
    };
    match &obs.spec.not_after {
        None => true,
        Some(t) => t.0 > failed && t.0 > obs.now,
    }
}

/// With today's `timeoutSeconds` the attempt would not have timed out
/// when it did.
fn timeout_moved(obs: &Observed) -> bool {
    let status = &obs.status;
    let (Some(failed), Some(started)) = (
        failed_at(status),
        status.started_at.as_ref().or(status.requested_at.as_ref()),
    ) else {
        return false;
    };
    match obs.spec.timeout_seconds {
        None => true,
        Some(seconds) => started
            .0
            .checked_add(jiff::SignedDuration::from_secs(seconds.into()))
            .is_ok_and(|deadline| deadline > failed),
    }
}

#[cfg(test)]
mod tests {
    //! The README's re-arm table, row by row.

    use super::*;
    use crate::crd::{OfferCancellation, Phase};
    use crate::decide::{Outcome, transition};
    use crate::fixtures::{at, intent};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const TARGET_FAILURES: [&str; 12] = [
        reason::NOTHING_TO_CANCEL,
        reason::OPERATION_ENDED,
        reason::OPERATION_NOT_FOUND,
        reason::OFFER_NOT_FOUND,
        reason::JOB_NOT_FOUND,
        reason::JOB_ALREADY_COMPLETED,
        reason::OPERATION_FAILED,
        reason::BAD_REQUEST,
        reason::NOT_FOUND,
        reason::CONFLICT,
        reason::REJECTED,
        reason::LOCATION_UNAVAILABLE,
    ];

    /// Failed with `why` at t=100 (its `notAfter` at 90, its timeout 60 s),
    /// its Secret at version 100, the retry annotation `annotation`
    /// answered; seen three weeks later.
    fn failed(why: &'static str, annotation: Option<&str>) -> Observed {
        let mut obs = OfferCancellation::test().with_timeout(60).observed();
        obs.spec.not_after = Some(Time(at(90)));
        obs.retry_request = annotation.map(Into::into);
        for (secs, outcome) in [
            (0, intent()),
            (
                100,
                Outcome::Rejected {
                    reason: why,
                    message: "refused".into(),
                    cancel_status: None,
                },
            ),
        ] {
            obs.now = at(secs);
            let t = transition(&obs, outcome);
            obs.play(&t);
        }
        assert_eq!(obs.status.phase, Some(Phase::Failed));
        assert_eq!(failure_reason(&obs.status), Some(why));
        obs.now = at(86_400 * 21);
        obs
    }

    fn edited(mut obs: Observed) -> Observed {
        obs.generation += 1;
        obs
    }

    #[test]
    fn a_new_retry_annotation_value_rearms_any_failure() {
        for why in TARGET_FAILURES.into_iter().chain(CREDENTIALS_FAILURES) {
            let mut obs = failed(why, None);
            obs.retry_request = Some("1".into());
            assert_eq!(rearmed(&obs), Some(Rearm::RetryAnnotation), "{why}");
            let mut obs = failed(why, Some("1"));
            obs.retry_request = Some("2".into());
            assert_eq!(rearmed(&obs), Some(Rearm::RetryAnnotation), "{why}");
        }
    }

    #[test]
    fn removing_or_emptying_or_repeating_the_retry_annotation_never_rearms() {
        for why in TARGET_FAILURES.into_iter().chain(CREDENTIALS_FAILURES) {
            let mut obs = failed(why, Some("1"));
            assert_eq!(rearmed(&obs), None, "{why}: the value answered");
            obs.retry_request = None;
            assert_eq!(rearmed(&obs), None, "{why}: removed");
            obs.retry_request = Some(String::new());
            assert_eq!(rearmed(&obs), None, "{why}: emptied");
        }
    }

    #[test]
    fn a_secret_change_rearms_a_credentials_failure_only() {
        for why in CREDENTIALS_FAILURES {
            let mut obs = failed(why, None);
            obs.credentials_version = Some("101".into());
            assert_eq!(rearmed(&obs), Some(Rearm::CredentialsChanged), "{why}");
            obs.credentials_version = None;
            assert_eq!(rearmed(&obs), None, "{why}: a Secret unreadable now");
        }
        for why in TARGET_FAILURES.into_iter().chain([
            reason::EXPIRED,
            reason::TIMEOUT,
            reason::INVALID_SPEC,
        ]) {
            let mut obs = failed(why, None);
            obs.credentials_version = Some("101".into());
            assert_eq!(rearmed(&obs), None, "{why}: a label on the Secret");
        }
    }

    #[test]
    fn a_secret_that_appears_rearms_a_failure_that_could_not_read_it() {
        let mut obs = failed(reason::CREDENTIALS_REJECTED, None);
        obs.status.credentials_version = None;
        obs.credentials_version = Some("7".into());
        assert_eq!(rearmed(&obs), Some(Rearm::CredentialsChanged));
    }

    #[test]
    fn a_failed_resource_showing_no_failure_is_a_retry_left_unfinished() {
        for left in NOT_A_FAILURE {
            let obs = failed(left, None);
            assert_eq!(rearmed(&obs), Some(Rearm::Unfinished), "{left}");
        }
    }

    #[test]
    fn an_unrelated_spec_edit_never_rearms() {
        for why in TARGET_FAILURES
            .into_iter()
            .chain(CREDENTIALS_FAILURES)
            .chain([reason::EXPIRED, reason::TIMEOUT])
        {
            let mut obs = edited(failed(why, None));
            obs.spec.notification_emails = vec!["jondoe@contoso.com".into()];
            assert_eq!(rearmed(&obs), None, "{why}");
        }
    }

    #[test]
    fn not_after_moved_later_rearms_an_expired_resource() {
        let expired = edited(failed(reason::EXPIRED, None));
        let mut later = expired.clone();
        later.spec.not_after = Some(Time(later.now + jiff::SignedDuration::from_hours(1)));
        assert_eq!(rearmed(&later), Some(Rearm::NotAfterMoved));
        let mut removed = expired.clone();
        removed.spec.not_after = None;
        assert_eq!(rearmed(&removed), Some(Rearm::NotAfterMoved));
        let mut still_past = expired.clone();
        still_past.spec.not_after = Some(Time(at(200)));
        assert_eq!(rearmed(&still_past), None, "moved, but not past now");
        let mut earlier = expired;
        earlier.spec.not_after = Some(Time(at(50)));
        assert_eq!(rearmed(&earlier), None);
    }

    #[test]
    fn timeout_moved_later_rearms_a_timed_out_resource() {
        let timed_out = edited(failed(reason::TIMEOUT, None));
        let mut raised = timed_out.clone();
        raised.spec.timeout_seconds = Some(3600);
        assert_eq!(rearmed(&raised), Some(Rearm::TimeoutMoved));
        let mut removed = timed_out.clone();
        removed.spec.timeout_seconds = None;
        assert_eq!(rearmed(&removed), Some(Rearm::TimeoutMoved));
        let mut lowered = timed_out.clone();
        lowered.spec.timeout_seconds = Some(30);
        assert_eq!(rearmed(&lowered), None);
        assert_eq!(rearmed(&timed_out), None, "the same timeout");
    }

    #[test]
    fn a_spec_change_rearms_an_invalid_spec() {
        let invalid = failed(reason::INVALID_SPEC, None);
        assert_eq!(rearmed(&invalid), None);
        assert_eq!(rearmed(&edited(invalid)), Some(Rearm::SpecChanged));
    }

    #[test]
    fn cancelled_and_unfinished_resources_are_never_rearmed() {
        for resource in [
            OfferCancellation::test().cancelled(),
            OfferCancellation::test().in_doubt(),
            OfferCancellation::test().polling("/op"),
            OfferCancellation::test(),
        ] {
            let mut obs = edited(resource.observed());
            obs.retry_request = Some("again".into());
            obs.credentials_version = Some("999".into());
            assert_eq!(rearmed(&obs), None, "{:?}", obs.status.phase);
        }
    }
}
