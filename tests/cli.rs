//! The one-shot CLI (the real binary) against the simulator.

use marketplace_simulator::scenario::DEFAULT_TOKEN;
use marketplace_simulator::{self as simulator, Scenario};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_offer-cancel-operator");

/// A file holding `text`, removed when dropped.
fn file_with(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new()
        .prefix("oco-cli-")
        .suffix(".yaml")
        .tempfile()
        .unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn resource_yaml(publisher: &str, offer: &str) -> String {
    format!(
        "apiVersion: offercancel.dev/v1alpha1\nkind: OfferCancellation\nmetadata: {{name: x}}\n\
         spec:\n  publisherId: {publisher}\n  offerId: {offer}\n  credentialsSecretRef: {{name: unused}}\n  pollIntervalSeconds: 5\n"
    )
}

async fn cancel(sim: &simulator::Running, publisher: &str, offer: &str, extra: &[&str]) -> Output {
    cancel_file(sim, &resource_yaml(publisher, offer), extra).await
}

/// `cancel -f` of a file holding `text`, against the simulator.
async fn cancel_file(sim: &simulator::Running, text: &str, extra: &[&str]) -> Output {
    let file = file_with(text);
    let url = sim.url();
    let mut cmd = Command::new(BIN);
    cmd.args(["cancel", "-f"])
        .arg(file.path())
        .args(["--endpoint", &url, "--authority-host", &url])
        .args(extra)
        .env_remove("CPP_TOKEN")
        .env_remove("AZURE_CLIENT_SECRET");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    drop(file);
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const TOKEN: [&str; 2] = ["--token", DEFAULT_TOKEN];

async fn default_simulator() -> simulator::Running {
    simulator::spawn(Scenario::default_scenario(), "127.0.0.1:0")
        .await
        .unwrap()
}

#[tokio::test]
async fn sync_offer_prints_transitions_and_exits_zero() {
    let sim = default_simulator().await;
    let out = cancel(&sim, "contoso", "sync-offer", &TOKEN).await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("Pending"), "{shown}");
    assert!(shown.contains("result: Cancelled"), "{shown}");
}

#[tokio::test]
async fn async_offers_of_both_shapes_complete_with_wait() {
    let sim = default_simulator().await;
    for (offer, shape) in [
        ("contoso-offer", "/operations/"),
        ("legacy-offer", "$preview"),
    ] {
        let out = cancel(&sim, "contoso", offer, &[TOKEN[0], TOKEN[1], "--wait"]).await;
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(0), "{shown}");
        assert!(shown.contains("Cancelling"), "{shown}");
        assert!(shown.contains(shape), "{shown}");
        assert!(shown.contains("result: Cancelled"), "{shown}");
    }
}

#[tokio::test]
async fn client_credentials_work_and_the_secret_is_never_printed() {
    use marketplace_simulator::scenario::*;
    let sim = default_simulator().await;
    let args = [
        "--tenant-id",
        DEFAULT_TENANT,
        "--client-id",
        DEFAULT_CLIENT_ID,
        "--client-secret",
        DEFAULT_CLIENT_SECRET,
    ];
    let out = cancel(&sim, "contoso", "sync-offer", &args).await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(!shown.contains(DEFAULT_CLIENT_SECRET), "{shown}");
}

#[tokio::test]
async fn forbidden_publisher_fails_with_the_403() {
    let sim = default_simulator().await;
    let out = cancel(&sim, "fabrikam", "fabrikam-offer", &TOKEN).await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("HTTP 403"), "{shown}");
}

#[tokio::test]
async fn missing_offer_fails_with_the_404() {
    let sim = default_simulator().await;
    let out = cancel(&sim, "contoso", "no-such-offer", &TOKEN).await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("HTTP 404"), "{shown}");
}

#[tokio::test]
async fn failing_cancel_operation_exits_non_zero_with_its_message() {
    let sim = default_simulator().await;
    let out = cancel(
        &sim,
        "contoso",
        "failing-offer",
        &[TOKEN[0], TOKEN[1], "--wait"],
    )
    .await;
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("the cancel operation failed"), "{shown}");
}

#[tokio::test]
async fn missing_credentials_are_a_clear_error() {
    let sim = default_simulator().await;
    let out = cancel(&sim, "contoso", "sync-offer", &[]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("no credentials"), "{}", text(&out));
}

