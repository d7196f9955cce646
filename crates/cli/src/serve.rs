//! `chime serve`: a scheduler on the store, with the config file's jobs, until a signal.

use std::time::Duration;

use anyhow::Context as _;
use chime_core::{Scheduler, ShutdownMode};

use crate::args::ServeArgs;

/// Prints a line for the operator, ignoring a closed stdout: a server whose
/// output nobody reads any more must keep running (`println!` would panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
use crate::error::CliError;
use crate::{config, store};

pub(crate) async fn run(args: ServeArgs) -> Result<(), CliError> {
    let config = match &args.config {
        Some(path) => config::load(path).map_err(CliError::Usage)?,
        None => config::defaults(),
    };
    let url = store::resolve(args.store.store.as_deref(), config.store.as_deref());
    let store = store::open(&url, true).await?;
    let mut builder = Scheduler::builder()
        .shared_store(store)
        .tasks(tasks(&config))
        .history_retention(config.history_keep, config.history_max_age)
        .node_lease(config.node_lease)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(zone) = &config.timezone {
        builder = builder.timezone(zone).map_err(|e| CliError::Usage(e.to_string()))?;
    }
    if let Some(n) = config.max_concurrency {
        builder = builder.max_concurrency(n);
    }
    if let Some(id) = &args.node_id {
        builder = builder.node_id(id);
    }
    let scheduler = builder.build();
    tracing::info!(
        store = %chime_postgres::without_password(&url),
        node = %scheduler.node_id(),
        zone = %scheduler.timezone(),
        "chime serve starting"
    );

    // Without a config file there is nothing to sync: the stored jobs are
    // served as they are (none is "removed from the config").
    if args.config.is_some() {
        // What a command job runs comes only from the config: a stored change
        // to its program (a hand edit, an older chime's API) is put back.
        // A stored row whose task is no longer `command` (a hand edit) is a
        // changed program too.
        let programs: Vec<(chime_core::JobId, std::sync::Arc<str>, serde_json::Value)> = config
            .jobs
            .iter()
            .filter(|j| &*j.task == "command")
            .map(|j| (j.id.clone(), std::sync::Arc::clone(&j.task), j.args.clone()))
            .collect();
        let report = scheduler.sync(config.jobs).await.context("syncing the config file's jobs into the store")?;
        for (id, task, program) in programs {
            let mut stored = scheduler.get_job(id.as_str()).await.context("reading a synced job")?;
            if stored.task != task || stored.args != program {
                (stored.task, stored.args) = (task, program);
                scheduler.store().update_job(stored).await.context("restoring a command job's program")?;
                say!("  {id}: its stored program differed from the config's; the config's is back");
            }
        }
        say!("jobs synced from the config: {report}");
        for id in &report.orphaned {
            say!("  {id}: no longer in the config; paused, not deleted (remove it with `chime jobs remove {id}`)");
        }
        for id in &report.repaired {
            say!("  {id}: its stored row did not decode; replaced by the config's definition (history kept)");
        }
    } else {
        say!("no --config: serving the jobs stored in {} as they are", chime_postgres::without_password(&url));
    }
    match scheduler.store().broken_jobs().await {
        Ok(broken) => {
            for b in broken {
                say!("  {}: stored but does not decode ({}); kept, not scheduled", b.id, b.problem);
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing broken jobs"),
    }
    for job in scheduler.jobs().await.context("listing jobs")? {
        let next = match (&job.state.paused, job.state.next_run_at) {
            (Some(reason), _) => format!("paused ({reason})"),
            (None, Some(t)) => format!("next {}", crate::manage::in_zone(t, &crate::manage::zone_of(&job))),
            (None, None) => "finished".to_owned(),
        };
        say!("  {}: {} — {next}", job.id, job.trigger.describe());
    }
    // HTTP before the scheduler starts, so a bad address stops everything.
    let token = std::env::var("CHIME_API_TOKEN").ok().filter(|t| !t.is_empty()).or(config.api_token.clone());
    let http = if args.no_http {
        None
    } else {
        let addr = args.listen.or(config.listen).unwrap_or_else(|| "127.0.0.1:8080".parse().expect("an address"));
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(CliError::Usage(format!(
                "refusing to serve the HTTP API on {addr} without a token: set CHIME_API_TOKEN (or [http] token), or listen on 127.0.0.1"
            )));
        }
        // On a public address the history (commands' output, errors) is
        // readable by anyone who can reach it unless reads need the token too.
        if !addr.ip().is_loopback() && !config.read_token {
            return Err(CliError::Usage(format!(
                "refusing to serve the HTTP API on {addr} with open reads: set [http] read_token = true (reads then need the token too), or listen on 127.0.0.1"
            )));
        }
        if config.read_token && token.is_none() {
            return Err(CliError::Usage(
                "[http] read_token = true needs a token: set CHIME_API_TOKEN (or [http] token)".into(),
            ));
        }
        // A specific address the server listens on is one requests may name.
        let mut allowed_hosts = config.allowed_hosts.clone();
        if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
            allowed_hosts.push(match addr.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            });
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (pass --listen ADDR, or --no-http)"))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        let handle = chime_web::Handle::new(scheduler.clone())
            .with_token(token.clone())
            .map_err(|e| CliError::Usage(format!("the API token: {e}")))?
            .with_read_token(config.read_token)
            .with_allowed_hosts(allowed_hosts)
            .map_err(|e| CliError::Usage(format!("[http] allowed_hosts: {e}")))?
            .with_allowed_targets(config.allowed_targets.clone());
        let app = chime_web::router(handle);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Header-read and idle timeouts and a connection limit: idle sockets
        // cannot starve /health.
        let server = tokio::spawn(chime_web::serve(listener, app, async move {
            let _ = stopped.await;
        }));
        say!("dashboard on http://{bound}/");
        say!(
            "HTTP API on http://{bound}/api/v1 (health: http://{bound}/health){}",
            match (&token, config.read_token) {
                (Some(_), true) => "; every call needs the token",
                (Some(_), false) => "; mutating calls need the token",
                (None, _) => "",
            }
        );
        Some((stop, server))
    };
    // One line a minute about the runs, instead of lines per run.
    tokio::spawn(crate::summary::log_every(scheduler.subscribe(), std::time::Duration::from_secs(60)));
    scheduler.start().context("starting the scheduler")?;
    say!("chime is running on {}; Ctrl-C to stop", chime_postgres::without_password(&url));

    wait_for_signal().await;
    if let Some((stop, server)) = http {
        let _ = stop.send(());
        let _ = server.await;
    }
    let grace = Duration::try_from(config.shutdown_grace).expect("a shutdown grace the config checked");
    say!("stopping: waiting up to {} for running jobs", chime_core::format_duration(config.shutdown_grace));
    scheduler.shutdown(ShutdownMode::Wait(grace)).await;
    say!("stopped");
    Ok(())
}

/// The built-in tasks, with `[http] allowed_targets` applied to every
/// request the `http` task makes, redirects included.
fn tasks(config: &config::Config) -> chime_core::TaskRegistry {
    let mut options = chime_tasks::Options::default();
    if let Some(policy) = &config.allowed_targets {
        options = options.allowed_targets(policy.clone());
    }
    let mut tasks = chime_core::TaskRegistry::new();
    chime_tasks::register_with(&mut tasks, options);
    tasks
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
