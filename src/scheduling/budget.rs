//! The CPP request budget: `--rate-limit-rps` for every request the
//! operator sends, in the order [`Lanes`] gives. A first cancel (and the
//! reads that must precede it) takes the next free slot before any poll;
//! namespaces take turns within each urgency; a poll that waited longer
//! than [`ROUTINE_PATIENCE`] joins the first cancels of its namespace. One
//! task hands out the slots as the rate allows: a request waits for its
//! grant, never in the limiter itself, so arrival order cannot decide.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

use crate::scheduling::fair::{Lanes, Turn};
use crate::timing::ROUTINE_PATIENCE;

/// How much wider than `1 / rps` slots are spaced (10%): the margin for
/// the time between a grant and the request reaching CPP, which varies.
pub const JITTER_RESERVE: f64 = 1.1;

/// The shared budget.
pub struct Budget {
    limiter: Arc<DefaultDirectRateLimiter>,
    /// The hand-out task's inbox; replaced when that task is gone (its
    /// runtime ended: a client may outlive one in tests).
    inbox: Mutex<Option<mpsc::UnboundedSender<Waiting>>>,
}

/// A request waiting for its slot.
struct Waiting {
    tenant: String,
    urgency: crate::scheduling::fair::Urgency,
    since: Instant,
    grant: oneshot::Sender<()>,
}

impl Budget {
    /// `rps` requests a second, at most `burst` at once. Slots are spaced
    /// [`JITTER_RESERVE`] wider than the rate asks: a request granted on
    /// time may reach CPP later than the one after it, and CPP must still
    /// never see more than `rps` in a second.
    pub fn new(rps: NonZeroU32, burst: NonZeroU32) -> Self {
        let spacing = Duration::from_secs(1).mul_f64(JITTER_RESERVE) / rps.get();
        let quota = Quota::with_period(spacing)
            .unwrap_or_else(|| Quota::per_second(rps))
            .allow_burst(burst);
        Budget {
            limiter: Arc::new(RateLimiter::direct(quota)),
            inbox: Mutex::new(None),
        }
    }

    /// Waits for this request's slot.
    pub async fn slot(&self, turn: Turn<'_>) {
        let (grant, granted) = oneshot::channel();
        let waiting = Waiting {
            tenant: turn.tenant.to_string(),
            urgency: turn.urgency,
            since: turn.since,
            grant,
        };
        self.submit(waiting);
        // Closed unanswered only when the hand-out task ends with its
        // runtime; nothing is left to wait for then.
        let _ = granted.await;
    }

    fn submit(&self, waiting: Waiting) {
        let mut inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = match inbox.as_ref() {
            Some(tx) => match tx.send(waiting) {
                Ok(()) => return,
                Err(mpsc::error::SendError(w)) => w,
            },
            None => waiting,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // A fresh inbox holds nothing yet, so this send cannot fail.
        let _ = tx.send(waiting);
        tokio::spawn(hand_out(self.limiter.clone(), rx));
        *inbox = Some(tx);
    }
}

/// Hands out slots as the rate allows, each to whoever [`Lanes`] says is
/// next among those waiting when the slot comes free.
async fn hand_out(
    limiter: Arc<DefaultDirectRateLimiter>,
    mut inbox: mpsc::UnboundedReceiver<Waiting>,
) {
    let mut lanes = Lanes::new(ROUTINE_PATIENCE);
    loop {
        if lanes.is_empty() {
            match inbox.recv().await {
                Some(w) => queue(&mut lanes, w),
                None => return,
            }
        }
        limiter.until_ready().await;
        while let Ok(w) = inbox.try_recv() {
            queue(&mut lanes, w);
        }
        // A request that gave up (its deadline passed) passes its slot on.
        while let Some(grant) = lanes.pop(Instant::now()) {
            if grant.send(()).is_ok() {
                break;
            }
        }
    }
}

fn queue(lanes: &mut Lanes<oneshot::Sender<()>>, w: Waiting) {
    let turn = Turn {
        urgency: w.urgency,
        tenant: &w.tenant,
        since: w.since,
    };
    lanes.push(turn, w.grant);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduling::fair::Urgency;

    #[tokio::test]
    async fn a_first_cancel_takes_the_next_slot_before_polls_queued_earlier() {
        let one = NonZeroU32::MIN;
        let budget = Arc::new(Budget::new(NonZeroU32::new(10).unwrap_or(one), one));
        let (tx, mut served) = mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..5 {
            let (budget, tx) = (budget.clone(), tx.clone());
            tasks.spawn(async move {
                budget.slot(Turn::now(Urgency::Routine, "polls")).await;
                let _ = tx.send(format!("poll-{i}"));
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (budget2, tx2) = (budget.clone(), tx.clone());
        tasks.spawn(async move {
            budget2.slot(Turn::now(Urgency::FirstCancel, "other")).await;
            let _ = tx2.send("first".to_string());
        });
        while tasks.join_next().await.is_some() {}
        let mut order = Vec::new();
        while let Ok(name) = served.try_recv() {
            order.push(name);
        }
        // The first poll took the one slot free at once; the first cancel,
        // queued 20 ms later, took the next.
        assert_eq!(order[..2], ["poll-0".to_string(), "first".to_string()]);
        assert_eq!(order.len(), 6);
    }

    #[tokio::test]
    async fn slots_never_come_faster_than_the_rate() {
        let one = NonZeroU32::MIN;
        let budget = Budget::new(NonZeroU32::new(20).unwrap_or(one), one);
        let started = Instant::now();
        for _ in 0..11 {
            budget.slot(Turn::any()).await;
        }
        // 11 slots at 20/s, the first at once: at least 500 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(495),
            "{:?}",
            started.elapsed()
        );
    }
}
