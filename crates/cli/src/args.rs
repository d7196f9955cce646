//! The command line, as clap sees it. Validation that clap cannot do (cron
//! syntax, zone names) happens in the command modules.

use clap::{Args, Parser, Subcommand};

/// Background job scheduling: cron, interval, calendar and one-off jobs.
#[derive(Debug, Parser)]
#[command(name = "chime", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Preview cron expressions: when they fire, and what they mean.
    #[command(subcommand)]
    Cron(CronCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum CronCommand {
    /// Print the next fire times of a cron expression.
    Next(NextArgs),
    /// Describe a cron expression in English and show its next 5 fire times.
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
pub(crate) struct NextArgs {
    /// A cron expression: 5 fields, 6 with seconds, or a macro such as @daily. Quote it.
    pub(crate) expression: String,
    /// IANA time zone the expression is read in [default: the system zone].
    #[arg(long, value_name = "ZONE")]
    pub(crate) tz: Option<String>,
    /// Show fire times strictly after this RFC 3339 instant [default: now].
    #[arg(long, value_name = "INSTANT")]
    pub(crate) after: Option<String>,
    /// How many fire times to show.
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub(crate) count: u32,
    /// Print one JSON array of RFC 3339 strings.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// A cron expression: 5 fields, 6 with seconds, or a macro such as @daily. Quote it.
    pub(crate) expression: String,
    /// IANA time zone the expression is read in [default: the system zone].
    #[arg(long, value_name = "ZONE")]
    pub(crate) tz: Option<String>,
    /// Print a JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}
