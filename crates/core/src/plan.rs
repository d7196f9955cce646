//! The one decision every store makes the same way: what to do with a due job.
//!
//! [`plan_fire`] is pure: given a job, the time, and how many of its runs are
//! in flight, it says which scheduled times run, which are `missed` or
//! `skipped` and why, and what the next fire time is. Stores call it inside
//! their claim (a lock, a transaction) and write its result atomically, so
//! misfire, coalesce and instance rules cannot drift between stores.

use jiff::Timestamp;

use crate::id::{JobId, RunId};
use crate::job::Job;
use crate::node::Lease;
use crate::reason::Reason;
use crate::run::Run;
use crate::status::{RunKind, RunStatus};

/// The most scheduled times one plan enumerates. Beyond it (a job every
/// second, down for a day), the oldest times are counted in
/// [`FirePlan::uncounted`] rather than listed one by one.
pub const MAX_DUE_TIMES: usize = 1000;

/// What to do with one due job.
#[derive(Clone, Debug, PartialEq)]
pub struct FirePlan {
    /// The due scheduled times, oldest first, each with its decision.
    pub runs: Vec<PlannedRun>,
    /// Due times older than those listed, past [`MAX_DUE_TIMES`]: missed, not
    /// listed. After a backlog of over a million, a lower bound.
    pub uncounted: u64,
    /// The first and last of those times: [`FirePlan::into_runs`] records
    /// them as one `missed` row that says how many there were.
    pub uncounted_span: Option<(Timestamp, Timestamp)>,
    /// The job's next fire time after `now`; none when the trigger is finished.
    pub next_run_at: Option<Timestamp>,
}

impl FirePlan {
    /// The run rows of this plan, oldest first: pending runs held by `lease`
    /// for the times that run, final `missed` and `skipped` rows for the
    /// rest. The one mapping from a plan to rows that every store writes.
    pub fn into_runs(self, job_id: &JobId, now: Timestamp, lease: &Lease) -> Vec<Run> {
        let summary = self.uncounted_span.map(|(from, to)| {
            let why = Reason::Backlog { count: self.uncounted, at_least: self.uncounted > 1_000_000, from, to };
            Run::not_run(job_id.clone(), from, RunStatus::Missed, why, &lease.node, now)
        });
        // A time skipped after others of this plan started names those too:
        // they are in flight by the time the rows are written. Kept only
        // when a time is skipped (an allocation a run otherwise).
        let skips = self.runs.iter().any(|p| matches!(p.decision, Decision::Skipped(_)));
        let mut started: Vec<RunId> = Vec::new();
        summary
            .into_iter()
            .chain(self.runs.into_iter().map(|p| match p.decision {
                Decision::Run => {
                    let run = Run::claimed(job_id.clone(), p.scheduled_for, RunKind::Scheduled, lease);
                    if skips {
                        started.push(run.id);
                    }
                    run
                }
                Decision::Missed(why) => {
                    Run::not_run(job_id.clone(), p.scheduled_for, RunStatus::Missed, why, &lease.node, now)
                }
                Decision::Skipped(mut why) => {
                    if let Reason::MaxInstances { in_flight, .. } = &mut why {
                        let room = Reason::MAX_NAMED.saturating_sub(in_flight.len());
                        in_flight.extend(started.iter().take(room));
                    }
                    Run::not_run(job_id.clone(), p.scheduled_for, RunStatus::Skipped, why, &lease.node, now)
                }
            }))
            .collect()
    }
}

/// One due scheduled time and its fate.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRun {
    /// The scheduled time.
    pub scheduled_for: Timestamp,
    /// Run it, or record why not.
    pub decision: Decision,
}

/// Whether a due time runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Execute it.
    Run,
    /// Record it as `missed`, with the reason.
    Missed(Reason),
    /// Record it as `skipped`, with the reason.
    Skipped(Reason),
}

