//! Command-line interface: the flags, and the plain configuration each
//! command runs with ([`Cli::into_command`]). The only module that knows of
//! clap. Every flag can also come from the environment variable named
//! next to it; secret-bearing variables hide their values in `--help`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Url;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use crate::commands::{self, cancel, controller};
use crate::http::{ClientCertificate, ClientConfig, Credentials, Proof};
use crate::{context, telemetry, timing};
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "offer-cancel-operator",
    version,
    about = "Cancels in-flight Cloud Partner Portal offer operations"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormatFlag::Text, global = true)]
    pub log_format: LogFormatFlag,
    /// Export traces over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (needs
    /// the `otel` cargo feature).
    #[arg(long, env = "OTEL_EXPORT", global = true)]
    pub otel: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatFlag {
    Text,
    Json,
}

impl Cli {
    /// The command the flags name, with the plain configuration it runs with.
    pub fn into_command(self) -> commands::Command {
        match self.command {
            Command::Controller(args) => commands::Command::Controller(args.config()),
            Command::Cancel(args) => commands::Command::Cancel(args.config()),
            Command::Crd => commands::Command::Crd,
            #[cfg(feature = "simulator")]
            Command::Simulator(args) => commands::Command::Simulator {
                scenario: args.scenario,
                listen: args.listen,
            },
        }
    }

    /// How logs are written.
    pub fn log_format(&self) -> telemetry::LogFormat {
        match self.log_format {
            LogFormatFlag::Text => telemetry::LogFormat::Text,
            LogFormatFlag::Json => telemetry::LogFormat::Json,
        }
    }
}

/// The `cancel` command's exit codes, as the README's table has them.
const CANCEL_EXIT_CODES: &str = "Exit codes:
  0  Cancelled; or, with --no-wait, accepted by CPP; or, with --preview
     (or spec.preview in the file), a cancel would be sent
  1  Failed (the message says why); with --preview, no cancel would be sent
  2  nothing decided: eight transient errors in a row, missing credentials,
     or a resource file that cannot be read, parsed or validated";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator.
    Controller(ControllerArgs),
    /// Cancel once, outside Kubernetes, from a resource file.
    #[command(after_help = CANCEL_EXIT_CODES)]
    Cancel(CancelArgs),
    /// Print the CustomResourceDefinition as YAML.
    Crd,
    /// Run the local Cloud Partner Portal simulator.
    #[cfg(feature = "simulator")]
    Simulator(SimulatorArgs),
}

/// CPP's base URL unless told otherwise.
const CPP_ENDPOINT: &str = "https://cloudpartner.azure.com";
/// Entra ID's authority unless told otherwise.
const AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// Where CPP, the Product Ingestion API and Entra ID are, and how to talk
/// to them.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// CPP base URL.
    #[arg(
        long,
        env = "CPP_ENDPOINT",
        default_value = CPP_ENDPOINT
    )]
    pub endpoint: Url,
    /// Product Ingestion API base URL (configure jobs). With `--endpoint`,
    /// the only hosts a token is ever sent to.
    #[arg(
        long,
        env = "PRODUCT_INGESTION_ENDPOINT",
        default_value = crate::http::PRODUCT_INGESTION_ENDPOINT
    )]
    pub product_ingestion_endpoint: Url,
    /// Azure AD authority; tokens come from {authority-host}/{tenantId}/oauth2/token.
    #[arg(
        long,
        env = "AZURE_AUTHORITY_HOST",
        default_value = AUTHORITY_HOST
    )]
    pub authority_host: Url,
    /// Timeout of one HTTP request, in seconds.
    #[arg(long, env = "CPP_REQUEST_TIMEOUT_SECONDS", default_value_t = timing::REQUEST_TIMEOUT.as_secs())]
    pub request_timeout_seconds: u64,
    /// Requests per second to CPP and Product Ingestion together, shared by
    /// all cancellations (0: no limit).
    #[arg(long, env = "CPP_RATE_LIMIT_RPS", default_value_t = 10)]
    pub rate_limit_rps: u32,
    /// Requests that may go out at once above the rate. 1 (the default):
    /// evenly spaced, so no second sees more than the rate.
    #[arg(long, env = "CPP_RATE_LIMIT_BURST", default_value_t = 1)]
    pub rate_limit_burst: u32,
}

