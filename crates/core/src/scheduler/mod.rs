//! The `Scheduler`: its life (start, pause, shutdown) and the parts it is
//! made of. The job API is in `jobs.rs`, jobs defined in code in `sync.rs`,
//! the loop in `engine.rs`, configuration in `builder.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use crate::clock::{Clock, later};
use crate::error::{Error, Result};
use crate::event::{Event, Events};
use crate::executor::Executor;
use crate::heartbeat::NodeKeeper;
use crate::node::NodeInfo;
use crate::reason::CancelledBy;
use crate::store::JobStore;
use crate::task::TaskRegistry;
use crate::trigger::Zone;

mod alerts;
mod builder;
mod engine;
mod jobs;
mod sync;

pub use builder::SchedulerBuilder;
pub use jobs::{ADD_BATCH, JobPatch, STATS_WINDOW, SchedulerStats};
pub use sync::{REMOVED_FROM_CODE, SyncReport};

/// Where the scheduler is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchedulerState {
    /// Built, not started: jobs can be added, none run.
    Stopped,
    /// Claiming due jobs and running them.
    Running,
    /// Not starting runs; running ones go on.
    Paused,
    /// `shutdown` is in progress.
    ShuttingDown,
    /// Done; no run is left and none will start.
    ShutDown,
}

impl SchedulerState {
    /// The lowercase name the CLI, the API and the dashboard show.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerState::Stopped => "stopped",
            SchedulerState::Running => "running",
            SchedulerState::Paused => "paused",
            SchedulerState::ShuttingDown => "shutting_down",
            SchedulerState::ShutDown => "shut_down",
        }
    }
}

/// How long `chime serve` (and an application that takes the documented
/// default) waits for runs in progress at shutdown: `ShutdownMode::Wait(30 s)`.
pub const DEFAULT_SHUTDOWN_GRACE: SignedDuration = SignedDuration::from_secs(30);

/// How `shutdown` treats runs in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Let them finish, waiting at most this long (measured on the
    /// scheduler's clock), then cancel the rest.
    Wait(Duration),
    /// Cancel them now (each gets the cancel grace period, then is aborted).
    Cancel,
}

/// What `remove_job` does with the job's runs in progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RemoveMode {
    /// Let them finish (the default).
    #[default]
    LetFinish,
    /// Cancel them.
    Cancel,
}

/// A job scheduler: add jobs, start it, and it runs them on time.
///
/// Cheap to clone; clones share one scheduler.
#[derive(Clone, Debug)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn JobStore>,
    tasks: TaskRegistry,
    /// The task names, as the claim asks for them.
    task_names: Vec<Arc<str>>,
    zone: Zone,
    clock: Arc<dyn Clock>,
    node: Arc<str>,
    events: Events,
    state: watch::Sender<SchedulerState>,
    executor: Arc<Executor>,
    keeper: Arc<NodeKeeper>,
    loop_task: Mutex<Option<JoinHandle<()>>>,
    /// When the loop last came round, in microseconds since the epoch (0: never).
    last_tick: std::sync::atomic::AtomicI64,
    wake: Notify,
    batch_size: usize,
    retention: builder::Retention,
    /// The shortest interval a job may be given.
    min_interval: jiff::SignedDuration,
}

impl Scheduler {
    /// Starts the loop on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if it was already started, [`Error::ShutDown`] after shutdown.
    pub fn start(&self) -> Result<()> {
        let started = self.transition(SchedulerState::Stopped, SchedulerState::Running);
        if !started {
            return match self.state() {
                SchedulerState::ShuttingDown | SchedulerState::ShutDown => Err(Error::ShutDown),
                _ => Err(Error::invalid("the scheduler is already started")),
            };
        }
        let inner = Arc::clone(&self.inner);
        *self.inner.loop_task.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::spawn(engine::run_loop(inner)));
        tracing::info!(node = %self.inner.node, zone = %self.inner.zone, "scheduler started");
        self.inner.events.emit(Event::SchedulerStarted);
        Ok(())
    }

    /// Stops starting runs; runs in progress go on. Due times met while
    /// paused are handled by the misfire rules on resume.
    pub fn pause(&self) {
        if self.transition(SchedulerState::Running, SchedulerState::Paused) {
            self.inner.events.emit(Event::SchedulerPaused);
        }
    }

    /// Moves from `from` to `to` if the scheduler is in `from`; says whether it moved.
    fn transition(&self, from: SchedulerState, to: SchedulerState) -> bool {
        self.inner.state.send_if_modified(|s| {
            let change = *s == from;
            if change {
                *s = to;
            }
            change
        })
    }

    /// Starts runs again after [`pause`](Scheduler::pause).
    pub fn resume(&self) {
        if self.transition(SchedulerState::Paused, SchedulerState::Running) {
            self.inner.events.emit(Event::SchedulerResumed);
        }
    }

    /// Where the scheduler is in its life.
    pub fn state(&self) -> SchedulerState {
        *self.inner.state.borrow()
    }

    /// When the scheduler loop last came round (it does at least once a
    /// minute while running), or `None` before it first did. A health check
    /// compares it with the clock.
    pub fn last_tick(&self) -> Option<Timestamp> {
        match self.inner.last_tick.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            us => Timestamp::from_microsecond(us).ok(),
        }
    }

    /// This scheduler's node id.
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }

    /// This node's lease epoch, while it holds a lease (see [`crate::Lease`]).
    pub fn lease_epoch(&self) -> Option<u64> {
        self.inner.keeper.current().map(|l| l.epoch)
    }

    /// The nodes registered in the store, this one included once started.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.inner.store.nodes().await
    }

    /// The zone used for triggers that name none.
    pub fn timezone(&self) -> &Zone {
        &self.inner.zone
    }

    /// The scheduler's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.inner.store
    }

    /// Stops claiming jobs, then waits for or cancels the runs in progress.
    /// Returns when none is left.
    pub async fn shutdown(&self, mode: ShutdownMode) {
        let previous = self.inner.state.send_replace(SchedulerState::ShuttingDown);
        if previous == SchedulerState::ShutDown {
            self.inner.state.send_replace(SchedulerState::ShutDown);
            return;
        }
        self.inner.wake.notify_one();
        let task = self.inner.loop_task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        match mode {
            ShutdownMode::Wait(limit) => {
                let deadline =
                    later(self.inner.clock.now(), SignedDuration::try_from(limit).unwrap_or(SignedDuration::MAX));
                tokio::select! {
                    _ = self.inner.executor.idle() => {}
                    _ = self.inner.clock.sleep_until(deadline) => {
                        tracing::warn!("shutdown deadline passed; cancelling the runs still going");
                        self.inner.executor.cancel_jobs(|_| true, CancelledBy::Shutdown);
                    }
                }
            }
            ShutdownMode::Cancel => self.inner.executor.cancel_jobs(|_| true, CancelledBy::Shutdown),
        }
        self.inner.executor.idle().await;
        // Only now: runs going on until here still needed the lease.
        self.inner.keeper.stop().await;
        self.inner.state.send_replace(SchedulerState::ShutDown);
        tracing::info!("scheduler shut down");
        self.inner.events.emit(Event::SchedulerShutDown);
    }

    /// Events as they happen. A slow subscriber that falls more than 1,024
    /// events behind misses the oldest (and is told so by the receiver).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.0.subscribe()
    }
}