/// Plans a due job: the times from `job.state.next_run_at` up to `now`.
///
/// * Times older than `misfire_grace_time` are missed.
/// * Of the rest, with `coalesce` only the latest runs and the others are
///   missed ("coalesced"); without it, each runs.
/// * A run beyond `max_instances` (counting the runs `in_flight`, pending
///   or running) is skipped, naming them.
///
/// Returns an empty plan, with the next fire time unchanged, when the job is
/// paused or not due.
pub fn plan_fire(job: &Job, now: Timestamp, in_flight: &[RunId]) -> FirePlan {
    let running = u32::try_from(in_flight.len()).unwrap_or(u32::MAX);
    let Some(first) = job.state.next_run_at.filter(|t| *t <= now && !job.is_paused()) else {
        return FirePlan { runs: Vec::new(), uncounted: 0, uncounted_span: None, next_run_at: job.state.next_run_at };
    };
    let trigger = &job.trigger;
    let options = &job.options;

    // The due times, keeping the latest MAX_DUE_TIMES.
    let mut due = std::collections::VecDeque::with_capacity(4);
    let mut uncounted = 0u64;
    let mut uncounted_span: Option<(Timestamp, Timestamp)> = None;
    let mut t = Some(first);
    let mut jumped = false;
    while let Some(at) = t.filter(|t| *t <= now) {
        if due.len() == MAX_DUE_TIMES {
            let dropped = due.pop_front().expect("the queue is full");
            uncounted_span = Some((uncounted_span.map_or(dropped, |(from, _)| from), dropped));
            uncounted += 1;
            // Jump ahead instead of walking millions of missed times: once,
            // and never back to times already walked (the last hour may hold
            // more than MAX_DUE_TIMES, or the whole backlog be shorter than it).
            let resume = if uncounted > 1_000_000 && !jumped { resume_point(trigger, now) } else { Some(at) };
            // Only saves calling resume_point again: past the jump the walk is
            // beyond it, so `r > at` fails anyway (`&=` here is equivalent, slower).
            jumped |= uncounted > 1_000_000;
            if resume.is_none_or(|r| r > at) {
                if let (Some((from, _)), Some(last)) = (uncounted_span, due.back()) {
                    uncounted_span = Some((from, *last));
                }
                uncounted += due.len() as u64;
                due.clear();
                t = resume;
                continue;
            }
        }
        due.push_back(at);
        t = trigger.next_after(at);
    }
    let next_run_at = trigger.next_after(now);

    let grace = options.misfire_grace_time;
    let too_late = |at: Timestamp| grace.is_some_and(|g| now.duration_since(at) > g);
    let latest_fresh = due.iter().rev().copied().find(|at| !too_late(*at));

    let mut started = 0u32;
    let runs = due
        .into_iter()
        .map(|at| {
            let decision = if too_late(at) {
                let late = now.duration_since(at);
                Decision::Missed(Reason::PastGrace {
                    late: late.round(jiff::Unit::Second).unwrap_or(late),
                    grace: grace.unwrap_or_default(),
                })
            } else if options.coalesce && Some(at) != latest_fresh {
                Decision::Missed(Reason::Coalesced { into: latest_fresh.expect("a fresh time exists") })
            } else if running.saturating_add(started) >= options.max_instances {
                Decision::Skipped(Reason::max_instances(options.max_instances, in_flight.iter().copied()))
            } else {
                started += 1;
                Decision::Run
            };
            PlannedRun { scheduled_for: at, decision }
        })
        .collect();
    FirePlan { runs, uncounted, uncounted_span, next_run_at }
}

