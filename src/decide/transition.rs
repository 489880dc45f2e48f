//! The table of transitions: for each outcome, the status that follows,
//! when to look again, the Event to publish, and whether the cancel POST
//! follows. Fields an outcome does not name are kept.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

use super::conditions::{Readiness, notice, set_readiness};
use super::model::{
    ListAfterNotFound, NotFound, Notice, Outcome, Requeue, TRANSIENT_PREFIX, Transition, condition,
    reason,
};
use super::observed::{Observed, Stage, cancel_accepted, deadline, expired, stage, timed_out};
use super::preview;
use super::processed;
use super::rearm::{Rearm, rearmed};
use super::settle::Settlement;
use super::target::{self, Targeting, describe};
use super::words::{Words, words};
use crate::claim::{self, Acquire, Claim, ClaimAnswer, ClaimWrite, Verdict};
use crate::crd::{MAX_EARLIER_RETRY_REQUESTS, OfferCancellationStatus, Phase};
use crate::operation::{CancelOutcome, Operation, OperationState, PolledOperation};
use crate::timing::{
    CREDENTIALS_RETRY, IN_FLIGHT_MARGIN, PEER_WAIT, SERVICE_ACCOUNT_RETRY, SHARE_WINDOW,
    UNTRACKED_LOOK,
};

/// Waits `wanted`, but wakes at the deadline so a timeout fires on time.
fn wait_until_deadline(obs: &Observed, wanted: Duration) -> Duration {
    let Some(d) = deadline(obs) else {
        return wanted;
    };
    let left = Duration::try_from(d.duration_since(obs.now)).unwrap_or(Duration::ZERO);
    wanted.min(left.max(Duration::from_secs(1)))
}

fn poll_wait(obs: &Observed, retry_after: Option<Duration>) -> Duration {
    let interval = Duration::from_secs(obs.spec.poll_interval_seconds().into());
    wait_until_deadline(obs, interval.max(retry_after.unwrap_or_default()))
}

