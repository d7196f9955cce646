//! chime's dashboard and API mounted in your own axum app, under a prefix,
//! beside your own `/` and fallback. Serves on 127.0.0.1:3000 for
//! `CHIME_EXAMPLE_SECONDS` (default 5) seconds.
//!
//! ```sh
//! cargo run -p chime-web --example mount
//! ```

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Redirect;
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

    // Set a token (16 bytes or more) before serving beyond loopback, and
    // name the hosts clients use to reach you (`with_allowed_hosts`).
    let handle = chime_web::Handle::new(scheduler.clone()).with_token(std::env::var("CHIME_API_TOKEN").ok())?;

    // chime's two routers, side by side under one prefix: the pages call the
    // API at `api/v1/` beside themselves. Neither has a `/` route of the
    // app's or a fallback, so your own stay yours.
    let chime = chime_web::api_router(handle.clone()).merge(chime_web::dashboard_router(handle));
    let app = Router::new()
        .route("/", get(|| async { "hello from my service; the scheduler is at /scheduler/" }))
        // Nested with the slash: the dashboard is /scheduler/, the API
        // /scheduler/api/v1/..., health /scheduler/health. axum serves
        // /scheduler/ or /scheduler, not both, so redirect the other one.
        .nest("/scheduler/", chime)
        .route("/scheduler", get(|| async { Redirect::permanent("/scheduler/") }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "nothing here (my service's own 404)") });
    // The API alone also merges at the root of an app:
    // `Router::new().route("/", ...).merge(chime_web::api_router(handle))`.
    // `chime_web::router(handle)` is the all-in-one `chime serve` uses: it has
    // a `/` and a fallback of its own, so serve it on its own.

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("your page on http://127.0.0.1:3000/, the dashboard on http://127.0.0.1:3000/scheduler/");
    let seconds: u64 = std::env::var("CHIME_EXAMPLE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    // chime_web::serve bounds connections (timeouts, a limit); axum::serve works too.
    chime_web::serve(listener, app, tokio::time::sleep(Duration::from_secs(seconds))).await?;
    scheduler.shutdown(ShutdownMode::Wait(Duration::from_secs(10))).await;
    Ok(())
}
