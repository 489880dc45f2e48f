//! The decision's words: what to do next ([`Step`], [`Call`]), what the
//! target's API said to it ([`Said`]), what that means ([`Outcome`]), and
//! what follows ([`Transition`], [`Requeue`], [`Notice`]), with the
//! condition types and reasons status uses. Types only: the files that
//! decide import them from here.

use std::collections::BTreeMap;
use std::time::Duration;

use super::settle::Settlement;
use super::target::Targeting;
use crate::claim::ClaimWrite;
use crate::crd::OfferCancellationStatus;
use crate::operation::{CancelOutcome, Operation, PolledOperation};

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
    /// cancel), and the target's API shows nothing in progress: the purpose
    /// is met.
    pub const NOTHING_IN_PROGRESS: &str = "NothingInProgress";
    /// The cancel is sent again: its first answer was lost and the
    /// operation it cancels is still in progress.
    pub const CANCEL_RESENT: &str = "CancelResent";
    /// A Failed resource resumes the cancel the target's API had accepted.
    pub const RESUMING: &str = "Resuming";
    /// A Failed resource was re-armed and starts a new attempt: the list
    /// read, then a cancel, with every guard of a first one.
    pub const RETRYING: &str = "Retrying";
    pub const CANCEL_FAILED: &str = "CancelFailed";
    /// Another resource's cancel of the same operation was in flight or
    /// accepted; this resource followed it instead of sending its own.
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
    /// A preview (`spec.preview`) recorded what the cancel would be for;
    /// nothing was sent, and turning the preview off sends it.
    pub const PREVIEW_READY: &str = "PreviewReady";
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
    /// Every reason above: what the README's list, the Argo CD health
    /// check's cases and the docs are checked against.
    pub const ALL: &[&str] = &[
        CANCEL_REQUESTED,
        CANCEL_ACCEPTED,
        CANCEL_IN_PROGRESS,
        CANCELLED,
        NOTHING_IN_PROGRESS,
        CANCEL_RESENT,
        RESUMING,
        RETRYING,
        CANCEL_FAILED,
        CANCEL_SHARED,
        OPERATION_ENDED,
        OPERATION_NOT_FOUND,
        NOTHING_TO_CANCEL,
        OFFER_NOT_FOUND,
        JOB_NOT_FOUND,
        JOB_ALREADY_COMPLETED,
        PREVIEW_READY,
        EXPIRED,
        TRANSIENT_ERROR,
        CREDENTIALS_UNAVAILABLE,
        CREDENTIALS_REJECTED,
        INVALID_SPEC,
        TIMEOUT,
        OPERATION_FAILED,
        LOCATION_UNAVAILABLE,
        INVALID_LOCATION,
        MALFORMED_RESPONSE,
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        CONFLICT,
        REJECTED,
    ];
}

/// How a transient error's status message begins: the controller tries
/// again.
pub const TRANSIENT_PREFIX: &str = "transient error, will retry: ";

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
    /// Ask the target's API, then apply what its answer means.
    Call(Call),
}

/// The call to the target's API a step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    /// Read the offer's operations list to find what the cancel is for
    /// ([`target`]); when that is an operation in progress, the intent is
    /// recorded with it and the POST follows.
    ReadTarget,
    /// Read the offer's operations list and apply [`settle`]'s verdict: the
    /// answer to the cancel is unknown (in doubt) or had no location.
    Settle,
    /// GET what the cancel follows: CPP's cancel operation, or the job.
    Poll { location: String },
    /// Read a cancelled job's detail once: what it had already processed.
    ReadJobDetail,
}

