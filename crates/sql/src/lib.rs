//! The rows of chime's SQL stores: how a job and a run are stored, decoded
//! back (a row that does not decode says why) and bound into SQL, shared by
//! `chime-sqlite` and `chime-postgres` so both read and write one shape.
//!
//! Instants are integer microseconds since the Unix epoch (UTC); triggers,
//! arguments and options are JSON text in chime-core's serde shapes.
//!
//! # Crate features
//!
//! None. Not meant to be used outside chime's stores.

pub mod writer;

use std::sync::Arc;

use chime_core::{Error, Job, JobId, JobOptions, JobState, Reason, Result, Run, RunId, RunKind, RunStatus, Trigger};
use jiff::Timestamp;

/// The statuses of a run still in flight, as an SQL list.
pub const IN_FLIGHT: &str = "('pending', 'running')";

/// An instant as stored: microseconds since the Unix epoch.
pub fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

/// A stored instant, or why it is out of range.
pub fn instant(us: i64) -> std::result::Result<Timestamp, String> {
    Timestamp::from_microsecond(us).map_err(|e| format!("instant {us} is out of range: {e}"))
}

/// A stored optional instant.
pub fn opt_instant(us: Option<i64>) -> std::result::Result<Option<Timestamp>, String> {
    us.map(instant).transpose()
}

/// A `chime_job` row as stored; the fields are its columns.
#[allow(missing_docs)]
#[derive(Debug, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub name: Option<String>,
    pub task: String,
    pub args: String,
    pub trigger: String,
    pub options: String,
    pub next_run_at: Option<i64>,
    pub paused: Option<String>,
    pub last_run_at: Option<i64>,
    pub last_status: Option<String>,
    pub version: i64,
    pub code_hash: Option<String>,
    pub broken: Option<String>,
}

impl JobRow {
    /// The job, or why the row does not decode (it is then kept as broken).
    pub fn decode(self) -> std::result::Result<Job, String> {
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
        // A row edited by hand can hold what no chime would write (an interval
        // of zero, a calendar step of 0): refused here, it is marked broken
        // instead of being looped on inside the claim's transaction.
        trigger.validate().map_err(|e| format!("its trigger is invalid: {e}"))?;
        options.validate().map_err(|e| format!("its options are invalid: {e}"))?;
        let last_status = self.last_status.map(|s| s.parse::<RunStatus>().map_err(|e| e.to_string())).transpose()?;
        Ok(Job {
            id,
            name: self.name.map(String::into_boxed_str),
            task: Arc::from(self.task),
            args,
            trigger,
            options,
            state: JobState {
                next_run_at: opt_instant(self.next_run_at)?,
                paused: self.paused.map(String::into_boxed_str),
                last_run_at: opt_instant(self.last_run_at)?,
                last_status,
                version: self.version as u64,
                code_hash: self.code_hash.map(String::into_boxed_str),
            },
        })
    }
}

/// The JSON columns of a job.
pub fn encode(job: &Job) -> Result<(String, String, String)> {
    let json = |what: &str, r: serde_json::Result<String>| {
        r.map_err(|e| Error::Invalid(format!("job {:?}: its {what} cannot be stored: {e}", job.id.as_str())))
    };
    Ok((
        json("arguments", serde_json::to_string(&job.args))?,
        json("trigger", serde_json::to_string(&job.trigger))?,
        json("options", serde_json::to_string(&job.options))?,
    ))
}

/// A `chime_run` row as stored; the fields are its columns.
#[allow(missing_docs)]
#[derive(Debug, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub job_id: String,
    pub scheduled_for: i64,
    pub kind: String,
    pub status: String,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub attempt: i64,
    pub node: Option<String>,
    pub epoch: Option<i64>,
    pub error: Option<String>,
    pub reason: Option<String>,
    pub output: Option<String>,
    pub late_result: Option<String>,
}

impl RunRow {
    /// The run, or why the row does not decode.
    pub fn decode(self) -> std::result::Result<Run, String> {
        Ok(Run {
            id: RunId(self.id.parse().map_err(|e| format!("run id {:?}: {e}", self.id))?),
            job_id: JobId::new(&self.job_id).map_err(|e| e.to_string())?,
            scheduled_for: instant(self.scheduled_for)?,
            kind: self.kind.parse::<RunKind>()?,
            status: self.status.parse::<RunStatus>().map_err(|e| e.to_string())?,
            started_at: opt_instant(self.started_at)?,
            finished_at: opt_instant(self.finished_at)?,
            attempt: u32::try_from(self.attempt).map_err(|_| format!("attempt {} is out of range", self.attempt))?,
            node: self.node.map(Arc::from),
            epoch: self.epoch.map(|e| e as u64),
            error: self.error,
            // A reason edited into nonsense by hand is dropped, not fatal:
            // the error text says the same in words.
            reason: self.reason.as_deref().and_then(Reason::from_json),
            output: self.output,
            late_result: self.late_result,
        })
    }
}

