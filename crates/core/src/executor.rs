//! Running claimed runs: jitter, a concurrency slot, the task itself,
//! timeouts (cancel, then abort), retries with backoff, and the run record,
//! every update of it fenced by the lease the run was claimed under.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, later};
use crate::event::{Event, Events};
use crate::id::{JobId, RunId};
use crate::job::Job;
use crate::reason::{AlertNotice, CancelledBy, Reason, Stage};
use crate::run::{Run, cap_error};
use crate::status::RunStatus;
use crate::store::JobStore;
use crate::task::{JobContext, Started, TaskRegistry, TaskResult};

/// How one attempt ended.
enum Attempt {
    Succeeded,
    Failed(String),
    TimedOut,
    Cancelled,
}

/// A run in progress in this process.
#[derive(Debug)]
struct InFlight {
    job_id: JobId,
    /// The lease epoch it was claimed under.
    epoch: Option<u64>,
    cancel: Arc<Cancel>,
}

/// A run's cancellation: the token its task watches, and who pulled it
/// first (what its `cancelled` reason names).
#[derive(Debug, Default)]
struct Cancel {
    token: CancellationToken,
    by: OnceLock<CancelledBy>,
}

impl Cancel {
    fn cancel(&self, by: CancelledBy) {
        let _ = self.by.set(by);
        self.token.cancel();
    }

    /// The reason of a run cancelled at `stage`.
    fn reason(&self, stage: Stage) -> Reason {
        Reason::Cancelled { by: self.by.get().cloned().unwrap_or(CancelledBy::Unknown), stage }
    }
}

/// Executes runs: owns the concurrency slots and the map of runs in progress.
#[derive(Debug)]
pub(crate) struct Executor {
    pub(crate) store: Arc<dyn JobStore>,
    pub(crate) tasks: TaskRegistry,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) events: Events,
    slots: Arc<Semaphore>,
    running: Mutex<HashMap<RunId, InFlight, foldhash::fast::RandomState>>,
    /// The length of `running`, to read without its lock. Not a watch: a
    /// watch's send wakes its eight notifiers, twice a run.
    count: AtomicUsize,
    /// Woken when the last run in progress ends (`idle`).
    idle: Notify,
    /// The newest lease epoch a run update of this node was fenced out
    /// under (0: none yet), for the heartbeat to check its lease at once.
    fenced: watch::Sender<u64>,
    cancel_grace: SignedDuration,
}

impl Executor {
    pub(crate) fn new(
        store: Arc<dyn JobStore>,
        tasks: TaskRegistry,
        clock: Arc<dyn Clock>,
        events: Events,
        max_concurrency: usize,
        cancel_grace: SignedDuration,
    ) -> Executor {
        Executor {
            store,
            tasks,
            clock,
            events,
            slots: Arc::new(Semaphore::new(max_concurrency)),
            running: Mutex::new(HashMap::default()),
            count: AtomicUsize::new(0),
            idle: Notify::new(),
            fenced: watch::Sender::new(0),
            cancel_grace,
        }
    }

