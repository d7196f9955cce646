//! The in-memory store: the default, for jobs that need not survive a restart.
//!
//! # Implementation
//!
//! One mutex guards three structures:
//!
//! * `jobs`: every job by id.
//! * `due`: an ordered set of `(next_run_at, id)` for active jobs. The
//!   earliest due job is its first element, so `next_due_at` is O(1) and a
//!   claim of k jobs is O(k log n): an idle scheduler with a million jobs
//!   touches none of them.
//! * `runs`: per job, the last `history_limit` finished runs plus every run
//!   still pending or running (those are never evicted), and a count of the
//!   latter for `max_instances`.
//!
//! Invariant: a job is in `due` exactly when it has a `next_run_at` and is
//! not paused, under that same key. Every mutation goes through
//! [`Inner::put`] and [`Inner::take`] to keep it.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// A `HashMap` with foldhash: job ids are hashed on every claim and update.
type FoldMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Mutex;

use async_trait::async_trait;
use jiff::Timestamp;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::job::{Job, JobId};
use crate::plan::{Decision, plan_fire};
use crate::run::{JobStats, Run, RunKind, RunQuery, RunStatus};
use crate::store::{Claim, ConflictPolicy, JobFilter, JobStore};

/// Finished runs kept per job by default.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;

/// Jobs and run history in memory.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    changes: watch::Sender<u64>,
    history_limit: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// Boxed so that growing the map moves 24-byte entries, and a million
    /// jobs do not pay for the map's spare capacity at full job size.
    jobs: FoldMap<JobId, Box<Job>>,
    due: BTreeSet<(Timestamp, JobId)>,
    runs: FoldMap<JobId, JobRuns>,
}

#[derive(Debug, Default)]
struct JobRuns {
    /// Oldest first.
    runs: VecDeque<Run>,
    in_flight: u32,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store keeping the last 100 finished runs per job.
    pub fn new() -> MemoryStore {
        MemoryStore::with_history_limit(DEFAULT_HISTORY_LIMIT)
    }

    /// An empty store keeping the last `limit` finished runs per job.
    pub fn with_history_limit(limit: usize) -> MemoryStore {
        MemoryStore { inner: Mutex::new(Inner::default()), changes: watch::Sender::new(0), history_limit: limit }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than stopping the scheduler would.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }
}

impl Inner {
    fn put(&mut self, job: Job) {
        if let Some(at) = self.jobs.get(&job.id).and_then(|old| old.state.next_run_at) {
            self.due.remove(&(at, job.id.clone()));
        }
        if let (Some(at), false) = (job.state.next_run_at, job.is_paused()) {
            self.due.insert((at, job.id.clone()));
        }
        self.jobs.insert(job.id.clone(), Box::new(job));
    }

    fn take(&mut self, id: &JobId) -> Option<Job> {
        let job = self.jobs.remove(id)?;
        if let Some(at) = job.state.next_run_at {
            self.due.remove(&(at, id.clone()));
        }
        Some(*job)
    }

    fn record(&mut self, run: Run, history_limit: usize) {
        let entry = self.runs.entry(run.job_id.clone()).or_default();
        if !run.status.is_finished() {
            entry.in_flight += 1;
        }
        entry.runs.push_back(run);
        trim(entry, history_limit);
    }
}

