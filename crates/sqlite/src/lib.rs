//! A chime `JobStore` on SQLite: jobs and run history in one file that
//! survives restarts and crashes, shared by the processes of one host (the
//! server and the `chime` CLI).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use chime_core::Scheduler;
//! use chime_sqlite::SqliteStore;
//!
//! let store = SqliteStore::open("chime.db").await?;
//! let scheduler = Scheduler::builder().store(store).build();
//! # Ok(())
//! # }
//! ```
//!
//! # Overview
//!
//! * One file in WAL mode with a 5 s busy timeout; `sqlite::memory:` for a
//!   private in-memory database (tests).
//! * Migrations (`migrations/*.sql`) are embedded and run at open. A database
//!   written by a newer chime is refused with an error that says so, rather
//!   than migrated or misread.
//! * Instants are integer microseconds since the Unix epoch; triggers,
//!   arguments and options are JSON text in chime-core's serde shapes.
//! * Claims run in one `BEGIN IMMEDIATE` transaction per batch: the due jobs
//!   are read, [`chime_core::plan_fire`] decides each, and the new next fire
//!   times and the run rows are written together. A run is unique on
//!   (job, scheduled time), so no scheduled time fires twice.
//! * A change made by another process is noticed within 200 ms
//!   (`PRAGMA data_version`, polled on a dedicated connection).
//! * A row whose trigger, arguments or options no longer decode is marked
//!   broken, kept, reported by `broken_jobs`, and never claimed.
//!
//! Errors name the file and the operation: "chime.db: opening the database:
//! file is not a database". Busy and locked databases are transient errors.
//!
//! # Crate features
//!
//! None. SQLite itself is bundled (compiled from source by `libsqlite3-sys`).

mod claim;
mod nodes;
mod rows;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chime_core::{
    BrokenJob, Claim, ClaimRequest, ConflictPolicy, Error, Job, JobFilter, JobId, JobStats, JobStore, Lease, NodeInfo,
    NodeRegistration, Result, Run, RunQuery, RunStatus, StatusCounts, SweptRun,
};
use jiff::{SignedDuration, Timestamp};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row, SqliteConnection};
use tokio::sync::watch;

use crate::rows::{IN_FLIGHT, JobRow, RunRow, encode, micros};
use crate::writer::SqliteBatch;
use chime_sql::Dialect;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Rows one multi-row statement of the claim or the run writer carries: a
/// claim's batch in one statement each (a statement is a round trip to
/// sqlx's worker thread). 256 rows of a run's 14 columns are 3,584
/// parameters, far under SQLite's limit of 32,766.
pub(crate) const ROWS_PER_STATEMENT: usize = 256;

/// How often another process's changes are looked for.
const CHANGE_POLL: Duration = Duration::from_millis(200);

