//! What the executor does when writing a run fails: a store error is
//! reported as an event and the run goes on; a lost lease cancels a run
//! about to start (and when the lease is really gone, the node learns so at
//! once and registers again), and at the finish leaves the sweeper's
//! decision alone (no store error is reported: the result is kept as a
//! late result).

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chime_core::{
    Claim, ClaimRequest, ConflictPolicy, Error, Event, Job, JobContext, JobFilter, JobId, JobStats, JobStore, Lease,
    MemoryStore, NodeInfo, NodeRegistration, Result, Run, RunQuery, RunStatus, Scheduler, ShutdownMode, SweptRun,
    TaskRegistry, Trigger,
};
use jiff::{SignedDuration, Timestamp};
use support::{TestClock, within};
use tokio::sync::{broadcast, watch};

/// How the next run update goes.
#[derive(Clone, Copy, Debug)]
enum Update {
    Ok,
    StoreError,
    /// Fenced out, the lease still held (as when a newer attempt owns the run).
    LeaseLost,
    /// Fenced out because the lease is gone: a sweeper took the node's row.
    LeaseGone,
    /// The store panics (a bug in it, or in chime).
    Panic,
}

/// A `MemoryStore` whose run updates fail as planned, in order.
#[derive(Default)]
struct FailingStore {
    inner: MemoryStore,
    plan: Mutex<VecDeque<Update>>,
}

#[async_trait]
impl JobStore for FailingStore {
    async fn add_job(&self, job: Job, on_conflict: ConflictPolicy) -> Result<Job> {
        self.inner.add_job(job, on_conflict).await
    }
    async fn add_jobs(&self, jobs: Vec<Job>, on_conflict: ConflictPolicy) -> Result<Vec<Job>> {
        self.inner.add_jobs(jobs, on_conflict).await
    }
    async fn get_job(&self, id: &JobId) -> Result<Option<Job>> {
        self.inner.get_job(id).await
    }
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.inner.list_jobs(filter).await
    }
    async fn update_job(&self, job: Job) -> Result<Job> {
        self.inner.update_job(job).await
    }
    async fn remove_job(&self, id: &JobId) -> Result<Job> {
        self.inner.remove_job(id).await
    }
    async fn acquire_due(&self, req: &ClaimRequest<'_>) -> Result<Vec<Claim>> {
        self.inner.acquire_due(req).await
    }
    async fn next_due_at(&self, tasks: &[Arc<str>]) -> Result<Option<Timestamp>> {
        self.inner.next_due_at(tasks).await
    }
    async fn insert_run(&self, run: Run) -> Result<()> {
        self.inner.insert_run(run).await
    }
    async fn update_run(&self, run: &Run) -> Result<()> {
        let next = self.plan.lock().unwrap().pop_front().unwrap_or(Update::Ok);
        match next {
            Update::Ok => self.inner.update_run(run).await,
            Update::StoreError => Err(Error::Store { message: "disk full".into(), transient: false }),
            Update::Panic => panic!("the store panicked updating run {}", run.id),
            Update::LeaseLost => {
                Err(Error::LeaseLost { node: run.node.as_deref().unwrap_or("").into(), epoch: run.epoch.unwrap_or(0) })
            }
            Update::LeaseGone => {
                let node = Arc::from(run.node.as_deref().unwrap_or(""));
                let lease = Lease { node, epoch: run.epoch.unwrap_or(0), expires_at: Timestamp::UNIX_EPOCH };
                self.inner.release_lease(&lease).await?;
                Err(Error::LeaseLost { node: run.node.as_deref().unwrap_or("").into(), epoch: run.epoch.unwrap_or(0) })
            }
        }
    }
    async fn request_run(&self, id: &JobId, now: Timestamp, lease: Option<&Lease>) -> Result<Run> {
        self.inner.request_run(id, now, lease).await
    }
    async fn notify_alert(&self, job: &JobId, episode: Timestamp, hook: Run) -> Result<bool> {
        self.inner.notify_alert(job, episode, hook).await
    }
    async fn request_backfill(&self, id: &JobId, at: Timestamp) -> Result<Option<Run>> {
        self.inner.request_backfill(id, at).await
    }
    async fn count_running(&self, id: &JobId) -> Result<u32> {
        self.inner.count_running(id).await
    }
    async fn register_node(&self, node: &NodeRegistration, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        self.inner.register_node(node, ttl, now).await
    }
    async fn renew_lease(&self, lease: &Lease, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        self.inner.renew_lease(lease, ttl, now).await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.inner.release_lease(lease).await
    }
    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.inner.nodes().await
    }
    async fn sweep(&self, now: Timestamp) -> Result<Vec<SweptRun>> {
        self.inner.sweep(now).await
    }
    async fn history(&self, query: &RunQuery) -> Result<Vec<Run>> {
        self.inner.history(query).await
    }
    async fn job_stats(&self, id: &JobId) -> Result<JobStats> {
        self.inner.job_stats(id).await
    }
    async fn prune(&self, keep_per_job: usize, older_than: Option<Timestamp>) -> Result<u64> {
        self.inner.prune(keep_per_job, older_than).await
    }
    async fn prune_jobs(&self, jobs: &[JobId], keep_per_job: usize) -> Result<u64> {
        self.inner.prune_jobs(jobs, keep_per_job).await
    }
    fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes()
    }
}

