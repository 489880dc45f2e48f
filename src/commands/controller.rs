//! The `controller` command: clients, metrics server, leader election,
//! then the control loop until SIGTERM or lost leadership.

use kube::{Api, Client};
use kube_lease_manager::LeaseManager;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::shutdown_signal;
use crate::apis::Apis;
use crate::context::{self, Context};
use crate::control_loop;
use crate::health::{self, Probes};
use crate::http::ClientConfig;
use crate::metrics::Metrics;
use crate::timing::{SHUTDOWN_GRACE, STANDBY_CHECK};
use crate::workload_identity::TokenRequests;

/// What the controller runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the APIs and Entra ID are, and how to talk to them.
    pub client: ClientConfig,
    /// What every reconcile shares: namespace, concurrency, backoff.
    pub reconcile: context::Config,
    /// Where /metrics, /healthz and /readyz are served.
    pub metrics_addr: std::net::SocketAddr,
    /// Reconcile only while holding this Lease; `None`: always.
    pub lease: Option<LeaseConfig>,
}

/// The leader-election Lease, as the flags name it.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Default: `POD_NAMESPACE`, else the pod's own namespace, else
    /// `offercancel-system`.
    pub namespace: Option<String>,
    pub name: String,
    /// How long a leader's lease lasts without renewal.
    pub duration_seconds: u64,
}

/// Lease namespace when neither the flag nor the downward API says.
const DEFAULT_LEASE_NAMESPACE: &str = "offercancel-system";
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
    #[error("finding the Kubernetes API server: {0}")]
    NoConfig(#[from] kube::config::InferConfigError),
    #[error(
        "the API server at {url} has no OfferCancellation resource type: install the CRD first (kubectl apply -k crds/)"
    )]
    NoCrd { url: String },
    #[error(
        "the API server at {url} refuses to list OfferCancellations {scope} (HTTP {code}: {message}): {fix}"
    )]
    Refused {
        url: String,
        scope: String,
        code: u16,
        message: String,
        fix: &'static str,
    },
    #[error("cannot list OfferCancellations at {url} (tried for {PREFLIGHT_PATIENCE:?}): {source}")]
    Unreachable {
        url: String,
        #[source]
        source: kube::Error,
    },
    #[error("serving metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The Lease namespace: flag, else `POD_NAMESPACE`, else the service
/// account's namespace file, else the default.
fn lease_namespace(flag: Option<&str>, env: Option<&str>, file: Option<&str>) -> String {
    [flag, env, file]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or(DEFAULT_LEASE_NAMESPACE)
        .to_string()
}

/// Where the targets' claims are kept: the flag; else the Lease's
/// namespace flag, `POD_NAMESPACE` or the pod's own namespace (the
/// operator's namespace, where deploy/ grants it Leases); else the one
/// namespace it watches (a namespaced install keeps them beside its
/// resources); else `default`, which every cluster has.
pub fn claim_namespace(flag: Option<&str>, lease: Option<&str>, watched: Option<&str>) -> String {
    let pod_ns = std::env::var("POD_NAMESPACE").ok();
    let file_ns = std::fs::read_to_string(POD_NAMESPACE_FILE).ok();
    [flag, lease, pod_ns.as_deref(), file_ns.as_deref(), watched]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string()
}

/// Runs the controller until SIGTERM, or until it loses the Lease.
pub async fn run(config: Config) -> Result<(), Error> {
    let kube_config = kube::Config::infer().await?;
    let url = kube_config.cluster_url.to_string();
    let client = Client::try_from(kube_config)?;
    let metrics = Arc::new(Metrics::default());
    let service_accounts = Arc::new(TokenRequests::new(client.clone()));
    let apis = Arc::new(Apis::with_service_accounts(
        config.client,
        metrics.clone(),
        service_accounts,
    )?);
    let probes = Arc::new(Probes::new(metrics.clone()));
    let addr = config.metrics_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Metrics { addr, source })?;
    tokio::spawn(health::serve(listener, probes.clone()));
    // After the probes are served: a slow answer is not a failed liveness.
    preflight(&client, config.reconcile.namespace.as_deref(), &url).await?;
    let ctx = Arc::new(Context::new(
        client.clone(),
        apis,
        metrics,
        config.reconcile,
    ));
    let Some(lease) = config.lease else {
        bounded_by_signal(control_loop::run(ctx, probes, std::future::pending())).await;
        return Ok(());
    };
    lead(Lease::named(&lease), &client, ctx, probes).await;
    Ok(())
}

