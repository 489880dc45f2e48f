//! The decision: given what is observed, what to do next, and given what
//! happened, what the status becomes. Plain Rust, no client, no `.await`,
//! and the clock is an argument, so tests walk every transition.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::time::Duration;

use crate::cpp::OperationState;
use crate::crd::{OfferCancellationSpec, OfferCancellationStatus, Phase};

/// Condition types, following kstatus.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
}

/// Condition and event reasons.
pub mod reason {
    pub const CANCEL_REQUESTED: &str = "CancelRequested";
    pub const CANCEL_ACCEPTED: &str = "CancelAccepted";
    pub const CANCEL_IN_PROGRESS: &str = "CancelInProgress";
    pub const CANCELLED: &str = "Cancelled";
    pub const CANCEL_FAILED: &str = "CancelFailed";
    pub const TRANSIENT_ERROR: &str = "TransientError";
    pub const CREDENTIALS_UNAVAILABLE: &str = "CredentialsUnavailable";
    pub const CREDENTIALS_REJECTED: &str = "CredentialsRejected";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const TIMEOUT: &str = "Timeout";
    pub const OPERATION_FAILED: &str = "OperationFailed";
    pub const LOCATION_UNAVAILABLE: &str = "LocationUnavailable";
    pub const INVALID_LOCATION: &str = "InvalidLocation";
    pub const MALFORMED_RESPONSE: &str = "MalformedResponse";
    pub const BAD_REQUEST: &str = "BadRequest";
    pub const UNAUTHORIZED: &str = "Unauthorized";
    pub const FORBIDDEN: &str = "Forbidden";
    pub const NOT_FOUND: &str = "NotFound";
    pub const CONFLICT: &str = "Conflict";
    pub const REJECTED: &str = "Rejected";
}

/// The condition reason for a terminal HTTP status.
pub fn reason_for_status(status: u16) -> &'static str {
    match status {
        400 => reason::BAD_REQUEST,
        401 => reason::UNAUTHORIZED,
        403 => reason::FORBIDDEN,
        404 => reason::NOT_FOUND,
        409 => reason::CONFLICT,
        _ => reason::REJECTED,
    }
}

/// Requeue when credentials are missing; a Secret change triggers sooner.
pub const CREDENTIALS_RETRY: Duration = Duration::from_secs(300);

/// Everything the decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub spec: &'a OfferCancellationSpec,
    pub status: &'a OfferCancellationStatus,
    pub generation: i64,
    /// The offercancel.dev/retry annotation.
    pub retry_request: Option<&'a str>,
    /// resourceVersion of the credentials Secret, when it could be read.
    pub credentials_version: Option<&'a str>,
    pub now: Timestamp,
}

/// Where a resource stands, derived from its status alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Nothing sent yet.
    Fresh,
    /// Intent recorded but no decisive answer: the POST may or may not have
    /// reached CPP (crash, timeout, transient error).
    InDoubt,
    /// Accepted; poll this location.
    Polling(String),
    /// Accepted without any location: find the cancel operation.
    Untracked,
    Cancelled,
    Failed,
}

pub fn stage(status: &OfferCancellationStatus) -> Stage {
    match status.phase {
        None => Stage::Fresh,
        Some(Phase::Pending) if status.requested_at.is_none() => Stage::Fresh,
        Some(Phase::Pending) => Stage::InDoubt,
        Some(Phase::Cancelling) => match &status.operation_location {
            Some(location) => Stage::Polling(location.clone()),
            None => Stage::Untracked,
        },
        Some(Phase::Cancelled) => Stage::Cancelled,
        Some(Phase::Failed) => Stage::Failed,
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing: final and up to date.
    Idle,
    /// No call needed; apply this outcome.
    Record(Outcome),
    /// Record the intent, then POST the cancel.
    SendCancel,
    /// Look for a running cancel operation; adopt it, else POST (when
    /// `send_if_absent`) or fail.
    FindCancel { send_if_absent: bool },
    /// GET the cancel operation.
    Poll { location: String },
}

/// What happened, as the executor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    InvalidSpec(String),
    CredentialsUnavailable(String),
    IntentRecorded,
    /// 200 to the cancel call.
    Cancelled,
    /// 202 to the cancel call.
    Accepted {
        location: Option<String>,
        retry_after: Option<Duration>,
    },
    /// A running cancel operation was found in the operations list.
    Adopted {
        location: String,
    },
    /// Accepted without a location, and none could be found.
    NoLocationFound,
    Polled {
        status: String,
        state: OperationState,
        location: Option<String>,
        retry_after: Option<Duration>,
        detail: String,
    },
    /// A terminal error. `cancel_status` is CPP's answer to the cancel call
    /// itself, when that is what was rejected.
    Rejected {
        reason: &'static str,
        message: String,
        cancel_status: Option<u16>,
    },
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    TimedOut,
    /// The generation moved on a final resource: record that it was seen.
    Acknowledged,
}

