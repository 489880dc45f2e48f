//! Throughput benchmark: N concurrent asynchronous cancellations through the
//! real CPP client and the reconcile's own round (decide, execute, write), against the simulator
//! running as a separate process on loopback (so its memory is not counted).
//!
//! `cargo bench --bench throughput` runs N = 1,000 and 10,000 and prints
//! completed cancellations per second, HTTP requests per cancellation and
//! memory per in-flight cancellation. Poll intervals are not slept: this
//! measures the operator's own cost, not CPP's pace.

use offer_cancel_operator::apis::Apis;
use offer_cancel_operator::claim::Claimant;
use offer_cancel_operator::claim::lease::Unshared;
use offer_cancel_operator::crd::{
    OfferCancellationSpec, OfferCancellationStatus, Phase, SecretRef,
};
use offer_cancel_operator::decide::{Observed, Transition};
use offer_cancel_operator::http::{ClientConfig, Credentials};
use offer_cancel_operator::metrics::Metrics;
use offer_cancel_operator::reconcile::{Report, step};
use offer_cancel_operator::status::StatusWriter;
use secrecy::SecretString;
use std::convert::Infallible;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Barrier, Semaphore};

const TOKEN: &str = "bench-token";
/// HTTP calls in flight at once; cancellations in flight are all N.
const HTTP_CONCURRENCY: usize = 256;
const POLLS: u32 = 1;

struct Discard;

impl StatusWriter for Discard {
    type Error = Infallible;
    async fn write(&mut self, _: &OfferCancellationStatus) -> Result<(), Infallible> {
        Ok(())
    }
}

impl Report for Discard {
    async fn transitioned(&mut self, _: &OfferCancellationStatus, _: &Transition) {}
}

fn scenario(n: usize) -> String {
    let mut yaml = format!(
        "seed: 1\ntokens:\n  - token: {TOKEN}\n    publishers: [bench]\npublishers:\n  - id: bench\n    offers:\n"
    );
    for i in 0..n {
        yaml.push_str(&format!(
            "      - {{id: offer-{i}, cancel: async, location: migrated, pollsUntilDone: {POLLS}}}\n"
        ));
    }
    yaml
}

struct Simulator(Child);

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_simulator(n: usize, port: u16) -> Simulator {
    let path = std::env::temp_dir().join(format!("oco-bench-{}-{n}.yaml", std::process::id()));
    std::fs::write(&path, scenario(n)).expect("write scenario");
    let child = Command::new(env!("CARGO_BIN_EXE_offer-cancel-operator"))
        .args([
            "simulator",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--scenario",
        ])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start simulator");
    let sim = Simulator(child);
    for _ in 0..100 {
        if reqwest::get(format!("http://127.0.0.1:{port}/_sim/stats"))
            .await
            .is_ok()
        {
            return sim;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("simulator did not start");
}

/// Resident memory now, in KiB, from /proc.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn subject(i: usize) -> Observed {
    Observed {
        namespace: "bench".into(),
        round_began: std::time::Instant::now(),
        spec: OfferCancellationSpec {
            publisher_id: Some("bench".into()),
            offer_id: Some(format!("offer-{i}")),
            product_ingestion: None,
            notification_emails: vec![],
            credentials_secret_ref: SecretRef {
                name: "unused".into(),
            },
            api_version: "2017-10-31".into(),
            poll_interval_seconds: Some(5),
            timeout_seconds: None,
            operation_id: None,
            not_after: None,
            preview: None,
        },
        status: OfferCancellationStatus::default(),
        generation: 1,
        retry_request: None,
        credentials_version: None,
        errors_in_row: 0,
        post_budget: Duration::from_secs(30),
        created: None,
        claimant: Claimant {
            namespace: "bench".into(),
            name: format!("r{i}"),
            uid: format!("uid-{i}"),
        },
        claim: None,
        round_started: jiff::Timestamp::now(),
        now: jiff::Timestamp::now(),
    }
}

async fn step_until(
    cpp: &Apis,
    s: &mut Observed,
    creds: &Credentials,
    http: &Semaphore,
    done: impl Fn(Option<Phase>) -> bool,
) {
    while !done(s.status.phase) {
        let _permit = http.acquire().await.expect("semaphore open");
        let Ok(_) = step(
            cpp,
            &Unshared,
            s,
            Some(Ok(creds)),
            &mut Discard,
            &mut Discard,
        )
        .await;
        if s.status.phase == Some(Phase::Failed) {
            panic!("cancellation failed: {:?}", s.status.message);
        }
    }
}

async fn run(n: usize, port: u16) {
    let _sim = start_simulator(n, port).await;
    let url: reqwest::Url = format!("http://127.0.0.1:{port}").parse().expect("url");
    let cpp = Arc::new(
        Apis::new(
            ClientConfig::new(url.clone(), url),
            Arc::new(Metrics::default()),
        )
        .expect("client"),
    );
    let creds = Arc::new(Credentials::Token(SecretString::from(TOKEN)));
    let http = Arc::new(Semaphore::new(HTTP_CONCURRENCY));
    let barrier = Arc::new(Barrier::new(n + 1));
    let baseline = rss_kib();
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (cpp, creds, http, barrier) =
                (cpp.clone(), creds.clone(), http.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut s = subject(i);
                step_until(&cpp, &mut s, &creds, &http, |p| {
                    p == Some(Phase::Cancelling)
                })
                .await;
                barrier.wait().await;
                step_until(&cpp, &mut s, &creds, &http, |p| p == Some(Phase::Cancelled)).await;
            })
        })
        .collect();
    barrier.wait().await;
    let in_flight = rss_kib();
    for t in tasks {
        t.await.expect("task");
    }
    let took = started.elapsed();
    let stats: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/_sim/stats"))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json");
    let requests: u64 = stats["offers"]
        .as_object()
        .map(|o| {
            o.values()
                .map(|v| {
                    v["cancelPosts"].as_u64().unwrap_or(0)
                        + v["operationGets"].as_u64().unwrap_or(0)
                        + v["submissionGets"].as_u64().unwrap_or(0)
                })
                .sum()
        })
        .unwrap_or(0);
    println!("N = {n}");
    println!(
        "  completed cancellations per second: {:.0}",
        n as f64 / took.as_secs_f64()
    );
    println!("  wall time: {:.3} s", took.as_secs_f64());
    println!(
        "  HTTP requests per cancellation: {:.3} (1 list read + 1 POST + {POLLS} poll expected)",
        requests as f64 / n as f64
    );
    println!(
        "  memory growth with all {n} in flight: {} KiB total, {:.2} KiB per cancellation",
        in_flight.saturating_sub(baseline),
        in_flight.saturating_sub(baseline) as f64 / n as f64
    );
}

fn main() {
    offer_cancel_operator::http::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!(
            "machine: {} cores",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        );
        run(1_000, 18089).await;
        run(10_000, 18090).await;
    });
}
