//! The `Scheduler`: the loop that claims due jobs, and the public API around it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Notify, Semaphore, broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock, later};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::executor;
use crate::job::{Job, JobId, JobOptions};
use crate::memory::MemoryStore;
use crate::run::{JobStats, Run, RunId, RunKind, RunQuery, RunStatus};
use crate::store::{Claim, ConflictPolicy, JobFilter, JobStore};
use crate::task::TaskRegistry;
use crate::trigger::{Trigger, Zone};

/// The longest the loop sleeps before re-reading the clock, so that a clock
/// jump or a suspended host is noticed within a minute.
const MAX_SLEEP: SignedDuration = SignedDuration::from_secs(60);

/// After a store error, how long the loop waits before trying again.
const STORE_RETRY: SignedDuration = SignedDuration::from_secs(1);

/// Where the scheduler is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchedulerState {
    /// Built, not started: jobs can be added, none run.
    Stopped,
    /// Claiming due jobs and running them.
    Running,
    /// Not starting runs; running ones go on.
    Paused,
    /// `shutdown` is in progress.
    ShuttingDown,
    /// Done; no run is left and none will start.
    ShutDown,
}

impl SchedulerState {
    /// The lowercase name the CLI, the API and the dashboard show.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerState::Stopped => "stopped",
            SchedulerState::Running => "running",
            SchedulerState::Paused => "paused",
            SchedulerState::ShuttingDown => "shutting_down",
            SchedulerState::ShutDown => "shut_down",
        }
    }
}

/// How `shutdown` treats runs in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Let them finish, waiting at most this long (measured on the
    /// scheduler's clock), then cancel the rest.
    Wait(Duration),
    /// Cancel them now (each gets the cancel grace period, then is aborted).
    Cancel,
}

/// What `remove_job` does with the job's runs in progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RemoveMode {
    /// Let them finish (the default).
    #[default]
    LetFinish,
    /// Cancel them.
    Cancel,
}

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

/// Configures a [`Scheduler`].
#[derive(Debug)]
pub struct SchedulerBuilder {
    store: Option<Arc<dyn JobStore>>,
    tasks: TaskRegistry,
    zone: Option<Zone>,
    clock: Arc<dyn Clock>,
    max_concurrency: usize,
    node_id: Option<String>,
    batch_size: usize,
    cancel_grace: SignedDuration,
    retention: Retention,
}

/// How much run history the scheduler keeps; see `SchedulerBuilder::history_retention`.
#[derive(Clone, Copy, Debug)]
struct Retention {
    keep_per_job: usize,
    max_age: Option<SignedDuration>,
}

/// How often the loop prunes run history.
const PRUNE_EVERY: SignedDuration = SignedDuration::from_mins(10);

