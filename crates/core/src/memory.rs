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
//! * `unclaimed`: requested (or re-queued) runs that no node holds yet, by
//!   scheduled time.
//! * `nodes`: the registered nodes and their leases. Two schedulers in one
//!   process may share a store, so leases hold here too.
//!
//! Invariant: a job is in `due` exactly when it has a `next_run_at` and is
//! not paused, under that same key, and `paused` counts the paused jobs.
//! Every mutation goes through [`Inner::put`] and [`Inner::take`] to keep it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use crate::clock::later;
use crate::error::{Error, Result};
use crate::id::{JobId, RunId};
use crate::job::Job;
use crate::node::{ClaimRequest, Lease, NodeInfo, NodeRegistration, SweptRun, backfill_run, requested_run, sweep_run};
use crate::plan::plan_fire;
use crate::reason::{CancelledBy, Reason, Stage};
use crate::run::{JobStats, Run, RunQuery};
use crate::status::RunStatus;
use crate::store::{Claim, ConflictPolicy, JobFilter, JobStore};

mod table;
use table::JobTable;

/// A `HashMap` with foldhash: job ids are hashed on every claim and update.
type FoldMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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
    /// Boxed so that growing the table moves 8-byte entries, and a million
    /// jobs do not pay for its spare capacity at full job size.
    jobs: JobTable,
    due: BTreeSet<(Timestamp, JobId)>,
    runs: FoldMap<JobId, JobRuns>,
    unclaimed: BTreeSet<(Timestamp, RunId, JobId)>,
    nodes: BTreeMap<Arc<str>, NodeRow>,
    /// The last epoch granted.
    epoch: u64,
    /// The alert episode each job last notified (`notify_alert`); gone with the job.
    notified: FoldMap<JobId, Timestamp>,
    /// Jobs paused, kept by `put` and `take`: with `due` (the active ones)
    /// it counts jobs by state without walking them (`job_counts`).
    paused: usize,
}

#[derive(Debug)]
struct NodeRow {
    registration: NodeRegistration,
    epoch: u64,
    started_at: Timestamp,
    heartbeat_at: Timestamp,
    expires_at: Timestamp,
}

impl NodeRow {
    fn lease(&self) -> Lease {
        Lease { node: Arc::clone(&self.registration.id), epoch: self.epoch, expires_at: self.expires_at }
    }
}

#[derive(Debug, Default)]
struct JobRuns {
    /// Oldest first.
    runs: VecDeque<Run>,
    in_flight: u32,
    /// The latest scheduled time ever recorded: a claim for a later time
    /// (the usual case) needs no look for a run already at that time.
    latest: Option<Timestamp>,
}

impl JobRuns {
    /// The ids of the runs in flight: walked only when there are some, so
    /// a claim of an idle job costs nothing.
    fn in_flight_ids(&self) -> Vec<RunId> {
        if self.in_flight == 0 {
            return Vec::new();
        }
        self.runs.iter().filter(|r| !r.status.is_finished()).map(|r| r.id).collect()
    }
}

