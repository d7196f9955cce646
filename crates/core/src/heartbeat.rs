//! This node's side of the lease: registering, one heartbeat per node, the
//! sweeper, and what to do when the lease is lost. See [`crate::Lease`].

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::later;
use crate::error::Error;
use crate::event::Event;
use crate::executor::Executor;
use crate::node::{Lease, NodeRegistration};

/// After a failed registration or heartbeat, how long to wait before trying again.
const RETRY: SignedDuration = SignedDuration::from_secs(1);

/// Holds this node's lease: registers, renews it every third of the lease,
/// sweeps expired nodes' runs on every heartbeat, and re-registers under a
/// new epoch when the lease was lost.
#[derive(Debug)]
pub(crate) struct NodeKeeper {
    executor: Arc<Executor>,
    registration: NodeRegistration,
    ttl: SignedDuration,
    /// The lease held now; none before registration and after a loss.
    lease: watch::Sender<Option<Lease>>,
    task: Mutex<Option<JoinHandle<()>>>,
    stop: CancellationToken,
}

impl NodeKeeper {
    pub(crate) fn new(executor: Arc<Executor>, registration: NodeRegistration, ttl: SignedDuration) -> NodeKeeper {
        NodeKeeper {
            executor,
            registration,
            ttl,
            lease: watch::Sender::new(None),
            task: Mutex::new(None),
            stop: CancellationToken::new(),
        }
    }

    pub(crate) fn ttl(&self) -> SignedDuration {
        self.ttl
    }

    /// The lease, if one is held now.
    pub(crate) fn current(&self) -> Option<Lease> {
        self.lease.borrow().clone()
    }

    /// Signals each change of the lease (registered, lost, renewed).
    pub(crate) fn watch(&self) -> watch::Receiver<Option<Lease>> {
        self.lease.subscribe()
    }

    /// Starts the heartbeat if it is not running, and waits for a lease.
    /// `None` once the keeper is stopping.
    pub(crate) async fn ensure(self: &Arc<Self>) -> Option<Lease> {
        {
            let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
            if task.is_none() && !self.stop.is_cancelled() {
                *task = Some(tokio::spawn(Arc::clone(self).keep()));
            }
        }
        let mut lease = self.watch();
        tokio::select! {
            held = lease.wait_for(Option::is_some) => held.ok().and_then(|l| l.clone()),
            _ = self.stop.cancelled() => None,
        }
    }

    /// Called by whoever got `LeaseLost` for `lease`: cancels its runs, and
    /// the heartbeat registers again.
    pub(crate) fn lost(&self, lease: &Lease) {
        let was_current = self.lease.send_if_modified(|held| {
            let same = held.as_ref().is_some_and(|h| h.epoch == lease.epoch);
            if same {
                *held = None;
            }
            same
        });
        if was_current {
            let cancelled = self.executor.cancel_epoch(lease.epoch);
            tracing::error!(node = %lease.node, epoch = lease.epoch, cancelled, "this node lost its lease (not heard from in time); its runs are cancelled and it registers again");
            self.executor.events.emit(Event::LeaseLost { node: lease.node.to_string(), epoch: lease.epoch });
        }
    }

    /// Stops the heartbeat and ends the lease at once (a clean shutdown).
    pub(crate) async fn stop(&self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        if let Some(lease) = self.lease.send_replace(None)
            && let Err(e) = self.executor.store.release_lease(&lease).await
        {
            self.executor.events.store_error("ending this node's lease", &e);
        }
    }

    /// The heartbeat loop.
    async fn keep(self: Arc<Self>) {
        let clock = Arc::clone(&self.executor.clock);
        let store = Arc::clone(&self.executor.store);
        let mut fenced = self.executor.fenced();
        loop {
            let now = clock.now();
            let next = match self.current() {
                None => match store.register_node(&self.registration, self.ttl, now).await {
                    Ok(lease) => {
                        tracing::info!(node = %lease.node, epoch = lease.epoch, lease = %crate::format_duration(self.ttl), "node registered");
                        self.lease.send_replace(Some(lease));
                        self.sweep(now).await;
                        later(now, self.ttl / 3)
                    }
                    Err(e @ Error::NodeIdInUse { .. }) => {
                        tracing::warn!(error = %e, "waiting for the node id to be free");
                        later(now, RETRY)
                    }
                    Err(e) => {
                        self.executor.events.store_error("registering this node", &e);
                        later(now, RETRY)
                    }
                },
                Some(lease) => match store.renew_lease(&lease, self.ttl, now).await {
                    Ok(renewed) => {
                        self.lease.send_if_modified(|held| match held {
                            Some(h) if h.epoch == renewed.epoch => {
                                *h = renewed;
                                true
                            }
                            _ => false,
                        });
                        self.sweep(now).await;
                        later(now, self.ttl / 3)
                    }
                    Err(e) if e.is_lease_lost() => {
                        self.lost(&lease);
                        now
                    }
                    Err(e) => {
                        self.executor.events.store_error("renewing this node's lease", &e);
                        later(now, RETRY.min(self.ttl / 3))
                    }
                },
            };
            if next > now {
                // A loss found by a claim (which calls `lost`) wakes the
                // heartbeat to register again at once.
                let mut held = self.watch();
                let holding = held.borrow_and_update().as_ref().map(|l| l.epoch);
                let lost = async {
                    if holding.is_some() {
                        let _ = held.wait_for(Option::is_none).await;
                    } else {
                        std::future::pending::<()>().await;
                    }
                };
                // A run update fenced out under the lease held wakes it to
                // renew at once: a renewal refused is the loss (`lost`, then
                // registering again). A fenced-out update alone does not
                // prove the lease gone (a newer attempt may own that one
                // run), so the store is asked rather than every run cancelled.
                let fenced_out = async {
                    loop {
                        if fenced.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                        if Some(*fenced.borrow_and_update()) == holding {
                            return;
                        }
                    }
                };
                tokio::select! {
                    _ = clock.sleep_until(next) => {}
                    _ = lost => {}
                    _ = fenced_out => {}
                    _ = self.stop.cancelled() => return,
                }
            } else if self.stop.is_cancelled() {
                return;
            }
        }
    }

    /// Decides the runs of nodes whose leases ran out.
    async fn sweep(&self, now: Timestamp) {
        match self.executor.store.sweep(now).await {
            Ok(swept) => {
                for s in swept {
                    let run = &s.run;
                    tracing::warn!(job_id = %run.job_id, run_id = %run.id, node = %s.node, requeued = s.requeued, "run taken from a node whose lease ran out");
                    self.executor.events.emit(Event::RunAbandoned {
                        job_id: run.job_id.clone(),
                        run_id: run.id,
                        scheduled_for: run.scheduled_for,
                        node: s.node,
                        requeued: s.requeued,
                    });
                }
            }
            Err(e) => self.executor.events.store_error("sweeping expired nodes", &e),
        }
    }
}
