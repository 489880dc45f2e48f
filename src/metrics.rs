//! Prometheus metrics. Every label value is a `&'static str` from an
//! exhaustive match (or an HTTP status code), never `Debug` text, so label
//! cardinality stays bounded whatever CPP or the API server send.
//!
//! It counts what others report and may not decide or call anything.

use prometheus_client::encoding::EncodeLabelSet;

use crate::http::{Endpoint, RequestObserver};
use crate::scheduling::fair::Urgency;
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndpointLabels {
    pub endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub endpoint: &'static str,
    /// HTTP status, or 0 when no answer came (timeout, connection error).
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PhaseLabels {
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    pub result: &'static str,
}

/// How a reconcile ended, as the `result` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileResult {
    /// Nothing more to do until the resource or its Secret changes.
    Success,
    /// It looks again after a while (a poll, a backoff, a conflict).
    Requeue,
    Error,
}

impl ReconcileResult {
    pub fn label(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::Requeue => "requeue",
            ReconcileResult::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UrgencyLabels {
    pub urgency: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StageLabels {
    pub stage: &'static str,
}

/// The stages of a round that sends a cancel (a first cancel, a resend
/// after a lost answer, a retry asked for), in order. Each is timed from
/// the end of the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The watch event that brought a new resource → the reconcile of the
    /// round that sends its cancel began (earlier rounds that did not send,
    /// and their backoff, fall here).
    Queued = 0,
    /// → a worker was free (`gate`).
    Gate,
    /// → the resource, its Secret and the target's claim were read.
    Reads,
    /// → the target's API said what runs (the operations list, the job).
    TargetRead,
    /// → the claim was held and the intent written (and its Event).
    Intent,
    /// → the target's API answered the cancel (a rate-limit slot and a
    /// token included, as for `TargetRead`).
    Post,
    /// → the answer was written (status, its Event, then the claim).
    Answer,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 7] = [
        Stage::Queued,
        Stage::Gate,
        Stage::Reads,
        Stage::TargetRead,
        Stage::Intent,
        Stage::Post,
        Stage::Answer,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Gate => "gate",
            Stage::Reads => "reads",
            Stage::TargetRead => "target_read",
            Stage::Intent => "intent",
            Stage::Post => "post",
            Stage::Answer => "answer",
        }
    }
}

/// Times one round's stages; what it measured is counted only if the
/// round reached [`Stage::Answer`] (its intent was written and the cancel
/// went to the target's API), and then also the whole, from the clock's
/// start. A fixed array: a reconcile waiting at the gate holds it inline.
#[derive(Debug)]
pub struct StageClock {
    began: std::time::Instant,
    last: std::time::Instant,
    marks: [Option<Duration>; Stage::ALL.len()],
}

impl StageClock {
    /// A clock running since `began` (the watch event, when known).
    pub fn since(began: std::time::Instant) -> StageClock {
        StageClock {
            began,
            last: began,
            marks: [None; Stage::ALL.len()],
        }
    }

    /// `stage` ended now.
    pub fn mark(&mut self, stage: Stage) {
        let now = std::time::Instant::now();
        self.marks[stage as usize] = Some(now.saturating_duration_since(self.last));
        self.last = now;
    }

    /// Counts the stages, once the answer of a cancel is written.
    pub fn count(&self, metrics: &Metrics) {
        for (stage, took) in Stage::ALL.iter().zip(self.marks) {
            let Some(took) = took else { continue };
            metrics
                .first_cancel_stages
                .get_or_create(&StageLabels {
                    stage: stage.label(),
                })
                .observe(took.as_secs_f64());
        }
        metrics.first_cancel_duration.observe(
            self.last
                .saturating_duration_since(self.began)
                .as_secs_f64(),
        );
    }
}

