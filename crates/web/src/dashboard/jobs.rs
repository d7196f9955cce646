//! The index: the jobs, searched (`q`: id, name, task), filtered (`state`,
//! `task`) and paged (`page`), all in the URL so a view can be shared; and
//! `jobs.json`, the same view's rows as JSON, which the page polls to keep
//! its rows fresh without reloading.
//!
//! The store searches, filters, counts and pages (`JobFilter`), so a page
//! reads one page of [`PAGE_SIZE`] jobs, not every job; the chips' counts
//! come from the store's indexes (a search reads every job row once). The
//! broken rows, which are few, are searched here.

use std::collections::HashMap;

use askama::Template;
use axum::Json;
use axum::extract::{OriginalUri, Query, State};
use axum::response::{IntoResponse, Response};
use chime_core::{BrokenJob, Job, JobFilter, JobId, JobStatus, Run, RunQuery, RunStatus};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::pager::Pager;
use super::params::{PAGE_SIZE, Params, query_string};
use super::time::{Shown, seconds};
use super::{Chrome, QueryPairs, html, index_root};
use crate::extract::encode_segment;
use crate::nodes::{Node, human};
use crate::{ApiError, Handle};

/// The `state` filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StateFilter {
    /// Not paused, with a next fire time.
    Active,
    Paused,
    /// With a run pending or running now.
    Running,
    /// Whose last run failed, timed out or was abandoned.
    Failing,
    /// Whose trigger has no more fire times.
    Finished,
    /// Stored rows that no longer decode.
    Broken,
}

pub(crate) const STATES: [(&str, StateFilter); 6] = [
    ("active", StateFilter::Active),
    ("paused", StateFilter::Paused),
    ("running", StateFilter::Running),
    ("failing", StateFilter::Failing),
    ("finished", StateFilter::Finished),
    ("broken", StateFilter::Broken),
];

/// What the URL asks to see.
struct View {
    q: Option<String>,
    /// `q` lowercased once, for a search in any case.
    needle: Option<String>,
    state: Option<StateFilter>,
    task: Option<String>,
    page: usize,
}

impl View {
    fn parse(query: QueryPairs) -> Result<View, ApiError> {
        let Query(pairs) = query?;
        let p = Params::new(pairs, &["q", "state", "task", "page"])?;
        let q = p.search()?;
        Ok(View {
            needle: q.as_deref().map(str::to_lowercase),
            q,
            state: p.choice("state", &STATES)?,
            task: p.get("task").map(str::to_owned),
            page: p.page()?,
        })
    }

    /// The query string of this view with another state and page.
    fn link(&self, state: Option<StateFilter>, page: usize) -> String {
        let word = state.and_then(|s| STATES.iter().find(|(_, v)| *v == s)).map(|(w, _)| (*w).to_owned());
        query_string(&[
            ("q", self.q.clone()),
            ("state", word),
            ("task", self.task.clone()),
            ("page", (page > 1).then(|| page.to_string())),
        ])
    }

    fn state_word(&self) -> &'static str {
        self.state.and_then(|s| STATES.iter().find(|(_, v)| *v == s)).map_or("", |(w, _)| w)
    }

    /// Whether `job` passes the search and the task filter.
    fn finds(&self, id: &str, name: &str, task: &str) -> bool {
        let text = |haystack: &str, needle: &str| haystack.to_lowercase().contains(needle);
        self.task.as_deref().is_none_or(|t| t == task)
            && self.needle.as_deref().is_none_or(|q| text(id, q) || text(name, q) || text(task, q))
    }
}

impl StateFilter {
    /// The store's filter for this state; none for broken rows, which the
    /// store cannot list as jobs.
    fn status(self) -> Option<JobStatus> {
        match self {
            StateFilter::Active => Some(JobStatus::Active),
            StateFilter::Paused => Some(JobStatus::Paused),
            StateFilter::Running => Some(JobStatus::Running),
            StateFilter::Failing => Some(JobStatus::Failing),
            StateFilter::Finished => Some(JobStatus::Finished),
            StateFilter::Broken => None,
        }
    }
}

/// How many jobs the search finds in each state (the filter's chips).
#[derive(Default, Serialize)]
struct Counts {
    all: usize,
    active: usize,
    paused: usize,
    running: usize,
    failing: usize,
    finished: usize,
    broken: usize,
}

