//! `chime jobs ...`, `chime history`, `chime stats`: the store, from the shell.
//!
//! These commands work whether a server runs or not: they change the store,
//! and a running server sees the change within a second.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use chime_core::{Event, Job, RunQuery, RunStatus, Scheduler, ShutdownMode, Trigger, format_duration};
use jiff::Timestamp;
use serde_json::json;

use crate::args::{HistoryArgs, JobsCommand, StatsArgs, StoreArg};
use crate::cron_cmd::relative;
use crate::error::CliError;
use crate::output::{out, out_raw};
use crate::{builtin, store};

/// A scheduler on the store that is never started: the CLI uses its API.
pub(crate) async fn scheduler(arg: &StoreArg) -> Result<Scheduler, CliError> {
    let url = store::resolve(arg.store.as_deref(), None);
    let store = store::open(&url, false).await?;
    Ok(Scheduler::builder().shared_store(store).tasks(builtin::registry()).build())
}

/// "in 3h 12m" or "5m ago".
fn when(t: Timestamp, now: Timestamp) -> String {
    let d = t.duration_since(now);
    if d.is_negative() { format!("{} ago", relative(-d)) } else { format!("in {}", relative(d)) }
}

/// An instant as a wall-clock time in `zone`, with the offset.
pub(crate) fn in_zone(t: Timestamp, zone: &chime_core::Zone) -> String {
    t.to_zoned_datetime(zone.time_zone().clone()).strftime("%Y-%m-%d %H:%M:%S %:z").to_string()
}

/// The zone a job's times are shown in: its trigger's, or UTC (an
/// interval has none), always with the offset so no time reads ambiguous.
pub(crate) fn zone_of(job: &Job) -> chime_core::Zone {
    job.trigger.zone().cloned().unwrap_or_else(chime_core::Zone::utc)
}

/// How many nodes of the store hold an unexpired lease now.
pub(crate) async fn alive_nodes(s: &Scheduler, now: Timestamp) -> Result<usize, CliError> {
    Ok(s.nodes().await.map_err(failed)?.into_iter().filter(|n| n.lease_expires_at > now).count())
}

