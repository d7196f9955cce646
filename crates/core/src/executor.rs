//! Running one claimed run: jitter, a concurrency slot, the task itself,
//! timeouts (cancel, then abort), retries with backoff, and the run record.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::clock::later;
use crate::event::Event;
use crate::job::Job;
use crate::run::{Run, RunStatus, cap_error};
use crate::scheduler::Inner;
use crate::task::{JobContext, Started, TaskResult};

/// How one attempt ended.
enum Attempt {
    Succeeded,
    Failed(String),
    TimedOut,
    Cancelled,
}

/// Spawns the execution of `run` for `job`. The run is registered as in
/// flight before this returns, so shutdown waits for it.
pub(crate) fn dispatch(inner: &Arc<Inner>, job: Arc<Job>, run: Run) {
    let token = CancellationToken::new();
    {
        let mut running = inner.running.lock().unwrap_or_else(|p| p.into_inner());
        running.insert(run.id, (run.job_id.clone(), token.clone()));
        inner.in_flight.send_replace(running.len());
    }
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let run_id = run.id;
        execute(&inner, job, run, token).await;
        let mut running = inner.running.lock().unwrap_or_else(|p| p.into_inner());
        running.remove(&run_id);
        inner.in_flight.send_replace(running.len());
    });
}

async fn execute(inner: &Arc<Inner>, job: Arc<Job>, mut run: Run, token: CancellationToken) {
    let clock = &inner.clock;

    if let Some(jitter) = job.options.jitter {
        let nanos = jitter.as_nanos().max(0) as u128;
        let delay = SignedDuration::from_nanos((fastrand::u128(0..=nanos)).min(i64::MAX as u128) as i64);
        tokio::select! {
            _ = clock.sleep_until(later(clock.now(), delay)) => {}
            _ = token.cancelled() => return finish(inner, run, RunStatus::Cancelled, Some("cancelled before it started".into())).await,
        }
    }
    let _permit = tokio::select! {
        permit = Arc::clone(&inner.slots).acquire_owned() => permit.expect("the semaphore is never closed"),
        _ = token.cancelled() => return finish(inner, run, RunStatus::Cancelled, Some("cancelled before it started".into())).await,
    };

    let Some(handler) = inner.tasks.get(&job.task) else {
        let why = format!("no task named {:?} is registered with this scheduler", job.task);
        tracing::error!(job_id = %job.id, run_id = %run.id, "{why}");
        run.started_at = Some(clock.now());
        return finish(inner, run, RunStatus::Failed, Some(why)).await;
    };
    let args = Arc::new(job.args.clone());
    let retry = job.options.retry.clone();

    run.started_at = Some(clock.now());
    loop {
        run.attempt += 1;
        run.status = RunStatus::Running;
        if let Err(e) = inner.store.update_run(&run).await {
            inner.store_error("recording a run start", &e);
        }
        tracing::info!(job_id = %job.id, run_id = %run.id, attempt = run.attempt, scheduled_for = %run.scheduled_for, "run started");
        inner.emit(Event::RunStarted {
            job_id: job.id.clone(),
            run_id: run.id,
            scheduled_for: run.scheduled_for,
            attempt: run.attempt,
        });
        let attempt_started = clock.now();
        let output = Arc::new(std::sync::Mutex::new(None));
        let ctx = JobContext {
            job_id: job.id.clone(),
            run_id: run.id,
            scheduled_for: run.scheduled_for,
            attempt: run.attempt,
            args: Arc::clone(&args),
            cancel: token.child_token(),
            output: Arc::clone(&output),
        };
        let outcome = attempt(inner, &handler, ctx, job.options.timeout, &token).await;
        run.output = output.lock().unwrap_or_else(|p| p.into_inner()).take().map(cap_error);
        // Whether a failure of this attempt is followed by another.
        let again = retry.as_ref().is_some_and(|r| run.attempt < r.max_attempts) && !token.is_cancelled();
        let (status, error) = match outcome {
            Attempt::Succeeded => {
                let duration = clock.now().duration_since(attempt_started);
                tracing::info!(job_id = %job.id, run_id = %run.id, ?duration, "run succeeded");
                inner.emit(Event::RunSucceeded { job_id: job.id.clone(), run_id: run.id, duration });
                (RunStatus::Succeeded, None)
            }
            Attempt::Cancelled => {
                tracing::warn!(job_id = %job.id, run_id = %run.id, "run cancelled");
                inner.emit(Event::RunCancelled { job_id: job.id.clone(), run_id: run.id });
                (RunStatus::Cancelled, Some("cancelled".to_owned()))
            }
            ref failure @ (Attempt::Failed(_) | Attempt::TimedOut) => {
                let (status, error) = match failure {
                    Attempt::Failed(e) => {
                        tracing::warn!(job_id = %job.id, run_id = %run.id, attempt = run.attempt, will_retry = again, error = %e, "run failed");
                        inner.emit(Event::RunFailed {
                            job_id: job.id.clone(),
                            run_id: run.id,
                            attempt: run.attempt,
                            error: e.clone(),
                            will_retry: again,
                        });
                        (RunStatus::Failed, e.clone())
                    }
                    _ => {
                        let timeout = job.options.timeout.unwrap_or_default();
                        let e = format!("timed out after {}", crate::duration::format_duration(timeout));
                        tracing::warn!(job_id = %job.id, run_id = %run.id, attempt = run.attempt, will_retry = again, "run timed out");
                        inner.emit(Event::RunTimedOut {
                            job_id: job.id.clone(),
                            run_id: run.id,
                            attempt: run.attempt,
                            will_retry: again,
                        });
                        (RunStatus::TimedOut, e)
                    }
                };
                if again {
                    run.error = Some(cap_error(error));
                    let delay = retry.as_ref().expect("retrying").delay_after(run.attempt);
                    tokio::select! {
                        _ = clock.sleep_until(later(clock.now(), delay)) => continue,
                        _ = token.cancelled() => {
                            inner.emit(Event::RunCancelled { job_id: job.id.clone(), run_id: run.id });
                            (RunStatus::Cancelled, Some("cancelled while waiting to retry".to_owned()))
                        }
                    }
                } else {
                    (status, Some(error))
                }
            }
        };
        return finish(inner, run, status, error).await;
    }
}

