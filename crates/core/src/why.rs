//! "Why didn't it run?": every scheduled time of a job in a window, with
//! what happened to it and why, and one line that answers the question.
//!
//! [`explain`] is pure. The times come from the trigger, so a time with no
//! run row at all is found too and told apart from the rest: before the
//! job's history, the job paused, no node alive, no scheduler running, or
//! due and not yet claimed. [`crate::Scheduler::why`] reads what it needs
//! from the store.
//!
//! ```
//! use chime_core::{Job, Trigger, why::{Outcome, explain, Inputs}};
//! use jiff::Timestamp;
//!
//! let mut job = Job::new("nightly", "backup", Trigger::cron("0 3 * * *")?)?;
//! let now: Timestamp = "2026-01-03T12:00:00Z".parse()?;
//! job.state.next_run_at = Some("2026-01-04T03:00:00Z".parse()?);
//! let why = explain(&Inputs { job: &job, runs: &[], had_earlier_runs: false, nodes: &[], since: "2026-01-02T00:00:00Z".parse()?, now });
//! // 2026-01-02T03:00 and 2026-01-03T03:00 have no row, and no node is alive now.
//! assert_eq!(why.times.len(), 3);
//! assert_eq!(why.times[0].outcome, Outcome::BeforeHistory);
//! assert_eq!(why.times[2].outcome, Outcome::NotYetDue);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::duration::format_duration;
use crate::id::{JobId, RunId};
use crate::job::Job;
use crate::node::NodeInfo;
use crate::reason::Reason;
use crate::run::Run;
use crate::status::{RunKind, RunStatus};

/// The most scheduled times one answer lists (the latest); the earlier ones
/// of the window are counted in [`Why::unlisted`].
pub const MAX_WHY_TIMES: usize = 1000;

/// The start of a window as people give it: an instant
/// (`2026-01-02T03:00:00Z`) or how long before `now` (`24h`, `7d`).
///
/// # Errors
///
/// [`crate::Error::Invalid`] naming the text, or for an instant after `now`.
pub fn parse_since(text: &str, now: Timestamp) -> crate::Result<Timestamp> {
    let text = text.trim();
    let since = match text.parse::<Timestamp>() {
        Ok(t) => t,
        Err(_) => {
            let ago = crate::duration::parse_duration(text).map_err(|_| {
                crate::Error::invalid(format!(
                    "since {text:?} is neither an instant (2026-01-02T03:00:00Z) nor a duration ago (24h, 7d)"
                ))
            })?;
            now.checked_sub(ago).map_err(|_| crate::Error::invalid(format!("since {text:?} reaches too far back")))?
        }
    };
    if since > now {
        return Err(crate::Error::invalid(format!("since {since} is in the future (now is {now})")));
    }
    Ok(since)
}

/// How many times the walk takes before it jumps ahead.
const WALK_BEFORE_JUMP: u32 = 100_000;

/// How long after a scheduled time a missing row is taken for "not claimed
/// yet" rather than "never recorded": the loop's own delay, generously.
const CLAIM_SLACK: SignedDuration = SignedDuration::from_secs(60);

/// What `explain` needs.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The job as it is now.
    pub job: &'a Job,
    /// Its runs scheduled in the window, and those in flight (any order).
    pub runs: &'a [Run],
    /// Whether the job has runs scheduled before `since`: if not, a time
    /// before its first row is before its history.
    pub had_earlier_runs: bool,
    /// The nodes holding a lease now.
    pub nodes: &'a [NodeInfo],
    /// The start of the window.
    pub since: Timestamp,
    /// The end of the window: now, or earlier (a backfill's `--until`).
    pub now: Timestamp,
}

/// The answer for one job.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Why {
    /// The job.
    pub job_id: JobId,
    /// The window: from `since` to `now`.
    pub since: Timestamp,
    /// When the answer was made.
    pub now: Timestamp,
    /// The one line that answers the question.
    pub answer: String,
    /// Every scheduled time of the window (and runs by hand), oldest first,
    /// then the next one, not yet due.
    pub times: Vec<WhyTime>,
    /// Times of the window older than those listed (at least this many:
    /// every 100,000 steps the walk jumps ahead without counting).
    pub unlisted: u64,
}

