//! Just past the README's tour: what a new user meets next. A config-less
//! `chime serve` keeps what is stored; every listing command ends quietly
//! when its reader stops early (`| head -1`).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, chime, json, stdout, wait_for};

const TICK: &str = r#"
[scheduler]
timezone = "Europe/London"

[[job]]
id = "tick"
every = "1s"
command = ["sh", "-c", "echo tick"]

[[job]]
id = "morning"
cron = "0 9 * * *"
command = ["true"]

[[job]]
id = "tokyo"
cron = "* * * * * *"
timezone = "Asia/Tokyo"
command = ["true"]
"#;

fn args() -> Vec<&'static str> {
    vec!["--store", "sqlite://chime.db", "--no-http"]
}

fn with_history(dir: &std::path::Path) {
    std::fs::write(dir.join("chime.toml"), TICK).unwrap();
    let mut a = args();
    a.extend(["--config", "chime.toml"]);
    let server = Server::start(dir, &a, &[]);
    wait_for("three ticks", Duration::from_secs(20), || {
        json(dir, &["history", "--job", "tick"]).as_array().is_some_and(|r| r.len() >= 3)
    });
    server.stop();
}

#[test]
fn serve_without_a_config_keeps_the_history_and_the_jobs_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    with_history(d);
    let before = json(d, &["history", "--limit", "1000"]).as_array().unwrap().len();

    let out = Server::start(d, &args(), &[]);
    std::thread::sleep(Duration::from_secs(3));
    let out = out.stop();
    assert!(out.contains("no --config: serving the jobs stored in sqlite://chime.db as they are"), "{out}");
    assert!(out.contains("stopping: waiting up to 30s for running jobs"), "the documented default grace: {out}");
    let after = json(d, &["history", "--limit", "1000"]).as_array().unwrap().len();
    assert!(after > before, "no run was deleted and tick kept running: {before} then {after}");
    for job in json(d, &["jobs", "list"]).as_array().unwrap() {
        assert_eq!(job["status"], "active", "nothing paused as 'removed': {job}");
    }
}

#[test]
fn every_listing_command_ends_quietly_when_its_reader_stops() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    with_history(d);
    let commands: &[&[&str]] = &[
        &["history", "--limit", "5000"],
        &["history", "--json"],
        &["history", "--output"],
        &["jobs", "list"],
        &["jobs", "list", "--json"],
        &["jobs", "show", "tick"],
        &["jobs", "show", "tick", "--json"],
        &["jobs", "why", "tick"],
        &["jobs", "why", "tick", "--json"],
        &["nodes"],
        &["stats"],
        &["cron", "next", "* * * * * *", "-n", "100000"],
        &["cron", "explain", "0 9 * * *"],
    ];
    for args in commands {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chime"))
            .args(*args)
            .current_dir(d)
            .env_remove("DATABASE_URL")
            .env_remove("CHIME_STORE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before the first line
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "chime {args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "chime {args:?}: {err}");
    }
}

#[test]
fn jobs_show_prints_times_in_the_jobs_zone_and_history_shows_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    with_history(d);
    let show = stdout(&chime(d, &["jobs", "show", "morning"]));
    assert!(show.contains("Next 5 fire times (Europe/London):"), "{show}");
    assert!(show.contains(" 09:00:00 +00:00") || show.contains(" 09:00:00 +01:00"), "local time with offset: {show}");
    let history = stdout(&chime(d, &["history", "--job", "tick", "--output", "--limit", "1"]));
    assert!(history.contains("  | tick"), "the command's output under its run: {history}");

    // Every time a table shows carries its offset: the job's zone in its own
    // listing, UTC for runs across jobs.
    let show = stdout(&chime(d, &["jobs", "show", "tokyo"]));
    let runs = show.split_once("runs:").map_or("", |(_, r)| r);
    let rows: Vec<&str> = runs.lines().skip(2).collect();
    assert!(!rows.is_empty() && rows.iter().all(|r| r.contains(" +09:00 ")), "its runs in Tokyo time: {show}");
    let list = stdout(&chime(d, &["jobs", "list"]));
    let tokyo = list.lines().find(|l| l.starts_with("tokyo ")).unwrap();
    assert!(tokyo.contains(" +09:00 "), "NEXT and LAST in the job's zone: {list}");
    let history = stdout(&chime(d, &["history", "--job", "tokyo"]));
    assert!(history.lines().skip(1).all(|r| r.contains(" +00:00 ")), "history across jobs in UTC, said so: {history}");
}