pub(crate) fn short(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// An aligned table: each column as wide as its widest cell.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// A job as printed: its secrets (env values, credential headers) redacted
/// unless `--show-secrets` asks for them, as on the HTTP API.
fn shown(job: &Job, show_secrets: bool) -> serde_json::Value {
    if show_secrets { job.to_json() } else { chime_web::redacted_job(job) }
}

fn status_of(job: &Job, alert: Option<&chime_core::Alert>) -> String {
    match (&job.state.paused, job.state.next_run_at) {
        (Some(reason), _) => format!("paused: {reason}"),
        _ if alert.is_some() => "alerting".to_owned(),
        (None, Some(_)) => "active".to_owned(),
        (None, None) => "finished".to_owned(),
    }
}

pub(crate) async fn jobs(cmd: JobsCommand) -> Result<(), CliError> {
    match cmd {
        JobsCommand::List { store, json, show_secrets } => {
            let s = scheduler(&store).await?;
            let jobs = s.jobs().await.context("listing jobs")?;
            let now = Timestamp::now();
            let alerts = chime_core::alerts_of(&**s.store(), &jobs, now).await.context("checking job health")?;
            let alert_of = |j: &Job| alerts.iter().find(|a| a.job_id == j.id);
            if json {
                let with_alert = |j: &Job| {
                    let mut v = shown(j, show_secrets);
                    if let Some(a) = alert_of(j) {
                        v["alert"] = json!(a);
                    }
                    v
                };
                out!("{}", serde_json::Value::Array(jobs.iter().map(with_alert).collect()));
                return Ok(());
            }
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    let zone = zone_of(j);
                    vec![
                        j.id.to_string(),
                        j.name().to_owned(),
                        j.trigger.describe(),
                        j.state.next_run_at.map_or("-".into(), |t| in_zone(t, &zone)),
                        j.state.next_run_at.map_or("-".into(), |t| when(t, now)),
                        j.state.last_run_at.map_or("-".into(), |t| in_zone(t, &zone)),
                        j.state.last_run_at.map_or("-".into(), |t| when(t, now)),
                        match (j.state.last_status, status_of(j, alert_of(j))) {
                            (Some(last), status) => format!("{status} (last {last})"),
                            (None, status) => status,
                        },
                    ]
                })
                .collect();
            out_raw!("{}", table(&["ID", "NAME", "TRIGGER", "NEXT", "LEFT", "LAST", "PASSED", "STATUS"], &rows));
            if jobs.is_empty() {
                out!("(no jobs)");
            }
            let broken = s.store().broken_jobs().await.context("listing broken jobs")?;
            for b in broken {
                eprintln!("warning: stored job {:?} does not decode and is not scheduled: {}", b.id, b.problem);
            }
            Ok(())
        }
        JobsCommand::Show { id, store, json, show_secrets } => {
            let s = scheduler(&store).await?;
            let job = s.get_job(&id).await.map_err(failed)?;
            let alert = chime_core::check_job(&**s.store(), &job, Timestamp::now()).await.map_err(failed)?;
            let upcoming = s.upcoming(&id, 5).await.map_err(failed)?;
            let runs = s
                .history(&RunQuery { job_id: Some(job.id.clone()), limit: Some(5), ..RunQuery::default() })
                .await
                .map_err(failed)?;
            if json {
                out!(
                    "{}",
                    json!({"job": shown(&job, show_secrets), "alert": alert, "upcoming": upcoming, "runs": runs})
                );
                return Ok(());
            }
            let now = Timestamp::now();
            // Instants in the zone the trigger is read in, with the offset:
            // "09:00 (Europe/London)" reads wrong next to a UTC time.
            let zone = zone_of(&job);
            let local = |t: Timestamp| in_zone(t, &zone);
            out!("{} ({})", job.id, job.name());
            out!("  task      {}", job.task);
            out!("  args      {}", shown(&job, show_secrets)["args"]);
            out!("  trigger   {}", job.trigger.describe());
            out!("  options   {}", serde_json::to_string(&job.options).expect("options serialize"));
            out!("  status    {}", status_of(&job, alert.as_ref()));
            if let Some(a) = &alert {
                out!("  alert     {} (since {})", a.reason, local(a.since));
            }
            if let Some(last) = job.state.last_run_at {
                out!(
                    "  last run  {} ({}), {}",
                    local(last),
                    when(last, now),
                    job.state.last_status.map_or("-".into(), |s| s.to_string())
                );
            }
            out!("Next {} fire times ({}):", upcoming.len(), zone.name());
            for t in upcoming {
                out!("  {}  {}", local(t), when(t, now));
            }
            out!("Last {} runs:", runs.len());
            out_raw!("{}", run_table(&runs, &zone));
            Ok(())
        }
        JobsCommand::Pause { id, reason, store } => {
            let s = scheduler(&store).await?;
            let job = s.pause_job(&id, reason.as_deref().unwrap_or("paused from the CLI")).await.map_err(failed)?;
            out!("paused {} ({})", job.id, job.state.paused.unwrap_or_default());
            Ok(())
        }
        JobsCommand::Resume { id, store } => {
            let s = scheduler(&store).await?;
            let job = s.resume_job(&id).await.map_err(failed)?;
            out!("resumed {}; next run {}", job.id, job.state.next_run_at.map_or("never".into(), short));
            Ok(())
        }
        JobsCommand::Remove { id, store } => {
            let s = scheduler(&store).await?;
            let job = s.remove_job(&id, chime_core::RemoveMode::LetFinish).await.map_err(failed)?;
            out!("removed {} (its history stays)", job.id);
            Ok(())
        }
        JobsCommand::Reschedule { id, cron, every, at, store } => {
            let trigger = match (cron, every, at) {
                (Some(expr), _, _) => Trigger::cron(&expr),
                (_, Some(d), _) => Trigger::every(&d),
                (_, _, Some(t)) => t
                    .parse::<Timestamp>()
                    .map(Trigger::at)
                    .map_err(|e| chime_core::Error::Invalid(format!("--at {t:?}: not an RFC 3339 instant: {e}"))),
                _ => return Err(CliError::Usage("give one of --cron, --every or --at".into())),
            }
            .map_err(|e| CliError::Usage(e.to_string()))?;
            let s = scheduler(&store).await?;
            // The new trigger keeps the job's zone (the server's, not this shell's).
            let current = s.get_job(&id).await.map_err(failed)?;
            let zone = match &current.trigger {
                Trigger::Cron(c) => c.timezone.clone(),
                Trigger::Calendar(c) => c.timezone.clone(),
                _ => None,
            };
            let trigger = match zone {
                Some(z) => trigger.with_timezone(z.name()).map_err(failed)?,
                None => trigger,
            };
            let job = s.reschedule_job(&id, trigger).await.map_err(failed)?;
            out!(
                "rescheduled {}: {}; next run {}",
                job.id,
                job.trigger.describe(),
                job.state.next_run_at.map_or("never".into(), short)
            );
            Ok(())
        }
        JobsCommand::Run { id, wait, here, store } => run_now(&store, &id, wait, here).await,
        JobsCommand::Backfill { id, since, until, only_missing, dry_run, store, json } => {
            let b = crate::backfill::Backfill {
                id: &id,
                since: &since,
                until: until.as_deref(),
                only_missing,
                dry_run,
                json,
            };
            crate::backfill::backfill(&scheduler(&store).await?, b).await
        }
        JobsCommand::Why { id, since, store, json } => {
            crate::why::why(&scheduler(&store).await?, &id, since.as_deref(), json).await
        }
    }
}

