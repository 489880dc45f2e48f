//! What the cluster trials share: a namespace of their own with the
//! credentials Secret, the simulator, the operator as a child process (so it
//! can be SIGKILLed), and counts read back from CPP and Kubernetes.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use marketplace_simulator::{self as simulator, Scenario};
use offer_cancel_operator::crd::{OfferCancellation, Phase};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::envtest::ControlPlane;

/// The simulator's publisher, principal and the offer and job templates
/// the trials use: every `sync-*`, `async-*` and `legacy-*` offer, and
/// every `job-*` (cancel accepted while running, cancelled at the next
/// status poll), `jobnow-*` (cancelled at once) and `jobtwice-*` (accepted
/// while running, cancelled at the second status poll) configure job
/// exists on first use. The principal gets tokens for CPP and for Graph;
/// principal `reader` may read contoso's offers and jobs, and its cancels
/// are answered 403.
pub const SCENARIO: &str = r#"
seed: 11
principals:
  - {tenantId: t, clientId: operator, clientSecret: s3cret, publishers: [contoso]}
  - {tenantId: t, clientId: reader, clientSecret: s3cret, publishers: [contoso], readOnly: true}
tokens:
  - {token: another-publishers-token, publishers: [fabrikam]}
publishers:
  - id: contoso
    offerTemplates:
      - {id: sync-, cancel: sync}
      - {id: async-, cancel: async, location: migrated, pollsUntilDone: 1}
      - {id: legacy-, cancel: async, location: nonMigrated, pollsUntilDone: 1, body: array}
      - {id: idle-, inProgress: null}
      - {id: late-, cancel: tooLate}
      - {id: slow-sync-, cancel: sync, faults: {latencyMs: 6000}}
      - {id: slow-async-, cancel: async, location: migrated, pollsUntilDone: 1, faults: {latencyMs: 6000}}
      - {id: failcancel-, cancel: async, location: migrated, secondsUntilDone: 8, result: failed, messages: ["The publish could not be stopped."]}
    jobTemplates:
      - {id: job-, cancel: running, pollsUntilDone: 1}
      - {id: jobnow-, cancel: immediate}
      - {id: jobtwice-, cancel: running, pollsUntilDone: 2}
      - {id: jobpart-, cancel: immediate, resources: 4, processedBeforeCancel: 2}
"#;

/// A scenario being changed for one trial's namespace `ns`.
pub struct ScenarioYaml {
    pub ns: String,
    pub value: serde_yaml::Value,
}

impl ScenarioYaml {
    /// Appends to the top-level list `key` (`principals`, `issuers`).
    pub fn push(&mut self, key: &str, item: serde_json::Value) {
        let item = serde_yaml::to_value(item).expect("yaml value");
        let list = self
            .value
            .as_mapping_mut()
            .expect("scenario mapping")
            .entry(key.into())
            .or_insert_with(|| serde_yaml::Value::Sequence(vec![]));
        list.as_sequence_mut().expect("a list").push(item);
    }
}

/// One trial's world.
pub struct Fixture {
    /// The namespace the operator watches; empty: all of them.
    pub ns: String,
    pub client: Client,
    pub sim: simulator::Running,
    pub api: Api<OfferCancellation>,
    logs: PathBuf,
    /// The control plane's own logs (etcd, kube-apiserver).
    plane_dir: PathBuf,
}

