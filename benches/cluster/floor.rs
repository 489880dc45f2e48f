//! The floor: a bare kube-rs controller (a watch and one status write per
//! resource, nothing else), run as a child process of this benchmark's own
//! binary, measured on the same API server as the operator.

use super::envtest::ControlPlane;
use super::stages::PlaneCpu;
use super::support::{self, Fixture, WriteCounter};
use super::{Args, create_at_rate, percentile, usage};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, predicates, reflector, watcher};
use kube::{Resource, ResourceExt};
use offer_cancel_operator::crd::{OfferCancellation, OfferCancellationStatus, Phase};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The floor controller's process, killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One side's figures: create → first status write (seen on a watch),
/// the controller's peak RSS and CPU, the control plane's CPU.
pub struct Side {
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
    pub rss_kib: u64,
    pub cpu_s: f64,
    pub plane: PlaneCpu,
    pub writes: u64,
    pub n: usize,
}

impl Side {
    pub fn with_latencies(mut self, mut latencies: Vec<u64>) -> Side {
        latencies.sort_unstable();
        self.p50_ms = percentile(&latencies, 0.5);
        self.p99_ms = percentile(&latencies, 0.99);
        self.max_ms = latencies.last().copied().unwrap_or(0);
        self
    }

    fn per(&self, seconds: f64) -> f64 {
        seconds * 1000.0 / self.n.max(1) as f64
    }
}

/// Create → the first write the watch saw, per resource (ms).
pub fn latencies(first: &BTreeMap<String, u64>, created: &BTreeMap<String, u64>) -> Vec<u64> {
    created
        .iter()
        .filter_map(|(name, at)| Some(first.get(name)?.saturating_sub(*at)))
        .collect()
}

/// Create → the first cancel POST the simulator received (ms), sorted.
pub async fn post_latencies(
    fx: &Fixture,
    offers: &[String],
    created: &BTreeMap<String, u64>,
) -> Vec<u64> {
    let stats = fx.stats().await;
    let mut l: Vec<u64> = offers
        .iter()
        .filter_map(|o| {
            let posted = support::target_stats(&stats, o)["firstCancelPostMs"].as_u64()?;
            Some(posted.saturating_sub(*created.get(o)?))
        })
        .collect();
    l.sort_unstable();
    l
}

/// Runs the floor controller as a child, creates `args.n` resources at
/// `args.rate` in a namespace of its own, waits for every first write.
pub async fn measure(plane: &ControlPlane, args: &Args) -> Side {
    let fx = Fixture::new(plane, "floor").await;
    let writes = WriteCounter::start(&fx.client, &fx.ns).await;
    let log = plane.dir.path().join("floor-controller.log");
    let out = std::fs::File::create(&log).expect("floor log");
    let err = out.try_clone().expect("floor log");
    let exe = std::env::current_exe().expect("this benchmark's binary");
    let child = std::process::Command::new(exe)
        .args([
            "--floor-controller",
            &fx.ns,
            "--floor-patch",
            &args.floor_patch,
        ])
        .env("KUBECONFIG", plane.kubeconfig(false))
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start the floor controller");
    // Killed when dropped, also when this run panics.
    let child = Child(child);
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "the floor: a bare kube-rs controller ({} status writes), {} resources at {}/s",
        args.floor_patch, args.n, args.rate
    );
    let names: Vec<String> = (0..args.n).map(|i| format!("floor-{i}")).collect();
    let before = super::stages::plane_cpu(plane);
    let requests_before = super::stages::plane_requests(&fx.client).await;
    let created = create_at_rate(&fx, &names, args.rate).await;
    let started = Instant::now();
    while writes.first_writes().len() < names.len() {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the floor controller wrote {} of {} (log: {})",
            writes.first_writes().len(),
            names.len(),
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_kib, cpu_s) = usage(child.0.id());
    let plane_cpu = super::stages::plane_cpu(plane).since(before);
    let requests_after = super::stages::plane_requests(&fx.client).await;
    super::stages::print_requests("the floor", &requests_before, &requests_after, names.len());
    drop(child);
    let written = latencies(&writes.first_writes(), &created);
    println!(
        "the floor wrote {} of {} resources",
        written.len(),
        names.len()
    );
    let side = Side {
        p50_ms: 0,
        p99_ms: 0,
        max_ms: 0,
        rss_kib,
        cpu_s,
        plane: plane_cpu,
        writes: writes.counts().values().map(|c| u64::from(*c)).sum(),
        n: names.len(),
    }
    .with_latencies(written);
    drop(writes);
    // Gone before the operator's run: the API server's cache holds only
    // the operator's resources then.
    let _ = fx
        .api
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    fx.cleanup().await;
    side
}

