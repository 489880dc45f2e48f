//! The controller as users run it, on a real kube-apiserver + etcd (the
//! cluster suite's envtest harness) with the simulator as CPP: N resources
//! created at a given rate (40% synchronous offers, 40% asynchronous, 20%
//! with a non-migrated Location; poll interval 5 s; no CPP rate limit).
//!
//!   cargo bench --locked --bench cluster                 # N=1,000 at 100/s
//!   cargo bench --locked --bench cluster -- --n 10000    # and --rate R
//!   cargo bench --locked --bench cluster -- --faults 0.3 # 429, 5xx, lost answers
//!   cargo bench --locked --bench cluster -- --rps 10     # the default CPP rate limit
//!   cargo bench --locked --bench cluster -- --flood 2000 --probes 20
//!   cargo bench --locked --bench cluster -- --n 10000 --jobs 0.5  # half configure jobs
//!   cargo bench --locked --bench cluster -- --n 10000 --audit     # API server audit log on
//!
//! A plain run first runs the floor (`--no-baseline` skips it): a bare
//! kube-rs controller (this benchmark's own binary, run as a child with
//! `--floor-controller`: a watch, and one status write per resource of the
//! same kind as the operator's, `--floor-patch apply|merge`) against the
//! same API server, with its own resources created at the same rate; the
//! operator's figures are printed beside it as ratios. Each side's API
//! server and etcd CPU is read from `/proc` over its run.
//!
//! The flood probe: N async resources applied at once in one namespace
//! (rate limit on, 10/s unless `--rps` says otherwise), then, one at a
//! time every 2 s, a resource in another namespace: each one's apply →
//! POST is the figure. The flood is not waited for.
//!
//! Prints measured figures beside the targets of docs/benchmarks.md; the
//! targets are read here, never asserted.

#[allow(dead_code)]
#[path = "../tests/cluster/envtest.rs"]
mod envtest;
#[allow(dead_code)]
#[path = "../tests/cluster/support.rs"]
mod support;

#[path = "cluster/floor.rs"]
mod floor;
#[path = "cluster/stages.rs"]
mod stages;

use offer_cancel_operator::crd::{OfferCancellation, Phase};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{Fixture, WriteCounter};

struct Args {
    n: usize,
    rate: f64,
    /// Share of CPP answers that are faults, split evenly between 429 with
    /// Retry-After, 500/503, and connections dropped after CPP acted.
    faults: f64,
    /// The operator's `--rate-limit-rps` (0: off).
    rps: u32,
    /// Flood probe: resources in the flood (0: the plain run).
    flood: usize,
    probes: usize,
    /// The operator's `--concurrency` (0: its default).
    concurrency: u16,
    /// Share of the resources that name a Product Ingestion configure job
    /// instead of an offer (half of them cancelled at once, half followed
    /// to their end).
    jobs: f64,
    /// Run the floor controller first.
    baseline: bool,
    /// The floor's status write: `apply` (server-side apply, as the
    /// operator) or `merge` (a merge patch with a resourceVersion).
    floor_patch: String,
    /// The API server writes an audit log of every request.
    audit: bool,
    /// Only the floor's run.
    floor_only: bool,
}

