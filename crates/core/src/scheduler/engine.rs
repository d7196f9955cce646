//! The scheduler loop. See docs/design.md, "Engine": claim what is ready for this
//! node, hand the runs to the executor, sleep until the next due time, a
//! store change, or a state change.

use std::collections::HashSet;
use std::sync::Arc;

use jiff::SignedDuration;

use super::{Inner, SchedulerState};
use crate::clock::later;
use crate::event::{Event, Events};
use crate::id::JobId;
use crate::job::Job;
use crate::node::ClaimRequest;
use crate::run::Run;
use crate::status::{RunKind, RunStatus};
use crate::store::Claim;

/// The longest the loop sleeps before re-reading the clock, so that a clock
/// jump or a suspended host is noticed within a minute.
const MAX_SLEEP: SignedDuration = SignedDuration::from_secs(60);

/// After a store error, how long the loop waits before trying again.
const STORE_RETRY: SignedDuration = SignedDuration::from_secs(1);

/// How often the loop prunes all run history (age, and every job's count).
const PRUNE_EVERY: SignedDuration = SignedDuration::from_mins(10);

/// How often the loop trims the history of the jobs it claimed since the
/// last time, so history stays near what it keeps between full prunes
/// instead of growing for ten minutes and shrinking at once.
const TRIM_EVERY: SignedDuration = SignedDuration::from_secs(10);

/// The most jobs trimmed in one store call.
const TRIM_BATCH: usize = 500;

pub(super) async fn run_loop(inner: Arc<Inner>) {
    // Beside the loop, not before it: the pass reads every job (12 s at
    // 1,000,000 on SQLite), and the first claim does not wait for it.
    let (store, events) = (Arc::clone(&inner.store), inner.events.clone());
    tokio::spawn(async move {
        match store.broken_jobs().await {
            Ok(broken) => {
                for b in broken {
                    tracing::error!(job_id = %b.id, problem = %b.problem, "stored job does not decode; kept, not scheduled");
                }
            }
            Err(e) => events.store_error("listing broken jobs", &e),
        }
    });
    let mut state = inner.state.subscribe();
    let mut leases = inner.keeper.watch();
    let mut next_prune = inner.clock.now();
    let mut next_trim = inner.clock.now();
    // Jobs claimed here since the last trim or prune: their history grew.
    let mut claimed_since: HashSet<JobId, foldhash::fast::RandomState> = HashSet::default();
    let mut next_alert_check = inner.clock.now();
    let mut trimming: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let current = *state.borrow_and_update();
        match current {
            SchedulerState::ShuttingDown | SchedulerState::ShutDown => return,
            SchedulerState::Paused | SchedulerState::Stopped => {
                let _ = state.changed().await;
                continue;
            }
            SchedulerState::Running => {}
        }
        // Registers this node the first time; after a lost lease, waits for
        // the heartbeat to register it again.
        let Some(lease) = inner.keeper.ensure().await else { return };
        leases.borrow_and_update();

        // Subscribe before reading the store, so a change made after the
        // read still wakes the sleep below.
        let mut changes = inner.store.changes();
        changes.borrow_and_update();

        let now = inner.clock.now();
        inner.last_tick.store(now.as_microsecond(), std::sync::atomic::Ordering::Relaxed);
        if now >= next_prune {
            next_prune = later(now, PRUNE_EVERY);
            let cutoff = inner.retention.max_age.and_then(|age| now.checked_sub(age).ok());
            match inner.store.prune(inner.retention.keep_per_job, cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, "pruned run history"),
                Err(e) => inner.events.store_error("pruning run history", &e),
            }
            claimed_since.clear();
        }
        // Beside the loop, not in it: trimming a herd's history (20,000 jobs
        // claimed in 10 s are 40 store calls) held back the next claims long
        // enough to lose a second's runs of the herd to coalescing. One trim
        // at a time; while one goes on, the claimed jobs wait for the next.
        if now >= next_trim && trimming.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
            next_trim = later(now, TRIM_EVERY);
            if !claimed_since.is_empty() {
                let jobs: Vec<JobId> = claimed_since.drain().collect();
                trimming = Some(tokio::spawn(trim_claimed(Arc::clone(&inner), jobs)));
            }
        }
        if now >= next_alert_check {
            next_alert_check = later(now, super::alerts::ALERT_EVERY);
            super::alerts::notify_logged(&inner, now).await;
        }
        let request = ClaimRequest {
            now,
            limit: inner.batch_size,
            lease: &lease,
            ttl: inner.keeper.ttl(),
            tasks: &inner.task_names,
        };
        let claimed = match inner.store.acquire_due(&request).await {
            Ok(claims) => {
                let n = claims.len();
                let mut runs = Vec::with_capacity(n);
                let mut finished = Vec::new();
                for claim in claims {
                    if !claimed_since.contains(&claim.job.id) {
                        claimed_since.insert(claim.job.id.clone());
                    }
                    finished.extend(handle_claim(&inner, claim, &mut runs));
                }
                inner.executor.dispatch(runs);
                // After the dispatch, as before it went in batches: a
                // finished job's last run is in flight when this is heard.
                for job_id in finished {
                    tracing::info!(%job_id, "job finished: its trigger has no more fire times");
                    inner.events.emit(Event::JobFinished { job_id });
                }
                n
            }
            Err(e) if e.is_lease_lost() => {
                inner.keeper.lost(&lease);
                continue;
            }
            Err(e) => {
                inner.events.store_error("claiming due jobs", &e);
                inner.clock.sleep_until(later(now, STORE_RETRY)).await;
                continue;
            }
        };
        if claimed == inner.batch_size {
            // There may be more due right now.
            tokio::task::yield_now().await;
            continue;
        }
        let next = match inner.store.next_due_at(&inner.task_names).await {
            Ok(next) => next,
            Err(e) => {
                inner.events.store_error("reading the next due time", &e);
                Some(later(now, STORE_RETRY))
            }
        };
        let cap = later(now, MAX_SLEEP).min(next_alert_check);
        let wake_at = next.map_or(cap, |n| n.min(cap));
        if wake_at <= now {
            continue;
        }
        tokio::select! {
            _ = inner.clock.sleep_until(wake_at) => {}
            _ = changes.changed() => {}
            _ = state.changed() => {}
            _ = leases.wait_for(Option::is_none) => {}
            _ = inner.wake.notified() => {}
        }
    }
}