    /// Executes `runs`, each for its job. The runs are registered as in
    /// flight before this returns, so shutdown waits for them.
    ///
    /// One task starts the whole batch: it polls each run once, and only a
    /// run that then waits (for I/O, a timer, a slot) gets a task of its
    /// own. Most runs of a burst are done at their first poll, and a tokio
    /// task each (its allocation, its scheduling, its wake-ups) cost 13% of
    /// a run's instructions and half of a burst's CPU time.
    pub(crate) fn dispatch(self: &Arc<Self>, runs: Vec<(Arc<Job>, Run)>) {
        if runs.is_empty() {
            return;
        }
        let mut started = Vec::with_capacity(runs.len());
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            for (job, run) in runs {
                let cancel = Arc::new(Cancel::default());
                let in_flight = InFlight { job_id: run.job_id.clone(), epoch: run.epoch, cancel: Arc::clone(&cancel) };
                running.insert(run.id, in_flight);
                started.push((run.id, Box::pin(self.run_to_end(job, run, cancel))));
            }
            self.count.store(running.len(), Ordering::Relaxed);
        }
        start_batch(started.into_iter());
    }

    /// Takes a run out of the runs in flight; wakes `idle` after the last.
    fn forget(&self, run_id: RunId) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.remove(&run_id);
        self.count.store(running.len(), Ordering::Relaxed);
        if running.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// A run from its start to its record's end, and out of the runs in flight.
    fn run_to_end(
        self: &Arc<Self>,
        job: Arc<Job>,
        mut run: Run,
        cancel: Arc<Cancel>,
    ) -> impl Future<Output = ()> + Send + 'static {
        // Made here, not in the future: a future dropped before its first
        // poll (a runtime shutting down) is forgotten too.
        let guard = InFlightGuard { executor: Arc::clone(self), run_id: run.id };
        async move {
            let this = &guard.executor;
            // The run lives here, once: `execute` borrows it, and its end is
            // written after `execute` returns (a run held by value in each of
            // its states made its future 2 KiB).
            let end = execute(this, job, &mut run, &cancel).await;
            end.apply(&mut run, this.clock.now());
            this.record_end(&run).await;
            drop(run);
            drop(guard);
        }
    }

    /// Cancels the runs in progress of the jobs `which` selects, `by` whom.
    pub(crate) fn cancel_jobs(&self, which: impl Fn(&JobId) -> bool, by: CancelledBy) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for run in running.values().filter(|r| which(&r.job_id)) {
            run.cancel.cancel(by.clone());
        }
    }

    /// Cancels the runs claimed under a lease epoch this node has lost.
    pub(crate) fn cancel_epoch(&self, epoch: u64) -> usize {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let lost: Vec<_> = running.values().filter(|r| r.epoch == Some(epoch)).collect();
        for run in &lost {
            run.cancel.cancel(CancelledBy::LeaseLost);
        }
        lost.len()
    }

    /// Returns once no run is in progress.
    pub(crate) async fn idle(&self) {
        loop {
            // Registered before the count is read, so an end in between wakes it.
            let mut ended = std::pin::pin!(self.idle.notified());
            ended.as_mut().enable();
            if self.running_count() == 0 {
                return;
            }
            ended.await;
        }
    }

    /// Signals the newest lease epoch a run update was fenced out under.
    /// Epochs only grow, so the newest is the only one that can still be
    /// this node's lease.
    pub(crate) fn fenced(&self) -> watch::Receiver<u64> {
        self.fenced.subscribe()
    }

    /// Notes that an update of a run held under `epoch` was fenced out.
    fn note_fenced(&self, epoch: Option<u64>) {
        let Some(epoch) = epoch else { return };
        // The same epoch again is news too: the heartbeat may have renewed
        // the lease since the last one, before this update's answer came.
        self.fenced.send_if_modified(|newest| {
            if epoch < *newest {
                return false;
            }
            *newest = epoch;
            true
        });
    }

    /// How many runs are in progress now.
    pub(crate) fn running_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Writes a run's start (or the start of its next attempt). When the
    /// store fences it out, the run is no longer this node's (its lease was
    /// lost and a sweeper decided it, or a newer attempt owns it): the run
    /// is cancelled, and the heartbeat is told to check the lease at once.
    async fn record_start(&self, run: &Run, cancel: &Cancel) {
        match self.store.update_run(run).await {
            Ok(()) => {}
            Err(e) if e.is_lease_lost() => {
                tracing::warn!(job_id = %run.job_id, run_id = %run.id, node = ?run.node, epoch = ?run.epoch, "recording a run start: the run is no longer this node's (its lease was lost, or a newer attempt holds it); it is cancelled");
                cancel.cancel(CancelledBy::LeaseLost);
                self.note_fenced(run.epoch);
            }
            Err(e) => self.events.store_error("recording a run start", &e),
        }
    }

    /// Writes a run's end. A refusal of the fence means the node lost its
    /// lease meanwhile: the store keeps the result as the run's late result.
    async fn record_end(&self, run: &Run) {
        match self.store.update_run(run).await {
            Ok(()) => {}
            Err(e) if e.is_lease_lost() => {
                tracing::warn!(job_id = %run.job_id, run_id = %run.id, status = %run.status, "run finished after its node lost its lease; kept as its late result, the sweeper's decision stands");
                self.note_fenced(run.epoch);
            }
            // A failed history write never stops scheduling.
            Err(e) => self.events.store_error("recording a run result", &e),
        }
    }
}

/// How long one task goes on starting the runs of a batch before it hands
/// the rest to a new task, which another worker may take: runs whose tasks
/// compute before their first `.await` then still run side by side.
const BATCH_SLICE: std::time::Duration = std::time::Duration::from_millis(1);