/// The newest runs' id, status and times as [`run_times`] reads them, newest
/// first along the `(scheduled_for, id)` index, for `JobStore::recent_stats`:
/// each store wraps it in its dialect's JSON array aggregate, so that ten
/// thousand runs cross the driver as one value (row by row, sqlx-sqlite's
/// worker thread cost about 4 µs a row: 54 ms for the stats' 10,000, against
/// 10 ms for the query). Ends in `LIMIT`, for the store's placeholder.
pub const NEWEST_RUN_TIMES: &str = "SELECT id, status, scheduled_for, started_at, finished_at FROM chime_run \
     ORDER BY scheduled_for DESC, id DESC LIMIT ";

/// The JSON array of `[id, status, scheduled_for, started_at, finished_at]`
/// arrays a store aggregated from [`NEWEST_RUN_TIMES`], or why it does not
/// decode (naming the run).
pub fn run_times(json: &str) -> std::result::Result<Vec<chime_core::RunTimes>, String> {
    type Row = (String, String, i64, Option<i64>, Option<i64>);
    let rows: Vec<Row> = serde_json::from_str(json).map_err(|e| format!("the newest runs do not decode: {e}"))?;
    rows.into_iter()
        .map(|(id, status, scheduled_for, started_at, finished_at)| {
            let decoded = || -> std::result::Result<chime_core::RunTimes, String> {
                Ok(chime_core::RunTimes {
                    status: status.parse::<RunStatus>().map_err(|e| e.to_string())?,
                    scheduled_for: instant(scheduled_for)?,
                    started_at: opt_instant(started_at)?,
                    finished_at: opt_instant(finished_at)?,
                })
            };
            decoded().map_err(|problem| format!("run {id} does not decode: {problem}"))
        })
        .collect()
}

/// `JobStore::recent_stats` from a store's aggregate of [`NEWEST_RUN_TIMES`]:
/// the figures and how many runs were read, or a store error naming the
/// store at `location` and the run that does not decode.
pub fn recent_stats(json: &str, location: &str) -> Result<(chime_core::JobStats, usize)> {
    let times = run_times(json)
        .map_err(|problem| Error::Store { message: format!("{location}: {problem}"), transient: false })?;
    let read = times.len();
    Ok((chime_core::JobStats::from_times(times), read))
}

/// The ids of runs in flight as stored, for `plan_fire`. An id edited into
/// nonsense by hand still counts (as the nil id): it is a run in flight.
pub fn run_ids(ids: &[String]) -> Vec<RunId> {
    ids.iter().map(|id| RunId(id.parse().unwrap_or_default())).collect()
}

/// A run's reason as stored: JSON text, or NULL.
pub fn reason_json(run: &Run) -> Option<String> {
    run.reason.as_ref().map(Reason::to_json)
}

/// The columns [`JobRow`] reads, for `concat!("SELECT ", job_fields!(), " FROM chime_job …")`.
///
/// Named, never `*`: a column that a newer chime adds must not change the
/// statements of a node still running. sqlx takes a statement's columns from
/// its prepare; after another process alters the table, SQLite re-prepares
/// `SELECT *` at the next step with one column more than sqlx knows, and
/// sqlx-sqlite's worker panics on the row (PostgreSQL refuses the cached
/// plan instead: "cached plan must not change result type").
#[macro_export]
macro_rules! job_fields {
    () => {
        "id, name, task, args, trigger, options, next_run_at, paused, last_run_at, last_status, version, code_hash, broken"
    };
}

/// The columns [`RunRow`] reads, as [`job_fields!`] (and why).
#[macro_export]
macro_rules! run_fields {
    () => {
        "id, job_id, scheduled_for, kind, status, started_at, finished_at, attempt, node, epoch, error, reason, output, late_result"
    };
}

