//! The nodes sharing the store, in `GET /api/v1/nodes`, on the dashboard
//! and in `/metrics`: leases measured against the scheduler's clock, this
//! node marked, and node ids (text an operator chose) escaped everywhere.

mod support;

use support::get;

use std::sync::Arc;

use axum::http::StatusCode;
use chime_core::{ConflictPolicy, Job, JobContext, ManualClock, NodeRegistration, Scheduler, TaskRegistry, Trigger};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// This node's id: a quote, a backslash and a newline, as a careless config
/// could give.
const THIS: &str = "web \"one\"\\\nsecond line";
/// Another node's: markup.
const OTHER: &str = "<b>other</b>";

const NOW: &str = "2026-01-01T00:00:00Z";

/// Registers `id` in `s`'s store `ago` before the clock's now, with a lease of `ttl`.
async fn register(s: &Scheduler, id: &str, host: &str, ago: i64, ttl: i64) {
    let now: Timestamp = NOW.parse().unwrap();
    let node = NodeRegistration { id: Arc::from(id), host: host.into(), pid: 4242, version: "0.0.9".into() };
    let at = now - SignedDuration::from_secs(ago);
    s.store().register_node(&node, SignedDuration::from_secs(ttl), at).await.unwrap();
}

/// A scheduler that is not started (no heartbeat or sweeper moves the
/// figures), with this node registered 3 s ago for 30 s and another whose
/// 16 s lease ran out 4 s ago.
async fn two_nodes() -> (Scheduler, axum::Router) {
    let clock = ManualClock::new(NOW.parse().unwrap());
    let s = Scheduler::builder().clock(clock).timezone("UTC").unwrap().node_id(THIS).build();
    register(&s, THIS, "host-a", 3, 30).await;
    register(&s, OTHER, "host-b", 20, 16).await;
    let app = chime_web::router(chime_web::Handle::new(s.clone()));
    (s, app)
}

#[tokio::test]
async fn the_api_lists_nodes_with_their_leases_by_the_schedulers_clock() {
    let (_s, app) = two_nodes().await;
    let (st, body) = get(&app, "/api/v1/nodes").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let nodes: Value = serde_json::from_str(&body).unwrap();
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    // Ordered by id: "<" sorts before "w".
    let (other, this) = (&nodes[0], &nodes[1]);
    assert_eq!(this["id"], THIS);
    assert_eq!(this["this_node"], true);
    assert_eq!(this["lease_left_s"], json!(27.0));
    assert_eq!(this["host"], "host-a");
    assert_eq!(this["pid"], 4242);
    assert_eq!(this["version"], "0.0.9");
    assert_eq!(this["running"], 0);
    assert_eq!(this["started_at"], "2025-12-31T23:59:57Z");
    assert_eq!(this["heartbeat_at"], "2025-12-31T23:59:57Z");
    assert_eq!(this["lease_expires_at"], "2026-01-01T00:00:27Z");
    assert!(this["epoch"].as_u64().is_some());
    assert_eq!(other["id"], OTHER);
    assert_eq!(other["this_node"], false);
    assert_eq!(other["lease_left_s"], json!(-4.0), "negative once expired");
}

#[tokio::test]
async fn the_dashboard_shows_the_nodes_escaped() {
    let (_s, app) = two_nodes().await;
    let (st, page) = get(&app, "/").await;
    assert_eq!(st, StatusCode::OK);
    let panel = &page[page.find("id=\"nodes\"").expect("a nodes panel")..];
    let panel = &panel[..panel.find("</table>").unwrap()];
    let rows: Vec<&str> = panel.split("<tr data-node=").skip(1).collect();
    assert_eq!(rows.len(), 2, "{panel}");
    let (other, this) = (rows[0], rows[1]);
    assert!(this.contains("this node") && this.contains("class=\"this-node\""), "{this}");
    assert!(!other.contains("this node"), "{other}");
    assert!(this.contains("3s ago"), "last heartbeat: {this}");
    assert!(this.contains("27s left"), "lease left: {this}");
    assert!(this.contains("host-a") && this.contains("0.0.9"), "{this}");
    assert!(other.contains("expired 4s ago"), "{other}");
    assert!(other.contains("20s ago"), "started and last heartbeat: {other}");
    // Escaped by askama, in the text and in the attribute alike.
    assert!(!page.contains(OTHER), "the other node's id is markup on the page");
    assert!(other.contains("&#60;b&#62;other&#60;/b&#62;"), "{other}");
    assert!(!page.contains("\"one\""), "a quote in the id closes no attribute");
    assert!(this.starts_with("\"web &#34;one&#34;\\\nsecond line\""), "{this}");
}