/// Runs the handler once: inline for an async task, on the blocking pool for a blocking one.
async fn attempt(
    inner: &Inner,
    handler: &crate::task::Handler,
    ctx: JobContext,
    timeout: Option<SignedDuration>,
    run_token: &CancellationToken,
) -> Attempt {
    let attempt_token = ctx.cancel.clone();
    let mut handle = handler.start(ctx);
    let clock = &inner.clock;
    let timed_out = async {
        match timeout {
            Some(t) => clock.sleep_until(later(clock.now(), t)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        // A task that returns because its run was cancelled was cancelled,
        // whatever it returned.
        result = &mut handle => {
            if run_token.is_cancelled() { Attempt::Cancelled } else { outcome(result) }
        }
        _ = timed_out => {
            attempt_token.cancel();
            stop(inner, handle).await;
            Attempt::TimedOut
        }
        _ = run_token.cancelled() => {
            stop(inner, handle).await;
            Attempt::Cancelled
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
async fn stop(inner: &Inner, mut handle: Started) {
    let grace_end: Timestamp = later(inner.clock.now(), inner.cancel_grace);
    tokio::select! {
        _ = &mut handle => {}
        _ = inner.clock.sleep_until(grace_end) => {}
    }
}

async fn finish(inner: &Inner, mut run: Run, status: RunStatus, error: Option<String>) {
    run.status = status;
    run.error = error.map(cap_error);
    run.finished_at = Some(inner.clock.now());
    if let Err(e) = inner.store.update_run(&run).await {
        // A failed history write never stops scheduling.
        inner.store_error("recording a run result", &e);
    }
}
