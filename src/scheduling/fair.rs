//! Who goes next when work has to wait: a first cancel before routine work
//! (polls, follow-up reads), namespaces round-robin within each urgency,
//! oldest first within one namespace. Used twice: for reconcile workers
//! (`gate`) and for the API request budget (`budget`). Pure: the clock
//! is passed in, so tests pin it.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::time::{Duration, Instant};

/// How urgent a piece of work is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Urgency {
    /// A cancel not yet sent, and whatever must precede it: the read that
    /// records its target, the settling read before a resend after a lost
    /// answer. Every minute a publish keeps running brings it closer to live.
    FirstCancel,
    /// Polls and other reads of a cancel already sent.
    Routine,
}

impl Urgency {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Urgency::FirstCancel => "first_cancel",
            Urgency::Routine => "routine",
        }
    }
}

/// Who a piece of work is for, how urgent it is, and its place in line:
/// the namespace of the resource (the unit of fairness), its [`Urgency`],
/// and when its round began. Every request of one round queues from the
/// round's start, so a POST goes before the reads of rounds that began
/// after it: a round that started finishes first, and frees its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn<'a> {
    pub urgency: Urgency,
    pub tenant: &'a str,
    pub since: Instant,
}

impl<'a> Turn<'a> {
    /// Work of this urgency for `tenant`, in line from now.
    pub fn now(urgency: Urgency, tenant: &'a str) -> Turn<'a> {
        Turn {
            urgency,
            tenant,
            since: Instant::now(),
        }
    }

    /// Routine work for no particular namespace, in line from now.
    pub fn any() -> Turn<'static> {
        Turn::now(Urgency::Routine, "")
    }
}

/// Waiting work of one urgency: first come first served within a tenant,
/// tenants in turn.
#[derive(Debug)]
pub struct RoundRobin<T> {
    tenants: BTreeMap<String, VecDeque<(Instant, T)>>,
    /// The tenant served last: the next turn goes to the one after it.
    last: Option<String>,
    len: usize,
}

impl<T> Default for RoundRobin<T> {
    fn default() -> Self {
        RoundRobin {
            tenants: BTreeMap::new(),
            last: None,
            len: 0,
        }
    }
}

impl<T> RoundRobin<T> {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `item` for `tenant`, behind its older work.
    pub fn push(&mut self, tenant: &str, since: Instant, item: T) {
        let queue = self.tenants.entry(tenant.to_string()).or_default();
        let at = queue.partition_point(|(s, _)| *s <= since);
        queue.insert(at, (since, item));
        self.len += 1;
    }

    /// The oldest work of the tenant after the one served last.
    pub fn pop(&mut self) -> Option<(Instant, T)> {
        self.pop_where(|_| true)
    }

    /// [`pop`](Self::pop), among the tenants `allowed` says yes to.
    pub fn pop_where(&mut self, allowed: impl Fn(&str) -> bool) -> Option<(Instant, T)> {
        let after = match &self.last {
            Some(last) => Bound::Excluded(last.as_str()),
            None => Bound::Unbounded,
        };
        let next = self
            .tenants
            .range::<str, _>((after, Bound::Unbounded))
            .chain(self.tenants.iter())
            .map(|(tenant, _)| tenant)
            .find(|tenant| allowed(tenant))?
            .clone();
        let popped = self.pop_from(&next);
        self.last = Some(next);
        popped
    }

    /// The oldest work of `tenant`.
    fn pop_from(&mut self, tenant: &str) -> Option<(Instant, T)> {
        let queue = self.tenants.get_mut(tenant)?;
        let popped = queue.pop_front();
        if queue.is_empty() {
            self.tenants.remove(tenant);
        }
        self.len -= usize::from(popped.is_some());
        popped
    }

    /// The tenant whose oldest work is the oldest of all, and since when.
    fn oldest(&self) -> Option<(&str, Instant)> {
        self.tenants
            .iter()
            .filter_map(|(tenant, queue)| Some((tenant.as_str(), queue.front()?.0)))
            .min_by_key(|(_, since)| *since)
    }
}

/// Both urgencies. First cancels go first; routine work that has waited
/// longer than `patience` joins them (at its place in its tenant's line),
/// so it is delayed, never starved.
#[derive(Debug)]
pub struct Lanes<T> {
    first: RoundRobin<T>,
    routine: RoundRobin<T>,
    patience: Duration,
}

