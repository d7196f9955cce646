//! `chime jobs ...`, `chime history`, `chime stats`: the store, from the shell.
//!
//! These commands work whether a server runs or not: they change the store,
//! and a running server sees the change within a second.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use chime_core::{Event, Job, RunQuery, RunStatus, Scheduler, Trigger};
use jiff::Timestamp;
use serde_json::json;

use crate::args::{HistoryArgs, JobsCommand, StatsArgs, StoreArg};
use crate::cron_cmd::relative;
use crate::error::CliError;
use crate::{builtin, store};

/// A scheduler on the store that is never started: the CLI uses its API.
async fn scheduler(arg: &StoreArg) -> Result<Scheduler, CliError> {
    let url = store::resolve(arg.store.as_deref(), None);
    let store = store::open(&url, false).await?;
    Ok(Scheduler::builder().shared_store(store).tasks(builtin::registry()).build())
}

/// "in 3h 12m" or "5m ago".
fn when(t: Timestamp, now: Timestamp) -> String {
    let d = t.duration_since(now);
    if d.is_negative() { format!("{} ago", relative(-d)) } else { format!("in {}", relative(d)) }
}

fn short(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// An aligned table: each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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

fn status_of(job: &Job) -> String {
    match (&job.state.paused, job.state.next_run_at) {
        (Some(reason), _) => format!("paused: {reason}"),
        (None, Some(_)) => "active".to_owned(),
        (None, None) => "finished".to_owned(),
    }
}

pub(crate) async fn jobs(cmd: JobsCommand) -> Result<(), CliError> {
    match cmd {
        JobsCommand::List { store, json } => {
            let s = scheduler(&store).await?;
            let jobs = s.jobs().await.context("listing jobs")?;
            if json {
                println!("{}", serde_json::Value::Array(jobs.iter().map(Job::to_json).collect()));
                return Ok(());
            }
            let now = Timestamp::now();
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        j.name().to_owned(),
                        j.trigger.describe(),
                        j.state.next_run_at.map_or("-".into(), short),
                        j.state.next_run_at.map_or("-".into(), |t| when(t, now)),
                        j.state.last_run_at.map_or("-".into(), short),
                        j.state.last_run_at.map_or("-".into(), |t| when(t, now)),
                        match (j.state.last_status, status_of(j)) {
                            (Some(last), status) => format!("{status} (last {last})"),
                            (None, status) => status,
                        },
                    ]
                })
                .collect();
            print!("{}", table(&["ID", "NAME", "TRIGGER", "NEXT", "LEFT", "LAST", "PASSED", "STATUS"], &rows));
            if jobs.is_empty() {
                println!("(no jobs)");
            }
            let broken = s.store().broken_jobs().await.context("listing broken jobs")?;
            for b in broken {
                eprintln!("warning: stored job {:?} does not decode and is not scheduled: {}", b.id, b.problem);
            }
            Ok(())
        }
        JobsCommand::Show { id, store, json } => {
            let s = scheduler(&store).await?;
            let job = s.get_job(&id).await.map_err(failed)?;
            let upcoming = s.upcoming(&id, 5).await.map_err(failed)?;
            let runs = s
                .history(&RunQuery { job_id: Some(job.id.clone()), limit: Some(5), ..RunQuery::default() })
                .await
                .map_err(failed)?;
            if json {
                println!("{}", json!({"job": job.to_json(), "upcoming": upcoming, "runs": runs}));
                return Ok(());
            }
            let now = Timestamp::now();
            println!("{} ({})", job.id, job.name());
            println!("  task      {}", job.task);
            println!("  args      {}", job.args);
            println!("  trigger   {}", job.trigger.describe());
            println!("  options   {}", serde_json::to_string(&job.options).expect("options serialize"));
            println!("  status    {}", status_of(&job));
            if let Some(last) = job.state.last_run_at {
                println!(
                    "  last run  {} ({}), {}",
                    short(last),
                    when(last, now),
                    job.state.last_status.map_or("-".into(), |s| s.to_string())
                );
            }
            println!("Next {} fire times:", upcoming.len());
            for t in upcoming {
                println!("  {}  {}", short(t), when(t, now));
            }
            println!("Last {} runs:", runs.len());
            print!("{}", run_table(&runs));
            Ok(())
        }
        JobsCommand::Pause { id, reason, store } => {
            let s = scheduler(&store).await?;
            let job = s.pause_job(&id, reason.as_deref().unwrap_or("paused from the CLI")).await.map_err(failed)?;
            println!("paused {} ({})", job.id, job.state.paused.unwrap_or_default());
            Ok(())
        }
        JobsCommand::Resume { id, store } => {
            let s = scheduler(&store).await?;
            let job = s.resume_job(&id).await.map_err(failed)?;
            println!("resumed {}; next run {}", job.id, job.state.next_run_at.map_or("never".into(), short));
            Ok(())
        }
        JobsCommand::Remove { id, store } => {
            let s = scheduler(&store).await?;
            let job = s.remove_job(&id, chime_core::RemoveMode::LetFinish).await.map_err(failed)?;
            println!("removed {} (its history stays)", job.id);
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
            println!(
                "rescheduled {}: {}; next run {}",
                job.id,
                job.trigger.describe(),
                job.state.next_run_at.map_or("never".into(), short)
            );
            Ok(())
        }
        JobsCommand::Run { id, wait, here, store } => run_now(&store, &id, wait, here).await,
    }
}