/// Tasks of one name, "t", that succeed at once.
fn quick_task() -> TaskRegistry {
    let mut tasks = TaskRegistry::new();
    tasks.register("t", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    tasks
}

/// A started scheduler on `store` and a virtual clock, with one hourly job
/// of task "t" for each of `jobs`, and its events from the start on. The
/// lease is long, so no heartbeat comes while the jobs' time is reached:
/// whatever the node learns of its lease, it learns from the run's updates.
async fn started(
    store: &Arc<FailingStore>,
    tasks: TaskRegistry,
    jobs: &[&str],
) -> (Scheduler, TestClock, broadcast::Receiver<Event>) {
    let clock = TestClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let s = Scheduler::builder()
        .shared_store(Arc::clone(store) as Arc<dyn JobStore>)
        .tasks(tasks)
        .clock(clock.clone())
        .timezone("UTC")
        .unwrap()
        .node_lease(SignedDuration::from_hours(6))
        .unwrap()
        .build();
    for id in jobs {
        s.add_job(Job::new(id, "t", Trigger::every("1h").unwrap()).unwrap(), ConflictPolicy::Error).await.unwrap();
    }
    let mut events = s.subscribe();
    s.start().unwrap();
    support::wait_for(&mut events, "the start", |e| matches!(e, Event::SchedulerStarted)).await;
    (s, clock, events)
}

/// Runs one job once with its run updates going as `plan` says (the first
/// is the run's start, the second its finish), shuts down, and returns every
/// event from the scheduler's start on, with the run as stored.
async fn run_once(plan: &[Update]) -> (Vec<Event>, Run) {
    run_until(plan, "the run to start", |e| matches!(e, Event::RunStarted { .. })).await
}

/// As [`run_once`], shutting down only once an event `until` accepts is seen.
async fn run_until(plan: &[Update], what: &str, until: impl Fn(&Event) -> bool) -> (Vec<Event>, Run) {
    let store = Arc::new(FailingStore::default());
    let (s, clock, mut events) = started(&store, quick_task(), &["j"]).await;
    store.plan.lock().unwrap().extend(plan);
    clock.advance(SignedDuration::from_hours(1));
    let mut seen = Vec::new();
    within(what, async {
        while !seen.last().is_some_and(&until) {
            seen.push(events.recv().await.unwrap());
        }
    })
    .await;
    within("the shutdown", s.shutdown(ShutdownMode::Wait(std::time::Duration::from_secs(60)))).await;
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert_eq!(seen.last(), Some(&Event::SchedulerShutDown), "{seen:?}");
    let run = store.history(&RunQuery::default()).await.unwrap().remove(0);
    (seen, run)
}

fn store_errors(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StoreError { operation, .. } => Some(operation.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_failed_start_record_is_reported_and_the_run_goes_on() {
    let (events, run) = run_once(&[Update::StoreError]).await;
    assert_eq!(store_errors(&events), ["recording a run start"]);
    assert!(events.iter().any(|e| matches!(e, Event::RunSucceeded { .. })), "{events:?}");
    assert_eq!(run.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_lost_lease_at_the_start_cancels_the_run_without_a_store_error() {
    let (events, run) = run_once(&[Update::LeaseLost]).await;
    assert_eq!(store_errors(&events), Vec::<&str>::new());
    assert!(events.iter().any(|e| matches!(e, Event::RunCancelled { .. })), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::RunSucceeded { .. })), "{events:?}");
    assert_eq!(run.status, RunStatus::Cancelled);
}

#[tokio::test]
async fn a_start_fenced_out_because_the_lease_is_gone_makes_the_node_register_again() {
    let (events, run) = run_until(&[Update::LeaseGone], "the node to learn it lost its lease", |e| {
        matches!(e, Event::LeaseLost { .. })
    })
    .await;
    assert_eq!(store_errors(&events), Vec::<&str>::new());
    assert!(events.iter().any(|e| matches!(e, Event::RunCancelled { .. })), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::RunSucceeded { .. })), "{events:?}");
    let lost = events.iter().find(|e| matches!(e, Event::LeaseLost { .. })).unwrap();
    assert_eq!(lost, &Event::LeaseLost { node: run.node.as_deref().unwrap().into(), epoch: run.epoch.unwrap() });
    let late = run.late_result.as_deref().expect("the cancelled run's end is kept as a late result");
    assert!(late.starts_with("cancelled at "), "{late}");
}

#[tokio::test]
async fn a_start_fenced_out_under_a_lease_still_held_cancels_only_that_run() {
    let (events, _run) = run_once(&[Update::LeaseLost]).await;
    assert!(!events.iter().any(|e| matches!(e, Event::LeaseLost { .. })), "the lease was not lost: {events:?}");
}

#[tokio::test]
async fn a_failed_result_record_is_reported() {
    let (events, run) = run_once(&[Update::Ok, Update::StoreError]).await;
    assert_eq!(store_errors(&events), ["recording a run result"]);
    assert_eq!(run.status, RunStatus::Running, "the result was not written");
}

#[tokio::test]
async fn a_lost_lease_at_the_finish_is_no_store_error() {
    let (events, run) = run_once(&[Update::Ok, Update::LeaseLost]).await;
    assert_eq!(store_errors(&events), Vec::<&str>::new(), "the sweeper's decision stands; nothing failed");
    assert!(events.iter().any(|e| matches!(e, Event::RunSucceeded { .. })), "{events:?}");
    assert_eq!(run.status, RunStatus::Running, "the result was not written");
}

#[tokio::test]
async fn a_panic_in_one_run_leaves_the_rest_of_its_batch_to_run() {
    // One claim takes "a" and "b", and one task starts both, "a" first: the
    // store panics at the start of "a". "b" still runs, and the shutdown does
    // not wait for "a", which can no longer end.
    let store = Arc::new(FailingStore::default());
    let (s, clock, mut events) = started(&store, quick_task(), &["a", "b"]).await;
    store.plan.lock().unwrap().push_back(Update::Panic);
    clock.advance(SignedDuration::from_hours(1));
    let b = JobId::new("b").unwrap();
    support::wait_for(&mut events, "the run of b", |e| matches!(e, Event::RunSucceeded { job_id, .. } if *job_id == b))
        .await;
    within("the shutdown", s.shutdown(ShutdownMode::Wait(std::time::Duration::from_secs(60)))).await;
    assert_eq!(s.running_here(), 0);
}

#[tokio::test]
async fn a_panic_at_a_run_s_end_on_its_own_task_is_no_run_in_flight_for_ever() {
    // The task awaits, so its run goes on on a task of its own; the store
    // panics writing its end there. The shutdown does not wait for it.
    let store = Arc::new(FailingStore::default());
    let mut tasks = TaskRegistry::new();
    tasks.register("t", |_ctx: JobContext| async {
        tokio::task::yield_now().await;
        Ok::<_, std::io::Error>(())
    });
    let (s, clock, mut events) = started(&store, tasks, &["j"]).await;
    store.plan.lock().unwrap().extend([Update::Ok, Update::Panic]);
    clock.advance(SignedDuration::from_hours(1));
    support::wait_for(&mut events, "the run's success", |e| matches!(e, Event::RunSucceeded { .. })).await;
    within("the shutdown", s.shutdown(ShutdownMode::Wait(std::time::Duration::from_secs(60)))).await;
    assert_eq!(s.running_here(), 0);
}
