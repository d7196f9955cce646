//! The tasks `chime serve` offers with no Rust code, `command` and `http`:
//! they live in `chime-tasks`, shared with library users. Everything a run
//! needs is in the job's arguments, so a job stored by the server can also
//! be run by the CLI (`chime jobs run ID --here`).

pub(crate) use chime_tasks::{CommandSpec, HttpSpec, registry};

/// Checks an `http` job's URL (http or https, no whitespace or control
/// characters, no credentials in it): see [`chime_tasks::validate_url`].
pub(crate) fn parse_http_url(url: &str) -> Result<(), String> {
    chime_tasks::validate_url(url)
}
