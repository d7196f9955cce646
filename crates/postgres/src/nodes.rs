//! Nodes, leases and the sweeper on PostgreSQL, judged on the database's
//! clock. One sweeper at a time: the sweep takes a transaction-scoped
//! advisory lock and a node that cannot get it leaves the sweep to the one
//! that has it.

use std::sync::Arc;

use chime_core::{Error, JobOptions, Lease, NodeInfo, NodeRegistration, Result, Run, SweptRun, sweep_run};
use chime_sql::{IN_FLIGHT, RunRow};
use jiff::{SignedDuration, Timestamp};
use sqlx::AssertSqlSafe;

use crate::PostgresStore;

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

/// The advisory lock key of this schema's sweeper.
fn sweep_key(schema: &str) -> i64 {
    // FNV-1a: stable across processes and versions, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("chime-sweep:{schema}").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

pub(crate) fn ttl_us(ttl: SignedDuration) -> i64 {
    ttl.as_micros().clamp(0, i64::MAX as i128) as i64
}

impl PostgresStore {
    pub(crate) async fn register(&self, node: &NodeRegistration, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        let fail = |e| self.err("registering a node", e);
        let mut tx = self.begin().await.map_err(fail)?;
        let now_us = self.tx_now(&mut tx, now).await?;
        let held: Option<i64> = sqlx::query_scalar("SELECT expires_at FROM chime_node WHERE id = $1 FOR UPDATE")
            .bind(&*node.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(fail)?;
        if let Some(until) = held
            && until >= now_us
        {
            return Err(Error::NodeIdInUse { id: node.id.to_string(), until: self.instant(until)? });
        }
        // An expired row of this id goes; the sweeper decides its runs.
        sqlx::query("DELETE FROM chime_node WHERE id = $1").bind(&*node.id).execute(&mut *tx).await.map_err(fail)?;
        let expires = now_us.saturating_add(ttl_us(ttl));
        let epoch: Result<i64> = sqlx::query_scalar(
            "INSERT INTO chime_node (id, host, pid, version, started_at, heartbeat_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING epoch",
        )
        .bind(&*node.id)
        .bind(&node.host)
        .bind(i64::from(node.pid))
        .bind(&node.version)
        .bind(now_us)
        .bind(expires)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match e.as_database_error().is_some_and(|d| d.is_unique_violation()) {
            // Another process registered the id between our read and our insert.
            true => Error::NodeIdInUse { id: node.id.to_string(), until: Timestamp::MAX },
            false => fail(e),
        });
        let epoch = epoch?;
        tx.commit().await.map_err(fail)?;
        Ok(Lease { node: Arc::clone(&node.id), epoch: epoch as u64, expires_at: self.instant(expires)? })
    }

    pub(crate) async fn renew(&self, lease: &Lease, ttl: SignedDuration, now: Timestamp) -> Result<Lease> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.err("renewing a lease", e))?;
        Ok(self.renew_in(&mut conn, lease, ttl, now, &[]).await?.lease)
    }

    pub(crate) async fn release(&self, lease: &Lease) -> Result<()> {
        sqlx::query("DELETE FROM chime_node WHERE id = $1 AND epoch = $2")
            .bind(&*lease.node)
            .bind(lease.epoch as i64)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err("ending a lease", e))?;
        Ok(())
    }

    pub(crate) async fn list_nodes(&self) -> Result<Vec<NodeInfo>> {
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
    /// One short transaction under a transaction-scoped advisory lock: delete
    /// the expired nodes, then decide every in-flight run whose (node, epoch)
    /// has no row. A sweeper that finds the lock taken returns at once: the
    /// other one is deciding the same runs.
    pub(crate) async fn sweep_expired(&self, now: Timestamp) -> Result<Vec<SweptRun>> {
        let fail = |e| self.err("sweeping expired nodes", e);
        let mut tx = self.begin().await.map_err(fail)?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(sweep_key(&self.schema))
            .fetch_one(&mut *tx)
            .await
            .map_err(fail)?;
        if !locked {
            return Ok(Vec::new());
        }
        let now_us = self.tx_now(&mut tx, now).await?;
        let now = self.instant(now_us)?;
        sqlx::query("DELETE FROM chime_node WHERE expires_at < $1")
            .bind(now_us)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        let orphans: Vec<Orphan> = sqlx::query_as(AssertSqlSafe(format!(
            concat!(
                "SELECT ",
                chime_sql::run_fields_of_r!(),
                ", j.options AS job_options FROM chime_run r LEFT JOIN chime_job j ON j.id = r.job_id \
             WHERE r.status IN {IN_FLIGHT} AND r.node IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM chime_node n WHERE n.id = r.node AND n.epoch IS NOT DISTINCT FROM r.epoch) \
             FOR UPDATE OF r"
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
                    sqlx::query(
                        "UPDATE chime_run SET status = 'abandoned', finished_at = $1, error = $2 WHERE id = $3",
                    )
                    .bind(now_us)
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
                    "UPDATE chime_run SET status = 'pending', node = NULL, epoch = NULL, attempt = $1, error = $2, reason = $3 \
                     WHERE id = $4",
                )
                .bind(i64::from(run.attempt))
                .bind(run.error.as_deref())
                .bind(chime_sql::reason_json(&run))
                .bind(&run_id)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            } else {
                sqlx::query("UPDATE chime_run SET status = 'abandoned', finished_at = $1, error = $2, reason = $3 WHERE id = $4")
                    .bind(now_us)
                    .bind(run.error.as_deref())
                    .bind(chime_sql::reason_json(&run))
                    .bind(&run_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
                sqlx::query("UPDATE chime_job SET last_status = 'abandoned' WHERE id = $1")
                    .bind(run.job_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
            swept.push(decided);
        }
        if swept.iter().any(|s| s.requeued) {
            self.notify(&mut *tx).await?;
        }
        tx.commit().await.map_err(fail)?;
        Ok(swept)
    }
}