/// Drops the oldest finished runs beyond `limit`; in-flight runs stay.
fn trim(entry: &mut JobRuns, limit: usize) {
    // Every run in flight is in the deque, so this is the finished count
    // (or more, never less): the common case costs nothing.
    if entry.runs.len().saturating_sub(entry.in_flight as usize) <= limit {
        return;
    }
    let finished = entry.runs.iter().filter(|r| r.status.is_finished()).count();
    let mut excess = finished.saturating_sub(limit);
    if excess == 0 {
        return;
    }
    entry.runs.retain(|r| {
        if excess > 0 && r.status.is_finished() {
            excess -= 1;
            false
        } else {
            true
        }
    });
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn add_job(&self, mut job: Job, on_conflict: ConflictPolicy) -> Result<Job> {
        {
            let mut inner = self.lock();
            if let Some(existing) = inner.jobs.get(&job.id) {
                match on_conflict {
                    ConflictPolicy::Error => return Err(Error::JobExists(job.id)),
                    ConflictPolicy::KeepExisting => return Ok((**existing).clone()),
                    ConflictPolicy::Replace => job.state.version = existing.state.version + 1,
                }
            } else {
                job.state.version = 1;
            }
            inner.put(job.clone());
        }
        self.changed();
        Ok(job)
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<Job>> {
        Ok(self.lock().jobs.get(id).map(|j| (**j).clone()))
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let inner = self.lock();
        let mut jobs: Vec<&Job> =
            inner.jobs.values().map(|j| &**j).filter(|j| filter.paused.is_none_or(|p| j.is_paused() == p)).collect();
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(jobs.into_iter().skip(filter.offset).take(filter.limit.unwrap_or(usize::MAX)).cloned().collect())
    }

    async fn update_job(&self, mut job: Job) -> Result<Job> {
        {
            let mut inner = self.lock();
            let Some(existing) = inner.jobs.get(&job.id) else {
                return Err(Error::JobNotFound(job.id));
            };
            if existing.state.version != job.state.version {
                return Err(Error::VersionConflict {
                    id: job.id,
                    expected: job.state.version,
                    found: existing.state.version,
                });
            }
            job.state.version += 1;
            inner.put(job.clone());
        }
        self.changed();
        Ok(job)
    }

    async fn remove_job(&self, id: &JobId) -> Result<Job> {
        let job = self.lock().take(id).ok_or_else(|| Error::JobNotFound(id.clone()))?;
        self.changed();
        Ok(job)
    }

    async fn acquire_due(&self, now: Timestamp, limit: usize, node: &str) -> Result<Vec<Claim>> {
        let node: std::sync::Arc<str> = std::sync::Arc::from(node);
        let node = &node;
        let mut inner = self.lock();
        let mut claims = Vec::new();
        while claims.len() < limit {
            let Some((at, id)) = inner.due.first().cloned() else {
                break;
            };
            if at > now {
                break;
            }
            let mut job = inner.take(&id).expect("every indexed job exists");
            let running = inner.runs.get(&id).map_or(0, |r| r.in_flight);
            let plan = plan_fire(&job, now, running);
            let runs: Vec<Run> = plan
                .runs
                .into_iter()
                .map(|p| match p.decision {
                    Decision::Run => Run::pending(id.clone(), p.scheduled_for, RunKind::Scheduled, node),
                    Decision::Missed(why) => {
                        Run::not_run(id.clone(), p.scheduled_for, RunStatus::Missed, why, node, now)
                    }
                    Decision::Skipped(why) => {
                        Run::not_run(id.clone(), p.scheduled_for, RunStatus::Skipped, why, node, now)
                    }
                })
                .collect();
            for run in &runs {
                inner.record(run.clone(), self.history_limit);
            }
            job.state.next_run_at = plan.next_run_at;
            job.state.version += 1;
            inner.put(job.clone());
            claims.push(Claim { job, runs, uncounted: plan.uncounted });
        }
        Ok(claims)
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>> {
        Ok(self.lock().due.first().map(|(at, _)| *at))
    }

    async fn insert_run(&self, run: Run) -> Result<()> {
        let mut inner = self.lock();
        let exists =
            inner.runs.get(&run.job_id).is_some_and(|r| r.runs.iter().any(|r2| r2.scheduled_for == run.scheduled_for));
        if exists {
            return Err(Error::RunExists { job_id: run.job_id, scheduled_for: run.scheduled_for });
        }
        inner.record(run, self.history_limit);
        Ok(())
    }

    async fn update_run(&self, run: &Run) -> Result<()> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let entry = inner.runs.entry(run.job_id.clone()).or_default();
        match entry.runs.iter_mut().find(|r| r.id == run.id) {
            Some(stored) => {
                if !stored.status.is_finished() && run.status.is_finished() {
                    entry.in_flight = entry.in_flight.saturating_sub(1);
                }
                *stored = run.clone();
            }
            None => entry.runs.push_back(run.clone()),
        }
        trim(entry, self.history_limit);
        if run.status.is_finished()
            && let Some(job) = inner.jobs.get_mut(&run.job_id)
        {
            if run.started_at.is_some() {
                job.state.last_run_at = run.started_at;
            }
            job.state.last_status = Some(run.status);
        }
        Ok(())
    }

    async fn count_running(&self, id: &JobId) -> Result<u32> {
        Ok(self.lock().runs.get(id).map_or(0, |r| r.in_flight))
    }

    async fn history(&self, query: &RunQuery) -> Result<Vec<Run>> {
        let inner = self.lock();
        let mut runs: Vec<&Run> = match &query.job_id {
            Some(id) => inner.runs.get(id).map(|r| r.runs.iter().collect()).unwrap_or_default(),
            None => inner.runs.values().flat_map(|r| r.runs.iter()).collect(),
        };
        runs.retain(|r| query.matches(r));
        runs.sort_by_key(|r| std::cmp::Reverse((r.scheduled_for, r.id)));
        Ok(runs.into_iter().skip(query.offset).take(query.limit()).cloned().collect())
    }

    async fn job_stats(&self, id: &JobId) -> Result<JobStats> {
        let inner = self.lock();
        if !inner.jobs.contains_key(id) && !inner.runs.contains_key(id) {
            return Err(Error::JobNotFound(id.clone()));
        }
        Ok(JobStats::from_runs(inner.runs.get(id).into_iter().flat_map(|r| r.runs.iter())))
    }

    async fn prune(&self, keep_per_job: usize, older_than: Option<Timestamp>) -> Result<u64> {
        let mut inner = self.lock();
        let mut deleted = 0u64;
        for entry in inner.runs.values_mut() {
            let before = entry.runs.len();
            if let Some(cutoff) = older_than {
                entry.runs.retain(|r| !r.status.is_finished() || r.scheduled_for >= cutoff);
            }
            trim(entry, keep_per_job);
            deleted += (before - entry.runs.len()) as u64;
        }
        Ok(deleted)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