fn args() -> Args {
    let mut args = Args {
        n: 1000,
        rate: 100.0,
        faults: 0.0,
        rps: 0,
        flood: 0,
        probes: 20,
        concurrency: 0,
        jobs: 0.0,
        baseline: true,
        floor_patch: "apply".into(),
        audit: false,
        floor_only: false,
    };
    let given: Vec<String> = std::env::args().collect();
    args.baseline = !given.iter().any(|a| a == "--no-baseline");
    args.audit = given.iter().any(|a| a == "--audit");
    args.floor_only = given.iter().any(|a| a == "--floor-only");
    for pair in given.windows(2) {
        match pair[0].as_str() {
            "--n" => args.n = pair[1].parse().unwrap_or(args.n),
            "--rate" => args.rate = pair[1].parse().unwrap_or(args.rate).max(0.1),
            "--faults" => args.faults = pair[1].parse().unwrap_or(args.faults),
            "--rps" => args.rps = pair[1].parse().unwrap_or(args.rps),
            "--flood" => args.flood = pair[1].parse().unwrap_or(args.flood),
            "--probes" => args.probes = pair[1].parse().unwrap_or(args.probes),
            "--concurrency" => args.concurrency = pair[1].parse().unwrap_or(args.concurrency),
            "--jobs" => args.jobs = pair[1].parse().unwrap_or(args.jobs).clamp(0.0, 1.0),
            "--floor-patch" => {
                args.floor_patch = match pair[1].as_str() {
                    "merge" => "merge".into(),
                    "apply" => "apply".into(),
                    other => panic!("--floor-patch is apply or merge, not {other:?}"),
                }
            }
            _ => {}
        }
    }
    args
}

/// The i-th target: a configure job for `jobs` of them, spread evenly
/// (alternately cancelled at once and followed), else an offer: 40% sync,
/// 40% async, 20% non-migrated Location.
fn offer(i: usize, jobs: f64) -> String {
    let jobs_before = |i: usize| (i as f64 * jobs).floor() as usize;
    if jobs_before(i + 1) > jobs_before(i) {
        let kind = if jobs_before(i) % 2 == 0 {
            "jobnow"
        } else {
            "job"
        };
        return format!("{kind}-bench-{i}");
    }
    let kind = match i % 5 {
        0 | 1 => "sync",
        2 | 3 => "async",
        _ => "legacy",
    };
    format!("{kind}-bench-{i}")
}

fn unix_ms() -> u64 {
    jiff::Timestamp::now().as_millisecond().max(0) as u64
}

/// VmHWM (peak RSS, KiB) and user+system CPU seconds of a process.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 12th, stime the 13th of those.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let cpu = (ticks(11) + ticks(12)) as f64 / 100.0;
    (hwm, cpu)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args = args();
    let given: Vec<String> = std::env::args().collect();
    if let Some(at) = given.iter().position(|a| a == "--floor-controller") {
        let ns = given.get(at + 1).cloned().unwrap_or_default();
        return floor::run(&ns, &args.floor_patch);
    }
    let plane = envtest::ControlPlane::start_audited(args.audit).unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        plane.ready().await.unwrap_or_else(|e| panic!("{e}"));
        if args.flood > 0 {
            flood_probe(&plane, &args).await;
        } else {
            run(&plane, &args).await;
        }
    });
}

/// Counts writes to the targets' claims (Leases labelled
/// `offercancel.dev/claim` in `ns`), as a watch reports them: every
/// create, patch and delete is one event.
fn count_claim_writes(
    client: &kube::Client,
    ns: &str,
) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    use futures::StreamExt;
    use kube::runtime::watcher;
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client.clone(), ns);
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = count.clone();
    let config = watcher::Config::default().labels("offercancel.dev/claim");
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(leases, config));
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) = event {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    count
}

