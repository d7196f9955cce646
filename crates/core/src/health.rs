//! Job health: whether a job is in alert (`alert_after`, `alert_on_failures`)
//! and why, in plain words.
//!
//! [`job_alert`] is the one pure decision: the job, its recent finished runs
//! and now in, an [`Alert`] or none out. [`check_job`] reads what it needs
//! from a store (a few runs, and only for jobs that have an alert option);
//! [`Scheduler::alerts`] does so for every job.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::error::Result;
use crate::id::JobId;
use crate::job::Job;
use crate::run::{Run, RunQuery};
use crate::scheduler::Scheduler;
use crate::status::RunStatus;
use crate::store::{JobFilter, JobStore};

/// A job in alert, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// The job.
    pub job_id: JobId,
    /// Why, in plain words: "no success for 1d 3h (alert_after 26h); last
    /// success 2026-01-01T03:00:10Z", "3 consecutive failures
    /// (alert_on_failures 3); last error: boom". Both, joined by `"; "`, when
    /// both hold.
    pub reason: String,
    /// When the alert began: the last success (or the first scheduled time)
    /// plus `alert_after`, or the end of the failure that made the count.
    pub since: Timestamp,
    /// Whether `alert_after` is crossed.
    pub overdue: bool,
    /// The consecutive failed, timed-out or abandoned runs, newest back to
    /// the last success (counted up to what was read: at most
    /// `alert_on_failures`).
    pub failures: u32,
    /// When the newest success finished, if one was seen.
    pub last_success: Option<Timestamp>,
    /// The error of the newest failure since the last success, if any.
    pub last_error: Option<String>,
}

/// Whether `status` counts as a failure for `alert_on_failures`.
fn is_failure(status: RunStatus) -> bool {
    matches!(status, RunStatus::Failed | RunStatus::TimedOut | RunStatus::Abandoned)
}

/// The job's alert at `now`, if it is in one.
///
/// `runs` are the job's recent runs, newest scheduled time first (unfinished
/// ones are ignored). A paused or finished job is never in alert. With
/// `alert_after`, the job is overdue when its newest success in `runs`
/// finished longer ago than that, or, with none in `runs`, when the oldest
/// run given (or, with none at all, its next run time: it never fired) was
/// scheduled longer ago than that. With `alert_on_failures = N`, it is in
/// alert when the newest N runs that succeeded or failed (failed, timed out,
/// abandoned) all failed; missed, skipped and cancelled runs neither count
/// nor reset.
pub fn job_alert(job: &Job, runs: &[Run], now: Timestamp) -> Option<Alert> {
    if job.status() != "active" || !job.has_alerts() {
        return None;
    }
    let finished = || runs.iter().filter(|r| r.status.is_finished());
    let last_success =
        finished().find(|r| r.status == RunStatus::Succeeded).map(|r| r.finished_at.unwrap_or(r.scheduled_for));
    let streak: Vec<&Run> = finished()
        .filter(|r| r.status == RunStatus::Succeeded || is_failure(r.status))
        .take_while(|r| is_failure(r.status))
        .collect();
    let last_error = streak.first().map(|r| r.error.clone().unwrap_or_else(|| r.status.to_string()));

    let mut reasons = Vec::new();
    let mut since: Option<Timestamp> = None;
    let mut overdue = false;
    if let Some(alert_after) = job.options.alert_after {
        let (reference, what) = match last_success {
            Some(t) => (Some(t), "success"),
            None => {
                let first = runs.iter().map(|r| r.scheduled_for).min().or(job.state.next_run_at);
                (first, "first")
            }
        };
        if let Some(reference) = reference.filter(|t| now.duration_since(*t) > alert_after) {
            overdue = true;
            let age = human(now.duration_since(reference));
            let after = crate::format_duration(alert_after);
            reasons.push(match what {
                "success" => format!("no success for {age} (alert_after {after}); last success {reference}"),
                _ => format!(
                    "never succeeded: first scheduled {age} ago, at {reference} or before (alert_after {after})"
                ),
            });
            since = Some(reference.checked_add(alert_after).unwrap_or(reference));
        }
    }
    let failures = u32::try_from(streak.len()).unwrap_or(u32::MAX);
    if let Some(n) = job.options.alert_on_failures.filter(|n| failures >= *n) {
        // The streak is newest first: the N-th failure counted from the
        // oldest one of the streak started the alert.
        let nth = streak[streak.len() - n as usize];
        let at = nth.finished_at.unwrap_or(nth.scheduled_for);
        since = Some(since.map_or(at, |s| s.min(at)));
        let error = last_error.as_deref().unwrap_or("-");
        reasons.push(format!(
            "{failures} consecutive failure{} (alert_on_failures {n}); last error: {error}",
            if failures == 1 { "" } else { "s" }
        ));
    }
    Some(Alert {
        job_id: job.id.clone(),
        reason: (!reasons.is_empty()).then(|| reasons.join("; "))?,
        since: since?,
        overdue,
        failures,
        last_success,
        last_error,
    })
}

