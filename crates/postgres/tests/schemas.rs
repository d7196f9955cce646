//! Schema names and pools given by the caller: the longest schema whose
//! change channel (`chime_` and the schema) fits PostgreSQL's 63-byte names
//! works, one byte more is refused at connect with an error that says why;
//! `from_pool` checks the schema and the pool's `search_path`, and bounds its
//! own transactions (`idle_in_transaction_session_timeout`) on connections it
//! did not open.
//!
//! Against the server in `DATABASE_URL`, each test in a schema of its own
//! (dropped after); reported as ignored without it (see `build.rs`).

use std::time::Duration;

use chime_core::{ConflictPolicy, Error, Job, JobStore, Trigger};
use chime_postgres::{MAX_SCHEMA_LEN, PostgresOptions, PostgresStore};
use chime_testkit::pg::{self, DropSchema};
use jiff::{SignedDuration, Timestamp};
use sqlx::Executor as _;

async fn server() -> String {
    let url = pg::database_url();
    if let Err(e) = sqlx::PgPool::connect(&url).await {
        panic!("DATABASE_URL={url} does not answer: {e} (start the server, or unset DATABASE_URL to skip these tests)");
    }
    url
}

fn job(id: &str) -> Job {
    let mut job = Job::new(id, "t", Trigger::every("1h").unwrap()).unwrap();
    job.state.next_run_at = Some(Timestamp::now() + SignedDuration::from_hours(1));
    job
}

/// A schema name of this test's own, `len` bytes long.
fn schema_of_len(len: usize) -> String {
    let mut name = pg::unique_schema("chime_long");
    assert!(name.len() <= len, "{name}");
    while name.len() < len {
        name.push('x');
    }
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
async fn the_longest_schema_whose_channel_fits_is_written_and_woken_and_one_byte_more_is_refused() {
    let url = server().await;
    let longest = schema_of_len(MAX_SCHEMA_LEN);
    let _cleanup = DropSchema::new(&url, &longest);
    let one = PostgresStore::connect(&pg::with_schema(&url, &longest)).await.unwrap();
    let two = PostgresStore::connect(&pg::with_schema(&url, &longest)).await.unwrap();
    // Give the listener a moment to LISTEN; then a write (which announces itself) wakes the other.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut changes = two.changes();
    changes.borrow_and_update();
    one.add_job(job("j"), ConflictPolicy::Error).await.expect("a write on the longest schema");
    tokio::time::timeout(Duration::from_secs(2), changes.changed()).await.expect("woken by NOTIFY").unwrap();

    let too_long = schema_of_len(MAX_SCHEMA_LEN + 1);
    let cleanup = DropSchema::new(&url, &too_long);
    for refused in [
        PostgresStore::connect(&pg::with_schema(&url, &too_long)).await,
        PostgresStore::connect_with(&url, PostgresOptions::default().schema(&too_long)).await,
        PostgresStore::from_pool(sqlx::PgPool::connect(&url).await.unwrap(), &too_long, PostgresOptions::default())
            .await,
    ] {
        match refused {
            Err(Error::Invalid(message)) => {
                assert!(message.contains(&format!("at most {MAX_SCHEMA_LEN}")) && message.contains("63"), "{message}");
            }
            other => panic!("a {}-byte schema is refused: {other:?}", too_long.len()),
        }
    }
    // Refused before anything was created.
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let created: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&too_long)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(created, 0);
    drop(cleanup);
}

/// A pool of the service's own whose connections set the schema but leave
/// idle transactions unbounded (`0`, PostgreSQL's default).
async fn service_pool(url: &str, schema: &str) -> sqlx::PgPool {
    let search_path = format!("SET search_path TO \"{schema}\"");
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .after_connect(move |conn, _| {
            let search_path = search_path.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(search_path)).await?;
                conn.execute("SET idle_in_transaction_session_timeout = 0").await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
async fn from_pool_checks_the_search_path_and_bounds_its_own_transactions() {
    let url = server().await;
    let schema = pg::unique_schema("chime_pool");
    let _cleanup = DropSchema::new(&url, &schema);

    // A pool on another schema's tables is refused, saying what to set.
    let other = sqlx::PgPool::connect(&url).await.unwrap();
    match PostgresStore::from_pool(other, &schema, PostgresOptions::default()).await {
        Err(Error::Invalid(message)) => assert!(message.contains("search_path"), "{message}"),
        other => panic!("a pool without the schema in its search_path is refused: {other:?}"),
    }

    let pool = service_pool(&url, &schema).await;
    let store = PostgresStore::from_pool(pool.clone(), &schema, PostgresOptions::default()).await.unwrap();
    // What the session's bound is inside the store's transaction that adds a
    // job, seen by a trigger on the job table.
    for sql in [
        "CREATE TABLE probe (job TEXT, idle_bound TEXT)".to_owned(),
        "CREATE FUNCTION probe() RETURNS trigger AS $$ BEGIN \
             INSERT INTO probe VALUES (NEW.id, current_setting('idle_in_transaction_session_timeout')); RETURN NEW; \
         END $$ LANGUAGE plpgsql"
            .to_owned(),
        "CREATE TRIGGER probe BEFORE INSERT ON chime_job FOR EACH ROW EXECUTE FUNCTION probe()".to_owned(),
    ] {
        pool.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
    }
    store.add_job(job("j1"), ConflictPolicy::Error).await.unwrap();
    store.add_jobs(vec![job("j2"), job("j3")], ConflictPolicy::Error).await.unwrap();
    let seen: Vec<(String, String)> =
        sqlx::query_as("SELECT job, idle_bound FROM probe ORDER BY job").fetch_all(&pool).await.unwrap();
    assert_eq!(
        seen,
        [("j1".into(), "2s".into()), ("j2".into(), "2s".into()), ("j3".into(), "2s".into())],
        "the store's transactions are bounded on the service's connections"
    );
    // Outside the store's transactions the service's own setting stands.
    let outside: String = sqlx::query_scalar("SELECT current_setting('idle_in_transaction_session_timeout')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outside, "0");
}
