//! Configuring a [`Scheduler`].

use std::sync::{Arc, Mutex};

use jiff::SignedDuration;
use tokio::sync::{Notify, broadcast, watch};

use super::{Inner, Scheduler, SchedulerState};
use crate::clock::{Clock, SystemClock};
use crate::duration::IntoDuration;
use crate::error::{Error, Result};
use crate::event::Events;
use crate::executor::Executor;
use crate::heartbeat::NodeKeeper;
use crate::limits::{DEFAULT_MIN_INTERVAL, MIN_INTERVAL_FLOOR};
use crate::memory::MemoryStore;
use crate::node::{DEFAULT_NODE_LEASE, MIN_NODE_LEASE, NodeRegistration, default_node_id};
use crate::store::JobStore;
use crate::task::TaskRegistry;
use crate::trigger::Zone;

/// Configures a [`Scheduler`].
#[derive(Debug)]
pub struct SchedulerBuilder {
    store: Option<Arc<dyn JobStore>>,
    tasks: TaskRegistry,
    zone: Option<Zone>,
    clock: Arc<dyn Clock>,
    max_concurrency: usize,
    node_id: Option<String>,
    /// None: the store's [`JobStore::claim_batch`].
    batch_size: Option<usize>,
    cancel_grace: SignedDuration,
    retention: Retention,
    node_lease: SignedDuration,
    min_interval: SignedDuration,
}

/// How much run history the scheduler keeps; see `SchedulerBuilder::history_retention`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Retention {
    pub(super) keep_per_job: usize,
    pub(super) max_age: Option<SignedDuration>,
}

impl SchedulerBuilder {
    /// Where jobs live; a [`MemoryStore`] when not set.
    pub fn store(mut self, store: impl JobStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A store shared with other code (a web API, a CLI in the same process).
    pub fn shared_store(mut self, store: Arc<dyn JobStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The tasks jobs may run.
    pub fn tasks(mut self, tasks: TaskRegistry) -> Self {
        self.tasks = tasks;
        self
    }

    /// The zone for triggers that name none; the system zone when not set.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for an unknown zone.
    pub fn timezone(mut self, name: &str) -> Result<Self> {
        self.zone = Some(Zone::get(name)?);
        Ok(self)
    }

    /// The clock; [`SystemClock`] when not set. Tests pass a [`crate::ManualClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How many runs may execute at once across all jobs (default 1,000).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// This scheduler's node id, in run records and the store's node list
    /// (default: `host-pid-xxxx`, with four random hex digits). Live nodes of
    /// one store must have different ids: a node whose id is held by a live
    /// lease waits until that lease runs out.
    pub fn node_id(mut self, id: &str) -> Self {
        self.node_id = Some(id.to_owned());
        self
    }

    /// How many due jobs one claim takes from the store (default: what the
    /// store suits, [`JobStore::claim_batch`]: 64 in memory and on
    /// PostgreSQL, 256 on SQLite). Small batches hold the store's lock
    /// briefly, so runs that are finishing are not kept waiting; a burst is
    /// claimed in many quick batches.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n.max(1));
        self
    }

    /// How long a cancelled run may take to stop by itself before it is
    /// aborted (default 5 s, on the scheduler's clock).
    pub fn cancel_grace(mut self, grace: impl IntoDuration) -> Self {
        self.cancel_grace = grace.into_duration();
        self
    }

    /// Keeps the last `keep_per_job` finished runs of each job (default 100)
    /// and, when `max_age` is set, none scheduled longer ago than that. The
    /// loop prunes every 10 minutes; runs in progress are never pruned.
    pub fn history_retention(mut self, keep_per_job: usize, max_age: Option<SignedDuration>) -> Self {
        self.retention = Retention { keep_per_job, max_age };
        self
    }

    /// How long this node's lease lasts without a heartbeat (default 30 s,
    /// at least 300 ms; renewed every third of it). A node not heard from for
    /// this long is taken for dead and its runs are abandoned or re-queued by
    /// another node. Shorter means faster failover; it must stay well above
    /// the longest pause the process may take (GC, a slow store).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] below the minimum.
    pub fn node_lease(mut self, lease: impl IntoDuration) -> Result<Self> {
        let lease = lease.into_duration();
        if lease < MIN_NODE_LEASE {
            return Err(Error::invalid(format!(
                "node lease {} is too short: at least {}",
                crate::format_duration(lease),
                crate::format_duration(MIN_NODE_LEASE)
            )));
        }
        self.node_lease = lease;
        Ok(self)
    }

    /// The shortest interval a job may have (default 1 s, at least 1 ms).
    /// Jobs asking for less are refused when added or rescheduled: a job
    /// every nanosecond would only fill the history with `missed` rows.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] below 1 ms.
    pub fn min_interval(mut self, shortest: impl IntoDuration) -> Result<Self> {
        let shortest = shortest.into_duration();
        if shortest < MIN_INTERVAL_FLOOR {
            return Err(Error::invalid(format!(
                "min_interval {} is below the floor of {}",
                crate::format_duration(shortest),
                crate::format_duration(MIN_INTERVAL_FLOOR)
            )));
        }
        self.min_interval = shortest;
        Ok(self)
    }

    /// Builds the scheduler. It does nothing until [`Scheduler::start`].
    pub fn build(self) -> Scheduler {
        let node: Arc<str> = Arc::from(self.node_id.unwrap_or_else(default_node_id));
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let batch_size = self.batch_size.unwrap_or_else(|| store.claim_batch());
        let events = Events(broadcast::Sender::new(1024));
        let executor = Arc::new(Executor::new(
            Arc::clone(&store),
            self.tasks.clone(),
            Arc::clone(&self.clock),
            events.clone(),
            self.max_concurrency,
            self.cancel_grace,
        ));
        let keeper = Arc::new(NodeKeeper::new(
            Arc::clone(&executor),
            NodeRegistration::this_process(Arc::clone(&node)),
            self.node_lease,
        ));
        let task_names = self.tasks.names().into_iter().filter_map(|n| self.tasks.interned(n)).collect();
        Scheduler {
            inner: Arc::new(Inner {
                store,
                tasks: self.tasks,
                task_names,
                zone: self.zone.unwrap_or_else(Zone::system),
                clock: self.clock,
                node,
                events,
                state: watch::Sender::new(SchedulerState::Stopped),
                executor,
                keeper,
                loop_task: Mutex::new(None),
                last_tick: std::sync::atomic::AtomicI64::new(0),
                wake: Notify::new(),
                batch_size,
                retention: self.retention,
                min_interval: self.min_interval,
            }),
        }
    }
}

impl Scheduler {
    /// Starts configuring a scheduler.
    pub fn builder() -> SchedulerBuilder {
        SchedulerBuilder {
            store: None,
            tasks: TaskRegistry::new(),
            zone: None,
            clock: Arc::new(SystemClock),
            max_concurrency: 1000,
            node_id: None,
            batch_size: None,
            cancel_grace: SignedDuration::from_secs(5),
            retention: Retention { keep_per_job: crate::memory::DEFAULT_HISTORY_LIMIT, max_age: None },
            node_lease: DEFAULT_NODE_LEASE,
            min_interval: DEFAULT_MIN_INTERVAL,
        }
    }
}