impl SchedulerBuilder {
    /// Where jobs live; a [`MemoryStore`] when not set.
    pub fn store(mut self, store: impl JobStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A store shared with other code (a web API, a CLI in the same process).
    pub fn shared_store(mut self, store: Arc<dyn JobStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The tasks jobs may run.
    pub fn tasks(mut self, tasks: TaskRegistry) -> Self {
        self.tasks = tasks;
        self
    }

    /// The zone for triggers that name none; the system zone when not set.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for an unknown zone.
    pub fn timezone(mut self, name: &str) -> Result<Self> {
        self.zone = Some(Zone::get(name)?);
        Ok(self)
    }

    /// The clock; [`SystemClock`] when not set. Tests pass a [`crate::ManualClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How many runs may execute at once across all jobs (default 1,000).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// This scheduler's name in run records (default: `hostname-pid`).
    pub fn node_id(mut self, id: &str) -> Self {
        self.node_id = Some(id.to_owned());
        self
    }

    /// How many due jobs one claim takes from the store (default 64). Small
    /// batches hold the store's lock briefly, so runs that are finishing are
    /// not kept waiting; a burst is claimed in many quick batches.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// How long a cancelled run may take to stop by itself before it is
    /// aborted (default 5 s, on the scheduler's clock).
    pub fn cancel_grace(mut self, grace: SignedDuration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// Keeps the last `keep_per_job` finished runs of each job (default 100)
    /// and, when `max_age` is set, none scheduled longer ago than that. The
    /// loop prunes every 10 minutes; runs in progress are never pruned.
    pub fn history_retention(mut self, keep_per_job: usize, max_age: Option<SignedDuration>) -> Self {
        self.retention = Retention { keep_per_job, max_age };
        self
    }

    /// Builds the scheduler. It does nothing until [`Scheduler::start`].
    pub fn build(self) -> Scheduler {
        let node: Arc<str> = Arc::from(self.node_id.unwrap_or_else(default_node_id));
        Scheduler {
            inner: Arc::new(Inner {
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                tasks: self.tasks,
                zone: self.zone.unwrap_or_else(Zone::system),
                clock: self.clock,
                node,
                events: broadcast::Sender::new(1024),
                state: watch::Sender::new(SchedulerState::Stopped),
                slots: Arc::new(Semaphore::new(self.max_concurrency)),
                running: Mutex::new(HashMap::default()),
                in_flight: watch::Sender::new(0),
                loop_task: Mutex::new(None),
                last_tick: std::sync::atomic::AtomicI64::new(0),
                wake: Notify::new(),
                batch_size: self.batch_size,
                cancel_grace: self.cancel_grace,
                retention: self.retention,
            }),
        }
    }
}

/// Jobs by state; see [`Scheduler::job_counts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobCounts {
    /// Jobs stored, broken ones included.
    pub jobs: usize,
    /// Jobs with a next run.
    pub active: usize,
    /// Jobs paused.
    pub paused: usize,
    /// Jobs whose trigger has no more fire times.
    pub finished: usize,
    /// Stored jobs that no longer decode.
    pub broken: usize,
}

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
    /// Over every retained run of every job.
    pub runs: JobStats,
}

/// What `Scheduler::sync` did. `Display` reads "added 2, updated 1, kept 5, orphaned 1".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Jobs new in code, now stored.
    pub added: Vec<JobId>,
    /// Jobs whose code definition changed since the last sync, now updated.
    pub updated: Vec<JobId>,
    /// Jobs whose code definition is unchanged; runtime edits kept.
    pub kept: Vec<JobId>,
    /// Stored jobs from code that code no longer defines, now paused.
    pub orphaned: Vec<JobId>,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "added {}, updated {}, kept {}, orphaned {}",
            self.added.len(),
            self.updated.len(),
            self.kept.len(),
            self.orphaned.len()
        )
    }
}

/// Whether `SCHEDULER_FORCE_UPDATE` asks code to win: `true` (any case) or `1`.
fn force_update_requested(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
}

/// The reason given to jobs paused because code no longer defines them.
pub const REMOVED_FROM_CODE: &str = "removed from code";

/// Whether the process named by a node id (`host-pid`, the default) still
/// runs. A node on another host, or with an id of another form, is assumed
/// alive: only the store's own lease (PostgreSQL) can tell.
pub fn node_is_alive(node: &str) -> bool {
    let Some((host, pid)) = node.rsplit_once('-') else {
        return true;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return true;
    };
    if host != this_host() {
        return true;
    }
    pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn this_host() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "node".into())
    })
}

fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "node".into())
    });
    format!("{host}-{}", std::process::id())
}

/// A job scheduler: add jobs, start it, and it runs them on time.
///
/// Cheap to clone; clones share one scheduler.
#[derive(Clone, Debug)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn JobStore>,
    pub(crate) tasks: TaskRegistry,
    pub(crate) zone: Zone,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) node: Arc<str>,
    pub(crate) events: broadcast::Sender<Event>,
    state: watch::Sender<SchedulerState>,
    pub(crate) slots: Arc<Semaphore>,
    /// Runs in progress in this process, with the tokens that cancel them.
    pub(crate) running: Mutex<HashMap<RunId, (JobId, CancellationToken), foldhash::fast::RandomState>>,
    /// How many runs this process has in progress.
    pub(crate) in_flight: watch::Sender<usize>,
    loop_task: Mutex<Option<JoinHandle<()>>>,
    /// When the loop last came round, in microseconds since the epoch (0: never).
    last_tick: std::sync::atomic::AtomicI64,
    wake: Notify,
    batch_size: usize,
    pub(crate) cancel_grace: SignedDuration,
    retention: Retention,
}

