//! The scheduler end to end on virtual time: every option and semantic of
//! DESIGN.md, each test finishing in milliseconds with no wall-clock sleeps.
//!
//! The tests wait for events, never for time. `timeout` below is only a
//! safety net that turns a hang into a failure; passing tests never reach it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chime_core::{
    CalendarUnit, ConflictPolicy, Event, Job, JobContext, JobOptions, JobPatch, ManualClock, RemoveMode, RetryPolicy,
    RunQuery, RunStatus, Scheduler, SchedulerState, ShutdownMode, TaskRegistry, Trigger,
};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Semaphore, broadcast};

const START: &str = "2026-01-01T00:00:00Z";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A scheduler on a manual clock, with tasks that record their calls.
struct Harness {
    scheduler: Scheduler,
    clock: ManualClock,
    events: broadcast::Receiver<Event>,
    calls: Arc<Mutex<Vec<(String, Timestamp, u32)>>>,
    /// Permits that `blocked` tasks wait for.
    gate: Arc<Semaphore>,
    fails_left: Arc<AtomicU32>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(|b| b)
    }

    fn with(configure: impl FnOnce(chime_core::SchedulerBuilder) -> chime_core::SchedulerBuilder) -> Harness {
        let clock = ManualClock::new(ts(START));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let fails_left = Arc::new(AtomicU32::new(0));
        let mut tasks = TaskRegistry::new();
        let (c, k) = (Arc::clone(&calls), clock.clone());
        tasks.register("record", move |ctx: JobContext| {
            let (c, k) = (Arc::clone(&c), k.clone());
            async move {
                use chime_core::Clock;
                c.lock().unwrap().push((ctx.job_id.to_string(), k.now(), ctx.attempt));
                Ok::<_, std::io::Error>(())
            }
        });
        let (c, g) = (Arc::clone(&calls), Arc::clone(&gate));
        tasks.register("blocked", move |ctx: JobContext| {
            let (c, g) = (Arc::clone(&c), Arc::clone(&g));
            async move {
                c.lock().unwrap().push((ctx.job_id.to_string(), ctx.scheduled_for, ctx.attempt));
                tokio::select! {
                    permit = g.acquire() => { permit.unwrap().forget(); Ok(()) }
                    _ = ctx.cancel.cancelled() => Err(chime_core::TaskError::from("stopped by cancellation")),
                }
            }
        });
        tasks.register("stubborn", |_ctx: JobContext| async move {
            // Ignores cancellation: only an abort stops it.
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        });
        let f = Arc::clone(&fails_left);
        tasks.register("flaky", move |ctx: JobContext| {
            let f = Arc::clone(&f);
            async move {
                if f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                    Err(chime_core::TaskError::from(format!("attempt {} failed", ctx.attempt)))
                } else {
                    Ok(())
                }
            }
        });
        tasks.register("panics", |_ctx: JobContext| async move {
            if true {
                panic!("boom");
            }
            Ok::<_, std::io::Error>(())
        });
        let c = Arc::clone(&calls);
        tasks.register_blocking("blocking", move |ctx: JobContext| {
            std::thread::sleep(Duration::from_millis(1));
            c.lock().unwrap().push((ctx.job_id.to_string(), ctx.scheduled_for, ctx.attempt));
            Ok::<_, std::io::Error>(())
        });
        let builder = Scheduler::builder().tasks(tasks).clock(clock.clone()).timezone("UTC").unwrap().node_id("test");
        let scheduler = configure(builder).build();
        let events = scheduler.subscribe();
        Harness { scheduler, clock, events, calls, gate, fails_left }
    }

    async fn add(&self, job: Job) -> Job {
        self.scheduler.add_job(job, ConflictPolicy::Error).await.unwrap()
    }

    /// Waits for the first event matching `pred`, returning it.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let wait = async {
            loop {
                match self.events.recv().await {
                    Ok(e) if pred(&e) => return e,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => panic!("lagged {n} events"),
                    Err(e) => panic!("event stream ended: {e}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }

    async fn wait_for_runs_to_finish(&mut self, n: usize) -> Vec<Event> {
        let mut seen = Vec::new();
        while seen.len() < n {
            let e = self
                .wait_for("a finished run", |e| {
                    matches!(
                        e,
                        Event::RunSucceeded { .. }
                            | Event::RunFailed { will_retry: false, .. }
                            | Event::RunTimedOut { will_retry: false, .. }
                            | Event::RunCancelled { .. }
                            | Event::RunMissed { .. }
                            | Event::RunSkipped { .. }
                    )
                })
                .await;
            seen.push(e);
        }
        seen
    }

    fn advance(&self, d: SignedDuration) {
        self.clock.advance(Duration::try_from(d).unwrap());
    }

    fn calls(&self) -> Vec<(String, Timestamp, u32)> {
        self.calls.lock().unwrap().clone()
    }

    async fn history(&self, job: &str) -> Vec<(Timestamp, RunStatus)> {
        let q = RunQuery { job_id: Some(job.parse_id()), limit: Some(10_000), ..RunQuery::default() };
        let mut runs: Vec<_> =
            self.scheduler.history(&q).await.unwrap().into_iter().map(|r| (r.scheduled_for, r.status)).collect();
        runs.reverse();
        runs
    }
}

trait ParseId {
    fn parse_id(&self) -> chime_core::JobId;
}

impl ParseId for str {
    fn parse_id(&self) -> chime_core::JobId {
        chime_core::JobId::new(self).unwrap()
    }
}

fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

#[tokio::test]
async fn the_familiar_example_daily_report_and_cleanup_every_4_hours() {
    let mut h = Harness::new();
    h.add(Job::new("daily-report", "record", Trigger::cron("0 9 * * *").unwrap()).unwrap()).await;
    h.add(Job::new("cleanup", "record", Trigger::every("4h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    // Step the clock from one due time to the next for a day, as time would pass.
    loop {
        let jobs = h.scheduler.jobs().await.unwrap();
        let next = jobs.iter().filter_map(|j| j.state.next_run_at).min().unwrap();
        if next > ts("2026-01-02T00:00:00Z") {
            break;
        }
        h.clock.set(next);
        h.wait_for("a run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    }
    let calls = h.calls();
    let reports: Vec<_> = calls.iter().filter(|c| c.0 == "daily-report").collect();
    let cleanups: Vec<_> = calls.iter().filter(|c| c.0 == "cleanup").collect();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].1, ts("2026-01-01T09:00:00Z"));
    assert_eq!(cleanups.len(), 6);
    assert_eq!(cleanups[0].1, ts("2026-01-01T04:00:00Z"));
    assert_eq!(cleanups[5].1, ts("2026-01-02T00:00:00Z"));
    let jobs = h.scheduler.jobs().await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.state.next_run_at.unwrap()).collect::<Vec<_>>(),
        [ts("2026-01-02T04:00:00Z"), ts("2026-01-02T09:00:00Z")]
    );
}

#[tokio::test]
async fn a_daily_job_runs_every_day_of_a_year_at_local_nine() {
    let mut h = Harness::new();
    let trigger = Trigger::cron("0 9 * * *").unwrap().with_timezone("Europe/London").unwrap();
    h.add(Job::new("daily", "record", trigger).unwrap()).await;
    h.scheduler.start().unwrap();
    for _ in 0..365 {
        let next = h.scheduler.get_job("daily").await.unwrap().state.next_run_at.unwrap();
        h.clock.set(next);
        h.wait_for("the daily run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    }
    let calls = h.calls();
    assert_eq!(calls.len(), 365);
    let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
    for (i, (_, at, _)) in calls.iter().enumerate() {
        let local = at.to_zoned_datetime(tz.clone());
        assert_eq!((local.hour(), local.minute()), (9, 0), "run {i} at {local}");
    }
    // Summer time: 09:00 BST is 08:00 UTC.
    assert!(calls.iter().any(|c| c.1 == ts("2026-07-01T08:00:00Z")));
    assert!(calls.iter().any(|c| c.1 == ts("2026-12-01T09:00:00Z")));
    let days: std::collections::BTreeSet<_> = calls.iter().map(|c| c.1.to_zoned_datetime(tz.clone()).date()).collect();
    assert_eq!(days.len(), 365, "one run per day, none doubled or skipped");
}

#[tokio::test]
async fn coalesce_runs_once_and_records_the_times_it_merged() {
    let mut h = Harness::new();
    h.add(Job::new("hourly", "record", Trigger::cron("0 * * * *").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.scheduler.pause();
    h.wait_for("pause", |e| matches!(e, Event::SchedulerPaused)).await;
    h.advance(hours(5) + SignedDuration::from_mins(30));
    h.scheduler.resume();
    h.wait_for_runs_to_finish(6).await;
    assert_eq!(h.calls().len(), 1);
    let history = h.history("hourly").await;
    // Added at 00:00:00 exactly, a fire time: the first run is due at once.
    assert_eq!(
        history,
        [
            (ts("2026-01-01T00:00:00Z"), RunStatus::Missed),
            (ts("2026-01-01T01:00:00Z"), RunStatus::Missed),
            (ts("2026-01-01T02:00:00Z"), RunStatus::Missed),
            (ts("2026-01-01T03:00:00Z"), RunStatus::Missed),
            (ts("2026-01-01T04:00:00Z"), RunStatus::Missed),
            (ts("2026-01-01T05:00:00Z"), RunStatus::Succeeded),
        ]
    );
    let missed =
        h.scheduler.history(&RunQuery { statuses: vec![RunStatus::Missed], ..RunQuery::default() }).await.unwrap();
    assert!(
        missed[0].error.as_deref().unwrap().starts_with("coalesced into the run scheduled for 2026-01-01T05:00:00Z")
    );
}

#[tokio::test]
async fn without_coalesce_every_missed_time_runs() {
    let mut h = Harness::new();
    let job = Job::new("hourly", "record", Trigger::cron("0 * * * *").unwrap())
        .unwrap()
        .with_coalesce(false)
        .with_max_instances(10);
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.scheduler.pause();
    h.wait_for("pause", |e| matches!(e, Event::SchedulerPaused)).await;
    h.advance(hours(3));
    h.scheduler.resume();
    h.wait_for_runs_to_finish(4).await;
    let mut times: Vec<Timestamp> = h.calls().iter().map(|c| c.1).collect();
    times.sort();
    // 00:00 (the job was added at a fire time), 01:00, 02:00, 03:00.
    assert_eq!(times.len(), 4);
    assert!(h.history("hourly").await.iter().all(|(_, s)| *s == RunStatus::Succeeded));
}

#[tokio::test]
async fn times_past_the_misfire_grace_time_are_recorded_as_missed() {
    let mut h = Harness::new();
    let job = Job::new("hourly", "record", Trigger::cron("0 * * * *").unwrap())
        .unwrap()
        .with_misfire_grace_time(SignedDuration::from_mins(10));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.scheduler.pause();
    h.wait_for("pause", |e| matches!(e, Event::SchedulerPaused)).await;
    h.advance(hours(2) + SignedDuration::from_mins(20));
    h.scheduler.resume();
    let events = h.wait_for_runs_to_finish(2).await;
    assert!(h.calls().is_empty(), "both times are past the grace time");
    for e in events {
        let Event::RunMissed { reason, .. } = e else { panic!("{e:?}") };
        assert!(reason.contains("past the misfire grace time of 10m"), "{reason}");
    }
    // On time, it runs.
    h.advance(SignedDuration::from_mins(40));
    h.wait_for("the 03:00 run", |e| matches!(e, Event::RunSucceeded { .. })).await;
}

#[tokio::test]
async fn max_instances_skips_a_run_while_one_is_going() {
    let mut h = Harness::new();
    h.add(Job::new("slow", "blocked", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("first start", |e| matches!(e, Event::RunStarted { .. })).await;
    h.advance(hours(1));
    let e = h.wait_for("the skip", |e| matches!(e, Event::RunSkipped { .. })).await;
    let Event::RunSkipped { reason, scheduled_for, .. } = e else { unreachable!() };
    assert_eq!(scheduled_for, ts("2026-01-01T02:00:00Z"));
    assert_eq!(reason, "max_instances (1) runs were already in progress");
    h.gate.add_permits(1);
    h.wait_for("the first run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    h.advance(hours(1));
    h.wait_for("the third start", |e| matches!(e, Event::RunStarted { .. })).await;
    h.gate.add_permits(1);
    h.wait_for("the third run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    let statuses: Vec<RunStatus> = h.history("slow").await.into_iter().map(|r| r.1).collect();
    assert_eq!(statuses, [RunStatus::Succeeded, RunStatus::Skipped, RunStatus::Succeeded]);
}

#[tokio::test]
async fn a_timeout_cancels_the_run_and_frees_its_slot() {
    let mut h = Harness::new();
    let job =
        Job::new("slow", "blocked", Trigger::every("1h").unwrap()).unwrap().with_timeout(SignedDuration::from_mins(5));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("start", |e| matches!(e, Event::RunStarted { .. })).await;
    h.advance(SignedDuration::from_mins(5));
    h.wait_for("timeout", |e| matches!(e, Event::RunTimedOut { will_retry: false, .. })).await;
    // The task saw its cancellation token and returned; the slot is free for the next run.
    h.advance(SignedDuration::from_mins(55));
    h.wait_for("the next start", |e| matches!(e, Event::RunStarted { .. })).await;
    let runs = h.scheduler.history(&RunQuery::default()).await.unwrap();
    let timed_out = runs.iter().find(|r| r.status == RunStatus::TimedOut).unwrap();
    assert_eq!(timed_out.error.as_deref(), Some("timed out after 5m"));
    assert_eq!(timed_out.duration(), Some(SignedDuration::from_mins(5)));
}

#[tokio::test]
async fn a_task_that_ignores_cancellation_is_aborted_after_the_grace_period() {
    let mut h = Harness::with(|b| b.cancel_grace(SignedDuration::from_secs(10)));
    let job = Job::new("stuck", "stubborn", Trigger::every("1h").unwrap())
        .unwrap()
        .with_timeout(SignedDuration::from_mins(1));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("start", |e| matches!(e, Event::RunStarted { .. })).await;
    h.advance(SignedDuration::from_mins(1));
    tokio::task::yield_now().await;
    h.advance(SignedDuration::from_secs(10));
    h.wait_for("timeout", |e| matches!(e, Event::RunTimedOut { .. })).await;
    h.advance(hours(1));
    h.wait_for("the next run starts: the slot was freed", |e| matches!(e, Event::RunStarted { .. })).await;
}

#[tokio::test]
async fn retries_back_off_then_succeed_under_one_run_id() {
    let mut h = Harness::new();
    h.fails_left.store(2, Ordering::SeqCst);
    let job = Job::new("flaky", "flaky", Trigger::every("1h").unwrap())
        .unwrap()
        .with_retry(RetryPolicy::new(3, SignedDuration::from_secs(30)));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    let e = h.wait_for("first failure", |e| matches!(e, Event::RunFailed { .. })).await;
    let Event::RunFailed { attempt: 1, will_retry: true, run_id: first_id, .. } = e else { panic!("{e:?}") };
    h.advance(SignedDuration::from_secs(30));
    h.wait_for("second failure", |e| matches!(e, Event::RunFailed { attempt: 2, will_retry: true, .. })).await;
    // The second wait is twice the first.
    h.advance(SignedDuration::from_secs(59));
    tokio::task::yield_now().await;
    assert!(h.events.try_recv().is_err(), "no third attempt before 60 s");
    h.advance(SignedDuration::from_secs(1));
    let e = h.wait_for("success", |e| matches!(e, Event::RunSucceeded { .. })).await;
    let Event::RunSucceeded { run_id, .. } = e else { unreachable!() };
    assert_eq!(run_id, first_id);
    let run = h.scheduler.history(&RunQuery::default()).await.unwrap().remove(0);
    assert_eq!((run.status, run.attempt), (RunStatus::Succeeded, 3));
}

#[tokio::test]
async fn retries_give_up_after_max_attempts() {
    let mut h = Harness::new();
    h.fails_left.store(10, Ordering::SeqCst);
    let job = Job::new("flaky", "flaky", Trigger::every("1h").unwrap())
        .unwrap()
        .with_retry(RetryPolicy::new(2, SignedDuration::from_secs(1)));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("first failure", |e| matches!(e, Event::RunFailed { attempt: 1, will_retry: true, .. })).await;
    h.advance(SignedDuration::from_secs(1));
    h.wait_for("final failure", |e| matches!(e, Event::RunFailed { attempt: 2, will_retry: false, .. })).await;
    let run = h.scheduler.history(&RunQuery::default()).await.unwrap().remove(0);
    assert_eq!((run.status, run.attempt, run.error.as_deref()), (RunStatus::Failed, 2, Some("attempt 2 failed")));
    let job = h.scheduler.get_job("flaky").await.unwrap();
    assert_eq!(job.state.last_status, Some(RunStatus::Failed));
}

#[tokio::test]
async fn jitter_delays_the_start_within_its_bound() {
    let h = Harness::new();
    let job =
        Job::new("j", "record", Trigger::every("1h").unwrap()).unwrap().with_jitter(SignedDuration::from_secs(60));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    // Step through the jitter window a second at a time until the run starts.
    let mut waited = 0;
    while h.calls().is_empty() {
        assert!(waited <= 60, "jitter exceeded its bound");
        h.advance(SignedDuration::from_secs(1));
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        waited += 1;
    }
    let started = h.calls()[0].1;
    assert!(started >= ts("2026-01-01T01:00:00Z") && started <= ts("2026-01-01T01:01:00Z"));
}

#[tokio::test]
async fn a_panicking_task_fails_its_run_and_the_scheduler_goes_on() {
    let mut h = Harness::new();
    h.add(Job::new("bad", "panics", Trigger::every("1h").unwrap()).unwrap()).await;
    h.add(Job::new("good", "record", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    let e = h.wait_for("the failure", |e| matches!(e, Event::RunFailed { .. })).await;
    let Event::RunFailed { error, .. } = e else { unreachable!() };
    assert_eq!(error, "the task panicked: boom");
    h.wait_for("the good run", |e| matches!(e, Event::RunSucceeded { .. })).await;
}

#[tokio::test]
async fn blocking_tasks_run_on_the_blocking_pool() {
    let mut h = Harness::new();
    h.add(Job::new("b", "blocking", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("the run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    assert_eq!(h.calls().len(), 1);
}

#[tokio::test]
async fn pause_and_resume_a_job_without_a_storm_of_missed_runs() {
    let mut h = Harness::new();
    h.add(Job::new("hourly", "record", Trigger::cron("0 * * * *").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    let paused = h.scheduler.pause_job("hourly", "maintenance").await.unwrap();
    assert_eq!((paused.state.paused.as_deref(), paused.state.next_run_at), (Some("maintenance"), None));
    h.advance(hours(10) + SignedDuration::from_mins(30));
    tokio::task::yield_now().await;
    let resumed = h.scheduler.resume_job("hourly").await.unwrap();
    assert_eq!(resumed.state.next_run_at, Some(ts("2026-01-01T11:00:00Z")));
    h.advance(SignedDuration::from_mins(30));
    h.wait_for_runs_to_finish(1).await;
    assert_eq!(h.history("hourly").await, [(ts("2026-01-01T11:00:00Z"), RunStatus::Succeeded)]);
}

#[tokio::test]
async fn removing_a_job_lets_its_run_finish_or_cancels_it() {
    let mut h = Harness::new();
    h.add(Job::new("a", "blocked", Trigger::every("1h").unwrap()).unwrap()).await;
    h.add(Job::new("b", "blocked", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("start", |e| matches!(e, Event::RunStarted { .. })).await;
    h.wait_for("start", |e| matches!(e, Event::RunStarted { .. })).await;
    h.scheduler.remove_job("a", RemoveMode::LetFinish).await.unwrap();
    h.scheduler.remove_job("b", RemoveMode::Cancel).await.unwrap();
    h.wait_for("b cancelled", |e| matches!(e, Event::RunCancelled { job_id, .. } if job_id.as_str() == "b")).await;
    h.gate.add_permits(1);
    h.wait_for("a finished", |e| matches!(e, Event::RunSucceeded { job_id, .. } if job_id.as_str() == "a")).await;
    assert!(h.scheduler.get_job("a").await.unwrap_err().is_not_found());
    // History outlives the job.
    assert_eq!(h.history("a").await.len(), 1);
    assert_eq!(h.history("b").await[0].1, RunStatus::Cancelled);
}

#[tokio::test]
async fn shutdown_waits_for_running_jobs() {
    let mut h = Harness::new();
    h.add(Job::new("a", "blocked", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("start", |e| matches!(e, Event::RunStarted { .. })).await;
    let s = h.scheduler.clone();
    let shutdown = tokio::spawn(async move { s.shutdown(ShutdownMode::Wait(Duration::from_secs(3600))).await });
    tokio::task::yield_now().await;
    assert!(!shutdown.is_finished());
    h.gate.add_permits(1);
    shutdown.await.unwrap();
    assert_eq!(h.scheduler.state(), SchedulerState::ShutDown);
    assert_eq!(h.history("a").await[0].1, RunStatus::Succeeded);
    // Nothing runs after shutdown.
    h.advance(hours(5));
    tokio::task::yield_now().await;
    assert_eq!(h.calls().len(), 1);
    assert!(h.scheduler.run_job_now("a").await.unwrap_err().to_string().contains("shut down"));
}

#[tokio::test]
async fn shutdown_cancels_runs_past_its_deadline_or_at_once() {
    let mut h = Harness::new();
    h.add(Job::new("a", "blocked", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("start", |e| matches!(e, Event::RunStarted { .. })).await;
    let s = h.scheduler.clone();
    let shutdown = tokio::spawn(async move { s.shutdown(ShutdownMode::Wait(Duration::from_secs(30))).await });
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    h.advance(SignedDuration::from_secs(30));
    shutdown.await.unwrap();
    assert_eq!(h.history("a").await[0].1, RunStatus::Cancelled);

    let mut h = Harness::new();
    h.add(Job::new("a", "blocked", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("start", |e| matches!(e, Event::RunStarted { .. })).await;
    h.scheduler.shutdown(ShutdownMode::Cancel).await;
    assert_eq!(h.history("a").await[0].1, RunStatus::Cancelled);
}

#[tokio::test]
async fn run_now_adds_one_run_and_leaves_the_schedule_alone() {
    let mut h = Harness::new();
    h.add(Job::new("daily", "record", Trigger::cron("0 9 * * *").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(2));
    let run = h.scheduler.run_job_now("daily").await.unwrap();
    h.wait_for("the manual run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    assert_eq!(run.kind, chime_core::RunKind::Manual);
    assert_eq!(h.calls()[0].1, ts("2026-01-01T02:00:00Z"));
    let job = h.scheduler.get_job("daily").await.unwrap();
    assert_eq!(job.state.next_run_at, Some(ts("2026-01-01T09:00:00Z")));
    // Paused jobs can be run by hand too.
    h.scheduler.pause_job("daily", "").await.unwrap();
    h.scheduler.run_job_now("daily").await.unwrap_err_if_conflict();
    assert!(h.scheduler.run_job_now("nope").await.unwrap_err().is_not_found());
}

trait UnwrapErrIfConflict {
    fn unwrap_err_if_conflict(self);
}

impl UnwrapErrIfConflict for chime_core::Result<chime_core::Run> {
    /// Two manual runs in the same instant collide on (job, scheduled time);
    /// a later one does not. Either outcome is fine here, as long as it is not
    /// some other error.
    fn unwrap_err_if_conflict(self) {
        if let Err(e) = self {
            assert!(e.is_conflict(), "{e}");
        }
    }
}

#[tokio::test]
async fn modify_reschedule_and_upcoming() {
    let h = Harness::new();
    h.add(Job::new("j", "record", Trigger::cron("0 9 * * *").unwrap()).unwrap()).await;
    let job = h
        .scheduler
        .modify_job(
            "j",
            JobPatch {
                name: Some(Some("Report".into())),
                args: Some(serde_json::json!({"to": "ops"})),
                options: Some(JobOptions { max_instances: 3, ..JobOptions::default() }),
            },
        )
        .await
        .unwrap();
    assert_eq!((job.name(), job.options.max_instances, job.args["to"].as_str()), ("Report", 3, Some("ops")));
    assert_eq!(job.state.next_run_at, Some(ts("2026-01-01T09:00:00Z")));
    let bad =
        JobPatch { options: Some(JobOptions { max_instances: 0, ..JobOptions::default() }), ..JobPatch::default() };
    assert!(h.scheduler.modify_job("j", bad).await.unwrap_err().is_invalid());

    let job = h.scheduler.reschedule_job("j", Trigger::every("30m").unwrap()).await.unwrap();
    assert_eq!(job.state.next_run_at, Some(ts("2026-01-01T00:30:00Z")));
    assert_eq!(
        h.scheduler.upcoming("j", 3).await.unwrap(),
        [ts("2026-01-01T00:30:00Z"), ts("2026-01-01T01:00:00Z"), ts("2026-01-01T01:30:00Z")]
    );
    assert!(h.scheduler.reschedule_job("j", Trigger::any(vec![])).await.unwrap_err().is_invalid());
    assert!(h.scheduler.reschedule_job("missing", Trigger::every("1h").unwrap()).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn add_job_conflict_policies_and_bad_input() {
    let h = Harness::new();
    let job = Job::new("j", "record", Trigger::cron("0 9 * * *").unwrap()).unwrap();
    h.add(job.clone()).await;
    let err = h.scheduler.add_job(job.clone().with_name("again"), ConflictPolicy::Error).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let kept = h.scheduler.add_job(job.clone().with_name("again"), ConflictPolicy::KeepExisting).await.unwrap();
    assert_eq!(kept.name(), "j");
    let replaced = h.scheduler.add_job(job.clone().with_name("again"), ConflictPolicy::Replace).await.unwrap();
    assert_eq!(replaced.name(), "again");
    assert_eq!(h.scheduler.jobs().await.unwrap().len(), 1);

    let err = h
        .scheduler
        .add_job(Job::new("x", "no_such_task", Trigger::every("1h").unwrap()).unwrap(), ConflictPolicy::Error)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no task named \"no_such_task\" is registered");
    let err = h.scheduler.add_job(job.with_max_instances(0), ConflictPolicy::Replace).await.unwrap_err();
    assert_eq!(err.to_string(), "job \"j\": max_instances must be between 1 and 10000, not 0");
    assert!(h.scheduler.get_job("").await.unwrap_err().is_invalid());
    assert!(h.scheduler.get_job("missing").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn a_one_off_job_in_the_past_runs_once_then_finishes() {
    let mut h = Harness::new();
    h.add(Job::new("once", "record", Trigger::at(ts("2025-12-31T23:00:00Z"))).unwrap()).await;
    h.scheduler.start().unwrap();
    // The claim that dispatches the run also finds the trigger finished.
    h.wait_for("finished", |e| matches!(e, Event::JobFinished { .. })).await;
    h.wait_for("the run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    let job = h.scheduler.get_job("once").await.unwrap();
    assert_eq!(job.state.next_run_at, None);
    assert_eq!(job.state.last_status, Some(RunStatus::Succeeded));
}

#[tokio::test]
async fn a_calendar_job_keeps_its_wall_time_through_dst() {
    let mut h = Harness::new();
    let trigger = Trigger::calendar(1, CalendarUnit::Days, "02:30").unwrap().with_timezone("America/New_York").unwrap();
    h.clock.set(ts("2026-03-06T12:00:00Z"));
    h.add(Job::new("cal", "record", trigger).unwrap()).await;
    h.scheduler.start().unwrap();
    for _ in 0..3 {
        let next = h.scheduler.get_job("cal").await.unwrap().state.next_run_at.unwrap();
        h.clock.set(next);
        h.wait_for("run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    }
    let times: Vec<Timestamp> = h.calls().iter().map(|c| c.1).collect();
    // 02:30 EST, then the gap's end 03:00 EDT on 2026-03-08, then 02:30 EDT.
    assert_eq!(times, [ts("2026-03-07T07:30:00Z"), ts("2026-03-08T07:00:00Z"), ts("2026-03-09T06:30:00Z")]);
}

#[tokio::test]
async fn history_is_bounded_per_job_and_stats_add_up() {
    let mut h = Harness::new();
    h.add(Job::new("m", "record", Trigger::every("1m").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    for _ in 0..120 {
        h.advance(SignedDuration::from_mins(1));
        h.wait_for("run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    }
    assert_eq!(h.history("m").await.len(), 100);
    let stats = h.scheduler.stats("m").await.unwrap();
    assert_eq!((stats.runs, stats.succeeded, stats.success_rate), (100, 100, Some(1.0)));
    assert_eq!(stats.avg_lateness_s, Some(0.0));
    h.scheduler.pause_job("m", "enough").await.unwrap();
    h.add(Job::new("once", "record", Trigger::at(ts("2025-01-01T00:00:00Z"))).unwrap()).await;
    h.wait_for("the one-off", |e| matches!(e, Event::JobFinished { .. })).await;
    h.wait_for("its run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    let all = h.scheduler.scheduler_stats().await.unwrap();
    assert_eq!((all.jobs, all.paused, all.finished, all.broken, all.running_here), (2, 1, 1, 0, 0));
    assert_eq!((all.runs.runs, all.runs.succeeded), (101, 101));
}

#[tokio::test]
async fn every_decision_is_an_event_and_a_history_row() {
    let mut h = Harness::new();
    h.add(Job::new("j", "record", Trigger::every("1h").unwrap()).unwrap()).await;
    h.wait_for("added", |e| matches!(e, Event::JobAdded { .. })).await;
    h.scheduler.start().unwrap();
    h.wait_for("started", |e| matches!(e, Event::SchedulerStarted)).await;
    h.advance(hours(1));
    let started = h.wait_for("run started", |e| matches!(e, Event::RunStarted { .. })).await;
    let Event::RunStarted { run_id, scheduled_for, attempt, .. } = started else { unreachable!() };
    assert_eq!((scheduled_for, attempt), (ts("2026-01-01T01:00:00Z"), 1));
    h.wait_for("run succeeded", |e| matches!(e, Event::RunSucceeded { .. })).await;
    let run = h.scheduler.history(&RunQuery::default()).await.unwrap().remove(0);
    assert_eq!((run.id, run.status, run.node.as_deref()), (run_id, RunStatus::Succeeded, Some("test")));
    assert_eq!(run.lateness(), Some(SignedDuration::ZERO));
}