/// [`run_fields!`] of `chime_run` aliased `r`.
#[macro_export]
macro_rules! run_fields_of_r {
    () => {
        "r.id, r.job_id, r.scheduled_for, r.kind, r.status, r.started_at, r.finished_at, r.attempt, r.node, r.epoch, \
         r.error, r.reason, r.output, r.late_result"
    };
}

/// The columns of `chime_run` in the order [`bind_run!`] binds them.
pub const RUN_COLUMNS: &str = concat!("(", run_fields!(), ")");

/// How many values [`bind_run!`] binds per run.
pub const RUN_VALUES: usize = 14;

/// Binds one run's values, in [`RUN_COLUMNS`] order, to a query of any kind.
#[macro_export]
macro_rules! bind_run {
    ($q:expr, $run:expr) => {{
        let run: &chime_core::Run = $run;
        $q.bind(run.id.to_string())
            .bind(run.job_id.as_str().to_owned())
            .bind($crate::micros(run.scheduled_for))
            .bind(run.kind.as_str())
            .bind(run.status.as_str())
            .bind(run.started_at.map($crate::micros))
            .bind(run.finished_at.map($crate::micros))
            .bind(i64::from(run.attempt))
            .bind(run.node.as_deref().map(str::to_owned))
            .bind(run.epoch.map(|e| e as i64))
            .bind(run.error.clone())
            .bind($crate::reason_json(run))
            .bind(run.output.clone())
            .bind(run.late_result.clone())
    }};
}

/// The condition of the `chime_job_alerting` partial index, word for word
/// (a planner uses a partial index only for a query that repeats its
/// condition): every job with an alert option, and any row whose options
/// merely mention `"alert` (edited by hand), which [`listed`] drops.
const MAY_ALERT: &str = "options LIKE '%\"alert_%'";

/// Where the SQL of the two stores differs in a job listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `?` placeholders; `instr`; `lower` folds ASCII letters only.
    Sqlite,
    /// `$n` placeholders; `strpos`; `lower` would follow the locale, so
    /// ASCII letters are folded with `translate`.
    Postgres,
}

impl Dialect {
    /// The `n`-th placeholder, from 1.
    fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => "?".to_owned(),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// Whether `column`, ASCII letters folded to lower case, contains the
    /// `n`-th placeholder's text (bound already folded), as
    /// `JobFilter::admits` compares.
    fn contains(self, column: &str, n: usize) -> String {
        let p = self.placeholder(n);
        match self {
            Dialect::Sqlite => format!("instr(lower({column}), {p}) > 0"),
            Dialect::Postgres => format!(
                "strpos(translate({column}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), {p}) > 0"
            ),
        }
    }
}

/// The conditions of a job listing or count (after `broken IS NULL`) for
/// `filter`, and the texts to bind to their placeholders, in order.
fn job_conditions(filter: &chime_core::JobFilter, dialect: Dialect) -> (String, Vec<String>) {
    use chime_core::JobStatus;
    let mut sql = String::new();
    let mut texts = Vec::new();
    match filter.paused {
        None => {}
        Some(true) => sql.push_str(" AND paused IS NOT NULL"),
        Some(false) => sql.push_str(" AND paused IS NULL"),
    }
    if filter.with_alerts {
        sql.push_str(&format!(" AND {MAY_ALERT}"));
    }
    sql.push_str(match filter.status {
        None => "",
        Some(JobStatus::Active) => " AND paused IS NULL AND next_run_at IS NOT NULL",
        Some(JobStatus::Paused) => " AND paused IS NOT NULL",
        Some(JobStatus::Finished) => " AND paused IS NULL AND next_run_at IS NULL",
        Some(JobStatus::Running) => " AND id IN (SELECT job_id FROM chime_run WHERE status IN ('pending', 'running'))",
        // The condition of the `chime_job_failing` index, word for word.
        Some(JobStatus::Failing) => " AND last_status IN ('failed', 'timed_out', 'abandoned')",
    });
    // Microseconds of our own, not text a user wrote: written into the
    // statement rather than bound, as the texts are.
    if filter.next_run_from.is_some() || filter.next_run_before.is_some() {
        sql.push_str(&format!(" AND {DUE}"));
    }
    if let Some(from) = filter.next_run_from {
        sql.push_str(&format!(" AND next_run_at >= {}", micros(from)));
    }
    if let Some(before) = filter.next_run_before {
        sql.push_str(&format!(" AND next_run_at < {}", micros(before)));
    }
    if let Some(task) = &filter.task {
        texts.push(task.clone());
        sql.push_str(&format!(" AND task = {}", dialect.placeholder(texts.len())));
    }
    if let Some(text) = &filter.search {
        let needle = text.to_ascii_lowercase();
        let mut any = Vec::new();
        for column in ["id", "COALESCE(name, '')", "task"] {
            texts.push(needle.clone());
            any.push(dialect.contains(column, texts.len()));
        }
        sql.push_str(&format!(" AND ({})", any.join(" OR ")));
    }
    (sql, texts)
}

