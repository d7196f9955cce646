//! How SQLite writes a batch of run updates for chime-sql's group-commit
//! writer: one multi-row fenced `UPDATE … FROM (VALUES …)`, the late results
//! of fenced-out finishes, and the jobs' last run, in one transaction.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use chime_core::{Result, Run, RunId};
use chime_sql::writer::WriteBatch;
use sqlx::{AssertSqlSafe, SqlitePool};

use crate::rows::micros;
use crate::store_error;

/// The SQLite side of the writer.
pub(crate) struct SqliteBatch {
    pub(crate) pool: SqlitePool,
    pub(crate) location: String,
}

impl WriteBatch for SqliteBatch {
    fn write<'a>(&'a self, runs: &'a [&'a Run]) -> Pin<Box<dyn Future<Output = Result<Vec<bool>>> + Send + 'a>> {
        Box::pin(async move {
            write_runs(&self.pool, runs).await.map_err(|e| store_error(&self.location, "recording runs", &e))
        })
    }
}

/// Whether the fence admits the update `v` of a run: the run is still in
/// flight, held by the update's node and lease epoch at an attempt no newer,
/// and that lease still exists.
const FENCE: &str = "chime_run.node = v.node AND chime_run.epoch = v.epoch \
     AND chime_run.status IN ('pending', 'running') AND chime_run.attempt <= v.attempt \
     AND EXISTS (SELECT 1 FROM chime_node n WHERE n.id = v.node AND n.epoch = v.epoch)";

/// One transaction: every update fenced by node, epoch, attempt and status, in
/// multi-row statements; the jobs' last run and status from their latest
/// applied finish. Within a batch only a run's latest update is written: it
/// carries the whole run, so it applies exactly when the earlier ones would.
async fn write_runs(pool: &SqlitePool, runs: &[&Run]) -> sqlx::Result<Vec<bool>> {
    let mut latest: HashMap<RunId, &Run> = HashMap::with_capacity(runs.len());
    for run in runs {
        latest.insert(run.id, run);
    }
    let unique: Vec<&Run> = latest.values().copied().collect();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut applied: HashSet<String> = HashSet::with_capacity(unique.len());
    for chunk in unique.chunks(crate::ROWS_PER_STATEMENT) {
        // Which updates the fence admits, as one row: `RETURNING` would send
        // each updated row across sqlx's worker thread on its own, two rows a
        // run (its start and its finish), and those hand-offs were most of
        // what a run cost on SQLite. In this write transaction nothing
        // changes between this read and the update, which repeats the fence.
        let sql = format!(
            "WITH v (id, attempt, node, epoch) AS (VALUES {}) \
             SELECT COALESCE(json_group_array(chime_run.id), '[]') FROM chime_run JOIN v ON chime_run.id = v.id \
             WHERE {FENCE}",
            vec!["(?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
        for run in chunk {
            q = q
                .bind(run.id.to_string())
                .bind(i64::from(run.attempt))
                .bind(run.node.as_deref().map(str::to_owned))
                .bind(run.epoch.map(|e| e as i64));
        }
        let admitted: Vec<String> =
            serde_json::from_str(&q.fetch_one(&mut *tx).await?).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        if admitted.is_empty() {
            continue;
        }
        let sql = format!(
            "WITH v (id, status, started_at, finished_at, attempt, error, reason, output, node, epoch) AS (VALUES {}) \
             UPDATE chime_run SET status = v.status, started_at = v.started_at, finished_at = v.finished_at, \
             attempt = v.attempt, error = v.error, reason = v.reason, output = v.output FROM v \
             WHERE chime_run.id = v.id AND {FENCE}",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for run in chunk {
            q = q
                .bind(run.id.to_string())
                .bind(run.status.as_str())
                .bind(run.started_at.map(micros))
                .bind(run.finished_at.map(micros))
                .bind(i64::from(run.attempt))
                .bind(run.error.clone())
                .bind(chime_sql::reason_json(run))
                .bind(run.output.clone())
                .bind(run.node.as_deref().map(str::to_owned))
                .bind(run.epoch.map(|e| e as i64));
        }
        q.execute(&mut *tx).await?;
        applied.extend(admitted);
    }
    // The jobs' last run and status, from their latest applied finish (a
    // map: a batch holds thousands of runs, one or more per job).
    let mut last: HashMap<&str, &Run> = HashMap::new();
    for run in &unique {
        let was_applied = applied.contains(&run.id.to_string());
        if !run.status.is_finished() {
            continue;
        }
        if !was_applied {
            sqlx::query("UPDATE chime_run SET late_result = ? WHERE id = ?")
                .bind(run.late_result_text())
                .bind(run.id.to_string())
                .execute(&mut *tx)
                .await?;
            continue;
        }
        let entry = last.entry(run.job_id.as_str()).or_insert(run);
        if entry.finished_at <= run.finished_at {
            *entry = run;
        }
    }
    let last: Vec<&Run> = last.into_values().collect();
    for chunk in last.chunks(crate::ROWS_PER_STATEMENT) {
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
    tx.commit().await?;
    Ok(runs.iter().map(|run| applied.contains(&run.id.to_string())).collect())
}
