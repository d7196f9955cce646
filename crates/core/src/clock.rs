//! Where the engine gets the time: [`SystemClock`] in production, [`ManualClock`] in tests.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

/// `t + d`, or the end of time when that overflows: for deadlines, where
/// "never" is the right reading of an absurdly long duration.
pub(crate) fn later(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// A boxed future, as returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The engine's only source of time.
///
/// Nothing in chime reads the system clock directly: the scheduler loop, the
/// executor's timeouts and retry backoffs all ask a `Clock`. That is what lets
/// a test drive a year of daily runs in milliseconds with a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;

    /// A future that completes once [`now`](Clock::now) has reached `deadline`.
    /// It may complete early (the engine re-reads the clock after waking); it
    /// must not complete much later.
    fn sleep_until(&self, deadline: Timestamp) -> Sleep;
}

/// The real clock: `Timestamp::now()` and tokio's timer.
///
/// Sleeps are measured on tokio's monotonic clock, so a wall-clock jump
/// (NTP, a suspended laptop) is noticed only when the engine wakes; the engine
/// therefore never sleeps longer than a minute at a time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let wait = deadline.duration_since(Timestamp::now());
        let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to.
///
/// Sleepers wake as soon as [`advance`](ManualClock::advance) or
/// [`set`](ManualClock::set) moves the time past their deadline.
///
/// ```
/// use chime_core::{Clock, ManualClock};
/// use std::time::Duration;
///
/// # tokio_test_block_on(async {
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
/// let wake_at = clock.now() + Duration::from_secs(3600);
/// let sleeper = tokio::spawn(clock.sleep_until(wake_at));
/// clock.advance(Duration::from_secs(3600));
/// sleeper.await.unwrap(); // returns at once: no real hour passes
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<Timestamp>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock { now: Arc::new(watch::Sender::new(start)) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = SignedDuration::try_from(by).expect("advance by less than 292 years");
        self.now.send_modify(|now| *now = now.checked_add(by).expect("clock stays within jiff's range"));
    }

    /// Sets the clock to `to`, which may be earlier than now (a clock jump).
    pub fn set(&self, to: Timestamp) {
        self.now.send_replace(to);
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock").field("now", &*self.now.borrow()).finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; if every
            // clone is gone, nobody can advance time, so sleep forever.
            if rx.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