/// Fine enough below a second to see a stage of a few milliseconds, wide
/// enough for a backlog of minutes.
fn stage_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
        10.0, 30.0, 60.0, 300.0,
    ])
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// All the operator's metrics, registered once.
pub struct Metrics {
    pub(crate) reconciliations: Family<ResultLabels, Counter>,
    pub(crate) reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub(crate) cancellations_ended: Family<OutcomeLabels, Counter>,
    /// Resources by phase, as the watch cache holds them.
    pub(crate) cancellations: Family<PhaseLabels, Gauge>,
    /// 1 while this replica runs the controller (it leads, or runs alone).
    pub leader: Gauge,
    pub(crate) api_requests: Family<RequestLabels, Counter>,
    pub(crate) api_request_duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    pub(crate) rate_limit_wait: Family<UrgencyLabels, Histogram, fn() -> Histogram>,
    /// Rounds that sent a cancel, stage by stage ([`Stage`]).
    pub(crate) first_cancel_stages: Family<StageLabels, Histogram, fn() -> Histogram>,
    /// The same rounds, from the watch event to the answer written.
    pub(crate) first_cancel_duration: Histogram,
    pub in_flight: Gauge,
    pub token_fetches: Counter,
    /// Reconciles handed a cached copy older than our own last write.
    pub stale_reads: Counter,
    /// Status writes refused because the object had moved on.
    pub status_conflicts: Counter,
    /// OfferCancellations skipped because they could not be read.
    pub unreadable_resources: Counter,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            reconciliations: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: latency_histogram(),
            cancellations_ended: Family::default(),
            cancellations: Family::default(),
            leader: Gauge::default(),
            api_requests: Family::default(),
            api_request_duration: Family::new_with_constructor(latency_histogram),
            rate_limit_wait: Family::new_with_constructor(latency_histogram),
            first_cancel_stages: Family::new_with_constructor(stage_histogram),
            first_cancel_duration: stage_histogram(),
            in_flight: Gauge::default(),
            token_fetches: Counter::default(),
            stale_reads: Counter::default(),
            status_conflicts: Counter::default(),
            unreadable_resources: Counter::default(),
            registry: Registry::with_prefix("offercancel"),
        };
        m.register();
        m
    }
}

impl Metrics {
    fn register(&mut self) {
        self.register_reconciles();
        self.register_resources();
        self.register_first_cancels();
        self.register_requests();
    }

    /// What the reconciles and the resources they keep are counted by.
    fn register_reconciles(&mut self) {
        let r = &mut self.registry;
        r.register(
            "reconciliations",
            "Reconciliations run, by result (success: nothing more until a change; requeue: it looks again later; error)",
            self.reconciliations.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconciliations that ended in an error",
            self.reconcile_errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            self.reconcile_duration.clone(),
        );
        r.register(
            "leader",
            "1 while this replica runs the controller (holds the leader Lease, or runs without election)",
            self.leader.clone(),
        );
        r.register(
            "stale_reads",
            "Reconciles whose cached copy was older than the last status write; the object was read again",
            self.stale_reads.clone(),
        );
        r.register(
            "status_conflicts",
            "Status writes refused because the resource changed since it was read; the decision was dropped",
            self.status_conflicts.clone(),
        );
        r.register(
            "unreadable_resources",
            "OfferCancellations skipped because they could not be read (see the log for namespace and name)",
            self.unreadable_resources.clone(),
        );
    }

    /// The resources by phase, and how the cancels ended.
    fn register_resources(&mut self) {
        let r = &mut self.registry;
        r.register(
            "cancellations_ended",
            "Cancellations that reached a final phase, by outcome",
            self.cancellations_ended.clone(),
        );
        r.register(
            "cancellations",
            "OfferCancellations by phase in the watch cache (no phase yet counts as Pending); 0 on a standby",
            self.cancellations.clone(),
        );
        r.register(
            "in_flight_cancellations",
            "Resources in Pending or Cancelling",
            self.in_flight.clone(),
        );
    }

    /// Where the time of a round that sent a cancel goes.
    fn register_first_cancels(&mut self) {
        let r = &mut self.registry;
        r.register(
            "first_cancel_stage_seconds",
            "Rounds that sent a cancel (first, resent after a lost answer, or retried), by stage: queued (watch event to the sending round's reconcile), gate (waiting for a worker), reads (resource, Secret, claim), target_read (operations list or job), intent (claim, intent and its Event written), post (the cancel answered), answer (answer, its Event and the claim written)",
            self.first_cancel_stages.clone(),
        );
        r.register(
            "first_cancel_seconds",
            "Rounds that sent a cancel, from the watch event that brought the resource (or the start-up list that showed it, when the operator started later) to the answer written",
            self.first_cancel_duration.clone(),
        );
    }

