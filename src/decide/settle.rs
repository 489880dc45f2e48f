//! What CPP's operations list says about a cancel whose answer is unknown
//! (the POST's answer was lost) or that came without a location.

use jiff::Timestamp;

use crate::operation::{Operation, OperationState};

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
