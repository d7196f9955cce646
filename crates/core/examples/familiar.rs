//! The familiar example: a daily report at 09:00 by cron, and a temp-file
//! cleanup every 4 hours, plus a heartbeat every 2 seconds so that something
//! visibly happens. Runs for `CHIME_EXAMPLE_SECONDS` (default 5) seconds.
//!
//! ```sh
//! cargo run -p chime-core --example familiar
//! ```

use std::time::Duration;

use chime_core::{ConflictPolicy, Event, Job, JobContext, Scheduler, ShutdownMode, TaskRegistry, Trigger};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut tasks = TaskRegistry::new();
    tasks.register("send_report", |ctx: JobContext| async move {
        println!("sending the daily report for {}", ctx.scheduled_for);
        Ok::<_, std::io::Error>(())
    });
    tasks.register_blocking("cleanup_tmp", |_ctx| {
        let dir = std::env::temp_dir().join("chime-example");
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            std::fs::remove_file(entry?.path())?;
        }
        Ok::<_, std::io::Error>(())
    });
    tasks.register("heartbeat", |ctx: JobContext| async move {
        println!("heartbeat, run {} (attempt {})", ctx.run_id, ctx.attempt);
        Ok::<_, std::io::Error>(())
    });

    let scheduler = Scheduler::builder().tasks(tasks).build();
    let report = Job::new("daily-report", "send_report", Trigger::cron("0 9 * * *")?)?.with_name("Daily report");
    let cleanup = Job::new("cleanup", "cleanup_tmp", Trigger::every("4h")?)?.with_name("Temp-file cleanup");
    let heartbeat = Job::new("heartbeat", "heartbeat", Trigger::every("2s")?)?;
    for job in [report, cleanup, heartbeat] {
        scheduler.add_job(job, ConflictPolicy::Replace).await?;
    }
    let mut events = scheduler.subscribe();
    scheduler.start()?;

    println!("zone: {}", scheduler.timezone());
    for job in scheduler.jobs().await? {
        let next = job.state.next_run_at.map_or("never".to_owned(), |t| t.to_string());
        println!("  {:<14} {:<40} next {next}", job.id, job.trigger.describe());
    }

    let seconds: u64 = std::env::var("CHIME_EXAMPLE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let deadline = tokio::time::sleep(Duration::from_secs(seconds));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            Ok(event) = events.recv() => {
                if let Event::RunSucceeded { job_id, duration, .. } = event {
                    println!("  {job_id} succeeded in {duration:?}");
                }
            }
        }
    }
    scheduler.shutdown(ShutdownMode::Wait(Duration::from_secs(10))).await;
    println!("shut down");
    Ok(())
}