/// One scheduled time and what happened to it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WhyTime {
    /// The scheduled time (for a run by hand, when it was asked for).
    pub scheduled_for: Timestamp,
    /// What happened, as a stable code.
    pub outcome: Outcome,
    /// The same in plain words.
    pub words: String,
    /// The run of that time, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunBrief>,
    /// The decision's reason, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// The facts of a run that `why` shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunBrief {
    /// The run.
    pub id: RunId,
    /// Why it exists.
    pub kind: RunKind,
    /// Where it stands.
    pub status: RunStatus,
    /// Its attempt.
    pub attempt: u32,
    /// Its node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// How long it ran, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
}

/// What happened to a scheduled time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// It ran and succeeded.
    Succeeded,
    /// It ran and failed (after its retries).
    Failed,
    /// It ran past its timeout.
    TimedOut,
    /// Its node's lease ran out before it finished.
    Abandoned,
    /// It was cancelled.
    Cancelled,
    /// It is running now.
    Running,
    /// It is waiting: for its jitter, a slot, a node, or a retry.
    Pending,
    /// Not run: past the misfire grace time, coalesced, or part of a backlog.
    Missed,
    /// Not run: `max_instances` runs were in flight.
    Skipped,
    /// No record: before the job's first recorded run (the job did not
    /// exist yet, or older runs were pruned).
    BeforeHistory,
    /// No record: the job is paused, and has been since at least its last run.
    Paused,
    /// No record: no node was alive then (every node alive now started later).
    NoNode,
    /// No record: no scheduler was running then (and none is now).
    NotRunning,
    /// Due a moment ago; the scheduler has not claimed it yet.
    Due,
    /// No record, and no sign why: the scheduler was not running, or the
    /// job was paused or rescheduled then.
    Unrecorded,
    /// The next scheduled time, in the future.
    NotYetDue,
}

impl Outcome {
    /// The code, as in JSON: `succeeded`, `no_node`, `not_yet_due`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Abandoned => "abandoned",
            Outcome::Cancelled => "cancelled",
            Outcome::Running => "running",
            Outcome::Pending => "pending",
            Outcome::Missed => "missed",
            Outcome::Skipped => "skipped",
            Outcome::BeforeHistory => "before_history",
            Outcome::Paused => "paused",
            Outcome::NoNode => "no_node",
            Outcome::NotRunning => "not_running",
            Outcome::Due => "due",
            Outcome::Unrecorded => "unrecorded",
            Outcome::NotYetDue => "not_yet_due",
        }
    }
}

