//! The group-commit run writer of the SQL stores: run updates queue up and
//! one task writes whatever has queued in one transaction, so a burst of runs
//! costs a few transactions, not two per run. The store says how to write a
//! batch ([`WriteBatch`]); this module owns the queue, the retries and the
//! splitting.
//!
//! Every update is fenced by the store: it applies only while the stored run
//! is pending or running, held by the same node and lease epoch at an
//! attempt no newer than the update's, and that lease still exists. A
//! fenced-out update's caller gets `LeaseLost`, a start's as well as a
//! finish's: every caller learns its update's outcome once its batch is
//! written (the executor does not hold a task back for it).
//!
//! Nothing queued is lost while the process lives: a batch that fails with a
//! transient error (a busy database, a lost connection) is tried again, with
//! a capped backoff, until it is written; the queue is bounded, so while the
//! database is away callers wait to queue (back-pressure) instead of the
//! queue growing. A batch that fails for good is split, and each run written
//! alone, so one bad row cannot lose the others; a finish that cannot be
//! written even alone is recorded as a bare `failed` row instead, so that the
//! run does not stay in flight and block its job (`max_instances`) for as
//! long as its node's lease lives. When the store is dropped the writer
//! drains the queue before it stops.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chime_core::{Error, Result, Run, RunStatus, cap_error};
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
    queue: mpsc::Sender<RunWrite>,
    location: String,
}

impl RunWriter {
    /// Starts the writer task on the current runtime. `location` names the
    /// store in errors and logs.
    pub fn spawn(batch: impl WriteBatch, location: String) -> RunWriter {
        RunWriter::spawn_with(batch, location, Backoff::DEFAULT)
    }

    fn spawn_with(batch: impl WriteBatch, location: String, backoff: Backoff) -> RunWriter {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run_writer(Arc::new(batch), location.clone(), backoff, rx));
        RunWriter { queue, location }
    }

    /// Queues an update (waiting for room while the queue is full) and
    /// returns once its batch is written: `LeaseLost` when it was fenced out.
    /// A caller that must not wait for the write (a run's start) polls this
    /// beside its work; the update is queued on the first poll.
    pub async fn update(&self, run: &Run) -> Result<()> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send((Some(run.clone()), reply)).await.map_err(|_| self.gone())?;
        outcome.await.map_err(|_| self.gone())?.into_result(Some(run))
    }

    /// Waits until every update queued so far is written, so that reads see
    /// this store's own writes. While the database is away the writer keeps
    /// trying for as long as it takes, but a read (the dashboard, a sweep)
    /// should not hang that long: after `FLUSH_WAIT` (10 s) this gives up with a
    /// transient error, and the updates stay queued.
    pub async fn flush(&self) -> Result<()> {
        let written = async {
            let (reply, outcome) = oneshot::channel();
            self.queue.send((None, reply)).await.map_err(|_| self.gone())?;
            outcome.await.map_err(|_| self.gone())?.into_result(None)
        };
        tokio::time::timeout(FLUSH_WAIT, written).await.unwrap_or_else(|_| {
            Err(Error::Store {
                message: format!(
                    "{}: queued run updates are not written yet (the database has been busy or unreachable for {}s); \
                     they are kept and tried again",
                    self.location,
                    FLUSH_WAIT.as_secs()
                ),
                transient: true,
            })
        })
    }

    fn gone(&self) -> Error {
        Error::Store { message: format!("{}: the run writer has stopped", self.location), transient: false }
    }
}

/// How long [`RunWriter::flush`] waits for the queue ahead of it.
const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// Runs per group-commit transaction, at most.
const MAX_RUN_BATCH: usize = 1024;

/// Updates that may wait in the queue, at most: room for the batch being
/// written to be followed by a few more, and then callers wait.
const QUEUE_CAPACITY: usize = 4 * MAX_RUN_BATCH;

/// How long to wait before trying a transiently failed batch again: doubling
/// from `first`, never more than `most`.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    first: Duration,
    most: Duration,
}

impl Backoff {
    /// A busy SQLite file frees within milliseconds to seconds; a restarting
    /// PostgreSQL within seconds. Two seconds at most keeps a finish from
    /// landing long after the database is back.
    const DEFAULT: Backoff = Backoff { first: Duration::from_millis(50), most: Duration::from_secs(2) };

    /// The wait after the `tries`-th failure (from 1).
    fn after(self, tries: u32) -> Duration {
        self.first.saturating_mul(1 << tries.saturating_sub(1).min(16)).min(self.most)
    }
}

/// Of a batch retried for a long time, every this many tries is logged at
/// WARN (with the default backoff, about once a minute), so an outage is
/// visible but does not flood the log.
const WARN_EVERY: u32 = 30;

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
    fn from_applied(applied: bool) -> Written {
        if applied { Written::Applied } else { Written::LeaseLost }
    }

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

