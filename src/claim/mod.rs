//! One cancel per target: the claim. Before a resource sends a cancel to
//! a target (an offer or a configure job), it holds the target's claim, an
//! object the API server arbitrates (a create that fails with
//! AlreadyExists, a take-over fenced on resourceVersion): never an
//! in-process lock, never one process's cache. The claim names the
//! claiming resource, the operation its cancel is for, until when its
//! POST may be in flight, and, once the target's API answered, what it
//! answered. Every other resource on the target reads it and follows that
//! cancel, or waits, or takes the claim over: [`verdict`], here, plain
//! Rust with the clock passed in.
//!
//! What this room owns: the claim's words and rules, and (in `lease.rs`)
//! the one place claims are read and written. It never reads a resource's
//! status, and never decides what an answer of CPP means: `decide` does.
//!
//! Why the rules are what they are (`docs/cpp-api.md`, "One cancel per
//! target"):
//! - a CPP cancel has no operation id: a POST in flight stops whatever is
//!   in progress on the offer, so while one may be in flight nobody else
//!   sends, whatever operation they would cancel;
//! - once answered, the claim is shared only with resources cancelling
//!   the same operation; a refused claimant releases its claim, so a
//!   refusal never stops anyone else;
//! - a claim whose window passed without an answer is taken over only by
//!   a resource that has just read the target's record and found its
//!   operation still running with no cancel listed: the unanswered POST
//!   did not take effect.

pub mod lease;

use jiff::Timestamp;
use std::time::Duration;

/// The resource that holds (or would hold) a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimant {
    pub namespace: String,
    pub name: String,
    /// Tells a re-created resource of the same name from the one that
    /// claimed.
    pub uid: String,
}

/// What the target's API answered the claimant's POST, as the claim
/// records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimAnswer {
    /// Cancelled at once (CPP's 200, a job that reads cancelled).
    Cancelled,
    /// Accepted and still going; followed at `location` when there is one.
    Accepted { location: Option<String> },
}

/// One target's claim, as the API server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub claimant: Claimant,
    /// The id of the operation the claimant's cancel is for.
    pub operation: String,
    /// When the claim was taken (or renewed for a resend).
    pub claimed_at: Timestamp,
    /// The claimant's POST is answered or abandoned by then.
    pub in_flight_until: Timestamp,
    pub answer: Option<ClaimAnswer>,
    /// When the answer was written onto the claim (`None`: unanswered, or
    /// answered by a release that did not record it): what the answer did
    /// shows in the target's record from then on.
    pub answered_at: Option<Timestamp>,
    /// The object's resourceVersion: a take-over is fenced on it. Empty
    /// for a claim not yet written.
    pub version: String,
}

/// How a claim is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// Nobody holds it: create it (AlreadyExists: lost).
    Create,
    /// Replace it, only if it is still at this version (else: lost).
    TakeOver { version: String },
}

/// What a transition asks of the target's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimWrite {
    /// Hold the target before the intent is written: the POST follows
    /// only once both are durable.
    Acquire { how: Acquire, claim: Claim },
    /// Record what the API answered our POST, for the others to follow.
    Answer(ClaimAnswer),
    /// Our cancel ended Failed: let go, so a refusal stops no one else.
    Release,
}

impl Claimant {
    /// The resource as a claimant.
    pub fn of(resource: &crate::crd::OfferCancellation) -> Claimant {
        let meta = &resource.metadata;
        Claimant {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
        }
    }
}

/// What a resource that would send a cancel of `operation` makes of the
/// target's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nobody holds the target: claim it.
    Claim,
    /// Ours, or no longer binding (answered for another operation, or its
    /// window passed without an answer): take it over, fenced on this
    /// version.
    TakeOver { version: String },
    /// Another resource's POST may be in flight: nothing may be sent for
    /// this long.
    Wait(Duration),
    /// Another resource's cancel of this very operation was answered:
    /// follow it.
    Follow(ClaimAnswer),
}

/// What the resource knows of the target's record when it asks for a
/// verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// When the read of the record began: a claim whose window was still
    /// open then may have had its POST take effect after the read.
    pub read_at: Timestamp,
    /// Whether the target's API lists a cancel as an operation of its own
    /// (CPP does; a configure job's cancel shows only in the job). Where it
    /// does, a record read after the window that shows the operation
    /// running and no cancel says the claimant's cancel is over: its
    /// answer binds no longer.
    pub lists_cancels: bool,
}

