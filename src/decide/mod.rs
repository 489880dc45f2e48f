//! The decision: given what is observed, what to do next (`next_step`,
//! here), and given what happened, what the status becomes
//! ([`transition`]). Plain Rust, no client, no `.await`, and the clock is
//! part of what is observed, so tests walk every transition.
//!
//! From the bottom up (each file imports only from those above it in
//! this list):
//! - `target.rs`: what the operations list says a first cancel is for.
//! - `settle.rs`: what the operations list says of a cancel in doubt.
//! - `model.rs`: the decision's words: steps, calls, what the API said,
//!   outcomes, transitions, condition types and reasons.
//! - `observed.rs`: what the decision looks at, and what it reads there.
//! - `words.rs`: the target's words, one per kind: whose API answers, and
//!   how it says what the other says otherwise.
//! - `meaning.rs`: what the target's API said ([`Said`]) means: the one
//!   place answers and failures become [`Outcome`]s.
//! - `preview.rs`: what a preview records, and what confirming it sends.
//! - `processed.rs`: what a cancelled job had already processed.
//! - `rearm.rs`: what re-arms a Failed resource (the README's table).
//! - `conditions.rs`: how a transition reads as conditions and an Event.
//! - `transition.rs`: the table of transitions, one function per outcome.
//! - here: `next_step`.

mod conditions;
mod meaning;
mod model;
mod observed;
mod preview;
mod processed;
mod rearm;
mod settle;
mod target;
#[cfg(test)]
mod tests;
mod transition;
mod words;

pub use meaning::meaning;
#[cfg(any(test, feature = "fixtures"))]
pub(crate) use model::reason_for_status;
pub use model::{
    Asking, Failure, FailureClass, ListAfterNotFound, Listing, NotAsked, NotFound, Notice, Outcome,
    Refusal, Refused, Request, Requeue, Said, TRANSIENT_PREFIX, Transition, condition, reason,
};
pub(crate) use model::{Call, Step};
pub use observed::Observed;
pub use processed::read_after as job_detail_follows;
pub use settle::Settlement;
pub use target::Targeting;
pub use transition::transition;

use crate::crd::OfferCancellationStatus;
use crate::operation::OperationState;
use crate::scheduling::fair::{Turn, Urgency};
use observed::{Stage, answer_may_still_come, cancel_accepted, expired, stage, stale, timed_out};
use rearm::rearmed;

impl Observed {
    /// Whether the next step may lead to a cancel POST (a first one, a
    /// retry that sends anew, or a resend after a lost answer): only then
    /// is the target's claim read.
    pub fn needs_claim(&self) -> bool {
        matches!(next_step(self), Step::Call(Call::ReadTarget | Call::Settle))
    }

    /// How urgent this resource's work is: a cancel not yet sent, or one
    /// whose answer was lost (it may be sent again), goes before work on a
    /// cancel the API has answered.
    pub fn urgency(&self) -> Urgency {
        match stage(&self.status) {
            Stage::Fresh | Stage::InDoubt => Urgency::FirstCancel,
            Stage::Failed if rearmed(self).is_some() => Urgency::FirstCancel,
            _ => Urgency::Routine,
        }
    }

    /// The claim this resource's intent holds while its POST may still be
    /// in flight, made from its status alone. Releases before the claims
    /// (0.1.0 and earlier) recorded intents without one; every other
    /// resource on the target reads the claim and no other status, so the
    /// controller takes it for them at start-up, before any reconcile.
    pub fn claim_of_intent_in_flight(&self) -> Option<crate::claim::Claim> {
        if stage(&self.status) != Stage::InDoubt {
            return None;
        }
        let window = answer_may_still_come(self)?;
        let operation = self.status.target_operation.as_ref();
        Some(crate::claim::Claim {
            claimant: self.claimant.clone(),
            operation: operation.map(|t| t.id.clone()).unwrap_or_default(),
            claimed_at: self.status.requested_at.as_ref()?.0,
            in_flight_until: self.now.checked_add(window).ok()?,
            answer: None,
            answered_at: None,
            version: String::new(),
        })
    }

    /// What the executor needs of this resource to ask its target's API.
    pub fn asking(&self) -> Asking<'_> {
        Asking {
            target: self.spec.target(),
            turn: self.turn(),
            record_after: crate::claim::read_after(self.claim.as_ref(), &self.claimant, self.now),
            emails: self.spec.notification_emails_joined(),
            post_deadline: self.status.post_deadline.as_ref().map(|d| d.0),
            refused_late: words::words(self).refused_late_with,
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

/// A resource's place in line before anything else is read (the
/// reconcile workers' gate): its urgency, read from its status and retry
/// annotation at `now`, and its namespace, waiting since `since`.
pub fn waiting_turn(
    resource: &crate::crd::OfferCancellation,
    now: jiff::Timestamp,
    since: std::time::Instant,
) -> Turn<'_> {
    let observed = Observed::of(resource, None, 0, now);
    Turn {
        urgency: observed.urgency(),
        tenant: resource.metadata.namespace.as_deref().unwrap_or_default(),
        since,
    }
}

/// What to do next. Once the cancel was sent (Cancelling, Cancelled, Failed)
/// no path leads back to a first cancel except a retry of a Failed one that
/// someone asked for ([`rearm`]).
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
        Stage::Fresh => preview::next_step(obs).unwrap_or_else(|| send_if_valid(obs)),
        Stage::InDoubt | Stage::Untracked => Step::Call(Call::Settle),
        Stage::Polling(location) => Step::Call(Call::Poll { location }),
        Stage::Failed if rearmed(obs).is_some() => retry(obs),
        Stage::Cancelled if processed::pending(obs) => Step::Call(Call::ReadJobDetail),
        Stage::Cancelled | Stage::Failed if stale(obs) => Step::Record(Outcome::Acknowledged),
        Stage::Cancelled | Stage::Failed => Step::Idle,
    }
}

/// A retry never forgets a cancel CPP may have accepted: it resumes from
/// the recorded location or the operations list, and starts over (a first
/// cancel again) only when the last attempt's answer ruled that out.
fn retry(obs: &Observed) -> Step {
    match (obs.spec.validate(), may_have_accepted(&obs.status)) {
        (Err(e), _) => Step::Record(Outcome::InvalidSpec(e.to_string())),
        (Ok(()), true) => Step::Record(Outcome::Resumed),
        (Ok(()), false) if expired(obs) => Step::Record(Outcome::Expired),
        (Ok(()), false) => Step::Record(Outcome::Restarted),
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

fn send_if_valid(obs: &Observed) -> Step {
    match obs.spec.validate() {
        Ok(()) => Step::Call(Call::ReadTarget),
        Err(e) => Step::Record(Outcome::InvalidSpec(e.to_string())),
    }
}
