//! `offer-cancel-operator cancel`: the controller's own round
//! ([`crate::reconcile::step`]: decide, execute, write) in a loop, with status kept
//! in memory and shown as it changes. The loop waits as the decision's
//! requeue says and stops when it says there is nothing more to do; its
//! only choices of its own are when to stop waiting (`--no-wait`, or
//! `MAX_ERRORS_IN_ROW` transient errors in a row).

mod display;

#[cfg(feature = "simulator")]
use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

use crate::apis::Apis;
use crate::claim::lease::Unshared;
use crate::crd::{
    OfferCancellation, OfferCancellationSpec, OfferCancellationStatus, Phase, ProductIngestion,
    SecretRef,
};
use crate::decide::{Observed, Requeue};
use crate::http::{ClientConfig, Credentials, Unobserved};
use crate::reconcile::{requeue_delay, step};
use crate::timing::{CLI_MAX_BACKOFF, CLI_MIN_BACKOFF};
use display::{Display, InMemory, Voice};
#[cfg(feature = "simulator")]
use marketplace_simulator::{Scenario, scenario};

/// What one cancel runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The OfferCancellation resource file; without one, `job_id` names
    /// the target.
    pub file: Option<PathBuf>,
    /// Where the APIs and Entra ID are, and how to talk to them.
    pub client: ClientConfig,
    /// What the flags name, or why they name none that can be used (an
    /// error, unless simulated).
    pub credentials: Result<Credentials, String>,
    /// Wait until the cancel ends; else return once it was accepted.
    pub wait: bool,
    /// Print only the result.
    pub quiet: bool,
    /// Print the final resource on stdout in this format.
    pub output: Option<Output>,
    /// Sets `spec.operationId`.
    pub operation_id: Option<String>,
    /// Sets `spec.productIngestion.jobId` (the file's offer is dropped).
    pub job_id: Option<String>,
    /// Sets `spec.notAfter`.
    pub not_after: Option<jiff::Timestamp>,
    /// Sets `spec.preview`: read what the cancel would be for, send nothing.
    pub preview: bool,
    /// Start the built-in simulator and cancel against it.
    #[cfg(feature = "simulator")]
    pub simulate: bool,
    /// The flags given that `simulate` does not use.
    #[cfg(feature = "simulator")]
    pub simulate_ignores: Vec<&'static str>,
}

/// Formats of the final resource (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
}

/// Give up after this many transient errors in a row.
const MAX_ERRORS_IN_ROW: u32 = 8;