/// Counts a job being stored into the indexes beside the map: `due` when it
/// is active with a next run, `paused` when paused.
fn index(due: &mut BTreeSet<(Timestamp, JobId)>, paused: &mut usize, job: &Job) {
    if let (Some(at), false) = (job.state.next_run_at, job.is_paused()) {
        due.insert((at, job.id.clone()));
    }
    *paused += usize::from(job.is_paused());
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
    /// The jobs `filter` admits, in no order.
    fn admitted<'a>(&'a self, filter: &'a JobFilter) -> impl Iterator<Item = &'a Job> + 'a {
        self.jobs.values().filter(|j| filter.admits(j, self.in_flight(&j.id)))
    }

    /// Whether the job has a run pending or running now.
    fn in_flight(&self, id: &JobId) -> bool {
        self.runs.get(id).is_some_and(|r| r.in_flight > 0)
    }

    fn put(&mut self, job: Job) {
        if let Some(old) = self.jobs.get(&job.id) {
            self.paused -= usize::from(old.is_paused());
            if let Some(at) = old.state.next_run_at {
                self.due.remove(&(at, job.id.clone()));
            }
        }
        index(&mut self.due, &mut self.paused, &job);
        self.jobs.insert(Box::new(job));
    }

    /// Moves a due job (`key` is its entry in `due`) to its next fire
    /// time, in place: what a claim changes.
    fn reschedule(&mut self, key: (Timestamp, JobId), next_run_at: Option<Timestamp>) -> &Job {
        self.due.remove(&key);
        let (_, id) = key;
        let job = self.jobs.get_mut(&id).expect("every indexed job exists");
        job.state.next_run_at = next_run_at;
        if let Some(at) = next_run_at {
            // Due means not paused: the index takes it back.
            self.due.insert((at, id));
        }
        job
    }

    fn take(&mut self, id: &JobId) -> Option<Job> {
        let job = self.jobs.remove(id)?;
        self.paused -= usize::from(job.is_paused());
        if let Some(at) = job.state.next_run_at {
            self.due.remove(&(at, id.clone()));
        }
        Some(*job)
    }

    fn record(&mut self, run: Run, history_limit: usize) {
        if run.status == RunStatus::Pending && run.node.is_none() {
            self.unclaimed.insert((run.scheduled_for, run.id, run.job_id.clone()));
        }
        // Room for one run to begin with: a deque's first growth is to four
        // (1,152 bytes of runs), past the allocator's thread cache, and a
        // one-off job never has more than one.
        let entry = self
            .runs
            .entry(run.job_id.clone())
            .or_insert_with(|| JobRuns { runs: VecDeque::with_capacity(1), ..JobRuns::default() });
        if !run.status.is_finished() {
            entry.in_flight += 1;
        }
        entry.latest = entry.latest.max(Some(run.scheduled_for));
        entry.runs.push_back(run);
        trim(entry, history_limit);
    }

    fn has_run_at(&self, id: &JobId, at: Timestamp) -> bool {
        self.runs
            .get(id)
            .is_some_and(|r| r.latest.is_some_and(|l| l >= at) && r.runs.iter().any(|r| r.scheduled_for == at))
    }

    fn run_mut(&mut self, job: &JobId, run: RunId) -> Option<&mut Run> {
        // Newest first: the runs updated are those in flight, at the end of a
        // history of up to `history_limit` finished ones.
        self.runs.get_mut(job)?.runs.iter_mut().rev().find(|r| r.id == run)
    }

    /// Renews `lease` if this store still has it.
    fn renew(&mut self, lease: &Lease, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        match self.nodes.get_mut(&lease.node) {
            Some(row) if row.epoch == lease.epoch => {
                row.heartbeat_at = now;
                row.expires_at = later(now, ttl);
                Ok(row.lease())
            }
            _ => Err(lost(lease)),
        }
    }

    fn holds(&self, lease: &Lease) -> bool {
        self.nodes.get(&lease.node).is_some_and(|row| row.epoch == lease.epoch)
    }

    /// A finished run's effect on its job: last run time and status.
    fn note_finished(&mut self, run: &Run) {
        if let Some(job) = self.jobs.get_mut(&run.job_id) {
            if run.started_at.is_some() {
                job.state.last_run_at = run.started_at;
            }
            job.state.last_status = Some(run.status);
        }
    }
}

fn lost(lease: &Lease) -> Error {
    Error::LeaseLost { node: lease.node.to_string(), epoch: lease.epoch }
}

