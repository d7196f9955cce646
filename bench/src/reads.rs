//! `reads N`: how fast the frequent reads answer on a big SQLite store.
//!
//! Builds (or reuses, with `CHIME_BENCH_DB=path`) a SQLite file holding N
//! interval jobs and 10 × N finished runs, then serves it with
//! `chime_web::router` on 127.0.0.1 and times `GET /metrics`,
//! `GET /api/v1/stats`, `GET /api/v1/jobs?limit=50` and the dashboard's
//! `GET /jobs.json` (what its job list polls, also with a search) and the
//! day view (`/day`, `/day?days=7`) over real HTTP, as a Prometheus scrape
//! or the dashboard would.
//!
//! The jobs go in through `Scheduler::add_jobs`; the runs through one SQL
//! statement, because no store call writes finished runs in bulk (the
//! engine writes each as it runs). Job `job-i` fires at second `i % 3600`
//! of every hour, and its ten runs are the last ten hours' fire times:
//! about 280 runs a second of history, 95% succeeded, 3% failed, 1% missed,
//! 1% skipped.

use std::time::Instant;

use chime_core::{ConflictPolicy, IntervalTrigger, Job, Scheduler, Trigger};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sqlx::ConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs of history per job.
const RUNS_PER_JOB: i64 = 10;

/// Timed requests per path (after one untimed warm-up).
const ROUNDS: usize = 5;

