//! Job health on virtual time: alerts raised and cleared (N failures then a
//! success; `alert_after` crossed), shown on `/health?jobs=true`, in
//! `chime_job_alerting` and on the dashboard.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use chime_core::{ConflictPolicy, Event, Job, JobContext, ManualClock, Scheduler, TaskRegistry, Trigger};
use support::{get, get_until};

fn setup(fail: &Arc<AtomicBool>) -> (Scheduler, ManualClock) {
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let mut tasks = TaskRegistry::new();
    let f = Arc::clone(fail);
    tasks.register("flaky", move |_ctx: JobContext| {
        let fail = f.load(Ordering::SeqCst);
        async move { if fail { Err(std::io::Error::other("disk full")) } else { Ok(()) } }
    });
    tasks.register("noop", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    let s = Scheduler::builder().tasks(tasks).clock(clock.clone()).timezone("UTC").unwrap().node_id("n").build();
    (s, clock)
}

async fn next_end(events: &mut tokio::sync::broadcast::Receiver<Event>, clock: &ManualClock, by: Duration) {
    clock.advance(by);
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await.unwrap() {
                Event::RunSucceeded { .. } | Event::RunFailed { will_retry: false, .. } => return,
                _ => {}
            }
        }
    })
    .await
    .expect("a run ends");
}

fn alerting(text: &str, job: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(&format!("chime_job_alerting{{job_id=\"{job}\"}} ")).map(str::to_owned))
}

#[tokio::test]
async fn failures_in_a_row_raise_an_alert_and_a_success_clears_it() {
    let fail = Arc::new(AtomicBool::new(true));
    let (s, clock) = setup(&fail);
    let app = chime_web::router(chime_web::Handle::new(s.clone()));
    s.add_job(
        Job::new("flaky", "flaky", Trigger::every("1m").unwrap()).unwrap().with_alert_on_failures(2),
        ConflictPolicy::Error,
    )
    .await
    .unwrap();
    s.add_job(Job::new("calm", "noop", Trigger::every("1h").unwrap()).unwrap(), ConflictPolicy::Error).await.unwrap();
    let mut events = s.subscribe();
    s.start().unwrap();

    next_end(&mut events, &clock, Duration::from_secs(60)).await;
    assert_eq!(s.alerts().await.unwrap(), [], "one failure of two");
    let (st, _) = get_until(&app, "/health?jobs=true", "healthy", |st, _| st == StatusCode::OK).await;
    assert_eq!(st, StatusCode::OK);
    let (_, text) = get(&app, "/metrics").await;
    assert_eq!(alerting(&text, "flaky").as_deref(), Some("0"), "{text}");
    assert_eq!(alerting(&text, "calm"), None, "a job without alert options has no series: {text}");

    next_end(&mut events, &clock, Duration::from_secs(60)).await;
    let alerts = s.alerts().await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].reason, "2 consecutive failures (alert_on_failures 2); last error: disk full");
    let (st, body) = get(&app, "/health?jobs=true").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "jobs_alerting", "{v}");
    assert_eq!(v["alerting"], serde_json::json!(["flaky"]), "{v}");
    assert!(v["reason"].as_str().unwrap().starts_with("1 job in alert: flaky;"), "{v}");
    assert!(!body.contains("disk full"), "the open /health names the job, never its last error: {body}");
    let (st, _) = get(&app, "/health").await;
    assert_eq!(st, StatusCode::OK, "plain /health ignores job alerts");
    let (st, _) = get(&app, "/health?jobs=maybe").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (_, text) = get(&app, "/metrics").await;
    assert_eq!(alerting(&text, "flaky").as_deref(), Some("1"), "{text}");
    let (_, page) = get(&app, "/").await;
    let banner = &page[page.find("class=\"alert-banner\"").unwrap_or_else(|| panic!("no banner: {page}"))..];
    assert!(banner.contains("1</span> job in alert"), "{banner}");
    assert!(banner.contains("jobs/flaky\">flaky</a>: 2 consecutive failures"), "{banner}");
    assert!(page.contains("<span class=\"pill alerting\" title=\"2 consecutive failures"), "the row is marked: {page}");
    let (_, page) = get(&app, "/jobs/flaky").await;
    assert!(
        page.contains("<strong>In alert:</strong> 2 consecutive failures (alert_on_failures 2); last error: disk full"),
        "{page}"
    );
    let (_, page) = get(&app, "/jobs/calm").await;
    assert!(!page.contains("alert-banner"), "{page}");

    fail.store(false, Ordering::SeqCst);
    next_end(&mut events, &clock, Duration::from_secs(60)).await;
    assert_eq!(s.alerts().await.unwrap(), [], "a success clears it");
    let (st, _) = get(&app, "/health?jobs=true").await;
    assert_eq!(st, StatusCode::OK);
    let (_, text) = get(&app, "/metrics").await;
    assert_eq!(alerting(&text, "flaky").as_deref(), Some("0"), "{text}");
    let (_, page) = get(&app, "/").await;
    assert!(!page.contains("alert-banner") && !page.contains("pill alerting"), "{page}");
    s.shutdown(chime_core::ShutdownMode::Cancel).await;
}

