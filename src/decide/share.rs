//! One cancel per target: what the other resources naming the same offer
//! (in any namespace) already did about it. A fresh resource that has
//! proved its own access to the offer (it read the operations list with
//! its own credentials) sends nothing while another one's cancel is in
//! flight, and follows a cancel another one requested since it was created.

use super::observed::{Observed, Stage, post_in_flight_for, stage};
use crate::crd::{OfferCancellationStatus, Phase};
use crate::timing::{PEER_PATIENCE, SHARE_WINDOW};

/// What the other resources on the same offer say.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Shared<'a> {
    /// Another resource's cancel request is in flight: wait for its answer.
    InFlight,
    /// Another resource's cancel was requested since this one was created:
    /// this is its status.
    Answered(&'a OfferCancellationStatus),
}

/// The cancel another resource requested that this one should share, if
/// any. Only cancels of what this resource's own guard allows count: with
/// `spec.operationId`, a cancel recorded for that operation.
pub(super) fn shared(obs: &Observed) -> Option<Shared<'_>> {
    let since = obs.created.map(|c| c - SHARE_WINDOW);
    let relevant = |peer: &&OfferCancellationStatus| {
        let requested = peer.requested_at.as_ref().map(|t| t.0);
        let recent = matches!((requested, since), (Some(r), Some(s)) if r >= s)
            || (requested.is_some() && since.is_none());
        let wanted = obs.spec.operation_id.as_deref();
        let same_target =
            wanted.is_none_or(|id| peer.target_operation.as_ref().is_some_and(|t| t.id == id));
        recent && same_target
    };
    let peers: Vec<_> = obs.peers.iter().filter(relevant).collect();
    if peers.iter().any(|p| in_flight(p, obs.now)) {
        return Some(Shared::InFlight);
    }
    peers
        .into_iter()
        .filter(|p| {
            matches!(
                p.phase,
                Some(Phase::Cancelling | Phase::Cancelled | Phase::Failed)
            )
        })
        .max_by_key(|p| p.requested_at.as_ref().map(|t| t.0))
        .map(Shared::Answered)
}

/// Sent, or about to be, without a decisive answer yet: an intent not yet
/// settled (unless it has been stuck for longer than [`PEER_PATIENCE`]), or
/// a cancel accepted without a location that is being looked for.
fn in_flight(peer: &OfferCancellationStatus, now: jiff::Timestamp) -> bool {
    match stage(peer) {
        Stage::InDoubt => post_in_flight_for(peer, now - PEER_PATIENCE).is_some(),
        Stage::Untracked => true,
        _ => false,
    }
}