/// Where to resume walking an enormous backlog: the first fire time within
/// the last hour (or day, month, year) before `now`.
fn resume_point(trigger: &crate::Trigger, now: Timestamp) -> Option<Timestamp> {
    [1i64, 24, 24 * 31, 24 * 366].into_iter().find_map(|hours| {
        let from = now.checked_sub(jiff::SignedDuration::from_hours(hours)).ok()?;
        trigger.next_after(from).filter(|t| *t <= now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Job, Trigger};
    use jiff::SignedDuration;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn hourly() -> Job {
        let mut job = Job::new("j", "t", Trigger::cron("0 * * * *").unwrap()).unwrap();
        job.state.next_run_at = Some(ts("2026-01-01T01:00:00Z"));
        job
    }

    fn past_grace(late_mins: i64, grace_mins: i64) -> Reason {
        Reason::PastGrace { late: SignedDuration::from_mins(late_mins), grace: SignedDuration::from_mins(grace_mins) }
    }

    /// `n` runs in flight.
    fn in_flight(n: usize) -> Vec<RunId> {
        (0..n).map(|_| RunId::new()).collect()
    }

    fn decisions(plan: &FirePlan) -> Vec<(String, Decision)> {
        plan.runs.iter().map(|r| (r.scheduled_for.to_string(), r.decision.clone())).collect()
    }

    #[test]
    fn on_time_runs_once() {
        let plan = plan_fire(&hourly(), ts("2026-01-01T01:00:00Z"), &[]);
        assert_eq!(decisions(&plan), [("2026-01-01T01:00:00Z".into(), Decision::Run)]);
        assert_eq!(plan.next_run_at, Some(ts("2026-01-01T02:00:00Z")));
    }

    #[test]
    fn not_due_or_paused_is_an_empty_plan() {
        let plan = plan_fire(&hourly(), ts("2026-01-01T00:59:59Z"), &[]);
        assert!(plan.runs.is_empty());
        assert_eq!(plan.next_run_at, Some(ts("2026-01-01T01:00:00Z")));
        let mut paused = hourly();
        paused.state.paused = Some("maintenance".into());
        assert!(plan_fire(&paused, ts("2026-01-01T05:00:00Z"), &[]).runs.is_empty());
    }

    #[test]
    fn coalesce_runs_the_latest_and_records_the_rest() {
        let plan = plan_fire(&hourly(), ts("2026-01-01T03:30:00Z"), &[]);
        let d = decisions(&plan);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].1, Decision::Missed(Reason::Coalesced { into: ts("2026-01-01T03:00:00Z") }));
        assert_eq!(d[2], ("2026-01-01T03:00:00Z".into(), Decision::Run));
        assert_eq!(plan.next_run_at, Some(ts("2026-01-01T04:00:00Z")));
    }

    #[test]
    fn without_coalesce_each_time_runs_up_to_max_instances() {
        let job = hourly().with_coalesce(false).with_max_instances(2);
        let plan = plan_fire(&job, ts("2026-01-01T03:30:00Z"), &[]);
        let d: Vec<Decision> = plan.runs.iter().map(|r| r.decision.clone()).collect();
        assert_eq!(d[0], Decision::Run);
        assert_eq!(d[1], Decision::Run);
        assert_eq!(d[2], Decision::Skipped(Reason::MaxInstances { max_instances: 2, in_flight: vec![] }));
    }

    #[test]
    fn a_skipped_row_names_the_runs_in_flight_and_those_its_plan_started() {
        let job = hourly().with_coalesce(false).with_max_instances(2);
        let busy = in_flight(1);
        let rows =
            plan_fire(&job, ts("2026-01-01T03:30:00Z"), &busy).into_runs(&job.id, ts("2026-01-01T03:30:00Z"), &lease());
        let statuses: Vec<RunStatus> = rows.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [RunStatus::Pending, RunStatus::Skipped, RunStatus::Skipped]);
        let named = vec![busy[0], rows[0].id];
        for skipped in &rows[1..] {
            assert_eq!(skipped.reason, Some(Reason::MaxInstances { max_instances: 2, in_flight: named.clone() }));
            assert_eq!(skipped.error, skipped.reason.as_ref().map(Reason::to_string));
        }
    }

    #[test]
    fn a_running_instance_makes_the_next_run_skipped_naming_it() {
        let busy = in_flight(1);
        let plan = plan_fire(&hourly(), ts("2026-01-01T01:00:00Z"), &busy);
        assert_eq!(
            plan.runs[0].decision,
            Decision::Skipped(Reason::MaxInstances { max_instances: 1, in_flight: busy })
        );
    }

    #[test]
    fn times_past_the_grace_time_are_missed() {
        let job = hourly().with_misfire_grace_time(SignedDuration::from_mins(45));
        let plan = plan_fire(&job, ts("2026-01-01T03:30:00Z"), &[]);
        let d = decisions(&plan);
        assert_eq!(d[0].1, Decision::Missed(past_grace(150, 45)));
        assert_eq!(d[1].1, Decision::Missed(past_grace(90, 45)));
        assert_eq!(d[2].1, Decision::Run);
        // All past the grace time: nothing runs.
        let plan = plan_fire(&job, ts("2026-01-01T03:50:00Z"), &[]);
        assert!(plan.runs.iter().all(|r| matches!(r.decision, Decision::Missed(_))));
    }

    #[test]
    fn a_huge_backlog_is_capped_and_counted() {
        let mut job = Job::new("j", "t", Trigger::every("1s").unwrap()).unwrap();
        job.trigger.resolve(ts("2026-01-01T00:00:00Z"), &crate::Zone::utc());
        job.state.next_run_at = Some(ts("2026-01-01T00:00:01Z"));
        let plan = plan_fire(&job, ts("2026-01-01T01:00:00Z"), &[]);
        assert_eq!(plan.runs.len(), MAX_DUE_TIMES);
        assert_eq!(plan.uncounted, 3600 - MAX_DUE_TIMES as u64);
        assert_eq!(plan.uncounted_span, Some((ts("2026-01-01T00:00:01Z"), ts("2026-01-01T00:43:20Z"))));
        // The uncounted times become one row that says how many, not 2,600.
        let lease = Lease { node: "n".into(), epoch: 1, expires_at: ts("2026-01-01T01:00:00Z") };
        let rows = plan.clone().into_runs(&job.id, ts("2026-01-01T01:00:00Z"), &lease);
        assert_eq!(rows.len(), MAX_DUE_TIMES + 1);
        assert_eq!((rows[0].status, rows[0].scheduled_for), (RunStatus::Missed, ts("2026-01-01T00:00:01Z")));
        assert_eq!(
            rows[0].error.as_deref(),
            Some(
                "2600 scheduled times from 2026-01-01T00:00:01Z to 2026-01-01T00:43:20Z were missed (a backlog too long to record one by one)"
            )
        );
        assert_eq!(plan.runs.last().unwrap().scheduled_for, ts("2026-01-01T01:00:00Z"));
        assert_eq!(plan.runs.iter().filter(|r| r.decision == Decision::Run).count(), 1);
        assert_eq!(plan.next_run_at, Some(ts("2026-01-01T01:00:01Z")));
    }

    #[test]
    fn a_finished_trigger_has_no_next_run() {
        let mut job = Job::new("once", "t", Trigger::at(ts("2026-01-01T00:00:00Z"))).unwrap();
        job.state.next_run_at = Some(ts("2026-01-01T00:00:00Z"));
        let plan = plan_fire(&job, ts("2026-01-01T00:00:05Z"), &[]);
        assert_eq!(plan.runs.len(), 1);
        assert_eq!(plan.next_run_at, None);
    }

    fn every_second_from(start: Timestamp) -> Job {
        let mut job = Job::new("j", "t", Trigger::every("1s").unwrap()).unwrap();
        job.trigger.resolve(start - SignedDuration::from_secs(1), &crate::Zone::utc());
        job.state.next_run_at = Some(start);
        job
    }

    fn lease() -> Lease {
        Lease { node: "n".into(), epoch: 1, expires_at: ts("2026-01-01T00:00:00Z") }
    }

    #[test]
    fn exactly_the_grace_time_late_runs_and_a_nanosecond_more_is_missed() {
        let job = hourly().with_misfire_grace_time(SignedDuration::from_mins(45));
        let plan = plan_fire(&job, ts("2026-01-01T01:45:00Z"), &[]);
        assert_eq!(decisions(&plan), [("2026-01-01T01:00:00Z".into(), Decision::Run)]);
        let plan = plan_fire(&job, ts("2026-01-01T01:45:00.000000001Z"), &[]);
        assert_eq!(decisions(&plan), [("2026-01-01T01:00:00Z".into(), Decision::Missed(past_grace(45, 45)))]);
    }

    #[test]
    fn without_coalesce_past_max_due_times_the_oldest_listed_run_up_to_max_instances() {
        let t0 = ts("2026-01-01T00:00:01Z");
        let job = every_second_from(t0).with_coalesce(false).with_max_instances(3);
        let now = ts("2026-01-01T01:00:00Z");
        let busy = in_flight(1);
        let plan = plan_fire(&job, now, &busy);
        assert_eq!((plan.runs.len(), plan.uncounted), (MAX_DUE_TIMES, 3600 - MAX_DUE_TIMES as u64));
        assert_eq!(plan.uncounted_span, Some((t0, ts("2026-01-01T00:43:20Z"))));
        let runs: Vec<_> = plan.runs.iter().filter(|r| r.decision == Decision::Run).map(|r| r.scheduled_for).collect();
        assert_eq!(runs, [ts("2026-01-01T00:43:21Z"), ts("2026-01-01T00:43:22Z")], "the oldest listed, one slot taken");
        let skipped = Decision::Skipped(Reason::MaxInstances { max_instances: 3, in_flight: busy });
        assert!(plan.runs[2..].iter().all(|r| r.decision == skipped));
        assert_eq!(plan.runs.last().unwrap().scheduled_for, now);
    }

    #[test]
    fn a_backlog_of_over_a_million_jumps_to_the_last_hour_once() {
        // Every second for 2,000,000 s: the walk counts 1,001,000 times, jumps
        // to the last hour, and lists its last 1,000 (the hour holds 3,600:
        // more than are listed, so it must not jump again).
        let t0 = ts("2026-01-01T00:00:00Z");
        let now = t0 + SignedDuration::from_secs(2_000_000);
        let job = every_second_from(t0);
        let plan = plan_fire(&job, now, &[]);
        let second = |k: i64| t0 + SignedDuration::from_secs(k);
        assert_eq!(plan.runs.first().unwrap().scheduled_for, second(1_999_001));
        assert_eq!(plan.runs.last().unwrap(), &PlannedRun { scheduled_for: now, decision: Decision::Run });
        assert_eq!(plan.runs.len(), MAX_DUE_TIMES);
        assert!(plan.runs.windows(2).all(|w| w[1].scheduled_for - w[0].scheduled_for == SignedDuration::from_secs(1)));
        // 1,001,000 before the jump, 2,600 of the last hour; the times in between are not counted.
        assert_eq!(plan.uncounted, 1_003_600);
        assert_eq!(plan.uncounted_span, Some((t0, second(1_999_000))));
        assert_eq!(plan.next_run_at, Some(second(2_000_001)));
        let rows = plan.into_runs(&job.id, now, &lease());
        assert_eq!(
            rows[0].error.as_deref(),
            Some(
                "at least 1003600 scheduled times from 2026-01-01T00:00:00Z to 2026-01-24T03:16:40Z were missed (a backlog too long to record one by one)"
            )
        );
    }

    #[test]
    fn a_backlog_shorter_than_an_hour_is_walked_not_jumped_back_into() {
        // Every millisecond, down for 20 minutes: 1,200,001 due times (walking
        // them takes most of a second in a debug build). The last
        // hour starts before the first of them, so jumping there would walk
        // back over times already run.
        let now = ts("2026-01-01T12:00:00Z");
        let first = now - SignedDuration::from_mins(20);
        let mut job = Job::new("j", "t", Trigger::every("1ms").unwrap()).unwrap();
        job.trigger.resolve(ts("2026-01-01T00:00:00Z"), &crate::Zone::utc());
        job.state.next_run_at = Some(first);
        let plan = plan_fire(&job, now, &[]);
        assert_eq!(plan.runs.len(), MAX_DUE_TIMES);
        assert_eq!(plan.runs[0].scheduled_for, now - SignedDuration::from_millis(999));
        assert_eq!(plan.uncounted, 1_200_001 - MAX_DUE_TIMES as u64);
        assert_eq!(plan.uncounted_span, Some((first, now - SignedDuration::from_millis(1000))));
    }

    #[test]
    fn exactly_a_million_uncounted_is_an_exact_count() {
        let t0 = ts("2026-01-01T00:00:00Z");
        let now = t0 + SignedDuration::from_secs(1_000_999);
        let job = every_second_from(t0);
        let plan = plan_fire(&job, now, &[]);
        assert_eq!((plan.runs.len(), plan.uncounted), (MAX_DUE_TIMES, 1_000_000));
        assert_eq!(plan.runs[0].scheduled_for, t0 + SignedDuration::from_secs(1_000_000));
        let rows = plan.into_runs(&job.id, now, &lease());
        assert!(rows[0].error.as_deref().unwrap().starts_with("1000000 scheduled times from"), "{:?}", rows[0].error);
    }

    /// Every second for 1,001,500 s from 2026-01-01 (enough for the jump),
    /// then every `sparse` from one period after that, planned at `now_k`
    /// periods plus `rest` after the sparse start: which window before `now`
    /// the walk resumes in decides the runs listed.
    fn resume_case(sparse: SignedDuration, now_k: i32, rest: SignedDuration) -> (Vec<Timestamp>, Timestamp) {
        use crate::trigger::IntervalTrigger;
        let t0 = ts("2026-01-01T00:00:00Z");
        let end = t0 + SignedDuration::from_secs(1_001_500);
        let s = end + sparse;
        let dense =
            Trigger::Interval(IntervalTrigger { every: SignedDuration::from_secs(1), start: Some(t0), end: Some(end) });
        let sparse_t = Trigger::Interval(IntervalTrigger { every: sparse, start: Some(s), end: None });
        let mut job = Job::new("j", "t", Trigger::any(vec![dense, sparse_t])).unwrap();
        job.state.next_run_at = Some(t0);
        let now = s + sparse * now_k + rest;
        let plan = plan_fire(&job, now, &[]);
        assert!(plan.uncounted > 1_000_000, "the walk jumped");
        (plan.runs.iter().map(|r| r.scheduled_for).collect(), s)
    }

    #[test]
    fn the_jump_resumes_within_the_last_day_when_the_last_hour_has_no_fire_time() {
        let six = SignedDuration::from_hours(6);
        let (runs, s) = resume_case(six, 4, SignedDuration::from_hours(3));
        assert_eq!(runs, [s + six, s + six * 2, s + six * 3, s + six * 4]);
    }

    #[test]
    fn the_jump_resumes_within_the_last_31_days_when_the_last_day_has_none() {
        let three_days = SignedDuration::from_hours(72);
        let (runs, s) = resume_case(three_days, 20, SignedDuration::from_hours(48));
        assert_eq!(runs, (11..=20).map(|k| s + three_days * k).collect::<Vec<_>>());
    }

    #[test]
    fn the_jump_resumes_within_the_last_366_days_when_the_last_31_have_none() {
        let forty_days = SignedDuration::from_hours(24 * 40);
        let (runs, s) = resume_case(forty_days, 10, SignedDuration::from_hours(24 * 35));
        assert_eq!(runs, (2..=10).map(|k| s + forty_days * k).collect::<Vec<_>>());
    }
}
