//! `marketplace-simulator`: serves a local Cloud Partner Portal and Product
//! Ingestion API (and Entra ID's token endpoints) until Ctrl-C or SIGTERM.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// A local Cloud Partner Portal for offer-cancel-operator.
#[derive(Debug, Parser)]
#[command(name = "marketplace-simulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SIMULATOR_LISTEN", default_value = "127.0.0.1:8089")]
    listen: String,
    /// Scenario file (YAML); default: the built-in scenario.
    #[arg(long, env = "SIMULATOR_SCENARIO")]
    scenario: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match marketplace_simulator::serve(args.scenario.as_deref(), &args.listen, stopped()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn stopped() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term => {} }
}
