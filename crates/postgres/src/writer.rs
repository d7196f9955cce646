//! How PostgreSQL writes a batch of run updates for chime-sql's group-commit
//! writer: one fenced `UPDATE … FROM UNNEST(…)` for the whole batch, the late
//! results of fenced-out finishes, and the jobs' last run, in one transaction.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use chime_core::{Result, Run, RunId};
use chime_sql::micros;
use chime_sql::writer::WriteBatch;
use sqlx::PgPool;

use crate::store_error;

/// The PostgreSQL side of the writer.
pub(crate) struct PgBatch {
    pub(crate) pool: PgPool,
    pub(crate) shown: String,
    /// Set the idle-in-transaction bound in each transaction (see `PostgresStore::from_pool`).
    pub(crate) bound_each_tx: bool,
}

impl WriteBatch for PgBatch {
    fn write<'a>(&'a self, runs: &'a [&'a Run]) -> Pin<Box<dyn Future<Output = Result<Vec<bool>>> + Send + 'a>> {
        Box::pin(async move {
            write_runs(&self.pool, self.bound_each_tx, runs)
                .await
                .map_err(|e| store_error(&self.shown, "recording runs", &e))
        })
    }
}

async fn write_runs(pool: &PgPool, bound_each_tx: bool, runs: &[&Run]) -> sqlx::Result<Vec<bool>> {
    // Only a run's latest update in the batch is written: it carries the whole run.
    let mut latest: HashMap<RunId, &Run> = HashMap::with_capacity(runs.len());
    for run in runs {
        latest.insert(run.id, run);
    }
    let unique: Vec<&Run> = latest.values().copied().collect();
    let column = |f: &dyn Fn(&Run) -> Option<String>| unique.iter().map(|r| f(r)).collect::<Vec<Option<String>>>();
    let number = |f: &dyn Fn(&Run) -> Option<i64>| unique.iter().map(|r| f(r)).collect::<Vec<Option<i64>>>();
    let mut tx = crate::begin(pool, bound_each_tx).await?;
    let applied: Vec<String> = sqlx::query_scalar(
        "UPDATE chime_run r SET status = v.status, started_at = v.started_at, finished_at = v.finished_at, \
         attempt = v.attempt, error = v.error, reason = v.reason, output = v.output \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[]) \
             AS v(id, status, started_at, finished_at, attempt, error, reason, output, node, epoch) \
         WHERE r.id = v.id AND r.node = v.node AND r.epoch = v.epoch AND r.status IN ('pending', 'running') \
         AND r.attempt <= v.attempt \
         AND EXISTS (SELECT 1 FROM chime_node n WHERE n.id = v.node AND n.epoch = v.epoch) RETURNING r.id",
    )
    .bind(column(&|r| Some(r.id.to_string())))
    .bind(column(&|r| Some(r.status.as_str().to_owned())))
    .bind(number(&|r| r.started_at.map(micros)))
    .bind(number(&|r| r.finished_at.map(micros)))
    .bind(number(&|r| Some(i64::from(r.attempt))))
    .bind(column(&|r| r.error.clone()))
    .bind(column(&|r| chime_sql::reason_json(r)))
    .bind(column(&|r| r.output.clone()))
    .bind(column(&|r| r.node.as_deref().map(str::to_owned)))
    .bind(number(&|r| r.epoch.map(|e| e as i64)))
    .fetch_all(&mut *tx)
    .await?;
    let applied: HashSet<String> = applied.into_iter().collect();

    let late: Vec<&Run> =
        unique.iter().copied().filter(|r| r.status.is_finished() && !applied.contains(&r.id.to_string())).collect();
    if !late.is_empty() {
        sqlx::query("UPDATE chime_run r SET late_result = v.late FROM UNNEST($1::TEXT[], $2::TEXT[]) AS v(id, late) WHERE r.id = v.id")
            .bind(late.iter().map(|r| r.id.to_string()).collect::<Vec<_>>())
            .bind(late.iter().map(|r| r.late_result_text()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
    }
    // The jobs' last run and status, from their latest applied finish.
    let mut last: HashMap<&str, &Run> = HashMap::new();
    for run in unique.iter().filter(|r| r.status.is_finished() && applied.contains(&r.id.to_string())) {
        let entry = last.entry(run.job_id.as_str()).or_insert(run);
        if entry.finished_at <= run.finished_at {
            *entry = run;
        }
    }
    if !last.is_empty() {
        let finished: Vec<&Run> = last.into_values().collect();
        sqlx::query(
            "UPDATE chime_job j SET last_run_at = COALESCE(v.started, j.last_run_at), last_status = v.status \
             FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[]) AS v(id, started, status) WHERE j.id = v.id",
        )
        .bind(finished.iter().map(|r| r.job_id.as_str().to_owned()).collect::<Vec<_>>())
        .bind(finished.iter().map(|r| r.started_at.map(micros)).collect::<Vec<_>>())
        .bind(finished.iter().map(|r| r.status.as_str().to_owned()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(runs.iter().map(|r| applied.contains(&r.id.to_string())).collect())
}
