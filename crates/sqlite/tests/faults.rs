//! Bad files and faults: each is a clear error naming the file and the
//! problem, nothing stored is lost, and a scheduler keeps going through a
//! locked database.

use std::time::{Duration, Instant};

use chime_core::{ConflictPolicy, Event, Job, JobContext, JobStore, Scheduler, ShutdownMode, TaskRegistry, Trigger};
use chime_sqlite::SqliteStore;
use sqlx::Connection;

fn job(id: &str) -> Job {
    let mut job = Job::new(id, "noop", Trigger::every("1h").unwrap()).unwrap();
    job.trigger.resolve(jiff::Timestamp::now(), &chime_core::Zone::utc());
    job.state.next_run_at = job.trigger.next_after(jiff::Timestamp::now());
    job
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let garbage = "these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let err = SqliteStore::open(path.to_str().unwrap()).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(path.to_str().unwrap()), "the error names the file: {msg}");
    assert!(msg.contains("not a SQLite database"), "{msg}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), garbage, "the file is untouched");
}

#[tokio::test]
async fn a_database_from_a_newer_chime_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::open(path).await.unwrap();
    store.add_job(job("keep-me"), ConflictPolicy::Error).await.unwrap();
    drop(store);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
         VALUES (9999, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let err = SqliteStore::open(path).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("store error: {path}: the database was written by a newer chime (schema version 9999; this chime knows up to ")),
        "{msg}"
    );
    assert!(msg.ends_with("): upgrade chime, or use another file"), "{msg}");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chime_job").fetch_one(&mut conn).await.unwrap();
    assert_eq!(n, 1, "the stored job is still there");
}