/// The statement a SQL store's `list_jobs` runs for `filter`, and the texts
/// to bind first; after them it binds [`listing_page`]'s limit and offset.
pub fn list_jobs_sql(filter: &chime_core::JobFilter, dialect: Dialect) -> (String, Vec<String>) {
    let (conditions, texts) = job_conditions(filter, dialect);
    let (limit, offset) = (dialect.placeholder(texts.len() + 1), dialect.placeholder(texts.len() + 2));
    let sql = format!(
        concat!("SELECT ", job_fields!(), " FROM chime_job WHERE broken IS NULL{} ORDER BY id LIMIT {} OFFSET {}"),
        conditions, limit, offset
    );
    (sql, texts)
}

/// The condition of each column of a [`count_jobs_sql`] row after the
/// first (all): paused, finished, running, failing. Each is the condition
/// of its partial index (migrations `counted_by_index`, `listed_by_index`
/// and the in-flight runs' index), so that a count without a search reads
/// only that index.
const STATUS_COLUMNS: [&str; 4] = [
    "paused IS NOT NULL",
    "next_run_at IS NULL AND paused IS NULL",
    "id IN (SELECT job_id FROM chime_run WHERE status IN ('pending', 'running'))",
    "last_status IN ('failed', 'timed_out', 'abandoned')",
];

/// The statement a SQL store's `count_jobs` runs for `filter` (without
/// `with_alerts`, whose exact check needs the decoded job), and the texts
/// to bind; [`fetch_counts`] runs it.
///
/// A search or task filter must read every row it admits, so the counts
/// are taken in that one pass. Without one, each count is a subquery that
/// its partial index answers, and the total is the primary key's count
/// less the broken rows: no job row is read (a pass takes 200 ms at
/// 1,000,000 jobs on SQLite).
pub fn count_jobs_sql(filter: &chime_core::JobFilter, dialect: Dialect) -> (String, Vec<String>) {
    let (conditions, texts) = job_conditions(filter, dialect);
    let sql = if texts.is_empty() {
        let count = |condition: &str| format!("(SELECT COUNT(*) FROM chime_job WHERE {condition}{conditions})");
        let mut columns = vec![format!("{} - {}", count("1 = 1"), count("broken IS NOT NULL"))];
        columns.extend(STATUS_COLUMNS.iter().map(|c| count(&format!("{c} AND broken IS NULL"))));
        format!("SELECT {}", columns.join(", "))
    } else {
        let mut columns = vec!["COUNT(*)".to_owned()];
        columns.extend(STATUS_COLUMNS.iter().map(|c| format!("COUNT(CASE WHEN {c} THEN 1 END)")));
        format!("SELECT {} FROM chime_job WHERE broken IS NULL{conditions}", columns.join(", "))
    };
    (sql, texts)
}

/// Runs a [`count_jobs_sql`] statement and reads its row: a SQL store's
/// `count_jobs`.
///
/// # Errors
///
/// The database's error.
pub async fn fetch_counts<'c, DB, E>(
    executor: E,
    (sql, texts): (String, Vec<String>),
) -> std::result::Result<chime_core::StatusCounts, sqlx::Error>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'c, Database = DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64, i64, i64, i64, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let mut query = sqlx::query_as::<DB, (i64, i64, i64, i64, i64)>(sqlx::AssertSqlSafe(sql));
    for text in texts {
        query = query.bind(text);
    }
    let (all, paused, finished, running, failing) = query.fetch_one(executor).await?;
    let n = |v: i64| usize::try_from(v).unwrap_or(0);
    Ok(chime_core::StatusCounts {
        all: n(all),
        active: n(all - paused - finished),
        paused: n(paused),
        finished: n(finished),
        running: n(running),
        failing: n(failing),
    })
}