/// The status after `outcome`. Fields not named by the outcome are kept.
pub fn transition(obs: &Observed, outcome: Outcome) -> Transition {
    use Outcome::*;
    let next = next_status(obs);
    match outcome {
        InvalidSpec(message) => fail(obs, next, reason::INVALID_SPEC, message),
        CredentialsUnavailable(message) => {
            credentials_unavailable(obs, next, message, CREDENTIALS_RETRY)
        }
        ServiceAccountUnavailable(message) => {
            credentials_unavailable(obs, next, message, SERVICE_ACCOUNT_RETRY)
        }
        Targeted(found) => found_for(obs, next, found),
        Expired => fail(
            obs,
            next,
            reason::EXPIRED,
            "past spec.notAfter: no cancel is sent".into(),
        ),
        CancelNotFound(found) => not_found(obs, next, *found),
        Resumed => resumed(obs, next),
        Restarted => restarted(obs, next),
        Settled(settlement) => settled(obs, next, settlement),
        Answered(answer) => answered(obs, next, answer),
        CancelRefused {
            http,
            message,
            settlement,
        } => refused(obs, with_answer(next, http), message, settlement),
        Polled(answer) => Transition {
            progress: answer.operation.progress.clone(),
            ..polled(obs, next, answer)
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
        JobDetail(read) => processed::recorded(obs, next, read),
        EndedWithDetail(ended, read) => processed::after(obs, transition(obs, *ended), read),
        Acknowledged => unchanged(obs, preview::wake(obs)),
        ClaimTaken => unchanged(obs, Requeue::After(Duration::ZERO)),
    }
}

/// The status a transition starts from: the current one, seen at this
/// generation, naming the target as the printer column shows it.
fn next_status(obs: &Observed) -> OfferCancellationStatus {
    let mut next = obs.status.clone();
    next.observed_generation = Some(obs.generation);
    next.target = obs
        .spec
        .target()
        .ok()
        .map(|t| crate::text::clip(&t.to_string(), 300));
    next
}

/// The API answered our cancel: cancelled at once, or accepted and
/// followed from here; the claim is told, for the others to follow.
fn answered(obs: &Observed, next: OfferCancellationStatus, answer: CancelOutcome) -> Transition {
    match answer {
        CancelOutcome::Cancelled => Transition {
            claim: Some(ClaimWrite::Answer(ClaimAnswer::Cancelled)),
            ..cancelled(
                obs,
                // Cancelled at once is a 200 from either API.
                with_answer(next, 200),
                reason::CANCELLED,
                format!("{} cancelled the operation synchronously", words(obs).api),
            )
        },
        CancelOutcome::Accepted {
            http,
            location,
            retry_after,
        } => Transition {
            claim: Some(ClaimWrite::Answer(ClaimAnswer::Accepted {
                location: location.clone(),
            })),
            ..accepted(obs, with_answer(next, http), location, retry_after)
        },
    }
}

/// A terminal error, recorded with the cancel call's own HTTP status when
/// that is what was refused.
fn rejected(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    why: &'static str,
    message: String,
    cancel_status: Option<u16>,
) -> Transition {
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

/// `status` with the HTTP status the API answered the cancel with
/// (`httpStatus`).
fn with_answer(mut status: OfferCancellationStatus, http: u16) -> OfferCancellationStatus {
    status.http_status = Some(http);
    status
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
    answer_retry_request(obs, &mut next);
    next.credentials_version = obs.credentials_version.clone().or(next.credentials_version);
    set_readiness(obs, &mut next, Readiness::Failed, why, &message);
    // A cancel of ours that failed holds the target no longer: a refusal
    // must never stop another resource's cancel.
    let sent = next.requested_at.is_some() && !next.shared_cancel;
    Transition {
        status: next,
        requeue: Requeue::Never,
        notice: notice(reason::CANCEL_FAILED, true, &message),
        post: false,
        progress: None,
        claim: sent.then_some(ClaimWrite::Release),
    }
}

fn credentials_unavailable(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    message: String,
    retry: std::time::Duration,
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
        requeue: Requeue::After(retry),
        notice: None,
        post: false,
        progress: None,
        claim: None,
    }
}

/// The intent, and the claim that must be held before it is written: the
/// POST follows once both are durable.
fn intent_recorded(obs: &Observed, mut next: OfferCancellationStatus, how: Acquire) -> Transition {
    // A resend after an in-doubt lookup keeps the first request time, so
    // timeoutSeconds counts from the first attempt and the operations list
    // is matched against it.
    let resend = stage(&obs.status) == Stage::InDoubt;
    if !resend {
        next.requested_at = Some(Time(obs.now));
        next.started_at = Some(Time(obs.now));
    }
    next.post_deadline = Some(Time(post_deadline(obs)));
    next.phase = Some(Phase::Pending);
    // A follower whose claimant was refused (or went quiet) now sends its
    // own: from here on the cancel is this resource's.
    next.shared_cancel = false;
    next.attempts = next.attempts.saturating_add(1);
    next.http_status = None;
    next.operation_location = None;
    next.operation_status = None;
    next.completed_at = None;
    answer_retry_request(obs, &mut next);
    next.credentials_version = obs.credentials_version.clone();
    let (why, message) = if resend {
        (
            reason::CANCEL_RESENT,
            "the answer to the cancel request was lost and the operation is still in progress; sending the cancel again",
        )
    } else {
        (reason::CANCEL_REQUESTED, "sending the cancel request")
    };
    let message = &format!("{message} ({})", words(obs).api);
    set_readiness(obs, &mut next, Readiness::Working, why, message);
    let claim = held_for_the_post(obs, &next);
    Transition {
        status: next,
        requeue: Requeue::After(Duration::ZERO),
        notice: notice(why, false, message),
        post: true,
        progress: None,
        claim: Some(ClaimWrite::Acquire { how, claim }),
    }
}

/// The claim this intent's POST holds: for its operation, in flight for as
/// long as the intent says (its `postDeadline` plus the margin).
fn held_for_the_post(obs: &Observed, intent: &OfferCancellationStatus) -> Claim {
    let deadline = intent.post_deadline.as_ref().map_or(obs.now, |d| d.0);
    Claim {
        claimant: obs.claimant.clone(),
        operation: intent
            .target_operation
            .as_ref()
            .map(|t| t.id.clone())
            .unwrap_or_default(),
        claimed_at: obs.now,
        in_flight_until: deadline.checked_add(IN_FLIGHT_MARGIN).unwrap_or(deadline),
        answer: None,
        answered_at: None,
        version: String::new(),
    }
}

/// `now` plus the POST's budget, to the whole second below: status keeps
/// whole seconds, and the sender must give up no later than what others
/// read there.
fn post_deadline(obs: &Observed) -> jiff::Timestamp {
    let end = obs.now.checked_add(obs.post_budget).unwrap_or(obs.now);
    jiff::Timestamp::from_second(end.as_second()).unwrap_or(obs.now)
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
    let accepted = cancel_accepted(&next);
    next.phase = Some(if accepted {
        Phase::Cancelling
    } else {
        Phase::Pending
    });
    next.completed_at = None;
    next.operation_status = None;
    next.started_at = Some(Time(obs.now));
    answer_retry_request(obs, &mut next);
    next.credentials_version = obs.credentials_version.clone();
    let api = words(obs).api;
    let why = rearmed(obs).map_or("", Rearm::describe);
    let message = &if accepted {
        format!("retrying ({why}): resuming the cancel {api} accepted earlier")
    } else {
        format!("retrying ({why}): checking {api}'s record for the earlier cancel request")
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
        claim: None,
    }
}

/// A retried Failed resource whose last answer ruled out an accepted
/// cancel starts over as a first cancel: Pending without an intent, the
/// last attempt's answer cleared, the ask answered. From here on it is a
/// first cancel with every guard (the list read, the claim, the intent).
fn restarted(obs: &Observed, mut next: OfferCancellationStatus) -> Transition {
    next.phase = Some(Phase::Pending);
    next.requested_at = None;
    next.post_deadline = None;
    // A confirmed preview stays bound to what it previewed, as an
    // `operationId` would; one still previewing reads again.
    if !preview::confirmed(obs) {
        next.target_operation = None;
        next.previewed_at = None;
    }
    next.shared_cancel = false;
    next.http_status = None;
    next.operation_location = None;
    next.operation_status = None;
    next.completed_at = None;
    next.started_at = Some(Time(obs.now));
    answer_retry_request(obs, &mut next);
    next.credentials_version = obs.credentials_version.clone();
    let why = rearmed(obs).map_or("", Rearm::describe);
    let message = &format!(
        "retrying ({why}): reading {}'s record before a new cancel",
        words(obs).api
    );
    set_readiness(
        obs,
        &mut next,
        Readiness::Working,
        reason::RETRYING,
        message,
    );
    Transition {
        status: next,
        requeue: Requeue::After(Duration::ZERO),
        notice: notice(reason::RETRYING, false, message),
        post: false,
        progress: None,
        claim: None,
    }
}

/// Records that this attempt answers the retry annotation's value, and
/// keeps the values answered before it (the last few): putting one of
/// them back (GitOps self-heal undoing `kubectl annotate` or the Argo CD
/// retry action) asks for nothing.
fn answer_retry_request(obs: &Observed, next: &mut OfferCancellationStatus) {
    if next.retry_request == obs.retry_request {
        return;
    }
    if let Some(previous) = next.retry_request.take() {
        let earlier = &mut next.earlier_retry_requests;
        earlier.retain(|v| *v != previous);
        earlier.push(previous);
        let excess = earlier.len().saturating_sub(MAX_EARLIER_RETRY_REQUESTS);
        earlier.drain(..excess);
    }
    next.retry_request = obs.retry_request.clone();
}

/// Applies what the operations list said, for an in-doubt POST or a 202
/// without a location.
fn settled(obs: &Observed, mut next: OfferCancellationStatus, found: Settlement) -> Transition {
    let untracked = stage(&obs.status) == Stage::Untracked;
    let found = record_earlier_target(&mut next, found);
    match found {
        Settlement::Follow { .. } | Settlement::TargetRunning
            if timed_out(obs) && !untracked =>
        {
            timed_out_in_doubt(obs, next, found)
        }
        Settlement::Follow { location } => adopted(obs, next, location),
        Settlement::Ended(cancel) => listed_cancel_ended(obs, next, &cancel),
        Settlement::TargetCancelled { operation } => cancelled(
            obs,
            next,
            reason::NOTHING_IN_PROGRESS,
            format!("the answer to the cancel request was lost; {operation} has ended cancelled"),
        ),
        Settlement::NothingInProgress { latest } => nothing_left(obs, next, latest, untracked),
        Settlement::EarlierTargetUnknown => not_listed(obs, next, None),
        Settlement::TargetMissing { id } => not_listed(obs, next, Some(&id)),
        Settlement::TargetRunning if untracked => fail(
            obs,
            next,
            reason::LOCATION_UNAVAILABLE,
            "CPP accepted the cancel (202) without a location, and the offer's operations list shows no cancel operation".into(),
        ),
        Settlement::TargetEnded { operation } => fail(
            obs,
            next,
            words(obs).ended,
            format!("{operation} ended before the cancel took effect"),
        ),
        Settlement::TargetRunning if expired(obs) => fail(
            obs,
            next,
            reason::EXPIRED,
            "the answer to the cancel was lost and the operation still runs, but spec.notAfter has passed: nothing is resent".into(),
        ),
        Settlement::TargetRunning | Settlement::EarlierTargetRunning(_) => {
            resend_unless_claimed(obs, next)
        }
    }
}

/// An earlier release's intent names no target; the operation it was for,
/// found in the list, is recorded before anything is resent.
fn record_earlier_target(next: &mut OfferCancellationStatus, found: Settlement) -> Settlement {
    match found {
        Settlement::EarlierTargetRunning(operation) => {
            next.target_operation = Some(operation);
            Settlement::TargetRunning
        }
        found => found,
    }
}

/// The list shows nothing of the operation the lost cancel was for: the
/// recorded one (`id`) is gone from it, or an earlier release's intent
/// named none the list can tell.
fn not_listed(obs: &Observed, next: OfferCancellationStatus, id: Option<&str>) -> Transition {
    let api = words(obs).api;
    let message = match id {
        Some(id) => format!("{api} no longer lists operation {id}: nothing shows it was cancelled"),
        None => format!(
            "the answer to a cancel requested by a release before 0.1.0 was lost, and its intent names no operation; {api}'s list cannot tell which one it was for (one started within two minutes of it, or one without a start time or an id): nothing was sent (to cancel one, apply an OfferCancellation naming it in spec.operationId)"
        ),
    };
    fail(obs, next, reason::OPERATION_NOT_FOUND, message)
}

/// An intent that named no target (an earlier release's), and nothing in
/// progress now: Cancelled only when the latest operation shows it.
fn nothing_left(
    obs: &Observed,
    next: OfferCancellationStatus,
    latest: Option<Operation>,
    untracked: bool,
) -> Transition {
    let api = words(obs).api;
    let how = if untracked {
        format!("{api} accepted the cancel without a location and now shows nothing in progress")
    } else {
        format!("the answer to the cancel request was lost; {api} shows nothing in progress")
    };
    match latest {
        Some(op) if op.was_cancelled() => cancelled(
            obs,
            next,
            reason::NOTHING_IN_PROGRESS,
            format!("{how}: {} has ended cancelled", describe(&op)),
        ),
        latest => fail(
            obs,
            next,
            reason::NOTHING_TO_CANCEL,
            format!(
                "{how}, and nothing shows a cancel: {}",
                nothing_in_progress(latest.as_ref())
            ),
        ),
    }
}

/// A lost answer whose operation still runs, with no cancel listed: our
/// POST did not take effect. It is sent again only while the target's
/// claim lets us; another resource that took the claim over meanwhile is
/// waited for, or followed.
fn resend_unless_claimed(obs: &Observed, next: OfferCancellationStatus) -> Transition {
    let operation = next
        .target_operation
        .as_ref()
        .map(|t| t.id.clone())
        .unwrap_or_default();
    match claim::verdict(obs.claim.as_ref(), &obs.claimant, &operation, record(obs)) {
        Verdict::Claim => intent_recorded(obs, next, Acquire::Create),
        Verdict::TakeOver { version } => intent_recorded(obs, next, Acquire::TakeOver { version }),
        Verdict::Wait(_) => unchanged(obs, Requeue::After(PEER_WAIT)),
        Verdict::Follow(ClaimAnswer::Accepted {
            location: Some(location),
        }) => {
            let target = next.target_operation.clone();
            shared(obs, next, location, target)
        }
        // Cancelled, or accepted untracked: the list, read again, shows it.
        Verdict::Follow(_) => unchanged(obs, Requeue::After(PEER_WAIT)),
    }
}

/// The operations list shows the cancel operation ended: failed, or done.
fn listed_cancel_ended(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    cancel: &Operation,
) -> Transition {
    next.operation_status = Some(cancel.status.clone());
    if cancel.state() == OperationState::Failed {
        let message = format!("the cancel operation failed: {}", cancel.failure_detail());
        return fail(obs, next, reason::OPERATION_FAILED, message);
    }
    let message = format!("the cancel operation CPP lists ended: {}", cancel.status);
    cancelled(obs, next, reason::CANCELLED, message)
}

/// What the target's record says, for a preview (recorded, nothing sent)
/// or for a cancel ([`targeted`]).
fn found_for(obs: &Observed, next: OfferCancellationStatus, found: Targeting) -> Transition {
    if preview::records(obs, &found) {
        return preview::ready(obs, next, found);
    }
    if obs.spec.is_preview() && matches!(found, Targeting::Follow { target: None, .. }) {
        let why = preview::ONLY_ANOTHER_CANCEL.into();
        return fail(obs, next, reason::NOTHING_TO_CANCEL, why);
    }
    targeted(obs, next, found)
}

/// What a fresh resource found before its first cancel request. An
/// operation to cancel goes to the target's claim first: claimed, the
/// intent is recorded and the POST follows; held by another resource's
/// cancel of it, that cancel is followed; held by a POST in flight, it
/// waits. What the list shows always wins over any other resource's word.
fn targeted(obs: &Observed, next: OfferCancellationStatus, found: Targeting) -> Transition {
    match found {
        Targeting::Send(target) => send_unless_claimed(obs, next, target),
        Targeting::Follow { location, target } => shared(obs, next, location, target),
        Targeting::Ended(op) if next.shared_cancel && op.was_cancelled() => {
            already_cancelled(obs, next, &op)
        }
        Targeting::Ended(op) if cancelled_for_us(obs, &op) => already_cancelled(obs, next, &op),
        Targeting::Ended(op) => fail(
            obs,
            next,
            words(obs).ended,
            format!("{} has ended; nothing was sent", describe(&op)),
        ),
        Targeting::Missing(id) => fail(
            obs,
            next,
            reason::OPERATION_NOT_FOUND,
            format!("the offer lists no operation {id}; nothing was sent"),
        ),
        Targeting::NothingToCancel(Some(op)) if cancelled_for_us(obs, &op) => {
            already_cancelled(obs, next, &op)
        }
        Targeting::NothingToCancel(latest) => fail(
            obs,
            next,
            reason::NOTHING_TO_CANCEL,
            format!("{}; nothing was sent", nothing_in_progress(latest.as_ref())),
        ),
    }
}

/// Nothing runs any more, and the latest operation ended cancelled by a
/// cancel the target's claim says was requested within the share window
/// before this resource was created: what ran when it was applied is what
/// that cancel stopped.
fn cancelled_for_us(obs: &Observed, op: &Operation) -> bool {
    let (Some(id), Some(created)) = (op.id.as_deref(), obs.created) else {
        return false;
    };
    let since = created - SHARE_WINDOW;
    op.was_cancelled() && claim::cancelled_since(obs.claim.as_ref(), &obs.claimant, id, since)
}

/// The operation this resource is for has ended cancelled by the cancel
/// it followed (or one claimed as it was created), as the target's API
/// lists it: its purpose is met, and nothing is sent.
fn already_cancelled(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    op: &Operation,
) -> Transition {
    next.shared_cancel = true;
    if let Some(t) = target::recorded(op) {
        next.target_operation = Some(t);
    }
    let message = format!(
        "the cancel was already requested for this operation; {} has ended cancelled",
        describe(op)
    );
    cancelled(obs, next, reason::CANCEL_SHARED, message)
}

/// What this round knows of the target's record, for the claim's verdict.
fn record(obs: &Observed) -> claim::Record {
    claim::Record {
        read_at: obs.round_started,
        lists_cancels: words(obs).lists_cancels,
    }
}

/// An operation to cancel: what the target's claim allows.
fn send_unless_claimed(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    target: crate::crd::TargetOperation,
) -> Transition {
    match claim::verdict(obs.claim.as_ref(), &obs.claimant, &target.id, record(obs)) {
        Verdict::Claim => {
            next.target_operation = Some(target);
            intent_recorded(obs, next, Acquire::Create)
        }
        Verdict::TakeOver { version } => {
            next.target_operation = Some(target);
            intent_recorded(obs, next, Acquire::TakeOver { version })
        }
        Verdict::Wait(_) => following(obs, next, target, PEER_WAIT),
        Verdict::Follow(ClaimAnswer::Accepted {
            location: Some(location),
        }) if seen_failing(obs, &location) => {
            let version = obs.claim.as_ref().map(|c| c.version.clone());
            next.target_operation = Some(target);
            intent_recorded(
                obs,
                next,
                Acquire::TakeOver {
                    version: version.unwrap_or_default(),
                },
            )
        }
        Verdict::Follow(ClaimAnswer::Accepted {
            location: Some(location),
        }) => shared(obs, next, location, Some(target)),
        Verdict::Follow(_) => following(obs, next, target, PEER_WAIT),
    }
}

/// Another resource's cancel of `target` is in flight, or was answered
/// without a location to follow: record what this resource is for (from
/// now on it is as if `operationId` named it), and look again. The
/// message names no other resource or namespace.
fn following(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    target: crate::crd::TargetOperation,
    wait: Duration,
) -> Transition {
    let message = format!(
        "another request to cancel {} {} was sent; following it",
        target.type_.as_deref().unwrap_or("operation"),
        target.id
    );
    next.shared_cancel = true;
    next.target_operation = Some(target);
    let t = pending_shared(obs, next, &message, wait);
    let changed = t.status != obs.status;
    Transition {
        notice: changed
            .then(|| notice(reason::CANCEL_SHARED, false, &message))
            .flatten(),
        ..t
    }
}

/// Pending, following another resource's cancel (`CancelShared`), to be
/// looked at again after `wait`; no Event (the callers say when).
fn pending_shared(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    message: &str,
    wait: Duration,
) -> Transition {
    next.phase = Some(Phase::Pending);
    set_readiness(
        obs,
        &mut next,
        Readiness::Working,
        reason::CANCEL_SHARED,
        message,
    );
    Transition {
        status: next,
        requeue: Requeue::After(wait),
        notice: None,
        post: false,
        progress: None,
        claim: None,
    }
}

/// Another resource's cancel of the same operation was accepted: follow
/// it, and end as it ends. The message names no other resource or
/// namespace.
fn shared(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    location: String,
    target: Option<crate::crd::TargetOperation>,
) -> Transition {
    next.shared_cancel = true;
    next.target_operation = target.or(next.target_operation);
    next.operation_location = Some(location);
    next.started_at = Some(Time(obs.now));
    let message = "the cancel was already requested for this operation; following it";
    let followed = notice(reason::CANCEL_SHARED, false, message);
    cancelling(obs, next, message, Duration::ZERO, followed)
}

fn nothing_in_progress(latest: Option<&Operation>) -> String {
    match latest {
        Some(op) => format!("nothing in progress: latest {}", describe(op)),
        None => "nothing in progress on the offer".into(),
    }
}

/// The API refused the cancel (a job's 400); how the target ended says
/// why. Ended cancelled after a resend of ours whose first answer was
/// lost: that first POST did it (the lost-answer rule). Otherwise nothing
/// this resource sent stopped it.
fn refused(
    obs: &Observed,
    next: OfferCancellationStatus,
    message: String,
    found: Settlement,
) -> Transition {
    match found {
        Settlement::TargetCancelled { operation } if resent(&obs.status) => cancelled(
            obs,
            next,
            reason::NOTHING_IN_PROGRESS,
            format!("the first answer to the cancel was lost; {operation} has ended cancelled"),
        ),
        Settlement::TargetCancelled { operation } | Settlement::TargetEnded { operation } => fail(
            obs,
            next,
            words(obs).ended,
            format!("{operation} had already completed: {message}"),
        ),
        _ => fail(obs, next, reason::BAD_REQUEST, message),
    }
}

/// CPP answered the cancel with 404, and then showed its operations
/// list. A cancel operation created since the intent is followed or
/// recorded as it ended. A resend after a lost answer: what the list
/// shows of the operation decides (cancelled: the first POST did it;
/// ended otherwise: too late). A first POST: nothing was cancelled.
fn not_found(obs: &Observed, next: OfferCancellationStatus, found: NotFound) -> Transition {
    let NotFound {
        http,
        message,
        list,
    } = found;
    let next = with_answer(next, http);
    let (settlement, latest) = match list {
        ListAfterNotFound::Unread => return fail(obs, next, reason::NOT_FOUND, message),
        ListAfterNotFound::OfferMissing => {
            return fail(obs, next, reason::OFFER_NOT_FOUND, message);
        }
        ListAfterNotFound::Shows { settlement, latest } => (settlement, latest),
    };
    match settlement {
        Some(found @ (Settlement::Follow { .. } | Settlement::Ended(_))) => {
            return settled(obs, next, found);
        }
        Some(Settlement::TargetCancelled { operation }) if resent(&obs.status) => {
            let message = format!(
                "the first answer to the cancel was lost; CPP answered the resend with 404 and lists {operation}"
            );
            return cancelled(obs, next, reason::NOTHING_IN_PROGRESS, message);
        }
        Some(Settlement::TargetEnded { operation }) if resent(&obs.status) => {
            let message = format!(
                "CPP answered the resend with 404: {operation} ended before the cancel took effect"
            );
            return fail(obs, next, words(obs).ended, message);
        }
        _ => {}
    }
    let shows = nothing_in_progress(latest.as_ref());
    fail(
        obs,
        next,
        reason::NOTHING_TO_CANCEL,
        format!("{message}; {shows}"),
    )
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
    let read_detail = processed::mark(obs, &mut next);
    Transition {
        status: next,
        requeue: match read_detail {
            true => Requeue::After(Duration::ZERO),
            false => Requeue::Never,
        },
        notice: notice(reason::CANCELLED, false, &message),
        post: false,
        progress: None,
        claim: None,
    }
}

fn accepted(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    location: Option<String>,
    retry_after: Option<Duration>,
) -> Transition {
    let Words { api, followed, .. } = words(obs);
    let (message, wait) = match &location {
        Some(_) => (
            format!("{api} accepted the cancel; polling {followed}"),
            poll_wait(obs, retry_after),
        ),
        None => (
            "CPP accepted the cancel without a location; looking for the cancel operation"
                .to_string(),
            UNTRACKED_LOOK,
        ),
    };
    next.operation_location = location;
    let accepted = notice(reason::CANCEL_ACCEPTED, false, &message);
    cancelling(obs, next, &message, wait, accepted)
}

/// Cancelling: the cancel is under way, and followed.
fn cancelling(
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
        claim: None,
    }
}

