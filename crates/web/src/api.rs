//! The routes of `/api/v1` and `/health`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, OriginalUri, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use chime_core::{
    ConflictPolicy, Job, JobFilter, JobOptions, JobPatch, RemoveMode, RunQuery, RunStatus, SchedulerState, Trigger,
};
use jiff::Timestamp;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::extract::{JobIdPath, page};
use crate::{ApiError, Handle, auth, guard, policy, redact};

type ApiResult<T = Response> = Result<T, ApiError>;

/// The REST API, `/health`, `/metrics` and the dashboard, accepting request
/// bodies up to `max_body` bytes, with a JSON 404 and 405 for every other
/// path and method: the router `chime serve` serves. To put chime beside
/// routes of your own, see [`api_router`](crate::api_router) and
/// [`dashboard_router`](crate::dashboard_router).
///
/// Every request first passes the browser guard (`Host`, `Origin`,
/// `Sec-Fetch-Site`, `Content-Type`); then every route but `/health` and the
/// OpenAPI document passes the token check.
pub fn router_with_limit(handle: Handle, max_body: usize) -> Router {
    api_routes(&handle)
        .merge(dashboard_routes(&handle))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(handle.clone(), guard::guard))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(handle)
}

/// The API, `/health` and `/metrics` without the dashboard and without a
/// fallback, for mounting. Unknown paths under `/api/v1/` still get the
/// API's JSON 404 (a route, not a fallback).
pub(crate) fn mountable_api(handle: Handle, max_body: usize) -> Router {
    mountable(api_routes(&handle).route("/api/v1/{*rest}", any(not_found)), handle, max_body)
}

/// The dashboard's pages without the API and without a fallback, for mounting.
pub(crate) fn mountable_dashboard(handle: Handle) -> Router {
    mountable(dashboard_routes(&handle), handle, crate::MAX_BODY)
}

/// The guard and the body limit as route layers, so they wrap chime's
/// routes only: the app's own fallback (or axum's default one) is left as it
/// is, and merging leaves no second fallback.
fn mountable(routes: Router<Handle>, handle: Handle, max_body: usize) -> Router {
    routes
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(handle.clone(), guard::guard))
        .route_layer(DefaultBodyLimit::max(max_body))
        .with_state(handle)
}

/// `/api/v1/...`, `/metrics` (behind the token check) and `/health`,
/// `/api/v1/openapi.json` (open), without layers or fallback.
fn api_routes(handle: &Handle) -> Router<Handle> {
    let api = Router::new()
        .route("/jobs", get(list_jobs).post(add_job))
        .route("/jobs/{id}", get(get_job).patch(modify_job).delete(remove_job))
        .route("/jobs/{id}/pause", post(pause_job))
        .route("/jobs/{id}/resume", post(resume_job))
        .route("/jobs/{id}/run", post(run_job))
        .route("/jobs/{id}/reschedule", post(reschedule_job))
        .route("/jobs/{id}/stats", get(job_stats))
        .route("/jobs/{id}/why", get(job_why))
        .route("/jobs/{id}/backfill", post(backfill_job))
        .route("/runs", get(list_runs))
        .route("/nodes", get(list_nodes))
        .route("/stats", get(scheduler_stats))
        .route("/scheduler/pause", post(pause_scheduler))
        .route("/scheduler/resume", post(resume_scheduler));
    let with_token = Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics))
        // A route layer, so an unknown path is a 404 whatever the token.
        .route_layer(middleware::from_fn_with_state(handle.clone(), auth::require_token));
    // Open even with a read token: probes and API tooling need no secret,
    // and neither shows a job.
    let open = Router::new().route("/health", get(health)).route("/api/v1/openapi.json", get(openapi));
    with_token.merge(open)
}

/// The dashboard's pages, behind the token check for reads.
fn dashboard_routes(handle: &Handle) -> Router<Handle> {
    Router::new()
        .route("/", get(crate::dashboard::index))
        .route("/jobs.json", get(crate::dashboard::live))
        .route("/jobs/{id}", get(crate::dashboard::job))
        .route("/runs", get(crate::dashboard::runs))
        .route("/day", get(crate::dashboard::day))
        .route("/assets/dashboard.css", get(crate::dashboard::assets::css))
        .route("/assets/dashboard.js", get(crate::dashboard::assets::js))
        .route_layer(middleware::from_fn_with_state(handle.clone(), auth::require_token))
}