/// What went wrong, without the "store error: " that `Error::Store` adds
/// again when the caller gets it.
fn message_of(error: &Error) -> String {
    match error {
        Error::Store { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// A run update (or, with `None`, a barrier: "tell me when everything queued
/// before me is written") and where to send its outcome.
type RunWrite = (Option<Run>, oneshot::Sender<Written>);

/// The writer task: runs until every sender is dropped and the queue is empty.
async fn run_writer(
    batcher: Arc<dyn WriteBatch>,
    location: String,
    backoff: Backoff,
    mut queue: mpsc::Receiver<RunWrite>,
) {
    let writer = Writer { batcher: &*batcher, location: &location, backoff };
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_RUN_BATCH).await > 0 {
        let runs: Vec<&Run> = batch.iter().filter_map(|(run, _)| run.as_ref()).collect();
        let outcomes = writer.write(&runs).await;
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

/// What the writer task writes with.
struct Writer<'a> {
    batcher: &'a dyn WriteBatch,
    location: &'a str,
    backoff: Backoff,
}

impl Writer<'_> {
    /// Writes a batch, splitting it when it fails for good. One outcome per
    /// run, in order.
    async fn write(&self, runs: &[&Run]) -> Vec<Written> {
        if runs.is_empty() {
            return Vec::new();
        }
        let error = match self.write_until_written(runs).await {
            Ok(applied) => return applied.into_iter().map(Written::from_applied).collect(),
            Err(error) => error,
        };
        if let [run] = runs {
            return vec![self.record_unwritable(run, error).await];
        }
        // One bad row must not lose the others: write each alone.
        tracing::warn!(store = self.location, runs = runs.len(), error = %error, "run history batch failed; writing its runs one by one");
        let mut outcomes = Vec::with_capacity(runs.len());
        for run in runs {
            outcomes.extend(Box::pin(self.write(std::slice::from_ref(run))).await);
        }
        outcomes
    }

    /// Writes `runs`, trying again after a transient error for as long as it
    /// takes: while this waits, the queue fills and callers wait to queue.
    /// Only an error that retrying cannot cure is returned.
    async fn write_until_written(&self, runs: &[&Run]) -> Result<Vec<bool>> {
        let mut tries = 0u32;
        loop {
            match self.batcher.write(runs).await {
                Ok(applied) => {
                    if tries > 0 {
                        tracing::info!(
                            store = self.location,
                            runs = runs.len(),
                            tries,
                            "run history written after the store recovered"
                        );
                    }
                    return Ok(applied);
                }
                Err(err) if err.is_transient() => {
                    tries = tries.saturating_add(1);
                    if tries == 1 || tries.is_multiple_of(WARN_EVERY) {
                        tracing::warn!(store = self.location, runs = runs.len(), error = %err, tries, "run history write failed; trying again until it is written");
                    }
                    tokio::time::sleep(self.backoff.after(tries)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// A single run's update failed for good. A start is only reported (its
    /// finish carries the whole run again). A finish that is not written
    /// leaves the run in flight under a live lease, so its job would be held
    /// at `max_instances` for as long as this process lives: it is recorded
    /// instead as a bare `failed` row (no output, no reason, the error
    /// saying why), which ends the run as far as the schedule is concerned.
    async fn record_unwritable(&self, run: &Run, error: Error) -> Written {
        tracing::error!(store = self.location, run_id = %run.id, job_id = %run.job_id, status = %run.status, error = %error, "run history write failed");
        let failed = Written::Failed { message: message_of(&error), transient: error.is_transient() };
        if !run.status.is_finished() {
            return failed;
        }
        let bare = Run {
            status: RunStatus::Failed,
            error: Some(cap_error(format!("the run's result could not be recorded: {}", message_of(&error)))),
            reason: None,
            output: None,
            late_result: None,
            ..run.clone()
        };
        match self.write_until_written(&[&bare]).await {
            Ok(applied) if applied.first() == Some(&false) => Written::LeaseLost,
            Ok(_) => {
                tracing::warn!(store = self.location, run_id = %run.id, job_id = %run.job_id, status = %run.status, "the run's result could not be recorded; the run is recorded failed instead");
                Written::Failed {
                    message: format!("{}; the run is recorded failed instead of {}", message_of(&error), run.status),
                    transient: false,
                }
            }
            Err(again) => {
                tracing::error!(store = self.location, run_id = %run.id, job_id = %run.job_id, error = %again, "not even a bare failed row could be written for the run; it stays in flight until its node's lease ends");
                failed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use chime_core::{JobId, RunKind};
    use jiff::Timestamp;

    use super::*;

    /// A store that fails every write transiently while it is `away`, and
    /// for good for any batch holding a run whose error is "poison"; what it
    /// writes it keeps.
    #[derive(Default)]
    struct FakeStore {
        away: AtomicBool,
        writes: AtomicU32,
        written: Mutex<Vec<Run>>,
    }

    impl WriteBatch for Arc<FakeStore> {
        fn write<'a>(&'a self, runs: &'a [&'a Run]) -> Pin<Box<dyn Future<Output = Result<Vec<bool>>> + Send + 'a>> {
            Box::pin(async move {
                self.writes.fetch_add(1, Ordering::SeqCst);
                if self.away.load(Ordering::SeqCst) {
                    return Err(Error::Store { message: "the database is busy".into(), transient: true });
                }
                if runs.iter().any(|r| r.error.as_deref() == Some("poison")) {
                    return Err(Error::Store { message: "this row cannot be written".into(), transient: false });
                }
                self.written.lock().unwrap().extend(runs.iter().map(|r| (*r).clone()));
                Ok(vec![true; runs.len()])
            })
        }
    }

    fn finished(error: Option<&str>) -> Run {
        let node: Arc<str> = Arc::from("n");
        let mut run = Run::pending(JobId::new("j").unwrap(), Timestamp::UNIX_EPOCH, RunKind::Scheduled, &node);
        run.status = if error.is_some() { RunStatus::Failed } else { RunStatus::Succeeded };
        run.error = error.map(str::to_owned);
        run.output = Some("the task's output".into());
        run.finished_at = Some(Timestamp::UNIX_EPOCH);
        run
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_is_tried_again_until_it_is_written() {
        let store = Arc::new(FakeStore::default());
        store.away.store(true, Ordering::SeqCst);
        let writer = RunWriter::spawn(Arc::clone(&store), "fake".into());
        let run = finished(None);
        let update = tokio::spawn({
            let run = run.clone();
            async move { writer.update(&run).await }
        });
        // An hour of a busy database, on virtual time: far past any fixed
        // number of tries, and each wait capped.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let tries = store.writes.load(Ordering::SeqCst);
        assert!(tries > 1000, "tried again every few seconds: {tries} tries in an hour");
        assert!(!update.is_finished(), "the finish is not given up");
        store.away.store(false, Ordering::SeqCst);
        update.await.unwrap().expect("written once the database is back");
        assert_eq!(store.written.lock().unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [run.id]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flush_gives_up_while_the_database_is_away_and_the_update_is_kept() {
        let store = Arc::new(FakeStore::default());
        store.away.store(true, Ordering::SeqCst);
        let writer = Arc::new(RunWriter::spawn(Arc::clone(&store), "fake".into()));
        let update = tokio::spawn({
            let writer = Arc::clone(&writer);
            async move { writer.update(&finished(None)).await }
        });
        while store.writes.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let err = writer.flush().await.unwrap_err();
        assert!(err.is_transient() && err.to_string().contains("not written yet"), "{err}");
        store.away.store(false, Ordering::SeqCst);
        update.await.unwrap().unwrap();
        writer.flush().await.unwrap();
        assert_eq!(store.written.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_finish_that_cannot_be_written_is_recorded_failed_and_the_rest_of_its_batch_lands() {
        let store = Arc::new(FakeStore::default());
        let writer = Arc::new(RunWriter::spawn(Arc::clone(&store), "fake".into()));
        let runs = [finished(None), finished(Some("poison")), finished(None)];
        let mut started = runs.clone();
        started[1].status = RunStatus::Running;
        started[1].error = Some("poison".into());
        let updates: Vec<_> = runs
            .iter()
            .chain(&started[1..2])
            .map(|run| {
                let (writer, run) = (Arc::clone(&writer), run.clone());
                tokio::spawn(async move { writer.update(&run).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for update in updates {
            outcomes.push(update.await.unwrap());
        }
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
        let err = outcomes[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("this row cannot be written") && err.contains("recorded failed instead"), "{err}");
        let err = outcomes[3].as_ref().unwrap_err().to_string();
        assert!(!err.contains("recorded failed"), "a start is only reported: {err}");

        let written = store.written.lock().unwrap().clone();
        let poisoned: Vec<&Run> = written.iter().filter(|r| r.id == runs[1].id).collect();
        assert_eq!(poisoned.len(), 1, "one bare row for the poisoned finish, none for its start: {written:?}");
        assert_eq!((poisoned[0].status, poisoned[0].output.as_deref()), (RunStatus::Failed, None));
        let error = poisoned[0].error.as_deref().unwrap();
        assert!(error.starts_with("the run's result could not be recorded: this row cannot be written"), "{error}");
        for run in [&runs[0], &runs[2]] {
            assert!(written.iter().any(|w| w == run), "the others are written as given: {written:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn while_the_database_is_away_callers_wait_to_queue() {
        let store = Arc::new(FakeStore::default());
        store.away.store(true, Ordering::SeqCst);
        let writer = Arc::new(RunWriter::spawn(Arc::clone(&store), "fake".into()));
        // One batch being tried, a full queue, and some more.
        let total = MAX_RUN_BATCH + QUEUE_CAPACITY + 100;
        let updates: Vec<_> = (0..total)
            .map(|_| {
                let writer = Arc::clone(&writer);
                tokio::spawn(async move { writer.update(&finished(None)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(writer.queue.capacity(), 0, "the queue is full");
        assert!(writer.queue.try_reserve().is_err(), "and takes no more: the rest wait");
        assert!(updates.iter().all(|u| !u.is_finished()));
        store.away.store(false, Ordering::SeqCst);
        for update in updates {
            update.await.unwrap().unwrap();
        }
        assert_eq!(store.written.lock().unwrap().len(), total, "every update was written once the database came back");
    }
}
