//! Why a run was not run, or ended the way it did: a stable code with its
//! data, stored with the run (JSON) beside the same words in its `error`.
//!
//! The code is for programs (`chime jobs why --json`, the API, a user's
//! alerting); [`Reason`]'s `Display` is for people and is what the run's
//! `error` text says. A code this version does not know (written by a newer
//! chime) reads back as [`Reason::Unknown`]; the `error` text still tells.
//!
//! ```
//! use chime_core::Reason;
//!
//! let reason: Reason = serde_json::from_str(r#"{"code":"coalesced","into":"2026-01-01T03:00:00Z"}"#)?;
//! assert_eq!(reason.code(), "coalesced");
//! assert_eq!(reason.to_string(), "coalesced into the run scheduled for 2026-01-01T03:00:00Z");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::duration::format_duration;
use crate::id::{JobId, RunId};

/// Why a run was decided the way it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// `missed`: the time was found later than the job's misfire grace time allows.
    PastGrace {
        /// How late it was found, rounded to the second.
        #[serde(with = "crate::duration::text")]
        late: SignedDuration,
        /// The job's `misfire_grace_time`.
        #[serde(with = "crate::duration::text")]
        grace: SignedDuration,
    },
    /// `missed`: several times were due at once and the job coalesces them
    /// into the latest.
    Coalesced {
        /// The scheduled time that ran instead.
        into: Timestamp,
    },
    /// `missed`: one row standing for a backlog too long to record one row
    /// per time (beyond [`crate::MAX_DUE_TIMES`]).
    Backlog {
        /// How many times it stands for.
        count: u64,
        /// Whether `count` is a lower bound (past a million, the walk jumps).
        at_least: bool,
        /// The first of those times.
        from: Timestamp,
        /// The last of them.
        to: Timestamp,
    },
    /// `skipped`: `max_instances` runs of the job were already in flight.
    MaxInstances {
        /// The job's `max_instances`.
        max_instances: u32,
        /// The runs in flight at the time (pending or running), the first
        /// [`Reason::MAX_NAMED`] of them.
        #[serde(default)]
        in_flight: Vec<RunId>,
    },
    /// `abandoned`, or re-queued: the run's node stopped renewing its lease.
    LeaseExpired {
        /// The node whose lease ran out.
        node: String,
        /// Whether the run had started on it.
        started: bool,
        /// Whether the run was re-queued as its next attempt (the job retries).
        requeued: bool,
    },
    /// `cancelled`: by whom and when.
    Cancelled {
        /// Who or what cancelled it.
        by: CancelledBy,
        /// What the run was doing.
        stage: Stage,
    },
    /// `timed_out`: the attempt ran past the job's timeout.
    TimedOut {
        /// The job's `timeout`.
        #[serde(with = "crate::duration::text")]
        after: SignedDuration,
    },
    /// The run was asked for by another job's alert: this job is that
    /// job's `on_alert` hook, and the notice is what its task is told.
    Alert(AlertNotice),
    /// A code this version of chime does not know.
    #[serde(other)]
    Unknown,
}

/// What an `on_alert` hook is told: which job is in alert, why, since when.
/// Its task reads it from [`crate::JobContext::alert`]; a `command` gets it
/// as `CHIME_ALERT_JOB`, `CHIME_ALERT_REASON`, `CHIME_ALERT_ERROR`,
/// `CHIME_ALERT_SINCE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertNotice {
    /// The job in alert.
    pub job_id: JobId,
    /// Why, in words (the alert's reason).
    pub reason: String,
    /// The error of its newest failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the alert began.
    pub since: Timestamp,
}

/// Who or what cancelled a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CancelledBy {
    /// The scheduler shut down (`ShutdownMode::Cancel`, or the wait ran out).
    Shutdown,
    /// Its job was removed with `RemoveMode::Cancel`.
    JobRemoved,
    /// Its node lost its lease; another node's sweeper decides the run.
    LeaseLost,
    /// Its job was removed before any node took the run.
    JobMissing,
    /// Its job's stored row does not decode (see the job's `broken` reason).
    Unreadable,
    /// A cause this version of chime does not know.
    #[serde(other)]
    Unknown,
}

