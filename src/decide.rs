//! The decision: given what is observed, what to do next, and given what
//! happened, what the status becomes. Plain Rust, no client, no `.await`,
//! and the clock is an argument, so tests walk every transition.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::time::Duration;

use crate::crd::{
    MAX_MESSAGE_LEN, OfferCancellation, OfferCancellationSpec, OfferCancellationStatus, Phase,
    RETRY_ANNOTATION, retry_request_token,
};
use crate::operation::{Operation, OperationState};

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
    /// The answer to the cancel was lost (or a resend found nothing to
    /// cancel), and CPP shows nothing in progress: the purpose is met.
    pub const NOTHING_IN_PROGRESS: &str = "NothingInProgress";
    /// The cancel is sent again: its first answer was lost and the
    /// operation it cancels is still in progress.
    pub const CANCEL_RESENT: &str = "CancelResent";
    /// A Failed resource resumes the cancel CPP had accepted.
    pub const RESUMING: &str = "Resuming";
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
pub(crate) fn reason_for_status(status: u16) -> &'static str {
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
pub(crate) const CREDENTIALS_RETRY: Duration = Duration::from_secs(300);

/// Everything the decision looks at: the resource as last read and as
/// each transition since left it, and a clock that tests pin.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub spec: OfferCancellationSpec,
    pub status: OfferCancellationStatus,
    pub generation: i64,
    /// The offercancel.dev/retry annotation, as `retry_request_token` keeps it.
    pub retry_request: Option<String>,
    /// resourceVersion of the credentials Secret, when it could be read.
    pub credentials_version: Option<String>,
    /// Transient errors in a row so far (kept in memory, not in status: a
    /// streak writes status once, when it starts).
    pub errors_in_row: u32,
    pub now: Timestamp,
}

impl Observed {
    /// What the decision sees of `resource`, given what its Secret's
    /// resourceVersion is and how many transient errors came in a row.
    pub fn of(
        resource: &OfferCancellation,
        credentials_version: Option<String>,
        errors_in_row: u32,
        now: Timestamp,
    ) -> Observed {
        let annotations = resource.metadata.annotations.as_ref();
        Observed {
            spec: resource.spec.clone(),
            status: resource.status.clone().unwrap_or_default(),
            generation: resource.metadata.generation.unwrap_or_default(),
            retry_request: annotations
                .and_then(|a| a.get(RETRY_ANNOTATION))
                .map(|v| retry_request_token(v)),
            credentials_version,
            errors_in_row,
            now,
        }
    }
}

/// Where a resource stands, derived from its status alone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
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

fn stage(status: &OfferCancellationStatus) -> Stage {
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
pub(crate) enum Step {
    /// Nothing: final and up to date.
    Idle,
    /// No call needed; apply this outcome.
    Record(Outcome),
    /// Ask CPP, then apply what its answer means.
    Call(Call),
}

/// The CPP call a step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    /// Get a token, record the intent, then POST the cancel.
    SendCancel,
    /// Read the offer's operations list and apply [`settle`]'s verdict: the
    /// answer to the cancel is unknown (in doubt) or had no location.
    Settle,
    /// GET the cancel operation.
    Poll { location: String },
}

/// What CPP's operations list says about a cancel whose fate is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// A cancel operation created since the intent, still going: poll it.
    Follow { location: String },
    /// A cancel operation created since the intent has ended.
    Ended {
        status: String,
        state: OperationState,
        detail: String,
    },
    /// Nothing at all is in progress on the offer.
    NothingInProgress,
    /// No cancel of ours, and the operation to cancel still runs.
    TargetRunning,
}

/// How far CPP's clock may be behind ours when matching a cancel
/// operation's `createdDateTime` against our recorded intent.
const CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_secs(120);