/// What the executor needs of the resource to ask the target's API, and
/// nothing else of it ([`super::Observed::asking`]).
#[derive(Debug, Clone)]
pub struct Asking<'a> {
    /// The target; `Err` for a spec that names none (nothing is asked).
    pub target: Result<crate::crd::Target<'a>, crate::crd::SpecError>,
    /// The resource's place in the request budget's line.
    pub turn: crate::scheduling::fair::Turn<'a>,
    /// A record read taken after this may answer ([`crate::claim::read_after`]).
    pub record_after: Option<jiff::Timestamp>,
    /// CPP's `notification-emails`, comma-joined.
    pub emails: String,
    /// The intent's `postDeadline`: the POST is abandoned then.
    pub post_deadline: Option<jiff::Timestamp>,
    /// The status the target's API refuses a cancel with when it came too
    /// late (CPP's 404, a job's 400): the executor then reads the target's
    /// record once, for [`super::meaning`] to read the refusal by.
    pub refused_late: u16,
}

/// What the target's API said to the call a step named (or to the cancel
/// POST after an intent), as the executor reports it: nothing in here is
/// interpreted yet. [`super::meaning`] alone says what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// Nothing was asked: the credentials or the target were missing.
    NotAsked(NotAsked),
    /// The target's record, read to find what the cancel is for
    /// ([`Call::ReadTarget`]).
    Target(Result<Listing, Failure>),
    /// The target's record, read to settle a cancel whose answer is
    /// unknown ([`Call::Settle`]).
    Record(Result<Listing, Failure>),
    /// One poll of what the cancel follows ([`Call::Poll`]).
    Poll(Result<PolledOperation, Failure>),
    /// The answer to the cancel POST.
    Cancel(Result<CancelOutcome, Refused>),
    /// A job's detail: its resources and how it left each
    /// ([`Call::ReadJobDetail`]).
    JobDetail(Result<Vec<crate::crd::JobResource>, Failure>),
}

/// Why nothing was asked of the target's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAsked {
    /// The Secret was not read, or yields nothing usable yet.
    NoCredentials(String),
    /// The Secret yields credentials that can never be used (a
    /// certificate that does not parse, say): as good as refused.
    UnusableCredentials(String),
    /// The spec names no valid target.
    NoTarget(String),
}

/// The target's record: the offer's operations list, or a job's status as
/// a one-entry list, with where each operation is polled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    pub operations: Vec<Operation>,
    /// Where each listed operation (by id) is polled.
    pub locations: BTreeMap<String, String>,
}

impl Listing {
    /// Where operation `id` is polled (empty when the API gave no way to:
    /// an empty location fails as such, in status).
    pub fn location(&self, id: &str) -> String {
        self.locations.get(id).cloned().unwrap_or_default()
    }
}

/// A cancel POST that did not get an answer in [`CancelOutcome`]'s words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub failure: Failure,
    /// When the API refused the cancel the way it refuses one that came
    /// too late (CPP's 404, a job's 400), the target's record, read once
    /// right after.
    pub then: Option<Result<Listing, Failure>>,
}

/// A call that failed, classified by the executor; its words are the
/// error's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    /// The error, in words (no secret in it: the clients' errors carry
    /// none).
    pub message: String,
}

/// What kind of failure a call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// What a token is asked from is not there (workload identity's
    /// ServiceAccount missing, or the right to ask for its token): nothing
    /// was sent.
    SourceUnavailable,
    /// May go away by itself.
    Transient { retry_after: Option<Duration> },
    /// Will not go away by itself.
    Terminal(Refusal),
}

/// What a terminal failure was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The target's API answered this HTTP status to that request.
    Answered { status: u16, to: Request },
    /// Entra ID refused the credentials.
    Credentials,
    /// A `Location` that may not be followed.
    Location,
    /// An answer that could not be read.
    Malformed,
    /// The request could not be made (a bad endpoint, say).
    Unsent,
}

/// Which of the target API's requests a status answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The target's record: the offer's operations list, the job's status.
    Record,
    Cancel,
    /// CPP's cancel operation (a job is polled at its status: `Record`).
    Poll,
}

