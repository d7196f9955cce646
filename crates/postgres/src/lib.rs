//! A chime `JobStore` on PostgreSQL: any number of nodes (`chime serve`
//! processes, replicas of a service) share one schedule; every scheduled time
//! fires exactly once; a node that dies has its runs taken over within a lease.
//! PostgreSQL is the distributed engine: chime adds no consensus of its own.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use chime_core::Scheduler;
//! use chime_postgres::PostgresStore;
//!
//! let store = PostgresStore::connect("postgres://chime@db.internal/app?schema=chime").await?;
//! let scheduler = Scheduler::builder().store(store).build();
//! # Ok(())
//! # }
//! ```
//!
//! # Overview
//!
//! * Everything lives in one schema (`chime` unless the URL says
//!   `?schema=NAME` or [`PostgresOptions::schema`] does), created if missing;
//!   the embedded migrations run at connect under PostgreSQL's advisory lock,
//!   so ten nodes starting at once migrate once.
//! * The claim is one short transaction: renew the lease, lock the due jobs
//!   of this node's tasks with `FOR UPDATE SKIP LOCKED` (another node takes the
//!   next ones instead of waiting), call chime-core's `plan_fire`, insert the
//!   run rows (unique on job and scheduled time) and advance the jobs.
//! * Leases and due times are judged on the database's clock (`chime_now_us()`,
//!   from `clock_timestamp()`), never on a mix of the nodes' clocks.
//!   [`PostgresOptions::caller_clock`] uses the scheduler's clock instead,
//!   for tests on virtual time.
//! * Sessions are bounded (`idle_in_transaction_session_timeout`), so a node
//!   frozen inside a claim releases its row locks within seconds: set on each
//!   connection of the store's own pool, and at the start of each of the
//!   store's transactions on a pool given to [`PostgresStore::from_pool`].
//! * Changes (jobs added, paused, rescheduled, runs requested) are announced
//!   with `NOTIFY`; every node `LISTEN`s and wakes at once, and wakes every few
//!   seconds anyway in case a notification was lost.
//! * TLS with rustls on ring: `sslmode` in the URL.
//!
//! # Crate features
//!
//! None.

mod claim;
mod listen;
mod nodes;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chime_core::{
    BrokenJob, Claim, ClaimRequest, ConflictPolicy, Error, Job, JobFilter, JobId, JobStats, JobStore, Lease, NodeInfo,
    NodeRegistration, Result, Run, RunQuery, RunStatus, StatusCounts, SweptRun,
};
use chime_sql::{Dialect, IN_FLIGHT, JobRow, RunRow, encode, micros};
use jiff::{SignedDuration, Timestamp};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor as _, PgConnection};
use tokio::sync::watch;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a session may sit idle inside a transaction before PostgreSQL
/// ends it: a node frozen mid-claim must not hold row locks for a lease.
const IDLE_IN_TRANSACTION: &str = "2s";

/// The prefix of a schema's `NOTIFY` channel, `chime_{schema}`.
const CHANNEL_PREFIX: &str = "chime_";

/// The longest schema name, in bytes: its channel `chime_{schema}` must fit
/// PostgreSQL's identifiers (63 bytes), or every write fails to announce itself.
pub const MAX_SCHEMA_LEN: usize = 63 - CHANNEL_PREFIX.len();

/// How a [`PostgresStore`] connects.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    schema: String,
    caller_clock: bool,
    max_connections: u32,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions { schema: "chime".into(), caller_clock: false, max_connections: 8 }
    }
}

impl PostgresOptions {
    /// The schema the tables live in (default `chime`): lowercase letters,
    /// digits and `_`, starting with a letter or `_`, at most
    /// [`MAX_SCHEMA_LEN`] (57) bytes, so that its `NOTIFY` channel
    /// (`chime_` and the schema) fits PostgreSQL's 63-byte identifiers.
    pub fn schema(mut self, name: &str) -> Self {
        name.clone_into(&mut self.schema);
        self
    }

    /// Judge due times and leases by the `now` the scheduler passes (its
    /// `Clock`) instead of the database's clock: for tests on virtual time,
    /// never for several machines.
    pub fn caller_clock(mut self, yes: bool) -> Self {
        self.caller_clock = yes;
        self
    }

    /// Connections in the pool (default 8).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(2);
        self
    }
}

