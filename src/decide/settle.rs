//! What CPP's operations list says about a cancel whose answer is unknown
//! (the POST's answer was lost) or that came without a location.

use jiff::Timestamp;

use crate::crd::TargetOperation;
use crate::operation::{Operation, OperationState};
use crate::timing::CLOCK_SKEW;

/// What CPP's operations list says about a cancel whose fate is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// A cancel operation created since the intent, still going: poll it.
    Follow { location: String },
    /// A cancel operation created since the intent has ended: the
    /// operation as the list shows it.
    Ended(Operation),
    /// An intent that names no target (an earlier release's) and nothing
    /// in progress on the offer: the latest operation says whether a
    /// cancel took effect.
    NothingInProgress { latest: Option<Operation> },
    /// No cancel of ours, and the operation to cancel still runs.
    TargetRunning,
    /// An intent that names no target (a release before the guards wrote
    /// it): no cancel of ours, and this operation, created before the
    /// intent, still runs. It is what the intent was for.
    EarlierTargetRunning(TargetOperation),
    /// An intent that names no target, and the list cannot tell which
    /// operation it was for (one started within the clock skew of it, or
    /// one without an id or a creation time): nothing is taken for it.
    EarlierTargetUnknown,
    /// The operation this resource cancels ended cancelled.
    TargetCancelled { operation: String },
    /// The operation this resource cancels ended otherwise than cancelled
    /// (`succeeded`, `failed`, ...): the cancel came too late.
    TargetEnded { operation: String },
    /// The operation this resource cancels is no longer listed: nothing
    /// shows that it was cancelled.
    TargetMissing { id: String },
}

/// Reads the offer's operations list for a cancel requested at `since`.
/// A cancel operation created since then is ours whatever its state; one
/// without a creation time is taken as ours only while in progress.
/// Without one, `target` (the operation the intent recorded) decides by
/// its id: only while it is in progress is the cancel sent again; an
/// operation started since is never taken for it. `locate` turns an
/// operation id into the location to poll.
pub(crate) fn settle(
    operations: &[Operation],
    since: Option<Timestamp>,
    target: Option<&str>,
    locate: impl Fn(&str) -> String,
) -> Settlement {
    let ours = |op: &&Operation| {
        op.is_cancel()
            && match (op.created, since) {
                (Some(created), Some(since)) => created >= since - CLOCK_SKEW,
                _ => op.is_running(),
            }
    };
    let latest = operations.iter().filter(ours).max_by_key(|op| op.created);
    if let Some(op) = latest {
        let state = op.state();
        // An unknown status is not "in progress" in the list, but it is
        // not an ending either: keep polling it.
        if let (true, Some(id)) = (
            op.is_running() || state == OperationState::InProgress,
            &op.id,
        ) {
            return Settlement::Follow {
                location: locate(id),
            };
        }
        if state != OperationState::InProgress {
            return Settlement::Ended(op.clone());
        }
    }
    match target {
        Some(id) => by_target(operations, id),
        None => by_earlier_target(operations, since),
    }
}

/// An intent recorded by a release before the guards names no target: its
/// POST was for whatever ran when it was sent, so only an operation
/// created by then can be it (the latest such), and one created since is
/// never taken for it. CPP's clock may be [`CLOCK_SKEW`] off ours, so an
/// operation created within that of the intent, or one without a creation
/// time, may be either: then nothing can be told, and nothing is taken.
fn by_earlier_target(operations: &[Operation], since: Option<Timestamp>) -> Settlement {
    let Some(since) = since else {
        return Settlement::EarlierTargetUnknown;
    };
    let (before, after) = (since - CLOCK_SKEW, since + CLOCK_SKEW);
    let listed = || operations.iter().filter(|op| !op.is_cancel());
    if listed().any(|op| op.created.is_none_or(|c| c > before && c <= after)) {
        return Settlement::EarlierTargetUnknown;
    }
    let earlier: Vec<Operation> = listed()
        .filter(|op| op.created.is_some_and(|c| c <= before))
        .cloned()
        .collect();
    let Some(latest) = super::target::latest(&earlier, |_| true) else {
        return Settlement::NothingInProgress { latest: None };
    };
    match (latest.is_running(), super::target::recorded(latest)) {
        (true, Some(operation)) => Settlement::EarlierTargetRunning(operation),
        (true, None) => Settlement::EarlierTargetUnknown,
        (false, _) => match by_target(&earlier, latest.id.as_deref().unwrap_or_default()) {
            Settlement::TargetMissing { .. } => Settlement::EarlierTargetUnknown,
            found => found,
        },
    }
}

/// What the recorded target's own entry says.
fn by_target(operations: &[Operation], id: &str) -> Settlement {
    match operations.iter().find(|op| op.id.as_deref() == Some(id)) {
        Some(op) if op.is_running() => Settlement::TargetRunning,
        Some(op) if op.was_cancelled() => Settlement::TargetCancelled {
            operation: super::target::describe(op),
        },
        Some(op) => Settlement::TargetEnded {
            operation: super::target::describe(op),
        },
        None => Settlement::TargetMissing { id: id.to_string() },
    }
}
