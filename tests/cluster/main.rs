//! The cluster suite: the operator binary and the simulator against a real
//! kube-apiserver and etcd (see envtest.rs). Each trial has a namespace of
//! its own and counts what CPP received. Runs with `cargo test --test
//! cluster`; without a control plane it fails and says how to get one.

mod envtest;
mod lag_proxy;
mod support;

use envtest::ControlPlane;
use libtest_mimic::{Arguments, Failed, Trial};
use offer_cancel_operator::crd::Phase;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use support::{Fixture, mixed_offers};

type Plane = Arc<ControlPlane>;

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let plane = match start_plane() {
        Ok(p) => Arc::new(p),
        Err(why) => {
            eprintln!("error: {why}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let trials = vec![
        trial(&plane, "one_post_with_a_lagging_watch", lagging_watch),
        trial(&plane, "burst_one_post_per_offer", burst),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    drop(plane);
    conclusion.exit_code()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn start_plane() -> Result<ControlPlane, String> {
    let plane = ControlPlane::start()?;
    runtime().block_on(plane.ready())?;
    Ok(plane)
}

/// A trial runs on its own runtime; a panic inside is its failure.
fn trial<F, Fut>(plane: &Plane, name: &'static str, body: F) -> Trial
where
    F: FnOnce(Plane) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let plane = plane.clone();
    Trial::test(name, move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime().block_on(body(plane))
        }));
        outcome.map_err(|p| {
            let text = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into());
            Failed::from(text)
        })
    })
}

fn assert_all_cancelled(phases: &std::collections::BTreeMap<String, Option<Phase>>) {
    let wrong: Vec<_> = phases
        .iter()
        .filter(|(_, p)| **p != Some(Phase::Cancelled))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} not Cancelled: {:?}",
        wrong.len(),
        phases.len(),
        wrong.iter().take(10).collect::<Vec<_>>()
    );
}

/// The watch delivers 100 ms late; the operator must not act on the copy
/// from before its own write.
async fn lagging_watch(plane: Plane) {
    let fx = Fixture::new(&plane, "lag").await;
    let proxy = lag_proxy::start(&plane.url, Duration::from_millis(100)).await;
    let operator = fx.operator_with(plane.kubeconfig_via(&proxy, false), &[], &[]);
    let offers = vec!["sync-lag-0".to_string()];
    fx.create_all(&offers, 1).await;
    let phases = fx.wait_all_ended(Duration::from_secs(60)).await;
    // Time for a stale copy to come round and do damage.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_all_cancelled(&fx.phases().await);
    assert_all_cancelled(&phases);
    assert_eq!(fx.duplicate_posts(&offers).await, vec![]);
    operator.sigkill();
    fx.cleanup().await;
}

/// Hundreds of resources at once over sync, async and non-migrated offers.
async fn burst(plane: Plane) {
    let fx = Fixture::new(&plane, "burst").await;
    let operator = fx.operator(&plane, &[]);
    let offers = mixed_offers("b", 501);
    fx.create_all(&offers, 32).await;
    let phases = fx.wait_all_ended(Duration::from_secs(240)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fx.duplicate_posts(&offers).await, vec![]);
    assert_all_cancelled(&phases);
    operator.sigkill();
    fx.cleanup().await;
}
