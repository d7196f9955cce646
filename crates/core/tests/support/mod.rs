//! Helpers shared by the engine's integration tests: a virtual clock that
//! shows who is waiting on it, and deadlines that turn a hang into a failure
//! naming what was awaited.
//!
//! Synchronisation is on facts, never on time or yields: a test that must
//! know "the executor is now waiting for its retry backoff" waits until a
//! sleeper with that deadline is registered on the clock.

#![allow(dead_code)] // Each test file uses a different part.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chime_core::{Clock, Event, ManualClock, Sleep};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{broadcast, watch};

/// How long (real time) any single wait of a test may take before it fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing with `what` if it takes longer than [`DEADLINE`].
pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// Waits for the first event matching `pred` and returns it; fails naming
/// `what` when none comes within [`DEADLINE`] or the stream lags or ends.
pub(crate) async fn wait_for(
    events: &mut broadcast::Receiver<Event>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    within(what, async {
        loop {
            match events.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => panic!("lagged {n} events waiting for {what}"),
                Err(e) => panic!("event stream ended waiting for {what}: {e}"),
            }
        }
    })
    .await
}

/// A [`ManualClock`] that also keeps the deadline of every sleep in progress,
/// so a test can wait until some part of the engine is waiting for a given
/// instant (and so has done everything it does before that).
#[derive(Clone)]
pub(crate) struct TestClock {
    manual: ManualClock,
    sleepers: Arc<watch::Sender<Vec<Timestamp>>>,
}

impl TestClock {
    pub(crate) fn new(start: Timestamp) -> TestClock {
        TestClock { manual: ManualClock::new(start), sleepers: Arc::new(watch::Sender::new(Vec::new())) }
    }

    pub(crate) fn advance(&self, by: SignedDuration) {
        self.manual.advance(Duration::try_from(by).expect("advance forward"));
    }

    pub(crate) fn set(&self, to: Timestamp) {
        self.manual.set(to);
    }

    /// The deadlines being slept towards now, earliest first.
    pub(crate) fn sleepers(&self) -> Vec<Timestamp> {
        let mut v = self.sleepers.borrow().clone();
        v.sort();
        v
    }

    /// Waits until something sleeps towards a deadline `pred` accepts, and returns that deadline.
    pub(crate) async fn wait_for_sleeper(&self, what: &str, pred: impl Fn(Timestamp) -> bool) -> Timestamp {
        let mut rx = self.sleepers.subscribe();
        within(&format!("{what} to sleep on the clock"), async {
            let seen = rx.wait_for(|v| v.iter().any(|t| pred(*t))).await.expect("the clock lives");
            seen.iter().copied().filter(|t| pred(*t)).min().expect("one matched")
        })
        .await
    }

    /// Waits until something sleeps towards exactly `deadline`.
    pub(crate) async fn wait_for_sleep_until(&self, what: &str, deadline: Timestamp) {
        self.wait_for_sleeper(&format!("{what} (until {deadline})"), |t| t == deadline).await;
    }

    /// Waits until nothing sleeps on the clock at all.
    pub(crate) async fn wait_for_no_sleepers(&self, what: &str) {
        let mut rx = self.sleepers.subscribe();
        within(what, async {
            rx.wait_for(Vec::is_empty).await.expect("the clock lives");
        })
        .await;
    }
}

impl fmt::Debug for TestClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClock").field("now", &self.manual.now()).field("sleepers", &self.sleepers()).finish()
    }
}

/// Removes a sleeper's deadline when its sleep ends or is dropped.
struct Registered {
    sleepers: Arc<watch::Sender<Vec<Timestamp>>>,
    deadline: Timestamp,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.sleepers.send_modify(|v| {
            if let Some(i) = v.iter().position(|t| *t == self.deadline) {
                v.swap_remove(i);
            }
        });
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        self.manual.now()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        self.sleepers.send_modify(|v| v.push(deadline));
        let registered = Registered { sleepers: Arc::clone(&self.sleepers), deadline };
        let sleep = self.manual.sleep_until(deadline);
        Box::pin(async move {
            let _registered = registered;
            sleep.await;
        })
    }
}