/// The OpenAPI 3.1 description of this API.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("this route does not take {method}"))
}

/// Parses an optional JSON body: empty means `T::default()`.
fn body<T: DeserializeOwned + Default>(bytes: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let bytes = bytes?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::malformed(format!("the request body is not valid JSON for this call: {e}")))
}

/// A job as every answer shows it: secrets redacted.
fn job_json(job: &Job) -> Json<Value> {
    Json(redact::job(job))
}

/// A trigger from JSON: a bad shape or value is a 422 naming the problem.
fn trigger(value: Value) -> ApiResult<Trigger> {
    serde_json::from_value(value).map_err(|e| ApiError::invalid(format!("invalid trigger: {e}")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListJobs {
    status: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
}

async fn list_jobs(State(h): State<Handle>, query: Result<Query<ListJobs>, QueryRejection>) -> ApiResult {
    let Query(q) = query?;
    let paused = match q.status.as_deref() {
        None => None,
        Some("paused") => Some(true),
        Some("active") => Some(false),
        Some(other) => return Err(ApiError::malformed(format!("status {other:?}: expected paused or active"))),
    };
    let (limit, offset) = page(q.limit, q.offset)?;
    let filter = JobFilter { paused, limit: Some(limit), offset, ..JobFilter::default() };
    let jobs = h.scheduler.store().list_jobs(&filter).await?;
    Ok(Json(Value::Array(jobs.iter().map(redact::job).collect())).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GetJob {
    next: Option<u64>,
}

/// The most upcoming fire times a job read lists.
const MAX_NEXT: u64 = 100;

async fn get_job(
    State(h): State<Handle>,
    JobIdPath(id): JobIdPath,
    query: Result<Query<GetJob>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let next = q.next.unwrap_or(5);
    if next > MAX_NEXT {
        return Err(ApiError::malformed(format!("next {next}: expected 0 to {MAX_NEXT}")));
    }
    let job = h.scheduler.get_job(id.as_str()).await?;
    let upcoming = h.scheduler.upcoming(id.as_str(), usize::try_from(next).unwrap_or(0)).await?;
    Ok(Json(json!({"job": redact::job(&job), "upcoming": upcoming})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WhyQuery {
    /// An RFC 3339 instant or a duration ago (`24h`, `7d`); default 24h.
    since: Option<String>,
}

/// Each scheduled time of the job since `since`, what happened and why, and
/// the one-line answer (chime-core's `why::Why`).
async fn job_why(
    State(h): State<Handle>,
    JobIdPath(id): JobIdPath,
    query: Result<Query<WhyQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let since = chime_core::why::parse_since(q.since.as_deref().unwrap_or("24h"), h.scheduler.clock().now())
        .map_err(|e| ApiError::malformed(e.to_string()))?;
    Ok(Json(h.scheduler.why(id.as_str(), since).await?).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BackfillBody {
    /// An RFC 3339 instant or a duration ago (`24h`, `7d`).
    since: String,
    until: Option<String>,
    #[serde(default)]
    only_missing: bool,
    #[serde(default)]
    dry_run: bool,
}

/// Ends a job's backfill on this server when its task ends, however it ends.
struct Backfilling(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<chime_core::JobId>>>, chime_core::JobId);

impl Drop for Backfilling {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.1);
    }
}

/// How long the server's backfill waits for a node to take a queued run.
const BACKFILL_UNCLAIMED_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// Backfills a window: the times that did not succeed, oldest first, queued
/// by a task of the server at most `max_instances` at a time; 202 with the
/// times (200 and nothing queued for a dry run).
async fn backfill_job(
    State(h): State<Handle>,
    JobIdPath(id): JobIdPath,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let b: BackfillBody = body(bytes)?;
    policy::run(&h.scheduler.get_job(id.as_str()).await?, false)?;
    let now = h.scheduler.clock().now();
    let instant = |name: &str, text: &str| {
        chime_core::why::parse_since(text, now).map_err(|e| ApiError::malformed(format!("{name}: {e}")))
    };
    let since = instant("since", &b.since)?;
    let until = b.until.as_deref().map(|u| instant("until", u)).transpose()?;
    let times = h.scheduler.backfill_plan(id.as_str(), since, until, b.only_missing).await?;
    if b.dry_run || times.is_empty() {
        return Ok(Json(json!({"times": times, "queued": false})).into_response());
    }
    // One backfill task per job: a second call while one queues is refused.
    if !h.backfilling.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("a backfill of job {:?} is under way on this server; wait for it to end", id.as_str()),
        ));
    }
    let s = h.scheduler.clone();
    let plan = times.clone();
    let done = Backfilling(std::sync::Arc::clone(&h.backfilling), id.clone());
    tokio::spawn(async move {
        if let Err(e) = s.backfill(id.as_str(), &plan, BACKFILL_UNCLAIMED_FOR).await {
            tracing::error!(job_id = %id, error = %e, "backfill stopped");
        }
        drop(done);
    });
    Ok((StatusCode::ACCEPTED, Json(json!({"times": times, "queued": true}))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewJob {
    id: String,
    name: Option<String>,
    task: String,
    #[serde(default)]
    args: Value,
    trigger: Value,
    #[serde(default)]
    options: Option<Value>,
    #[serde(default)]
    replace: bool,
}

async fn add_job(State(h): State<Handle>, bytes: Result<Bytes, BytesRejection>) -> ApiResult {
    let new: NewJob = body(bytes)?;
    policy::create(&new.task)?;
    if new.replace {
        match h.scheduler.get_job(&new.id).await {
            Ok(existing) => policy::replace(&existing)?,
            // A row that does not decode may be a command job: only the
            // config (which repairs such rows at start-up) may replace it.
            Err(chime_core::Error::BrokenJob { id, .. }) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden_task",
                    format!("job {id:?} is stored but does not decode: it cannot be replaced over HTTP"),
                ));
            }
            Err(e) if e.is_not_found() => {}
            // Whatever the store could not say, the row may be a command job.
            Err(e) => return Err(e.into()),
        }
    }
    let mut job = Job::new(&new.id, &new.task, trigger(new.trigger)?).map_err(|e| ApiError::invalid(e.to_string()))?;
    policy::http_args(&new.task, &new.args, h.allowed_targets.as_deref())?;
    job.name = new.name.map(String::into_boxed_str);
    job.args = new.args;
    if let Some(options) = new.options {
        job.options = serde_json::from_value::<JobOptions>(options)
            .map_err(|e| ApiError::invalid(format!("invalid options: {e}")))?;
    }
    let policy = if new.replace { ConflictPolicy::Replace } else { ConflictPolicy::Error };
    let job = h.scheduler.add_job(job, policy).await?;
    Ok((StatusCode::CREATED, job_json(&job)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Modify {
    name: Option<String>,
    args: Option<Value>,
    options: Option<Value>,
    /// Named only to refuse them clearly: a trigger changes through
    /// `POST .../reschedule`, which recomputes the next run.
    #[serde(default, deserialize_with = "present")]
    trigger: bool,
    #[serde(default, deserialize_with = "present")]
    cron: bool,
    #[serde(default, deserialize_with = "present")]
    every: bool,
}

/// `true` for a field that is there at all, whatever (even `null`) it holds.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

async fn modify_job(
    State(h): State<Handle>,
    JobIdPath(id): JobIdPath,
    OriginalUri(uri): OriginalUri,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let m: Modify = body(bytes)?;
    let given = [("trigger", m.trigger), ("cron", m.cron), ("every", m.every)];
    if let Some((field, _)) = given.iter().find(|(_, given)| *given) {
        // The job's own reschedule path as this client reached it, so the
        // hint is right under any prefix the app mounts the API at.
        let path = format!("{}/reschedule", uri.path().trim_end_matches('/'));
        return Err(ApiError::malformed(format!(
            "PATCH does not change a job's trigger (the body has {field:?}): send {{\"trigger\": {{\"type\": \"cron\", \"expr\": \"0 9 * * *\"}}}} to POST {path}, which also recomputes the next run"
        )));
    }
    let stored = h.scheduler.get_job(id.as_str()).await?;
    policy::modify(&stored, m.args.is_some())?;
    let args = m.args.map(|a| redact::restore(&stored, a)).transpose()?;
    if let Some(args) = &args {
        policy::http_args(&stored.task, args, h.allowed_targets.as_deref())?;
    }
    let options = m
        .options
        .map(|o| {
            serde_json::from_value::<JobOptions>(o).map_err(|e| ApiError::invalid(format!("invalid options: {e}")))
        })
        .transpose()?;
    let patch = JobPatch { name: m.name.map(Some), args, options };
    let job = h.scheduler.modify_job(id.as_str(), patch).await?;
    Ok(job_json(&job).into_response())
}

async fn remove_job(State(h): State<Handle>, JobIdPath(id): JobIdPath) -> ApiResult {
    let job = h.scheduler.remove_job(id.as_str(), RemoveMode::LetFinish).await?;
    Ok(Json(json!({"removed": redact::job(&job)})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Pause {
    reason: Option<String>,
}

async fn pause_job(
    State(h): State<Handle>,
    JobIdPath(id): JobIdPath,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let p: Pause = body(bytes)?;
    let reason = p.reason.as_deref().unwrap_or("paused over HTTP");
    policy::pause_reason(reason)?;
    let job = h.scheduler.pause_job(id.as_str(), reason).await?;
    Ok(job_json(&job).into_response())
}

async fn resume_job(State(h): State<Handle>, JobIdPath(id): JobIdPath) -> ApiResult {
    policy::resume(&h.scheduler.get_job(id.as_str()).await?)?;
    let job = h.scheduler.resume_job(id.as_str()).await?;
    Ok(job_json(&job).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunNow {
    /// Named only to refuse it clearly: a run uses the job's stored args.
    args: Option<Value>,
}

async fn run_job(State(h): State<Handle>, JobIdPath(id): JobIdPath, bytes: Result<Bytes, BytesRejection>) -> ApiResult {
    let r: RunNow = body(bytes)?;
    policy::run(&h.scheduler.get_job(id.as_str()).await?, r.args.is_some())?;
    if r.args.is_some() {
        return Err(ApiError::malformed("a run uses the job's stored args: change them with PATCH first"));
    }
    let run = h.scheduler.run_job_now(id.as_str()).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run": run}))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Reschedule {
    trigger: Value,
}

async fn reschedule_job(
    State(h): State<Handle>,
    JobIdPath(id): JobIdPath,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let r: Reschedule = body(bytes)?;
    if r.trigger.is_null() {
        return Err(ApiError::malformed(
            "the body needs a trigger: {\"trigger\": {\"type\": \"cron\", \"expr\": \"0 9 * * *\"}}",
        ));
    }
    let job = h.scheduler.reschedule_job(id.as_str(), trigger(r.trigger)?).await?;
    Ok(job_json(&job).into_response())
}

async fn job_stats(State(h): State<Handle>, JobIdPath(id): JobIdPath) -> ApiResult {
    Ok(Json(h.scheduler.stats(id.as_str()).await?).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListRuns {
    job: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
}

async fn list_runs(State(h): State<Handle>, query: Result<Query<ListRuns>, QueryRejection>) -> ApiResult {
    let Query(q) = query?;
    let instant = |name: &str, v: &Option<String>| -> ApiResult<Option<Timestamp>> {
        v.as_deref()
            .map(|t| {
                t.parse::<Timestamp>()
                    .map_err(|e| ApiError::malformed(format!("{name} {t:?}: not an RFC 3339 instant: {e}")))
            })
            .transpose()
    };
    let statuses = match q.status.as_deref() {
        Some(s) => vec![s.parse::<RunStatus>().map_err(|e| ApiError::malformed(e.to_string()))?],
        None => Vec::new(),
    };
    let (limit, offset) = page(q.limit, q.offset)?;
    let job_id = q
        .job
        .as_deref()
        .map(|j| chime_core::JobId::new(j).map_err(|e| ApiError::malformed(format!("job {j:?}: {e}"))))
        .transpose()?;
    let query = RunQuery {
        job_id,
        statuses,
        since: instant("since", &q.since)?,
        until: instant("until", &q.until)?,
        limit: Some(limit),
        offset,
    };
    Ok(Json(h.scheduler.history(&query).await?).into_response())
}

/// The nodes registered in the store, with their leases measured against
/// this scheduler's clock.
async fn list_nodes(State(h): State<Handle>) -> ApiResult {
    let (_, nodes) = crate::nodes::nodes(&h.scheduler).await?;
    Ok(Json(Value::Array(nodes.iter().map(crate::nodes::Node::to_json).collect())).into_response())
}

async fn scheduler_stats(State(h): State<Handle>) -> ApiResult {
    let stats = h.scheduler.scheduler_stats().await?;
    Ok(Json(json!({"state": h.scheduler.state().as_str(), "node": h.scheduler.node_id(), "stats": stats}))
        .into_response())
}

async fn pause_scheduler(State(h): State<Handle>) -> ApiResult {
    h.scheduler.pause();
    Ok(Json(json!({"state": h.scheduler.state().as_str()})).into_response())
}

async fn resume_scheduler(State(h): State<Handle>) -> ApiResult {
    h.scheduler.resume();
    Ok(Json(json!({"state": h.scheduler.state().as_str()})).into_response())
}

async fn metrics(State(h): State<Handle>) -> Response {
    let text = h.metrics.render(&h.scheduler).await;
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// With `?jobs=true`, also 503 (code `jobs_alerting`, the jobs in `alerts`)
/// while any job is in alert.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HealthQuery {
    #[serde(default)]
    jobs: bool,
}

/// 200 while the loop has come round within the last two minutes (it does at
/// least once a minute) and the store answers; 503 with the reason otherwise,
/// in the API's error shape (plus `status`, `reason` and `state` for probes
/// that read those).
async fn health(State(h): State<Handle>, query: Result<Query<HealthQuery>, QueryRejection>) -> Response {
    let jobs = match query {
        Ok(Query(q)) => q.jobs,
        Err(e) => return ApiError::malformed(format!("invalid query: {}", e.body_text())).into_response(),
    };
    let s = &h.scheduler;
    let now = s.clock().now();
    let unhealthy = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "error": {"code": "unhealthy", "message": reason},
                "status": "unhealthy",
                "reason": reason,
                "state": s.state().as_str(),
            })),
        )
            .into_response()
    };
    if s.state() != SchedulerState::Running {
        return unhealthy(format!("the scheduler is {}", s.state().as_str()));
    }
    match s.last_tick() {
        None => return unhealthy("the scheduler loop has not run yet".into()),
        Some(t) if now.duration_since(t) > jiff::SignedDuration::from_mins(2) => {
            return unhealthy(format!("the scheduler loop last ran at {t}, over two minutes ago"));
        }
        Some(_) => {}
    }
    if let Err(e) = s.nodes().await {
        return unhealthy(format!("the store does not answer: {e}"));
    }
    let Some(epoch) = s.lease_epoch() else {
        return unhealthy("this node holds no lease in the store (registering, or it lost its lease)".into());
    };
    if jobs {
        let alerts = match s.alerts().await {
            Ok(a) => a,
            Err(e) => return unhealthy(format!("the store does not answer: {e}")),
        };
        if !alerts.is_empty() {
            // /health is open (no token): it names the jobs, never why, since
            // a reason quotes the last error (a command's output, a server's
            // answer). The reasons are on the API, behind its token.
            let ids: Vec<&str> = alerts.iter().map(|a| a.job_id.as_str()).collect();
            let reason = format!(
                "{} job{} in alert: {}; GET /api/v1/jobs/ID says why",
                alerts.len(),
                if alerts.len() == 1 { "" } else { "s" },
                ids.join(", ")
            );
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "error": {"code": "jobs_alerting", "message": reason},
                    "status": "alerting",
                    "reason": reason,
                    "state": s.state().as_str(),
                    "alerting": ids,
                })),
            )
                .into_response();
        }
    }
    (StatusCode::OK, Json(json!({"status": "ok", "state": "running", "node": s.node_id(), "epoch": epoch})))
        .into_response()
}