    /// What the requests to the APIs and Entra ID are counted by.
    fn register_requests(&mut self) {
        let r = &mut self.registry;
        r.register(
            "api_requests",
            "Requests to CPP, Product Ingestion and Entra ID, by endpoint and HTTP status",
            self.api_requests.clone(),
        );
        r.register(
            "api_request_duration_seconds",
            "Latency of requests to CPP, Product Ingestion and Entra ID",
            self.api_request_duration.clone(),
        );
        r.register(
            "rate_limit_wait_seconds",
            "Time a request to CPP, Product Ingestion or Entra ID waited for its slot of the rate limit, by urgency (first_cancel goes first)",
            self.rate_limit_wait.clone(),
        );
        // The names of 0.1.0, which said CPP of requests to every API, kept
        // for one release (CHANGELOG.md): the same series under both names,
        // so dashboards and alerts move at their own pace.
        r.register(
            "cpp_requests",
            "Deprecated: offercancel_api_requests_total, the same series; kept for one release",
            self.api_requests.clone(),
        );
        r.register(
            "cpp_request_duration_seconds",
            "Deprecated: offercancel_api_request_duration_seconds, the same series; kept for one release",
            self.api_request_duration.clone(),
        );
        r.register(
            "cpp_rate_limit_wait_seconds",
            "Deprecated: offercancel_rate_limit_wait_seconds, the same series; kept for one release",
            self.rate_limit_wait.clone(),
        );
        r.register(
            "token_fetches",
            "Tokens fetched from Entra ID",
            self.token_fetches.clone(),
        );
    }

    /// Counts a reconcile that ended so.
    pub fn reconciled(&self, result: ReconcileResult) {
        let result = result.label();
        self.reconciliations
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Sets the phase gauge: how many resources are in each phase.
    pub(crate) fn set_phases(&self, counts: [(&'static str, i64); 4]) {
        for (phase, n) in counts {
            self.cancellations
                .get_or_create(&PhaseLabels { phase })
                .set(n);
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Both API clients' requests (CPP's and Product Ingestion's: the `endpoint`
/// label says which call), counted and timed; a successful token
/// request is also a token fetch. A request that got no answer is code 0.
impl RequestObserver for Metrics {
    fn observe(&self, endpoint: Endpoint, status: Option<u16>, took: Duration) {
        let (endpoint_label, code) = (endpoint.as_str(), status.unwrap_or(0));
        self.api_requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint_label,
                code,
            })
            .inc();
        self.api_request_duration
            .get_or_create(&EndpointLabels {
                endpoint: endpoint_label,
            })
            .observe(took.as_secs_f64());
        if endpoint == Endpoint::Token && code == 200 {
            self.token_fetches.inc();
        }
    }

    fn waited(&self, urgency: Urgency, took: Duration) {
        self.rate_limit_wait
            .get_or_create(&UrgencyLabels {
                urgency: urgency.label(),
            })
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_by_result_phases_and_the_leader_are_exported() {
        let m = Metrics::default();
        m.reconciled(ReconcileResult::Success);
        m.reconciled(ReconcileResult::Error);
        m.reconciled(ReconcileResult::Error);
        m.set_phases([
            ("Pending", 1),
            ("Cancelling", 2),
            ("Cancelled", 3),
            ("Failed", 4),
        ]);
        m.leader.set(1);
        let text = m.encode();
        for line in [
            r#"offercancel_reconciliations_total{result="success"} 1"#,
            r#"offercancel_reconciliations_total{result="error"} 2"#,
            r#"offercancel_cancellations{phase="Failed"} 4"#,
            "offercancel_leader 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn a_round_that_sent_a_cancel_is_counted_stage_by_stage_and_whole() {
        let m = Metrics::default();
        let began = std::time::Instant::now() - Duration::from_millis(300);
        let mut clock = StageClock::since(began);
        for stage in Stage::ALL {
            clock.mark(stage);
        }
        clock.count(&m);
        let text = m.encode();
        for stage in Stage::ALL.map(Stage::label) {
            let line =
                format!("offercancel_first_cancel_stage_seconds_count{{stage=\"{stage}\"}} 1");
            assert!(text.contains(&line), "{line} in {text}");
        }
        // The queued stage holds the 300 ms since the watch event.
        assert!(
            text.contains(
                r#"offercancel_first_cancel_stage_seconds_bucket{le="0.25",stage="queued"} 0"#
            ) || text.contains(
                r#"offercancel_first_cancel_stage_seconds_bucket{stage="queued",le="0.25"} 0"#
            ),
            "{text}"
        );
        assert!(
            text.contains("offercancel_first_cancel_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("offercancel_first_cancel_seconds_bucket{le=\"0.25\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn requests_show_up_with_endpoint_and_code_labels() {
        let m = Metrics::default();
        m.observe(Endpoint::Cancel, Some(202), Duration::from_millis(3));
        m.observe(Endpoint::Cancel, Some(202), Duration::from_millis(3));
        let text = m.encode();
        assert!(
            text.contains(r#"offercancel_api_requests_total{endpoint="cancel",code="202"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("offercancel_api_request_duration_seconds_count{endpoint=\"cancel\"} 2")
        );
        assert!(
            text.contains(r#"offercancel_cpp_requests_total{endpoint="cancel",code="202"} 2"#),
            "the deprecated name counts the same: {text}"
        );
    }
}