impl ApiArgs {
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.endpoint.clone(), self.authority_host.clone());
        config.product_ingestion_endpoint = self.product_ingestion_endpoint.clone();
        config.request_timeout = Duration::from_secs(self.request_timeout_seconds.max(1));
        config.rate_limit = NonZeroU32::new(self.rate_limit_rps)
            .map(|rps| (rps, NonZeroU32::new(self.rate_limit_burst).unwrap_or(rps)));
        config
    }
}

impl ControllerArgs {
    fn config(self) -> controller::Config {
        let lease = self.leader_elect.then(|| controller::LeaseConfig {
            namespace: self.lease_namespace.clone(),
            name: self.lease_name.clone(),
            duration_seconds: self.lease_duration_seconds,
        });
        let claim_namespace = controller::claim_namespace(
            self.claim_namespace.as_deref(),
            self.lease_namespace.as_deref(),
            self.namespace.as_deref(),
        );
        controller::Config {
            client: self.apis.client_config(),
            reconcile: context::Config {
                claim_namespace,
                namespace: self.namespace,
                concurrency: self.concurrency.max(1),
                min_backoff: timing::MIN_BACKOFF,
                max_backoff: Duration::from_secs(self.max_backoff_seconds.max(1)),
            },
            metrics_addr: self.metrics_addr,
            lease,
        }
    }
}

#[derive(Debug, Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub apis: ApiArgs,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Reconciles one namespace may run at once for cancels not yet sent,
    /// and as many for the rest (polls, status upkeep); each pool keeps a
    /// quarter more for other namespaces.
    #[arg(long, env = "CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Cap of the backoff after transient errors, in seconds.
    #[arg(long, env = "MAX_BACKOFF_SECONDS", default_value_t = timing::MAX_BACKOFF.as_secs())]
    pub max_backoff_seconds: u64,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Reconcile only while holding the leader Lease.
    #[arg(long, env = "LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: the pod's namespace, else offercancel-system).
    #[arg(long, env = "LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Namespace of the targets' claims (one cancel per target): every
    /// controller that may cancel the same offers or jobs must name the
    /// same one. Default: the Lease namespace flag, else the pod's
    /// namespace, else the watched namespace, else `default`.
    #[arg(long, env = "CLAIM_NAMESPACE")]
    pub claim_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "offer-cancel-operator")]
    pub lease_name: String,
    /// How long a leader's lease lasts without renewal: the longest a
    /// crashed leader's work waits for a standby (a stopped leader releases
    /// it at once).
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
}

/// Formats of `cancel -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The OfferCancellation resource file (YAML). Optional with --job-id.
    #[arg(short = 'f', long = "file", required_unless_present = "job_id")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub apis: ApiArgs,
    /// Return once CPP accepted the cancel (exit 0, phase Cancelling)
    /// instead of waiting until it ends.
    #[arg(long, conflicts_with = "wait")]
    pub no_wait: bool,
    /// Deprecated: waiting is the default. Still accepted, and changes
    /// nothing, so scripts written for earlier versions keep working.
    #[arg(long, hide = true)]
    pub wait: bool,
    /// Print only the result.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the final OfferCancellation (spec and status, as the
    /// controller would have written it) on stdout; everything else goes
    /// to stderr.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
    /// Cancel only this operation (its id in the offer's operations list),
    /// and only while it is in progress; sets the file's spec.operationId.
    #[arg(long, conflicts_with = "job_id")]
    pub operation_id: Option<String>,
    /// Cancel this Product Ingestion configure job instead of an offer's
    /// operation: sets spec.productIngestion.jobId (the file's CPP-only
    /// fields are dropped, and named). Without -f, the resource is built
    /// from the flags.
    #[arg(long)]
    pub job_id: Option<String>,
    /// Send no cancel after this instant (RFC 3339, e.g.
    /// 2026-12-01T18:00:00Z); sets the file's spec.notAfter.
    #[arg(long)]
    pub not_after: Option<jiff::Timestamp>,
    /// Read what the cancel would be for and print it, sending nothing
    /// (sets spec.preview): exit 0 when a cancel would be sent, 1 when not.
    #[arg(long)]
    pub preview: bool,
    /// Start the built-in simulator and cancel against it (ignores the
    /// endpoints and credentials, and says which it was given).
    #[cfg(feature = "simulator")]
    #[arg(long)]
    pub simulate: bool,
    /// A bearer token for the target's API (CPP, or Graph for a job).
    #[arg(
        long,
        env = "CPP_TOKEN",
        hide_env_values = true,
        conflicts_with_all = ["client_secret", "client_certificate", "federated_token_file"]
    )]
    pub token: Option<String>,
    /// Azure AD tenant of the service principal.
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub tenant_id: Option<String>,
    /// Application (client) id of the service principal.
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Client secret of the service principal.
    #[arg(long, env = "AZURE_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// PEM file with the service principal's certificate and its private
    /// key, signing a client assertion instead of a client secret.
    #[arg(long, env = "AZURE_CLIENT_CERTIFICATE_PATH", conflicts_with_all = ["client_secret", "federated_token_file"])]
    pub client_certificate: Option<PathBuf>,
    /// Password of an encrypted private key in --client-certificate.
    #[arg(
        long,
        env = "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        hide_env_values = true
    )]
    pub client_certificate_password: Option<String>,
    /// A federated token (workload identity), read at each exchange: the
    /// file the Azure Workload Identity webhook mounts.
    #[arg(
        long,
        env = "AZURE_FEDERATED_TOKEN_FILE",
        conflicts_with = "client_secret"
    )]
    pub federated_token_file: Option<PathBuf>,
}