/// Explains every scheduled time of `inputs.job` from `since` to `now`.
pub fn explain(inputs: &Inputs<'_>) -> Why {
    let Inputs { job, runs, had_earlier_runs, nodes, since, now } = *inputs;
    let by_id: BTreeMap<RunId, &Run> = runs.iter().map(|r| (r.id, r)).collect();
    let window: Vec<&Run> = runs.iter().filter(|r| r.scheduled_for >= since && r.scheduled_for <= now).collect();
    let mut at: BTreeMap<Timestamp, &Run> = BTreeMap::new();
    for run in &window {
        // A time with two rows (a requeued attempt is one row) keeps the newest.
        at.entry(run.scheduled_for).and_modify(|r| *r = newer(r, run)).or_insert(run);
    }
    let backlogs: Vec<&Run> =
        window.iter().copied().filter(|r| matches!(r.reason, Some(Reason::Backlog { .. }))).collect();
    let first_row = window.iter().map(|r| r.scheduled_for).min();
    let last_row = window.iter().map(|r| r.scheduled_for).max();

    // The trigger's times in the window, the latest MAX_WHY_TIMES.
    let mut scheduled = std::collections::VecDeque::new();
    let mut unlisted = 0u64;
    let mut t = job.trigger.next_after(since.checked_sub(SignedDuration::from_nanos(1)).unwrap_or(since));
    let mut steps = 0u32;
    while let Some(time) = t.filter(|t| *t <= now) {
        if scheduled.len() == MAX_WHY_TIMES {
            scheduled.pop_front();
            unlisted += 1;
        }
        scheduled.push_back(time);
        t = job.trigger.next_after(time);
        steps += 1;
        // A frequent trigger over a long window: rather than walk millions
        // of times, jump ahead to where, at the pace walked so far, the last
        // MAX_WHY_TIMES times begin (the times jumped over are not counted:
        // `unlisted` is then a lower bound). Again every so many steps, for
        // a trigger whose pace changes.
        if steps.is_multiple_of(WALK_BEFORE_JUMP) {
            let pace = time.duration_since(since) / i32::try_from(steps).unwrap_or(i32::MAX);
            let back = pace.checked_mul(2 * MAX_WHY_TIMES as i32).unwrap_or(SignedDuration::MAX);
            let from = now.checked_sub(back).unwrap_or(since).max(time);
            if let Some(resume) = job.trigger.next_after(from).filter(|r| *r > time && *r <= now) {
                unlisted += scheduled.len() as u64;
                scheduled.clear();
                t = Some(resume);
            }
        }
    }
    let listed_from = scheduled.front().copied();

    let mut times: Vec<WhyTime> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for time in scheduled {
        seen.insert(time);
        times.push(match at.get(&time) {
            Some(run) => from_run(run, &by_id, now),
            None => match backlogs.iter().find(|b| covers(b, time)) {
                Some(b) => WhyTime {
                    scheduled_for: time,
                    outcome: Outcome::Missed,
                    words: b.reason.as_ref().map_or_else(String::new, Reason::to_string),
                    run: None,
                    reason: b.reason.clone(),
                },
                None => unrecorded(job, time, first_row, last_row, had_earlier_runs, nodes, now),
            },
        });
    }
    // Rows at times the trigger does not give now: runs by hand, backfills,
    // and times of a trigger since changed. The walk's cap aside.
    for (time, run) in &at {
        if !seen.contains(time) && listed_from.is_none_or(|f| *time >= f || unlisted == 0) {
            times.push(from_run(run, &by_id, now));
        }
    }
    times.sort_by_key(|t| t.scheduled_for);

    let mut answer = answer(job, &times, &by_id, now, since);
    if nodes.is_empty() && !answer.contains("no node holds a lease") {
        answer.push_str(" (no scheduler is running now: no node holds a lease)");
    }
    if let Some(next) = job.state.next_run_at.filter(|n| *n > now) {
        times.push(WhyTime {
            scheduled_for: next,
            outcome: Outcome::NotYetDue,
            words: format!("not yet due: in {}", ago(next.duration_since(now))),
            run: None,
            reason: None,
        });
    }
    Why { job_id: job.id.clone(), since, now, answer, times, unlisted }
}

fn newer<'a>(a: &'a Run, b: &'a Run) -> &'a Run {
    if b.id > a.id { b } else { a }
}

fn covers(backlog: &Run, time: Timestamp) -> bool {
    matches!(backlog.reason, Some(Reason::Backlog { from, to, .. }) if from <= time && time <= to)
}

fn brief(run: &Run) -> RunBrief {
    RunBrief {
        id: run.id,
        kind: run.kind,
        status: run.status,
        attempt: run.attempt,
        node: run.node.as_deref().filter(|n| !n.is_empty()).map(str::to_owned),
        started_at: run.started_at,
        duration_s: run.duration().map(|d| d.as_secs_f64()),
    }
}