/// Spawns the task that polls each of `runs` once (see `Executor::dispatch`).
fn start_batch<F>(mut runs: std::vec::IntoIter<(RunId, Pin<Box<F>>)>)
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let began = std::time::Instant::now();
        while let Some((run_id, mut run)) = runs.next() {
            // A panic here is chime's own or its store's (a task's panic is
            // caught where the task runs): it ends its run alone, not the
            // rest of the batch. Dropping the run's future forgets the run.
            let first = std::future::poll_fn(|cx| {
                let poll = std::panic::AssertUnwindSafe(|| run.as_mut().poll(cx).is_ready());
                std::task::Poll::Ready(std::panic::catch_unwind(poll))
            })
            .await;
            match first {
                Ok(true) => {}
                // Boxed, so spawning moves a pointer, not the run's state: a
                // polled future must not move, and tokio would copy a future
                // it spawns by value, and again at each stage.
                Ok(false) => drop(tokio::spawn(run)),
                Err(_) => {
                    tracing::error!(%run_id, "a run panicked in the executor or its store; its record keeps the status it had (a restart's sweep decides it)")
                }
            }
            if runs.len() > 0 && began.elapsed() > BATCH_SLICE {
                start_batch(runs);
                return;
            }
        }
    });
}

/// Takes its run out of the runs in flight when dropped: at the run's end,
/// and when its future is dropped unfinished (a panic, a runtime shutting
/// down), so that `idle` and shutdown never wait for a run that cannot end.
struct InFlightGuard {
    executor: Arc<Executor>,
    run_id: RunId,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.executor.forget(self.run_id);
    }
}

