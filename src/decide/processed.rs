//! What a cancelled configure job had already processed. A job's cancel
//! stops only the resources not yet processed; the others stay applied,
//! and status says which (docs/product-ingestion-api.md). The job's
//! detail is read once, after the job reads cancelled; it changes nothing
//! else: the cancel's outcome stands whatever the detail says.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

use super::conditions::{Readiness, set_readiness};
use super::model::{Failure, FailureClass, Outcome, Requeue, Transition, reason};
use super::observed::{Observed, Stage, stage};
use crate::crd::{
    JobResource, MAX_PROCESSED_RESOURCES, OfferCancellationStatus, ProcessedResources,
};

/// Transient errors in a row after which the detail is given up on.
const MAX_DETAIL_ERRORS: u32 = 5;

/// States of a resource the job had not processed: what its cancel
/// stopped. Any other state (`succeeded`, `failed`, one the reference does
/// not name, or none) counts as processed: better said applied than not.
const NOT_PROCESSED: [&str; 6] = [
    "notStarted",
    "pending",
    "cancelled",
    "canceled",
    "skipped",
    "notProcessed",
];

/// Whether a cancelled job's detail is still to be read. Only a status
/// this release marked (on reaching Cancelled) asks for it: resources an
/// earlier release finished read nothing more.
pub(super) fn pending(obs: &Observed) -> bool {
    stage(&obs.status) == Stage::Cancelled
        && obs
            .status
            .processed_resources
            .as_ref()
            .is_some_and(|p| p.read_at.is_none())
}

/// Whether `outcome` ends a job cancelled with its detail still to read:
/// the round then reads it before it writes, so both take one write.
pub fn read_after(obs: &Observed, outcome: &Outcome) -> bool {
    // Only an outcome that ends the job here: a round that read the
    // detail (or failed to) has had its one read.
    let detail = matches!(
        outcome,
        Outcome::EndedWithDetail(..) | Outcome::JobDetail(_)
    );
    if obs.spec.product_ingestion.is_none() || detail || pending(obs) {
        return false;
    }
    let ended = super::transition(obs, outcome.clone()).status;
    let pending = |p: &ProcessedResources| p.read_at.is_none();
    ended.phase == Some(crate::crd::Phase::Cancelled)
        && ended.processed_resources.as_ref().is_some_and(pending)
}

/// The job's end (`ended`), with what its detail showed; a detail that
/// must be asked again leaves the end as it is, to be written alone.
pub(super) fn after(
    obs: &Observed,
    ended: Transition,
    read: Result<Vec<JobResource>, Failure>,
) -> Transition {
    // The detail's own tries start here, whatever errors the cancel met.
    let detail = recorded_after(obs, ended.status.clone(), read, 0);
    let asked_again = matches!(detail.requeue, Requeue::Backoff { .. });
    Transition {
        status: if asked_again {
            ended.status
        } else {
            detail.status
        },
        requeue: detail.requeue,
        ..ended
    }
}

/// Why the detail could not be asked for (the Secret gone or unusable
/// since the cancel ended: often deleted once a cancel is done), as a
/// failure of the detail alone: the cancel's outcome stands.
pub(super) fn not_asked(why: &super::model::NotAsked) -> Failure {
    use super::model::NotAsked::*;
    let (NoCredentials(m) | UnusableCredentials(m) | NoTarget(m)) = why;
    Failure {
        class: FailureClass::Terminal(super::model::Refusal::Unsent),
        message: format!("no usable credentials to read it: {m}"),
    }
}

/// Marks a job reaching Cancelled: its detail is read next.
pub(super) fn mark(obs: &Observed, next: &mut OfferCancellationStatus) -> bool {
    let job = obs.spec.product_ingestion.is_some();
    if job && next.processed_resources.is_none() {
        next.processed_resources = Some(ProcessedResources::default());
    }
    job
}

/// Records what the detail showed (or why it could not be read: after a
/// terminal failure, or a streak of transient ones).
pub(super) fn recorded(
    obs: &Observed,
    next: OfferCancellationStatus,
    read: Result<Vec<JobResource>, Failure>,
) -> Transition {
    recorded_after(obs, next, read, obs.errors_in_row)
}

