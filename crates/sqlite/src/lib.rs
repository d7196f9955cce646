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

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chime_core::{
    BrokenJob, Claim, ConflictPolicy, Decision, Error, Job, JobFilter, JobId, JobOptions, JobState, JobStats, JobStore,
    Result, Run, RunId, RunKind, RunQuery, RunStatus, Trigger, plan_fire,
};
use jiff::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How often another process's changes are looked for.
const CHANGE_POLL: Duration = Duration::from_millis(200);

/// Jobs and run history in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The file (or `sqlite::memory:`), for error messages.
    location: String,
    changes: Arc<watch::Sender<u64>>,
    poller: Option<tokio::task::JoinHandle<()>>,
    /// Run updates go to one writer task, which commits whatever has queued
    /// up in one transaction (group commit): a burst of runs costs a few
    /// transactions, not two per run.
    run_writes: mpsc::UnboundedSender<RunWrite>,
    writer: tokio::task::JoinHandle<()>,
}

/// A run update (or, with `None`, a barrier: "tell me when everything queued
/// before me is written") and where to send the outcome of its transaction.
type RunWrite = (Option<Run>, oneshot::Sender<std::result::Result<(), (String, bool)>>);

/// Runs per group-commit transaction, at most.
const MAX_RUN_BATCH: usize = 1024;

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(p) = &self.poller {
            p.abort();
        }
        self.writer.abort();
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
            .journal_mode(if memory { SqliteJournalMode::Memory } else { SqliteJournalMode::Wal });
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists per connection: keep exactly one.
            .max_connections(if memory { 1 } else { 4 })
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory { None } else { Some(Duration::from_secs(600)) })
            .max_lifetime(if memory { None } else { Some(Duration::from_secs(3600)) })
            .connect_with(options.clone())
            .await
            .map_err(|e| fail("opening the database", e))?;

        check_schema_version(&pool, &shown).await?;
        // Two processes opening a new file at once (a server and a CLI) both
        // try to migrate it; SQLite's migrator takes no lock, so the loser
        // fails on a table the winner just created. Trying again finds the
        // migrations applied.
        let mut attempt = 0;
        loop {
            match MIGRATOR.run(&pool).await {
                Ok(()) => break,
                Err(_) if attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
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

        let changes = Arc::new(watch::Sender::new(0u64));
        let poller = if memory {
            None
        } else {
            let mut conn =
                SqliteConnection::connect_with(&options).await.map_err(|e| fail("opening the change watcher", e))?;
            let changes = Arc::clone(&changes);
            Some(tokio::spawn(async move {
                let mut last: Option<i64> = None;
                loop {
                    if let Ok(row) = sqlx::query("PRAGMA data_version").fetch_one(&mut conn).await {
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
        let (run_writes, queue) = mpsc::unbounded_channel();
        let writer = tokio::spawn(run_writer(pool.clone(), shown.clone(), queue));
        tracing::info!(database = %shown, "sqlite store open");
        Ok(SqliteStore { pool, location: shown, changes, poller, run_writes, writer })
    }

    /// The file this store uses.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn err(&self, op: &str, e: sqlx::Error) -> Error {
        store_error(&self.location, op, &e)
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Waits until every run update queued so far is committed, so that
    /// reads of run history see this store's own writes.
    async fn flush_runs(&self) -> Result<()> {
        let (reply, outcome) = oneshot::channel();
        let gone =
            || Error::Store { message: format!("{}: the run writer has stopped", self.location), transient: false };
        self.run_writes.send((None, reply)).map_err(|_| gone())?;
        outcome.await.map_err(|_| gone())?.map_err(|(message, transient)| Error::Store { message, transient })
    }

    async fn read_job(&self, id: &JobId) -> Result<Option<JobRow>> {
        sqlx::query_as::<_, JobRow>("SELECT * FROM chime_job WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err("reading a job", e))
    }

    fn decode(&self, row: JobRow) -> Result<Job> {
        let id = row.id.clone();
        row.decode().map_err(|problem| Error::Store {
            message: format!("{}: job {id:?} does not decode: {problem}", self.location),
            transient: false,
        })
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

/// The group-commit writer: takes every run update queued so far, writes
/// them in one transaction, and tells each caller the outcome.
async fn run_writer(pool: SqlitePool, location: String, mut queue: mpsc::UnboundedReceiver<RunWrite>) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_RUN_BATCH).await > 0 {
        let runs: Vec<&Run> = batch.iter().filter_map(|(run, _)| run.as_ref()).collect();
        let outcome = if runs.is_empty() { Ok(()) } else { write_runs(&pool, &runs).await }.map_err(|e| {
            match store_error(&location, "recording runs", &e) {
                Error::Store { message, transient } => (message, transient),
                other => (other.to_string(), false),
            }
        });
        if let Err((message, _)) = &outcome {
            // Callers that did not wait for the write learn of it here.
            tracing::error!(runs = runs.len(), error = %message, "run history write failed");
        }
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(outcome.clone());
        }
    }
}

async fn write_runs(pool: &SqlitePool, runs: &[&Run]) -> sqlx::Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    // 100 rows of 10 parameters stay well under SQLite's parameter limit.
    for chunk in runs.chunks(100) {
        let sql = format!(
            "INSERT INTO chime_run {RUN_COLUMNS} VALUES {} ON CONFLICT (id) DO UPDATE SET status = excluded.status, started_at = excluded.started_at, \
             finished_at = excluded.finished_at, attempt = excluded.attempt, node = excluded.node, error = excluded.error, output = excluded.output",
            run_rows(chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for run in chunk {
            q = bind_run!(q, run);
        }
        q.execute(&mut *tx).await?;
    }
    // The job's last run and status, from its latest finished run in the batch.
    let mut last: Vec<&Run> = Vec::new();
    for run in runs.iter().filter(|r| r.status.is_finished()) {
        match last.iter_mut().find(|l| l.job_id == run.job_id) {
            Some(l) => *l = run,
            None => last.push(run),
        }
    }
    for chunk in last.chunks(100) {
        let cases = vec!["WHEN ? THEN ?"; chunk.len()].join(" ");
        let sql = format!(
            "UPDATE chime_job SET last_run_at = COALESCE(CASE id {cases} END, last_run_at), last_status = CASE id {cases} END \
             WHERE id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for run in chunk {
            q = q.bind(run.job_id.as_str().to_owned()).bind(run.started_at.map(micros));
        }
        for run in chunk {
            q = q.bind(run.job_id.as_str().to_owned()).bind(run.status.as_str());
        }
        for run in chunk {
            q = q.bind(run.job_id.as_str().to_owned());
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await
}

fn store_error(location: &str, op: &str, e: &sqlx::Error) -> Error {
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

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn instant(us: i64) -> std::result::Result<Timestamp, String> {
    Timestamp::from_microsecond(us).map_err(|e| format!("instant {us} is out of range: {e}"))
}

fn opt_instant(us: Option<i64>) -> std::result::Result<Option<Timestamp>, String> {
    us.map(instant).transpose()
}

/// A `chime_job` row as stored.
#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    name: Option<String>,
    task: String,
    args: String,
    trigger: String,
    options: String,
    next_run_at: Option<i64>,
    paused: Option<String>,
    last_run_at: Option<i64>,
    last_status: Option<String>,
    version: i64,
    code_hash: Option<String>,
    broken: Option<String>,
}

impl JobRow {
    fn decode(self) -> std::result::Result<Job, String> {
        if let Some(why) = self.broken {
            return Err(why);
        }
        let id = JobId::new(&self.id).map_err(|e| e.to_string())?;
        let trigger: Trigger =
            serde_json::from_str(&self.trigger).map_err(|e| format!("its trigger does not parse: {e}"))?;
        let args: serde_json::Value =
            serde_json::from_str(&self.args).map_err(|e| format!("its arguments do not parse: {e}"))?;
        let options: JobOptions =
            serde_json::from_str(&self.options).map_err(|e| format!("its options do not parse: {e}"))?;
        let last_status = self.last_status.map(|s| s.parse::<RunStatus>().map_err(|e| e.to_string())).transpose()?;
        Ok(Job {
            id,
            name: self.name,
            task: Arc::from(self.task),
            args,
            trigger,
            options,
            state: JobState {
                next_run_at: opt_instant(self.next_run_at)?,
                paused: self.paused,
                last_run_at: opt_instant(self.last_run_at)?,
                last_status,
                version: self.version as u64,
                code_hash: self.code_hash,
            },
        })
    }
}

/// The JSON columns of a job.
fn encode(job: &Job) -> Result<(String, String, String)> {
    let json = |what: &str, r: serde_json::Result<String>| {
        r.map_err(|e| Error::Invalid(format!("job {:?}: its {what} cannot be stored: {e}", job.id.as_str())))
    };
    Ok((
        json("arguments", serde_json::to_string(&job.args))?,
        json("trigger", serde_json::to_string(&job.trigger))?,
        json("options", serde_json::to_string(&job.options))?,
    ))
}

/// A `chime_run` row as stored.
#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    job_id: String,
    scheduled_for: i64,
    kind: String,
    status: String,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    attempt: i64,
    node: Option<String>,
    error: Option<String>,
    output: Option<String>,
}

impl RunRow {
    fn decode(self) -> std::result::Result<Run, String> {
        Ok(Run {
            id: RunId(self.id.parse().map_err(|e| format!("run id {:?}: {e}", self.id))?),
            job_id: JobId::new(&self.job_id).map_err(|e| e.to_string())?,
            scheduled_for: instant(self.scheduled_for)?,
            kind: if self.kind == "manual" { RunKind::Manual } else { RunKind::Scheduled },
            status: self.status.parse().map_err(|e: Error| e.to_string())?,
            started_at: opt_instant(self.started_at)?,
            finished_at: opt_instant(self.finished_at)?,
            attempt: self.attempt as u32,
            node: self.node.map(Arc::from),
            error: self.error,
            output: self.output,
        })
    }
}

fn kind_str(kind: RunKind) -> &'static str {
    match kind {
        RunKind::Scheduled => "scheduled",
        RunKind::Manual => "manual",
    }
}

/// The columns of `chime_run` in the order [`bind_run!`] binds them.
const RUN_COLUMNS: &str =
    "(id, job_id, scheduled_for, kind, status, started_at, finished_at, attempt, node, error, output)";

/// `n` rows of placeholders for [`RUN_COLUMNS`].
fn run_rows(n: usize) -> String {
    vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; n].join(", ")
}

/// Binds one run's values, in [`RUN_COLUMNS`] order, to a query of any kind.
macro_rules! bind_run {
    ($q:expr, $run:expr) => {{
        let run: &Run = $run;
        $q.bind(run.id.to_string())
            .bind(run.job_id.as_str().to_owned())
            .bind(micros(run.scheduled_for))
            .bind(kind_str(run.kind))
            .bind(run.status.as_str())
            .bind(run.started_at.map(micros))
            .bind(run.finished_at.map(micros))
            .bind(i64::from(run.attempt))
            .bind(run.node.as_deref().map(str::to_owned))
            .bind(run.error.clone())
            .bind(run.output.clone())
    }};
}
use bind_run;

async fn insert_run<'c, E: sqlx::Executor<'c, Database = sqlx::Sqlite>>(e: E, run: &Run) -> sqlx::Result<u64> {
    let sql = format!(
        "INSERT INTO chime_run {RUN_COLUMNS} VALUES {} ON CONFLICT (job_id, scheduled_for) DO NOTHING",
        run_rows(1)
    );
    Ok(bind_run!(sqlx::query(AssertSqlSafe(sql)), run).execute(e).await?.rows_affected())
}

const IN_FLIGHT: &str = "('pending', 'running')";

#[async_trait]
impl JobStore for SqliteStore {
    async fn add_job(&self, job: Job, on_conflict: ConflictPolicy) -> Result<Job> {
        let (args, trigger, options) = encode(&job)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(|e| self.err("adding a job", e))?;
        let existing: Option<JobRow> = sqlx::query_as("SELECT * FROM chime_job WHERE id = ?")
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
        tx.commit().await.map_err(|e| self.err("adding a job", e))?;
        self.changed();
        let mut job = job;
        job.state.version = version as u64;
        Ok(job)
    }

    async fn get_job(&self, id: &JobId) -> Result<Option<Job>> {
        self.read_job(id).await?.map(|row| self.decode(row)).transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let paused = match filter.paused {
            None => "",
            Some(true) => "AND paused IS NOT NULL",
            Some(false) => "AND paused IS NULL",
        };
        let sql = format!("SELECT * FROM chime_job WHERE broken IS NULL {paused} ORDER BY id LIMIT ? OFFSET ?");
        let rows: Vec<JobRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(filter.limit.map_or(-1, |l| l as i64))
            .bind(filter.offset as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("listing jobs", e))?;
        // A row that does not decode is reported by `broken_jobs`, not here.
        Ok(rows.into_iter().filter_map(|r| r.decode().ok()).collect())
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

    /// # Implementation
    ///
    /// One `BEGIN IMMEDIATE` transaction and four statements per batch,
    /// whatever its size: read the due jobs; count their runs in flight;
    /// insert every planned run (`ON CONFLICT DO NOTHING RETURNING id`, so a
    /// time that already has a run is not run again); advance every job's
    /// next fire time and version. The write lock makes the read-plan-write
    /// atomic against other processes.
    async fn acquire_due(&self, now: Timestamp, limit: usize, node: &str) -> Result<Vec<Claim>> {
        let fail = |e| self.err("claiming due jobs", e);
        let node: Arc<str> = Arc::from(node);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
        let rows: Vec<JobRow> = sqlx::query_as(
            "SELECT * FROM chime_job WHERE next_run_at IS NOT NULL AND paused IS NULL AND broken IS NULL \
             AND next_run_at <= ? ORDER BY next_run_at, id LIMIT ?",
        )
        .bind(micros(now))
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(fail)?;

        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id.clone();
            match row.decode() {
                Ok(job) => jobs.push(job),
                Err(problem) => {
                    tracing::error!(job_id = %id, %problem, database = %self.location, "stored job does not decode; marked broken, kept");
                    sqlx::query("UPDATE chime_job SET broken = ? WHERE id = ?")
                        .bind(&problem)
                        .bind(&id)
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                }
            }
        }
        if jobs.is_empty() {
            tx.commit().await.map_err(fail)?;
            return Ok(Vec::new());
        }

        let placeholders = vec!["?"; jobs.len()].join(", ");
        let sql = format!(
            "SELECT job_id, COUNT(*) FROM chime_run WHERE status IN {IN_FLIGHT} AND job_id IN ({placeholders}) GROUP BY job_id"
        );
        let mut q = sqlx::query_as::<_, (String, i64)>(AssertSqlSafe(sql));
        for job in &jobs {
            q = q.bind(job.id.as_str().to_owned());
        }
        let running: std::collections::HashMap<String, i64> =
            q.fetch_all(&mut *tx).await.map_err(fail)?.into_iter().collect();

        let mut planned = Vec::with_capacity(jobs.len());
        for mut job in jobs {
            let in_flight = running.get(job.id.as_str()).copied().unwrap_or(0);
            let plan = plan_fire(&job, now, in_flight as u32);
            let runs: Vec<Run> = plan
                .runs
                .into_iter()
                .map(|p| match p.decision {
                    Decision::Run => Run::pending(job.id.clone(), p.scheduled_for, RunKind::Scheduled, &node),
                    Decision::Missed(why) => {
                        Run::not_run(job.id.clone(), p.scheduled_for, RunStatus::Missed, why, &node, now)
                    }
                    Decision::Skipped(why) => {
                        Run::not_run(job.id.clone(), p.scheduled_for, RunStatus::Skipped, why, &node, now)
                    }
                })
                .collect();
            job.state.next_run_at = plan.next_run_at;
            job.state.version += 1;
            planned.push((job, runs, plan.uncounted));
        }

        // Insert every planned run; keep those that really were inserted.
        let all_runs: Vec<&Run> = planned.iter().flat_map(|(_, runs, _)| runs.iter()).collect();
        let mut inserted = std::collections::HashSet::new();
        for chunk in all_runs.chunks(100) {
            let sql = format!(
                "INSERT INTO chime_run {RUN_COLUMNS} VALUES {} ON CONFLICT (job_id, scheduled_for) DO NOTHING RETURNING id",
                run_rows(chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
            for run in chunk {
                q = bind_run!(q, run);
            }
            inserted.extend(q.fetch_all(&mut *tx).await.map_err(fail)?);
        }

        for chunk in planned.chunks(100) {
            let sql = format!(
                "UPDATE chime_job SET next_run_at = CASE id {} END, version = version + 1 WHERE id IN ({})",
                vec!["WHEN ? THEN ?"; chunk.len()].join(" "),
                vec!["?"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (job, _, _) in chunk {
                q = q.bind(job.id.as_str().to_owned()).bind(job.state.next_run_at.map(micros));
            }
            for (job, _, _) in chunk {
                q = q.bind(job.id.as_str().to_owned());
            }
            q.execute(&mut *tx).await.map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;

        Ok(planned
            .into_iter()
            .map(|(job, runs, uncounted)| {
                // A time that already had a run was claimed before: not run again.
                let runs = runs.into_iter().filter(|r| inserted.contains(&r.id.to_string())).collect();
                Claim { job, runs, uncounted }
            })
            .collect())
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_run_at) FROM chime_job WHERE next_run_at IS NOT NULL AND paused IS NULL AND broken IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err("reading the next due time", e))?;
        next.map(|us| {
            instant(us).map_err(|e| Error::Store { message: format!("{}: {e}", self.location), transient: false })
        })
        .transpose()
    }

    async fn insert_run(&self, run: Run) -> Result<()> {
        if insert_run(&self.pool, &run).await.map_err(|e| self.err("recording a run", e))? == 0 {
            return Err(Error::RunExists { job_id: run.job_id, scheduled_for: run.scheduled_for });
        }
        Ok(())
    }

    /// Queues the update for the group-commit writer. A finished run waits
    /// for its transaction; a run that is only starting does not, so its task
    /// is not delayed by the write (a crash before that write leaves the run
    /// `pending` rather than `running`, and it is reaped as abandoned either way).
    async fn update_run(&self, run: &Run) -> Result<()> {
        let (reply, outcome) = oneshot::channel();
        let gone =
            || Error::Store { message: format!("{}: the run writer has stopped", self.location), transient: false };
        self.run_writes.send((Some(run.clone()), reply)).map_err(|_| gone())?;
        if !run.status.is_finished() {
            return Ok(());
        }
        match outcome.await.map_err(|_| gone())? {
            Ok(()) => Ok(()),
            Err((message, transient)) => Err(Error::Store { message, transient }),
        }
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
        let mut sql = String::from("SELECT * FROM chime_run WHERE 1 = 1");
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
        let mut q = sqlx::query_as::<_, RunRow>(AssertSqlSafe(sql));
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
            .bind(query.limit() as i64)
            .bind(query.offset as i64)
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

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    async fn broken_jobs(&self) -> Result<Vec<BrokenJob>> {
        let rows: Vec<JobRow> = sqlx::query_as("SELECT * FROM chime_job ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("listing jobs", e))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let id = r.id.clone();
                r.decode().err().map(|problem| BrokenJob { id, problem })
            })
            .collect())
    }

    async fn reap_abandoned(
        &self,
        is_alive: &(dyn for<'a> Fn(&'a str) -> bool + Send + Sync),
        now: Timestamp,
    ) -> Result<Vec<Run>> {
        let rows: Vec<RunRow> =
            sqlx::query_as(AssertSqlSafe(format!("SELECT * FROM chime_run WHERE status IN {IN_FLIGHT}")))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("looking for abandoned runs", e))?;
        let mut reaped = Vec::new();
        for row in rows {
            let Ok(mut run) = row.decode() else { continue };
            let node = run.node.as_deref().unwrap_or("").to_owned();
            if is_alive(&node) {
                continue;
            }
            run.status = RunStatus::Abandoned;
            run.finished_at = Some(now);
            run.error = Some(format!(
                "its process ({node}) stopped while the run was {}",
                if run.started_at.is_some() { "running" } else { "waiting to start" }
            ));
            self.update_run(&run).await?;
            reaped.push(run);
        }
        Ok(reaped)
    }
}
