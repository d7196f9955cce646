//! `chime nodes`: the schedulers registered in a store, and their leases.

use jiff::Timestamp;

use crate::args::NodesArgs;
use crate::cron_cmd::relative;
use crate::error::CliError;
use crate::manage::{short, table};
use crate::output::{out, out_raw};
use crate::store;

/// "12s", or "expired 3s ago" for a node no sweeper has reached yet.
pub(crate) fn lease_left(expires_at: Timestamp, now: Timestamp) -> String {
    let left = expires_at.duration_since(now);
    if left.is_negative() { format!("expired {} ago", relative(-left)) } else { relative(left) }
}

pub(crate) async fn run(args: NodesArgs) -> Result<(), CliError> {
    let url = store::resolve(args.store.store.as_deref(), None);
    let store = store::open(&url, false).await?;
    let nodes = store.nodes().await.map_err(|e| CliError::Failed(anyhow::anyhow!(e)))?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&nodes).expect("nodes serialize"));
        return Ok(());
    }
    if nodes.is_empty() {
        out!(
            "no node is registered in {}: no `chime serve` (or service using chime) is running on it",
            chime_postgres::without_password(&url)
        );
        return Ok(());
    }
    let now = Timestamp::now();
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.id.clone(),
                n.host.clone(),
                n.pid.to_string(),
                n.version.clone(),
                short(n.started_at),
                format!("{} ago", relative(now.duration_since(n.heartbeat_at).max(jiff::SignedDuration::ZERO))),
                lease_left(n.lease_expires_at, now),
                n.running.to_string(),
            ]
        })
        .collect();
    out_raw!("{}", table(&["ID", "HOST", "PID", "VERSION", "STARTED", "HEARTBEAT", "LEASE LEFT", "RUNNING"], &rows));
    Ok(())
}