/// The episode an alert belongs to, for notifying it once: the end of the
/// job's newest success before it (`last_success`), or the Unix epoch for a
/// job that never succeeded. It stays the same however long the alert lasts
/// and however many more failures it counts, and changes only once the job
/// succeeds again: the next alert is a new episode.
pub fn alert_episode(last_success: Option<Timestamp>) -> Timestamp {
    last_success.unwrap_or(Timestamp::UNIX_EPOCH)
}

/// [`job_alert`] with the runs read from `store`: none for a job without an
/// alert option (nor a paused or finished one), otherwise at most three
/// queries of a few runs each (the newest runs that succeeded or failed, up
/// to `alert_on_failures`; the newest success, when those had none; and,
/// when the job never succeeded, one run scheduled before `now -
/// alert_after`, to tell whether it has existed that long).
///
/// # Errors
///
/// The store's.
pub async fn check_job(store: &dyn JobStore, job: &Job, now: Timestamp) -> Result<Option<Alert>> {
    if job.status() != "active" || !job.has_alerts() {
        return Ok(None);
    }
    let of_job = |statuses: Vec<RunStatus>, limit: usize| RunQuery {
        job_id: Some(job.id.clone()),
        statuses,
        limit: Some(limit),
        ..RunQuery::default()
    };
    let outcomes = vec![RunStatus::Succeeded, RunStatus::Failed, RunStatus::TimedOut, RunStatus::Abandoned];
    let limit = job.options.alert_on_failures.map_or(1, |n| n as usize).max(1);
    let mut runs = store.history(&of_job(outcomes, limit)).await?;
    if let Some(after) = job.options.alert_after
        && !runs.iter().any(|r| r.status == RunStatus::Succeeded)
    {
        let mut more = Vec::new();
        if runs.len() == limit {
            more = store.history(&of_job(vec![RunStatus::Succeeded], 1)).await?;
        }
        if more.is_empty()
            && let Some(before) = now.checked_sub(after).ok()
        {
            let query = RunQuery { until: Some(before), ..of_job(Vec::new(), 1) };
            more = store.history(&query).await?;
        }
        runs.extend(more);
        runs.sort_by_key(|r| std::cmp::Reverse(r.scheduled_for));
        runs.dedup_by(|a, b| a.id == b.id);
    }
    Ok(job_alert(job, &runs, now))
}

impl Scheduler {
    /// Every job in alert now, ordered by job id (see [`job_alert`]); only
    /// jobs with an alert option are read about.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn alerts(&self) -> Result<Vec<Alert>> {
        let jobs = self.store().list_jobs(&JobFilter { with_alerts: true, ..JobFilter::default() }).await?;
        alerts_of(&**self.store(), &jobs, self.clock().now()).await
    }

    /// The job's alert now, if it is in one.
    ///
    /// # Errors
    ///
    /// [`crate::Error::JobNotFound`], or a store error.
    pub async fn job_alert(&self, id: &str) -> Result<Option<Alert>> {
        let job = self.get_job(id).await?;
        check_job(&**self.store(), &job, self.clock().now()).await
    }
}

/// [`check_job`] for each of `jobs` that has an alert option, in order.
///
/// # Errors
///
/// The store's.
pub async fn alerts_of(store: &dyn JobStore, jobs: &[Job], now: Timestamp) -> Result<Vec<Alert>> {
    let mut out = Vec::new();
    for job in jobs.iter().filter(|j| j.has_alerts()) {
        if let Some(alert) = check_job(store, job, now).await? {
            out.push(alert);
        }
    }
    Ok(out)
}