/// What a run was doing when it was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Stage {
    /// Waiting for its jitter delay, a concurrency slot, or a node.
    BeforeStart,
    /// Executing its task.
    Running,
    /// Between a failed attempt and the next.
    WaitingToRetry,
    /// A stage this version of chime does not know.
    #[serde(other)]
    Unknown,
}

impl Reason {
    /// The most runs in flight a `max_instances` reason names: a job with
    /// `max_instances = 10000` would otherwise store 10,000 ids per skip.
    pub const MAX_NAMED: usize = 20;

    /// A `max_instances` reason naming (at most [`Reason::MAX_NAMED`] of) `in_flight`.
    pub fn max_instances(max_instances: u32, in_flight: impl IntoIterator<Item = RunId>) -> Reason {
        Reason::MaxInstances { max_instances, in_flight: in_flight.into_iter().take(Reason::MAX_NAMED).collect() }
    }

    /// The stable code: `past_grace`, `coalesced`, `backlog`,
    /// `max_instances`, `lease_expired`, `cancelled`, `timed_out`, `alert`.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::PastGrace { .. } => "past_grace",
            Reason::Coalesced { .. } => "coalesced",
            Reason::Backlog { .. } => "backlog",
            Reason::MaxInstances { .. } => "max_instances",
            Reason::LeaseExpired { .. } => "lease_expired",
            Reason::Cancelled { .. } => "cancelled",
            Reason::TimedOut { .. } => "timed_out",
            Reason::Alert(_) => "alert",
            Reason::Unknown => "unknown",
        }
    }

    /// The reason as stored: JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a reason always serializes")
    }

    /// A stored reason, or none when the text is not a reason at all (a row
    /// edited by hand): the run's `error` text still says it in words.
    pub fn from_json(text: &str) -> Option<Reason> {
        serde_json::from_str(text).ok()
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::PastGrace { late, grace } => {
                write!(f, "{} late, past the misfire grace time of {}", format_duration(*late), format_duration(*grace))
            }
            Reason::Coalesced { into } => write!(f, "coalesced into the run scheduled for {into}"),
            Reason::Backlog { count, at_least, from, to } => {
                let many = if *at_least { "at least " } else { "" };
                write!(
                    f,
                    "{many}{count} scheduled times from {from} to {to} were missed (a backlog too long to record one by one)"
                )
            }
            Reason::MaxInstances { max_instances, in_flight } => {
                write!(f, "max_instances ({max_instances}) runs were already in progress")?;
                for (i, id) in in_flight.iter().take(3).enumerate() {
                    f.write_str(if i == 0 { ": run " } else { ", " })?;
                    write!(f, "{id}")?;
                }
                match in_flight.len() {
                    0..=3 => {}
                    n if n < Reason::MAX_NAMED => write!(f, " and {} more", n - 3)?,
                    _ => f.write_str(" and more")?,
                }
                Ok(())
            }
            Reason::LeaseExpired { node, started, requeued } => {
                let was = if *started { "running" } else { "waiting to start" };
                write!(f, "its node {node} stopped renewing its lease while the run was {was}")?;
                if *requeued {
                    f.write_str("; re-queued as the next attempt")?;
                }
                Ok(())
            }
            Reason::Cancelled { by, stage } => {
                let when = match stage {
                    Stage::BeforeStart => "cancelled before it started",
                    Stage::Running => "cancelled while running",
                    Stage::WaitingToRetry => "cancelled while waiting to retry",
                    Stage::Unknown => "cancelled",
                };
                let by = match by {
                    CancelledBy::Shutdown => "the scheduler shut down",
                    CancelledBy::JobRemoved => "its job was removed",
                    CancelledBy::LeaseLost => "its node lost its lease",
                    CancelledBy::JobMissing => "its job was removed before a node took it",
                    CancelledBy::Unreadable => "its job's stored row does not decode",
                    CancelledBy::Unknown => "for a reason this version does not know",
                };
                write!(f, "{when}: {by}")
            }
            Reason::TimedOut { after } => write!(f, "timed out after {}", format_duration(*after)),
            Reason::Alert(notice) => write!(f, "on_alert of job {}: {}", notice.job_id, notice.reason),
            Reason::Unknown => f.write_str("a reason this version of chime does not know"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Every variant, for the round trip and the words.
    fn every_reason() -> Vec<Reason> {
        vec![
            Reason::PastGrace { late: SignedDuration::from_secs(9000), grace: SignedDuration::from_mins(45) },
            Reason::Coalesced { into: ts("2026-01-01T03:00:00Z") },
            Reason::Backlog {
                count: 5,
                at_least: true,
                from: ts("2026-01-01T00:00:00Z"),
                to: ts("2026-01-01T00:04:00Z"),
            },
            Reason::MaxInstances { max_instances: 1, in_flight: vec![RunId::new()] },
            Reason::LeaseExpired { node: "web-1".into(), started: true, requeued: false },
            Reason::Cancelled { by: CancelledBy::Shutdown, stage: Stage::Running },
            Reason::TimedOut { after: SignedDuration::from_mins(5) },
            Reason::Alert(AlertNotice {
                job_id: JobId::new("backup").unwrap(),
                reason: "3 consecutive failures".into(),
                last_error: Some("disk full".into()),
                since: ts("2026-01-01T03:00:00Z"),
            }),
        ]
    }

    #[test]
    fn every_reason_round_trips_through_json_with_its_code() {
        for reason in every_reason() {
            let json = reason.to_json();
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(value["code"], reason.code(), "{json}");
            assert_eq!(Reason::from_json(&json), Some(reason));
        }
    }

    #[test]
    fn the_words_are_those_of_the_error_text() {
        let words: Vec<String> = every_reason().iter().map(Reason::to_string).collect();
        assert_eq!(words[0], "2h 30m late, past the misfire grace time of 45m");
        assert_eq!(words[1], "coalesced into the run scheduled for 2026-01-01T03:00:00Z");
        assert_eq!(
            words[2],
            "at least 5 scheduled times from 2026-01-01T00:00:00Z to 2026-01-01T00:04:00Z were missed (a backlog too long to record one by one)"
        );
        assert!(words[3].starts_with("max_instances (1) runs were already in progress: run 0"), "{}", words[3]);
        assert_eq!(words[4], "its node web-1 stopped renewing its lease while the run was running");
        assert_eq!(words[5], "cancelled while running: the scheduler shut down");
        assert_eq!(words[6], "timed out after 5m");
        assert_eq!(words[7], "on_alert of job backup: 3 consecutive failures");
    }

    #[test]
    fn many_runs_in_flight_are_listed_three_and_counted() {
        let reason = Reason::MaxInstances { max_instances: 5, in_flight: (0..5).map(|_| RunId::new()).collect() };
        assert!(reason.to_string().ends_with(" and 2 more"), "{reason}");
        let none = Reason::MaxInstances { max_instances: 1, in_flight: vec![] };
        assert_eq!(none.to_string(), "max_instances (1) runs were already in progress");
    }

    #[test]
    fn a_skip_names_at_most_twenty_runs() {
        let reason = Reason::max_instances(10_000, (0..10_000).map(|_| RunId::new()));
        let Reason::MaxInstances { in_flight, .. } = &reason else { unreachable!() };
        assert_eq!(in_flight.len(), Reason::MAX_NAMED);
        assert!(reason.to_string().ends_with(" and more"), "{reason}");
    }

    #[test]
    fn a_newer_code_reads_as_unknown_and_garbage_as_none() {
        assert_eq!(Reason::from_json(r#"{"code":"from_the_future","x":1}"#), Some(Reason::Unknown));
        let by = r#"{"code":"cancelled","by":"a_new_cause","stage":"a_new_stage"}"#;
        assert_eq!(Reason::from_json(by), Some(Reason::Cancelled { by: CancelledBy::Unknown, stage: Stage::Unknown }));
        assert_eq!(Reason::from_json("not json"), None);
        assert_eq!(Reason::from_json(r#"{"code":"past_grace","late":"soon"}"#), None);
    }
}
