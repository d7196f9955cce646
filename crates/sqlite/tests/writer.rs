//! The group-commit run writer loses nothing: a batch with one row that can
//! never be written is split so the others land; a busy database is waited
//! out; updates queued when the store is dropped are still written.

use std::sync::Arc;
use std::time::Duration;

use chime_core::{
    ConflictPolicy, Job, JobId, JobStore, Lease, NodeRegistration, Run, RunQuery, RunStatus, Trigger, Zone,
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
    assert_eq!(s.iter().filter(|s| **s == RunStatus::Pending).count(), 1, "the poisoned one is still in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_database_is_waited_out_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::open_with_busy_timeout(path, Duration::from_millis(50)).await.unwrap();
    let (_lease, mut runs) = setup(&store, 1).await;
    // Another process holds the write lock for a second, far past the busy timeout.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    });
    store.update_run(&finished(runs.remove(0), None)).await.expect("the write is retried until the lock is free");
    release.await.unwrap();
    assert_eq!(statuses(&store).await, [RunStatus::Succeeded]);
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
        // A start is queued, not awaited.
        store.update_run(&started).await.unwrap();
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
