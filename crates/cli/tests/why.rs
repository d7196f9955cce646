//! `chime jobs why`: a job held up by its own long run says so in one line,
//! names the run, and lists each scheduled time; the JSON carries the codes.

mod common;

use std::time::Duration;

use common::{Server, chime, json, stderr, stdout, wait_for};

const CONFIG: &str = r#"
[[job]]
id = "slow"
every = "1s"
command = ["sleep", "30"]
"#;

#[test]
fn why_names_the_run_that_holds_up_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("chime.toml"), CONFIG).unwrap();
    let server = Server::start(d, &["--store", "sqlite://chime.db", "--no-http", "--config", "chime.toml"], &[]);
    wait_for("two skips behind the first run", Duration::from_secs(20), || {
        let runs = json(d, &["history", "--limit", "100"]);
        runs.as_array().unwrap().iter().filter(|r| r["status"] == "skipped").count() >= 2
    });
    let why = stdout(&chime(d, &["jobs", "why", "slow", "--store", "sqlite://chime.db"]));
    let answer = why.lines().next().unwrap();
    assert!(answer.starts_with("slow: the last "), "{why}");
    assert!(answer.contains(" were skipped because run ") && answer.contains(" has been running for "), "{why}");
    assert!(why.lines().nth(1).unwrap().starts_with("SCHEDULED "), "a table follows: {why}");
    assert!(why.lines().any(|l| l.contains(" running ") && l.contains("(attempt 1, node ")), "{why}");

    let answer = json(d, &["jobs", "why", "slow", "--since", "1h", "--store", "sqlite://chime.db"]);
    let times = answer["times"].as_array().unwrap();
    let running = times.iter().find(|t| t["outcome"] == "running").expect("the running time");
    let skipped = times.iter().find(|t| t["outcome"] == "skipped").expect("a skipped time");
    assert_eq!(skipped["reason"]["code"], "max_instances", "{skipped}");
    assert_eq!(skipped["reason"]["in_flight"][0], running["run"]["id"], "the skip names the running run");
    assert_eq!(times.last().unwrap()["outcome"], "not_yet_due");

    let bad = chime(d, &["jobs", "why", "slow", "--since", "next week", "--store", "sqlite://chime.db"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    assert!(stderr(&bad).contains("\"next week\" is neither an instant"), "{}", stderr(&bad));
    let missing = chime(d, &["jobs", "why", "nope", "--store", "sqlite://chime.db"]);
    assert!(stderr(&missing).contains("no job with id \"nope\""), "{}", stderr(&missing));
    drop(server); // killed: no need to wait out the sleep
}

#[test]
fn backfill_runs_the_times_the_scheduler_was_down_for_and_needs_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("chime.toml"), "[[job]]\nid = \"tick\"\nevery = \"1s\"\ncommand = [\"true\"]\n").unwrap();
    let args = ["--store", "sqlite://chime.db", "--no-http", "--config", "chime.toml"];
    let server = Server::start(d, &args, &[]);
    wait_for("a run", Duration::from_secs(20), || !json(d, &["history"]).as_array().unwrap().is_empty());
    server.stop();
    std::thread::sleep(Duration::from_millis(2500)); // down for two or three scheduled times

    let store = ["--store", "sqlite://chime.db"];
    let plan = json(d, &["jobs", "backfill", "tick", "--since", "1m", "--dry-run", store[0], store[1]]);
    let times = plan["times"].as_array().unwrap().clone();
    assert!(times.len() >= 2, "the times it was down for: {plan}");
    let refused = chime(d, &["jobs", "backfill", "tick", "--since", "1m", store[0], store[1]]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("no node of this store is alive"), "{}", stderr(&refused));

    let server = Server::start(d, &args, &[]);
    let queued = json(
        d,
        &[
            "jobs",
            "backfill",
            "tick",
            "--since",
            "1m",
            "--until",
            times.last().unwrap().as_str().unwrap(),
            store[0],
            store[1],
        ],
    );
    let queued: Vec<&str> = queued.as_array().unwrap().iter().map(|r| r["scheduled_for"].as_str().unwrap()).collect();
    let planned: Vec<&str> = times.iter().map(|t| t.as_str().unwrap()).collect();
    // The restarted server may have run the latest of them itself (coalesced).
    assert!(!queued.is_empty() && queued.iter().all(|t| planned.contains(t)), "{queued:?} of {planned:?}");
    assert!(queued.windows(2).all(|w| w[0] < w[1]), "oldest first: {queued:?}");
    let wanted = queued;
    wait_for("the backfill runs to succeed", Duration::from_secs(20), || {
        let runs = json(d, &["history", "--limit", "1000"]);
        let done: Vec<String> = runs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "backfill" && r["status"] == "succeeded")
            .map(|r| r["scheduled_for"].as_str().unwrap().to_owned())
            .collect();
        wanted.iter().all(|t| done.iter().any(|d| d == t))
    });
    server.stop();
}