/// When to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Only a change to the resource or its Secret brings it back.
    Never,
    After(Duration),
    /// Capped exponential backoff for the n-th error in a row, but not
    /// sooner than `at_least` (a Retry-After).
    Backoff {
        errors: u32,
        at_least: Duration,
    },
}

/// A Kubernetes Event to publish for a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub reason: &'static str,
    pub warning: bool,
    pub note: String,
}

/// The result of applying an outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub status: OfferCancellationStatus,
    pub requeue: Requeue,
    pub notice: Option<Notice>,
}

/// What to do next. Once the cancel was sent (Cancelling, Cancelled, Failed)
/// no path leads back to `SendCancel` except an explicit retry of a Failed one.
pub fn next_step(obs: &Observed) -> Step {
    let stage = stage(obs.status);
    if matches!(stage, Stage::InDoubt | Stage::Polling(_) | Stage::Untracked) && timed_out(obs) {
        return Step::Record(Outcome::TimedOut);
    }
    match stage {
        Stage::Fresh => send_if_valid(obs),
        Stage::InDoubt => Step::FindCancel {
            send_if_absent: true,
        },
        Stage::Polling(location) => Step::Poll { location },
        Stage::Untracked => Step::FindCancel {
            send_if_absent: false,
        },
        Stage::Failed if retry_requested(obs) => send_if_valid(obs),
        Stage::Cancelled | Stage::Failed if stale(obs) => Step::Record(Outcome::Acknowledged),
        Stage::Cancelled | Stage::Failed => Step::Idle,
    }
}

fn send_if_valid(obs: &Observed) -> Step {
    match obs.spec.validate() {
        Ok(()) => Step::SendCancel,
        Err(e) => Step::Record(Outcome::InvalidSpec(e.to_string())),
    }
}

fn stale(obs: &Observed) -> bool {
    obs.status.observed_generation != Some(obs.generation)
}

/// A Failed resource is tried again when its spec changed, its Secret
/// changed, or the retry annotation has a value not yet answered.
fn retry_requested(obs: &Observed) -> bool {
    let status = obs.status;
    let secret_changed = matches!(
        (status.credentials_version.as_deref(), obs.credentials_version),
        (Some(then), Some(now)) if then != now
    );
    stale(obs) || secret_changed || obs.retry_request != status.retry_request.as_deref()
}

fn deadline(obs: &Observed) -> Option<Timestamp> {
    let requested = obs.status.requested_at.as_ref()?.0;
    let timeout = obs.spec.timeout_seconds?;
    requested
        .checked_add(jiff::SignedDuration::from_secs(timeout.into()))
        .ok()
}

fn timed_out(obs: &Observed) -> bool {
    deadline(obs).is_some_and(|d| obs.now >= d)
}

/// Waits `wanted`, but wakes at the deadline so a timeout fires on time.
fn wait_until_deadline(obs: &Observed, wanted: Duration) -> Duration {
    let Some(d) = deadline(obs) else {
        return wanted;
    };
    let left = Duration::try_from(d.duration_since(obs.now)).unwrap_or(Duration::ZERO);
    wanted.min(left.max(Duration::from_secs(1)))
}

fn poll_wait(obs: &Observed, retry_after: Option<Duration>) -> Duration {
    let interval = Duration::from_secs(obs.spec.poll_interval_seconds.into());
    wait_until_deadline(obs, interval.max(retry_after.unwrap_or_default()))
}

/// How the three conditions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// Work in flight: Reconciling.
    Working,
    /// Waiting for the user (e.g. a Secret), not final: Stalled.
    Blocked,
    Succeeded,
    /// Final failure: Stalled.
    Failed,
}