/// How long the start-up list is tried while the API server fails in a
/// way that may pass (out of reach, 5xx, no answer).
const PREFLIGHT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// One list of what the controller will watch, before anything starts: a
/// CRD not installed or RBAC that refuses the list ends the start at once,
/// an API server out of reach after [`PREFLIGHT_PATIENCE`], each with words
/// that say which, instead of a watch that retries unseen.
async fn preflight(client: &Client, namespace: Option<&str>, url: &str) -> Result<(), Error> {
    let api: Api<crate::crd::OfferCancellation> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let started = tokio::time::Instant::now();
    let mut pause = std::time::Duration::from_secs(1);
    loop {
        let listed = tokio::time::timeout(
            crate::timing::REQUEST_TIMEOUT,
            api.list_metadata(&kube::api::ListParams::default().limit(1)),
        )
        .await
        .unwrap_or_else(|_| Err(kube::Error::Service("no answer in time".into())));
        let source = match listed {
            Ok(_) => return Ok(()),
            Err(e) => match refusal(e, namespace, url) {
                Ok(refused) => return Err(refused),
                Err(passing) => passing,
            },
        };
        if started.elapsed() + pause > PREFLIGHT_PATIENCE {
            let url = url.to_string();
            return Err(Error::Unreachable { url, source });
        }
        tracing::warn!(%url, error = %source, "the API server cannot list OfferCancellations yet; trying again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(10));
    }
}

/// A start-up list's failure that will not pass by itself (`Ok`: the
/// error to stop with), or the error to try again after.
fn refusal(e: kube::Error, namespace: Option<&str>, url: &str) -> Result<Error, kube::Error> {
    let kube::Error::Api(status) = &e else {
        return Err(e);
    };
    let url = url.to_string();
    let fix = match status.code {
        404 => return Ok(Error::NoCrd { url }),
        401 => {
            "the operator's credentials are not accepted (its ServiceAccount token, or the kubeconfig's)"
        }
        403 => "the operator's RBAC (deploy/) must allow it",
        _ => return Err(e),
    };
    Ok(Error::Refused {
        url,
        scope: namespace.map_or("in every namespace".into(), |ns| {
            format!("in namespace {ns}")
        }),
        code: status.code,
        message: crate::text::clip(&status.message, 300),
        fix,
    })
}

/// With leader election: wait as a standby (healthy and ready), then run
/// the controller while holding the Lease, and release it on the way out.
async fn lead(lease: Lease, client: &Client, ctx: Arc<Context>, probes: Arc<Probes>) {
    probes.ready.store(true, Ordering::Relaxed);
    tracing::info!(identity = %lease.identity, "waiting for the leader lease");
    let Some(manager) = lease.acquire(client).await else {
        return;
    };
    tracing::info!("leading; starting the controller");
    // Unready while the caches sync.
    probes.ready.store(false, Ordering::Relaxed);
    let manager = Arc::new(manager);
    let (lost_tx, lost) = tokio::sync::oneshot::channel::<()>();
    let renewing = tokio::spawn({
        let manager = manager.clone();
        async move {
            leadership_lost(manager).await;
            let _ = lost_tx.send(());
        }
    });
    bounded_by_signal(control_loop::run(ctx, probes, async move {
        let _ = lost.await;
    }))
    .await;
    renewing.abort();
    let _ = renewing.await;
    // Hand over at once: the next leader need not wait for the lease to expire.
    if let Err(e) = manager.release().await {
        tracing::warn!(error = %e, "releasing the leader lease failed");
    }
}

/// Where the leader-election Lease lives and who we are.
struct Lease {
    namespace: String,
    name: String,
    identity: String,
    duration_seconds: u64,
}

impl Lease {
    fn named(config: &LeaseConfig) -> Lease {
        let pod_ns = std::env::var("POD_NAMESPACE").ok();
        let file_ns = std::fs::read_to_string(POD_NAMESPACE_FILE).ok();
        Lease {
            namespace: lease_namespace(
                config.namespace.as_deref(),
                pod_ns.as_deref(),
                file_ns.as_deref(),
            ),
            name: config.name.clone(),
            identity: std::env::var("POD_NAME")
                .unwrap_or_else(|_| format!("offer-cancel-operator-{:x}", fastrand::u64(..))),
            duration_seconds: config.duration_seconds.max(2),
        }
    }

    async fn manager(&self, client: &Client) -> Result<LeaseManager, Error> {
        let grace = (self.duration_seconds / 3).max(1);
        Ok(
            kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &self.name)
                .with_namespace(&self.namespace)
                .with_identity(&self.identity)
                .with_duration(self.duration_seconds)
                .with_grace(grace)
                // No field manager of ours: the library's default is one
                // per identity, and a race for the Lease is only seen as a
                // server-side-apply conflict between different managers.
                // With one shared manager both replicas' applies landed
                // and both led.
                .build()
                .await?,
        )
    }

    /// Waits until we hold the lease; `None` on SIGTERM. kube-lease-manager
    /// sleeps until a held lease expires, so a standby also checks every
    /// second whether the leader released it, and then starts over.
    /// An API error (the server restarting, say) is logged and retried: a
    /// standby must not exit for it.
    async fn acquire(&self, client: &Client) -> Option<LeaseManager> {
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(client.clone(), &self.namespace);
        loop {
            let attempt = async {
                let manager = self.manager(client).await?;
                tokio::select! {
                    held = manager.changed() => Ok::<_, Error>(held?.then_some(manager)),
                    () = released(&leases, &self.name) => Ok(None),
                }
            };
            let outcome = tokio::select! {
                outcome = attempt => outcome,
                () = shutdown_signal() => return None,
            };
            match outcome {
                Ok(Some(manager)) => return Some(manager),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "leader election failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(STANDBY_CHECK) => {}
                        () = shutdown_signal() => return None,
                    }
                }
            }
        }
    }
}

