//! The seam between the engine and persistence.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use crate::error::Result;
use crate::id::JobId;
use crate::job::Job;
use crate::node::{ClaimRequest, Lease, NodeInfo, NodeRegistration, SweptRun};
use crate::run::{JobStats, Run, RunQuery};
use crate::status::RunStatus;

/// What `add_job` does when the id is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// Fail with a conflict error (the default).
    #[default]
    Error,
    /// Replace the stored job's definition and state.
    Replace,
    /// Keep the stored job and return it.
    KeepExisting,
}

/// What one claim took for a job: the job's state after the claim and the
/// run records the claim wrote or took (pending ones, held by the claiming
/// lease, to execute; missed and skipped ones already final).
#[derive(Clone, Debug)]
pub struct Claim {
    /// The job, with its next fire time already advanced.
    pub job: Job,
    /// The runs, oldest scheduled time first.
    pub runs: Vec<Run>,
    /// Due times too old to list; see `FirePlan::uncounted`.
    pub uncounted: u64,
}

/// Which jobs to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only paused (true) or only active (false) jobs.
    pub paused: Option<bool>,
    /// At most this many, ordered by id.
    pub limit: Option<usize>,
    /// Skip this many first.
    pub offset: usize,
    /// Only jobs with an alert option (`alert_after` or `alert_on_failures`):
    /// what the alert checks read. The SQL stores find them through an index
    /// of their own rather than by reading every job.
    pub with_alerts: bool,
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// Only jobs of this task (the exact name).
    pub task: Option<String>,
    /// Only jobs whose id, name or task contains this text, ASCII letters
    /// in either case (`Backup` finds `nightly-backup`); other characters
    /// match only themselves. `%` and `_` are plain characters here.
    pub search: Option<String>,
    /// Only active jobs (not paused) whose next fire time is at or after
    /// this.
    pub next_run_from: Option<Timestamp>,
    /// Only active jobs (not paused) whose next fire time is before this:
    /// with [`JobFilter::next_run_from`], the jobs next due in a span, which
    /// the SQL stores find through the due jobs' index.
    pub next_run_before: Option<Timestamp>,
}

impl JobFilter {
    /// Whether `job` passes every condition of the filter but its paging.
    /// `in_flight`: whether the job has a run pending or running now.
    pub fn admits(&self, job: &Job, in_flight: bool) -> bool {
        self.paused.is_none_or(|p| job.is_paused() == p)
            && (!self.with_alerts || job.has_alerts())
            && self.status.is_none_or(|s| s.holds(job, in_flight))
            && self.task.as_deref().is_none_or(|t| *job.task == *t)
            && self.search.as_deref().is_none_or(|text| found_by(job, text))
            && self.next_run_from.is_none_or(|from| next_run(job).is_some_and(|at| at >= from))
            && self.next_run_before.is_none_or(|before| next_run(job).is_some_and(|at| at < before))
    }
}

/// The next fire time of an active job; none for a paused one.
fn next_run(job: &Job) -> Option<Timestamp> {
    if job.is_paused() { None } else { job.state.next_run_at }
}

/// Whether `text` is in the job's id, name or task, ASCII letters in either
/// case: the SQL stores compare the same way (SQLite's `lower` folds only
/// ASCII; PostgreSQL's would follow the locale, so it is not used).
fn found_by(job: &Job, text: &str) -> bool {
    let needle = text.to_ascii_lowercase();
    [job.id.as_str(), job.name.as_deref().unwrap_or(""), &job.task]
        .iter()
        .any(|hay| hay.to_ascii_lowercase().contains(&needle))
}

/// A state a job listing can be narrowed to (the dashboard's filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Not paused, with a next fire time.
    Active,
    /// Paused.
    Paused,
    /// Not paused, and its trigger has no more fire times.
    Finished,
    /// With a run pending or running now.
    Running,
    /// Whose last run [`failed`](JobStatus::FAILING): failed, timed out or
    /// was abandoned.
    Failing,
}

impl JobStatus {
    /// Every state, in the order the dashboard shows them.
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Active, JobStatus::Paused, JobStatus::Running, JobStatus::Failing, JobStatus::Finished];

    /// The last statuses that make a job [`JobStatus::Failing`].
    pub const FAILING: [RunStatus; 3] = [RunStatus::Failed, RunStatus::TimedOut, RunStatus::Abandoned];

    /// The lowercase name used in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Active => "active",
            JobStatus::Paused => "paused",
            JobStatus::Finished => "finished",
            JobStatus::Running => "running",
            JobStatus::Failing => "failing",
        }
    }

    /// Whether `job` is in this state; `in_flight`: whether it has a run
    /// pending or running now.
    pub fn holds(self, job: &Job, in_flight: bool) -> bool {
        match self {
            JobStatus::Active | JobStatus::Paused | JobStatus::Finished => job.status() == self.as_str(),
            JobStatus::Running => in_flight,
            JobStatus::Failing => job.state.last_status.is_some_and(|s| JobStatus::FAILING.contains(&s)),
        }
    }
}

