//! A job in alert says so in `chime jobs list` (STATUS `alerting`) and
//! `chime jobs show` (the reason), and in their JSON; a healthy job does not.

mod common;

use std::time::Duration;

use common::{Server, chime, json, stdout, wait_for};

const CONFIG: &str = r#"
[[job]]
id = "flaky"
every = "1s"
command = ["sh", "-c", "echo 'disk full' >&2; exit 3"]
alert_on_failures = 2

[[job]]
id = "fine"
every = "1s"
command = ["true"]
alert_on_failures = 2
alert_after = "1h"
"#;

#[test]
fn an_alerting_job_is_shown_so_in_list_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("chime.toml"), CONFIG).unwrap();
    let server = Server::start(d, &["--store", "sqlite://chime.db", "--no-http", "--config", "chime.toml"], &[]);
    wait_for("two failures and a success", Duration::from_secs(20), || {
        let runs = json(d, &["history", "--limit", "1000"]);
        let runs = runs.as_array().unwrap();
        let n = |job: &str, status: &str| runs.iter().filter(|r| r["job_id"] == job && r["status"] == status).count();
        n("flaky", "failed") >= 2 && n("fine", "succeeded") >= 1
    });
    server.stop();

    let list = stdout(&chime(d, &["jobs", "list", "--store", "sqlite://chime.db"]));
    let line =
        |id: &str| list.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("{id} in {list}")).to_owned();
    assert!(line("flaky").ends_with("alerting (last failed)"), "{list}");
    assert!(line("fine").ends_with("active (last succeeded)"), "{list}");

    let show = stdout(&chime(d, &["jobs", "show", "flaky", "--store", "sqlite://chime.db"]));
    assert!(show.contains("  status    alerting\n"), "{show}");
    let alert = show.lines().find(|l| l.starts_with("  alert     ")).unwrap_or_else(|| panic!("{show}"));
    assert!(alert.contains("consecutive failures (alert_on_failures 2); last error: "), "{alert}");
    assert!(alert.contains("disk full") || alert.contains("exit"), "the last error: {alert}");

    let jobs = json(d, &["jobs", "list", "--store", "sqlite://chime.db"]);
    let flaky = jobs.as_array().unwrap().iter().find(|j| j["id"] == "flaky").unwrap();
    assert!(flaky["alert"]["reason"].as_str().unwrap().contains("consecutive failures"), "{flaky}");
    let fine = jobs.as_array().unwrap().iter().find(|j| j["id"] == "fine").unwrap();
    assert!(fine.get("alert").is_none(), "{fine}");
    let shown = json(d, &["jobs", "show", "fine", "--store", "sqlite://chime.db"]);
    assert!(shown["alert"].is_null(), "{shown}");
}
