//! End to end on a real cluster (kind, k3d, staging): `cargo test --features
//! e2e --test e2e_cluster` with KUBECONFIG pointing at it. Installs the CRD,
//! runs the simulator and the controller in this process, applies
//! OfferCancellations in a namespace of its own, checks phases, conditions,
//! events and the simulator's counts, and deletes the namespace at the end.
#![cfg(feature = "e2e")]

// The CRD install and the phase wait are the cluster suite's; the rest of
// its harness (starting a control plane) is not used here.
#[allow(dead_code)]
#[path = "cluster/envtest.rs"]
mod envtest;

use envtest::wait_phase;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, CustomResourceExt};
use marketplace_simulator::scenario::DEFAULT_TOKEN;
use marketplace_simulator::{self as simulator, Scenario};
use offer_cancel_operator::apis::Apis;
use offer_cancel_operator::context::{self, Context};
use offer_cancel_operator::control_loop;
use offer_cancel_operator::crd::{OfferCancellation, Phase};
use offer_cancel_operator::health::Probes;
use offer_cancel_operator::http::ClientConfig;
use offer_cancel_operator::metrics::Metrics;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

const MANAGER: &str = "offer-cancel-e2e";

fn cluster_required() -> ! {
    panic!(
        "the e2e suite needs a cluster: set KUBECONFIG (for example `kind create cluster` and `export KUBECONFIG=~/.kube/config`)"
    )
}

fn resource(name: &str, publisher: &str, offer: &str) -> OfferCancellation {
    serde_yaml::from_str(&format!(
        "apiVersion: offercancel.dev/v1alpha1\nkind: OfferCancellation\nmetadata: {{name: {name}}}\n\
         spec: {{publisherId: {publisher}, offerId: {offer}, credentialsSecretRef: {{name: cpp}}, pollIntervalSeconds: 5}}\n"
    ))
    .expect("resource yaml")
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

fn start_controller(client: &Client, ns: &str, sim_url: &str) -> Running {
    let url: reqwest::Url = sim_url.parse().unwrap();
    let metrics = Arc::new(Metrics::default());
    let cpp = Arc::new(Apis::new(ClientConfig::new(url.clone(), url), metrics.clone()).unwrap());
    let config = context::Config {
        namespace: Some(ns.to_string()),
        ..context::Config::default()
    };
    let ctx = Arc::new(Context::new(client.clone(), cpp, metrics.clone(), config));
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(control_loop::run(
        ctx,
        Arc::new(Probes::new(metrics)),
        async move {
            let _ = rx.await;
        },
    ));
    Running { stop, task }
}

async fn stop_controller(running: Running) {
    let _ = running.stop.send(());
    tokio::time::timeout(Duration::from_secs(30), running.task)
        .await
        .expect("controller did not stop")
        .unwrap();
}

fn condition(obj: &OfferCancellation, kind: &str) -> (String, String) {
    let c = obj
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == kind))
        .unwrap_or_else(|| panic!("no {kind} condition"));
    (c.status.clone(), c.reason.clone())
}

async fn event_reasons(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = events
        .list(&ListParams::default())
        .await
        .expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

async fn cancel_posts(sim: &simulator::Running, key: &str) -> u64 {
    let stats: serde_json::Value = reqwest::get(format!("{}/_sim/stats", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["offers"][key]["cancelPosts"].as_u64().unwrap_or(0)
}

async fn scenarios(client: &Client, ns: &str, sim: &simulator::Running) {
    let api: Api<OfferCancellation> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    let running = start_controller(client, ns, &sim.url());

    api.create(&pp, &resource("sync", "contoso", "sync-offer"))
        .await
        .unwrap();
    let obj = wait_phase(&api, "sync", Phase::Cancelled, Duration::from_secs(120)).await;
    assert_eq!(condition(&obj, "Ready").0, "True");
    assert_eq!(obj.status.as_ref().unwrap().http_status, Some(200));

    api.create(&pp, &resource("async", "contoso", "legacy-offer"))
        .await
        .unwrap();
    let obj = wait_phase(&api, "async", Phase::Cancelled, Duration::from_secs(120)).await;
    assert!(
        obj.status
            .unwrap()
            .operation_location
            .unwrap()
            .contains("$preview")
    );
    assert_eq!(cancel_posts(sim, "contoso/legacy-offer").await, 1);

    api.create(&pp, &resource("forbidden", "fabrikam", "fabrikam-offer"))
        .await
        .unwrap();
    let obj = wait_phase(&api, "forbidden", Phase::Failed, Duration::from_secs(120)).await;
    assert_eq!(
        condition(&obj, "Stalled"),
        ("True".into(), "Forbidden".into())
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(cancel_posts(sim, "fabrikam/fabrikam-offer").await, 1);

    api.create(&pp, &resource("restart", "contoso", "contoso-offer"))
        .await
        .unwrap();
    wait_phase(&api, "restart", Phase::Cancelling, Duration::from_secs(120)).await;
    stop_controller(running).await;
    let running = start_controller(client, ns, &sim.url());
    wait_phase(&api, "restart", Phase::Cancelled, Duration::from_secs(120)).await;
    assert_eq!(cancel_posts(sim, "contoso/contoso-offer").await, 1);
    stop_controller(running).await;

    let reasons = event_reasons(client, ns, "async").await;
    for want in ["CancelRequested", "CancelAccepted", "Cancelled"] {
        assert!(
            reasons.iter().any(|r| r == want),
            "events of async: {reasons:?}"
        );
    }
    assert!(
        event_reasons(client, ns, "forbidden")
            .await
            .iter()
            .any(|r| r == "CancelFailed")
    );
}

#[tokio::test]
async fn operator_on_a_real_cluster() {
    if std::env::var_os("KUBECONFIG").is_none() {
        cluster_required();
    }
    let client = Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("connecting with KUBECONFIG: {e}"));
    let crd = serde_json::to_value(OfferCancellation::crd()).expect("CRD as JSON");
    envtest::install_crd(&client, crd, MANAGER)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut scenario = Scenario::default_scenario();
    scenario.publishers[0].offers[0].polls_until_done = 4;
    let sim = simulator::spawn(scenario, "127.0.0.1:0").await.unwrap();
    let ns = format!("oco-e2e-{:x}", fastrand::u32(..));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.clone());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    let mut secret = Secret::default();
    secret.metadata.name = Some("cpp".into());
    secret.string_data = Some([("token".to_string(), DEFAULT_TOKEN.to_string())].into());
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");

    let outcome = AssertUnwindSafe(scenarios(&client, &ns, &sim))
        .catch_unwind()
        .await;
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
