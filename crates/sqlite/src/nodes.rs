//! Nodes, leases and the sweeper on SQLite. Expiry is judged on the host's
//! clock (every process sharing a SQLite file runs on one host).

use std::sync::Arc;

use chime_core::{Error, JobOptions, Lease, NodeInfo, NodeRegistration, Result, Run, SweptRun, sweep_run};
use jiff::{SignedDuration, Timestamp};
use sqlx::AssertSqlSafe;

use crate::SqliteStore;
use crate::claim::renew;
use crate::rows::{IN_FLIGHT, RunRow, micros, reason_json};

#[derive(sqlx::FromRow)]
struct NodeRow {
    epoch: i64,
    id: String,
    host: String,
    pid: i64,
    version: String,
    started_at: i64,
    heartbeat_at: i64,
    expires_at: i64,
    running: i64,
}

/// A run held by a lease the store no longer has, and its job's options.
#[derive(sqlx::FromRow)]
struct Orphan {
    #[sqlx(flatten)]
    run: RunRow,
    job_options: Option<String>,
}

impl SqliteStore {
    pub(crate) async fn register(&self, node: &NodeRegistration, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        let fail = |e| self.err("registering a node", e);
        let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
        let held: Option<i64> = sqlx::query_scalar("SELECT expires_at FROM chime_node WHERE id = ?")
            .bind(&*node.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(fail)?;
        if let Some(until) = held
            && until >= micros(now)
        {
            return Err(Error::NodeIdInUse { id: node.id.to_string(), until: self.instant(until)? });
        }
        // An expired row of this id goes; the sweeper decides its runs.
        sqlx::query("DELETE FROM chime_node WHERE id = ?").bind(&*node.id).execute(&mut *tx).await.map_err(fail)?;
        let expires_at = now.checked_add(ttl).unwrap_or(Timestamp::MAX);
        let epoch: i64 = sqlx::query_scalar(
            "INSERT INTO chime_node (id, host, pid, version, started_at, heartbeat_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING epoch",
        )
        .bind(&*node.id)
        .bind(&node.host)
        .bind(i64::from(node.pid))
        .bind(&node.version)
        .bind(micros(now))
        .bind(micros(now))
        .bind(micros(expires_at))
        .fetch_one(&mut *tx)
        .await
        .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok(Lease { node: Arc::clone(&node.id), epoch: epoch as u64, expires_at })
    }

    pub(crate) async fn renew(&self, lease: &Lease, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.err("renewing a lease", e))?;
        renew(&mut conn, lease, ttl, now)
            .await
            .map_err(|e| self.err("renewing a lease", e))?
            .ok_or_else(|| Error::LeaseLost { node: lease.node.to_string(), epoch: lease.epoch })
    }

    pub(crate) async fn release(&self, lease: &Lease) -> Result<()> {
        sqlx::query("DELETE FROM chime_node WHERE id = ? AND epoch = ?")
            .bind(&*lease.node)
            .bind(lease.epoch as i64)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err("ending a lease", e))?;
        Ok(())
    }

    pub(crate) async fn list_nodes(&self) -> Result<Vec<NodeInfo>> {
        self.flush_runs().await?;
        let rows: Vec<NodeRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT n.*, (SELECT COUNT(*) FROM chime_run r WHERE r.node = n.id AND r.epoch = n.epoch \
             AND r.status IN {IN_FLIGHT}) AS running FROM chime_node n ORDER BY n.id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("listing nodes", e))?;
        rows.into_iter()
            .map(|r| {
                Ok(NodeInfo {
                    id: r.id,
                    epoch: r.epoch as u64,
                    host: r.host,
                    pid: u32::try_from(r.pid).unwrap_or(0),
                    version: r.version,
                    started_at: self.instant(r.started_at)?,
                    heartbeat_at: self.instant(r.heartbeat_at)?,
                    lease_expires_at: self.instant(r.expires_at)?,
                    running: u32::try_from(r.running).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// # Implementation
    ///
    /// One `BEGIN IMMEDIATE` transaction: delete the expired nodes, then
    /// decide every in-flight run whose (node, epoch) has no row. The write
    /// lock serializes sweepers, so the second finds nothing left to decide.
    pub(crate) async fn sweep_expired(&self, now: Timestamp) -> Result<Vec<SweptRun>> {
        let fail = |e| self.err("sweeping expired nodes", e);
        let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?;
        sqlx::query("DELETE FROM chime_node WHERE expires_at < ?")
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        let orphans: Vec<Orphan> = sqlx::query_as(AssertSqlSafe(format!(
            concat!(
                "SELECT ",
                chime_sql::run_fields_of_r!(),
                ", j.options AS job_options FROM chime_run r LEFT JOIN chime_job j ON j.id = r.job_id \
             WHERE r.status IN {IN_FLIGHT} AND r.node IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM chime_node n WHERE n.id = r.node AND n.epoch IS r.epoch)"
            ),
            IN_FLIGHT = IN_FLIGHT
        )))
        .fetch_all(&mut *tx)
        .await
        .map_err(fail)?;
        let mut swept = Vec::with_capacity(orphans.len());
        for orphan in orphans {
            let run_id = orphan.run.id.clone();
            let mut run: Run = match orphan.run.decode() {
                Ok(run) => run,
                Err(problem) => {
                    tracing::error!(run_id, %problem, "an unfinished run of an expired node does not decode; marked abandoned");
                    sqlx::query("UPDATE chime_run SET status = 'abandoned', finished_at = ?, error = ? WHERE id = ?")
                        .bind(micros(now))
                        .bind(format!("abandoned: its node stopped, and the row does not decode: {problem}"))
                        .bind(&run_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                    continue;
                }
            };
            let retry =
                orphan.job_options.and_then(|o| serde_json::from_str::<JobOptions>(&o).ok()).and_then(|o| o.retry);
            let decided = sweep_run(&mut run, retry.as_deref(), now);
            if decided.requeued {
                sqlx::query(
                    "UPDATE chime_run SET status = 'pending', node = NULL, epoch = NULL, attempt = ?, error = ?, reason = ? WHERE id = ?",
                )
                .bind(i64::from(run.attempt))
                .bind(run.error.as_deref())
                .bind(reason_json(&run))
                .bind(&run_id)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            } else {
                sqlx::query(
                    "UPDATE chime_run SET status = 'abandoned', finished_at = ?, error = ?, reason = ? WHERE id = ?",
                )
                .bind(micros(now))
                .bind(run.error.as_deref())
                .bind(reason_json(&run))
                .bind(&run_id)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
                sqlx::query("UPDATE chime_job SET last_status = 'abandoned' WHERE id = ?")
                    .bind(run.job_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
            swept.push(decided);
        }
        tx.commit().await.map_err(fail)?;
        if swept.iter().any(|s| s.requeued) {
            self.changed();
        }
        Ok(swept)
    }
}