async fn run(plane: &envtest::ControlPlane, args: &Args) {
    let floor = if args.baseline {
        Some(floor::measure(plane, args).await)
    } else {
        None
    };
    if args.floor_only {
        if let Some(floor) = &floor {
            floor::compare(Some(floor), None, &[]);
        }
        return;
    }
    let fx = Fixture::new(plane, "bench").await;
    let writes = WriteCounter::start(&fx.client, &fx.ns).await;
    let claim_writes = count_claim_writes(&fx.client, &fx.ns);
    let share = args.faults / 3.0;
    fx.set_faults(serde_json::json!({
        "throttleRate": share, "errorRate": share, "dropAfterRate": share
    }))
    .await;
    let rps = args.rps.to_string();
    let concurrency = args.concurrency.to_string();
    let metrics_addr = format!("127.0.0.1:{}", stages::free_port());
    let mut flags = vec!["--rate-limit-rps", &rps, "--metrics-addr", &metrics_addr];
    if args.concurrency > 0 {
        flags.extend(["--concurrency", &concurrency]);
    }
    let operator = fx.operator(plane, &flags);
    let pid = operator.child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tenth = Duration::from_secs_f64(args.n as f64 / args.rate / 10.0);
    let scraping = tokio::spawn(stages::scrape_by_tenth(metrics_addr.clone(), tenth));
    let plane_before = stages::plane_cpu(plane);
    let requests_before = stages::plane_requests(&fx.client).await;
    let offers: Vec<String> = (0..args.n).map(|i| offer(i, args.jobs)).collect();
    println!(
        "creating {} OfferCancellations at {}/s ({:.0}% configure jobs; offers 40% sync, 40% async, 20% non-migrated Location), {:.0}% API faults, rate limit {}",
        args.n,
        args.rate,
        args.jobs * 100.0,
        args.faults * 100.0,
        limit_text(args.rps)
    );
    let created = create_at_rate(&fx, &offers, args.rate).await;
    let last_create = Instant::now();
    fx.wait_all_ended(Duration::from_secs(1800)).await;
    let settled = last_create.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (hwm_kib, cpu) = usage(pid);
    let plane_cpu = stages::plane_cpu(plane).since(plane_before);
    let requests_after = stages::plane_requests(&fx.client).await;
    let mut snapshots = scraping.await.unwrap_or_default();
    match stages::scrape(&metrics_addr).await {
        Some(last) => snapshots.push(last),
        None => println!(
            "(the last scrape of /metrics failed: the stage table stops at the tenth tenth, without the drain)"
        ),
    }
    report(
        &fx,
        &offers,
        &created,
        &writes.counts(),
        settled,
        hwm_kib,
        cpu,
    )
    .await;
    let claims = claim_writes.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "| writes to the targets' claims (Leases) per target | {:.2} | — |",
        claims as f64 / args.n.max(1) as f64
    );
    stages::print(&snapshots);
    stages::print_requests("the operator", &requests_before, &requests_after, args.n);
    let ours = floor::Side {
        p50_ms: 0,
        p99_ms: 0,
        max_ms: 0,
        rss_kib: hwm_kib,
        cpu_s: cpu,
        plane: plane_cpu,
        writes: writes.counts().values().map(|c| u64::from(*c)).sum(),
        n: args.n,
    }
    .with_latencies(floor::latencies(&writes.first_writes(), &created));
    let posted = floor::post_latencies(&fx, &offers, &created).await;
    if floor.is_some() {
        floor::compare(floor.as_ref(), Some(&ours), &posted);
    }
    operator.sigkill();
    fx.cleanup().await;
}

/// Creates the resources at `rate` per second; returns each one's creation
/// time (Unix ms, when the API server answered).
async fn create_at_rate(fx: &Fixture, offers: &[String], rate: f64) -> BTreeMap<String, u64> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut tasks = tokio::task::JoinSet::new();
    for o in offers {
        tick.tick().await;
        let api = fx.api.clone();
        let r = support::resource(o, o);
        let name = o.clone();
        tasks.spawn(async move {
            api.create(&Default::default(), &r).await.expect("create");
            (name, unix_ms())
        });
    }
    let mut created = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (name, at) = done.expect("create task");
        created.insert(name, at);
    }
    created
}