/// A failing trial keeps its logs: the operators' and the control
/// plane's are copied under `target/tmp/cluster-logs/<namespace>/` (the
/// control plane's folder goes when the suite ends), and the tail of each
/// operator log is printed, so a red CI explains itself.
impl Drop for Fixture {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let name = if self.ns.is_empty() {
            "cluster-wide"
        } else {
            &self.ns
        };
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("cluster-logs")
            .join(name);
        let _ = std::fs::create_dir_all(&kept);
        let logs = std::fs::read_dir(&self.logs).into_iter().flatten();
        let plane = std::fs::read_dir(&self.plane_dir).into_iter().flatten();
        for entry in logs.chain(plane).flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let _ = std::fs::copy(&path, kept.join(entry.file_name()));
            }
        }
        let mut operators: Vec<_> = std::fs::read_dir(&self.logs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        operators.sort();
        for log in operators {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!("--- last lines of {}:", log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
        eprintln!("logs of this failed trial kept in {}", kept.display());
    }
}

impl Fixture {
    pub async fn new(plane: &ControlPlane, name: &str) -> Fixture {
        Self::with_scenario(plane, name, |_| {}).await
    }

    /// As [`Fixture::new`], with the simulator's scenario (YAML, from
    /// [`SCENARIO`]) changed by `change`, which is told the namespace.
    pub async fn with_scenario(
        plane: &ControlPlane,
        name: &str,
        change: impl FnOnce(&mut ScenarioYaml),
    ) -> Fixture {
        let client = plane.admin_client().await;
        let ns = format!("{name}-{:x}", fastrand::u32(..));
        namespace_with_secret(&client, &ns, "s3cret").await;
        let mut yaml = ScenarioYaml {
            ns: ns.clone(),
            value: serde_yaml::from_str(SCENARIO).expect("scenario yaml"),
        };
        change(&mut yaml);
        let text = serde_yaml::to_string(&yaml.value).expect("scenario yaml");
        let scenario = Scenario::from_yaml(&text).expect("scenario");
        let sim = simulator::spawn(scenario, "127.0.0.1:0")
            .await
            .expect("simulator");
        let api = Api::namespaced(client.clone(), &ns);
        let logs = plane.dir.path().join(&ns);
        std::fs::create_dir_all(&logs).expect("log dir");
        Fixture {
            ns,
            client,
            sim,
            api,
            logs,
            plane_dir: plane.dir.path().to_path_buf(),
        }
    }

    /// A world whose operator watches every namespace (own control planes
    /// only: it would act on other trials' resources).
    pub async fn cluster_wide(plane: &ControlPlane) -> Fixture {
        let client = plane.admin_client().await;
        let scenario = Scenario::from_yaml(SCENARIO).expect("scenario");
        let sim = simulator::spawn(scenario, "127.0.0.1:0")
            .await
            .expect("simulator");
        let logs = plane.dir.path().join("cluster-wide");
        std::fs::create_dir_all(&logs).expect("log dir");
        Fixture {
            ns: String::new(),
            api: Api::all(client.clone()),
            client,
            sim,
            logs,
            plane_dir: plane.dir.path().to_path_buf(),
        }
    }

    /// Cancel POSTs the simulator received for one target (an offer of
    /// contoso's, or a `job-*` configure job).
    pub async fn posts(&self, target: &str) -> u64 {
        cancel_posts(&self.stats().await, target)
    }

    /// Creates resources named and aimed as `pairs` says (name, offer),
    /// `concurrency` at a time: several may name one offer.
    pub async fn create_pairs(&self, pairs: &[(String, String)], concurrency: usize) {
        futures::stream::iter(pairs)
            .map(|(name, offer)| {
                let api = self.api.clone();
                async move {
                    api.create(&PostParams::default(), &resource(name, offer))
                        .await
                        .map(|_| ())
                }
            })
            .buffer_unordered(concurrency)
            .try_collect::<()>()
            .await
            .expect("create resources");
    }

    /// Starts a new publish on `offer`; returns its id.
    pub async fn start_publish(&self, offer: &str) -> String {
        self.start_publish_created(offer, 0).await
    }

    /// Starts a new publish on `offer`, listed as created `seconds_ago`.
    pub async fn start_publish_created(&self, offer: &str, seconds_ago: u64) -> String {
        let request = serde_json::json!({
            "offer": format!("contoso/{offer}"), "createdSecondsAgo": seconds_ago
        });
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/_sim/publish", self.sim.url()))
            .json(&request)
            .send()
            .await
            .expect("start a publish")
            .json()
            .await
            .expect("publish id");
        answer["id"].as_str().expect("publish id").to_string()
    }

    /// A CPP token for the trials' principal, as the operator would get it.
    pub async fn cpp_token(&self) -> String {
        let token: Value = reqwest::Client::new()
            .post(format!("{}/t/oauth2/token", self.sim.url()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "operator"),
                ("client_secret", "s3cret"),
                ("resource", "https://cloudpartner.azure.com"),
            ])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token json");
        token["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The offer's operations list as CPP shows it: (id, status) pairs.
    pub async fn operations(&self, offer: &str) -> Vec<(String, String)> {
        let url = format!(
            "{}/api/publishers/contoso/offers/{offer}/submissions/?api-version=2017-10-31",
            self.sim.url()
        );
        let list: Value = reqwest::Client::new()
            .get(url)
            .bearer_auth(self.cpp_token().await)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("list json");
        list.as_array()
            .into_iter()
            .flatten()
            .filter(|op| op["submissionType"] != "cancel")
            .map(|op| {
                let text = |k: &str| op[k].as_str().unwrap_or_default().to_string();
                (text("id"), text("status"))
            })
            .collect()
    }

    /// Creates one resource per offer, named as the offer, `concurrency`
    /// at a time.
    pub async fn create_all(&self, offers: &[String], concurrency: usize) {
        let pairs: Vec<_> = offers.iter().map(|o| (o.clone(), o.clone())).collect();
        self.create_pairs(&pairs, concurrency).await;
    }

    /// `{prefix}-0`, `{prefix}-1`, ...: `n` resources, each on its own
    /// offer of that name, created in namespace `ns`, `concurrency` at once.
    pub async fn flood(&self, ns: &str, prefix: &str, n: usize, concurrency: usize) -> Vec<String> {
        let api: Api<OfferCancellation> = Api::namespaced(self.client.clone(), ns);
        let offers: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
        let creating = offers.iter().map(|o| {
            let (api, r) = (api.clone(), resource(o, o));
            async move { api.create(&Default::default(), &r).await.expect("create") }
        });
        futures::stream::iter(creating)
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
        offers
    }

    /// The operator, as a child process watching this namespace only.
    pub fn operator(&self, plane: &ControlPlane, extra: &[&str]) -> Operator {
        self.operator_as(plane, false, extra)
    }

    pub fn operator_as(&self, plane: &ControlPlane, as_sa: bool, extra: &[&str]) -> Operator {
        self.operator_with(plane.kubeconfig(as_sa), extra, &[])
    }

    /// The operator with this kubeconfig, extra flags and environment.
    pub fn operator_with(
        &self,
        kubeconfig: PathBuf,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Operator {
        let this_release = Path::new(env!("CARGO_BIN_EXE_offer-cancel-operator"));
        self.operator_of(this_release, kubeconfig, extra, env)
    }

    /// The operator built from `binary` (this release, or another).
    pub fn operator_of(
        &self,
        binary: &Path,
        kubeconfig: PathBuf,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Operator {
        let n = std::fs::read_dir(&self.logs)
            .map(|d| d.count())
            .unwrap_or(0);
        let log = self.logs.join(format!("operator-{n}.log"));
        let out = std::fs::File::create(&log).expect("operator log");
        let err = out.try_clone().expect("operator log");
        let url = self.sim.url();
        let watch: &[&str] = if self.ns.is_empty() {
            &[]
        } else {
            &["--namespace", &self.ns]
        };
        let default_timeout: &[&str] = if extra.contains(&"--request-timeout-seconds") {
            &[]
        } else {
            &["--request-timeout-seconds", "5"]
        };
        let no_rate_limit: &[&str] = if extra.contains(&"--rate-limit-rps") {
            &[]
        } else {
            &["--rate-limit-rps", "0"]
        };
        let jobs = format!("{url}/rp/product-ingestion");
        let any_metrics_port: &[&str] = if extra.contains(&"--metrics-addr") {
            &[]
        } else {
            &["--metrics-addr", "127.0.0.1:0"]
        };
        let child = Command::new(binary)
            .arg("controller")
            .args(watch)
            .args(any_metrics_port)
            .args(no_rate_limit)
            .args(["--endpoint", &url, "--authority-host", &url])
            .args(["--product-ingestion-endpoint", &jobs])
            .args(default_timeout)
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the operator");
        Operator { child, log }
    }

    /// Phase of every resource, read as JSON: an object no Rust type
    /// holds (a poisonous one) must not break the count.
    pub async fn phases(&self) -> BTreeMap<String, Option<Phase>> {
        use kube::api::{ApiResource, DynamicObject};
        let resource = ApiResource::erase::<OfferCancellation>(&());
        let api: Api<DynamicObject> = if self.ns.is_empty() {
            Api::all_with(self.client.clone(), &resource)
        } else {
            Api::namespaced_with(self.client.clone(), &self.ns, &resource)
        };
        let list = api
            .list(&ListParams::default())
            .await
            .expect("list resources");
        list.items
            .into_iter()
            .map(|r| {
                let phase = serde_json::from_value(r.data["status"]["phase"].clone()).ok();
                let name = r.metadata.name.unwrap_or_default();
                // Watching every namespace, one name can stand in several.
                let key = match (&r.metadata.namespace, self.ns.is_empty()) {
                    (Some(ns), true) => format!("{ns}/{name}"),
                    _ => name,
                };
                (key, phase)
            })
            .collect()
    }

    /// One label and one annotation edit on each resource (a GitOps tool
    /// re-syncing); returns how many landed.
    pub async fn edit_metadata_of_all(&self, names: &[String], round: u64) -> u64 {
        use kube::api::{Patch, PatchParams};
        let patch = serde_json::json!({"metadata": {
            "labels": {"oco-trial/edit": round.to_string()},
            "annotations": {"oco-trial/synced": round.to_string()},
        }});
        let landed = futures::stream::iter(names)
            .map(|name| {
                let (api, patch) = (self.api.clone(), &patch);
                async move {
                    let merge = Patch::Merge(patch);
                    api.patch(name, &PatchParams::default(), &merge)
                        .await
                        .is_ok()
                }
            })
            .buffer_unordered(16)
            .filter(|ok| std::future::ready(*ok))
            .count()
            .await;
        landed as u64
    }

    /// Every resource's status, by name, as JSON.
    pub async fn statuses(&self) -> BTreeMap<String, Value> {
        let list = self
            .api
            .list(&ListParams::default())
            .await
            .expect("list resources");
        list.items
            .into_iter()
            .map(|r| {
                let status = serde_json::to_value(&r.status).unwrap_or_default();
                (r.metadata.name.unwrap_or_default(), status)
            })
            .collect()
    }

    /// Waits until every resource is Cancelled or Failed; panics with the
    /// stragglers after `limit`.
    pub async fn wait_all_ended(&self, limit: Duration) -> BTreeMap<String, Option<Phase>> {
        let started = Instant::now();
        loop {
            let phases = self.phases().await;
            let open: Vec<_> = phases
                .iter()
                .filter(|(_, p)| !matches!(p, Some(Phase::Cancelled | Phase::Failed)))
                .collect();
            if open.is_empty() {
                return phases;
            }
            assert!(
                started.elapsed() < limit,
                "{} resources still open after {limit:?}, e.g. {:?}",
                open.len(),
                open.iter().take(5).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The simulator's counts per offer (`contoso/<offer>`).
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/_sim/stats", self.sim.url()))
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }

    /// Every request the simulator received, in arrival order: `(Unix ms,
    /// endpoint, publisher/offer)`.
    pub async fn requests(&self) -> Vec<(i64, String, String)> {
        let mut all = Vec::new();
        loop {
            let url = format!("{}/_sim/requests?after={}", self.sim.url(), all.len());
            let page: Value = reqwest::get(url)
                .await
                .expect("requests")
                .json()
                .await
                .expect("requests json");
            assert_eq!(page["lost"], 0, "the simulator's request log overflowed");
            let requests = page["requests"].as_array().cloned().unwrap_or_default();
            if requests.is_empty() {
                return all;
            }
            all.extend(requests.iter().map(|r| {
                let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                (
                    r["atMs"].as_i64().unwrap_or(0),
                    text("endpoint"),
                    text("offer"),
                )
            }));
        }
    }

    /// Targets that received anything but exactly one cancel POST.
    pub async fn duplicate_posts(&self, offers: &[String]) -> Vec<(String, u64)> {
        let stats = self.stats().await;
        offers
            .iter()
            .map(|o| (o.clone(), cancel_posts(&stats, o)))
            .filter(|(_, n)| *n != 1)
            .collect()
    }

    pub async fn set_faults(&self, faults: Value) {
        let status = reqwest::Client::new()
            .post(format!("{}/_sim/faults", self.sim.url()))
            .json(&faults)
            .send()
            .await
            .expect("set faults")
            .status();
        assert!(status.is_success(), "set faults: {status}");
    }

    pub async fn cleanup(self) {
        if !self.ns.is_empty() {
            let _ = Api::<Namespace>::all(self.client.clone())
                .delete(&self.ns, &DeleteParams::default())
                .await;
        }
        self.sim.task.abort();
    }
}

/// A namespace with Secret `cpp` naming the simulator's principal, with
/// this client secret.
pub async fn namespace_with_secret(client: &Client, ns: &str, client_secret: &str) {
    let data = [
        ("tenantId", "t"),
        ("clientId", "operator"),
        ("clientSecret", client_secret),
    ];
    namespace_with(client, ns, &data).await;
}

/// A namespace with Secret `cpp` holding `data`.
async fn namespace_with(client: &Client, ns: &str, data: &[(&str, &str)]) {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.to_string());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    add_secret(client, ns, "cpp", data).await;
}

/// Secret `reader` in namespace `ns`, naming the simulator's principal
/// that may read contoso's offers and jobs but whose cancels are 403.
pub async fn add_reader_secret(client: &Client, ns: &str) {
    let data = [
        ("tenantId", "t"),
        ("clientId", "reader"),
        ("clientSecret", "s3cret"),
    ];
    add_secret(client, ns, "reader", &data).await;
}

/// Secret `name` holding `data`, in the existing namespace `ns`.
pub async fn add_secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let mut secret = Secret::default();
    secret.metadata.name = Some(name.into());
    let data = data.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    secret.string_data = Some(data.collect());
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
}

/// `n` offers, a third of them answered slowly (6 s for every call): sync-,
/// async-, legacy-, slow-sync-, slow-async-, legacy-, in turn.
pub fn offers_some_slow(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let kind = [
                "sync",
                "async",
                "legacy",
                "slow-sync",
                "slow-async",
                "legacy",
            ][i % 6];
            format!("{kind}-{prefix}-{i}")
        })
        .collect()
}

/// The resources of `offers`, one each, and a twin for every tenth offer
/// (10% of the resources share an offer in pairs).
pub fn with_twins(offers: &[String]) -> Vec<(String, String)> {
    let ones = offers.iter().map(|o| (o.clone(), o.clone()));
    let twins = offers
        .iter()
        .step_by(10)
        .map(|o| (format!("twin-{o}"), o.clone()));
    ones.chain(twins).collect()
}

/// A namespace whose Secret `cpp` holds a bearer token for another
/// publisher: CPP refuses it this offer (403).
pub async fn namespace_with_foreign_token(client: &Client, ns: &str) {
    namespace_with(client, ns, &[("token", "another-publishers-token")]).await;
}

/// `n` targets of every template kind, a quarter of them configure jobs:
/// sync-, async-, legacy-, job-, sync-, async-, legacy-, jobnow-, in turn.
pub fn mixed_offers(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let kind = [
                "sync", "async", "legacy", "job", "sync", "async", "legacy", "jobnow",
            ][i % 8];
            format!("{kind}-{prefix}-{i}")
        })
        .collect()
}

