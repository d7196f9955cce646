//! The group-commit run writer loses nothing: a batch with one row that can
//! never be written is split so the others land, and the row that cannot be
//! written no longer holds its job; a busy database is waited out, however
//! long; updates queued when the store is dropped are still written; a start
//! fenced out (the node's lease gone) is reported to the executor, which
//! cancels the run and registers the node again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chime_core::{
    Clock, ConflictPolicy, Event, Job, JobContext, JobId, JobStore, Lease, ManualClock, NodeRegistration, Run,
    RunQuery, RunStatus, Scheduler, ShutdownMode, TaskRegistry, Trigger, Zone,
};
use chime_sqlite::SqliteStore;
use jiff::{SignedDuration, Timestamp};
use sqlx::Connection;

const TTL: SignedDuration = SignedDuration::from_secs(60);

async fn setup(store: &SqliteStore, runs: usize) -> (Lease, Vec<Run>) {
    let mut job = Job::new("w", "task", Trigger::every("1h").unwrap()).unwrap().with_max_instances(10_000);
    job.trigger.resolve(Timestamp::now(), &Zone::utc());
    job.state.next_run_at = job.trigger.next_after(Timestamp::now());
    store.add_job(job, ConflictPolicy::Error).await.unwrap();
    let node = NodeRegistration { id: Arc::from("writer-test"), host: "h".into(), pid: 1, version: "t".into() };
    let lease = store.register_node(&node, TTL, Timestamp::now()).await.unwrap();
    let mut out = Vec::new();
    for _ in 0..runs {
        out.push(store.request_run(&JobId::new("w").unwrap(), Timestamp::now(), Some(&lease)).await.unwrap());
    }
    (lease, out)
}

fn finished(mut run: Run, error: Option<&str>) -> Run {
    run.status = if error.is_some() { RunStatus::Failed } else { RunStatus::Succeeded };
    run.attempt = 1;
    run.started_at = Some(Timestamp::now());
    run.finished_at = Some(Timestamp::now());
    run.error = error.map(str::to_owned);
    run
}

async fn statuses(store: &SqliteStore) -> Vec<RunStatus> {
    let q = RunQuery { job_id: Some(JobId::new("w").unwrap()), limit: Some(10_000), ..RunQuery::default() };
    store.history(&q).await.unwrap().into_iter().map(|r| r.status).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_row_does_not_lose_the_rest_of_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = Arc::new(SqliteStore::open(path).await.unwrap());
    let (_lease, runs) = setup(&store, 200).await;
    // A row the database refuses for good, as a constraint or a full disk would.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER poison BEFORE UPDATE ON chime_run WHEN NEW.error = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'this row cannot be written'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let writes: Vec<_> = runs
        .into_iter()
        .enumerate()
        .map(|(i, run)| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.update_run(&finished(run, (i == 77).then_some("poison"))).await })
        })
        .collect();
    let mut failed = Vec::new();
    for (i, w) in writes.into_iter().enumerate() {
        if let Err(e) = w.await.unwrap() {
            failed.push((i, e.to_string()));
        }
    }
    assert_eq!(failed.len(), 1, "only the poisoned run fails: {failed:?}");
    assert_eq!(failed[0].0, 77);
    assert!(failed[0].1.contains("this row cannot be written"), "{failed:?}");
    let s = statuses(&store).await;
    assert_eq!(s.iter().filter(|s| **s == RunStatus::Succeeded).count(), 199, "every other run was written");
    // The poisoned finish is recorded as a bare failure: a run left in
    // flight under a live lease would hold a max_instances = 1 job for good.
    let q = RunQuery { statuses: vec![RunStatus::Failed], ..RunQuery::default() };
    let poisoned = store.history(&q).await.unwrap();
    assert_eq!(poisoned.len(), 1, "{s:?}");
    let error = poisoned[0].error.as_deref().unwrap();
    assert!(
        error.starts_with("the run's result could not be recorded: ") && error.contains("this row cannot be written"),
        "{error}"
    );
    assert_eq!(store.count_running(&JobId::new("w").unwrap()).await.unwrap(), 0, "no run is left in flight");
}

