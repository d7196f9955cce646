//! Jobs defined in code: `Scheduler::sync` at start-up, as docs/design.md describes.

use chime_core::{
    ConflictPolicy, Job, JobContext, ManualClock, MemoryStore, REMOVED_FROM_CODE, Scheduler, TaskRegistry, Trigger,
};
use std::sync::Arc;

fn scheduler(store: Arc<MemoryStore>) -> Scheduler {
    let mut tasks = TaskRegistry::new();
    tasks.register("t", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    Scheduler::builder()
        .shared_store(store)
        .tasks(tasks)
        .clock(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()))
        .timezone("UTC")
        .unwrap()
        .build()
}

fn code_jobs() -> Vec<Job> {
    vec![
        Job::new("report", "t", Trigger::cron("0 9 * * *").unwrap()).unwrap().with_name("Daily report"),
        Job::new("cleanup", "t", Trigger::every("4h").unwrap()).unwrap(),
    ]
}

fn ids(v: &[chime_core::JobId]) -> Vec<&str> {
    v.iter().map(|i| i.as_str()).collect()
}

#[tokio::test]
async fn a_restart_with_the_same_code_keeps_everything() {
    let store = Arc::new(MemoryStore::new());
    let report = scheduler(Arc::clone(&store)).sync_with(code_jobs(), false).await.unwrap();
    assert_eq!(ids(&report.added), ["report", "cleanup"]);
    assert_eq!(report.to_string(), "added 2, updated 0, kept 0, orphaned 0");

    // A runtime edit: paused from the CLI.
    let s = scheduler(Arc::clone(&store));
    s.pause_job("report", "holiday").await.unwrap();

    // Restart: same code, so the edit stays.
    let s = scheduler(Arc::clone(&store));
    let report = s.sync_with(code_jobs(), false).await.unwrap();
    assert_eq!(report.to_string(), "added 0, updated 0, kept 2, orphaned 0");
    assert_eq!(s.get_job("report").await.unwrap().state.paused.as_deref(), Some("holiday"));
}

#[tokio::test]
async fn a_code_change_updates_the_job_and_keeps_its_state() {
    let store = Arc::new(MemoryStore::new());
    let s = scheduler(Arc::clone(&store));
    s.sync_with(code_jobs(), false).await.unwrap();
    s.pause_job("cleanup", "disk check").await.unwrap();
    let mut jobs = code_jobs();
    jobs[0] = Job::new("report", "t", Trigger::cron("30 8 * * *").unwrap()).unwrap().with_name("Daily report");
    let report = s.sync_with(jobs, false).await.unwrap();
    assert_eq!(ids(&report.updated), ["report"]);
    assert_eq!(ids(&report.kept), ["cleanup"]);
    let job = s.get_job("report").await.unwrap();
    assert_eq!(job.trigger.describe(), "At 08:30 (UTC)");
    assert_eq!(job.state.next_run_at, Some("2026-01-01T08:30:00Z".parse().unwrap()));
    assert_eq!(s.get_job("cleanup").await.unwrap().state.paused.as_deref(), Some("disk check"), "runtime edit kept");
}

#[tokio::test]
async fn a_job_gone_from_code_is_paused_not_deleted_and_comes_back() {
    let store = Arc::new(MemoryStore::new());
    let s = scheduler(Arc::clone(&store));
    s.sync_with(code_jobs(), false).await.unwrap();
    // A job added at runtime is not code's to orphan.
    s.add_job(Job::new("adhoc", "t", Trigger::every("1h").unwrap()).unwrap(), ConflictPolicy::Error).await.unwrap();

    let report = s.sync_with(code_jobs()[..1].to_vec(), false).await.unwrap();
    assert_eq!(report.to_string(), "added 0, updated 0, kept 1, orphaned 1");
    assert_eq!(ids(&report.orphaned), ["cleanup"]);
    let cleanup = s.get_job("cleanup").await.unwrap();
    assert_eq!(cleanup.state.paused.as_deref(), Some(REMOVED_FROM_CODE));
    assert_eq!(cleanup.state.next_run_at, None);
    assert!(s.get_job("adhoc").await.unwrap().state.paused.is_none());

    // Still orphaned on the next restart, without a second pause.
    let report = s.sync_with(code_jobs()[..1].to_vec(), false).await.unwrap();
    assert_eq!(ids(&report.orphaned), ["cleanup"]);

    // Back in code: resumed.
    let report = s.sync_with(code_jobs(), false).await.unwrap();
    assert_eq!(ids(&report.updated), ["cleanup"]);
    let cleanup = s.get_job("cleanup").await.unwrap();
    assert!(cleanup.state.paused.is_none());
    assert!(cleanup.state.next_run_at.is_some());
}

