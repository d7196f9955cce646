//! `/health` in each state a load balancer or an orchestrator meets: before
//! the loop's first tick, running, with its store down (and back), after a
//! shutdown. Each unhealthy answer is a 503 whose reason says why.

mod support;

use support::{get, get_until};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use chime_core::{
    BrokenJob, Claim, ClaimRequest, ConflictPolicy, Error, Job, JobFilter, JobId, JobStats, JobStore, Lease,
    ManualClock, MemoryStore, NodeInfo, NodeRegistration, Result, Run, RunQuery, Scheduler, ShutdownMode, SweptRun,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tokio::sync::watch;

/// A `MemoryStore` that fails every call while `down` is set, as a database
/// that stopped answering does.
struct Unplugged {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
}

impl Unplugged {
    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Store { message: "the test store is unplugged".into(), transient: true });
        }
        Ok(())
    }
}

#[async_trait]
impl JobStore for Unplugged {
    async fn add_job(&self, job: Job, on_conflict: ConflictPolicy) -> Result<Job> {
        self.check()?;
        self.inner.add_job(job, on_conflict).await
    }
    async fn add_jobs(&self, jobs: Vec<Job>, on_conflict: ConflictPolicy) -> Result<Vec<Job>> {
        self.check()?;
        self.inner.add_jobs(jobs, on_conflict).await
    }
    async fn get_job(&self, id: &JobId) -> Result<Option<Job>> {
        self.check()?;
        self.inner.get_job(id).await
    }
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.check()?;
        self.inner.list_jobs(filter).await
    }
    async fn update_job(&self, job: Job) -> Result<Job> {
        self.check()?;
        self.inner.update_job(job).await
    }
    async fn remove_job(&self, id: &JobId) -> Result<Job> {
        self.check()?;
        self.inner.remove_job(id).await
    }
    async fn acquire_due(&self, req: &ClaimRequest<'_>) -> Result<Vec<Claim>> {
        self.check()?;
        self.inner.acquire_due(req).await
    }
    async fn next_due_at(&self, tasks: &[Arc<str>]) -> Result<Option<Timestamp>> {
        self.check()?;
        self.inner.next_due_at(tasks).await
    }
    async fn insert_run(&self, run: Run) -> Result<()> {
        self.check()?;
        self.inner.insert_run(run).await
    }
    async fn update_run(&self, run: &Run) -> Result<()> {
        self.check()?;
        self.inner.update_run(run).await
    }
    async fn request_run(&self, id: &JobId, now: Timestamp, lease: Option<&Lease>) -> Result<Run> {
        self.check()?;
        self.inner.request_run(id, now, lease).await
    }
    async fn notify_alert(&self, job: &JobId, episode: Timestamp, hook: Run) -> Result<bool> {
        self.check()?;
        self.inner.notify_alert(job, episode, hook).await
    }
    async fn request_backfill(&self, id: &JobId, at: Timestamp) -> Result<Option<Run>> {
        self.check()?;
        self.inner.request_backfill(id, at).await
    }
    async fn count_running(&self, id: &JobId) -> Result<u32> {
        self.check()?;
        self.inner.count_running(id).await
    }
    async fn register_node(&self, node: &NodeRegistration, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        self.check()?;
        self.inner.register_node(node, ttl, now).await
    }
    async fn renew_lease(&self, lease: &Lease, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        self.check()?;
        self.inner.renew_lease(lease, ttl, now).await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.check()?;
        self.inner.release_lease(lease).await
    }
    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.check()?;
        self.inner.nodes().await
    }
    async fn sweep(&self, now: Timestamp) -> Result<Vec<SweptRun>> {
        self.check()?;
        self.inner.sweep(now).await
    }
    async fn history(&self, query: &RunQuery) -> Result<Vec<Run>> {
        self.check()?;
        self.inner.history(query).await
    }
    async fn job_stats(&self, id: &JobId) -> Result<JobStats> {
        self.check()?;
        self.inner.job_stats(id).await
    }
    async fn prune(&self, keep_per_job: usize, older_than: Option<Timestamp>) -> Result<u64> {
        self.check()?;
        self.inner.prune(keep_per_job, older_than).await
    }
    async fn prune_jobs(&self, jobs: &[JobId], keep_per_job: usize) -> Result<u64> {
        self.check()?;
        self.inner.prune_jobs(jobs, keep_per_job).await
    }
    fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes()
    }
    async fn broken_jobs(&self) -> Result<Vec<BrokenJob>> {
        self.check()?;
        self.inner.broken_jobs().await
    }
}

async fn health(app: &axum::Router) -> (StatusCode, Value) {
    let (status, body) = get(app, "/health").await;
    (status, serde_json::from_str(&body).unwrap())
}

/// Asks `/health` until it answers `want` (the scheduler's loop runs on
/// other tasks); returns that answer.
async fn until(app: &axum::Router, want: StatusCode) -> Value {
    let (_, body) = get_until(app, "/health", &format!("{want}"), |status, _| status == want).await;
    serde_json::from_str(&body).unwrap()
}

fn unhealthy_because(answer: &(StatusCode, Value), reason: &str) {
    assert_eq!(answer.0, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.1);
    assert_eq!(answer.1["status"], "unhealthy", "{}", answer.1);
    let said = answer.1["reason"].as_str().unwrap();
    assert!(said.contains(reason), "the reason {said:?} says {reason:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn health_follows_the_scheduler_from_start_to_shutdown() {
    let down = Arc::new(AtomicBool::new(false));
    let store = Unplugged { inner: MemoryStore::new(), down: Arc::clone(&down) };
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let s = Scheduler::builder().store(store).clock(clock.clone()).timezone("UTC").unwrap().node_id("health").build();
    let app = chime_web::router(chime_web::Handle::new(s.clone()));

    unhealthy_because(&health(&app).await, "the scheduler is stopped");
    s.start().unwrap();
    // On this single-threaded runtime the loop has not run until the test yields.
    unhealthy_because(&health(&app).await, "has not run yet");
    let ok = until(&app, StatusCode::OK).await;
    assert_eq!((ok["status"].as_str(), ok["node"].as_str()), (Some("ok"), Some("health")), "{ok}");

    down.store(true, Ordering::SeqCst);
    unhealthy_because(&health(&app).await, "the store does not answer");
    unhealthy_because(&health(&app).await, "the test store is unplugged");
    down.store(false, Ordering::SeqCst);
    until(&app, StatusCode::OK).await;

    tokio::time::timeout(Duration::from_secs(10), s.shutdown(ShutdownMode::Wait(Duration::from_secs(1))))
        .await
        .expect("the scheduler shuts down");
    unhealthy_because(&health(&app).await, "the scheduler is shut_down");
}