/// Trims the history of the jobs claimed since the last time to the newest
/// `keep_per_job` finished runs each, a batch of jobs per store call.
async fn trim_claimed(inner: Arc<Inner>, jobs: Vec<JobId>) {
    for batch in jobs.chunks(TRIM_BATCH) {
        match inner.store.prune_jobs(batch, inner.retention.keep_per_job).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, jobs = batch.len(), "trimmed run history"),
            Err(e) => {
                // The next full prune catches up; nothing is lost by waiting.
                inner.events.store_error("trimming run history", &e);
                return;
            }
        }
    }
}

/// Reports what a claim decided against and adds its runs to `runs`, to be
/// dispatched with the rest of the batch. Returns the job's id if the claim
/// finished it (its trigger has no more fire times).
fn handle_claim(inner: &Arc<Inner>, claim: Claim, runs: &mut Vec<(Arc<Job>, Run)>) -> Option<JobId> {
    let Claim { job, runs: claimed, uncounted } = claim;
    if uncounted > 0 {
        tracing::warn!(job_id = %job.id, uncounted, "more scheduled times were missed than are recorded one by one");
    }
    let fired = claimed.iter().any(|r| r.kind == RunKind::Scheduled);
    let finished = (fired && job.state.next_run_at.is_none() && !job.is_paused()).then(|| job.id.clone());
    // Shared by its runs. This handle drops on return, before the batch is
    // dispatched, so a job of one run is that run's alone (its arguments
    // then move to the task instead of a copy).
    let job = Arc::new(job);
    for run in claimed {
        match run.status {
            RunStatus::Pending => runs.push((Arc::clone(&job), run)),
            RunStatus::Missed | RunStatus::Skipped => report_not_run(&inner.events, &run),
            other => {
                tracing::error!(job_id = %job.id, run_id = %run.id, status = %other, "store returned a claimed run in an unexpected state")
            }
        }
    }
    finished
}

/// The event and log line of a run decided against (`missed` or `skipped`).
pub(super) fn report_not_run(events: &Events, run: &Run) {
    let reason = run.error.clone().unwrap_or_default();
    let (job_id, run_id, scheduled_for) = (run.job_id.clone(), run.id, run.scheduled_for);
    if run.status == RunStatus::Missed {
        tracing::warn!(%job_id, %run_id, %scheduled_for, reason, "run missed");
        events.emit(Event::RunMissed { job_id, run_id, scheduled_for, reason });
    } else {
        tracing::warn!(%job_id, %run_id, %scheduled_for, reason, "run skipped");
        events.emit(Event::RunSkipped { job_id, run_id, scheduled_for, reason });
    }
}
