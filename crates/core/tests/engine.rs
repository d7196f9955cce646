//! The scheduler end to end on virtual time: every option and semantic of
//! docs/design.md, each test finishing in milliseconds with no wall-clock sleeps.
//!
//! The tests wait for facts, never for time or a number of yields: an event,
//! or a sleep on the clock with a given deadline (which says that part of the
//! engine has done everything it does before that instant). Every wait has a
//! deadline that turns a hang into a failure naming what was awaited.

mod support;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chime_core::{
    CalendarUnit, CancelledBy, ConflictPolicy, Event, Job, JobContext, JobOptions, JobPatch, Reason, RemoveMode,
    RetryPolicy, RunKind, RunQuery, RunStatus, Scheduler, SchedulerState, ShutdownMode, Stage, TaskRegistry, Trigger,
};
use jiff::{SignedDuration, Timestamp};
use support::{TestClock, within};
use tokio::sync::{Semaphore, broadcast};

const START: &str = "2026-01-01T00:00:00Z";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// One call of a recording task.
#[derive(Clone, Debug, PartialEq)]
struct Call {
    job: String,
    /// The clock when the task started.
    at: Timestamp,
    scheduled_for: Timestamp,
    attempt: u32,
}

/// A scheduler on a virtual clock, with tasks that record their calls.
struct Harness {
    scheduler: Scheduler,
    clock: TestClock,
    events: broadcast::Receiver<Event>,
    calls: Arc<Mutex<Vec<Call>>>,
    /// Permits that `blocked` tasks wait for.
    gate: Arc<Semaphore>,
    fails_left: Arc<AtomicU32>,
    /// `blocked` tasks that saw their cancellation and got to clean up after it.
    cleanups: Arc<AtomicU32>,
    /// `stubborn` tasks dropped (aborted).
    aborted: Arc<AtomicU32>,
    /// How many `blocked` tasks run now, and the most that ever ran at once.
    blocked_now: Arc<AtomicUsize>,
    blocked_max: Arc<AtomicUsize>,
}

