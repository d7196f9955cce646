//! Jobs: a task, its arguments, a trigger, options and runtime state.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::duration::IntoDuration;
use crate::error::{Error, Result};
use crate::id::JobId;
use crate::limits::{MAX_ALERT_FAILURES, MAX_ATTEMPTS, MAX_DURATION, MAX_INSTANCES, MIN_ALERT_AFTER, check_duration};
use crate::status::RunStatus;
use crate::trigger::Trigger;

/// How a failed run is retried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait before the second attempt.
    #[serde(with = "crate::duration::text")]
    pub backoff: SignedDuration,
    /// Each wait is the previous one times this factor...
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    /// ...but never longer than this.
    #[serde(default, with = "crate::duration::opt_text", skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<SignedDuration>,
}

fn default_multiplier() -> f64 {
    2.0
}

impl RetryPolicy {
    /// `max_attempts` attempts in all, waiting `backoff`, then twice that, and so on.
    pub fn new(max_attempts: u32, backoff: impl IntoDuration) -> RetryPolicy {
        let backoff = backoff.into_duration();
        RetryPolicy { max_attempts, backoff, multiplier: 2.0, max_backoff: None }
    }

    /// Caps the wait between attempts.
    pub fn with_max_backoff(mut self, cap: impl IntoDuration) -> RetryPolicy {
        let cap = cap.into_duration();
        self.max_backoff = Some(cap);
        self
    }

    /// The wait after attempt `attempt` (1-based) fails.
    pub fn delay_after(&self, attempt: u32) -> SignedDuration {
        let factor = self.multiplier.max(1.0).powi(attempt.saturating_sub(1).min(64) as i32);
        let secs = (self.backoff.as_secs_f64() * factor).min(1e12);
        let delay = SignedDuration::from_secs_f64(secs);
        self.max_backoff.map_or(delay, |cap| delay.min(cap))
    }
}

/// What the scheduler does with a job's runs. The defaults are APScheduler's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobOptions {
    /// How many runs of this job may be in flight at once; a run due while
    /// that many are going is recorded as `skipped`. Default 1.
    pub max_instances: u32,
    /// When several scheduled times were missed, run once (for the latest)
    /// instead of once per time. Default true.
    pub coalesce: bool,
    /// A scheduled time later than this when the scheduler gets to it is
    /// recorded as `missed` and not run. Default none: a late run still runs.
    #[serde(with = "crate::duration::opt_text", skip_serializing_if = "Option::is_none")]
    pub misfire_grace_time: Option<SignedDuration>,
    /// Start each run after a random delay up to this long. Default none.
    #[serde(with = "crate::duration::opt_text", skip_serializing_if = "Option::is_none")]
    pub jitter: Option<SignedDuration>,
    /// Cancel a run that takes longer, then abort it. Default none.
    #[serde(with = "crate::duration::opt_text", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<SignedDuration>,
    /// Retry failed runs. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Box<RetryPolicy>>,
    /// Alert when the job's last success is older than this, or when it has
    /// never succeeded and was first scheduled longer ago than this (see
    /// [`crate::job_alert`]). Default none.
    #[serde(default, with = "crate::duration::opt_text", skip_serializing_if = "Option::is_none")]
    pub alert_after: Option<SignedDuration>,
    /// Alert after this many consecutive failed, timed-out or abandoned
    /// runs; missed and skipped times neither count nor reset, a success
    /// resets. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_on_failures: Option<u32>,
    /// Another job to run once when this one enters alert (a notification
    /// hook, such as an `http` job posting to a chat webhook). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_alert: Option<JobId>,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            max_instances: 1,
            coalesce: true,
            misfire_grace_time: None,
            jitter: None,
            timeout: None,
            retry: None,
            alert_after: None,
            alert_on_failures: None,
            on_alert: None,
        }
    }
}

