//! The routes of `/api/v1` and `/health`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chime_core::{
    ConflictPolicy, Job, JobFilter, JobId, JobOptions, JobPatch, RemoveMode, RunQuery, RunStatus, SchedulerState,
    Trigger,
};
use jiff::Timestamp;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{ApiError, Handle};

type ApiResult<T = Response> = Result<T, ApiError>;

/// The REST API and `/health`, accepting request bodies up to `max_body` bytes.
pub fn router_with_limit(handle: Handle, max_body: usize) -> Router {
    let api = Router::new()
        .route("/jobs", get(list_jobs).post(add_job))
        .route("/jobs/{id}", get(get_job).patch(modify_job).delete(remove_job))
        .route("/jobs/{id}/pause", post(pause_job))
        .route("/jobs/{id}/resume", post(resume_job))
        .route("/jobs/{id}/run", post(run_job))
        .route("/jobs/{id}/reschedule", post(reschedule_job))
        .route("/jobs/{id}/stats", get(job_stats))
        .route("/runs", get(list_runs))
        .route("/stats", get(scheduler_stats))
        .route("/scheduler/pause", post(pause_scheduler))
        .route("/scheduler/resume", post(resume_scheduler))
        .route("/openapi.json", get(openapi));
    Router::new()
        .nest("/api/v1", api)
        .route("/", get(crate::dashboard::index))
        .route("/jobs/{id}", get(crate::dashboard::job))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(handle.clone(), require_token))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(handle)
}

/// The OpenAPI 3.1 description of this API.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// Mutating calls need the bearer token when one is set.
async fn require_token(State(handle): State<Handle>, request: Request, next: Next) -> Response {
    let reading = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if let (Some(token), false) = (&handle.token, reading) {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this call needs Authorization: Bearer TOKEN",
                )
                .into_response();
            }
            Some(given) if !constant_time_eq(given.as_bytes(), token.as_bytes()) => {
                return ApiError::new(StatusCode::FORBIDDEN, "forbidden", "the token is wrong").into_response();
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}

/// Compares without stopping at the first difference, so timing does not
/// reveal how much of a guess was right. (The length is not secret.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

fn job_id(id: &str) -> ApiResult<JobId> {
    JobId::new(id).map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()))
}