async fn report(
    fx: &Fixture,
    offers: &[String],
    created: &BTreeMap<String, u64>,
    writes: &BTreeMap<String, u32>,
    settled: Duration,
    hwm_kib: u64,
    cpu: f64,
) {
    let stats = fx.stats().await;
    let n = offers.len() as f64;
    let latencies = floor::post_latencies(fx, offers, created).await;
    let by_tenth = latency_by_tenth(offers, created, &stats);
    let counted = [
        "cancelPosts",
        "operationGets",
        "submissionGets",
        "statusGets",
    ];
    let requests: u64 = offers
        .iter()
        .flat_map(|o| counted.map(|k| support::target_stats(&stats, o)[k].as_u64().unwrap_or(0)))
        .sum();
    // The floor: one operations-list (or job status) read and one POST
    // each (the read says what the cancel is for), plus one poll for each
    // cancel that is not done at once.
    let at_once = |o: &&String| o.starts_with("sync-") || o.starts_with("jobnow-");
    let floor = offers.iter().filter(|o| !at_once(o)).count() as f64 / n + 2.0;
    let counts: Vec<u32> = offers
        .iter()
        .map(|o| writes.get(o).copied().unwrap_or(0))
        .collect();
    let total_writes: u32 = counts.iter().sum();
    let above = counts.iter().filter(|c| **c > 3).count();
    let phases = fx.phases().await;
    let cancelled = phases
        .values()
        .filter(|p| **p == Some(Phase::Cancelled))
        .count();
    let duplicates = fx.duplicate_posts(offers).await.len();
    println!();
    println!("| measure | measured | target |");
    println!("| --- | --- | --- |");
    println!(
        "| create → first cancel POST, p50 | {} ms | — |",
        percentile(&latencies, 0.5)
    );
    println!(
        "| create → first cancel POST, p99 | {} ms (max {} ms) | ≤ 1,000 ms (aim 250 ms) |",
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );
    println!(
        "| status writes per resource | mean {:.2}, max {}; {} above 3 | ≤ 3 each without faults |",
        f64::from(total_writes) / n,
        counts.iter().max().copied().unwrap_or(0),
        above
    );
    println!(
        "| controller peak RSS | {:.1} MiB | ≤ 64 MiB at 10,000 |",
        hwm_kib as f64 / 1024.0
    );
    println!(
        "| controller CPU per resource | {:.2} ms | — |",
        cpu * 1000.0 / n
    );
    println!(
        "| CPP requests per resource | {:.3} (floor {:.3}) | the floor |",
        requests as f64 / n,
        floor
    );
    println!(
        "| all ended after the last create | {:.1} s | ≤ 20 s |",
        settled.as_secs_f64()
    );
    println!("| create → first POST p99 by tenth of the creates | {by_tenth} | — |");
    let requests = fx.requests().await;
    let late = poll_lateness(&requests);
    println!(
        "| first poll after its POST, beyond the 5 s interval | p50 {} ms, p99 {} ms (max {} ms) | — |",
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        late.last().copied().unwrap_or(0)
    );
    println!(
        "| most requests to CPP in one second | {} | ≤ the limit |",
        support::most_in_one_second(&requests)
    );
    println!(
        "| Cancelled; duplicate POSTs | {cancelled} of {}; {duplicates} | all; 0 |",
        offers.len()
    );
}

fn limit_text(rps: u32) -> String {
    if rps == 0 {
        "off".into()
    } else {
        format!("{rps}/s")
    }
}

/// For each offer polled (migrated Location: the log names the offer), how
/// long after its cancel POST the first poll came, beyond the 5 s poll
/// interval; sorted.
fn poll_lateness(requests: &[(i64, String, String)]) -> Vec<u64> {
    let mut posted = std::collections::HashMap::new();
    let mut late = Vec::new();
    for (at, endpoint, offer) in requests {
        match endpoint.as_str() {
            "cancel" | "job_cancel" => {
                posted.entry(offer.clone()).or_insert(*at);
            }
            "operation" | "job_status" => {
                if let Some(post) = posted.remove(offer) {
                    late.push((at - post - 5_000).max(0) as u64);
                }
            }
            _ => {}
        }
    }
    late.sort_unstable();
    late
}

