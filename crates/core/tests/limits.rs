//! What a scheduler refuses to schedule, each with an error naming the
//! problem: intervals too short or too long, triggers that never fire,
//! options out of range, combinations too large or too deep.

use chime_core::{
    ConflictPolicy, Job, JobContext, JobOptions, ManualClock, RetryPolicy, Scheduler, TaskRegistry, Trigger,
};
use jiff::{SignedDuration, Timestamp};

fn scheduler(configure: impl FnOnce(chime_core::SchedulerBuilder) -> chime_core::SchedulerBuilder) -> Scheduler {
    let mut tasks = TaskRegistry::new();
    tasks.register("t", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    configure(Scheduler::builder().tasks(tasks).clock(clock).timezone("UTC").unwrap()).build()
}

async fn add(s: &Scheduler, trigger: Trigger) -> Result<Job, chime_core::Error> {
    s.add_job(Job::new("j", "t", trigger)?, ConflictPolicy::Replace).await
}

#[tokio::test]
async fn intervals_below_the_minimum_are_refused_unless_asked_for() {
    let s = scheduler(|b| b);
    let e = add(&s, Trigger::every("1ns").unwrap()).await.unwrap_err();
    assert!(
        e.is_invalid() && e.to_string().contains("an interval of 1ns is shorter than the shortest accepted, 1ms"),
        "{e}"
    );
    let e = add(&s, Trigger::every("500ms").unwrap()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "job \"j\": an interval of 500ms is shorter than this scheduler's minimum of 1s (SchedulerBuilder::min_interval)"
    );
    assert!(add(&s, Trigger::every("1s").unwrap()).await.is_ok(), "the minimum itself is accepted");
    let inner = Trigger::any(vec![Trigger::cron("0 9 * * *").unwrap(), Trigger::every("10ms").unwrap()]);
    assert!(add(&s, inner).await.unwrap_err().to_string().contains("10ms is shorter"), "inside a combination too");
    assert!(s.reschedule_job("j", Trigger::every("100ms").unwrap()).await.unwrap_err().to_string().contains("100ms"));

    // Parts each long enough, offset so that together they fire every 1.25 ms.
    let start: Timestamp = "2026-01-01T00:00:01Z".parse().unwrap();
    let offset = |i: i64| Trigger::every("1s").unwrap().with_start(start + SignedDuration::from_micros(1_250 * i));
    let flood = Trigger::any((0..100).map(offset).collect());
    let e = add(&s, flood.clone()).await.unwrap_err();
    assert!(e.is_invalid() && e.to_string().contains("fires twice within 1ms 250µs"), "{e}");
    assert!(s.reschedule_job("j", flood).await.unwrap_err().to_string().contains("fires twice within"));
    let every_2s = |from: Timestamp| Trigger::every("2s").unwrap().with_start(from);
    let spread = Trigger::any(vec![every_2s(start), every_2s(start + SignedDuration::from_secs(1))]);
    assert!(add(&s, spread).await.is_ok(), "two 2s parts a second apart fire every second: the minimum");
    let close = Trigger::any(vec![every_2s(start), every_2s(start + SignedDuration::from_millis(500))]);
    assert!(add(&s, close).await.unwrap_err().to_string().contains("fires twice within 500ms"));

    let fast = scheduler(|b| b.min_interval(SignedDuration::from_millis(5)).unwrap());
    assert!(add(&fast, Trigger::every("5ms").unwrap()).await.is_ok(), "a library user may ask for 5ms");
    let e = Scheduler::builder().min_interval(std::time::Duration::from_micros(10)).unwrap_err();
    assert!(e.to_string().contains("below the floor of 1ms"), "{e}");
}

#[tokio::test]
async fn nothing_is_silently_finished() {
    let s = scheduler(|b| b);
    let e = add(&s, Trigger::every("80000000h").unwrap()).await.unwrap_err();
    assert!(e.to_string().contains("is longer than the longest accepted, 87600h"), "{e}");
    let ended = Trigger::every("1h").unwrap().with_end("2025-01-01T00:00:00Z".parse::<Timestamp>().unwrap());
    let e = add(&s, ended).await.unwrap_err();
    assert!(e.to_string().contains("has no fire time after 2026-01-01T00:00:00Z"), "{e}");
    assert!(s.jobs().await.unwrap().is_empty(), "nothing was stored");
}

#[tokio::test]
async fn options_out_of_range_are_refused() {
    let s = scheduler(|b| b);
    let job = |o: JobOptions| Job::new("o", "t", Trigger::every("1h").unwrap()).unwrap().with_options(o);
    for (options, why) in [
        (JobOptions { max_instances: 20_000, ..JobOptions::default() }, "max_instances must be between 1 and 10000"),
        (
            JobOptions { timeout: Some(SignedDuration::from_hours(24 * 4000)), ..JobOptions::default() },
            "timeout 96000h is longer than the longest accepted, 87600h",
        ),
        (
            JobOptions {
                retry: Some(Box::new(RetryPolicy::new(5000, SignedDuration::from_secs(1)))),
                ..JobOptions::default()
            },
            "retry.max_attempts must be between 1 and 1000",
        ),
    ] {
        let e = s.add_job(job(options), ConflictPolicy::Replace).await.unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }
}

#[tokio::test]
async fn combinations_are_bounded() {
    let s = scheduler(|b| b);
    let wide = Trigger::any((0..101).map(|_| Trigger::cron("0 9 * * *").unwrap()).collect());
    assert!(add(&s, wide).await.unwrap_err().to_string().contains("holds 101 triggers; at most 100"));
    let mut deep = Trigger::cron("0 9 * * *").unwrap();
    for _ in 0..9 {
        deep = Trigger::any(vec![deep]);
    }
    assert!(add(&s, deep).await.unwrap_err().to_string().contains("nest at most 8 deep"));
}