fn adopted(obs: &Observed, mut next: OfferCancellationStatus, location: String) -> Transition {
    next.operation_location = Some(location);
    let message = "found the cancel operation in CPP's operations list; polling it";
    let adopted = notice(reason::CANCEL_ACCEPTED, false, message);
    cancelling(obs, next, message, Duration::ZERO, adopted)
}

/// What a poll of the followed cancel (or job) says: still running, done,
/// or failed.
fn polled(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    answer: PolledOperation,
) -> Transition {
    let PolledOperation {
        operation,
        state,
        location,
        retry_after,
    } = answer;
    let moved = location.filter(|l| next.operation_location.as_ref() != Some(l));
    if state == OperationState::InProgress {
        return still_running(obs, next, moved, poll_wait(obs, retry_after));
    }
    next.operation_status = Some(operation.status.clone());
    next.operation_location = moved.or(next.operation_location);
    if state == OperationState::Done {
        return followed_done(obs, next, &operation.status);
    }
    followed_failed(obs, next, &operation)
}

/// Still running: only a new location is worth a write.
fn still_running(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    moved: Option<String>,
    wait: Duration,
) -> Transition {
    let Some(location) = moved else {
        return unchanged(obs, Requeue::After(wait));
    };
    next.operation_location = Some(location);
    let message = "CPP moved the cancel operation; polling its new location";
    cancelling(obs, next, message, wait, None)
}

