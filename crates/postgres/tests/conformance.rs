//! The conformance suite on PostgreSQL, one test per case, against the server
//! in `DATABASE_URL`, each store in a schema of its own (dropped after); and
//! what only PostgreSQL has (its clock, concurrent migration, NOTIFY).
//! Without `DATABASE_URL` these tests are reported as ignored; with it (or
//! `CHIME_REQUIRE_PG=1`, as `.ci/run` sets) a server that does not answer is
//! a failure, not a skip.

use std::sync::Arc;
use std::time::Duration;

use chime_core::{JobStore, NodeRegistration};
use chime_postgres::{PostgresOptions, PostgresStore};
use chime_storetest::Harness;
use chime_testkit::pg::{self, DropSchema};
use jiff::{SignedDuration, Timestamp};

/// The server's URL, checked: these tests are compiled in only when
/// `DATABASE_URL` is set or `CHIME_REQUIRE_PG=1` (see `build.rs`; otherwise
/// they are reported as ignored), so a missing or silent server is a failure
/// that says what to fix, never a quiet pass.
async fn server() -> String {
    let url = pg::database_url();
    if let Err(e) = sqlx::PgPool::connect(&url).await {
        panic!("DATABASE_URL={url} does not answer: {e} (start the server, or unset DATABASE_URL to skip these tests)");
    }
    url
}

fn schema_name() -> String {
    pg::unique_schema("chime_test")
}

/// A harness whose stores each get a schema of their own, all dropped when
/// the harness is (at the end of its test, passed or failed).
async fn harness() -> Option<Harness> {
    let url = server().await;
    let cleanup = Arc::new(DropSchema::many(&url));
    let schemas = Arc::clone(&cleanup.schemas);
    let u = url.clone();
    // The factory owns the guard: the schemas go when the harness does.
    let harness = Harness::new(move || {
        let schema = schema_name();
        cleanup.schemas.lock().unwrap().push(schema.clone());
        let url = u.clone();
        async move {
            // The suite runs on virtual time: the caller's clock decides.
            let options = PostgresOptions::default().schema(&schema).caller_clock(true);
            Arc::new(PostgresStore::connect_with(&url, options).await.unwrap()) as Arc<dyn JobStore>
        }
    })
    .with_corrupt(move |_store, id| {
        let url = url.clone();
        let schema = schemas.lock().unwrap().last().cloned().unwrap();
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
    });
    Some(harness)
}

mod suite {
    use super::harness;
    chime_storetest::conformance_tests!(
        #[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
        harness
    );
    chime_storetest::corrupt_row_tests!(
        #[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
        harness
    );
}

/// On the database's clock: a lease not renewed for its term is swept by
/// another node, whatever time the nodes themselves pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
async fn leases_expire_on_the_databases_clock() {
    let url = server().await;
    let schema = schema_name();
    let _cleanup = DropSchema::new(&url, &schema);
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
    let url = server().await;
    let schema = schema_name();
    let _cleanup = DropSchema::new(&url, &schema);
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
    let url = server().await;
    let schema = schema_name();
    let _cleanup = DropSchema::new(&url, &schema);
    let one = PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema)).await.unwrap();
    let two = PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema)).await.unwrap();
    // Both listeners are connected once the server shows their LISTEN.
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let listen = format!("LISTEN \"chime_{schema}\"");
    chime_testkit::wait_for_async("both stores to LISTEN", Duration::from_secs(10), || async {
        let listening: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE query = $1")
            .bind(&listen)
            .fetch_one(&admin)
            .await
            .unwrap();
        listening >= 2
    })
    .await;
    let mut changes = two.changes();
    changes.borrow_and_update();
    let mut job = chime_core::Job::new("j", "t", chime_core::Trigger::every("1h").unwrap()).unwrap();
    job.state.next_run_at = Some(Timestamp::now() + SignedDuration::from_hours(1));
    let started = std::time::Instant::now();
    one.add_job(job, chime_core::ConflictPolicy::Error).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), changes.changed()).await.expect("woken by NOTIFY").unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A node whose clock is an hour behind the database's still wakes on time:
/// `next_due_at` translates the database's due time into the node's clock.
/// (The database's clock is set an hour ahead by redefining the schema's
/// `chime_now_us()`, which every query of the store reads.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
async fn the_next_due_time_is_told_on_the_nodes_clock() {
    let url = server().await;
    let schema = schema_name();
    let _cleanup = DropSchema::new(&url, &schema);
    let store = PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema)).await.unwrap();
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE OR REPLACE FUNCTION \"{schema}\".chime_now_us() RETURNS BIGINT AS $$ \
             SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT + 3600000000 $$ LANGUAGE SQL"
    )))
    .execute(&admin)
    .await
    .unwrap();
    // Due three hours from now on the database's clock, which is an hour ahead.
    let due_by_the_database = Timestamp::now() + SignedDuration::from_hours(3);
    let mut job = chime_core::Job::new("j", "t", chime_core::Trigger::every("1h").unwrap()).unwrap();
    job.state.next_run_at = Some(due_by_the_database);
    store.add_job(job, chime_core::ConflictPolicy::Error).await.unwrap();
    let wake = store.next_due_at(&[Arc::from("t")]).await.unwrap().expect("a due time");
    let expected = due_by_the_database - SignedDuration::from_hours(1);
    let off = wake.duration_since(expected).abs();
    assert!(off < SignedDuration::from_secs(5), "woke at {wake}, expected {expected} on the node's clock");
}