/// What failed before any cancel could be attempted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an OfferCancellation: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },
    /// As `kubectl apply` would refuse it: not our kind, or no kind.
    #[error(
        "{path}: {found} is not an OfferCancellation (apiVersion {API_VERSION}, kind OfferCancellation)"
    )]
    NotOurs { path: String, found: String },
    /// `kubectl apply` would apply each; a cancel is one target at a time.
    #[error("{path} holds {count} documents: give one OfferCancellation per run")]
    ManyDocuments { path: String, count: usize },
    /// As `kubectl apply` with strict field validation: a misspelt field
    /// is an error, not a silent default.
    #[error("{path}: unknown field {}", fields.join(", "))]
    UnknownFields { path: String, fields: Vec<String> },
    #[error("{path}: {source}")]
    InvalidSpec {
        path: String,
        #[source]
        source: crate::crd::SpecError,
    },
    #[error("{0}")]
    Credentials(String),
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[cfg(feature = "simulator")]
    #[error("starting the simulator: {0}")]
    Simulator(#[from] marketplace_simulator::Error),
    #[cfg(feature = "simulator")]
    #[error("the simulator's address is not a URL: {0}")]
    SimulatorAddress(#[source] url::ParseError),
    #[error("printing the resource as JSON: {0}")]
    RenderJson(#[from] serde_json::Error),
    #[error("printing the resource as YAML: {0}")]
    RenderYaml(#[source] serde_yaml::Error),
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Cancelled,
    /// Accepted and not waited for (`--no-wait`).
    Accepted,
    Failed(String),
    /// A preview recorded what a cancel would be for; nothing was sent.
    Previewed(String),
    /// Stuck on something only the user can fix (credentials), or on
    /// transient errors for too long.
    GaveUp(String),
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Cancelled => f.write_str("result: Cancelled"),
            Ending::Accepted => {
                f.write_str("result: Cancelling (accepted; not waiting, as --no-wait asked)")
            }
            Ending::Failed(m) => write!(f, "result: Failed: {m}"),
            Ending::Previewed(m) => write!(f, "result: PreviewReady: {m}"),
            Ending::GaveUp(m) => write!(f, "result: gave up: {m}"),
        }
    }
}

impl Error {
    /// Nothing could be tried: the input or the set-up is wrong. Like a
    /// usage error, exit 2 (the table in `cancel --help`).
    pub fn exit_code(&self) -> u8 {
        2
    }
}

impl Ending {
    pub fn exit_code(&self) -> u8 {
        match self {
            Ending::Cancelled | Ending::Accepted | Ending::Previewed(_) => 0,
            Ending::Failed(_) => 1,
            Ending::GaveUp(_) => 2,
        }
    }
}

/// The file's resource (or, with `--job-id` and no file, one built from
/// the flags), with the targets and guards the flags set, checked.
/// The resource the flags and file name, and whether the file held a
/// status (which is dropped).
fn read_resource(args: &Config) -> Result<(OfferCancellation, bool), Error> {
    let ((mut resource, had_status), shown) = match &args.file {
        Some(file) => (parse_file(file)?, file.display().to_string()),
        None => (
            (
                from_flags(args.job_id.as_deref().unwrap_or_default()),
                false,
            ),
            "the flags".to_string(),
        ),
    };
    if let Some(job_id) = &args.job_id {
        let dropped = aim_at_job(&mut resource.spec, job_id);
        if !dropped.is_empty() && !args.quiet {
            eprintln!(
                "note: --job-id drops the file's {} (they apply to a CPP offer only)",
                dropped.join(", ")
            );
        }
    }
    if let Some(id) = &args.operation_id {
        resource.spec.operation_id = Some(id.clone());
    }
    if let Some(at) = args.not_after {
        resource.spec.not_after = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at));
    }
    if args.preview {
        resource.spec.preview = Some(true);
    }
    resource
        .spec
        .validate()
        .map_err(|source| Error::InvalidSpec {
            path: shown,
            source,
        })?;
    Ok((resource, had_status))
}

/// `--job-id`: the job is the target, in place of the file's offer; every
/// field that applies to a CPP offer only goes with it, and a poll
/// interval a job may not have (under a minute). Says what went.
fn aim_at_job(spec: &mut OfferCancellationSpec, job_id: &str) -> Vec<&'static str> {
    let mut dropped = Vec::new();
    let mut drop = |field: &'static str, was_set: bool| {
        if was_set {
            dropped.push(field);
        }
    };
    drop("publisherId", spec.publisher_id.take().is_some());
    drop("offerId", spec.offer_id.take().is_some());
    drop("operationId", spec.operation_id.take().is_some());
    drop(
        "notificationEmails",
        !std::mem::take(&mut spec.notification_emails).is_empty(),
    );
    let job_poll = crate::crd::DEFAULT_JOB_POLL_INTERVAL_SECONDS;
    drop(
        "pollIntervalSeconds",
        spec.poll_interval_seconds
            .take_if(|s| *s < job_poll)
            .is_some(),
    );
    if spec.api_version != crate::crd::DEFAULT_API_VERSION {
        spec.api_version = crate::crd::DEFAULT_API_VERSION.into();
        dropped.push("apiVersion");
    }
    let api_version = spec.product_ingestion.take().map(|p| p.api_version);
    spec.product_ingestion = Some(ProductIngestion {
        job_id: job_id.to_string(),
        api_version: api_version.unwrap_or_else(|| ProductIngestion::DEFAULT_API_VERSION.into()),
    });
    dropped
}

