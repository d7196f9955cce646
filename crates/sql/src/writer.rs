//! The group-commit run writer of the SQL stores: run updates queue up and
//! one task writes whatever has queued in one transaction, so a burst of runs
//! costs a few transactions, not two per run. The store says how to write a
//! batch ([`WriteBatch`]); this module owns the queue, the retries and the
//! splitting.
//!
//! Every update is fenced by the store: it applies only while the stored run
//! is pending or running, held by the same node and lease epoch, and that
//! lease still exists. A fenced-out update's caller gets `LeaseLost`.
//!
//! Nothing queued is lost while the process lives: a batch that fails with a
//! transient error (a busy database) is tried again; one that fails for good
//! is split, and each run written alone, so one bad row cannot lose the others.
//! When the store is dropped the writer drains the queue before it stops.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chime_core::{Error, Result, Run};
use tokio::sync::{mpsc, oneshot};

/// How a store writes one batch of run updates, in one transaction: for each
/// run, in order, whether its update applied (`false`: fenced out). A run may
/// appear more than once in a batch; its last update carries the whole run.
pub trait WriteBatch: Send + Sync + 'static {
    /// Writes `runs`.
    fn write<'a>(&'a self, runs: &'a [&'a Run]) -> Pin<Box<dyn Future<Output = Result<Vec<bool>>> + Send + 'a>>;
}

/// The writer's queue: updates go in, outcomes come back.
#[derive(Debug)]
pub struct RunWriter {
    queue: mpsc::UnboundedSender<RunWrite>,
    location: String,
}

impl RunWriter {
    /// Starts the writer task on the current runtime. `location` names the
    /// store in errors and logs.
    pub fn spawn(batch: impl WriteBatch, location: String) -> RunWriter {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_writer(Arc::new(batch), location.clone(), rx));
        RunWriter { queue, location }
    }

    /// Queues an update. A finished run waits for its transaction (and learns
    /// of `LeaseLost`); one that is only starting does not, so its task is not
    /// delayed by the write.
    pub async fn update(&self, run: &Run) -> Result<()> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send((Some(run.clone()), reply)).map_err(|_| self.gone())?;
        if !run.status.is_finished() {
            return Ok(());
        }
        outcome.await.map_err(|_| self.gone())?.into_result(Some(run))
    }

    /// Waits until every update queued so far is written, so that reads see
    /// this store's own writes.
    pub async fn flush(&self) -> Result<()> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send((None, reply)).map_err(|_| self.gone())?;
        outcome.await.map_err(|_| self.gone())?.into_result(None)
    }

    fn gone(&self) -> Error {
        Error::Store { message: format!("{}: the run writer has stopped", self.location), transient: false }
    }
}

/// Runs per group-commit transaction, at most.
const MAX_RUN_BATCH: usize = 1024;

/// How often a batch failing with a transient error is tried again before it is split.
const TRANSIENT_RETRIES: u32 = 5;

/// The outcome of one queued update, as its caller learns it.
#[derive(Clone, Debug)]
enum Written {
    Applied,
    /// Fenced out: the run is no longer held by its node and epoch.
    LeaseLost,
    Failed {
        message: String,
        transient: bool,
    },
}

impl Written {
    fn into_result(self, run: Option<&Run>) -> Result<()> {
        match self {
            Written::Applied => Ok(()),
            Written::LeaseLost => Err(Error::LeaseLost {
                node: run.and_then(|r| r.node.as_deref()).unwrap_or("").to_owned(),
                epoch: run.and_then(|r| r.epoch).unwrap_or(0),
            }),
            Written::Failed { message, transient } => Err(Error::Store { message, transient }),
        }
    }
}

/// A run update (or, with `None`, a barrier: "tell me when everything queued
/// before me is written") and where to send its outcome.
type RunWrite = (Option<Run>, oneshot::Sender<Written>);

/// The writer task: runs until every sender is dropped and the queue is empty.
async fn run_writer(batcher: Arc<dyn WriteBatch>, location: String, mut queue: mpsc::UnboundedReceiver<RunWrite>) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_RUN_BATCH).await > 0 {
        let runs: Vec<&Run> = batch.iter().filter_map(|(run, _)| run.as_ref()).collect();
        let outcomes = write_with_retries(&*batcher, &location, &runs).await;
        let mut outcomes = outcomes.into_iter();
        for (run, reply) in batch.drain(..) {
            let outcome = match run {
                Some(_) => outcomes.next().expect("one outcome per run"),
                None => Written::Applied,
            };
            let _ = reply.send(outcome);
        }
    }
}

/// Writes a batch, trying again on transient errors and splitting it when it
/// keeps failing. One outcome per run, in order.
async fn write_with_retries(batcher: &dyn WriteBatch, location: &str, runs: &[&Run]) -> Vec<Written> {
    if runs.is_empty() {
        return Vec::new();
    }
    let mut tries = 0;
    let error = loop {
        match batcher.write(runs).await {
            Ok(applied) => {
                return applied.into_iter().map(|ok| if ok { Written::Applied } else { Written::LeaseLost }).collect();
            }
            Err(err) => {
                if err.is_transient() && tries < TRANSIENT_RETRIES {
                    tries += 1;
                    tracing::warn!(runs = runs.len(), error = %err, attempt = tries, "run history write failed; trying again");
                    tokio::time::sleep(Duration::from_millis(50 << tries)).await;
                    continue;
                }
                break err;
            }
        }
    };
    if runs.len() == 1 {
        tracing::error!(store = location, run_id = %runs[0].id, job_id = %runs[0].job_id, error = %error, "run history write failed");
        let transient = error.is_transient();
        return vec![Written::Failed { message: error.to_string(), transient }];
    }
    // One bad row must not lose the others: write each alone.
    tracing::warn!(runs = runs.len(), error = %error, "run history batch failed; writing its runs one by one");
    let mut outcomes = Vec::with_capacity(runs.len());
    for run in runs {
        outcomes.extend(Box::pin(write_with_retries(batcher, location, std::slice::from_ref(run))).await);
    }
    outcomes
}