/// What happened: what the target's API said, as [`super::meaning`] reads
/// it, or what the decision met without asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    InvalidSpec(String),
    CredentialsUnavailable(String),
    /// Workload identity's ServiceAccount is missing, or its token may not
    /// be asked for. Nothing watches ServiceAccounts (that would take the
    /// right to list every one), so it is asked again sooner than a Secret.
    ServiceAccountUnavailable(String),
    /// What the target's record says the cancel is for.
    Targeted(Targeting),
    /// Past `spec.notAfter`: nothing is sent.
    Expired,
    /// CPP answered the cancel with 404, and then its operations list.
    CancelNotFound(Box<NotFound>),
    /// A retried Failed resource picks up the cancel the target's API
    /// accepted before.
    Resumed,
    /// A retried Failed resource starts over: it is a first cancel again
    /// (Pending, no intent), so what happens on the way (a transient
    /// error, a Secret missing) belongs to the new attempt, not to the
    /// failure that was answered.
    Restarted,
    /// What the operations list said.
    Settled(Settlement),
    /// The API's answer to the cancel POST, as its client read it:
    /// cancelled at once, or accepted and still going.
    Answered(CancelOutcome),
    /// The API refused the cancel (a job's 400: already completed, or too
    /// far along), and then showed this of the target.
    CancelRefused {
        /// The HTTP status the API refused the cancel with.
        http: u16,
        message: String,
        settlement: Settlement,
    },
    /// One poll of what the cancel follows, as its client read it.
    Polled(PolledOperation),
    /// A terminal error. `cancel_status` is the API's answer to the cancel call
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
    /// What a cancelled job's detail showed of its resources, or why it
    /// could not be read.
    JobDetail(Result<Vec<crate::crd::JobResource>, Failure>),
    /// An outcome that ends a job cancelled, and its detail read right
    /// after: both recorded in one write.
    EndedWithDetail(Box<Outcome>, Result<Vec<crate::crd::JobResource>, Failure>),
    /// The generation moved on a final resource: record that it was seen.
    Acknowledged,
    /// Another resource took the target's claim first: nothing is written
    /// or sent; decide again from a fresh read.
    ClaimTaken,
}

/// CPP's 404 to the cancel, and what the offer's operations list showed
/// then. Only CPP's executor reports it: a 404 to a resend after a lost
/// answer means the first cancel went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    /// The HTTP status CPP answered the cancel with.
    pub http: u16,
    /// CPP's answer to the cancel, in words.
    pub message: String,
    pub list: ListAfterNotFound,
}

/// What the offer's operations list showed after a 404 to the cancel.
// Kept whole: it only ever travels boxed, inside Outcome::CancelNotFound.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListAfterNotFound {
    /// The list could not be read: the 404 stands as it is.
    Unread,
    /// The list was 404 too: CPP knows no such offer.
    OfferMissing,
    Shows {
        /// What the list says of the cancel since the intent and of the
        /// recorded operation.
        settlement: Option<Settlement>,
        /// The latest operation other than a cancel.
        latest: Option<crate::operation::Operation>,
    },
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
    /// What the target's claim needs: held before an intent, told the
    /// answer after our POST, let go when our cancel failed.
    pub claim: Option<ClaimWrite>,
}

#[cfg(test)]
mod tests {
    /// A reason added without a place in `reason::ALL` would escape every
    /// check that reads the list.
    #[test]
    fn every_reason_is_in_the_list() {
        let source = include_str!("model.rs");
        let module = source
            .split("pub mod reason {")
            .nth(1)
            .and_then(|rest| rest.split("\n}").next())
            .unwrap_or_default();
        let declared = module
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub const "))
            .filter(|l| l.contains(": &str = \""))
            .filter_map(|l| l.split('"').nth(1))
            .collect::<Vec<_>>();
        assert!(declared.len() > 30, "{declared:?}");
        assert_eq!(declared, super::reason::ALL);
    }
}
