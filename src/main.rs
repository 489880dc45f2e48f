use clap::Parser;
use std::process::ExitCode;

use offer_cancel_operator::cli::{Cli, Command};
use offer_cancel_operator::{crd, oneshot, run, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, cli.otel);
    match execute(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match command {
        Command::Crd => print!("{}", crd::crd_yaml()?),
        Command::Cancel(args) => {
            return Ok(match oneshot::run(args).await {
                Ok(ending) => ExitCode::from(ending.exit_code()),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.exit_code())
                }
            });
        }
        #[cfg(feature = "simulator")]
        Command::Simulator(args) => {
            let (scenario, listen) = (args.scenario.as_deref(), &args.listen);
            cpp_simulator::serve(scenario, listen, run::shutdown_signal()).await?
        }
        Command::Controller(args) => run::controller(args).await?,
    }
    Ok(ExitCode::SUCCESS)
}
