//! Start-up of the `controller` command: clients, metrics server, leader
//! election, then the controller until SIGTERM or lost leadership.

use kube::Client;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::ControllerArgs;
use crate::controller::{self, Context};
use crate::cpp::CppClient;
use crate::health::{self, Health};
use crate::metrics::Metrics;

/// Lease namespace when neither the flag nor the downward API says.
pub const DEFAULT_LEASE_NAMESPACE: &str = "offercancel-system";
/// Where the pod's namespace is mounted in every pod.
const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// What stopped the controller from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("building the CPP client: {0}")]
    Cpp(#[from] reqwest::Error),
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error("serving metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The Lease namespace: flag, else `POD_NAMESPACE`, else the service
/// account's namespace file, else the default.
pub fn lease_namespace(flag: Option<&str>, env: Option<&str>, file: Option<&str>) -> String {
    [flag, env, file]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or(DEFAULT_LEASE_NAMESPACE)
        .to_string()
}

pub async fn controller(args: ControllerArgs) -> Result<(), Error> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let cpp = Arc::new(CppClient::new(args.cpp.client_config(), metrics.clone())?);
    let health = Arc::new(Health::new(metrics.clone()));
    let addr = args.metrics_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Metrics { addr, source })?;
    tokio::spawn(health::serve(listener, health.clone()));
    let config = controller::Config {
        namespace: args.namespace.clone(),
        concurrency: args.concurrency.max(1),
        min_backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(args.max_backoff_seconds.max(1)),
    };
    let ctx = Arc::new(Context::new(client.clone(), cpp, metrics, config));
    if !args.leader_elect {
        controller::run(ctx, health, std::future::pending()).await;
        return Ok(());
    }
    let pod_ns = std::env::var("POD_NAMESPACE").ok();
    let file_ns = std::fs::read_to_string(POD_NAMESPACE_FILE).ok();
    let ns = lease_namespace(
        args.lease_namespace.as_deref(),
        pod_ns.as_deref(),
        file_ns.as_deref(),
    );
    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("offer-cancel-operator-{:x}", fastrand::u64(..)));
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client, &args.lease_name)
        .with_namespace(ns)
        .with_identity(identity)
        .with_field_manager(controller::FIELD_MANAGER)
        .build()
        .await?;
    let (mut leading, _task) = manager.watch().await;
    // A standby replica is healthy and ready; it turns unready while the
    // controller's caches sync after it takes the lease.
    health
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!("waiting for the leader lease");
    let acquired = async {
        while !*leading.borrow_and_update() {
            if leading.changed().await.is_err() {
                return false;
            }
        }
        true
    };
    // A standby must stop on SIGTERM too, not wait for the kill.
    let acquired = tokio::select! {
        acquired = acquired => acquired,
        () = shutdown_signal() => false,
    };
    if !acquired {
        return Ok(());
    }
    tracing::info!("leading; starting the controller");
    health
        .ready
        .store(false, std::sync::atomic::Ordering::Relaxed);
    // Stop reconciling as soon as leadership is lost: the process exits and
    // its restart waits for the lease again, so two replicas never both act.
    let lost = async move {
        while *leading.borrow_and_update() {
            if leading.changed().await.is_err() {
                break;
            }
        }
        tracing::warn!("leader lease lost; stopping");
    };
    controller::run(ctx, health, lost).await;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_namespace_prefers_flag_then_env_then_file() {
        assert_eq!(lease_namespace(Some("a"), Some("b"), Some("c")), "a");
        assert_eq!(lease_namespace(None, Some("b"), Some("c\n")), "b");
        assert_eq!(lease_namespace(None, None, Some("c\n")), "c");
        assert_eq!(
            lease_namespace(None, Some(" "), None),
            DEFAULT_LEASE_NAMESPACE
        );
    }
}