/// [`recorded`], after `tries` failed reads of the detail in a row. A
/// failure that may pass (a busy API, a token source not there yet) is
/// asked again, up to [`MAX_DETAIL_ERRORS`] in a row.
fn recorded_after(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    read: Result<Vec<JobResource>, Failure>,
    tries: u32,
) -> Transition {
    let may_pass = |class: &FailureClass| match class {
        FailureClass::Transient { retry_after } => Some(*retry_after),
        FailureClass::SourceUnavailable => Some(None),
        FailureClass::Terminal(_) => None,
    };
    let record = match read {
        Ok(resources) => of(resources),
        Err(Failure { ref class, .. })
            if tries + 1 < MAX_DETAIL_ERRORS && may_pass(class).is_some() =>
        {
            return again(obs, tries, may_pass(class).flatten());
        }
        Err(failure) => ProcessedResources {
            error: Some(crate::text::clip(
                &failure.message,
                crate::crd::MAX_MESSAGE_LEN,
            )),
            ..ProcessedResources::default()
        },
    };
    let message = message(next.message.as_deref().unwrap_or("cancelled"), &record);
    next.processed_resources = Some(ProcessedResources {
        read_at: Some(Time(obs.now)),
        ..record
    });
    let why = ready_reason(&next);
    set_readiness(obs, &mut next, Readiness::Succeeded, &why, &message);
    Transition {
        status: next,
        requeue: Requeue::Never,
        notice: None,
        post: false,
        progress: None,
        claim: None,
    }
}

/// The reason the cancel ended with (`Cancelled`, `CancelShared`, ...):
/// the detail adds to its message, not to its reason.
fn ready_reason(status: &OfferCancellationStatus) -> String {
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == super::model::condition::READY);
    ready.map_or_else(|| reason::CANCELLED.to_string(), |c| c.reason.clone())
}

/// Nothing written: the detail is asked again after a backoff.
fn again(obs: &Observed, tries: u32, retry_after: Option<Duration>) -> Transition {
    let mut status = obs.status.clone();
    status.observed_generation = Some(obs.generation);
    Transition {
        status,
        requeue: Requeue::Backoff {
            errors: tries.saturating_add(1),
            at_least: retry_after.unwrap_or_default(),
        },
        notice: None,
        post: false,
        progress: None,
        claim: None,
    }
}

/// The processed resources, at most [`MAX_PROCESSED_RESOURCES`], the rest
/// counted.
fn of(resources: Vec<JobResource>) -> ProcessedResources {
    let processed: Vec<JobResource> = resources
        .into_iter()
        .filter(|r| {
            !NOT_PROCESSED
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&r.state))
        })
        .collect();
    let more = processed.len().saturating_sub(MAX_PROCESSED_RESOURCES);
    ProcessedResources {
        resources: processed
            .into_iter()
            .take(MAX_PROCESSED_RESOURCES)
            .collect(),
        more: u32::try_from(more).unwrap_or(u32::MAX),
        ..ProcessedResources::default()
    }
}

