//! Node leases with real processes: `chime serve` killed with SIGKILL and
//! restarted in a "new container" (another `HOSTNAME`), frozen with SIGSTOP
//! past its lease while another server runs, and three servers started at
//! once on a new file. No sequence leaves a job that never runs again.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Server, chime, json, stderr, stdout, wait_for};
use serde_json::Value;

/// A job every 2 s whose runs take 20 s: with `max_instances = 1` a run stuck
/// as `running` would make every later fire `skipped`.
const SLOW: &str = r#"
[scheduler]
timezone = "UTC"
node_lease = "2s"
shutdown_grace = "1s"

[[job]]
id = "slow"
every = "2s"
command = ["sleep", "20"]

[[job]]
id = "quick"
every = "1s"
command = ["true"]
"#;

fn serve_args() -> Vec<&'static str> {
    vec!["--config", "chime.toml", "--store", "sqlite://chime.db", "--no-http"]
}

fn runs(dir: &Path, job: &str) -> Vec<Value> {
    json(dir, &["history", "--job", job, "--limit", "1000"]).as_array().unwrap().clone()
}

fn running_on(dir: &Path, job: &str, host_prefix: &str) -> Option<Value> {
    runs(dir, job)
        .into_iter()
        .find(|r| r["status"] == "running" && r["node"].as_str().is_some_and(|n| n.starts_with(host_prefix)))
}

#[test]
fn kill_9_then_a_restart_in_a_new_container_frees_the_stuck_job() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("chime.toml"), SLOW).unwrap();

    let old = Server::start(d, &serve_args(), &[("HOSTNAME", "container-a")]);
    wait_for("a slow run on container-a", Duration::from_secs(20), || running_on(d, "slow", "container-a-").is_some());
    let stuck = running_on(d, "slow", "container-a-").unwrap();
    old.signal("-KILL");
    drop(old);

    let _new = Server::start(d, &serve_args(), &[("HOSTNAME", "container-b")]);
    // Abandoned within one lease (2 s) of the old node's last heartbeat, plus
    // a heartbeat period of the new node; 20 s is for a loaded machine.
    wait_for("the stuck run to be abandoned", Duration::from_secs(20), || {
        runs(d, "slow").iter().any(|r| r["id"] == stuck["id"] && r["status"] == "abandoned")
    });
    wait_for("slow to run again, on container-b", Duration::from_secs(20), || {
        running_on(d, "slow", "container-b-").is_some()
    });
    let abandoned = runs(d, "slow").into_iter().find(|r| r["id"] == stuck["id"]).unwrap();
    let why = abandoned["error"].as_str().unwrap();
    assert!(why.contains("its node container-a-") && why.contains("stopped renewing its lease"), "{why}");

    let nodes = json(d, &["nodes"]);
    let hosts: Vec<&str> = nodes.as_array().unwrap().iter().map(|n| n["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["container-b"], "the dead node's lease is gone: {nodes}");
    let table = stdout(&chime(d, &["nodes"]));
    assert!(table.starts_with("ID ") && table.contains("LEASE LEFT") && table.contains("container-b"), "{table}");
}

#[test]
fn a_server_frozen_past_its_lease_is_taken_over_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("chime.toml"), SLOW).unwrap();

    let mut a_args = serve_args();
    a_args.extend(["--node-id", "node-a"]);
    let a = Server::start(d, &a_args, &[]);
    wait_for("a slow run on node-a", Duration::from_secs(20), || running_on(d, "slow", "node-a").is_some());
    let frozen = running_on(d, "slow", "node-a").unwrap();
    let mut b_args = serve_args();
    b_args.extend(["--node-id", "node-b"]);
    let _b = Server::start(d, &b_args, &[]);
    let epoch_before =
        json(d, &["nodes"]).as_array().unwrap().iter().find(|n| n["id"] == "node-a").unwrap()["epoch"].clone();

    // SQLite has one writer: a node frozen in the middle of a write
    // transaction holds the write lock, and no other node can write until it
    // thaws (PostgreSQL's store bounds that with
    // idle_in_transaction_session_timeout). So a freeze that lands in one is
    // thawed and tried again: the test is of a node frozen between writes.
    let abandoned = || runs(d, "slow").iter().any(|r| r["id"] == frozen["id"] && r["status"] == "abandoned");
    let mut taken_over = false;
    for _ in 0..3 {
        a.signal("-STOP");
        let deadline = std::time::Instant::now() + Duration::from_secs(12);
        while !abandoned() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if abandoned() {
            taken_over = true;
            break;
        }
        a.signal("-CONT");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(taken_over, "node-b never abandoned node-a's run, in three freezes of node-a");
    wait_for("slow to run on node-b", Duration::from_secs(20), || running_on(d, "slow", "node-b").is_some());
    a.signal("-CONT");

    // node-a learns it lost its lease, cancels its run (a late result, not a
    // new status) and registers again under a new epoch.
    wait_for("node-a's late result", Duration::from_secs(20), || {
        runs(d, "slow").iter().any(|r| r["id"] == frozen["id"] && r["late_result"].is_string())
    });
    wait_for("node-a to rejoin", Duration::from_secs(20), || {
        json(d, &["nodes"])
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == "node-a" && n["epoch"] != epoch_before && n["epoch"].is_u64())
    });
    let run = runs(d, "slow").into_iter().find(|r| r["id"] == frozen["id"]).unwrap();
    assert_eq!(run["status"], "abandoned", "the sweeper's decision stands: {run}");
    assert!(run["late_result"].as_str().unwrap().contains("after its lease was lost"), "{run}");

    // No scheduled time ran twice, and only one slow run is going.
    let all = runs(d, "slow");
    let mut times: Vec<&str> = all.iter().map(|r| r["scheduled_for"].as_str().unwrap()).collect();
    let n = times.len();
    times.sort();
    times.dedup();
    assert_eq!(times.len(), n, "a scheduled time has one run");
    let going = all.iter().filter(|r| r["status"] == "running" || r["status"] == "pending").count();
    assert!(going <= 1, "max_instances = 1 holds across both nodes: {all:?}");
    // quick goes on firing throughout.
    assert!(runs(d, "quick").iter().any(|r| r["status"] == "succeeded"));
}