#[tokio::test]
async fn force_update_makes_code_win_over_runtime_edits() {
    let store = Arc::new(MemoryStore::new());
    let s = scheduler(Arc::clone(&store));
    s.sync_with(code_jobs(), false).await.unwrap();
    s.pause_job("report", "holiday").await.unwrap();
    s.reschedule_job("cleanup", Trigger::every("1h").unwrap()).await.unwrap();
    let report = s.sync_with(code_jobs(), true).await.unwrap();
    assert_eq!(report.to_string(), "added 0, updated 2, kept 0, orphaned 0");
    assert!(s.get_job("report").await.unwrap().state.paused.is_none());
    assert_eq!(s.get_job("cleanup").await.unwrap().trigger.describe(), "every 4h");
}

#[tokio::test]
async fn an_invalid_job_in_code_is_an_error_naming_it() {
    let s = scheduler(Arc::new(MemoryStore::new()));
    let bad = Job::new("bad", "t", Trigger::every("1h").unwrap()).unwrap().with_max_instances(0);
    let err = s.sync_with(vec![bad], false).await.unwrap_err();
    assert_eq!(err.to_string(), "job \"bad\": max_instances must be between 1 and 10000, not 0");
    let unknown = Job::new("u", "nope", Trigger::every("1h").unwrap()).unwrap();
    assert!(s.sync_with(vec![unknown], false).await.unwrap_err().to_string().contains("no task named \"nope\""));
}

/// The child's side of the test below: set when this binary is re-run to
/// check `sync` under a given `SCHEDULER_FORCE_UPDATE`.
const CHILD: &str = "CHIME_TEST_FORCE_UPDATE_EXPECTED";

#[tokio::test]
async fn sync_reads_scheduler_force_update_from_the_environment() {
    if let Ok(expected) = std::env::var(CHILD) {
        // In the child: a runtime edit, then a sync that only a forced update overrides.
        let store = Arc::new(MemoryStore::new());
        let s = scheduler(Arc::clone(&store));
        s.sync(code_jobs()).await.unwrap();
        s.pause_job("report", "holiday").await.unwrap();
        let report = s.sync(code_jobs()).await.unwrap();
        let paused = s.get_job("report").await.unwrap().state.paused;
        let forced = report.updated.len() == 2 && paused.is_none();
        let kept = report.kept.len() == 2 && paused.as_deref() == Some("holiday");
        assert!(forced != kept, "{report}, paused {paused:?}");
        assert_eq!(forced.to_string(), expected, "{report}");
        return;
    }
    // The environment is the process's: each value is checked in a child
    // process of this test binary, so no other test sees it.
    let this = "sync_reads_scheduler_force_update_from_the_environment";
    for (value, forced) in [(Some("true"), true), (Some("1"), true), (Some("false"), false), (None, false)] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args(["--exact", this, "--test-threads", "1"]).env(CHILD, forced.to_string());
        match value {
            Some(v) => child.env("SCHEDULER_FORCE_UPDATE", v),
            None => child.env_remove("SCHEDULER_FORCE_UPDATE"),
        };
        let out = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "SCHEDULER_FORCE_UPDATE={value:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
