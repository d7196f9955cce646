//! The OpenAPI document is the truth: every route's real answers, 2xx and
//! errors, validate against the schema the document gives for that status.
//!
//! The checker is a small subset of JSON Schema (what the document uses):
//! `$ref`, `type` (one or a list), `enum`, `required`, `properties`,
//! `additionalProperties`, `items`, `minimum`, `maximum`, `format:
//! date-time`, `oneOf`, `anyOf`. It refuses any other keyword, so the
//! document cannot quietly grow a rule nobody checks.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chime_core::{ConflictPolicy, Job, JobContext, ManualClock, Scheduler, TaskRegistry, Trigger};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const DOC: &str = include_str!("../src/openapi.json");

/// Why `value` does not match `schema` (empty when it does).
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        errors.push(format!("{at}: the schema is not an object"));
        return;
    };
    for (keyword, rule) in schema {
        match keyword.as_str() {
            "$ref" => {
                let target = rule.as_str().and_then(|r| r.strip_prefix('#')).and_then(|p| doc.pointer(p));
                match target {
                    Some(target) => check(doc, target, value, at, errors),
                    None => errors.push(format!("{at}: unresolved $ref {rule}")),
                }
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                let fits = |t: &str| match t {
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "integer" => value.is_i64() || value.is_u64(),
                    "number" => value.is_number(),
                    "boolean" => value.is_boolean(),
                    "null" => value.is_null(),
                    other => panic!("unknown type {other}"),
                };
                if !types.iter().any(|t| fits(t)) {
                    errors.push(format!("{at}: {value} is not of type {rule}"));
                }
            }
            "enum" => {
                if !rule.as_array().is_some_and(|options| options.contains(value)) {
                    errors.push(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "required" => {
                if let Some(object) = value.as_object() {
                    for key in rule.as_array().unwrap().iter().filter_map(Value::as_str) {
                        if !object.contains_key(key) {
                            errors.push(format!("{at}: the required field {key:?} is missing"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(object) = value.as_object() {
                    for (key, sub) in rule.as_object().unwrap() {
                        if let Some(v) = object.get(key) {
                            check(doc, sub, v, &format!("{at}.{key}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                let known = schema.get("properties").and_then(Value::as_object);
                if let Some(object) = value.as_object() {
                    for (key, v) in object {
                        if known.is_some_and(|k| k.contains_key(key)) {
                            continue;
                        }
                        match rule {
                            Value::Bool(false) => errors.push(format!("{at}: unexpected field {key:?}")),
                            Value::Bool(true) => {}
                            sub => check(doc, sub, v, &format!("{at}.{key}"), errors),
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, v) in items.iter().enumerate() {
                        check(doc, rule, v, &format!("{at}[{i}]"), errors);
                    }
                }
            }
            "minimum" | "maximum" => {
                if let (Some(v), Some(bound)) = (value.as_f64(), rule.as_f64()) {
                    let fine = if keyword == "minimum" { v >= bound } else { v <= bound };
                    if !fine {
                        errors.push(format!("{at}: {v} is beyond the {keyword} {bound}"));
                    }
                }
            }
            "format" => {
                assert_eq!(rule, "date-time", "{at}: only date-time is checked");
                if let Some(s) = value.as_str()
                    && s.parse::<jiff::Timestamp>().is_err()
                {
                    errors.push(format!("{at}: {s:?} is not an RFC 3339 instant"));
                }
            }
            "oneOf" | "anyOf" => {
                let passing = rule
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|sub| {
                        let mut e = Vec::new();
                        check(doc, sub, value, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                if passing == 0 || (keyword == "oneOf" && passing > 1) {
                    errors.push(format!("{at}: {value} matches {passing} of the {keyword} schemas"));
                }
            }
            "description" | "default" | "title" | "example" => {}
            other => panic!("{at}: the checker does not know the keyword {other:?}; teach it or drop the keyword"),
        }
    }
}

struct Api {
    doc: Value,
    app: axum::Router,
    /// (document path, method) of each operation a 2xx answer was checked for.
    covered: BTreeSet<(String, String)>,
}

impl Api {
    /// Calls `method uri` (`path` is its route in the document), checks
    /// that the status is documented for the operation and that the body
    /// validates against that status's schema; returns the status and body.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if !headers.iter().any(|(k, _)| *k == "host") {
            req = req.header("host", "127.0.0.1:8080");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let res = self.app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = res.status();
        let content_type =
            res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let mut operation = &self.doc["paths"][path][method.to_ascii_lowercase()];
        if !operation.is_object() && status == StatusCode::METHOD_NOT_ALLOWED {
            // A method the path does not have: the 405 its operations document.
            operation = self.doc["paths"][path].as_object().unwrap().values().find(|o| o.is_object()).unwrap();
        }
        assert!(operation.is_object(), "{method} {path} is not in the document");
        let mut response = &operation["responses"][status.as_str()];
        assert!(response.is_object(), "{method} {uri} answered {status}, which the document does not list");
        if let Some(target) = response.get("$ref").and_then(Value::as_str) {
            response = self.doc.pointer(&target[1..]).unwrap();
        }
        let (media, schema) = response["content"].as_object().unwrap().iter().next().unwrap();
        assert!(content_type.starts_with(media.as_str()), "{method} {uri}: {content_type} is not {media}");
        let value = if media == "application/json" {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method} {uri}: not JSON: {e}"))
        } else {
            Value::String(String::from_utf8(bytes.to_vec()).unwrap())
        };
        let mut errors = Vec::new();
        check(&self.doc, &schema["schema"], &value, "$", &mut errors);
        assert!(errors.is_empty(), "{method} {uri} {status}: {errors:#?}\n{value:#}");
        if status.is_success() {
            self.covered.insert((path.to_owned(), method.to_ascii_lowercase()));
        }
        (status, value)
    }
}

#[tokio::test]
async fn every_route_answers_as_the_document_says() {
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let mut tasks = TaskRegistry::new();
    for task in ["noop", "command"] {
        tasks.register(task, |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    }
    let s = Scheduler::builder().tasks(tasks).clock(clock).timezone("UTC").unwrap().node_id("openapi").build();
    let deploy = Job::new("deploy", "command", Trigger::cron("0 3 * * *").unwrap())
        .unwrap()
        .with_args(json!({"argv": ["true"], "env": {"SECRET": "x"}}));
    s.add_job(deploy, ConflictPolicy::Error).await.unwrap();
    let mut api = Api {
        doc: serde_json::from_str(DOC).unwrap(),
        app: chime_web::router(chime_web::Handle::new(s.clone())),
        covered: BTreeSet::new(),
    };

    // Before the loop runs: unhealthy, in the documented shape.
    let (st, _) = api.call("GET", "/health", "/health", None, &[]).await;
    api.call("GET", "/health", "/health?jobs=true", None, &[]).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    s.start().unwrap();
    let start = std::time::Instant::now();
    while api.call("GET", "/health", "/health", None, &[]).await.0 != StatusCode::OK {
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        tokio::task::yield_now().await;
    }

    let new = json!({"id": "ping", "task": "noop", "trigger": {"type": "interval", "every": "5m"},
        "options": {"max_instances": 2, "timeout": "30s", "retry": {"max_attempts": 3, "backoff": "1s"}}});
    let (st, _) = api.call("POST", "/api/v1/jobs", "/api/v1/jobs", Some(new), &[]).await;
    assert_eq!(st, StatusCode::CREATED);
    api.call("GET", "/api/v1/jobs", "/api/v1/jobs", None, &[]).await;
    api.call("GET", "/api/v1/jobs/{id}", "/api/v1/jobs/ping?next=3", None, &[]).await;
    api.call("PATCH", "/api/v1/jobs/{id}", "/api/v1/jobs/ping", Some(json!({"name": "Ping"})), &[]).await;
    api.call("POST", "/api/v1/jobs/{id}/pause", "/api/v1/jobs/ping/pause", Some(json!({"reason": "x"})), &[]).await;
    api.call("POST", "/api/v1/jobs/{id}/resume", "/api/v1/jobs/ping/resume", None, &[]).await;
    let trigger = json!({"trigger": {"type": "date", "at": "2026-06-01T00:00:00Z"}});
    api.call("POST", "/api/v1/jobs/{id}/reschedule", "/api/v1/jobs/ping/reschedule", Some(trigger), &[]).await;
    let mut events = s.subscribe();
    let (st, _) = api.call("POST", "/api/v1/jobs/{id}/run", "/api/v1/jobs/ping/run", None, &[]).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    while !matches!(events.recv().await.unwrap(), chime_core::Event::RunSucceeded { .. }) {}
    let (_, runs) = api.call("GET", "/api/v1/runs", "/api/v1/runs?job=ping", None, &[]).await;
    assert_eq!(runs[0]["status"], "succeeded", "a finished run was checked");
    api.call("GET", "/api/v1/jobs/{id}/stats", "/api/v1/jobs/ping/stats", None, &[]).await;
    let (_, why) = api.call("GET", "/api/v1/jobs/{id}/why", "/api/v1/jobs/ping/why?since=1h", None, &[]).await;
    assert!(why["answer"].as_str().unwrap().contains("succeeded"), "the run by hand was explained: {why}");
    let dry = json!({"since": "1h", "dry_run": true});
    let (st, plan) = api.call("POST", "/api/v1/jobs/{id}/backfill", "/api/v1/jobs/ping/backfill", Some(dry), &[]).await;
    assert_eq!((st, &plan["queued"]), (StatusCode::OK, &json!(false)), "{plan}");
    api.call("GET", "/api/v1/stats", "/api/v1/stats", None, &[]).await;
    let (_, nodes) = api.call("GET", "/api/v1/nodes", "/api/v1/nodes", None, &[]).await;
    assert_eq!(nodes[0]["this_node"], true, "a registered node was checked: {nodes}");
    api.call("POST", "/api/v1/scheduler/pause", "/api/v1/scheduler/pause", None, &[]).await;
    api.call("POST", "/api/v1/scheduler/resume", "/api/v1/scheduler/resume", None, &[]).await;
    api.call("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", None, &[]).await;
    api.call("GET", "/metrics", "/metrics", None, &[]).await;
    api.call("GET", "/api/v1/jobs/{id}", "/api/v1/jobs/deploy", None, &[]).await;
    api.call("DELETE", "/api/v1/jobs/{id}", "/api/v1/jobs/ping", None, &[]).await;

    // Errors, in the error shape, with statuses the document lists.
    type Case<'a> = (&'a str, &'a str, &'a str, Option<Value>, Vec<(&'a str, &'a str)>, StatusCode);
    let errors: Vec<Case> = vec![
        ("GET", "/api/v1/jobs/{id}", "/api/v1/jobs/nope", None, vec![], StatusCode::NOT_FOUND),
        ("GET", "/api/v1/jobs/{id}", "/api/v1/jobs/%FF", None, vec![], StatusCode::BAD_REQUEST),
        (
            "GET",
            "/api/v1/jobs/{id}/why",
            "/api/v1/jobs/deploy/why?since=tomorrow",
            None,
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        ("GET", "/api/v1/jobs/{id}/why", "/api/v1/jobs/nope/why", None, vec![], StatusCode::NOT_FOUND),
        (
            "POST",
            "/api/v1/jobs/{id}/backfill",
            "/api/v1/jobs/deploy/backfill",
            Some(json!({"until": "1h"})),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/jobs/{id}/backfill",
            "/api/v1/jobs/deploy/backfill",
            Some(json!({"since": "soon"})),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        ("GET", "/api/v1/jobs", "/api/v1/jobs?limit=5000", None, vec![], StatusCode::BAD_REQUEST),
        ("GET", "/api/v1/runs", "/api/v1/runs?offset=9223372036854775808", None, vec![], StatusCode::BAD_REQUEST),
        (
            "GET",
            "/api/v1/jobs",
            "/api/v1/jobs",
            None,
            vec![("host", "evil.example.com")],
            StatusCode::MISDIRECTED_REQUEST,
        ),
        ("POST", "/api/v1/jobs", "/api/v1/jobs", Some(json!({"id": "x"})), vec![], StatusCode::BAD_REQUEST),
        (
            "POST",
            "/api/v1/jobs",
            "/api/v1/jobs",
            Some(json!({"id": "x", "task": "command", "trigger": {"type": "interval", "every": "1h"}})),
            vec![],
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/api/v1/jobs/{id}/pause",
            "/api/v1/jobs/deploy/pause",
            None,
            vec![("origin", "http://evil.example.com")],
            StatusCode::FORBIDDEN,
        ),
        (
            "PATCH",
            "/api/v1/jobs/{id}",
            "/api/v1/jobs/deploy",
            Some(json!({"trigger": {"type": "cron", "expr": "0 7 * * *"}})),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            "PATCH",
            "/api/v1/jobs/{id}",
            "/api/v1/jobs/deploy",
            Some(json!({"args": {"argv": ["id"]}})),
            vec![],
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/api/v1/jobs",
            "/api/v1/jobs",
            Some(
                json!({"id": "x", "task": "http", "trigger": {"type": "interval", "every": "1h"}, "args": {"url": "file:///etc/passwd"}}),
            ),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/api/v1/jobs/{id}/reschedule",
            "/api/v1/jobs/deploy/reschedule",
            Some(json!({"trigger": {"type": "lunar"}})),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    let too_large = json!({"id": "x".repeat(70_000), "task": "noop"});
    let errors: Vec<Case> = errors
        .into_iter()
        .chain([
            ("PUT", "/api/v1/jobs", "/api/v1/jobs", None, vec![], StatusCode::METHOD_NOT_ALLOWED),
            ("DELETE", "/health", "/health", None, vec![], StatusCode::METHOD_NOT_ALLOWED),
            ("POST", "/api/v1/jobs", "/api/v1/jobs", Some(too_large), vec![], StatusCode::PAYLOAD_TOO_LARGE),
            (
                "POST",
                "/api/v1/jobs/{id}/pause",
                "/api/v1/jobs/deploy/pause",
                None,
                vec![("content-type", "text/plain")],
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
        ])
        .collect();
    for (method, path, uri, body, headers, expected) in errors {
        let (st, v) = api.call(method, path, uri, body, &headers).await;
        assert_eq!(st, expected, "{method} {uri}: {v}");
    }

    // With a token (and reads behind it): 401 and 403 in the documented shape.
    let token = "a-long-random-secret-token";
    let handle = chime_web::Handle::new(s.clone()).with_token(Some(token.into())).unwrap().with_read_token(true);
    let mut locked = Api { doc: api.doc.clone(), app: chime_web::router(handle), covered: BTreeSet::new() };
    let wrong = format!("Bearer {}", "x".repeat(token.len()));
    for (method, path, uri, headers, expected) in [
        ("POST", "/api/v1/scheduler/pause", "/api/v1/scheduler/pause", vec![], StatusCode::UNAUTHORIZED),
        ("GET", "/api/v1/runs", "/api/v1/runs", vec![], StatusCode::UNAUTHORIZED),
        ("GET", "/metrics", "/metrics", vec![], StatusCode::UNAUTHORIZED),
        ("GET", "/api/v1/jobs", "/api/v1/jobs", vec![("authorization", wrong.as_str())], StatusCode::FORBIDDEN),
    ] {
        let (st, v) = locked.call(method, path, uri, None, &headers).await;
        assert_eq!(st, expected, "{method} {uri} with a token set: {v}");
    }

    let documented: BTreeSet<(String, String)> = api.doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object().unwrap().keys().filter(|m| *m != "parameters").map(|m| (path.clone(), m.clone()))
        })
        .collect();
    let untested: Vec<_> = documented.difference(&api.covered).collect();
    assert!(untested.is_empty(), "operations with no 2xx answer checked: {untested:?}");
}

#[test]
fn the_checker_catches_a_wrong_answer() {
    let doc: Value = serde_json::from_str(DOC).unwrap();
    let job = json!({"$ref": "#/components/schemas/Job"});
    let mut errors = Vec::new();
    check(&doc, &job, &json!({"id": 1, "status": "sleepy"}), "$", &mut errors);
    assert!(errors.iter().any(|e| e.contains("\"task\" is missing")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("$.id")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("sleepy")), "{errors:?}");
    let mut errors = Vec::new();
    check(&doc, &json!({"type": "string", "format": "date-time"}), &json!("tomorrow"), "$", &mut errors);
    assert_eq!(errors.len(), 1);
}
