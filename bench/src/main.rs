//! `chime-bench WORKLOAD N`: one scheduler workload, one JSON line on stdout.
//!
//! The same workloads exist for APScheduler (`apscheduler_bench.py`) and
//! tokio-cron-scheduler (`tcs/`), so `./compare.sh` can print them side by
//! side. See `README.md` for what each measures.
//!
//! `--nodes K` (w3 on `--store postgres`) runs K schedulers in this process,
//! each with its own `PostgresStore` (its own connection pool) and node lease
//! on the one schema: what K `chime serve` nodes on one database do.

mod reads;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chime_core::{ConflictPolicy, Job, JobContext, Scheduler, ShutdownMode, TaskRegistry, Trigger};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

/// Where the benchmark's jobs live: `--store memory` (default) or `--store sqlite`
/// (a fresh file in the temporary directory, deleted afterwards).
#[derive(Clone, Copy, PartialEq)]
enum StoreKind {
    Memory,
    Sqlite,
    /// `DATABASE_URL`, in a fresh schema dropped at the end.
    Postgres,
}

static STORE: std::sync::OnceLock<StoreKind> = std::sync::OnceLock::new();

fn store_kind() -> StoreKind {
    *STORE.get().unwrap_or(&StoreKind::Memory)
}

/// `--nodes K`: schedulers sharing the store (w3 on PostgreSQL only; default 1).
static NODES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

fn nodes() -> usize {
    *NODES.get().unwrap_or(&1)
}

/// A scheduler builder on the chosen store (`CHIME_BENCH_BATCH` overrides the claim batch size).
async fn builder() -> chime_core::SchedulerBuilder {
    let b = store_builder().await;
    match std::env::var("CHIME_BENCH_BATCH").ok().and_then(|b| b.parse().ok()) {
        Some(n) => b.batch_size(n),
        None => b,
    }
}

async fn store_builder() -> chime_core::SchedulerBuilder {
    match store_kind() {
        StoreKind::Memory => Scheduler::builder(),
        StoreKind::Sqlite => {
            let path = std::env::temp_dir().join(format!("chime-bench-{}.db", std::process::id()));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            let store = chime_sqlite::SqliteStore::open(path.to_str().unwrap()).await.expect("a sqlite store");
            Scheduler::builder().store(store)
        }
        StoreKind::Postgres => {
            let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| usage("--store postgres needs DATABASE_URL"));
            let options = chime_postgres::PostgresOptions::default().schema(&bench_schema());
            let store = chime_postgres::PostgresStore::connect_with(&url, options).await.expect("a postgres store");
            Scheduler::builder().store(store)
        }
    }
}

/// The schema a PostgreSQL run uses, dropped by [`cleanup`].
fn bench_schema() -> String {
    format!("chime_bench_{}", std::process::id())
}

fn cleanup() {
    if store_kind() == StoreKind::Postgres
        && let Ok(url) = std::env::var("DATABASE_URL")
    {
        let drop_schema = std::process::Command::new("psql")
            .args([url.as_str(), "-qc", &format!("DROP SCHEMA IF EXISTS {} CASCADE", bench_schema())])
            .status();
        if !drop_schema.is_ok_and(|s| s.success()) {
            eprintln!("could not drop schema {} (drop it by hand)", bench_schema());
        }
    }
    let path = std::env::temp_dir().join(format!("chime-bench-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--store") {
        let kind = match args.get(i + 1).map(String::as_str) {
            Some("memory") => StoreKind::Memory,
            Some("sqlite") => StoreKind::Sqlite,
            Some("postgres") => StoreKind::Postgres,
            other => usage(&format!("--store takes memory, sqlite or postgres, not {other:?}")),
        };
        STORE.set(kind).ok();
        args.drain(i..=i + 1);
    }
    if let Some(i) = args.iter().position(|a| a == "--nodes") {
        let k = args.get(i + 1).and_then(|k| k.parse::<usize>().ok()).filter(|k| *k >= 1);
        NODES.set(k.unwrap_or_else(|| usage("--nodes takes a number of nodes, 1 or more"))).ok();
        args.drain(i..=i + 1);
    }
    let (workload, n) = match args.as_slice() {
        [w, n] => (w.as_str(), n.parse::<usize>().unwrap_or_else(|_| usage(&format!("N must be a number, not {n:?}")))),
        _ => usage("expected WORKLOAD N [--store memory|sqlite|postgres] [--nodes K]"),
    };
    if workload == "reads" && store_kind() != StoreKind::Sqlite {
        usage("reads is a SQLite workload: add --store sqlite");
    }
    if nodes() > 1 && (workload != "w3" || store_kind() != StoreKind::Postgres) {
        usage("--nodes K (more than one) is for w3 on --store postgres");
    }
    let runtime = if std::env::var("CHIME_BENCH_RUNTIME").as_deref() == Ok("current_thread") {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    }
    .expect("a tokio runtime");
    let result = runtime.block_on(async {
        match workload {
            "w1" => w1_add(n).await,
            "w2" => w2_burst(n).await,
            "w3" => w3_steady(n).await,
            "w4" => w4_idle(n).await,
            "w5" => w5_next_fire(n),
            "claims" => claims(n).await,
            "reads" => reads::reads(n).await,
            other => usage(&format!("unknown workload {other:?}")),
        }
    });
    cleanup();
    let store = match store_kind() {
        StoreKind::Memory => "memory",
        StoreKind::Sqlite => "sqlite",
        StoreKind::Postgres => "postgres",
    };
    let mut line = json!({"scheduler": "chime", "store": store, "workload": workload, "n": n, "result": result});
    if nodes() > 1 {
        line["nodes"] = json!(nodes());
    }
    println!("{line}");
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "error: {problem}\nusage: chime-bench w1|w2|w3|w4|w5|claims|reads N [--store memory|sqlite|postgres] [--nodes K]"
    );
    std::process::exit(2);
}