/// Jobs and run history in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    /// Reads, and the odd single-statement write.
    pool: SqlitePool,
    /// The one connection the hot writes of this process go through
    /// (claims, run history and its trim, run-now, nodes): they queue for it here
    /// rather than in SQLite's busy handler, which sleeps a millisecond and
    /// more each time it finds the file locked. Its `data_version` changes
    /// only when another connection commits, which is what the change poll
    /// watches for. For `:memory:` it is `pool` (one connection).
    writes: SqlitePool,
    /// The file (or `sqlite::memory:`), for error messages.
    location: String,
    changes: Arc<watch::Sender<u64>>,
    poller: Option<tokio::task::JoinHandle<()>>,
    /// Run updates go to one writer task, which commits whatever has queued
    /// up in one transaction (group commit): a burst of runs costs a few
    /// transactions, not two per run.
    run_writes: chime_sql::writer::RunWriter,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(p) = &self.poller {
            p.abort();
        }
        // The writer is not aborted: with the store's sender gone, it writes
        // what is still queued and then stops.
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `location`: a path such as
    /// `chime.db`, a URL such as `sqlite://chime.db`, or `sqlite::memory:`.
    /// Runs the embedded migrations.
    ///
    /// # Errors
    ///
    /// An error naming the file when it cannot be opened or created, is not a
    /// SQLite database, is read-only and needs migrating, or was written by a
    /// newer chime.
    pub async fn open(location: &str) -> Result<SqliteStore> {
        SqliteStore::open_with_busy_timeout(location, Duration::from_secs(5)).await
    }

    /// [`open`](SqliteStore::open) with how long a write waits for another
    /// process's lock before failing with a transient "busy" error (default 5 s).
    ///
    /// # Errors
    ///
    /// As for `open`.
    pub async fn open_with_busy_timeout(location: &str, busy_timeout: Duration) -> Result<SqliteStore> {
        let memory = location.contains(":memory:");
        let shown = location
            .strip_prefix("sqlite://")
            .or_else(|| location.strip_prefix("sqlite:"))
            .unwrap_or(location)
            .to_owned();
        let fail = |op: &str, e: sqlx::Error| store_error(&shown, op, &e);
        let options = if location.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(location).map_err(|e| fail("reading the database URL", e))?
        } else {
            SqliteConnectOptions::new().filename(location)
        };
        let options = options
            .create_if_missing(true)
            .busy_timeout(busy_timeout)
            .synchronous(SqliteSynchronous::Normal)
            // The claim and the writer write up to 256 rows a statement, a
            // statement text per row count: sqlx's default cache of 100
            // prepared statements evicted them in turn, re-preparing each.
            .statement_cache_capacity(1024)
            .journal_mode(if memory { SqliteJournalMode::Memory } else { SqliteJournalMode::Wal });
        let pool_options = SqlitePoolOptions::new()
            // An in-memory database exists per connection: keep exactly one.
            .max_connections(if memory { 1 } else { 4 })
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory { None } else { Some(Duration::from_secs(600)) })
            .max_lifetime(if memory { None } else { Some(Duration::from_secs(3600)) });
        // Switching a new file to WAL takes a lock that SQLite does not wait
        // for: processes opening a new file at once see "busy" and try again.
        let connect = || async {
            let mut attempt = 0;
            loop {
                match pool_options.clone().connect_with(options.clone()).await {
                    Ok(pool) => return Ok(pool),
                    Err(e) if attempt < 10 && store_error(&shown, "opening the database", &e).is_transient() => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                    }
                    Err(e) => return Err(fail("opening the database", e)),
                }
            }
        };
        let pool = connect().await?;

        check_schema_version(&pool, &shown).await?;
        // Two processes opening a new file at once (a server and a CLI) both
        // try to migrate it; SQLite's migrator takes no lock, so the loser
        // fails on a table or column the winner just created. Trying again
        // finds those migrations applied; with several migrations and
        // several processes a loser may lose more than once, so it tries
        // for a few seconds.
        let mut attempt = 0;
        loop {
            match MIGRATOR.run(&pool).await {
                Ok(()) => break,
                Err(_) if attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis((50 * attempt).min(400))).await;
                }
                Err(sqlx::migrate::MigrateError::Execute(e)) => return Err(fail("migrating the database", e)),
                Err(other) => {
                    return Err(Error::Store {
                        message: format!("{shown}: migrating the database: {other}"),
                        transient: false,
                    });
                }
            }
        }
        // A connection that read the schema while another process was still
        // migrating the file keeps that schema, and prepares with it: sqlx
        // takes a `SELECT *`'s columns from that stale prepare, SQLite
        // re-prepares at the first step with the new column, and sqlx's
        // worker panics on a row wider than its columns ("index out of
        // bounds: the len is 13 but the index is 13"). Connections opened
        // now, with every migration applied, read the schema as it is.
        let pool = if memory {
            pool
        } else {
            pool.close().await;
            connect().await?
        };

        let writes = if memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options.clone())
                .await
                .map_err(|e| fail("opening the write connection", e))?
        };

        let changes = Arc::new(watch::Sender::new(0u64));
        let poller = if memory {
            None
        } else {
            // Polled on the write connection: this process's own claims and
            // run writes do not change it, so they do not wake the loop.
            let writes = writes.clone();
            let changes = Arc::clone(&changes);
            Some(tokio::spawn(async move {
                let mut last: Option<i64> = None;
                loop {
                    if let Ok(row) = sqlx::query("PRAGMA data_version").fetch_one(&writes).await {
                        let version: i64 = row.get(0);
                        if last.is_some_and(|l| l != version) {
                            changes.send_modify(|n| *n += 1);
                        }
                        last = Some(version);
                    }
                    tokio::time::sleep(CHANGE_POLL).await;
                }
            }))
        };
        let run_writes = chime_sql::writer::RunWriter::spawn(
            SqliteBatch { pool: writes.clone(), location: shown.clone() },
            shown.clone(),
        );
        tracing::info!(database = %shown, "sqlite store open");
        Ok(SqliteStore { pool, writes, location: shown, changes, poller, run_writes })
    }

    /// The file this store uses.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn err(&self, op: &str, e: sqlx::Error) -> Error {
        store_error(&self.location, op, &e)
    }

    /// `add_job` inside the caller's write transaction (dropping it rolls back).
    async fn add_in(&self, tx: &mut SqliteConnection, job: Job, on_conflict: ConflictPolicy) -> Result<Job> {
        let (args, trigger, options) = encode(&job)?;
        let existing: Option<JobRow> =
            sqlx::query_as(concat!("SELECT ", chime_sql::job_fields!(), " FROM chime_job WHERE id = ?"))
                .bind(job.id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err("adding a job", e))?;
        let version = match (existing, on_conflict) {
            (None, _) => 1,
            (Some(_), ConflictPolicy::Error) => return Err(Error::JobExists(job.id)),
            (Some(row), ConflictPolicy::KeepExisting) => return self.decode(row),
            (Some(row), ConflictPolicy::Replace) => row.version + 1,
        };
        sqlx::query(
            "INSERT INTO chime_job (id, name, task, args, trigger, options, next_run_at, paused, last_run_at, last_status, version, code_hash, broken) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, task = excluded.task, args = excluded.args, \
             trigger = excluded.trigger, options = excluded.options, next_run_at = excluded.next_run_at, paused = excluded.paused, \
             last_run_at = excluded.last_run_at, last_status = excluded.last_status, version = excluded.version, \
             code_hash = excluded.code_hash, broken = NULL",
        )
        .bind(job.id.as_str())
        .bind(job.name.as_deref())
        .bind(&*job.task)
        .bind(args)
        .bind(trigger)
        .bind(options)
        .bind(job.state.next_run_at.map(micros))
        .bind(job.state.paused.as_deref())
        .bind(job.state.last_run_at.map(micros))
        .bind(job.state.last_status.map(RunStatus::as_str))
        .bind(version)
        .bind(job.state.code_hash.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err("adding a job", e))?;
        let mut job = job;
        job.state.version = version as u64;
        Ok(job)
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Waits until every run update queued so far is committed, so that
    /// reads of run history see this store's own writes.
    async fn flush_runs(&self) -> Result<()> {
        self.run_writes.flush().await
    }

    fn instant(&self, us: i64) -> Result<Timestamp> {
        rows::instant(us).map_err(|e| Error::Store { message: format!("{}: {e}", self.location), transient: false })
    }

    async fn read_job(&self, id: &JobId) -> Result<Option<JobRow>> {
        sqlx::query_as::<_, JobRow>(concat!("SELECT ", chime_sql::job_fields!(), " FROM chime_job WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err("reading a job", e))
    }

    fn decode(&self, row: JobRow) -> Result<Job> {
        let id = row.id.clone();
        row.decode().map_err(|problem| Error::BrokenJob { id, problem })
    }
}

/// Refuses a database that a newer chime has migrated past this build.
async fn check_schema_version(pool: &SqlitePool, display: &str) -> Result<()> {
    let has_table: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            .fetch_optional(pool)
            .await
            .map_err(|e| store_error(display, "reading the schema version", &e))?;
    if has_table.is_none() {
        return Ok(());
    }
    let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .map_err(|e| store_error(display, "reading the schema version", &e))?;
    let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    match found {
        Some(found) if found > known => Err(Error::Store {
            message: format!(
                "{display}: the database was written by a newer chime (schema version {found}; this chime knows up to {known}): upgrade chime, or use another file"
            ),
            transient: false,
        }),
        _ => Ok(()),
    }
}

pub(crate) fn store_error(location: &str, op: &str, e: &sqlx::Error) -> Error {
    let code = e.as_database_error().and_then(|d| d.code()).and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
    let (what, transient) = match code {
        Some(5) => ("the database is busy (locked by another process)".to_owned(), true),
        Some(6) => ("a table is locked".to_owned(), true),
        Some(8) => ("the database is read-only".to_owned(), false),
        Some(10) => (format!("disk I/O error: {e}"), false),
        Some(11) => ("the database file is corrupt".to_owned(), false),
        Some(13) => ("the disk is full".to_owned(), false),
        Some(14) => ("the database file cannot be opened".to_owned(), false),
        Some(26) => ("the file is not a SQLite database".to_owned(), false),
        _ => (e.to_string(), matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))),
    };
    Error::Store { message: format!("{location}: {op}: {what}"), transient }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn add_job(&self, job: Job, on_conflict: ConflictPolicy) -> Result<Job> {
        // On the pool, not the write connection: adds there took 1.9 s for
        // 20,000 jobs against 1.1 s here (each statement slower on a pool of
        // one connection, for a reason not found), and they are not the claim's hot path.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(|e| self.err("adding a job", e))?;
        let job = self.add_in(&mut tx, job, on_conflict).await?;
        tx.commit().await.map_err(|e| self.err("adding a job", e))?;
        self.changed();
        Ok(job)
    }

    async fn add_jobs(&self, jobs: Vec<Job>, on_conflict: ConflictPolicy) -> Result<Vec<Job>> {
        // On the pool, not the write connection: adds there took 1.9 s for
        // 20,000 jobs against 1.1 s here (each statement slower on a pool of
        // one connection, for a reason not found), and they are not the claim's hot path.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(|e| self.err("adding jobs", e))?;
        let mut stored = Vec::with_capacity(jobs.len());
        for job in jobs {
            stored.push(self.add_in(&mut tx, job, on_conflict).await?);
        }
        tx.commit().await.map_err(|e| self.err("adding jobs", e))?;
        self.changed();
        Ok(stored)
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<Job>> {
        self.read_job(id).await?.map(|row| self.decode(row)).transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let (limit, offset) = chime_sql::listing_page(filter);
        let (sql, texts) = chime_sql::list_jobs_sql(filter, Dialect::Sqlite);
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
        let sql = chime_sql::count_jobs_sql(filter, Dialect::Sqlite);
        chime_sql::fetch_counts(&self.pool, sql).await.map_err(|e| self.err("counting jobs", e))
    }

    async fn count_next_runs(&self, slots: &chime_core::TimeSlots) -> Result<Vec<usize>> {
        chime_sql::fetch_next_runs(&self.pool, slots).await.map_err(|e| self.err("counting the next runs", e))
    }

    async fn job_tasks(&self, limit: usize) -> Result<Vec<String>> {
        chime_sql::fetch_tasks(&self.pool, Dialect::Sqlite, limit).await.map_err(|e| self.err("listing tasks", e))
    }

    async fn update_job(&self, job: Job) -> Result<Job> {
        let (args, trigger, options) = encode(&job)?;
        let done = sqlx::query(
            "UPDATE chime_job SET name = ?, task = ?, args = ?, trigger = ?, options = ?, next_run_at = ?, paused = ?, \
             code_hash = ?, version = version + 1, broken = NULL WHERE id = ? AND version = ?",
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
        .execute(&self.pool)
        .await
        .map_err(|e| self.err("updating a job", e))?;
        if done.rows_affected() == 0 {
            return match self.read_job(&job.id).await? {
                None => Err(Error::JobNotFound(job.id)),
                Some(row) => {
                    Err(Error::VersionConflict { id: job.id, expected: job.state.version, found: row.version as u64 })
                }
            };
        }
        self.changed();
        let mut job = job;
        job.state.version += 1;
        Ok(job)
    }

    async fn remove_job(&self, id: &JobId) -> Result<Job> {
        let row = self.read_job(id).await?.ok_or_else(|| Error::JobNotFound(id.clone()))?;
        let job = self.decode(row)?;
        sqlx::query("DELETE FROM chime_job WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| self.err("removing a job", e))?;
        self.changed();
        Ok(job)
    }

    async fn acquire_due(&self, req: &ClaimRequest<'_>) -> Result<Vec<Claim>> {
        self.claim(req).await
    }

    /// A claim is a handful of statements whose cost hardly depends on how
    /// many jobs they take, so SQLite drains a herd in fewer, larger batches:
    /// w3 at 20,000 jobs a second ran 187,000 of 200,000 runs on time at
    /// 256, against 150,000 at 64 (PostgreSQL, where a claim's rows cross a
    /// socket, keeps 64).
    fn claim_batch(&self) -> usize {
        256
    }

    async fn next_due_at(&self, tasks: &[Arc<str>]) -> Result<Option<Timestamp>> {
        self.next_due(tasks).await
    }

    async fn insert_run(&self, run: Run) -> Result<()> {
        if rows::insert_run(&self.pool, &run).await.map_err(|e| self.err("recording a run", e))? == 0 {
            return Err(Error::RunExists { job_id: run.job_id, scheduled_for: run.scheduled_for });
        }
        Ok(())
    }

    /// Queues the update for the group-commit writer and waits for its
    /// transaction, so a fenced-out start is reported too. The executor does
    /// not hold a task back for its start's write (a crash before that write
    /// leaves the run `pending` rather than `running`; the sweeper decides it
    /// either way).
    async fn update_run(&self, run: &Run) -> Result<()> {
        self.run_writes.update(run).await
    }

    async fn request_run(&self, id: &JobId, now: Timestamp, lease: Option<&Lease>) -> Result<Run> {
        self.request(id, now, lease).await
    }

    async fn request_backfill(&self, id: &JobId, at: Timestamp) -> Result<Option<Run>> {
        self.backfill(id, at).await
    }

    async fn notify_alert(&self, job: &JobId, episode: Timestamp, hook: Run) -> Result<bool> {
        self.notify(job, episode, hook).await
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
        self.list_nodes().await
    }

    async fn sweep(&self, now: Timestamp) -> Result<Vec<SweptRun>> {
        // Decide on the runs as this store last wrote them (a start still
        // queued would be taken for "waiting to start").
        self.flush_runs().await?;
        self.sweep_expired(now).await
    }

    async fn count_running(&self, id: &JobId) -> Result<u32> {
        self.flush_runs().await?;
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM chime_run WHERE job_id = ? AND status IN {IN_FLIGHT}"
        )))
        .bind(id.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err("counting running runs", e))?;
        Ok(n as u32)
    }

    async fn history(&self, query: &RunQuery) -> Result<Vec<Run>> {
        self.flush_runs().await?;
        let mut q = sqlx::query_as::<_, RunRow>(AssertSqlSafe(history_sql(query)));
        if let Some(id) = &query.job_id {
            q = q.bind(id.as_str());
        }
        for s in &query.statuses {
            q = q.bind(s.as_str());
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
                    message: format!("{}: run {id} does not decode: {problem}", self.location),
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
        self.flush_runs().await?;
        let json: String = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT json_group_array(json_array(id, status, scheduled_for, started_at, finished_at)) FROM ({}?)",
            chime_sql::NEWEST_RUN_TIMES
        )))
        .bind(newest.min(i64::MAX as usize) as i64)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err("reading the newest runs", e))?;
        chime_sql::recent_stats(&json, &self.location)
    }

    async fn prune(&self, keep_per_job: usize, older_than: Option<Timestamp>) -> Result<u64> {
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM chime_run WHERE status NOT IN {IN_FLIGHT} AND (scheduled_for < ? OR id IN ( \
                 SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY job_id ORDER BY scheduled_for DESC) AS n \
                                 FROM chime_run WHERE status NOT IN {IN_FLIGHT}) WHERE n > ?))"
        )))
        .bind(older_than.map_or(i64::MIN, micros))
        .bind(keep_per_job as i64)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err("pruning run history", e))?;
        Ok(done.rows_affected())
    }

    async fn prune_jobs(&self, jobs: &[JobId], keep_per_job: usize) -> Result<u64> {
        let ids =
            serde_json::to_string(&jobs.iter().map(JobId::as_str).collect::<Vec<_>>()).expect("strings serialize");
        // Ranked per job through `chime_run_job_time`: only the listed jobs' runs are read.
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM chime_run WHERE id IN ( \
                 SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY job_id ORDER BY scheduled_for DESC) AS n \
                                 FROM chime_run WHERE job_id IN (SELECT value FROM json_each(?)) \
                                 AND status NOT IN {IN_FLIGHT}) WHERE n > ?)"
        )))
        .bind(ids)
        .bind(keep_per_job.min(i64::MAX as usize) as i64)
        // On the write connection, queued with the claims rather than
        // meeting them in the busy handler.
        .execute(&self.writes)
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
        // Guarded: one value of the wrong type (a blob put there by hand)
        // failed this whole read, and with it the dashboard's job list.
        let rows: Vec<claim::GuardedColumns> = sqlx::query_as(claim::EVERY_JOB_GUARDED)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("listing jobs", e))?;
        let mut broken = Vec::new();
        for (version, row) in rows.into_iter().map(|r| (r.10, claim::guarded_row(r))) {
            let id = row.id.clone();
            if let Err(problem) = row.decode() {
                // Marked already or not (a mistyped row reads as broken
                // either way): the update leaves a marked row alone.
                self.mark_broken(&id, &problem, version).await?;
                broken.push(BrokenJob { id, problem });
            }
        }
        Ok(broken)
    }

    async fn marked_broken(&self) -> Result<Vec<BrokenJob>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT CAST(id AS TEXT), broken FROM chime_job WHERE broken IS NOT NULL ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("listing broken jobs", e))?;
        Ok(rows.into_iter().map(|(id, problem)| BrokenJob { id, problem }).collect())
    }
}