fn from_run(run: &Run, by_id: &BTreeMap<RunId, &Run>, now: Timestamp) -> WhyTime {
    let on = run.node.as_deref().filter(|n| !n.is_empty()).map_or_else(String::new, |n| format!(", node {n}"));
    let took = run.duration().map_or_else(String::new, |d| format!(" in {}", seconds(d)));
    let by_hand = match run.kind {
        RunKind::Scheduled => "",
        RunKind::Manual => " (run by hand)",
        RunKind::Backfill => " (backfill)",
        RunKind::Alert => " (asked for by an alert)",
    };
    let first_line = |e: &Option<String>| e.as_deref().and_then(|e| e.lines().next()).unwrap_or("").to_owned();
    let (outcome, words) = match run.status {
        RunStatus::Succeeded => (Outcome::Succeeded, format!("succeeded{took} (attempt {}{on}){by_hand}", run.attempt)),
        RunStatus::Failed => (
            Outcome::Failed,
            format!("failed{took} (attempt {}{on}){by_hand}: {}", run.attempt, first_line(&run.error)),
        ),
        RunStatus::TimedOut => {
            (Outcome::TimedOut, format!("{} (attempt {}{on}){by_hand}", first_line(&run.error), run.attempt))
        }
        RunStatus::Abandoned => (Outcome::Abandoned, format!("abandoned: {}", first_line(&run.error))),
        RunStatus::Cancelled => (Outcome::Cancelled, first_line(&run.error)),
        RunStatus::Running => {
            let since = run.started_at.map_or_else(String::new, |s| format!(" for {}", ago(now.duration_since(s))));
            (Outcome::Running, format!("running{since} (attempt {}{on}){by_hand}", run.attempt))
        }
        RunStatus::Pending if run.attempt > 0 => {
            (Outcome::Pending, format!("waiting to retry after attempt {}: {}", run.attempt, first_line(&run.error)))
        }
        RunStatus::Pending if run.node.as_deref().is_none_or(str::is_empty) => {
            (Outcome::Pending, "waiting for a node with its task to take it".to_owned())
        }
        RunStatus::Pending => (Outcome::Pending, format!("claimed, waiting to start{on}")),
        RunStatus::Missed => (Outcome::Missed, format!("missed: {}", first_line(&run.error))),
        RunStatus::Skipped => (Outcome::Skipped, format!("skipped: {}", skipped_words(run, by_id, now))),
    };
    WhyTime { scheduled_for: run.scheduled_for, outcome, words, run: Some(brief(run)), reason: run.reason.clone() }
}

/// A skip's words, with what became of the runs it waited for.
fn skipped_words(run: &Run, by_id: &BTreeMap<RunId, &Run>, now: Timestamp) -> String {
    match &run.reason {
        Some(Reason::MaxInstances { max_instances, in_flight }) if !in_flight.is_empty() => {
            let holders: Vec<String> = in_flight.iter().take(3).map(|id| holder(*id, by_id, now)).collect();
            format!("max_instances ({max_instances}) reached: {}", holders.join("; "))
        }
        _ => run.error.clone().unwrap_or_default(),
    }
}

/// What a run that held a slot is doing, or did.
fn holder(id: RunId, by_id: &BTreeMap<RunId, &Run>, now: Timestamp) -> String {
    match by_id.get(&id) {
        Some(r) if r.status == RunStatus::Running => {
            let since = r.started_at.map_or_else(String::new, |s| format!(" for {}", ago(now.duration_since(s))));
            format!("run {id} has been running{since}")
        }
        Some(r) if r.status == RunStatus::Pending => format!("run {id} was waiting to start"),
        Some(r) => format!("run {id} was in flight (it has since {})", r.status),
        None => format!("run {id} was in flight"),
    }
}

fn unrecorded(
    job: &Job,
    time: Timestamp,
    first_row: Option<Timestamp>,
    last_row: Option<Timestamp>,
    had_earlier_runs: bool,
    nodes: &[NodeInfo],
    now: Timestamp,
) -> WhyTime {
    let oldest_node = nodes.iter().map(|n| n.started_at).min();
    // Before the job's first recorded run nothing tells a time that never
    // ran from one whose run was pruned, or from a time before the job
    // existed (no creation time is stored): so it is told as such, and a
    // backfill leaves it alone.
    let (outcome, words) = if !had_earlier_runs && first_row.is_none_or(|f| time < f) {
        let words = if last_row.is_some() {
            "no record: before the job's first recorded run"
        } else {
            "no record: the job has no recorded run yet"
        };
        (Outcome::BeforeHistory, words.to_owned())
    } else if let Some(why) = job.state.paused.as_deref().filter(|_| last_row.is_none_or(|l| time > l)) {
        (Outcome::Paused, format!("not run: the job is paused ({why})"))
    } else if now.duration_since(time) <= CLAIM_SLACK && !nodes.is_empty() {
        (Outcome::Due, "due; the scheduler has not claimed it yet".to_owned())
    } else if nodes.is_empty() {
        (Outcome::NotRunning, "no record: the scheduler was not running (no node holds a lease now)".to_owned())
    } else if let Some(oldest) = oldest_node.filter(|o| time < *o) {
        (Outcome::NoNode, format!("no record: no node was alive (the oldest node alive now started at {oldest})"))
    } else {
        (
            Outcome::Unrecorded,
            "no record: the scheduler was not running then, or the job was paused or rescheduled".to_owned(),
        )
    };
    WhyTime { scheduled_for: time, outcome, words, run: None, reason: None }
}