/// Whether a trial's target name is a configure job's id.
pub fn is_job(target: &str) -> bool {
    ["job-", "jobnow-", "jobtwice-", "jobpart-"]
        .iter()
        .any(|kind| target.starts_with(kind))
}

/// The simulator's counts for one target (an offer's or a job's).
pub fn target_stats<'a>(stats: &'a Value, target: &str) -> &'a Value {
    if is_job(target) {
        &stats["jobs"][target]
    } else {
        &stats["offers"][format!("contoso/{target}")]
    }
}

/// How the simulator's request log names a target: `contoso/<offer>`, or
/// `job/<jobId>`.
pub fn log_name(target: &str) -> String {
    if is_job(target) {
        format!("job/{target}")
    } else {
        format!("contoso/{target}")
    }
}

/// When the first cancel POST to `target` arrived (Unix ms), dropped ones
/// included: the log records a request before any fault is rolled.
pub fn first_cancel_at(requests: &[(i64, String, String)], target: &str) -> Option<i64> {
    let name = log_name(target);
    requests
        .iter()
        .find(|(_, e, t)| (e == "cancel" || e == "job_cancel") && *t == name)
        .map(|(at, _, _)| *at)
}

/// Cancel POSTs in the simulator's stats for one target.
fn cancel_posts(stats: &Value, target: &str) -> u64 {
    target_stats(stats, target)["cancelPosts"]
        .as_u64()
        .unwrap_or(0)
}