impl Counts {
    fn get(&self, state: StateFilter) -> usize {
        match state {
            StateFilter::Active => self.active,
            StateFilter::Paused => self.paused,
            StateFilter::Running => self.running,
            StateFilter::Failing => self.failing,
            StateFilter::Finished => self.finished,
            StateFilter::Broken => self.broken,
        }
    }
}

/// A job's row, as the page renders it and `jobs.json` sends it.
#[derive(Serialize)]
struct JobRow {
    id: String,
    /// `id` percent-encoded for a path segment.
    #[serde(skip)]
    href: String,
    name: String,
    task: String,
    trigger: String,
    /// `running` while a run is in flight, else `active`, `paused` or `finished`.
    status: &'static str,
    paused: Option<String>,
    /// Why the job is in alert (`alert_after`, `alert_on_failures`), if it is.
    alert: Option<String>,
    running: u32,
    next: Option<Shown>,
    last: Option<LastRun>,
}

#[derive(Serialize)]
struct LastRun {
    status: &'static str,
    at: Option<Shown>,
    duration: String,
}

/// A stored row that does not decode: its id and what is wrong.
struct BrokenRow {
    id: String,
    problem: String,
}

/// A filter chip: a state, how many jobs are in it, and its link.
struct Chip {
    word: &'static str,
    count: usize,
    href: String,
    current: bool,
}

/// The view: the page's rows and the chips' counts.
struct Selection {
    now: Timestamp,
    counts: Counts,
    total: usize,
    rows: Vec<JobRow>,
    broken: Vec<BrokenRow>,
}

/// The most tasks the task filter offers.
const MAX_TASKS: usize = 200;

async fn select(h: &Handle, view: &View) -> Result<Selection, ApiError> {
    let s = &h.scheduler;
    let store = s.store();
    let broken: Vec<BrokenJob> = h.broken.get(store.as_ref()).await?;
    // Runs in flight are few; ask for them all at once rather than per job.
    let in_flight = s
        .history(&RunQuery {
            statuses: vec![RunStatus::Pending, RunStatus::Running],
            limit: Some(crate::extract::MAX_OFFSET as usize),
            ..RunQuery::default()
        })
        .await?;
    let mut running: HashMap<JobId, u32> = HashMap::new();
    for run in &in_flight {
        *running.entry(run.job_id.clone()).or_default() += 1;
    }
    let now = s.clock().now();

    // The search and the task filter go to the store, which counts (in one
    // statement) and pages; no page reads every job.
    let found = JobFilter { search: view.q.clone(), task: view.task.clone(), ..JobFilter::default() };
    let broken: Vec<&BrokenJob> =
        broken.iter().filter(|b| view.task.is_none() && view.finds(&b.id, &b.id, "")).collect();
    let c = store.count_jobs(&found).await?;
    let counts = Counts {
        all: c.all + broken.len(),
        active: c.active,
        paused: c.paused,
        running: c.running,
        failing: c.failing,
        finished: c.finished,
        broken: broken.len(),
    };

    let skip = (view.page - 1) * PAGE_SIZE;
    let (total, rows, broken) = match view.state {
        Some(StateFilter::Broken) => {
            let rows = broken
                .iter()
                .skip(skip)
                .take(PAGE_SIZE)
                .map(|b| BrokenRow { id: b.id.clone(), problem: b.problem.clone() })
                .collect();
            (broken.len(), Vec::new(), rows)
        }
        state => {
            let status = state.and_then(StateFilter::status);
            let total = state.map_or(c.all, |st| counts.get(st));
            let page = JobFilter { status, limit: Some(PAGE_SIZE), offset: skip, ..found.clone() };
            let mut rows = Vec::new();
            for job in store.list_jobs(&page).await? {
                rows.push(job_row(h, &job, running.get(&job.id).copied().unwrap_or(0), now).await?);
            }
            // Without a state filter, the broken rows follow the jobs on the last page.
            let broken = if state.is_none() && skip + PAGE_SIZE > total {
                broken.iter().map(|b| BrokenRow { id: b.id.clone(), problem: b.problem.clone() }).collect()
            } else {
                Vec::new()
            };
            (total, rows, broken)
        }
    };
    Ok(Selection { now, counts, total, rows, broken })
}

