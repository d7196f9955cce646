//! `/metrics` tells the truth about failures and forgets removed jobs: a run
//! that fails or times out has a duration like a success, and a removed job's
//! series disappear from the scrape.

mod support;

use support::get_until;

use std::time::Duration;

use chime_core::{ConflictPolicy, Event, Job, JobContext, ManualClock, Scheduler, TaskRegistry, Trigger};

#[tokio::test]
async fn failed_runs_have_durations_and_removed_jobs_leave_no_series() {
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let mut tasks = TaskRegistry::new();
    tasks.register("fails", |_ctx: JobContext| async { Err::<(), _>(std::io::Error::other("boom")) });
    let s = Scheduler::builder().tasks(tasks).clock(clock.clone()).timezone("UTC").unwrap().node_id("m").build();
    let app = chime_web::router(chime_web::Handle::new(s.clone()));
    s.add_job(Job::new("broken-job", "fails", Trigger::every("1m").unwrap()).unwrap(), ConflictPolicy::Error)
        .await
        .unwrap();
    let mut events = s.subscribe();
    s.start().unwrap();
    for _ in 0..2 {
        clock.advance(Duration::from_secs(60));
        tokio::time::timeout(Duration::from_secs(10), async {
            while !matches!(events.recv().await.unwrap(), Event::RunFailed { .. }) {}
        })
        .await
        .expect("a run that fails");
    }
    let (_, text) = get_until(&app, "/metrics", "two failed runs", |_, t| {
        t.contains("chime_runs_total{job=\"broken-job\",status=\"failed\"} 2")
    })
    .await;
    assert!(text.contains("chime_run_duration_seconds_count{job=\"broken-job\"} 2"), "{text}");
    assert!(text.contains("chime_run_lateness_seconds_count{job=\"broken-job\"} 2"), "{text}");

    s.remove_job("broken-job", chime_core::RemoveMode::Cancel).await.unwrap();
    let (_, text) =
        get_until(&app, "/metrics", "the removed job's series gone", |_, t| !t.contains("broken-job")).await;
    assert!(text.contains("chime_run_duration_seconds histogram"), "the metric stays, without the job: {text}");
}