/// The rule, for `me` about to cancel `operation` after reading `record`.
pub fn verdict(claim: Option<&Claim>, me: &Claimant, operation: &str, record: Record) -> Verdict {
    let Some(claim) = claim else {
        return Verdict::Claim;
    };
    let take_over = Verdict::TakeOver {
        version: claim.version.clone(),
    };
    if !me.uid.is_empty() && claim.claimant.uid == me.uid {
        return take_over;
    }
    let in_flight = in_flight_for(claim, record.read_at);
    // A record read before the answer was written may not show what the
    // answered cancel did: it never takes the claim over. Without the
    // answer's time (a claim of the release before), the window's end
    // bounds it.
    let read_before_the_answer =
        record.read_at < claim.answered_at.unwrap_or(claim.in_flight_until);
    match (&claim.answer, in_flight) {
        (Some(_), _) if claim.operation != operation => take_over,
        // Where the API lists no cancel of its own (a configure job), its
        // answer is the record: followed past the window too. (A job's
        // status read is shared for a minute, so one taken before a
        // cancel was answered `cancelled` still shows the job running:
        // taken as the record, it sent a second cancel.)
        (Some(answer), None) if !record.lists_cancels => Verdict::Follow(answer.clone()),
        (Some(answer), Some(_)) => Verdict::Follow(answer.clone()),
        (Some(answer), None) if read_before_the_answer => Verdict::Follow(answer.clone()),
        (None, Some(left)) => Verdict::Wait(left),
        (_, None) => take_over,
    }
}

/// How long the claimant's POST may still be in flight.
fn in_flight_for(claim: &Claim, now: Timestamp) -> Option<Duration> {
    let left = now.duration_until(claim.in_flight_until);
    Duration::try_from(left).ok().filter(|d| !d.is_zero())
}

/// When the target's record must have been read for [`verdict`] to be
/// sound: after the window of another resource's unanswered claim that it
/// may take over (a record read before that window ended may not show
/// what its POST did). `None`: any recent read will do.
pub fn read_after(claim: Option<&Claim>, me: &Claimant, now: Timestamp) -> Option<Timestamp> {
    let claim = claim?;
    let theirs = me.uid.is_empty() || claim.claimant.uid != me.uid;
    let over = in_flight_for(claim, now).is_none();
    (theirs && claim.answer.is_none() && over).then_some(claim.in_flight_until)
}

/// Whether `claim` says another resource asked to cancel `operation` at
/// or after `since`: a resource created then, that finds nothing in
/// progress and `operation` cancelled, was applied while that operation
/// ran, and that cancel (answered or not: the list shows the operation
/// cancelled) is its own. A resource never follows an earlier incarnation
/// of itself (deleted, applied again): that one's errand is over.
pub fn cancelled_since(
    claim: Option<&Claim>,
    me: &Claimant,
    operation: &str,
    since: Timestamp,
) -> bool {
    claim.is_some_and(|c| {
        let itself = c.claimant.namespace == me.namespace && c.claimant.name == me.name;
        c.operation == operation && c.claimed_at >= since && !itself
    })
}