/// A resource named `name` cancelling `target`: a contoso offer, polled
/// every 5 s, or a configure job when the name says so ([`is_job`]),
/// polled once a minute (the schema refuses more often).
pub fn resource(name: &str, target: &str) -> OfferCancellation {
    resource_using(name, target, "cpp")
}

/// As [`resource`], with the credentials of Secret `secret`.
pub fn resource_using(name: &str, target: &str, secret: &str) -> OfferCancellation {
    let aim = if is_job(target) {
        format!("productIngestion: {{jobId: {target}}}")
    } else {
        format!("publisherId: contoso, offerId: {target}, pollIntervalSeconds: 5")
    };
    serde_yaml::from_str(&format!(
        "apiVersion: offercancel.dev/v1alpha1\nkind: OfferCancellation\nmetadata: {{name: {name}}}\n\
         spec: {{{aim}, credentialsSecretRef: {{name: {secret}}}}}\n"
    ))
    .expect("resource yaml")
}

/// The most requests to CPP (the token endpoint is Azure AD's) that
/// arrived within any one second.
pub fn most_in_one_second(requests: &[(i64, String, String)]) -> usize {
    let times: Vec<i64> = requests
        .iter()
        .filter(|(_, endpoint, _)| endpoint != "token")
        .map(|(at, _, _)| *at)
        .collect();
    let mut most = 0;
    let mut start = 0;
    for (end, at) in times.iter().enumerate() {
        while times[start] + 1000 <= *at {
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
}

/// A loopback address with a port free now (for an operator's /metrics).
pub fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    format!("127.0.0.1:{port}")
}

/// The operator as a child process.
pub struct Operator {
    pub child: Child,
    pub log: PathBuf,
}

impl Operator {
    pub fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM, then waits for the exit; SIGKILL after `limit`. Returns
    /// how long the graceful stop took, or `None` when it had to be killed.
    pub async fn sigterm(mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        self.signal(libc::SIGTERM);
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.sigkill();
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Applies deploy/'s namespace, ServiceAccount and RBAC objects, exactly as
/// shipped (server-side apply).
/// The ClusterRoles of deploy/user-roles.yaml, applied.
pub async fn apply_user_roles(client: &Client) {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/user-roles.yaml");
    let text = std::fs::read_to_string(path).expect("deploy/user-roles.yaml");
    let pp = kube::api::PatchParams::apply("cluster-suite").force();
    let api = Api::<ClusterRole>::all(client.clone());
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let role: ClusterRole = serde::Deserialize::deserialize(doc).expect("a ClusterRole");
        let name = role.metadata.name.clone().expect("name");
        api.patch(&name, &pp, &kube::api::Patch::Apply(&role))
            .await
            .expect("apply a user role");
    }
}

/// Binds ClusterRole `role` to `user` in namespace `ns`.
pub async fn bind_role(client: &Client, ns: &str, role: &str, user: &str) {
    use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
    let binding = RoleBinding {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{role}-{user}")),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: user.into(),
            namespace: None,
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind the role");
}

/// Namespace `ns`, created unless it exists.
pub async fn ensure_namespace(client: &Client, ns: &str) {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.to_string());
    create_unless_there(&Api::<Namespace>::all(client.clone()), &namespace).await;
}

/// Creates `object` through `api`, unless one of its name exists.
pub async fn create_unless_there<K>(api: &Api<K>, object: &K)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create {:?}: {e}", object.meta().name),
    }
}