impl JobOptions {
    /// Checks the options that types cannot.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the option.
    pub fn validate(&self) -> Result<()> {
        if self.max_instances == 0 || self.max_instances > MAX_INSTANCES {
            return Err(Error::invalid(format!(
                "max_instances must be between 1 and {MAX_INSTANCES}, not {}",
                self.max_instances
            )));
        }
        for (name, d) in
            [("misfire_grace_time", self.misfire_grace_time), ("jitter", self.jitter), ("timeout", self.timeout)]
        {
            if let Some(d) = d {
                check_duration(name, d)?;
            }
        }
        if let Some(r) = &self.retry {
            if r.max_attempts == 0 || r.max_attempts > MAX_ATTEMPTS {
                return Err(Error::invalid(format!(
                    "retry.max_attempts must be between 1 and {MAX_ATTEMPTS}, not {}",
                    r.max_attempts
                )));
            }
            if r.backoff.is_negative() || !r.multiplier.is_finite() || !(1.0..=100.0).contains(&r.multiplier) {
                return Err(Error::invalid(
                    "retry.backoff must not be negative and retry.multiplier must be between 1 and 100",
                ));
            }
            if r.backoff > MAX_DURATION || r.max_backoff.is_some_and(|m| m > MAX_DURATION) {
                return Err(Error::invalid(format!(
                    "retry backoffs must be at most {}",
                    crate::format_duration(MAX_DURATION)
                )));
            }
        }
        if let Some(d) = self.alert_after {
            check_duration("alert_after", d)?;
            if d < MIN_ALERT_AFTER {
                return Err(Error::invalid(format!(
                    "alert_after {} is shorter than the shortest accepted, {}",
                    crate::format_duration(d),
                    crate::format_duration(MIN_ALERT_AFTER)
                )));
            }
        }
        if let Some(n) = self.alert_on_failures
            && (n == 0 || n > MAX_ALERT_FAILURES)
        {
            return Err(Error::invalid(format!(
                "alert_on_failures must be between 1 and {MAX_ALERT_FAILURES}, not {n}"
            )));
        }
        if let Some(hook) = &self.on_alert {
            JobId::new(hook.as_str()).map_err(|e| Error::invalid(format!("on_alert: {e}")))?;
            if self.alert_after.is_none() && self.alert_on_failures.is_none() {
                return Err(Error::invalid(
                    "on_alert needs alert_after or alert_on_failures: without them the job never enters alert",
                ));
            }
        }
        Ok(())
    }
}

/// A job: what to run (a task and its arguments), when (a trigger), how
/// (options), and where it stands (state, kept by the scheduler).
///
/// ```
/// use chime_core::{Job, Trigger};
/// use jiff::SignedDuration;
///
/// let job = Job::new("nightly-report", "send_report", Trigger::cron("0 9 * * *")?)?
///     .with_name("Nightly report")
///     .with_args(serde_json::json!({"to": "ops@example.com"}))
///     .with_timeout(SignedDuration::from_mins(5));
/// assert_eq!(job.name(), "Nightly report");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The id.
    pub id: JobId,
    /// A display name; the id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Box<str>>,
    /// The name of the registered task that runs. Shared: a million jobs of
    /// one task hold one copy of its name.
    pub task: Arc<str>,
    /// Arguments passed to the task as JSON.
    #[serde(default)]
    pub args: serde_json::Value,
    /// When it fires.
    pub trigger: Trigger,
    /// How its runs are handled.
    #[serde(default)]
    pub options: JobOptions,
    /// Runtime state, kept by the scheduler and the store.
    #[serde(default)]
    pub state: JobState,
}

/// A job's runtime state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    /// The next scheduled time; none when paused or finished.
    pub next_run_at: Option<Timestamp>,
    /// Why the job is paused; none when it is not.
    pub paused: Option<Box<str>>,
    /// When the last run started.
    pub last_run_at: Option<Timestamp>,
    /// How the last run ended.
    pub last_status: Option<RunStatus>,
    /// Incremented on every change, for optimistic concurrency.
    pub version: u64,
    /// For jobs defined in code: a hash of the definition at the last
    /// `Scheduler::sync`, to tell a code change from a runtime edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_hash: Option<Box<str>>,
}