#[tokio::test]
async fn a_read_only_database_reads_and_refuses_writes_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::open(path).await.unwrap();
    store.add_job(job("a"), ConflictPolicy::Error).await.unwrap();
    drop(store);

    let ro = SqliteStore::open(&format!("sqlite://{path}?mode=ro")).await.unwrap();
    assert_eq!(ro.get_job(&chime_core::JobId::new("a").unwrap()).await.unwrap().unwrap().id.as_str(), "a");
    let err = ro.add_job(job("b"), ConflictPolicy::Error).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(path) && msg.contains("read-only"), "{msg}");
    assert!(!err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_a_transient_error_and_scheduling_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap().to_owned();
    let store = SqliteStore::open_with_busy_timeout(&path, Duration::from_millis(100)).await.unwrap();

    // Another process holds the write lock.
    let mut locker = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut locker).await.unwrap();
    let err = store.add_job(job("x"), ConflictPolicy::Error).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("busy"), "{err}");

    // A scheduler whose claims fail while the lock is held reports it and goes on.
    let mut tasks = TaskRegistry::new();
    tasks.register("noop", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    let scheduler = Scheduler::builder().store(store).tasks(tasks).timezone("UTC").unwrap().build();
    let mut events = scheduler.subscribe();
    scheduler.start().unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::StoreError { operation, message }) = events.recv().await {
                return (operation, message);
            }
        }
    })
    .await
    .expect("a store error event");
    assert!(e.1.contains("busy"), "{e:?}");
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();

    let started = Instant::now();
    let mut j = Job::new("after-unlock", "noop", Trigger::at(jiff::Timestamp::now())).unwrap();
    j.options.max_instances = 1;
    loop {
        match scheduler.add_job(j.clone(), ConflictPolicy::Error).await {
            Ok(_) => break,
            Err(e) if e.is_transient() && started.elapsed() < Duration::from_secs(10) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::RunSucceeded { job_id, .. }) = events.recv().await
                && job_id.as_str() == "after-unlock"
            {
                return;
            }
        }
    })
    .await
    .expect("the job added after the lock ran");
    scheduler.shutdown(ShutdownMode::Cancel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opening_a_new_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap().to_owned();
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let p = path.clone();
            tokio::spawn(async move { SqliteStore::open(&p).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().expect("every concurrent open succeeds");
    }
}

#[tokio::test]
async fn a_hand_edited_row_with_a_1ns_interval_or_a_zero_step_is_marked_broken_not_looped_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::open(path).await.unwrap();
    let mut due = job("zero");
    due.state.next_run_at = Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(5));
    store.add_job(due, ConflictPolicy::Error).await.unwrap();
    let mut cal = job("calendar");
    cal.trigger = Trigger::calendar(1, chime_core::CalendarUnit::Days, "09:00").unwrap();
    cal.trigger.resolve(jiff::Timestamp::now(), &chime_core::Zone::utc());
    store.add_job(cal, ConflictPolicy::Error).await.unwrap();
    store.add_job(job("fine"), ConflictPolicy::Error).await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
    sqlx::query("UPDATE chime_job SET trigger = json_set(trigger, '$.every', '1ns') WHERE id = 'zero'")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE chime_job SET trigger = json_set(trigger, '$.every', 0) WHERE id = 'calendar'")
        .execute(&mut conn)
        .await
        .unwrap();

    // The store runs on: the good job is listed, the broken ones are not.
    let ids: Vec<String> =
        store.list_jobs(&chime_core::JobFilter::default()).await.unwrap().iter().map(|j| j.id.to_string()).collect();
    assert_eq!(ids, ["fine"]);
    const MARKED: &str = "SELECT id FROM chime_job WHERE broken IS NOT NULL ORDER BY id";
    // A claim finds the due one and marks it broken, without running it.
    let node = chime_core::NodeRegistration { id: "n".into(), host: "h".into(), pid: 1, version: "test".into() };
    let now = jiff::Timestamp::now();
    let ttl = jiff::SignedDuration::from_secs(30);
    let lease = store.register_node(&node, ttl, now).await.unwrap();
    let tasks = [std::sync::Arc::from("noop")];
    let request = chime_core::ClaimRequest { now, limit: 10, lease: &lease, ttl, tasks: &tasks };
    assert!(store.acquire_due(&request).await.unwrap().is_empty());
    let marked: Vec<String> = sqlx::query_scalar(MARKED).fetch_all(&mut conn).await.unwrap();
    assert_eq!(marked, ["zero"]);
    // A pass over every job reports both and marks the other.
    let broken = store.broken_jobs().await.unwrap();
    assert_eq!(broken.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["calendar", "zero"]);
    assert!(broken.iter().all(|b| b.problem.starts_with("its trigger is invalid")), "{broken:?}");
    let marked: Vec<String> = sqlx::query_scalar(MARKED).fetch_all(&mut conn).await.unwrap();
    assert_eq!(marked, ["calendar", "zero"]);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chime_run").fetch_one(&mut conn).await.unwrap();
    assert_eq!(n, 0, "no run was recorded for the broken rows");
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chime_job").fetch_one(&mut conn).await.unwrap();
    assert_eq!(kept, 3, "nothing was deleted");
}