impl CancelArgs {
    fn config(self) -> cancel::Config {
        let credentials = self.credentials();
        #[cfg(feature = "simulator")]
        let simulate_ignores = self.simulate_ignores();
        cancel::Config {
            file: self.file,
            client: self.apis.client_config(),
            credentials,
            wait: !self.no_wait,
            quiet: self.quiet,
            output: self.output.map(|format| match format {
                OutputFormat::Json => cancel::Output::Json,
                OutputFormat::Yaml => cancel::Output::Yaml,
            }),
            operation_id: self.operation_id,
            job_id: self.job_id,
            not_after: self.not_after,
            preview: self.preview,
            #[cfg(feature = "simulator")]
            simulate: self.simulate,
            #[cfg(feature = "simulator")]
            simulate_ignores,
        }
    }

    /// The flags (or their environment variables) `--simulate` does not
    /// use: the simulator's own endpoints and credentials stand in.
    #[cfg(feature = "simulator")]
    fn simulate_ignores(&self) -> Vec<&'static str> {
        let moved = |url: &Url, default: &str| Url::parse(default).is_ok_and(|d| &d != url);
        let apis = &self.apis;
        [
            ("--endpoint", moved(&apis.endpoint, CPP_ENDPOINT)),
            (
                "--product-ingestion-endpoint",
                moved(
                    &apis.product_ingestion_endpoint,
                    crate::http::PRODUCT_INGESTION_ENDPOINT,
                ),
            ),
            (
                "--authority-host",
                moved(&apis.authority_host, AUTHORITY_HOST),
            ),
            ("--token", self.token.is_some()),
            ("--tenant-id", self.tenant_id.is_some()),
            ("--client-id", self.client_id.is_some()),
            ("--client-secret", self.client_secret.is_some()),
            ("--client-certificate", self.client_certificate.is_some()),
            (
                "--client-certificate-password",
                self.client_certificate_password.is_some(),
            ),
            (
                "--federated-token-file",
                self.federated_token_file.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    /// A token, else a service principal with a client secret, a
    /// certificate or a federated token file.
    fn credentials(&self) -> Result<Credentials, String> {
        if let Some(token) = &self.token {
            return Ok(Credentials::Token(SecretString::from(token.clone())));
        }
        let (Some(tenant_id), Some(client_id)) = (&self.tenant_id, &self.client_id) else {
            return Err(NO_CREDENTIALS.into());
        };
        let (tenant_id, client_id, scope) = (tenant_id.clone(), client_id.clone(), "cli".into());
        let proof = if let Some(s) = &self.client_secret {
            return Ok(Credentials::ClientSecret {
                tenant_id,
                client_id,
                client_secret: SecretString::from(s.clone()),
                scope,
            });
        } else if let Some(path) = &self.client_certificate {
            Proof::Certificate(Arc::new(self.certificate(path)?))
        } else if let Some(path) = &self.federated_token_file {
            Proof::TokenFile(path.clone())
        } else {
            return Err(NO_CREDENTIALS.into());
        };
        Ok(Credentials::Assertion {
            tenant_id,
            client_id,
            proof,
            scope,
        })
    }

    fn certificate(&self, path: &std::path::Path) -> Result<ClientCertificate, String> {
        let pem = std::fs::read(path)
            .map_err(|e| format!("--client-certificate {}: {}", path.display(), e.kind()))?;
        let password = self.client_certificate_password.as_deref();
        ClientCertificate::from_pem(&pem, password)
            .map_err(|e| format!("--client-certificate {}: {e}", path.display()))
    }
}

const NO_CREDENTIALS: &str = "no credentials: pass --token, or --tenant-id and --client-id with one of --client-secret, --client-certificate or --federated-token-file (or their environment variables)";

#[cfg(feature = "simulator")]
#[derive(Debug, Args)]
pub struct SimulatorArgs {
    /// Address to listen on.
    #[arg(long, env = "SIMULATOR_LISTEN", default_value = "127.0.0.1:8089")]
    pub listen: String,
    /// Scenario file (YAML); default: the built-in scenario.
    #[arg(long, env = "SIMULATOR_SCENARIO")]
    pub scenario: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cancel_defaults_point_at_the_real_services() {
        let cli = Cli::try_parse_from(["x", "cancel", "-f", "a.yaml"]).unwrap();
        let Command::Cancel(args) = cli.command else {
            panic!("expected cancel");
        };
        assert_eq!(
            args.apis.endpoint.as_str(),
            "https://cloudpartner.azure.com/"
        );
        assert_eq!(
            args.apis.authority_host.as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(
            args.apis.product_ingestion_endpoint.as_str(),
            "https://graph.microsoft.com/rp/product-ingestion"
        );
        assert!(!args.wait);
    }

    fn command(args: &[&str]) -> commands::Command {
        Cli::try_parse_from(args).unwrap().into_command()
    }

    #[test]
    fn controller_flags_become_its_config() {
        let commands::Command::Controller(plain) = command(&["x", "controller"]) else {
            panic!("expected controller");
        };
        assert!(plain.lease.is_none(), "no election unless asked");
        assert_eq!(plain.reconcile.min_backoff, timing::MIN_BACKOFF);
        assert_eq!(plain.reconcile.max_backoff, timing::MAX_BACKOFF);
        assert_eq!(plain.client.request_timeout, timing::REQUEST_TIMEOUT);
        let args = ["x", "controller", "--leader-elect", "--concurrency", "0"];
        let commands::Command::Controller(plain) = command(&args) else {
            panic!("expected controller");
        };
        let lease = plain.lease.expect("election asked for");
        assert_eq!(lease.name, "offer-cancel-operator");
        assert_eq!(plain.reconcile.concurrency, 1, "never zero workers");
    }

    #[test]
    fn cancel_flags_become_its_config() {
        let cancel_config = |extra: &[&str]| {
            let args = [&["x", "cancel", "-f", "a.yaml"], extra].concat();
            match command(&args) {
                commands::Command::Cancel(plain) => plain,
                _ => panic!("expected cancel"),
            }
        };
        let plain = cancel_config(&["-o", "json", "--token", "t"]);
        assert!(plain.wait, "waiting is the default");
        assert_eq!(plain.output, Some(cancel::Output::Json));
        assert!(matches!(plain.credentials, Ok(Credentials::Token(_))));
        let federated = cancel_config(&[
            "--tenant-id",
            "t",
            "--client-id",
            "c",
            "--federated-token-file",
            "/var/run/secrets/azure/tokens/azure-identity-token",
        ]);
        assert!(matches!(
            federated.credentials,
            Ok(Credentials::Assertion {
                proof: Proof::TokenFile(_),
                ..
            })
        ));
        let unreadable = cancel_config(&[
            "--tenant-id",
            "t",
            "--client-id",
            "c",
            "--client-certificate",
            "/nonexistent/cert.pem",
        ]);
        let refused = unreadable.credentials.unwrap_err();
        assert!(
            refused.contains("--client-certificate /nonexistent/cert.pem"),
            "{refused}"
        );
        assert!(!cancel_config(&["--no-wait"]).wait);
        assert!(cancel_config(&["--wait"]).wait, "the deprecated alias");
    }
}
