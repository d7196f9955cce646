//! The dashboard in a real headless Chromium, driven over WebDriver
//! (chromedriver), against `chime serve` on SQLite with 62 jobs: page
//! through the jobs, search them, filter the failing ones, find a failed
//! run's error on the runs page, pause a job from its page with a reason,
//! and see a pause from the index reach the store and come back to the page
//! through its poll.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test is
//! reported as ignored (see `build.rs`), unless `CHIME_REQUIRE_BROWSER=1` (as
//! `.ci/run` sets, after installing them) makes a missing browser a failure.

mod common;

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use chime_testkit::KillOnDrop;
use common::{Server, json, wait_for};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long any one thing in the browser may take to happen.
const DEADLINE: Duration = Duration::from_secs(30);

/// One WebDriver call with a JSON body; returns the JSON answer. Not the
/// testkit's client: chromedriver may keep the connection open whatever the
/// request says, so the answer is read by its Content-Length.
fn webdriver(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
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

/// A browser session: what the test does, said as a user would do it.
struct Browser {
    driver: String,
    session: String,
    /// The dashboard's address, `http://127.0.0.1:PORT/`.
    base: String,
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        webdriver(&self.driver, method, &format!("/session/{}{path}", self.session), body)
    }

    fn open(&self, path: &str) {
        self.call("POST", "/url", Some(&json!({"url": format!("{}{path}", self.base)})));
    }

    fn title(&self) -> String {
        self.call("GET", "/title", None)["value"].as_str().unwrap_or_default().to_owned()
    }

    /// The page's path and query, as the address bar has it.
    fn location(&self) -> String {
        let url = self.call("GET", "/url", None)["value"].as_str().unwrap_or_default().to_owned();
        url.strip_prefix(self.base.trim_end_matches('/')).unwrap_or(&url).to_owned()
    }

    fn elements(&self, css: &str) -> Vec<String> {
        let found = self.call("POST", "/elements", Some(&json!({"using": "css selector", "value": css})));
        found["value"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e.as_object()?.values().next()?.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The one element `css` names, waited for.
    fn element(&self, css: &str) -> String {
        let mut found = Vec::new();
        wait_for(&format!("an element {css}"), DEADLINE, || {
            found = self.elements(css);
            !found.is_empty()
        });
        found.swap_remove(0)
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/click"), Some(&json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/clear"), Some(&json!({})));
        self.call("POST", &format!("/element/{e}/value"), Some(&json!({"text": text})));
    }

    fn attribute(&self, element: &str, name: &str) -> String {
        let v = self.call("GET", &format!("/element/{element}/attribute/{name}"), None);
        v["value"].as_str().unwrap_or_default().to_owned()
    }

    fn text(&self, css: &str) -> String {
        let e = self.element(css);
        self.call("GET", &format!("/element/{e}/text"), None)["value"].as_str().unwrap_or_default().to_owned()
    }

    /// The ids of the job rows on the page, in order.
    fn job_rows(&self) -> Vec<String> {
        self.elements("tr[data-job]").iter().map(|e| self.attribute(e, "data-job")).collect()
    }

    /// Waits until the page's job rows are `ids`.
    fn wait_for_rows(&self, what: &str, ids: &[&str]) {
        let mut rows = Vec::new();
        wait_for(what, DEADLINE, || {
            rows = self.job_rows();
            rows == ids
        });
    }
}

/// 60 jobs `job-00` ... `job-59` that fire at 03:00, `tick` every minute,
/// and `broken-backup`, a command that fails.
fn config() -> String {
    let mut toml = String::from(
        "[[job]]\nid = \"tick\"\nname = \"Tick <every minute>\"\ncron = \"* * * * *\"\ncommand = [\"true\"]\n\n\
         [[job]]\nid = \"broken-backup\"\ncron = \"0 4 * * *\"\ncommand = [\"sh\", \"-c\", \"echo disk full >&2; exit 3\"]\n",
    );
    for i in 0..60 {
        toml.push_str(&format!("\n[[job]]\nid = \"job-{i:02}\"\ncron = \"0 3 * * *\"\ncommand = [\"true\"]\n"));
    }
    toml
}