/// Completes once the Lease exists with no holder.
async fn released(leases: &Api<k8s_openapi::api::coordination::v1::Lease>, name: &str) {
    loop {
        tokio::time::sleep(STANDBY_CHECK).await;
        if let Ok(Some(lease)) = leases.get_opt(name).await {
            let holder = lease.spec.and_then(|s| s.holder_identity);
            if holder.is_none_or(|h| h.is_empty()) {
                return;
            }
        }
    }
}

/// Completes when the lease is lost (or can no longer be renewed): the
/// controller stops, so two replicas never act at once.
async fn leadership_lost(manager: Arc<LeaseManager>) {
    loop {
        match manager.changed().await {
            Ok(true) => continue,
            Ok(false) => break,
            Err(e) => {
                tracing::warn!(error = %e, "renewing the leader lease failed");
                break;
            }
        }
    }
    tracing::warn!("leader lease lost; stopping");
}

/// Runs the controller, but never longer than [`SHUTDOWN_GRACE`] after a
/// signal: its graceful stop waits for a watch that may be unable to list
/// (no RBAC yet, API server down), and an operator must stop when told.
async fn bounded_by_signal(running: impl std::future::Future<Output = ()>) {
    let deadline = async {
        shutdown_signal().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = running => {}
        () = deadline => tracing::warn!("still busy {SHUTDOWN_GRACE:?} after the signal; stopping anyway"),
    }
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
