//! The job API: add, read, pause, resume, remove, modify, reschedule, run
//! now, and the figures about jobs and runs.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::{RemoveMode, Scheduler, SchedulerState};
use crate::clock::later;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::id::JobId;
use crate::job::{Job, JobOptions};
use crate::reason::CancelledBy;
use crate::run::{JobStats, Run, RunQuery};
use crate::status::{RunKind, RunStatus};
use crate::store::{ConflictPolicy, JobCounts, JobFilter};
use crate::trigger::Trigger;

/// Changes to a job's definition for `modify_job`; `None` leaves a field as is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobPatch {
    /// A new display name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New arguments.
    pub args: Option<serde_json::Value>,
    /// New options.
    pub options: Option<JobOptions>,
}

/// How many fire times of a combined trigger are checked against the
/// minimum interval when it is added or rescheduled.
const GAP_WALK: usize = 1_000;

/// How many jobs [`Scheduler::add_jobs`] hands the store at once.
pub const ADD_BATCH: usize = 1_000;

/// How many of the newest runs [`Scheduler::scheduler_stats`] computes its
/// run figures over. Every retained run would be exact but unbounded: a p95
/// over ten million runs cannot answer a dashboard or a scrape in time, and
/// the newest runs are what such a figure is read for. One job's
/// [`Scheduler::stats`] still reads all of that job's retained runs.
pub const STATS_WINDOW: usize = 10_000;

/// Figures for the whole scheduler; see [`Scheduler::scheduler_stats`].
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SchedulerStats {
    /// Jobs stored, broken ones included.
    pub jobs: usize,
    /// Jobs paused.
    pub paused: usize,
    /// Jobs whose trigger has no more fire times.
    pub finished: usize,
    /// Stored jobs that no longer decode.
    pub broken: usize,
    /// Runs in progress in this process.
    pub running_here: usize,
    /// Over the newest [`STATS_WINDOW`] runs of all jobs (every retained
    /// run when there are fewer).
    pub runs: JobStats,
    /// How many of the newest runs were read for `runs`, at most
    /// [`STATS_WINDOW`] (all the store holds when fewer); those still in
    /// flight among them are not in the figures.
    pub runs_window: usize,
}

impl Scheduler {
    /// Adds a job; its first run is its trigger's first fire time from now.
    /// A one-off job whose time has already passed runs once, late (subject
    /// to its misfire grace time).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a bad trigger or option, [`Error::UnknownTask`]
    /// if its task is not registered, [`Error::JobExists`] if the id is taken
    /// and the policy is `Error`, or a store error.
    pub async fn add_job(&self, mut job: Job, on_conflict: ConflictPolicy) -> Result<Job> {
        job.validate()?;
        match self.inner.tasks.interned(&job.task) {
            Some(name) => job.task = name,
            None => return Err(Error::UnknownTask(job.task.to_string())),
        }
        let now = self.inner.clock.now();
        job.trigger.resolve(now, &self.inner.zone);
        let next_run_at = self.first_fire_checked(&job.trigger, now).map_err(|e| in_job(&job.id, e))?;
        job.state = crate::job::JobState { next_run_at: Some(next_run_at), ..job.state };
        let stored = self.inner.store.add_job(job, on_conflict).await?;
        tracing::info!(job_id = %stored.id, next_run_at = ?stored.state.next_run_at, trigger = %stored.trigger.describe(), "job added");
        self.inner.events.emit(Event::JobAdded { job_id: stored.id.clone() });
        Ok(stored)
    }