/// Takes the database's write lock from another connection, as another
/// process would, and releases it after `held`; the task ends on release.
async fn hold_write_lock(path: &str, held: Duration) -> tokio::task::JoinHandle<()> {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(held).await;
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_database_is_waited_out_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::open_with_busy_timeout(path, Duration::from_millis(50)).await.unwrap();
    let (_lease, mut runs) = setup(&store, 1).await;
    // Another process holds the write lock for a second, far past the busy timeout.
    let release = hold_write_lock(path, Duration::from_secs(1)).await;
    store.update_run(&finished(runs.remove(0), None)).await.expect("the write is retried until the lock is free");
    release.await.unwrap();
    assert_eq!(statuses(&store).await, [RunStatus::Succeeded]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_longer_than_any_retry_budget_is_waited_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::open_with_busy_timeout(path, Duration::from_millis(50)).await.unwrap();
    let (_lease, mut runs) = setup(&store, 1).await;
    // Another process holds the write lock for five seconds: past the writer's
    // old budget (five tries, 3.1 s of backoff and a 50 ms busy wait each),
    // after which the finish was dropped and the run stayed in flight.
    let held = Duration::from_secs(5);
    let release = hold_write_lock(path, held).await;
    let began = std::time::Instant::now();
    store.update_run(&finished(runs.remove(0), None)).await.expect("the finish is tried until the lock is free");
    let waited = began.elapsed();
    release.await.unwrap();
    assert!(waited >= held, "it could only land once the lock was released: {waited:?}");
    assert_eq!(statuses(&store).await, [RunStatus::Succeeded]);
    assert_eq!(store.count_running(&JobId::new("w").unwrap()).await.unwrap(), 0);
}

/// Polls `future` once, as a caller that queues an update and goes on would.
async fn poll_once(future: impl Future) {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_ready())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_queued_when_the_store_is_dropped_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::open(path).await.unwrap();
    let (_lease, runs) = setup(&store, 50).await;
    for run in runs {
        let mut started = run;
        started.status = RunStatus::Running;
        started.attempt = 1;
        started.started_at = Some(Timestamp::now());
        // Queued, its outcome not awaited.
        poll_once(store.update_run(&started)).await;
    }
    drop(store);
    let reopened = SqliteStore::open(path).await.unwrap();
    for _ in 0..100 {
        if statuses(&reopened).await.iter().all(|s| *s == RunStatus::Running) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the queued starts were lost: {:?}", statuses(&reopened).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_at_the_start_cancels_the_run_without_a_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = Arc::new(SqliteStore::open(path).await.unwrap());
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let mut tasks = TaskRegistry::new();
    // Runs until cancelled: the start's answer comes once its batch commits,
    // and a task that had already returned by then would have run its course.
    tasks.register("hang", |ctx: JobContext| async move {
        ctx.cancel.cancelled().await;
        Err::<(), _>(chime_core::TaskError::from("stopped by cancellation"))
    });
    // A lease long enough that no heartbeat comes during the test.
    let s = Scheduler::builder()
        .shared_store(Arc::clone(&store) as Arc<dyn JobStore>)
        .tasks(tasks)
        .clock(clock.clone())
        .timezone("UTC")
        .unwrap()
        .node_id("a")
        .node_lease(SignedDuration::from_hours(6))
        .unwrap()
        .build();
    // The jitter holds the claimed run before its start until the clock moves.
    let job = Job::new("j", "hang", Trigger::every("1h").unwrap()).unwrap().with_jitter(SignedDuration::from_mins(30));
    s.add_job(job, ConflictPolicy::Error).await.unwrap();
    let mut events = s.subscribe();
    s.start().unwrap();
    within("the scheduler to start", async { while !matches!(events.recv().await, Ok(Event::SchedulerStarted)) {} })
        .await;
    clock.advance(Duration::from_secs(3600));
    let claimed = within("the claim", async {
        loop {
            if let Some(run) = store.history(&RunQuery::default()).await.unwrap().pop() {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!((claimed.status, claimed.node.as_deref()), (RunStatus::Pending, Some("a")));

    // While it waits, the run stops being a's lease's: as after a sweep that
    // re-queued it and node b's claim. a's own lease stays, and a claim of
    // a's (the engine wakes on every change of the file) finds nothing
    // wrong: only the run's start can tell a.
    let b = NodeRegistration { id: Arc::from("b"), host: "h".into(), pid: 2, version: "t".into() };
    let b = store.register_node(&b, SignedDuration::from_hours(6), clock.now()).await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
    sqlx::query("UPDATE chime_run SET node = 'b', epoch = ? WHERE id = ?")
        .bind(b.epoch as i64)
        .bind(claimed.id.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(31 * 60));

    let mut seen = Vec::new();
    within("the run to end", async {
        while !seen.iter().any(|e| matches!(e, Event::RunCancelled { .. } | Event::RunFailed { .. })) {
            seen.push(events.recv().await.unwrap());
        }
    })
    .await;
    assert!(seen.iter().any(|e| matches!(e, Event::RunCancelled { .. })), "the run is cancelled: {seen:?}");
    assert!(!seen.iter().any(|e| matches!(e, Event::RunFailed { .. } | Event::StoreError { .. })), "{seen:?}");
    within("the shutdown", s.shutdown(ShutdownMode::Cancel)).await;
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert!(!seen.iter().any(|e| matches!(e, Event::StoreError { .. } | Event::LeaseLost { .. })), "{seen:?}");

    let run = store.history(&RunQuery::default()).await.unwrap().remove(0);
    assert_eq!((run.status, run.node.as_deref()), (RunStatus::Pending, Some("b")), "b's hold stands: {run:?}");
    let late = run.late_result.as_deref().expect("a's end of the run is kept as its late result");
    assert!(late.starts_with("cancelled at ") && late.contains("on node a"), "{late}");
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}
