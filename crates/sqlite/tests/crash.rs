//! Crash safety with a real process: a scheduler on SQLite (in a "container"
//! with its own `HOSTNAME`) is killed with SIGKILL while a run is in flight;
//! the next start, on another host name, loses no job, finds the run through
//! the dead node's expired lease and marks it `abandoned` (or re-queues it when
//! its job has retries left), and applies the misfire rules to what fell due
//! meanwhile. Along the way, a pause made by this process reaches the child's
//! scheduler.
//!
//! The child is this test binary again, run with `CHIME_CRASH_CHILD_DB` set.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chime_core::{
    ConflictPolicy, Event, Job, JobContext, RunQuery, RunStatus, Scheduler, ShutdownMode, TaskRegistry, Trigger,
};
use chime_sqlite::SqliteStore;
use chime_testkit::{KillOnDrop, wait_for_async};
use jiff::{SignedDuration, Timestamp};

/// Both schedulers' lease: the restarted one sweeps the dead child's runs
/// once this has passed since the child's last heartbeat.
const LEASE: SignedDuration = SignedDuration::from_secs(2);

fn tasks() -> TaskRegistry {
    let mut tasks = TaskRegistry::new();
    tasks.register("noop", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    tasks.register("hang", |_ctx: JobContext| async {
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    });
    tasks
}

/// The child: run a scheduler on the database until killed. Not a test of
/// its own (so reported as ignored, never as a pass that did nothing): the
/// parent runs it with `--ignored`.
#[test]
#[ignore = "the child process of kill_9_loses_nothing_and_restart_applies_the_misfire_rules, which runs it"]
fn crash_child() {
    let db = std::env::var("CHIME_CRASH_CHILD_DB").expect("run by the crash test, with CHIME_CRASH_CHILD_DB");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&db).await.unwrap();
        let scheduler = Scheduler::builder()
            .store(store)
            .tasks(tasks())
            .timezone("UTC")
            .unwrap()
            .node_lease(LEASE)
            .unwrap()
            .build();
        scheduler.start().unwrap();
        println!("child ready");
        std::future::pending::<()>().await;
    });
}