impl<T> Lanes<T> {
    pub fn new(patience: Duration) -> Self {
        Lanes {
            first: RoundRobin::default(),
            routine: RoundRobin::default(),
            patience,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_empty() && self.routine.is_empty()
    }

    pub fn push(&mut self, turn: Turn<'_>, item: T) {
        match turn.urgency {
            Urgency::FirstCancel => self.first.push(turn.tenant, turn.since, item),
            Urgency::Routine => self.routine.push(turn.tenant, turn.since, item),
        }
    }

    /// What goes next at `now`.
    pub fn pop(&mut self, now: Instant) -> Option<T> {
        self.promote_waited_out(now);
        let (_, item) = self.first.pop().or_else(|| self.routine.pop())?;
        Some(item)
    }

    /// Moves routine work that has waited out its patience to the first
    /// lane, oldest first.
    fn promote_waited_out(&mut self, now: Instant) {
        while let Some((tenant, since)) = self.routine.oldest() {
            if now.saturating_duration_since(since) < self.patience {
                return;
            }
            let tenant = tenant.to_string();
            if let Some((since, item)) = self.routine.pop_from(&tenant) {
                self.first.push(&tenant, since, item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    fn first(tenant: &str, since: Instant) -> Turn<'_> {
        Turn {
            urgency: Urgency::FirstCancel,
            tenant,
            since,
        }
    }

    fn routine(tenant: &str, since: Instant) -> Turn<'_> {
        Turn {
            urgency: Urgency::Routine,
            tenant,
            since,
        }
    }

    fn drain(lanes: &mut Lanes<&'static str>, now: Instant) -> Vec<&'static str> {
        std::iter::from_fn(|| lanes.pop(now)).collect()
    }

    #[test]
    fn a_first_cancel_goes_before_every_routine_request_queued_earlier() {
        let t0 = Instant::now();
        let mut lanes = Lanes::new(PATIENCE);
        for (i, poll) in ["poll-1", "poll-2", "poll-3"].into_iter().enumerate() {
            lanes.push(routine("a", t0 + Duration::from_millis(i as u64)), poll);
        }
        lanes.push(first("a", t0 + Duration::from_secs(1)), "post");
        assert_eq!(
            drain(&mut lanes, t0 + Duration::from_secs(1)),
            ["post", "poll-1", "poll-2", "poll-3"]
        );
    }

    #[test]
    fn a_flooded_namespace_gets_every_other_turn_not_all_of_them() {
        let t0 = Instant::now();
        let mut lanes = Lanes::new(PATIENCE);
        for i in 0..100u64 {
            lanes.push(first("flood", t0 + Duration::from_millis(i)), "flood");
        }
        lanes.push(first("quiet", t0 + Duration::from_secs(1)), "quiet");
        let order = drain(&mut lanes, t0 + Duration::from_secs(1));
        let at = order.iter().position(|o| *o == "quiet");
        assert!(at.is_some_and(|i| i <= 1), "quiet served at {at:?}");
    }

    #[test]
    fn namespaces_take_turns_and_each_keeps_its_own_order() {
        let t0 = Instant::now();
        let mut lanes = Lanes::new(PATIENCE);
        let items = [
            ("a", "a1"),
            ("a", "a2"),
            ("a", "a3"),
            ("b", "b1"),
            ("c", "c1"),
        ];
        for (i, (tenant, item)) in items.into_iter().enumerate() {
            lanes.push(first(tenant, t0 + Duration::from_millis(i as u64)), item);
        }
        assert_eq!(
            drain(&mut lanes, t0 + Duration::from_secs(1)),
            ["a1", "b1", "c1", "a2", "a3"]
        );
    }

    #[test]
    fn a_poll_that_waited_out_its_patience_joins_the_first_cancels_in_its_namespace() {
        let t0 = Instant::now();
        let mut lanes = Lanes::new(PATIENCE);
        lanes.push(routine("a", t0), "old-poll");
        for i in 1..=3u64 {
            lanes.push(first("a", t0 + Duration::from_secs(i)), "post");
        }
        let before = t0 + PATIENCE - Duration::from_millis(1);
        assert_eq!(lanes.pop(before), Some("post"), "still patient");
        assert_eq!(lanes.pop(t0 + PATIENCE), Some("old-poll"), "waited out");
        assert_eq!(drain(&mut lanes, t0 + PATIENCE), ["post", "post"]);
    }

    #[test]
    fn a_promoted_poll_does_not_jump_another_namespaces_turn() {
        let t0 = Instant::now();
        let mut lanes = Lanes::new(PATIENCE);
        lanes.push(routine("flood", t0), "old-poll");
        lanes.push(first("flood", t0 + Duration::from_secs(1)), "flood-post");
        lanes.push(first("quiet", t0 + Duration::from_secs(9)), "quiet-post");
        let order = drain(&mut lanes, t0 + Duration::from_secs(10));
        assert_eq!(order, ["old-poll", "quiet-post", "flood-post"]);
    }

    #[test]
    fn routine_work_alone_is_served_in_turns_without_waiting_out_anything() {
        let t0 = Instant::now();
        let mut lanes = Lanes::new(PATIENCE);
        lanes.push(routine("a", t0), "a1");
        lanes.push(routine("a", t0), "a2");
        lanes.push(routine("b", t0), "b1");
        assert_eq!(drain(&mut lanes, t0), ["a1", "b1", "a2"]);
        assert!(lanes.is_empty());
    }
}