fn followed_done(obs: &Observed, next: OfferCancellationStatus, raw: &str) -> Transition {
    if next.shared_cancel {
        let message = format!("the cancel was already requested for this offer; it ended: {raw}");
        return cancelled(obs, next, reason::CANCEL_SHARED, message);
    }
    let message = format!("{} ended: {raw}", words(obs).followed);
    cancelled(obs, next, reason::CANCELLED, message)
}

/// A job that ended otherwise than cancelled was not stopped by us; a CPP
/// cancel operation that failed is a failed cancel.
fn followed_failed(
    obs: &Observed,
    next: OfferCancellationStatus,
    operation: &Operation,
) -> Transition {
    let (raw, detail) = (&operation.status, operation.failure_detail());
    match obs.spec.product_ingestion {
        Some(_) => fail(
            obs,
            next,
            reason::JOB_ALREADY_COMPLETED,
            format!("the job ended {raw}, not cancelled: {detail}"),
        ),
        None if next.shared_cancel => followed_cancel_failed(obs, next, &detail),
        None => fail(
            obs,
            next,
            reason::OPERATION_FAILED,
            format!("the cancel operation failed: {detail}"),
        ),
    }
}

/// Another resource's cancel, which this one followed, failed: its
/// operation is not cancelled, and no POST of anyone's is in flight. It
/// looks again as a fresh resource would, and sends its own while the
/// operation runs (the claim pointing at that failed cancel binds it no
/// longer: [`send_unless_claimed`]).
fn followed_cancel_failed(
    obs: &Observed,
    next: OfferCancellationStatus,
    detail: &str,
) -> Transition {
    let message = format!("the cancel this resource followed failed ({detail}); looking again");
    let t = pending_shared(obs, next, &message, Duration::ZERO);
    Transition {
        notice: notice(reason::CANCEL_SHARED, true, &message),
        ..t
    }
}

