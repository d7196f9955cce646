//! Every refusal of the HTTP surface, each checked by what it prevents (the
//! job stays unpaused, the args stay as they were), not only by its status.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use chime_core::{ConflictPolicy, Job, JobContext, REMOVED_FROM_CODE, Scheduler, TaskRegistry, Trigger};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const TOKEN: &str = "0123456789abcdef-test-token";

fn scheduler() -> Scheduler {
    let clock = chime_core::ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let mut tasks = TaskRegistry::new();
    for task in ["noop", "command", "http"] {
        tasks.register(task, |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    }
    Scheduler::builder().tasks(tasks).clock(clock).timezone("UTC").unwrap().node_id("web-test").build()
}

/// A scheduler with `report` (noop), `deploy` (a command with a secret in
/// its env) and `hook` (an http call with credential headers).
async fn jobs() -> Scheduler {
    let s = scheduler();
    let add = |job: Job| {
        let s = s.clone();
        async move { s.add_job(job, ConflictPolicy::Error).await.unwrap() }
    };
    add(Job::new("report", "noop", Trigger::cron("0 9 * * *").unwrap()).unwrap()).await;
    add(Job::new("deploy", "command", Trigger::cron("0 3 * * *").unwrap()).unwrap().with_args(json!({
        "argv": ["./deploy.sh"], "env": {"DB_PASSWORD": "hunter2", "MODE": "prod"}, "working_dir": "/srv"
    })))
    .await;
    add(Job::new("hook", "http", Trigger::every("5m").unwrap()).unwrap().with_args(json!({
        "url": "https://ops:pa55word@hooks.example.com/x?api_key=k3y&page=1",
        "method": "POST",
        "headers": {"Authorization": "Bearer sekrit", "X-Auth-Token": "t0ken", "Cookie": "s=c00kie", "Accept": "text/plain"}
    })))
    .await;
    s
}

fn app(s: &Scheduler) -> axum::Router {
    chime_web::router(chime_web::Handle::new(s.clone()))
}

/// A request with `headers`, a raw body, through the router.
async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app.clone().oneshot(req.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    (status, headers, json)
}

/// A JSON call as a well-behaved client makes it.
async fn call(app: &axum::Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let (ct, body) = match body {
        Some(v) => (vec![("content-type", "application/json")], v.to_string()),
        None => (vec![], String::new()),
    };
    let (st, _, v) = send(app, method, uri, &ct, &body).await;
    (st, v)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error body: {v}"))
}

async fn paused(s: &Scheduler, id: &str) -> Option<String> {
    s.get_job(id).await.unwrap().state.paused.map(String::from)
}

// ---- Browsers cannot be turned against the server ----

#[tokio::test]
async fn a_host_that_is_not_loopback_or_allowed_gets_421() {
    let s = jobs().await;
    let app = app(&s);
    for host in [
        "evil.example.com",
        "evil.example.com:8080",
        "127.0.0.1.evil.example.com",
        "10.0.0.5:8080",
        "a b",
        "localhost.evil",
    ] {
        for (method, uri) in [
            ("GET", "/api/v1/jobs"),
            ("GET", "/"),
            ("GET", "/metrics"),
            ("GET", "/health"),
            ("POST", "/api/v1/jobs/report/pause"),
        ] {
            let (st, _, v) = send(&app, method, uri, &[("host", host)], "").await;
            assert_eq!((st, code(&v)), (StatusCode::MISDIRECTED_REQUEST, "misdirected"), "{method} {uri} Host: {host}");
        }
    }
    assert_eq!(paused(&s, "report").await, None, "the rebinding page paused nothing");
    // Two Host headers, the first one harmless.
    let (st, _, _) =
        send(&app, "GET", "/api/v1/jobs", &[("host", "127.0.0.1"), ("host", "evil.example.com")], "").await;
    assert_eq!(st, StatusCode::MISDIRECTED_REQUEST);
    // An absolute-form target naming another host is refused too.
    let (st, _, _) = send(&app, "GET", "http://evil.example.com/api/v1/jobs", &[("host", "127.0.0.1")], "").await;
    assert_eq!(st, StatusCode::MISDIRECTED_REQUEST);
    for host in ["127.0.0.1", "127.0.0.1:8080", "[::1]:8080", "[::1]", "localhost", "LOCALHOST:1"] {
        let (st, _, v) = send(&app, "GET", "/api/v1/jobs", &[("host", host)], "").await;
        assert_eq!(st, StatusCode::OK, "Host: {host}: {v}");
    }
}

#[tokio::test]
async fn allowed_hosts_are_served_and_nothing_else() {
    let s = jobs().await;
    let handle = chime_web::Handle::new(s.clone())
        .with_allowed_hosts(vec!["chime.example.com".into(), "10.0.0.5:8080".into()])
        .unwrap();
    let app = chime_web::router(handle);
    for (host, expected) in [
        ("chime.example.com", StatusCode::OK),
        ("Chime.Example.COM:443", StatusCode::OK),
        ("10.0.0.5:8080", StatusCode::OK),
        ("10.0.0.5:9090", StatusCode::MISDIRECTED_REQUEST),
        ("evil.chime.example.com", StatusCode::MISDIRECTED_REQUEST),
        ("127.0.0.1:8080", StatusCode::OK),
    ] {
        let (st, _, _) = send(&app, "GET", "/api/v1/jobs", &[("host", host)], "").await;
        assert_eq!(st, expected, "Host: {host}");
    }
    assert!(chime_web::Handle::new(s.clone()).with_allowed_hosts(vec!["https://chime.example.com".into()]).is_err());
}

#[tokio::test]
async fn a_cross_site_page_cannot_pause_run_or_create() {
    let s = jobs().await;
    let app = app(&s);
    let host = ("host", "127.0.0.1:8080");
    // The probe of the issue: text/plain from another origin.
    let (st, _, v) = send(
        &app,
        "POST",
        "/api/v1/jobs/report/pause",
        &[host, ("content-type", "text/plain"), ("origin", "http://evil.example.com")],
        r#"{"reason": "pwned"}"#,
    )
    .await;
    assert!(matches!(st, StatusCode::FORBIDDEN | StatusCode::UNSUPPORTED_MEDIA_TYPE), "{st} {v}");
    // Each check on its own.
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let refused: Vec<(Headers, StatusCode, &str)> = vec![
        (vec![host, ("origin", "http://evil.example.com")], StatusCode::FORBIDDEN, "cross_site"),
        (vec![host, ("origin", "http://127.0.0.1:3000")], StatusCode::FORBIDDEN, "cross_site"),
        (vec![host, ("origin", "null")], StatusCode::FORBIDDEN, "cross_site"),
        (vec![("origin", "http://127.0.0.1:8080")], StatusCode::FORBIDDEN, "cross_site"),
        (vec![host, ("sec-fetch-site", "cross-site")], StatusCode::FORBIDDEN, "cross_site"),
        (vec![host, ("sec-fetch-site", "same-site")], StatusCode::FORBIDDEN, "cross_site"),
        (vec![host, ("content-type", "text/plain")], StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (
            vec![host, ("content-type", "application/x-www-form-urlencoded")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            vec![host, ("content-type", "multipart/form-data; boundary=x")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for (uri, body) in [
        ("/api/v1/jobs/report/pause", r#"{"reason": "pwned"}"#),
        ("/api/v1/jobs/report/run", ""),
        ("/api/v1/scheduler/pause", ""),
    ] {
        for (headers, status, expected) in &refused {
            let (st, _, v) = send(&app, "POST", uri, headers, body).await;
            assert_eq!((st, code(&v)), (*status, *expected), "POST {uri} {headers:?}");
        }
    }
    // An empty form post is still a form post.
    let (st, _, _) = send(&app, "POST", "/api/v1/jobs/report/pause", &[host, ("content-type", "text/plain")], "").await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A JSON body sent without saying so.
    let (st, _, _) = send(&app, "POST", "/api/v1/jobs/report/pause", &[host], r#"{"reason": "x"}"#).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(paused(&s, "report").await, None, "nothing paused the job");
    assert_eq!(s.history(&chime_core::RunQuery::default()).await.unwrap().len(), 0, "nothing ran");
    assert_eq!(s.state().as_str(), "stopped", "the scheduler was not paused");

    // A form-encoded body holding JSON does not create a job.
    let form = r#"{"id": "evil", "task": "http", "trigger": {"type": "interval", "every": "1m"}, "args": {"url": "http://127.0.0.1:6379/"}}"#;
    let (st, _, v) =
        send(&app, "POST", "/api/v1/jobs", &[host, ("content-type", "application/x-www-form-urlencoded")], form).await;
    assert_eq!((st, code(&v)), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
    assert!(s.get_job("evil").await.is_err(), "no job was created");
    // PATCH and DELETE are guarded the same way.
    let (st, _, _) =
        send(&app, "PATCH", "/api/v1/jobs/report", &[host, ("content-type", "text/plain")], r#"{"name": "x"}"#).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (st, _, _) =
        send(&app, "DELETE", "/api/v1/jobs/report", &[host, ("origin", "http://evil.example.com")], "").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(s.get_job("report").await.is_ok(), "not deleted");
}

#[tokio::test]
async fn the_dashboard_and_plain_clients_still_work() {
    let s = jobs().await;
    let app = app(&s);
    // What the dashboard's fetch sends.
    let dashboard = [
        ("host", "127.0.0.1:8080"),
        ("origin", "http://127.0.0.1:8080"),
        ("sec-fetch-site", "same-origin"),
        ("content-type", "application/json"),
    ];
    let (st, _, v) =
        send(&app, "POST", "/api/v1/jobs/report/pause", &dashboard, r#"{"reason": "from the dashboard"}"#).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _, v) = send(&app, "POST", "/api/v1/jobs/report/resume", &dashboard, "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Behind a TLS proxy that passes the Host on.
    let app2 = chime_web::router(
        chime_web::Handle::new(s.clone()).with_allowed_hosts(vec!["chime.example.com".into()]).unwrap(),
    );
    let proxied = [
        ("host", "chime.example.com"),
        ("origin", "https://chime.example.com"),
        ("content-type", "application/json; charset=utf-8"),
    ];
    let (st, _, v) = send(&app2, "POST", "/api/v1/jobs/report/pause", &proxied, "{}").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // curl -X POST: no Origin, no body, no Content-Type.
    let (st, _, v) = send(&app, "POST", "/api/v1/jobs/report/resume", &[("host", "localhost:8080")], "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // A link followed or a URL typed.
    let (st, _, _) = send(&app, "GET", "/", &[("host", "localhost:8080"), ("sec-fetch-site", "cross-site")], "").await;
    assert_eq!(st, StatusCode::OK, "reads are not cross-site checked: no CORS lets the page read them");
}

#[tokio::test]
async fn no_cors_headers_are_sent() {
    let s = jobs().await;
    let app = app(&s);
    let origin =
        [("host", "127.0.0.1:8080"), ("origin", "http://evil.example.com"), ("access-control-request-method", "POST")];
    for (method, uri) in [("OPTIONS", "/api/v1/jobs"), ("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs/report/pause")] {
        let (_, headers, _) = send(&app, method, uri, &origin, "").await;
        assert!(!headers.keys().any(|k| k.as_str().starts_with("access-control-")), "{method} {uri}: {headers:?}");
    }
}

// ---- Programs come only from the config file ----

#[tokio::test]
async fn a_command_jobs_program_cannot_be_changed_on_any_route() {
    let s = jobs().await;
    let before = s.get_job("deploy").await.unwrap();
    let app = chime_web::router(chime_web::Handle::new(s.clone()).with_token(Some(TOKEN.into())).unwrap());
    let with_token = |method: &'static str, uri: &'static str, body: Option<Value>| {
        let app = app.clone();
        async move {
            let auth = format!("Bearer {TOKEN}");
            let mut headers = vec![("authorization", auth.as_str())];
            if body.is_some() {
                headers.push(("content-type", "application/json"));
            }
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            let (st, _, v) = send(&app, method, uri, &headers, &body).await;
            (st, v)
        }
    };
    let forbidden: Vec<(&str, &str, Option<Value>)> = vec![
        ("PATCH", "/api/v1/jobs/deploy", Some(json!({"args": {"argv": ["sh", "-c", "id > /tmp/x"]}}))),
        (
            "PATCH",
            "/api/v1/jobs/deploy",
            Some(json!({"args": {"argv": ["./deploy.sh"], "env": {"LD_PRELOAD": "/tmp/x.so"}}})),
        ),
        ("PATCH", "/api/v1/jobs/deploy", Some(json!({"args": {"argv": ["./deploy.sh"], "working_dir": "/tmp"}}))),
        ("PATCH", "/api/v1/jobs/deploy", Some(json!({"args": {"argv": ["id"], "shell": true}}))),
        ("PATCH", "/api/v1/jobs/deploy", Some(json!({"name": "fine", "args": before.args}))),
        (
            "POST",
            "/api/v1/jobs",
            Some(
                json!({"id": "deploy", "task": "http", "trigger": {"type": "interval", "every": "1h"}, "args": {"url": "http://x/"}, "replace": true}),
            ),
        ),
        (
            "POST",
            "/api/v1/jobs",
            Some(
                json!({"id": "deploy", "task": "command", "trigger": {"type": "interval", "every": "1h"}, "args": {"argv": ["id"]}, "replace": true}),
            ),
        ),
        (
            "POST",
            "/api/v1/jobs",
            Some(
                json!({"id": "new", "task": "command", "trigger": {"type": "interval", "every": "1h"}, "args": {"argv": ["id"]}}),
            ),
        ),
        ("POST", "/api/v1/jobs/deploy/run", Some(json!({"args": {"argv": ["id"]}}))),
    ];
    for (method, uri, body) in forbidden {
        let (st, v) = with_token(method, uri, body.clone()).await;
        assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden_task"), "{method} {uri} {body:?}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("config"), "the reason is given: {v}");
    }
    let after = s.get_job("deploy").await.unwrap();
    assert_eq!(
        (&*after.task, &after.args, &after.name),
        (&*before.task, &before.args, &before.name),
        "the program is unchanged"
    );
    assert!(s.get_job("new").await.is_err());

    // What stays allowed, with the token.
    let (st, v) =
        with_token("PATCH", "/api/v1/jobs/deploy", Some(json!({"name": "Deploy", "options": {"max_instances": 2}})))
            .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = with_token("POST", "/api/v1/jobs/deploy/pause", None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = with_token("POST", "/api/v1/jobs/deploy/resume", None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = with_token(
        "POST",
        "/api/v1/jobs/deploy/reschedule",
        Some(json!({"trigger": {"type": "cron", "expr": "0 4 * * *"}})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = with_token("POST", "/api/v1/jobs/deploy/run", None).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    // Other jobs' args can still change, but no job runs with one-off args.
    let (st, _) = with_token("PATCH", "/api/v1/jobs/report", Some(json!({"args": {"x": 1}}))).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = with_token("POST", "/api/v1/jobs/report/run", Some(json!({"args": {"x": 2}}))).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "malformed"));
    assert_eq!(s.get_job("deploy").await.unwrap().args, before.args);
}

#[tokio::test]
async fn a_command_job_the_config_dropped_stays_down() {
    let s = jobs().await;
    s.pause_job("deploy", REMOVED_FROM_CODE).await.unwrap();
    let app = app(&s);
    let (st, v) = call(&app, "POST", "/api/v1/jobs/deploy/resume", None).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden_task"), "{v}");
    let (st, v) = call(&app, "POST", "/api/v1/jobs/deploy/run", None).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden_task"), "{v}");
    let (st, v) = call(&app, "PATCH", "/api/v1/jobs/deploy", Some(json!({"args": {"argv": ["id"]}}))).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden_task"), "{v}");
    assert_eq!(paused(&s, "deploy").await.as_deref(), Some(REMOVED_FROM_CODE));
    assert!(s.history(&chime_core::RunQuery::default()).await.unwrap().is_empty(), "it never ran");
    // The reason is reserved: the API cannot fake it either.
    let (st, v) = call(&app, "POST", "/api/v1/jobs/report/pause", Some(json!({"reason": REMOVED_FROM_CODE}))).await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid"));
    assert_eq!(paused(&s, "report").await, None);
    // Pausing it again, for another reason, keeps it removed: a re-pause
    // then a resume is not a way back in.
    let (st, v) = call(&app, "POST", "/api/v1/jobs/deploy/pause", Some(json!({"reason": "holiday"}))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(paused(&s, "deploy").await.as_deref(), Some(REMOVED_FROM_CODE), "the reserved reason stays");
    let (st, v) = call(&app, "POST", "/api/v1/jobs/deploy/resume", None).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden_task"), "{v}");
    let backfill = json!({"since": "2020-01-01T00:00:00Z"});
    let (st, v) = call(&app, "POST", "/api/v1/jobs/deploy/backfill", Some(backfill)).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden_task"), "{v}");
    assert!(s.history(&chime_core::RunQuery::default()).await.unwrap().is_empty(), "it never ran");
    // Other pauses of a command job lift as before (the config brought it back).
    s.resume_job("deploy").await.unwrap();
    s.pause_job("deploy", "holiday").await.unwrap();
    let (st, _) = call(&app, "POST", "/api/v1/jobs/deploy/resume", None).await;
    assert_eq!(st, StatusCode::OK);
}

// ---- http jobs send only what the http task would ----

fn http_job(id: &str, args: Value) -> Value {
    json!({"id": id, "task": "http", "trigger": {"type": "interval", "every": "5m"}, "args": args})
}

/// A refusal: the status, the code and a message holding `says`.
#[track_caller]
fn refused(st: StatusCode, v: &Value, status: StatusCode, expected: &str, says: &str) {
    assert_eq!((st, code(v)), (status, expected), "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{message:?} does not say {says:?}");
}

#[tokio::test]
async fn http_jobs_with_args_the_task_refuses_are_not_created() {
    let s = jobs().await;
    let app = app(&s);
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    for (args, says) in [
        (json!({"url": "file:///etc/passwd"}), "\"file\" URLs are not allowed"),
        (json!({"url": "gopher://127.0.0.1:6379/_FLUSHALL"}), "\"gopher\" URLs are not allowed"),
        (json!({"url": "http://127.0.0.1:6379/ HTTP/1.0\r\n\r\nFLUSHALL"}), "url: holds a space"),
        (json!({"url": "http://h.example/a\nb"}), "line feed"),
        (json!({"url": "http://h.example/", "headers": {"X-Note": "a\r\nSet-Cookie: x=1"}}), "carriage return"),
        (json!({"url": "http://h.example/", "headers": {"X-Note": "a\nb"}}), "line feed"),
        (json!({"url": "http://h.example/", "headers": {"Bad Name": "x"}}), "Bad Name"),
        (json!({"url": "http://h.example/", "headers": {"Host": "internal"}}), "Host"),
        (json!({"url": "http://h.example/", "method": "GET /admin"}), "method"),
        (json!({"url": "http://h.example/", "method": "CONNECT"}), "CONNECT"),
        (json!({"url": "http://h.example/", "max_redirects": 1000}), "max_redirects"),
        (json!({"url": "http://h.example/", "timeout": "0s"}), "timeout"),
        // Shapes the task cannot read.
        (json!({"url": 5}), "invalid http args"),
        (json!({"url": "http://h.example/", "follow": true}), "unknown field `follow`"),
        (json!({"url": "http://h.example/", "headers": ["X-A: b"]}), "invalid http args"),
        (json!({"url": "http://h.example/", "timeout": "soon"}), "invalid http args"),
        (json!({"method": "GET"}), "missing field `url`"),
        (json!(null), "invalid http args"),
        (json!("http://h.example/"), "invalid http args"),
    ] {
        let (st, v) = call(&app, "POST", "/api/v1/jobs", Some(http_job("evil", args.clone()))).await;
        refused(st, &v, unprocessable, "invalid", says);
        assert!(s.get_job("evil").await.is_err(), "no job was created for {args}");
    }
    // A job with no args at all is refused too: an http job needs a url.
    let no_args = json!({"id": "evil", "task": "http", "trigger": {"type": "interval", "every": "5m"}});
    let (st, v) = call(&app, "POST", "/api/v1/jobs", Some(no_args)).await;
    refused(st, &v, unprocessable, "invalid", "invalid http args");

    // Replacing a job is creating one: the same checks.
    let before = s.get_job("hook").await.unwrap();
    let mut replace = http_job("hook", json!({"url": "file:///etc/shadow"}));
    replace["replace"] = json!(true);
    let (st, v) = call(&app, "POST", "/api/v1/jobs", Some(replace)).await;
    refused(st, &v, unprocessable, "invalid", "\"file\" URLs are not allowed");
    assert_eq!(s.get_job("hook").await.unwrap(), before, "the stored job is unchanged");

    // What the task takes is accepted, every field of its spec included.
    let good = json!({"url": "https://hooks.example.com/x", "method": "post", "headers": {"X-Note": "a\tb"},
        "body": "{}", "max_redirects": 0, "timeout": "30s"});
    let (st, v) = call(&app, "POST", "/api/v1/jobs", Some(http_job("good", good.clone()))).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["args"], good);
    // Other tasks' args are theirs to judge.
    let other = json!({"id": "other", "task": "noop", "trigger": {"type": "interval", "every": "5m"},
        "args": {"url": "file:///etc/passwd"}});
    let (st, v) = call(&app, "POST", "/api/v1/jobs", Some(other)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn a_refused_patch_leaves_the_http_job_as_it_was() {
    let s = jobs().await;
    let app = chime_web::router(
        chime_web::Handle::new(s.clone()).with_allowed_targets(Some("hooks.example.com, 10.0.0.0/8".parse().unwrap())),
    );
    // A valid job to change, created over the API.
    let args = json!({"url": "https://hooks.example.com/a?token=t0ken", "headers": {"Authorization": "Bearer sekrit"}});
    let (st, v) = call(&app, "POST", "/api/v1/jobs", Some(http_job("notify", args))).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let before = s.get_job("notify").await.unwrap();
    let (_, read) = call(&app, "GET", "/api/v1/jobs/notify", None).await;
    let read = read["job"]["args"].clone();
    let with = |field: &str, value: Value| {
        let mut a = read.clone();
        a[field] = value;
        json!({"args": a, "name": "changed"})
    };
    let (unprocessable, forbidden) = (StatusCode::UNPROCESSABLE_ENTITY, StatusCode::FORBIDDEN);
    for (body, status, expected, says) in [
        (with("url", json!("file:///etc/passwd")), unprocessable, "invalid", "\"file\" URLs are not allowed"),
        (
            with("headers", json!({"Authorization": "<redacted>", "X-Note": "x\r\nX-Injected: 1"})),
            unprocessable,
            "invalid",
            "carriage return",
        ),
        (with("method", json!("G E T")), unprocessable, "invalid", "method"),
        (with("retries", json!(3)), unprocessable, "invalid", "unknown field `retries`"),
        (
            with("url", json!("http://127.0.0.1:6379/")),
            forbidden,
            "forbidden_target",
            "127.0.0.1:6379 is not an allowed target",
        ),
        (
            with("url", json!("http://169.254.169.254/latest/meta-data/")),
            forbidden,
            "forbidden_target",
            "this server's http jobs may not send requests there: url: 169.254.169.254:80 is not an allowed target (allowed: hooks.example.com, 10.0.0.0/8) ([http] allowed_targets)",
        ),
        (
            with("url", json!("https://hooks.example.com.evil.example/")),
            forbidden,
            "forbidden_target",
            "not an allowed target",
        ),
    ] {
        let (st, v) = call(&app, "PATCH", "/api/v1/jobs/notify", Some(body.clone())).await;
        refused(st, &v, status, expected, says);
        assert_no_secret("the refusal", &v.to_string());
        assert_eq!(s.get_job("notify").await.unwrap(), before, "the stored job is unchanged after {body}");
    }
    // Creating outside the targets is refused the same way, and nothing is stored.
    let (st, v) =
        call(&app, "POST", "/api/v1/jobs", Some(http_job("evil", json!({"url": "http://localhost:6379/"})))).await;
    refused(
        st,
        &v,
        forbidden,
        "forbidden_target",
        "localhost:6379 is not an allowed target (allowed: hooks.example.com, 10.0.0.0/8)",
    );
    assert!(s.get_job("evil").await.is_err());
    // An invalid URL is a 422 before the targets are looked at.
    let (st, v) =
        call(&app, "POST", "/api/v1/jobs", Some(http_job("evil", json!({"url": "file:///etc/passwd"})))).await;
    refused(st, &v, unprocessable, "invalid", "\"file\" URLs are not allowed");

    // Allowed targets pass, the restored secrets with them.
    let (st, v) =
        call(&app, "PATCH", "/api/v1/jobs/notify", Some(with("url", json!("http://10.1.2.3:8080/hook")))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let stored = s.get_job("notify").await.unwrap();
    assert_eq!(stored.args["url"], "http://10.1.2.3:8080/hook");
    assert_eq!(stored.args["headers"]["Authorization"], "Bearer sekrit");
    // A PATCH without args does not re-judge the stored ones (hook's URL is
    // outside the targets, and holds a password: it came from elsewhere).
    let (st, v) = call(&app, "PATCH", "/api/v1/jobs/hook", Some(json!({"name": "Hook"}))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

// ---- Reads show no secrets ----

const SECRETS: [&str; 6] = ["hunter2", "sekrit", "t0ken", "c00kie", "pa55word", "k3y"];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret:?}: {text}");
    }
}

#[tokio::test]
async fn reads_redact_env_and_credential_headers_everywhere() {
    let s = jobs().await;
    let app = app(&s);
    let (_, list) = call(&app, "GET", "/api/v1/jobs", None).await;
    assert_no_secret("the job list", &list.to_string());
    let deploy = list.as_array().unwrap().iter().find(|j| j["id"] == "deploy").unwrap();
    assert_eq!(deploy["args"]["env"], json!({"DB_PASSWORD": "<redacted>", "MODE": "<redacted>"}));
    assert_eq!(deploy["args"]["argv"], json!(["./deploy.sh"]), "what runs is shown");
    let hook = list.as_array().unwrap().iter().find(|j| j["id"] == "hook").unwrap();
    assert_eq!(hook["args"]["headers"]["Authorization"], "<redacted>");
    assert_eq!(hook["args"]["headers"]["Accept"], "text/plain", "harmless headers are shown");
    assert_eq!(hook["args"]["url"], "https://ops:<redacted>@hooks.example.com/x?api_key=<redacted>&page=1");

    for (method, uri, body) in [
        ("GET", "/api/v1/jobs/deploy", None),
        ("GET", "/api/v1/jobs/hook", None),
        ("POST", "/api/v1/jobs/hook/pause", None),
        ("POST", "/api/v1/jobs/hook/resume", None),
        ("POST", "/api/v1/jobs/deploy/reschedule", Some(json!({"trigger": {"type": "cron", "expr": "0 5 * * *"}}))),
        ("PATCH", "/api/v1/jobs/deploy", Some(json!({"name": "Deploy"}))),
        ("PATCH", "/api/v1/jobs/hook", Some(json!({"name": "Hook"}))),
        ("GET", "/", None),
        ("GET", "/jobs/deploy", None),
        ("GET", "/jobs/hook", None),
        ("GET", "/metrics", None),
        ("DELETE", "/api/v1/jobs/hook", None),
    ] {
        let (st, v) = call(&app, method, uri, body).await;
        assert!(st.is_success(), "{method} {uri}: {st} {v}");
        assert_no_secret(&format!("{method} {uri}"), &v.to_string());
    }
}

#[tokio::test]
async fn sending_back_what_was_read_keeps_the_stored_secrets() {
    let s = jobs().await;
    let app = app(&s);
    // The stored URL holds a password, which the http task refuses (and
    // which the API therefore will not store again): the restored args are
    // checked, and the refusal does not quote them.
    let (_, read) = call(&app, "GET", "/api/v1/jobs/hook", None).await;
    let (st, v) = call(&app, "PATCH", "/api/v1/jobs/hook", Some(json!({"args": read["job"]["args"]}))).await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("user name or password"), "{v}");
    assert_no_secret("the refusal", &v.to_string());
    // With the secret in the query instead, what was read goes back as is.
    let mut stored = s.get_job("hook").await.unwrap().args;
    stored["url"] = json!("https://hooks.example.com/x?api_key=k3y&page=1");
    let patch = chime_core::JobPatch { args: Some(stored), ..Default::default() };
    s.modify_job("hook", patch).await.unwrap();
    let (_, read) = call(&app, "GET", "/api/v1/jobs/hook", None).await;
    let mut args = read["job"]["args"].clone();
    assert_no_secret("the read", &args.to_string());
    args["method"] = json!("PUT");
    let (st, v) = call(&app, "PATCH", "/api/v1/jobs/hook", Some(json!({"args": args}))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let stored = s.get_job("hook").await.unwrap().args;
    assert_eq!(stored["method"], "PUT");
    assert_eq!(stored["headers"]["Authorization"], "Bearer sekrit", "the secret is kept, not overwritten");
    assert_eq!(stored["url"], "https://hooks.example.com/x?api_key=k3y&page=1");
    // A placeholder with nothing behind it is refused.
    let (st, v) = call(
        &app,
        "PATCH",
        "/api/v1/jobs/hook",
        Some(json!({"args": {"url": "http://x/", "headers": {"X-Secret": "<redacted>"}}})),
    )
    .await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid"));
}

#[tokio::test]
async fn a_read_token_closes_reads_but_not_health() {
    let s = jobs().await;
    let app = chime_web::router(
        chime_web::Handle::new(s.clone()).with_token(Some(TOKEN.into())).unwrap().with_read_token(true),
    );
    for uri in [
        "/api/v1/jobs",
        "/api/v1/jobs/deploy",
        "/api/v1/runs",
        "/api/v1/stats",
        "/api/v1/jobs/deploy/stats",
        "/",
        "/jobs/deploy",
        "/metrics",
    ] {
        let (st, _, v) = send(&app, "GET", uri, &[], "").await;
        assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"), "GET {uri}");
        let (st, _, _) = send(&app, "GET", uri, &[("authorization", "Bearer wrong-but-long-enough")], "").await;
        assert_eq!(st, StatusCode::FORBIDDEN, "GET {uri}");
        let (st, _, _) = send(&app, "GET", uri, &[("authorization", &format!("bearer {TOKEN}"))], "").await;
        assert_eq!(st, StatusCode::OK, "GET {uri}");
    }
    let (st, _, _) = send(&app, "GET", "/api/v1/openapi.json", &[], "").await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, v) = send(&app, "GET", "/health", &[], "").await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("unhealthy")), "open, and honest");
    // Without read_token, reads stay open.
    let (st, _, _) = send(
        &chime_web::router(chime_web::Handle::new(s).with_token(Some(TOKEN.into())).unwrap()),
        "GET",
        "/api/v1/jobs",
        &[],
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
}

// ---- Input that hurts ----

#[tokio::test]
async fn weak_tokens_are_refused_and_bearer_is_case_insensitive() {
    let s = jobs().await;
    for bad in ["", " ", "\t\n", "s3cret", "fifteen-bytes!!"] {
        let e = chime_web::Handle::new(s.clone()).with_token(Some(bad.into())).unwrap_err();
        assert!(e.to_string().contains("16"), "{e}");
    }
    let app = chime_web::router(chime_web::Handle::new(s.clone()).with_token(Some(TOKEN.into())).unwrap());
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {TOKEN}");
        let (st, _, v) = send(&app, "POST", "/api/v1/jobs/report/pause", &[("authorization", &auth)], "").await;
        assert_eq!(st, StatusCode::OK, "{scheme}: {v}");
        s.resume_job("report").await.unwrap();
    }
    for auth in
        [format!("Basic {TOKEN}"), format!("Bearer{TOKEN}"), "Bearer  ".into(), format!("Bearer {}", &TOKEN[1..])]
    {
        let (st, _, _) = send(&app, "POST", "/api/v1/jobs/report/pause", &[("authorization", &auth)], "").await;
        assert!(matches!(st, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN), "{auth}: {st}");
    }
    assert_eq!(paused(&s, "report").await, None);
}

#[tokio::test]
async fn offsets_and_limits_are_range_checked() {
    let s = jobs().await;
    let app = app(&s);
    for uri in [
        "/api/v1/jobs?limit=1001",
        "/api/v1/jobs?limit=0",
        "/api/v1/jobs?offset=1000001",
        "/api/v1/jobs?offset=9223372036854775808",
        "/api/v1/jobs?offset=18446744073709551615",
        "/api/v1/jobs?offset=99999999999999999999",
        "/api/v1/jobs?offset=-1",
        "/api/v1/runs?limit=5000",
        "/api/v1/runs?offset=9223372036854775808",
        "/api/v1/jobs/report?next=101",
    ] {
        let (st, v) = call(&app, "GET", uri, None).await;
        assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "malformed"), "{uri}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    for uri in
        ["/api/v1/jobs?limit=1000&offset=1000000", "/api/v1/runs?limit=1&offset=0", "/api/v1/jobs/report?next=100"]
    {
        let (st, v) = call(&app, "GET", uri, None).await;
        assert_eq!(st, StatusCode::OK, "{uri}: {v}");
    }
}

#[tokio::test]
async fn wrong_methods_and_bad_paths_answer_in_the_error_shape() {
    let s = jobs().await;
    let app = app(&s);
    for (method, uri, status, expected) in [
        ("PUT", "/api/v1/jobs", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ("DELETE", "/api/v1/jobs/report/pause", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ("POST", "/health", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ("POST", "/", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ("GET", "/api/v1/jobs/%FF", StatusCode::BAD_REQUEST, "malformed"),
        ("POST", "/api/v1/jobs/%C3%28/pause", StatusCode::BAD_REQUEST, "malformed"),
        ("GET", "/jobs/%FF", StatusCode::BAD_REQUEST, "malformed"),
        ("GET", "/nowhere", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (st, v) = call(&app, method, uri, None).await;
        assert_eq!((st, code(&v)), (status, expected), "{method} {uri}: {v}");
    }
    let (_, headers, _) = send(&app, "PUT", "/api/v1/jobs", &[], "").await;
    assert_eq!(
        headers.get("allow").map(|v| v.to_str().unwrap()),
        Some("GET,HEAD,POST"),
        "405 still says what is allowed"
    );
    let (st, v) = call(&app, "GET", "/health", None).await;
    assert_eq!((st, code(&v)), (StatusCode::SERVICE_UNAVAILABLE, "unhealthy"), "{v}");
    assert_eq!(v["error"]["message"], v["reason"]);
}

/// No page of the dashboard can be framed by another site's page, which
/// could lay it under its own and lead a click onto "Run now" or "Pause".
#[tokio::test]
async fn no_dashboard_page_can_be_framed() {
    let s = jobs().await;
    let app = app(&s);
    for page in ["/", "/runs", "/day", "/day?days=7", "/jobs/report"] {
        let (st, headers, _) = send(&app, "GET", page, &[("host", "127.0.0.1:8080")], "").await;
        assert_eq!(st, StatusCode::OK, "{page}");
        assert_eq!(headers.get("x-frame-options").map(|v| v.to_str().unwrap()), Some("DENY"), "{page}");
        assert_eq!(
            headers.get("content-security-policy").map(|v| v.to_str().unwrap()),
            Some("frame-ancestors 'none'"),
            "{page}"
        );
    }
}
