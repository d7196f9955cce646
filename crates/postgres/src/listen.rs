//! Wake-ups: every node `LISTEN`s on its schema's channel and bumps the
//! store's change signal on each notification. Lost notifications (a
//! reconnect, a dropped connection) are covered by a blind wake every few
//! seconds; a failing connection is retried with backoff, never fatal.
//!
//! What the operator sees: a warning when the listening connection is lost,
//! a warning every half minute while it stays down (each failed attempt is
//! logged at debug), and a warning when it listens again, saying for how long
//! changes were only polled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::watch;

/// The longest a change can go unnoticed when its notification was lost.
const POLL: Duration = Duration::from_secs(5);

/// How long one attempt to connect the listener may take: a server that does
/// not answer must not keep the listener (and the polling) waiting for long.
const ATTEMPT: Duration = Duration::from_secs(2);

/// The first wait before trying again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The longest wait between attempts: with [`ATTEMPT`], one attempt (and one
/// blind wake) at least every [`POLL`] while the listener is down.
const MAX_BACKOFF: Duration = Duration::from_secs(3);

/// How often a listener that stays down says so at `warn`.
const STILL_DOWN_EVERY: Duration = Duration::from_secs(30);

pub(crate) async fn listen(
    connect: PgConnectOptions,
    channel: String,
    changes: Arc<watch::Sender<u64>>,
    shown: String,
) {
    let wake = || changes.send_modify(|n| *n = n.wrapping_add(1));
    let mut backoff = FIRST_BACKOFF;
    // Since when changes are only polled (None while listening, and before
    // the first attempt), and when that was last said at warn.
    let mut down: Option<(Instant, Instant)> = None;
    loop {
        match subscribe(&connect, &channel).await {
            Ok(mut listener) => {
                if let Some((since, _)) = down.take() {
                    tracing::warn!(
                        database = %shown,
                        %channel,
                        down_for = ?since.elapsed(),
                        "listening for changes again: changes from other nodes wake this one at once again"
                    );
                }
                // Notifications sent before this LISTEN are lost: look now.
                wake();
                backoff = FIRST_BACKOFF;
                let error = receive(&mut listener, &wake).await;
                tracing::warn!(
                    database = %shown,
                    %channel,
                    %error,
                    poll = ?POLL,
                    "the connection listening for changes was lost; reconnecting, and polling for changes meanwhile"
                );
                let now = Instant::now();
                down = Some((now, now));
            }
            Err(error) => match &mut down {
                None => {
                    tracing::warn!(
                        database = %shown,
                        %channel,
                        %error,
                        poll = ?POLL,
                        "cannot listen for changes; retrying, and polling for changes meanwhile"
                    );
                    let now = Instant::now();
                    down = Some((now, now));
                }
                Some((since, warned)) if warned.elapsed() >= STILL_DOWN_EVERY => {
                    tracing::warn!(
                        database = %shown,
                        %channel,
                        %error,
                        down_for = ?since.elapsed(),
                        "still not listening for changes; retrying, and polling for changes meanwhile"
                    );
                    *warned = Instant::now();
                }
                Some((since, _)) => {
                    tracing::debug!(database = %shown, %channel, %error, down_for = ?since.elapsed(), retry_in = ?backoff, "listening for changes failed again");
                }
            },
        }
        // While it cannot listen, changes are polled instead.
        wake();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A listener on `channel`, on a connection of its own, within [`ATTEMPT`].
async fn subscribe(connect: &PgConnectOptions, channel: &str) -> Result<PgListener, String> {
    let attempt = async {
        // A pool of one connection just for listening. A lost connection is
        // not left to PgListener's own quiet reconnect: `receive` returns and
        // this is called again, so the loss and the recovery are both logged.
        let pool =
            PgPoolOptions::new().max_connections(1).acquire_timeout(ATTEMPT).connect_with(connect.clone()).await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(channel).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match tokio::time::timeout(ATTEMPT * 2, attempt).await {
        Ok(Ok(listener)) => Ok(listener),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {ATTEMPT:?}")),
    }
}

/// Wakes on every notification, and every [`POLL`] anyway, until the
/// connection is lost; returns why.
async fn receive(listener: &mut PgListener, wake: &impl Fn()) -> String {
    loop {
        match tokio::time::timeout(POLL, listener.try_recv()).await {
            Ok(Ok(Some(_))) => wake(),
            Ok(Ok(None)) => return "the connection closed".to_owned(),
            Ok(Err(e)) => return e.to_string(),
            // Nothing for a while: wake anyway, in case one was lost.
            Err(_) => wake(),
        }
    }
}