/// The tasks of the stored jobs (broken rows aside), in order, at most
/// `limit`: a SQL store's `job_tasks`.
///
/// # Errors
///
/// The database's error.
pub async fn fetch_tasks<'c, DB, E>(
    executor: E,
    dialect: Dialect,
    limit: usize,
) -> std::result::Result<Vec<String>, sqlx::Error>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'c, Database = DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let sql = format!(
        "SELECT DISTINCT task FROM chime_job WHERE broken IS NULL ORDER BY task LIMIT {}",
        dialect.placeholder(1)
    );
    sqlx::query_scalar::<DB, String>(sqlx::AssertSqlSafe(sql))
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(executor)
        .await
}

/// The condition of the due jobs' index `chime_job_due` (after
/// `broken IS NULL`), word for word: active jobs with a next fire time.
const DUE: &str = "next_run_at IS NOT NULL AND paused IS NULL";

/// A SQL store's `count_next_runs`: one `(slot, count)` row per slot with a
/// job in it, counted through the due jobs' index (no job row read).
///
/// # Errors
///
/// The database's error.
pub async fn fetch_next_runs<'c, DB, E>(
    executor: E,
    slots: &chime_core::TimeSlots,
) -> std::result::Result<Vec<usize>, sqlx::Error>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'c, Database = DB>,
    (i64, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let rows = sqlx::query_as::<DB, (i64, i64)>(sqlx::AssertSqlSafe(next_runs_sql(slots))).fetch_all(executor).await?;
    let mut counts = vec![0; slots.slot_count()];
    for (slot, n) in rows {
        if let Some(count) = usize::try_from(slot).ok().and_then(|i| counts.get_mut(i)) {
            *count = usize::try_from(n).unwrap_or(0);
        }
    }
    Ok(counts)
}

/// The statement of [`fetch_next_runs`]; its numbers are the slots' own
/// microseconds, written in (the statement is read for a page opened by
/// hand, not on a hot path, so it need not be prepared once).
pub fn next_runs_sql(slots: &chime_core::TimeSlots) -> String {
    let (from, width, end) = (micros(slots.from()), slots.width().as_micros(), micros(slots.end()));
    format!(
        "SELECT CASE WHEN next_run_at < {from} THEN 0 ELSE (next_run_at - {from}) / {width} END AS slot, COUNT(*) \
         FROM chime_job WHERE {DUE} AND broken IS NULL AND next_run_at < {end} GROUP BY slot"
    )
}

/// The `LIMIT` and `OFFSET` to bind for a job listing: with
/// `with_alerts` the page is cut by [`listed`] after the exact check.
pub fn listing_page(filter: &chime_core::JobFilter) -> (i64, i64) {
    if filter.with_alerts {
        (i64::MAX, 0)
    } else {
        (
            filter.limit.map_or(i64::MAX, |l| l.min(i64::MAX as usize) as i64),
            filter.offset.min(i64::MAX as usize) as i64,
        )
    }
}

/// The jobs of a listing from its decoded rows; see [`listing_page`].
pub fn listed(jobs: impl Iterator<Item = Job>, filter: &chime_core::JobFilter) -> Vec<Job> {
    if !filter.with_alerts {
        return jobs.collect();
    }
    jobs.filter(Job::has_alerts).skip(filter.offset).take(filter.limit.unwrap_or(usize::MAX)).collect()
}

/// Jobs by state in one query, no row decoded, each count from an index of
/// its own (the partial indexes of the `counted_by_index` migration, so no
/// count reads every job row): `broken` counts the rows
/// marked broken; the others by their state columns, as `Job::status` reads
/// them (paused, else finished without a next run, else active). Read as
/// `(i64, i64, i64, i64)` and turned into counts by [`job_counts`].
pub const JOB_COUNTS: &str = "SELECT (SELECT COUNT(*) FROM chime_job), \
     (SELECT COUNT(*) FROM chime_job WHERE broken IS NOT NULL), \
     (SELECT COUNT(*) FROM chime_job WHERE paused IS NOT NULL AND broken IS NULL), \
     (SELECT COUNT(*) FROM chime_job WHERE next_run_at IS NULL AND paused IS NULL AND broken IS NULL)";

/// The counts of a [`JOB_COUNTS`] row: (all, broken, paused, finished).
pub fn job_counts((jobs, broken, paused, finished): (i64, i64, i64, i64)) -> chime_core::JobCounts {
    let n = |v: i64| usize::try_from(v).unwrap_or(0);
    chime_core::JobCounts {
        jobs: n(jobs),
        active: n(jobs - broken - paused - finished),
        paused: n(paused),
        finished: n(finished),
        broken: n(broken),
    }
}