/// A duration as people read it, in its two largest units: `45s`, `4m 12s`,
/// `2h 5m`, `1d 3h`.
fn human(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (days, hours, mins, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let parts = [(days, "d"), (hours, "h"), (mins, "m"), (s, "s")];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..]
        .iter()
        .take(2)
        .filter(|(n, _)| *n > 0 || first == 3)
        .map(|(n, u)| format!("{n}{u}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::status::RunKind;
    use crate::trigger::Trigger;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn job() -> Job {
        let mut job = Job::new("backup", "t", Trigger::cron("0 3 * * *").unwrap()).unwrap();
        job.state.next_run_at = Some(t("2026-01-05T03:00:00Z"));
        job
    }

    fn run(at: &str, status: RunStatus, error: Option<&str>) -> Run {
        let at = t(at);
        let mut r = Run::pending(JobId::new("backup").unwrap(), at, RunKind::Scheduled, &Arc::from("n"));
        r.status = status;
        r.started_at = Some(at);
        r.finished_at = Some(at + SignedDuration::from_secs(10));
        r.error = error.map(str::to_owned);
        r
    }

    #[test]
    fn human_durations_have_two_units() {
        assert_eq!(human(SignedDuration::from_secs(0)), "0s");
        assert_eq!(human(SignedDuration::from_secs(45)), "45s");
        assert_eq!(human(SignedDuration::from_secs(27 * 3600 + 59)), "1d 3h");
        assert_eq!(human(SignedDuration::from_secs(3600 + 5)), "1h");
        assert_eq!(human(SignedDuration::from_secs(252)), "4m 12s");
    }

    #[test]
    fn alert_after_counts_from_the_last_success() {
        let job = job().with_alert_after(SignedDuration::from_hours(26));
        let runs = [
            run("2026-01-04T03:00:00Z", RunStatus::Failed, Some("disk full")),
            run("2026-01-03T03:00:00Z", RunStatus::Succeeded, None),
        ];
        // 2026-01-03T03:00:10Z + 26h = 2026-01-04T05:00:10Z.
        assert_eq!(job_alert(&job, &runs, t("2026-01-04T05:00:10Z")), None, "exactly 26h is not past it");
        let a = job_alert(&job, &runs, t("2026-01-04T06:00:10Z")).expect("overdue");
        assert_eq!(a.reason, "no success for 1d 3h (alert_after 26h); last success 2026-01-03T03:00:10Z");
        assert_eq!(a.since, t("2026-01-04T05:00:10Z"));
        assert!(a.overdue);
        assert_eq!(a.failures, 1);
        assert_eq!(a.last_error.as_deref(), Some("disk full"));
        // A paused job is not in alert.
        let mut paused = job.clone();
        paused.state.paused = Some("holiday".into());
        assert_eq!(job_alert(&paused, &runs, t("2026-01-09T00:00:00Z")), None);
        // Nor is a job without alert options.
        assert_eq!(job_alert(&self::job(), &runs, t("2026-01-09T00:00:00Z")), None);
    }

    #[test]
    fn a_job_that_never_succeeded_counts_from_its_first_scheduled_time() {
        let job = job().with_alert_after(SignedDuration::from_hours(26));
        // No runs at all: it never fired; its next run was due long ago.
        let mut never = job.clone();
        never.state.next_run_at = Some(t("2026-01-01T03:00:00Z"));
        assert_eq!(job_alert(&never, &[], t("2026-01-02T05:00:00Z")), None);
        let a = job_alert(&never, &[], t("2026-01-02T06:00:00Z")).expect("never ran");
        assert!(a.reason.starts_with("never succeeded: first scheduled 1d 3h ago, at 2026-01-01T03:00:00Z"), "{a:?}");
        // Missed runs only: from the oldest one.
        let runs = [
            run("2026-01-02T03:00:00Z", RunStatus::Missed, None),
            run("2026-01-01T03:00:00Z", RunStatus::Missed, None),
        ];
        assert!(job_alert(&job, &runs, t("2026-01-02T05:00:00Z")).is_none());
        assert!(job_alert(&job, &runs, t("2026-01-02T05:00:01Z")).is_some());
    }

    #[test]
    fn failures_in_a_row_alert_and_a_success_resets() {
        let job = job().with_alert_on_failures(3);
        let now = t("2026-01-10T00:00:00Z");
        let mut runs = vec![
            run("2026-01-04T03:00:00Z", RunStatus::Failed, Some("boom 3")),
            run("2026-01-03T06:00:00Z", RunStatus::Skipped, Some("max_instances")),
            run("2026-01-03T05:00:00Z", RunStatus::Missed, Some("late")),
            run("2026-01-03T04:00:00Z", RunStatus::TimedOut, None),
            run("2026-01-03T03:00:00Z", RunStatus::Abandoned, Some("node gone")),
            run("2026-01-02T03:00:00Z", RunStatus::Succeeded, None),
        ];
        let a = job_alert(&job, &runs, now).expect("three failures, missed and skipped between");
        assert_eq!(a.reason, "3 consecutive failures (alert_on_failures 3); last error: boom 3");
        assert_eq!(a.since, t("2026-01-04T03:00:10Z"), "the third failure's end");
        assert!(!a.overdue);
        assert_eq!(a.last_success, Some(t("2026-01-02T03:00:10Z")));
        // Two failures are not enough.
        assert_eq!(job_alert(&job, &runs[1..], now), None);
        // A success after them clears it.
        runs.insert(0, run("2026-01-05T03:00:00Z", RunStatus::Succeeded, None));
        assert_eq!(job_alert(&job, &runs, now), None);
        // Both at once: both reasons.
        let both = job.with_alert_after(SignedDuration::from_hours(1));
        let a = job_alert(&both, &runs[1..], now).unwrap();
        assert!(a.reason.starts_with("no success for 7d 20h (alert_after 1h)"), "{}", a.reason);
        assert!(
            a.reason.ends_with("; 3 consecutive failures (alert_on_failures 3); last error: boom 3"),
            "{}",
            a.reason
        );
        assert_eq!(a.since, t("2026-01-02T04:00:10Z"), "the earlier of the two");
    }
}