impl Inner {
    pub(crate) fn emit(&self, event: Event) {
        // No subscribers is fine.
        let _ = self.events.send(event);
    }

    pub(crate) fn store_error(&self, operation: &str, err: &Error) {
        tracing::error!(operation, error = %err, "store error");
        self.emit(Event::StoreError { operation: operation.to_owned(), message: err.to_string() });
    }
}

impl Scheduler {
    /// Starts configuring a scheduler.
    pub fn builder() -> SchedulerBuilder {
        SchedulerBuilder {
            store: None,
            tasks: TaskRegistry::new(),
            zone: None,
            clock: Arc::new(SystemClock),
            max_concurrency: 1000,
            node_id: None,
            batch_size: 64,
            cancel_grace: SignedDuration::from_secs(5),
            retention: Retention { keep_per_job: crate::memory::DEFAULT_HISTORY_LIMIT, max_age: None },
        }
    }

    /// Starts the loop on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if it was already started, [`Error::ShutDown`] after shutdown.
    pub fn start(&self) -> Result<()> {
        let started = self.transition(SchedulerState::Stopped, SchedulerState::Running);
        if !started {
            return match self.state() {
                SchedulerState::ShuttingDown | SchedulerState::ShutDown => Err(Error::ShutDown),
                _ => Err(Error::invalid("the scheduler is already started")),
            };
        }
        let inner = Arc::clone(&self.inner);
        *self.inner.loop_task.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::spawn(run_loop(inner)));
        tracing::info!(node = %self.inner.node, zone = %self.inner.zone, "scheduler started");
        self.inner.emit(Event::SchedulerStarted);
        Ok(())
    }

    /// Stops starting runs; runs in progress go on. Due times met while
    /// paused are handled by the misfire rules on resume.
    pub fn pause(&self) {
        if self.transition(SchedulerState::Running, SchedulerState::Paused) {
            self.inner.emit(Event::SchedulerPaused);
        }
    }

    /// Moves from `from` to `to` if the scheduler is in `from`; says whether it moved.
    fn transition(&self, from: SchedulerState, to: SchedulerState) -> bool {
        self.inner.state.send_if_modified(|s| {
            let change = *s == from;
            if change {
                *s = to;
            }
            change
        })
    }

    /// Starts runs again after [`pause`](Scheduler::pause).
    pub fn resume(&self) {
        if self.transition(SchedulerState::Paused, SchedulerState::Running) {
            self.inner.emit(Event::SchedulerResumed);
        }
    }

    /// Where the scheduler is in its life.
    pub fn state(&self) -> SchedulerState {
        *self.inner.state.borrow()
    }

    /// When the scheduler loop last came round (it does at least once a
    /// minute while running), or `None` before it first did. A health check
    /// compares it with the clock.
    pub fn last_tick(&self) -> Option<Timestamp> {
        match self.inner.last_tick.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            us => Timestamp::from_microsecond(us).ok(),
        }
    }

    /// This scheduler's node id.
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }

    /// The zone used for triggers that name none.
    pub fn timezone(&self) -> &Zone {
        &self.inner.zone
    }

    /// The scheduler's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.inner.store
    }

    /// Stops claiming jobs, then waits for or cancels the runs in progress.
    /// Returns when none is left.
    pub async fn shutdown(&self, mode: ShutdownMode) {
        let previous = self.inner.state.send_replace(SchedulerState::ShuttingDown);
        if previous == SchedulerState::ShutDown {
            self.inner.state.send_replace(SchedulerState::ShutDown);
            return;
        }
        self.inner.wake.notify_one();
        let task = self.inner.loop_task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let mut in_flight = self.inner.in_flight.subscribe();
        match mode {
            ShutdownMode::Wait(limit) => {
                let deadline =
                    later(self.inner.clock.now(), SignedDuration::try_from(limit).unwrap_or(SignedDuration::MAX));
                tokio::select! {
                    _ = in_flight.wait_for(|n| *n == 0) => {}
                    _ = self.inner.clock.sleep_until(deadline) => {
                        tracing::warn!("shutdown deadline passed; cancelling the runs still going");
                        self.cancel_runs(|_| true);
                    }
                }
            }
            ShutdownMode::Cancel => self.cancel_runs(|_| true),
        }
        let _ = in_flight.wait_for(|n| *n == 0).await;
        self.inner.state.send_replace(SchedulerState::ShutDown);
        tracing::info!("scheduler shut down");
        self.inner.emit(Event::SchedulerShutDown);
    }

    fn cancel_runs(&self, which: impl Fn(&JobId) -> bool) {
        let running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
        for (job_id, token) in running.values() {
            if which(job_id) {
                token.cancel();
            }
        }
    }

    /// Events as they happen. A slow subscriber that falls more than 1,024
    /// events behind misses the oldest (and is told so by the receiver).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

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
        job.state = crate::job::JobState { next_run_at: first_fire(&job.trigger, now), ..job.state };
        let stored = self.inner.store.add_job(job, on_conflict).await?;
        tracing::info!(job_id = %stored.id, next_run_at = ?stored.state.next_run_at, trigger = %stored.trigger.describe(), "job added");
        self.inner.emit(Event::JobAdded { job_id: stored.id.clone() });
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

    /// Pauses a job: it has no next run until resumed.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], or a store error.
    pub async fn pause_job(&self, id: &str, reason: &str) -> Result<Job> {
        let reason = if reason.trim().is_empty() { "paused".to_owned() } else { reason.to_owned() };
        let job = self
            .update(id, |job| {
                job.state.paused = Some(reason.clone());
                job.state.next_run_at = None;
                Ok(())
            })
            .await?;
        tracing::info!(job_id = %job.id, reason, "job paused");
        self.inner.emit(Event::JobPaused { job_id: job.id.clone(), reason });
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
        self.inner.emit(Event::JobResumed { job_id: job.id.clone(), next_run_at: job.state.next_run_at });
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
            self.cancel_runs(|j| *j == id);
        }
        tracing::info!(job_id = %id, ?mode, "job removed");
        self.inner.emit(Event::JobRemoved { job_id: id });
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
                    job.name = name.clone();
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
        self.inner.emit(Event::JobUpdated { job_id: job.id.clone() });
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
        self.inner.emit(Event::JobUpdated { job_id: job.id.clone() });
        Ok(job)
    }

    /// Runs a job once now, in addition to its schedule (which is unchanged).
    /// Works on paused jobs too. Subject to `max_instances`: if that many runs
    /// are going, the run is recorded as `skipped`.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`], [`Error::ShutDown`], or a store error.
    pub async fn run_job_now(&self, id: &str) -> Result<Run> {
        if matches!(self.state(), SchedulerState::ShuttingDown | SchedulerState::ShutDown) {
            return Err(Error::ShutDown);
        }
        let job = self.get_job(id).await?;
        let now = self.inner.clock.now();
        let running = self.inner.store.count_running(&job.id).await?;
        if running >= job.options.max_instances {
            let reason = format!("max_instances ({}) runs were already in progress", job.options.max_instances);
            let mut run = Run::not_run(job.id.clone(), now, RunStatus::Skipped, reason.clone(), &self.inner.node, now);
            run.kind = RunKind::Manual;
            self.inner.store.insert_run(run.clone()).await?;
            self.inner.emit(Event::RunSkipped { job_id: job.id, run_id: run.id, scheduled_for: now, reason });
            return Ok(run);
        }
        let run = Run::pending(job.id.clone(), now, RunKind::Manual, &self.inner.node);
        self.inner.store.insert_run(run.clone()).await?;
        tracing::info!(job_id = %job.id, run_id = %run.id, "run requested");
        executor::dispatch(&self.inner, Arc::new(job), run.clone());
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

    /// Brings the store in line with the jobs a service defines in code, at
    /// start-up. See DESIGN.md, "Jobs defined in code":
    ///
    /// * a job new in code is added;
    /// * a job whose code definition changed since the last sync is updated,
    ///   keeping its runtime state (history, last run, pause);
    /// * a job whose code definition is unchanged keeps its runtime edits
    ///   (paused or rescheduled from the CLI or API);
    /// * a stored job that came from code but is no longer in it is paused
    ///   with the reason "removed from code" and reported, never deleted.
    ///
    /// With `SCHEDULER_FORCE_UPDATE=true` in the environment, code wins over
    /// every runtime edit: definitions are rewritten and pauses lifted.
    ///
    /// # Errors
    ///
    /// The first invalid job or store error; jobs before it are already synced.
    pub async fn sync(&self, jobs: Vec<Job>) -> Result<SyncReport> {
        let force = force_update_requested(std::env::var("SCHEDULER_FORCE_UPDATE").ok().as_deref());
        self.sync_with(jobs, force).await
    }

    /// [`sync`](Scheduler::sync) with the force flag given rather than read from the environment.
    ///
    /// # Errors
    ///
    /// As for `sync`.
    pub async fn sync_with(&self, jobs: Vec<Job>, force: bool) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let mut in_code = std::collections::HashSet::new();
        let now = self.inner.clock.now();
        for mut job in jobs {
            job.validate()?;
            let hash = job.definition_hash();
            in_code.insert(job.id.clone());
            let Some(stored) = self.inner.store.get_job(&job.id).await? else {
                job.state.code_hash = Some(hash);
                let id = job.id.clone();
                self.add_job(job, ConflictPolicy::Error).await?;
                report.added.push(id);
                continue;
            };
            let unchanged = stored.state.code_hash.as_deref() == Some(hash.as_str());
            let revived = stored.state.paused.as_deref() == Some(REMOVED_FROM_CODE);
            if unchanged && !force && !revived {
                report.kept.push(job.id);
                continue;
            }
            match self.inner.tasks.interned(&job.task) {
                Some(name) => job.task = name,
                None => return Err(Error::UnknownTask(job.task.to_string())),
            }
            job.trigger.resolve(now, &self.inner.zone);
            let id = job.id.clone();
            self.update(id.as_str(), |stored| {
                let definition_changed = stored.state.code_hash.as_deref() != Some(hash.as_str());
                if definition_changed || force {
                    stored.name = job.name.clone();
                    stored.task = Arc::clone(&job.task);
                    stored.args = job.args.clone();
                    stored.trigger = job.trigger.clone();
                    stored.options = job.options.clone();
                }
                if force || stored.state.paused.as_deref() == Some(REMOVED_FROM_CODE) {
                    stored.state.paused = None;
                }
                if stored.is_paused() {
                    stored.state.next_run_at = None;
                } else if definition_changed || force || stored.state.next_run_at.is_none() {
                    stored.state.next_run_at = first_fire(&stored.trigger, now);
                }
                stored.state.code_hash = Some(hash.clone());
                Ok(())
            })
            .await?;
            self.inner.emit(Event::JobUpdated { job_id: id.clone() });
            report.updated.push(id);
        }
        for stored in self.inner.store.list_jobs(&JobFilter::default()).await? {
            if stored.state.code_hash.is_none() || in_code.contains(&stored.id) {
                continue;
            }
            if stored.state.paused.as_deref() != Some(REMOVED_FROM_CODE) {
                self.pause_job(stored.id.as_str(), REMOVED_FROM_CODE).await?;
            }
            report.orphaned.push(stored.id);
        }
        tracing::info!(%report, force, "jobs synced from code");
        for id in &report.orphaned {
            tracing::warn!(job_id = %id, "stored job is no longer defined in code; paused, not deleted");
        }
        Ok(report)
    }

    /// Figures for the whole scheduler: jobs by state, runs in progress here,
    /// and [`JobStats`] over every retained run.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn scheduler_stats(&self) -> Result<SchedulerStats> {
        let counts = self.job_counts().await?;
        let runs = self.inner.store.history(&RunQuery { limit: Some(usize::MAX), ..RunQuery::default() }).await?;
        Ok(SchedulerStats {
            jobs: counts.jobs,
            paused: counts.paused,
            finished: counts.finished,
            broken: counts.broken,
            running_here: self.running_here(),
            runs: JobStats::from_runs(&runs),
        })
    }

    /// How many jobs there are in each state, without reading run history
    /// (what a metrics scrape needs).
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn job_counts(&self) -> Result<JobCounts> {
        let jobs = self.inner.store.list_jobs(&JobFilter::default()).await?;
        let broken = self.inner.store.broken_jobs().await?.len();
        let count = |status: &str| jobs.iter().filter(|j| j.status() == status).count();
        Ok(JobCounts {
            jobs: jobs.len() + broken,
            active: count("active"),
            paused: count("paused"),
            finished: count("finished"),
            broken,
        })
    }

    /// Runs in progress in this process.
    pub fn running_here(&self) -> usize {
        *self.inner.in_flight.borrow()
    }

    /// Read-modify-write with the store's version check, retried when
    /// something else (usually the scheduler loop advancing the job) wrote
    /// in between.
    async fn update(&self, id: &str, change: impl Fn(&mut Job) -> Result<()>) -> Result<Job> {
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

/// A new job's first fire time: its trigger's first time at or after now,
/// or, for a one-off whose time has passed, that time (it runs once, late).
fn first_fire(trigger: &Trigger, now: Timestamp) -> Option<Timestamp> {
    if let Trigger::Date(d) = trigger {
        return Some(d.at);
    }
    trigger.next_after(now.checked_sub(SignedDuration::from_nanos(1)).unwrap_or(now))
}

/// The scheduler loop. See DESIGN.md, "Engine".
async fn run_loop(inner: Arc<Inner>) {
    match inner.store.reap_abandoned(&node_is_alive, inner.clock.now()).await {
        Ok(runs) => {
            for run in runs {
                tracing::warn!(job_id = %run.job_id, run_id = %run.id, node = ?run.node, "run abandoned by a process that died");
                inner.emit(Event::RunAbandoned {
                    job_id: run.job_id.clone(),
                    run_id: run.id,
                    scheduled_for: run.scheduled_for,
                });
                retry_abandoned(&inner, run).await;
            }
        }
        Err(e) => inner.store_error("reaping abandoned runs", &e),
    }
    match inner.store.broken_jobs().await {
        Ok(broken) => {
            for b in broken {
                tracing::error!(job_id = %b.id, problem = %b.problem, "stored job does not decode; kept, not scheduled");
            }
        }
        Err(e) => inner.store_error("listing broken jobs", &e),
    }
    let mut state = inner.state.subscribe();
    let mut next_prune = inner.clock.now();
    loop {
        let current = *state.borrow_and_update();
        match current {
            SchedulerState::ShuttingDown | SchedulerState::ShutDown => return,
            SchedulerState::Paused | SchedulerState::Stopped => {
                let _ = state.changed().await;
                continue;
            }
            SchedulerState::Running => {}
        }
        // Subscribe before reading the store, so a change made after the
        // read still wakes the sleep below.
        let mut changes = inner.store.changes();
        changes.borrow_and_update();

        let now = inner.clock.now();
        inner.last_tick.store(now.as_microsecond(), std::sync::atomic::Ordering::Relaxed);
        if now >= next_prune {
            next_prune = later(now, PRUNE_EVERY);
            let cutoff = inner.retention.max_age.and_then(|age| now.checked_sub(age).ok());
            match inner.store.prune(inner.retention.keep_per_job, cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, "pruned run history"),
                Err(e) => inner.store_error("pruning run history", &e),
            }
        }
        let claimed = match inner.store.acquire_due(now, inner.batch_size, &inner.node).await {
            Ok(claims) => {
                let n = claims.len();
                for claim in claims {
                    handle_claim(&inner, claim);
                }
                n
            }
            Err(e) => {
                inner.store_error("claiming due jobs", &e);
                inner.clock.sleep_until(later(now, STORE_RETRY)).await;
                continue;
            }
        };
        if claimed == inner.batch_size {
            // There may be more due right now.
            tokio::task::yield_now().await;
            continue;
        }
        let next = match inner.store.next_due_at().await {
            Ok(next) => next,
            Err(e) => {
                inner.store_error("reading the next due time", &e);
                Some(later(now, STORE_RETRY))
            }
        };
        let cap = later(now, MAX_SLEEP);
        let wake_at = next.map_or(cap, |n| n.min(cap));
        if wake_at <= now {
            continue;
        }
        tokio::select! {
            _ = inner.clock.sleep_until(wake_at) => {}
            _ = changes.changed() => {}
            _ = state.changed() => {}
            _ = inner.wake.notified() => {}
        }
    }
}

