//! Node leases in the engine, on virtual time: two schedulers share one
//! `MemoryStore`; one loses its lease (its row is taken from the store, as a
//! sweeper does once a node is not heard from); the other's sweeper decides
//! its runs; the loser cancels its runs, keeps its late result beside the
//! sweeper's decision, and registers again under a new epoch.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chime_core::{
    Clock, ConflictPolicy, Event, Job, JobContext, JobStore, Lease, ManualClock, MemoryStore, RetryPolicy, RunQuery,
    RunStatus, Scheduler, ShutdownMode, TaskRegistry, Trigger,
};
use jiff::{SignedDuration, Timestamp};
use support::{wait_for, within};

const LEASE: SignedDuration = SignedDuration::from_secs(30);

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// `hang` runs until cancelled; `quick` returns at once.
fn tasks() -> TaskRegistry {
    let mut tasks = TaskRegistry::new();
    tasks.register("hang", |ctx: JobContext| async move {
        ctx.cancel.cancelled().await;
        Err::<(), _>(chime_core::TaskError::from("stopped by cancellation"))
    });
    tasks.register("quick", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    tasks
}

fn node(store: &Arc<MemoryStore>, clock: &ManualClock, id: &str, tasks: TaskRegistry) -> Scheduler {
    Scheduler::builder()
        .shared_store(Arc::clone(store) as Arc<dyn JobStore>)
        .tasks(tasks)
        .clock(clock.clone())
        .timezone("UTC")
        .unwrap()
        .node_id(id)
        .node_lease(LEASE)
        .unwrap()
        .build()
}

/// Polls `check` until it holds, failing naming `what` after the tests' deadline.
/// For facts no event announces (a node registered, a row written by another node).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    within(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn lease_of(store: &MemoryStore, s: &Scheduler) -> Lease {
    let epoch = s.lease_epoch().expect("registered");
    let info = store.nodes().await.unwrap().into_iter().find(|n| n.epoch == epoch).unwrap();
    Lease { node: Arc::from(info.id), epoch, expires_at: info.lease_expires_at }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_lease_cancels_its_runs_keeps_the_late_result_and_rejoins() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(ts("2026-01-01T00:00:00Z"));
    let a = node(&store, &clock, "a", tasks());
    let b = node(&store, &clock, "b", tasks());
    let mut a_events = a.subscribe();
    let b_events = b.subscribe();
    a.add_job(Job::new("stuck", "hang", Trigger::every("1h").unwrap()).unwrap(), ConflictPolicy::Error).await.unwrap();
    a.start().unwrap();
    clock.advance(Duration::from_secs(3600));
    let started = wait_for(&mut a_events, "a to start the run", |e| matches!(e, Event::RunStarted { .. })).await;
    let Event::RunStarted { run_id, .. } = started else { unreachable!() };
    b.start().unwrap();
    eventually("b to register", async || b.lease_epoch().is_some()).await;

    // a's lease goes (it was not heard from in time): the next sweep takes its
    // run. Which node sweeps is a race: b's heartbeat, or a's own after it
    // registers again; either decides the run once.
    let lost = lease_of(&store, &a).await;
    store.release_lease(&lost).await.unwrap();
    let mut merged = [a.subscribe(), b_events.resubscribe()];
    clock.advance(Duration::from_secs(10));
    eventually("a sweep to abandon the run", async || {
        store
            .history(&RunQuery::default())
            .await
            .unwrap()
            .iter()
            .any(|r| r.id == run_id && r.status == RunStatus::Abandoned)
    })
    .await;
    let mut abandoned = Vec::new();
    for events in &mut merged {
        while let Ok(e) = events.try_recv() {
            if matches!(e, Event::RunAbandoned { .. }) {
                abandoned.push(e);
            }
        }
    }
    assert_eq!(
        abandoned,
        [Event::RunAbandoned {
            job_id: chime_core::JobId::new("stuck").unwrap(),
            run_id,
            scheduled_for: ts("2026-01-01T01:00:00Z"),
            node: "a".into(),
            requeued: false,
        }],
        "one sweep, one event"
    );

    // a learns of it at its next heartbeat: it cancels the run and registers again.
    let event = wait_for(&mut a_events, "a to notice", |e| matches!(e, Event::LeaseLost { .. })).await;
    assert_eq!(event, Event::LeaseLost { node: "a".into(), epoch: lost.epoch });
    wait_for(&mut a_events, "a's run to be cancelled", |e| matches!(e, Event::RunCancelled { .. })).await;
    eventually("a to register again", async || a.lease_epoch().is_some_and(|e| e != lost.epoch)).await;

    let run = store.history(&RunQuery::default()).await.unwrap().into_iter().find(|r| r.id == run_id).unwrap();
    assert_eq!(run.status, RunStatus::Abandoned, "the sweeper's decision stands: {run:?}");
    let late = run.late_result.as_deref().expect("a's late result is kept");
    assert!(late.starts_with("cancelled at ") && late.contains("on node a, after its lease was lost"), "{late}");

    // The job is not stuck: its next time runs, on whichever node claims it.
    clock.advance(Duration::from_secs(3600));
    eventually("the next run", async || {
        store
            .history(&RunQuery::default())
            .await
            .unwrap()
            .iter()
            .any(|r| r.scheduled_for == ts("2026-01-01T02:00:00Z") && r.status == RunStatus::Running)
    })
    .await;
    within("a's shutdown", a.shutdown(ShutdownMode::Cancel)).await;
    within("b's shutdown", b.shutdown(ShutdownMode::Cancel)).await;
    assert!(store.nodes().await.unwrap().is_empty(), "a clean shutdown ends the lease at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swept_run_with_retries_left_runs_again_on_another_node() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(ts("2026-01-01T00:00:00Z"));
    let a = node(&store, &clock, "a", tasks());
    let job = Job::new("retried", "hang", Trigger::every("1h").unwrap())
        .unwrap()
        .with_retry(RetryPolicy::new(3, SignedDuration::from_secs(1)));
    a.add_job(job, ConflictPolicy::Error).await.unwrap();
    let mut a_events = a.subscribe();
    a.start().unwrap();
    clock.advance(Duration::from_secs(3600));
    let Event::RunStarted { run_id, attempt, .. } =
        wait_for(&mut a_events, "the first attempt", |e| matches!(e, Event::RunStarted { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(attempt, 1);
    let lost = lease_of(&store, &a).await;
    // a dies for good: its runs stay until another node's sweeper comes.
    a.pause();
    store.release_lease(&lost).await.unwrap();

    let b = node(&store, &clock, "b", tasks());
    let mut b_events = b.subscribe();
    b.start().unwrap();
    // b sweeps as it registers; but a's heartbeat, woken by the clock's
    // step, may learn of its loss first, rejoin and sweep its old run itself.
    let abandoned = |e: &Event| matches!(e, Event::RunAbandoned { .. });
    let swept = tokio::select! {
        e = wait_for(&mut b_events, "b's sweep", abandoned) => e,
        e = wait_for(&mut a_events, "a's own sweep, after rejoining", abandoned) => e,
    };
    assert!(matches!(swept, Event::RunAbandoned { requeued: true, .. }), "{swept:?}");
    let again = wait_for(&mut b_events, "the next attempt on b", |e| matches!(e, Event::RunStarted { .. })).await;
    assert!(
        matches!(again, Event::RunStarted { run_id: r, attempt: 2, .. } if r == run_id),
        "the same run (one idempotency key), attempt 2: {again:?}"
    );
    let run = store.history(&RunQuery::default()).await.unwrap().into_iter().find(|r| r.id == run_id).unwrap();
    assert_eq!((run.node.as_deref(), run.status), (Some("b"), RunStatus::Running));
    within("a's shutdown", a.shutdown(ShutdownMode::Cancel)).await;
    within("b's shutdown", b.shutdown(ShutdownMode::Cancel)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_on_a_node_without_the_task_is_run_by_one_that_has_it() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(ts("2026-01-01T00:00:00Z"));
    let mut only_quick = TaskRegistry::new();
    only_quick.register("quick", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    let worker = node(&store, &clock, "worker", only_quick);
    let mut none = TaskRegistry::new();
    none.register("other", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    let api = node(&store, &clock, "api", none);
    worker
        .add_job(Job::new("q", "quick", Trigger::every("1d").unwrap()).unwrap(), ConflictPolicy::Error)
        .await
        .unwrap();
    let mut events = worker.subscribe();
    worker.start().unwrap();
    api.start().unwrap();
    let requested = api.run_job_now("q").await.unwrap();
    assert_eq!((requested.status, requested.node.as_deref()), (RunStatus::Pending, None), "api cannot run it itself");
    let done = wait_for(&mut events, "the worker to run it", |e| matches!(e, Event::RunSucceeded { .. })).await;
    assert!(matches!(done, Event::RunSucceeded { run_id, .. } if run_id == requested.id));
    let run = store.history(&RunQuery::default()).await.unwrap().remove(0);
    assert_eq!((run.node.as_deref(), run.kind), (Some("worker"), chime_core::RunKind::Manual));
    assert_eq!(
        worker.get_job("q").await.unwrap().state.next_run_at,
        Some(clock.now() + SignedDuration::from_hours(24)),
        "the schedule is untouched"
    );
    within("worker's shutdown", worker.shutdown(ShutdownMode::Cancel)).await;
    within("api's shutdown", api.shutdown(ShutdownMode::Cancel)).await;
}

#[test]
fn a_lease_shorter_than_the_minimum_is_refused() {
    let err = Scheduler::builder().node_lease(SignedDuration::from_millis(10)).unwrap_err();
    assert!(err.to_string().contains("node lease 10ms is too short: at least 300ms"), "{err}");
}