/// How an intent whose POST may still be in flight, found at start-up
/// without its claim (a release before the claims recorded it), takes its
/// target's claim: none there, create it; one whose window is still open
/// (its own, or another resource's POST that may be in flight) is left as
/// it is; one whose window passed says nothing of this POST (a claim left
/// by a run of this release before a rollback, say) and is taken over,
/// fenced on its version.
pub fn adoption(claim: Option<&Claim>, now: Timestamp) -> Option<Acquire> {
    match claim {
        None => Some(Acquire::Create),
        Some(c) if in_flight_for(c, now).is_some() => None,
        Some(c) => Some(Acquire::TakeOver {
            version: c.version.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intent_in_flight_takes_a_stale_claim_over_and_leaves_a_live_one() {
        assert_eq!(adoption(None, at(0)), Some(Acquire::Create));
        let live = claim("other", "publish-1", None);
        assert_eq!(
            adoption(Some(&live), at(39)),
            None,
            "its POST may be in flight"
        );
        let answered_long_ago = claim("other", "publish-0", Some(ClaimAnswer::Cancelled));
        assert_eq!(
            adoption(Some(&answered_long_ago), at(40)),
            Some(Acquire::TakeOver {
                version: "7".into()
            })
        );
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("time")
    }

    fn resource(uid: &str) -> Claimant {
        Claimant {
            namespace: "ns".into(),
            name: uid.into(),
            uid: uid.into(),
        }
    }

    /// `holder`'s claim for `operation`, taken at 0, in flight until 40.
    fn claim(holder: &str, operation: &str, answer: Option<ClaimAnswer>) -> Claim {
        Claim {
            claimant: resource(holder),
            operation: operation.into(),
            claimed_at: at(0),
            in_flight_until: at(40),
            answer,
            answered_at: None,
            version: "7".into(),
        }
    }

    fn take_over() -> Verdict {
        Verdict::TakeOver {
            version: "7".into(),
        }
    }

    /// CPP's list, read at `secs`.
    fn read(secs: i64) -> Record {
        Record {
            read_at: at(secs),
            lists_cancels: true,
        }
    }

    #[test]
    fn an_unclaimed_target_is_claimed() {
        assert_eq!(
            verdict(None, &resource("me"), "publish-1", read(0)),
            Verdict::Claim
        );
    }

    #[test]
    fn a_peer_post_in_flight_is_waited_for_whatever_operation_it_is_for() {
        let peer = claim("peer", "publish-1", None);
        let me = resource("me");
        assert_eq!(
            verdict(Some(&peer), &me, "publish-1", read(10)),
            Verdict::Wait(Duration::from_secs(30))
        );
        assert_eq!(
            verdict(Some(&peer), &me, "publish-2", read(39)),
            Verdict::Wait(Duration::from_secs(1)),
            "a CPP cancel stops whatever runs: another operation waits too"
        );
    }

    #[test]
    fn an_unanswered_claim_past_its_window_is_taken_over() {
        let peer = claim("peer", "publish-1", None);
        assert_eq!(
            verdict(Some(&peer), &resource("me"), "publish-1", read(40)),
            take_over()
        );
    }

    #[test]
    fn an_answered_cancel_of_the_same_operation_is_followed() {
        let accepted = ClaimAnswer::Accepted {
            location: Some("/op".into()),
        };
        let peer = claim("peer", "publish-1", Some(accepted.clone()));
        assert_eq!(
            verdict(Some(&peer), &resource("me"), "publish-1", read(5)),
            Verdict::Follow(accepted)
        );
        let done = claim("peer", "publish-1", Some(ClaimAnswer::Cancelled));
        assert_eq!(
            verdict(Some(&done), &resource("me"), "publish-1", read(5)),
            Verdict::Follow(ClaimAnswer::Cancelled)
        );
    }

    #[test]
    fn a_peer_cancel_of_another_operation_never_counts() {
        let previous = claim("peer", "publish-1", Some(ClaimAnswer::Cancelled));
        assert_eq!(
            verdict(Some(&previous), &resource("me"), "publish-2", read(5)),
            take_over()
        );
    }

    #[test]
    fn our_own_claim_is_renewed_never_waited_for() {
        let ours = claim("me", "publish-1", None);
        assert_eq!(
            verdict(Some(&ours), &resource("me"), "publish-1", read(5)),
            take_over()
        );
    }

    #[test]
    fn past_its_window_an_answer_binds_only_where_the_record_cannot_show_the_cancel() {
        let me = resource("me");
        let accepted = ClaimAnswer::Accepted {
            location: Some("/op".into()),
        };
        let peer = claim("peer", "publish-1", Some(accepted.clone()));
        assert_eq!(
            verdict(Some(&peer), &me, "publish-1", read(41)),
            take_over(),
            "CPP lists no cancel running beside the operation: that cancel is over"
        );
        let job = Record {
            read_at: at(41),
            lists_cancels: false,
        };
        assert_eq!(
            verdict(Some(&peer), &me, "publish-1", job),
            Verdict::Follow(accepted),
            "a job's cancel shows only in the job: still followed"
        );
        let done = claim("peer", "publish-1", Some(ClaimAnswer::Cancelled));
        assert_eq!(
            verdict(Some(&done), &me, "publish-1", job),
            Verdict::Follow(ClaimAnswer::Cancelled),
            "a job read as running may be a shared read from before the answer"
        );
        assert_eq!(
            verdict(Some(&done), &me, "publish-1", read(41)),
            take_over(),
            "CPP, read now: cancelled at once, yet still running"
        );
    }

    #[test]
    fn a_window_still_open_when_the_record_was_read_is_waited_for() {
        let peer = claim("peer", "publish-1", None);
        assert_eq!(
            verdict(Some(&peer), &resource("me"), "publish-1", read(39)),
            Verdict::Wait(Duration::from_secs(1)),
            "read before the window ended: its POST may have acted after"
        );
    }

    #[test]
    fn a_take_over_needs_a_record_read_after_the_window() {
        let peer = claim("peer", "publish-1", None);
        let me = resource("me");
        assert_eq!(
            read_after(Some(&peer), &me, at(10)),
            None,
            "still waited for"
        );
        assert_eq!(read_after(Some(&peer), &me, at(41)), Some(at(40)));
        let answered = claim("peer", "publish-1", Some(ClaimAnswer::Cancelled));
        assert_eq!(read_after(Some(&answered), &me, at(41)), None);
        let ours = claim("me", "publish-1", None);
        assert_eq!(read_after(Some(&ours), &me, at(41)), None);
        assert_eq!(read_after(None, &me, at(41)), None);
    }

    /// Seen in the two-writers trial: a job's status read a few seconds
    /// before another resource's cancel was answered `cancelled` is shared
    /// for a minute; past the claim's window it showed the job running,
    /// and the follower took the claim over and sent a second cancel.
    #[test]
    fn a_jobs_answered_cancel_is_followed_past_its_window() {
        let me = resource("me");
        let job = Record {
            read_at: at(41),
            lists_cancels: false,
        };
        for answer in [
            ClaimAnswer::Cancelled,
            ClaimAnswer::Accepted { location: None },
        ] {
            let answered = claim("peer", "job-1", Some(answer.clone()));
            assert_eq!(
                verdict(Some(&answered), &me, "job-1", job),
                Verdict::Follow(answer)
            );
        }
    }

    #[test]
    fn a_read_older_than_the_answer_never_takes_an_answered_claim_over() {
        let me = resource("me");
        let answered = Claim {
            answered_at: Some(at(42)),
            ..claim("peer", "publish-1", Some(ClaimAnswer::Cancelled))
        };
        assert_eq!(
            verdict(Some(&answered), &me, "publish-1", read(41)),
            Verdict::Follow(ClaimAnswer::Cancelled),
            "read before the answer: it still follows"
        );
        assert_eq!(
            verdict(Some(&answered), &me, "publish-1", read(43)),
            take_over(),
            "read after the answer, past the window: the list decides"
        );
        let untimed = claim("peer", "publish-1", Some(ClaimAnswer::Cancelled));
        assert_eq!(
            verdict(Some(&untimed), &me, "publish-1", read(40)),
            take_over()
        );
    }

    #[test]
    fn a_cancel_counts_for_a_resource_only_when_claimed_since_it_was_created() {
        let me = resource("me");
        let done = claim("peer", "publish-1", Some(ClaimAnswer::Cancelled));
        assert!(cancelled_since(Some(&done), &me, "publish-1", at(-30)));
        assert!(!cancelled_since(Some(&done), &me, "publish-1", at(1)));
        assert!(!cancelled_since(Some(&done), &me, "publish-2", at(-30)));
        let unanswered = claim("peer", "publish-1", None);
        assert!(
            cancelled_since(Some(&unanswered), &me, "publish-1", at(-30)),
            "the list shows it cancelled: the answer is a formality"
        );
        let earlier_self = Claim {
            claimant: Claimant {
                uid: "old-uid".into(),
                ..me.clone()
            },
            ..done
        };
        assert!(!cancelled_since(
            Some(&earlier_self),
            &me,
            "publish-1",
            at(-30)
        ));
    }
}