    /// Adds many jobs at once: each is checked as by [`add_job`](Scheduler::add_job)
    /// before any is stored, then they go to the store in batches of
    /// [`ADD_BATCH`] (one transaction each in the SQL stores, one lock in
    /// memory). Returns the stored jobs in the order given.
    ///
    /// A batch is atomic: with [`ConflictPolicy::Error`], a batch holding an
    /// id already taken adds none of its jobs. Batches before it stay added.
    ///
    /// # Errors
    ///
    /// As for `add_job`, for the first job that fails; [`Error::Invalid`]
    /// naming an id given twice. Nothing is stored when a job is invalid.
    pub async fn add_jobs(&self, jobs: impl IntoIterator<Item = Job>, on_conflict: ConflictPolicy) -> Result<Vec<Job>> {
        let now = self.inner.clock.now();
        let jobs = jobs.into_iter();
        let mut checked = Vec::with_capacity(jobs.size_hint().0);
        let mut seen = std::collections::HashSet::with_capacity_and_hasher(
            checked.capacity(),
            foldhash::fast::RandomState::default(),
        );
        for mut job in jobs {
            job.validate()?;
            if !seen.insert(job.id.clone()) {
                return Err(Error::invalid(format!("job {:?} is given twice", job.id.as_str())));
            }
            match self.inner.tasks.interned(&job.task) {
                Some(name) => job.task = name,
                None => return Err(Error::UnknownTask(job.task.to_string())),
            }
            job.trigger.resolve(now, &self.inner.zone);
            let next_run_at = self.first_fire_checked(&job.trigger, now).map_err(|e| in_job(&job.id, e))?;
            job.state = crate::job::JobState { next_run_at: Some(next_run_at), ..job.state };
            checked.push(job);
        }
        drop(seen);
        // One batch (the usual call) goes to the store as it is: each job
        // moved once less, 400 bytes apiece.
        let mut stored = Vec::new();
        let mut rest = checked.into_iter();
        loop {
            let batch: Vec<Job> = rest.by_ref().take(ADD_BATCH).collect();
            if batch.is_empty() {
                break;
            }
            let added = self.inner.store.add_jobs(batch, on_conflict).await?;
            for job in &added {
                self.inner.events.emit(Event::JobAdded { job_id: job.id.clone() });
            }
            if stored.is_empty() {
                stored = added;
            } else {
                stored.extend(added);
            }
        }
        tracing::info!(jobs = stored.len(), "jobs added");
        Ok(stored)
    }

    /// The job with this id.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], or a store error.
    pub async fn get_job(&self, id: &str) -> Result<Job> {
        let id = JobId::new(id)?;
        self.inner.store.get_job(&id).await?.ok_or(Error::JobNotFound(id))
    }