/// Reads the offer's operations list for a cancel requested at `since`.
/// A cancel operation created since then is ours whatever its state; one
/// without a creation time is taken as ours only while in progress.
/// `locate` turns an operation id into the location to poll.
pub(crate) fn settle(
    operations: &[Operation],
    since: Option<Timestamp>,
    locate: impl Fn(&str) -> String,
) -> Settlement {
    let ours = |op: &&Operation| {
        op.is_cancel
            && match (op.created, since) {
                (Some(created), Some(since)) => created >= since - CLOCK_SKEW,
                _ => op.in_progress(),
            }
    };
    let latest = operations.iter().filter(ours).max_by_key(|op| op.created);
    if let Some(op) = latest {
        let state = op.state();
        // An unknown status is not "in progress" in the list, but it is
        // not an ending either: keep polling it.
        if let (true, Some(id)) = (
            op.in_progress() || state == OperationState::InProgress,
            &op.id,
        ) {
            return Settlement::Follow {
                location: locate(id),
            };
        }
        if state != OperationState::InProgress {
            return Settlement::Ended {
                status: op.status.clone(),
                state,
                detail: op.failure_detail(),
            };
        }
    }
    if operations.iter().any(Operation::in_progress) {
        Settlement::TargetRunning
    } else {
        Settlement::NothingInProgress
    }
}

