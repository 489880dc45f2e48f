use clap::Parser;
use std::process::ExitCode;

use offer_cancel_operator::cli::{Cli, Command};
use offer_cancel_operator::{crd, oneshot, run, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, cli.otel);
    match cli.command {
        Command::Crd => match crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Cancel(args) => match oneshot::run(args).await {
            Ok(ending) => ExitCode::from(ending.exit_code()),
            Err(e) => fail(&e),
        },
        #[cfg(feature = "simulator")]
        Command::Simulator(args) => match cpp_simulator::serve(
            args.scenario.as_deref(),
            &args.listen,
            run::shutdown_signal(),
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Controller(args) => match run::controller(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
    }
}

fn fail(e: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