/// A resource named by flags alone (`--job-id` without `-f`).
fn from_flags(job_id: &str) -> OfferCancellation {
    // A name `kubectl apply` takes (a job id is letters, digits and `-`,
    // at most 64), in the namespace a bare apply uses.
    let name = format!("cancel-{}", job_id.to_ascii_lowercase());
    let mut resource = OfferCancellation::new(
        &name,
        OfferCancellationSpec {
            publisher_id: None,
            offer_id: None,
            product_ingestion: None,
            notification_emails: Vec::new(),
            credentials_secret_ref: SecretRef {
                name: CLI_SECRET.into(),
            },
            api_version: crate::crd::DEFAULT_API_VERSION.into(),
            poll_interval_seconds: None,
            timeout_seconds: None,
            operation_id: None,
            not_after: None,
            preview: None,
        },
    );
    resource.metadata.namespace = Some("default".into());
    resource
}

/// An OfferCancellation file, as `kubectl apply` with strict field
/// validation reads it: one document of our kind, a misspelt field is an
/// error. Its `status` (a manifest saved with `kubectl get -o yaml`) is
/// dropped unread, as `kubectl apply` drops it, whatever it holds; says
/// whether there was one. `credentialsSecretRef` may be left out: the CLI
/// takes its credentials from flags.
fn parse_file(file: &std::path::Path) -> Result<(OfferCancellation, bool), Error> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|source| Error::Read {
        path: shown.clone(),
        source,
    })?;
    let parse_error = |source| Error::Parse {
        path: shown.clone(),
        source,
    };
    let (document, alone) = one_document(&text, &shown)?;
    // A stray `---` leaves the text unreadable as one document.
    let edited = for_the_cli(document.clone()).or_else(|| (!alone).then(|| document.clone()));
    let mut unknown = Vec::new();
    let mut note = |field: serde_ignored::Path| {
        // The type's derive fills these two from the type itself.
        let field = field.to_string();
        if !matches!(field.as_str(), "apiVersion" | "kind") {
            unknown.push(field);
        }
    };
    let resource: OfferCancellation = match &edited {
        // Read from the text, so an error names its line and column.
        None => serde_ignored::deserialize(serde_yaml::Deserializer::from_str(&text), &mut note),
        Some(value) => serde_ignored::deserialize(value.clone(), &mut note),
    }
    .map_err(parse_error)?;
    if !unknown.is_empty() {
        return Err(Error::UnknownFields {
            path: shown,
            fields: unknown,
        });
    }
    let had_status = document.get("status").is_some();
    let spec = document.get("spec");
    if spec.is_some_and(|s| s.get("credentialsSecretRef").is_none()) {
        eprintln!(
            "note: {shown} names no credentialsSecretRef; the resource names {CLI_SECRET}, the Secret the README's set-up creates (the CLI itself reads none)"
        );
    }
    Ok((resource, had_status))
}

/// The apiVersion an OfferCancellation is written with.
const API_VERSION: &str = "offercancel.dev/v1alpha1";