/// A trigger from JSON: a bad shape or value is a 422 naming the problem.
fn trigger(value: Value) -> ApiResult<Trigger> {
    serde_json::from_value(value).map_err(|e| ApiError::invalid(format!("invalid trigger: {e}")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListJobs {
    status: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    offset: usize,
}

async fn list_jobs(
    State(h): State<Handle>,
    query: Result<Query<ListJobs>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let paused = match q.status.as_deref() {
        None => None,
        Some("paused") => Some(true),
        Some("active") => Some(false),
        Some(other) => return Err(ApiError::malformed(format!("status {other:?}: expected paused or active"))),
    };
    let filter = JobFilter { paused, limit: Some(q.limit.unwrap_or(100).min(1000)), offset: q.offset };
    let jobs = h.scheduler.store().list_jobs(&filter).await?;
    Ok(Json(Value::Array(jobs.iter().map(Job::to_json).collect())).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GetJob {
    next: Option<usize>,
}

async fn get_job(
    State(h): State<Handle>,
    Path(id): Path<String>,
    query: Result<Query<GetJob>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let id = job_id(&id)?;
    let job = h.scheduler.get_job(id.as_str()).await?;
    let upcoming = h.scheduler.upcoming(id.as_str(), q.next.unwrap_or(5).min(100)).await?;
    Ok(Json(json!({"job": job.to_json(), "upcoming": upcoming})).into_response())
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
    if new.task == "command" {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_task",
            "command jobs cannot be created over HTTP: define them in the server's config file",
        ));
    }
    let mut job = Job::new(&new.id, &new.task, trigger(new.trigger)?).map_err(|e| ApiError::invalid(e.to_string()))?;
    job.name = new.name;
    job.args = new.args;
    if let Some(options) = new.options {
        job.options = serde_json::from_value::<JobOptions>(options)
            .map_err(|e| ApiError::invalid(format!("invalid options: {e}")))?;
    }
    let policy = if new.replace { ConflictPolicy::Replace } else { ConflictPolicy::Error };
    let job = h.scheduler.add_job(job, policy).await?;
    Ok((StatusCode::CREATED, Json(job.to_json())).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Modify {
    name: Option<String>,
    args: Option<Value>,
    options: Option<Value>,
}

async fn modify_job(
    State(h): State<Handle>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let m: Modify = body(bytes)?;
    let id = job_id(&id)?;
    let options = m
        .options
        .map(|o| {
            serde_json::from_value::<JobOptions>(o).map_err(|e| ApiError::invalid(format!("invalid options: {e}")))
        })
        .transpose()?;
    let patch = JobPatch { name: m.name.map(Some), args: m.args, options };
    let job = h.scheduler.modify_job(id.as_str(), patch).await?;
    Ok(Json(job.to_json()).into_response())
}

async fn remove_job(State(h): State<Handle>, Path(id): Path<String>) -> ApiResult {
    let id = job_id(&id)?;
    let job = h.scheduler.remove_job(id.as_str(), RemoveMode::LetFinish).await?;
    Ok(Json(json!({"removed": job.to_json()})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Pause {
    reason: Option<String>,
}

async fn pause_job(State(h): State<Handle>, Path(id): Path<String>, bytes: Result<Bytes, BytesRejection>) -> ApiResult {
    let p: Pause = body(bytes)?;
    let id = job_id(&id)?;
    let job = h.scheduler.pause_job(id.as_str(), p.reason.as_deref().unwrap_or("paused over HTTP")).await?;
    Ok(Json(job.to_json()).into_response())
}

async fn resume_job(State(h): State<Handle>, Path(id): Path<String>) -> ApiResult {
    let id = job_id(&id)?;
    let job = h.scheduler.resume_job(id.as_str()).await?;
    Ok(Json(job.to_json()).into_response())
}

async fn run_job(State(h): State<Handle>, Path(id): Path<String>) -> ApiResult {
    let id = job_id(&id)?;
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
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let r: Reschedule = body(bytes)?;
    if r.trigger.is_null() {
        return Err(ApiError::malformed(
            "the body needs a trigger: {\"trigger\": {\"type\": \"cron\", \"expr\": \"0 9 * * *\"}}",
        ));
    }
    let id = job_id(&id)?;
    let job = h.scheduler.reschedule_job(id.as_str(), trigger(r.trigger)?).await?;
    Ok(Json(job.to_json()).into_response())
}

async fn job_stats(State(h): State<Handle>, Path(id): Path<String>) -> ApiResult {
    let id = job_id(&id)?;
    Ok(Json(h.scheduler.stats(id.as_str()).await?).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListRuns {
    job: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    offset: usize,
}

async fn list_runs(
    State(h): State<Handle>,
    query: Result<Query<ListRuns>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
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
    let query = RunQuery {
        job_id: q.job.as_deref().map(job_id).transpose()?,
        statuses,
        since: instant("since", &q.since)?,
        until: instant("until", &q.until)?,
        limit: Some(q.limit.unwrap_or(100).min(1000)),
        offset: q.offset,
    };
    Ok(Json(h.scheduler.history(&query).await?).into_response())
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// 200 while the loop has come round within the last two minutes (it does at
/// least once a minute) and the store answers; 503 with the reason otherwise.
async fn health(State(h): State<Handle>) -> Response {
    let s = &h.scheduler;
    let now = s.clock().now();
    let unhealthy = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "reason": reason, "state": s.state().as_str()})),
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
    (StatusCode::OK, Json(json!({"status": "ok", "state": "running", "node": s.node_id(), "epoch": epoch})))
        .into_response()
}
