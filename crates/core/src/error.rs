use crate::id::{InvalidId, JobId};
use crate::status::UnknownStatus;

/// What can go wrong in the scheduler or a store.
///
/// Ask the predicates rather than matching variants: new variants may be
/// added as stores grow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No job has this id.
    #[error("no job with id {0:?}")]
    JobNotFound(JobId),
    /// A job with this id already exists and the conflict policy is `Error`.
    #[error("a job with id {0:?} already exists")]
    JobExists(JobId),
    /// The job already has a run for this scheduled time.
    #[error("job {job_id:?} already has a run scheduled for {scheduled_for}")]
    RunExists {
        /// The job.
        job_id: JobId,
        /// The scheduled time.
        scheduled_for: jiff::Timestamp,
    },
    /// The job changed since it was read (optimistic concurrency).
    #[error("job {id:?} was changed by someone else (expected version {expected}, found {found})")]
    VersionConflict {
        /// The job.
        id: JobId,
        /// The version the caller read.
        expected: u64,
        /// The version in the store.
        found: u64,
    },
    /// A job id, name, trigger, duration or option is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// No task with this name is registered with the scheduler.
    #[error("no task named {0:?} is registered")]
    UnknownTask(String),
    /// The scheduler has been shut down.
    #[error("the scheduler has shut down")]
    ShutDown,
    /// The node no longer holds the lease it acted under: it was not heard
    /// from within its lease, and another node's sweeper took its runs.
    #[error("node {node:?} lost its lease (epoch {epoch}): another node may have taken over its runs")]
    LeaseLost {
        /// The node.
        node: String,
        /// The epoch it held.
        epoch: u64,
    },
    /// A live node already uses this id.
    #[error("node id {id:?} is in use by a live node (its lease runs until {until}); give each node its own id")]
    NodeIdInUse {
        /// The id.
        id: String,
        /// When the other node's lease runs out.
        until: jiff::Timestamp,
    },
    /// The stored job no longer decodes (a hand-edited row, a newer chime's
    /// shape). It is kept, never deleted or claimed.
    #[error("job {id:?} is stored but does not decode: {problem}")]
    BrokenJob {
        /// The stored id.
        id: String,
        /// What does not decode.
        problem: String,
    },
    /// The store failed; `transient` says whether retrying may help.
    #[error("store error: {message}")]
    Store {
        /// What failed, naming the store and the operation.
        message: String,
        /// Whether retrying the operation may succeed (a locked database, a lost connection).
        transient: bool,
    },
}

impl Error {
    /// True when the job id does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::JobNotFound(_))
    }

    /// True when the operation conflicts with existing state: the id exists,
    /// or the job changed since it was read.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::JobExists(_) | Error::RunExists { .. } | Error::VersionConflict { .. } | Error::NodeIdInUse { .. }
        )
    }

    /// True when a node acted under a lease it no longer holds.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, Error::LeaseLost { .. })
    }

    /// True when the input was invalid (a bad id, trigger, duration or option).
    pub fn is_invalid(&self) -> bool {
        matches!(self, Error::Invalid(_) | Error::UnknownTask(_))
    }

    /// True when retrying may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Store { transient: true, .. })
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }
}

impl From<InvalidId> for Error {
    fn from(e: InvalidId) -> Error {
        Error::Invalid(e.to_string())
    }
}

impl From<UnknownStatus> for Error {
    fn from(e: UnknownStatus) -> Error {
        Error::Invalid(e.to_string())
    }
}

/// `Result` with chime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
