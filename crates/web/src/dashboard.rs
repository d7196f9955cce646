//! The dashboard: server-rendered pages (askama, escaped by default) with a
//! little plain JavaScript for countdowns, polling and the action buttons.
//!
//! Every link and `fetch()` in the pages is relative to the page (through
//! `root`, the way from the page back to the dashboard's own `/`), so the
//! pages work wherever the app mounts them; the API is expected at `api/v1/`
//! beside the dashboard. Job ids in links are percent-encoded, one segment.

use askama::Template;
use axum::extract::{OriginalUri, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chime_core::{Job, JobFilter, Run, RunQuery, RunStatus};
use jiff::{SignedDuration, Timestamp};

use crate::extract::{JobIdPath, encode_segment};
use crate::{ApiError, Handle};

struct Counts {
    jobs: usize,
    active: usize,
    paused: usize,
    running: usize,
    recent: usize,
    failed_recent: usize,
}

struct JobRow {
    id: String,
    /// `id` percent-encoded for a path segment.
    href: String,
    name: String,
    trigger: String,
    next: Option<String>,
    paused: Option<String>,
    last_status: Option<String>,
    last_run: Option<String>,
    last_duration: String,
}

/// A node sharing the store, every instant said relative to the
/// scheduler's clock (not the browser's).
struct NodeRow {
    id: String,
    host: String,
    pid: u32,
    version: String,
    epoch: u64,
    started: String,
    started_ago: String,
    heartbeat_ago: String,
    /// `12s left` or `expired 4s ago`.
    lease: String,
    expired: bool,
    running: u32,
    this_node: bool,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    root: String,
    state: &'static str,
    node: String,
    token_required: bool,
    counts: Counts,
    jobs: Vec<JobRow>,
    nodes: Vec<NodeRow>,
}

struct RunRow {
    scheduled: String,
    status: String,
    duration: String,
    lateness: String,
    attempt: u32,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    root: String,
    state: &'static str,
    node: String,
    token_required: bool,
    id: String,
    name: String,
    task: String,
    trigger: String,
    status: &'static str,
    paused: Option<String>,
    upcoming: Vec<String>,
    timeline: String,
    runs: Vec<RunRow>,
}

fn iso(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn seconds(d: Option<SignedDuration>) -> String {
    match d {
        Some(d) if d.as_secs_f64() < 1.0 => format!("{:.0} ms", d.as_secs_f64() * 1000.0),
        Some(d) => format!("{:.1} s", d.as_secs_f64()),
        None => String::new(),
    }
}

fn html(page: impl Template) -> Response {
    match page.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "render", format!("the page could not be rendered: {e}"))
                .into_response()
        }
    }
}

/// The relative URL of the dashboard's `/` from the index page at `path` (the
/// path the client asked for, prefix included): `./` when it ends with a
/// slash; else the page's own last segment, as in `./scheduler/` for
/// `/scheduler` (nested at `/scheduler`, where axum serves no `/scheduler/`).
fn index_root(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((_, "")) | None => "./".to_owned(),
        Some((_, last)) => format!("./{last}/"),
    }
}

pub(crate) async fn index(State(h): State<Handle>, OriginalUri(uri): OriginalUri) -> Result<Response, ApiError> {
    let s = &h.scheduler;
    let jobs = s.store().list_jobs(&JobFilter::default()).await?;
    let recent = s.history(&RunQuery { limit: Some(100), ..RunQuery::default() }).await?;
    let counts = Counts {
        jobs: jobs.len(),
        active: jobs.iter().filter(|j| !j.is_paused() && j.state.next_run_at.is_some()).count(),
        paused: jobs.iter().filter(|j| j.is_paused()).count(),
        running: recent.iter().filter(|r| r.status == RunStatus::Running).count(),
        recent: recent.iter().filter(|r| r.status.is_finished()).count(),
        failed_recent: recent.iter().filter(|r| matches!(r.status, RunStatus::Failed | RunStatus::TimedOut)).count(),
    };
    let rows = jobs.iter().map(|j| job_row(j, &recent)).collect();
    let (now, nodes) = crate::nodes::nodes(s).await?;
    Ok(html(DashboardPage {
        root: index_root(uri.path()),
        state: s.state().as_str(),
        node: s.node_id().to_owned(),
        token_required: h.has_token(),
        counts,
        jobs: rows,
        nodes: nodes.iter().map(|n| node_row(n, now)).collect(),
    }))
}

fn node_row(n: &crate::nodes::Node, now: Timestamp) -> NodeRow {
    use crate::nodes::human;
    // A store on another clock may be a little ahead of this one.
    let ago = |t: Timestamp| format!("{} ago", human(now.duration_since(t).max(SignedDuration::ZERO)));
    let expired = n.lease_left.is_negative();
    NodeRow {
        id: n.info.id.clone(),
        host: n.info.host.clone(),
        pid: n.info.pid,
        version: n.info.version.clone(),
        epoch: n.info.epoch,
        started: iso(n.info.started_at),
        started_ago: ago(n.info.started_at),
        heartbeat_ago: ago(n.info.heartbeat_at),
        lease: if expired {
            format!("expired {} ago", human(n.lease_left))
        } else {
            format!("{} left", human(n.lease_left))
        },
        expired,
        running: n.info.running,
        this_node: n.this_node,
    }
}