    /// Every job, ordered by id, with its next run time.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn jobs(&self) -> Result<Vec<Job>> {
        self.inner.store.list_jobs(&JobFilter::default()).await
    }

    /// Pauses a job: it has no next run until resumed. A job paused
    /// [`REMOVED_FROM_CODE`](super::REMOVED_FROM_CODE) keeps that reason.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], or a store error.
    pub async fn pause_job(&self, id: &str, reason: &str) -> Result<Job> {
        let reason = if reason.trim().is_empty() { "paused".to_owned() } else { reason.to_owned() };
        let job = self
            .update(id, |job| {
                // "removed from code" is lifted only by code defining the job
                // again (or a resume): another pause keeps it, so that a pause
                // and a resume over the API cannot revive what the config dropped.
                if job.state.paused.as_deref() != Some(super::REMOVED_FROM_CODE) {
                    job.state.paused = Some(reason.as_str().into());
                }
                job.state.next_run_at = None;
                Ok(())
            })
            .await?;
        let reason = job.state.paused.as_deref().map_or(reason, str::to_owned);
        tracing::info!(job_id = %job.id, reason, "job paused");
        self.inner.events.emit(Event::JobPaused { job_id: job.id.clone(), reason });
        Ok(job)
    }

    /// Resumes a paused job. Its next run is computed from now: the times it
    /// missed while paused are not run.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], or a store error.
    pub async fn resume_job(&self, id: &str) -> Result<Job> {
        let now = self.inner.clock.now();
        let job = self
            .update(id, |job| {
                job.state.paused = None;
                job.state.next_run_at = job.trigger.next_after(now);
                Ok(())
            })
            .await?;
        tracing::info!(job_id = %job.id, next_run_at = ?job.state.next_run_at, "job resumed");
        self.inner.events.emit(Event::JobResumed { job_id: job.id.clone(), next_run_at: job.state.next_run_at });
        Ok(job)
    }

    /// Removes a job. Its history stays. Runs in progress finish or are
    /// cancelled, as `mode` says.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], or a store error.
    pub async fn remove_job(&self, id: &str, mode: RemoveMode) -> Result<Job> {
        let id = JobId::new(id)?;
        let job = self.inner.store.remove_job(&id).await?;
        if mode == RemoveMode::Cancel {
            self.inner.executor.cancel_jobs(|j| *j == id, CancelledBy::JobRemoved);
        }
        tracing::info!(job_id = %id, ?mode, "job removed");
        self.inner.events.emit(Event::JobRemoved { job_id: id });
        Ok(job)
    }

    /// Changes a job's name, arguments or options; its schedule is unchanged.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], [`Error::Invalid`] for bad options, or a store error.
    pub async fn modify_job(&self, id: &str, patch: JobPatch) -> Result<Job> {
        let job = self
            .update(id, |job| {
                if let Some(name) = &patch.name {
                    job.name = name.as_deref().map(Box::from);
                }
                if let Some(args) = &patch.args {
                    job.args = args.clone();
                }
                if let Some(options) = &patch.options {
                    job.options = options.clone();
                }
                job.validate()
            })
            .await?;
        self.inner.events.emit(Event::JobUpdated { job_id: job.id.clone() });
        Ok(job)
    }

    /// Gives a job a new trigger; its next run is the new trigger's first
    /// fire time from now (none while paused).
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], [`Error::Invalid`] for a bad trigger, or a store error.
    pub async fn reschedule_job(&self, id: &str, mut trigger: Trigger) -> Result<Job> {
        trigger.validate()?;
        let now = self.inner.clock.now();
        trigger.resolve(now, &self.inner.zone);
        self.first_fire_checked(&trigger, now)?;
        let job = self
            .update(id, |job| {
                job.trigger = trigger.clone();
                if !job.is_paused() {
                    job.state.next_run_at = first_fire(&job.trigger, now);
                }
                Ok(())
            })
            .await?;
        tracing::info!(job_id = %job.id, trigger = %job.trigger.describe(), "job rescheduled");
        self.inner.events.emit(Event::JobUpdated { job_id: job.id.clone() });
        Ok(job)
    }

    /// Runs a job once now, in addition to its schedule (which is unchanged),
    /// as a `manual` run. Works on paused jobs too. Subject to
    /// `max_instances` across every node of the store: if that many runs are
    /// going, the run is recorded as `skipped` and returned so.
    ///
    /// When this scheduler has the job's task it runs it itself (registering
    /// its node first if it was not started); otherwise the run waits for a
    /// node that has the task.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], [`Error::ShutDown`], or a store error.
    pub async fn run_job_now(&self, id: &str) -> Result<Run> {
        if matches!(self.state(), SchedulerState::ShuttingDown | SchedulerState::ShutDown) {
            return Err(Error::ShutDown);
        }
        let job = self.get_job(id).await?;
        let lease = match self.inner.tasks.contains(&job.task) {
            true => Some(self.inner.keeper.ensure().await.ok_or(Error::ShutDown)?),
            false => None,
        };
        let run = self.inner.store.request_run(&job.id, self.inner.clock.now(), lease.as_ref()).await?;
        match run.status {
            RunStatus::Skipped => super::engine::report_not_run(&self.inner.events, &run),
            _ if lease.is_some() => {
                tracing::info!(job_id = %job.id, run_id = %run.id, "run requested; running it here");
                self.inner.executor.dispatch(vec![(Arc::new(job), run.clone())]);
            }
            _ => {
                tracing::info!(job_id = %job.id, run_id = %run.id, task = %job.task, "run requested; waiting for a node that has its task")
            }
        }
        Ok(run)
    }

    /// The next `n` fire times of a job (from its next run, or from now when paused).
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], or a store error.
    pub async fn upcoming(&self, id: &str, n: usize) -> Result<Vec<Timestamp>> {
        let job = self.get_job(id).await?;
        Ok(match job.state.next_run_at {
            Some(next) => {
                let mut times = vec![next];
                times.extend(job.trigger.upcoming(next, n.saturating_sub(1)));
                times.truncate(n);
                times
            }
            None if job.is_paused() => job.trigger.upcoming(self.inner.clock.now(), n),
            None => Vec::new(),
        })
    }

    /// Why a job did or did not run: each of its scheduled times from
    /// `since` to now with what happened and why, and one line that answers
    /// the question (see [`crate::why`]).
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], [`Error::Invalid`] for a `since` in the
    /// future, or a store error. [`crate::why::parse_since`] reads a `since`
    /// given as text.
    pub async fn why(&self, id: &str, since: Timestamp) -> Result<crate::why::Why> {
        self.why_between(id, since, self.inner.clock.now()).await
    }

    /// [`Scheduler::why`] over `since` to `until` (at most now).
    async fn why_between(&self, id: &str, since: Timestamp, until: Timestamp) -> Result<crate::why::Why> {
        let job = self.get_job(id).await?;
        let now = until.min(self.inner.clock.now());
        if since > now {
            return Err(Error::invalid(format!("--since {since} is in the future (now is {now})")));
        }
        let store = &self.inner.store;
        // The times listed are the latest MAX_WHY_TIMES; twice as many rows
        // leaves room for runs by hand, without reading a long history whole.
        let window = RunQuery {
            job_id: Some(job.id.clone()),
            since: Some(since),
            until: Some(later(now, SignedDuration::from_micros(1))),
            limit: Some(2 * crate::why::MAX_WHY_TIMES),
            ..RunQuery::default()
        };
        let mut runs = store.history(&window).await?;
        // The runs in flight, wherever they were scheduled: a skip names them.
        let in_flight = RunQuery {
            job_id: Some(job.id.clone()),
            statuses: vec![RunStatus::Pending, RunStatus::Running],
            limit: Some(100),
            ..RunQuery::default()
        };
        runs.extend(store.history(&in_flight).await?.into_iter().filter(|r| r.scheduled_for < since));
        let earlier =
            RunQuery { job_id: Some(job.id.clone()), until: Some(since), limit: Some(1), ..RunQuery::default() };
        let had_earlier_runs = !store.history(&earlier).await?.is_empty();
        // Every node the store lists: one whose lease just ran out has not
        // been swept yet, and may be this one between two heartbeats.
        let nodes = store.nodes().await?;
        Ok(crate::why::explain(&crate::why::Inputs {
            job: &job,
            runs: &runs,
            had_earlier_runs,
            nodes: &nodes,
            since,
            now,
        }))
    }

    /// The scheduled times of a job from `since` to `until` (default now)
    /// that a backfill would run, oldest first: those with no successful run
    /// (none, or one that failed, was missed, skipped, abandoned or
    /// cancelled), or with `only_missing` only those that never ran (no run,
    /// missed or skipped). Runs by hand or for an alert are not scheduled
    /// times, and times before the job's first recorded run are left alone
    /// (they may have succeeded and been pruned, or precede the job).
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`]; [`Error::Invalid`] for a window that is
    /// reversed, in the future, or holds more than
    /// [`crate::why::MAX_WHY_TIMES`] scheduled times; a store error.
    pub async fn backfill_plan(
        &self,
        id: &str,
        since: Timestamp,
        until: Option<Timestamp>,
        only_missing: bool,
    ) -> Result<Vec<Timestamp>> {
        use crate::why::Outcome;
        let until = until.unwrap_or_else(|| self.inner.clock.now());
        if until < since {
            return Err(Error::invalid(format!("--until {until} is before --since {since}")));
        }
        let why = self.why_between(id, since, until).await?;
        if why.unlisted > 0 {
            return Err(Error::invalid(format!(
                "the window from {since} holds more than {} scheduled times of {id:?}: backfill it in parts (--since/--until)",
                crate::why::MAX_WHY_TIMES
            )));
        }
        Ok(why
            .times
            .iter()
            .filter(|t| {
                t.scheduled_for <= until
                    && t.run.as_ref().is_none_or(|r| matches!(r.kind, RunKind::Scheduled | RunKind::Backfill))
            })
            .filter(|t| match t.outcome {
                // Before the job's first recorded run a time may have
                // succeeded and been pruned, or precede the job: left alone.
                Outcome::Succeeded
                | Outcome::Running
                | Outcome::Pending
                | Outcome::Due
                | Outcome::NotYetDue
                | Outcome::BeforeHistory => false,
                Outcome::Failed | Outcome::TimedOut | Outcome::Abandoned | Outcome::Cancelled => !only_missing,
                _ => true,
            })
            .map(|t| t.scheduled_for)
            .collect())
    }

    /// Backfills `times` of a job, oldest first: each is queued as a
    /// `backfill` run carrying its original scheduled time (a time whose run
    /// did not succeed is queued again under that run's id, so a task's
    /// idempotency key is the missed time's), for any node with the task to
    /// take; the next is queued only while fewer than `max_instances` runs of
    /// the job are in flight. Returns the runs queued, once all are.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`]; [`Error::Invalid`] when a queued run waits
    /// longer than `unclaimed_for` for a node (no server with the task is
    /// running); a store error.
    pub async fn backfill(
        &self,
        id: &str,
        times: &[Timestamp],
        unclaimed_for: std::time::Duration,
    ) -> Result<Vec<Run>> {
        let job = self.get_job(id).await?;
        let store = &self.inner.store;
        let mut changes = store.changes();
        let mut queued: Vec<Run> = Vec::with_capacity(times.len());
        let mut times: Vec<Timestamp> = times.to_vec();
        times.sort();
        let total = times.len();
        for at in times {
            let waited = std::time::Instant::now();
            while store.count_running(&job.id).await? >= job.options.max_instances {
                // A queued run no node takes: say so rather than wait forever.
                if waited.elapsed() > unclaimed_for && queued.is_empty() {
                    return Err(Error::invalid(format!(
                        "{id:?} has had max_instances ({}) runs in flight for {}s, so no backfill run was queued: backfill again once they end",
                        job.options.max_instances,
                        unclaimed_for.as_secs()
                    )));
                }
                if waited.elapsed() > unclaimed_for
                    && let Some(last) = queued.last()
                {
                    let q = RunQuery {
                        job_id: Some(job.id.clone()),
                        since: Some(last.scheduled_for),
                        until: Some(later(last.scheduled_for, SignedDuration::from_micros(1))),
                        ..RunQuery::default()
                    };
                    let unclaimed = store.history(&q).await?.iter().any(|r| r.id == last.id && r.node.is_none());
                    if unclaimed {
                        return Err(Error::invalid(format!(
                            "backfill run {} of {id:?} has waited {}s for a node with task {:?}: is chime serve running? ({} of {total} times queued)",
                            last.id,
                            unclaimed_for.as_secs(),
                            job.task,
                            queued.len(),
                        )));
                    }
                }
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                }
            }
            if let Some(run) = store.request_backfill(&job.id, at).await? {
                tracing::info!(job_id = %job.id, run_id = %run.id, scheduled_for = %at, "backfill queued");
                queued.push(run);
            }
        }
        Ok(queued)
    }

    /// Run history, newest first.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn history(&self, query: &RunQuery) -> Result<Vec<Run>> {
        self.inner.store.history(query).await
    }

    /// Figures over a job's retained runs.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], or a store error.
    pub async fn stats(&self, id: &str) -> Result<JobStats> {
        self.inner.store.job_stats(&JobId::new(id)?).await
    }

    /// Figures for the whole scheduler: jobs by state, runs in progress here,
    /// and [`JobStats`] over the newest [`STATS_WINDOW`] runs. On the SQL
    /// stores its cost does not grow with the retained runs, and the counts
    /// read indexes rather than job rows (11 ms at 1,000,000 jobs on SQLite);
    /// the memory store sorts its runs for the newest.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn scheduler_stats(&self) -> Result<SchedulerStats> {
        // Two reads, side by side: a SQL store answers each on its own connection.
        let (counts, recent) = tokio::join!(self.job_counts(), self.inner.store.recent_stats(STATS_WINDOW));
        let (counts, (runs, runs_window)) = (counts?, recent?);
        Ok(SchedulerStats {
            jobs: counts.jobs,
            paused: counts.paused,
            finished: counts.finished,
            broken: counts.broken,
            running_here: self.running_here(),
            runs,
            runs_window,
        })
    }

    /// How many jobs there are in each state, without reading run history
    /// (what a metrics scrape needs).
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn job_counts(&self) -> Result<JobCounts> {
        self.inner.store.job_counts().await
    }

    /// Runs in progress in this process.
    pub fn running_here(&self) -> usize {
        self.inner.executor.running_count()
    }

    /// A new trigger's first fire time, refusing what this scheduler will not
    /// run: an interval below its `min_interval`, or a trigger that never
    /// fires after now (it would be stored as already "finished").
    pub(super) fn first_fire_checked(&self, trigger: &Trigger, now: Timestamp) -> Result<Timestamp> {
        self.check_min_interval(trigger)?;
        self.check_combined_gaps(trigger, now)?;
        first_fire(trigger, now)
            .ok_or_else(|| Error::invalid(format!("its trigger ({}) has no fire time after {now}", trigger.describe())))
    }

    /// Refuses an interval below this scheduler's `min_interval`.
    pub(super) fn check_min_interval(&self, trigger: &Trigger) -> Result<()> {
        match trigger.min_interval() {
            Some(every) if every < self.inner.min_interval => Err(Error::invalid(format!(
                "an interval of {} is shorter than this scheduler's minimum of {} (SchedulerBuilder::min_interval)",
                crate::format_duration(every),
                crate::format_duration(self.inner.min_interval)
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses a combination of triggers whose fire times come closer
    /// together than `min_interval`: an `any` of intervals each long enough
    /// but offset by a millisecond fires every millisecond. The first
    /// [`GAP_WALK`] fire times from now are looked at.
    pub(super) fn check_combined_gaps(&self, trigger: &Trigger, now: Timestamp) -> Result<()> {
        if !matches!(trigger, Trigger::Any(_) | Trigger::All(_)) {
            return Ok(());
        }
        let mut previous = match super::jobs::first_fire(trigger, now) {
            Some(first) => first,
            None => return Ok(()),
        };
        for _ in 0..GAP_WALK {
            let Some(next) = trigger.next_after(previous) else { break };
            let gap = next.duration_since(previous);
            if gap < self.inner.min_interval {
                return Err(Error::invalid(format!(
                    "its trigger fires twice within {} (at {previous} and {next}): shorter than this scheduler's minimum interval of {} (SchedulerBuilder::min_interval)",
                    crate::format_duration(gap),
                    crate::format_duration(self.inner.min_interval)
                )));
            }
            previous = next;
        }
        Ok(())
    }

    /// Read-modify-write with the store's version check, retried when
    /// something else (usually the scheduler loop advancing the job) wrote
    /// in between.
    pub(super) async fn update(&self, id: &str, change: impl Fn(&mut Job) -> Result<()>) -> Result<Job> {
        let id = JobId::new(id)?;
        let mut attempts = 0;
        loop {
            let mut job = self.inner.store.get_job(&id).await?.ok_or_else(|| Error::JobNotFound(id.clone()))?;
            change(&mut job)?;
            match self.inner.store.update_job(job).await {
                Err(Error::VersionConflict { .. }) if attempts < 20 => attempts += 1,
                result => return result,
            }
        }
    }
}

fn in_job(id: &JobId, e: Error) -> Error {
    Error::invalid(format!("job {:?}: {e}", id.as_str()))
}

/// A new job's first fire time: its trigger's first time at or after now,
/// or, for a one-off whose time has passed, that time (it runs once, late).
pub(super) fn first_fire(trigger: &Trigger, now: Timestamp) -> Option<Timestamp> {
    if let Trigger::Date(d) = trigger {
        return Some(d.at);
    }
    trigger.next_after(now.checked_sub(SignedDuration::from_nanos(1)).unwrap_or(now))
}