/// A job id the store does not know is exit 1, like any failed operation.
fn failed(e: chime_core::Error) -> CliError {
    if e.is_invalid() { CliError::Usage(e.to_string()) } else { CliError::Failed(anyhow!(e)) }
}

async fn run_now(store: &StoreArg, id: &str, wait: bool, here: bool) -> Result<(), CliError> {
    let s = scheduler(store).await?;
    if here {
        let mut events = s.subscribe();
        let run = s.run_job_now(id).await.map_err(failed)?;
        println!("running {id} here (run {})", run.id);
        loop {
            match events.recv().await.map_err(|e| anyhow!("waiting for the run: {e}"))? {
                Event::RunSucceeded { run_id, duration, .. } if run_id == run.id => {
                    println!(
                        "succeeded in {}",
                        chime_core::format_duration(duration.round(jiff::Unit::Millisecond).unwrap_or(duration))
                    );
                    return Ok(());
                }
                Event::RunFailed { run_id, error, will_retry: false, .. } if run_id == run.id => {
                    return Err(anyhow!("run {run_id} failed: {error}").into());
                }
                Event::RunTimedOut { run_id, will_retry: false, .. } if run_id == run.id => {
                    return Err(anyhow!("run {run_id} timed out").into());
                }
                _ => {}
            }
        }
    }
    // Ask the server: make the job due now. Its claim runs it once and
    // computes the next run from the trigger, so the schedule is unchanged.
    let requested = Timestamp::now();
    let mut attempts = 0;
    let job = loop {
        let job = s.get_job(id).await.map_err(failed)?;
        if job.is_paused() {
            return Err(CliError::Failed(anyhow!("job {id} is paused: resume it first, or run it here with --here")));
        }
        let mut due = job.clone();
        due.state.next_run_at = Some(requested);
        match s.store().update_job(due).await {
            Ok(_) => break job,
            // The server advanced the job in between: read it again.
            Err(e) if e.is_conflict() && attempts < 10 => attempts += 1,
            Err(e) => return Err(failed(e)),
        }
    };
    println!("asked the server to run {id} now");
    if !wait {
        return Ok(());
    }
    let query =
        RunQuery { job_id: Some(job.id.clone()), since: Some(requested), limit: Some(10), ..RunQuery::default() };
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let runs = s.history(&query).await.map_err(failed)?;
        if let Some(run) = runs.iter().rev().find(|r| r.status.is_finished()) {
            return match run.status {
                RunStatus::Succeeded => {
                    println!("succeeded (run {})", run.id);
                    Ok(())
                }
                status => Err(anyhow!("run {} {status}: {}", run.id, run.error.as_deref().unwrap_or("")).into()),
            };
        }
        if runs.is_empty() && std::time::Instant::now() > give_up {
            return Err(anyhow!(
                "no server picked up the run within 60 s: is `chime serve` running on this store? (or use --here)"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn run_table(runs: &[chime_core::Run]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.job_id.to_string(),
                short(r.scheduled_for),
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
    if args.json {
        println!("{}", serde_json::to_string(&runs).expect("runs serialize"));
    } else {
        print!("{}", run_table(&runs));
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
        println!("{value}");
        return Ok(());
    }
    let runs = value.get("runs").filter(|r| r.is_object()).unwrap_or(&value);
    if args.id.is_none() {
        for key in ["jobs", "paused", "finished", "broken"] {
            println!("{key:<16}{}", value[key]);
        }
    }
    for (key, v) in runs.as_object().into_iter().flatten() {
        println!("{key:<16}{}", if v.is_null() { "-".to_owned() } else { v.to_string() });
    }
    Ok(())
}
