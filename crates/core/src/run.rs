//! Runs: one execution (or one decision not to execute) of a job for one scheduled time.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::id::{JobId, RunId};
use crate::node::Lease;
use crate::reason::Reason;
use crate::status::{RunKind, RunStatus};

/// Error text kept per run, in bytes.
pub const MAX_ERROR_LEN: usize = 4096;

/// One run of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The id.
    pub id: RunId,
    /// The job.
    pub job_id: JobId,
    /// The time the trigger scheduled it for (for a manual run, when it was asked for).
    pub scheduled_for: Timestamp,
    /// Why it exists.
    #[serde(default)]
    pub kind: RunKind,
    /// Where it stands.
    pub status: RunStatus,
    /// When the task started (the first attempt).
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// The node that holds it (claimed or ran it); none for a requested run
    /// no node has claimed yet.
    pub node: Option<Arc<str>>,
    /// The epoch of that node's lease when it claimed the run: updates are
    /// fenced by node and epoch (see [`crate::Lease`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// The error of the last attempt, or why it was missed or skipped; at most 4 KiB.
    pub error: Option<String>,
    /// Why it was decided the way it was, as a code with its data (missed,
    /// skipped, abandoned, cancelled, timed out); `error` says the same in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// What the task reported of itself (`JobContext::set_output`), such as
    /// the tail of a command's output; at most 4 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// What its node reported after losing its lease, when the sweeper had
    /// already decided the run ("succeeded at …, after its lease was lost").
    /// The status stays the sweeper's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_result: Option<String>,
}

impl Run {
    /// A run that has not started yet.
    pub fn pending(job_id: JobId, scheduled_for: Timestamp, kind: RunKind, node: &Arc<str>) -> Run {
        Run {
            id: RunId::new(),
            job_id,
            scheduled_for,
            kind,
            status: RunStatus::Pending,
            started_at: None,
            finished_at: None,
            attempt: 0,
            node: Some(Arc::clone(node)),
            epoch: None,
            error: None,
            reason: None,
            output: None,
            late_result: None,
        }
    }

    /// A run claimed under `lease`: pending, held by its node and epoch.
    pub fn claimed(job_id: JobId, scheduled_for: Timestamp, kind: RunKind, lease: &Lease) -> Run {
        Run { epoch: Some(lease.epoch), ..Run::pending(job_id, scheduled_for, kind, &lease.node) }
    }

    /// A run requested (run now) but held by no node yet: the next claim of
    /// any node that has its task takes it.
    pub fn requested(job_id: JobId, at: Timestamp) -> Run {
        Run { node: None, ..Run::pending(job_id, at, RunKind::Manual, &Arc::from("")) }
    }

    /// Whether `lease` holds this run.
    pub fn is_held_by(&self, lease: &Lease) -> bool {
        self.node.as_deref() == Some(&*lease.node) && self.epoch == Some(lease.epoch)
    }

    /// A run that was decided against: `missed` or `skipped`, with the reason.
    pub fn not_run(
        job_id: JobId,
        scheduled_for: Timestamp,
        status: RunStatus,
        reason: Reason,
        node: &Arc<str>,
        now: Timestamp,
    ) -> Run {
        Run { status, finished_at: Some(now), ..Run::pending(job_id, scheduled_for, RunKind::Scheduled, node) }
            .with_reason(reason)
    }

    /// Sets the reason, and the error text to its words.
    pub fn with_reason(mut self, reason: Reason) -> Run {
        self.set_reason(Some(reason));
        self
    }

    /// Sets (or clears) the reason, and the error text to its words.
    pub fn set_reason(&mut self, reason: Option<Reason>) {
        self.error = reason.as_ref().map(|r| cap_error(r.to_string()));
        self.reason = reason;
    }

    /// The `late_result` text for this (finished) run: what its node saw
    /// after the sweeper had decided the run.
    pub fn late_result_text(&self) -> String {
        let at = self.finished_at.map_or_else(String::new, |t| format!(" at {t}"));
        let error = self.error.as_deref().map_or_else(String::new, |e| format!(": {e}"));
        cap_error(format!(
            "{}{at} on node {}, after its lease was lost{error}",
            self.status,
            self.node.as_deref().unwrap_or("?")
        ))
    }

    /// How long it ran.
    pub fn duration(&self) -> Option<SignedDuration> {
        Some(self.finished_at?.duration_since(self.started_at?))
    }

    /// How late it started.
    pub fn lateness(&self) -> Option<SignedDuration> {
        Some(self.started_at?.duration_since(self.scheduled_for))
    }
}

/// Truncates error text to [`MAX_ERROR_LEN`] bytes on a character boundary.
pub fn cap_error(mut text: String) -> String {
    const MARK: &str = "… (truncated)";
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN - MARK.len();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(MARK);
    }
    text
}

/// Which runs to list, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunQuery {
    /// Only this job's runs.
    pub job_id: Option<JobId>,
    /// Only runs in one of these statuses (all when empty).
    pub statuses: Vec<RunStatus>,
    /// Only runs scheduled at or after this instant.
    pub since: Option<Timestamp>,
    /// Only runs scheduled before this instant.
    pub until: Option<Timestamp>,
    /// At most this many (default 100).
    pub limit: Option<usize>,
    /// Skip this many of the matching runs first (paging).
    pub offset: usize,
}

