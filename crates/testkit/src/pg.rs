//! PostgreSQL for tests: the server's URL, a schema name of a test's own, and
//! a guard that drops the schema when the test ends, passed or failed, so no
//! test leaves anything behind in a shared database.

/// `DATABASE_URL`. A test calls this only when it was built to run (see the
/// crates' `build.rs`: `DATABASE_URL` or `CHIME_REQUIRE_PG=1` at build time),
/// so a missing URL is a failure that says so, never a quiet pass.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| {
        panic!(
            "this PostgreSQL test was built to run (CHIME_REQUIRE_PG=1 or DATABASE_URL at build time) \
             but DATABASE_URL is not set"
        )
    })
}

/// A schema name no other test (or run) uses: `PREFIX_PID_NANOS`.
pub fn unique_schema(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}_{}_{nanos:08x}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `url` with `?schema=` (or `&schema=`) added.
pub fn with_schema(url: &str, schema: &str) -> String {
    format!("{url}{}schema={schema}", if url.contains('?') { '&' } else { '?' })
}

/// Drops its schemas (`CASCADE`) when dropped, on a runtime of its own (the
/// test's may be gone or panicking).
pub struct DropSchema {
    /// The server.
    pub url: String,
    /// The schemas to drop; push more as a test makes them.
    pub schemas: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl DropSchema {
    /// A guard for one schema.
    pub fn new(url: &str, schema: &str) -> DropSchema {
        DropSchema { url: url.to_owned(), schemas: std::sync::Arc::new(std::sync::Mutex::new(vec![schema.to_owned()])) }
    }

    /// A guard for schemas named later, through [`DropSchema::schemas`].
    pub fn many(url: &str) -> DropSchema {
        DropSchema { url: url.to_owned(), schemas: std::sync::Arc::default() }
    }
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let schemas = std::mem::take(&mut *self.schemas.lock().unwrap_or_else(|p| p.into_inner()));
        let url = self.url.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                use sqlx::Executor as _;
                let Ok(pool) = sqlx::PgPool::connect(&url).await else { return };
                for schema in schemas {
                    let _ =
                        pool.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))).await;
                }
            });
        })
        .join();
    }
}
