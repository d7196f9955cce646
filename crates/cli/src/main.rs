//! The `chime` command. Parsing lives in `args`, each command in its own module;
//! this file only maps outcomes to exit codes.

mod args;
mod cron_cmd;
mod error;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match cli.command {
        args::Command::Cron(cmd) => cron_cmd::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            err.exit_code()
        }
    }
}