/// The (job, scheduled time) of every run executed, and how many were executed twice.
#[derive(Clone, Default)]
struct Doubles {
    seen: Arc<Mutex<HashSet<(chime_core::JobId, Timestamp)>>>,
    twice: Arc<AtomicU64>,
}

fn registry(lateness: Option<Arc<Mutex<Vec<f64>>>>, executed: Arc<AtomicU64>) -> TaskRegistry {
    registry_checked(lateness, executed, None)
}

/// `registry`, and `record` also counts a (job, scheduled time) run twice.
fn registry_checked(
    lateness: Option<Arc<Mutex<Vec<f64>>>>,
    executed: Arc<AtomicU64>,
    doubles: Option<Doubles>,
) -> TaskRegistry {
    let mut tasks = TaskRegistry::new();
    tasks.register("noop", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    tasks.register("record", move |ctx: JobContext| {
        let (lateness, executed, doubles) = (lateness.clone(), Arc::clone(&executed), doubles.clone());
        async move {
            let late = Timestamp::now().duration_since(ctx.scheduled_for).as_secs_f64() * 1000.0;
            executed.fetch_add(1, Ordering::Relaxed);
            if let Some(d) = doubles
                && !d.seen.lock().unwrap().insert((ctx.job_id.clone(), ctx.scheduled_for))
            {
                d.twice.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(l) = lateness {
                l.lock().unwrap().push(late);
            }
            Ok::<_, std::io::Error>(())
        }
    });
    tasks
}

/// w1: add N interval jobs (every hour).
async fn w1_add(n: usize) -> serde_json::Value {
    let scheduler = builder().await.tasks(registry(None, Arc::default())).timezone("UTC").unwrap().build();
    let trigger = Trigger::every("1h").unwrap();
    let one_by_one = std::env::var("W1_ONE_BY_ONE").is_ok_and(|v| v == "1");
    let rss_before = rss_bytes();
    let start = Instant::now();
    if one_by_one {
        for i in 0..n {
            let job = Job::new(&format!("job-{i}"), "noop", trigger.clone()).unwrap();
            scheduler.add_job(job, ConflictPolicy::Error).await.unwrap();
        }
    } else {
        // Built and added a batch at a time, as `sync` or an import would.
        for first in (0..n).step_by(chime_core::ADD_BATCH) {
            let batch = (first..n.min(first + chime_core::ADD_BATCH))
                .map(|i| Job::new(&format!("job-{i}"), "noop", trigger.clone()).unwrap());
            scheduler.add_jobs(batch, ConflictPolicy::Error).await.unwrap();
        }
    }
    let add_s = start.elapsed().as_secs_f64();
    let rss_after = rss_bytes();
    json!({
        "add_s": add_s,
        "add_per_s": n as f64 / add_s,
        "rss_bytes_per_job": (rss_after.saturating_sub(rss_before)) as f64 / n as f64,
        "mode": if one_by_one { "add_job" } else { "add_jobs" },
    })
}

/// How far ahead the w2 burst is due: `W2_LEAD_S` seconds (default 2). The
/// comparison uses 10 so that every scheduler has finished adding its jobs
/// before they fall due, and lateness measures the drain alone.
fn w2_lead() -> SignedDuration {
    let secs: f64 = std::env::var("W2_LEAD_S").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    SignedDuration::from_secs_f64(secs)
}

/// w2: N one-shot jobs all due at one instant 2 s ahead.
async fn w2_burst(n: usize) -> serde_json::Value {
    let lateness = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let executed = Arc::new(AtomicU64::new(0));
    let scheduler = builder()
        .await
        .tasks(registry(Some(Arc::clone(&lateness)), Arc::clone(&executed)))
        .max_concurrency(10_000)
        .build();
    let due = Timestamp::now() + w2_lead();
    for i in 0..n {
        let job = Job::new(&format!("job-{i}"), "record", Trigger::at(due)).unwrap();
        scheduler.add_job(job, ConflictPolicy::Error).await.unwrap();
    }
    scheduler.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while executed.load(Ordering::Relaxed) < n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    scheduler.shutdown(ShutdownMode::Wait(Duration::from_secs(10))).await;
    let mut late = lateness.lock().unwrap().clone();
    let drain_s = late.iter().copied().fold(0.0, f64::max) / 1000.0;
    let missed = n as u64 - executed.load(Ordering::Relaxed);
    json!({
        "drain_s": drain_s,
        "jobs_per_s": late.len() as f64 / drain_s.max(1e-9),
        "lateness_p50_ms": percentile(&mut late, 0.50),
        "lateness_p99_ms": percentile(&mut late, 0.99),
        "lateness_max_ms": percentile(&mut late, 1.0),
        "executed": executed.load(Ordering::Relaxed),
        "missed": missed,
    })
}

/// w3: N interval jobs every second for 10 s; with `--nodes K`, on K
/// schedulers sharing one PostgreSQL schema (the jobs added once, then all K
/// started), every executed run counted and checked for a double.
async fn w3_steady(n: usize) -> serde_json::Value {
    let k = nodes();
    let lateness = Arc::new(Mutex::new(Vec::with_capacity(n * 10)));
    let doubles = Doubles::default();
    let mut schedulers = Vec::with_capacity(k);
    let mut executed = Vec::with_capacity(k);
    for node in 0..k {
        let counter = Arc::new(AtomicU64::new(0));
        // On PostgreSQL each call opens a store of its own: its own pool and, once started, its own lease.
        let mut b = builder()
            .await
            .tasks(registry_checked(Some(Arc::clone(&lateness)), Arc::clone(&counter), Some(doubles.clone())))
            .max_concurrency(10_000);
        if k > 1 {
            b = b.node_id(&format!("bench-node-{}", node + 1));
        }
        schedulers.push(b.build());
        executed.push(counter);
    }
    // Every job starts on the same whole second, 2 s ahead (`W3_LEAD_S`: more for
    // a store whose adds are slow, so the window measures firing, not adding),
    // so all N fire together each second.
    let lead: i64 = std::env::var("W3_LEAD_S").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let start = Timestamp::from_second(Timestamp::now().as_second() + lead).unwrap();
    let end = start + SignedDuration::from_millis(9_500);
    let adding = Instant::now();
    // Added once, a batch (one transaction on a SQL store) at a time.
    for first in (0..n).step_by(chime_core::ADD_BATCH) {
        let batch = (first..n.min(first + chime_core::ADD_BATCH)).map(|i| {
            let trigger = Trigger::every("1s").unwrap().with_start(start).with_end(end);
            Job::new(&format!("job-{i}"), "record", trigger).unwrap()
        });
        schedulers[0].add_jobs(batch, ConflictPolicy::Error).await.unwrap();
    }
    let add_s = adding.elapsed().as_secs_f64();
    if Timestamp::now() >= start {
        eprintln!("w3: adding took {add_s:.1} s, past the start: raise W3_LEAD_S");
    }
    for s in &schedulers {
        s.start().unwrap();
    }
    let total = || executed.iter().map(|e| e.load(Ordering::Relaxed)).sum::<u64>();
    let cpu_before = process_cpu_s();
    let pg_before = postgres_cpu_s();
    let expected = n as u64 * 10;
    let until = Instant::now() + Duration::from_secs(15 + lead.max(0) as u64);
    while total() < expected && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = process_cpu_s() - cpu_before;
    let pg_cpu = postgres_cpu_s().zip(pg_before).map(|(after, before)| after - before);
    for s in &schedulers {
        s.shutdown(ShutdownMode::Wait(Duration::from_secs(10))).await;
    }
    let mut late = lateness.lock().unwrap().clone();
    let mut result = json!({
        "executed": total(),
        "expected": expected,
        "lateness_p50_ms": percentile(&mut late, 0.50),
        "lateness_p99_ms": percentile(&mut late, 0.99),
        "lateness_max_ms": percentile(&mut late, 1.0),
        "process_cpu_s": cpu,
        "executed_twice": doubles.twice.load(Ordering::Relaxed),
        "add_s": add_s,
    });
    if k > 1 {
        result["executed_per_node"] = json!(executed.iter().map(|e| e.load(Ordering::Relaxed)).collect::<Vec<_>>());
    }
    if let Some(pg) = pg_cpu {
        result["postgres_cpu_s"] = json!(pg);
    }
    result
}

/// CPU time of the PostgreSQL server's processes on this machine (every
/// process named `postgres`, from /proc, at 100 ticks a second), when the
/// store is PostgreSQL; a backend that exits takes its time with it.
fn postgres_cpu_s() -> Option<f64> {
    if store_kind() != StoreKind::Postgres {
        return None;
    }
    let ticks: u64 = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            if name != "postgres" {
                return None;
            }
            // After the name: state, ppid, ... utime is the 12th field, stime the 13th.
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    Some(ticks as f64 / 100.0)
}

/// w4: N jobs due in an hour; CPU used over 10 idle seconds.
async fn w4_idle(n: usize) -> serde_json::Value {
    let scheduler = builder().await.tasks(registry(None, Arc::default())).build();
    let trigger = Trigger::at(Timestamp::now() + SignedDuration::from_hours(1));
    for i in 0..n {
        scheduler
            .add_job(Job::new(&format!("job-{i}"), "noop", trigger.clone()).unwrap(), ConflictPolicy::Error)
            .await
            .unwrap();
    }
    scheduler.start().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = process_cpu_s();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu_s = process_cpu_s() - before;
    scheduler.shutdown(ShutdownMode::Cancel).await;
    json!({ "idle_cpu_s": idle_cpu_s })
}

/// w5: N successive fire times of `*/7 9-17 * * 1-5` in America/New_York, through
/// the trigger API the engine uses (one `next_after` call per fire time).
fn w5_next_fire(n: usize) -> serde_json::Value {
    let trigger = Trigger::cron("*/7 9-17 * * 1-5").unwrap().with_timezone("America/New_York").unwrap();
    let mut at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let start = Instant::now();
    for _ in 0..n {
        at = trigger.next_after(at).expect("fires forever");
    }
    let s = start.elapsed().as_secs_f64();
    json!({ "next_fire_s": s, "next_fire_per_s": n as f64 / s, "last": at.to_string() })
}

/// claims: N jobs all due; the time of each `acquire_due` batch of 64, straight
/// on the store (no executor): what one claim transaction costs.
async fn claims(n: usize) -> serde_json::Value {
    let scheduler = builder().await.tasks(registry(None, Arc::default())).timezone("UTC").unwrap().build();
    let due = Timestamp::now();
    for i in 0..n {
        let job = Job::new(&format!("job-{i}"), "noop", Trigger::at(due)).unwrap();
        scheduler.add_job(job, ConflictPolicy::Error).await.unwrap();
    }
    let store = Arc::clone(scheduler.store());
    let ttl = chime_core::DEFAULT_NODE_LEASE;
    let node = chime_core::NodeRegistration::this_process(Arc::from("bench"));
    let lease = store.register_node(&node, ttl, Timestamp::now()).await.unwrap();
    let tasks: Vec<Arc<str>> = vec![Arc::from("noop")];
    let mut batches = Vec::new();
    let start = Instant::now();
    let mut claimed = 0;
    loop {
        let t = Instant::now();
        let request = chime_core::ClaimRequest { now: Timestamp::now(), limit: 64, lease: &lease, ttl, tasks: &tasks };
        let got = store.acquire_due(&request).await.unwrap();
        if got.is_empty() {
            break;
        }
        batches.push(t.elapsed().as_secs_f64() * 1000.0);
        claimed += got.len();
    }
    let s = start.elapsed().as_secs_f64();
    json!({
        "claimed": claimed,
        "claims_per_s": claimed as f64 / s,
        "batch_of_64_p50_ms": percentile(&mut batches, 0.5),
        "batch_of_64_p99_ms": percentile(&mut batches, 0.99),
    })
}

fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64) * p).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// Resident set size from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// CPU time of every live thread of this process, from each thread's schedstat
/// (nanoseconds, so far finer than the 10 ms ticks of /proc/self/stat).
fn process_cpu_s() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum::<u64>() as f64
        / 1e9
}
