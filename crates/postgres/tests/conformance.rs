//! The conformance suite on PostgreSQL, against the server in `DATABASE_URL`,
//! each store in a schema of its own (dropped after). Without `DATABASE_URL`
//! these tests are reported as ignored; with `CHIME_REQUIRE_PG=1` (as `.ci/run`
//! sets) a server that does not answer is a failure, not a skip.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chime_core::{JobStore, NodeRegistration};
use chime_postgres::{PostgresOptions, PostgresStore};
use jiff::{SignedDuration, Timestamp};
use sqlx::Executor as _;

/// The server's URL, or `None` (and a loud line) when the tests cannot run here.
async fn server() -> Option<String> {
    let required = std::env::var("CHIME_REQUIRE_PG").is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0");
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            assert!(!required, "CHIME_REQUIRE_PG is set but DATABASE_URL is not");
            eprintln!("SKIPPED: set DATABASE_URL to a PostgreSQL server to run the PostgreSQL store's tests");
            return None;
        }
    };
    match sqlx::PgPool::connect(&url).await {
        Ok(_) => Some(url),
        Err(e) => {
            assert!(!required, "CHIME_REQUIRE_PG is set but {url} does not answer: {e}");
            eprintln!("SKIPPED: {url} does not answer ({e}); the PostgreSQL store's tests did not run");
            None
        }
    }
}

fn schema_name() -> String {
    format!("chime_test_{}_{:08x}", std::process::id(), fastrand::u32(..))
}

/// Drops the schemas when dropped, so a failing test leaves none behind.
struct Cleanup {
    url: String,
    schemas: Arc<Mutex<Vec<String>>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let schemas = self.schemas.lock().unwrap().clone();
        let url = self.url.clone();
        // A runtime of its own: the test's may be gone or panicking.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(drop_schemas(&url, &schemas));
        })
        .join();
    }
}

async fn drop_schemas(url: &str, schemas: &[String]) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    for s in schemas {
        pool.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
async fn postgres_store_passes_the_suite() {
    let Some(url) = server().await else { return };
    let schemas: Arc<Mutex<Vec<String>>> = Arc::default();
    let _cleanup = Cleanup { url: url.clone(), schemas: Arc::clone(&schemas) };
    let (u, s) = (url.clone(), Arc::clone(&schemas));
    let harness = chime_storetest::Harness::new(move || {
        let schema = schema_name();
        s.lock().unwrap().push(schema.clone());
        let url = u.clone();
        async move {
            // The suite runs on virtual time: the caller's clock decides.
            let options = PostgresOptions::default().schema(&schema).caller_clock(true);
            Arc::new(PostgresStore::connect_with(&url, options).await.unwrap()) as Arc<dyn JobStore>
        }
    })
    .with_corrupt({
        let url = url.clone();
        let s = Arc::clone(&schemas);
        move |_store, id| {
            let url = url.clone();
            let schema = s.lock().unwrap().last().cloned().unwrap();
            async move {
                let pool = sqlx::PgPool::connect(&url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE \"{schema}\".chime_job SET trigger = '{{\"type\":\"lunar\"}}' WHERE id = $1"
                )))
                .bind(id.as_str())
                .execute(&pool)
                .await
                .unwrap();
            }
        }
    });
    chime_storetest::run_all(harness).await;
}

/// On the database's clock: a lease not renewed for its term is swept by
/// another node, whatever time the nodes themselves pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
async fn leases_expire_on_the_databases_clock() {
    let Some(url) = server().await else { return };
    let schema = schema_name();
    let _cleanup = Cleanup { url: url.clone(), schemas: Arc::new(Mutex::new(vec![schema.clone()])) };
    let store = PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema)).await.unwrap();
    let reg = |id: &str| NodeRegistration { id: Arc::from(id), host: "h".into(), pid: 1, version: "t".into() };
    let ttl = SignedDuration::from_millis(500);
    // The callers' clocks are years off: the database's decides.
    let past: Timestamp = "2001-01-01T00:00:00Z".parse().unwrap();
    let a = store.register_node(&reg("a"), ttl, past).await.unwrap();
    assert!(a.expires_at > Timestamp::now() - SignedDuration::from_secs(60), "expiry is on the database's clock");
    let b = store.register_node(&reg("b"), SignedDuration::from_secs(30), past).await.unwrap();
    assert!(store.register_node(&reg("a"), ttl, past).await.unwrap_err().is_conflict(), "a is live");
    tokio::time::sleep(Duration::from_millis(800)).await;
    store.renew_lease(&b, SignedDuration::from_secs(30), past).await.unwrap();
    store.sweep(past).await.unwrap();
    assert!(store.renew_lease(&a, ttl, past).await.unwrap_err().is_lease_lost(), "a expired and was swept");
    let ids: Vec<String> = store.nodes().await.unwrap().into_iter().map(|n| n.id).collect();
    assert_eq!(ids, ["b"]);
}

/// Ten stores opening one new schema at once all succeed (one migrates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
async fn ten_nodes_starting_at_once_migrate_once() {
    let Some(url) = server().await else { return };
    let schema = schema_name();
    let _cleanup = Cleanup { url: url.clone(), schemas: Arc::new(Mutex::new(vec![schema.clone()])) };
    let opens: Vec<_> = (0..10)
        .map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(
                async move { PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema)).await },
            )
        })
        .collect();
    for open in opens {
        open.await.unwrap().expect("every node connects");
    }
}

/// A change made through one store reaches another store's change signal
/// through NOTIFY, well within the poll that backs it up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
async fn a_change_on_one_node_wakes_the_others_at_once() {
    let Some(url) = server().await else { return };
    let schema = schema_name();
    let _cleanup = Cleanup { url: url.clone(), schemas: Arc::new(Mutex::new(vec![schema.clone()])) };
    let one = PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema)).await.unwrap();
    let two = PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema)).await.unwrap();
    // Let two's listener connect.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut changes = two.changes();
    changes.borrow_and_update();
    let mut job = chime_core::Job::new("j", "t", chime_core::Trigger::every("1h").unwrap()).unwrap();
    job.state.next_run_at = Some(Timestamp::now() + SignedDuration::from_hours(1));
    let started = std::time::Instant::now();
    one.add_job(job, chime_core::ConflictPolicy::Error).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), changes.changed()).await.expect("woken by NOTIFY").unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}