pub(crate) async fn reads(n: usize) -> serde_json::Value {
    let (path, keep) = match std::env::var("CHIME_BENCH_DB") {
        Ok(p) => (std::path::PathBuf::from(p), true),
        Err(_) => (std::env::temp_dir().join(format!("chime-bench-{}.db", std::process::id())), false),
    };
    let location = path.to_str().expect("a UTF-8 path").to_owned();
    let mut built = json!(null);
    if stored_jobs(&location).await != Some(n as i64) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{location}{suffix}"));
        }
        built = build(&location, n).await;
    }
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    // Opening runs any migration a store built by an older chime lacks.
    let start = Instant::now();
    let store = chime_sqlite::SqliteStore::open(&location).await.expect("the bench store");
    let open_s = start.elapsed().as_secs_f64();
    let scheduler = scheduler_on(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().unwrap();
    let app = chime_web::router(chime_web::Handle::new(scheduler.clone()));
    let server = tokio::spawn(chime_web::serve(listener, app, std::future::pending()));

    // The store calls behind the figures, timed alone.
    let store = std::sync::Arc::clone(scheduler.store());
    let (mut counts_ms, mut recent_ms, mut alerts_ms) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..=ROUNDS {
        let t = Instant::now();
        store.job_counts().await.expect("job counts");
        counts_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        store.recent_stats(chime_core::STATS_WINDOW).await.expect("the newest runs' figures");
        recent_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        // What `/health?jobs=true` and the minutely alert check read (a
        // stopped scheduler's `/health` answers 503 before reading it).
        let t = Instant::now();
        scheduler.alerts().await.expect("the alerts");
        alerts_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut calls = json!({
        "job_counts_p50_ms": crate::percentile(&mut counts_ms, 0.5),
        "recent_stats_p50_ms": crate::percentile(&mut recent_ms, 0.5),
        "alerts_p50_ms": crate::percentile(&mut alerts_ms, 0.5),
    });

    let mut timings = serde_json::Map::new();
    let targets = [
        "/metrics",
        "/api/v1/stats",
        "/api/v1/jobs?limit=50",
        "/jobs.json",
        "/jobs.json?q=job-4242",
        "/day",
        "/day?days=7",
    ];
    for target in targets {
        // A warm-up; a status other than 200 (the server's 408 after its
        // request timeout) is reported, and the path timed once only.
        let t = Instant::now();
        let (status, bytes) = get(addr, target).await;
        let mut ms = vec![t.elapsed().as_secs_f64() * 1000.0];
        if status == 200 {
            ms.clear();
            for _ in 0..ROUNDS {
                let t = Instant::now();
                get(addr, target).await;
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let median = crate::percentile(&mut ms, 0.5);
        timings.insert(
            target.to_owned(),
            json!({"status": status, "p50_ms": median, "max_ms": ms.last(), "body_bytes": bytes}),
        );
    }
    server.abort();
    // A pass over every job for rows that do not decode (the scheduler's
    // start, `chime jobs list`): timed last, so that its reads do not
    // change what the timed requests find in the caches.
    let t = Instant::now();
    store.broken_jobs().await.expect("the broken jobs");
    calls["broken_jobs_ms"] = json!(t.elapsed().as_secs_f64() * 1000.0);
    if !keep {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{location}{suffix}"));
        }
    }
    json!({
        "jobs": n,
        "runs": n as i64 * RUNS_PER_JOB,
        "file_bytes": file_bytes,
        "built": built,
        "open_s": open_s,
        "get": timings,
        "store_calls": calls,
    })
}

/// A scheduler (not started) on `store`, with the bench's `noop` task.
fn scheduler_on(store: chime_sqlite::SqliteStore) -> Scheduler {
    Scheduler::builder().store(store).tasks(crate::registry(None, Default::default())).timezone("UTC").unwrap().build()
}

/// How many jobs the file holds, if it is a chime store already.
async fn stored_jobs(location: &str) -> Option<i64> {
    if !std::path::Path::new(location).exists() {
        return None;
    }
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(location).connect().await.ok()?;
    sqlx::query_scalar("SELECT COUNT(*) FROM chime_job").fetch_one(&mut conn).await.ok()
}

/// Fills a new store file with `n` jobs and their runs.
async fn build(location: &str, n: usize) -> serde_json::Value {
    let store = chime_sqlite::SqliteStore::open(location).await.expect("a new store");
    let scheduler = scheduler_on(store);
    let hour = Timestamp::now().as_second() / 3600 * 3600;
    let start = Instant::now();
    for first in (0..n).step_by(chime_core::ADD_BATCH) {
        let batch = (first..n.min(first + chime_core::ADD_BATCH)).map(|i| {
            let at = Timestamp::from_second(hour + 3600 + (i % 3600) as i64).unwrap();
            let every = IntervalTrigger { every: SignedDuration::from_hours(1), start: Some(at), end: None };
            Job::new(&format!("job-{i}"), "noop", Trigger::Interval(every)).unwrap()
        });
        scheduler.add_jobs(batch, ConflictPolicy::Error).await.unwrap();
    }
    let jobs_s = start.elapsed().as_secs_f64();
    drop(scheduler);

    let start = Instant::now();
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(location).connect().await.unwrap();
    for sql in ["PRAGMA journal_mode = OFF", "PRAGMA synchronous = OFF", "BEGIN"] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    // Run ids: UUID-shaped text in time order, so the primary key appends.
    let runs = n as i64 * RUNS_PER_JOB;
    sqlx::query(
        "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ?1 - 1),
         r AS (SELECT i, i % ?2 AS job, (?3 - (?4 - i / ?2) * 3600 + (i % ?2) % 3600) * 1000000 AS at FROM k)
         INSERT INTO chime_run (id, job_id, scheduled_for, kind, status, started_at, finished_at, attempt, node, error, epoch)
         SELECT printf('%08x-0000-7000-8000-%012x', at / 1000000, i), 'job-' || job, at, 'scheduled',
                CASE WHEN i % 100 < 95 THEN 'succeeded' WHEN i % 100 < 98 THEN 'failed'
                     WHEN i % 100 < 99 THEN 'missed' ELSE 'skipped' END,
                CASE WHEN i % 100 < 98 THEN at + (i % 50) * 1000 END,
                CASE WHEN i % 100 < 98 THEN at + (i % 50) * 1000 + (i % 2000) * 1000 ELSE at END,
                1, 'bench', CASE WHEN i % 100 BETWEEN 95 AND 97 THEN 'exit status 1' END, 1
         FROM r ORDER BY at, i",
    )
    .bind(runs)
    .bind(n as i64)
    .bind(hour)
    .bind(RUNS_PER_JOB)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    let runs_s = start.elapsed().as_secs_f64();
    json!({"jobs_s": jobs_s, "runs_s": runs_s})
}

/// One `GET` over a fresh connection: the status and the body's length.
async fn get(addr: std::net::SocketAddr, target: &str) -> (u16, usize) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("the bench server");
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.find("\r\n\r\n").map_or(0, |at| response.len() - at - 4);
    (status, body)
}
