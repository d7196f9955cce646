//! `chime serve` and the job commands, run as a user would: the real binary
//! in a temporary directory, a server in one process and the CLI in others.

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn chime(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chime"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("CHIME_STORE")
        .output()
        .expect("the chime binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Kills the server if a test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CONFIG: &str = r#"
[scheduler]
timezone = "UTC"
shutdown_grace = "5s"

[[job]]
id = "tick"
name = "Tick"
every = "1s"
command = ["sh", "-c", "echo tick >> ticks.txt"]

[[job]]
id = "nightly"
cron = "0 3 * * *"
command = ["sh", "-c", "echo nightly >> nightly.txt"]

[[job]]
id = "fails"
cron = "0 4 * * *"
shell = true
command = "echo 'something broke' >&2; exit 3"
"#;

fn start_server(dir: &Path) -> Server {
    std::fs::write(dir.join("chime.toml"), CONFIG).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_chime"))
        .args(["serve", "--config", "chime.toml", "--store", "sqlite://chime.db"])
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("CHIME_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    wait_until("the server to sync its jobs", || {
        let out = chime(dir, &["jobs", "list", "--json"]);
        out.status.success()
            && serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .is_ok_and(|v| v.as_array().is_some_and(|a| a.len() == 3))
    });
    server
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

#[test]
fn serve_then_list_pause_run_and_inspect_from_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut server = start_server(d);

    // Listed, as JSON and as a table.
    let list = chime(d, &["jobs", "list", "--json"]);
    let jobs: serde_json::Value = serde_json::from_str(&stdout(&list)).unwrap();
    let ids: Vec<&str> = jobs.as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["fails", "nightly", "tick"]);
    assert_eq!(jobs[2]["trigger_description"], "every 1s");
    let table = stdout(&chime(d, &["jobs", "list"]));
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains("NEXT") && table.contains("LEFT") && table.contains("PASSED") && table.contains("STATUS"));

    // The server runs `tick` every second.
    wait_until("two ticks", || lines(&d.join("ticks.txt")) >= 2);

    // Paused from another process: the server stops running it.
    let out = chime(d, &["jobs", "pause", "tick", "--reason", "too chatty"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(1500));
    let ticks = lines(&d.join("ticks.txt"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(lines(&d.join("ticks.txt")), ticks, "no tick after the pause");
    assert!(stdout(&chime(d, &["jobs", "list"])).contains("paused: too chatty"));

    // Run now, executed by the server, waited for.
    let out = chime(d, &["jobs", "run", "nightly", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lines(&d.join("nightly.txt")), 1);
    // The schedule is unchanged: the next run is still 03:00.
    let show: serde_json::Value =
        serde_json::from_str(&stdout(&chime(d, &["jobs", "show", "nightly", "--json"]))).unwrap();
    assert!(show["job"]["state"]["next_run_at"].as_str().unwrap().ends_with("T03:00:00Z"), "{show}");
    assert_eq!(show["upcoming"].as_array().unwrap().len(), 5);

    // A failing command: exit 1, and its status and output in history.
    let out = chime(d, &["jobs", "run", "fails", "--wait"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("exit status 3; output: something broke"), "{}", stderr(&out));
    let history: serde_json::Value =
        serde_json::from_str(&stdout(&chime(d, &["history", "--job", "fails", "--json"]))).unwrap();
    assert_eq!(history[0]["status"], "failed");
    assert_eq!(history[0]["error"], "exit status 3; output: something broke");
    assert_eq!(history[0]["output"], "something broke");
    let nightly: serde_json::Value =
        serde_json::from_str(&stdout(&chime(d, &["history", "--job", "nightly", "--json"]))).unwrap();
    assert_eq!(nightly[0]["status"], "succeeded");
    assert_eq!(
        nightly[0]["output"],
        serde_json::Value::Null,
        "the nightly command prints nothing: it appends to a file"
    );
    let failed = stdout(&chime(d, &["history", "--status", "failed"]));
    assert!(failed.contains("fails") && !failed.contains("nightly"), "{failed}");

    // Resume, reschedule, stats.
    assert!(chime(d, &["jobs", "resume", "tick"]).status.success());
    let out = chime(d, &["jobs", "reschedule", "nightly", "--cron", "15 2 * * *"]);
    assert!(stdout(&out).contains("At 02:15 (UTC)"), "{}", stdout(&out));
    let stats: serde_json::Value = serde_json::from_str(&stdout(&chime(d, &["stats", "fails", "--json"]))).unwrap();
    assert_eq!((stats["runs"].as_u64(), stats["failed"].as_u64()), (Some(1), Some(1)));
    let all: serde_json::Value = serde_json::from_str(&stdout(&chime(d, &["stats", "--json"]))).unwrap();
    assert_eq!(all["jobs"], 3);

    // SIGTERM: a graceful stop.
    let pid = server.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut out = String::new();
    server.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(out.contains("jobs synced from the config: added 3, updated 0, kept 0, orphaned 0"), "{out}");
    assert!(out.contains("stopped"), "{out}");

    // The jobs and their state outlive the server; a second start keeps them.
    let mut server = start_server(d);
    assert!(stdout(&chime(d, &["jobs", "list"])).contains("At 02:15 (UTC)"), "the runtime reschedule is kept");
    server.0.kill().unwrap();
}

#[test]
fn errors_have_messages_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    std::fs::write(d.join("bad.toml"), "[[job]]\nid = \"r\"\ncron = \"0 9 * * 8\"\ncommand = [\"true\"]\n").unwrap();
    let out = chime(d, &["serve", "--config", "bad.toml", "--store", "memory:"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(r#"bad.toml: job "r" (line 1): cron: invalid cron expression "0 9 * * 8""#),
        "{}",
        stderr(&out)
    );
    let out = chime(d, &["serve", "--config", "missing.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.toml: cannot read the config file"), "{}", stderr(&out));

    let out = chime(d, &["jobs", "list", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Usage:"));

    let out = chime(d, &["jobs", "pause", "nope", "--store", "memory:"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: no job with id \"nope\"\n");

    let out = chime(d, &["jobs", "list", "--store", "sqlite:///nonexistent-dir/x.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("there is no database at /nonexistent-dir/x.db"), "{}", stderr(&out));
    let out = chime(d, &["serve", "--store", "sqlite:///nonexistent-dir/x.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("opening store at sqlite:///nonexistent-dir/x.db"), "{}", stderr(&out));
    assert!(!d.join("chime.db").exists(), "no command created a database by accident");

    let out = chime(d, &["jobs", "list", "--store", "postgres://localhost/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not built yet"));

    let out = chime(d, &["history", "--status", "done", "--store", "memory:"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown run status \"done\""));

    let out = chime(d, &["jobs", "reschedule", "x", "--every", "0s", "--store", "memory:"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("invalid duration \"0s\""), "{}", stderr(&out));
}

#[test]
fn run_here_executes_in_the_cli_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("chime.toml"), CONFIG).unwrap();
    // Sync the jobs into the store without running them: a server started and stopped at once.
    let mut server = start_server(d);
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let out = chime(d, &["jobs", "run", "nightly", "--here"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("succeeded"), "{}", stdout(&out));
    assert_eq!(lines(&d.join("nightly.txt")), 1);
    let out = chime(d, &["jobs", "run", "fails", "--here"]);
    assert_eq!(out.status.code(), Some(1));
}
