//! Events: every decision the scheduler makes, as it makes it.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use tokio::sync::broadcast;

use crate::error::Error;
use crate::id::{JobId, RunId};
use crate::status::RunStatus;

/// Something the scheduler did or decided. Subscribe with `Scheduler::subscribe`.
///
/// Every run decision is also a run record in the store and a `tracing`
/// event carrying the job id and run id.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// Sent when `start` begins the scheduler loop.
    SchedulerStarted,
    /// Sent when `pause` stops the loop from starting runs.
    SchedulerPaused,
    /// Sent when `resume` lets the loop start runs again.
    SchedulerResumed,
    /// Sent when `shutdown` has finished: no run is left.
    SchedulerShutDown,
    /// Sent when a job is added.
    JobAdded {
        /// The job.
        job_id: JobId,
    },
    /// Sent when a job's definition or trigger changes.
    JobUpdated {
        /// The job.
        job_id: JobId,
    },
    /// Sent when a job is removed.
    JobRemoved {
        /// The job.
        job_id: JobId,
    },
    /// Sent when a job is paused.
    JobPaused {
        /// The job.
        job_id: JobId,
        /// Why.
        reason: String,
    },
    /// Sent when a job is resumed.
    JobResumed {
        /// The job.
        job_id: JobId,
        /// Its next run, computed from now.
        next_run_at: Option<Timestamp>,
    },
    /// Sent when a job's trigger has no more fire times.
    JobFinished {
        /// The job.
        job_id: JobId,
    },
    /// Sent when a run's task starts (each attempt).
    RunStarted {
        /// The job.
        job_id: JobId,
        /// The run.
        run_id: RunId,
        /// Its scheduled time.
        scheduled_for: Timestamp,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// Sent when a run's task returns `Ok`.
    RunSucceeded {
        /// The job.
        job_id: JobId,
        /// The run.
        run_id: RunId,
        /// How long the last attempt took.
        duration: SignedDuration,
    },
    /// Sent when an attempt fails; `will_retry` says whether another follows.
    RunFailed {
        /// The job.
        job_id: JobId,
        /// The run.
        run_id: RunId,
        /// The attempt that failed.
        attempt: u32,
        /// The error.
        error: String,
        /// Whether the retry policy schedules another attempt.
        will_retry: bool,
    },
    /// Sent when an attempt runs past the job's timeout and is cancelled.
    RunTimedOut {
        /// The job.
        job_id: JobId,
        /// The run.
        run_id: RunId,
        /// The attempt.
        attempt: u32,
        /// Whether the retry policy schedules another attempt.
        will_retry: bool,
    },
    /// Sent when a run is cancelled (shutdown, or its job removed with cancellation).
    RunCancelled {
        /// The job.
        job_id: JobId,
        /// The run.
        run_id: RunId,
    },
    /// Sent by the sweeper for a run whose node stopped renewing its lease
    /// (it died, froze, or lost the store) before the run finished.
    RunAbandoned {
        /// The job.
        job_id: JobId,
        /// The run.
        run_id: RunId,
        /// Its scheduled time.
        scheduled_for: Timestamp,
        /// The node that held it.
        node: String,
        /// Whether it was re-queued as its next attempt (its job's retry
        /// policy had attempts left) rather than left `abandoned`.
        requeued: bool,
    },
    /// Sent when this node finds it lost its lease: another node's sweeper
    /// may have taken its runs. It cancels them and registers again.
    LeaseLost {
        /// The node.
        node: String,
        /// The epoch it lost.
        epoch: u64,
    },
    /// Sent when a scheduled time is not run because it was too late or coalesced.
    RunMissed {
        /// The job.
        job_id: JobId,
        /// The run record.
        run_id: RunId,
        /// The scheduled time.
        scheduled_for: Timestamp,
        /// Why.
        reason: String,
    },
    /// Sent when a scheduled time is not run because `max_instances` runs were going.
    RunSkipped {
        /// The job.
        job_id: JobId,
        /// The run record.
        run_id: RunId,
        /// The scheduled time.
        scheduled_for: Timestamp,
        /// Why.
        reason: String,
    },
    /// Sent when the store fails; scheduling continues where it can.
    StoreError {
        /// What the scheduler was doing.
        operation: String,
        /// The error.
        message: String,
    },
}

impl Event {
    /// The status a run ended in, when this event ends one (a failed or
    /// timed-out attempt followed by a retry does not: its run goes on).
    /// What a counter of finished runs counts.
    pub fn run_outcome(&self) -> Option<RunStatus> {
        match self {
            Event::RunSucceeded { .. } => Some(RunStatus::Succeeded),
            Event::RunFailed { will_retry: false, .. } => Some(RunStatus::Failed),
            Event::RunTimedOut { will_retry: false, .. } => Some(RunStatus::TimedOut),
            Event::RunCancelled { .. } => Some(RunStatus::Cancelled),
            Event::RunAbandoned { .. } => Some(RunStatus::Abandoned),
            Event::RunMissed { .. } => Some(RunStatus::Missed),
            Event::RunSkipped { .. } => Some(RunStatus::Skipped),
            _ => None,
        }
    }

    /// The job the event is about, if any.
    pub fn job_id(&self) -> Option<&JobId> {
        match self {
            Event::JobAdded { job_id }
            | Event::JobUpdated { job_id }
            | Event::JobRemoved { job_id }
            | Event::JobPaused { job_id, .. }
            | Event::JobResumed { job_id, .. }
            | Event::JobFinished { job_id }
            | Event::RunStarted { job_id, .. }
            | Event::RunSucceeded { job_id, .. }
            | Event::RunFailed { job_id, .. }
            | Event::RunTimedOut { job_id, .. }
            | Event::RunCancelled { job_id, .. }
            | Event::RunAbandoned { job_id, .. }
            | Event::RunMissed { job_id, .. }
            | Event::RunSkipped { job_id, .. } => Some(job_id),
            Event::SchedulerStarted
            | Event::SchedulerPaused
            | Event::SchedulerResumed
            | Event::SchedulerShutDown
            | Event::LeaseLost { .. }
            | Event::StoreError { .. } => None,
        }
    }
}

/// Where the engine's parts send events: the scheduler's broadcast channel.
#[derive(Clone, Debug)]
pub(crate) struct Events(pub(crate) broadcast::Sender<Event>);

impl Events {
    pub(crate) fn emit(&self, event: Event) {
        // No subscribers is fine.
        let _ = self.0.send(event);
    }

    pub(crate) fn store_error(&self, operation: &str, err: &Error) {
        tracing::error!(operation, error = %err, "store error");
        self.emit(Event::StoreError { operation: operation.to_owned(), message: err.to_string() });
    }
}
