//! Where a run stands and why it exists: leaf types, depending on nothing in the crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A status name that is not one of [`RunStatus::ALL`]; converts into [`crate::Error::Invalid`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnknownStatus(String);

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// Claimed, waiting for a concurrency slot or its jitter delay.
    Pending,
    /// Executing.
    Running,
    /// The task returned `Ok`.
    Succeeded,
    /// The task returned an error or panicked, after any retries.
    Failed,
    /// The task ran past its timeout and was cancelled.
    TimedOut,
    /// Not run: the scheduled time was past the misfire grace time, or was
    /// coalesced into a later run.
    Missed,
    /// Not run: `max_instances` runs were already going.
    Skipped,
    /// Its node stopped renewing its lease (died, froze, lost the store)
    /// before the run finished; the sweeper of another node decided it.
    Abandoned,
    /// Cancelled by shutdown or by removing its job.
    Cancelled,
}

impl RunStatus {
    /// Every status, in a stable order.
    pub const ALL: [RunStatus; 9] = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::TimedOut,
        RunStatus::Missed,
        RunStatus::Skipped,
        RunStatus::Abandoned,
        RunStatus::Cancelled,
    ];

    /// Whether the run is over.
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Pending | RunStatus::Running)
    }

    /// The lowercase name used in JSON, SQL and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Missed => "missed",
            RunStatus::Skipped => "skipped",
            RunStatus::Abandoned => "abandoned",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<RunStatus, UnknownStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            UnknownStatus(format!(
                "unknown run status {s:?}: expected one of {}",
                RunStatus::ALL.map(RunStatus::as_str).join(", ")
            ))
        })
    }
}

/// Why a run exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Its trigger fired.
    #[default]
    Scheduled,
    /// Someone asked for it (`run_job_now`).
    Manual,
    /// A backfill: one scheduled time of the past that had no successful
    /// run, run late on purpose with its original scheduled time.
    Backfill,
    /// Another job's alert asked for it: this job is its `on_alert` hook.
    Alert,
}

impl RunKind {
    /// The lowercase name used in JSON, SQL and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Scheduled => "scheduled",
            RunKind::Manual => "manual",
            RunKind::Backfill => "backfill",
            RunKind::Alert => "alert",
        }
    }
}

impl FromStr for RunKind {
    type Err = String;

    fn from_str(s: &str) -> Result<RunKind, String> {
        [RunKind::Scheduled, RunKind::Manual, RunKind::Backfill, RunKind::Alert]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown run kind {s:?} (expected scheduled, manual, backfill or alert)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_and_print() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        let e = "done".parse::<RunStatus>().unwrap_err();
        assert!(e.to_string().contains("unknown run status \"done\""));
    }
}
