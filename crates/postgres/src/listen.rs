//! Wake-ups: every node `LISTEN`s on its schema's channel and bumps the
//! store's change signal on each notification. Lost notifications (a
//! reconnect, a dropped connection) are covered by a blind wake every few
//! seconds; a failing connection is retried with backoff and logged, never fatal.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::watch;

/// The longest a change can go unnoticed when its notification was lost.
const POLL: Duration = Duration::from_secs(5);

pub(crate) async fn listen(
    connect: PgConnectOptions,
    channel: String,
    changes: Arc<watch::Sender<u64>>,
    shown: String,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match listen_once(&connect, &channel, &changes).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => {
                tracing::warn!(database = %shown, error = %e, retry_in = ?backoff, "listening for changes failed; polling meanwhile");
                // While we cannot listen, changes are polled instead.
                changes.send_modify(|n| *n += 1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(POLL);
            }
        }
    }
}

async fn listen_once(connect: &PgConnectOptions, channel: &str, changes: &watch::Sender<u64>) -> sqlx::Result<()> {
    // A pool of one connection just for listening; the listener reconnects itself.
    let pool = PgPoolOptions::new().max_connections(1).connect_with(connect.clone()).await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(channel).await?;
    loop {
        match tokio::time::timeout(POLL, listener.try_recv()).await {
            Ok(Ok(Some(_))) => changes.send_modify(|n| *n += 1),
            // The connection was lost and re-established: notifications may be missing.
            Ok(Ok(None)) => changes.send_modify(|n| *n += 1),
            Ok(Err(e)) => return Err(e),
            // Nothing for a while: wake anyway, in case one was lost.
            Err(_) => changes.send_modify(|n| *n += 1),
        }
    }
}