/// The cancel's message, and what it left applied.
fn message(cancelled: &str, record: &ProcessedResources) -> String {
    let cancelled = cancelled
        .split("; it had already processed")
        .next()
        .unwrap_or(cancelled);
    if let Some(error) = &record.error {
        return format!(
            "{cancelled}; what the job had already processed could not be read: {error}"
        );
    }
    let count = record.resources.len() + record.more as usize;
    if count == 0 {
        return format!("{cancelled}; it had already processed no resource");
    }
    let named: Vec<String> = record
        .resources
        .iter()
        .take(3)
        .map(|r| format!("{} ({})", r.id, r.state))
        .collect();
    let rest = if count > named.len() { ", ..." } else { "" };
    format!(
        "{cancelled}; it had already processed {count} resource(s), which the cancel left applied: {}{rest} (status.processedResources)",
        named.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{OfferCancellation, Phase};
    use crate::decide::{Call, Outcome, Step, next_step, transition};
    use crate::fixtures::intent;
    use crate::operation::CancelOutcome;

    fn resource(i: usize, state: &str) -> JobResource {
        JobResource {
            id: format!("plan/{i}"),
            kind: Some("plan".into()),
            state: state.into(),
        }
    }

    fn cancelled_job() -> Observed {
        let job = OfferCancellation::test().job("job-1");
        job.after([intent(), Outcome::Answered(CancelOutcome::Cancelled)])
            .observed()
    }

    fn busy() -> Failure {
        Failure {
            class: FailureClass::Transient { retry_after: None },
            message: "HTTP 503".into(),
        }
    }

    #[test]
    fn a_cancelled_job_reads_its_detail_once_and_an_offer_never() {
        let job = cancelled_job();
        assert_eq!(job.status.phase, Some(Phase::Cancelled));
        assert_eq!(next_step(&job), Step::Call(Call::ReadJobDetail));
        assert!(job.needs_credentials(), "the detail is read with them");
        let mut read = job.clone();
        let t = read.apply(Outcome::JobDetail(Ok(vec![
            resource(0, "succeeded"),
            resource(1, "cancelled"),
            resource(2, "notStarted"),
        ])));
        assert_eq!(t.requeue, Requeue::Never);
        let processed = t.status.processed_resources.clone().unwrap_or_default();
        assert_eq!(processed.resources, [resource(0, "succeeded")]);
        assert!(processed.read_at.is_some());
        let message = t.status.message.unwrap_or_default();
        assert!(
            message.contains("it had already processed 1 resource(s), which the cancel left applied: plan/0 (succeeded)"),
            "{message}"
        );
        assert_eq!(
            read.condition("Ready"),
            ("True".into(), reason::CANCELLED.into())
        );
        assert_eq!(next_step(&read), Step::Idle, "read once");
        let offer = OfferCancellation::test().cancelled().observed();
        assert_eq!(offer.status.processed_resources, None);
        assert_eq!(next_step(&offer), Step::Idle);
    }

    #[test]
    fn a_job_an_earlier_release_cancelled_reads_nothing_more() {
        let mut earlier = cancelled_job();
        earlier.status.processed_resources = None;
        assert_eq!(next_step(&earlier), Step::Idle);
        assert!(!earlier.needs_credentials());
    }

    #[test]
    fn what_status_lists_is_bounded_and_the_rest_counted() {
        let many = (0..25).map(|i| resource(i, "succeeded")).collect();
        let t = transition(&cancelled_job(), Outcome::JobDetail(Ok(many)));
        let processed = t.status.processed_resources.unwrap_or_default();
        assert_eq!(processed.resources.len(), MAX_PROCESSED_RESOURCES);
        assert_eq!(processed.more, 5);
    }

    #[test]
    fn a_busy_detail_is_asked_again_without_a_write_then_given_up_on() {
        let mut job = cancelled_job();
        let t = transition(&job, Outcome::JobDetail(Err(busy())));
        assert_eq!(t.status, job.status, "nothing written");
        assert!(matches!(t.requeue, Requeue::Backoff { errors: 1, .. }));
        job.errors_in_row = MAX_DETAIL_ERRORS - 1;
        let t = transition(&job, Outcome::JobDetail(Err(busy())));
        let processed = t.status.processed_resources.clone().unwrap_or_default();
        assert_eq!(processed.error.as_deref(), Some("HTTP 503"));
        assert!(processed.read_at.is_some(), "not asked again");
        assert_eq!(t.status.phase, Some(Phase::Cancelled), "the cancel stands");
        let message = t.status.message.unwrap_or_default();
        assert!(message.contains("could not be read: HTTP 503"), "{message}");
    }

    #[test]
    fn a_refused_detail_is_recorded_once_and_the_cancel_stands() {
        let refused = Failure {
            class: FailureClass::Terminal(crate::decide::Refusal::Answered {
                status: 404,
                to: crate::decide::Request::Record,
            }),
            message: "HTTP 404".into(),
        };
        let mut job = cancelled_job();
        let t = job.apply(Outcome::JobDetail(Err(refused)));
        assert_eq!(t.status.phase, Some(Phase::Cancelled));
        assert_eq!(job.condition("Ready").0, "True");
        assert_eq!(next_step(&job), Step::Idle);
    }

    #[test]
    fn the_end_and_the_detail_take_one_write() {
        let accepted = OfferCancellation::test()
            .job("job-1")
            .after([intent()])
            .observed();
        let cancelled = Outcome::Answered(CancelOutcome::Cancelled);
        assert!(read_after(&accepted, &cancelled));
        let offer = OfferCancellation::test().after([intent()]).observed();
        assert!(!read_after(&offer, &cancelled), "an offer has no detail");
        let both = Outcome::EndedWithDetail(
            Box::new(cancelled.clone()),
            Ok(vec![resource(0, "succeeded")]),
        );
        assert!(!read_after(&accepted, &both));
        let t = transition(&accepted, both);
        assert_eq!(t.status.phase, Some(Phase::Cancelled));
        assert!(!t.post && t.requeue == Requeue::Never);
        let processed = t.status.processed_resources.unwrap_or_default();
        assert_eq!(processed.resources.len(), 1);
        assert_eq!(
            t.notice.map(|n| n.reason),
            Some(reason::CANCELLED),
            "the end's Event"
        );
        // A busy detail: the end is written alone, the detail asked again.
        let busy_detail = Outcome::EndedWithDetail(Box::new(cancelled), Err(busy()));
        let t = transition(&accepted, busy_detail);
        assert_eq!(t.status.phase, Some(Phase::Cancelled));
        let pending = t.status.processed_resources.clone().unwrap_or_default();
        assert_eq!(pending.read_at, None);
        assert!(matches!(t.requeue, Requeue::Backoff { .. }));
    }

    /// A job whose end was written alone, its detail still to read.
    fn pending_detail() -> Observed {
        let accepted = OfferCancellation::test().job("job-1").after([intent()]);
        let mut obs = accepted.observed();
        let ended = Outcome::EndedWithDetail(
            Box::new(Outcome::Answered(CancelOutcome::Cancelled)),
            Err(busy()),
        );
        obs.apply(ended);
        assert!(pending(&obs));
        obs
    }

    #[test]
    fn a_secret_gone_while_the_detail_waits_never_changes_the_cancel() {
        let mut obs = pending_detail();
        obs.errors_in_row = 0;
        let gone = crate::decide::NotAsked::NoCredentials("Secret cpp not found".into());
        let outcome = crate::decide::meaning(&obs, crate::decide::Said::NotAsked(gone));
        let t = obs.apply(outcome);
        assert_eq!(t.status.phase, Some(Phase::Cancelled));
        assert_eq!(
            obs.condition("Ready"),
            ("True".into(), reason::CANCELLED.into())
        );
        assert_eq!(obs.condition("Stalled").0, "False");
        let processed = t.status.processed_resources.unwrap_or_default();
        let error = processed.error.unwrap_or_default();
        assert!(error.contains("Secret cpp not found"), "{error}");
        assert_eq!(t.requeue, Requeue::Never);
        assert_eq!(next_step(&obs), Step::Idle, "not asked again");
    }

    #[test]
    fn a_round_that_read_the_detail_reads_it_no_more() {
        let obs = pending_detail();
        assert!(!read_after(&obs, &Outcome::JobDetail(Err(busy()))));
        assert!(!read_after(&obs, &Outcome::JobDetail(Ok(vec![]))));
    }

    #[test]
    fn the_detail_counts_its_own_tries_not_the_cancels_errors() {
        let mut accepted = OfferCancellation::test()
            .job("job-1")
            .after([intent()])
            .observed();
        accepted.errors_in_row = MAX_DETAIL_ERRORS - 1;
        let ended = Outcome::EndedWithDetail(
            Box::new(Outcome::Answered(CancelOutcome::Cancelled)),
            Err(busy()),
        );
        let t = transition(&accepted, ended);
        let processed = t.status.processed_resources.unwrap_or_default();
        assert_eq!(processed.error, None, "one busy answer is asked again");
        assert_eq!(t.requeue.errors_in_row(), 1);
    }
}