/// Executes `run` to its end, which it returns; the caller writes it.
async fn execute(inner: &Executor, job: Arc<Job>, run: &mut Run, cancel: &Cancel) -> End {
    let clock = &inner.clock;
    let token = &cancel.token;
    // A run an alert asked for tells its task which alert (and keeps saying
    // so in its record, unless chime decided its end).
    let alert = match &run.reason {
        Some(Reason::Alert(notice)) => Some(Arc::new(notice.clone())),
        _ => None,
    };

    // The waits before a start, and a retry's backoff below, are boxed: they
    // are rare, and inline every run's future would be larger by theirs.
    if let Some(jitter) = job.options.jitter {
        let nanos = jitter.as_nanos().max(0) as u128;
        let delay = SignedDuration::from_nanos((fastrand::u128(0..=nanos)).min(i64::MAX as u128) as i64);
        Box::pin(token.run_until_cancelled(clock.sleep_until(later(clock.now(), delay)))).await;
    }
    let permit = match Arc::clone(&inner.slots).try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) => Box::pin(token.run_until_cancelled(Arc::clone(&inner.slots).acquire_owned()))
            .await
            .map(|permit| permit.expect("the semaphore is never closed")),
    };
    // Cancelled during either wait, or as a permit came (the wait prefers
    // the permit), or before: the cancellation wins.
    let Some(_permit) = permit.filter(|_| !token.is_cancelled()) else {
        return End::new(RunStatus::Cancelled, Ended::Reason(cancel.reason(Stage::BeforeStart)), None);
    };

    let Some(handler) = inner.tasks.get(&job.task) else {
        let why = format!("no task named {:?} is registered with this scheduler", job.task);
        tracing::error!(job_id = %job.id, run_id = %run.id, "{why}");
        run.started_at = Some(clock.now());
        return End::new(RunStatus::Failed, Ended::Error(why), alert);
    };
    // The job is this run's own unless the claim planned several runs of it.
    let mut job = job;
    let args = match Arc::get_mut(&mut job) {
        Some(owned) => Arc::new(std::mem::take(&mut owned.args)),
        None => Arc::new(job.args.clone()),
    };
    let retry = job.options.retry.clone();

    let mut first_start = Some(clock.now());
    run.started_at = first_start;
    loop {
        run.attempt += 1;
        run.status = RunStatus::Running;
        // The first attempt starts when the run does (one clock read fewer).
        let attempt_started = first_start.take().unwrap_or_else(|| clock.now());
        let output = Arc::new(std::sync::Mutex::new(None));
        let outcome = {
            // The start is written beside the task, not before it: a store
            // that batches (the SQL stores' group commit) answers once its
            // batch commits, and the task is not held back for that. A
            // fenced-out start cancels the task's token when the answer
            // comes. A store that answers at once (memory) has answered by
            // the first poll, before the task starts and the event is seen.
            // (Unless tokio's cooperative budget ran out in a long batch: then
            // a task done first drops its start, and the finish alone, which
            // carries the start time, is written.)
            let mut start = std::pin::pin!(inner.record_start(run, cancel));
            let recorded = poll_once(start.as_mut()).await;
            // Per-run lines are DEBUG: at hundreds of runs a second INFO would
            // drown the log (`chime serve` logs a summary a minute instead).
            tracing::debug!(job_id = %job.id, run_id = %run.id, attempt = run.attempt, scheduled_for = %run.scheduled_for, "run started");
            inner.events.emit(Event::RunStarted {
                job_id: job.id.clone(),
                run_id: run.id,
                scheduled_for: run.scheduled_for,
                attempt: run.attempt,
            });
            let ctx = JobContext {
                job_id: job.id.clone(),
                run_id: run.id,
                scheduled_for: run.scheduled_for,
                attempt: run.attempt,
                args: Arc::clone(&args),
                // A token of the attempt's own: a timeout cancels the attempt
                // alone (a retry may follow), and a task that cancels its
                // token (a drop guard for its helpers) must not cancel its run.
                cancel: token.child_token(),
                alert: alert.clone(),
                output: Arc::clone(&output),
            };
            // Pinned here once: awaited by value in one branch and pinned in
            // the other, the attempt was held twice in the run's future.
            let mut task = std::pin::pin!(attempt(inner, &handler, ctx, job.options.timeout, token));
            if recorded {
                task.await
            } else {
                tokio::select! {
                    _ = &mut start => task.await,
                    // A task done before its start's answer does not wait for
                    // it: the finish queues behind the start (often into the
                    // same batch, one row write for both) and is fenced the
                    // same way, so a refusal is learnt from the finish.
                    outcome = &mut task => outcome,
                }
            }
        };
        run.output = output.lock().unwrap_or_else(|p| p.into_inner()).take().map(cap_error);
        // Whether a failure of this attempt is followed by another.
        let again = retry.as_ref().is_some_and(|r| run.attempt < r.max_attempts) && !token.is_cancelled();
        let (status, error) = match outcome {
            Attempt::Succeeded => {
                let duration = clock.now().duration_since(attempt_started);
                tracing::debug!(job_id = %job.id, run_id = %run.id, ?duration, "run succeeded");
                inner.events.emit(Event::RunSucceeded { job_id: job.id.clone(), run_id: run.id, duration });
                (RunStatus::Succeeded, Ended::Ok)
            }
            Attempt::Cancelled => {
                tracing::warn!(job_id = %job.id, run_id = %run.id, "run cancelled");
                inner.events.emit(Event::RunCancelled { job_id: job.id.clone(), run_id: run.id });
                (RunStatus::Cancelled, Ended::Reason(cancel.reason(Stage::Running)))
            }
            ref failure @ (Attempt::Failed(_) | Attempt::TimedOut) => {
                let (status, error) = match failure {
                    Attempt::Failed(e) => {
                        tracing::warn!(job_id = %job.id, run_id = %run.id, attempt = run.attempt, will_retry = again, error = %e, "run failed");
                        inner.events.emit(Event::RunFailed {
                            job_id: job.id.clone(),
                            run_id: run.id,
                            attempt: run.attempt,
                            error: e.clone(),
                            will_retry: again,
                        });
                        (RunStatus::Failed, Ended::Error(e.clone()))
                    }
                    _ => {
                        let e = Reason::TimedOut { after: job.options.timeout.unwrap_or_default() };
                        tracing::warn!(job_id = %job.id, run_id = %run.id, attempt = run.attempt, will_retry = again, "run timed out");
                        inner.events.emit(Event::RunTimedOut {
                            job_id: job.id.clone(),
                            run_id: run.id,
                            attempt: run.attempt,
                            will_retry: again,
                        });
                        (RunStatus::TimedOut, Ended::Reason(e))
                    }
                };
                if again {
                    error.apply(run, alert.as_deref());
                    let delay = retry.as_ref().expect("retrying").delay_after(run.attempt);
                    Box::pin(token.run_until_cancelled(clock.sleep_until(later(clock.now(), delay)))).await;
                    // Cancelled during the backoff or as it ended: no next attempt.
                    if !token.is_cancelled() {
                        continue;
                    }
                    inner.events.emit(Event::RunCancelled { job_id: job.id.clone(), run_id: run.id });
                    (RunStatus::Cancelled, Ended::Reason(cancel.reason(Stage::WaitingToRetry)))
                } else {
                    (status, error)
                }
            }
        };
        return End::new(status, error, alert);
    }
}

/// Polls `future` once: whether it is done (its output is not needed).
async fn poll_once<F: std::future::Future<Output = ()>>(mut future: std::pin::Pin<&mut F>) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_ready())).await
}

