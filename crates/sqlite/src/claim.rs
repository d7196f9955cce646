//! The claim and run-now: the two places runs are created, each one
//! `BEGIN IMMEDIATE` transaction, so the write lock makes read-decide-write
//! atomic against every other process on the file.

use std::collections::HashMap;
use std::sync::Arc;

use chime_core::{CancelledBy, Claim, ClaimRequest, Error, Job, JobId, Lease, Reason, Result, Run, Stage, plan_fire};
use jiff::{SignedDuration, Timestamp};
use sqlx::{AssertSqlSafe, SqliteConnection};

use crate::SqliteStore;
use crate::rows::{IN_FLIGHT, JobRow, RUN_COLUMNS, RunRow, bind_run, micros, run_ids, run_rows};

/// A job row's columns in [`JobRow`]'s order, each value of the wrong type
/// (a row edited by hand: a blob, text in an integer column) read as null,
/// and last the row's problem: its `broken` mark, else the mistyped columns
/// named, else null. Read as [`GuardedColumns`], so that such a row is
/// reported broken instead of failing the whole read.
macro_rules! guarded_job_columns {
    () => {
        "CAST(id AS TEXT), CASE WHEN typeof(name) = 'text' THEN name END, CASE WHEN typeof(task) = 'text' THEN task END, CASE WHEN typeof(args) = 'text' THEN args END, CASE WHEN typeof(trigger) = 'text' THEN trigger END, CASE WHEN typeof(options) = 'text' THEN options END, CASE WHEN typeof(next_run_at) = 'integer' THEN next_run_at END, CASE WHEN typeof(paused) = 'text' THEN paused END, CASE WHEN typeof(last_run_at) = 'integer' THEN last_run_at END, CASE WHEN typeof(last_status) = 'text' THEN last_status END, CASE WHEN typeof(version) = 'integer' THEN version END, CASE WHEN typeof(code_hash) = 'text' THEN code_hash END, COALESCE(CASE WHEN typeof(broken) = 'text' THEN broken END, 'a column holds a value of the wrong type:' || NULLIF(CASE WHEN typeof(id) != 'text' THEN ' id' ELSE '' END || CASE WHEN typeof(name) NOT IN ('text', 'null') THEN ' name' ELSE '' END || CASE WHEN typeof(task) NOT IN ('text') THEN ' task' ELSE '' END || CASE WHEN typeof(args) NOT IN ('text') THEN ' args' ELSE '' END || CASE WHEN typeof(trigger) NOT IN ('text') THEN ' trigger' ELSE '' END || CASE WHEN typeof(options) NOT IN ('text') THEN ' options' ELSE '' END || CASE WHEN typeof(next_run_at) NOT IN ('integer', 'null') THEN ' next_run_at' ELSE '' END || CASE WHEN typeof(paused) NOT IN ('text', 'null') THEN ' paused' ELSE '' END || CASE WHEN typeof(last_run_at) NOT IN ('integer', 'null') THEN ' last_run_at' ELSE '' END || CASE WHEN typeof(last_status) NOT IN ('text', 'null') THEN ' last_status' ELSE '' END || CASE WHEN typeof(version) NOT IN ('integer') THEN ' version' ELSE '' END || CASE WHEN typeof(code_hash) NOT IN ('text', 'null') THEN ' code_hash' ELSE '' END, ''))"
    };
}

/// The due jobs a claim takes: now, the task names (a JSON array), how many.
/// Read in the order of the `chime_job_due` index, so a herd due on one
/// second is not sorted whole on every claim (a test holds the plan).
///
/// The rows come back as one JSON array ([`due_rows`] reads it): a row at a
/// time, each crosses sqlx's worker thread on its own, and a batch is
/// hundreds. A mistyped row is marked broken rather than failing the claim
/// of every job. (`SELECT *` inside is read by this statement alone, column
/// by name, never by sqlx.)
const DUE_JOBS: &str = concat!(
    "SELECT COALESCE(json_group_array(json_array(",
    guarded_job_columns!(),
    ")), '[]') FROM (SELECT * FROM chime_job WHERE typeof(id) = 'text' AND next_run_at IS NOT NULL \
     AND paused IS NULL AND broken IS NULL AND next_run_at <= ? AND task IN (SELECT value FROM json_each(?)) \
     ORDER BY next_run_at, id LIMIT ?)"
);

