//! Reconcile workers, in front of kube-runtime's scheduler. kube-runtime
//! runs every due reconcile at once (its own limit is off): when its limit
//! was on and every worker busy, it kept due work in a set and took it in
//! hash order, so a new resource could wait behind any number of polls.
//! Here each reconcile first enters the gate: first cancels have a pool of
//! their own, routine reconciles another. Within a pool namespaces take
//! turns ([`RoundRobin`]), each keeps arrival order, and each may hold
//! `--concurrency` workers of a pool a quarter larger. So a new resource
//! waits only for first-cancel work already running (never for a poll,
//! never for another namespace's flood), and polls are never starved.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

use crate::scheduling::fair::{RoundRobin, Turn, Urgency};

/// The two pools of reconcile workers.
pub struct Gate {
    first_cancels: Arc<Pool>,
    routine: Arc<Pool>,
}

impl Gate {
    /// `workers` per pool and namespace (at least one), and a quarter
    /// more per pool for other namespaces.
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
    /// Most workers one namespace may hold: `--concurrency`. The pool has
    /// a quarter more, kept for the others: a flood in one namespace never
    /// makes another wait for a worker to come free, and one namespace
    /// alone still has all of `--concurrency`.
    most_per_tenant: usize,
    held: HashMap<String, usize>,
    waiting: RoundRobin<Waiter>,
}

struct Waiter {
    tenant: String,
    hand: oneshot::Sender<Worker>,
}

/// One worker of a pool; dropping it hands it to whoever is next.
pub struct Worker {
    /// `None` once handed back (or never to be).
    pool: Option<Arc<Pool>>,
    tenant: String,
}

impl PoolState {
    fn may_take(&self, tenant: &str) -> bool {
        under_limit(&self.held, self.most_per_tenant, tenant)
    }

    fn take(&mut self, tenant: &str) {
        self.free -= 1;
        *self.held.entry(tenant.to_string()).or_default() += 1;
    }

    fn give_back(&mut self, tenant: &str) {
        self.free += 1;
        if let Some(n) = self.held.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(tenant);
            }
        }
    }
}

fn under_limit(held: &HashMap<String, usize>, most: usize, tenant: &str) -> bool {
    held.get(tenant).copied().unwrap_or(0) < most
}

impl Pool {
    fn new(workers: usize) -> Arc<Pool> {
        let workers = workers.max(1);
        Arc::new(Pool {
            state: Mutex::new(PoolState {
                free: workers + workers.div_ceil(4),
                most_per_tenant: workers,
                held: HashMap::new(),
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
            // Whoever waits while a worker is free is at its namespace's
            // limit: a newcomer under its own limit goes ahead.
            if state.free > 0 && state.may_take(turn.tenant) {
                state.take(turn.tenant);
                return Worker::of(pool, turn.tenant);
            }
            let (hand, handed) = oneshot::channel();
            let tenant = turn.tenant.to_string();
            state
                .waiting
                .push(turn.tenant, turn.since, Waiter { tenant, hand });
            handed
        };
        // The sender lives in the queue until a worker is handed over, and
        // the pool outlives its queue: the channel cannot close unanswered.
        match handed.await {
            Ok(worker) => worker,
            Err(_) => Worker::of(pool, turn.tenant),
        }
    }

    /// Takes back `tenant`'s worker and hands free workers to the next in
    /// line whose namespace is under its limit. A waiter that gave up is
    /// skipped; a worker handed to one that gives up before taking it
    /// comes back here through its own drop.
    fn hand_over(self: &Arc<Pool>, tenant: &str) {
        let mut state = self.state();
        state.give_back(tenant);
        while state.free > 0 {
            let PoolState {
                waiting,
                held,
                most_per_tenant,
                ..
            } = &mut *state;
            let Some((_, next)) = waiting.pop_where(|t| under_limit(held, *most_per_tenant, t))
            else {
                return;
            };
            state.take(&next.tenant);
            if let Err(mut unwanted) = next.hand.send(Worker::of(self, &next.tenant)) {
                // Not handed over: it must not come back through its drop.
                drop(unwanted.pool.take());
                state.give_back(&next.tenant);
            }
        }
    }
}

impl Worker {
    fn of(pool: &Arc<Pool>, tenant: &str) -> Worker {
        Worker {
            pool: Some(pool.clone()),
            tenant: tenant.to_string(),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.hand_over(&self.tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Starts a task that enters the gate and reports `name` once in.
    fn waiter(
        gate: &Arc<Gate>,
        turn_of: (Urgency, &'static str),
        name: &'static str,
        entered: &tokio::sync::mpsc::UnboundedSender<&'static str>,
    ) -> tokio::task::JoinHandle<Worker> {
        let (gate, entered) = (gate.clone(), entered.clone());
        tokio::spawn(async move {
            let worker = gate.enter(Turn::now(turn_of.0, turn_of.1)).await;
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
    async fn a_freed_worker_skips_a_namespace_at_its_limit() {
        // One worker per namespace, two in the pool.
        let gate = Arc::new(Gate::new(1));
        let (tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
        let flood = gate.enter(Turn::now(Urgency::FirstCancel, "flood")).await;
        let other = gate.enter(Turn::now(Urgency::FirstCancel, "other")).await;
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
        drop(other);
        let first = entered.recv().await;
        assert_eq!(first, Some("quiet"), "the flood is at its limit");
        drop(flood);
        let mut order = Vec::new();
        for _ in 0..3 {
            order.extend(entered.recv().await);
        }
        assert_eq!(order, ["flood-1", "flood-2", "flood-3"]);
    }

    #[tokio::test]
    async fn a_namespace_never_holds_the_workers_kept_for_others() {
        let gate = Arc::new(Gate::new(4));
        let mut flood = Vec::new();
        for _ in 0..4 {
            flood.push(gate.enter(Turn::now(Urgency::FirstCancel, "flood")).await);
        }
        let fifth = tokio::time::timeout(
            Duration::from_millis(20),
            gate.enter(Turn::now(Urgency::FirstCancel, "flood")),
        )
        .await;
        assert!(fifth.is_err(), "the flood's fifth waits");
        let quiet = tokio::time::timeout(
            Duration::from_millis(20),
            gate.enter(Turn::now(Urgency::FirstCancel, "quiet")),
        )
        .await;
        assert!(quiet.is_ok(), "another namespace goes in at once");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_keep_the_worker() {
        let gate = Arc::new(Gate::new(1));
        let holder = gate.enter(Turn::now(Urgency::Routine, "a")).await;
        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            gate.enter(Turn::now(Urgency::Routine, "a")),
        )
        .await;
        assert!(gave_up.is_err());
        drop(holder);
        let again = tokio::time::timeout(
            Duration::from_millis(200),
            gate.enter(Turn::now(Urgency::Routine, "a")),
        )
        .await;
        assert!(again.is_ok(), "the worker came back to the pool");
    }
}