/// The file's one document, when it is an OfferCancellation, and whether
/// the text holds nothing else (no empty document beside it).
fn one_document(text: &str, shown: &str) -> Result<(serde_yaml::Value, bool), Error> {
    let parse_error = |source| Error::Parse {
        path: shown.to_string(),
        source,
    };
    let mut documents = Vec::new();
    let mut raw = 0;
    for document in serde_yaml::Deserializer::from_str(text) {
        raw += 1;
        let value = serde_yaml::Value::deserialize(document).map_err(parse_error)?;
        // An empty document (a stray `---`) is no document.
        if !value.is_null() {
            documents.push(value);
        }
    }
    let document = match documents.len() {
        1 => documents.remove(0),
        0 => {
            return Err(Error::NotOurs {
                path: shown.into(),
                found: "an empty file".into(),
            });
        }
        count => {
            return Err(Error::ManyDocuments {
                path: shown.into(),
                count,
            });
        }
    };
    let said = |key: &str| {
        document
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    match (said("apiVersion"), said("kind")) {
        (Some(api), Some(kind)) if api == API_VERSION && kind == "OfferCancellation" => {
            Ok((document, raw == 1))
        }
        (api, kind) => Err(Error::NotOurs {
            path: shown.into(),
            found: format!(
                "kind {} of apiVersion {}",
                kind.as_deref().unwrap_or("(none)"),
                api.as_deref().unwrap_or("(none)")
            ),
        }),
    }
}

/// The document as the CLI reads it, when that differs from the file: no
/// status, and a placeholder `credentialsSecretRef` where there is none
/// (`None`: read the file's text as it is).
fn for_the_cli(mut document: serde_yaml::Value) -> Option<serde_yaml::Value> {
    let mapping = document.as_mapping_mut()?;
    let had_status = mapping.remove("status").is_some();
    let spec = mapping.get_mut("spec").and_then(|s| s.as_mapping_mut());
    let added_ref = match spec {
        Some(spec) if !spec.contains_key("credentialsSecretRef") => {
            let mut name = serde_yaml::Mapping::new();
            name.insert("name".into(), CLI_SECRET.into());
            spec.insert("credentialsSecretRef".into(), name.into());
            true
        }
        _ => false,
    };
    (had_status || added_ref).then_some(document)
}

/// The Secret a resource read by the CLI names when its file names none
/// (the CLI reads no Secret): the one the README's set-up creates, so `-o`
/// output applies as it stands.
const CLI_SECRET: &str = "cpp-credentials";

/// Where the cancel goes, and as whom.
struct Target {
    config: ClientConfig,
    credentials: Credentials,
    /// With `--simulate`: the simulator, served while this lives.
    #[cfg(feature = "simulator")]
    _simulator: Option<marketplace_simulator::Running>,
}

/// The services the flags name, or with `--simulate` a simulator started
/// here for `spec`'s target.
#[cfg_attr(not(feature = "simulator"), allow(unused_variables))]
async fn target(
    args: &Config,
    voice: Voice,
    spec: &OfferCancellationSpec,
) -> Result<Target, Error> {
    #[cfg(feature = "simulator")]
    if args.simulate {
        return simulated(args, voice, spec).await;
    }
    Ok(Target {
        config: args.client.clone(),
        credentials: args.credentials.clone().map_err(Error::Credentials)?,
        #[cfg(feature = "simulator")]
        _simulator: None,
    })
}

/// Starts the built-in simulator and points the client at it. A target
/// its scenario does not name is made up, and said so.
#[cfg(feature = "simulator")]
async fn simulated(
    args: &Config,
    voice: Voice,
    spec: &OfferCancellationSpec,
) -> Result<Target, Error> {
    let scenario = Scenario::any_target();
    let made_up = match spec.target() {
        Ok(crate::crd::Target::Offer {
            publisher_id,
            offer_id,
            ..
        }) if scenario.makes_up_offer_for(scenario::DEFAULT_CLIENT_ID, publisher_id, offer_id) => {
            Some("an asynchronous publish in progress")
        }
        Ok(crate::crd::Target::Job { job_id, .. }) if scenario.makes_up_job(job_id) => {
            Some("a running job, which the cancel stops at once")
        }
        _ => None,
    };
    let running = marketplace_simulator::spawn(scenario, "127.0.0.1:0").await?;
    voice.say(&format!("simulator listening on {}", running.url()));
    if let (Some(what), Ok(target)) = (made_up, spec.target()) {
        voice.say(&format!(
            "the simulator's scenario does not name {target}: it simulates one ({what})"
        ));
    }
    if !args.simulate_ignores.is_empty() {
        voice.say(&format!(
            "--simulate ignores {} (given as flags or in the environment): the simulator's own endpoints and credentials are used",
            args.simulate_ignores.join(", ")
        ));
    }
    let url = reqwest::Url::parse(&running.url()).map_err(Error::SimulatorAddress)?;
    let mut config = args.client.clone();
    config.endpoint = url.clone();
    config.product_ingestion_endpoint = url
        .join(scenario::PRODUCT_INGESTION_PATH)
        .map_err(Error::SimulatorAddress)?;
    config.authority_host = url;
    Ok(Target {
        config,
        credentials: simulated_credentials(),
        _simulator: Some(running),
    })
}

#[cfg(feature = "simulator")]
fn simulated_credentials() -> Credentials {
    Credentials::ClientSecret {
        tenant_id: scenario::DEFAULT_TENANT.into(),
        client_id: scenario::DEFAULT_CLIENT_ID.into(),
        client_secret: SecretString::from(scenario::DEFAULT_CLIENT_SECRET),
        scope: "cli".into(),
    }
}

/// Runs the cancel, and exits as the table in `cancel --help` says.
pub async fn run_and_exit(config: Config) -> std::process::ExitCode {
    let code = match run(config).await {
        Ok(ending) => ending.exit_code(),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::ExitCode::from(code)
}

/// Runs the one-shot cancel as the flags say, prints its result (and the
/// resource, with `-o`), and tells how it ended.
pub async fn run(args: Config) -> Result<Ending, Error> {
    let (mut resource, had_status) = read_resource(&args)?;
    // A file has no generation; the API server would have started at 1.
    resource.metadata.generation.get_or_insert(1);
    let voice = Voice {
        to_stderr: args.output.is_some(),
        quiet: args.quiet,
    };
    // A status in the file (saved with `kubectl get -o yaml`) tells what
    // happened then, not what runs now: it was dropped, as `kubectl apply`
    // drops it, so a saved Cancelled never stands in for a cancel. Said
    // even with --quiet: it is why the run may differ from the file.
    if had_status {
        eprintln!("note: the file's status is ignored; the cancel starts from the spec");
    }
    let target = target(&args, voice, &resource.spec).await?;
    let (apis, creds) = (
        Apis::new(target.config, Arc::new(Unobserved))?,
        target.credentials,
    );
    if let Some(line) = what_will_happen(&resource.spec, jiff::Timestamp::now()) {
        voice.say(&line);
    }
    let mut display = Display::new(voice);
    let (ending, status) = drive(&apis, &resource, &creds, args.wait, &mut display).await;
    display.finish();
    voice.result(&ending.to_string());
    let hint = how_to_confirm(&resource.spec, &status, !args.preview);
    if let (Ending::Previewed(_), Some(line)) = (&ending, hint) {
        voice.say(&line);
    }
    resource.status = Some(status);
    if let Some(format) = args.output {
        super::print_out(&format!("{}\n", rendered(&resource, format)?));
    }
    Ok(ending)
}

/// The first line: what this run will do, as the spec says (`None`: a
/// spec with no target, refused before this).
fn what_will_happen(spec: &OfferCancellationSpec, now: jiff::Timestamp) -> Option<String> {
    let target = spec.target().ok()?;
    if let Some(at) = spec.not_after.as_ref().filter(|at| at.0 <= now) {
        return Some(format!(
            "nothing will be sent to {target}: spec.notAfter ({}) has passed",
            at.0
        ));
    }
    if spec.is_preview() {
        return Some(format!(
            "previewing: reading {target}'s record to show what a cancel would be for; nothing will be sent"
        ));
    }
    Some(match (&target, &spec.operation_id) {
        (crate::crd::Target::Job { .. }, _) => {
            format!("cancelling {target} if it is still running")
        }
        (_, Some(id)) => {
            format!("cancelling operation {id} on {target} if it is still in progress")
        }
        (_, None) => format!("cancelling the operation in progress on {target}, if there is one"),
    })
}

/// After a preview: how to send the cancel it showed, and that one only.
fn how_to_confirm(
    spec: &OfferCancellationSpec,
    status: &OfferCancellationStatus,
    asked_by_the_file: bool,
) -> Option<String> {
    let operation = status.target_operation.as_ref()?;
    let again = match asked_by_the_file {
        true => "remove spec.preview from the file and run again",
        false => "run again without --preview",
    };
    Some(match spec.product_ingestion {
        Some(_) => format!("to cancel it: {again}"),
        None => format!(
            "to cancel it and nothing else: {again}, with --operation-id {}",
            operation.id
        ),
    })
}

/// The resource as `kubectl get -o json|yaml` would show it: as it
/// applies, with the status the run reached.
fn rendered(resource: &OfferCancellation, format: Output) -> Result<String, Error> {
    let shown = serde_json::to_value(resource)?;
    match format {
        Output::Json => Ok(serde_json::to_string_pretty(&shown)?),
        // Quoted where a YAML 1.1 reader (kubectl's) would see a date.
        Output::Yaml => serde_yaml::to_string(&shown)
            .map(|yaml| crate::crd::quote_date_like_scalars(&yaml))
            .map_err(Error::RenderYaml),
    }
}

/// Rounds until the decision has nothing more to do (or, without `wait`,
/// until CPP accepted the cancel); returns how it ended and the status.
async fn drive(
    apis: &Apis,
    resource: &OfferCancellation,
    creds: &Credentials,
    wait: bool,
    display: &mut Display,
) -> (Ending, OfferCancellationStatus) {
    let mut observed = Observed::of(resource, None, 0, jiff::Timestamp::now());
    loop {
        let Ok(requeue) = step(
            apis,
            &Unshared,
            &mut observed,
            Some(Ok(creds)),
            &mut InMemory,
            display,
        )
        .await;
        observed.errors_in_row = requeue.errors_in_row();
        if let Some(ending) = ending(&observed, requeue, wait) {
            return (ending, observed.status);
        }
        let pause = requeue_delay(requeue, CLI_MIN_BACKOFF, CLI_MAX_BACKOFF).unwrap_or_default();
        tokio::time::sleep(pause).await;
    }
}

/// How the run ended, if it did.
fn ending(observed: &Observed, requeue: Requeue, wait: bool) -> Option<Ending> {
    let message = || observed.status.message.clone().unwrap_or_default();
    match (observed.status.phase, requeue) {
        (Some(Phase::Cancelled), _) => Some(Ending::Cancelled),
        (Some(Phase::Failed), _) => Some(Ending::Failed(message())),
        (Some(Phase::Cancelling), _) if !wait => Some(Ending::Accepted),
        (Some(Phase::Pending), _) if observed.status.previewed_at.is_some() => {
            Some(Ending::Previewed(message()))
        }
        (_, Requeue::Never) => Some(Ending::GaveUp(message())),
        // Status records a streak once, at its first error.
        _ if observed.errors_in_row >= MAX_ERRORS_IN_ROW => Some(Ending::GaveUp(format!(
            "{} transient errors in a row, the first: {}",
            observed.errors_in_row,
            first_error(&message())
        ))),
        _ => None,
    }
}

/// A transient error's status message without the controller's "will
/// retry", which the CLI no longer does once it gives up.
fn first_error(message: &str) -> &str {
    message
        .strip_prefix(crate::decide::TRANSIENT_PREFIX)
        .unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Outcome;
    use std::time::Duration;

    #[test]
    fn the_run_ends_where_the_decision_stops_or_where_waiting_was_not_asked() {
        let polling = OfferCancellation::test().polling("/op").observed();
        let later = Requeue::After(Duration::from_secs(5));
        assert_eq!(ending(&polling, later, true), None, "keeps waiting");
        assert_eq!(ending(&polling, later, false), Some(Ending::Accepted));
        let done = OfferCancellation::test().cancelled().observed();
        assert_eq!(ending(&done, Requeue::Never, true), Some(Ending::Cancelled));
        let refused = OfferCancellation::test().refused(403).observed();
        let Some(Ending::Failed(message)) = ending(&refused, Requeue::Never, true) else {
            panic!("a refusal is a failure");
        };
        assert!(message.contains("403"), "{message}");
    }

    #[test]
    fn a_streak_of_transient_errors_gives_up_at_the_limit() {
        let busy = Outcome::Transient {
            message: "HTTP 503".into(),
            retry_after: None,
        };
        let mut observed = OfferCancellation::test().after([busy]).observed();
        let backoff = |errors| Requeue::Backoff {
            errors,
            at_least: Duration::ZERO,
        };
        observed.errors_in_row = MAX_ERRORS_IN_ROW - 1;
        assert_eq!(
            ending(&observed, backoff(MAX_ERRORS_IN_ROW - 1), true),
            None
        );
        observed.errors_in_row = MAX_ERRORS_IN_ROW;
        let gave_up = ending(&observed, backoff(MAX_ERRORS_IN_ROW), true);
        let Some(Ending::GaveUp(m)) = gave_up else {
            panic!("gives up at the limit: {gave_up:?}");
        };
        assert!(m.contains("503"), "{m}");
        assert!(
            !m.contains("will retry"),
            "gave up, so no retry is promised: {m}"
        );
        assert!(m.contains("8 transient errors in a row, the first"), "{m}");
    }
}