/// Every job row, mistyped values guarded: what `broken_jobs` reads.
pub(crate) const EVERY_JOB_GUARDED: &str = concat!("SELECT ", guarded_job_columns!(), " FROM chime_job ORDER BY id");

/// A row of [`guarded_job_columns!`]: the columns of [`JobRow`], null when
/// of the wrong type, then the row's problem.
pub(crate) type GuardedColumns = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// The job row of [`GuardedColumns`]; a mistyped one is broken (its
/// `decode` says why).
pub(crate) fn guarded_row(
    (id, name, task, args, trigger, options, next_run_at, paused, last_run_at, last_status, version, code_hash, broken): GuardedColumns,
) -> JobRow {
    JobRow {
        id,
        name,
        task: task.unwrap_or_default(),
        args: args.unwrap_or_default(),
        trigger: trigger.unwrap_or_default(),
        options: options.unwrap_or_default(),
        next_run_at,
        paused,
        last_run_at,
        last_status,
        version: version.unwrap_or_default(),
        code_hash,
        broken,
    }
}

/// The rows of a [`DUE_JOBS`] answer.
fn due_rows(json: &str) -> std::result::Result<Vec<JobRow>, serde_json::Error> {
    let rows: Vec<GuardedColumns> = serde_json::from_str(json)?;
    Ok(rows.into_iter().map(guarded_row).collect())
}

/// The task names as a JSON array, for `IN (SELECT value FROM json_each(?))`.
fn task_list(tasks: &[Arc<str>]) -> String {
    serde_json::to_string(&tasks.iter().map(|t| &**t).collect::<Vec<&str>>()).expect("strings serialize")
}

/// Extends the lease inside the caller's transaction, or says it is lost.
pub(crate) async fn renew(
    conn: &mut SqliteConnection,
    lease: &Lease,
    ttl: SignedDuration,
    now: Timestamp,
) -> sqlx::Result<Option<Lease>> {
    let expires_at = now.checked_add(ttl).unwrap_or(Timestamp::MAX);
    let done = sqlx::query("UPDATE chime_node SET heartbeat_at = ?, expires_at = ? WHERE id = ? AND epoch = ?")
        .bind(micros(now))
        .bind(micros(expires_at))
        .bind(&*lease.node)
        .bind(lease.epoch as i64)
        .execute(&mut *conn)
        .await?;
    Ok((done.rows_affected() == 1).then(|| Lease { expires_at, ..lease.clone() }))
}

fn lost(lease: &Lease) -> Error {
    Error::LeaseLost { node: lease.node.to_string(), epoch: lease.epoch }
}

impl SqliteStore {
    /// # Implementation
    ///
    /// One `BEGIN IMMEDIATE` transaction per batch: renew the lease; take the
    /// requested runs no node holds; read the due jobs of this node's tasks;
    /// count their runs in flight; insert every planned run
    /// (`ON CONFLICT DO NOTHING RETURNING id`, so a time that already has a
    /// run is not run again); advance every job's next fire time.
    pub(crate) async fn claim(&self, req: &ClaimRequest<'_>) -> Result<Vec<Claim>> {
        let fail = |e| self.err("claiming due jobs", e);
        let now = req.now;
        let tasks = task_list(req.tasks);
        let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
        let Some(lease) = renew(&mut tx, req.lease, req.ttl, now).await.map_err(fail)? else {
            return Err(lost(req.lease));
        };
        let mut claims = self.claim_requested(&mut tx, req, &lease, &tasks).await?;

        let due: String = sqlx::query_scalar(DUE_JOBS)
            .bind(micros(now))
            .bind(&tasks)
            .bind(req.limit.saturating_sub(claims.len()).min(i64::MAX as usize) as i64)
            .fetch_one(&mut *tx)
            .await
            .map_err(fail)?;
        let rows = due_rows(&due).map_err(|e| fail(sqlx::Error::Decode(Box::new(e))))?;

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
            return Ok(claims);
        }