/// Runs the handler once: inline for an async task, on the blocking pool for
/// a blocking one. The handler starts when this is called, not when the
/// future is first polled: the context then never lives in the run's future.
fn attempt<'a>(
    inner: &'a Executor,
    handler: &crate::task::Handler,
    ctx: JobContext,
    timeout: Option<SignedDuration>,
    run_token: &'a CancellationToken,
) -> impl Future<Output = Attempt> + Send + 'a {
    let attempt_token = ctx.cancel.clone();
    let clock = &inner.clock;
    // A boxed sleep, or a box of nothing (no allocation): smaller in every
    // run's future than a future that picks one when first polled.
    let timed_out: crate::clock::Sleep = match timeout {
        Some(t) => clock.sleep_until(later(clock.now(), t)),
        None => Box::pin(std::future::pending()),
    };
    let mut handle = handler.start(ctx);
    async move {
        tokio::select! {
            // A task that returns because its run was cancelled was cancelled,
            // whatever it returned.
            result = &mut handle => {
                if run_token.is_cancelled() { Attempt::Cancelled } else { outcome(result) }
            }
            _ = timed_out => {
                attempt_token.cancel();
                Box::pin(stop(inner, handle)).await;
                Attempt::TimedOut
            }
            _ = run_token.cancelled() => {
                Box::pin(stop(inner, handle)).await;
                Attempt::Cancelled
            }
        }
    }
}

fn outcome(result: Result<TaskResult, String>) -> Attempt {
    match result {
        Ok(Ok(())) => Attempt::Succeeded,
        Ok(Err(e)) => Attempt::Failed(e.to_string()),
        Err(panic) => Attempt::Failed(format!("the task panicked: {panic}")),
    }
}

/// Gives a cancelled task the grace period to return, then aborts it by
/// dropping it (a blocking task cannot be stopped; it is left to finish).
async fn stop(inner: &Executor, mut handle: Started) {
    let grace_end: Timestamp = later(inner.clock.now(), inner.cancel_grace);
    tokio::select! {
        _ = &mut handle => {}
        _ = inner.clock.sleep_until(grace_end) => {}
    }
}

/// How a run ended, for its record: well, with the task's own error, or
/// for a reason chime decided.
enum Ended {
    Ok,
    Error(String),
    Reason(Reason),
}

impl Ended {
    /// Writes the error text and reason into `run`. A run an alert asked
    /// for keeps that alert as its reason (a retry's timeout in between
    /// notwithstanding), unless chime decided its end.
    fn apply(self, run: &mut Run, alert: Option<&AlertNotice>) {
        let asked = || alert.map(|a| Reason::Alert(a.clone()));
        match self {
            Ended::Ok => {
                run.error = None;
                run.reason = asked();
            }
            Ended::Error(e) => {
                run.reason = asked();
                run.error = Some(cap_error(e));
            }
            Ended::Reason(reason) => run.set_reason(Some(reason)),
        }
    }
}

/// A run's end as `execute` decided it, for its record.
struct End {
    status: RunStatus,
    ended: Ended,
    /// The alert that asked for the run, if one did.
    alert: Option<Arc<AlertNotice>>,
}

impl End {
    fn new(status: RunStatus, ended: Ended, alert: Option<Arc<AlertNotice>>) -> End {
        End { status, ended, alert }
    }

    /// Writes this end into `run`, finished at `now`.
    fn apply(self, run: &mut Run, now: Timestamp) {
        run.status = self.status;
        self.ended.apply(run, self.alert.as_deref());
        run.finished_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::memory::MemoryStore;
    use crate::status::RunKind;

    /// Every run's future is one allocation: at most 1,024 bytes, glibc
    /// serves it from its per-thread cache; larger, from its shared bins, at
    /// several times the cost (a 2.4 KiB future once cost 1,000 instructions
    /// a run). Grows past this when a state of `execute` holds more than it
    /// must: box what is rare (see the waits in `execute`).
    #[tokio::test]
    async fn a_run_future_fits_the_allocator_s_thread_cache() {
        let (events, _) = tokio::sync::broadcast::channel(1);
        let executor = Arc::new(Executor::new(
            Arc::new(MemoryStore::new()),
            TaskRegistry::new(),
            Arc::new(SystemClock),
            Events(events),
            1,
            SignedDuration::from_secs(1),
        ));
        let job = Job::new("j", "t", crate::Trigger::every("1h").unwrap()).unwrap();
        let lease = crate::node::Lease { node: Arc::from("n"), epoch: 1, expires_at: Timestamp::MAX };
        let run = Run::claimed(job.id.clone(), Timestamp::UNIX_EPOCH, RunKind::Scheduled, &lease);
        let future = executor.run_to_end(Arc::new(job), run, Arc::new(Cancel::default()));
        let size = std::mem::size_of_val(&future);
        assert!(size <= 1024, "a run's future is {size} bytes");
    }
}
