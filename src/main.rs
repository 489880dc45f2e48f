use clap::Parser;
use std::process::ExitCode;

use offer_cancel_operator::cli::Cli;
use offer_cancel_operator::{commands, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format(), cli.otel);
    commands::run(cli.into_command()).await
}
