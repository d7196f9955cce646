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
        let started = std::time::Instant::now();
        let error = listen_once(&connect, &channel, &changes).await;
        if started.elapsed() > POLL {
            // It listened for a while: this is a new failure, not the same one again.
            backoff = Duration::from_millis(200);
        }
        tracing::warn!(database = %shown, %error, retry_in = ?backoff, "listening for changes failed; polling meanwhile");
        // While we cannot listen, changes are polled instead.
        changes.send_modify(|n| *n += 1);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(POLL);
    }
}

/// Listens until the connection fails for good; returns why.
async fn listen_once(connect: &PgConnectOptions, channel: &str, changes: &watch::Sender<u64>) -> sqlx::Error {
    // A pool of one connection just for listening; the listener reconnects itself.
    let pool = match PgPoolOptions::new().max_connections(1).connect_with(connect.clone()).await {
        Ok(pool) => pool,
        Err(e) => return e,
    };
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(listener) => listener,
        Err(e) => return e,
    };
    if let Err(e) = listener.listen(channel).await {
        return e;
    }
    loop {
        match tokio::time::timeout(POLL, listener.try_recv()).await {
            Ok(Ok(Some(_))) => changes.send_modify(|n| *n += 1),
            // The connection was lost and re-established: notifications may be missing.
            Ok(Ok(None)) => changes.send_modify(|n| *n += 1),
            Ok(Err(e)) => return e,
            // Nothing for a while: wake anyway, in case one was lost.
            Err(_) => changes.send_modify(|n| *n += 1),
        }
    }
}
