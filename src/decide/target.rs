//! What the offer's operations list says, right before the first cancel
//! request, about what this resource would cancel: the operation in
//! progress (or the one `spec.operationId` names), a cancel someone
//! already requested, or nothing.

use crate::crd::TargetOperation;
use crate::operation::Operation;

/// What a fresh resource found on the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targeting {
    /// This operation is in progress: send the cancel, and record it as
    /// what the cancel is for.
    Send(TargetOperation),
    /// A cancel operation is already in progress on the offer: follow it,
    /// send nothing.
    Follow {
        location: String,
        target: Option<TargetOperation>,
    },
    /// `spec.operationId` names an operation that has ended.
    Ended(Operation),
    /// `spec.operationId` names no operation on the offer.
    Missing(String),
    /// Nothing is in progress on the offer; the latest operation, if any.
    NothingToCancel(Option<Operation>),
}

/// Reads the list for a cancel of `wanted` (the spec's `operationId`), or
/// of whatever is in progress. `locate` turns an operation id into the
/// location to poll.
pub(crate) fn target(
    operations: &[Operation],
    wanted: Option<&str>,
    locate: impl Fn(&str) -> String,
) -> Targeting {
    let running_cancel = operations
        .iter()
        .filter(|op| op.is_cancel() && op.is_running())
        .find_map(|op| op.id.as_deref());
    let target = match wanted {
        Some(id) => match operations.iter().find(|op| op.id.as_deref() == Some(id)) {
            None => return Targeting::Missing(id.to_string()),
            Some(op) if !op.is_running() => return Targeting::Ended(op.clone()),
            Some(op) => Some(op),
        },
        None => latest(operations, |op| op.is_running()),
    };
    match (target, running_cancel) {
        (target, Some(cancel)) => Targeting::Follow {
            location: locate(cancel),
            target: target.and_then(recorded),
        },
        (Some(op), None) => match recorded(op) {
            Some(t) => Targeting::Send(t),
            None => Targeting::NothingToCancel(Some(op.clone())),
        },
        (None, None) => Targeting::NothingToCancel(latest(operations, |_| true).cloned()),
    }
}

/// The latest operation other than a cancel that `keep` accepts: by
/// `createdDateTime`, else the last listed.
pub(crate) fn latest(
    operations: &[Operation],
    keep: impl Fn(&Operation) -> bool,
) -> Option<&Operation> {
    operations
        .iter()
        .filter(|op| !op.is_cancel() && keep(op))
        .enumerate()
        .max_by_key(|(i, op)| (op.created, *i))
        .map(|(_, op)| op)
}

/// An operation as status records it; one without an id cannot be named.
pub(super) fn recorded(op: &Operation) -> Option<TargetOperation> {
    Some(TargetOperation {
        id: op.id.clone()?,
        type_: op.kind.clone(),
        created: op
            .created
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
    })
}

/// An operation in words: `publish 7f3c… (canceled)`.
pub(crate) fn describe(op: &Operation) -> String {
    format!(
        "{} {} ({})",
        op.kind.as_deref().unwrap_or("operation"),
        op.id.as_deref().unwrap_or("without id"),
        op.status
    )
}
