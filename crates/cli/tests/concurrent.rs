//! Writes from real processes at once: `chime serve` claims its jobs every
//! second on SQLite while four CLI processes pause and resume jobs as fast as
//! they can. No write may lose another: each job ends in the state its last
//! command gave it, the server's claims never undo a pause (nor a pause the
//! claim's advance), and nothing stored is lost.

mod common;

use std::time::Duration;

use common::{Server, chime, json, stderr, wait_for};
use jiff::{SignedDuration, Timestamp};

const WRITERS: usize = 4;
const ROUNDS: usize = 12;

fn config() -> String {
    let mut config = String::from("[scheduler]\ntimezone = \"UTC\"\nshutdown_grace = \"1s\"\n");
    for i in 0..WRITERS * 2 {
        config.push_str(&format!("[[job]]\nid = \"j{i}\"\nevery = \"1s\"\ncommand = [\"true\", \"{i}\"]\n"));
    }
    config
}

#[test]
fn pauses_and_resumes_racing_the_servers_claims_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("chime.toml"), config()).unwrap();
    let server = Server::start(d, &["--config", "chime.toml", "--store", "sqlite://chime.db", "--no-http"], &[]);
    wait_for("every job to have run", Duration::from_secs(30), || {
        json(d, &["jobs", "list"]).as_array().unwrap().iter().all(|j| !j["state"]["last_run_at"].is_null())
    });

    // Writer w owns j{2w} (ends paused) and j{2w+1} (ends running), and
    // flips both every round while the server claims them every second.
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            scope.spawn(move || {
                let (stays_paused, ends_active) = (format!("j{}", 2 * w), format!("j{}", 2 * w + 1));
                let run = |args: &[&str]| {
                    let out = chime(d, args);
                    assert!(out.status.success(), "writer {w}: chime {args:?}: {}", stderr(&out));
                };
                for round in 0..ROUNDS {
                    for job in [&stays_paused, &ends_active] {
                        run(&["jobs", "pause", job, "--reason", &format!("w{w} round {round}")]);
                        run(&["jobs", "resume", job]);
                    }
                }
                run(&["jobs", "pause", &stays_paused, "--reason", &format!("w{w} final")]);
            });
        }
    });
    let paused_at = Timestamp::now();

    let check = |when: &str| {
        let jobs = json(d, &["jobs", "list"]);
        let jobs = jobs.as_array().unwrap();
        assert_eq!(jobs.len(), WRITERS * 2, "{when}: every job is still stored");
        for w in 0..WRITERS {
            let find = |id: String| jobs.iter().find(|j| j["id"] == id.as_str()).unwrap().clone();
            let paused = find(format!("j{}", 2 * w));
            assert_eq!(paused["state"]["paused"], format!("w{w} final"), "{when}: the last pause stands: {paused}");
            assert!(paused["state"]["next_run_at"].is_null(), "{when}: a paused job has no next run: {paused}");
            let active = find(format!("j{}", 2 * w + 1));
            assert!(active["state"]["paused"].is_null(), "{when}: the last resume stands: {active}");
            assert!(!active["state"]["next_run_at"].is_null(), "{when}: a resumed job has a next run: {active}");
            for job in [&paused, &active] {
                let i = job["id"].as_str().unwrap()[1..].to_owned();
                assert_eq!(job["args"]["argv"], serde_json::json!(["true", i]), "{when}: the definition is untouched");
            }
        }
    };
    check("right after the writers");
    // Two seconds of claims later the pauses still hold, and the active jobs run on.
    let before: Vec<usize> = (0..WRITERS).map(|w| runs(d, &format!("j{}", 2 * w + 1))).collect();
    wait_for("the resumed jobs to run again", Duration::from_secs(20), || {
        (0..WRITERS).all(|w| runs(d, &format!("j{}", 2 * w + 1)) > before[w] + 1)
    });
    check("after the server's next claims");
    for w in 0..WRITERS {
        let history = json(d, &["history", "--job", &format!("j{}", 2 * w), "--limit", "1000"]);
        let late: Vec<&serde_json::Value> = history
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["scheduled_for"].as_str().unwrap().parse::<Timestamp>().unwrap()
                    > paused_at + SignedDuration::from_millis(1500)
            })
            .collect();
        assert!(late.is_empty(), "j{} ran after its final pause: {late:?}", 2 * w);
    }
    let out = server.stop();
    assert!(out.contains("stopped"), "{out}");
}

/// How many runs `job` has in the history.
fn runs(dir: &std::path::Path, job: &str) -> usize {
    json(dir, &["history", "--job", job, "--limit", "100000"]).as_array().unwrap().len()
}
