//! A job's page: what it is (trigger in words and as written, zone,
//! options, where it came from), when it fires next, how its runs went, and
//! its actions. It shows no arguments, so no secret (see `redact`).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use chime_core::{Job, RunQuery, RunStatus, format_duration};
use jiff::SignedDuration;

use super::chart::timeline;
use super::params::Params;
use super::runs::RunRow;
use super::time::Shown;
use super::why::WhySection;
use super::{Chrome, QueryPairs, html};
use crate::extract::JobIdPath;
use crate::{ApiError, Handle};

/// How many next fire times the page lists.
const UPCOMING: usize = 10;
/// How many recent runs it lists (the full history is on the runs page).
const RECENT_RUNS: usize = 50;

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    c: Chrome,
    /// Why the job is in alert, if it is.
    alert: Option<String>,
    id: String,
    /// `id` percent-encoded for a query value.
    id_query: String,
    name: String,
    task: String,
    trigger: String,
    /// The trigger as stored: the JSON the API takes.
    trigger_written: String,
    zone: String,
    status: &'static str,
    paused: Option<String>,
    /// Options as (name, value) in words.
    options: Vec<(&'static str, String)>,
    source: &'static str,
    last_node: Option<String>,
    summary: String,
    upcoming: Vec<Shown>,
    why: WhySection,
    timeline: String,
    runs: Vec<RunRow>,
    /// Whether the page offers to reschedule it: jobs added at runtime only,
    /// since a job synced from the config or code takes its trigger from there.
    reschedulable: bool,
    /// The zone a new cron expression is read in: the job's, or the scheduler's.
    zone_name: String,
    /// Why the API would refuse to resume or run it (a command the config
    /// dropped): the page says so instead of offering a button that fails.
    refused: Option<String>,
}

pub(crate) async fn job(
    State(h): State<Handle>,
    JobIdPath(id): JobIdPath,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let axum::extract::Query(pairs) = query?;
    let window = super::why::window(Params::new(pairs, &["why"])?.get("why"))?;
    let s = &h.scheduler;
    let job = s.get_job(id.as_str()).await?;
    let now = s.clock().now();
    let zone = job.trigger.zone().unwrap_or(s.timezone());
    let upcoming = s.upcoming(id.as_str(), UPCOMING).await?.into_iter().map(|t| Shown::new(t, zone, now)).collect();
    let runs =
        s.history(&RunQuery { job_id: Some(job.id.clone()), limit: Some(RECENT_RUNS), ..RunQuery::default() }).await?;
    let running = runs.iter().any(|r| matches!(r.status, RunStatus::Pending | RunStatus::Running));
    let stats = s.stats(id.as_str()).await?;
    let summary = match stats.success_rate {
        Some(rate) => format!(
            "{} runs retained: {:.0}% succeeded, {} failed, {} missed, {} skipped{}",
            stats.runs,
            rate * 100.0,
            stats.failed,
            stats.missed,
            stats.skipped,
            stats.avg_duration_s.map(|d| format!("; {d:.2} s on average")).unwrap_or_default()
        ),
        None => "No finished run retained yet.".to_owned(),
    };
    let alert = chime_core::check_job(&**s.store(), &job, now).await?.map(|a| a.reason);
    let why = super::why::section(s, id.as_str(), window, zone).await?;
    Ok(html(JobPage {
        alert,
        // The page is `<root>jobs/<id>`, the id one encoded segment.
        c: Chrome::new(&h, "../".to_owned(), now, "jobs"),
        id: job.id.to_string(),
        id_query: crate::extract::encode_segment(job.id.as_str()),
        name: job.name().to_owned(),
        task: job.task.to_string(),
        trigger: job.trigger.describe(),
        trigger_written: serde_json::to_string(&job.trigger).unwrap_or_default(),
        zone: zone_words(&job, zone, now),
        status: if running { "running" } else { job.status() },
        paused: job.state.paused.as_deref().map(str::to_owned),
        refused: crate::policy::resume(&job).err().map(|e| e.message),
        reschedulable: job.state.code_hash.is_none(),
        zone_name: zone.name().to_owned(),
        options: options(&job),
        source: if job.state.code_hash.is_some() {
            "the config file or the service's code (kept in step with it at start-up)"
        } else {
            "added at runtime (the HTTP API, the CLI or add_job)"
        },
        last_node: runs.iter().find_map(|r| r.node.as_deref().map(str::to_owned)),
        summary,
        upcoming,
        why,
        timeline: timeline(&runs),
        runs: runs.iter().map(|r| RunRow::new(r, zone, now)).collect(),
    }))
}

/// The zone and its offset at `now`, and whose it is.
fn zone_words(job: &Job, zone: &chime_core::Zone, now: jiff::Timestamp) -> String {
    let offset = now.to_zoned_datetime(zone.time_zone().clone()).strftime("%:z").to_string();
    match job.trigger.zone() {
        Some(_) => format!("{} (UTC{offset} now)", zone.name()),
        // Intervals and one-off instants run on elapsed time; their times
        // are shown in the scheduler's zone.
        None => format!("none: elapsed time; shown in the scheduler's zone, {} (UTC{offset} now)", zone.name()),
    }
}

fn options(job: &Job) -> Vec<(&'static str, String)> {
    let o = &job.options;
    let duration = |d: Option<SignedDuration>, none: &str| d.map_or_else(|| none.to_owned(), format_duration);
    let retry = match &o.retry {
        None => "none".to_owned(),
        Some(r) => {
            let mut text = format!("up to {} attempts, backoff {}", r.max_attempts, format_duration(r.backoff));
            if r.multiplier != 1.0 {
                text.push_str(&format!(" (×{} each time)", r.multiplier));
            }
            if let Some(cap) = r.max_backoff {
                text.push_str(&format!(", at most {}", format_duration(cap)));
            }
            text
        }
    };
    vec![
        ("timeout", duration(o.timeout, "none")),
        ("max instances", o.max_instances.to_string()),
        ("retry", retry),
        ("misfire grace", duration(o.misfire_grace_time, "none (a late run always runs)")),
        ("coalesce", if o.coalesce { "yes: missed times run once" } else { "no: each missed time runs" }.to_owned()),
        ("jitter", duration(o.jitter, "none")),
    ]
}
