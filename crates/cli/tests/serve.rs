//! `chime serve` and the job commands, run as a user would: the real binary
//! in a temporary directory, a server in one process and the CLI in others.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Server, chime, http, stderr, stdout, wait_for};
use std::time::{Duration, Instant};

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

/// `chime serve` of [`CONFIG`] on SQLite in `dir`, its API on a port of its
/// choosing, once its jobs are synced.
fn start_server(dir: &Path) -> Server {
    std::fs::write(dir.join("chime.toml"), CONFIG).unwrap();
    let server =
        Server::start(dir, &["--config", "chime.toml", "--store", "sqlite://chime.db", "--listen", "127.0.0.1:0"], &[]);
    wait_for("the server to sync its jobs", Duration::from_secs(20), || {
        let out = chime(dir, &["jobs", "list", "--json"]);
        out.status.success()
            && serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .is_ok_and(|v| v.as_array().is_some_and(|a| a.len() == 3))
    });
    server
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

#[test]
fn serve_then_list_pause_run_and_inspect_from_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = start_server(d);

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
    wait_for("two ticks", Duration::from_secs(20), || lines(&d.join("ticks.txt")) >= 2);

    // Paused from another process: the server stops running it.
    let out = chime(d, &["jobs", "pause", "tick", "--reason", "too chatty"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let paused_at = jiff::Timestamp::now();
    // A job every second that stops ticking for two seconds has been paused
    // or its server is starved; the run-now below (waited for) proves the
    // server alive after the window, and then the history must hold no tick
    // scheduled after the pause took effect (a server that missed the pause
    // would have caught up by then). It normally takes effect within 200 ms;
    // 10 s of patience is for a loaded machine.
    let waiting = Instant::now();
    let mut ticks = lines(&d.join("ticks.txt"));
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = lines(&d.join("ticks.txt"));
        if now == ticks {
            break;
        }
        ticks = now;
        assert!(waiting.elapsed() < Duration::from_secs(10), "the server kept running the paused job");
    }
    assert!(stdout(&chime(d, &["jobs", "list"])).contains("paused: too chatty"));

    // Run now, executed by the server, waited for.
    let out = chime(d, &["jobs", "run", "nightly", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lines(&d.join("nightly.txt")), 1);
    let history = common::json(d, &["history", "--job", "tick", "--limit", "1000"]);
    let last_tick = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scheduled_for"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap())
        .max()
        .unwrap();
    assert!(
        last_tick < paused_at + jiff::SignedDuration::from_millis(1500),
        "tick was scheduled at {last_tick} after its pause at {paused_at}"
    );
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

    // The HTTP API of the same server.
    let api = server.http_addr();
    let chime_testkit::http::Response { status, body, .. } = http::get(&api, "/health").expect("the server answers");
    assert_eq!(status, 200, "{body}");
    let chime_testkit::http::Response { status, body, .. } =
        http::get(&api, "/api/v1/jobs/fails").expect("the server answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"last_status\":\"failed\""), "{body}");

    // SIGTERM: a graceful stop.
    let out = server.stop();
    assert!(out.contains("jobs synced from the config: added 3, updated 0, kept 0, orphaned 0"), "{out}");
    assert!(out.contains("stopped"), "{out}");

    // The jobs and their state outlive the server; a second start keeps them.
    let _server = start_server(d);
    assert!(stdout(&chime(d, &["jobs", "list"])).contains("At 02:15 (UTC)"), "the runtime reschedule is kept");
}

#[test]
fn errors_have_messages_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let loud = Command::new(env!("CARGO_BIN_EXE_chime"))
        .args(["serve", "--store", "memory:", "--no-http"])
        .current_dir(d)
        .env("CHIME_LOG", "loud")
        .output()
        .unwrap();
    assert_eq!(loud.status.code(), Some(2), "{}", stderr(&loud));
    assert!(stderr(&loud).contains("CHIME_LOG=\"loud\" is not a log level"), "{}", stderr(&loud));

    std::fs::write(d.join("bad.toml"), "[[job]]\nid = \"r\"\ncron = \"0 9 * * 8\"\ncommand = [\"true\"]\n").unwrap();
    let out = chime(d, &["serve", "--config", "bad.toml", "--store", "memory:"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(r#"bad.toml:3: job "r": cron: invalid cron expression "0 9 * * 8""#),
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

    let out = chime(d, &["serve", "--store", "memory:", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("refusing to serve the HTTP API on 0.0.0.0:0 without a token"), "{}", stderr(&out));
    let with_token = |args: &[&str], token: &str| {
        Command::new(env!("CARGO_BIN_EXE_chime"))
            .args(args)
            .current_dir(d)
            .env_remove("DATABASE_URL")
            .env_remove("CHIME_STORE")
            .env("CHIME_API_TOKEN", token)
            .output()
            .unwrap()
    };
    let out = with_token(&["serve", "--store", "memory:", "--listen", "0.0.0.0:0"], "0123456789abcdef0123");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("with open reads: set [http] read_token = true"), "{}", stderr(&out));
    let out = with_token(&["serve", "--store", "memory:", "--listen", "127.0.0.1:0"], "   ");
    assert_eq!(out.status.code(), Some(2), "a token of whitespace is no token");
    let out = with_token(&["serve", "--store", "memory:", "--listen", "127.0.0.1:0"], "short");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("the API token"), "{}", stderr(&out));
    std::fs::write(d.join("read.toml"), "[http]\nread_token = true\n").unwrap();
    let out = chime(d, &["serve", "--config", "read.toml", "--store", "memory:", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("read_token = true needs a token"), "{}", stderr(&out));

    let out = chime(d, &["jobs", "list", "--store", "postgres://127.0.0.1:1/x"]);
    assert_eq!(out.status.code(), Some(1), "a server that does not answer fails the command");
    assert!(stderr(&out).contains("postgres://127.0.0.1:1/x: connecting"), "{}", stderr(&out));
    let out = chime(d, &["jobs", "list", "--store", "postgres://u:hunter2@127.0.0.1:1/x?schema=Bad-Name"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("schema \"Bad-Name\" is not a plain identifier"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("hunter2"), "no password in errors: {}", stderr(&out));

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
    drop(start_server(d));
    let out = chime(d, &["jobs", "run", "nightly", "--here"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("succeeded"), "{}", stdout(&out));
    assert_eq!(lines(&d.join("nightly.txt")), 1);
    let out = chime(d, &["jobs", "run", "fails", "--here"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_server_keeps_running_when_nobody_reads_its_output() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("chime.toml"), CONFIG).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_chime"))
        .args(["serve", "--config", "chime.toml", "--store", "memory:", "--listen", "127.0.0.1:0"])
        .current_dir(d)
        .env_remove("DATABASE_URL")
        .env_remove("CHIME_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = chime_testkit::KillOnDrop(child);
    // Read up to the line that names the address, then the reader goes away:
    // every later line the server prints meets a closed pipe.
    let mut printed = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    let mut dashboard = None;
    let addr = loop {
        line.clear();
        assert!(printed.read_line(&mut line).unwrap() > 0, "the server exited before printing its address");
        if let Some(rest) = line.strip_prefix("dashboard on http://") {
            dashboard = Some(rest.trim().to_owned());
        }
        if let Some(rest) = line.strip_prefix("HTTP API on http://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    assert_eq!(dashboard, Some(format!("{addr}/")), "the dashboard's URL is printed before the API's");
    drop(printed);
    // `tick` runs every second: two runs later the server has lived on past the closed pipe.
    wait_for("two ticks", Duration::from_secs(20), || lines(&d.join("ticks.txt")) >= 2);
    let chime_testkit::http::Response { status, body, .. } = http::get(&addr, "/health").expect("the server answers");
    assert_eq!(status, 200, "{body}");
    assert!(child.0.try_wait().unwrap().is_none(), "still running");
}