/// The status after `outcome`. Fields not named by the outcome are kept.
pub fn transition(obs: &Observed, outcome: Outcome) -> Transition {
    use Outcome::*;
    let mut next = obs.status.clone();
    next.observed_generation = Some(obs.generation);
    match outcome {
        InvalidSpec(message) => fail(obs, next, reason::INVALID_SPEC, message),
        CredentialsUnavailable(message) => credentials_unavailable(obs, next, message),
        IntentRecorded => intent_recorded(obs, next),
        Cancelled => cancelled(obs, with_answer(next, 200), "CPP cancelled the operation synchronously".into()),
        Accepted {
            location,
            retry_after,
        } => accepted(obs, with_answer(next, 202), location, retry_after),
        Adopted { location } => adopted(obs, next, location),
        NoLocationFound => fail(
            obs,
            next,
            reason::LOCATION_UNAVAILABLE,
            "CPP accepted the cancel (202) without a location, and no running cancel operation was found in the offer's operations list".into(),
        ),
        Polled {
            status,
            state,
            location,
            retry_after,
            detail,
        } => polled(obs, next, status, state, location, retry_after, detail),
        Rejected {
            reason,
            message,
            cancel_status,
        } => {
            if cancel_status.is_some() {
                next.http_status = cancel_status;
            }
            fail(obs, next, reason, message)
        }
        Transient {
            message,
            retry_after,
        } => transient(obs, next, message, retry_after),
        TimedOut => timed_out_transition(obs, next),
        Acknowledged => Transition {
            status: next,
            requeue: Requeue::Never,
            notice: None,
        }
        .restamp(obs),
    }
}

impl Transition {
    /// Re-applies the current conditions under the new generation.
    fn restamp(mut self, obs: &Observed) -> Self {
        for c in &mut self.status.conditions {
            c.observed_generation = Some(obs.generation);
        }
        self
    }
}

fn with_answer(mut status: OfferCancellationStatus, http: u16) -> OfferCancellationStatus {
    status.http_status = Some(http);
    status
}

fn set_health(
    obs: &Observed,
    status: &mut OfferCancellationStatus,
    health: Health,
    reason: &str,
    message: &str,
) {
    let (ready, reconciling, stalled) = match health {
        Health::Working => (false, true, false),
        Health::Blocked => (false, false, true),
        Health::Succeeded => (true, false, false),
        Health::Failed => (false, false, true),
    };
    status.message = Some(message.to_string());
    for (kind, on) in [
        (condition::READY, ready),
        (condition::RECONCILING, reconciling),
        (condition::STALLED, stalled),
    ] {
        set_condition(obs, &mut status.conditions, kind, on, reason, message);
    }
}

/// Sets one condition, keeping `lastTransitionTime` unless its status flips.
fn set_condition(
    obs: &Observed,
    conditions: &mut Vec<Condition>,
    kind: &str,
    on: bool,
    reason: &str,
    message: &str,
) {
    let status = if on { "True" } else { "False" };
    let since = conditions
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(obs.now));
    conditions.retain(|c| c.type_ != kind);
    conditions.push(Condition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: Some(obs.generation),
        last_transition_time: since,
    });
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

fn notice(reason: &'static str, warning: bool, note: &str) -> Option<Notice> {
    Some(Notice {
        reason,
        warning,
        note: note.to_string(),
    })
}

fn fail(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    why: &'static str,
    message: String,
) -> Transition {
    next.phase = Some(Phase::Failed);
    next.consecutive_errors = 0;
    next.completed_at = Some(Time(obs.now));
    // Remember what this attempt answered, so only a new value retries.
    next.retry_request = obs.retry_request.map(String::from);
    next.credentials_version = obs
        .credentials_version
        .map(String::from)
        .or(next.credentials_version);
    set_health(obs, &mut next, Health::Failed, why, &message);
    Transition {
        status: next,
        requeue: Requeue::Never,
        notice: notice(reason::CANCEL_FAILED, true, &message),
    }
}

fn credentials_unavailable(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    message: String,
) -> Transition {
    next.phase.get_or_insert(Phase::Pending);
    set_health(
        obs,
        &mut next,
        Health::Blocked,
        reason::CREDENTIALS_UNAVAILABLE,
        &message,
    );
    Transition {
        status: next,
        requeue: Requeue::After(CREDENTIALS_RETRY),
        notice: None,
    }
}

