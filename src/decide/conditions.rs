//! How a transition reads: the three kstatus conditions and the message,
//! and the Event that announces it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::model::{Notice, condition};
use super::observed::Observed;
use crate::crd::{MAX_MESSAGE_LEN, OfferCancellationStatus};
use crate::text::clip;

/// How the three conditions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Readiness {
    /// Work in flight: Reconciling.
    Working,
    /// Waiting for the user (e.g. a Secret), not final: Stalled.
    Blocked,
    Succeeded,
    /// Final failure: Stalled.
    Failed,
    /// A preview waits for the user to confirm it: not done (Ready=False)
    /// and not failed, so kstatus reads it as in progress (Reconciling),
    /// and nothing (Flux, `kubectl wait`) takes it for a finished cancel.
    AwaitingConfirmation,
}

pub(super) fn set_readiness(
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
        Readiness::AwaitingConfirmation => (false, true, false),
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

pub(super) fn notice(reason: &'static str, warning: bool, note: &str) -> Option<Notice> {
    Some(Notice {
        reason,
        warning,
        note: clip(note, MAX_EVENT_NOTE),
    })
}