#[tokio::test]
async fn a_hand_edited_reason_kind_or_status_is_a_clear_outcome_and_the_run_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::open(path).await.unwrap();
    let at: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let node: std::sync::Arc<str> = std::sync::Arc::from("n");
    let reason = chime_core::Reason::Coalesced { into: at };
    for (job, minute) in [("a", 0), ("b", 1), ("c", 2)] {
        let run = chime_core::Run::not_run(
            chime_core::JobId::new(job).unwrap(),
            at + jiff::SignedDuration::from_mins(minute),
            chime_core::RunStatus::Missed,
            reason.clone(),
            &node,
            at,
        );
        store.insert_run(run).await.unwrap();
    }
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
    sqlx::query("UPDATE chime_run SET reason = '{not json' WHERE job_id = 'a'").execute(&mut conn).await.unwrap();
    sqlx::query(r#"UPDATE chime_run SET reason = '{"code":"from_a_newer_chime"}' WHERE job_id = 'b'"#)
        .execute(&mut conn)
        .await
        .unwrap();
    let runs = store.history(&chime_core::RunQuery::default()).await.unwrap();
    let reason_of = |job: &str| runs.iter().find(|r| r.job_id.as_str() == job).unwrap().reason.clone();
    assert_eq!(reason_of("a"), None, "nonsense is dropped; the error text still says why");
    assert_eq!(reason_of("b"), Some(chime_core::Reason::Unknown));
    assert_eq!(reason_of("c"), Some(reason));
    assert!(
        runs.iter().all(|r| r.error.as_deref() == Some("coalesced into the run scheduled for 2026-01-01T00:00:00Z"))
    );

    // A kind edited into nonsense is named, not silently taken for "scheduled".
    sqlx::query("UPDATE chime_run SET kind = 'sometimes' WHERE job_id = 'c'").execute(&mut conn).await.unwrap();
    let e = store.history(&chime_core::RunQuery::default()).await.unwrap_err().to_string();
    assert!(e.contains("unknown run kind \"sometimes\""), "{e}");
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chime_run").fetch_one(&mut conn).await.unwrap();
    assert_eq!(kept, 3, "nothing is deleted");

    // The scheduler's stats read the newest runs' status and times alone: a
    // status edited into nonsense is named with its run, and kept.
    let (stats, read) = store.recent_stats(10).await.unwrap();
    assert_eq!((stats.missed, read), (3, 3), "the kind is not a figure");
    sqlx::query("UPDATE chime_run SET status = 'sort of' WHERE job_id = 'b'").execute(&mut conn).await.unwrap();
    let b: String =
        sqlx::query_scalar("SELECT id FROM chime_run WHERE job_id = 'b'").fetch_one(&mut conn).await.unwrap();
    let e = store.recent_stats(10).await.unwrap_err().to_string();
    assert!(e.contains(&format!("run {b} does not decode")) && e.contains("sort of"), "{e}");
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chime_run").fetch_one(&mut conn).await.unwrap();
    assert_eq!(kept, 3, "nothing is deleted");
}

/// A newer chime adding columns to a file that an older node is still
/// serving (a rolling upgrade): the older node's statements name their
/// columns, so it keeps reading and claiming. With `SELECT *` each cached
/// statement came back from SQLite's re-prepare a column wider than sqlx
/// knew, and sqlx-sqlite's worker panicked on the row.
#[tokio::test]
async fn columns_added_by_another_process_do_not_break_a_running_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::open(path).await.unwrap();
    let mut due = job("due");
    due.state.next_run_at = Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1));
    store.add_job(due, ConflictPolicy::Error).await.unwrap();
    store.add_job(job("later"), ConflictPolicy::Error).await.unwrap();
    // Prepare (and cache) every read before the schema changes.
    let node = chime_core::NodeRegistration::this_process(std::sync::Arc::from("n"));
    let lease = store.register_node(&node, jiff::SignedDuration::from_secs(30), jiff::Timestamp::now()).await.unwrap();
    let history = chime_core::RunQuery { limit: Some(10), ..Default::default() };
    for _ in 0..4 {
        assert_eq!(store.list_jobs(&chime_core::JobFilter::default()).await.unwrap().len(), 2);
        store.get_job(&chime_core::JobId::new("later").unwrap()).await.unwrap().unwrap();
        store.history(&history).await.unwrap();
    }

    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
    for table in ["chime_job", "chime_run"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("ALTER TABLE {table} ADD COLUMN from_a_newer_chime TEXT")))
            .execute(&mut other)
            .await
            .unwrap();
    }

    for _ in 0..4 {
        assert_eq!(store.list_jobs(&chime_core::JobFilter::default()).await.unwrap().len(), 2);
        store.get_job(&chime_core::JobId::new("later").unwrap()).await.unwrap().unwrap();
    }
    let tasks = [std::sync::Arc::from("noop")];
    let request = chime_core::ClaimRequest {
        now: jiff::Timestamp::now(),
        limit: 10,
        lease: &lease,
        ttl: jiff::SignedDuration::from_secs(30),
        tasks: &tasks,
    };
    let claims = store.acquire_due(&request).await.unwrap();
    assert_eq!(claims.len(), 1, "the due job is claimed");
    for _ in 0..4 {
        assert_eq!(store.history(&history).await.unwrap().len(), 1);
    }
}