#[tokio::test]
async fn no_nodes_yet_says_so() {
    let clock = ManualClock::new(NOW.parse().unwrap());
    let s = Scheduler::builder().clock(clock).timezone("UTC").unwrap().node_id("idle").build();
    let app = chime_web::router(chime_web::Handle::new(s));
    let (_, page) = get(&app, "/").await;
    assert!(page.contains("No node holds a lease"), "{page}");
    let (_, body) = get(&app, "/api/v1/nodes").await;
    assert_eq!(body, "[]");
    let (_, text) = get(&app, "/metrics").await;
    assert!(text.contains("\nchime_nodes 0\n"), "{text}");
}

/// A sample: its metric name, its labels (unescaped) and its value.
type Sample = (String, Vec<(String, String)>, f64);

/// Every sample line of a text exposition; panics
/// on a line the format does not allow (a label value must escape `\`, `"`
/// and newlines).
fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value: {line:?}"));
        let name = &line[..name_end];
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "not a metric name: {line:?}"
        );
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            while !rest.starts_with('}') {
                let eq = rest.find("=\"").unwrap_or_else(|| panic!("bad label in {line:?}"));
                let key = rest[..eq].trim_start_matches(',').to_owned();
                let mut value = String::new();
                let mut chars = rest[eq + 2..].char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            other => panic!("bad escape {other:?} in {line:?}"),
                        },
                        Some((i, '"')) => break eq + 2 + i + 1,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value in {line:?}"),
                    }
                };
                labels.push((key, value));
                rest = &rest[end..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
            rest = &rest[1..];
        }
        let value = rest.trim().parse::<f64>().unwrap_or_else(|e| panic!("bad value in {line:?}: {e}"));
        out.push((name.to_owned(), labels, value));
    }
    out
}

#[tokio::test]
async fn metrics_give_each_nodes_lease_and_runs_escaped() {
    let (_s, app) = two_nodes().await;
    let (st, text) = get(&app, "/metrics").await;
    assert_eq!(st, StatusCode::OK);
    let samples = samples(&text);
    let find = |name: &str, node: Option<&str>| {
        samples
            .iter()
            .find(|(n, labels, _)| n == name && node.is_none_or(|id| labels == &[("node".to_owned(), id.to_owned())]))
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("no {name} for {node:?} in\n{text}"))
    };
    assert_eq!(find("chime_nodes", None), 2.0);
    assert_eq!(find("chime_node_lease_seconds_left", Some(THIS)), 27.0);
    assert_eq!(find("chime_node_lease_seconds_left", Some(OTHER)), -4.0);
    assert_eq!(find("chime_node_runs_in_flight", Some(THIS)), 0.0);
    assert_eq!(find("chime_node_runs_in_flight", Some(OTHER)), 0.0);
    // The raw text, escaped as the format says.
    assert!(
        text.contains("chime_node_lease_seconds_left{node=\"web \\\"one\\\"\\\\\\nsecond line\"} 27.0\n"),
        "{text}"
    );
    assert!(!text.lines().any(|l| l.starts_with("second line")), "a newline in an id breaks no line");
    for name in ["chime_nodes", "chime_node_lease_seconds_left", "chime_node_runs_in_flight"] {
        assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{name} is a gauge");
    }
}

#[tokio::test]
async fn runs_in_flight_are_counted_for_the_node_running_them() {
    let clock = ManualClock::new(NOW.parse().unwrap());
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut tasks = TaskRegistry::new();
    let g = Arc::clone(&gate);
    tasks.register("wait", move |_ctx: JobContext| {
        let g = Arc::clone(&g);
        async move {
            g.notified().await;
            Ok::<_, std::io::Error>(())
        }
    });
    let s = Scheduler::builder().tasks(tasks).clock(clock).timezone("UTC").unwrap().node_id(THIS).build();
    s.add_job(Job::new("slow", "wait", Trigger::cron("0 3 * * *").unwrap()).unwrap(), ConflictPolicy::Error)
        .await
        .unwrap();
    let app = chime_web::router(chime_web::Handle::new(s.clone()));
    s.start().unwrap();
    let mut events = s.subscribe();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.lease_epoch().is_none() {
        assert!(std::time::Instant::now() < deadline, "the node registered");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    s.run_job_now("slow").await.unwrap();
    while !matches!(events.recv().await.unwrap(), chime_core::Event::RunStarted { .. }) {}

    let (_, body) = get(&app, "/api/v1/nodes").await;
    let nodes: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
    assert_eq!(nodes[0]["running"], 1, "{nodes}");
    assert_eq!(nodes[0]["this_node"], true);
    assert_eq!(nodes[0]["epoch"], s.lease_epoch().unwrap());
    let (_, text) = get(&app, "/metrics").await;
    assert!(text.contains("chime_node_runs_in_flight{node=\"web \\\"one\\\"\\\\\\nsecond line\"} 1\n"), "{text}");
    let (_, page) = get(&app, "/").await;
    let panel = &page[page.find("id=\"nodes\"").unwrap()..];
    assert!(panel.contains("<td>1</td>"), "{panel}");

    gate.notify_waiters();
    s.shutdown(chime_core::ShutdownMode::Cancel).await;
}
