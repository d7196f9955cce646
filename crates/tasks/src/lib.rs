//! The built-in tasks of chime, `command` and `http`, for `chime serve` and
//! for services that embed the scheduler: one call registers both, and a job
//! stored by either can be run by the other.
//!
//! ```
//! use chime_core::{Job, Trigger};
//!
//! let mut tasks = chime_core::TaskRegistry::new();
//! chime_tasks::register(&mut tasks);
//! let spec = chime_tasks::HttpSpec::get("https://example.com/hooks/nightly");
//! chime_tasks::validate(&spec)?;
//! let mut job = Job::new("nightly-hook", "http", Trigger::cron("0 3 * * *")?)?;
//! job.args = serde_json::to_value(&spec)?;
//! // Then `Scheduler::builder().tasks(tasks)`, and add the job.
//! # drop((job, tasks));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! * `command` ([`CommandSpec`]) runs a program with its arguments (or a
//!   line through `/bin/sh -c`), its environment and working directory, and
//!   keeps the last 4 KiB of its output; a non-zero exit fails the run.
//! * `http` ([`HttpSpec`]) sends one request with hyper's client, https by
//!   rustls (ring) trusting Mozilla's roots and the job's `ca_cert`. A 2xx
//!   answer is success; anything else fails the run with the status line and
//!   the start of the body. The client is careful about what a job can make
//!   it send: URLs, methods and headers are validated ([`validate`]) before
//!   anything is sent, redirects are limited and never go from https to
//!   http, at most 1 MiB of an answer is read, connecting times out after
//!   10 s and the whole request after 60 s (or the job's `timeout`), and
//!   credential headers never appear in a run's output or error.
//!   [`TargetPolicy`] restricts where requests may go.

mod command;
mod http;
mod target;

use std::sync::Arc;
use std::time::Duration;

use chime_core::{JobContext, TaskRegistry};

pub use crate::command::CommandSpec;
pub use crate::http::{
    CONNECT_TIMEOUT, DEFAULT_MAX_REDIRECTS, DEFAULT_TIMEOUT, HttpSpec, MAX_REDIRECTS_LIMIT, MAX_REQUEST_BODY,
    MAX_RESPONSE_BODY, MAX_TIMEOUT, validate, validate_url,
};
pub use crate::target::TargetPolicy;

/// Registers `command` and `http` in `tasks`, with the default [`Options`].
pub fn register(tasks: &mut TaskRegistry) {
    register_with(tasks, Options::default());
}

/// Registers `command` and `http` in `tasks`; `http` follows `options`.
pub fn register_with(tasks: &mut TaskRegistry, options: Options) {
    let options = Arc::new(options);
    tasks.register("command", |ctx: JobContext| command::run_command(ctx));
    tasks.register("http", move |ctx: JobContext| http::run_http(ctx, Arc::clone(&options)));
}

/// A registry holding only `command` and `http`.
pub fn registry() -> TaskRegistry {
    let mut tasks = TaskRegistry::new();
    register(&mut tasks);
    tasks
}

/// How the `http` task behaves beyond what each job says.
///
/// ```
/// let policy: chime_tasks::TargetPolicy = "hooks.example.com".parse()?;
/// let mut tasks = chime_core::TaskRegistry::new();
/// chime_tasks::register_with(&mut tasks, chime_tasks::Options::default().allowed_targets(policy));
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    allowed_targets: Option<TargetPolicy>,
    connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options { allowed_targets: None, connect_timeout: CONNECT_TIMEOUT }
    }
}

impl Options {
    /// Every request, and every redirect it leads to, must go to a target
    /// the policy allows; others fail the run before a connection is made.
    /// This applies to every `http` job the registry runs, whoever made it.
    pub fn allowed_targets(mut self, policy: TargetPolicy) -> Options {
        self.allowed_targets = Some(policy);
        self
    }

    /// How long connecting may take ([`CONNECT_TIMEOUT`] unless set).
    pub fn connect_timeout(mut self, timeout: Duration) -> Options {
        self.connect_timeout = timeout;
        self
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_tasks_are_registered() {
        assert_eq!(super::registry().names(), ["command", "http"]);
        let mut tasks = chime_core::TaskRegistry::new();
        super::register_with(&mut tasks, super::Options::default().connect_timeout(std::time::Duration::from_secs(1)));
        assert!(tasks.contains("http") && tasks.contains("command"));
    }
}