/// A value of the wrong type in a due row (a blob, text in an integer
/// column, put there by hand) failed the claim's whole read, so that no job
/// of the file ran again; now that row is marked broken and the others run.
/// A due row whose id is not text is read by no claim: counted in the next
/// due time, it woke the loop at once, forever (at full CPU).
#[tokio::test]
async fn a_due_row_whose_id_is_not_text_does_not_wake_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::open(path).await.unwrap();
    let mut due = job("blob-id");
    due.state.next_run_at = Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(5));
    store.add_job(due, ConflictPolicy::Error).await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
    sqlx::query("UPDATE chime_job SET id = CAST(id AS BLOB)").execute(&mut conn).await.unwrap();
    assert_eq!(store.next_due_at(&[std::sync::Arc::from("noop")]).await.unwrap(), None);
}

#[tokio::test]
async fn a_due_row_with_a_value_of_the_wrong_type_is_marked_broken_and_the_others_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chime.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::open(path).await.unwrap();
    let due_at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(5);
    for id in ["blob", "text-version", "blob-id", "fine"] {
        let mut due = job(id);
        due.state.next_run_at = Some(due_at);
        store.add_job(due, ConflictPolicy::Error).await.unwrap();
    }
    // Not due: marked by the scheduler's start-up pass, not by a claim.
    store.add_job(job("blob-later"), ConflictPolicy::Error).await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await.unwrap();
    sqlx::query("UPDATE chime_job SET args = x'00ff' WHERE id IN ('blob', 'blob-later')")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE chime_job SET version = 'one' WHERE id = 'text-version'").execute(&mut conn).await.unwrap();
    // No claim reads a row whose id is not text; the start-up pass marks it.
    sqlx::query("UPDATE chime_job SET id = CAST(id AS BLOB) WHERE id = 'blob-id'").execute(&mut conn).await.unwrap();

    let mut tasks = TaskRegistry::new();
    tasks.register("noop", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    let scheduler = Scheduler::builder().store(store).tasks(tasks).timezone("UTC").unwrap().build();
    scheduler.start().unwrap();
    let start = Instant::now();
    let broken = loop {
        let broken: Vec<(String, String)> =
            sqlx::query_as("SELECT CAST(id AS TEXT), broken FROM chime_job WHERE broken IS NOT NULL ORDER BY 1")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let ran: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chime_run WHERE job_id = 'fine'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if broken.len() == 4 && ran == 1 {
            break broken;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "broken {broken:?}, runs of the good job {ran}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let reported = scheduler.store().broken_jobs().await.map(|b| b.into_iter().map(|b| b.id).collect::<Vec<_>>());
    scheduler.shutdown(ShutdownMode::Cancel).await;
    assert!(reported.as_ref().is_ok_and(|ids| ids.len() == 4), "{reported:?}");
    assert_eq!(
        broken,
        [
            ("blob".to_owned(), "a column holds a value of the wrong type: args".to_owned()),
            ("blob-id".to_owned(), "a column holds a value of the wrong type: id".to_owned()),
            ("blob-later".to_owned(), "a column holds a value of the wrong type: args".to_owned()),
            ("text-version".to_owned(), "a column holds a value of the wrong type: version".to_owned()),
        ]
    );
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chime_job").fetch_one(&mut conn).await.unwrap();
    assert_eq!(kept, 5, "nothing was deleted");
}
