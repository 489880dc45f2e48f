//! The cluster suite: the operator binary and the simulator against a real
//! kube-apiserver and etcd (see envtest.rs). Each trial has a namespace of
//! its own and counts what CPP received. Runs with `cargo test --test
//! cluster`; without a control plane it fails and says how to get one.

mod claims;
mod credentials;
mod envtest;
mod job_detail;
mod lag_proxy;
mod preview;
mod releases;
mod support;

use envtest::{ControlPlane, wait_phase};
use libtest_mimic::{Arguments, Failed, Trial};
use offer_cancel_operator::crd::{OfferCancellation, Phase};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use support::{Fixture, mixed_offers, offers_some_slow, with_twins};

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
        trial(
            &plane,
            "workload_identity_uses_only_the_namespaces_own_service_account",
            |plane| async move {
                credentials::workload_identity_uses_only_the_namespaces_own_service_account(&plane)
                    .await
            },
        ),
        trial(
            &plane,
            "certificate_credentials_cancel_and_an_expired_one_is_refused",
            |plane| async move {
                credentials::certificate_credentials_cancel_and_an_expired_one_is_refused(&plane)
                    .await
            },
        ),
        trial(&plane, "one_post_with_a_lagging_watch", lagging_watch),
        trial(&plane, "burst_one_post_per_offer", burst),
        trial(
            &plane,
            "a_token_reaches_only_the_api_it_was_issued_for",
            tokens_stay_with_their_audience,
        ),
        trial(
            &plane,
            "sigkill_during_burst_no_duplicate",
            sigkill_during_burst,
        ),
        trial(
            &plane,
            "faults_and_crashes_every_offer_once",
            faults_and_crashes,
        ),
        trial(
            &plane,
            "rbac_from_deploy_suffices",
            rbac_from_deploy_suffices,
        ),
        trial(&plane, "two_replicas_one_writer", two_replicas_one_writer),
        trial(
            &plane,
            "user_roles_let_editors_edit_and_viewers_only_read",
            user_roles_let_editors_edit_and_viewers_only_read,
        ),
        trial(
            &plane,
            "deploy_passes_a_server_side_dry_run",
            deploy_passes_a_server_side_dry_run,
        ),
        trial(
            &plane,
            "simultaneous_start_never_two_leaders",
            simultaneous_start_never_two_leaders,
        ),
        trial(
            &plane,
            "two_active_writers_one_post_per_offer",
            two_active_writers_one_post_per_offer,
        ),
        trial(
            &plane,
            "edits_during_the_posts_lose_no_answer",
            edits_during_the_posts_lose_no_answer,
        ),
        trial(
            &plane,
            "a_recreated_manifest_never_cancels_a_new_publish",
            a_recreated_manifest_never_cancels_a_new_publish,
        ),
        trial(
            &plane,
            "a_lost_answer_never_cancels_a_publish_started_since",
            a_lost_answer_never_cancels_a_publish_started_since,
        ),
        trial(
            &plane,
            "many_resources_one_offer_one_post",
            many_resources_one_offer_one_post,
        ),
        trial(
            &plane,
            "graceful_handover_within_two_seconds",
            graceful_handover_within_two_seconds,
        ),
        trial(
            &plane,
            "a_poisonous_resource_stops_no_one",
            a_poisonous_resource_stops_no_one,
        ),
        trial(
            &plane,
            "a_start_without_the_crd_or_the_rights_says_which_and_stops",
            a_start_without_the_crd_or_the_rights_says_which_and_stops,
        ),
        trial(
            &plane,
            "cancel_output_applies_with_kubectl_as_it_stands",
            cancel_output_applies_with_kubectl_as_it_stands,
        ),
        trial(
            &plane,
            "one_namespace_never_borrows_another_token",
            one_namespace_never_borrows_another_token,
        ),
        trial(
            &plane,
            "kubectl_wait_and_kstatus_as_the_readme_says",
            kubectl_wait_and_kstatus_as_the_readme_says,
        ),
        trial(
            &plane,
            "a_preview_sends_nothing_and_its_confirmation_cancels_only_that_publish",
            preview::a_preview_sends_nothing_and_its_confirmation_cancels_only_that_publish,
        ),
        trial(
            &plane,
            "a_cancelled_job_says_what_it_had_already_applied",
            job_detail::a_cancelled_job_says_what_it_had_already_applied,
        ),
        trial(
            &plane,
            "kubectl_wait_and_argo_cd_read_a_preview_as_waiting",
            preview::kubectl_wait_and_argo_cd_read_a_preview_as_waiting,
        ),
        trial(
            &plane,
            "a_status_apply_from_a_stale_version_is_refused",
            a_status_apply_from_a_stale_version_is_refused,
        ),
        trial(
            &plane,
            "a_flood_in_one_namespace_never_holds_back_another",
            a_flood_in_one_namespace_never_holds_back_another,
        ),
        trial(
            &plane,
            "a_kept_failure_is_rearmed_only_by_the_retry_annotation",
            |plane| async move {
                releases::a_kept_failure_is_rearmed_only_by_the_retry_annotation(&plane).await
            },
        ),
        trial(
            &plane,
            "intents_from_before_the_guards_are_read_conservatively",
            |plane| async move { releases::intents_from_before_the_guards(&plane).await },
        ),
        trial(
            &plane,
            "an_upgrade_with_cancels_in_flight_sends_one_post_per_target",
            |_shared| async {
                let plane = own_plane().await;
                releases::cancels_in_flight_survive(&plane, releases::Change::Upgrade).await
            },
        ),
        trial(
            &plane,
            "a_rollback_with_cancels_in_flight_sends_one_post_per_target",
            |_shared| async {
                let plane = own_plane().await;
                releases::cancels_in_flight_survive(&plane, releases::Change::Rollback).await
            },
        ),
        trial(
            &plane,
            "an_annotation_on_a_finished_resource_blocks_no_later_cancel",
            claims::an_annotation_on_a_finished_resource_blocks_no_later_cancel,
        ),
        trial(
            &plane,
            "a_refused_peer_never_stops_a_cancel",
            claims::a_refused_peer_never_stops_a_cancel,
        ),
        trial(
            &plane,
            "a_cancel_of_the_previous_publish_is_never_shared",
            claims::a_cancel_of_the_previous_publish_is_never_shared,
        ),
        trial(
            &plane,
            "a_publish_that_went_live_before_a_resend_is_not_cancelled",
            claims::a_publish_that_went_live_before_a_resend_is_not_cancelled,
        ),
        trial(
            &plane,
            "two_active_writers_with_shared_offers_one_post_per_target",
            claims::two_active_writers_with_shared_offers_one_post_per_target,
        ),
        trial(
            &plane,
            "tenants_without_credentials_delay_no_first_cancel",
            claims::tenants_without_credentials_delay_no_first_cancel,
        ),
        trial(
            &plane,
            "three_hundred_namespaces_one_cancel_each_under_the_rate_limit",
            claims::three_hundred_namespaces_one_cancel_each_under_the_rate_limit,
        ),
        trial(
            &plane,
            "twenty_resources_following_one_job_poll_it_once_a_minute",
            claims::twenty_resources_following_one_job_poll_it_once_a_minute,
        ),
        trial(
            &plane,
            "a_deleted_claimants_failed_cancel_blocks_no_later_cancel",
            claims::a_deleted_claimants_failed_cancel_blocks_no_later_cancel,
        ),
    ];
    let trials = match only_named(trials) {
        Ok(trials) => trials,
        Err(why) => {
            eprintln!("error: {why}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let conclusion = libtest_mimic::run(&args, trials);
    drop(plane);
    conclusion.exit_code()
}

/// The trials `OCO_TRIALS` names (comma-separated parts of names), all
/// without it: CI repeats several in one run, on one control plane, two at
/// a time as the whole suite runs. A part that names no trial is an error,
/// never a smaller run.
fn only_named(trials: Vec<Trial>) -> Result<Vec<Trial>, String> {
    let Ok(wanted) = std::env::var("OCO_TRIALS") else {
        return Ok(trials);
    };
    let wanted: Vec<&str> = wanted
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    if wanted.is_empty() {
        return Err("OCO_TRIALS is set but names no trial".into());
    }
    if let Some(unknown) = wanted
        .iter()
        .find(|w| !trials.iter().any(|t| t.name().contains(*w)))
    {
        return Err(format!("OCO_TRIALS names {unknown:?}, which no trial has"));
    }
    let all = trials.len();
    let named: Vec<Trial> = trials
        .into_iter()
        .filter(|t| wanted.iter().any(|w| t.name().contains(w)))
        .collect();
    eprintln!("running {} of {all} trials (OCO_TRIALS)", named.len());
    Ok(named)
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

/// Every resource ends Cancelled, and the simulator received exactly one
/// cancel POST per target (offer or job), also a while after the last one
/// ended (time for a stale copy to come round and do damage); no token
/// reached the API it was not issued for.
async fn each_cancelled_once(fx: &Fixture, offers: &[String], limit: Duration) {
    fx.wait_all_ended(limit).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_all_cancelled(&fx.phases().await);
    assert_eq!(fx.duplicate_posts(offers).await, vec![]);
    let stats = fx.stats().await;
    assert_eq!(stats["wrongAudience"], 0, "a token reached the other API");
}

/// Prints status writes per resource (seen on a watch) for runs whose
/// count depends on where crashes and faults fell: a figure, not a bound.
fn report_writes(run: &str, offers: &[String], counts: &std::collections::BTreeMap<String, u32>) {
    let per: Vec<u32> = offers
        .iter()
        .map(|o| counts.get(o).copied().unwrap_or(0))
        .collect();
    let total: u32 = per.iter().sum();
    assert!(total > 0, "the write counter saw nothing");
    eprintln!(
        "{run}: status writes per resource mean {:.2}, max {}",
        f64::from(total) / per.len() as f64,
        per.iter().max().copied().unwrap_or(0)
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
    each_cancelled_once(&fx, &offers, Duration::from_secs(60)).await;
    operator.sigkill();
    fx.cleanup().await;
}

/// Hundreds of resources at once over sync, async and non-migrated offers
/// and configure jobs (a quarter).
async fn burst(plane: Plane) {
    let fx = Fixture::new(&plane, "burst").await;
    let writes = support::WriteCounter::start(&fx.client, &fx.ns).await;
    let metrics = support::free_address();
    let operator = fx.operator(&plane, &["--metrics-addr", &metrics]);
    let offers = mixed_offers("b", 501);
    fx.create_all(&offers, 32).await;
    each_cancelled_once(&fx, &offers, Duration::from_secs(240)).await;
    // One POST each, so one first cancel timed each, in every stage: from
    // the watch event that brought it (the operator ran before the
    // creates) to its answer written.
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .expect("the operator's /metrics")
        .text()
        .await
        .expect("metrics text");
    let n = offers.len();
    for stage in offer_cancel_operator::metrics::Stage::ALL.map(|s| s.label()) {
        let line = format!("offercancel_first_cancel_stage_seconds_count{{stage=\"{stage}\"}} {n}");
        assert!(text.contains(&line), "{line} not in /metrics");
    }
    let whole = format!("offercancel_first_cancel_seconds_count {n}");
    assert!(text.contains(&whole), "{whole} not in /metrics");
    // Without faults: intent, answer, end; a synchronous cancel: two. (At
    // least two each also shows the counter saw the writes.)
    let counts = writes.counts();
    let wrong: Vec<_> = offers
        .iter()
        .map(|o| (o, counts.get(o).copied().unwrap_or(0)))
        .filter(|(o, n)| {
            let at_once = o.starts_with("sync-") || o.starts_with("jobnow-");
            *n < 2 || *n > if at_once { 2 } else { 3 }
        })
        .collect();
    assert!(wrong.is_empty(), "status writes per resource: {wrong:?}");
    operator.sigkill();
    fx.cleanup().await;
}

/// Offers and jobs of one publisher, one Secret: the operator asks Entra
/// ID for one token per API and sends each only to its own API (the
/// simulator refuses, and counts, a token of the other audience).
async fn tokens_stay_with_their_audience(plane: Plane) {
    let fx = Fixture::new(&plane, "audience").await;
    let operator = fx.operator(&plane, &[]);
    let targets = mixed_offers("a", 16);
    fx.create_all(&targets, 8).await;
    each_cancelled_once(&fx, &targets, Duration::from_secs(90)).await;
    let stats = fx.stats().await;
    assert_eq!(stats["wrongAudience"], 0, "{stats}");
    assert_eq!(stats["tokensIssued"], 2, "one token per audience: {stats}");
    let requests = fx.requests().await;
    let jobs = requests
        .iter()
        .filter(|(_, e, _)| e.starts_with("job_"))
        .count();
    assert!(
        jobs >= 8,
        "the jobs' requests went to Product Ingestion: {jobs}"
    );
    operator.sigkill();
    fx.cleanup().await;
}

/// The operator SIGKILLed at random moments during a burst, ten times,
/// and restarted: no duplicate, nothing stuck.
async fn sigkill_during_burst(plane: Plane) {
    let fx = Fixture::new(&plane, "kill").await;
    let writes = support::WriteCounter::start(&fx.client, &fx.ns).await;
    let offers = mixed_offers("k", 300);
    let started = std::time::Instant::now();
    let resources = with_twins(&offers);
    let creating = fx.create_pairs(&resources, 16);
    let killing = async {
        for _ in 0..10 {
            let operator = fx.operator(&plane, &[]);
            let alive = Duration::from_millis(fastrand::u64(400..2500));
            tokio::time::sleep(alive).await;
            operator.sigkill();
        }
    };
    futures::join!(creating, killing);
    let operator = fx.operator(&plane, &[]);
    fx.wait_all_ended(Duration::from_secs(240)).await;
    // What waiting out an intent that may be in flight costs after a crash.
    eprintln!(
        "10 SIGKILLs: all ended {:?} after the first create",
        started.elapsed()
    );
    each_cancelled_once(&fx, &offers, Duration::from_secs(240)).await;
    report_writes("10 SIGKILLs", &offers, &writes.counts());
    operator.sigkill();
    fx.cleanup().await;
}

/// 30% of CPP's answers are faults: 429 with Retry-After, 503, and
/// connections dropped after CPP acted. With crashes on top, as the issue's
/// done-when asks: every resource ends Cancelled with one POST per offer.
async fn faults_and_crashes(plane: Plane) {
    let fx = Fixture::new(&plane, "faults").await;
    let writes = support::WriteCounter::start(&fx.client, &fx.ns).await;
    fx.set_faults(serde_json::json!({
        "throttleRate": 0.1, "errorRate": 0.1, "dropAfterRate": 0.1
    }))
    .await;
    let n = std::env::var("OCO_FAULTS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let offers = mixed_offers("f", n);
    let backoff = ["--max-backoff-seconds", "4"];
    let resources = with_twins(&offers);
    let creating = fx.create_pairs(&resources, 16);
    let killing = async {
        for _ in 0..3 {
            let operator = fx.operator(&plane, &backoff);
            tokio::time::sleep(Duration::from_millis(fastrand::u64(500..3000))).await;
            operator.sigkill();
        }
    };
    futures::join!(creating, killing);
    let operator = fx.operator(&plane, &backoff);
    each_cancelled_once(&fx, &offers, Duration::from_secs(360)).await;
    report_writes("30% faults and 3 SIGKILLs", &offers, &writes.counts());
    let stats = fx.stats().await;
    assert!(stats["faultsInjected"].as_u64().unwrap_or(0) > 0, "{stats}");
    operator.sigkill();
    fx.cleanup().await;
}

/// The operator as its ServiceAccount, with only the RBAC objects of
/// deploy/: leader election and every call it makes are allowed.
async fn rbac_from_deploy_suffices(plane: Plane) {
    let fx = Fixture::new(&plane, "rbac").await;
    support::apply_deploy_rbac(&fx.client).await;
    let operator = fx.operator_as(
        &plane,
        true,
        &leader_election("offercancel-system", "rbac-trial"),
    );
    let offers = mixed_offers("r", 6);
    fx.create_all(&offers, 6).await;
    let phases = fx.wait_all_ended(Duration::from_secs(90)).await;
    assert_all_cancelled(&phases);
    let log = operator.log_text();
    assert!(
        !log.contains("forbidden") && !log.contains("Forbidden"),
        "the operator hit RBAC:\n{log}"
    );
    assert!(
        support::events_for(&fx.client, &fx.ns).await > 0,
        "events were published"
    );
    operator.sigkill();
    fx.cleanup().await;
}

/// The flags of a replica that elects a leader with Lease `ns/name`.
fn leader_election<'a>(ns: &'a str, name: &'a str) -> [&'a str; 5] {
    [
        "--leader-elect",
        "--lease-namespace",
        ns,
        "--lease-name",
        name,
    ]
}

/// Two replicas: one writes; the leader SIGKILLed, the other takes over;
/// one POST per offer throughout.
async fn two_replicas_one_writer(plane: Plane) {
    let fx = Fixture::new(&plane, "ha").await;
    let lease = leader_election(&fx.ns, "ha");
    let kubeconfig = || plane.kubeconfig(false);
    let a = fx.operator_with(kubeconfig(), &lease, &[("POD_NAME", "replica-a")]);
    let b = fx.operator_with(kubeconfig(), &lease, &[("POD_NAME", "replica-b")]);
    let first = support::lease_holder(&fx.client, &fx.ns, "ha", None).await;
    let offers = mixed_offers("h", 150);
    fx.create_all(&offers[..75], 16).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (leader, standby) = if first == "replica-a" { (a, b) } else { (b, a) };
    leader.sigkill();
    fx.create_all(&offers[75..], 16).await;
    let second = support::lease_holder(&fx.client, &fx.ns, "ha", Some(&first)).await;
    assert_ne!(first, second);
    each_cancelled_once(&fx, &offers, Duration::from_secs(180)).await;
    standby.sigkill();
    fx.cleanup().await;
}

/// The editor and viewer roles of deploy/user-roles.yaml, bound in one
/// namespace: the editor creates, updates and deletes OfferCancellations
/// there and nowhere else; the viewer only reads. (This server runs no
/// aggregation controller, so the roles are bound directly; their labels
/// for `edit`, `admin` and `view` are checked by tests/deploy.rs.)
async fn user_roles_let_editors_edit_and_viewers_only_read(plane: Plane) {
    use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
    let fx = Fixture::new(&plane, "roles").await;
    let elsewhere = format!("{}-elsewhere", fx.ns);
    support::namespace_with_secret(&fx.client, &elsewhere, "s3cret").await;
    support::apply_user_roles(&fx.client).await;
    support::bind_role(&fx.client, &fx.ns, "offercancel-editor", "alice").await;
    support::bind_role(&fx.client, &fx.ns, "offercancel-viewer", "bob").await;
    let plane = &plane;
    let as_user = |user: &'static str, ns: String| async move {
        Api::<OfferCancellation>::namespaced(plane.client_as(user).await, &ns)
    };
    fn refused<T>(r: Result<T, kube::Error>) -> bool {
        matches!(r, Err(kube::Error::Api(e)) if e.code == 403)
    }
    let alice = as_user("alice", fx.ns.clone()).await;
    let r = support::resource("roles-0", "sync-roles-0");
    alice
        .create(&PostParams::default(), &r)
        .await
        .expect("the editor creates");
    let label = serde_json::json!({"metadata": {"labels": {"team": "a"}}});
    alice
        .patch("roles-0", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("the editor updates");
    let alice_elsewhere = as_user("alice", elsewhere.clone()).await;
    assert!(
        refused(alice_elsewhere.create(&PostParams::default(), &r).await),
        "not elsewhere"
    );
    assert!(
        refused(alice_elsewhere.list(&ListParams::default()).await),
        "nor reads there"
    );
    let bob = as_user("bob", fx.ns.clone()).await;
    assert_eq!(
        bob.list(&ListParams::default())
            .await
            .expect("the viewer lists")
            .items
            .len(),
        1
    );
    bob.get("roles-0").await.expect("the viewer reads");
    let other = support::resource("roles-1", "sync-roles-1");
    assert!(
        refused(bob.create(&PostParams::default(), &other).await),
        "the viewer cannot create"
    );
    assert!(refused(
        bob.patch("roles-0", &PatchParams::default(), &Patch::Merge(&label))
            .await
    ));
    assert!(refused(
        bob.delete("roles-0", &DeleteParams::default()).await
    ));
    alice
        .delete("roles-0", &DeleteParams::default())
        .await
        .expect("the editor deletes");
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(fx.client.clone())
        .delete(&elsewhere, &DeleteParams::default())
        .await;
    fx.cleanup().await;
}

/// Everything `kubectl apply -k deploy/` installs but the CRD (this v1.24
/// server refuses its `oldSelf` rules; a schema test covers them), with
/// the network-policy component: the PodDisruptionBudget, the Deployment's
/// topology spread, the NetworkPolicy, the user roles. A server-side dry
/// run on the real API server accepts every object, without the
/// Prometheus Operator's CRDs.
async fn deploy_passes_a_server_side_dry_run(plane: Plane) {
    let client = plane.admin_client().await;
    support::ensure_namespace(&client, "offercancel-system").await;
    let overlay = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/dry-run");
    let kubeconfig = plane.kubeconfig(false);
    let out = tokio::task::spawn_blocking(move || {
        let built = std::process::Command::new("kubectl")
            .args([
                "kustomize",
                "--load-restrictor",
                "LoadRestrictionsNone",
                overlay,
            ])
            .output()
            .expect("kubectl (it is on every machine of this project)");
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let yaml = String::from_utf8_lossy(&built.stdout).to_string();
        for kind in [
            "PodDisruptionBudget",
            "NetworkPolicy",
            "Deployment",
            "ClusterRole",
        ] {
            assert!(yaml.contains(&format!("kind: {kind}")), "{kind} is built");
        }
        let mut apply = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["apply", "--server-side", "--dry-run=server", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl apply");
        use std::io::Write;
        apply
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write manifests");
        apply.wait_with_output().expect("kubectl apply output")
    })
    .await
    .expect("kubectl task");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "server-side dry run refused: {shown}");
    for object in [
        "poddisruptionbudget.policy/offer-cancel-operator",
        "networkpolicy.networking.k8s.io/offer-cancel-operator",
        "deployment.apps/offer-cancel-operator",
        "clusterrole.rbac.authorization.k8s.io/offercancel-editor",
    ] {
        assert!(shown.contains(object), "{object} in {shown}");
    }
}

/// SIGTERM releases the lease: the standby leads within 2 s of the old
/// leader's exit, and a restarted single replica starts at once.
async fn graceful_handover_within_two_seconds(plane: Plane) {
    let fx = Fixture::new(&plane, "handover").await;
    let lease = leader_election(&fx.ns, "hand");
    let a = fx.operator_with(plane.kubeconfig(false), &lease, &[("POD_NAME", "first")]);
    support::lease_holder(&fx.client, &fx.ns, "hand", None).await;
    let b = fx.operator_with(plane.kubeconfig(false), &lease, &[("POD_NAME", "second")]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = a.sigterm(Duration::from_secs(10)).await;
    assert!(stopped.is_some(), "the leader did not stop on SIGTERM");
    let exited = std::time::Instant::now();
    let holder = support::lease_holder(&fx.client, &fx.ns, "hand", Some("first")).await;
    let took = exited.elapsed();
    assert_eq!(holder, "second");
    assert!(took <= Duration::from_secs(2), "standby took {took:?}");
    fx.create_all(&["sync-hand-0".to_string()], 1).await;
    assert_all_cancelled(&fx.wait_all_ended(Duration::from_secs(30)).await);
    let stopped = b.sigterm(Duration::from_secs(10)).await;
    assert!(
        stopped.is_some(),
        "the second leader did not stop on SIGTERM"
    );
    let started = std::time::Instant::now();
    let c = fx.operator_with(plane.kubeconfig(false), &lease, &[("POD_NAME", "third")]);
    support::lease_holder(&fx.client, &fx.ns, "hand", Some("second")).await;
    let took = started.elapsed();
    assert!(
        took <= Duration::from_secs(2),
        "restarted replica took {took:?}"
    );
    c.sigkill();
    fx.cleanup().await;
}

/// A control plane of the trial's own, for an operator that watches every
/// namespace or a CRD that differs from the shipped one.
async fn own_plane() -> ControlPlane {
    let plane = ControlPlane::start().expect("control plane");
    plane.ready().await.expect("control plane ready");
    plane
}

/// `cancel -o yaml`, run with `args` against the built-in simulator: its
/// stdout.
fn cancel_output(args: &[&str], file: Option<&std::path::Path>) -> String {
    let binary = env!("CARGO_BIN_EXE_offer-cancel-operator");
    let mut cmd = std::process::Command::new(binary);
    cmd.args(["cancel", "--simulate", "-o", "yaml"]).args(args);
    if let Some(file) = file {
        cmd.arg("-f").arg(file);
    }
    let out = cmd.output().expect("cancel runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `cancel -o yaml` prints is taken by `kubectl apply` as it stands
/// (server-side dry run on the real API server): the example, a job named
/// by flags alone, and a file that named no Secret.
async fn cancel_output_applies_with_kubectl_as_it_stands(plane: Plane) {
    let dir = tempfile::tempdir().expect("temp dir");
    let no_secret = dir.path().join("no-secret.yaml");
    std::fs::write(
        &no_secret,
        "apiVersion: offercancel.dev/v1alpha1\nkind: OfferCancellation\n\
         metadata: {name: no-secret}\nspec:\n  publisherId: contoso\n  offerId: sync-offer\n",
    )
    .expect("write");
    let example = std::path::Path::new("examples/offercancellation.yaml");
    let outputs = [
        cancel_output(&[], Some(example)),
        cancel_output(&["--job-id", "0b7e4c1d-0000-4000-8000-000000000001"], None),
        cancel_output(&[], Some(&no_secret)),
    ];
    for (i, yaml) in outputs.iter().enumerate() {
        let file = dir.path().join(format!("out-{i}.yaml"));
        std::fs::write(&file, yaml).expect("write");
        let applied = std::process::Command::new("kubectl")
            .args(["apply", "--dry-run=server", "-f"])
            .arg(&file)
            .env("KUBECONFIG", plane.kubeconfig(false))
            .output()
            .expect("kubectl (it is on every machine of this project)");
        assert!(
            applied.status.success(),
            "kubectl apply refused output {i}: {}\n{yaml}",
            String::from_utf8_lossy(&applied.stderr)
        );
    }
}

/// The controller, started against `kubeconfig`, must stop within 30 s,
/// unsuccessfully; what it printed.
async fn a_start_that_fails(kubeconfig: std::path::PathBuf) -> String {
    let binary = env!("CARGO_BIN_EXE_offer-cancel-operator");
    let mut child = std::process::Command::new(binary)
        .args(["controller", "--namespace", "default"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the controller runs");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the controller did not stop by itself within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = child.wait_with_output().expect("its output");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "a start that cannot work fails: {said}"
    );
    said
}

/// Without the CRD, and then without RBAC to list the resources, the
/// controller stops at once and says which, naming the API server: no
/// watch retrying unseen.
async fn a_start_without_the_crd_or_the_rights_says_which_and_stops(_shared: Plane) {
    let plane = ControlPlane::start().expect("control plane");
    plane
        .ready_without_crd()
        .await
        .expect("control plane ready");
    let said = a_start_that_fails(plane.kubeconfig(false)).await;
    assert!(
        said.contains("has no OfferCancellation resource type") && said.contains(&plane.url),
        "{said}"
    );
    plane.ready().await.expect("the CRD installed");
    // The operator's ServiceAccount, bound to nothing on this plane.
    let said = a_start_that_fails(plane.kubeconfig(true)).await;
    assert!(
        said.contains("refuses to list OfferCancellations in namespace default (HTTP 403"),
        "{said}"
    );
}

/// An older CRD (no maximum on timeoutSeconds) lets a resource in that no
/// u32 holds. It is reported and skipped; its neighbour is Cancelled, and
/// SIGTERM stops the operator promptly.
async fn a_poisonous_resource_stops_no_one(_shared: Plane) {
    let plane = own_plane().await;
    let fx = Fixture::new(&plane, "poison").await;
    support::loosen_timeout_schema(&fx.client).await;
    support::create_raw(
        &fx.client,
        &fx.ns,
        serde_json::json!({
            "apiVersion": "offercancel.dev/v1alpha1", "kind": "OfferCancellation",
            "metadata": {"name": "poison"},
            "spec": {"publisherId": "contoso", "offerId": "sync-poison",
                     "credentialsSecretRef": {"name": "cpp"}, "timeoutSeconds": 5000000000u64}
        }),
    )
    .await;
    let operator = fx.operator(&plane, &[]);
    let valid = vec!["sync-valid".to_string()];
    fx.create_all(&valid, 1).await;
    let started = std::time::Instant::now();
    loop {
        let phases = fx.phases().await;
        if phases.get("sync-valid") == Some(&Some(Phase::Cancelled)) {
            assert_eq!(
                phases.get("poison"),
                Some(&None),
                "the poison is left alone"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{phases:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(fx.posts("sync-poison").await, 0);
    let log = operator.log_text();
    assert!(
        log.contains("cannot be read") && log.contains("poison") && log.len() < 100_000,
        "the poison is named, briefly:\n{log}"
    );
    let stopped = operator.sigterm(Duration::from_secs(10)).await;
    assert!(
        stopped.is_some_and(|d| d < Duration::from_secs(5)),
        "{stopped:?}"
    );
    fx.cleanup().await;
}

/// Team B names team A's tenant and client but not the client secret: its
/// cancel is never sent with team A's token. The operator also stops on
/// SIGTERM while it cannot even list (no RBAC yet).
async fn one_namespace_never_borrows_another_token(_shared: Plane) {
    let plane = own_plane().await;
    let fx = Fixture::cluster_wide(&plane).await;
    let unable = fx.operator_as(&plane, true, &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopped = unable.sigterm(Duration::from_secs(10)).await;
    assert!(
        stopped.is_some_and(|d| d < Duration::from_secs(5)),
        "an operator that cannot list must still stop on SIGTERM: {stopped:?}"
    );
    support::namespace_with_secret(&fx.client, "team-a", "s3cret").await;
    support::namespace_with_secret(&fx.client, "team-b", "i-do-not-know-it").await;
    let operator = fx.operator(&plane, &[]);
    let create = |ns: &str, offer: &str| {
        let api: kube::Api<offer_cancel_operator::crd::OfferCancellation> =
            kube::Api::namespaced(fx.client.clone(), ns);
        let r = support::resource(offer, offer);
        async move {
            api.create(&Default::default(), &r).await.expect("create");
            api
        }
    };
    let a = create("team-a", "sync-team-a").await;
    wait_phase(&a, "sync-team-a", Phase::Cancelled, Duration::from_secs(60)).await;
    let b = create("team-b", "sync-team-b").await;
    let failed = wait_phase(&b, "sync-team-b", Phase::Failed, Duration::from_secs(60)).await;
    let message = failed.status.and_then(|s| s.message).unwrap_or_default();
    assert!(message.contains("invalid_client"), "{message}");
    assert_eq!(
        fx.posts("sync-team-b").await,
        0,
        "no POST with a borrowed token"
    );
    assert_eq!(fx.posts("sync-team-a").await, 1);
    operator.sigkill();
    fx.cleanup().await;
}

/// The README's `kubectl wait --for=condition=Ready ocancel/NAME` returns
/// when the resource is Cancelled; on a Failed one it times out with
/// Stalled=True visible. Both read as kstatus does (Flux's health checks):
/// conditions at the current generation.
async fn kubectl_wait_and_kstatus_as_the_readme_says(plane: Plane) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    assert!(readme.contains("kubectl wait --for=condition=Ready ocancel/"));
    assert!(readme.contains("healthChecks:"));
    let fx = Fixture::new(&plane, "wait").await;
    let operator = fx.operator(&plane, &[]);
    let offers = vec!["async-wait-0".to_string(), "idle-wait-0".to_string()];
    fx.create_all(&offers, 2).await;
    let kubeconfig = plane.kubeconfig(false);
    let kubectl = |args: Vec<String>| {
        let kubeconfig = kubeconfig.clone();
        let ns = fx.ns.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["-n", &ns])
                    .args(&args)
                    .output()
                    .expect("kubectl (it is on every machine of this project)")
            })
            .await
            .expect("kubectl task")
        }
    };
    let wait = |name: &str, timeout: &str| {
        vec![
            "wait".to_string(),
            "--for=condition=Ready".to_string(),
            format!("ocancel/{name}"),
            format!("--timeout={timeout}"),
        ]
    };
    let ready = kubectl(wait("async-wait-0", "60s")).await;
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    let failed = kubectl(wait("idle-wait-0", "8s")).await;
    assert!(
        !failed.status.success(),
        "a Failed resource never becomes Ready"
    );
    let stalled = kubectl(vec![
        "get".into(),
        "ocancel/idle-wait-0".into(),
        "-o".into(),
        "jsonpath={.status.conditions[?(@.type==\"Stalled\")].status} {.status.phase}".into(),
    ])
    .await;
    assert_eq!(String::from_utf8_lossy(&stalled.stdout), "True Failed");
    // The columns, by the category name: TARGET PHASE READY REASON AGE
    // CANCELS, and -o wide adds the operation, the message and the timeout.
    let listed = kubectl(vec!["get".into(), "offercancel".into()]).await;
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    let header: Vec<&str> = listed
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "TARGET", "PHASE", "READY", "REASON", "AGE", "CANCELS"
        ],
        "{listed}"
    );
    let row = listed
        .lines()
        .find(|l| l.starts_with("idle-wait-0"))
        .unwrap_or("");
    let row: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        row[1..5],
        ["contoso/idle-wait-0", "Failed", "False", "NothingToCancel"],
        "{listed}"
    );
    let wide = kubectl(vec![
        "get".into(),
        "ocancel".into(),
        "-o".into(),
        "wide".into(),
    ])
    .await;
    let wide = String::from_utf8_lossy(&wide.stdout).to_string();
    for column in ["OPERATION", "MESSAGE", "TIMEOUT", "OPERATIONID"] {
        assert!(
            wide.lines().next().unwrap_or("").contains(column),
            "{column}: {wide}"
        );
    }
    for name in &offers {
        let obj = fx.api.get(name).await.expect("read");
        let generation = obj.metadata.generation;
        let status = obj.status.expect("status");
        assert_eq!(status.observed_generation, generation, "{name}");
        assert!(
            status
                .conditions
                .iter()
                .all(|c| c.observed_generation == generation)
        );
    }
    operator.sigkill();
    fx.cleanup().await;
}

/// What the exactly-once guarantee rests on, checked on the real API
/// server: a server-side apply of status that names a resourceVersion the
/// object has moved past is refused with 409 (the operator's status writes
/// have this shape: one field manager, forced, with metadata.resourceVersion).
async fn a_status_apply_from_a_stale_version_is_refused(plane: Plane) {
    use kube::api::{Patch, PatchParams};
    let fx = Fixture::new(&plane, "precondition").await;
    let offers = vec!["sync-precondition".to_string()];
    fx.create_all(&offers, 1).await;
    let name = &offers[0];
    let read = fx.api.get(name).await.expect("read");
    let first = read
        .metadata
        .resource_version
        .clone()
        .expect("resourceVersion");
    let apply = |version: &str, phase: &str| {
        serde_json::json!({
            "apiVersion": "offercancel.dev/v1alpha1",
            "kind": "OfferCancellation",
            "metadata": {"resourceVersion": version},
            "status": {"phase": phase, "attempts": 1},
        })
    };
    let params = PatchParams::apply("offer-cancel-operator").force();
    let written = fx
        .api
        .patch_status(name, &params, &Patch::Apply(apply(&first, "Pending")))
        .await
        .expect("an apply at the current version lands");
    let second = written
        .metadata
        .resource_version
        .expect("new resourceVersion");
    assert_ne!(first, second);
    let stale = fx
        .api
        .patch_status(name, &params, &Patch::Apply(apply(&first, "Pending")))
        .await;
    match stale {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 409, "{status:?}"),
        other => panic!("a stale apply must be refused, got {other:?}"),
    }
    fx.api
        .patch_status(name, &params, &Patch::Apply(apply(&second, "Cancelled")))
        .await
        .expect("the next write, from the version the last one returned, lands");
    fx.cleanup().await;
}

/// Two replicas started at the same instant, twenty times over: the
/// Lease has one holder each round, and one replica reports leading.
async fn simultaneous_start_never_two_leaders(plane: Plane) {
    let fx = Fixture::new(&plane, "elect").await;
    for round in 0..20 {
        let name = format!("elect-{round}");
        let lease = leader_election(&fx.ns, &name);
        let replica =
            |id: &str| fx.operator_with(plane.kubeconfig(false), &lease, &[("POD_NAME", id)]);
        let (a, b) = (replica("replica-a"), replica("replica-b"));
        let span = Duration::from_millis(2500);
        let holders = support::lease_holders(&fx.client, &fx.ns, &name, span).await;
        let logs = [a.log_text(), b.log_text()];
        let leading = logs
            .iter()
            .filter(|log| log.contains("leading; starting the controller"))
            .count();
        assert_eq!(holders.len(), 1, "round {round}: holders {holders:?}");
        assert_eq!(
            leading, 1,
            "round {round}: {leading} replicas led:\n{logs:?}"
        );
        a.sigkill();
        b.sigkill();
    }
    fx.cleanup().await;
}

/// The flags of a trial whose CPP answers a third of its offers in 6 s,
/// and where 30% of answers are faults.
const SLOW_AND_FAULTY: [&str; 4] = [
    "--request-timeout-seconds",
    "10",
    "--max-backoff-seconds",
    "4",
];

/// Two controllers without leader election, both active on the same
/// resources, a third of the offers answered slowly, 30% faults: one POST
/// per offer, every resource Cancelled. The fence, not the election, keeps
/// the promise.
async fn two_active_writers_one_post_per_offer(plane: Plane) {
    let fx = Fixture::new(&plane, "writers").await;
    let writes = support::WriteCounter::start(&fx.client, &fx.ns).await;
    fx.set_faults(serde_json::json!({
        "throttleRate": 0.1, "errorRate": 0.1, "dropAfterRate": 0.1
    }))
    .await;
    let a = fx.operator(&plane, &SLOW_AND_FAULTY);
    let b = fx.operator(&plane, &SLOW_AND_FAULTY);
    let n = std::env::var("OCO_WRITERS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let offers = offers_some_slow("w", n);
    let started = std::time::Instant::now();
    fx.create_all(&offers, 32).await;
    each_cancelled_once(&fx, &offers, Duration::from_secs(420)).await;
    eprintln!(
        "two active writers: all ended within {:?}",
        started.elapsed()
    );
    report_writes("two active writers, 30% faults", &offers, &writes.counts());
    a.sigkill();
    b.sigkill();
    fx.cleanup().await;
}

/// Labels and annotations edited in a loop on every resource while the
/// POSTs (slow ones among them) are in flight: every answer is recorded.
/// One POST per offer where something runs; every 200 reads `httpStatus:
/// 200`; a 404 to a first POST (the publish ended as the cancel arrived)
/// is still Failed, with `httpStatus: 404` and what CPP shows; an offer
/// with nothing in progress gets no POST at all.
async fn edits_during_the_posts_lose_no_answer(plane: Plane) {
    let fx = Fixture::new(&plane, "edits").await;
    let operator = fx.operator(&plane, &["--request-timeout-seconds", "10"]);
    let kinds = ["slow-sync", "slow-async", "sync", "late", "idle"];
    let offers: Vec<String> = (0..125)
        .map(|i| format!("{}-e-{i}", kinds[i % 5]))
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let editing = async {
        let mut edits = 0u64;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            edits += fx.edit_metadata_of_all(&offers, edits).await;
        }
        edits
    };
    let running = async {
        fx.create_all(&offers, 32).await;
        fx.wait_all_ended(Duration::from_secs(300)).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (edits, ()) = futures::join!(editing, running);
    eprintln!("edits during the posts: {edits} label and annotation edits");
    assert!(edits > offers.len() as u64, "the editor ran: {edits}");
    let ended = |phase: &str, http: Option<u64>, reason: &str| {
        (phase.to_string(), http, reason.to_string())
    };
    for (name, status) in fx.statuses().await {
        let seen = (
            status["phase"].as_str().unwrap_or_default().to_string(),
            status["httpStatus"].as_u64(),
            status["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .and_then(|c| c["reason"].as_str())
                .unwrap_or_default()
                .to_string(),
        );
        let (want, posts) = match name.split("-e-").next() {
            Some("slow-sync" | "sync") => (ended("Cancelled", Some(200), "Cancelled"), 1),
            Some("slow-async") => (ended("Cancelled", Some(202), "Cancelled"), 1),
            Some("late") => (ended("Failed", Some(404), "NothingToCancel"), 1),
            _ => (ended("Failed", None, "NothingToCancel"), 0),
        };
        assert_eq!(seen, want, "{name}: {status}");
        assert_eq!(fx.posts(&name).await, posts, "{name}");
    }
    operator.sigkill();
    fx.cleanup().await;
}

/// The Stalled condition's reason, read from a status as JSON.
fn stalled_reason(status: &serde_json::Value) -> String {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Stalled"))
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Creates `r`, retrying while a deletion of the same name is under way.
async fn create_again(api: &kube::Api<OfferCancellation>, r: &OfferCancellation) {
    let started = std::time::Instant::now();
    while api.create(&Default::default(), r).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "could not re-create"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An OfferCancellation kept in Git, deleted and applied again while a new
/// publish runs on its offer (a cluster rebuilt, `Replace=true`, a prune).
/// With `operationId` of the old operation: nothing sent, Failed with
/// OperationEnded, the new publish still running. Without any guard: the
/// new publish is cancelled (a second POST), as the README says. A
/// `notAfter` in the past: nothing sent, Failed with Expired. A status
/// wiped through the status subresource is a re-creation, guards included.
async fn a_recreated_manifest_never_cancels_a_new_publish(plane: Plane) {
    let fx = Fixture::new(&plane, "recreate").await;
    let operator = fx.operator(&plane, &[]);
    let (guarded, bare, wiped) = ("sync-guarded", "sync-bare", "sync-wiped");
    let manifest = |offer: &str, guard: bool| {
        let mut r = support::resource(offer, offer);
        if guard {
            r.spec.operation_id = Some(format!("{offer}-publish-1"));
        }
        r
    };
    let mut expired = support::resource("sync-expired", "sync-expired");
    expired.spec.not_after = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2020-01-01T00:00:00Z".parse().expect("time"),
    ));
    for r in [
        manifest(guarded, true),
        manifest(bare, false),
        manifest(wiped, true),
        expired,
    ] {
        fx.api
            .create(&Default::default(), &r)
            .await
            .expect("create");
    }
    fx.wait_all_ended(Duration::from_secs(60)).await;
    for name in [guarded, bare] {
        fx.api
            .delete(name, &Default::default())
            .await
            .expect("delete");
    }
    let mut new_publish = std::collections::BTreeMap::new();
    for offer in [guarded, bare, wiped] {
        new_publish.insert(offer, fx.start_publish(offer).await);
    }
    create_again(&fx.api, &manifest(guarded, true)).await;
    create_again(&fx.api, &manifest(bare, false)).await;
    use kube::api::{Patch, PatchParams};
    let wipe = Patch::Merge(serde_json::json!({"status": null}));
    fx.api
        .patch_status(wiped, &PatchParams::default(), &wipe)
        .await
        .expect("wipe the status");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let statuses = fx.wait_all_ended(Duration::from_secs(60)).await;
    assert_eq!(statuses.len(), 4);
    let status = fx.statuses().await;
    for offer in [guarded, wiped] {
        assert_eq!(
            status[offer]["phase"], "Failed",
            "{offer}: {}",
            status[offer]
        );
        assert_eq!(stalled_reason(&status[offer]), "OperationEnded", "{offer}");
        assert_eq!(fx.posts(offer).await, 1, "{offer}: nothing sent again");
        let running = (new_publish[offer].clone(), "running".to_string());
        assert!(
            fx.operations(offer).await.contains(&running),
            "{offer}: the new publish runs"
        );
    }
    assert_eq!(status[bare]["phase"], "Cancelled", "{}", status[bare]);
    assert_eq!(
        fx.posts(bare).await,
        2,
        "without a guard, the new publish is cancelled"
    );
    assert_eq!(stalled_reason(&status["sync-expired"]), "Expired");
    assert_eq!(fx.posts("sync-expired").await, 0);
    operator.sigkill();
    fx.cleanup().await;
}

/// A sync cancel CPP processed, its answer lost, the controller killed, a
/// new publish started, the controller restarted: no second POST, the new
/// publish still runs, and the resource is Cancelled (its operation was).
async fn a_lost_answer_never_cancels_a_publish_started_since(plane: Plane) {
    let fx = Fixture::new(&plane, "lost").await;
    let offer = "sync-lost-0";
    let lose_answers = |rate: f64| serde_json::json!({"dropAfterRate": rate, "cancelOnly": true, "offer": format!("contoso/{offer}")});
    fx.set_faults(lose_answers(1.0)).await;
    let operator = fx.operator(&plane, &[]);
    fx.create_all(&[offer.to_string()], 1).await;
    let started = std::time::Instant::now();
    while fx.posts(offer).await == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "no POST");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    operator.sigkill();
    fx.set_faults(lose_answers(0.0)).await;
    let new_publish = fx.start_publish(offer).await;
    let operator = fx.operator(&plane, &[]);
    fx.wait_all_ended(Duration::from_secs(90)).await;
    let status = &fx.statuses().await[offer];
    assert_eq!(status["phase"], "Cancelled", "{status}");
    assert_eq!(fx.posts(offer).await, 1, "no second POST");
    let running = (new_publish, "running".to_string());
    assert!(
        fx.operations(offer).await.contains(&running),
        "the new publish runs"
    );
    operator.sigkill();
    fx.cleanup().await;
}

/// Twenty resources over five namespaces name one async offer, twenty more
/// one sync offer, twenty more one configure job, all created at once; a
/// sixth namespace's Secret holds another publisher's token. One POST per
/// target, every resource of the five Cancelled, the sixth's
/// Failed/Forbidden without a POST.
async fn many_resources_one_offer_one_post(_shared: Plane) {
    let plane = own_plane().await;
    let fx = Fixture::cluster_wide(&plane).await;
    let teams: Vec<String> = (0..5).map(|i| format!("share-{i}")).collect();
    for ns in &teams {
        support::namespace_with_secret(&fx.client, ns, "s3cret").await;
    }
    support::namespace_with_foreign_token(&fx.client, "share-foreign").await;
    let operator = fx.operator(&plane, &[]);
    let mut creates = Vec::new();
    for ns in teams
        .iter()
        .chain(std::iter::once(&"share-foreign".to_string()))
    {
        let api: kube::Api<OfferCancellation> = kube::Api::namespaced(fx.client.clone(), ns);
        let per = if ns == "share-foreign" { 1 } else { 4 };
        for i in 0..per {
            for offer in ["async-shared", "sync-shared", "job-shared"] {
                let r = support::resource(&format!("{offer}-{i}"), offer);
                let api = api.clone();
                creates.push(async move { api.create(&Default::default(), &r).await.map(|_| ()) });
            }
        }
    }
    for created in futures::future::join_all(creates).await {
        created.expect("create");
    }
    fx.wait_all_ended(Duration::from_secs(120)).await;
    assert_eq!(fx.posts("async-shared").await, 1);
    assert_eq!(fx.posts("sync-shared").await, 1);
    assert_eq!(fx.posts("job-shared").await, 1);
    let all: kube::Api<OfferCancellation> = kube::Api::all(fx.client.clone());
    let list = all.list(&Default::default()).await.expect("list");
    assert_eq!(list.items.len(), 63);
    for r in list.items {
        let ns = r.metadata.namespace.clone().unwrap_or_default();
        let status = serde_json::to_value(&r.status).expect("status");
        if ns == "share-foreign" {
            assert_eq!(status["phase"], "Failed", "{ns}: {status}");
            assert_eq!(stalled_reason(&status), "Forbidden", "{ns}: {status}");
        } else {
            assert_eq!(
                status["phase"], "Cancelled",
                "{ns}/{:?}: {status}",
                r.metadata.name
            );
        }
    }
    operator.sigkill();
    fx.cleanup().await;
}

/// The default rate limit (10 requests/s) and 200 resources in one
/// namespace: 400 first-cancel requests, 40 s of the budget. A resource
/// applied in another namespace 5 s into the flood is POSTed at once, ahead
/// of the flood's backlog; the flood's polls still go out (every resource
/// ends); no second ever sees more than 10 requests to CPP.
async fn a_flood_in_one_namespace_never_holds_back_another(_shared: Plane) {
    let plane = own_plane().await;
    let fx = Fixture::cluster_wide(&plane).await;
    support::namespace_with_secret(&fx.client, "flood", "s3cret").await;
    support::namespace_with_secret(&fx.client, "quiet", "s3cret").await;
    let operator = fx.operator(&plane, &["--rate-limit-rps", "10"]);
    let offers = fx.flood("flood", "async-flood", 200, 32).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let quiet: kube::Api<OfferCancellation> = kube::Api::namespaced(fx.client.clone(), "quiet");
    let probe = "sync-quiet-probe";
    quiet
        .create(&Default::default(), &support::resource(probe, probe))
        .await
        .expect("create the probe");
    let applied = jiff::Timestamp::now().as_millisecond();
    wait_phase(&quiet, probe, Phase::Cancelled, Duration::from_secs(60)).await;
    let requests = fx.requests().await;
    let posted = requests
        .iter()
        .find(|(_, e, o)| e == "cancel" && o == &format!("contoso/{probe}"))
        .map(|(at, _, _)| *at)
        .expect("the probe's POST");
    let flood_posts_before = requests
        .iter()
        .filter(|(at, e, o)| e == "cancel" && o.contains("-flood-") && *at <= posted)
        .count();
    let flood_posts_after = offers.len() - flood_posts_before;
    assert!(
        posted - applied <= 5_000,
        "apply → POST of the quiet namespace's resource: {} ms",
        posted - applied
    );
    assert!(
        flood_posts_after > 50,
        "the probe went out with only {flood_posts_after} of the flood's POSTs still to go"
    );
    let all = [offers.clone(), vec![probe.to_string()]].concat();
    let phases = fx.wait_all_ended(Duration::from_secs(240)).await;
    assert_all_cancelled(&phases);
    assert!(fx.duplicate_posts(&all).await.is_empty());
    let most = support::most_in_one_second(&fx.requests().await);
    assert!(most <= 10, "{most} requests to CPP within one second");
    eprintln!(
        "apply → POST {} ms with {flood_posts_after} flood POSTs after it; at most {most} requests in a second",
        posted - applied
    );
    operator.sigkill();
    fx.cleanup().await;
}