fn intent_recorded(obs: &Observed, mut next: OfferCancellationStatus) -> Transition {
    // A resend after an in-doubt lookup keeps the first request time, so
    // timeoutSeconds counts from the first attempt.
    if stage(obs.status) != Stage::InDoubt {
        next.requested_at = Some(Time(obs.now));
        next.consecutive_errors = 0;
    }
    next.phase = Some(Phase::Pending);
    next.attempts = next.attempts.saturating_add(1);
    next.http_status = None;
    next.operation_location = None;
    next.operation_status = None;
    next.completed_at = None;
    next.retry_request = obs.retry_request.map(String::from);
    next.credentials_version = obs.credentials_version.map(String::from);
    let message = "sending the cancel request to CPP";
    set_health(
        obs,
        &mut next,
        Health::Working,
        reason::CANCEL_REQUESTED,
        message,
    );
    Transition {
        status: next,
        requeue: Requeue::After(Duration::ZERO),
        notice: notice(reason::CANCEL_REQUESTED, false, message),
    }
}

fn cancelled(obs: &Observed, mut next: OfferCancellationStatus, message: String) -> Transition {
    next.phase = Some(Phase::Cancelled);
    next.consecutive_errors = 0;
    next.completed_at = Some(Time(obs.now));
    set_health(
        obs,
        &mut next,
        Health::Succeeded,
        reason::CANCELLED,
        &message,
    );
    Transition {
        status: next,
        requeue: Requeue::Never,
        notice: notice(reason::CANCELLED, false, &message),
    }
}

fn accepted(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    location: Option<String>,
    retry_after: Option<Duration>,
) -> Transition {
    let (message, wait) = match &location {
        Some(_) => (
            "CPP accepted the cancel; polling the cancel operation".to_string(),
            poll_wait(obs, retry_after),
        ),
        None => (
            "CPP accepted the cancel without a location; looking for the cancel operation"
                .to_string(),
            Duration::from_secs(1),
        ),
    };
    next.operation_location = location;
    let accepted = notice(reason::CANCEL_ACCEPTED, false, &message);
    in_progress(obs, next, &message, wait, accepted)
}

/// Cancelling: the cancel operation is under way.
fn in_progress(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    message: &str,
    wait: Duration,
    notice: Option<Notice>,
) -> Transition {
    next.phase = Some(Phase::Cancelling);
    next.consecutive_errors = 0;
    set_health(
        obs,
        &mut next,
        Health::Working,
        reason::CANCEL_IN_PROGRESS,
        message,
    );
    Transition {
        status: next,
        requeue: Requeue::After(wait),
        notice,
    }
}

fn adopted(obs: &Observed, mut next: OfferCancellationStatus, location: String) -> Transition {
    next.operation_location = Some(location);
    let message = "found the cancel operation in progress; polling it";
    let adopted = notice(reason::CANCEL_ACCEPTED, false, message);
    in_progress(obs, next, message, Duration::ZERO, adopted)
}

fn polled(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    raw: String,
    state: OperationState,
    location: Option<String>,
    retry_after: Option<Duration>,
    detail: String,
) -> Transition {
    next.operation_status = Some(raw.clone());
    if location.is_some() {
        next.operation_location = location;
    }
    match state {
        OperationState::Done => cancelled(obs, next, format!("the cancel operation ended: {raw}")),
        OperationState::Failed => fail(
            obs,
            next,
            reason::OPERATION_FAILED,
            format!("the cancel operation failed: {detail}"),
        ),
        OperationState::InProgress => {
            let message = format!("the cancel operation is {raw}");
            in_progress(obs, next, &message, poll_wait(obs, retry_after), None)
        }
    }
}

fn transient(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    message: String,
    retry_after: Option<Duration>,
) -> Transition {
    next.phase.get_or_insert(Phase::Pending);
    next.consecutive_errors = next.consecutive_errors.saturating_add(1);
    let first = next.consecutive_errors == 1;
    let message = format!("transient error, will retry: {message}");
    set_health(
        obs,
        &mut next,
        Health::Working,
        reason::TRANSIENT_ERROR,
        &message,
    );
    Transition {
        requeue: Requeue::Backoff {
            errors: next.consecutive_errors,
            at_least: retry_after.unwrap_or_default(),
        },
        status: next,
        // One event per streak of errors, not one per retry.
        notice: if first {
            notice(reason::TRANSIENT_ERROR, true, &message)
        } else {
            None
        },
    }
}

fn timed_out_transition(obs: &Observed, next: OfferCancellationStatus) -> Transition {
    let seconds = obs.spec.timeout_seconds.unwrap_or_default();
    fail(
        obs,
        next,
        reason::TIMEOUT,
        format!("the cancel did not complete within timeoutSeconds ({seconds}s)"),
    )
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