#[test]
#[cfg_attr(
    not(chime_browser_test),
    ignore = "needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)"
)]
fn an_operator_finds_jobs_and_runs_and_pauses_in_chromium() {
    // Compiled in when the browser is installed or CHIME_REQUIRE_BROWSER demands it (build.rs).
    assert!(
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists(),
        "CHIME_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("chime.toml"), config()).unwrap();
    let store = ["--store", "sqlite://chime.db"];
    let server =
        Server::start(d, &["--config", "chime.toml", "--store", "sqlite://chime.db", "--listen", "127.0.0.1:0"], &[]);
    let http = server.http_addr();
    // A failed run to find: broken-backup, run now.
    let out = common::chime(d, &["jobs", "run", "broken-backup", "--wait", store[0], store[1]]);
    assert!(!out.status.success(), "the run fails: {}", common::stdout(&out));

    let driver = chromedriver();
    let profile = tempfile::tempdir().unwrap();
    let session = webdriver(
        &driver.1,
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
    let b = Browser { driver: driver.1.clone(), session: sid, base: format!("http://{http}/") };

    // Paging: 62 jobs, 50 on the first page, the other 12 on the second.
    b.open("");
    assert_eq!(b.title(), "chime: 62 jobs");
    assert_eq!(b.job_rows().len(), 50);
    b.click("a[rel=next]");
    wait_for("the second page", DEADLINE, || b.location() == "/?page=2");
    let second = b.job_rows();
    assert_eq!(second.len(), 12, "{second:?}");
    assert_eq!(second.last().map(String::as_str), Some("tick"), "ordered by id");

    // Search: typed into the box, sent with the form, kept in the URL.
    b.type_into("input[name=q]", "TICK");
    b.click("form.filters button[type=submit]");
    b.wait_for_rows("the search's one job", &["tick"]);
    assert!(b.location().contains("q=TICK"), "{}", b.location());

    // A filter: the failing chip (the search cleared first).
    b.open("");
    b.click("a[data-state=failing]");
    b.wait_for_rows("the failing job", &["broken-backup"]);
    assert_eq!(b.location(), "/?state=failing");

    // The runs page: the failures, one open to its error.
    b.click("nav a[href$=runs]");
    wait_for("the runs page", DEADLINE, || b.title() == "chime: runs");
    b.click("#status-filter option[value=failures]");
    b.click("form.filters button[type=submit]");
    wait_for("only failures", DEADLINE, || b.location().contains("status=failures"));
    let failed = b.elements("tr[data-run-status]");
    assert_eq!(failed.len(), 1, "one failed run");
    assert_eq!(b.attribute(&failed[0], "data-run-status"), "failed");
    let details = b.text("details[open]");
    assert!(details.contains("disk full"), "the error or output is shown: {details}");

    // The job page's timeline: tapping the failed run's mark says what happened.
    b.open("jobs/broken-backup");
    let marks = b.elements(".why-mark.bad");
    assert_eq!(marks.len(), 1, "one failed time in the last day");
    b.click(".why-mark.bad");
    let detail = b.text("#why-detail");
    assert!(
        detail.contains(": failed, failed in ") && detail.contains("(run by hand)"),
        "the tapped time's words: {detail}"
    );
    assert!(b.text("#why-answer").contains("failed"), "the answer names the failure");

    // Pause from the job's page, with a reason.
    b.open("jobs/job-07");
    b.type_into("#pause-reason", "disk maintenance");
    b.click("button[data-action=pause][data-id=job-07]");
    wait_for("job-07 to be paused with the reason", DEADLINE, || {
        json(d, &["jobs", "show", "job-07", store[0], store[1]])["job"]["state"]["paused"] == "disk maintenance"
    });
    // The page notices by its poll and offers Resume.
    b.element("button[data-action=resume][data-id=job-07]");

    // From the index: the click reaches the store, and the row follows the
    // store through the poll, without a reload.
    b.open("?q=tick");
    b.click("button[data-action=pause][data-id=tick]");
    wait_for("tick to be paused", DEADLINE, || {
        json(d, &["jobs", "show", "tick", store[0], store[1]])["job"]["state"]["paused"] == "paused from the dashboard"
    });
    b.element("button[data-action=resume][data-id=tick]");
    let out = common::chime(d, &["jobs", "resume", "tick", store[0], store[1]]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    b.element("button[data-action=pause][data-id=tick]");
    assert_eq!(b.location(), "/?q=tick", "the page was never reloaded away");

    if let Ok(path) = std::env::var("CHIME_SCREENSHOT") {
        b.open("");
        let shot = b.call("GET", "/screenshot", None);
        std::fs::write(path, base64_decode(shot["value"].as_str().unwrap())).unwrap();
    }
    b.call("DELETE", "", None);
    drop(server);
}

/// chromedriver on a port of its own, up; and its address.
fn chromedriver() -> (KillOnDrop, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let driver = KillOnDrop(child);
    wait_for("chromedriver", DEADLINE, || TcpStream::connect(&addr).is_ok());
    (driver, addr)
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
