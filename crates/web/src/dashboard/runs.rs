//! The runs page: recent runs across all jobs, newest first, filtered by
//! `status`, `job` and a time window (`window`, or `since` / `until`) and
//! paged, every filter in the URL. A run that failed opens to its error and
//! output. The rows are also the job page's.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use chime_core::{Job, JobId, Run, RunQuery, RunStatus, Zone};
use jiff::{SignedDuration, Timestamp};

use super::chart::is_failure;
use super::pager::Pager;
use super::params::{PAGE_SIZE, Params, query_string};
use super::time::{Shown, seconds};
use super::{Chrome, QueryPairs, html};
use crate::extract::encode_segment;
use crate::{ApiError, Handle};

/// A run as the runs page and the job page list it.
pub(crate) struct RunRow {
    pub(crate) job_id: String,
    /// `job_id` percent-encoded for a path segment.
    pub(crate) job_href: String,
    pub(crate) scheduled: Shown,
    /// `scheduled` (the cron's time) or `manual` (run now).
    pub(crate) kind: &'static str,
    pub(crate) status: &'static str,
    pub(crate) duration: String,
    pub(crate) lateness: String,
    pub(crate) attempt: u32,
    pub(crate) node: String,
    pub(crate) error: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) late_result: Option<String>,
    /// The first line of the error, for the row's summary.
    pub(crate) headline: String,
    /// Whether the row opens to more (an error, output or a late result).
    pub(crate) has_details: bool,
    /// Open at first: a failure's error is what the reader came for.
    pub(crate) failed: bool,
}

impl RunRow {
    /// The run as shown, its instants in `zone` (the job's). The error and
    /// output are shown as the API shows them: as the task wrote them.
    pub(crate) fn new(run: &Run, zone: &Zone, now: Timestamp) -> RunRow {
        let late_result = run.late_result.as_ref().map(|_| run.late_result_text());
        let headline = run.error.as_deref().and_then(|e| e.lines().next()).unwrap_or("").to_owned();
        RunRow {
            job_id: run.job_id.to_string(),
            job_href: encode_segment(run.job_id.as_str()),
            scheduled: Shown::new(run.scheduled_for, zone, now),
            kind: run.kind.as_str(),
            status: run.status.as_str(),
            duration: seconds(run.duration()),
            lateness: seconds(run.lateness()),
            attempt: run.attempt,
            node: run.node.as_deref().unwrap_or("").to_owned(),
            has_details: run.error.is_some() || run.output.is_some() || late_result.is_some(),
            failed: is_failure(run.status),
            error: run.error.clone(),
            output: run.output.clone(),
            late_result,
            headline,
        }
    }
}

/// The `status` filter: one status, or every way of ending badly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusFilter {
    One(RunStatus),
    /// Failed, timed out or abandoned.
    Failures,
}

fn status_choices() -> Vec<(&'static str, StatusFilter)> {
    let mut choices = vec![("failures", StatusFilter::Failures)];
    choices.extend(RunStatus::ALL.iter().map(|s| (s.as_str(), StatusFilter::One(*s))));
    choices
}

/// The `window` filter: the last hour, day, week or 30 days.
const WINDOWS: [(&str, i64); 4] = [("1h", 1), ("24h", 24), ("7d", 7 * 24), ("30d", 30 * 24)];

/// What the URL asks to see.
struct View {
    status: Option<(&'static str, StatusFilter)>,
    job: Option<JobId>,
    window: Option<&'static str>,
    since: Option<String>,
    until: Option<String>,
    page: usize,
}

impl View {
    fn parse(query: QueryPairs) -> Result<View, ApiError> {
        let Query(pairs) = query?;
        let p = Params::new(pairs, &["status", "job", "window", "since", "until", "page"])?;
        let choices = status_choices();
        let status = p.choice("status", &choices)?.map(|s| (choices.iter().find(|(_, v)| *v == s).unwrap().0, s));
        let job = p
            .get("job")
            .map(|j| JobId::new(j).map_err(|e| ApiError::malformed(format!("job {j:?}: {e}"))))
            .transpose()?;
        let window = p.choice("window", &WINDOWS.map(|(w, _)| (w, w)))?;
        if window.is_some() && (p.get("since").is_some() || p.get("until").is_some()) {
            return Err(ApiError::malformed("window: give a window or since/until, not both"));
        }
        Ok(View {
            status,
            job,
            window,
            since: p.get("since").map(str::to_owned),
            until: p.get("until").map(str::to_owned),
            page: p.page()?,
        })
    }

