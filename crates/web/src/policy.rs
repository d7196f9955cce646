//! Programs come only from the server's config file. Whoever can reach the
//! API (a token holder included) may pause, resume, reschedule and run a
//! `command` job, but never decide what it runs: its arguments (argv, env,
//! working dir, shell) and its task are the config's. Every route that could
//! change or revive what a command job runs asks this module first, and a
//! refusal is a 403 `forbidden_task` saying why.
//!
//! `http` jobs may be created and changed over the API, but only with
//! arguments the task would send ([`http_args`]): a shape the task cannot
//! read or a request it would refuse (a `file://` URL, CR/LF in a header
//! value, a bad method, ...) is a 422, and a target outside the server's
//! allowed targets a 403 `forbidden_target`.

use axum::http::StatusCode;
use chime_core::{Job, REMOVED_FROM_CODE};
use chime_tasks::{HttpSpec, TargetPolicy};
use serde_json::Value;

use crate::ApiError;

/// The task that sends HTTP requests.
pub(crate) const HTTP: &str = "http";

/// The task that runs programs.
pub(crate) const COMMAND: &str = "command";

fn is_command(job: &Job) -> bool {
    &*job.task == COMMAND
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden_task", message)
}

/// Creating a job: never a command job.
pub(crate) fn create(task: &str) -> Result<(), ApiError> {
    if task == COMMAND {
        return Err(forbidden(
            "command jobs cannot be created over HTTP: define them in the server's config file".into(),
        ));
    }
    Ok(())
}

/// Replacing the stored job `existing` (`"replace": true`): a command job
/// cannot be swapped for another definition, command or not.
pub(crate) fn replace(existing: &Job) -> Result<(), ApiError> {
    if is_command(existing) {
        return Err(forbidden(format!(
            "job {:?} runs a command from the config file: it cannot be replaced over HTTP (edit the config and restart)",
            existing.id.as_str()
        )));
    }
    Ok(())
}

/// A PATCH carrying new arguments (`changes_args`) for `job`.
pub(crate) fn modify(job: &Job, changes_args: bool) -> Result<(), ApiError> {
    if changes_args && is_command(job) {
        return Err(forbidden(format!(
            "job {:?} runs a command from the config file: its args (argv, env, working_dir, shell) cannot be changed over HTTP; its name and options can",
            job.id.as_str()
        )));
    }
    Ok(())
}

/// Resuming `job`: a command job the config no longer defines stays paused
/// until the config defines it again.
pub(crate) fn resume(job: &Job) -> Result<(), ApiError> {
    removed_from_config(job, "resumed")
}

/// Running `job` now, with `other_args` when the caller asked for arguments
/// of its own.
pub(crate) fn run(job: &Job, other_args: bool) -> Result<(), ApiError> {
    if other_args && is_command(job) {
        return Err(forbidden(format!(
            "job {:?} runs a command from the config file: it runs with the config's args only",
            job.id.as_str()
        )));
    }
    removed_from_config(job, "run")
}

fn removed_from_config(job: &Job, verb: &str) -> Result<(), ApiError> {
    if is_command(job) && job.state.paused.as_deref() == Some(REMOVED_FROM_CODE) {
        return Err(forbidden(format!(
            "job {:?} runs a command the config file no longer defines ({REMOVED_FROM_CODE:?}): it cannot be {verb} over HTTP; put it back in the config, or remove it",
            job.id.as_str()
        )));
    }
    Ok(())
}

/// The arguments `args` a job of `task` gets over the API (as it will be
/// stored: for a PATCH, after [`crate::redact::restore`]). Jobs of other
/// tasks pass; an `http` job's must read as an [`HttpSpec`] (422), pass
/// [`chime_tasks::validate`] (422 with its message, which never quotes a
/// header's value or the URL) and, with a policy, go to an allowed target
/// (403 `forbidden_target`).
pub(crate) fn http_args(task: &str, args: &Value, allowed: Option<&TargetPolicy>) -> Result<(), ApiError> {
    if task != HTTP {
        return Ok(());
    }
    let spec: HttpSpec = serde_json::from_value(args.clone()).map_err(|e| {
        ApiError::invalid(format!(
            "invalid http args: {e}; expected {{\"url\", \"method\"?, \"headers\"?, \"body\"?, \"ca_cert\"?, \"max_redirects\"?, \"timeout\"?}}"
        ))
    })?;
    chime_tasks::validate(&spec).map_err(|e| ApiError::invalid(format!("invalid http args: {e}")))?;
    if let Some(policy) = allowed {
        policy.check_spec(&spec).map_err(|e| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_target",
                format!("this server's http jobs may not send requests there: {e} ([http] allowed_targets)"),
            )
        })?;
    }
    Ok(())
}

/// Pausing with `reason`: the reason sync gives to jobs the config dropped
/// is reserved, so the API cannot make a job look removed (and then refuse
/// to resume it).
pub(crate) fn pause_reason(reason: &str) -> Result<(), ApiError> {
    if reason.trim() == REMOVED_FROM_CODE {
        return Err(ApiError::invalid(format!(
            "the pause reason {REMOVED_FROM_CODE:?} is reserved for jobs the config no longer defines"
        )));
    }
    Ok(())
}