impl SqliteStore {
    /// Marks the row of `id` broken with `problem`, unless it was marked or
    /// written since it was read at `version` (none: its version was not
    /// an integer), or is gone: a job replaced meanwhile is not marked.
    async fn mark_broken(&self, id: &str, problem: &str, version: Option<i64>) -> Result<()> {
        // By the primary key: the id as text, else as the blob it was read
        // from (a row edited by hand).
        for sql in [
            "UPDATE chime_job SET broken = ?1 WHERE id = ?2 AND broken IS NULL \
             AND (version = ?3 OR (?3 IS NULL AND typeof(version) != 'integer'))",
            "UPDATE chime_job SET broken = ?1 WHERE id = CAST(?2 AS BLOB) AND broken IS NULL \
             AND (version = ?3 OR (?3 IS NULL AND typeof(version) != 'integer'))",
        ] {
            let done = sqlx::query(sql)
                .bind(problem)
                .bind(id)
                .bind(version)
                .execute(&self.writes)
                .await
                .map_err(|e| self.err("marking a job broken", e))?;
            if done.rows_affected() > 0 {
                break;
            }
        }
        Ok(())
    }
}

/// Whether a history query asks only for runs in flight (pending or
/// running), which are read through the in-flight runs' partial index.
fn in_flight_only(query: &RunQuery) -> bool {
    !query.statuses.is_empty() && query.statuses.iter().all(|s| !s.is_finished())
}

