//! The decision: given what is observed, what to do next (`next_step`,
//! here), and given what happened, what the status becomes
//! ([`transition`]). Plain Rust, no client, no `.await`, and the clock is
//! part of what is observed, so tests walk every transition.
//!
//! - `target.rs`: what the operations list says a first cancel is for.
//! - `settle.rs`: what CPP's operations list says of a cancel in doubt.
//! - `share.rs`: what other resources on the same offer already did.
//! - `transition.rs`: the table of transitions, one function per outcome.
//! - `conditions.rs`: how a transition reads as conditions and an Event.

mod conditions;
mod settle;
mod share;
mod target;
#[cfg(test)]
mod tests;
mod transition;

pub use settle::Settlement;
pub(crate) use settle::settle;
pub use target::Targeting;
pub(crate) use target::{describe, latest, target};
pub use transition::transition;

use jiff::Timestamp;
use std::time::Duration;

use crate::crd::{
    OfferCancellation, OfferCancellationSpec, OfferCancellationStatus, Phase, RETRY_ANNOTATION,
    retry_request_token,
};
use crate::fair::{Turn, Urgency};
use crate::operation::OperationState;

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
    /// The cancel was already requested for this offer; this resource
    /// followed it to its end instead of sending its own.
    pub const CANCEL_SHARED: &str = "CancelShared";
    /// `spec.operationId` names an operation that has ended: nothing sent.
    pub const OPERATION_ENDED: &str = "OperationEnded";
    /// `spec.operationId` names no operation on the offer: nothing sent.
    pub const OPERATION_NOT_FOUND: &str = "OperationNotFound";
    /// Nothing was in progress on the offer: nothing cancelled.
    pub const NOTHING_TO_CANCEL: &str = "NothingToCancel";
    /// CPP knows no such offer.
    pub const OFFER_NOT_FOUND: &str = "OfferNotFound";
    /// The Product Ingestion API knows no such configure job.
    pub const JOB_NOT_FOUND: &str = "JobNotFound";
    /// The configure job had completed (succeeded, failed, or cancelled
    /// by someone else) before this resource's cancel could stop it.
    pub const JOB_ALREADY_COMPLETED: &str = "JobAlreadyCompleted";
    /// Past `spec.notAfter`: nothing sent.
    pub const EXPIRED: &str = "Expired";
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

/// How long past an intent's `postDeadline` another writer still waits
/// before it takes the missing answer for a lost one: clocks of two
/// replicas differ a little, and CPP may act on a request a moment after
/// its sender gave up on it.
pub const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(10);

/// The cancel POST's budget when the caller names none: the CPP client's
/// default request timeout.
const DEFAULT_POST_BUDGET: Duration = Duration::from_secs(30);

/// Everything the decision looks at: the resource as last read and as
/// each transition since left it, and a clock that tests pin.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The resource's namespace: whose turn its CPP requests take.
    pub namespace: String,
    /// When this round began: its CPP requests queue from then (a
    /// monotonic instant, never compared with `now`).
    pub round_began: std::time::Instant,
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
    /// How long the cancel POST that follows an intent may take, all in
    /// (rate limit, token, request): the intent records `now` plus this as
    /// its `postDeadline`, and the sender abandons the POST there.
    pub post_budget: Duration,
    /// When the resource was created (`metadata.creationTimestamp`).
    pub created: Option<Timestamp>,
    /// The status of every other resource naming the same offer, in any
    /// namespace, as this controller knows it (empty for the CLI): one
    /// cancel per target.
    pub peers: Vec<OfferCancellationStatus>,
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
            namespace: resource.metadata.namespace.clone().unwrap_or_default(),
            round_began: std::time::Instant::now(),
            spec: resource.spec.clone(),
            status: resource.status.clone().unwrap_or_default(),
            generation: resource.metadata.generation.unwrap_or_default(),
            retry_request: annotations
                .and_then(|a| a.get(RETRY_ANNOTATION))
                .map(|v| retry_request_token(v)),
            credentials_version,
            errors_in_row,
            post_budget: DEFAULT_POST_BUDGET,
            created: resource.metadata.creation_timestamp.as_ref().map(|t| t.0),
            peers: Vec::new(),
            now,
        }
    }

    /// Moves on to `resource` as the API server has it now (after a write
    /// of ours was refused because it had moved on): its spec, status,
    /// generation and retry annotation. What came from elsewhere (the
    /// Secret, the error streak, the clock) is kept.
    pub fn reread(&mut self, resource: &OfferCancellation) {
        let fresh = Observed::of(resource, None, 0, self.now);
        *self = Observed {
            credentials_version: self.credentials_version.take(),
            errors_in_row: self.errors_in_row,
            post_budget: self.post_budget,
            peers: std::mem::take(&mut self.peers),
            round_began: self.round_began,
            ..fresh
        };
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
    /// Nothing now, and nothing written: look again after this long. An
    /// intent whose POST may still be in flight (another writer's, or one
    /// of ours before a crash) is waited for, never acted on.
    Wait(Duration),
    /// No call needed; apply this outcome.
    Record(Outcome),
    /// Ask CPP, then apply what its answer means.
    Call(Call),
}