/// Counts a drop: how the test sees that a task was aborted.
struct CountDrop(Arc<AtomicU32>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Harness {
    fn new() -> Harness {
        Harness::with(|b| b)
    }

    fn with(configure: impl FnOnce(chime_core::SchedulerBuilder) -> chime_core::SchedulerBuilder) -> Harness {
        Harness::with_tasks(|_| {}, configure)
    }

    fn with_tasks(
        extra: impl FnOnce(&mut TaskRegistry),
        configure: impl FnOnce(chime_core::SchedulerBuilder) -> chime_core::SchedulerBuilder,
    ) -> Harness {
        let clock = TestClock::new(ts(START));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let fails_left = Arc::new(AtomicU32::new(0));
        let cleanups = Arc::new(AtomicU32::new(0));
        let aborted = Arc::new(AtomicU32::new(0));
        let blocked_now = Arc::new(AtomicUsize::new(0));
        let blocked_max = Arc::new(AtomicUsize::new(0));
        let record = |calls: &Arc<Mutex<Vec<Call>>>, clock: &TestClock, ctx: &JobContext| {
            use chime_core::Clock;
            calls.lock().unwrap().push(Call {
                job: ctx.job_id.to_string(),
                at: clock.now(),
                scheduled_for: ctx.scheduled_for,
                attempt: ctx.attempt,
            });
        };
        let mut tasks = TaskRegistry::new();
        let (c, k) = (Arc::clone(&calls), clock.clone());
        tasks.register("record", move |ctx: JobContext| {
            record(&c, &k, &ctx);
            async { Ok::<_, std::io::Error>(()) }
        });
        let (c, k, g, clean) = (Arc::clone(&calls), clock.clone(), Arc::clone(&gate), Arc::clone(&cleanups));
        let (now, max) = (Arc::clone(&blocked_now), Arc::clone(&blocked_max));
        tasks.register("blocked", move |ctx: JobContext| {
            record(&c, &k, &ctx);
            let (g, clean, now, max) = (Arc::clone(&g), Arc::clone(&clean), Arc::clone(&now), Arc::clone(&max));
            async move {
                let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(running, Ordering::SeqCst);
                let result = tokio::select! {
                    permit = g.acquire() => { permit.unwrap().forget(); Ok(()) }
                    _ = ctx.cancel.cancelled() => {
                        // Cleaning up takes an await: only a task given its
                        // grace period, not one dropped at once, gets here.
                        tokio::task::yield_now().await;
                        clean.fetch_add(1, Ordering::SeqCst);
                        Err(chime_core::TaskError::from("stopped by cancellation"))
                    }
                };
                now.fetch_sub(1, Ordering::SeqCst);
                result
            }
        });
        let a = Arc::clone(&aborted);
        tasks.register("stubborn", move |_ctx: JobContext| {
            let guard = CountDrop(Arc::clone(&a));
            async move {
                // Ignores cancellation: only an abort (a drop) stops it.
                let _guard = guard;
                std::future::pending::<()>().await;
                Ok::<_, std::io::Error>(())
            }
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
        extra(&mut tasks);
        // A lease of 33 s: the heartbeat sleeps 11 s at a time, so its
        // deadlines do not fall on the round instants tests wait for.
        let builder = Scheduler::builder()
            .tasks(tasks)
            .clock(clock.clone())
            .timezone("UTC")
            .unwrap()
            .node_id("test")
            .node_lease(secs(33))
            .unwrap();
        let scheduler = configure(builder).build();
        let events = scheduler.subscribe();
        Harness { scheduler, clock, events, calls, gate, fails_left, cleanups, aborted, blocked_now, blocked_max }
    }

    async fn add(&self, job: Job) -> Job {
        self.scheduler.add_job(job, ConflictPolicy::Error).await.unwrap()
    }

    /// Waits for the first event matching `pred`, returning it.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        support::wait_for(&mut self.events, what, pred).await
    }

    /// The next event about a run (started, finished, missed, skipped), skipping the others.
    async fn next_run_event(&mut self, what: &str) -> Event {
        self.wait_for(what, |e| {
            matches!(
                e,
                Event::RunStarted { .. }
                    | Event::RunSucceeded { .. }
                    | Event::RunFailed { .. }
                    | Event::RunTimedOut { .. }
                    | Event::RunCancelled { .. }
                    | Event::RunMissed { .. }
                    | Event::RunSkipped { .. }
            )
        })
        .await
    }

    /// Every event up to and including the first that `last` accepts.
    async fn events_until(&mut self, what: &str, last: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut seen = Vec::new();
        within(what, async {
            loop {
                match self.events.recv().await {
                    Ok(e) => {
                        let done = last(&e);
                        seen.push(e);
                        if done {
                            return;
                        }
                    }
                    Err(e) => panic!("event stream failed waiting for {what}: {e}"),
                }
            }
        })
        .await;
        seen
    }

    async fn wait_for_runs_to_finish(&mut self, n: usize) -> Vec<Event> {
        let mut seen = Vec::new();
        while seen.len() < n {
            let e = self
                .wait_for(&format!("finished run {} of {n}", seen.len() + 1), |e| {
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
        self.clock.advance(d);
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    async fn history(&self, job: &str) -> Vec<(Timestamp, RunStatus)> {
        let q = RunQuery { job_id: Some(job.parse_id()), limit: Some(10_000), ..RunQuery::default() };
        let mut runs: Vec<_> =
            self.scheduler.history(&q).await.unwrap().into_iter().map(|r| (r.scheduled_for, r.status)).collect();
        runs.reverse();
        runs
    }

    /// The newest run of the store (history is newest first).
    async fn last_run(&self) -> chime_core::Run {
        self.scheduler.history(&RunQuery::default()).await.unwrap().remove(0)
    }

    /// Steps the clock to the job's next fire time and waits for that run to succeed.
    async fn run_next(&mut self, job: &str) -> Timestamp {
        let next = self.scheduler.get_job(job).await.unwrap().state.next_run_at.expect("a next run");
        self.clock.set(next);
        self.wait_for(&format!("the run of {job} at {next}"), |e| matches!(e, Event::RunSucceeded { .. })).await;
        next
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

fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn at(hh_mm: &str) -> Timestamp {
    ts(&format!("2026-01-01T{hh_mm}Z"))
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
    let when = |job: &str| calls.iter().filter(|c| c.job == job).map(|c| c.at).collect::<Vec<_>>();
    assert_eq!(when("daily-report"), [at("09:00:00")]);
    assert_eq!(
        when("cleanup"),
        ["04", "08", "12", "16", "20"]
            .iter()
            .map(|h| at(&format!("{h}:00:00")))
            .chain([ts("2026-01-02T00:00:00Z")])
            .collect::<Vec<_>>()
    );
    let jobs = h.scheduler.jobs().await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.state.next_run_at.unwrap()).collect::<Vec<_>>(),
        [ts("2026-01-02T04:00:00Z"), ts("2026-01-02T09:00:00Z")]
    );
}

#[tokio::test]
async fn add_jobs_checks_every_job_before_storing_any_and_they_all_run() {
    let h = Harness::new();
    let cleanup = Job::new("cleanup", "record", Trigger::every("4h").unwrap()).unwrap();
    let refused = [
        (
            vec![cleanup.clone(), Job::new("nope", "no-such-task", Trigger::every("1h").unwrap()).unwrap()],
            "no-such-task",
        ),
        (vec![cleanup.clone(), Job::new("fast", "record", Trigger::every("1ms").unwrap()).unwrap()], "minimum"),
        (vec![cleanup.clone(), cleanup.clone()], "given twice"),
    ];
    for (jobs, why) in refused {
        let err = h.scheduler.add_jobs(jobs, ConflictPolicy::Error).await.unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
        assert!(h.scheduler.jobs().await.unwrap().is_empty(), "nothing stored when one job is refused ({why})");
    }
    let many: Vec<Job> = (0..2_500)
        .map(|i| Job::new(&format!("job-{i:04}"), "record", Trigger::every("1h").unwrap()).unwrap())
        .collect();
    let added = h.scheduler.add_jobs(many, ConflictPolicy::Error).await.unwrap();
    assert_eq!(added.len(), 2_500, "three batches, all added");
    assert_eq!(added[2_499].id.as_str(), "job-2499", "in the order given");
    assert!(added.iter().all(|j| j.state.next_run_at == Some(at("01:00:00"))), "each with its first fire time");
    let again = vec![Job::new("job-0001", "record", Trigger::every("2h").unwrap()).unwrap()];
    assert!(h.scheduler.add_jobs(again, ConflictPolicy::Error).await.unwrap_err().is_conflict());
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    // 2,500 runs overflow the event channel a test reads: count the calls.
    within("2,500 runs", async {
        while h.calls().len() < 2_500 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(h.calls().iter().all(|c| c.scheduled_for == at("01:00:00")), "every bulk-added job ran at its first time");
}

#[tokio::test]
async fn a_daily_job_runs_every_day_of_a_year_at_local_nine() {
    let mut h = Harness::new();
    let trigger = Trigger::cron("0 9 * * *").unwrap().with_timezone("Europe/London").unwrap();
    h.add(Job::new("daily", "record", trigger).unwrap()).await;
    h.scheduler.start().unwrap();
    for _ in 0..365 {
        h.run_next("daily").await;
    }
    let calls = h.calls();
    assert_eq!(calls.len(), 365);
    let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
    for (i, c) in calls.iter().enumerate() {
        let local = c.at.to_zoned_datetime(tz.clone());
        assert_eq!((local.hour(), local.minute(), local.second()), (9, 0, 0), "run {i} at {local}");
        assert_eq!(c.at, c.scheduled_for, "run {i} started on time");
    }
    // Summer time: 09:00 BST is 08:00 UTC.
    assert!(calls.iter().any(|c| c.at == ts("2026-07-01T08:00:00Z")));
    assert!(calls.iter().any(|c| c.at == ts("2026-12-01T09:00:00Z")));
    let days: std::collections::BTreeSet<_> = calls.iter().map(|c| c.at.to_zoned_datetime(tz.clone()).date()).collect();
    assert_eq!(days.len(), 365, "one run per day, none doubled or skipped");
}

#[tokio::test]
async fn an_interval_counts_elapsed_time_across_dst() {
    // 24h is elapsed time, not "the same wall time tomorrow": in London it
    // fires at 09:00 GMT, then at 10:00 BST after the clocks go forward on
    // 2026-03-29, then at 09:00 GMT again after they go back on 2026-10-25.
    let mut h = Harness::with(|b| b.timezone("Europe/London").unwrap());
    h.clock.set(ts("2026-03-27T12:00:00Z"));
    let spring = Trigger::every("24h").unwrap().with_start(ts("2026-03-28T09:00:00Z"));
    h.add(Job::new("spring", "record", spring).unwrap()).await;
    h.scheduler.start().unwrap();
    for _ in 0..3 {
        h.run_next("spring").await;
    }
    h.scheduler.remove_job("spring", RemoveMode::LetFinish).await.unwrap();
    h.clock.set(ts("2026-10-23T12:00:00Z"));
    let autumn = Trigger::every("24h").unwrap().with_start(ts("2026-10-24T08:00:00Z"));
    h.add(Job::new("autumn", "record", autumn).unwrap()).await;
    for _ in 0..3 {
        h.run_next("autumn").await;
    }
    let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
    let local = |job: &str| -> Vec<String> {
        h.calls()
            .iter()
            .filter(|c| c.job == job)
            .map(|c| c.scheduled_for.to_zoned_datetime(tz.clone()).strftime("%F %T %Z").to_string())
            .collect()
    };
    assert_eq!(local("spring"), ["2026-03-28 09:00:00 GMT", "2026-03-29 10:00:00 BST", "2026-03-30 10:00:00 BST"]);
    assert_eq!(local("autumn"), ["2026-10-24 09:00:00 BST", "2026-10-25 08:00:00 GMT", "2026-10-26 08:00:00 GMT"]);
    let calls = h.calls();
    for pair in calls.windows(2).filter(|w| w[0].job == w[1].job) {
        assert_eq!(pair[1].scheduled_for.duration_since(pair[0].scheduled_for), hours(24), "{pair:?}");
    }
}

#[tokio::test]
async fn coalesce_runs_once_and_records_the_times_it_merged() {
    let mut h = Harness::new();
    h.add(Job::new("hourly", "record", Trigger::cron("0 * * * *").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.scheduler.pause();
    h.wait_for("pause", |e| matches!(e, Event::SchedulerPaused)).await;
    h.advance(hours(5) + mins(30));
    h.scheduler.resume();
    h.wait_for_runs_to_finish(6).await;
    assert_eq!(h.calls().len(), 1);
    let history = h.history("hourly").await;
    // Added at 00:00:00 exactly, a fire time: the first run is due at once.
    assert_eq!(
        history,
        [
            (at("00:00:00"), RunStatus::Missed),
            (at("01:00:00"), RunStatus::Missed),
            (at("02:00:00"), RunStatus::Missed),
            (at("03:00:00"), RunStatus::Missed),
            (at("04:00:00"), RunStatus::Missed),
            (at("05:00:00"), RunStatus::Succeeded),
        ]
    );
    let missed =
        h.scheduler.history(&RunQuery { statuses: vec![RunStatus::Missed], ..RunQuery::default() }).await.unwrap();
    assert_eq!(missed.len(), 5);
    for run in missed {
        assert_eq!(run.error.as_deref(), Some("coalesced into the run scheduled for 2026-01-01T05:00:00Z"));
    }
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
    let mut calls = h.calls();
    calls.sort_by_key(|c| c.scheduled_for);
    // 00:00 (the job was added at a fire time), 01:00, 02:00, 03:00: each
    // scheduled time once, all started at 03:00 when the scheduler resumed.
    let expected: Vec<Call> = ["00", "01", "02", "03"]
        .iter()
        .map(|hh| Call {
            job: "hourly".into(),
            at: at("03:00:00"),
            scheduled_for: at(&format!("{hh}:00:00")),
            attempt: 1,
        })
        .collect();
    assert_eq!(calls, expected);
    assert_eq!(
        h.history("hourly").await,
        expected.iter().map(|c| (c.scheduled_for, RunStatus::Succeeded)).collect::<Vec<_>>()
    );
}

/// A run takes its job's arguments: moved to the task when the claim gave
/// the job one run, shared when it gave it several (here four, uncoalesced).
#[tokio::test]
async fn every_run_gets_the_job_arguments() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let mut h = Harness::with_tasks(
        |tasks| {
            tasks.register("echo", move |ctx: JobContext| {
                s.lock().unwrap().push((ctx.job_id.to_string(), (*ctx.args).clone()));
                async { Ok::<_, std::io::Error>(()) }
            });
        },
        |b| b,
    );
    let args = serde_json::json!({"to": "ops", "n": [1, 2]});
    let every = Job::new("every", "echo", Trigger::cron("0 * * * *").unwrap()).unwrap().with_args(args.clone());
    h.add(every.with_coalesce(false).with_max_instances(10)).await;
    h.add(Job::new("once", "echo", Trigger::cron("30 * * * *").unwrap()).unwrap().with_args(args.clone())).await;
    h.scheduler.start().unwrap();
    h.scheduler.pause();
    h.wait_for("pause", |e| matches!(e, Event::SchedulerPaused)).await;
    h.advance(hours(3));
    h.scheduler.resume();
    // every: 00:00 to 03:00, four runs; once: 02:30 (the other half hours coalesced).
    h.wait_for_runs_to_finish(5).await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let expected: Vec<_> = ["every", "every", "every", "every", "once"].map(|j| (j.to_owned(), args.clone())).into();
    assert_eq!(seen, expected);
    // The stored job keeps them.
    assert_eq!(h.scheduler.get_job("every").await.unwrap().args, args);
}

/// A task may cancel its own token (a drop guard that stops its helpers
/// when it returns): that ends the task's own work, not its run.
#[tokio::test]
async fn a_task_that_cancels_its_own_token_still_succeeds() {
    let mut h = Harness::with_tasks(
        |tasks| {
            tasks.register("guarded", |ctx: JobContext| async move {
                let _stop_helpers = ctx.cancel.clone().drop_guard();
                Ok::<_, std::io::Error>(())
            });
        },
        |b| b,
    );
    h.add(Job::new("g", "guarded", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    let end =
        h.wait_for("the run's end", |e| matches!(e, Event::RunSucceeded { .. } | Event::RunCancelled { .. })).await;
    assert!(matches!(end, Event::RunSucceeded { .. }), "{end:?}");
    assert_eq!(h.last_run().await.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn times_past_the_misfire_grace_time_are_recorded_as_missed() {
    let mut h = Harness::new();
    let job =
        Job::new("hourly", "record", Trigger::cron("0 * * * *").unwrap()).unwrap().with_misfire_grace_time(mins(10));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.scheduler.pause();
    h.wait_for("pause", |e| matches!(e, Event::SchedulerPaused)).await;
    h.advance(hours(2) + mins(20));
    h.scheduler.resume();
    let events = h.wait_for_runs_to_finish(3).await;
    assert!(h.calls().is_empty(), "all three times are past the grace time");
    let reasons: Vec<(Timestamp, String)> = events
        .into_iter()
        .map(|e| match e {
            Event::RunMissed { scheduled_for, reason, .. } => (scheduled_for, reason),
            e => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (at("00:00:00"), "2h 20m late, past the misfire grace time of 10m".to_owned()),
            (at("01:00:00"), "1h 20m late, past the misfire grace time of 10m".to_owned()),
            (at("02:00:00"), "20m late, past the misfire grace time of 10m".to_owned()),
        ]
    );
    // On time, it runs.
    h.advance(mins(40));
    h.wait_for("the 03:00 run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    assert_eq!(h.calls().iter().map(|c| c.scheduled_for).collect::<Vec<_>>(), [at("03:00:00")]);
}

#[tokio::test]
async fn the_misfire_grace_time_is_inclusive_and_one_tick_past_it_is_missed() {
    let mut h = Harness::new();
    let job =
        Job::new("hourly", "record", Trigger::cron("0 * * * *").unwrap()).unwrap().with_misfire_grace_time(mins(10));
    h.add(job).await;
    // Exactly the grace time late: it runs.
    h.clock.set(at("00:10:00"));
    h.scheduler.start().unwrap();
    let e = h.next_run_event("the 00:00 run, exactly 10m late").await;
    assert!(matches!(e, Event::RunStarted { scheduled_for, .. } if scheduled_for == at("00:00:00")), "{e:?}");
    h.wait_for("its success", |e| matches!(e, Event::RunSucceeded { .. })).await;
    // A microsecond (the stores' tick) past it: missed.
    h.clock.set(at("01:10:00.000001"));
    let e = h.next_run_event("the 01:00 run, 10m 1µs late").await;
    let Event::RunMissed { scheduled_for, reason, .. } = e else { panic!("{e:?}") };
    assert_eq!((scheduled_for, reason.as_str()), (at("01:00:00"), "10m late, past the misfire grace time of 10m"));
    assert_eq!(
        h.history("hourly").await,
        [(at("00:00:00"), RunStatus::Succeeded), (at("01:00:00"), RunStatus::Missed)]
    );
}

#[tokio::test]
async fn max_instances_skips_a_run_while_one_is_going() {
    let mut h = Harness::new();
    h.add(Job::new("slow", "blocked", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    let e = h.wait_for("first start", |e| matches!(e, Event::RunStarted { .. })).await;
    let Event::RunStarted { run_id: first, .. } = e else { unreachable!() };
    h.advance(hours(1));
    let e = h.wait_for("the skip", |e| matches!(e, Event::RunSkipped { .. })).await;
    let Event::RunSkipped { reason, scheduled_for, .. } = e else { unreachable!() };
    assert_eq!(scheduled_for, at("02:00:00"));
    assert_eq!(reason, format!("max_instances (1) runs were already in progress: run {first}"));
    let skipped = h.last_run().await;
    assert_eq!(skipped.reason, Some(Reason::MaxInstances { max_instances: 1, in_flight: vec![first] }));
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
async fn max_instances_above_one_lets_that_many_overlap_then_skips() {
    let mut h = Harness::new();
    h.add(Job::new("slow", "blocked", Trigger::every("1h").unwrap()).unwrap().with_max_instances(2)).await;
    h.scheduler.start().unwrap();
    let mut started = Vec::new();
    for hour in ["01", "02"] {
        h.advance(hours(1));
        let e = h.next_run_event(&format!("the {hour}:00 start")).await;
        let Event::RunStarted { scheduled_for, run_id, .. } = e else { panic!("{e:?}") };
        assert_eq!(scheduled_for, at(&format!("{hour}:00:00")));
        started.push(run_id);
    }
    assert_eq!(h.blocked_now.load(Ordering::SeqCst), 2, "two runs of one job at once");
    assert_eq!(h.scheduler.running_here(), 2);
    h.advance(hours(1));
    let e = h.next_run_event("the 03:00 skip").await;
    let Event::RunSkipped { scheduled_for, reason, .. } = e else { panic!("{e:?}") };
    assert_eq!(scheduled_for, at("03:00:00"));
    assert!(reason.starts_with("max_instances (2) runs were already in progress: run "), "{reason}");
    let Some(Reason::MaxInstances { in_flight, .. }) = h.last_run().await.reason else { panic!("no reason") };
    let mut in_flight = in_flight;
    in_flight.sort();
    started.sort();
    assert_eq!(in_flight, started, "the skip names both runs in flight");
    h.gate.add_permits(2);
    h.wait_for_runs_to_finish(2).await;
    h.advance(hours(1));
    h.wait_for("the 04:00 start, with both slots free again", |e| matches!(e, Event::RunStarted { .. })).await;
    assert_eq!(
        h.history("slow").await,
        [
            (at("01:00:00"), RunStatus::Succeeded),
            (at("02:00:00"), RunStatus::Succeeded),
            (at("03:00:00"), RunStatus::Skipped),
            (at("04:00:00"), RunStatus::Running),
        ]
    );
}

#[tokio::test]
async fn max_concurrency_runs_one_at_a_time_and_the_rest_wait_their_turn() {
    let mut h = Harness::with(|b| b.max_concurrency(1));
    for id in ["a", "b", "c"] {
        h.add(Job::new(id, "blocked", Trigger::every("1h").unwrap()).unwrap()).await;
    }
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    // Each run starts only once the one before it has finished: no run
    // waits for a slot in vain, none is skipped or missed.
    let mut order = Vec::new();
    for i in 0..3 {
        let e = h.next_run_event(&format!("start {}", i + 1)).await;
        let Event::RunStarted { job_id, .. } = e else { panic!("run {i}: expected a start, got {e:?}") };
        order.push(format!("{job_id} started"));
        h.gate.add_permits(1);
        let e = h.next_run_event(&format!("success {}", i + 1)).await;
        let Event::RunSucceeded { job_id, .. } = e else { panic!("run {i}: expected a success, got {e:?}") };
        order.push(format!("{job_id} succeeded"));
    }
    assert_eq!(order, ["a started", "a succeeded", "b started", "b succeeded", "c started", "c succeeded"]);
    assert_eq!(h.blocked_max.load(Ordering::SeqCst), 1);
    for id in ["a", "b", "c"] {
        assert_eq!(h.history(id).await, [(at("01:00:00"), RunStatus::Succeeded)]);
    }
}

#[tokio::test]
async fn a_run_that_waits_does_not_hold_back_the_others_of_its_claim() {
    // "a" waits for a permit that only the run of "b" gives. One claim takes
    // both, "a" first, and one task starts that batch: it must leave "a" to
    // wait on a task of its own and go on to "b", or neither ever finishes.
    let gate = Arc::new(Semaphore::new(0));
    let (wait, open) = (Arc::clone(&gate), Arc::clone(&gate));
    let mut h = Harness::with_tasks(
        move |tasks| {
            tasks.register("wait", move |_ctx: JobContext| {
                let gate = Arc::clone(&wait);
                async move {
                    gate.acquire().await.unwrap().forget();
                    Ok::<_, std::io::Error>(())
                }
            });
            tasks.register("open", move |_ctx: JobContext| {
                open.add_permits(1);
                async { Ok::<_, std::io::Error>(()) }
            });
        },
        |b| b,
    );
    h.add(Job::new("a", "wait", Trigger::every("1h").unwrap()).unwrap()).await;
    h.add(Job::new("b", "open", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    let finished = h.wait_for_runs_to_finish(2).await;
    assert!(finished.iter().all(|e| matches!(e, Event::RunSucceeded { .. })), "{finished:?}");
    for id in ["a", "b"] {
        assert_eq!(h.history(id).await, [(at("01:00:00"), RunStatus::Succeeded)]);
    }
}

#[tokio::test]
async fn a_timeout_cancels_the_run_and_frees_its_slot() {
    let mut h = Harness::new();
    let job = Job::new("slow", "blocked", Trigger::every("1h").unwrap()).unwrap().with_timeout(mins(5));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("start", |e| matches!(e, Event::RunStarted { .. })).await;
    h.clock.wait_for_sleep_until("the run's timeout", at("01:05:00")).await;
    h.advance(mins(5));
    h.wait_for("timeout", |e| matches!(e, Event::RunTimedOut { will_retry: false, .. })).await;
    // The task saw its cancellation token and cleaned up before returning.
    assert_eq!(h.cleanups.load(Ordering::SeqCst), 1);
    // The slot is free for the next run.
    h.advance(mins(55));
    h.wait_for("the next start", |e| matches!(e, Event::RunStarted { .. })).await;
    let runs = h.scheduler.history(&RunQuery::default()).await.unwrap();
    let timed_out = runs.iter().find(|r| r.status == RunStatus::TimedOut).unwrap();
    assert_eq!(timed_out.error.as_deref(), Some("timed out after 5m"));
    assert_eq!(timed_out.reason, Some(Reason::TimedOut { after: mins(5) }));
    assert_eq!(timed_out.duration(), Some(mins(5)));
}

#[tokio::test]
async fn a_task_that_ignores_cancellation_gets_the_grace_period_then_is_aborted() {
    let mut h = Harness::with(|b| b.cancel_grace(secs(7)));
    let job = Job::new("stuck", "stubborn", Trigger::every("1h").unwrap()).unwrap().with_timeout(mins(1));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("start", |e| matches!(e, Event::RunStarted { .. })).await;
    h.clock.wait_for_sleep_until("the run's timeout", at("01:01:00")).await;
    h.advance(mins(1));
    // Timed out: cancelled, and given until 01:01:07 to return.
    h.clock.wait_for_sleep_until("the cancel grace period", at("01:01:07")).await;
    assert_eq!(h.aborted.load(Ordering::SeqCst), 0, "not aborted during its grace period");
    while let Ok(e) = h.events.try_recv() {
        assert!(!matches!(e, Event::RunTimedOut { .. }), "the timeout is recorded once the grace period is over");
    }
    h.advance(secs(7));
    h.wait_for("timeout", |e| matches!(e, Event::RunTimedOut { .. })).await;
    assert_eq!(h.aborted.load(Ordering::SeqCst), 1, "aborted once the grace period ended");
    let run = h.last_run().await;
    assert_eq!((run.status, run.error.as_deref()), (RunStatus::TimedOut, Some("timed out after 1m")));
    assert_eq!(run.finished_at, Some(at("01:01:07")));
    h.advance(hours(1));
    h.wait_for("the next run starts: the slot was freed", |e| matches!(e, Event::RunStarted { .. })).await;
}

#[tokio::test]
async fn retries_back_off_then_succeed_under_one_run_id() {
    let mut h = Harness::new();
    h.fails_left.store(2, Ordering::SeqCst);
    let job =
        Job::new("flaky", "flaky", Trigger::every("1h").unwrap()).unwrap().with_retry(RetryPolicy::new(3, secs(30)));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    let e = h.wait_for("first failure", |e| matches!(e, Event::RunFailed { .. })).await;
    let Event::RunFailed { attempt: 1, will_retry: true, run_id: first_id, .. } = e else { panic!("{e:?}") };
    h.clock.wait_for_sleep_until("the first backoff, 30s", at("01:00:30")).await;
    h.advance(secs(30));
    h.wait_for("second failure", |e| matches!(e, Event::RunFailed { attempt: 2, will_retry: true, .. })).await;
    // The second wait is twice the first.
    h.clock.wait_for_sleep_until("the second backoff, 60s", at("01:01:30")).await;
    h.advance(secs(60));
    let e = h.wait_for("success", |e| matches!(e, Event::RunSucceeded { .. })).await;
    let Event::RunSucceeded { run_id, .. } = e else { unreachable!() };
    assert_eq!(run_id, first_id);
    let run = h.last_run().await;
    assert_eq!((run.status, run.attempt, run.id), (RunStatus::Succeeded, 3, first_id));
    assert_eq!((run.started_at, run.finished_at), (Some(at("01:00:00")), Some(at("01:01:30"))));
}

#[tokio::test]
async fn a_run_cancelled_as_its_backoff_ends_is_not_tried_again() {
    let mut h = Harness::new();
    h.fails_left.store(5, Ordering::SeqCst);
    let job =
        Job::new("flaky", "flaky", Trigger::every("1h").unwrap()).unwrap().with_retry(RetryPolicy::new(3, secs(30)));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("first failure", |e| matches!(e, Event::RunFailed { attempt: 1, will_retry: true, .. })).await;
    h.clock.wait_for_sleep_until("the backoff", at("01:00:30")).await;
    // The backoff ends and the job is removed, cancelling its run, before
    // the run is polled again: the cancellation wins, no second attempt.
    h.advance(secs(30));
    h.scheduler.remove_job("flaky", RemoveMode::Cancel).await.unwrap();
    h.wait_for("the cancellation", |e| matches!(e, Event::RunCancelled { .. })).await;
    assert_eq!(h.fails_left.load(Ordering::SeqCst), 4, "a second attempt ran");
    let run = h.last_run().await;
    assert_eq!((run.status, run.attempt), (RunStatus::Cancelled, 1));
    assert_eq!(run.reason, Some(Reason::Cancelled { by: CancelledBy::JobRemoved, stage: Stage::WaitingToRetry }));
}

#[tokio::test]
async fn a_timed_out_attempt_is_retried() {
    let mut h = Harness::new();
    let job = Job::new("slow", "blocked", Trigger::every("1h").unwrap())
        .unwrap()
        .with_timeout(mins(5))
        .with_retry(RetryPolicy::new(2, secs(30)));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.clock.wait_for_sleep_until("attempt 1's timeout", at("01:05:00")).await;
    h.advance(mins(5));
    let e = h.next_run_event("attempt 1 start").await;
    let Event::RunStarted { attempt: 1, run_id, .. } = e else { panic!("{e:?}") };
    let e = h.next_run_event("attempt 1 times out").await;
    assert_eq!(e, Event::RunTimedOut { job_id: "slow".parse_id(), run_id, attempt: 1, will_retry: true });
    h.clock.wait_for_sleep_until("the backoff", at("01:05:30")).await;
    assert_eq!(h.last_run().await.status, RunStatus::Running, "waiting to retry");
    h.advance(secs(30));
    let e = h.next_run_event("attempt 2 start").await;
    assert_eq!(e, Event::RunStarted { job_id: "slow".parse_id(), run_id, scheduled_for: at("01:00:00"), attempt: 2 });
    h.gate.add_permits(1);
    let e = h.next_run_event("attempt 2 succeeds").await;
    assert!(matches!(e, Event::RunSucceeded { run_id: r, .. } if r == run_id), "{e:?}");
    let run = h.last_run().await;
    assert_eq!((run.id, run.status, run.attempt, run.error), (run_id, RunStatus::Succeeded, 2, None));
    let attempts: Vec<u32> = h.calls().iter().map(|c| c.attempt).collect();
    assert_eq!(attempts, [1, 2]);
}

#[tokio::test]
async fn retries_give_up_after_max_attempts() {
    let mut h = Harness::new();
    h.fails_left.store(10, Ordering::SeqCst);
    let job =
        Job::new("flaky", "flaky", Trigger::every("1h").unwrap()).unwrap().with_retry(RetryPolicy::new(2, secs(1)));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("first failure", |e| matches!(e, Event::RunFailed { attempt: 1, will_retry: true, .. })).await;
    h.clock.wait_for_sleep_until("the backoff", at("01:00:01")).await;
    h.advance(secs(1));
    h.wait_for("final failure", |e| matches!(e, Event::RunFailed { attempt: 2, will_retry: false, .. })).await;
    let run = h.last_run().await;
    assert_eq!((run.status, run.attempt, run.error.as_deref()), (RunStatus::Failed, 2, Some("attempt 2 failed")));
    let job = h.scheduler.get_job("flaky").await.unwrap();
    assert_eq!(job.state.last_status, Some(RunStatus::Failed));
}

#[tokio::test]
async fn jitter_delays_each_start_by_a_random_amount_within_its_bound() {
    let mut h = Harness::new();
    let jitter = secs(5);
    h.add(Job::new("j", "record", Trigger::every("1h").unwrap()).unwrap().with_jitter(jitter)).await;
    h.scheduler.start().unwrap();
    let mut delays = Vec::new();
    for i in 1..=40 {
        let due = ts(START) + hours(i);
        h.clock.set(due);
        // The executor sleeps until the start it drew, at most `jitter` after
        // the scheduled time (the loop's and heartbeat's sleeps end later).
        let start = h.clock.wait_for_sleeper("for the jitter", |t| t >= due && t <= due + jitter).await;
        assert_eq!(h.calls().len(), i as usize - 1, "run {i} waits out its jitter before starting");
        h.clock.set(start);
        h.wait_for("the run", |e| matches!(e, Event::RunSucceeded { .. })).await;
        let call = h.calls().pop().unwrap();
        assert_eq!((call.scheduled_for, call.at), (due, start), "run {i} started when its jitter ended");
        delays.push(start.duration_since(due));
    }
    // 40 uniform draws from [0, 5s]: they spread over most of the range.
    let (min, max) = (*delays.iter().min().unwrap(), *delays.iter().max().unwrap());
    assert!(max - min > jitter / 2, "jitter is drawn at random: {delays:?}");
    let run = h.last_run().await;
    assert_eq!(run.lateness(), delays.last().copied(), "lateness counts the jitter");
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
async fn a_task_that_panics_before_its_future_fails_its_run() {
    // The panic is in the handler's own code, before it returns a future
    // (parsing its arguments, say): the run fails as a panic of the task.
    let mut h = Harness::with_tasks(
        |tasks| {
            tasks.register("bad_args", |_ctx: JobContext| -> std::future::Ready<Result<(), std::io::Error>> {
                panic!("no such argument")
            });
        },
        |b| b,
    );
    h.add(Job::new("bad", "bad_args", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    let e = h.wait_for("the failure", |e| matches!(e, Event::RunFailed { .. })).await;
    let Event::RunFailed { error, .. } = e else { unreachable!() };
    assert_eq!(error, "the task panicked: no such argument");
    assert_eq!(h.history("bad").await, [(at("01:00:00"), RunStatus::Failed)]);
    assert_eq!(h.scheduler.running_here(), 0);
}

#[tokio::test]
async fn runs_of_a_batch_that_compute_long_go_on_in_another_task() {
    // "a" computes for 5 ms before its first await, more than a batch's task
    // goes on for: "b", in the same claim, is started by another task, which
    // another worker could take.
    let tasks_seen = Arc::new(Mutex::new(Vec::new()));
    let (sa, sb) = (Arc::clone(&tasks_seen), Arc::clone(&tasks_seen));
    let mut h = Harness::with_tasks(
        move |tasks| {
            tasks.register("compute", move |_ctx: JobContext| {
                std::thread::sleep(Duration::from_millis(5));
                sa.lock().unwrap().push(("a", tokio::task::id()));
                async { Ok::<_, std::io::Error>(()) }
            });
            tasks.register("quick", move |_ctx: JobContext| {
                sb.lock().unwrap().push(("b", tokio::task::id()));
                async { Ok::<_, std::io::Error>(()) }
            });
        },
        |b| b,
    );
    h.add(Job::new("a", "compute", Trigger::every("1h").unwrap()).unwrap()).await;
    h.add(Job::new("b", "quick", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for_runs_to_finish(2).await;
    let seen = tasks_seen.lock().unwrap().clone();
    let [("a", a), ("b", b)] = seen[..] else { panic!("{seen:?}") };
    assert_ne!(a, b, "both runs were started by one task");
}

#[tokio::test]
async fn blocking_tasks_run_on_the_blocking_pool() {
    // The test's runtime is single-threaded: a blocking task run inline would
    // run on this thread and stall the scheduler.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let mut h = Harness::with_tasks(
        move |tasks| {
            tasks.register_blocking("blocking", move |_ctx: JobContext| {
                let in_runtime = tokio::runtime::Handle::try_current().is_ok();
                s.lock().unwrap().push((std::thread::current().id(), in_runtime));
                Ok::<_, std::io::Error>(())
            });
        },
        |b| b,
    );
    h.add(Job::new("b", "blocking", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("the run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (thread, in_runtime) = seen[0];
    assert_ne!(thread, std::thread::current().id(), "not on the runtime's thread");
    assert!(in_runtime, "on one of tokio's threads (its blocking pool), not a thread of its own");
}

#[tokio::test]
async fn a_blocking_task_past_its_timeout_is_recorded_timed_out_while_its_thread_runs_on() {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    let mut h = Harness::with_tasks(
        move |tasks| {
            tasks.register_blocking("blocking", move |ctx: JobContext| {
                // Blocks its thread until the test releases it (10 s at most, so a
                // broken test cannot hang).
                let was_released = released.lock().unwrap().recv_timeout(Duration::from_secs(10)).is_ok();
                done_tx.send((was_released, ctx.is_cancelled())).unwrap();
                Ok::<_, std::io::Error>(())
            });
        },
        |b| b.cancel_grace(secs(7)),
    );
    h.add(Job::new("b", "blocking", Trigger::every("1h").unwrap()).unwrap().with_timeout(mins(1))).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("the start", |e| matches!(e, Event::RunStarted { .. })).await;
    h.clock.wait_for_sleep_until("the timeout", at("01:01:00")).await;
    h.advance(mins(1));
    h.clock.wait_for_sleep_until("the cancel grace period", at("01:01:07")).await;
    h.advance(secs(7));
    h.wait_for("the timeout", |e| matches!(e, Event::RunTimedOut { will_retry: false, .. })).await;
    let run = h.last_run().await;
    assert_eq!((run.status, run.error.as_deref()), (RunStatus::TimedOut, Some("timed out after 1m")));
    assert_eq!(run.finished_at, Some(at("01:01:07")));
    assert!(done.try_recv().is_err(), "the blocking thread cannot be stopped: it is still running");
    release.send(()).unwrap();
    let (was_released, cancelled) = within("the blocking task to return", done.recv()).await.unwrap();
    assert!(was_released && cancelled, "it ran until released, and its cancellation token had fired");
    assert_eq!(h.last_run().await.status, RunStatus::TimedOut, "its late return changes nothing");
}

#[tokio::test]
async fn pause_and_resume_a_job_without_a_storm_of_missed_runs() {
    let mut h = Harness::new();
    h.add(Job::new("hourly", "record", Trigger::cron("0 * * * *").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    let paused = h.scheduler.pause_job("hourly", "maintenance").await.unwrap();
    assert_eq!((paused.state.paused.as_deref(), paused.state.next_run_at), (Some("maintenance"), None));
    h.advance(hours(10) + mins(30));
    // The loop has come round at 10:30, found nothing due, and sleeps its longest.
    h.clock.wait_for_sleep_until("the loop, with nothing due", at("10:31:00")).await;
    assert_eq!(h.history("hourly").await, [], "nothing runs while the job is paused");
    let resumed = h.scheduler.resume_job("hourly").await.unwrap();
    assert_eq!(resumed.state.next_run_at, Some(at("11:00:00")));
    h.advance(mins(30));
    h.wait_for_runs_to_finish(1).await;
    assert_eq!(h.history("hourly").await, [(at("11:00:00"), RunStatus::Succeeded)]);
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
    assert_eq!(h.history("a").await, [(at("01:00:00"), RunStatus::Succeeded)]);
    assert_eq!(h.history("b").await, [(at("01:00:00"), RunStatus::Cancelled)]);
    let b = h.scheduler.history(&RunQuery { job_id: Some("b".parse_id()), ..RunQuery::default() }).await.unwrap();
    assert_eq!(b[0].reason, Some(Reason::Cancelled { by: CancelledBy::JobRemoved, stage: Stage::Running }));
    assert_eq!(b[0].error.as_deref(), Some("cancelled while running: its job was removed"));
}

#[tokio::test]
async fn shutdown_waits_for_running_jobs() {
    let mut h = Harness::new();
    h.add(Job::new("a", "blocked", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("start", |e| matches!(e, Event::RunStarted { .. })).await;
    let s = h.scheduler.clone();
    let mut shutdown = tokio::spawn(async move { s.shutdown(ShutdownMode::Wait(Duration::from_secs(3600))).await });
    // Shutdown has stopped the loop and waits, until 02:00 at most, for the run.
    h.clock.wait_for_sleep_until("shutdown's deadline", at("02:00:00")).await;
    assert!(!shutdown.is_finished());
    assert_eq!(h.scheduler.state(), SchedulerState::ShuttingDown);
    h.gate.add_permits(1);
    within("shutdown", &mut shutdown).await.unwrap();
    assert_eq!(h.scheduler.state(), SchedulerState::ShutDown);
    assert_eq!(h.history("a").await, [(at("01:00:00"), RunStatus::Succeeded)]);
    // Nothing runs after shutdown: no loop, no heartbeat, nothing waits on the clock.
    h.clock.wait_for_no_sleepers("every part of the scheduler to stop waiting on the clock").await;
    assert!(h.scheduler.nodes().await.unwrap().is_empty(), "the lease is ended");
    h.advance(hours(5));
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
    h.clock.wait_for_sleep_until("shutdown's deadline", at("01:00:30")).await;
    assert!(h.history("a").await.iter().all(|r| r.1 == RunStatus::Running), "not cancelled before the deadline");
    h.advance(secs(30));
    within("shutdown", shutdown).await.unwrap();
    assert_eq!(h.history("a").await, [(at("01:00:00"), RunStatus::Cancelled)]);
    assert_eq!(h.cleanups.load(Ordering::SeqCst), 1, "the task saw its cancellation");

    let mut h = Harness::new();
    h.add(Job::new("a", "blocked", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    h.wait_for("start", |e| matches!(e, Event::RunStarted { .. })).await;
    within("shutdown", h.scheduler.shutdown(ShutdownMode::Cancel)).await;
    assert_eq!(h.history("a").await, [(at("01:00:00"), RunStatus::Cancelled)]);
    let run = h.last_run().await;
    assert_eq!(run.finished_at, Some(at("01:00:00")), "cancelled at once");
    assert_eq!(run.reason, Some(Reason::Cancelled { by: CancelledBy::Shutdown, stage: Stage::Running }));
}

#[tokio::test]
async fn run_now_adds_one_run_and_leaves_the_schedule_alone() {
    let mut h = Harness::new();
    h.add(Job::new("daily", "record", Trigger::cron("0 9 * * *").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(2));
    let run = h.scheduler.run_job_now("daily").await.unwrap();
    h.wait_for("the manual run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    assert_eq!((run.kind, run.scheduled_for), (RunKind::Manual, at("02:00:00")));
    assert_eq!(h.calls().iter().map(|c| c.at).collect::<Vec<_>>(), [at("02:00:00")]);
    let job = h.scheduler.get_job("daily").await.unwrap();
    assert_eq!(job.state.next_run_at, Some(at("09:00:00")));
    assert!(h.scheduler.run_job_now("nope").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn paused_jobs_can_be_run_by_hand() {
    let mut h = Harness::new();
    h.add(Job::new("daily", "record", Trigger::cron("0 9 * * *").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.scheduler.pause_job("daily", "holiday").await.unwrap();
    h.advance(hours(2));
    let run = h.scheduler.run_job_now("daily").await.expect("a paused job runs by hand");
    assert_eq!((run.kind, run.scheduled_for), (RunKind::Manual, at("02:00:00")));
    let e = h.wait_for("the manual run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    assert!(matches!(e, Event::RunSucceeded { run_id, .. } if run_id == run.id), "{e:?}");
    assert_eq!(h.history("daily").await, [(at("02:00:00"), RunStatus::Succeeded)]);
    // Still paused, its schedule untouched.
    let job = h.scheduler.get_job("daily").await.unwrap();
    assert_eq!((job.state.paused.as_deref(), job.state.next_run_at), (Some("holiday"), None));
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
    let times: Vec<Timestamp> = h.calls().iter().map(|c| c.at).collect();
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
    assert_eq!((all.runs.runs, all.runs.succeeded, all.runs_window), (101, 101, 101));
}

#[tokio::test]
async fn scheduler_stats_cover_the_newest_runs_only() {
    // Eleven jobs a second behind by 1,000 s: each claim records its 1,000
    // newest due times (999 missed, one run), 11,000 runs in all.
    let keep_all = |b: chime_core::SchedulerBuilder| {
        b.store(chime_core::MemoryStore::with_history_limit(10_000)).history_retention(10_000, None)
    };
    let h = Harness::with(keep_all);
    for i in 0..11 {
        h.add(Job::new(&format!("j{i}"), "record", Trigger::every("1s").unwrap()).unwrap()).await;
    }
    h.advance(SignedDuration::from_secs(1_000));
    h.scheduler.start().unwrap();
    // (Polled, not awaited as events: 11,000 of them overflow the channel.)
    let everything = RunQuery { limit: Some(usize::MAX), ..RunQuery::default() };
    within("every job's run", async {
        while h.scheduler.history(&everything).await.unwrap().iter().filter(|r| r.status.is_finished()).count() < 11_000
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let all = h.scheduler.scheduler_stats().await.unwrap();
    assert_eq!(all.runs_window, chime_core::STATS_WINDOW);
    assert_eq!(all.runs.runs, chime_core::STATS_WINDOW as u64);
    assert_eq!(all.runs.succeeded, 11, "every job's one run is among the newest");
    assert_eq!(all.runs.missed, chime_core::STATS_WINDOW as u64 - 11);
}

#[tokio::test]
async fn every_decision_is_an_event_and_a_history_row_in_order() {
    let mut h = Harness::new();
    h.add(Job::new("j", "record", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    let events = h.events_until("the run's success", |e| matches!(e, Event::RunSucceeded { .. })).await;
    let run = h.last_run().await;
    let j = || "j".parse_id();
    assert_eq!(
        events,
        [
            Event::JobAdded { job_id: j() },
            Event::SchedulerStarted,
            Event::RunStarted { job_id: j(), run_id: run.id, scheduled_for: at("01:00:00"), attempt: 1 },
            Event::RunSucceeded { job_id: j(), run_id: run.id, duration: SignedDuration::ZERO },
        ]
    );
    assert_eq!((run.status, run.node.as_deref(), run.attempt), (RunStatus::Succeeded, Some("test"), 1));
    assert_eq!((run.started_at, run.finished_at), (Some(at("01:00:00")), Some(at("01:00:00"))));
    assert_eq!(run.lateness(), Some(SignedDuration::ZERO));
    within("shutdown", h.scheduler.shutdown(ShutdownMode::Cancel)).await;
    let events = h.events_until("the shutdown", |e| matches!(e, Event::SchedulerShutDown)).await;
    assert_eq!(events, [Event::SchedulerShutDown], "nothing between the run and the shutdown");
}

#[tokio::test]
async fn a_retried_run_reports_each_attempt_in_order_and_is_recorded_as_it_goes() {
    let mut h = Harness::new();
    h.fails_left.store(1, Ordering::SeqCst);
    let job = Job::new("f", "flaky", Trigger::every("1h").unwrap()).unwrap().with_retry(RetryPolicy::new(2, secs(10)));
    h.add(job).await;
    h.scheduler.start().unwrap();
    h.wait_for("the start", |e| matches!(e, Event::SchedulerStarted)).await;
    h.advance(hours(1));
    let first = h.events_until("attempt 1's failure", |e| matches!(e, Event::RunFailed { .. })).await;
    // While it waits to retry, the run is still running.
    h.clock.wait_for_sleep_until("the backoff", at("01:00:10")).await;
    let run = h.last_run().await;
    assert_eq!((run.status, run.attempt), (RunStatus::Running, 1));
    h.advance(secs(10));
    let second = h.events_until("the success", |e| matches!(e, Event::RunSucceeded { .. })).await;
    let (f, id) = ("f".parse_id(), run.id);
    assert_eq!(
        first,
        [
            Event::RunStarted { job_id: f.clone(), run_id: id, scheduled_for: at("01:00:00"), attempt: 1 },
            Event::RunFailed {
                job_id: f.clone(),
                run_id: id,
                attempt: 1,
                error: "attempt 1 failed".into(),
                will_retry: true
            },
        ]
    );
    assert_eq!(
        second,
        [
            Event::RunStarted { job_id: f.clone(), run_id: id, scheduled_for: at("01:00:00"), attempt: 2 },
            Event::RunSucceeded { job_id: f, run_id: id, duration: SignedDuration::ZERO },
        ]
    );
    let run = h.last_run().await;
    assert_eq!((run.status, run.attempt, run.error), (RunStatus::Succeeded, 2, None));
}

#[tokio::test]
async fn the_scheduler_prunes_history_older_than_history_max_age() {
    let mut h = Harness::with(|b| b.history_retention(1000, Some(mins(30))));
    h.add(Job::new("j", "record", Trigger::every("10m").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    for _ in 0..5 {
        h.run_next("j").await;
    }
    let times =
        |hh_mm: &[&str]| hh_mm.iter().map(|t| (at(&format!("{t}:00")), RunStatus::Succeeded)).collect::<Vec<_>>();
    // At 00:50, the loop pruned, before claiming, what was older than 00:20.
    assert_eq!(h.history("j").await, times(&["00:20", "00:30", "00:40", "00:50"]));
    // At 01:00 (every 10 minutes) it prunes what is older than 00:30.
    h.run_next("j").await;
    assert_eq!(h.history("j").await, times(&["00:30", "00:40", "00:50", "01:00"]));
}

#[tokio::test]
async fn the_scheduler_keeps_at_most_keep_per_job_runs() {
    let mut h = Harness::with(|b| b.history_retention(2, None));
    h.add(Job::new("j", "record", Trigger::every("10m").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    for _ in 0..6 {
        h.run_next("j").await;
    }
    let times =
        |hh_mm: &[&str]| hh_mm.iter().map(|t| (at(&format!("{t}:00")), RunStatus::Succeeded)).collect::<Vec<_>>();
    // Pruned to 2 at 01:00 before the claim, then the 01:00 run added.
    assert_eq!(h.history("j").await, times(&["00:40", "00:50", "01:00"]));
}

#[tokio::test]
async fn history_is_trimmed_every_ten_seconds_between_full_prunes() {
    let mut h = Harness::with(|b| b.history_retention(3, None));
    h.add(Job::new("j", "record", Trigger::every("1s").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    // 90 runs, all within the first full prune's ten minutes.
    let mut most = 0;
    for _ in 0..90 {
        h.run_next("j").await;
        most = most.max(h.history("j").await.len());
    }
    // Claimed jobs are trimmed every 10 s: at most 3 kept plus 10 s of runs,
    // never the 90 a ten-minute prune would let pile up.
    assert!((4..=14).contains(&most), "history grew to {most} runs");
    assert!(h.history("j").await.len() <= 14);
}

#[tokio::test]
async fn why_names_the_run_that_blocks_the_skips_and_says_when_the_job_is_paused() {
    let mut h = Harness::new();
    h.add(Job::new("slow", "blocked", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    h.advance(hours(1));
    let e = h.wait_for("the 01:00 start", |e| matches!(e, Event::RunStarted { .. })).await;
    let Event::RunStarted { run_id: stuck, .. } = e else { unreachable!() };
    for hour in ["02", "03"] {
        h.advance(hours(1));
        h.wait_for(&format!("the {hour}:00 skip"), |e| matches!(e, Event::RunSkipped { .. })).await;
    }
    h.advance(mins(12));
    let why = h.scheduler.why("slow", at("00:00:00")).await.unwrap();
    assert_eq!(
        why.answer,
        format!(
            "the last 2 runs (the latest scheduled for {}) were skipped because run {stuck} has been running for 2h 12m; next at {}",
            at("03:00:00"),
            at("04:00:00")
        )
    );
    use chime_core::why::Outcome;
    let outcomes: Vec<Outcome> = why.times.iter().map(|t| t.outcome).collect();
    assert_eq!(outcomes, [Outcome::Running, Outcome::Skipped, Outcome::Skipped, Outcome::NotYetDue]);

    // Paused: the times since are named as such, with the reason.
    h.gate.add_permits(1);
    h.wait_for("the stuck run to end", |e| matches!(e, Event::RunSucceeded { .. })).await;
    h.scheduler.pause_job("slow", "maintenance").await.unwrap();
    h.advance(hours(2));
    let why = h.scheduler.why("slow", at("00:00:00")).await.unwrap();
    assert!(why.answer.starts_with("the last 2 scheduled times"), "{}", why.answer);
    assert!(why.answer.contains("did not run: the job is paused (maintenance)"), "{}", why.answer);
    assert!(h.scheduler.why("slow", at("23:00:00")).await.unwrap_err().is_invalid(), "a window from the future");
    assert!(h.scheduler.why("nope", at("00:00:00")).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn a_backfill_runs_the_gaps_oldest_first_with_their_scheduled_times_within_max_instances() {
    let mut h = Harness::new();
    h.add(Job::new("hourly", "record", Trigger::every("1h").unwrap()).unwrap()).await;
    h.scheduler.start().unwrap();
    // 01:00 runs; 02:00 was missed (its row inserted by hand), 03:00 is
    // coalesced into 04:00.
    h.run_next("hourly").await;
    let store = h.scheduler.store();
    let node: Arc<str> = Arc::from("gone");
    let id = "hourly".parse_id();
    let missed = chime_core::Run::not_run(
        id.clone(),
        at("02:00:00"),
        RunStatus::Missed,
        Reason::PastGrace { late: mins(70), grace: mins(10) },
        &node,
        at("03:10:00"),
    );
    store.insert_run(missed.clone()).await.unwrap();
    h.advance(hours(3));
    // At 04:00 the loop coalesces 03:00 into 04:00 (02:00 already has its row).
    h.wait_for(
        "the 04:00 start",
        |e| matches!(e, Event::RunStarted { scheduled_for, .. } if *scheduled_for == at("04:00:00")),
    )
    .await;
    h.wait_for("the 04:00 run", |e| matches!(e, Event::RunSucceeded { .. })).await;
    h.advance(mins(30));

    let plan = h.scheduler.backfill_plan("hourly", at("00:30:00"), None, false).await.unwrap();
    assert_eq!(plan, [at("02:00:00"), at("03:00:00")], "the missed and the coalesced time");
    let only = h.scheduler.backfill_plan("hourly", at("00:30:00"), Some(at("02:30:00")), true).await.unwrap();
    assert_eq!(only, [at("02:00:00")], "--until bounds the window");
    let e = h.scheduler.backfill_plan("hourly", at("03:00:00"), Some(at("02:00:00")), false).await.unwrap_err();
    assert!(e.is_invalid() && e.to_string().contains("is before --since"), "{e}");

    let queued = within("the backfill", h.scheduler.backfill("hourly", &plan, Duration::from_secs(30))).await.unwrap();
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[0].id, missed.id, "the missed time runs under its own run id: its idempotency key");
    for t in ["02:00:00", "03:00:00"] {
        h.wait_for(
            &format!("the backfill of {t}"),
            |e| matches!(e, Event::RunStarted { scheduled_for, .. } if *scheduled_for == at(t)),
        )
        .await;
        h.wait_for("its success", |e| matches!(e, Event::RunSucceeded { .. })).await;
    }
    let calls: Vec<Timestamp> = h.calls().iter().map(|c| c.scheduled_for).collect();
    assert_eq!(
        calls,
        [at("01:00:00"), at("04:00:00"), at("02:00:00"), at("03:00:00")],
        "oldest first, with their own times"
    );
    let runs = h.scheduler.history(&RunQuery { job_id: Some(id), ..RunQuery::default() }).await.unwrap();
    let kinds: Vec<(Timestamp, RunKind, RunStatus)> =
        runs.iter().rev().map(|r| (r.scheduled_for, r.kind, r.status)).collect();
    assert_eq!(
        kinds,
        [
            (at("01:00:00"), RunKind::Scheduled, RunStatus::Succeeded),
            (at("02:00:00"), RunKind::Backfill, RunStatus::Succeeded),
            (at("03:00:00"), RunKind::Backfill, RunStatus::Succeeded),
            (at("04:00:00"), RunKind::Scheduled, RunStatus::Succeeded),
        ]
    );
    assert!(h.scheduler.backfill_plan("hourly", at("00:30:00"), None, false).await.unwrap().is_empty(), "nothing left");
}

#[tokio::test]
async fn an_alert_runs_its_on_alert_job_once_with_the_alert_and_again_only_after_a_success() {
    let notices: Arc<Mutex<Vec<chime_core::AlertNotice>>> = Arc::default();
    let seen = Arc::clone(&notices);
    let mut h = Harness::with_tasks(
        move |tasks| {
            tasks.register("notify", move |ctx: JobContext| {
                seen.lock().unwrap().extend(ctx.alert.as_deref().cloned());
                async { Ok::<_, std::io::Error>(()) }
            });
        },
        |b| b,
    );
    h.fails_left.store(4, Ordering::SeqCst);
    let flaky = Job::new("flaky", "flaky", Trigger::every("10m").unwrap())
        .unwrap()
        .with_alert_on_failures(2)
        .with_on_alert("pager")
        .unwrap();
    h.add(flaky).await;
    h.add(Job::new("pager", "notify", Trigger::at(at("23:00:00"))).unwrap()).await;
    h.scheduler.start().unwrap();
    let failure = |e: &Event| matches!(e, Event::RunFailed { job_id, .. } if job_id.as_str() == "flaky");
    let hook_ran = |e: &Event| matches!(e, Event::RunSucceeded { job_id, .. } if job_id.as_str() == "pager");
    for t in ["00:10:00", "00:20:00"] {
        h.clock.set(at(t));
        h.wait_for(&format!("the {t} failure"), failure).await;
    }
    // The loop looks for alerts once a minute: the hook runs within one.
    h.clock.set(at("00:21:00"));
    h.wait_for("the pager run", hook_ran).await;
    {
        let notices = notices.lock().unwrap();
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].job_id.as_str(), "flaky");
        assert!(notices[0].reason.starts_with("2 consecutive failures (alert_on_failures 2)"), "{:?}", notices[0]);
        assert_eq!(notices[0].last_error.as_deref(), Some("attempt 1 failed"));
    }
    // Two more failures and minutes of checks: the same alert, no second notice.
    for t in ["00:30:00", "00:40:00"] {
        h.clock.set(at(t));
        h.wait_for(&format!("the {t} failure"), failure).await;
    }
    for minute in 41..46 {
        h.clock.set(at(&format!("00:{minute}:00")));
        let next = at(&format!("00:{}:00", minute + 1));
        h.clock.wait_for_sleep_until("the loop, after its alert check", next).await;
    }
    assert_eq!(notices.lock().unwrap().len(), 1, "one notice per alert, not per check");
    let pager =
        h.scheduler.history(&RunQuery { job_id: Some("pager".parse_id()), ..RunQuery::default() }).await.unwrap();
    assert_eq!(pager.len(), 1);
    assert_eq!(pager[0].kind, RunKind::Alert);
    assert!(
        matches!(&pager[0].reason, Some(Reason::Alert(n)) if n.job_id.as_str() == "flaky"),
        "{:?}",
        pager[0].reason
    );

    // A success ends the alert; two new failures are a new alert, notified again.
    h.clock.set(at("00:50:00"));
    h.wait_for("the success", |e| matches!(e, Event::RunSucceeded { job_id, .. } if job_id.as_str() == "flaky")).await;
    h.fails_left.store(2, Ordering::SeqCst);
    for t in ["01:00:00", "01:10:00"] {
        h.clock.set(at(t));
        h.wait_for(&format!("the {t} failure"), failure).await;
    }
    h.clock.set(at("01:11:00"));
    h.wait_for("the second pager run", hook_ran).await;
    assert_eq!(notices.lock().unwrap().len(), 2);

    // A paused hook is silenced: a third alert runs nothing.
    h.scheduler.pause_job("pager", "quiet hours").await.unwrap();
    h.fails_left.store(0, Ordering::SeqCst);
    h.clock.set(at("01:20:00"));
    h.wait_for("a success", |e| matches!(e, Event::RunSucceeded { job_id, .. } if job_id.as_str() == "flaky")).await;
    h.fails_left.store(2, Ordering::SeqCst);
    for t in ["01:30:00", "01:40:00"] {
        h.clock.set(at(t));
        h.wait_for(&format!("the {t} failure"), failure).await;
    }
    for minute in 41..44 {
        h.clock.set(at(&format!("01:{minute}:00")));
        h.clock.wait_for_sleep_until("the loop, after its alert check", at(&format!("01:{}:00", minute + 1))).await;
    }
    assert_eq!(notices.lock().unwrap().len(), 2, "the paused hook did not run");
}