#[test]
fn three_servers_started_at_once_on_a_new_file_all_come_up() {
    // Five times over: a pool connection that cached the schema while another
    // process was still migrating made sqlx's worker panic on its first
    // `SELECT *` in about one start of four, and that node never came up.
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut config = String::from("[scheduler]\ntimezone = \"UTC\"\n");
        for i in 0..30 {
            config.push_str(&format!("[[job]]\nid = \"j{i:03}\"\nevery = \"1h\"\ncommand = [\"true\"]\n"));
        }
        std::fs::write(d.join("chime.toml"), config).unwrap();
        let mut servers: Vec<Server> = (0..3).map(|_| Server::spawn(d, &serve_args(), &[])).collect();
        wait_for("three nodes", Duration::from_secs(30), || {
            d.join("chime.db").exists()
                && chime(d, &["nodes", "--json"]).status.success()
                && json(d, &["nodes"]).as_array().is_some_and(|n| n.len() == 3)
        });
        for s in &mut servers {
            assert!(s.child.try_wait().unwrap().is_none(), "every server is still running: {}", s.output());
        }
        assert_eq!(json(d, &["jobs", "list"]).as_array().unwrap().len(), 30);
    }
}

#[test]
fn one_hand_edited_row_does_not_stop_a_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("chime.toml"),
        "[[job]]\nid = \"a\"\nevery = \"1h\"\ncommand = [\"true\"]\n[[job]]\nid = \"b\"\nevery = \"1h\"\ncommand = [\"true\"]\n",
    )
    .unwrap();
    Server::start(d, &serve_args(), &[]).stop();
    // A job not in the config, and one that is, both edited by hand into rows no chime can read.
    assert!(chime(d, &["jobs", "list"]).status.success());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", d.join("chime.db").display())).await.unwrap();
        sqlx::query("INSERT INTO chime_job (id, task, args, trigger, options, next_run_at, version) SELECT 'c', task, args, trigger, options, next_run_at, 1 FROM chime_job WHERE id = 'a'")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("UPDATE chime_job SET trigger = '{\"type\":\"lunar\"}' WHERE id IN ('b', 'c')").execute(&mut conn).await.unwrap();
    });
    let mut with_http: Vec<&str> = serve_args().into_iter().filter(|a| *a != "--no-http").collect();
    with_http.extend(["--listen", "127.0.0.1:0"]);
    let second = Server::start(d, &with_http, &[]);
    let addr = second.http_addr();
    let out = second.output();
    assert!(out.contains("repaired 1"), "{out}");
    // The broken row may be a command job: the API cannot swap it for another.
    let swap = r#"{"id": "c", "task": "http", "trigger": {"type": "interval", "every": "1h"}, "args": {"url": "http://127.0.0.1:9/"}, "replace": true}"#;
    let json_body = [("content-type", "application/json")];
    let answer = chime_testkit::http::request(&addr, "POST", "/api/v1/jobs", &json_body, swap).expect("an answer");
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(answer.body.contains("does not decode: it cannot be replaced over HTTP"), "{}", answer.body);
    assert!(out.contains("b: its stored row did not decode; replaced by the config's definition"), "{out}");
    assert!(out.contains("c: stored but does not decode"), "the other broken row is kept and reported: {out}");
    let ids: Vec<String> =
        json(d, &["jobs", "list"]).as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["a", "b"], "a and the repaired b are scheduled; c is kept aside");
}