/// The scheduled time for a run requested at `now`: `now`, or the first
/// microsecond after it that the job has no run for (runs are unique per time).
fn free_time(inner: &Inner, id: &JobId, now: Timestamp) -> Timestamp {
    let mut at = now;
    while inner.has_run_at(id, at) {
        at = later(at, SignedDuration::from_micros(1));
    }
    at
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
                    ConflictPolicy::KeepExisting => return Ok(existing.clone()),
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

    async fn add_jobs(&self, mut jobs: Vec<Job>, on_conflict: ConflictPolicy) -> Result<Vec<Job>> {
        {
            let mut inner = self.lock();
            if on_conflict == ConflictPolicy::Error
                && let Some(taken) = jobs.iter().find(|j| inner.jobs.contains_key(&j.id))
            {
                return Err(Error::JobExists(taken.id.clone()));
            }
            for job in &mut jobs {
                let inner = &mut *inner;
                // A new id (the usual case) is hashed once more, not three times.
                let existing = match inner.jobs.entry(&job.id) {
                    hashbrown::hash_table::Entry::Vacant(slot) => {
                        job.state.version = 1;
                        index(&mut inner.due, &mut inner.paused, job);
                        slot.insert(Box::new(job.clone()));
                        continue;
                    }
                    hashbrown::hash_table::Entry::Occupied(slot) => slot.into_mut(),
                };
                if on_conflict == ConflictPolicy::KeepExisting {
                    *job = (**existing).clone();
                    continue;
                }
                job.state.version = existing.state.version + 1;
                inner.put(job.clone());
            }
        }
        self.changed();
        Ok(jobs)
    }

    async fn job_counts(&self) -> Result<crate::store::JobCounts> {
        let inner = self.lock();
        let (jobs, active, paused) = (inner.jobs.len(), inner.due.len(), inner.paused);
        Ok(crate::store::JobCounts { jobs, active, paused, finished: jobs - active - paused, broken: 0 })
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<Job>> {
        Ok(self.lock().jobs.get(id).cloned())
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let inner = self.lock();
        let mut jobs: Vec<&Job> = inner.admitted(filter).collect();
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(jobs.into_iter().skip(filter.offset).take(filter.limit.unwrap_or(usize::MAX)).cloned().collect())
    }

    async fn count_jobs(&self, filter: &JobFilter) -> Result<crate::store::StatusCounts> {
        let inner = self.lock();
        let mut counts = crate::store::StatusCounts::default();
        for job in inner.jobs.values() {
            let in_flight = inner.in_flight(&job.id);
            if filter.admits(job, in_flight) {
                counts.add(job, in_flight);
            }
        }
        Ok(counts)
    }

    async fn count_next_runs(&self, slots: &crate::store::TimeSlots) -> Result<Vec<usize>> {
        let inner = self.lock();
        let before_end = inner.due.iter().take_while(|(at, _)| *at < slots.end());
        Ok(slots.tally(before_end.map(|(at, _)| *at)))
    }

    async fn job_tasks(&self, limit: usize) -> Result<Vec<String>> {
        let inner = self.lock();
        let tasks: std::collections::BTreeSet<&str> = inner.jobs.values().map(|j| &*j.task).collect();
        Ok(tasks.into_iter().take(limit).map(str::to_owned).collect())
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
        let mut inner = self.lock();
        let job = inner.take(id).ok_or_else(|| Error::JobNotFound(id.clone()))?;
        inner.notified.remove(id);
        drop(inner);
        self.changed();
        Ok(job)
    }

    async fn acquire_due(&self, req: &ClaimRequest<'_>) -> Result<Vec<Claim>> {
        let now = req.now;
        let mut inner = self.lock();
        let lease = inner.renew(req.lease, req.ttl, now)?;
        // Claims are large (a whole job each): grown one by one, the vector
        // copied them at each doubling.
        let mut claims = Vec::with_capacity(req.limit.min(1024));

        // Requested and re-queued runs first: someone is waiting for them.
        let waiting: Vec<(Timestamp, RunId, JobId)> = inner
            .unclaimed
            .iter()
            .filter(|(at, _, job)| *at <= now && inner.jobs.get(job).is_none_or(|j| req.has_task(&j.task)))
            .take(req.limit)
            .cloned()
            .collect();
        for key in waiting {
            inner.unclaimed.remove(&key);
            let (_, run_id, job_id) = key;
            let job = inner.jobs.get(&job_id).cloned();
            let Some(run) = inner.run_mut(&job_id, run_id) else { continue };
            match job {
                Some(job) => {
                    run.node = Some(Arc::clone(&lease.node));
                    run.epoch = Some(lease.epoch);
                    let run = run.clone();
                    claims.push(Claim { job, runs: vec![run], uncounted: 0 });
                }
                None => {
                    run.status = RunStatus::Cancelled;
                    run.finished_at = Some(now);
                    run.set_reason(Some(Reason::Cancelled { by: CancelledBy::JobMissing, stage: Stage::BeforeStart }));
                    let entry = inner.runs.get_mut(&job_id).expect("the run was found");
                    entry.in_flight = entry.in_flight.saturating_sub(1);
                }
            }
        }

        let due: Vec<(Timestamp, JobId)> = inner
            .due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter(|(_, id)| inner.jobs.get(id).is_some_and(|j| req.has_task(&j.task)))
            .take(req.limit.saturating_sub(claims.len()))
            .cloned()
            .collect();
        for key in due {
            let id = &key.1;
            let job = inner.jobs.get(id).expect("every indexed job exists");
            let in_flight = inner.runs.get(id).map_or_else(Vec::new, JobRuns::in_flight_ids);
            let plan = plan_fire(job, now, &in_flight);
            let next_run_at = plan.next_run_at;
            let uncounted = plan.uncounted;
            let mut runs = plan.into_runs(id, now, &lease);
            // Runs are unique per scheduled time, as in the SQL stores: a
            // time that already has a run (a backfill, a run recorded by
            // hand) is not run or recorded again.
            runs.retain(|run| !inner.has_run_at(id, run.scheduled_for));
            for run in &runs {
                inner.record(run.clone(), self.history_limit);
            }
            let job = inner.reschedule(key, next_run_at).clone();
            claims.push(Claim { job, runs, uncounted });
        }
        Ok(claims)
    }

    async fn next_due_at(&self, tasks: &[Arc<str>]) -> Result<Option<Timestamp>> {
        let inner = self.lock();
        let runnable = |id: &JobId| inner.jobs.get(id).is_none_or(|j| tasks.iter().any(|t| **t == *j.task));
        let job = inner.due.iter().find(|(_, id)| runnable(id)).map(|(at, _)| *at);
        let run = inner.unclaimed.iter().find(|(_, _, id)| runnable(id)).map(|(at, _, _)| *at);
        Ok(job.into_iter().chain(run).min())
    }

    async fn insert_run(&self, run: Run) -> Result<()> {
        let mut inner = self.lock();
        if inner.has_run_at(&run.job_id, run.scheduled_for) {
            return Err(Error::RunExists { job_id: run.job_id, scheduled_for: run.scheduled_for });
        }
        inner.record(run, self.history_limit);
        drop(inner);
        self.changed();
        Ok(())
    }

    async fn update_run(&self, run: &Run) -> Result<()> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let lease_held = match (run.node.as_deref(), run.epoch) {
            (Some(node), Some(epoch)) => inner.nodes.get(node).is_some_and(|row| row.epoch == epoch),
            _ => false,
        };
        let Some(stored) = inner.run_mut(&run.job_id, run.id) else {
            return Err(Error::Store {
                message: format!("memory store: no run {} to update", run.id),
                transient: false,
            });
        };
        // A stored attempt newer than the update's means a later attempt owns the run.
        let held = lease_held
            && !stored.status.is_finished()
            && stored.node == run.node
            && stored.epoch == run.epoch
            && stored.attempt <= run.attempt;
        if !held {
            if run.status.is_finished() {
                stored.late_result = Some(run.late_result_text());
            }
            let epoch = run.epoch.unwrap_or(0);
            return Err(Error::LeaseLost { node: run.node.as_deref().unwrap_or("").to_owned(), epoch });
        }
        *stored = run.clone();
        if run.status.is_finished() {
            let entry = inner.runs.get_mut(&run.job_id).expect("the run was found");
            entry.in_flight = entry.in_flight.saturating_sub(1);
            trim(entry, self.history_limit);
            inner.note_finished(run);
        }
        Ok(())
    }

    async fn request_run(&self, id: &JobId, now: Timestamp, lease: Option<&Lease>) -> Result<Run> {
        let run = {
            let mut inner = self.lock();
            if let Some(lease) = lease
                && !inner.holds(lease)
            {
                return Err(lost(lease));
            }
            let job = inner.jobs.get(id).ok_or_else(|| Error::JobNotFound(id.clone()))?;
            let in_flight = inner.runs.get(id).map_or_else(Vec::new, JobRuns::in_flight_ids);
            let run = requested_run(job, &in_flight, free_time(&inner, id, now), now, lease);
            inner.record(run.clone(), self.history_limit);
            run
        };
        self.changed();
        Ok(run)
    }

    async fn request_backfill(&self, id: &JobId, at: Timestamp) -> Result<Option<Run>> {
        let run = {
            let mut inner = self.lock();
            if !inner.jobs.contains_key(id) {
                return Err(Error::JobNotFound(id.clone()));
            }
            let existing = inner.runs.get(id).and_then(|r| r.runs.iter().find(|r| r.scheduled_for == at)).cloned();
            let Some(run) = backfill_run(id, at, existing.as_ref()) else { return Ok(None) };
            if existing.is_some() {
                inner.unclaimed.insert((run.scheduled_for, run.id, id.clone()));
                let entry = inner.runs.get_mut(id).expect("the run was found");
                entry.in_flight += 1;
                *entry.runs.iter_mut().find(|r| r.id == run.id).expect("the run was found") = run.clone();
            } else {
                inner.record(run.clone(), self.history_limit);
            }
            run
        };
        self.changed();
        Ok(Some(run))
    }

    async fn notify_alert(&self, job: &JobId, episode: Timestamp, mut hook: Run) -> Result<bool> {
        {
            let mut inner = self.lock();
            if !inner.jobs.contains_key(job) {
                return Err(Error::JobNotFound(job.clone()));
            }
            if inner.notified.get(job).is_some_and(|notified| *notified >= episode) {
                return Ok(false);
            }
            inner.notified.insert(job.clone(), episode);
            hook.scheduled_for = free_time(&inner, &hook.job_id, hook.scheduled_for);
            inner.record(hook, self.history_limit);
        }
        self.changed();
        Ok(true)
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

    async fn prune_jobs(&self, jobs: &[JobId], keep_per_job: usize) -> Result<u64> {
        let mut inner = self.lock();
        let mut deleted = 0u64;
        for id in jobs {
            if let Some(entry) = inner.runs.get_mut(id) {
                let before = entry.runs.len();
                trim(entry, keep_per_job);
                deleted += (before - entry.runs.len()) as u64;
            }
        }
        Ok(deleted)
    }

    async fn register_node(&self, node: &NodeRegistration, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        let mut inner = self.lock();
        if let Some(row) = inner.nodes.get(&node.id)
            && row.expires_at >= now
        {
            return Err(Error::NodeIdInUse { id: node.id.to_string(), until: row.expires_at });
        }
        inner.epoch += 1;
        let row = NodeRow {
            registration: node.clone(),
            epoch: inner.epoch,
            started_at: now,
            heartbeat_at: now,
            expires_at: later(now, ttl),
        };
        let lease = row.lease();
        inner.nodes.insert(Arc::clone(&node.id), row);
        Ok(lease)
    }

    async fn renew_lease(&self, lease: &Lease, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        self.lock().renew(lease, ttl, now)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let mut inner = self.lock();
        if inner.holds(lease) {
            inner.nodes.remove(&lease.node);
        }
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let inner = self.lock();
        let mut running: FoldMap<(&str, u64), u32> = FoldMap::default();
        for run in inner.runs.values().filter(|r| r.in_flight > 0).flat_map(|r| r.runs.iter()) {
            if let (false, Some(node), Some(epoch)) = (run.status.is_finished(), run.node.as_deref(), run.epoch) {
                *running.entry((node, epoch)).or_default() += 1;
            }
        }
        Ok(inner
            .nodes
            .values()
            .map(|row| NodeInfo {
                id: row.registration.id.to_string(),
                epoch: row.epoch,
                host: row.registration.host.clone(),
                pid: row.registration.pid,
                version: row.registration.version.clone(),
                started_at: row.started_at,
                heartbeat_at: row.heartbeat_at,
                lease_expires_at: row.expires_at,
                running: running.get(&(&*row.registration.id, row.epoch)).copied().unwrap_or(0),
            })
            .collect())
    }

    async fn sweep(&self, now: Timestamp) -> Result<Vec<SweptRun>> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.nodes.retain(|_, row| row.expires_at >= now);
        let mut swept = Vec::new();
        let Inner { jobs, runs, unclaimed, nodes, .. } = inner;
        for entry in runs.values_mut().filter(|r| r.in_flight > 0) {
            for run in entry.runs.iter_mut().filter(|r| !r.status.is_finished()) {
                let Some(node) = run.node.clone() else { continue };
                if nodes.get(&node).is_some_and(|row| Some(row.epoch) == run.epoch) {
                    continue;
                }
                let retry = jobs.get(&run.job_id).and_then(|j| j.options.retry.as_deref());
                let decided = sweep_run(run, retry, now);
                if decided.requeued {
                    unclaimed.insert((run.scheduled_for, run.id, run.job_id.clone()));
                } else {
                    entry.in_flight = entry.in_flight.saturating_sub(1);
                }
                swept.push(decided);
            }
        }
        for s in swept.iter().filter(|s| !s.requeued) {
            inner.note_finished(&s.run);
        }
        drop(guard);
        if swept.iter().any(|s| s.requeued) {
            self.changed();
        }
        Ok(swept)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
