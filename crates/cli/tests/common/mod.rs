//! Helpers for tests that run the real `chime` binary, as a user would.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `chime ARGS` in `dir`, with no store from the environment.
pub fn chime(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chime"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("CHIME_STORE")
        .output()
        .expect("the chime binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `chime ARGS --json` parsed, panicking with stderr when it fails.
pub fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = chime(dir, &all);
    assert!(out.status.success(), "chime {args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("chime {args:?} printed no JSON: {e}"))
}

pub use chime_testkit::pg::DropSchema;
pub use chime_testkit::{http, wait_for};

/// A running `chime serve`, killed when dropped. Its stdout is collected.
pub struct Server {
    pub child: Child,
    out: Arc<Mutex<String>>,
    /// Ends when the reader has read the last line (the pipe closed).
    read_all: std::sync::mpsc::Receiver<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `chime serve ARGS` in `dir` with `env` set, and waits until it
    /// says it is running.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let server = Server::spawn(dir, args, env);
        wait_for("the server to start", Duration::from_secs(30), || server.output().contains("chime is running"));
        server
    }

    /// Starts `chime serve ARGS` without waiting.
    pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chime"));
        command
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env_remove("CHIME_STORE")
            .env_remove("CHIME_API_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let collected = Arc::clone(&out);
        let (done, read_all) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                collected.lock().unwrap().push_str(&(line + "\n"));
            }
            let _ = done.send(());
        });
        Server { child, out, read_all }
    }

    pub fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// The address of the HTTP API it printed (`HTTP API on http://ADDR/...`).
    pub fn http_addr(&self) -> String {
        let mut addr = None;
        wait_for("the server to print its HTTP address", Duration::from_secs(20), || {
            addr = self.output().split("HTTP API on http://").nth(1).map(|r| r.split('/').next().unwrap().to_owned());
            addr.is_some()
        });
        addr.unwrap()
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Stops it with SIGTERM and waits for it to exit; returns its output.
    pub fn stop(mut self) -> String {
        self.signal("-TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the server stopped cleanly: {status:?}");
        // Its last lines, once the reader has them all.
        let read = self.read_all.recv_timeout(Duration::from_secs(10));
        assert!(read.is_ok(), "the server's stdout was still open 10 s after it exited");
        self.output()
    }

    /// Sends a signal (`-KILL`, `-STOP`, `-CONT`, `-TERM`).
    pub fn signal(&self, signal: &str) {
        assert!(Command::new("kill").args([signal, &self.pid()]).status().unwrap().success());
    }
}
