//! The index: the jobs, searched (`q`: id, name, task), filtered (`state`,
//! `task`) and paged (`page`), all in the URL so a view can be shared; and
//! `jobs.json`, the same view's rows as JSON, which the page polls to keep
//! its rows fresh without reloading.
//!
//! The store lists jobs by id only, so the search and the filters run in
//! memory over the whole list (fast enough for tens of thousands of jobs);
//! what is sent is one page of [`PAGE_SIZE`] rows.

use std::collections::{BTreeSet, HashMap};

use askama::Template;
use axum::Json;
use axum::extract::{OriginalUri, Query, State};
use axum::response::{IntoResponse, Response};
use chime_core::{BrokenJob, Job, JobFilter, JobId, Run, RunQuery, RunStatus};
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

fn in_state(job: &Job, state: StateFilter, running: &HashMap<JobId, u32>) -> bool {
    match state {
        StateFilter::Active => job.status() == "active",
        StateFilter::Paused => job.is_paused(),
        StateFilter::Running => running.contains_key(&job.id),
        StateFilter::Failing => {
            matches!(job.state.last_status, Some(RunStatus::Failed | RunStatus::TimedOut | RunStatus::Abandoned))
        }
        StateFilter::Finished => job.status() == "finished",
        StateFilter::Broken => false,
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

/// The view worked out over every job: the page's rows, the chips' counts
/// and the tasks to filter by.
struct Selection {
    now: Timestamp,
    counts: Counts,
    total: usize,
    rows: Vec<JobRow>,
    broken: Vec<BrokenRow>,
    tasks: Vec<String>,
}

async fn select(h: &Handle, view: &View) -> Result<Selection, ApiError> {
    let s = &h.scheduler;
    let jobs = s.store().list_jobs(&JobFilter::default()).await?;
    let broken: Vec<BrokenJob> = h.broken.get(s.store().as_ref()).await?;
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

    let tasks: BTreeSet<&str> = jobs.iter().map(|j| &*j.task).collect();
    let found: Vec<&Job> = jobs.iter().filter(|j| view.finds(j.id.as_str(), j.name(), &j.task)).collect();
    let broken: Vec<&BrokenJob> = broken.iter().filter(|b| view.finds(&b.id, &b.id, "")).collect();
    let mut counts = Counts { all: found.len() + broken.len(), broken: broken.len(), ..Counts::default() };
    for job in &found {
        counts.active += usize::from(in_state(job, StateFilter::Active, &running));
        counts.paused += usize::from(in_state(job, StateFilter::Paused, &running));
        counts.running += usize::from(in_state(job, StateFilter::Running, &running));
        counts.failing += usize::from(in_state(job, StateFilter::Failing, &running));
        counts.finished += usize::from(in_state(job, StateFilter::Finished, &running));
    }

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
            let chosen: Vec<&Job> =
                found.into_iter().filter(|j| state.is_none_or(|st| in_state(j, st, &running))).collect();
            let mut rows = Vec::new();
            for job in chosen.iter().skip(skip).take(PAGE_SIZE) {
                rows.push(job_row(h, job, running.get(&job.id).copied().unwrap_or(0), now).await?);
            }
            // Without a state filter, the broken rows follow the jobs on the last page.
            let broken = if state.is_none() && skip + PAGE_SIZE > chosen.len() {
                broken.iter().map(|b| BrokenRow { id: b.id.clone(), problem: b.problem.clone() }).collect()
            } else {
                Vec::new()
            };
            (chosen.len(), rows, broken)
        }
    };
    Ok(Selection { now, counts, total, rows, broken, tasks: tasks.into_iter().map(str::to_owned).collect() })
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
        paused: job.state.paused.clone(),
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
        tasks: sel.tasks,
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