#[test]
fn the_main_job_runs_against_the_built_in_simulator() {
    let out = Command::new(BIN)
        .args([
            "cancel",
            "-f",
            "examples/offercancellation.yaml",
            "--simulate",
        ])
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("CPP accepted the cancel"), "{shown}");
    // It waits until the cancel ends, by default.
    assert!(shown.contains("result: Cancelled"), "{shown}");
}

#[tokio::test]
async fn no_wait_returns_once_accepted_and_wait_is_still_accepted() {
    let sim = default_simulator().await;
    let out = cancel(
        &sim,
        "contoso",
        "contoso-offer",
        &[TOKEN[0], TOKEN[1], "--no-wait"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("result: Cancelling"), "{}", text(&out));
    let both = cancel(
        &sim,
        "contoso",
        "legacy-offer",
        &[TOKEN[0], TOKEN[1], "--wait", "--no-wait"],
    )
    .await;
    assert_ne!(both.status.code(), Some(0), "--wait and --no-wait conflict");
}

#[tokio::test]
async fn output_json_puts_the_resource_alone_on_stdout() {
    let sim = default_simulator().await;
    let out = cancel(
        &sim,
        "contoso",
        "sync-offer",
        &[TOKEN[0], TOKEN[1], "-o", "json"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let resource: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(resource["kind"], "OfferCancellation");
    assert_eq!(resource["spec"]["offerId"], "sync-offer");
    assert_eq!(resource["status"]["phase"], "Cancelled");
    assert_eq!(resource["status"]["httpStatus"], 200);
    assert!(String::from_utf8_lossy(&out.stderr).contains("result: Cancelled"));
    let out = cancel(
        &sim,
        "contoso",
        "idle-offer",
        &[TOKEN[0], TOKEN[1], "-o", "yaml"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let resource: serde_json::Value = serde_yaml::from_slice(&out.stdout).expect("stdout is YAML");
    assert_eq!(resource["status"]["phase"], "Failed");
}

#[tokio::test]
async fn quiet_prints_only_the_result() {
    let sim = default_simulator().await;
    let out = cancel(
        &sim,
        "contoso",
        "sync-offer",
        &[TOKEN[0], TOKEN[1], "--quiet"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "result: Cancelled\n");
}

#[test]
fn a_file_that_is_not_a_resource_is_refused_clearly() {
    let file = file_with("spec: [1, 2");
    let out = Command::new(BIN)
        .args(["cancel", "--simulate", "-f"])
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("is not an OfferCancellation"),
        "{}",
        text(&out)
    );
}

#[test]
fn crd_command_prints_the_committed_crd() {
    let out = Command::new(BIN).arg("crd").output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read_to_string("crds/offercancellation.yaml").unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}

#[test]
fn a_misspelt_field_is_refused_by_name_before_anything_starts() {
    let yaml = resource_yaml("contoso", "sync-offer")
        .replace("pollIntervalSeconds: 5", "pollIntervalSecond: 60");
    let file = file_with(&yaml);
    let out = Command::new(BIN)
        .args(["cancel", "--simulate", "-f"])
        .arg(file.path())
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("unknown field spec.pollIntervalSecond"),
        "{shown}"
    );
    assert!(
        !shown.contains("simulator listening"),
        "validated first: {shown}"
    );
}

#[test]
fn an_invalid_spec_is_refused_before_the_simulator_starts() {
    let file = file_with(&resource_yaml("contoso", "a..b"));
    let out = Command::new(BIN)
        .args(["cancel", "--simulate", "-f"])
        .arg(file.path())
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("spec.offerId"), "{shown}");
    assert!(!shown.contains("simulator listening"), "{shown}");
}

#[tokio::test]
async fn missing_credentials_exit_two_as_the_help_and_readme_say() {
    let sim = default_simulator().await;
    let out = cancel(&sim, "contoso", "sync-offer", &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no credentials"), "{}", text(&out));
    let help = Command::new(BIN)
        .args(["cancel", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let readme = std::fs::read_to_string("README.md").unwrap();
    for code in ["0", "1", "2"] {
        assert!(help.contains(&format!("\n  {code}  ")), "{help}");
        assert!(
            readme.contains(&format!("| {code} |")),
            "README's exit-code table"
        );
    }
    assert!(
        readme.contains("| 2 | nothing decided"),
        "README's row for 2"
    );
}

#[tokio::test]
async fn operation_id_and_not_after_guard_what_the_cli_sends() {
    offer_cancel_operator::http::install_crypto_provider();
    let sim = default_simulator().await;
    let posts = |stats: &serde_json::Value, offer: &str| {
        stats["offers"][format!("contoso/{offer}")]["cancelPosts"]
            .as_u64()
            .unwrap_or(0)
    };
    let other = cancel(
        &sim,
        "contoso",
        "sync-offer",
        &[TOKEN[0], TOKEN[1], "--operation-id", "some-other-publish"],
    )
    .await;
    assert_eq!(other.status.code(), Some(1), "{}", text(&other));
    assert!(
        text(&other).contains("no operation some-other-publish"),
        "{}",
        text(&other)
    );
    let late = cancel(
        &sim,
        "contoso",
        "sync-offer",
        &[TOKEN[0], TOKEN[1], "--not-after", "2020-01-01T00:00:00Z"],
    )
    .await;
    assert_eq!(late.status.code(), Some(1), "{}", text(&late));
    assert!(text(&late).contains("notAfter"), "{}", text(&late));
    let stats: serde_json::Value = reqwest::get(format!("{}/_sim/stats", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(posts(&stats, "sync-offer"), 0, "nothing was sent");
    let named = cancel(
        &sim,
        "contoso",
        "sync-offer",
        &[TOKEN[0], TOKEN[1], "--operation-id", "sync-offer-publish-1"],
    )
    .await;
    assert_eq!(named.status.code(), Some(0), "{}", text(&named));
}

/// `cancel --job-id` against a simulator: the endpoints, and a Graph token.
async fn cancel_job(sim: &simulator::Running, job: &str, extra: &[&str]) -> Output {
    let url = sim.url();
    let jobs = format!("{url}/rp/product-ingestion");
    let mut cmd = Command::new(BIN);
    cmd.args(["cancel", "--job-id", job])
        .args(["--endpoint", &url, "--authority-host", &url])
        .args(["--product-ingestion-endpoint", &jobs])
        .args(extra)
        .env_remove("CPP_TOKEN")
        .env_remove("AZURE_CLIENT_SECRET");
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[test]
fn a_job_is_cancelled_end_to_end_with_simulate_and_job_id() {
    let out = Command::new(BIN)
        .args(["cancel", "--simulate", "--job-id"])
        .arg("0b7e4c1d-0000-4000-8000-000000000001")
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("cancelling job 0b7e4c1d"), "{shown}");
    assert!(shown.contains("result: Cancelled"), "{shown}");
}

#[tokio::test]
async fn a_job_that_completed_fails_saying_how_and_a_cpp_token_is_refused() {
    let sim = default_simulator().await;
    let graph = ["--token", "simulated-graph-token"];
    let out = cancel_job(&sim, "0b7e4c1d-0000-4000-8000-000000000003", &graph).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("(failed) had already completed"),
        "{}",
        text(&out)
    );
    let accepted = cancel_job(
        &sim,
        "9f1c0e2a-1b2c-4d5e-8f90-123456789abc",
        &[&graph[..], &["--no-wait"]].concat(),
    )
    .await;
    assert_eq!(accepted.status.code(), Some(0), "{}", text(&accepted));
    assert!(
        text(&accepted).contains("result: Cancelling"),
        "{}",
        text(&accepted)
    );
    let cpp_token = cancel_job(&sim, "0b7e4c1d-0000-4000-8000-000000000001", &TOKEN).await;
    assert_eq!(cpp_token.status.code(), Some(1), "{}", text(&cpp_token));
    offer_cancel_operator::http::install_crypto_provider();
    let stats: serde_json::Value = reqwest::get(format!("{}/_sim/stats", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["wrongAudience"], 1,
        "the simulator saw the CPP token once: {stats}"
    );
    assert_eq!(
        stats["jobs"]["0b7e4c1d-0000-4000-8000-000000000001"]["cancelPosts"],
        0
    );
}

#[test]
fn the_job_example_is_a_valid_resource() {
    let out = Command::new(BIN)
        .args([
            "cancel",
            "-f",
            "examples/configure-job-cancellation.yaml",
            "--simulate",
            "--no-wait",
        ])
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("result: Cancelling"), "{shown}");
}

/// A manifest saved with `kubectl get -o yaml` carries the status of that
/// day; the CLI starts from the spec, as `kubectl apply` does, and says so.
#[tokio::test]
async fn a_saved_status_is_ignored_and_the_cancel_is_sent() {
    offer_cancel_operator::http::install_crypto_provider();
    let sim = default_simulator().await;
    let posts = |stats: &serde_json::Value| {
        stats["offers"]["contoso/sync-offer"]["cancelPosts"]
            .as_u64()
            .unwrap_or(0)
    };
    for (saved, quiet) in [
        (
            "status: {phase: Cancelled, httpStatus: 200, attempts: 1, message: cancelled long ago}",
            false,
        ),
        (
            "status: {phase: Failed, httpStatus: 400, attempts: 1, message: an old failure}",
            false,
        ),
        // A field this release does not know, a phase no release wrote.
        ("status: {phase: Exploded, consecutiveErrors: 3}", true),
    ] {
        let saved = format!("{}{saved}\n", resource_yaml("contoso", "sync-offer"));
        let quiet: &[&str] = if quiet { &["--quiet"] } else { &[] };
        let out = cancel_file(&sim, &saved, &[TOKEN.as_slice(), quiet].concat()).await;
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(0), "{shown}");
        assert!(shown.contains("result: Cancelled"), "{shown}");
        assert!(!shown.contains("an old failure"), "{shown}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("status is ignored"),
            "{shown}"
        );
        let stats: serde_json::Value = reqwest::get(format!("{}/_sim/stats", sim.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(posts(&stats), 1, "one POST: {stats}");
        // Back to the scenario: a publish in progress, counters at zero.
        reqwest::Client::new()
            .post(format!("{}/_sim/reset", sim.url()))
            .send()
            .await
            .unwrap();
    }
}

/// `cancel --simulate -f` of a file holding `text`, with `extra` flags.
fn simulate_file(text: &str, extra: &[&str]) -> Output {
    let file = file_with(text);
    Command::new(BIN)
        .args(["cancel", "--simulate", "-f"])
        .arg(file.path())
        .args(extra)
        .env_remove("CPP_TOKEN")
        .env_remove("AZURE_CLIENT_SECRET")
        .output()
        .unwrap()
}

/// `cancel --simulate --job-id JOB` with `extra`.
fn simulate_job(job: &str, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["cancel", "--simulate", "--job-id", job])
        .args(extra)
        .env_remove("CPP_TOKEN")
        .output()
        .unwrap()
}

/// `cancel --simulate -f examples/offercancellation.yaml` with `extra`.
fn simulate_example(extra: &[&str]) -> Output {
    Command::new(BIN)
        .args([
            "cancel",
            "-f",
            "examples/offercancellation.yaml",
            "--simulate",
        ])
        .args(extra)
        .env_remove("CPP_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn a_file_of_another_kind_is_refused_by_its_kind() {
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n\
                      spec:\n  publisherId: contoso\n  offerId: contoso-offer\n  credentialsSecretRef: {name: x}\n";
    let out = simulate_file(deployment, &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("kind Deployment of apiVersion apps/v1"),
        "{shown}"
    );
    assert!(!shown.contains("result:"), "nothing ran: {shown}");
}

#[test]
fn a_file_of_several_documents_is_refused_saying_so() {
    let one = resource_yaml("contoso", "contoso-offer");
    let out = simulate_file(&format!("{one}---\n{one}"), &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("holds 2 documents"), "{shown}");
    // A leading `---` and a trailing one are no documents of their own.
    let out = simulate_file(&format!("---\n{one}---\n"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn an_empty_file_is_refused_as_such() {
    let out = simulate_file("# nothing here\n", &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("an empty file is not an OfferCancellation"),
        "{shown}"
    );
}

#[test]
fn a_file_without_a_secret_ref_prints_the_readmes_secret_and_says_so() {
    let without = "apiVersion: offercancel.dev/v1alpha1\nkind: OfferCancellation\n\
                   metadata: {name: x}\nspec:\n  publisherId: contoso\n  offerId: sync-offer\n";
    let out = simulate_file(without, &["-o", "yaml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout.contains("name: cpp-credentials"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("names no credentialsSecretRef"), "{stderr}");
}

#[test]
fn the_cli_needs_no_credentials_secret_ref() {
    let without = "apiVersion: offercancel.dev/v1alpha1\nkind: OfferCancellation\n\
                   metadata: {name: x}\nspec:\n  publisherId: contoso\n  offerId: contoso-offer\n  pollIntervalSeconds: 5\n";
    let out = simulate_file(without, &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("result: Cancelled"), "{shown}");
}

#[test]
fn job_id_drops_every_cpp_only_field_of_the_file_and_says_which() {
    let out = simulate_example(&["--job-id", "0b7e4c1d-0000-4000-8000-000000000001"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("drops the file's publisherId, offerId, operationId, notificationEmails, pollIntervalSeconds"),
        "{shown}"
    );
    assert!(shown.contains("result: Cancelled"), "{shown}");
}

#[test]
fn yaml_output_quotes_what_a_yaml_1_1_reader_takes_for_a_date() {
    let out = simulate_example(&["-o", "yaml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout.contains("apiVersion: '2017-10-31'"), "{stdout}");
    assert!(!stdout.contains("apiVersion: 2017-10-31"), "{stdout}");
}

#[test]
fn the_first_line_says_what_will_be_sent() {
    let guarded = simulate_example(&[]);
    let shown = text(&guarded);
    assert!(
        shown.contains("cancelling operation contoso-offer-publish-1 on contoso/contoso-offer if it is still in progress"),
        "{shown}"
    );
    let late = simulate_example(&["--not-after", "2020-01-01T00:00:00Z"]);
    let shown = text(&late);
    assert!(
        shown.contains("nothing will be sent to contoso/contoso-offer"),
        "{shown}"
    );
    assert!(!shown.contains("cancelling"), "{shown}");
}

#[test]
fn simulate_says_which_flags_it_ignores() {
    let out = simulate_example(&[
        "--token",
        "mine",
        "--product-ingestion-endpoint",
        "https://example.test/",
    ]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("--simulate ignores --product-ingestion-endpoint, --token (given"),
        "{shown}"
    );
    assert!(
        !shown.contains("mine"),
        "the token's value is never shown: {shown}"
    );
    let plain = simulate_example(&[]);
    assert!(!text(&plain).contains("ignores"), "{}", text(&plain));
}

#[test]
fn a_reader_that_goes_away_ends_the_output_not_in_a_panic() {
    let mut child = Command::new(BIN)
        .arg("crd")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Gone before the first line is written, as `| head -0` would be.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn simulate_makes_up_an_offer_or_a_job_its_scenario_does_not_name_and_says_so() {
    let mine = "apiVersion: offercancel.dev/v1alpha1\nkind: OfferCancellation\n\
                metadata: {name: mine}\nspec:\n  publisherId: my-publisher\n  offerId: my-offer\n  pollIntervalSeconds: 5\n";
    let out = simulate_file(mine, &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("does not name my-publisher/my-offer: it simulates one (an asynchronous publish in progress)"),
        "{shown}"
    );
    assert!(shown.contains("result: Cancelled"), "{shown}");
    let job = Command::new(BIN)
        .args([
            "cancel",
            "--simulate",
            "--job-id",
            "5d1e6a7b-aaaa-4bbb-8ccc-000000000042",
        ])
        .output()
        .unwrap();
    let shown = text(&job);
    assert_eq!(job.status.code(), Some(0), "{shown}");
    assert!(shown.contains("it simulates one (a running job"), "{shown}");
    assert!(shown.contains("result: Cancelled"), "{shown}");
    let named = simulate_file(&resource_yaml("contoso", "contoso-offer"), &[]);
    assert!(!text(&named).contains("simulates one"), "{}", text(&named));
    // A publisher the scenario names and the simulated principal may not
    // use is refused, not made up.
    let theirs = simulate_file(&resource_yaml("fabrikam", "other-offer"), &[]);
    let shown = text(&theirs);
    assert!(!shown.contains("simulates one"), "{shown}");
    assert!(shown.contains("HTTP 403"), "{shown}");
}

#[test]
fn simulate_keeps_the_scenarios_404_examples() {
    let out = simulate_file(&resource_yaml("contoso", "no-such-offer"), &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("HTTP 404"), "{shown}");
    let job = Command::new(BIN)
        .args(["cancel", "--simulate", "--job-id", "no-such-job"])
        .output()
        .unwrap();
    let shown = text(&job);
    assert_eq!(job.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("JobNotFound") || shown.contains("404"),
        "{shown}"
    );
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .args(["simulator", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stderr = child.stderr.take().unwrap();
    std::io::BufReader::new(stderr)
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("listening"), "{line:?}");
    assert!(
        !line.contains('\u{1b}'),
        "an escape code in a piped log: {line:?}"
    );
}

/// `cancel --preview` prints what the cancel would be for, sends nothing,
/// and exits 0 when a cancel would be sent, 1 when not; the line it
/// prints to confirm cancels exactly the operation it showed.
#[tokio::test]
async fn preview_shows_what_would_be_cancelled_and_sends_nothing() {
    offer_cancel_operator::http::install_crypto_provider();
    let sim = default_simulator().await;
    let stats = || async {
        let stats: serde_json::Value = reqwest::get(format!("{}/_sim/stats", sim.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats
    };
    let posts = |stats: &serde_json::Value, offer: &str| {
        stats["offers"][format!("contoso/{offer}")]["cancelPosts"]
            .as_u64()
            .unwrap_or(0)
    };
    let running = cancel(
        &sim,
        "contoso",
        "sync-offer",
        &[TOKEN[0], TOKEN[1], "--preview", "-o", "yaml"],
    )
    .await;
    let shown = text(&running);
    assert_eq!(running.status.code(), Some(0), "{shown}");
    assert!(shown.contains("nothing will be sent"), "{shown}");
    assert!(
        shown.contains("result: PreviewReady: preview: would cancel publish sync-offer-publish-1"),
        "{shown}"
    );
    assert!(
        shown.contains("run again without --preview, with --operation-id sync-offer-publish-1"),
        "{shown}"
    );
    let resource: serde_json::Value = serde_yaml::from_slice(&running.stdout).expect("YAML");
    assert_eq!(resource["spec"]["preview"], true);
    assert_eq!(
        resource["status"]["targetOperation"]["id"],
        "sync-offer-publish-1"
    );
    let ready = &resource["status"]["conditions"][0];
    assert_eq!(
        (ready["type"].as_str(), ready["reason"].as_str()),
        (Some("Ready"), Some("PreviewReady"))
    );
    let idle = cancel(
        &sim,
        "contoso",
        "idle-offer",
        &[TOKEN[0], TOKEN[1], "--preview"],
    )
    .await;
    assert_eq!(idle.status.code(), Some(1), "{}", text(&idle));
    assert!(
        text(&idle).contains("NothingToCancel") || text(&idle).contains("nothing in progress"),
        "{}",
        text(&idle)
    );
    let seen = stats().await;
    assert_eq!(posts(&seen, "sync-offer"), 0, "a preview sends nothing");
    assert_eq!(posts(&seen, "idle-offer"), 0, "a preview sends nothing");
    let confirmed = cancel(
        &sim,
        "contoso",
        "sync-offer",
        &[TOKEN[0], TOKEN[1], "--operation-id", "sync-offer-publish-1"],
    )
    .await;
    assert_eq!(confirmed.status.code(), Some(0), "{}", text(&confirmed));
    assert_eq!(posts(&stats().await, "sync-offer"), 1);
}

/// `--preview` with `--simulate` on a job the scenario does not name.
#[test]
fn preview_of_a_job_with_simulate() {
    let out = simulate_job("0d1e2f3a-aaaa-bbbb-cccc-ddddeeeeffff", &["--preview"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("would cancel configure job 0d1e2f3a-aaaa-bbbb-cccc-ddddeeeeffff"),
        "{shown}"
    );
    assert!(
        shown.contains("to cancel it: run again without --preview"),
        "{shown}"
    );
}

/// A job's cancel ends saying what the job had already applied (the
/// simulator's made-up job had processed one of its three resources).
#[test]
fn a_cancelled_job_says_what_it_had_already_applied() {
    let out = simulate_job("1e2d3c4b-aaaa-bbbb-cccc-ddddeeeeffff", &["-o", "json"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("it had already processed 1 resource(s), which the cancel left applied"),
        "{shown}"
    );
    let resource: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let listed = &resource["status"]["processedResources"]["resources"];
    assert_eq!(listed[0]["state"], "succeeded", "{resource}");
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
}