        let placeholders = vec!["?"; jobs.len()].join(", ");
        let sql =
            format!("SELECT job_id, id FROM chime_run WHERE status IN {IN_FLIGHT} AND job_id IN ({placeholders})");
        let mut q = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql));
        for job in &jobs {
            q = q.bind(job.id.as_str().to_owned());
        }
        let mut running: HashMap<String, Vec<String>> = HashMap::new();
        for (job_id, run_id) in q.fetch_all(&mut *tx).await.map_err(fail)? {
            running.entry(job_id).or_default().push(run_id);
        }

        let mut planned = Vec::with_capacity(jobs.len());
        for mut job in jobs {
            let in_flight = running.get(job.id.as_str()).map_or_else(Vec::new, |ids| run_ids(ids));
            let plan = plan_fire(&job, now, &in_flight);
            job.state.next_run_at = plan.next_run_at;
            let uncounted = plan.uncounted;
            let runs = plan.into_runs(&job.id, now, &lease);
            planned.push((job, runs, uncounted));
        }

        // Insert every planned run; keep those that really were inserted.
        let all_runs: Vec<&Run> = planned.iter().flat_map(|(_, runs, _)| runs.iter()).collect();
        let mut inserted = std::collections::HashSet::new();
        for chunk in all_runs.chunks(crate::ROWS_PER_STATEMENT) {
            // Not `RETURNING id`: that sends each row across sqlx's worker
            // thread on its own. The ids are new, so when a time already
            // had a run (rare) those that exist now are the ones inserted.
            let sql = format!(
                "INSERT INTO chime_run {RUN_COLUMNS} VALUES {} ON CONFLICT (job_id, scheduled_for) DO NOTHING",
                run_rows(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for run in chunk {
                q = bind_run!(q, run);
            }
            let ids = chunk.iter().map(|r| r.id.to_string());
            if q.execute(&mut *tx).await.map_err(fail)?.rows_affected() == chunk.len() as u64 {
                inserted.extend(ids);
                continue;
            }
            let ids: Vec<String> = ids.collect();
            let sql = format!(
                "SELECT COALESCE(json_group_array(id), '[]') FROM chime_run WHERE id IN ({})",
                vec!["?"; ids.len()].join(", ")
            );
            let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
            for id in &ids {
                q = q.bind(id);
            }
            let found: Vec<String> = serde_json::from_str(&q.fetch_one(&mut *tx).await.map_err(fail)?)
                .map_err(|e| fail(sqlx::Error::Decode(Box::new(e))))?;
            inserted.extend(found);
        }

        // The next fire time is runtime state: the definition's version is
        // not bumped, so an edit from the CLI does not conflict with every fire.
        for chunk in planned.chunks(crate::ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE chime_job SET next_run_at = CASE id {} END WHERE id IN ({})",
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

        claims.extend(planned.into_iter().map(|(job, runs, uncounted)| {
            // A time that already had a run was claimed before: not run again.
            let runs = runs.into_iter().filter(|r| inserted.contains(&r.id.to_string())).collect();
            Claim { job, runs, uncounted }
        }));
        Ok(claims)
    }

    /// Takes the requested and re-queued runs that no node holds, for jobs of
    /// this node's tasks. One whose job is gone or broken is cancelled.
    async fn claim_requested(
        &self,
        tx: &mut SqliteConnection,
        req: &ClaimRequest<'_>,
        lease: &Lease,
        tasks: &str,
    ) -> Result<Vec<Claim>> {
        let fail = |e| self.err("claiming requested runs", e);
        let waiting: Vec<RunRow> = sqlx::query_as(concat!(
            "SELECT ",
            chime_sql::run_fields_of_r!(),
            " FROM chime_run r LEFT JOIN chime_job j ON j.id = r.job_id \
             WHERE r.status = 'pending' AND r.node IS NULL AND r.scheduled_for <= ? \
             AND (j.id IS NULL OR j.task IN (SELECT value FROM json_each(?))) ORDER BY r.scheduled_for LIMIT ?"
        ))
        .bind(micros(req.now))
        .bind(tasks)
        .bind(req.limit.min(i64::MAX as usize) as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(fail)?;
        let mut claims = Vec::with_capacity(waiting.len());
        for row in waiting {
            let run_id = row.id.clone();
            let job = match self.read_job_in(&mut *tx, &row.job_id).await? {
                Some(job) => job.decode().map_err(|_| CancelledBy::Unreadable),
                None => Err(CancelledBy::JobMissing),
            };
            let run = row.decode();
            match (job, run) {
                (Ok(job), Ok(mut run)) => {
                    sqlx::query("UPDATE chime_run SET node = ?, epoch = ? WHERE id = ?")
                        .bind(&*lease.node)
                        .bind(lease.epoch as i64)
                        .bind(&run_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                    run.node = Some(Arc::clone(&lease.node));
                    run.epoch = Some(lease.epoch);
                    claims.push(Claim { job, runs: vec![run], uncounted: 0 });
                }
                (job, _) => {
                    let by = job.err().unwrap_or(CancelledBy::Unreadable);
                    let why = Reason::Cancelled { by, stage: Stage::BeforeStart };
                    sqlx::query("UPDATE chime_run SET status = 'cancelled', finished_at = ?, error = ?, reason = ? WHERE id = ?")
                        .bind(micros(req.now))
                        .bind(why.to_string())
                        .bind(why.to_json())
                        .bind(&run_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                }
            }
        }
        Ok(claims)
    }

    async fn read_job_in(&self, conn: &mut SqliteConnection, id: &str) -> Result<Option<JobRow>> {
        sqlx::query_as::<_, JobRow>(concat!("SELECT ", chime_sql::job_fields!(), " FROM chime_job WHERE id = ?"))
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(|e| self.err("reading a job", e))
    }

    /// The earliest time a claim would find something, of the rows
    /// [`DUE_JOBS`] reads: a due row it never reads (an id that is not text,
    /// edited by hand) woke the loop at once, forever. A `broken_jobs` pass
    /// marks such a row.
    pub(crate) async fn next_due(&self, tasks: &[Arc<str>]) -> Result<Option<Timestamp>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(t) FROM ( \
                 SELECT MIN(next_run_at) AS t FROM chime_job WHERE next_run_at IS NOT NULL AND paused IS NULL \
                     AND broken IS NULL AND task IN (SELECT value FROM json_each(?1)) AND typeof(id) = 'text' \
                 UNION ALL \
                 SELECT MIN(r.scheduled_for) FROM chime_run r LEFT JOIN chime_job j ON j.id = r.job_id \
                     WHERE r.status = 'pending' AND r.node IS NULL \
                     AND (j.id IS NULL OR j.task IN (SELECT value FROM json_each(?1))))",
        )
        .bind(task_list(tasks))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err("reading the next due time", e))?;
        next.map(|us| self.instant(us)).transpose()
    }

    /// # Implementation
    ///
    /// Waits for queued run writes (so a run that just finished no longer
    /// counts), then in one `BEGIN IMMEDIATE` transaction: read the job,
    /// check the lease, count runs in flight, insert the run.
    pub(crate) async fn request(&self, id: &JobId, now: Timestamp, lease: Option<&Lease>) -> Result<Run> {
        self.flush_runs().await?;
        let fail = |e| self.err("requesting a run", e);
        let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
        let row = self.read_job_in(&mut tx, id.as_str()).await?.ok_or_else(|| Error::JobNotFound(id.clone()))?;
        let job: Job = self.decode(row)?;
        if let Some(lease) = lease {
            let held: Option<i64> = sqlx::query_scalar("SELECT epoch FROM chime_node WHERE id = ? AND epoch = ?")
                .bind(&*lease.node)
                .bind(lease.epoch as i64)
                .fetch_optional(&mut *tx)
                .await
                .map_err(fail)?;
            if held.is_none() {
                return Err(lost(lease));
            }
        }
        let in_flight: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT id FROM chime_run WHERE job_id = ? AND status IN {IN_FLIGHT}"
        )))
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(fail)?;
        let mut run = chime_core::requested_run(&job, &run_ids(&in_flight), now, now, lease);
        self.insert_at_free_time(&mut tx, &mut run).await?;
        tx.commit().await.map_err(fail)?;
        self.changed();
        Ok(run)
    }

    /// Inserts `run` at its scheduled time or, as runs are unique per job
    /// and time (two requests in one microsecond), the next free one.
    async fn insert_at_free_time(&self, tx: &mut SqliteConnection, run: &mut Run) -> Result<()> {
        let fail = |e| self.err("inserting a run", e);
        for _ in 0..1000 {
            if crate::rows::insert_run(&mut *tx, run).await.map_err(fail)? == 1 {
                return Ok(());
            }
            run.scheduled_for = run.scheduled_for.checked_add(SignedDuration::from_micros(1)).map_err(|_| {
                Error::Store { message: format!("{}: no free time for a run", self.location), transient: false }
            })?;
        }
        Err(Error::Store {
            message: format!("{}: no free time for a run of {:?}", self.location, run.job_id.as_str()),
            transient: true,
        })
    }

    /// An alert's notification, in one write transaction: the job's episode
    /// marked (unless it was already), the hook's run queued.
    pub(crate) async fn notify(&self, job: &JobId, episode: Timestamp, mut hook: Run) -> Result<bool> {
        let fail = |e| self.err("notifying an alert", e);
        let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
        let marked = sqlx::query(
            "UPDATE chime_job SET alert_notified = ?1 WHERE id = ?2 AND (alert_notified IS NULL OR alert_notified < ?1)",
        )
        .bind(micros(episode))
        .bind(job.as_str())
        .execute(&mut *tx)
        .await
        .map_err(fail)?
        .rows_affected();
        if marked == 0 {
            return match self.read_job_in(&mut tx, job.as_str()).await? {
                Some(_) => Ok(false),
                None => Err(Error::JobNotFound(job.clone())),
            };
        }
        self.insert_at_free_time(&mut tx, &mut hook).await?;
        tx.commit().await.map_err(fail)?;
        self.changed();
        Ok(true)
    }

    /// A backfill of `at`, in one write transaction: read the job's run for
    /// that time, decide with `backfill_run`, queue it.
    pub(crate) async fn backfill(&self, id: &JobId, at: Timestamp) -> Result<Option<Run>> {
        self.flush_runs().await?;
        let fail = |e| self.err("requesting a backfill", e);
        let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
        if self.read_job_in(&mut tx, id.as_str()).await?.is_none() {
            return Err(Error::JobNotFound(id.clone()));
        }
        let existing: Option<RunRow> = sqlx::query_as(concat!(
            "SELECT ",
            chime_sql::run_fields!(),
            " FROM chime_run WHERE job_id = ? AND scheduled_for = ?"
        ))
        .bind(id.as_str())
        .bind(micros(at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(fail)?;
        let existing = existing.map(RunRow::decode).transpose().map_err(|problem| Error::Store {
            message: format!("{}: the run of {id:?} at {at} does not decode: {problem}", self.location),
            transient: false,
        })?;
        let Some(run) = chime_core::backfill_run(id, at, existing.as_ref()) else { return Ok(None) };
        match &existing {
            Some(old) => {
                sqlx::query(
                    "UPDATE chime_run SET kind = 'backfill', status = 'pending', node = NULL, epoch = NULL, \
                     started_at = NULL, finished_at = NULL, attempt = 0, error = ?, reason = NULL, output = NULL, \
                     late_result = NULL WHERE id = ? AND status = ?",
                )
                .bind(run.error.as_deref())
                .bind(run.id.to_string())
                .bind(old.status.as_str())
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            }
            None => {
                crate::rows::insert_run(&mut *tx, &run).await.map_err(fail)?;
            }
        }
        tx.commit().await.map_err(fail)?;
        self.changed();
        Ok(Some(run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With only `next_run_at` indexed, SQLite sorted every due job on each
    /// claim ("USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"): 13 ms for a
    /// herd of 20,000 on one second, for a batch of 64.
    #[tokio::test]
    async fn the_claim_reads_due_jobs_in_index_order_without_sorting_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("plan.db").display())).await.unwrap();
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {DUE_JOBS}")))
                .bind(0_i64)
                .bind(r#"["t"]"#)
                .bind(64_i64)
                .fetch_all(&store.pool)
                .await
                .unwrap();
        let steps: Vec<&str> = plan.iter().map(|(_, _, _, step)| step.as_str()).collect();
        assert!(steps.iter().any(|s| s.contains("USING INDEX chime_job_due")), "{steps:?}");
        assert!(!steps.iter().any(|s| s.contains("TEMP B-TREE")), "{steps:?}");
    }
}