/// The CPP call a step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    /// Read the offer's operations list to find what the cancel is for
    /// ([`target`]); when that is an operation in progress, the intent is
    /// recorded with it and the POST follows.
    ReadTarget,
    /// Read the offer's operations list and apply [`settle`]'s verdict: the
    /// answer to the cancel is unknown (in doubt) or had no location.
    Settle,
    /// GET the cancel operation.
    Poll { location: String },
    /// POST the cancel. `next_step` never names it: only a transition
    /// that recorded the intent (`Transition::post`) is followed by it,
    /// once that intent is durable.
    PostCancel,
}

/// What happened, as the executor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    InvalidSpec(String),
    CredentialsUnavailable(String),
    /// What the operations list said before the first cancel request.
    Targeted(Targeting),
    /// Past `spec.notAfter`: nothing is sent.
    Expired,
    /// CPP answered the cancel with 404, and then its operations list.
    CancelNotFound(Box<NotFound>),
    /// A retried Failed resource picks up the cancel CPP accepted before.
    Resumed,
    /// What the operations list said.
    Settled(Settlement),
    /// Cancelled at once (CPP's 200; a job that answered `cancelled`).
    Cancelled,
    /// The API refused the cancel (a job's 400: already completed, or too
    /// far along), and then showed this of the target.
    CancelRefused {
        message: String,
        settlement: Settlement,
    },
    /// Accepted and still going (CPP's 202; a job's 200 while it runs).
    Accepted {
        http: u16,
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

/// A 404 to the cancel, and what the offer's operations list showed then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    /// CPP's answer to the cancel, in words.
    pub message: String,
    /// The operations list was 404 too: CPP knows no such offer.
    pub offer_missing: bool,
    /// A cancel operation created since the intent.
    pub settlement: Option<Settlement>,
    /// The latest operation other than a cancel.
    pub latest: Option<crate::operation::Operation>,
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

impl Observed {
    /// Whether the next step may lead to a first cancel request (a fresh
    /// resource, or a retry that sends anew): only then do other resources
    /// on the same offer matter.
    pub(crate) fn may_send_first(&self) -> bool {
        next_step(self) == Step::Call(Call::ReadTarget)
    }

    /// Whether the decision, or the call it names, needs what the Secret
    /// yields. A Cancelled resource only ever stays as it is or records a
    /// new generation, so it is decided without reading its Secret: at
    /// start-up every Cancelled resource is reconciled once, and each would
    /// otherwise cost a Secret read.
    pub(crate) fn needs_credentials(&self) -> bool {
        stage(&self.status) != Stage::Cancelled
    }

    /// How urgent this resource's work is: a cancel not yet sent, or one
    /// whose answer was lost (it may be sent again), goes before work on a
    /// cancel CPP has answered.
    pub fn urgency(&self) -> Urgency {
        match stage(&self.status) {
            Stage::Fresh | Stage::InDoubt => Urgency::FirstCancel,
            Stage::Failed if retry_requested(self) => Urgency::FirstCancel,
            _ => Urgency::Routine,
        }
    }

    /// The turn this resource's work takes: its urgency, for its namespace.
    pub fn turn(&self) -> Turn<'_> {
        Turn {
            urgency: self.urgency(),
            tenant: &self.namespace,
            since: self.round_began,
        }
    }
}