/// A job id the store does not know is exit 1, like any failed operation.
pub(crate) fn failed(e: chime_core::Error) -> CliError {
    if e.is_invalid() { CliError::Usage(e.to_string()) } else { CliError::Failed(anyhow!(e)) }
}

async fn run_now(store: &StoreArg, id: &str, wait: bool, here: bool) -> Result<(), CliError> {
    let s = scheduler(store).await?;
    if here {
        return run_here(&s, id).await;
    }
    let job = s.get_job(id).await.map_err(failed)?;
    // Ask the nodes: a pending manual run that the next claim of any node
    // with the job's task takes. Refused when no node is alive to take it.
    let now = Timestamp::now();
    if alive_nodes(&s, now).await? == 0 {
        return Err(CliError::Failed(anyhow!(
            "no node of this store is alive (no `chime serve` is running on it), so nobody would run {id}: \
             start one, or run it in this process with `chime jobs run {id} --here`"
        )));
    }
    let run = s.store().request_run(&job.id, now, None).await.map_err(failed)?;
    if run.status == RunStatus::Skipped {
        return Err(anyhow!("run {} of {id} skipped: {}", run.id, run.error.as_deref().unwrap_or("")).into());
    }
    out!("requested run {} of {id}; the first node with its task runs it", run.id);
    if !wait {
        return Ok(());
    }
    let query = RunQuery {
        job_id: Some(job.id.clone()),
        since: Some(run.scheduled_for),
        limit: Some(100),
        ..RunQuery::default()
    };
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let runs = s.history(&query).await.map_err(failed)?;
        match runs.iter().find(|r| r.id == run.id) {
            Some(r) if r.status == RunStatus::Succeeded => {
                out!("succeeded (run {}, on {})", r.id, r.node.as_deref().unwrap_or("?"));
                return Ok(());
            }
            Some(r) if r.status.is_finished() => {
                return Err(anyhow!("run {} {}: {}", r.id, r.status, r.error.as_deref().unwrap_or("")).into());
            }
            Some(r) if r.node.is_none() && std::time::Instant::now() > give_up => {
                return Err(anyhow!(
                    "no node took run {} within 60 s: do the running nodes have the task {:?}? (or use --here)",
                    r.id,
                    job.task
                )
                .into());
            }
            None => return Err(anyhow!("run {} is no longer in the history", run.id).into()),
            Some(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the job in this process: a node of its own for the run's duration.
async fn run_here(s: &Scheduler, id: &str) -> Result<(), CliError> {
    let mut events = s.subscribe();
    let run = s.run_job_now(id).await.map_err(failed)?;
    if run.status == RunStatus::Skipped {
        s.shutdown(ShutdownMode::Cancel).await;
        return Err(anyhow!("run {} of {id} skipped: {}", run.id, run.error.as_deref().unwrap_or("")).into());
    }
    out!("running {id} here (run {})", run.id);
    let outcome = loop {
        match events.recv().await {
            Ok(Event::RunSucceeded { run_id, duration, .. }) if run_id == run.id => {
                break Ok(format_duration(duration.round(jiff::Unit::Millisecond).unwrap_or(duration)));
            }
            Ok(Event::RunFailed { run_id, error, will_retry: false, .. }) if run_id == run.id => {
                break Err(anyhow!("run {run_id} failed: {error}"));
            }
            Ok(Event::RunTimedOut { run_id, will_retry: false, .. }) if run_id == run.id => {
                break Err(anyhow!("run {run_id} timed out"));
            }
            Ok(Event::RunCancelled { run_id, .. }) if run_id == run.id => {
                break Err(anyhow!("run {run_id} was cancelled"));
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => break Err(anyhow!("waiting for the run: {e}")),
        }
    };
    // Ends this process's lease at once.
    s.shutdown(ShutdownMode::Wait(Duration::try_from(chime_core::DEFAULT_SHUTDOWN_GRACE).expect("positive"))).await;
    out!("succeeded in {}", outcome?);
    Ok(())
}

/// Runs as a table, their scheduled times in `zone` with the offset.
fn run_table(runs: &[chime_core::Run], zone: &chime_core::Zone) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.job_id.to_string(),
                in_zone(r.scheduled_for, zone),
                r.status.to_string(),
                r.duration().map_or("-".into(), |d| format!("{:.3}s", d.as_secs_f64())),
                r.attempt.to_string(),
                r.error.as_deref().unwrap_or("").lines().next().unwrap_or("").chars().take(80).collect(),
            ]
        })
        .collect();
    table(&["JOB", "SCHEDULED", "STATUS", "DURATION", "ATTEMPT", "ERROR"], &rows)
}

