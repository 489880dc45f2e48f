//! What the resource's target is called, and how its API says things,
//! one [`Words`] per target kind: the decision reads the same answers
//! for both APIs, but says whose they are, and the two APIs say some
//! things differently (a cancel that came too late is CPP's 404 and a
//! job's 400; a 404 names an offer or a job).

use super::model::{
    Failure, FailureClass, ListAfterNotFound, Listing, NotFound, Outcome, Refusal, Request, reason,
    reason_for_status,
};
use super::observed::{Observed, recorded, wanted};
use super::settle::{Settlement, settle};
use super::target::latest;

/// What the resource targets, in the words its messages and reasons use.
#[derive(Debug, Clone, Copy)]
pub(super) struct Words {
    /// Who answers: `CPP`, `the Product Ingestion API`.
    pub(super) api: &'static str,
    /// What is polled after an accepted cancel.
    pub(super) followed: &'static str,
    /// The reason when the target ended otherwise than cancelled.
    pub(super) ended: &'static str,
    /// Whether the API lists a cancel as an operation of its own.
    pub(super) lists_cancels: bool,
    /// What a refusal of a cancel that came too late means, given the
    /// target's record read right after it (`None`: the refusal stands as
    /// it is).
    pub(super) refused_late: fn(&Observed, &Failure, Result<Listing, Failure>) -> Option<Outcome>,
    /// The reason for a status the API answered to a request.
    pub(super) refusal_reason: fn(u16, Request) -> &'static str,
    /// The status the API refuses a cancel with when it came too late
    /// (docs/cpp-api.md, docs/product-ingestion-api.md).
    pub(super) refused_late_with: u16,
}

pub(super) fn words(obs: &Observed) -> Words {
    match obs.spec.product_ingestion {
        Some(_) => Words {
            api: "the Product Ingestion API",
            followed: "the job",
            ended: reason::JOB_ALREADY_COMPLETED,
            lists_cancels: false,
            refused_late: job_refused_late,
            refusal_reason: job_refusal_reason,
            refused_late_with: 400,
        },
        None => Words {
            api: "CPP",
            followed: "the cancel operation",
            ended: reason::OPERATION_ENDED,
            lists_cancels: true,
            refused_late: offer_refused_late,
            refusal_reason: offer_refusal_reason,
            refused_late_with: 404,
        },
    }
}

/// [`settle`] for the cancel the status requested, of `target`.
pub(super) fn settle_by(obs: &Observed, target: Option<&str>, listing: &Listing) -> Settlement {
    let since = obs.status.requested_at.as_ref().map(|t| t.0);
    settle(&listing.operations, since, target, |id| {
        listing.location(id)
    })
}

/// CPP's 404 to the cancel: what the offer's operations list shows. If the
/// list cannot be read either, the 404 stands as it is.
fn offer_refused_late(
    obs: &Observed,
    failure: &Failure,
    then: Result<Listing, Failure>,
) -> Option<Outcome> {
    let http = answered_status(failure)?;
    let list = match then {
        Ok(listing) => ListAfterNotFound::Shows {
            settlement: Some(settle_by(obs, recorded(obs), &listing)),
            latest: latest(&listing.operations, |_| true).cloned(),
        },
        Err(f) if f.class == answered(404, Request::Record) => ListAfterNotFound::OfferMissing,
        Err(_) => ListAfterNotFound::Unread,
    };
    Some(Outcome::CancelNotFound(Box::new(NotFound {
        http,
        message: failure.message.clone(),
        list,
    })))
}

/// A job's 400 to the cancel ("job has already completed", or "far enough
/// along"): the job's status says how it ended. If it cannot be read, the
/// 400 stands as it is.
fn job_refused_late(
    obs: &Observed,
    failure: &Failure,
    then: Result<Listing, Failure>,
) -> Option<Outcome> {
    let http = answered_status(failure)?;
    let listing = then.ok()?;
    Some(Outcome::CancelRefused {
        http,
        settlement: settle_by(obs, wanted(obs), &listing),
        message: failure.message.clone(),
    })
}

/// The status the API refused with (`None`: it did not answer).
fn answered_status(failure: &Failure) -> Option<u16> {
    match failure.class {
        FailureClass::Terminal(Refusal::Answered { status, .. }) => Some(status),
        _ => None,
    }
}

fn answered(status: u16, to: Request) -> FailureClass {
    FailureClass::Terminal(Refusal::Answered { status, to })
}

/// The reason for a status CPP answered: a 404 to the operations list is
/// an offer CPP does not know.
fn offer_refusal_reason(status: u16, to: Request) -> &'static str {
    match (status, to) {
        (404, Request::Record) => reason::OFFER_NOT_FOUND,
        (status, _) => reason_for_status(status),
    }
}

/// The reason for a status the Product Ingestion API answered: a 404 is a
/// job it does not know; 401 and 403 are both `Forbidden`
/// (docs/product-ingestion-api.md).
fn job_refusal_reason(status: u16, _: Request) -> &'static str {
    match status {
        404 => reason::JOB_NOT_FOUND,
        401 | 403 => reason::FORBIDDEN,
        other => reason_for_status(other),
    }
}
