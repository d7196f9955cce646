//! `/metrics` tells the truth about failures and forgets removed jobs: a run
//! that fails or times out has a duration like a success, a removed job's
//! series disappear from the scrape (and no other job's), each job's last
//! success has an age, and every handle keeps figures of its own.

mod support;

use support::get_until;

use std::time::Duration;

use chime_core::{
    ConflictPolicy, Event, Job, JobContext, JobStore, ManualClock, MemoryStore, Run, RunKind, RunStatus, Scheduler,
    TaskRegistry, Trigger,
};

fn tasks() -> TaskRegistry {
    let mut tasks = TaskRegistry::new();
    tasks.register("fails", |_ctx: JobContext| async { Err::<(), _>(std::io::Error::other("boom")) });
    tasks.register("noop", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    tasks
}

fn scheduler(clock: &ManualClock, node: &str) -> Scheduler {
    Scheduler::builder().tasks(tasks()).clock(clock.clone()).timezone("UTC").unwrap().node_id(node).build()
}

/// Advances the clock a minute at a time until `n` runs have ended.
async fn run_minutes(clock: &ManualClock, events: &mut tokio::sync::broadcast::Receiver<Event>, n: usize) {
    for _ in 0..n {
        clock.advance(Duration::from_secs(60));
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match events.recv().await.unwrap() {
                    Event::RunFailed { will_retry: false, .. } | Event::RunSucceeded { .. } => break,
                    _ => {}
                }
            }
        })
        .await
        .expect("a run that ends");
    }
}