pub async fn apply_deploy_rbac(client: &Client) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect("deploy file");
    let pp = kube::api::PatchParams::apply("cluster-suite").force();
    macro_rules! apply {
        ($api:expr, $ty:ty, $file:expr) => {{
            let obj: $ty = serde_yaml::from_str(&read($file)).expect($file);
            let name = obj.metadata.name.clone().expect("name");
            $api.patch(&name, &pp, &kube::api::Patch::Apply(&obj))
                .await
                .expect($file);
        }};
    }
    let sys = "offercancel-system";
    apply!(
        Api::<Namespace>::all(client.clone()),
        Namespace,
        "base/namespace.yaml"
    );
    apply!(
        Api::<ServiceAccount>::namespaced(client.clone(), sys),
        ServiceAccount,
        "base/serviceaccount.yaml"
    );
    apply!(
        Api::<Role>::namespaced(client.clone(), sys),
        Role,
        "base/lease-role.yaml"
    );
    apply!(
        Api::<RoleBinding>::namespaced(client.clone(), sys),
        RoleBinding,
        "base/lease-rolebinding.yaml"
    );
    apply!(
        Api::<ClusterRole>::all(client.clone()),
        ClusterRole,
        "clusterrole.yaml"
    );
    apply!(
        Api::<ClusterRoleBinding>::all(client.clone()),
        ClusterRoleBinding,
        "clusterrolebinding.yaml"
    );
}

