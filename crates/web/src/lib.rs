//! chime's HTTP surface as an axum [`Router`]: the REST API under `/api/v1`,
//! `/health` and `/metrics`, to serve on its own or mount in a service's own app.
//!
//! ```no_run
//! # async fn example(scheduler: chime_core::Scheduler) -> Result<(), Box<dyn std::error::Error>> {
//! let app = chime_web::router(chime_web::Handle::new(scheduler).with_token(Some("s3cret".into())));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Overview
//!
//! JSON in and out. Errors are `{"error": {"code": "...", "message": "..."}}`
//! with the status that fits: 400 malformed request, 401 missing token,
//! 403 wrong token or a forbidden task, 404 unknown job or route, 409
//! conflict, 413 body too large, 422 invalid trigger, options or task, 503
//! store unavailable. No input produces a 500 or a panic.
//!
//! When a token is set, every mutating call needs `Authorization: Bearer
//! TOKEN`, compared in constant time; reads stay open. Request bodies are
//! limited to 64 KiB. Jobs running the `command` task cannot be created over
//! HTTP: commands come only from the server's config file.
//!
//! `/metrics` serves Prometheus figures: runs by job and status, run duration
//! and lateness histograms, running runs, jobs by state, loop lag.
//!
//! The dashboard at `/` lists jobs with live countdowns, their last runs
//! and pause / resume / run-now buttons; `/jobs/{id}` shows a job's next
//! fire times, a chart of its recent runs and the errors of failed ones.
//! Pages are server-rendered and refresh themselves every 5 seconds.
//!
//! `/api/v1/openapi.json` describes the API (OpenAPI 3.1).
//!
//! # Crate features
//!
//! None.

mod api;
mod dashboard;
mod error;
mod metrics;

use std::sync::Arc;

use axum::Router;
use chime_core::Scheduler;

pub use crate::api::router_with_limit;
pub use crate::error::ApiError;

/// The largest request body accepted, in bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// What the handlers share: the scheduler and the API token.
#[derive(Clone, Debug)]
pub struct Handle {
    pub(crate) scheduler: Scheduler,
    pub(crate) token: Option<Arc<str>>,
    pub(crate) metrics: Arc<metrics::Metrics>,
}

impl Handle {
    /// A handle on `scheduler` with no token: mutating calls are open, so
    /// serve it on a loopback address only.
    ///
    /// Inside a tokio runtime it also starts counting the scheduler's events
    /// for `/metrics`.
    pub fn new(scheduler: Scheduler) -> Handle {
        let metrics = metrics::Metrics::collect(&scheduler);
        Handle { scheduler, token: None, metrics }
    }

    /// Requires `Authorization: Bearer TOKEN` on mutating calls (`None` or an
    /// empty token turns the requirement off).
    pub fn with_token(mut self, token: Option<String>) -> Handle {
        self.token = token.filter(|t| !t.is_empty()).map(Arc::from);
        self
    }

    /// Whether mutating calls need a token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }
}

/// The REST API, `/health` and `/metrics` with the default body limit.
pub fn router(handle: Handle) -> Router {
    router_with_limit(handle, MAX_BODY)
}