/// The statement [`JobStore::history`] runs for `query`: its filters as
/// placeholders, bound in the order they appear here, then limit and offset.
fn history_sql(query: &RunQuery) -> String {
    let mut sql = String::from(concat!("SELECT ", chime_sql::run_fields!(), " FROM chime_run"));
    if in_flight_only(query) {
        // Runs in flight are few, but SQLite walks the time index for the
        // order and filters (7 s over 10,000,000 runs, on every poll of the
        // dashboard's job list): their own index, named, and its condition
        // word for word, then a sort of the few it finds.
        sql.push_str(&format!(" INDEXED BY chime_run_in_flight WHERE status IN {}", IN_FLIGHT));
    } else {
        sql.push_str(" WHERE 1 = 1");
    }
    if query.job_id.is_some() {
        sql.push_str(" AND job_id = ?");
    }
    if !query.statuses.is_empty() {
        sql.push_str(&format!(" AND status IN ({})", vec!["?"; query.statuses.len()].join(", ")));
    }
    if query.since.is_some() {
        sql.push_str(" AND scheduled_for >= ?");
    }
    if query.until.is_some() {
        sql.push_str(" AND scheduled_for < ?");
    }
    sql.push_str(" ORDER BY scheduled_for DESC, id DESC LIMIT ? OFFSET ?");
    sql
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    async fn plan(store: &SqliteStore, sql: &str, binds: &[i64]) -> Vec<String> {
        let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
        for b in binds {
            q = q.bind(*b);
        }
        q.fetch_all(&store.pool).await.unwrap().into_iter().map(|(_, _, _, step)| step).collect()
    }

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("plan.db").display())).await.unwrap();
        (dir, store)
    }

    /// One pass over every job row took 200 ms at 1,000,000 jobs, on every
    /// `/metrics` scrape.
    #[tokio::test]
    async fn job_counts_read_indexes_not_job_rows() {
        let (_dir, store) = store().await;
        let steps = plan(&store, chime_sql::JOB_COUNTS, &[]).await;
        for index in ["chime_job_broken", "chime_job_paused", "chime_job_finished"] {
            assert!(steps.iter().any(|s| s.contains(&format!("COVERING INDEX {index}"))), "{index}: {steps:?}");
        }
        let rows_read = steps.iter().filter(|s| s.contains("chime_job") && !s.contains("COVERING INDEX"));
        assert_eq!(rows_read.count(), 0, "{steps:?}");
    }

    /// The dashboard's chips read every job row before: without a search,
    /// each state is counted through its index, and no job row is read.
    #[tokio::test]
    async fn the_chips_are_counted_through_indexes() {
        let (_dir, store) = store().await;
        let steps = plan(&store, &chime_sql::count_jobs_sql(&JobFilter::default(), Dialect::Sqlite).0, &[]).await;
        for index in ["chime_job_broken", "chime_job_paused", "chime_job_finished", "chime_job_failing"] {
            assert!(steps.iter().any(|s| s.contains(&format!("COVERING INDEX {index}"))), "{index}: {steps:?}");
        }
        // Running: the in-flight runs' index, then each such job's row by id.
        assert!(steps.iter().any(|s| s.contains("chime_run_in_flight")), "{steps:?}");
        let by_id = |s: &String| s.starts_with("SEARCH chime_job") && s.ends_with("(id=?)");
        let rows_read = steps.iter().filter(|s| s.contains("chime_job") && !s.contains("COVERING INDEX") && !by_id(s));
        assert_eq!(rows_read.count(), 0, "{steps:?}");
    }

    /// The day view walked every active job's trigger before: past 10,000
    /// jobs it counts the next fire times per hour through the due index,
    /// reading only the jobs due before the view ends.
    #[tokio::test]
    async fn the_next_runs_per_hour_are_counted_through_the_due_index() {
        let (_dir, store) = store().await;
        let slots = chime_core::TimeSlots::new(Timestamp::UNIX_EPOCH, jiff::SignedDuration::from_hours(1), 24).unwrap();
        let steps = plan(&store, &chime_sql::next_runs_sql(&slots), &[]).await;
        // Each job due in the view is read by rowid from the index (for
        // `paused` and `broken`, which the index holds only as its
        // condition), but no other job is.
        assert!(steps.iter().any(|s| s.starts_with("SEARCH chime_job USING INDEX chime_job_due")), "{steps:?}");
        assert!(!steps.iter().any(|s| s.starts_with("SCAN chime_job")), "{steps:?}");
    }

    /// The dashboard's job list asks for the runs in flight on every poll:
    /// SQLite walked every run in time order for them (7 s at 10,000,000).
    #[tokio::test]
    async fn runs_in_flight_are_read_through_their_index() {
        let (_dir, store) = store().await;
        for statuses in [vec![RunStatus::Pending, RunStatus::Running], vec![RunStatus::Running]] {
            let query = RunQuery { statuses, ..RunQuery::default() };
            let steps = plan(&store, &history_sql(&query), &[]).await;
            assert!(steps.iter().any(|s| s.contains("INDEX chime_run_in_flight")), "{steps:?}");
            assert!(!steps.iter().any(|s| s.contains("chime_run_time")), "{steps:?}");
        }
        let finished = RunQuery { statuses: vec![RunStatus::Failed], ..RunQuery::default() };
        let steps = plan(&store, &history_sql(&finished), &[]).await;
        assert!(!steps.iter().any(|s| s.contains("chime_run_in_flight")), "{steps:?}");
    }

    /// The alert checks (every minute) read every job before.
    #[tokio::test]
    async fn jobs_with_alerts_are_found_through_their_index() {
        let (_dir, store) = store().await;
        for paused in [None, Some(false)] {
            let filter = JobFilter { with_alerts: true, paused, ..JobFilter::default() };
            let steps = plan(&store, &chime_sql::list_jobs_sql(&filter, Dialect::Sqlite).0, &[1, 0]).await;
            assert!(steps.iter().any(|s| s.contains("INDEX chime_job_alerting")), "{steps:?}");
        }
    }

    /// With `scheduled_for` alone indexed, the runs of one second were sorted
    /// whole for the newest page ("USE TEMP B-TREE FOR RIGHT PART OF ORDER BY").
    #[tokio::test]
    async fn newest_runs_come_in_index_order_without_a_sort() {
        let (_dir, store) = store().await;
        let steps = plan(&store, &history_sql(&RunQuery::default()), &[100, 0]).await;
        assert!(steps.iter().any(|s| s.contains("chime_run_time")), "{steps:?}");
        assert!(!steps.iter().any(|s| s.contains("TEMP B-TREE")), "{steps:?}");
    }
}