/// Events in the namespace (events.k8s.io/v1).
pub async fn events_for(client: &Client, ns: &str) -> usize {
    use k8s_openapi::api::events::v1::Event;
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .len()
}

/// The Lease's holder now, if it has one.
async fn holder_now(
    leases: &Api<k8s_openapi::api::coordination::v1::Lease>,
    name: &str,
) -> Option<String> {
    let lease = leases.get_opt(name).await.ok().flatten()?;
    let holder = lease.spec?.holder_identity?;
    (!holder.is_empty()).then_some(holder)
}

/// Every holder the Lease had, in order, watched for `span` after it
/// first had one.
pub async fn lease_holders(client: &Client, ns: &str, name: &str, span: Duration) -> Vec<String> {
    use k8s_openapi::api::coordination::v1::Lease;
    let first = lease_holder(client, ns, name, None).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let mut holders = vec![first];
    let started = Instant::now();
    while started.elapsed() < span {
        if let Some(h) = holder_now(&leases, name).await
            && holders.last() != Some(&h)
        {
            holders.push(h);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    holders
}

/// Waits until the Lease has a holder other than `not`; returns it.
pub async fn lease_holder(client: &Client, ns: &str, name: &str, not: Option<&str>) -> String {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    loop {
        let holder = holder_now(&leases, name).await;
        if let Some(h) = holder.filter(|h| Some(h.as_str()) != not) {
            return h;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no new holder of Lease {ns}/{name}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drops `maximum` from spec.timeoutSeconds, as an older CRD had it.
pub async fn loosen_timeout_schema(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = "offercancellations.offercancel.dev";
    let mut crd = serde_json::to_value(crds.get(name).await.expect("read CRD")).expect("json");
    let timeout = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["timeoutSeconds"];
    timeout
        .as_object_mut()
        .expect("timeoutSeconds")
        .remove("maximum");
    crd["metadata"]["managedFields"] = Value::Null;
    crds.replace(
        name,
        &Default::default(),
        &serde_json::from_value(crd).expect("crd"),
    )
    .await
    .expect("loosen the CRD");
    // Let the API server pick up the new schema.
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// Creates an object from raw JSON, bypassing the Rust types.
pub async fn create_raw(client: &Client, ns: &str, object: Value) {
    use kube::api::{ApiResource, DynamicObject};
    let resource = ApiResource::erase::<OfferCancellation>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let object: DynamicObject = serde_json::from_value(object).expect("object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("create raw object");
}

/// Counts the writes to each resource after its creation, as the API
/// server reports them on a watch (every change is one event).
pub struct WriteCounter {
    counts: std::sync::Arc<std::sync::Mutex<BTreeMap<String, u32>>>,
    /// When the watch saw each resource's first write (Unix ms; the
    /// cluster benchmark's latency to a first write).
    #[allow(dead_code)]
    first: std::sync::Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WriteCounter {
    /// Counts from now on: returns once the watch is established, so no
    /// write made after it is missed (under load, a watch opened in the
    /// background came up after the first writes). A watch that ends (its
    /// timeout, a broken connection) is resumed from the last version seen.
    pub async fn start(client: &Client, ns: &str) -> WriteCounter {
        use kube::api::{ApiResource, DynamicObject, WatchEvent, WatchParams};
        let resource = ApiResource::erase::<OfferCancellation>(&());
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        let counts = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let first_writes = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let (seen, first_seen) = (counts.clone(), first_writes.clone());
        let params = WatchParams::default().timeout(290);
        let first = api.watch(&params, "0").await.expect("watch the resources");
        let task = tokio::spawn(async move {
            let mut version = "0".to_string();
            let mut stream = first.boxed();
            loop {
                while let Some(Ok(event)) = stream.next().await {
                    let object = match event {
                        WatchEvent::Modified(o) => {
                            let name = o.metadata.name.clone().unwrap_or_default();
                            let at = jiff::Timestamp::now().as_millisecond().max(0) as u64;
                            let mut first = first_seen.lock().unwrap_or_else(|p| p.into_inner());
                            first.entry(name.clone()).or_insert(at);
                            let mut counts = seen.lock().unwrap_or_else(|p| p.into_inner());
                            *counts.entry(name).or_insert(0) += 1;
                            o
                        }
                        WatchEvent::Added(o) | WatchEvent::Deleted(o) => o,
                        // Too old to resume: start over from the current state.
                        WatchEvent::Error(e) if e.code == 410 => {
                            version = "0".into();
                            continue;
                        }
                        WatchEvent::Bookmark(_) | WatchEvent::Error(_) => continue,
                    };
                    version = object.metadata.resource_version.unwrap_or(version);
                }
                stream = loop {
                    match api.watch(&params, &version).await {
                        Ok(next) => break next.boxed(),
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                };
            }
        });
        WriteCounter {
            counts,
            first: first_writes,
            task,
        }
    }

    /// When the watch saw each resource's first write, Unix ms.
    #[allow(dead_code)]
    pub fn first_writes(&self) -> BTreeMap<String, u64> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Writes per resource so far.
    pub fn counts(&self) -> BTreeMap<String, u32> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for WriteCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}
