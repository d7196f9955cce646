//! The chime scheduler engine: triggers, jobs, tasks, the executor, events,
//! virtual time and the in-memory store, with the `JobStore` seam that the
//! SQLite and PostgreSQL stores implement.
//!
//! ```
//! use chime_core::{ConflictPolicy, Job, JobContext, Scheduler, ShutdownMode, TaskRegistry, Trigger};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut tasks = TaskRegistry::new();
//! tasks.register("send_report", |ctx: JobContext| async move {
//!     println!("sending the report scheduled for {}", ctx.scheduled_for);
//!     Ok::<_, std::io::Error>(())
//! });
//! tasks.register_blocking("cleanup_tmp", |_ctx| {
//!     // File system work on the blocking pool.
//!     Ok::<_, std::io::Error>(())
//! });
//!
//! let scheduler = Scheduler::builder().tasks(tasks).timezone("Europe/London")?.build();
//! // A daily report at 09:00 (London time), by cron...
//! scheduler
//!     .add_job(Job::new("daily-report", "send_report", Trigger::cron("0 9 * * *")?)?, ConflictPolicy::Replace)
//!     .await?;
//! // ...and a temp-file cleanup every 4 hours.
//! scheduler
//!     .add_job(Job::new("cleanup", "cleanup_tmp", Trigger::every("4h")?)?, ConflictPolicy::Replace)
//!     .await?;
//! scheduler.start()?;
//!
//! for job in scheduler.jobs().await? {
//!     println!("{}: {} (next {:?})", job.id, job.trigger.describe(), job.state.next_run_at);
//! }
//! scheduler.shutdown(ShutdownMode::Wait(Duration::from_secs(30))).await;
//! # Ok(())
//! # }
//! ```
//!
//! # Overview
//!
//! * A [`Trigger`] says when: `cron`, `interval`, `calendar`, `date`, and
//!   `any`/`all` combinations. Triggers are plain data with a stable JSON shape.
//! * A [`TaskRegistry`] names the code that runs: async handlers, or blocking
//!   ones run on tokio's blocking pool, each given a [`JobContext`].
//! * A [`Job`] ties a task, its JSON arguments and a trigger together, with
//!   [`JobOptions`]: `max_instances` (1), `coalesce` (true),
//!   `misfire_grace_time` (none), `jitter`, `timeout`, `retry`.
//! * The [`Scheduler`] claims due jobs from a [`JobStore`] and runs them,
//!   recording every decision as a [`Run`] and an [`Event`].
//!
//! # Missed runs
//!
//! When the scheduler finds a job due at several past times (it was paused,
//! stopped, or busy), [`plan_fire`] decides, the same way for every store:
//! a time older than `misfire_grace_time` is recorded as `missed`; of the
//! rest, with `coalesce` only the latest runs and the others are recorded as
//! `missed` ("coalesced"), without it each runs; a run beyond `max_instances`
//! is recorded as `skipped`. "Why didn't it run?" always has an answer in the
//! history. `resume_job` computes the next run from now, so resuming a job
//! paused for a week does not unleash a week of runs.
//!
//! # Several schedulers, one store
//!
//! Every scheduler is a node with a [`Lease`] in its store, renewed by a
//! heartbeat every third of [`SchedulerBuilder::node_lease`] (30 s by
//! default). Runs record the node and lease epoch that claimed them, and
//! every update of a run is fenced by them. When a node stops renewing (it
//! died, froze, lost the store), any other node's sweeper marks its unfinished
//! runs `abandoned`, or re-queues them as their next attempt when the job has
//! retries left; the frozen node's late results are kept as `late_result`
//! beside that decision. Dispatch is exactly once (a run row is unique per job
//! and scheduled time); execution is at least once after a crash, so give
//! tasks the run id as an idempotency key.
//!
//! # Time
//!
//! The engine reads time only from a [`Clock`]. [`ManualClock`] lets a test
//! drive a year of daily runs in milliseconds. Fire times are computed in the
//! trigger's IANA zone with the DST rules of `chime-cron`.
//!
//! # Crate features
//!
//! None.

mod clock;
mod duration;
mod error;
mod event;
mod executor;
mod health;
mod heartbeat;
mod id;
mod job;
mod limits;
mod memory;
mod node;
mod plan;
mod reason;
mod run;
mod scheduler;
mod status;
mod store;
mod task;
mod trigger;
pub mod why;

pub use crate::clock::{Clock, ManualClock, Sleep, SystemClock};
pub use crate::duration::{IntoDuration, format_duration, parse_duration};
pub use crate::error::{Error, Result};
pub use crate::event::Event;
pub use crate::health::{Alert, alert_episode, alerts_of, check_job, job_alert};
pub use crate::id::{InvalidId, JobId, MAX_JOB_ID_LEN, RunId};
pub use crate::job::{Job, JobOptions, JobState, RetryPolicy};
pub use crate::limits::{
    DEFAULT_MIN_INTERVAL, MAX_ALERT_FAILURES, MAX_ATTEMPTS, MAX_CALENDAR_STEP, MAX_COMBINED, MAX_DURATION,
    MAX_INSTANCES, MAX_NESTING, MIN_ALERT_AFTER, MIN_INTERVAL_FLOOR,
};
pub use crate::memory::{DEFAULT_HISTORY_LIMIT, MemoryStore};
pub use crate::node::{
    ClaimRequest, DEFAULT_NODE_LEASE, Lease, MIN_NODE_LEASE, NodeInfo, NodeRegistration, SweptRun, backfill_run,
    default_node_id, host_name, requested_run, sweep_run,
};
pub use crate::plan::{Decision, FirePlan, MAX_DUE_TIMES, PlannedRun, plan_fire};
pub use crate::reason::{AlertNotice, CancelledBy, Reason, Stage};
pub use crate::run::{JobStats, MAX_ERROR_LEN, Run, RunQuery, RunTimes, cap_error};
pub use crate::scheduler::{
    ADD_BATCH, DEFAULT_SHUTDOWN_GRACE, JobPatch, REMOVED_FROM_CODE, RemoveMode, STATS_WINDOW, Scheduler,
    SchedulerBuilder, SchedulerState, SchedulerStats, ShutdownMode, SyncReport,
};
pub use crate::status::{RunKind, RunStatus, UnknownStatus};
pub use crate::store::{
    BrokenJob, Claim, ConflictPolicy, JobCounts, JobFilter, JobStatus, JobStore, StatusCounts, TimeSlots, count_listed,
};
pub use crate::task::{JobContext, TaskError, TaskRegistry, TaskResult};
pub use crate::trigger::{
    CalendarTrigger, CalendarUnit, CombinedTrigger, CronTrigger, DateTrigger, IntervalTrigger, Trigger, Zone,
};

/// The time library chime's API speaks (`Timestamp`, `SignedDuration`, zones),
/// re-exported so a service needs no direct dependency on it.
pub use jiff;

/// Runs the Rust examples in the workspace README as doctests, so they stay true.
#[cfg(doctest)]
mod readme_examples {
    #[doc = include_str!("../../../README.md")]
    struct WorkspaceReadme;
}
