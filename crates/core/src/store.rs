//! The seam between the engine and persistence.

use async_trait::async_trait;
use jiff::Timestamp;
use tokio::sync::watch;

use crate::error::Result;
use crate::job::{Job, JobId};
use crate::run::{JobStats, Run, RunQuery};

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

/// A due job claimed by `acquire_due`: its state after the claim and the run
/// records the claim wrote (pending ones to execute, missed and skipped ones
/// already final).
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
}

/// Where jobs and runs live.
///
/// Every store passes the same conformance suite, and every store decides
/// what to do with a due job by calling [`crate::plan_fire`] inside
/// `acquire_due`, so no store re-implements misfire, coalesce or trigger
/// rules. A run is unique per (job, scheduled time) in every store.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Adds a job. `job.state.next_run_at` must already be computed.
    ///
    /// Returns the stored job: the new one, or with `KeepExisting` the old one.
    async fn add_job(&self, job: Job, on_conflict: ConflictPolicy) -> Result<Job>;

    /// The job with this id.
    async fn get_job(&self, id: &JobId) -> Result<Option<Job>>;

    /// Jobs, ordered by id.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>>;

    /// Replaces a job if its version is still `job.state.version`; the stored
    /// version is then incremented. Returns the stored job.
    async fn update_job(&self, job: Job) -> Result<Job>;

    /// Removes a job and returns it. Its run history stays.
    async fn remove_job(&self, id: &JobId) -> Result<Job>;

    /// Claims up to `limit` jobs due at `now`, earliest first: for each,
    /// applies [`crate::plan_fire`], stores the new next fire time and the
    /// planned runs, atomically.
    async fn acquire_due(&self, now: Timestamp, limit: usize, node: &str) -> Result<Vec<Claim>>;

    /// The earliest next fire time of any active job.
    async fn next_due_at(&self) -> Result<Option<Timestamp>>;

    /// Records a new run (a manual run). Fails with a conflict if the job
    /// already has a run for that scheduled time.
    async fn insert_run(&self, run: Run) -> Result<()>;

    /// Updates a run: started, retried, finished. A finished run also sets
    /// its job's last run time and status, when the job still exists.
    async fn update_run(&self, run: &Run) -> Result<()>;

    /// How many of a job's runs are pending or running.
    async fn count_running(&self, id: &JobId) -> Result<u32>;

    /// Runs matching `query`, newest scheduled time first.
    async fn history(&self, query: &RunQuery) -> Result<Vec<Run>>;

    /// Figures over a job's retained runs.
    async fn job_stats(&self, id: &JobId) -> Result<JobStats>;

    /// Deletes finished runs beyond the newest `keep_per_job` of each job, and
    /// those scheduled before `older_than`. Returns how many were deleted.
    async fn prune(&self, keep_per_job: usize, older_than: Option<Timestamp>) -> Result<u64>;

    /// A signal that changes whenever a job is added, updated or removed by
    /// anyone, including another process sharing the store.
    fn changes(&self) -> watch::Receiver<u64>;

    /// Stored jobs that no longer decode (a trigger or arguments written by
    /// another version, a hand-edited row). They are kept, never deleted, and
    /// never claimed; each is reported with its problem.
    async fn broken_jobs(&self) -> Result<Vec<BrokenJob>> {
        Ok(Vec::new())
    }

    /// Marks runs left `pending` or `running` by a process that died as
    /// `abandoned`, and returns them. `is_alive` says whether a run's node
    /// still exists. Stores that live and die with their process have none.
    async fn reap_abandoned(
        &self,
        is_alive: &(dyn for<'a> Fn(&'a str) -> bool + Send + Sync),
        now: Timestamp,
    ) -> Result<Vec<Run>> {
        let _ = (is_alive, now);
        Ok(Vec::new())
    }
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