async fn job_row(h: &Handle, job: &Job, running: u32, now: Timestamp) -> Result<JobRow, ApiError> {
    let zone = job.trigger.zone().unwrap_or(h.scheduler.timezone());
    let last = match job.state.last_status {
        None => None,
        Some(status) => {
            // One indexed read per row shown (never per job stored), for the duration.
            let finished = RunStatus::ALL.into_iter().filter(|s| s.is_finished()).collect();
            let query =
                RunQuery { job_id: Some(job.id.clone()), statuses: finished, limit: Some(1), ..RunQuery::default() };
            let run = h.scheduler.history(&query).await?.into_iter().next();
            Some(LastRun {
                status: status.as_str(),
                at: job.state.last_run_at.map(|t| Shown::new(t, zone, now)),
                duration: seconds(run.as_ref().and_then(Run::duration)),
            })
        }
    };
    // Read only for jobs with an alert option, a few runs each.
    let alert = chime_core::check_job(&**h.scheduler.store(), job, now).await?.map(|a| a.reason);
    Ok(JobRow {
        alert,
        id: job.id.to_string(),
        href: encode_segment(job.id.as_str()),
        name: job.name().to_owned(),
        task: job.task.to_string(),
        trigger: job.trigger.describe(),
        status: if running > 0 { "running" } else { job.status() },
        paused: job.state.paused.as_deref().map(str::to_owned),
        running,
        next: job.state.next_run_at.map(|t| Shown::new(t, zone, now)),
        last,
    })
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

fn node_row(n: &Node, now: Timestamp) -> NodeRow {
    // A store on another clock may be a little ahead of this one.
    let ago = |t: Timestamp| format!("{} ago", human(now.duration_since(t).max(SignedDuration::ZERO)));
    let expired = n.lease_left.is_negative();
    NodeRow {
        id: n.info.id.clone(),
        host: n.info.host.clone(),
        pid: n.info.pid,
        version: n.info.version.clone(),
        epoch: n.info.epoch,
        started: super::time::iso(n.info.started_at),
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

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    c: Chrome,
    q: String,
    state: &'static str,
    task: String,
    tasks: Vec<String>,
    /// The "all" chip, then one per state.
    chips: Vec<Chip>,
    total: usize,
    pager: Pager,
    jobs: Vec<JobRow>,
    broken: Vec<BrokenRow>,
    nodes: Vec<NodeRow>,
    /// Every job in alert, whatever the view: (id, id encoded for a path, reason).
    alerts: Vec<(String, String, String)>,
}

pub(crate) async fn index(
    State(h): State<Handle>,
    OriginalUri(uri): OriginalUri,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let view = View::parse(query)?;
    let sel = select(&h, &view).await?;
    let root = index_root(uri.path());
    let mut chips = vec![Chip {
        word: "all",
        count: sel.counts.all,
        href: format!("{root}{}", view.link(None, 1)),
        current: view.state.is_none(),
    }];
    chips.extend(STATES.iter().map(|(word, state)| Chip {
        word,
        count: sel.counts.get(*state),
        href: format!("{root}{}", view.link(Some(*state), 1)),
        current: view.state == Some(*state),
    }));
    let (now, nodes) = crate::nodes::nodes(&h.scheduler).await?;
    let alerts = h
        .scheduler
        .alerts()
        .await?
        .into_iter()
        .map(|a| (a.job_id.to_string(), encode_segment(a.job_id.as_str()), a.reason))
        .collect();
    let pager = Pager::new(sel.total, view.page, |page| format!("{root}{}", view.link(view.state, page)));
    Ok(html(JobsPage {
        c: Chrome::new(&h, root, sel.now, "jobs"),
        q: view.q.clone().unwrap_or_default(),
        state: view.state_word(),
        task: view.task.clone().unwrap_or_default(),
        // Read for the page only, not for its poll: the store may read every job row.
        tasks: h.scheduler.store().job_tasks(MAX_TASKS).await?,
        chips,
        total: sel.total,
        pager,
        jobs: sel.rows,
        broken: sel.broken,
        nodes: nodes.iter().map(|n| node_row(n, now)).collect(),
        alerts,
    }))
}

/// `jobs.json`: the rows of the view the query names (as on the page), with
/// the counts and the scheduler's now, for the page's poll.
pub(crate) async fn live(State(h): State<Handle>, query: QueryPairs) -> Result<Response, ApiError> {
    let view = View::parse(query)?;
    let sel = select(&h, &view).await?;
    let broken: Vec<&str> = sel.broken.iter().map(|b| b.id.as_str()).collect();
    Ok(Json(serde_json::json!({
        "now": super::time::iso(sel.now),
        "state": h.scheduler.state().as_str(),
        "total": sel.total,
        "counts": sel.counts,
        "rows": sel.rows,
        "broken": broken,
    }))
    .into_response())
}