#[tokio::test]
async fn alert_after_is_crossed_on_the_schedulers_clock_and_cleared_by_a_success() {
    let fail = Arc::new(AtomicBool::new(false));
    let (s, clock) = setup(&fail);
    s.add_job(
        Job::new("hourly", "flaky", Trigger::every("1h").unwrap())
            .unwrap()
            .with_alert_after(jiff::SignedDuration::from_mins(90)),
        ConflictPolicy::Error,
    )
    .await
    .unwrap();
    let mut events = s.subscribe();
    s.start().unwrap();
    // 01:00 succeeds; 02:00 fails.
    next_end(&mut events, &clock, Duration::from_secs(3600)).await;
    fail.store(true, Ordering::SeqCst);
    next_end(&mut events, &clock, Duration::from_secs(3600)).await;
    clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(s.alerts().await.unwrap(), [], "02:30: exactly 90 minutes, not past them");
    clock.advance(Duration::from_secs(60));
    let alerts = s.alerts().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].reason, "no success for 1h 31m (alert_after 1h 30m); last success 2026-01-01T01:00:00Z");
    assert_eq!(alerts[0].since, "2026-01-01T02:30:00Z".parse().unwrap());
    assert_eq!(alerts[0].last_error.as_deref(), Some("disk full"));
    // 03:00 succeeds: cleared.
    fail.store(false, Ordering::SeqCst);
    next_end(&mut events, &clock, Duration::from_secs(29 * 60)).await;
    assert_eq!(s.alerts().await.unwrap(), []);
    // A job that never succeeded counts from its first scheduled time
    // (04:00, an hour after it was added): both fail at 04:00 and 05:00.
    fail.store(true, Ordering::SeqCst);
    s.add_job(
        Job::new("never", "flaky", Trigger::every("1h").unwrap())
            .unwrap()
            .with_alert_after(jiff::SignedDuration::from_mins(90)),
        ConflictPolicy::Error,
    )
    .await
    .unwrap();
    for _ in 0..2 {
        next_end(&mut events, &clock, Duration::from_secs(3600)).await;
        next_end(&mut events, &clock, Duration::ZERO).await;
    }
    clock.advance(Duration::from_secs(31 * 60));
    let alerts = s.alerts().await.unwrap();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(alerts[0].job_id.as_str(), "hourly", "overdue again: {alerts:?}");
    assert_eq!(alerts[1].job_id.as_str(), "never");
    assert!(
        alerts[1].reason.starts_with("never succeeded: first scheduled 1h 31m ago, at 2026-01-01T04:00:00Z"),
        "{alerts:?}"
    );
    s.shutdown(chime_core::ShutdownMode::Cancel).await;
}