/// Prints the operator beside the floor; a side not run shows "—".
pub fn compare(floor: Option<&Side>, ours: Option<&Side>, posted: &[u64]) {
    println!();
    println!("| measure | the floor | the operator | ratio |");
    println!("| --- | --- | --- | --- |");
    let row = |what: &str, get: &dyn Fn(&Side) -> f64, unit: &str| {
        let (f, o) = (floor.map(get), ours.map(get));
        let show = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.2} {unit}"));
        let ratio = match (f, o) {
            (Some(f), Some(o)) if f > 0.0 => format!("{:.2}×", o / f),
            _ => "—".into(),
        };
        println!("| {what} | {} | {} | {ratio} |", show(f), show(o));
    };
    row(
        "create → first status write, p50",
        &|s| s.p50_ms as f64,
        "ms",
    );
    row(
        "create → first status write, p99",
        &|s| s.p99_ms as f64,
        "ms",
    );
    row(
        "create → first status write, max",
        &|s| s.max_ms as f64,
        "ms",
    );
    if ours.is_some() && !posted.is_empty() {
        // The floor sends nothing: its column is its first write again.
        let post = percentile(posted, 0.99) as f64;
        let ratio = floor.filter(|f| f.p99_ms > 0).map_or("—".to_string(), |f| {
            format!("{:.2}×", post / f.p99_ms as f64)
        });
        println!(
            "| create → the operator's first cancel POST, p99 (the floor: its write) | {} | {post:.2} ms | {ratio} |",
            floor.map_or("—".to_string(), |f| format!("{:.2} ms", f.p99_ms as f64))
        );
    }
    row(
        "status writes per resource",
        &|s| s.writes as f64 / s.n.max(1) as f64,
        "",
    );
    row(
        "API server CPU per resource",
        &|s| s.per(s.plane.apiserver),
        "ms",
    );
    row("etcd CPU per resource", &|s| s.per(s.plane.etcd), "ms");
    row("controller CPU per resource", &|s| s.per(s.cpu_s), "ms");
    row("controller peak RSS", &|s| s.rss_kib as f64 / 1024.0, "MiB");
}

/// The floor controller itself (the child process).
pub fn run(ns: &str, patch: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let merge = patch == "merge";
    runtime.block_on(async move {
        let client = kube::Client::try_default().await.expect("kube client");
        let api: Api<OfferCancellation> = Api::namespaced(client, ns);
        let (reader, writer) = reflector::store();
        let stream = watcher(api.clone(), watcher::Config::default().any_semantic())
            .default_backoff()
            .reflect(writer)
            .applied_objects()
            .predicate_filter(predicates::generation, Default::default());
        Controller::for_stream(stream, reader)
            .run(
                move |obj, api| write_once(obj, api, merge),
                |_, _, _| Action::requeue(Duration::from_secs(1)),
                Arc::new(api),
            )
            .for_each(|_| async {})
            .await;
    });
}

/// One status write, of the size of the operator's final one, on
/// condition that the object is unchanged.
async fn write_once(
    obj: Arc<OfferCancellation>,
    api: Arc<Api<OfferCancellation>>,
    merge: bool,
) -> Result<Action, kube::Error> {
    if obj.status.is_some() {
        return Ok(Action::await_change());
    }
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    let condition = |kind: &str, status: &str| Condition {
        type_: kind.into(),
        status: status.into(),
        reason: "Cancelled".into(),
        message: "the floor controller wrote this".into(),
        last_transition_time: now.clone(),
        observed_generation: obj.meta().generation,
    };
    // Three conditions, as the operator's final status has.
    let status = OfferCancellationStatus {
        phase: Some(Phase::Cancelled),
        message: Some("the floor controller wrote this".into()),
        observed_generation: obj.meta().generation,
        conditions: vec![
            condition("Ready", "True"),
            condition("Reconciling", "False"),
            condition("Stalled", "False"),
        ],
        ..Default::default()
    };
    let version = obj.resource_version();
    let body = serde_json::json!({
        "apiVersion": OfferCancellation::api_version(&()),
        "kind": OfferCancellation::kind(&()),
        "metadata": { "resourceVersion": version },
        "status": status,
    });
    let name = obj.name_any();
    if merge {
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
    } else {
        let params = PatchParams::apply("floor-controller").force();
        api.patch_status(&name, &params, &Patch::Apply(&body))
            .await?;
    }
    Ok(Action::await_change())
}