/// What to do next. Once the cancel was sent (Cancelling, Cancelled, Failed)
/// no path leads back to `SendCancel` except an explicit retry of a Failed one.
/// An intent without an answer is waited for while its POST may be in
/// flight, and then settled from CPP's record, also past the timeout: only
/// CPP's record tells a lost answer from a cancel that never happened.
pub(crate) fn next_step(obs: &Observed) -> Step {
    let stage = stage(&obs.status);
    if stage == Stage::InDoubt
        && let Some(wait) = answer_may_still_come(obs)
    {
        return Step::Wait(wait);
    }
    if matches!(stage, Stage::Polling(_) | Stage::Untracked) && timed_out(obs) {
        return Step::Record(Outcome::TimedOut);
    }
    match stage {
        Stage::Fresh if expired(obs) => Step::Record(Outcome::Expired),
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
        (Ok(()), false) if expired(obs) => Step::Record(Outcome::Expired),
        (Ok(()), false) => Step::Call(Call::ReadTarget),
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
    let accepted = cancel_accepted(status);
    let in_doubt = status.http_status.is_none() && status.requested_at.is_some();
    (accepted || in_doubt) && !cancel_failed
}

/// The API accepted the cancel and it was followed: CPP's 202, or a job's
/// 200 that left it running (followed at its status location).
fn cancel_accepted(status: &OfferCancellationStatus) -> bool {
    status.http_status == Some(202)
        || (status.http_status == Some(200) && status.operation_location.is_some())
}

/// What the resource targets, in the words its messages and reasons use:
/// the decision reads the same answers for both APIs, but says whose they
/// are.
#[derive(Debug, Clone, Copy)]
struct Words {
    /// Who answers: `CPP`, `the Product Ingestion API`.
    api: &'static str,
    /// What is polled after an accepted cancel.
    followed: &'static str,
    /// The reason when the target ended otherwise than cancelled.
    ended: &'static str,
}

fn words(obs: &Observed) -> Words {
    match obs.spec.product_ingestion {
        Some(_) => Words {
            api: "the Product Ingestion API",
            followed: "the job",
            ended: reason::JOB_ALREADY_COMPLETED,
        },
        None => Words {
            api: "CPP",
            followed: "the cancel operation",
            ended: reason::OPERATION_ENDED,
        },
    }
}

fn send_if_valid(obs: &Observed) -> Step {
    match obs.spec.validate() {
        Ok(()) => Step::Call(Call::ReadTarget),
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

/// While the POST after the recorded intent may still be in flight (its
/// `postDeadline` plus [`IN_FLIGHT_MARGIN`] is ahead), how long until it
/// no longer may. An intent without a `postDeadline` (written by an
/// earlier release) is not waited for.
fn answer_may_still_come(obs: &Observed) -> Option<Duration> {
    post_in_flight_for(&obs.status, obs.now)
}

/// [`answer_may_still_come`] for any status, at `now`.
fn post_in_flight_for(status: &OfferCancellationStatus, now: Timestamp) -> Option<Duration> {
    let deadline = status.post_deadline.as_ref()?.0;
    let settled_from = deadline.checked_add(IN_FLIGHT_MARGIN).ok()?;
    let left = now.duration_until(settled_from);
    Duration::try_from(left).ok().filter(|d| !d.is_zero())
}

/// When `timeoutSeconds` runs out: counted from the start of the current
/// attempt (the first request, or the latest retry).
fn deadline(obs: &Observed) -> Option<Timestamp> {
    let status = &obs.status;
    let started = status
        .started_at
        .as_ref()
        .or(status.requested_at.as_ref())?
        .0;
    let timeout = obs.spec.timeout_seconds?;
    started
        .checked_add(jiff::SignedDuration::from_secs(timeout.into()))
        .ok()
}

/// Past `spec.notAfter`: no cancel may be sent any more.
fn expired(obs: &Observed) -> bool {
    obs.spec.not_after.as_ref().is_some_and(|t| obs.now >= t.0)
}

fn timed_out(obs: &Observed) -> bool {
    deadline(obs).is_some_and(|d| obs.now >= d)
}
