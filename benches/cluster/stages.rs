//! Where a first cancel's time goes: the operator's stage histograms
//! (`offercancel_first_cancel_stage_seconds`), scraped at each tenth of the
//! creation period and once at the end, printed as p50/p99 per stage and
//! per tenth; and the control plane's CPU.

use super::envtest::ControlPlane;
use super::usage;
use std::collections::BTreeMap;
use std::time::Duration;

/// Cumulative bucket counts per stage: (upper bound in seconds, count).
pub type Snapshot = BTreeMap<String, Vec<(f64, u64)>>;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The stage histograms (and the whole, as `total`) at `addr` now;
/// `None` when /metrics did not answer within 5 s.
pub async fn scrape(addr: &str) -> Option<Snapshot> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let answer = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .ok()?;
    let text = answer.text().await.ok()?;
    let mut snapshot = Snapshot::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, count)) = rest.split_once("} ") else {
            continue;
        };
        let label = |key: &str| label(labels, key);
        let stage = match name {
            "offercancel_first_cancel_stage_seconds_bucket" => label("stage"),
            "offercancel_first_cancel_seconds_bucket" => Some("total".to_string()),
            _ => None,
        };
        let (Some(stage), Some(le)) = (stage, label("le")) else {
            continue;
        };
        let le = le.parse().unwrap_or(f64::INFINITY);
        let count = count.trim().parse().unwrap_or(0);
        snapshot.entry(stage).or_default().push((le, count));
    }
    Some(snapshot)
}

/// The value of label `key` in a Prometheus label set `a="x",b="y"`.
fn label(labels: &str, key: &str) -> Option<String> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.trim_matches('"').to_string())
    })
}

/// Ten snapshots, one at the end of each tenth of the creation period (a
/// scrape that failed repeats the one before, so its rounds fall in the
/// next tenth).
pub async fn scrape_by_tenth(addr: String, tenth: Duration) -> Vec<Snapshot> {
    let mut snapshots: Vec<Snapshot> = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(tenth).await;
        let next = match scrape(&addr).await {
            Some(s) => s,
            None => snapshots.last().cloned().unwrap_or_default(),
        };
        snapshots.push(next);
    }
    snapshots
}

/// The upper bound of the bucket that holds quantile `q` of the rounds
/// counted between `before` and `after`, in ms (`None`: none counted).
fn quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> Option<f64> {
    let earlier = |le: f64| {
        before
            .iter()
            .find(|(b, _)| *b == le)
            .map(|(_, c)| *c)
            .unwrap_or(0)
    };
    let deltas: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, c)| (*le, c.saturating_sub(earlier(*le))))
        .collect();
    let total = deltas.last()?.1;
    if total == 0 {
        return None;
    }
    let wanted = (total as f64 * q).ceil() as u64;
    deltas
        .iter()
        .find(|(_, c)| *c >= wanted.max(1))
        .map(|(le, _)| le * 1000.0)
}

fn shown(ms: Option<f64>) -> String {
    match ms {
        None => "—".into(),
        Some(ms) if ms.is_infinite() => "> 300 s".into(),
        Some(ms) if ms >= 1000.0 => format!("≤ {:.1} s", ms / 1000.0),
        Some(ms) => format!("≤ {ms} ms"),
    }
}

/// The per-stage table: p50 and p99 over the run (bucket upper bounds),
/// then p99 in each tenth of the creation period (rounds whose answer was
/// written in that tenth, by the clock, not by creation order), then the
/// drain after the last create.
pub fn print(snapshots: &[Snapshot]) {
    let Some(last) = snapshots.last() else {
        return;
    };
    println!();
    println!(
        "| stage of a round that sent a cancel | p50 | p99 | p99 by tenth of the creation period (answers written in it), then the drain |"
    );
    println!("| --- | --- | --- | --- |");
    let none = Vec::new();
    let stages = offer_cancel_operator::metrics::Stage::ALL.map(|s| s.label());
    for stage in stages.into_iter().chain(["total"]) {
        let at = |s: &Snapshot| s.get(stage).cloned().unwrap_or_default();
        let whole = at(last);
        let mut tenths = Vec::new();
        let mut before = none.clone();
        for snapshot in snapshots {
            let now = at(snapshot);
            tenths.push(shown(quantile(&before, &now, 0.99)));
            before = now;
        }
        let drain = if snapshots.len() > 10 {
            tenths.pop().unwrap_or_default()
        } else {
            "—".into()
        };
        println!(
            "| {stage} | {} | {} | {}; drain {drain} |",
            shown(quantile(&none, &whole, 0.5)),
            shown(quantile(&none, &whole, 0.99)),
            tenths.join(" / ")
        );
    }
}

/// CPU seconds (user + system) of etcd and kube-apiserver.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlaneCpu {
    pub etcd: f64,
    pub apiserver: f64,
}

impl PlaneCpu {
    pub fn since(self, before: PlaneCpu) -> PlaneCpu {
        PlaneCpu {
            etcd: self.etcd - before.etcd,
            apiserver: self.apiserver - before.apiserver,
        }
    }
}

pub fn plane_cpu(plane: &ControlPlane) -> PlaneCpu {
    let (etcd, apiserver) = plane.pids();
    PlaneCpu {
        etcd: usage(etcd).1,
        apiserver: usage(apiserver).1,
    }
}

/// Requests the API server served, by verb and resource, from its own
/// `apiserver_request_total` (read with the admin client).
pub async fn plane_requests(client: &kube::Client) -> BTreeMap<String, f64> {
    let request = http::Request::get("/metrics").body(Vec::new());
    let text = match request {
        Ok(r) => client.request_text(r).await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let mut by = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, count)) = rest.split_once("} ") else {
            continue;
        };
        let label = |key: &str| label(labels, key);
        let subresource = label("subresource").filter(|s| !s.is_empty());
        let resource = match subresource {
            Some(sub) => format!("{}/{sub}", label("resource").unwrap_or_default()),
            None => label("resource").unwrap_or_default(),
        };
        let key = format!("{} {resource}", label("verb").unwrap_or_default());
        *by.entry(key).or_insert(0.0) += count.trim().parse::<f64>().unwrap_or(0.0);
    }
    by
}

/// Requests per resource between two readings, the larger first.
pub fn print_requests(
    what: &str,
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    n: usize,
) {
    let mut rows: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v - before.get(k).copied().unwrap_or(0.0)) / n.max(1) as f64,
            )
        })
        .filter(|(_, v)| *v >= 0.01)
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let shown: Vec<String> = rows.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
    println!(
        "| API server requests per resource, {what} (every client: the benchmark's creates and watches too) | {} |",
        shown.join("; ")
    );
}