/// Jobs, runs and nodes in a PostgreSQL schema.
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    schema: String,
    /// The `NOTIFY` channel of this schema.
    channel: String,
    caller_clock: bool,
    /// The URL without its password, for error messages.
    shown: String,
    /// Whether each transaction sets `idle_in_transaction_session_timeout`
    /// itself (a pool from [`PostgresStore::from_pool`], whose connections the
    /// store did not open).
    bound_each_tx: bool,
    changes: Arc<watch::Sender<u64>>,
    listener: tokio::task::JoinHandle<()>,
    /// Run updates go through a group-commit writer: a burst of runs costs a
    /// few transactions, not one per update.
    run_writes: chime_sql::writer::RunWriter,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Why `name` cannot be a schema, if it cannot.
fn schema_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let plain = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain {
        Some(format!(
            "schema {name:?} is not a plain identifier (lowercase letters, digits and _, not starting with a digit)"
        ))
    } else if name.len() > MAX_SCHEMA_LEN {
        Some(format!(
            "schema {name:?} is {} bytes long; at most {MAX_SCHEMA_LEN} fit (its change channel \"{CHANNEL_PREFIX}{name}\" must fit PostgreSQL's 63-byte names)",
            name.len()
        ))
    } else {
        None
    }
}

/// The statement of `history` for `query`: its binds, in order, are the
/// job id, the statuses (one array), since, until, the limit and the offset,
/// each only if the query has it (the limit and offset always).
fn history_sql(query: &RunQuery) -> String {
    let mut sql = String::from(concat!("SELECT ", chime_sql::run_fields!(), " FROM chime_run WHERE TRUE"));
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    if query.job_id.is_some() {
        sql.push_str(&format!(" AND job_id = {}", next()));
    }
    if !query.statuses.is_empty() {
        sql.push_str(&format!(" AND status = ANY({})", next()));
    }
    if query.since.is_some() {
        sql.push_str(&format!(" AND scheduled_for >= {}", next()));
    }
    if query.until.is_some() {
        sql.push_str(&format!(" AND scheduled_for < {}", next()));
    }
    sql.push_str(&format!(" ORDER BY scheduled_for DESC, id DESC LIMIT {} OFFSET {}", next(), next()));
    sql
}

#[cfg(test)]
fn valid_schema(name: &str) -> bool {
    schema_problem(name).is_none()
}

/// The URL with any `schema=` parameter taken out, and that schema.
fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_owned(), None) };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("schema=") {
            Some(s) => {
                schema = Some(s.to_owned());
                false
            }
            None => true,
        })
        .collect();
    let url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
    (url, schema)
}

/// A store URL as it may be shown (printed, logged, put in an error): the
/// password taken out of `postgres://user:secret@host/db` (which becomes
/// `postgres://user@host/db`) and the value of any `password=` parameter
/// replaced by `redacted`. A URL without either (a SQLite path, `memory:`)
/// is returned as it is. Everything chime shows of a store URL goes through
/// this function.
pub fn without_password(url: &str) -> String {
    let mut shown = match (url.find("://"), url.rfind('@')) {
        // The last `@`: a password with an unescaped `@` in it is still taken out whole.
        (Some(scheme), Some(at)) if at > scheme && url[scheme + 3..at].contains(':') => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    };
    if let Some((base, query)) = shown.split_once('?') {
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=redacted"),
                _ => kv.to_owned(),
            })
            .collect();
        shown = format!("{base}?{}", query.join("&"));
    }
    shown
}

/// Begins a transaction; on a pool the store did not open, bounds it first
/// (`SET LOCAL` lasts until the transaction ends).
pub(crate) async fn begin(
    pool: &PgPool,
    bound_each_tx: bool,
) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    if bound_each_tx {
        tx.execute(AssertSqlSafe(format!("SET LOCAL idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'")))
            .await?;
    }
    Ok(tx)
}