/// Spans of time side by side, as [`JobStore::count_next_runs`] counts in:
/// `count` of them, each `width` long, the first from `from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeSlots {
    from: Timestamp,
    width: SignedDuration,
    count: usize,
}

impl TimeSlots {
    /// The most slots: a year of hours, so that a mistaken count cannot ask
    /// a store for a vast answer.
    pub const MAX: usize = 366 * 24;

    /// `count` slots of `width` from `from`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for a width under a
    /// microsecond (the SQL stores keep microseconds), no slot, more than
    /// [`TimeSlots::MAX`], or an end past the last timestamp.
    pub fn new(from: Timestamp, width: SignedDuration, count: usize) -> Result<TimeSlots> {
        let invalid = |why: &str| Err(crate::Error::Invalid(format!("time slots: {why}")));
        if width < SignedDuration::from_micros(1) {
            return invalid(&format!("a width of {width:#} is not at least a microsecond"));
        }
        if count == 0 || count > Self::MAX {
            return invalid(&format!("{count} slots: expected 1 to {}", Self::MAX));
        }
        let slots = TimeSlots { from, width, count };
        if slots.checked_end().is_none() {
            return invalid("they end past the last timestamp");
        }
        Ok(slots)
    }

    /// Where the first slot starts.
    pub fn from(&self) -> Timestamp {
        self.from
    }

    /// How long each slot is.
    pub fn width(&self) -> SignedDuration {
        self.width
    }

    /// How many slots there are (at least one).
    pub fn slot_count(&self) -> usize {
        self.count
    }

    /// Where the last slot ends.
    pub fn end(&self) -> Timestamp {
        self.checked_end().unwrap_or(Timestamp::MAX)
    }

    fn checked_end(&self) -> Option<Timestamp> {
        let span = self.width.checked_mul(i32::try_from(self.count).ok()?)?;
        self.from.checked_add(span).ok()
    }

    /// The slot `at` falls in: the first for any time before `from`, none
    /// from [`TimeSlots::end`] on.
    pub fn slot_of(&self, at: Timestamp) -> Option<usize> {
        if at < self.from {
            return Some(0);
        }
        let i = at.duration_since(self.from).as_nanos() / self.width.as_nanos();
        usize::try_from(i).ok().filter(|&i| i < self.count)
    }

    /// How many of `times` fall in each slot.
    pub fn tally(&self, times: impl IntoIterator<Item = Timestamp>) -> Vec<usize> {
        let mut counts = vec![0; self.count];
        for i in times.into_iter().filter_map(|at| self.slot_of(at)) {
            counts[i] += 1;
        }
        counts
    }
}

/// [`JobStore::count_jobs`] from full listings: the default, and what a
/// store does for a filter its queries cannot count.
///
/// # Errors
///
/// The store's error.
pub async fn count_listed<S: JobStore + ?Sized>(store: &S, filter: &JobFilter) -> Result<StatusCounts> {
    let all = JobFilter { limit: None, offset: 0, ..filter.clone() };
    let running = JobFilter { status: Some(JobStatus::Running), ..all.clone() };
    let running: std::collections::HashSet<JobId> =
        store.list_jobs(&running).await?.into_iter().map(|j| j.id).collect();
    let mut counts = StatusCounts::default();
    for job in store.list_jobs(&all).await? {
        counts.add(&job, running.contains(&job.id));
    }
    Ok(counts)
}

/// How many jobs a filter admits, in all and in each state; see
/// [`JobStore::count_jobs`]. A job is in one of active, paused and
/// finished, and may also be running, failing or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatusCounts {
    /// Every job the filter admits.
    pub all: usize,
    /// Not paused, with a next fire time.
    pub active: usize,
    /// Paused.
    pub paused: usize,
    /// Not paused, with no more fire times.
    pub finished: usize,
    /// With a run pending or running now.
    pub running: usize,
    /// Whose last run failed, timed out or was abandoned.
    pub failing: usize,
}