impl Job {
    /// A job with default options, to be added with `Scheduler::add_job`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when the id is not valid.
    pub fn new(id: &str, task: &str, trigger: Trigger) -> Result<Job> {
        Ok(Job {
            id: JobId::new(id)?,
            name: None,
            task: Arc::from(task),
            args: serde_json::Value::Null,
            trigger,
            options: JobOptions::default(),
            state: JobState::default(),
        })
    }

    /// The display name, or the id.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.id.as_str())
    }

    /// Sets the display name.
    pub fn with_name(mut self, name: &str) -> Job {
        self.name = Some(name.into());
        self
    }

    /// Sets the task's arguments.
    pub fn with_args(mut self, args: serde_json::Value) -> Job {
        self.args = args;
        self
    }

    /// Replaces all options.
    pub fn with_options(mut self, options: JobOptions) -> Job {
        self.options = options;
        self
    }

    /// Sets `max_instances`.
    pub fn with_max_instances(mut self, n: u32) -> Job {
        self.options.max_instances = n;
        self
    }

    /// Sets `coalesce`.
    pub fn with_coalesce(mut self, coalesce: bool) -> Job {
        self.options.coalesce = coalesce;
        self
    }

    /// Sets `misfire_grace_time`.
    pub fn with_misfire_grace_time(mut self, grace: impl IntoDuration) -> Job {
        let grace = grace.into_duration();
        self.options.misfire_grace_time = Some(grace);
        self
    }

    /// Sets `jitter`.
    pub fn with_jitter(mut self, jitter: impl IntoDuration) -> Job {
        let jitter = jitter.into_duration();
        self.options.jitter = Some(jitter);
        self
    }

    /// Sets `timeout`.
    pub fn with_timeout(mut self, timeout: impl IntoDuration) -> Job {
        let timeout = timeout.into_duration();
        self.options.timeout = Some(timeout);
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Job {
        self.options.retry = Some(Box::new(retry));
        self
    }

    /// Sets `alert_after`: alert when the last success is older than this.
    pub fn with_alert_after(mut self, after: impl IntoDuration) -> Job {
        self.options.alert_after = Some(after.into_duration());
        self
    }

    /// Sets `alert_on_failures`: alert after this many consecutive failures.
    pub fn with_alert_on_failures(mut self, n: u32) -> Job {
        self.options.alert_on_failures = Some(n);
        self
    }

    /// Sets `on_alert`: the job run once each time this one enters alert.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `hook` is not a valid job id.
    pub fn with_on_alert(mut self, hook: &str) -> Result<Job> {
        self.options.on_alert = Some(JobId::new(hook)?);
        Ok(self)
    }

    /// Whether the job has an alert option (`alert_after` or
    /// `alert_on_failures`), so its health is worth computing.
    pub fn has_alerts(&self) -> bool {
        self.options.alert_after.is_some() || self.options.alert_on_failures.is_some()
    }

    /// Whether the job is paused.
    pub fn is_paused(&self) -> bool {
        self.state.paused.is_some()
    }

    /// `"paused"`, `"active"` (it has a next run) or `"finished"` (its
    /// trigger has no more fire times), as the CLI and the API show it.
    pub fn status(&self) -> &'static str {
        if self.is_paused() {
            "paused"
        } else if self.state.next_run_at.is_some() {
            "active"
        } else {
            "finished"
        }
    }

    /// A stable hash of the definition (name, task, arguments, trigger as
    /// written, options), used by `Scheduler::sync`.
    pub fn definition_hash(&self) -> String {
        let definition = serde_json::json!({
            "name": self.name,
            "task": &*self.task,
            "args": self.args,
            "trigger": self.trigger,
            "options": self.options,
        });
        // FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
        let hash = definition
            .to_string()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        format!("{hash:016x}")
    }

    /// The job as JSON with `trigger_description` and `status` added: the
    /// shape `chime jobs list --json` prints and the HTTP API answers.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        v["trigger_description"] = serde_json::json!(self.trigger.describe());
        v["status"] = serde_json::json!(self.status());
        v
    }

    /// Checks the trigger and the options.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the job and the problem.
    pub fn validate(&self) -> Result<()> {
        let in_job = |e: Error| Error::invalid(format!("job {:?}: {e}", self.id.as_str()));
        if self.task.trim().is_empty() {
            return Err(in_job(Error::invalid("the task name is empty")));
        }
        self.trigger.validate().map_err(in_job)?;
        self.options.validate().map_err(in_job)?;
        if self.options.on_alert.as_ref() == Some(&self.id) {
            return Err(in_job(Error::invalid("on_alert names the job itself: name another job to run")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backoff_grows_and_is_capped() {
        let r = RetryPolicy::new(5, SignedDuration::from_secs(1)).with_max_backoff(SignedDuration::from_secs(5));
        let delays: Vec<i64> = (1..=5).map(|a| r.delay_after(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn options_are_validated() {
        let mut o = JobOptions { max_instances: 0, ..JobOptions::default() };
        assert!(o.validate().unwrap_err().to_string().contains("max_instances"));
        o.max_instances = 1;
        o.timeout = Some(SignedDuration::ZERO);
        assert!(o.validate().unwrap_err().to_string().contains("timeout"));
        o.timeout = None;
        o.retry = Some(Box::new(RetryPolicy::new(0, SignedDuration::from_secs(1))));
        assert!(o.validate().unwrap_err().to_string().contains("max_attempts"));
        o.retry = None;
        for (bad, says) in [
            (
                JobOptions { alert_on_failures: Some(0), ..JobOptions::default() },
                "alert_on_failures must be between 1 and 1000, not 0",
            ),
            (JobOptions { alert_on_failures: Some(5000), ..JobOptions::default() }, "not 5000"),
            (
                JobOptions { alert_after: Some(SignedDuration::from_millis(10)), ..JobOptions::default() },
                "alert_after 10ms is shorter than the shortest accepted, 1s",
            ),
            (
                JobOptions { alert_after: Some(SignedDuration::from_hours(24 * 4000)), ..JobOptions::default() },
                "alert_after 96000h is longer",
            ),
            (
                JobOptions { on_alert: Some(JobId::new("hook").unwrap()), ..JobOptions::default() },
                "on_alert needs alert_after or alert_on_failures",
            ),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        let own = Job::new("j", "t", Trigger::every("1h").unwrap())
            .unwrap()
            .with_alert_on_failures(2)
            .with_on_alert("j")
            .unwrap();
        assert!(own.validate().unwrap_err().to_string().contains("on_alert names the job itself"));
    }

    #[test]
    fn alert_options_round_trip_and_are_left_out_when_unset() {
        let plain = serde_json::to_value(JobOptions::default()).unwrap();
        assert!(
            plain.get("alert_after").is_none()
                && plain.get("alert_on_failures").is_none()
                && plain.get("on_alert").is_none(),
            "{plain}"
        );
        // A row stored before these options existed reads back with none.
        let old: JobOptions = serde_json::from_str(r#"{"max_instances":1,"coalesce":true}"#).unwrap();
        assert_eq!(old, JobOptions::default());
        let job = Job::new("j", "t", Trigger::every("1h").unwrap())
            .unwrap()
            .with_alert_after(SignedDuration::from_hours(26))
            .with_alert_on_failures(3)
            .with_on_alert("notify")
            .unwrap();
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["options"]["alert_after"], "26h");
        assert_eq!(json["options"]["alert_on_failures"], 3);
        assert_eq!(json["options"]["on_alert"], "notify");
        assert_eq!(serde_json::from_value::<Job>(json).unwrap(), job);
        job.validate().unwrap();
    }

    #[test]
    fn json_round_trips_with_readable_durations() {
        let job = Job::new("j", "t", Trigger::every("4h").unwrap())
            .unwrap()
            .with_timeout(SignedDuration::from_secs(90))
            .with_retry(RetryPolicy::new(3, SignedDuration::from_secs(10)));
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["options"]["timeout"], "1m 30s");
        assert_eq!(json["options"]["retry"]["backoff"], "10s");
        assert_eq!(serde_json::from_value::<Job>(json).unwrap(), job);
    }
}
