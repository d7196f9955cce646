//! Background job scheduling for Rust services: the crate to depend on. It
//! re-exports the engine (`chime-core`) and the cron engine (`chime-cron`),
//! and, by feature, the SQLite store and the web surface.
//!
//! ```
//! use chime::{ConflictPolicy, Job, JobContext, Scheduler, ShutdownMode, TaskRegistry, Trigger};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut tasks = TaskRegistry::new();
//! tasks.register("send_report", |ctx: JobContext| async move {
//!     println!("report for {}", ctx.scheduled_for);
//!     Ok::<_, std::io::Error>(())
//! });
//! let scheduler = Scheduler::builder().tasks(tasks).timezone("Europe/London")?.build();
//! let job = Job::new("daily-report", "send_report", Trigger::cron("0 9 * * MON-FRI")?)?;
//! scheduler.add_job(job, ConflictPolicy::Replace).await?;
//! scheduler.start()?;
//! scheduler.shutdown(ShutdownMode::Wait(std::time::Duration::from_secs(30))).await;
//! # Ok(())
//! # }
//! ```
//!
//! # Overview
//!
//! Everything of `chime-core` is re-exported at the top: [`Scheduler`],
//! [`Job`], [`Trigger`], [`TaskRegistry`], [`MemoryStore`], [`ManualClock`]
//! and the rest; [`cron`] is `chime-cron`. See those crates' documentation
//! for missed runs, DST, and the `JobStore` seam. Coming from APScheduler?
//! `docs/apscheduler.md` maps its calls to chime's.
//!
//! # Crate features
//!
//! * `sqlite`: `sqlite::SqliteStore`, jobs and run history in one SQLite
//!   file that survive restarts and crashes, shared by the processes of a
//!   host. SQLite is compiled in.
//! * `web`: `web::router`, the dashboard, the REST API, `/health` and
//!   `/metrics` as an axum `Router` to serve; `web::api_router` and
//!   `web::dashboard_router` to mount beside your app's own routes, under
//!   any prefix (`crates/web/examples/mount.rs`).
//! * `tasks`: `tasks::register`, the built-in `command` (run a program) and
//!   `http` (a careful HTTP client, https on rustls) tasks of `chime serve`,
//!   for jobs whose arguments say what to run.
//! * `postgres`: `postgres::PostgresStore`, for several nodes (processes,
//!   replicas) sharing one schedule: every scheduled time fires once, and a
//!   dead node's runs are taken over within a lease.

pub use chime_core::*;
/// Cron expressions: `chime-cron`.
pub use chime_cron as cron;

/// The PostgreSQL store: `chime-postgres`.
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use chime_postgres::*;
}

/// The SQLite store: `chime-sqlite`.
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use chime_sqlite::*;
}

/// Runs "Coming from APScheduler" (`docs/apscheduler.md`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/apscheduler.md")]
struct ComingFromApscheduler;

/// Runs the Rust forms of "Scheduling patterns" (`docs/examples.md`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/examples.md")]
struct SchedulingPatterns;

/// The built-in `command` and `http` tasks: `chime-tasks`.
#[cfg(feature = "tasks")]
pub mod tasks {
    pub use chime_tasks::*;
}

/// The web surface: `chime-web`.
#[cfg(feature = "web")]
pub mod web {
    pub use chime_web::*;
}