/// The first schema of a `search_path` setting (`"a b", public` → `a b`).
fn first_in_search_path(setting: &str) -> String {
    let first = setting.split(',').next().unwrap_or("").trim();
    first.strip_prefix('"').and_then(|f| f.strip_suffix('"')).unwrap_or(first).replace("\"\"", "\"")
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host/db?sslmode=require&schema=chime`),
    /// creates the schema if needed and runs the migrations.
    ///
    /// # Errors
    ///
    /// An error naming the server (without the password) and what failed.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        PostgresStore::connect_with(url, PostgresOptions::default()).await
    }

    /// [`connect`](PostgresStore::connect) with options; a `schema=` in the URL wins.
    ///
    /// # Errors
    ///
    /// As for `connect`, and for a schema name that is not a plain identifier.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<PostgresStore> {
        let shown = without_password(url);
        let (url, schema) = split_schema(url);
        let schema = schema.unwrap_or(options.schema.clone());
        let connect = PgConnectOptions::from_str(&url).map_err(|e| store_error(&shown, "reading the URL", &e))?;
        if let Some(problem) = schema_problem(&schema) {
            return Err(Error::Invalid(format!("{shown}: {problem}")));
        }
        let search_path = format!("SET search_path TO \"{schema}\"");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    conn.execute(AssertSqlSafe(search_path)).await?;
                    conn.execute(AssertSqlSafe(format!(
                        "SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'"
                    )))
                    .await?;
                    Ok(())
                })
            })
            .connect_with(connect.clone())
            .await
            .map_err(|e| store_error(&shown, "connecting", &e))?;
        PostgresStore::prepare(pool, connect, schema, options.caller_clock, shown, false).await
    }

    /// A store on a pool the service already has.
    ///
    /// The pool's connections must have `search_path` set to `schema` (the
    /// tables are unqualified), e.g. in the pool's `after_connect`:
    /// `SET search_path TO "chime"`; one connection is checked here. The store
    /// cannot change the settings of connections it did not open, so it bounds
    /// its own transactions instead: each starts with
    /// `SET LOCAL idle_in_transaction_session_timeout = '2s'` (one more
    /// statement per transaction than on the store's own pool), and a node
    /// frozen inside one of them still lets go of its row locks within seconds.
    /// The rest of the service's transactions keep the pool's settings.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a schema name that does not fit (see
    /// [`PostgresOptions::schema`]) or a pool whose `search_path` does not
    /// start with it; a store error when the schema cannot be created or migrated.
    pub async fn from_pool(pool: PgPool, schema: &str, options: PostgresOptions) -> Result<PostgresStore> {
        let connect = pool.connect_options().as_ref().clone();
        let shown = format!(
            "postgres://{}:{}/{}",
            connect.get_host(),
            connect.get_port(),
            connect.get_database().unwrap_or("")
        );
        if let Some(problem) = schema_problem(schema) {
            return Err(Error::Invalid(format!("{shown}: {problem}")));
        }
        let setting: String = sqlx::query_scalar("SELECT current_setting('search_path')")
            .fetch_one(&pool)
            .await
            .map_err(|e| store_error(&shown, "reading the pool's search_path", &e))?;
        if first_in_search_path(&setting) != schema {
            return Err(Error::Invalid(format!(
                "{shown}: the pool's connections have search_path {setting:?}; a store on schema {schema} needs \
                 `SET search_path TO \"{schema}\"` on each (in the pool's after_connect)"
            )));
        }
        PostgresStore::prepare(pool, connect, schema.to_owned(), options.caller_clock, shown, true).await
    }

    async fn prepare(
        pool: PgPool,
        connect: PgConnectOptions,
        schema: String,
        caller_clock: bool,
        shown: String,
        bound_each_tx: bool,
    ) -> Result<PostgresStore> {
        let fail = |op: &str, e: sqlx::Error| store_error(&shown, op, &e);
        // Nodes starting at once: CREATE SCHEMA IF NOT EXISTS can still race
        // on the catalog; the advisory lock makes it one at a time.
        {
            let mut conn = pool.acquire().await.map_err(|e| fail("connecting", e))?;
            conn.execute("SELECT pg_advisory_lock(7307201)").await.map_err(|e| fail("locking for the migration", e))?;
            let created = conn.execute(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))).await;
            let _ = conn.execute("SELECT pg_advisory_unlock(7307201)").await;
            created.map_err(|e| fail("creating the schema", e))?;
        }
        // sqlx's migrator holds its own advisory lock while it migrates.
        MIGRATOR.run(&pool).await.map_err(|e| Error::Store {
            message: format!("{shown}: migrating schema {schema}: {e}"),
            transient: false,
        })?;

        let channel = format!("{CHANNEL_PREFIX}{schema}");
        let changes = Arc::new(watch::Sender::new(0u64));
        let listener = tokio::spawn(listen::listen(connect, channel.clone(), Arc::clone(&changes), shown.clone()));
        let run_writes = chime_sql::writer::RunWriter::spawn(
            writer::PgBatch { pool: pool.clone(), shown: shown.clone(), bound_each_tx },
            shown.clone(),
        );
        tracing::info!(database = %shown, schema, "postgres store open");
        Ok(PostgresStore { pool, schema, channel, caller_clock, shown, bound_each_tx, changes, listener, run_writes })
    }

    /// The schema this store uses.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The pool, for a service that wants to share it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begins one of the store's transactions, bounded (see [`PostgresStore::from_pool`]).
    pub(crate) async fn begin(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        begin(&self.pool, self.bound_each_tx).await
    }

    fn err(&self, op: &str, e: sqlx::Error) -> Error {
        store_error(&self.shown, op, &e)
    }

    /// The `now` to bind: the caller's in caller-clock mode, else NULL, which
    /// the SQL reads as `chime_now_us()`.
    fn now_param(&self, now: Timestamp) -> Option<i64> {
        self.caller_clock.then(|| micros(now))
    }

    fn instant(&self, us: i64) -> Result<Timestamp> {
        chime_sql::instant(us).map_err(|e| Error::Store { message: format!("{}: {e}", self.shown), transient: false })
    }

    fn decode(&self, row: JobRow) -> Result<Job> {
        let id = row.id.clone();
        row.decode().map_err(|problem| Error::BrokenJob { id, problem })
    }

    /// `add_job` inside the caller's transaction (dropping it rolls back).
    async fn add_in(&self, tx: &mut PgConnection, job: Job, on_conflict: ConflictPolicy) -> Result<Job> {
        let fail = |e| self.err("adding a job", e);
        let (args, trigger, options) = encode(&job)?;
        // Twice at most: a new id that another node inserts between our
        // look and our insert is then seen, and decided as any taken id.
        for _ in 0..2 {
            let existing: Option<JobRow> = sqlx::query_as(concat!(
                "SELECT ",
                chime_sql::job_fields!(),
                " FROM chime_job WHERE id = $1 FOR UPDATE"
            ))
            .bind(job.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(fail)?;
            let new = existing.is_none();
            let version = match (existing, on_conflict) {
                (None, _) => 1,
                (Some(_), ConflictPolicy::Error) => return Err(Error::JobExists(job.id)),
                (Some(row), ConflictPolicy::KeepExisting) => return self.decode(row),
                (Some(row), ConflictPolicy::Replace) => row.version + 1,
            };
            // A new row never overwrites one inserted meanwhile (that is the
            // race above); a replaced row is ours, locked FOR UPDATE.
            let on_taken = if new {
                "DO NOTHING"
            } else {
                "DO UPDATE SET name = excluded.name, task = excluded.task, args = excluded.args, \
                 trigger = excluded.trigger, options = excluded.options, next_run_at = excluded.next_run_at, paused = excluded.paused, \
                 last_run_at = excluded.last_run_at, last_status = excluded.last_status, version = excluded.version, \
                 code_hash = excluded.code_hash, broken = NULL"
            };
            let done = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO chime_job (id, name, task, args, trigger, options, next_run_at, paused, last_run_at, last_status, version, code_hash, broken) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL) ON CONFLICT (id) {on_taken}"
            )))
            .bind(job.id.as_str())
            .bind(job.name.as_deref())
            .bind(&*job.task)
            .bind(&args)
            .bind(&trigger)
            .bind(&options)
            .bind(job.state.next_run_at.map(micros))
            .bind(job.state.paused.as_deref())
            .bind(job.state.last_run_at.map(micros))
            .bind(job.state.last_status.map(RunStatus::as_str))
            .bind(version)
            .bind(job.state.code_hash.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
            if done.rows_affected() == 1 {
                let mut job = job;
                job.state.version = version as u64;
                return Ok(job);
            }
        }
        // Inserted and removed again by others between each look: rare
        // enough to be a conflict the caller may retry.
        Err(Error::JobExists(job.id))
    }

    /// Tells every node (this one included) that something changed.
    async fn notify<'c, E: sqlx::Executor<'c, Database = sqlx::Postgres>>(&self, e: E) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(&self.channel)
            .execute(e)
            .await
            .map_err(|e| self.err("announcing a change", e))?;
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    async fn read_job(&self, id: &JobId) -> Result<Option<JobRow>> {
        sqlx::query_as::<_, JobRow>(concat!("SELECT ", chime_sql::job_fields!(), " FROM chime_job WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err("reading a job", e))
    }
}

pub(crate) fn store_error(shown: &str, op: &str, e: &sqlx::Error) -> Error {
    let code = e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned());
    let transient = match code.as_deref() {
        // serialization failure, deadlock, lock timeout, too many connections, admin shutdown, cannot connect now
        Some("40001" | "40P01" | "55P03" | "53300" | "57P01" | "57P03") => true,
        Some(_) => false,
        None => matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed),
    };
    Error::Store { message: format!("{shown}: {op}: {e}"), transient }
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn add_job(&self, job: Job, on_conflict: ConflictPolicy) -> Result<Job> {
        let fail = |e| self.err("adding a job", e);
        let mut tx = self.begin().await.map_err(fail)?;
        let job = self.add_in(&mut tx, job, on_conflict).await?;
        self.notify(&mut *tx).await?;
        tx.commit().await.map_err(fail)?;
        Ok(job)
    }

    async fn add_jobs(&self, jobs: Vec<Job>, on_conflict: ConflictPolicy) -> Result<Vec<Job>> {
        let fail = |e| self.err("adding jobs", e);
        let mut tx = self.begin().await.map_err(fail)?;
        let mut stored = Vec::with_capacity(jobs.len());
        for job in jobs {
            stored.push(self.add_in(&mut tx, job, on_conflict).await?);
        }
        self.notify(&mut *tx).await?;
        tx.commit().await.map_err(fail)?;
        Ok(stored)
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<Job>> {
        self.read_job(id).await?.map(|row| self.decode(row)).transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let (limit, offset) = chime_sql::listing_page(filter);
        let (sql, texts) = chime_sql::list_jobs_sql(filter, Dialect::Postgres);
        let mut query = sqlx::query_as(AssertSqlSafe(sql));
        for text in texts {
            query = query.bind(text);
        }
        let rows: Vec<JobRow> =
            query.bind(limit).bind(offset).fetch_all(&self.pool).await.map_err(|e| self.err("listing jobs", e))?;
        // A row that does not decode is reported by `broken_jobs`, not here.
        Ok(chime_sql::listed(rows.into_iter().filter_map(|r| r.decode().ok()), filter))
    }

    async fn count_jobs(&self, filter: &JobFilter) -> Result<StatusCounts> {
        if filter.with_alerts {
            // The index's condition only narrows; the exact check decodes.
            return chime_core::count_listed(self, filter).await;
        }
        let sql = chime_sql::count_jobs_sql(filter, Dialect::Postgres);
        chime_sql::fetch_counts(&self.pool, sql).await.map_err(|e| self.err("counting jobs", e))
    }

    async fn count_next_runs(&self, slots: &chime_core::TimeSlots) -> Result<Vec<usize>> {
        chime_sql::fetch_next_runs(&self.pool, slots).await.map_err(|e| self.err("counting the next runs", e))
    }

    async fn job_tasks(&self, limit: usize) -> Result<Vec<String>> {
        chime_sql::fetch_tasks(&self.pool, Dialect::Postgres, limit).await.map_err(|e| self.err("listing tasks", e))
    }

    async fn update_job(&self, job: Job) -> Result<Job> {
        let fail = |e| self.err("updating a job", e);
        let (args, trigger, options) = encode(&job)?;
        let mut tx = self.begin().await.map_err(fail)?;
        let done = sqlx::query(
            "UPDATE chime_job SET name = $1, task = $2, args = $3, trigger = $4, options = $5, next_run_at = $6, paused = $7, \
             code_hash = $8, version = version + 1, broken = NULL WHERE id = $9 AND version = $10",
        )
        .bind(job.name.as_deref())
        .bind(&*job.task)
        .bind(args)
        .bind(trigger)
        .bind(options)
        .bind(job.state.next_run_at.map(micros))
        .bind(job.state.paused.as_deref())
        .bind(job.state.code_hash.as_deref())
        .bind(job.id.as_str())
        .bind(job.state.version as i64)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
        if done.rows_affected() == 0 {
            drop(tx);
            return match self.read_job(&job.id).await? {
                None => Err(Error::JobNotFound(job.id)),
                Some(row) => {
                    Err(Error::VersionConflict { id: job.id, expected: job.state.version, found: row.version as u64 })
                }
            };
        }
        self.notify(&mut *tx).await?;
        tx.commit().await.map_err(fail)?;
        let mut job = job;
        job.state.version += 1;
        Ok(job)
    }

    async fn remove_job(&self, id: &JobId) -> Result<Job> {
        let fail = |e| self.err("removing a job", e);
        let mut tx = self.begin().await.map_err(fail)?;
        let row: Option<JobRow> = sqlx::query_as("DELETE FROM chime_job WHERE id = $1 RETURNING *")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(fail)?;
        let row = row.ok_or_else(|| Error::JobNotFound(id.clone()))?;
        let job = self.decode(row)?;
        self.notify(&mut *tx).await?;
        tx.commit().await.map_err(fail)?;
        Ok(job)
    }

    async fn acquire_due(&self, req: &ClaimRequest<'_>) -> Result<Vec<Claim>> {
        self.claim(req).await
    }

    async fn next_due_at(&self, tasks: &[Arc<str>]) -> Result<Option<Timestamp>> {
        self.next_due(tasks).await
    }

    async fn insert_run(&self, run: Run) -> Result<()> {
        if claim::insert_run(&self.pool, &run).await.map_err(|e| self.err("recording a run", e))? == 0 {
            return Err(Error::RunExists { job_id: run.job_id, scheduled_for: run.scheduled_for });
        }
        Ok(())
    }

    async fn update_run(&self, run: &Run) -> Result<()> {
        self.run_writes.update(run).await
    }

    async fn request_run(&self, id: &JobId, now: Timestamp, lease: Option<&Lease>) -> Result<Run> {
        // A run that just finished must not count as in flight.
        self.run_writes.flush().await?;
        self.request(id, now, lease).await
    }

    async fn request_backfill(&self, id: &JobId, at: Timestamp) -> Result<Option<Run>> {
        // A run that just finished must read as finished.
        self.run_writes.flush().await?;
        self.backfill(id, at).await
    }

    async fn notify_alert(&self, job: &JobId, episode: Timestamp, hook: Run) -> Result<bool> {
        self.notify_alert_once(job, episode, hook).await
    }

    async fn count_running(&self, id: &JobId) -> Result<u32> {
        self.run_writes.flush().await?;
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM chime_run WHERE job_id = $1 AND status IN {IN_FLIGHT}"
        )))
        .bind(id.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err("counting running runs", e))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn register_node(&self, node: &NodeRegistration, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        self.register(node, ttl, now).await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        self.renew(lease, ttl, now).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.release(lease).await
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.run_writes.flush().await?;
        self.list_nodes().await
    }

    async fn sweep(&self, now: Timestamp) -> Result<Vec<SweptRun>> {
        // Decide on the runs as this store last wrote them (a start still
        // queued would be taken for "waiting to start").
        self.run_writes.flush().await?;
        self.sweep_expired(now).await
    }

    async fn history(&self, query: &RunQuery) -> Result<Vec<Run>> {
        // Reads see this store's own writes.
        self.run_writes.flush().await?;
        let mut q = sqlx::query_as::<_, RunRow>(AssertSqlSafe(history_sql(query)));
        if let Some(id) = &query.job_id {
            q = q.bind(id.as_str().to_owned());
        }
        if !query.statuses.is_empty() {
            q = q.bind(query.statuses.iter().map(|s| s.as_str().to_owned()).collect::<Vec<String>>());
        }
        if let Some(t) = query.since {
            q = q.bind(micros(t));
        }
        if let Some(t) = query.until {
            q = q.bind(micros(t));
        }
        let rows = q
            .bind(query.limit().min(i64::MAX as usize) as i64)
            .bind(query.offset.min(i64::MAX as usize) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("reading run history", e))?;
        rows.into_iter()
            .map(|r| {
                let id = r.id.clone();
                r.decode().map_err(|problem| Error::Store {
                    message: format!("{}: run {id} does not decode: {problem}", self.shown),
                    transient: false,
                })
            })
            .collect()
    }

    async fn job_stats(&self, id: &JobId) -> Result<JobStats> {
        let runs = self
            .history(&RunQuery { job_id: Some(id.clone()), limit: Some(i64::MAX as usize), ..RunQuery::default() })
            .await?;
        if runs.is_empty() && self.read_job(id).await?.is_none() {
            return Err(Error::JobNotFound(id.clone()));
        }
        Ok(JobStats::from_runs(&runs))
    }

    async fn recent_stats(&self, newest: usize) -> Result<(JobStats, usize)> {
        self.run_writes.flush().await?;
        let json: String = sqlx::query_scalar(AssertSqlSafe(format!("SELECT COALESCE(json_agg(json_build_array(id, status, scheduled_for, started_at, finished_at)), '[]')::text FROM ({}$1) newest", chime_sql::NEWEST_RUN_TIMES)))
            .bind(newest.min(i64::MAX as usize) as i64)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err("reading the newest runs", e))?;
        chime_sql::recent_stats(&json, &self.shown)
    }

    async fn prune(&self, keep_per_job: usize, older_than: Option<Timestamp>) -> Result<u64> {
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM chime_run WHERE status NOT IN {IN_FLIGHT} AND (scheduled_for < $1 OR id IN ( \
                 SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY job_id ORDER BY scheduled_for DESC) AS n \
                                 FROM chime_run WHERE status NOT IN {IN_FLIGHT}) ranked WHERE n > $2))"
        )))
        .bind(older_than.map_or(i64::MIN, micros))
        .bind(keep_per_job.min(i64::MAX as usize) as i64)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err("pruning run history", e))?;
        Ok(done.rows_affected())
    }

    async fn prune_jobs(&self, jobs: &[JobId], keep_per_job: usize) -> Result<u64> {
        let ids: Vec<&str> = jobs.iter().map(JobId::as_str).collect();
        // Ranked per job through `chime_run_job_time`: only the listed jobs' runs are read.
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM chime_run WHERE id IN ( \
                 SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY job_id ORDER BY scheduled_for DESC) AS n \
                                 FROM chime_run WHERE job_id = ANY($1) AND status NOT IN {IN_FLIGHT}) ranked \
                 WHERE n > $2)"
        )))
        .bind(&ids)
        .bind(keep_per_job.min(i64::MAX as usize) as i64)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err("trimming run history", e))?;
        Ok(done.rows_affected())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    async fn job_counts(&self) -> Result<chime_core::JobCounts> {
        let row = sqlx::query_as(chime_sql::JOB_COUNTS).fetch_one(&self.pool).await;
        Ok(chime_sql::job_counts(row.map_err(|e| self.err("counting jobs", e))?))
    }

    async fn broken_jobs(&self) -> Result<Vec<BrokenJob>> {
        let rows: Vec<JobRow> =
            sqlx::query_as(concat!("SELECT ", chime_sql::job_fields!(), " FROM chime_job ORDER BY id"))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("listing jobs", e))?;
        let mut broken = Vec::new();
        for row in rows {
            let (id, marked, version) = (row.id.clone(), row.broken.is_some(), row.version);
            if let Err(problem) = row.decode() {
                if !marked {
                    // So that `marked_broken` lists it from now on; not if
                    // the job was written since it was read here.
                    sqlx::query("UPDATE chime_job SET broken = $1 WHERE id = $2 AND broken IS NULL AND version = $3")
                        .bind(&problem)
                        .bind(&id)
                        .bind(version)
                        .execute(&self.pool)
                        .await
                        .map_err(|e| self.err("marking a job broken", e))?;
                }
                broken.push(BrokenJob { id, problem });
            }
        }
        Ok(broken)
    }

    async fn marked_broken(&self) -> Result<Vec<BrokenJob>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, broken FROM chime_job WHERE broken IS NOT NULL ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("listing broken jobs", e))?;
        Ok(rows.into_iter().map(|(id, problem)| BrokenJob { id, problem }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_schema_parameter_and_password() {
        assert_eq!(split_schema("postgres://h/db?schema=s1"), ("postgres://h/db".into(), Some("s1".into())));
        assert_eq!(
            split_schema("postgres://h/db?sslmode=require&schema=s1&x=1"),
            ("postgres://h/db?sslmode=require&x=1".into(), Some("s1".into()))
        );
        assert_eq!(split_schema("postgres://h/db"), ("postgres://h/db".into(), None));
        assert_eq!(without_password("postgres://u:hunter2@h:5432/db"), "postgres://u@h:5432/db");
        assert_eq!(without_password("postgres://u:hun@ter2@h/db?schema=s"), "postgres://u@h/db?schema=s");
        assert_eq!(without_password("postgresql://:hunter2@h/db"), "postgresql://@h/db");
        assert_eq!(
            without_password("postgres://u@h/db?sslmode=require&password=hunter2"),
            "postgres://u@h/db?sslmode=require&password=redacted"
        );
        for unchanged in ["postgres://h/db", "postgres://u@h/db?schema=s", "sqlite://chime.db", "memory:", "a@b.db"] {
            assert_eq!(without_password(unchanged), unchanged);
        }
        assert!(valid_schema("chime") && valid_schema("_t1"));
        // Its channel, chime_ and the schema, is PostgreSQL's longest name.
        assert!(valid_schema(&"a".repeat(MAX_SCHEMA_LEN)));
        assert_eq!(CHANNEL_PREFIX.len() + MAX_SCHEMA_LEN, 63);
        for bad in ["", "Chime", "1x", "a-b", "a\"; DROP TABLE x; --", &"a".repeat(MAX_SCHEMA_LEN + 1), &"a".repeat(64)]
        {
            assert!(!valid_schema(bad), "{bad:?}");
        }
        assert_eq!(first_in_search_path("\"my \"\"s\"\", public"), "my \"s\"");
        assert_eq!(first_in_search_path("chime_x"), "chime_x");
        assert_eq!(first_in_search_path("\"$user\", public"), "$user");
    }
}

#[cfg(test)]
pub(crate) mod plan_tests {
    use chime_testkit::pg::{self, DropSchema};

    use crate::PostgresStore;

    /// A store in a schema of its own, dropped with the guard.
    pub(crate) async fn plan_store() -> (DropSchema, PostgresStore) {
        let url = pg::database_url();
        let schema = pg::unique_schema("chime_plan");
        let cleanup = DropSchema::new(&url, &schema);
        (cleanup, PostgresStore::connect(&pg::with_schema(&url, &schema)).await.unwrap())
    }

    /// `job_counts` (every `/metrics` scrape) was a sequential scan of every
    /// job row; each state's count now reads its own partial index. A pause
    /// reason of 9,600 characters that do not compress is no index entry
    /// (an index row is limited to 8,191 bytes): the indexes hold ids.
    #[tokio::test]
    #[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
    async fn job_counts_read_each_state_from_its_own_index() {
        let (_cleanup, store) = plan_store().await;
        let pool = store.pool();
        sqlx::query(
            "INSERT INTO chime_job (id, task, args, trigger, options, next_run_at, paused, version) \
             SELECT 'job-' || g, 't', 'null', '{}', '{}', 1000, CASE WHEN g % 1000 = 0 THEN \
               (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 300) i) END, 1 \
             FROM generate_series(1, 20000) g",
        )
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE chime_job").execute(pool).await.unwrap();
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {}", chime_sql::JOB_COUNTS)))
            .fetch_all(pool)
            .await
            .unwrap();
        let plan = plan.join("\n");
        for index in ["chime_job_broken", "chime_job_paused", "chime_job_finished"] {
            assert!(plan.contains(index), "{index}:\n{plan}");
        }
        assert!(plan.matches("Seq Scan").count() <= 1, "only the total may read every row:\n{plan}");
        let counts = sqlx::query_as(chime_sql::JOB_COUNTS).fetch_one(pool).await.unwrap();
        assert_eq!(chime_sql::job_counts(counts).paused, 20);
    }

    /// The alert checks (every minute) read every job before; the newest
    /// runs of one second were sorted whole.
    #[tokio::test]
    #[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
    async fn alerting_jobs_and_the_newest_runs_come_from_their_indexes() {
        let (_cleanup, store) = plan_store().await;
        let pool = store.pool();
        sqlx::query(
            "INSERT INTO chime_job (id, task, args, trigger, options, next_run_at, version) \
             SELECT 'job-' || g, 't', 'null', '{}', \
                    CASE WHEN g % 1000 = 0 THEN '{\"alert_after\":\"1h\"}' ELSE '{}' END, 1000, 1 \
             FROM generate_series(1, 20000) g",
        )
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO chime_run (id, job_id, scheduled_for, kind, status, attempt) \
             SELECT 'run-' || g, 'job-' || g, 1000, 'scheduled', 'succeeded', 1 FROM generate_series(1, 20000) g",
        )
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE").execute(pool).await.unwrap();
        let explain = |sql: String| async move {
            let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                .bind(100_i64)
                .bind(0_i64)
                .fetch_all(pool)
                .await
                .unwrap();
            plan.join("\n")
        };
        let filter = chime_core::JobFilter { with_alerts: true, ..chime_core::JobFilter::default() };
        let plan = explain(chime_sql::list_jobs_sql(&filter, chime_sql::Dialect::Postgres).0).await;
        assert!(plan.contains("chime_job_alerting") && !plan.contains("Seq Scan"), "{plan}");
        let newest = format!("{}$1 OFFSET $2", chime_sql::NEWEST_RUN_TIMES);
        let plan = explain(newest).await;
        assert!(plan.contains("chime_run_time") && !plan.contains("Sort"), "{plan}");
        // The runs in flight (each poll of the dashboard's job list): their
        // own index, not the newest first filtered down (SQLite needed its
        // index named for this; PostgreSQL finds it from the statuses).
        use chime_core::{RunQuery, RunStatus};
        let in_flight = RunQuery { statuses: vec![RunStatus::Pending, RunStatus::Running], ..RunQuery::default() };
        let plan: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {}", super::history_sql(&in_flight))))
                .bind(vec!["pending".to_owned(), "running".to_owned()])
                .bind(100_i64)
                .bind(0_i64)
                .fetch_all(pool)
                .await
                .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("chime_run_in_flight") && !plan.contains("chime_run_time"), "{plan}");
    }
}
