//! Every endpoint and every error, through the router with `oneshot`: no socket.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chime_core::{Job, JobContext, ManualClock, Scheduler, TaskRegistry, Trigger};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const TOKEN: &str = "0123456789abcdef-test-token";

fn scheduler() -> (Scheduler, ManualClock) {
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let mut tasks = TaskRegistry::new();
    tasks.register("noop", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    tasks.register("command", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    let s = Scheduler::builder().tasks(tasks).clock(clock.clone()).timezone("UTC").unwrap().node_id("web-test").build();
    (s, clock)
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
    };
    (status, json)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error body: {v}"))
}

async fn app_with_a_job() -> (axum::Router, Scheduler, ManualClock) {
    let (s, clock) = scheduler();
    s.add_job(
        Job::new("report", "noop", Trigger::cron("0 9 * * *").unwrap()).unwrap(),
        chime_core::ConflictPolicy::Error,
    )
    .await
    .unwrap();
    (chime_web::router(chime_web::Handle::new(s.clone())), s, clock)
}

#[tokio::test]
async fn jobs_list_get_add_modify_remove() {
    let (app, _s, _clock) = app_with_a_job().await;
    let (st, list) = call(&app, "GET", "/api/v1/jobs", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list[0]["id"], "report");
    assert_eq!(list[0]["trigger_description"], "At 09:00 (UTC)");
    assert_eq!(list[0]["status"], "active");

    let (st, job) = call(&app, "GET", "/api/v1/jobs/report?next=3", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(job["upcoming"], json!(["2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z", "2026-01-03T09:00:00Z"]));

    let new = json!({"id": "ping", "task": "noop", "trigger": {"type": "interval", "every": "5m"}, "args": {"x": 1}});
    let (st, added) = call(&app, "POST", "/api/v1/jobs", Some(new.clone()), None).await;
    assert_eq!(st, StatusCode::CREATED, "{added}");
    assert_eq!(added["state"]["next_run_at"], "2026-01-01T00:05:00Z");
    let (st, dup) = call(&app, "POST", "/api/v1/jobs", Some(new), None).await;
    assert_eq!((st, code(&dup)), (StatusCode::CONFLICT, "conflict"));

    let (st, modified) =
        call(&app, "PATCH", "/api/v1/jobs/ping", Some(json!({"name": "Ping", "options": {"max_instances": 2}})), None)
            .await;
    assert_eq!(st, StatusCode::OK, "{modified}");
    assert_eq!((modified["name"].as_str(), modified["options"]["max_instances"].as_u64()), (Some("Ping"), Some(2)));

    let (st, page) = call(&app, "GET", "/api/v1/jobs?limit=1&offset=1", None, None).await;
    assert_eq!((st, page.as_array().unwrap().len(), page[0]["id"].as_str()), (StatusCode::OK, 1, Some("report")));

    let (st, removed) = call(&app, "DELETE", "/api/v1/jobs/ping", None, None).await;
    assert_eq!((st, removed["removed"]["id"].as_str()), (StatusCode::OK, Some("ping")));
    let (st, gone) = call(&app, "GET", "/api/v1/jobs/ping", None, None).await;
    assert_eq!((st, code(&gone)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn patch_with_a_trigger_points_to_reschedule() {
    let (app, s, _clock) = app_with_a_job().await;
    let before = s.get_job("report").await.unwrap();
    for body in [
        json!({"trigger": {"type": "cron", "expr": "0 7 * * *"}}),
        json!({"name": "Report", "trigger": {"type": "cron", "expr": "0 7 * * *"}}),
        json!({"cron": "0 7 * * *"}),
        json!({"every": "5m"}),
        json!({"trigger": null}),
    ] {
        let (st, v) = call(&app, "PATCH", "/api/v1/jobs/report", Some(body.clone()), None).await;
        assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "malformed"), "{body}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("POST /api/v1/jobs/report/reschedule"), "{body}: {message}");
        assert!(!message.contains("unknown field"), "{message}");
    }
    let after = s.get_job("report").await.unwrap();
    assert_eq!((after.name, after.trigger), (before.name, before.trigger), "nothing changed, not even the name");
    // The route the message names does it.
    let trigger = json!({"trigger": {"type": "cron", "expr": "0 7 * * *"}});
    let (st, v) = call(&app, "POST", "/api/v1/jobs/report/reschedule", Some(trigger), None).await;
    assert_eq!((st, v["trigger_description"].as_str()), (StatusCode::OK, Some("At 07:00 (UTC)")));
    // An id that needs encoding is named as the client sent it.
    let (st, v) = call(&app, "PATCH", "/api/v1/jobs/a%2Fb", Some(json!({"every": "1m"})), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "the body is refused before the job is looked up");
    assert!(v["error"]["message"].as_str().unwrap().contains("POST /api/v1/jobs/a%2Fb/reschedule"), "{v}");
}

#[tokio::test]
async fn pause_resume_reschedule_run_and_stats() {
    let (app, s, _clock) = app_with_a_job().await;
    let (st, paused) = call(&app, "POST", "/api/v1/jobs/report/pause", Some(json!({"reason": "holiday"})), None).await;
    assert_eq!(
        (st, paused["state"]["paused"].as_str(), paused["status"].as_str()),
        (StatusCode::OK, Some("holiday"), Some("paused"))
    );
    let (_, list) = call(&app, "GET", "/api/v1/jobs?status=paused", None, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (st, resumed) = call(&app, "POST", "/api/v1/jobs/report/resume", None, None).await;
    assert_eq!((st, resumed["status"].as_str()), (StatusCode::OK, Some("active")));

    let (st, r) = call(
        &app,
        "POST",
        "/api/v1/jobs/report/reschedule",
        Some(json!({"trigger": {"type": "cron", "expr": "30 8 * * *"}})),
        None,
    )
    .await;
    assert_eq!((st, r["state"]["next_run_at"].as_str()), (StatusCode::OK, Some("2026-01-01T08:30:00Z")));

    let mut events = s.subscribe();
    let (st, run) = call(&app, "POST", "/api/v1/jobs/report/run", None, None).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{run}");
    assert_eq!(run["run"]["kind"], "manual");
    loop {
        if let chime_core::Event::RunSucceeded { .. } = events.recv().await.unwrap() {
            break;
        }
    }
    let (st, runs) = call(&app, "GET", "/api/v1/runs?job=report&status=succeeded", None, None).await;
    assert_eq!((st, runs.as_array().unwrap().len()), (StatusCode::OK, 1));
    let (_, none) = call(&app, "GET", "/api/v1/runs?since=2027-01-01T00:00:00Z", None, None).await;
    assert_eq!(none, json!([]));
    let (st, stats) = call(&app, "GET", "/api/v1/jobs/report/stats", None, None).await;
    assert_eq!((st, stats["succeeded"].as_u64()), (StatusCode::OK, Some(1)));
    let (st, all) = call(&app, "GET", "/api/v1/stats", None, None).await;
    assert_eq!((st, all["stats"]["jobs"].as_u64(), all["node"].as_str()), (StatusCode::OK, Some(1), Some("web-test")));
}

#[tokio::test]
async fn bad_input_gets_the_right_status_and_never_a_500() {
    let (app, _s, _clock) = app_with_a_job().await;
    let cases: Vec<(&str, &str, Option<Value>, StatusCode, &str)> = vec![
        ("GET", "/api/v1/jobs/nope", None, StatusCode::NOT_FOUND, "not_found"),
        ("GET", "/api/v1/nowhere", None, StatusCode::NOT_FOUND, "not_found"),
        ("POST", "/api/v1/jobs/nope/pause", None, StatusCode::NOT_FOUND, "not_found"),
        ("GET", "/api/v1/jobs?status=sleepy", None, StatusCode::BAD_REQUEST, "malformed"),
        ("GET", "/api/v1/jobs?limit=many", None, StatusCode::BAD_REQUEST, "malformed"),
        ("GET", "/api/v1/runs?status=done", None, StatusCode::BAD_REQUEST, "malformed"),
        ("GET", "/api/v1/runs?since=yesterday", None, StatusCode::BAD_REQUEST, "malformed"),
        ("POST", "/api/v1/jobs", Some(json!({"id": "x"})), StatusCode::BAD_REQUEST, "malformed"),
        (
            "POST",
            "/api/v1/jobs",
            Some(json!({"id": "x", "task": "noop", "trigger": {"type": "cron", "expr": "0 9 * * 8"}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/jobs",
            Some(json!({"id": "x", "task": "noop", "trigger": {"type": "interval", "every": "0s"}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/jobs",
            Some(json!({"id": "x", "task": "ghost", "trigger": {"type": "interval", "every": "1h"}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_task",
        ),
        (
            "POST",
            "/api/v1/jobs",
            Some(json!({"id": "", "task": "noop", "trigger": {"type": "interval", "every": "1h"}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/jobs",
            Some(
                json!({"id": "x", "task": "noop", "trigger": {"type": "interval", "every": "1h"}, "options": {"max_instances": 0}}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/jobs",
            Some(
                json!({"id": "x", "task": "command", "trigger": {"type": "interval", "every": "1h"}, "args": {"argv": ["rm", "-rf", "/"]}}),
            ),
            StatusCode::FORBIDDEN,
            "forbidden_task",
        ),
        ("POST", "/api/v1/jobs/report/reschedule", Some(json!({})), StatusCode::BAD_REQUEST, "malformed"),
        (
            "POST",
            "/api/v1/jobs/report/reschedule",
            Some(json!({"trigger": {"type": "lunar"}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        ("PATCH", "/api/v1/jobs/report", Some(json!({"colour": "red"})), StatusCode::BAD_REQUEST, "malformed"),
    ];
    for (method, uri, body, status, expected) in cases {
        let (st, v) = call(&app, method, uri, body.clone(), None).await;
        assert_eq!((st, code(&v)), (status, expected), "{method} {uri} {body:?}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    // Not JSON at all.
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/jobs")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Too large.
    let big =
        json!({"id": "x", "task": "noop", "trigger": {"type": "interval", "every": "1h"}, "args": "x".repeat(100_000)});
    let (st, v) = call(&app, "POST", "/api/v1/jobs", Some(big), None).await;
    assert_eq!((st, code(&v)), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"));
}

#[tokio::test]
async fn a_token_guards_mutating_calls_only() {
    let (s, _clock) = scheduler();
    s.add_job(
        Job::new("report", "noop", Trigger::cron("0 9 * * *").unwrap()).unwrap(),
        chime_core::ConflictPolicy::Error,
    )
    .await
    .unwrap();
    let app = chime_web::router(chime_web::Handle::new(s).with_token(Some(TOKEN.into())).unwrap());
    let (st, _) = call(&app, "GET", "/api/v1/jobs", None, None).await;
    assert_eq!(st, StatusCode::OK, "reads stay open");
    let (st, v) = call(&app, "POST", "/api/v1/jobs/report/pause", None, None).await;
    assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (st, v) = call(&app, "POST", "/api/v1/jobs/report/pause", None, Some("guess")).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (st, _) = call(&app, "POST", "/api/v1/jobs/report/pause", None, Some(TOKEN)).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = call(&app, "DELETE", "/api/v1/jobs/report", None, Some(&TOKEN[1..])).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn health_says_why_it_is_not_healthy() {
    let (app, s, clock) = app_with_a_job().await;
    let (st, v) = call(&app, "GET", "/health", None, None).await;
    assert_eq!((st, v["reason"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("the scheduler is stopped")));
    s.start().unwrap();
    let start = std::time::Instant::now();
    loop {
        let (st, v) = call(&app, "GET", "/health", None, None).await;
        if st == StatusCode::OK {
            assert_eq!(v["status"], "ok");
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{v}");
        tokio::task::yield_now().await;
    }
    let (st, v) = call(&app, "POST", "/api/v1/scheduler/pause", None, None).await;
    assert_eq!((st, v["state"].as_str()), (StatusCode::OK, Some("paused")));
    let (st, v) = call(&app, "GET", "/health", None, None).await;
    assert_eq!((st, v["reason"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("the scheduler is paused")));
    let (_, v) = call(&app, "POST", "/api/v1/scheduler/resume", None, None).await;
    assert_eq!(v["state"], "running");
    // A loop that has not come round for over two minutes is unhealthy. On
    // this single-threaded test runtime the loop cannot run until the test
    // yields, so right after the clock jumps its last tick is stale.
    clock.advance(std::time::Duration::from_secs(180));
    let (st, v) = call(&app, "GET", "/health", None, None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["reason"].as_str().unwrap().ends_with("over two minutes ago"), "{v}");
}

#[tokio::test]
async fn metrics_count_runs_by_job_and_status() {
    let (s, clock) = scheduler();
    let app = chime_web::router(chime_web::Handle::new(s.clone()));
    s.add_job(Job::new("a\"b", "noop", Trigger::every("1m").unwrap()).unwrap(), chime_core::ConflictPolicy::Error)
        .await
        .unwrap();
    let mut events = s.subscribe();
    s.start().unwrap();
    for _ in 0..3 {
        clock.advance(std::time::Duration::from_secs(60));
        loop {
            if let chime_core::Event::RunSucceeded { .. } = events.recv().await.unwrap() {
                break;
            }
        }
    }
    let req = Request::builder().uri("/metrics").body(Body::empty()).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    // The collector runs on its own task: scrape until it has seen the third
    // success (with a deadline), not after some number of yields.
    let (_, text) = support::get_until(&app, "/metrics", "three successes", |_, t| {
        t.contains("chime_runs_total{job_id=\"a\\\"b\",status=\"succeeded\"} 3")
    })
    .await;
    assert!(text.contains("chime_run_duration_seconds_count{job_id=\"a\\\"b\"} 3"), "{text}");
    assert!(text.contains("chime_run_lateness_seconds_bucket{job_id=\"a\\\"b\",le=\"0.005\"} 3"), "{text}");
    assert!(text.contains("chime_jobs{state=\"active\"} 1"), "{text}");
    assert!(text.contains("chime_running_runs 0"), "{text}");
    assert!(text.contains("chime_loop_lag_seconds "), "{text}");
}

async fn get_html(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let res = app.clone().oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    if status == StatusCode::OK {
        assert!(ct.starts_with("text/html"), "{ct}");
    }
    (status, body)
}

#[tokio::test]
async fn the_dashboard_lists_jobs_escapes_names_and_charts_runs() {
    let (s, clock) = scheduler();
    let mut tasks_job = Job::new("xss", "noop", Trigger::every("1m").unwrap()).unwrap();
    tasks_job.name = Some("<script>alert(1)</script>".into());
    s.add_job(tasks_job, chime_core::ConflictPolicy::Error).await.unwrap();
    s.add_job(
        Job::new("report", "noop", Trigger::cron("0 9 * * *").unwrap()).unwrap(),
        chime_core::ConflictPolicy::Error,
    )
    .await
    .unwrap();
    let app = chime_web::router(chime_web::Handle::new(s.clone()).with_token(Some(TOKEN.into())).unwrap());
    let mut events = s.subscribe();
    s.start().unwrap();
    clock.advance(std::time::Duration::from_secs(60));
    loop {
        if let chime_core::Event::RunSucceeded { .. } = events.recv().await.unwrap() {
            break;
        }
    }

    let (st, page) = get_html(&app, "/").await;
    assert_eq!(st, StatusCode::OK);
    assert!(page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "the name is escaped");
    assert!(!page.contains("<script>alert(1)"), "and never raw");
    assert!(page.contains(r#"data-action="pause" data-id="report""#));
    assert!(page.contains(r#"data-action="run" data-id="xss""#));
    assert!(page.contains(r#"data-at="2026-01-01T09:00:00Z""#), "a live countdown to the next run");
    assert!(page.contains(r#"<input id="token""#), "a token field when the API needs one");
    assert!(page.contains(r#"<span data-count="all" class="num">2</span> all"#));
    assert!(page.contains(r#"<span class="pill succeeded" data-f="last-status">succeeded</span>"#));

    s.pause_job("report", "maintenance <now>").await.unwrap();
    let (_, page) = get_html(&app, "/").await;
    assert!(page.contains("maintenance &#60;now&#62;"));
    assert!(page.contains(r#"data-action="resume" data-id="report""#));

    let (st, page) = get_html(&app, "/jobs/xss").await;
    assert_eq!(st, StatusCode::OK);
    assert!(page.contains("<svg") && page.contains("<rect"), "a chart of the recent runs");
    assert!(page.contains("2026-01-01T00:02:00Z"), "the next fire times");
    let (st, _) = get_html(&app, "/jobs/nope").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let (app, _s, _clock) = app_with_a_job().await;
    let (st, doc) = call(&app, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    for route in [
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/pause",
        "/api/v1/jobs/{id}/resume",
        "/api/v1/jobs/{id}/run",
        "/api/v1/jobs/{id}/reschedule",
        "/api/v1/jobs/{id}/stats",
        "/api/v1/jobs/{id}/why",
        "/api/v1/jobs/{id}/backfill",
        "/api/v1/runs",
        "/api/v1/stats",
        "/api/v1/scheduler/pause",
        "/api/v1/scheduler/resume",
        "/health",
        "/metrics",
    ] {
        assert!(paths.contains(&route), "{route} is not described");
    }
    // Every described path answers (not with the router's 404).
    for path in paths {
        let uri = path.replace("{id}", "report");
        let method = if doc["paths"][path].get("get").is_some() { "GET" } else { "POST" };
        let (st, v) = call(&app, method, &uri, None, None).await;
        assert!(!(st == StatusCode::NOT_FOUND && v["error"]["message"] == "no such route"), "{method} {uri}");
    }
}

#[tokio::test]
async fn a_backfill_over_the_api_is_queued_by_the_server_and_run() {
    let (s, _clock) = scheduler();
    hourly_with_gaps(&s).await;
    s.start().unwrap();
    let app = chime_web::router(chime_web::Handle::new(s.clone()));
    let body = json!({"since": "2025-12-31T21:30:00Z", "dry_run": true});
    let (st, plan) = call(&app, "POST", "/api/v1/jobs/hourly/backfill", Some(body), None).await;
    assert_eq!(st, StatusCode::OK, "{plan}");
    assert_eq!(plan["times"], json!(["2025-12-31T22:00:00Z", "2025-12-31T23:00:00Z", "2026-01-01T00:00:00Z"]));
    let (_, runs) = call(&app, "GET", "/api/v1/runs?job=hourly", None, None).await;
    assert_eq!(runs.as_array().unwrap().len(), 1, "a dry run queues nothing: {runs}");

    let body = json!({"since": "2025-12-31T21:30:00Z", "until": "2025-12-31T23:30:00Z"});
    let (st, plan) = call(&app, "POST", "/api/v1/jobs/hourly/backfill", Some(body), None).await;
    assert_eq!((st, plan["queued"].clone()), (StatusCode::ACCEPTED, json!(true)), "{plan}");
    assert_eq!(plan["times"].as_array().unwrap().len(), 2, "--until bounds it");

    chime_testkit::wait_for_async("the two backfill runs to succeed", std::time::Duration::from_secs(10), || async {
        let (_, runs) = call(&app, "GET", "/api/v1/runs?job=hourly&status=succeeded", None, None).await;
        runs.as_array().unwrap().iter().filter(|r| r["kind"] == "backfill").count() == 2
    })
    .await;
    let (_, runs) = call(&app, "GET", "/api/v1/runs?job=hourly", None, None).await;
    let times: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "backfill")
        .map(|r| r["scheduled_for"].as_str().unwrap())
        .collect();
    assert_eq!(times, ["2025-12-31T23:00:00Z", "2025-12-31T22:00:00Z"], "their original times");
    s.shutdown(chime_core::ShutdownMode::Cancel).await;
}

#[tokio::test]
async fn one_backfill_per_job_at_a_time() {
    let (s, _clock) = scheduler();
    hourly_with_gaps(&s).await;
    // Not started: the first queued run waits for a node, so the backfill
    // task is still queuing when the second call comes.
    let app = chime_web::router(chime_web::Handle::new(s.clone()));
    let body = json!({"since": "2025-12-31T21:30:00Z"});
    let (st, first) = call(&app, "POST", "/api/v1/jobs/hourly/backfill", Some(body.clone()), None).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{first}");
    let (st, second) = call(&app, "POST", "/api/v1/jobs/hourly/backfill", Some(body), None).await;
    assert_eq!((st, code(&second)), (StatusCode::CONFLICT, "conflict"), "{second}");
    assert!(second["error"]["message"].as_str().unwrap().contains("a backfill of job \"hourly\" is under way"));
}

/// `hourly`, every hour from 21:00 yesterday: 22:00, 23:00 and 00:00 never
/// ran (a run by hand at 21:30 is the job's first recorded run).
async fn hourly_with_gaps(s: &Scheduler) {
    let mut job = Job::new("hourly", "noop", Trigger::every("1h").unwrap()).unwrap();
    job.trigger.resolve("2025-12-31T21:00:00Z".parse().unwrap(), s.timezone());
    job.state.next_run_at = Some("2026-01-01T01:00:00Z".parse().unwrap());
    s.store().add_job(job, chime_core::ConflictPolicy::Error).await.unwrap();
    s.store().insert_run(run_by_hand("hourly", "2025-12-31T21:30:00Z")).await.unwrap();
}

/// A finished run by hand of `job` at `at`.
fn run_by_hand(job: &str, at: &str) -> chime_core::Run {
    let node: std::sync::Arc<str> = std::sync::Arc::from("earlier");
    let at: jiff::Timestamp = at.parse().unwrap();
    let mut run =
        chime_core::Run::pending(chime_core::JobId::new(job).unwrap(), at, chime_core::RunKind::Manual, &node);
    run.status = chime_core::RunStatus::Succeeded;
    run.attempt = 1;
    run.started_at = Some(at);
    run.finished_at = Some(at);
    run
}
