//! chime's dashboard and API mounted in your own axum app, beside your routes.
//! Serves on 127.0.0.1:3000 for `CHIME_EXAMPLE_SECONDS` (default 5) seconds.
//!
//! ```sh
//! cargo run -p chime-web --example mount
//! ```

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use chime_core::{ConflictPolicy, Job, JobContext, Scheduler, ShutdownMode, TaskRegistry, Trigger};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut tasks = TaskRegistry::new();
    tasks.register("send_report", |ctx: JobContext| async move {
        println!("report for {}", ctx.scheduled_for);
        Ok::<_, std::io::Error>(())
    });
    let scheduler = Scheduler::builder().tasks(tasks).build();
    scheduler.add_job(Job::new("report", "send_report", Trigger::every("2s")?)?, ConflictPolicy::Replace).await?;
    scheduler.start()?;

    // Your routes, and chime's: the dashboard at /, the API under /api/v1,
    // /health and /metrics. Set a token (16 bytes or more) before serving
    // beyond loopback, and name the hosts clients use to reach you.
    let handle = chime_web::Handle::new(scheduler.clone()).with_token(std::env::var("CHIME_API_TOKEN").ok())?;
    let app = Router::new().route("/hello", get(|| async { "hello from my service" })).merge(chime_web::router(handle));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("dashboard on http://127.0.0.1:3000/, your route on http://127.0.0.1:3000/hello");
    let seconds: u64 = std::env::var("CHIME_EXAMPLE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    // chime_web::serve bounds connections (timeouts, a limit); axum::serve works too.
    chime_web::serve(listener, app, tokio::time::sleep(Duration::from_secs(seconds))).await?;
    scheduler.shutdown(ShutdownMode::Wait(Duration::from_secs(10))).await;
    Ok(())
}
