//! What the decision looks at ([`Observed`]) and what it reads there:
//! the stage a status is in, the timeout, `notAfter`, whether a POST may
//! still be in flight, and the words of the API the spec names.

use jiff::Timestamp;
use std::time::Duration;

use crate::claim::{Claim, Claimant};
use crate::crd::{
    OfferCancellation, OfferCancellationSpec, OfferCancellationStatus, Phase, RETRY_ANNOTATION,
    retry_request_token,
};
use crate::timing::{DEFAULT_POST_BUDGET, EARLIER_RELEASE_POST_WINDOW, IN_FLIGHT_MARGIN};

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
    /// This resource as the claimant of its target.
    pub claimant: Claimant,
    /// When this round's reads began (wall clock): the target's record
    /// read in it is no older than this.
    pub round_started: Timestamp,
    /// The target's claim as the API server had it when this round read
    /// it (`None`: unclaimed, or not read: the CLI, or a step that sends
    /// nothing): one cancel per target.
    pub claim: Option<Claim>,
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
            claimant: Claimant::of(resource),
            claim: None,
            round_started: now,
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
            claim: self.claim.take(),
            round_started: self.round_started,
            round_began: self.round_began,
            ..fresh
        };
    }
}

impl Observed {
    /// The operation a first cancel is for, when it is known before the
    /// list is read: the one `spec.operationId` names, or the one this
    /// resource found in progress and follows another resource's cancel
    /// of (from then on it is as if `operationId` named it), or the one a
    /// confirmed preview recorded.
    pub fn operation_named(&self) -> Option<&str> {
        let followed = (self.status.shared_cancel && stage(&self.status) == Stage::Fresh)
            .then_some(self.status.target_operation.as_ref())
            .flatten();
        self.spec
            .operation_id
            .as_deref()
            .or(followed.map(|t| t.id.as_str()))
            .or(super::preview::confirmed_operation(self))
    }
}

impl Observed {
    /// Whether this resource waits on another resource's claim of its
    /// target (it follows a cancel not yet answered, or answered without a
    /// location): the claim's release or answer is worth a look at once.
    pub fn follows_a_claim(&self) -> bool {
        self.status.shared_cancel && stage(&self.status) == Stage::Fresh
    }
}

/// Where a resource stands, derived from its status alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stage {
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

pub(super) fn stage(status: &OfferCancellationStatus) -> Stage {
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

impl Observed {
    /// Whether the decision, or the call it names, needs what the Secret
    /// yields. A Cancelled resource only ever stays as it is or records a
    /// new generation, so it is decided without reading its Secret: at
    /// start-up every Cancelled resource is reconciled once, and each would
    /// otherwise cost a Secret read.
    pub(crate) fn needs_credentials(&self) -> bool {
        stage(&self.status) != Stage::Cancelled || super::processed::pending(self)
    }
}

/// The API accepted the cancel and it was followed: CPP's 202, or a job's
/// 200 that left it running (followed at its status location).
pub(super) fn cancel_accepted(status: &OfferCancellationStatus) -> bool {
    status.http_status == Some(202)
        || (status.http_status == Some(200) && status.operation_location.is_some())
}

/// The operation the cancel is for, when the spec names one: CPP's
/// `operationId` (or the one a shared cancel followed), or the job itself.
pub(super) fn wanted(obs: &Observed) -> Option<&str> {
    match obs.spec.target() {
        Ok(crate::crd::Target::Job { job_id, .. }) => Some(job_id),
        _ => obs.operation_named(),
    }
}

/// The operation the intent recorded.
pub(super) fn recorded(obs: &Observed) -> Option<&str> {
    let target = obs.status.target_operation.as_ref();
    target.map(|t| t.id.as_str())
}

pub(super) fn stale(obs: &Observed) -> bool {
    obs.status.observed_generation != Some(obs.generation)
}

/// While the POST after the recorded intent may still be in flight (its
/// `postDeadline` plus [`IN_FLIGHT_MARGIN`] is ahead), how long until it
/// no longer may.
pub(super) fn answer_may_still_come(obs: &Observed) -> Option<Duration> {
    post_in_flight_for(&obs.status, obs.now)
}

/// [`answer_may_still_come`] for any status, at `now`. An intent without a
/// `postDeadline` was written by a release before 0.1.0, whose POST had
/// no deadline of its own: it is waited for [`EARLIER_RELEASE_POST_WINDOW`]
/// from `requestedAt`, the longest any such release could have kept it
/// in flight.
pub(super) fn post_in_flight_for(
    status: &OfferCancellationStatus,
    now: Timestamp,
) -> Option<Duration> {
    let deadline = match (&status.post_deadline, &status.requested_at) {
        (Some(deadline), _) => deadline.0,
        (None, Some(requested)) => requested.0.checked_add(EARLIER_RELEASE_POST_WINDOW).ok()?,
        (None, None) => return None,
    };
    let settled_from = deadline.checked_add(IN_FLIGHT_MARGIN).ok()?;
    let left = now.duration_until(settled_from);
    Duration::try_from(left).ok().filter(|d| !d.is_zero())
}

/// When `timeoutSeconds` runs out: counted from the start of the current
/// attempt (the first request, or the latest retry).
pub(super) fn deadline(obs: &Observed) -> Option<Timestamp> {
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
pub(super) fn expired(obs: &Observed) -> bool {
    obs.spec.not_after.as_ref().is_some_and(|t| obs.now >= t.0)
}

pub(super) fn timed_out(obs: &Observed) -> bool {
    deadline(obs).is_some_and(|d| obs.now >= d)
}
