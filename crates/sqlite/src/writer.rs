//! The group-commit run writer: run updates queue up and one task writes
//! whatever has queued in one transaction, so a burst of runs costs a few
//! transactions, not two per run.
//!
//! Every update is fenced: it applies only while the stored run is pending or
//! running, held by the same node and lease epoch, and that lease still exists. A fenced-out finish is
//! kept as the run's `late_result` and its caller gets `LeaseLost`.
//!
//! Nothing queued is lost while the process lives: a batch that fails with a
//! transient error (a busy database) is tried again; one that fails for good
//! is split, and each run written alone, so one bad row cannot lose the others.
//! When the store is dropped the writer drains the queue before it stops.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chime_core::{Error, Run, RunId};
use sqlx::{AssertSqlSafe, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::rows::micros;
use crate::store_error;

/// Runs per group-commit transaction, at most.
const MAX_RUN_BATCH: usize = 1024;

/// How often a batch failing with a transient error is tried again before it is split.
const TRANSIENT_RETRIES: u32 = 5;

/// The outcome of one queued update, as its caller learns it.
#[derive(Clone, Debug)]
pub(crate) enum Written {
    Applied,
    /// Fenced out: the run is no longer held by its node and epoch.
    LeaseLost,
    Failed {
        message: String,
        transient: bool,
    },
}

impl Written {
    pub(crate) fn into_result(self, run: Option<&Run>) -> chime_core::Result<()> {
        match self {
            Written::Applied => Ok(()),
            Written::LeaseLost => Err(Error::LeaseLost {
                node: run.and_then(|r| r.node.as_deref()).unwrap_or("").to_owned(),
                epoch: run.and_then(|r| r.epoch).unwrap_or(0),
            }),
            Written::Failed { message, transient } => Err(Error::Store { message, transient }),
        }
    }
}

/// A run update (or, with `None`, a barrier: "tell me when everything queued
/// before me is written") and where to send its outcome.
pub(crate) type RunWrite = (Option<Run>, oneshot::Sender<Written>);

/// The writer task: runs until every sender is dropped and the queue is empty.
pub(crate) async fn run_writer(pool: SqlitePool, location: String, mut queue: mpsc::UnboundedReceiver<RunWrite>) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_RUN_BATCH).await > 0 {
        let runs: Vec<&Run> = batch.iter().filter_map(|(run, _)| run.as_ref()).collect();
        let outcomes = write_with_retries(&pool, &location, &runs).await;
        let mut outcomes = outcomes.into_iter();
        for (run, reply) in batch.drain(..) {
            let outcome = match run {
                Some(_) => outcomes.next().expect("one outcome per run"),
                None => Written::Applied,
            };
            let _ = reply.send(outcome);
        }
    }
}

/// Writes a batch, trying again on transient errors and splitting it when it
/// keeps failing. One outcome per run, in order.
async fn write_with_retries(pool: &SqlitePool, location: &str, runs: &[&Run]) -> Vec<Written> {
    if runs.is_empty() {
        return Vec::new();
    }
    let mut tries = 0;
    let error = loop {
        match write_runs(pool, runs).await {
            Ok(applied) => return applied,
            Err(e) => {
                let err = store_error(location, "recording runs", &e);
                if err.is_transient() && tries < TRANSIENT_RETRIES {
                    tries += 1;
                    tracing::warn!(runs = runs.len(), error = %err, attempt = tries, "run history write failed; trying again");
                    tokio::time::sleep(Duration::from_millis(50 << tries)).await;
                    continue;
                }
                break err;
            }
        }
    };
    if runs.len() == 1 {
        tracing::error!(run_id = %runs[0].id, job_id = %runs[0].job_id, error = %error, "run history write failed");
        let transient = error.is_transient();
        return vec![Written::Failed { message: error.to_string(), transient }];
    }
    // One bad row must not lose the others: write each alone.
    tracing::warn!(runs = runs.len(), error = %error, "run history batch failed; writing its runs one by one");
    let mut outcomes = Vec::with_capacity(runs.len());
    for run in runs {
        outcomes.extend(Box::pin(write_with_retries(pool, location, std::slice::from_ref(run))).await);
    }
    outcomes
}

/// One transaction: every update fenced by node, epoch and status, in
/// multi-row statements; the jobs' last run and status from their latest
/// applied finish. Within a batch only a run's latest update is written: it
/// carries the whole run, so it applies exactly when the earlier ones would.
async fn write_runs(pool: &SqlitePool, runs: &[&Run]) -> sqlx::Result<Vec<Written>> {
    let mut latest: HashMap<RunId, &Run> = HashMap::with_capacity(runs.len());
    for run in runs {
        latest.insert(run.id, run);
    }
    let unique: Vec<&Run> = latest.values().copied().collect();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut applied: HashSet<String> = HashSet::with_capacity(unique.len());
    // 100 rows of 9 parameters stay well under SQLite's parameter limit.
    for chunk in unique.chunks(100) {
        let sql = format!(
            "WITH v (id, status, started_at, finished_at, attempt, error, output, node, epoch) AS (VALUES {}) \
             UPDATE chime_run SET status = v.status, started_at = v.started_at, finished_at = v.finished_at, \
             attempt = v.attempt, error = v.error, output = v.output FROM v \
             WHERE chime_run.id = v.id AND chime_run.node = v.node AND chime_run.epoch = v.epoch \
             AND chime_run.status IN ('pending', 'running') \
             AND EXISTS (SELECT 1 FROM chime_node n WHERE n.id = v.node AND n.epoch = v.epoch) RETURNING chime_run.id",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
        for run in chunk {
            q = q
                .bind(run.id.to_string())
                .bind(run.status.as_str())
                .bind(run.started_at.map(micros))
                .bind(run.finished_at.map(micros))
                .bind(i64::from(run.attempt))
                .bind(run.error.clone())
                .bind(run.output.clone())
                .bind(run.node.as_deref().map(str::to_owned))
                .bind(run.epoch.map(|e| e as i64));
        }
        applied.extend(q.fetch_all(&mut *tx).await?);
    }
    let mut last: Vec<&Run> = Vec::new();
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
        match last.iter_mut().find(|l| l.job_id == run.job_id) {
            Some(l) if l.finished_at <= run.finished_at => *l = run,
            Some(_) => {}
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
    tx.commit().await?;
    Ok(runs
        .iter()
        .map(|run| if applied.contains(&run.id.to_string()) { Written::Applied } else { Written::LeaseLost })
        .collect())
}