fn job_row(j: &Job, recent: &[Run]) -> JobRow {
    let last = recent.iter().find(|r| r.job_id == j.id && r.status.is_finished());
    JobRow {
        id: j.id.to_string(),
        href: encode_segment(j.id.as_str()),
        name: j.name().to_owned(),
        trigger: j.trigger.describe(),
        next: j.state.next_run_at.map(iso),
        paused: j.state.paused.clone(),
        last_status: j.state.last_status.map(|s| s.to_string()),
        last_run: j.state.last_run_at.map(iso),
        last_duration: seconds(last.and_then(Run::duration)),
    }
}

/// A job's page. It shows no arguments, so no secret (see `redact`).
pub(crate) async fn job(State(h): State<Handle>, JobIdPath(id): JobIdPath) -> Result<Response, ApiError> {
    let s = &h.scheduler;
    let job = s.get_job(id.as_str()).await?;
    let upcoming = s.upcoming(id.as_str(), 5).await?.into_iter().map(iso).collect();
    let runs = s.history(&RunQuery { job_id: Some(job.id.clone()), limit: Some(50), ..RunQuery::default() }).await?;
    let status = job.status();
    Ok(html(JobPage {
        // The page is `<root>jobs/<id>`, the id one encoded segment.
        root: "../".to_owned(),
        state: s.state().as_str(),
        node: s.node_id().to_owned(),
        token_required: h.has_token(),
        id: job.id.to_string(),
        name: job.name().to_owned(),
        task: job.task.to_string(),
        trigger: job.trigger.describe(),
        status,
        paused: job.state.paused.clone(),
        upcoming,
        timeline: timeline(&runs),
        runs: runs
            .iter()
            .map(|r| RunRow {
                scheduled: iso(r.scheduled_for),
                status: r.status.to_string(),
                duration: seconds(r.duration()),
                lateness: seconds(r.lateness()),
                attempt: r.attempt,
                error: r
                    .error
                    .clone()
                    .filter(|_| matches!(r.status, RunStatus::Failed | RunStatus::TimedOut | RunStatus::Abandoned)),
            })
            .collect(),
    }))
}

/// An SVG chart of the runs (given newest first): one bar per run for its
/// duration, red when it failed, and a dot for its lateness. Every value in
/// it is a number or a fixed word, so it needs no escaping.
fn timeline(runs: &[Run]) -> String {
    let runs: Vec<&Run> = runs.iter().rev().filter(|r| r.status.is_finished()).collect();
    if runs.is_empty() {
        return String::new();
    }
    let (w, h, pad) = (600.0, 120.0, 4.0);
    let max = runs
        .iter()
        .flat_map(|r| [r.duration(), r.lateness()])
        .flatten()
        .map(|d| d.as_secs_f64())
        .fold(0.001_f64, f64::max);
    let step = (w - 2.0 * pad) / runs.len() as f64;
    let bar = (step * 0.7).max(1.0);
    let mut svg = format!(
        r#"<svg viewBox="0 0 {w} {h}" width="100%" height="{h}" role="img" aria-label="durations and lateness of the last {} runs" style="max-width: {w}px">"#,
        runs.len()
    );
    svg.push_str(&format!(
        r#"<line x1="0" y1="{0}" x2="{w}" y2="{0}" stroke="currentColor" stroke-opacity=".2"/>"#,
        h - pad
    ));
    for (i, r) in runs.iter().enumerate() {
        let x = pad + i as f64 * step;
        let failed = matches!(r.status, RunStatus::Failed | RunStatus::TimedOut | RunStatus::Abandoned);
        let colour = if failed {
            "#c0392b"
        } else if r.status == RunStatus::Succeeded {
            "#1f7a4d"
        } else {
            "#b7791f"
        };
        let d = r.duration().map_or(0.0, |d| d.as_secs_f64());
        let bh = ((d / max) * (h - 2.0 * pad)).max(2.0);
        svg.push_str(&format!(
            r#"<rect x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{bh:.1}" fill="{colour}"><title>{} {} {:.3}s</title></rect>"#,
            h - pad - bh,
            iso(r.scheduled_for),
            r.status,
            d
        ));
        if let Some(late) = r.lateness() {
            let y = h - pad - (late.as_secs_f64().max(0.0) / max) * (h - 2.0 * pad);
            svg.push_str(&format!(r##"<circle cx="{:.1}" cy="{y:.1}" r="2.5" fill="#3451b2"/>"##, x + bar / 2.0));
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_finds_its_root_from_its_path() {
        assert_eq!(index_root("/"), "./");
        assert_eq!(index_root("/scheduler/"), "./");
        assert_eq!(index_root("/scheduler"), "./scheduler/");
        assert_eq!(index_root("/ops/chime"), "./chime/");
    }
}
