//! chime's HTTP surface as an axum [`Router`]: the REST API under `/api/v1`,
//! `/health`, `/metrics` and the dashboard, to serve on its own ([`router`],
//! with [`serve`], which bounds connections) or mount in a service's own app
//! beside its routes and fallback, under any prefix ([`api_router`] and
//! [`dashboard_router`]).
//!
//! ```no_run
//! # async fn example(scheduler: chime_core::Scheduler) -> Result<(), Box<dyn std::error::Error>> {
//! let handle = chime_web::Handle::new(scheduler)
//!     .with_token(Some("a-long-random-secret-token".into()))?
//!     .with_allowed_hosts(vec!["chime.example.com".into()])?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! chime_web::serve(listener, chime_web::router(handle), std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Overview
//!
//! JSON in and out. Errors are `{"error": {"code": "...", "message": "..."}}`
//! with the status that fits: 400 malformed request, 401 missing token,
//! 403 wrong token, a cross-site call, a forbidden task or target, 404 unknown job
//! or route, 405 wrong method, 409 conflict, 413 body too large, 415 a body
//! that is not JSON, 421 a host the server does not answer to, 422 invalid
//! trigger, options, task or `http` args, 503 store unavailable. No input produces a 500
//! or a panic.
//!
//! # Security
//!
//! See `docs/security.md` for the threat model. In short:
//!
//! * requests must be addressed to a loopback host or one given to
//!   [`Handle::with_allowed_hosts`] (against DNS rebinding); mutating calls
//!   must come from this server's own pages or from non-browser clients
//!   (`Origin`, `Sec-Fetch-Site`) and send JSON as `application/json`. No
//!   CORS headers are sent;
//! * when a token is set, every mutating call needs `Authorization: Bearer
//!   TOKEN`, compared in constant time; reads too with
//!   [`Handle::with_read_token`];
//! * jobs running the `command` task cannot be created, replaced, have
//!   their args changed, be revived once the config dropped them, or run
//!   with other args: programs come only from the server's config file;
//! * `http` jobs created or changed over the API must have arguments the
//!   `http` task would run ([`chime_tasks::validate`]: http(s) URLs only,
//!   no CR/LF in URLs or header values, ...), and, with
//!   [`Handle::with_allowed_targets`], go to a target the policy allows;
//! * reads redact `command` env values and `http` credential headers;
//! * request bodies are limited to 64 KiB, listings to 1000 items.
//!
//! `/metrics` serves Prometheus figures (on the `prometheus-client` crate,
//! with registries of the handle's own, never process-global): runs by job
//! and status, run duration (every outcome) and lateness histograms, the age
//! of each job's last success, running runs, jobs by state, loop lag, and
//! each registered node's lease and runs in flight. A removed job's series
//! are dropped.
//!
//! The dashboard at `/` lists the jobs 50 to a page, searched (`?q=`: id,
//! name or task) and filtered (`?state=active|paused|running|failing|finished|broken`,
//! `?task=`) from the URL, with pause / resume / run-now buttons, and the
//! nodes sharing the store; `/jobs/{id}` shows a job whole (trigger, zone,
//! options, where it came from, next fire times, a chart of its recent runs,
//! their errors and output); `/runs` lists runs across jobs, newest first,
//! filtered by status, job and time window; `/day` counts the runs of the
//! next 24 hours, hour by hour, and lists an hour's jobs. Instants show in
//! the job's zone with their offset and the time from now. Pages are
//! server-rendered; a small script keeps relative times fresh and, while
//! the tab is visible, updates the rows every 5 seconds from
//! `/jobs.json` (the index's view as JSON) or the API. Its stylesheet and
//! script are served under `/assets/`: no CDN, no build step.
//!
//! `/api/v1/openapi.json` describes the API (OpenAPI 3.1).
//!
//! # Crate features
//!
//! None.

mod api;
mod auth;
mod dashboard;
mod error;
mod extract;
mod guard;
mod metrics;
mod nodes;
mod policy;
mod redact;
mod server;

use std::sync::Arc;

use axum::Router;
use chime_core::Scheduler;
use chime_tasks::TargetPolicy;

pub use crate::api::router_with_limit;
pub use crate::error::ApiError;
pub use crate::server::{ServeOptions, serve, serve_with};

/// The largest request body accepted, in bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// The shortest API token accepted, in bytes: shorter ones can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// What the handlers share: the scheduler, the API token and who may be served.
#[derive(Clone, Debug)]
pub struct Handle {
    pub(crate) scheduler: Scheduler,
    pub(crate) token: Option<Arc<str>>,
    pub(crate) read_token: bool,
    pub(crate) allowed_hosts: Arc<[guard::HostPattern]>,
    pub(crate) allowed_targets: Option<Arc<TargetPolicy>>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) broken: Arc<dashboard::broken::BrokenCache>,
    /// The jobs a backfill task of this server is queuing runs for: one at
    /// a time per job, so repeated calls cannot pile up tasks.
    pub(crate) backfilling: Arc<std::sync::Mutex<std::collections::HashSet<chime_core::JobId>>>,
}

