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
    /// Run the scheduler: jobs from a config file and the store, until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Manage stored jobs, whether a server is running or not.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Show run history, newest first.
    History(HistoryArgs),
    /// Show run statistics for one job or for all.
    Stats(StatsArgs),
    /// List the nodes (schedulers) of a store: host, heartbeat, lease left, runs in flight.
    Nodes(NodesArgs),
    /// Preview cron expressions: when they fire, and what they mean.
    #[command(subcommand)]
    Cron(CronCommand),
    /// Create ./NAME: a Rust service with a scheduler, two jobs, the dashboard and a test of their schedules.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The project's folder and crate name: lowercase letters, digits, '-' and '_', starting with a letter.
    pub(crate) name: String,
    /// Where the jobs live: memory (reset on restart), sqlite (a file), postgres (DATABASE_URL).
    #[arg(long, value_enum, default_value_t = InitStore::Memory)]
    pub(crate) store: InitStore,
    /// The chime checkout to depend on [default: the one this chime was built from].
    #[arg(long, value_name = "DIR")]
    pub(crate) chime_path: Option<std::path::PathBuf>,
    /// Write into an existing non-empty folder, overwriting only the files init writes.
    #[arg(long)]
    pub(crate) force: bool,
}

/// The store of a project made by `chime init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum InitStore {
    /// In memory: jobs and history reset on restart.
    Memory,
    /// A SQLite file.
    Sqlite,
    /// PostgreSQL, named by DATABASE_URL.
    Postgres,
}

/// Where jobs live: flag, then `CHIME_STORE`, then `DATABASE_URL`, then the config, then `sqlite://chime.db`.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct StoreArg {
    /// The store: `sqlite://chime.db`, a path, `postgres://user@host/db[?schema=NAME]`, or `memory:`.
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The config file with scheduler settings and jobs.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) store: StoreArg,
    /// This scheduler's name in run history [default: host-pid].
    #[arg(long, value_name = "ID")]
    pub(crate) node_id: Option<String>,
    /// Serve the HTTP API and /health here. A non-loopback address needs a token
    /// (CHIME_API_TOKEN or the config's http.token) [default: 127.0.0.1:8080, or the config's http.listen].
    #[arg(long, value_name = "ADDR", conflicts_with = "no_http")]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Serve no HTTP at all.
    #[arg(long)]
    pub(crate) no_http: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// List jobs: next and last run, status.
    List {
        #[command(flatten)]
        store: StoreArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print secrets (env values, credential headers) instead of `<redacted>`.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Show one job: definition, options, state, next 5 fire times, last 5 runs.
    Show {
        id: String,
        #[command(flatten)]
        store: StoreArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print secrets (env values, credential headers) instead of `<redacted>`.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Why a job did or did not run: each scheduled time since --since
    /// (default 24h ago), what happened and why, under a one-line answer.
    Why {
        id: String,
        /// The start of the window: an instant (2026-01-02T03:00:00Z) or how
        /// long ago (24h, 7d).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        #[command(flatten)]
        store: StoreArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Backfill: run each scheduled time of a window that has no successful
    /// run, oldest first, as runs carrying their original scheduled time,
    /// at most max_instances at a time. Needs a running `chime serve`.
    Backfill {
        id: String,
        /// The start of the window: an instant (2026-01-02T03:00:00Z) or how
        /// long ago (24h, 7d).
        #[arg(long, value_name = "TIME")]
        since: String,
        /// The end of the window (default now), in the same forms.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only the times that never ran (no run, missed or skipped), not failures.
        #[arg(long)]
        only_missing: bool,
        /// List the times it would run, and run nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        store: StoreArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pause a job: it has no next run until resumed.
    Pause {
        id: String,
        /// Why, shown in listings.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Resume a paused job; its next run is computed from now.
    Resume {
        id: String,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Remove a job; its history stays.
    Remove {
        id: String,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Run a job now, once, as a manual run (its schedule is untouched; paused jobs too):
    /// by any running server of the store, or in this process with --here.
    Run {
        id: String,
        /// Wait for the run to finish and exit 1 if it failed.
        #[arg(long)]
        wait: bool,
        /// Run it in this process instead of asking the server.
        #[arg(long)]
        here: bool,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Give a job a new trigger.
    Reschedule {
        id: String,
        /// A cron expression.
        #[arg(long, value_name = "EXPR", group = "trigger")]
        cron: Option<String>,
        /// An interval such as 4h.
        #[arg(long, value_name = "DURATION", group = "trigger")]
        every: Option<String>,
        /// Once, at an RFC 3339 instant.
        #[arg(long, value_name = "TIME", group = "trigger")]
        at: Option<String>,
        #[command(flatten)]
        store: StoreArg,
    },
}

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// Only this job's runs.
    #[arg(long, value_name = "ID")]
    pub(crate) job: Option<String>,
    /// Only runs in this status (succeeded, failed, timed_out, missed, skipped, abandoned, cancelled, pending, running).
    #[arg(long, value_name = "STATUS")]
    pub(crate) status: Option<String>,
    /// At most this many runs.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) limit: usize,
    /// Show each run's output (the tail of a command's stdout and stderr) under it.
    #[arg(long, conflicts_with = "json")]
    pub(crate) output: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) store: StoreArg,
}

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// One job; all jobs when absent.
    pub(crate) id: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) store: StoreArg,
}

#[derive(Debug, Args)]
pub(crate) struct NodesArgs {
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) store: StoreArg,
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