impl RunQuery {
    /// Whether `run` passes the filters (not the paging).
    pub fn matches(&self, run: &Run) -> bool {
        self.job_id.as_ref().is_none_or(|id| *id == run.job_id)
            && (self.statuses.is_empty() || self.statuses.contains(&run.status))
            && self.since.is_none_or(|s| run.scheduled_for >= s)
            && self.until.is_none_or(|u| run.scheduled_for < u)
    }

    /// The limit, defaulted.
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(100)
    }
}

/// Figures over a job's retained runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobStats {
    /// Runs that finished (any status but pending and running).
    pub runs: u64,
    /// Runs that succeeded.
    pub succeeded: u64,
    /// Runs that failed or timed out.
    pub failed: u64,
    /// Runs missed.
    pub missed: u64,
    /// Runs skipped.
    pub skipped: u64,
    /// succeeded / (succeeded + failed); none before any run executed.
    pub success_rate: Option<f64>,
    /// Mean duration of executed runs, in seconds.
    pub avg_duration_s: Option<f64>,
    /// 95th percentile duration of executed runs, in seconds.
    pub p95_duration_s: Option<f64>,
    /// Mean lateness (start minus scheduled time) of executed runs, in seconds.
    pub avg_lateness_s: Option<f64>,
    /// When the latest run started.
    pub last_run_at: Option<Timestamp>,
    /// When the latest successful run started.
    pub last_success_at: Option<Timestamp>,
}

/// What [`JobStats`] reads of a run: its status and its times. A store can
/// read these four columns alone for [`JobStore::recent_stats`](crate::JobStore::recent_stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunTimes {
    /// The run's status.
    pub status: RunStatus,
    /// When it was due.
    pub scheduled_for: Timestamp,
    /// When its first attempt started.
    pub started_at: Option<Timestamp>,
    /// When it was decided.
    pub finished_at: Option<Timestamp>,
}

impl From<&Run> for RunTimes {
    fn from(run: &Run) -> RunTimes {
        RunTimes {
            status: run.status,
            scheduled_for: run.scheduled_for,
            started_at: run.started_at,
            finished_at: run.finished_at,
        }
    }
}

impl JobStats {
    /// Computes the figures from runs, in any order.
    pub fn from_runs<'a>(runs: impl IntoIterator<Item = &'a Run>) -> JobStats {
        JobStats::from_times(runs.into_iter().map(RunTimes::from))
    }

    /// Computes the figures from the status and times of runs, in any order.
    pub fn from_times(runs: impl IntoIterator<Item = RunTimes>) -> JobStats {
        let mut s = JobStats::default();
        let mut durations = Vec::new();
        let mut lateness = Vec::new();
        for run in runs {
            if !run.status.is_finished() {
                continue;
            }
            s.runs += 1;
            match run.status {
                RunStatus::Succeeded => {
                    s.succeeded += 1;
                    s.last_success_at = s.last_success_at.max(run.started_at);
                }
                RunStatus::Failed | RunStatus::TimedOut => s.failed += 1,
                RunStatus::Missed => s.missed += 1,
                RunStatus::Skipped => s.skipped += 1,
                _ => {}
            }
            s.last_run_at = s.last_run_at.max(run.started_at);
            if let (Some(started), Some(finished)) = (run.started_at, run.finished_at) {
                durations.push(finished.duration_since(started).as_secs_f64());
            }
            if let Some(started) = run.started_at {
                lateness.push(started.duration_since(run.scheduled_for).as_secs_f64());
            }
        }
        let executed = s.succeeded + s.failed;
        s.success_rate = (executed > 0).then(|| s.succeeded as f64 / executed as f64);
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        s.avg_duration_s = mean(&durations);
        s.avg_lateness_s = mean(&lateness);
        durations.sort_by(f64::total_cmp);
        s.p95_duration_s = (!durations.is_empty()).then(|| {
            let rank = ((durations.len() as f64) * 0.95).ceil() as usize;
            durations[rank.clamp(1, durations.len()) - 1]
        });
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_is_capped_on_a_char_boundary() {
        let long = "é".repeat(5000);
        let capped = cap_error(long);
        assert!(capped.len() <= MAX_ERROR_LEN);
        assert!(capped.ends_with("(truncated)"));
        assert_eq!(cap_error("short".into()), "short");
    }

    #[test]
    fn stats_from_runs() {
        let id = JobId::new("j").unwrap();
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let node: Arc<str> = Arc::from("n");
        let mut runs = Vec::new();
        for i in 0..20i64 {
            let mut r = Run::pending(id.clone(), t0 + SignedDuration::from_hours(i), RunKind::Scheduled, &node);
            r.started_at = Some(r.scheduled_for + SignedDuration::from_secs(1));
            r.finished_at = Some(r.started_at.unwrap() + SignedDuration::from_secs(i + 1));
            r.status = if i % 4 == 0 { RunStatus::Failed } else { RunStatus::Succeeded };
            runs.push(r);
        }
        runs.push(Run::not_run(id, t0, RunStatus::Missed, crate::Reason::Coalesced { into: t0 }, &node, t0));
        let s = JobStats::from_runs(&runs);
        assert_eq!((s.runs, s.succeeded, s.failed, s.missed), (21, 15, 5, 1));
        assert_eq!(s.success_rate, Some(0.75));
        assert_eq!(s.avg_duration_s, Some(10.5));
        assert_eq!(s.p95_duration_s, Some(19.0));
        assert_eq!(s.avg_lateness_s, Some(1.0));
        assert_eq!(s.last_success_at, Some(t0 + SignedDuration::from_secs(19 * 3600 + 1)));
    }
}