impl StatusCounts {
    /// The jobs in `status`.
    pub fn get(&self, status: JobStatus) -> usize {
        match status {
            JobStatus::Active => self.active,
            JobStatus::Paused => self.paused,
            JobStatus::Finished => self.finished,
            JobStatus::Running => self.running,
            JobStatus::Failing => self.failing,
        }
    }

    /// Counts one more job; `in_flight`: whether it has a run pending or running now.
    pub fn add(&mut self, job: &Job, in_flight: bool) {
        self.all += 1;
        for status in JobStatus::ALL {
            if status.holds(job, in_flight) {
                *self.slot(status) += 1;
            }
        }
    }

    fn slot(&mut self, status: JobStatus) -> &mut usize {
        match status {
            JobStatus::Active => &mut self.active,
            JobStatus::Paused => &mut self.paused,
            JobStatus::Finished => &mut self.finished,
            JobStatus::Running => &mut self.running,
            JobStatus::Failing => &mut self.failing,
        }
    }
}

/// Where jobs and runs live.
///
/// Every store passes the same conformance suite (`chime-storetest`), and
/// every store decides what to do with a due job by calling
/// [`crate::plan_fire`] inside `acquire_due` and writing
/// [`crate::FirePlan::into_runs`], so no store re-implements misfire, coalesce
/// or trigger rules. A run is unique per (job, scheduled time) in every store.
///
/// # Nodes, leases and time
///
/// Methods that judge a lease take `now`, the caller's clock. A store with a
/// clock of its own (PostgreSQL's `now()`) uses that instead, so expiry is
/// never judged on a mix of two machines' clocks. See [`crate::Lease`].
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Adds a job. `job.state.next_run_at` must already be computed.
    ///
    /// Returns the stored job: the new one, or with `KeepExisting` the old one.
    async fn add_job(&self, job: Job, on_conflict: ConflictPolicy) -> Result<Job>;

    /// Adds several jobs in one step (one transaction, or one lock), each as
    /// `add_job` would. Atomic: with `ConflictPolicy::Error`, an id already
    /// taken fails the call with `JobExists` and adds none of them. The ids
    /// are distinct (the scheduler checks). Returns the stored jobs in order.
    async fn add_jobs(&self, jobs: Vec<Job>, on_conflict: ConflictPolicy) -> Result<Vec<Job>>;

    /// The job with this id. A stored row that no longer decodes is
    /// [`Error::BrokenJob`](crate::Error::BrokenJob).
    async fn get_job(&self, id: &JobId) -> Result<Option<Job>>;

    /// Jobs, ordered by id. Broken rows are left out (see `broken_jobs`).
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>>;

    /// How many jobs `filter` lists, its `limit` and `offset` aside: in all
    /// and in each [`JobStatus`] (the dashboard's chips). By default full
    /// listings; the memory store counts without copying a job, and the SQL
    /// stores in one statement: through their indexes without a search or
    /// task filter, else in one pass over the rows the filter reads.
    async fn count_jobs(&self, filter: &JobFilter) -> Result<StatusCounts> {
        count_listed(self, filter).await
    }

    /// How many active jobs are next due in each of `slots.count` spans of
    /// `slots.width` from `slots.from` (a job overdue before `from` counts in
    /// the first): the day view's picture when too many jobs fire in it to
    /// walk each trigger. Each job counts once, at its next fire time. By
    /// default a listing of the jobs due before the last span ends; the
    /// memory store walks its due-time order and the SQL stores count
    /// through their due jobs' index, no job row read.
    async fn count_next_runs(&self, slots: &TimeSlots) -> Result<Vec<usize>> {
        let due = JobFilter { next_run_before: Some(slots.end()), ..JobFilter::default() };
        Ok(slots.tally(self.list_jobs(&due).await?.iter().filter_map(|j| j.state.next_run_at)))
    }

    /// The tasks of the stored jobs (broken rows aside), in order, at most
    /// `limit` of them: the dashboard's task filter. By default a full
    /// listing.
    async fn job_tasks(&self, limit: usize) -> Result<Vec<String>> {
        let jobs = self.list_jobs(&JobFilter::default()).await?;
        let tasks: std::collections::BTreeSet<&str> = jobs.iter().map(|j| &*j.task).collect();
        Ok(tasks.into_iter().take(limit).map(str::to_owned).collect())
    }

    /// Replaces a job if its version is still `job.state.version`; the stored
    /// version is then incremented. Returns the stored job.
    async fn update_job(&self, job: Job) -> Result<Job>;

    /// Removes a job and returns it. Its run history stays.
    async fn remove_job(&self, id: &JobId) -> Result<Job>;

    /// The claim: renews `req.lease` (or fails with `LeaseLost`), then takes
    /// up to `req.limit` of what is ready for this node, earliest first:
    ///
    /// * jobs of `req.tasks` due at `req.now`: for each, applies
    ///   [`crate::plan_fire`] and stores the new next fire time (without
    ///   bumping the definition's version) and the planned runs, atomically;
    /// * runs requested with `request_run` (or re-queued by the sweeper) that
    ///   no node holds yet: each becomes this lease's, as a claim with the job
    ///   unchanged. A requested run whose job is gone is recorded `cancelled`.
    async fn acquire_due(&self, req: &ClaimRequest<'_>) -> Result<Vec<Claim>>;

    /// How many due jobs a claim takes unless the scheduler is told
    /// otherwise (`SchedulerBuilder::batch_size`): what suits this store.
    /// 64 by default: the memory store's lock is then held briefly, so the
    /// runs finishing meanwhile are not kept waiting.
    fn claim_batch(&self) -> usize {
        64
    }

    /// When the next claim of a node with `tasks` would find something: the
    /// earliest next fire time of an active job of those tasks, or the
    /// scheduled time of a run waiting for a node.
    async fn next_due_at(&self, tasks: &[Arc<str>]) -> Result<Option<Timestamp>>;

    /// Records a run as given (imports, tests). Fails with a conflict if the
    /// job already has a run for that scheduled time. Run-now is `request_run`.
    async fn insert_run(&self, run: Run) -> Result<()>;

    /// Updates a run: started, retried, finished. Fenced: the stored run must
    /// still be pending or running, held by `run.node` and `run.epoch` at an
    /// attempt no newer than `run.attempt`, and the store must still have
    /// that lease; otherwise (its node lost its lease and the sweeper decided
    /// it, or a newer attempt holds it) nothing of the decision is
    /// overwritten, the result is kept as the run's `late_result`, and the
    /// call fails with `LeaseLost`. A finished run also
    /// sets its job's last run time and status, when the job still exists.
    async fn update_run(&self, run: &Run) -> Result<()>;

    /// Run now, as one atomic step: counts the job's runs in flight and
    /// either inserts a pending `manual` run for `now` or, at
    /// `max_instances`, a `skipped` one with the reason. With a lease the run
    /// is that node's at once (it executes it itself); without, the next claim
    /// of any node that has the task takes it. The schedule is untouched and
    /// a paused job can be run.
    async fn request_run(&self, id: &JobId, now: Timestamp, lease: Option<&Lease>) -> Result<Run>;

    /// Backfills one scheduled time, as one atomic step with
    /// [`crate::backfill_run`]'s decision: a new pending `backfill` run for
    /// `at` held by no node (any node with the task claims it), or the run
    /// stored for `at` queued again when it did not succeed; `None` when it
    /// succeeded or is in flight. A paused job can be backfilled.
    async fn request_backfill(&self, id: &JobId, at: Timestamp) -> Result<Option<Run>>;

    /// Notifies an alert once: records that `job`'s alert `episode` (see
    /// [`crate::alert_episode`]) is notified and queues `hook`, a pending
    /// run of the `on_alert` job held by no node, as one atomic step; a
    /// time the hook's job already has a run for takes the next free
    /// microsecond. `false`, and nothing queued, when that episode of `job`,
    /// or a later one, was notified already (by this node or any other,
    /// before a restart or after): episodes only move forward, so one whose
    /// last success was pruned from history (read as the epoch) is never
    /// taken for a new alert.
    async fn notify_alert(&self, job: &JobId, episode: Timestamp, hook: Run) -> Result<bool>;

    /// How many of a job's runs are pending or running.
    async fn count_running(&self, id: &JobId) -> Result<u32>;

    /// Registers a node and grants it a lease of `ttl` from `now`, under an
    /// epoch the store has never given before. Fails with a conflict when a
    /// node of that id holds a lease that has not expired.
    async fn register_node(&self, node: &NodeRegistration, ttl: SignedDuration, now: Timestamp) -> Result<Lease>;

    /// The heartbeat: extends the lease to `now + ttl`. Succeeds while the
    /// store still has the node's row for that epoch, even past its expiry
    /// (no sweeper has decided anything yet); fails with `LeaseLost` once a
    /// sweeper has taken it.
    async fn renew_lease(&self, lease: &Lease, ttl: SignedDuration, now: Timestamp) -> Result<Lease>;

    /// Ends a lease at once (a clean shutdown). Runs it still holds are left
    /// to the sweeper.
    async fn release_lease(&self, lease: &Lease) -> Result<()>;

    /// The registered nodes, ordered by id, with their runs in flight.
    async fn nodes(&self) -> Result<Vec<NodeInfo>>;

    /// The sweeper: removes every node whose lease expired before `now` and,
    /// atomically with it, decides each pending or running run held by a
    /// lease the store no longer has: re-queued (pending, held by no node) as
    /// its next attempt when its job's retry policy has attempts left,
    /// otherwise `abandoned`. Safe to call from any number of nodes at once:
    /// each run is decided exactly once.
    async fn sweep(&self, now: Timestamp) -> Result<Vec<SweptRun>>;

    /// Runs matching `query`, newest scheduled time first.
    async fn history(&self, query: &RunQuery) -> Result<Vec<Run>>;

    /// Figures over a job's retained runs.
    async fn job_stats(&self, id: &JobId) -> Result<JobStats>;

    /// Figures over the newest `newest` runs of all jobs (by scheduled time,
    /// then id), with how many runs were read: fewer when the store holds
    /// fewer. By default from [`history`](Self::history); the SQL stores read
    /// only the four columns of [`RunTimes`](crate::RunTimes).
    async fn recent_stats(&self, newest: usize) -> Result<(JobStats, usize)> {
        let runs = self.history(&RunQuery { limit: Some(newest), ..RunQuery::default() }).await?;
        Ok((JobStats::from_runs(&runs), runs.len()))
    }

    /// Deletes finished runs beyond the newest `keep_per_job` of each job, and
    /// those scheduled before `older_than`. Returns how many were deleted.
    async fn prune(&self, keep_per_job: usize, older_than: Option<Timestamp>) -> Result<u64>;

    /// [`prune`](Self::prune)'s count rule for the listed jobs only: their
    /// finished runs beyond the newest `keep_per_job` of each. The engine
    /// calls it every few seconds with the jobs it claimed since, so history
    /// stays near what it keeps without reading every job's runs (the full
    /// prune runs every ten minutes). The default trims nothing, leaving it
    /// to that prune: a full prune every few seconds would read every run.
    async fn prune_jobs(&self, jobs: &[JobId], keep_per_job: usize) -> Result<u64> {
        let _ = (jobs, keep_per_job);
        Ok(0)
    }

    /// A signal that changes whenever a job is added, updated or removed, or
    /// a run is requested, by anyone, including another process sharing the store.
    fn changes(&self) -> watch::Receiver<u64>;

    /// Stored jobs that no longer decode (a trigger or arguments written by
    /// another version, a hand-edited row). They are kept, never deleted, and
    /// never claimed; each is reported with its problem. This reads every
    /// job (12 s at 1,000,000 on SQLite); the SQL stores mark each row it
    /// finds broken, so that [`JobStore::marked_broken`] lists it from then
    /// on. The scheduler runs it once when it starts.
    async fn broken_jobs(&self) -> Result<Vec<BrokenJob>> {
        Ok(Vec::new())
    }

    /// The stored jobs marked broken: by a claim that met one due, or by a
    /// [`JobStore::broken_jobs`] pass (the scheduler's start, `chime jobs
    /// list`). What a frequent reader (the dashboard's job list, on every
    /// poll after a change) asks for: the SQL stores read it through the
    /// index of broken rows instead of decoding every job. A row edited by
    /// hand since the last pass is listed once a claim or a pass meets it.
    /// By default [`JobStore::broken_jobs`].
    async fn marked_broken(&self) -> Result<Vec<BrokenJob>> {
        self.broken_jobs().await
    }

    /// Jobs by state, for `/metrics` and the stats: by default from a full
    /// listing; the SQL stores count in one query, without decoding a row,
    /// and there `broken` counts the rows marked broken (a claim marks a due
    /// row that does not decode; [`JobStore::broken_jobs`] finds the others).
    async fn job_counts(&self) -> Result<JobCounts> {
        let jobs = self.list_jobs(&JobFilter::default()).await?;
        let broken = self.broken_jobs().await?.len();
        let count = |status: &str| jobs.iter().filter(|j| j.status() == status).count();
        Ok(JobCounts {
            jobs: jobs.len() + broken,
            active: count("active"),
            paused: count("paused"),
            finished: count("finished"),
            broken,
        })
    }
}

/// Jobs by state; see [`JobStore::job_counts`].
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

/// A stored job that does not decode; see [`JobStore::broken_jobs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenJob {
    /// The stored id (possibly itself invalid).
    pub id: String,
    /// What does not decode, and why.
    pub problem: String,
}

impl std::fmt::Debug for dyn JobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobStore")
    }
}
