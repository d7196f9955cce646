//! Wake-ups through LISTEN/NOTIFY, timed: a change made through one store
//! (a job added, paused, run now) reaches another store's change signal in
//! under 100 ms (the median of five tries, so one slow moment on a loaded
//! machine does not decide); and after the listening connection is killed
//! the listener says so, comes back, says that too, and changes wake at once
//! again, well within the poll that covers the gap.
//!
//! Against the server in `DATABASE_URL`, each test in a schema of its own
//! (dropped after); reported as ignored without it (see `build.rs`).

use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chime_core::{ConflictPolicy, Job, JobStore, Trigger};
use chime_postgres::{PostgresOptions, PostgresStore};
use chime_testkit::pg::{self, DropSchema};
use jiff::{SignedDuration, Timestamp};

/// The bound: a change reaches every node within 100 ms.
const WITHIN: Duration = Duration::from_millis(100);
const TRIES: usize = 5;

async fn server() -> String {
    let url = pg::database_url();
    if let Err(e) = sqlx::PgPool::connect(&url).await {
        panic!("DATABASE_URL={url} does not answer: {e} (start the server, or unset DATABASE_URL to skip these tests)");
    }
    url
}

async fn store(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::connect_with(url, PostgresOptions::default().schema(schema)).await.unwrap()
}

/// The backends listening on `schema`'s channel.
async fn listeners(admin: &sqlx::PgPool, schema: &str) -> Vec<i32> {
    sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE query = $1 ORDER BY pid")
        .bind(format!("LISTEN \"chime_{schema}\""))
        .fetch_all(admin)
        .await
        .unwrap()
}

async fn until_listening(admin: &sqlx::PgPool, schema: &str, n: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pids = listeners(admin, schema).await;
        if pids.len() >= n {
            // The listener wakes its store once just after its LISTEN; let
            // that pass, so it is not taken for a notification.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return pids;
        }
        assert!(Instant::now() < deadline, "{n} listeners on {schema}'s channel within 15 s: {pids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn job(id: &str) -> Job {
    let mut job = Job::new(id, "t", Trigger::every("1h").unwrap()).unwrap();
    job.state.next_run_at = Some(Timestamp::now() + SignedDuration::from_hours(1));
    job
}

/// How long `change` (made through another store) takes to reach `on`'s
/// change signal, counted from just before the change is made.
async fn wake_time<F: Future<Output = ()>>(on: &PostgresStore, change: F) -> Duration {
    let mut changes = on.changes();
    changes.borrow_and_update();
    let started = Instant::now();
    change.await;
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("woken within 10 s (the poll is 5 s)")
        .unwrap();
    started.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Times every kind of change `TRIES` times; panics naming the kinds whose
/// median is over `WITHIN`.
async fn every_change_wakes(one: &PostgresStore, two: &PostgresStore, tag: &str) -> Vec<(&'static str, Duration)> {
    let mut medians = Vec::new();
    let mut added = Vec::new();
    for i in 0..TRIES {
        let id = format!("{tag}-added-{i}");
        added.push(
            wake_time(one, async { two.add_job(job(&id), ConflictPolicy::Error).await.map(drop).unwrap() }).await,
        );
    }
    medians.push(("add_job", added));
    two.add_job(job(&format!("{tag}-p")), ConflictPolicy::Error).await.unwrap();
    let mut paused = Vec::new();
    for i in 0..TRIES {
        let change = async {
            let mut j = two.get_job(&chime_core::JobId::new(&format!("{tag}-p")).unwrap()).await.unwrap().unwrap();
            // Paused, resumed, paused: each try a real change.
            j.state.paused = (i % 2 == 0).then(|| "by the test".into());
            two.update_job(j).await.unwrap();
        };
        paused.push(wake_time(one, change).await);
    }
    medians.push(("update_job (pause, resume)", paused));
    let mut requested = Vec::new();
    for _ in 0..TRIES {
        let id = chime_core::JobId::new(&format!("{tag}-p")).unwrap();
        requested.push(
            wake_time(one, async { two.request_run(&id, Timestamp::now(), None).await.map(drop).unwrap() }).await,
        );
    }
    medians.push(("request_run", requested));
    let medians: Vec<(&str, Duration)> = medians
        .into_iter()
        .map(|(kind, times)| {
            eprintln!("{tag}: {kind} woke the other store in {times:?}");
            (kind, median(times))
        })
        .collect();
    let slow: Vec<_> = medians.iter().filter(|(_, m)| *m >= WITHIN).collect();
    assert!(slow.is_empty(), "{tag}: medians of {TRIES} tries over {WITHIN:?}: {slow:?}");
    medians
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
async fn an_add_a_pause_and_a_run_now_reach_another_store_within_100ms_median_of_5() {
    let url = server().await;
    let schema = pg::unique_schema("chime_wake");
    let _cleanup = DropSchema::new(&url, &schema);
    let one = store(&url, &schema).await;
    let two = store(&url, &schema).await;
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    until_listening(&admin, &schema, 2).await;
    every_change_wakes(&one, &two, "first").await;
}

/// Warnings (and errors) of the whole test binary, as `field=value` lines.
fn captured() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::default())));
        tracing::subscriber::set_global_default(CaptureRef(capture)).expect("the only subscriber");
        capture
    })
}

struct Capture(Mutex<Vec<String>>);

impl Capture {
    fn lines(&self, containing: &str) -> Vec<String> {
        self.0.lock().unwrap().iter().filter(|l| l.contains(containing)).cloned().collect()
    }
}

struct CaptureRef(&'static Capture);

impl tracing::Subscriber for CaptureRef {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Line(String);
        impl tracing::field::Visit for Line {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                let _ = write!(self.0, "{}={value:?} ", field.name());
            }
        }
        let mut line = Line(format!("{} ", event.metadata().level()));
        event.record(&mut line);
        self.0.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
async fn a_killed_listening_connection_is_logged_comes_back_and_wakes_at_once_again() {
    let logs = captured();
    let url = server().await;
    let schema = pg::unique_schema("chime_relisten");
    let _cleanup = DropSchema::new(&url, &schema);
    let one = store(&url, &schema).await;
    let two = store(&url, &schema).await;
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let before = until_listening(&admin, &schema, 2).await;

    // The server ends both listening sessions of this schema's channel.
    let channel = format!("chime_{schema}");
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND query = $1",
    )
    .bind(format!("LISTEN \"{channel}\""))
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(killed, [true, true], "both listeners were ended");
    let lost_at = Instant::now();

    // Each store listens again, on a new session, within a few backoffs.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let pids = listeners(&admin, &schema).await;
        if pids.len() >= 2 && pids.iter().all(|p| !before.contains(p)) {
            break pids;
        }
        assert!(Instant::now() < deadline, "listening again within 10 s: before {before:?}, now {pids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("listening again {:?} after the kill: {before:?} -> {after:?}", lost_at.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A change made on the second store wakes the first at once (through
    // NOTIFY again, not the 5 s poll), and the other way round.
    every_change_wakes(&one, &two, "after-one").await;
    every_change_wakes(&two, &one, "after-two").await;

    // Both the loss and the recovery were said, for this channel, twice (one per store).
    let ours = logs.lines(&channel);
    let lost = ours.iter().filter(|l| l.starts_with("WARN") && l.contains("was lost")).count();
    let back = ours.iter().filter(|l| l.starts_with("WARN") && l.contains("listening for changes again")).count();
    assert!(lost == 2 && back == 2, "a warning for each loss and each recovery: {ours:#?}");
    assert!(ours.iter().all(|l| !l.contains("password")), "{ours:#?}");
}