/// Whether `location` is the cancel this resource followed and saw fail.
fn seen_failing(obs: &Observed, location: &str) -> bool {
    let status = &obs.status;
    let failed = status
        .operation_status
        .as_deref()
        .is_some_and(|s| OperationState::of(s) == OperationState::Failed);
    failed && status.operation_location.as_deref() == Some(location)
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
    let message = format!("{TRANSIENT_PREFIX}{message}");
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
        claim: None,
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
        claim: None,
    }
    .restamp(obs)
}

/// The timeout ran out while the last POST's answer was unknown, and the
/// target's record shows the cancel not done: a cancel operation still running
/// (kept, so a retry resumes it), or none beside the running operation
/// (nothing is resent past the timeout).
fn timed_out_in_doubt(
    obs: &Observed,
    mut next: OfferCancellationStatus,
    found: Settlement,
) -> Transition {
    let seconds = obs.spec.timeout_seconds.unwrap_or_default();
    let w = words(obs);
    let shows = match found {
        // CPP's wording is as before; a job's says whose record it is.
        Settlement::Follow { location } => {
            next.operation_location = Some(location);
            match w.lists_cancels {
                true => format!("{} lists {} as still running", w.api, w.followed),
                false => format!("{} shows {} as still running", w.api, w.followed),
            }
        }
        _ => match w.lists_cancels {
            true => format!(
                "{} lists the operation as still in progress and no cancel operation; nothing was resent",
                w.api
            ),
            false => format!(
                "{} shows the operation as still in progress; nothing was resent",
                w.api
            ),
        },
    };
    let message = format!(
        "the cancel did not complete within timeoutSeconds ({seconds}s) and its answer was lost: {shows}"
    );
    fail(obs, next, reason::TIMEOUT, message)
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