pub(crate) async fn history(args: HistoryArgs) -> Result<(), CliError> {
    let statuses = match &args.status {
        Some(s) => vec![s.parse::<RunStatus>().map_err(|e| CliError::Usage(e.to_string()))?],
        None => Vec::new(),
    };
    let job_id =
        args.job.as_deref().map(chime_core::JobId::new).transpose().map_err(|e| CliError::Usage(e.to_string()))?;
    let s = scheduler(&args.store).await?;
    let runs = s
        .history(&RunQuery { job_id, statuses, limit: Some(args.limit), ..RunQuery::default() })
        .await
        .map_err(failed)?;
    // Runs of many jobs: one zone for all of them, UTC, its offset shown.
    let utc = chime_core::Zone::utc();
    if args.json {
        out!("{}", serde_json::to_string(&runs).expect("runs serialize"));
    } else if args.output {
        for run in &runs {
            out_raw!("{}", run_table(std::slice::from_ref(run), &utc).split_once('\n').map_or("", |(_, row)| row));
            out!("  run {} on {}", run.id, run.node.as_deref().unwrap_or("no node yet"));
            for line in run.output.as_deref().unwrap_or("(no output)").lines() {
                out!("  | {line}");
            }
            if let Some(late) = &run.late_result {
                out!("  late result: {late}");
            }
        }
    } else {
        out_raw!("{}", run_table(&runs, &utc));
    }
    Ok(())
}

pub(crate) async fn stats(args: StatsArgs) -> Result<(), CliError> {
    let s = scheduler(&args.store).await?;
    let value = match &args.id {
        Some(id) => serde_json::to_value(s.stats(id).await.map_err(failed)?),
        None => serde_json::to_value(s.scheduler_stats().await.map_err(failed)?),
    }
    .expect("stats serialize");
    if args.json {
        out!("{value}");
        return Ok(());
    }
    let runs = value.get("runs").filter(|r| r.is_object()).unwrap_or(&value);
    if args.id.is_none() {
        for key in ["jobs", "paused", "finished", "broken", "runs_window"] {
            out!("{key:<16}{}", value[key]);
        }
    }
    for (key, v) in runs.as_object().into_iter().flatten() {
        out!("{key:<16}{}", if v.is_null() { "-".to_owned() } else { v.to_string() });
    }
    Ok(())
}