/// What happened, as the executor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    InvalidSpec(String),
    CredentialsUnavailable(String),
    IntentRecorded,
    /// A retried Failed resource picks up the cancel CPP accepted before.
    Resumed,
    /// What the operations list said.
    Settled(Settlement),
    /// 200 to the cancel call.
    Cancelled,
    /// 202 to the cancel call.
    Accepted {
        location: Option<String>,
        retry_after: Option<Duration>,
    },
    Polled {
        status: String,
        state: OperationState,
        location: Option<String>,
        retry_after: Option<Duration>,
        detail: String,
        /// The step under way, in words; shown live by the CLI, never
        /// written to status.
        progress: Option<String>,
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

impl Requeue {
    /// The streak of transient errors this requeue answers (0: none).
    pub fn errors_in_row(self) -> u32 {
        match self {
            Requeue::Backoff { errors, .. } => errors,
            Requeue::Never | Requeue::After(_) => 0,
        }
    }
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
    /// Send the cancel POST once this status is durable (it records the
    /// intent). Only an intent transition sets it.
    pub post: bool,
    /// What a poll said of the operation's progress (not status: it would
    /// cost a write per poll).
    pub progress: Option<String>,
}

/// What to do next. Once the cancel was sent (Cancelling, Cancelled, Failed)
/// no path leads back to `SendCancel` except an explicit retry of a Failed one.
pub(crate) fn next_step(obs: &Observed) -> Step {
    let stage = stage(&obs.status);
    if matches!(stage, Stage::InDoubt | Stage::Polling(_) | Stage::Untracked) && timed_out(obs) {
        return Step::Record(Outcome::TimedOut);
    }
    match stage {
        Stage::Fresh => send_if_valid(obs),
        Stage::InDoubt | Stage::Untracked => Step::Call(Call::Settle),
        Stage::Polling(location) => Step::Call(Call::Poll { location }),
        Stage::Failed if retry_requested(obs) => retry(obs),
        Stage::Cancelled | Stage::Failed if stale(obs) => Step::Record(Outcome::Acknowledged),
        Stage::Cancelled | Stage::Failed => Step::Idle,
    }
}

/// A retry never forgets a cancel CPP may have accepted: it resumes from
/// the recorded location or the operations list, and POSTs anew only when
/// the last attempt's answer ruled that out.
fn retry(obs: &Observed) -> Step {
    match (obs.spec.validate(), may_have_accepted(&obs.status)) {
        (Err(e), _) => Step::Record(Outcome::InvalidSpec(e.to_string())),
        (Ok(()), true) => Step::Record(Outcome::Resumed),
        (Ok(()), false) => Step::Call(Call::SendCancel),
    }
}

/// CPP accepted (202) a cancel, or the answer to the last POST never came
/// (an intent without an HTTP answer) — unless the cancel operation itself
/// is known to have failed: then only a new POST can help.
fn may_have_accepted(status: &OfferCancellationStatus) -> bool {
    let cancel_failed = status
        .operation_status
        .as_deref()
        .is_some_and(|s| OperationState::of(s) == OperationState::Failed);
    let accepted = status.http_status == Some(202);
    let in_doubt = status.http_status.is_none() && status.requested_at.is_some();
    (accepted || in_doubt) && !cancel_failed
}

fn send_if_valid(obs: &Observed) -> Step {
    match obs.spec.validate() {
        Ok(()) => Step::Call(Call::SendCancel),
        Err(e) => Step::Record(Outcome::InvalidSpec(e.to_string())),
    }
}

fn stale(obs: &Observed) -> bool {
    obs.status.observed_generation != Some(obs.generation)
}

/// A Failed resource is tried again when its spec changed, its Secret
/// changed, or the retry annotation has a value not yet answered.
fn retry_requested(obs: &Observed) -> bool {
    let status = &obs.status;
    let secret_changed = matches!(
        (status.credentials_version.as_deref(), obs.credentials_version.as_deref()),
        (Some(then), Some(now)) if then != now
    );
    stale(obs) || secret_changed || obs.retry_request != status.retry_request
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
enum Readiness {
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
        Resumed => resumed(obs, next),
        Settled(settlement) => settled(obs, next, settlement),
        Cancelled => cancelled(
            obs,
            with_answer(next, 200),
            reason::CANCELLED,
            "CPP cancelled the operation synchronously".into(),
        ),
        Accepted {
            location,
            retry_after,
        } => accepted(obs, with_answer(next, 202), location, retry_after),
        Polled {
            status,
            state,
            location,
            retry_after,
            detail,
            progress,
        } => Transition {
            progress,
            ..polled(obs, next, status, state, location, retry_after, detail)
        },
        Rejected {
            reason,
            message,
            cancel_status,
        } => rejected(obs, next, reason, message, cancel_status),
        Transient {
            message,
            retry_after,
        } => transient(obs, next, message, retry_after),
        TimedOut => timed_out_transition(obs, next),
        Acknowledged => unchanged(obs, Requeue::Never),
    }
}

/// A terminal error. A 404 to a resend after a lost answer means the first
/// cancel went through: nothing is left in progress.
fn rejected(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    why: &'static str,
    message: String,
    cancel_status: Option<u16>,
) -> Transition {
    if cancel_status == Some(404) && resent(&obs.status) {
        return cancelled(
            obs,
            with_answer(next, 404),
            reason::NOTHING_IN_PROGRESS,
            "the first answer to the cancel was lost; CPP answered the resend with 404: nothing is in progress on the offer".into(),
        );
    }
    if cancel_status.is_some() {
        next.http_status = cancel_status;
    }
    fail(obs, next, why, message)
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

fn set_readiness(
    obs: &Observed,
    status: &mut OfferCancellationStatus,
    readiness: Readiness,
    reason: &str,
    message: &str,
) {
    let (ready, reconciling, stalled) = match readiness {
        Readiness::Working => (false, true, false),
        Readiness::Blocked => (false, false, true),
        Readiness::Succeeded => (true, false, false),
        Readiness::Failed => (false, false, true),
    };
    let message = &clip(message, MAX_MESSAGE_LEN);
    status.message = Some(message.clone());
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

/// events.k8s.io refuses notes over 1 KB.
pub(crate) const MAX_EVENT_NOTE: usize = 1024;

fn notice(reason: &'static str, warning: bool, note: &str) -> Option<Notice> {
    Some(Notice {
        reason,
        warning,
        note: clip(note, MAX_EVENT_NOTE),
    })
}

/// At most `max` bytes, cut at a character boundary, marked with `...`.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max.saturating_sub(3);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

fn fail(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    why: &'static str,
    message: String,
) -> Transition {
    next.phase = Some(Phase::Failed);
    next.completed_at = Some(Time(obs.now));
    // Remember what this attempt answered, so only a new value retries.
    next.retry_request = obs.retry_request.clone();
    next.credentials_version = obs.credentials_version.clone().or(next.credentials_version);
    set_readiness(obs, &mut next, Readiness::Failed, why, &message);
    Transition {
        status: next,
        requeue: Requeue::Never,
        notice: notice(reason::CANCEL_FAILED, true, &message),
        post: false,
        progress: None,
    }
}

fn credentials_unavailable(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    message: String,
) -> Transition {
    next.phase.get_or_insert(Phase::Pending);
    set_readiness(
        obs,
        &mut next,
        Readiness::Blocked,
        reason::CREDENTIALS_UNAVAILABLE,
        &message,
    );
    Transition {
        status: next,
        requeue: Requeue::After(CREDENTIALS_RETRY),
        notice: None,
        post: false,
        progress: None,
    }
}

fn intent_recorded(obs: &Observed, mut next: OfferCancellationStatus) -> Transition {
    // A resend after an in-doubt lookup keeps the first request time, so
    // timeoutSeconds counts from the first attempt and the operations list
    // is matched against it.
    let resend = stage(&obs.status) == Stage::InDoubt;
    if !resend {
        next.requested_at = Some(Time(obs.now));
    }
    next.phase = Some(Phase::Pending);
    next.attempts = next.attempts.saturating_add(1);
    next.http_status = None;
    next.operation_location = None;
    next.operation_status = None;
    next.completed_at = None;
    next.retry_request = obs.retry_request.clone();
    next.credentials_version = obs.credentials_version.clone();
    let (why, message) = if resend {
        (
            reason::CANCEL_RESENT,
            "the answer to the cancel request was lost and the operation is still in progress; sending the cancel again",
        )
    } else {
        (
            reason::CANCEL_REQUESTED,
            "sending the cancel request to CPP",
        )
    };
    set_readiness(obs, &mut next, Readiness::Working, why, message);
    Transition {
        status: next,
        requeue: Requeue::After(Duration::ZERO),
        notice: notice(why, false, message),
        post: true,
        progress: None,
    }
}

/// Whether the POST in flight is a resend after a lost answer.
fn resent(status: &OfferCancellationStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == condition::RECONCILING && c.reason == reason::CANCEL_RESENT)
}

/// A retried Failed resource goes back to where CPP's answer left it: polling
/// the accepted cancel, or settling an unanswered one from the list.
fn resumed(obs: &Observed, mut next: OfferCancellationStatus) -> Transition {
    let accepted = next.http_status == Some(202);
    next.phase = Some(if accepted {
        Phase::Cancelling
    } else {
        Phase::Pending
    });
    next.completed_at = None;
    next.operation_status = None;
    next.retry_request = obs.retry_request.clone();
    next.credentials_version = obs.credentials_version.clone();
    let message = if accepted {
        "retrying: resuming the cancel operation CPP accepted earlier"
    } else {
        "retrying: checking CPP's operations for the earlier cancel request"
    };
    set_readiness(
        obs,
        &mut next,
        Readiness::Working,
        reason::RESUMING,
        message,
    );
    Transition {
        status: next,
        requeue: Requeue::After(Duration::ZERO),
        notice: notice(reason::RESUMING, false, message),
        post: false,
        progress: None,
    }
}

/// Applies what the operations list said, for an in-doubt POST or a 202
/// without a location.
fn settled(obs: &Observed, next: OfferCancellationStatus, found: Settlement) -> Transition {
    let untracked = stage(&obs.status) == Stage::Untracked;
    match found {
        Settlement::Follow { location } => adopted(obs, next, location),
        Settlement::Ended {
            status,
            state: OperationState::Failed,
            detail,
        } => {
            let mut next = next;
            next.operation_status = Some(status);
            let message = format!("the cancel operation failed: {detail}");
            fail(obs, next, reason::OPERATION_FAILED, message)
        }
        Settlement::Ended { status, .. } => {
            let mut next = next;
            let message = format!("the cancel operation CPP lists ended: {status}");
            next.operation_status = Some(status);
            cancelled(obs, next, reason::CANCELLED, message)
        }
        Settlement::NothingInProgress => {
            let message = if untracked {
                "CPP accepted the cancel without a location and now shows nothing in progress on the offer"
            } else {
                "the answer to the cancel request was lost; CPP shows nothing in progress on the offer"
            };
            cancelled(obs, next, reason::NOTHING_IN_PROGRESS, message.into())
        }
        Settlement::TargetRunning if untracked => fail(
            obs,
            next,
            reason::LOCATION_UNAVAILABLE,
            "CPP accepted the cancel (202) without a location, and the offer's operations list shows no cancel operation".into(),
        ),
        Settlement::TargetRunning => intent_recorded(obs, next),
    }
}

fn cancelled(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    why: &str,
    message: String,
) -> Transition {
    next.phase = Some(Phase::Cancelled);
    next.completed_at = Some(Time(obs.now));
    set_readiness(obs, &mut next, Readiness::Succeeded, why, &message);
    Transition {
        status: next,
        requeue: Requeue::Never,
        notice: notice(reason::CANCELLED, false, &message),
        post: false,
        progress: None,
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
    set_readiness(
        obs,
        &mut next,
        Readiness::Working,
        reason::CANCEL_IN_PROGRESS,
        message,
    );
    Transition {
        status: next,
        requeue: Requeue::After(wait),
        notice,
        post: false,
        progress: None,
    }
}

fn adopted(obs: &Observed, mut next: OfferCancellationStatus, location: String) -> Transition {
    next.operation_location = Some(location);
    let message = "found the cancel operation in CPP's operations list; polling it";
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
    let moved = location.filter(|l| next.operation_location.as_ref() != Some(l));
    if state == OperationState::InProgress {
        // Still running: only a new location is worth a write.
        let wait = poll_wait(obs, retry_after);
        let Some(location) = moved else {
            return unchanged(obs, Requeue::After(wait));
        };
        next.operation_location = Some(location);
        let message = "CPP moved the cancel operation; polling its new location";
        return in_progress(obs, next, message, wait, None);
    }
    next.operation_status = Some(raw.clone());
    if let Some(location) = moved {
        next.operation_location = Some(location);
    }
    match state {
        OperationState::Done => cancelled(
            obs,
            next,
            reason::CANCELLED,
            format!("the cancel operation ended: {raw}"),
        ),
        OperationState::Failed => fail(
            obs,
            next,
            reason::OPERATION_FAILED,
            format!("the cancel operation failed: {detail}"),
        ),
        OperationState::InProgress => unchanged(obs, Requeue::After(poll_wait(obs, retry_after))),
    }
}

/// The first error of a streak is written (and announced) once; the rest
/// of the streak only counts, in memory and metrics, and backs off.
fn transient(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    message: String,
    retry_after: Option<Duration>,
) -> Transition {
    let requeue = Requeue::Backoff {
        errors: obs.errors_in_row.saturating_add(1),
        at_least: retry_after.unwrap_or_default(),
    };
    if obs.errors_in_row > 0 {
        return unchanged(obs, requeue);
    }
    next.phase.get_or_insert(Phase::Pending);
    let message = format!("transient error, will retry: {message}");
    set_readiness(
        obs,
        &mut next,
        Readiness::Working,
        reason::TRANSIENT_ERROR,
        &message,
    );
    Transition {
        requeue,
        status: next,
        notice: notice(reason::TRANSIENT_ERROR, true, &message),
        post: false,
        progress: None,
    }
}

/// Nothing decisive was learned: the status stays as it is (the generation
/// it describes aside), so nothing is written.
fn unchanged(obs: &Observed, requeue: Requeue) -> Transition {
    let mut status = obs.status.clone();
    status.observed_generation = Some(obs.generation);
    Transition {
        status,
        requeue,
        notice: None,
        post: false,
        progress: None,
    }
    .restamp(obs)
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