    fn link(&self, page: usize) -> String {
        query_string(&[
            ("status", self.status.map(|(w, _)| w.to_owned())),
            ("job", self.job.as_ref().map(JobId::to_string)),
            ("window", self.window.map(str::to_owned)),
            ("since", self.since.clone()),
            ("until", self.until.clone()),
            ("page", (page > 1).then(|| page.to_string())),
        ])
    }
}

/// `since` or `until`: an RFC 3339 instant (`2026-12-01T22:00:00Z`), or a
/// wall-clock time in the scheduler's zone as a browser's date-time field
/// sends it (`2026-12-01T22:00`).
fn instant(name: &str, text: &str, zone: &Zone) -> Result<Timestamp, ApiError> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned_datetime(zone.time_zone().clone()).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| {
            ApiError::malformed(format!(
                "{name} {text:?}: expected an instant such as 2026-12-01T22:00:00Z, or a date and time such as 2026-12-01T22:00 (in {zone})"
            ))
        })
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    c: Chrome,
    status: &'static str,
    statuses: Vec<&'static str>,
    job: String,
    window: &'static str,
    windows: Vec<&'static str>,
    since: String,
    until: String,
    zone: String,
    runs: Vec<RunRow>,
    pager: Pager,
}

pub(crate) async fn runs(State(h): State<Handle>, query: QueryPairs) -> Result<Response, ApiError> {
    let view = View::parse(query)?;
    let s = &h.scheduler;
    let now = s.clock().now();
    let zone = s.timezone();
    let (mut since, mut until) = (None, None);
    if let Some(w) = view.window {
        let hours = WINDOWS.iter().find(|(word, _)| *word == w).map_or(24, |(_, h)| *h);
        since = now.checked_sub(SignedDuration::from_hours(hours)).ok();
    }
    if let Some(t) = &view.since {
        since = Some(instant("since", t, zone)?);
    }
    if let Some(t) = &view.until {
        until = Some(instant("until", t, zone)?);
    }
    let statuses = match view.status {
        None => Vec::new(),
        Some((_, StatusFilter::One(s))) => vec![s],
        Some((_, StatusFilter::Failures)) => vec![RunStatus::Failed, RunStatus::TimedOut, RunStatus::Abandoned],
    };
    // One more than a page, to know whether there is a next one.
    let query = RunQuery {
        job_id: view.job.clone(),
        statuses,
        since,
        until,
        limit: Some(PAGE_SIZE + 1),
        offset: (view.page - 1) * PAGE_SIZE,
    };
    let mut found = s.history(&query).await?;
    let more = found.len() > PAGE_SIZE;
    found.truncate(PAGE_SIZE);

    // Each run in its job's zone; a removed job's in the scheduler's.
    let mut jobs: HashMap<JobId, Option<Job>> = HashMap::new();
    for run in &found {
        if !jobs.contains_key(&run.job_id) {
            let job = s.store().get_job(&run.job_id).await.ok().flatten();
            jobs.insert(run.job_id.clone(), job);
        }
    }
    let rows = found
        .iter()
        .map(|run| {
            let zone = jobs.get(&run.job_id).and_then(|j| j.as_ref()).and_then(|j| j.trigger.zone()).unwrap_or(zone);
            RunRow::new(run, zone, now)
        })
        .collect::<Vec<_>>();
    let root = "./".to_owned();
    let pager = Pager::open_ended(view.page, rows.len(), more, |page| format!("{root}runs{}", view.link(page)));
    Ok(html(RunsPage {
        c: Chrome::new(&h, root, now, "runs"),
        status: view.status.map_or("", |(w, _)| w),
        statuses: status_choices().into_iter().map(|(w, _)| w).collect(),
        job: view.job.as_ref().map(JobId::to_string).unwrap_or_default(),
        window: view.window.unwrap_or(""),
        windows: WINDOWS.iter().map(|(w, _)| *w).collect(),
        since: view.since.clone().unwrap_or_default(),
        until: view.until.clone().unwrap_or_default(),
        zone: zone.name().to_owned(),
        runs: rows,
        pager,
    }))
}