async fn history(store: &SqliteStore, job: &str) -> Vec<chime_core::Run> {
    use chime_core::JobStore;
    let q = RunQuery { job_id: Some(chime_core::JobId::new(job).unwrap()), limit: Some(10_000), ..RunQuery::default() };
    let mut runs = store.history(&q).await.unwrap();
    runs.reverse();
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_and_restart_applies_the_misfire_rules() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chime.db");
    let db = db.to_str().unwrap();

    // This process defines the jobs; the child runs them.
    let store = SqliteStore::open(db).await.unwrap();
    let admin = Scheduler::builder()
        .store(SqliteStore::open(db).await.unwrap())
        .tasks(tasks())
        .timezone("UTC")
        .unwrap()
        .build();
    let soon = Timestamp::now() + SignedDuration::from_millis(500);
    let stuck = Job::new("stuck", "hang", Trigger::every("1h").unwrap().with_start(soon)).unwrap();
    let every_sec = Job::new("every-sec", "noop", Trigger::every("1s").unwrap()).unwrap();
    let graced = Job::new("graced", "noop", Trigger::every("1s").unwrap())
        .unwrap()
        .with_misfire_grace_time(SignedDuration::from_millis(500));
    let paused_later = Job::new("paused-later", "noop", Trigger::every("1s").unwrap()).unwrap();
    // Its retry policy says a run its process abandons is run again.
    let stuck_retry = Job::new("stuck-retry", "hang", Trigger::every("1h").unwrap().with_start(soon))
        .unwrap()
        .with_retry(chime_core::RetryPolicy::new(3, SignedDuration::from_secs(1)));
    for job in [stuck, every_sec, graced, paused_later, stuck_retry] {
        admin.add_job(job, ConflictPolicy::Error).await.unwrap();
    }

    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("CHIME_CRASH_CHILD_DB", db)
            .env("HOSTNAME", "old-container")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    wait_for_async("the stuck run to be running in the child", Duration::from_secs(20), || async {
        history(&store, "stuck").await.first().is_some_and(|r| r.status == RunStatus::Running)
            && history(&store, "stuck-retry").await.first().is_some_and(|r| r.status == RunStatus::Running)
    })
    .await;
    wait_for_async("the child to run paused-later", Duration::from_secs(20), || async {
        !history(&store, "paused-later").await.is_empty()
    })
    .await;

    // Paused from this process: the child stops running it. A job every
    // second that stays quiet for two seconds has been paused; 10 s of
    // patience is for a loaded machine (the change is seen within 200 ms).
    admin.pause_job("paused-later", "from another process").await.unwrap();
    let paused_at = Instant::now();
    let mut runs = history(&store, "paused-later").await.len();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = history(&store, "paused-later").await.len();
        if now == runs {
            break;
        }
        runs = now;
        assert!(paused_at.elapsed() < Duration::from_secs(10), "the child kept running the paused job");
    }

    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    let killed_at = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // Restart.
    let restarted = Scheduler::builder()
        .store(SqliteStore::open(db).await.unwrap())
        .tasks(tasks())
        .timezone("UTC")
        .unwrap()
        .node_lease(LEASE)
        .unwrap()
        .node_id("new-container-1")
        .build();
    let mut events = restarted.subscribe();
    restarted.start().unwrap();
    let mut abandoned = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut every_sec_ran, mut graced_missed, mut retried) = (false, false, None);
    while abandoned.is_none() || !every_sec_ran || !graced_missed || retried.is_none() {
        assert!(Instant::now() < deadline, "restart did not abandon/run/miss as expected");
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap() {
            Event::RunAbandoned { job_id, run_id, node, requeued, .. } if job_id.as_str() == "stuck" => {
                assert!(node.starts_with("old-container-"), "the dead node is named: {node}");
                assert!(!requeued, "no retries: abandoned for good");
                abandoned = Some(run_id)
            }
            Event::RunSucceeded { job_id, .. } if job_id.as_str() == "every-sec" => every_sec_ran = true,
            Event::RunMissed { job_id, .. } if job_id.as_str() == "graced" => graced_missed = true,
            Event::RunStarted { job_id, attempt, run_id, .. } if job_id.as_str() == "stuck-retry" => {
                retried = Some((attempt, run_id))
            }
            _ => {}
        }
    }
    restarted.shutdown(ShutdownMode::Cancel).await;

    // Nothing lost.
    let ids: Vec<String> = restarted.jobs().await.unwrap().iter().map(|j| j.id.to_string()).collect();
    assert_eq!(ids, ["every-sec", "graced", "paused-later", "stuck", "stuck-retry"]);
    // The abandoned run of a job with retries left ran again: same run, attempt 2.
    let (attempt, run_id) = retried.unwrap();
    assert_eq!(attempt, 2);
    assert_eq!(history(&store, "stuck-retry").await[0].id, run_id);
    assert_eq!(restarted.get_job("paused-later").await.unwrap().state.paused.as_deref(), Some("from another process"));

    // The in-flight run is abandoned, with the reason.
    let stuck_runs = history(&store, "stuck").await;
    assert_eq!(stuck_runs[0].status, RunStatus::Abandoned);
    assert_eq!(Some(stuck_runs[0].id), abandoned);
    assert!(
        stuck_runs[0].error.as_deref().unwrap().contains("stopped renewing its lease while the run was running"),
        "{:?}",
        stuck_runs[0].error
    );

    // every-sec coalesced its downtime into one run: of the times due while
    // the child was dead, one ran and the rest are recorded as missed.
    let down: Vec<_> = history(&store, "every-sec").await.into_iter().filter(|r| r.scheduled_for > killed_at).collect();
    let first_claim: Vec<_> = down.iter().filter(|r| r.node.as_deref() == Some(restarted.node_id())).collect();
    assert!(first_claim.iter().any(|r| r.status == RunStatus::Succeeded));
    assert!(
        first_claim.iter().filter(|r| r.status == RunStatus::Missed).all(|r| r
            .error
            .as_deref()
            .unwrap()
            .starts_with("coalesced")),
        "{first_claim:?}"
    );
    assert!(
        first_claim.iter().filter(|r| r.status == RunStatus::Missed).count() >= 1,
        "the downtime left coalesced times"
    );

    // graced: times older than its 500 ms grace are missed for that reason.
    let graced_missed: Vec<_> =
        history(&store, "graced").await.into_iter().filter(|r| r.status == RunStatus::Missed).collect();
    assert!(graced_missed.iter().any(|r| r.error.as_deref().unwrap().contains("past the misfire grace time of 500ms")));
}
