//! Serving the router on a socket without letting clients hold it hostage.
//! `axum::serve` sets no timeouts and accepts without limit: 300 idle
//! sockets under a 256-descriptor limit made `/health` time out. This loop
//! bounds each of the ways a client can hold a connection open:
//!
//! * **header-read timeout**: from the moment a connection is ready for a
//!   request (new, or after its previous answer) until the request's headers
//!   are in. This is also what closes idle keep-alive connections;
//! * **request timeout**: a request's handler, reading its body included,
//!   gets this long before a 408 answer (a body sent a byte at a time);
//! * **idle timeout**: a connection on which no byte moves either way for
//!   this long is closed (a client that stops reading an answer);
//! * **connection limit**: past it, new connections wait in the kernel's
//!   backlog (costing this process no descriptor) until one closes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::ApiError;

/// How [`serve_with`] treats connections. The defaults suit a scheduler's
/// API and dashboard: a handful of clients making small, quick requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// Time to send a request's headers, from when the connection is ready
    /// for it (so also how long an idle keep-alive connection stays open).
    pub header_read_timeout: Duration,
    /// Time for a request's handler, reading the body included; then 408.
    pub request_timeout: Duration,
    /// Time without a byte read or written before a connection is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// While fewer than a quarter of the connection slots are free, a
    /// connection on which no byte has moved for this long is closed: a
    /// client holding many silent sockets (or idle keep-alives) gives its
    /// slots back within this, not the header-read timeout, so others get in.
    pub busy_idle_timeout: Duration,
    /// Time that in-flight requests get to finish once shutdown is asked for.
    pub shutdown_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 128,
            busy_idle_timeout: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` with the default [`ServeOptions`] until
/// `shutdown` completes, then lets in-flight requests finish (up to the
/// shutdown timeout) and returns.
///
/// ```no_run
/// # async fn example(scheduler: chime_core::Scheduler) -> Result<(), Box<dyn std::error::Error>> {
/// let app = chime_web::router(chime_web::Handle::new(scheduler));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// # drop(stop);
/// chime_web::serve(listener, app, async { let _ = stopped.await; }).await?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// None today (accept errors are logged and retried); the `Result` leaves
/// room for errors that must stop the server.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
    serve_with(listener, app, ServeOptions::default(), shutdown).await
}

/// [`serve`] with options.
///
/// # Errors
///
/// As for [`serve`].
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let app = app.layer(middleware::from_fn_with_state(options.request_timeout, request_timeout));
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        // Bounds the buffered request head (headers up to 16 KiB) per connection.
        .max_buf_size(16 * 1024);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Take a slot before accepting, so that past the limit connections
        // wait in the backlog instead of costing a descriptor each.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was
                    // accepted: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = TokioIo::new(Watched { inner: stream, activity: Arc::clone(&activity) });
        let conn = graceful.watch(http.serve_connection(io, TowerToHyperService::new(app.clone())));
        let limits = IdleLimits {
            quiet: options.idle_timeout,
            busy: options.busy_idle_timeout,
            slots: Arc::clone(&permits),
            max: options.max_connections.max(1),
        };
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "HTTP connection ended");
                    }
                }
                () = activity.idle_for(&limits) => tracing::debug!("closing an idle HTTP connection"),
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.shutdown_timeout) => {
            tracing::warn!("HTTP connections still open after the shutdown timeout; dropping them");
        }
    }
    Ok(())
}

async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request took longer than {limit:?}"),
        )
        .into_response(),
    }
}

/// How long a connection may stay idle, by how full the server is.
struct IdleLimits {
    quiet: Duration,
    busy: Duration,
    slots: Arc<Semaphore>,
    max: usize,
}

impl IdleLimits {
    /// Fewer than a quarter of the slots free.
    fn busy_now(&self) -> bool {
        self.slots.available_permits() * 4 < self.max
    }
}

/// When a connection last moved a byte, in milliseconds since it opened.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity { opened: Instant::now(), last_ms: AtomicU64::new(0) })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once no byte has moved for the idle limit: the quiet one,
    /// or the busy one while slots are short (looked at again at least every
    /// busy limit, so a connection idle since before the rush is shed too).
    async fn idle_for(&self, limits: &IdleLimits) {
        loop {
            let limit = if limits.busy_now() { limits.busy.min(limits.quiet) } else { limits.quiet };
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.min(now + limits.busy)).await;
        }
    }
}

/// A socket that records when bytes move.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
