//! The `chime` command. Parsing lives in `args`, each command in its own module;
//! this file only maps outcomes to exit codes.

mod args;
mod backfill;
mod builtin;
mod config;
mod cron_cmd;
mod error;
mod init;
mod manage;
mod nodes;
mod output;
mod serve;
mod store;
mod summary;
mod why;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Command;
use crate::error::CliError;

/// The server's log level: `CHIME_LOG` (`error`, `warn`, `info`, `debug`,
/// `trace`), `info` by default. Per-run lines are at `debug`.
fn log_level() -> Result<tracing::Level, CliError> {
    match std::env::var("CHIME_LOG") {
        Err(_) => Ok(tracing::Level::INFO),
        Ok(v) if v.trim().is_empty() => Ok(tracing::Level::INFO),
        Ok(v) => v.trim().parse().map_err(|_| {
            CliError::Usage(format!("CHIME_LOG={v:?} is not a log level: use error, warn, info, debug or trace"))
        }),
    }
}

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match cli.command {
        Command::Cron(cmd) => cron_cmd::run(cmd),
        Command::Serve(args) => {
            // The server logs; one-shot commands print only their answer.
            use std::io::IsTerminal as _;
            match log_level() {
                Ok(level) => {
                    tracing_subscriber::fmt()
                        .with_writer(std::io::stderr)
                        .with_ansi(std::io::stderr().is_terminal())
                        .with_max_level(level)
                        .init();
                    block_on(serve::run(args))
                }
                Err(e) => Err(e),
            }
        }
        Command::Jobs(cmd) => block_on(manage::jobs(cmd)),
        Command::History(args) => block_on(manage::history(args)),
        Command::Stats(args) => block_on(manage::stats(args)),
        Command::Nodes(args) => block_on(nodes::run(args)),
        Command::Init(args) => init::run(args),
    };
    match result {
        Ok(()) | Err(CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            err.exit_code()
        }
    }
}

fn block_on<F: std::future::Future<Output = Result<(), CliError>>>(f: F) -> Result<(), CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(anyhow::anyhow!("starting the async runtime: {e}")))?
        .block_on(f)
}