/// Runs an abandoned run again when its job's retry policy has attempts
/// left: the same run (same id, so the same idempotency key), next attempt.
async fn retry_abandoned(inner: &Arc<Inner>, mut run: Run) {
    let job = match inner.store.get_job(&run.job_id).await {
        Ok(Some(job)) => job,
        Ok(None) => return,
        Err(e) => return inner.store_error("reading the job of an abandoned run", &e),
    };
    let attempts_left = job.options.retry.as_ref().is_some_and(|r| run.attempt.max(1) < r.max_attempts);
    if !attempts_left {
        return;
    }
    run.attempt = run.attempt.max(1);
    run.status = RunStatus::Pending;
    run.finished_at = None;
    run.node = Some(Arc::clone(&inner.node));
    if let Err(e) = inner.store.update_run(&run).await {
        return inner.store_error("retrying an abandoned run", &e);
    }
    tracing::info!(job_id = %job.id, run_id = %run.id, attempt = run.attempt + 1, "retrying a run its process abandoned");
    executor::dispatch(inner, Arc::new(job), run);
}

fn handle_claim(inner: &Arc<Inner>, claim: Claim) {
    let Claim { job, runs, uncounted } = claim;
    let job = Arc::new(job);
    if uncounted > 0 {
        tracing::warn!(job_id = %job.id, uncounted, "more scheduled times were missed than are recorded one by one");
    }
    for run in runs {
        match run.status {
            RunStatus::Pending => executor::dispatch(inner, Arc::clone(&job), run),
            RunStatus::Missed => {
                let reason = run.error.clone().unwrap_or_default();
                tracing::warn!(job_id = %job.id, run_id = %run.id, scheduled_for = %run.scheduled_for, reason, "run missed");
                inner.emit(Event::RunMissed {
                    job_id: job.id.clone(),
                    run_id: run.id,
                    scheduled_for: run.scheduled_for,
                    reason,
                });
            }
            RunStatus::Skipped => {
                let reason = run.error.clone().unwrap_or_default();
                tracing::warn!(job_id = %job.id, run_id = %run.id, scheduled_for = %run.scheduled_for, reason, "run skipped");
                inner.emit(Event::RunSkipped {
                    job_id: job.id.clone(),
                    run_id: run.id,
                    scheduled_for: run.scheduled_for,
                    reason,
                });
            }
            other => {
                tracing::error!(job_id = %job.id, run_id = %run.id, status = %other, "store returned a claimed run in an unexpected state")
            }
        }
    }
    if job.state.next_run_at.is_none() && !job.is_paused() {
        tracing::info!(job_id = %job.id, "job finished: its trigger has no more fire times");
        inner.emit(Event::JobFinished { job_id: job.id.clone() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_force_update_values() {
        for yes in ["true", "TRUE", "True", "1", " true "] {
            assert!(force_update_requested(Some(yes)), "{yes:?}");
        }
        for no in [None, Some(""), Some("false"), Some("0"), Some("yes")] {
            assert!(!force_update_requested(no), "{no:?}");
        }
    }

    #[test]
    fn node_liveness() {
        let me = default_node_id();
        assert!(node_is_alive(&me));
        let dead = format!("{}-{}", this_host(), u32::MAX - 7);
        assert!(!node_is_alive(&dead));
        assert!(node_is_alive("another-host-123"), "other hosts cannot be checked from here");
        assert!(node_is_alive("custom-node-name"));
    }
}
