//! `chime serve` and the job commands, run as a user would: the real binary
//! in a temporary directory, a server in one process and the CLI in others.

mod common;

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{chime, stderr, stdout};
use std::time::{Duration, Instant};

/// A running `chime serve`: killed if a test fails before stopping it. Its
/// stdout is collected by a thread; `http` is the API address it printed.
struct Server {
    child: Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
    http: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }
}

/// A GET on the server's HTTP API: (status code, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_chime"))
        .args(["serve", "--config", "chime.toml", "--store", "sqlite://chime.db", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("CHIME_STORE")
        .env_remove("CHIME_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let collected = std::sync::Arc::clone(&out);
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("HTTP API on http://") {
                let _ = tx.send(rest.split('/').next().unwrap().to_owned());
            }
            collected.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let http = rx.recv_timeout(Duration::from_secs(20)).expect("the server printed its HTTP address");
    let server = Server { child, out, http };
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
    // A job every second that stops ticking for two seconds has been paused;
    // a server that missed the pause would tick on. (It normally takes
    // effect within 200 ms; 10 s of patience is for a loaded machine.)
    let paused_at = Instant::now();
    let mut ticks = lines(&d.join("ticks.txt"));
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = lines(&d.join("ticks.txt"));
        if now == ticks {
            break;
        }
        ticks = now;
        assert!(paused_at.elapsed() < Duration::from_secs(10), "the server kept running the paused job");
    }
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

    // The HTTP API of the same server.
    let (status, body) = http_get(&server.http, "/health");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&server.http, "/api/v1/jobs/fails");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"last_status\":\"failed\""), "{body}");

    // SIGTERM: a graceful stop.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(100));
    let out = server.output();
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
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("chime.toml"), CONFIG).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chime"))
        .args(["serve", "--config", "chime.toml", "--store", "memory:", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(d)
        .env_remove("DATABASE_URL")
        .env_remove("CHIME_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let addr = format!("127.0.0.1:{port}");
    wait_until("the server to answer", || std::net::TcpStream::connect(&addr).is_ok());
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = http_get(&addr, "/health");
    assert_eq!(status, 200, "{body}");
    assert!(child.try_wait().unwrap().is_none(), "still running");
    child.kill().unwrap();
    child.wait().unwrap();
}