/// The flood probe (see the top of this file).
async fn flood_probe(plane: &envtest::ControlPlane, args: &Args) {
    let fx = Fixture::cluster_wide(plane).await;
    support::namespace_with_secret(&fx.client, "flood", "s3cret").await;
    support::namespace_with_secret(&fx.client, "probe", "s3cret").await;
    let rps = if args.rps == 0 { 10 } else { args.rps };
    let operator = fx.operator(plane, &["--rate-limit-rps", &rps.to_string()]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "flood of {} async OfferCancellations in one namespace, then {} probes in another, CPP rate limit {rps}/s",
        args.flood, args.probes
    );
    fx.flood("flood", "async-flood", args.flood, 64).await;
    let probe: kube::Api<OfferCancellation> = kube::Api::namespaced(fx.client.clone(), "probe");
    let mut latencies = Vec::new();
    for i in 0..args.probes {
        let name = format!("sync-probe-{i}");
        probe
            .create(&Default::default(), &support::resource(&name, &name))
            .await
            .expect("create a probe");
        let applied = unix_ms();
        let posted = first_post_ms(&fx, &name, Duration::from_secs(120)).await;
        latencies.push(posted.saturating_sub(applied));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let requests = fx.requests().await;
    let mut to_read = Vec::new();
    for (i, latency) in latencies.iter().enumerate() {
        let offer = format!("contoso/sync-probe-{i}");
        let at = |endpoint: &str| {
            requests
                .iter()
                .find(|(_, e, o)| e == endpoint && *o == offer)
                .map(|(at, _, _)| *at as u64)
        };
        if let (Some(read), Some(post)) = (at("submissions"), at("cancel")) {
            to_read.push(latency.saturating_sub(post - read));
        }
    }
    to_read.sort_unstable();
    latencies.sort_unstable();
    let flood_posts = requests
        .iter()
        .filter(|(_, e, o)| e == "cancel" && o.contains("-flood-"))
        .count();
    let late = poll_lateness(&requests);
    println!();
    println!("| measure | measured | target |");
    println!("| --- | --- | --- |");
    println!(
        "| probe apply → POST, p50 / p99 / max over {} | {} / {} / {} ms | p99 ≤ 1,000 ms |",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );
    println!(
        "| of which apply → its operations-list read, p50 / p99 | {} / {} ms | — |",
        percentile(&to_read, 0.5),
        percentile(&to_read, 0.99)
    );
    println!(
        "| flood POSTs sent by the last probe's | {flood_posts} of {} | (the flood was still queued) |",
        args.flood
    );
    println!(
        "| flood: first poll after its POST, beyond the 5 s interval | p50 {} ms, p99 {} ms, {} polled | — |",
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        late.len()
    );
    println!(
        "| most requests to CPP in one second | {} | ≤ {rps} |",
        support::most_in_one_second(&requests)
    );
    operator.sigkill();
    fx.cleanup().await;
}

/// When the simulator received the first cancel POST for `offer`.
async fn first_post_ms(fx: &Fixture, offer: &str, limit: Duration) -> u64 {
    let started = Instant::now();
    loop {
        let stats = fx.stats().await;
        if let Some(at) = stats["offers"][format!("contoso/{offer}")]["firstCancelPostMs"].as_u64()
        {
            return at;
        }
        assert!(started.elapsed() < limit, "{offer} was never POSTed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The p99 of create → first POST within each tenth of the resources, in
/// creation order: where in the run the slow ones were.
fn latency_by_tenth(
    offers: &[String],
    created: &BTreeMap<String, u64>,
    stats: &serde_json::Value,
) -> String {
    let mut in_order: Vec<(u64, u64)> = offers
        .iter()
        .filter_map(|o| {
            let posted = support::target_stats(stats, o)["firstCancelPostMs"].as_u64()?;
            let at = *created.get(o)?;
            Some((at, posted.saturating_sub(at)))
        })
        .collect();
    in_order.sort_unstable();
    let tenth = in_order.len().div_ceil(10).max(1);
    in_order
        .chunks(tenth)
        .map(|chunk| {
            let mut l: Vec<u64> = chunk.iter().map(|(_, l)| *l).collect();
            l.sort_unstable();
            format!("{}", percentile(&l, 0.99))
        })
        .collect::<Vec<_>>()
        .join(" / ")
}
