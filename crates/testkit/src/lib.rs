//! Helpers shared by chime's own tests, written once: waits that end with a
//! failure naming what they waited for ([`wait_for`], [`wait_for_async`]),
//! child processes that never outlive a failed test ([`KillOnDrop`]), a raw
//! HTTP/1.1 client for servers under test ([`http`]), and PostgreSQL
//! schemas of a test's own, dropped after it ([`pg`]).
//!
//! # Crate features
//!
//! None. Not published: a dev-dependency of the workspace's crates only.

pub mod http;
pub mod pg;

use std::process::Child;
use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it holds; panics after `limit` naming
/// `what` it was waiting for. Never a sleep that hopes.
pub fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`wait_for`] for an async check, polling on the tokio timer.
pub async fn wait_for_async<F: Future<Output = bool>>(what: &str, limit: Duration, mut check: impl FnMut() -> F) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, so a test that
/// fails halfway leaves nothing running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