/// The one line: what the newest past times have in common.
fn answer(job: &Job, times: &[WhyTime], by_id: &BTreeMap<RunId, &Run>, now: Timestamp, since: Timestamp) -> String {
    let next = match job.state.next_run_at.filter(|n| *n > now) {
        Some(n) => format!("; next at {n}"),
        None if job.state.paused.is_some() => String::new(),
        None => "; its trigger has no more fire times".to_owned(),
    };
    let paused = job.state.paused.as_deref().map_or_else(String::new, |p| format!("the job is paused ({p}); "));
    // The streak of the newest outcome, past any times still on their way.
    let settled: Vec<&WhyTime> =
        times.iter().rev().skip_while(|t| matches!(t.outcome, Outcome::Due | Outcome::Pending)).collect();
    let Some(head) = settled.first() else {
        return match times.last() {
            Some(newest) => format!("{paused}the time {} is {}{next}", newest.scheduled_for, newest.words),
            None => format!("{paused}nothing was due since {since}{next}"),
        };
    };
    // A streak is told for what went wrong; a success is told alone.
    let streak = match head.outcome {
        Outcome::Succeeded | Outcome::Running => 1,
        _ => settled.iter().take_while(|t| t.outcome == head.outcome).count(),
    };
    let subject = if streak == 1 {
        format!("the run scheduled for {}", head.scheduled_for)
    } else {
        format!("the last {streak} runs (the latest scheduled for {})", head.scheduled_for)
    };
    let times_subject = if streak == 1 {
        format!("the time {}", head.scheduled_for)
    } else {
        format!("the last {streak} scheduled times (the latest {})", head.scheduled_for)
    };
    let were = if streak == 1 { "was" } else { "were" };
    let line = match head.outcome {
        Outcome::Succeeded => {
            let when = head.run.as_ref().and_then(|r| r.started_at);
            let ago_text = when.map_or_else(String::new, |s| format!(" {} ago", ago(now.duration_since(s))));
            format!("{paused}{subject} succeeded{ago_text}")
        }
        Outcome::Running => format!("{paused}{subject} is {}", head.words),
        Outcome::Skipped => {
            let run = head.run.as_ref().and_then(|b| by_id.get(&b.id));
            match run.and_then(|r| r.reason.as_ref()) {
                Some(Reason::MaxInstances { in_flight, .. }) if !in_flight.is_empty() => {
                    format!("{subject} {were} skipped because {}", holder(in_flight[0], by_id, now))
                }
                _ => format!("{subject} {were} {}", head.words),
            }
        }
        Outcome::Missed => format!("{subject} {were} {}", head.words),
        Outcome::Failed => format!("{subject} failed; the last {}", head.words),
        Outcome::TimedOut => format!("{subject} timed out; the last {}", head.words),
        Outcome::Abandoned => format!("{subject} {were} {}", head.words),
        Outcome::Cancelled => format!("{subject} {were} {}", head.words),
        Outcome::Paused => format!("{times_subject} did not run: {}", head.words.trim_start_matches("not run: ")),
        _ => format!("{times_subject} left no record: {}", head.words.trim_start_matches("no record: ")),
    };
    format!("{line}{next}")
}

/// A duration as people read it: `4h 12m`, `3s`, `250ms`.
fn ago(d: SignedDuration) -> String {
    let d = if d.abs() >= SignedDuration::from_secs(60) {
        d.round(jiff::Unit::Minute).unwrap_or(d)
    } else if d.abs() >= SignedDuration::from_secs(1) {
        d.round(jiff::Unit::Second).unwrap_or(d)
    } else {
        d.round(jiff::Unit::Millisecond).unwrap_or(d)
    };
    format_duration(d)
}