/// The value of the sample `line_start` (its name and labels, as written).
fn value(text: &str, line_start: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn failed_runs_have_durations_and_removed_jobs_leave_no_series() {
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let s = scheduler(&clock, "m");
    let app = chime_web::router(chime_web::Handle::new(s.clone()));
    s.add_job(Job::new("broken-job", "fails", Trigger::every("2m").unwrap()).unwrap(), ConflictPolicy::Error)
        .await
        .unwrap();
    // A quote and a backslash in an id are escaped in its label.
    s.add_job(Job::new("fine \"job\" \\x", "noop", Trigger::every("2m").unwrap()).unwrap(), ConflictPolicy::Error)
        .await
        .unwrap();
    s.start().unwrap();
    // Both jobs run every two minutes: four minutes, two runs each.
    let fine = "job_id=\"fine \\\"job\\\" \\\\x\"";
    let mut text = String::new();
    for n in 1..=2 {
        clock.advance(Duration::from_secs(120));
        text = get_until(&app, "/metrics", "a run of each job", |_, t| {
            t.contains(&format!("chime_runs_total{{job_id=\"broken-job\",status=\"failed\"}} {n}\n"))
                && t.contains(&format!("chime_runs_total{{{fine},status=\"succeeded\"}} {n}\n"))
        })
        .await
        .1;
    }
    assert_eq!(value(&text, "chime_run_duration_seconds_count{job_id=\"broken-job\"}"), Some(2.0), "{text}");
    assert_eq!(value(&text, "chime_run_lateness_seconds_count{job_id=\"broken-job\"}"), Some(2.0), "{text}");
    assert_eq!(value(&text, &format!("chime_run_duration_seconds_count{{{fine}}}")), Some(2.0), "{text}");
    assert!(text.contains("# TYPE chime_run_duration_seconds histogram\n"), "{text}");
    assert!(text.contains("# TYPE chime_runs_total counter\n"), "{text}");
    // A job that never succeeded has no last-success age; the other's last
    // success finished at 00:04, now.
    assert_eq!(value(&text, "chime_job_last_success_age_seconds{job_id=\"broken-job\"}"), None, "{text}");
    assert_eq!(value(&text, &format!("chime_job_last_success_age_seconds{{{fine}}}")), Some(0.0), "{text}");
    clock.advance(Duration::from_secs(90));
    let (_, text) = get_until(&app, "/metrics", "the age grown with the clock", |_, t| {
        value(t, &format!("chime_job_last_success_age_seconds{{{fine}}}")) == Some(90.0)
    })
    .await;
    assert_eq!(value(&text, "chime_job_last_success_age_seconds{job_id=\"broken-job\"}"), None, "{text}");

    s.remove_job("broken-job", chime_core::RemoveMode::Cancel).await.unwrap();
    let (_, text) =
        get_until(&app, "/metrics", "the removed job's series gone", |_, t| !t.contains("broken-job")).await;
    assert!(
        text.contains(&format!("chime_runs_total{{{fine},status=\"succeeded\"}} 2")),
        "the other job stays: {text}"
    );
    assert_eq!(value(&text, &format!("chime_run_duration_seconds_count{{{fine}}}")), Some(2.0), "{text}");
    s.shutdown(chime_core::ShutdownMode::Cancel).await;
}

#[tokio::test]
async fn the_last_success_is_read_from_the_store_at_start() {
    let clock = ManualClock::new("2026-01-01T12:00:00Z".parse().unwrap());
    let store: std::sync::Arc<dyn JobStore> = std::sync::Arc::new(MemoryStore::new());
    let s = Scheduler::builder()
        .tasks(tasks())
        .shared_store(std::sync::Arc::clone(&store))
        .clock(clock.clone())
        .timezone("UTC")
        .unwrap()
        .node_id("m")
        .build();
    s.add_job(Job::new("nightly", "noop", Trigger::cron("0 3 * * *").unwrap()).unwrap(), ConflictPolicy::Error)
        .await
        .unwrap();
    s.add_job(Job::new("never", "noop", Trigger::cron("0 3 * * *").unwrap()).unwrap(), ConflictPolicy::Error)
        .await
        .unwrap();
    // Yesterday's succeeded run, finished at 03:00:10, and an older one; a
    // failure after them does not count as a success.
    let id = chime_core::JobId::new("nightly").unwrap();
    for (day, status) in [("2025-12-30", RunStatus::Succeeded), ("2025-12-31", RunStatus::Succeeded)] {
        let at: jiff::Timestamp = format!("{day}T03:00:00Z").parse().unwrap();
        let mut run = Run::pending(id.clone(), at, RunKind::Scheduled, &std::sync::Arc::from("old"));
        run.status = status;
        run.attempt = 1;
        run.started_at = Some(at);
        run.finished_at = Some(at + jiff::SignedDuration::from_secs(10));
        store.insert_run(run).await.unwrap();
    }
    let mut failed =
        Run::pending(id, "2026-01-01T03:00:00Z".parse().unwrap(), RunKind::Scheduled, &std::sync::Arc::from("old"));
    failed.status = RunStatus::Failed;
    failed.finished_at = Some("2026-01-01T03:00:05Z".parse().unwrap());
    store.insert_run(failed).await.unwrap();

    let app = chime_web::router(chime_web::Handle::new(s.clone()));
    // 2025-12-31T03:00:10Z to 2026-01-01T12:00:00Z: 32 h 59 min 50 s.
    let (_, text) = get_until(&app, "/metrics", "the seeded last success", |_, t| {
        t.contains("chime_job_last_success_age_seconds{job_id=\"nightly\"}")
    })
    .await;
    assert_eq!(
        value(&text, "chime_job_last_success_age_seconds{job_id=\"nightly\"}"),
        Some((32 * 3600 + 59 * 60 + 50) as f64),
        "{text}"
    );
    assert!(!text.contains("chime_job_last_success_age_seconds{job_id=\"never\"}"), "{text}");
    assert!(text.contains("# TYPE chime_job_last_success_age_seconds gauge\n"), "{text}");
}

#[tokio::test]
async fn two_schedulers_in_one_process_keep_separate_figures() {
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let a = scheduler(&clock, "a");
    let b = scheduler(&clock, "b");
    let app_a = chime_web::router(chime_web::Handle::new(a.clone()));
    let app_b = chime_web::router(chime_web::Handle::new(b.clone()));
    a.add_job(Job::new("only-a", "noop", Trigger::every("1m").unwrap()).unwrap(), ConflictPolicy::Error).await.unwrap();
    let mut events = a.subscribe();
    a.start().unwrap();
    run_minutes(&clock, &mut events, 2).await;
    get_until(&app_a, "/metrics", "a's two runs", |_, t| {
        t.contains("chime_runs_total{job_id=\"only-a\",status=\"succeeded\"} 2")
    })
    .await;
    let (_, text_b) = support::get(&app_b, "/metrics").await;
    assert!(!text_b.contains("only-a"), "b counts nothing of a: {text_b}");
    assert!(text_b.contains("chime_running_runs 0"), "{text_b}");
    a.shutdown(chime_core::ShutdownMode::Cancel).await;
}

#[tokio::test]
#[cfg_attr(not(chime_promtool_test), ignore = "needs promtool on PATH (or CHIME_REQUIRE_PROMTOOL=1); see build.rs")]
async fn promtool_finds_the_exposition_clean() {
    let out = std::process::Command::new("promtool").arg("--version").output();
    assert!(out.as_ref().is_ok_and(|o| o.status.success()), "promtool is required but does not run: {out:?}");
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let s = scheduler(&clock, "p");
    let app = chime_web::router(chime_web::Handle::new(s.clone()));
    s.add_job(Job::new("fails \"q\"", "fails", Trigger::every("1m").unwrap()).unwrap(), ConflictPolicy::Error)
        .await
        .unwrap();
    s.add_job(Job::new("ok", "noop", Trigger::every("1m").unwrap()).unwrap(), ConflictPolicy::Error).await.unwrap();
    let mut events = s.subscribe();
    s.start().unwrap();
    run_minutes(&clock, &mut events, 2).await;
    let (_, text) = get_until(&app, "/metrics", "a success", |_, t| t.contains("status=\"succeeded\"")).await;
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.shutdown(chime_core::ShutdownMode::Cancel).await;
}

/// Past 1,000 jobs the per-job gauges are left out (a scrape does not list
/// every job) and say so; at 1,000 they are back.
#[tokio::test]
async fn past_a_thousand_jobs_the_scrape_leaves_out_per_job_gauges_and_says_so() {
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let s = scheduler(&clock, "m");
    let app = chime_web::router(chime_web::Handle::new(s.clone()));
    let watched = Job::new("watched", "noop", Trigger::every("1h").unwrap())
        .unwrap()
        .with_alert_after(jiff::SignedDuration::from_mins(90));
    let others = (0..1_000).map(|i| Job::new(&format!("job-{i}"), "noop", Trigger::every("1h").unwrap()).unwrap());
    s.add_jobs(std::iter::once(watched).chain(others), ConflictPolicy::Error).await.unwrap();

    let (_, text) = support::get(&app, "/metrics").await;
    assert_eq!(value(&text, "chime_per_job_series_limited"), Some(1.0), "{text}");
    assert_eq!(value(&text, "chime_job_alerting{job_id=\"watched\"}"), None, "{text}");
    assert_eq!(value(&text, "chime_jobs{state=\"active\"}"), Some(1001.0), "the counts stay whole: {text}");

    s.remove_job("job-0", chime_core::RemoveMode::Cancel).await.unwrap();
    let (_, text) = support::get(&app, "/metrics").await;
    assert_eq!(value(&text, "chime_per_job_series_limited"), Some(0.0), "{text}");
    assert_eq!(value(&text, "chime_job_alerting{job_id=\"watched\"}"), Some(0.0), "{text}");
}