#[test]
fn run_now_with_no_server_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("chime.toml"), SLOW).unwrap();
    Server::start(d, &serve_args(), &[]).stop();
    let out = chime(d, &["jobs", "run", "quick"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("no node of this store is alive"), "{}", stderr(&out));
    assert!(stderr(&out).contains("chime jobs run quick --here"), "{}", stderr(&out));
    assert!(json(d, &["nodes"]).as_array().unwrap().is_empty(), "a clean stop ends the lease at once");
}

#[test]
fn a_command_jobs_program_comes_back_from_the_config_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("chime.toml"), "[[job]]\nid = \"safe\"\nevery = \"1h\"\ncommand = [\"true\"]\n").unwrap();
    Server::start(d, &serve_args(), &[]).stop();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", d.join("chime.db").display())).await.unwrap();
        // The definition's hash is left alone: only what it runs is changed.
        sqlx::query("UPDATE chime_job SET args = '{\"argv\":[\"sh\",\"-c\",\"touch pwned\"]}' WHERE id = 'safe'")
            .execute(&mut conn)
            .await
            .unwrap();
    });
    let out = Server::start(d, &serve_args(), &[]).stop();
    assert!(out.contains("safe: its stored program differed from the config's; the config's is back"), "{out}");
    let shown = json(d, &["jobs", "show", "safe"]);
    assert_eq!(shown["job"]["args"]["argv"], serde_json::json!(["true"]), "{shown}");

    // A row turned into another task by hand is put back too.
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", d.join("chime.db").display())).await.unwrap();
        sqlx::query("UPDATE chime_job SET task = 'http', args = '{\"url\":\"http://127.0.0.1:9/\"}' WHERE id = 'safe'")
            .execute(&mut conn)
            .await
            .unwrap();
    });
    let out = Server::start(d, &serve_args(), &[]).stop();
    assert!(out.contains("safe: its stored program differed from the config's; the config's is back"), "{out}");
    let shown = json(d, &["jobs", "show", "safe"]);
    assert_eq!(
        (&shown["job"]["task"], &shown["job"]["args"]["argv"]),
        (&serde_json::json!("command"), &serde_json::json!(["true"])),
        "{shown}"
    );
}

#[test]
fn listings_redact_secrets_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("chime.toml"),
        "[[job]]\nid = \"db\"\nevery = \"1h\"\ncommand = [\"true\"]\nenv = { DB_PASSWORD = \"hunter2\" }\n",
    )
    .unwrap();
    Server::start(d, &serve_args(), &[]).stop();
    for args in [&["jobs", "list", "--json"][..], &["jobs", "show", "db", "--json"], &["jobs", "show", "db"]] {
        let out = stdout(&chime(d, args));
        assert!(!out.contains("hunter2") && out.contains("<redacted>"), "chime {args:?}: {out}");
    }
    let out = stdout(&chime(d, &["jobs", "show", "db", "--json", "--show-secrets"]));
    assert!(out.contains("hunter2"), "{out}");
}
