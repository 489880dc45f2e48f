//! The commands, as a dispatch table: `main.rs` parses the flags
//! (`cli.rs` turns them into each command's plain [`Command`]), and
//! [`run`] runs the one named. Nothing here or below parses a flag.
//!
//! - `controller`: the operator itself (leader election, shutdown).
//! - `cancel`: one cancel, outside Kubernetes, with status in memory.
//! - `crd`: the CustomResourceDefinition as YAML.
//! - `simulator`: the local CPP and Product Ingestion simulator.

pub mod cancel;
pub mod controller;

use std::process::ExitCode;

/// A command and what it runs with.
pub enum Command {
    Controller(controller::Config),
    Cancel(cancel::Config),
    Crd,
    #[cfg(feature = "simulator")]
    Simulator {
        scenario: Option<std::path::PathBuf>,
        listen: String,
    },
}

/// Writes `text` on stdout. A reader that went away (`| head`) ends the
/// output, not the program: `print!` would panic there.
pub(crate) fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Runs `command`; an error is printed, and the exit code says how it ended.
pub async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Controller(config) => controller::run(config).await.map_err(|e| {
            // In the log's own format too (JSON in deploy/), for collectors.
            tracing::error!(error = %e, "the controller stopped");
            failed(e)
        }),
        Command::Cancel(config) => return cancel::run_and_exit(config).await,
        Command::Crd => crate::crd::crd_yaml()
            .map(|yaml| print_out(&yaml))
            .map_err(failed),
        #[cfg(feature = "simulator")]
        Command::Simulator { scenario, listen } => {
            marketplace_simulator::serve(scenario.as_deref(), &listen, shutdown_signal())
                .await
                .map_err(failed)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    }
}

/// Prints why a command failed.
fn failed(e: impl std::fmt::Display) {
    eprintln!("error: {e}");
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