/// A setting [`Handle`] refuses, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Handle {
    /// A handle on `scheduler` with no token: mutating calls are open, so
    /// serve it on a loopback address only. Requests must name a loopback
    /// host (`127.0.0.1`, `[::1]`, `localhost`) until
    /// [`with_allowed_hosts`](Handle::with_allowed_hosts) adds others.
    ///
    /// Inside a tokio runtime it also starts counting the scheduler's events
    /// for `/metrics`.
    pub fn new(scheduler: Scheduler) -> Handle {
        let metrics = metrics::Metrics::collect(&scheduler);
        Handle {
            scheduler,
            token: None,
            read_token: false,
            allowed_hosts: Arc::from([]),
            allowed_targets: None,
            metrics,
            broken: Arc::default(),
            backfilling: Arc::default(),
        }
    }

    /// Requires `Authorization: Bearer TOKEN` on mutating calls (`None`
    /// turns the requirement off). Surrounding whitespace is ignored.
    ///
    /// # Errors
    ///
    /// A token shorter than [`MIN_TOKEN_LEN`] bytes (empty or whitespace
    /// included), or holding anything but visible ASCII (which a header
    /// could not carry), is refused rather than silently weakening the API.
    pub fn with_token(mut self, token: Option<String>) -> Result<Handle, ConfigError> {
        self.token = match token {
            None => None,
            Some(t) => Some(Arc::from(auth::check_token(&t)?)),
        };
        Ok(self)
    }

    /// With `true`, reads (the API's GETs, the dashboard, `/metrics`) need
    /// the token too; `/health` and `/api/v1/openapi.json` stay open. It has
    /// no effect without a token.
    pub fn with_read_token(mut self, read_token: bool) -> Handle {
        self.read_token = read_token;
        self
    }

    /// Host names (or `host:port`) besides loopback that requests may be
    /// addressed to, such as the name a reverse proxy serves: `Host` headers
    /// naming anything else get 421. A name without a port allows any port;
    /// names compare without regard to case.
    ///
    /// # Errors
    ///
    /// An entry that is not a host or `host:port` (a URL, a path, a wildcard).
    pub fn with_allowed_hosts(mut self, hosts: Vec<String>) -> Result<Handle, ConfigError> {
        self.allowed_hosts = hosts.iter().map(|h| guard::HostPattern::parse(h)).collect::<Result<Vec<_>, _>>()?.into();
        Ok(self)
    }

    /// Where `http` jobs created or changed over the API may send requests
    /// (`None`, the default, leaves them free): a job whose URL the policy
    /// does not allow is refused with 403 `forbidden_target`. Jobs already
    /// stored, and those from the config file, are not checked here; give
    /// the same policy to the task
    /// ([`chime_tasks::Options::allowed_targets`]) so that every request,
    /// and every redirect, is checked when it is sent.
    ///
    /// ```
    /// # fn example(scheduler: chime_core::Scheduler) -> Result<(), String> {
    /// let policy: chime_tasks::TargetPolicy = "hooks.example.com, 10.0.0.0/8".parse()?;
    /// let handle = chime_web::Handle::new(scheduler).with_allowed_targets(Some(policy));
    /// # drop(handle);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_allowed_targets(mut self, policy: Option<TargetPolicy>) -> Handle {
        self.allowed_targets = policy.map(Arc::new);
        self
    }

    /// Whether mutating calls need a token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether reads need the token too.
    pub fn reads_need_token(&self) -> bool {
        self.read_token && self.token.is_some()
    }
}

/// Everything in one router, as `chime serve` serves it: the REST API under
/// `/api/v1`, `/health`, `/metrics`, the dashboard at `/`, and a JSON 404 /
/// 405 for any other path or method, with the default body limit.
///
/// It has a `/` route and a fallback of its own, so it cannot be merged into
/// an app that has either: mount [`api_router`] and [`dashboard_router`]
/// instead.
pub fn router(handle: Handle) -> Router {
    router_with_limit(handle, MAX_BODY)
}

/// The REST API under `/api/v1`, `/health` and `/metrics`, for mounting in
/// your own app: no `/` route and no fallback, so it merges beside your own
/// `/` and fallback, and works nested under any prefix. Unknown paths under
/// `/api/v1/` still answer the API's JSON 404; other unknown paths reach
/// your app's fallback. The browser guard and the token check apply to its
/// routes exactly as in [`router`], and to nothing of yours.
///
/// ```no_run
/// # async fn example(scheduler: chime_core::Scheduler) {
/// use axum::routing::get;
///
/// let handle = chime_web::Handle::new(scheduler);
/// let chime = chime_web::api_router(handle.clone()).merge(chime_web::dashboard_router(handle));
/// let app: axum::Router = axum::Router::new()
///     .route("/", get(|| async { "my service" }))
///     // The dashboard at /scheduler/, the API at /scheduler/api/v1/...
///     .nest("/scheduler/", chime)
///     .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "not here") });
/// # }
/// ```
pub fn api_router(handle: Handle) -> Router {
    api::mountable_api(handle, MAX_BODY)
}

/// The dashboard's pages (`/`, `/jobs/{id}`, `/runs`, `/day`, with
/// `/jobs.json` and `/assets/...` for their script), for mounting in your own
/// app: no fallback, and every link, button and `fetch()` in them is
/// relative, so they work under any prefix. The pages call the API at
/// `api/v1/` beside themselves: mount [`api_router`] at the same prefix.
///
/// Nested at `/scheduler/` (with the slash) the dashboard's address is
/// `/scheduler/`; nested at `/scheduler` it is `/scheduler` (axum matches
/// one or the other, not both: add a redirect for the other if you like).
pub fn dashboard_router(handle: Handle) -> Router {
    api::mountable_dashboard(handle)
}

/// A job as every read of the API and the dashboard shows it:
/// [`Job::to_json`](chime_core::Job::to_json) with its secrets (a command's
/// `env` values, credential headers and URL passwords of an `http` job)
/// replaced by `"<redacted>"`. The CLI prints jobs so too.
pub fn redacted_job(job: &chime_core::Job) -> serde_json::Value {
    redact::job(job)
}
