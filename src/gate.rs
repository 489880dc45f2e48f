//! Reconcile workers, in front of kube-runtime's scheduler. kube-runtime
//! runs every due reconcile at once (its own limit is off): when its limit
//! was on and every worker busy, it kept due work in a set and took it in
//! hash order, so a new resource could wait behind any number of polls.
//! Here each reconcile first enters the gate: first cancels have a pool of
//! their own, routine reconciles another, each `--concurrency` wide. Within
//! a pool namespaces take turns ([`RoundRobin`]) and each keeps arrival
//! order. So a new resource waits only for the first-cancel work already
//! running, never for a poll, and polls are never starved by a flood.

use std::sync::{Arc, Mutex};

use crate::fair::{RoundRobin, Turn, Urgency};

/// The two pools of reconcile workers.
pub struct Gate {
    first_cancels: Arc<Pool>,
    routine: Arc<Pool>,
}

impl Gate {
    /// `workers` per pool (at least one).
    pub fn new(workers: usize) -> Self {
        Gate {
            first_cancels: Pool::new(workers),
            routine: Pool::new(workers),
        }
    }

    /// Waits for a worker of the pool `turn` belongs to; held until the
    /// [`Worker`] is dropped.
    pub async fn enter(&self, turn: Turn<'_>) -> Worker {
        let pool = match turn.urgency {
            Urgency::FirstCancel => &self.first_cancels,
            Urgency::Routine => &self.routine,
        };
        Pool::enter(pool, turn).await
    }
}

struct Pool {
    state: Mutex<PoolState>,
}

struct PoolState {
    free: usize,
    waiting: RoundRobin<tokio::sync::oneshot::Sender<Worker>>,
}

/// One worker of a pool; dropping it hands it to whoever is next.
pub struct Worker {
    /// `None` once handed back (or never to be).
    pool: Option<Arc<Pool>>,
}

impl Pool {
    fn new(workers: usize) -> Arc<Pool> {
        Arc::new(Pool {
            state: Mutex::new(PoolState {
                free: workers.max(1),
                waiting: RoundRobin::default(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn enter(pool: &Arc<Pool>, turn: Turn<'_>) -> Worker {
        let handed = {
            let mut state = pool.state();
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return Worker::of(pool);
            }
            let (hand, handed) = tokio::sync::oneshot::channel();
            state.waiting.push(turn.tenant, turn.since, hand);
            handed
        };
        // The sender lives in the queue until a worker is handed over, and
        // the pool outlives its queue: the channel cannot close unanswered.
        match handed.await {
            Ok(worker) => worker,
            Err(_) => Worker::of(pool),
        }
    }

    /// Hands a returning worker to the next in line, or frees it. A waiter
    /// that gave up is skipped; a worker handed to one that gives up before
    /// taking it comes back here through its own drop.
    fn hand_over(self: &Arc<Pool>) {
        let mut state = self.state();
        while let Some((_, next)) = state.waiting.pop() {
            match next.send(Worker::of(self)) {
                Ok(()) => return,
                // Not handed over: it must not come back through its drop.
                Err(mut unwanted) => drop(unwanted.pool.take()),
            }
        }
        state.free += 1;
    }
}

impl Worker {
    fn of(pool: &Arc<Pool>) -> Worker {
        Worker {
            pool: Some(pool.clone()),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.hand_over();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn turn(urgency: Urgency, tenant: &str) -> Turn<'_> {
        Turn {
            urgency,
            tenant,
            since: Instant::now(),
        }
    }

    /// Starts a task that enters the gate and reports `name` once in.
    fn waiter(
        gate: &Arc<Gate>,
        turn_of: (Urgency, &'static str),
        name: &'static str,
        entered: &tokio::sync::mpsc::UnboundedSender<&'static str>,
    ) -> tokio::task::JoinHandle<Worker> {
        let (gate, entered) = (gate.clone(), entered.clone());
        tokio::spawn(async move {
            let worker = gate.enter(turn(turn_of.0, turn_of.1)).await;
            let _ = entered.send(name);
            worker
        })
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn polls_filling_their_pool_never_hold_back_a_first_cancel() {
        let gate = Arc::new(Gate::new(2));
        let (tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
        let _polls: Vec<_> = (0..5)
            .map(|_| waiter(&gate, (Urgency::Routine, "a"), "poll", &tx))
            .collect();
        settle().await;
        let first = waiter(&gate, (Urgency::FirstCancel, "b"), "first", &tx);
        settle().await;
        let mut seen = Vec::new();
        while let Ok(name) = entered.try_recv() {
            seen.push(name);
        }
        assert_eq!(seen, ["poll", "poll", "first"]);
        drop(first.await);
    }

    #[tokio::test]
    async fn a_freed_worker_goes_to_the_next_namespace_in_turn() {
        let gate = Arc::new(Gate::new(1));
        let (tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
        let holder = gate.enter(turn(Urgency::FirstCancel, "flood")).await;
        let queued = [
            ("flood", "flood-1"),
            ("flood", "flood-2"),
            ("flood", "flood-3"),
            ("quiet", "quiet"),
        ];
        for (tenant, name) in queued {
            // Each lets its worker go as soon as it is in.
            drop(waiter(&gate, (Urgency::FirstCancel, tenant), name, &tx));
            settle().await;
        }
        drop(holder);
        let mut order = Vec::new();
        for _ in 0..4 {
            order.extend(entered.recv().await);
        }
        assert_eq!(order, ["flood-1", "quiet", "flood-2", "flood-3"]);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_keep_the_worker() {
        let gate = Arc::new(Gate::new(1));
        let holder = gate.enter(turn(Urgency::Routine, "a")).await;
        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            gate.enter(turn(Urgency::Routine, "a")),
        )
        .await;
        assert!(gave_up.is_err());
        drop(holder);
        let again = tokio::time::timeout(
            Duration::from_millis(200),
            gate.enter(turn(Urgency::Routine, "a")),
        )
        .await;
        assert!(again.is_ok(), "the worker came back to the pool");
    }
}