fn seconds(d: SignedDuration) -> String {
    if d < SignedDuration::from_secs(60) { format!("{:.1}s", d.as_secs_f64()) } else { ago(d) }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Trigger;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn h(hour: i64) -> Timestamp {
        ts("2026-01-01T00:00:00Z") + SignedDuration::from_hours(hour)
    }

    /// A job every hour from midnight; next run after `now`.
    fn hourly(now: Timestamp) -> Job {
        let mut job = Job::new("j", "t", Trigger::cron("0 * * * *").unwrap()).unwrap();
        job.state.next_run_at = job.trigger.next_after(now);
        job
    }

    fn node(started: Timestamp) -> NodeInfo {
        NodeInfo {
            id: "web-1".into(),
            epoch: 1,
            host: "web".into(),
            pid: 1,
            version: "t".into(),
            started_at: started,
            heartbeat_at: started,
            lease_expires_at: started + SignedDuration::from_hours(100),
            running: 0,
        }
    }

    fn run(at: Timestamp, status: RunStatus) -> Run {
        let mut r = Run::pending(JobId::new("j").unwrap(), at, RunKind::Scheduled, &Arc::from("web-1"));
        r.status = status;
        r.attempt = 1;
        r.started_at = Some(at + SignedDuration::from_secs(1));
        if status.is_finished() {
            r.finished_at = Some(at + SignedDuration::from_secs(3));
        }
        r
    }

    fn explain_at(job: &Job, runs: &[Run], nodes: &[NodeInfo], since: Timestamp, now: Timestamp) -> Why {
        explain(&Inputs { job, runs, had_earlier_runs: true, nodes, since, now })
    }

    fn outcomes(why: &Why) -> Vec<Outcome> {
        why.times.iter().map(|t| t.outcome).collect()
    }

    #[test]
    fn runs_that_succeeded_are_shown_with_their_facts_and_the_next_time() {
        let now = h(2) + SignedDuration::from_mins(30);
        let runs = [run(h(1), RunStatus::Succeeded), run(h(2), RunStatus::Succeeded)];
        let why = explain_at(&hourly(now), &runs, &[node(h(0))], h(1), now);
        assert_eq!(outcomes(&why), [Outcome::Succeeded, Outcome::Succeeded, Outcome::NotYetDue]);
        assert_eq!(why.times[1].words, "succeeded in 2.0s (attempt 1, node web-1)");
        assert_eq!(why.times[2].words, "not yet due: in 30m");
        assert_eq!(
            why.answer,
            "the run scheduled for 2026-01-01T02:00:00Z succeeded 30m ago; next at 2026-01-01T03:00:00Z"
        );
    }

    #[test]
    fn skips_behind_a_long_run_name_it_and_how_long_it_has_run() {
        let now = h(4) + SignedDuration::from_mins(12);
        let stuck = run(h(0), RunStatus::Running);
        let mut runs = vec![stuck.clone()];
        for hour in 1..=4 {
            let reason = Reason::MaxInstances { max_instances: 1, in_flight: vec![stuck.id] };
            runs.push(Run::not_run(
                stuck.job_id.clone(),
                h(hour),
                RunStatus::Skipped,
                reason,
                &Arc::from("web-1"),
                h(hour),
            ));
        }
        let why = explain_at(&hourly(now), &runs, &[node(h(0))], h(1), now);
        assert_eq!(outcomes(&why)[..4], [Outcome::Skipped; 4]);
        assert_eq!(
            why.answer,
            format!(
                "the last 4 runs (the latest scheduled for 2026-01-01T04:00:00Z) were skipped because run {} has been running for 4h 12m; next at 2026-01-01T05:00:00Z",
                stuck.id
            )
        );
        assert!(why.times[0].words.contains("has been running for 4h 12m"), "{}", why.times[0].words);
        assert_eq!(why.times[0].reason.as_ref().map(Reason::code), Some("max_instances"));
    }

    #[test]
    fn times_without_a_row_are_told_apart() {
        let now = h(10);
        // The job's history starts at 02:00; a node has been alive since 06:00.
        let runs = [run(h(2), RunStatus::Succeeded), run(h(3), RunStatus::Succeeded)];
        let mut fresh = explain(&Inputs {
            job: &hourly(now),
            runs: &runs,
            had_earlier_runs: false,
            nodes: &[node(h(6))],
            since: h(1),
            now,
        });
        let o = outcomes(&fresh);
        assert_eq!(o[0], Outcome::BeforeHistory, "01:00 is before the first row");
        assert_eq!(&o[3..5], [Outcome::NoNode, Outcome::NoNode], "04:00 and 05:00: no node alive");
        assert!(fresh.times[3].words.contains("oldest node alive now started at 2026-01-01T06:00:00Z"));
        assert_eq!(o[5], Outcome::Unrecorded, "06:00 onward a node was alive and left no row");
        // A job with no row at all: every time is before its history.
        let none = explain(&Inputs {
            job: &hourly(now),
            runs: &[],
            had_earlier_runs: false,
            nodes: &[node(h(0))],
            since: h(1),
            now,
        });
        assert!(
            none.times.iter().filter(|t| t.outcome != Outcome::NotYetDue).all(|t| t.outcome == Outcome::BeforeHistory)
        );
        assert_eq!(none.times[0].words, "no record: the job has no recorded run yet");
        // Due a moment ago: not yet claimed, and not what the answer is about.
        let now = h(10) + SignedDuration::from_secs(20);
        fresh = explain_at(&hourly(now), &runs, &[node(h(6))], h(1), now);
        assert_eq!(fresh.times[9].outcome, Outcome::Due);
        assert!(
            fresh.answer.starts_with("the last 4 scheduled times (the latest 2026-01-01T09:00:00Z) left no record"),
            "{}",
            fresh.answer
        );
        // No node at all now: the scheduler is not running.
        let down = explain_at(&hourly(now), &runs, &[], h(1), now);
        assert_eq!(down.times[9].outcome, Outcome::NotRunning);
        assert!(down.answer.contains("left no record: the scheduler was not running"), "{}", down.answer);
    }

    #[test]
    fn a_paused_job_says_so_for_its_times_since_the_last_run() {
        let now = h(5) + SignedDuration::from_mins(1);
        let mut job = hourly(now);
        job.state.paused = Some("maintenance".into());
        job.state.next_run_at = None;
        let runs = [run(h(1), RunStatus::Succeeded)];
        let why = explain_at(&job, &runs, &[node(h(0))], h(1), now);
        assert_eq!(
            outcomes(&why),
            [Outcome::Succeeded, Outcome::Paused, Outcome::Paused, Outcome::Paused, Outcome::Paused]
        );
        assert_eq!(
            why.answer,
            "the last 4 scheduled times (the latest 2026-01-01T05:00:00Z) did not run: the job is paused (maintenance)"
        );
    }

    #[test]
    fn missed_times_carry_their_reason_and_a_backlog_row_covers_its_span() {
        let now = h(6);
        let node_name: Arc<str> = Arc::from("web-1");
        let id = JobId::new("j").unwrap();
        let backlog = Reason::Backlog { count: 3, at_least: false, from: h(1), to: h(3) };
        let grace = Reason::PastGrace { late: SignedDuration::from_hours(2), grace: SignedDuration::from_mins(10) };
        let runs = [
            Run::not_run(id.clone(), h(1), RunStatus::Missed, backlog, &node_name, now),
            Run::not_run(id.clone(), h(4), RunStatus::Missed, grace.clone(), &node_name, now),
            run(h(6), RunStatus::Succeeded),
        ];
        let why = explain_at(&hourly(now), &runs, &[node(h(0))], h(1), now);
        assert_eq!(outcomes(&why)[..4], [Outcome::Missed; 4], "02:00 and 03:00 are inside the backlog row");
        assert_eq!(why.times[4].outcome, Outcome::Unrecorded, "05:00 has no row");
        assert_eq!(why.times[3].reason, Some(grace));
        assert!(why.times[3].words.starts_with("missed: 2h late, past the misfire grace time of 10m"));
        assert!(why.times[2].words.starts_with("3 scheduled times from"), "{}", why.times[2].words);
    }

    #[test]
    fn a_failing_streak_gives_the_last_error_and_runs_by_hand_are_listed() {
        let now = h(3) + SignedDuration::from_mins(5);
        let mut runs = Vec::new();
        for hour in 1..=3 {
            let mut r = run(h(hour), RunStatus::Failed);
            r.error = Some(format!("exit status 1 at {hour}\nmore detail"));
            runs.push(r);
        }
        let mut by_hand = run(h(2) + SignedDuration::from_mins(30), RunStatus::Failed);
        by_hand.kind = RunKind::Manual;
        by_hand.error = Some("exit status 2".into());
        runs.push(by_hand);
        let why = explain_at(&hourly(now), &runs, &[node(h(0))], h(1), now);
        assert_eq!(why.times.len(), 5, "three scheduled, one by hand, the next");
        assert!(why.times[2].words.contains("(run by hand)"), "{}", why.times[2].words);
        assert_eq!(
            why.answer,
            "the last 4 runs (the latest scheduled for 2026-01-01T03:00:00Z) failed; the last failed in 2.0s (attempt 1, node web-1): exit status 1 at 3; next at 2026-01-01T04:00:00Z"
        );
    }

    #[test]
    fn a_sub_second_trigger_over_a_day_lists_the_latest_and_counts_the_rest() {
        let now = h(24);
        let mut job = Job::new("fast", "t", Trigger::every("100ms").unwrap()).unwrap();
        job.trigger.resolve(h(0), &crate::Zone::utc());
        job.state.next_run_at = job.trigger.next_after(now);
        let why = explain_at(&job, &[], &[node(h(0))], h(0), now);
        assert_eq!(why.times.len(), MAX_WHY_TIMES + 1);
        assert_eq!(why.times[MAX_WHY_TIMES - 1].scheduled_for, now, "the latest listed");
        assert!(why.unlisted >= 36_000 - MAX_WHY_TIMES as u64, "{}", why.unlisted);
    }

    #[test]
    fn a_long_window_of_a_minutely_job_still_lists_its_latest_thousand() {
        let now = h(24 * 90);
        let mut minutely = Job::new("m", "t", Trigger::cron("* * * * *").unwrap()).unwrap();
        minutely.trigger.resolve(h(0), &crate::Zone::utc());
        minutely.state.next_run_at = minutely.trigger.next_after(now);
        let why = explain_at(&minutely, &[], &[node(h(0))], h(0), now);
        assert_eq!(why.times.len(), MAX_WHY_TIMES + 1, "the jump keeps the latest 1,000, not the last hour's 60");
        assert_eq!(why.times[MAX_WHY_TIMES - 1].scheduled_for, now);
        assert!(why.times.windows(2).all(|w| w[1].scheduled_for - w[0].scheduled_for == SignedDuration::from_mins(1)));
        assert!(why.unlisted >= 100_000, "{}", why.unlisted);
    }

    #[test]
    fn since_is_an_instant_or_a_duration_ago_never_the_future() {
        let now = ts("2026-01-03T00:00:00Z");
        assert_eq!(parse_since("2026-01-02T03:00:00Z", now).unwrap(), ts("2026-01-02T03:00:00Z"));
        assert_eq!(parse_since("24h", now).unwrap(), ts("2026-01-02T00:00:00Z"));
        assert_eq!(parse_since(" 2d ", now).unwrap(), ts("2026-01-01T00:00:00Z"));
        let e = parse_since("yesterday", now).unwrap_err();
        assert!(e.is_invalid() && e.to_string().contains("\"yesterday\" is neither an instant"), "{e}");
        assert!(parse_since("0s", now).is_err(), "a zero window is refused");
        assert!(parse_since("2026-01-04T00:00:00Z", now).unwrap_err().to_string().contains("in the future"));
        assert!(parse_since("150000000h", now).unwrap_err().to_string().contains("reaches too far back"));
    }

    #[test]
    fn outcome_codes_are_their_json() {
        for o in [Outcome::Succeeded, Outcome::TimedOut, Outcome::BeforeHistory, Outcome::NoNode, Outcome::NotYetDue] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    }

    #[test]
    fn nothing_due_in_the_window_says_when_next() {
        let now = h(1) + SignedDuration::from_mins(30);
        let why = explain_at(&hourly(now), &[], &[node(h(0))], h(1) + SignedDuration::from_mins(1), now);
        assert_eq!(why.answer, "nothing was due since 2026-01-01T01:01:00Z; next at 2026-01-01T02:00:00Z");
        let mut once = Job::new("once", "t", Trigger::at(h(1))).unwrap();
        once.state.next_run_at = None;
        let why = explain_at(&once, &[run(h(1), RunStatus::Succeeded)], &[node(h(0))], h(0), now);
        assert!(why.answer.ends_with("succeeded 30m ago; its trigger has no more fire times"), "{}", why.answer);
    }
}
