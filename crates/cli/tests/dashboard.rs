//! The dashboard in a real headless Chromium, driven over WebDriver
//! (chromedriver): click "Pause" on a job served by `chime serve` and see the
//! job paused in the store.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test is
//! reported as ignored (see `build.rs`), unless `CHIME_REQUIRE_BROWSER=1` (as
//! `.ci/run` sets, after installing them) makes a missing browser a failure.

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request with a JSON body; returns the JSON answer.
fn request(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read the head, then exactly Content-Length bytes: chromedriver may keep
    // the connection open whatever the request says.
    let mut reader = std::io::BufReader::new(stream);
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let body = if chunked {
        let mut out = String::new();
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0u8; n + 2];
            reader.read_exact(&mut chunk).unwrap();
            out.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
        out
    } else {
        let mut buf = vec![0u8; length];
        reader.read_exact(&mut buf).unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    };
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[cfg_attr(
    not(chime_browser_test),
    ignore = "needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)"
)]
fn clicking_pause_in_chromium_pauses_the_job() {
    // Compiled in when the browser is installed or CHIME_REQUIRE_BROWSER demands it (build.rs).
    assert!(
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists(),
        "CHIME_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("chime.toml"),
        "[[job]]\nid = \"tick\"\nname = \"Tick <every minute>\"\ncron = \"* * * * *\"\ncommand = [\"true\"]\n",
    )
    .unwrap();
    let mut server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_chime"))
            .args(["serve", "--config", "chime.toml", "--store", "sqlite://chime.db", "--listen", "127.0.0.1:0"])
            .current_dir(d)
            .env_remove("DATABASE_URL")
            .env_remove("CHIME_STORE")
            .env_remove("CHIME_API_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Read the server's output to the end on a thread, so it never writes to a closed pipe.
    let stdout = std::io::BufReader::new(server.0.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("HTTP API on http://") {
                let _ = tx.send(rest.split('/').next().unwrap().to_owned());
            }
        }
    });
    let http = rx.recv_timeout(Duration::from_secs(30)).expect("the server printed its address");

    let port = free_port();
    let _driver = KillOnDrop(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let driver = format!("127.0.0.1:{port}");
    wait_until("chromedriver", || TcpStream::connect(&driver).is_ok());

    let profile = tempfile::tempdir().unwrap();
    let session = request(
        &driver,
        "POST",
        "/session",
        Some(&json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={}", profile.path().display()), "--window-size=1200,800"]
        }}}})),
    );
    let sid = session["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {session}")).to_owned();
    let s = |path: &str| format!("/session/{sid}{path}");

    request(&driver, "POST", &s("/url"), Some(&json!({"url": format!("http://{http}/")})));
    let title = request(&driver, "GET", &s("/title"), None);
    assert_eq!(title["value"], "chime: 1 jobs");
    let found = request(
        &driver,
        "POST",
        &s("/element"),
        Some(&json!({"using": "css selector", "value": "button[data-action=pause][data-id=tick]"})),
    );
    let element = found["value"]
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no pause button: {found}"))
        .to_owned();
    request(&driver, "POST", &s(&format!("/element/{element}/click")), Some(&json!({})));

    // The click reached the store: the job is paused, with the dashboard's reason.
    wait_until("the job to be paused", || {
        let out = Command::new(env!("CARGO_BIN_EXE_chime"))
            .args(["jobs", "show", "tick", "--json", "--store", "sqlite://chime.db"])
            .current_dir(d)
            .env_remove("DATABASE_URL")
            .env_remove("CHIME_STORE")
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["job"]["state"]["paused"] == "paused from the dashboard"
    });
    // And the page shows it after its next refresh: a Resume button.
    wait_until("the page to offer Resume", || {
        let found = request(
            &driver,
            "POST",
            &s("/elements"),
            Some(&json!({"using": "css selector", "value": "button[data-action=resume][data-id=tick]"})),
        );
        found["value"].as_array().is_some_and(|a| !a.is_empty())
    });
    if let Ok(path) = std::env::var("CHIME_SCREENSHOT") {
        let shot = request(&driver, "GET", &s("/screenshot"), None);
        let png = base64_decode(shot["value"].as_str().unwrap());
        std::fs::write(path, png).unwrap();
    }
    request(&driver, "DELETE", &s(""), None);
}

/// Standard base64, for the screenshot.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()).map(value).collect();
    bytes
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().enumerate().fold(0u32, |n, (i, v)| n | (u32::from(*v) << (18 - 6 * i)));
            let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.into_iter().take(c.len() - 1)
        })
        .collect()
}
