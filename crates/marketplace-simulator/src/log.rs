//! The order and time of the requests the simulator received, so a
//! benchmark or trial can show which went first and count the rate.

use serde::Serialize;
use std::collections::VecDeque;

/// How many requests are kept: the oldest go first beyond it.
const KEPT: usize = 200_000;

/// One request, when it arrived (before any injected latency or fault).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    /// 1, 2, 3, ... in arrival order; never reused until a reset.
    pub seq: u64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `cancel`, `operation`, `submissions`, `token` (v1 or v2.0),
    /// `job_cancel` or `job_status`.
    pub endpoint: &'static str,
    /// `publisher/offer`, when the path names one.
    pub offer: Option<String>,
}

#[derive(Debug, Default)]
pub struct RequestLog {
    kept: VecDeque<Received>,
    seq: u64,
}

impl RequestLog {
    pub fn record(&mut self, endpoint: &'static str, offer: Option<(&str, &str)>) {
        self.seq += 1;
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(Received {
            seq: self.seq,
            at_ms: jiff::Timestamp::now().as_millisecond(),
            endpoint,
            offer: offer.map(|(p, o)| format!("{p}/{o}")),
        });
    }

    /// The requests after `seq`, oldest first, at most `limit`; and how
    /// many after `seq` are no longer kept.
    pub fn after(&self, seq: u64, limit: usize) -> (Vec<Received>, u64) {
        let first_kept = self.kept.front().map_or(self.seq + 1, |r| r.seq);
        let lost = first_kept.saturating_sub(seq + 1);
        let skip = (seq + 1).saturating_sub(first_kept) as usize;
        let page = self.kept.iter().skip(skip).take(limit).cloned().collect();
        (page, lost)
    }

    pub fn clear(&mut self) {
        *self = RequestLog::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_come_back_in_arrival_order_from_where_the_reader_left_off() {
        let mut log = RequestLog::default();
        log.record("submissions", Some(("p", "a")));
        log.record("cancel", Some(("p", "a")));
        log.record("token", None);
        let (page, lost) = log.after(1, 10);
        assert_eq!(lost, 0);
        let seen: Vec<_> = page.iter().map(|r| (r.seq, r.endpoint)).collect();
        assert_eq!(seen, [(2, "cancel"), (3, "token")]);
        assert_eq!(page[0].offer.as_deref(), Some("p/a"));
        assert!(page[0].at_ms <= page[1].at_ms);
    }

    #[test]
    fn a_reader_that_fell_behind_is_told_how_many_it_missed() {
        let mut log = RequestLog::default();
        for _ in 0..KEPT + 5 {
            log.record("operation", None);
        }
        let (page, lost) = log.after(0, 3);
        assert_eq!(lost, 5);
        assert_eq!(page[0].seq, 6);
    }
}
