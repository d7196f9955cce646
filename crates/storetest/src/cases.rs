//! The cases of the conformance suite, one function per behaviour of a
//! `JobStore`, each on a fresh store from the harness. The
//! [`conformance_tests!`](crate::conformance_tests) macro makes one
//! `#[test]` of each, so a store's failures are listed one by one.

use std::sync::Arc;

use chime_core::{
    AlertNotice, Claim, ClaimRequest, ConflictPolicy, Job, JobFilter, JobId, JobStatus, JobStore, Lease,
    NodeRegistration, Reason, RetryPolicy, Run, RunKind, RunQuery, RunStatus, StatusCounts, TimeSlots, Trigger, Zone,
    plan_fire,
};
use jiff::{SignedDuration, Timestamp};

use crate::Harness;

const T0: &str = "2026-01-01T00:00:00Z";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn at(minutes: i64) -> Timestamp {
    ts(T0) + SignedDuration::from_mins(minutes)
}

fn id(s: &str) -> JobId {
    JobId::new(s).unwrap()
}

/// A job every `every` minutes whose first run is `first` minutes after T0.
fn job(name: &str, every: i64, first: i64) -> Job {
    let mut job = Job::new(name, "task", Trigger::every(&format!("{every}m")).unwrap()).unwrap();
    job.trigger.resolve(at(first - every), &Zone::utc());
    job.state.next_run_at = Some(at(first));
    job.args = serde_json::json!({"n": 1, "nested": {"list": [1, 2, 3]}});
    job
}

async fn add(store: &Arc<dyn JobStore>, job: Job) -> Job {
    store.add_job(job, ConflictPolicy::Error).await.expect("add_job")
}

/// The lease every test node takes.
const TTL: SignedDuration = SignedDuration::from_secs(30);

/// The tasks every test node has.
fn tasks() -> Vec<Arc<str>> {
    vec![Arc::from("task")]
}

fn registration(name: &str) -> NodeRegistration {
    NodeRegistration { id: Arc::from(name), host: "test-host".into(), pid: 4242, version: "test".into() }
}

/// Registers node `name` at T0.
async fn lease(store: &Arc<dyn JobStore>, name: &str) -> Lease {
    store.register_node(&registration(name), TTL, at(0)).await.expect("register_node")
}

/// The one run a claim by `lease` at `now` finds, started (attempt 1).
async fn claim_and_start(store: &Arc<dyn JobStore>, lease: &Lease, now: Timestamp) -> Run {
    let mut run = claim(store, lease, now, 10).await.remove(0).runs.remove(0);
    run.status = RunStatus::Running;
    run.attempt = 1;
    run.started_at = Some(now);
    store.update_run(&run).await.unwrap();
    run
}

/// A claim by `lease` at `now` of the tasks in [`tasks`].
async fn claim(store: &Arc<dyn JobStore>, lease: &Lease, now: Timestamp, limit: usize) -> Vec<Claim> {
    let tasks = tasks();
    store.acquire_due(&ClaimRequest { now, limit, lease, ttl: TTL, tasks: &tasks }).await.expect("acquire_due")
}

/// Adding, reading, updating and removing jobs, and what each `ConflictPolicy` does with an id that exists.
pub async fn crud_and_conflict_policies(h: &Harness) {
    let store = h.store().await;
    let added = add(&store, job("a", 60, 60).with_name("A")).await;
    assert_eq!(added.state.version, 1, "a new job has version 1");
    let got = store.get_job(&id("a")).await.unwrap().expect("the job just added");
    assert_eq!(got, added, "get_job returns what add_job stored, field for field");
    assert_eq!(store.get_job(&id("missing")).await.unwrap(), None);

    let err = store.add_job(job("a", 5, 5), ConflictPolicy::Error).await.unwrap_err();
    assert!(err.is_conflict(), "adding a taken id with Error must conflict: {err}");
    let kept = store.add_job(job("a", 5, 5), ConflictPolicy::KeepExisting).await.unwrap();
    assert_eq!(kept.name(), "A", "KeepExisting returns the stored job");
    let replaced = store.add_job(job("a", 5, 5).with_name("A2"), ConflictPolicy::Replace).await.unwrap();
    assert_eq!((replaced.name(), replaced.state.version), ("A2", 2), "Replace stores the new job, version + 1");
    assert_eq!(store.get_job(&id("a")).await.unwrap().unwrap().name(), "A2");

    add(&store, job("c", 60, 60)).await;
    add(&store, job("b", 60, 60)).await;
    let ids: Vec<String> =
        store.list_jobs(&JobFilter::default()).await.unwrap().iter().map(|j| j.id.to_string()).collect();
    assert_eq!(ids, ["a", "b", "c"], "list_jobs orders by id");
    let page = store.list_jobs(&JobFilter { limit: Some(1), offset: 1, ..JobFilter::default() }).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id.as_str(), "b", "list_jobs pages");

    let removed = store.remove_job(&id("b")).await.unwrap();
    assert_eq!(removed.id.as_str(), "b");
    assert!(store.get_job(&id("b")).await.unwrap().is_none());
    assert!(store.remove_job(&id("b")).await.unwrap_err().is_not_found());
}

/// Nodes adding one new id at once (several start with the same config):
/// with `Error` exactly one add wins and the others conflict; the stored job
/// is the winner's, never overwritten by a loser.
pub async fn concurrent_adds_of_one_id_have_one_winner(h: &Harness) {
    let store = h.store().await;
    for round in 0..5 {
        let name = format!("race-{round}");
        let adds = (0..6).map(|i| {
            let (store, job) = (Arc::clone(&store), job(&name, 60, 60).with_name(&format!("node {i}")));
            tokio::spawn(async move { store.add_job(job, ConflictPolicy::Error).await })
        });
        let mut won = Vec::new();
        for (i, add) in adds.collect::<Vec<_>>().into_iter().enumerate() {
            match add.await.unwrap() {
                Ok(job) => won.push((i, job.name().to_owned())),
                Err(e) => assert!(e.is_conflict(), "a loser conflicts: {e}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: exactly one add wins: {won:?}");
        let stored = store.get_job(&id(&name)).await.unwrap().unwrap();
        assert_eq!((stored.name(), stored.state.version), (won[0].1.as_str(), 1), "the winner's job, not a loser's");
    }
}

/// Adding many jobs at once: all stored as one `add_job` each would store
/// them, in order; a batch meeting a taken id with `Error` adds none of
/// its jobs; `KeepExisting` and `Replace` act per job.
pub async fn add_jobs_is_one_atomic_step(h: &Harness) {
    let store = h.store().await;
    let batch: Vec<Job> = (0..50).map(|i| job(&format!("j{i:02}"), 60, 60 + i)).collect();
    let added = store.add_jobs(batch.clone(), ConflictPolicy::Error).await.unwrap();
    assert_eq!(added.len(), 50);
    for (given, stored) in batch.iter().zip(&added) {
        assert_eq!((&stored.id, stored.state.version), (&given.id, 1), "returned in order, version 1");
        assert_eq!(store.get_job(&given.id).await.unwrap().as_ref(), Some(stored), "stored as returned");
    }
    assert_eq!(store.job_counts().await.unwrap().active, 50);
    assert_eq!(store.next_due_at(&tasks()).await.unwrap(), Some(at(60)), "bulk-added jobs are due like any other");

    let clash = vec![job("new-1", 5, 5), job("j07", 5, 5), job("new-2", 5, 5)];
    let err = store.add_jobs(clash.clone(), ConflictPolicy::Error).await.unwrap_err();
    assert!(err.is_conflict(), "a taken id conflicts: {err}");
    assert!(err.to_string().contains("j07"), "the error names the taken id: {err}");
    assert!(store.get_job(&id("new-1")).await.unwrap().is_none(), "nothing of a refused batch is added");
    assert!(store.get_job(&id("new-2")).await.unwrap().is_none(), "nothing of a refused batch is added");
    let j07 = store.get_job(&id("j07")).await.unwrap().unwrap();
    assert_eq!(j07.trigger, batch[7].trigger, "the taken job is untouched");

    let kept = store.add_jobs(clash.clone(), ConflictPolicy::KeepExisting).await.unwrap();
    assert_eq!(kept.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["new-1", "j07", "new-2"]);
    assert_eq!(kept[1], j07, "KeepExisting returns the stored job");
    assert_eq!((kept[0].state.version, kept[2].state.version), (1, 1));

    let replaced = store.add_jobs(clash, ConflictPolicy::Replace).await.unwrap();
    assert_eq!(
        replaced.iter().map(|j| j.state.version).collect::<Vec<_>>(),
        [2, 2, 2],
        "Replace bumps each stored version"
    );
    assert_eq!(store.get_job(&id("j07")).await.unwrap().unwrap().trigger, job("j07", 5, 5).trigger);
    assert_eq!(store.add_jobs(Vec::new(), ConflictPolicy::Error).await.unwrap(), Vec::<Job>::new());
    assert_eq!(store.list_jobs(&JobFilter::default()).await.unwrap().len(), 52);
}

/// An update carrying a stale version is refused and changes nothing; a
/// fresh one bumps the version; an unknown id is not found.
pub async fn version_checks(h: &Harness) {
    let store = h.store().await;
    let stored = add(&store, job("v", 60, 60)).await;
    let mut first = stored.clone();
    first.name = Some("first".into());
    let updated = store.update_job(first).await.unwrap();
    assert_eq!(updated.state.version, stored.state.version + 1);
    let mut stale = stored.clone();
    stale.name = Some("stale".into());
    let err = store.update_job(stale).await.unwrap_err();
    assert!(err.is_conflict(), "an update from a stale version must conflict: {err}");
    assert_eq!(store.get_job(&id("v")).await.unwrap().unwrap().name(), "first", "the stale write changed nothing");
    let mut ghost = job("ghost", 60, 60);
    ghost.state.version = 1;
    assert!(store.update_job(ghost).await.unwrap_err().is_not_found());
}

/// A claim takes each due job once, oldest first, up to its limit; a second claim finds nothing.
pub async fn acquire_due_claims_each_due_job_once(h: &Harness) {
    let store = h.store().await;
    add(&store, job("due-early", 60, 10)).await;
    add(&store, job("due-late", 60, 20)).await;
    add(&store, job("not-due", 60, 90)).await;
    let n1 = lease(&store, "node-1").await;
    let claims = claim(&store, &n1, at(30), 10).await;
    let ids: Vec<&str> = claims.iter().map(|c| c.job.id.as_str()).collect();
    assert_eq!(ids, ["due-early", "due-late"], "due jobs, earliest first, and only those");
    for c in &claims {
        assert_eq!(c.runs.len(), 1);
        assert_eq!(c.runs[0].status, RunStatus::Pending);
        assert_eq!(c.runs[0].node.as_deref(), Some("node-1"));
        assert_eq!(c.runs[0].epoch, Some(n1.epoch), "a claimed run records its node's lease epoch");
        assert!(c.job.state.next_run_at.unwrap() > at(30), "the claim advanced the next run");
    }
    assert_eq!(
        store.get_job(&id("due-early")).await.unwrap().unwrap().state.next_run_at,
        Some(at(70)),
        "the advanced next run is stored"
    );
    assert!(claim(&store, &n1, at(30), 10).await.is_empty(), "a claimed time is not claimed again");
    assert_eq!(store.next_due_at(&tasks()).await.unwrap(), Some(at(70)));
    let version = store.get_job(&id("due-early")).await.unwrap().unwrap().state.version;
    assert_eq!(version, 1, "a claim advances the next fire time without bumping the definition's version");

    // The limit holds.
    let store = h.store().await;
    for i in 0..5 {
        add(&store, job(&format!("j{i}"), 60, i)).await;
    }
    let n = lease(&store, "n").await;
    assert_eq!(claim(&store, &n, at(30), 3).await.len(), 3);
    assert_eq!(claim(&store, &n, at(30), 3).await.len(), 2);
    assert!(claim(&store, &n, at(30), 0).await.is_empty(), "a limit of 0 claims nothing");
}

/// Claims racing on one store never hand the same run to two callers.
pub async fn concurrent_claims_never_overlap(h: &Harness) {
    let store = h.store().await;
    for i in 0..50 {
        add(&store, job(&format!("c{i:02}"), 60, i % 30)).await;
    }
    let mut tasks = Vec::new();
    for n in 0..4 {
        let s = Arc::clone(&store);
        let node = lease(&store, &format!("node-{n}")).await;
        tasks.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let claims = claim(&s, &node, at(30), 7).await;
                if claims.is_empty() {
                    break;
                }
                claimed
                    .extend(claims.into_iter().flat_map(|c| c.runs).map(|r| (r.job_id.to_string(), r.scheduled_for)));
            }
            claimed
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "no scheduled time was claimed twice");
    assert_eq!(total, 50, "every due time was claimed");
}

/// A claim decides runs, misses and skips with `plan_fire`, as every store does.
pub async fn claims_apply_plan_fire(h: &Harness) {
    let store = h.store().await;
    let mut late = job("late", 10, 10).with_misfire_grace_time(SignedDuration::from_mins(25));
    late.state.next_run_at = Some(at(10));
    let expected = plan_fire(&late, at(60), &[]);
    add(&store, late).await;
    let n = lease(&store, "n").await;
    let claims = claim(&store, &n, at(60), 10).await;
    let statuses: Vec<(Timestamp, RunStatus)> = claims[0].runs.iter().map(|r| (r.scheduled_for, r.status)).collect();
    assert_eq!(
        statuses,
        [
            (at(10), RunStatus::Missed),
            (at(20), RunStatus::Missed),
            (at(30), RunStatus::Missed),
            (at(40), RunStatus::Missed),
            (at(50), RunStatus::Missed),
            (at(60), RunStatus::Pending),
        ],
        "the store wrote plan_fire's decisions: past grace, coalesced, run"
    );
    assert_eq!(claims[0].job.state.next_run_at, expected.next_run_at);
    let missed = &claims[0].runs[0];
    assert!(missed.error.as_deref().unwrap().contains("misfire grace time"), "{missed:?}");

    // max_instances counts runs in flight across claims.
    let store = h.store().await;
    add(&store, job("busy", 10, 10)).await;
    let n = lease(&store, "n").await;
    let first = claim(&store, &n, at(10), 10).await;
    assert_eq!(first[0].runs[0].status, RunStatus::Pending);
    assert_eq!(store.count_running(&id("busy")).await.unwrap(), 1);
    let second = claim(&store, &n, at(20), 10).await;
    assert_eq!(second[0].runs[0].status, RunStatus::Skipped, "a second instance beyond max_instances is skipped");
    let history = store.history(&RunQuery::default()).await.unwrap();
    assert_eq!(history.len(), 2, "the skipped time is a history row too");
}

/// A paused job stays paused, with its reason, when read back; resumed, it is due again.
pub async fn pause_and_resume_survive_a_read(h: &Harness) {
    let store = h.store().await;
    let mut j = add(&store, job("p", 10, 10)).await;
    j.state.paused = Some("maintenance window".into());
    j.state.next_run_at = None;
    let j = store.update_job(j).await.unwrap();
    let n = lease(&store, "n").await;
    assert!(claim(&store, &n, at(100), 10).await.is_empty(), "a paused job is never claimed");
    assert_eq!(store.next_due_at(&tasks()).await.unwrap(), None);
    let read = store.get_job(&id("p")).await.unwrap().unwrap();
    assert_eq!(read.state.paused.as_deref(), Some("maintenance window"));
    assert_eq!(store.list_jobs(&JobFilter { paused: Some(true), ..JobFilter::default() }).await.unwrap().len(), 1);
    assert_eq!(store.list_jobs(&JobFilter { paused: Some(false), ..JobFilter::default() }).await.unwrap().len(), 0);
    let mut resumed = j;
    resumed.state.paused = None;
    resumed.state.next_run_at = Some(at(110));
    store.update_job(resumed).await.unwrap();
    assert_eq!(store.next_due_at(&tasks()).await.unwrap(), Some(at(110)));
}

fn finished(mut run: Run, status: RunStatus, start: i64, secs: i64) -> Run {
    run.status = status;
    run.attempt = 1;
    run.started_at = Some(at(start));
    run.finished_at = Some(at(start) + SignedDuration::from_secs(secs));
    if status != RunStatus::Succeeded {
        run.error = Some(format!("{status} at {start}"));
    }
    run
}

/// A run is written and updated through each status and read back as
/// written; an update of a run no lease holds is fenced out.
pub async fn runs_move_through_every_status(h: &Harness) {
    let store = h.store().await;
    add(&store, job("r", 10, 10)).await;
    let n = lease(&store, "n").await;
    for (i, status) in RunStatus::ALL.into_iter().enumerate() {
        let run = Run::claimed(id("r"), at(i as i64), RunKind::Manual, &n);
        store.insert_run(run.clone()).await.unwrap();
        let mut running = run.clone();
        running.status = RunStatus::Running;
        running.started_at = Some(at(i as i64));
        running.attempt = 1;
        store.update_run(&running).await.unwrap();
        let mut done = running.clone();
        done.status = status;
        if status.is_finished() {
            done.finished_at = Some(at(i as i64) + SignedDuration::from_secs(3));
            done.error = Some("é".repeat(10));
            done.output = Some(format!("line 1\nline {i}"));
        }
        store.update_run(&done).await.unwrap();
        let back =
            store.history(&RunQuery { job_id: Some(id("r")), limit: Some(1), ..RunQuery::default() }).await.unwrap();
        assert_eq!(back[0], done, "a run in status {status} reads back exactly");
    }
    let dup = Run::claimed(id("r"), at(0), RunKind::Manual, &n);
    assert!(store.insert_run(dup).await.unwrap_err().is_conflict(), "a second run for one scheduled time conflicts");
    let j = store.get_job(&id("r")).await.unwrap().unwrap();
    assert_eq!(j.state.last_status, Some(RunStatus::Cancelled), "finishing a run sets the job's last status");
    assert_eq!(j.state.last_run_at, Some(at(8)));
    assert_eq!(store.count_running(&id("r")).await.unwrap(), 2, "the pending and running runs are in flight");

    // A run whose node holds no lease cannot be updated: only a sweeper decides it.
    let unleased = Run::pending(id("r"), at(100), RunKind::Manual, &Arc::from("ghost"));
    store.insert_run(unleased.clone()).await.unwrap();
    let mut done = unleased.clone();
    done.status = RunStatus::Succeeded;
    done.finished_at = Some(at(101));
    assert!(store.update_run(&done).await.unwrap_err().is_lease_lost(), "an update without a lease is fenced out");
}

/// `history` filters by job, status and time window and pages, newest first.
pub async fn history_filters_and_pages(h: &Harness) {
    let store = h.store().await;
    let node: Arc<str> = Arc::from("n");
    for name in ["x", "y"] {
        add(&store, job(name, 10, 10)).await;
        for i in 0..10 {
            let status = if i % 3 == 0 { RunStatus::Failed } else { RunStatus::Succeeded };
            let run = finished(Run::pending(id(name), at(i * 10), RunKind::Scheduled, &node), status, i * 10, 1);
            store.insert_run(run).await.unwrap();
        }
    }
    let all = store.history(&RunQuery { limit: Some(1000), ..RunQuery::default() }).await.unwrap();
    assert_eq!(all.len(), 20);
    assert!(all.windows(2).all(|w| w[0].scheduled_for >= w[1].scheduled_for), "newest first");
    let x = store.history(&RunQuery { job_id: Some(id("x")), limit: Some(1000), ..RunQuery::default() }).await.unwrap();
    assert!(x.iter().all(|r| r.job_id.as_str() == "x") && x.len() == 10);
    let failed = store
        .history(&RunQuery { job_id: Some(id("x")), statuses: vec![RunStatus::Failed], ..RunQuery::default() })
        .await
        .unwrap();
    assert_eq!(failed.iter().map(|r| r.scheduled_for).collect::<Vec<_>>(), [at(90), at(60), at(30), at(0)]);
    let window = store
        .history(&RunQuery { job_id: Some(id("x")), since: Some(at(20)), until: Some(at(50)), ..RunQuery::default() })
        .await
        .unwrap();
    assert_eq!(window.iter().map(|r| r.scheduled_for).collect::<Vec<_>>(), [at(40), at(30), at(20)]);
    let page2 = store
        .history(&RunQuery { job_id: Some(id("x")), limit: Some(3), offset: 3, ..RunQuery::default() })
        .await
        .unwrap();
    assert_eq!(page2.iter().map(|r| r.scheduled_for).collect::<Vec<_>>(), [at(60), at(50), at(40)]);
}

/// `job_stats` counts each outcome and gives the success rate, the mean and
/// p95 durations, the lateness and the last run and success.
pub async fn stats_add_up(h: &Harness) {
    let store = h.store().await;
    add(&store, job("s", 10, 10)).await;
    let node: Arc<str> = Arc::from("n");
    for i in 0..20i64 {
        let status = if i % 4 == 0 { RunStatus::Failed } else { RunStatus::Succeeded };
        let run = finished(Run::pending(id("s"), at(i * 10), RunKind::Scheduled, &node), status, i * 10, i + 1);
        store.insert_run(run).await.unwrap();
    }
    let stats = store.job_stats(&id("s")).await.unwrap();
    assert_eq!((stats.runs, stats.succeeded, stats.failed), (20, 15, 5));
    assert_eq!(stats.success_rate, Some(0.75));
    assert_eq!(stats.avg_duration_s, Some(10.5));
    assert_eq!(stats.p95_duration_s, Some(19.0));
    assert_eq!(stats.avg_lateness_s, Some(0.0));
    assert_eq!(stats.last_run_at, Some(at(190)));
    assert_eq!(stats.last_success_at, Some(at(190)));
    assert!(store.job_stats(&id("nobody")).await.unwrap_err().is_not_found());
}

/// `prune` keeps the newest finished runs per job (and drops those before
/// a cutoff), never a run in flight.
pub async fn retention_prunes_finished_runs(h: &Harness) {
    let store = h.store().await;
    add(&store, job("k", 10, 10)).await;
    let node: Arc<str> = Arc::from("n");
    for i in 0..30 {
        let run = finished(Run::pending(id("k"), at(i), RunKind::Scheduled, &node), RunStatus::Succeeded, i, 1);
        store.insert_run(run).await.unwrap();
    }
    let in_flight = Run::pending(id("k"), at(-100), RunKind::Scheduled, &node);
    store.insert_run(in_flight).await.unwrap();
    let deleted = store.prune(10, None).await.unwrap();
    assert_eq!(deleted, 20);
    let left = store.history(&RunQuery { limit: Some(100), ..RunQuery::default() }).await.unwrap();
    assert_eq!(left.len(), 11, "the newest 10 finished runs and the pending one stay");
    assert!(left.iter().any(|r| r.status == RunStatus::Pending), "runs in flight are never pruned");
    let deleted = store.prune(100, Some(at(25))).await.unwrap();
    assert_eq!(deleted, 5, "finished runs scheduled before the cutoff go");
}

/// `prune_jobs` trims only the jobs it is given, to their newest finished
/// runs, never a run in flight.
pub async fn prune_jobs_trims_only_the_listed_jobs(h: &Harness) {
    let store = h.store().await;
    let node: Arc<str> = Arc::from("n");
    for name in ["a", "b", "c"] {
        add(&store, job(name, 10, 10)).await;
        for i in 0..8 {
            let run = finished(Run::pending(id(name), at(i), RunKind::Scheduled, &node), RunStatus::Succeeded, i, 1);
            store.insert_run(run).await.unwrap();
        }
        store.insert_run(Run::pending(id(name), at(-100), RunKind::Scheduled, &node)).await.unwrap();
    }
    let deleted = store.prune_jobs(&[id("a"), id("c"), id("nobody")], 3).await.unwrap();
    assert_eq!(deleted, 10, "five finished runs each of a and c");
    let runs_of = |name: &str| RunQuery { job_id: Some(id(name)), limit: Some(100), ..RunQuery::default() };
    for (name, left) in [("a", 4), ("b", 9), ("c", 4)] {
        let runs = store.history(&runs_of(name)).await.unwrap();
        assert_eq!(runs.len(), left, "{name}: {runs:?}");
        assert!(runs.iter().any(|r| r.status == RunStatus::Pending), "{name}: runs in flight are never trimmed");
    }
    let kept: Vec<Timestamp> = store
        .history(&runs_of("a"))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.status.is_finished())
        .map(|r| r.scheduled_for)
        .collect();
    assert_eq!(kept, vec![at(7), at(6), at(5)], "the newest three stay");
    assert_eq!(store.prune_jobs(&[], 3).await.unwrap(), 0);
}

/// `recent_stats` figures the newest runs of all jobs, by scheduled time
/// then id, exactly as the same runs read through `history` would, and says
/// how many it read.
pub async fn recent_stats_cover_the_newest_runs_of_all_jobs(h: &Harness) {
    let store = h.store().await;
    assert_eq!(store.recent_stats(10).await.unwrap(), (chime_core::JobStats::default(), 0), "an empty store");
    let node: Arc<str> = Arc::from("n");
    for (n, name) in ["a", "b"].into_iter().enumerate() {
        add(&store, job(name, 10, 10)).await;
        for i in 0..6 {
            let status = [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Missed][(i as usize + n) % 3];
            let run =
                finished(Run::pending(id(name), at(i * 10 + n as i64), RunKind::Scheduled, &node), status, i, i + 1);
            store.insert_run(run).await.unwrap();
        }
    }
    store.insert_run(Run::pending(id("a"), at(100), RunKind::Scheduled, &node)).await.unwrap();
    for newest in [1, 5, 8, 13, 100] {
        let runs = store.history(&RunQuery { limit: Some(newest), ..RunQuery::default() }).await.unwrap();
        let (stats, read) = store.recent_stats(newest).await.unwrap();
        assert_eq!(read, runs.len(), "newest {newest}");
        assert_eq!(stats, chime_core::JobStats::from_runs(&runs), "newest {newest}");
    }
    let (stats, read) = store.recent_stats(5).await.unwrap();
    assert_eq!(read, 5);
    assert_eq!(stats.runs, 4, "the newest is in flight, and not a figure");
    assert_eq!(stats.last_run_at, Some(at(5)), "{stats:?}");
}

/// `with_alerts` lists exactly the jobs with an alert option, paused or
/// not as asked, and pages after that check.
pub async fn listing_jobs_with_alerts_finds_exactly_those(h: &Harness) {
    let store = h.store().await;
    let hour = SignedDuration::from_hours(1);
    add(&store, job("a", 10, 10).with_alert_after(hour)).await;
    let mut b = job("b", 10, 10);
    b.options.alert_on_failures = Some(3);
    add(&store, b).await;
    add(&store, job("c", 10, 10)).await;
    // A hook job: named by an alerting job's `on_alert`, without alerts of its own.
    add(&store, job("alert-hook", 10, 10)).await;
    let mut d = job("d", 10, 10).with_alert_after(hour);
    d.options.on_alert = Some(id("alert-hook"));
    add(&store, d).await;
    let mut e = job("e", 10, 10).with_alert_after(hour);
    e.state.paused = Some("by hand".into());
    add(&store, e).await;
    let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id.to_string()).collect::<Vec<_>>();
    let alerting = JobFilter { with_alerts: true, ..JobFilter::default() };
    assert_eq!(ids(store.list_jobs(&alerting).await.unwrap()), ["a", "b", "d", "e"]);
    let active = JobFilter { paused: Some(false), ..alerting.clone() };
    assert_eq!(ids(store.list_jobs(&active).await.unwrap()), ["a", "b", "d"]);
    let page = JobFilter { limit: Some(1), offset: 1, ..alerting };
    assert_eq!(ids(store.list_jobs(&page).await.unwrap()), ["b"]);
    assert_eq!(ids(store.list_jobs(&JobFilter::default()).await.unwrap()), ["a", "alert-hook", "b", "c", "d", "e"]);
}

/// The dashboard's filters: by state, by task and by search, counted and
/// paged by the store, the same in every store (ASCII letters in either
/// case; `%` and `_` plain characters; other letters only as written).
pub async fn listing_jobs_by_state_task_and_search(h: &Harness) {
    let store = h.store().await;
    add(&store, job("run-me", 10, 10)).await;
    add(&store, job("Nightly-Backup", 10, 20).with_name("copy 50%_off")).await;
    let mut mail = job("mailer", 10, 20).with_name("Über mail");
    mail.task = "mail".into();
    add(&store, mail).await;
    let mut failing = job("flaky", 10, 20);
    failing.state.last_status = Some(RunStatus::TimedOut);
    add(&store, failing).await;
    let mut paused = job("held", 10, 20);
    paused.state.paused = Some("by hand".into());
    paused.state.last_status = Some(RunStatus::Succeeded);
    add(&store, paused).await;
    let mut done = job("done", 10, 20);
    done.state.next_run_at = None;
    add(&store, done).await;
    let lease = lease(&store, "a").await;
    claim_and_start(&store, &lease, at(10)).await;

    let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id.to_string()).collect::<Vec<_>>();
    let check = |filter: JobFilter, expected: &'static [&'static str]| {
        let store = store.clone();
        async move {
            let listed = ids(store.list_jobs(&filter).await.unwrap());
            assert_eq!(listed, expected, "{filter:?}");
            let counts = store.count_jobs(&filter).await.unwrap();
            assert_eq!(counts.all, expected.len(), "{filter:?}");
            // Each state's count is what a listing in that state finds.
            for s in JobStatus::ALL.into_iter().filter(|_| filter.status.is_none()) {
                let within = JobFilter { status: Some(s), ..filter.clone() };
                let listed = store.list_jobs(&within).await.unwrap().len();
                assert_eq!(counts.get(s), listed, "{s:?} in {filter:?}: {counts:?}");
            }
        }
    };
    let status = |s| JobFilter { status: Some(s), ..JobFilter::default() };
    let search = |text: &str| JobFilter { search: Some(text.into()), ..JobFilter::default() };
    check(status(JobStatus::Active), &["Nightly-Backup", "flaky", "mailer", "run-me"]).await;
    check(status(JobStatus::Paused), &["held"]).await;
    check(status(JobStatus::Finished), &["done"]).await;
    check(status(JobStatus::Running), &["run-me"]).await;
    check(status(JobStatus::Failing), &["flaky"]).await;
    check(JobFilter { task: Some("mail".into()), ..JobFilter::default() }, &["mailer"]).await;
    check(JobFilter { task: Some("mai".into()), ..JobFilter::default() }, &[]).await;
    // By id, name or task, ASCII letters in either case.
    check(search("BACKUP"), &["Nightly-Backup"]).await;
    check(search("50%_OFF"), &["Nightly-Backup"]).await;
    check(search("MAIL"), &["mailer"]).await;
    check(search("%"), &["Nightly-Backup"]).await;
    check(search("_"), &["Nightly-Backup"]).await;
    check(search("Über"), &["mailer"]).await;
    check(search("über"), &[]).await;
    check(search("'; DROP TABLE chime_job; --"), &[]).await;
    let both = JobFilter { search: Some("e".into()), status: Some(JobStatus::Active), ..JobFilter::default() };
    check(both.clone(), &["mailer", "run-me"]).await;
    // Paging cuts the listing; the count is of all it finds.
    let page = JobFilter { limit: Some(1), offset: 1, ..both };
    assert_eq!(ids(store.list_jobs(&page).await.unwrap()), ["run-me"]);
    assert_eq!(store.count_jobs(&page).await.unwrap().all, 2);
    // The chips: through the indexes without a search, in one pass with one.
    let chips = |all, active, paused, finished, running, failing| StatusCounts {
        all,
        active,
        paused,
        finished,
        running,
        failing,
    };
    assert_eq!(store.count_jobs(&JobFilter::default()).await.unwrap(), chips(6, 4, 1, 1, 1, 1));
    assert_eq!(store.count_jobs(&search("e")).await.unwrap(), chips(4, 2, 1, 1, 1, 0));
    let mail = JobFilter { task: Some("mail".into()), ..JobFilter::default() };
    assert_eq!(store.count_jobs(&mail).await.unwrap(), chips(1, 1, 0, 0, 0, 0));
    assert_eq!(store.job_tasks(10).await.unwrap(), ["mail", "task"]);
    assert_eq!(store.job_tasks(1).await.unwrap(), ["mail"]);
}

/// Jobs next due in a span (`next_run_from`, `next_run_before`) and the
/// counts of jobs next due in each hour (`count_next_runs`): paused and
/// finished jobs are in neither, an overdue job counts in the first hour,
/// and each span's start is in it and its end is not.
pub async fn jobs_next_due_are_listed_and_counted_by_span(h: &Harness) {
    let store = h.store().await;
    // From T0 + 60 min (the first hour's start): one overdue, two in the
    // first hour (one at its very start), one at the second hour's start,
    // one in the third, one past the view.
    for (name, first) in [("overdue", 30), ("at-start", 60), ("in-first", 119), ("second", 120), ("third", 200)] {
        add(&store, job(name, 1440, first)).await;
    }
    add(&store, job("later", 1440, 60 * 5)).await;
    let mut paused = job("held", 1440, 90);
    paused.state.paused = Some("by hand".into());
    add(&store, paused).await;
    let mut done = job("done", 1440, 90);
    done.state.next_run_at = None;
    add(&store, done).await;

    let slots = TimeSlots::new(at(60), SignedDuration::from_hours(1), 3).unwrap();
    assert_eq!(slots.end(), at(240));
    assert_eq!(store.count_next_runs(&slots).await.unwrap(), [3, 1, 1], "overdue, at-start, in-first | second | third");
    let one = TimeSlots::new(at(0), SignedDuration::from_hours(1), 1).unwrap();
    assert_eq!(store.count_next_runs(&one).await.unwrap(), [1], "only overdue is due before 01:00");

    let ids = |filter: JobFilter| {
        let store = store.clone();
        async move { store.list_jobs(&filter).await.unwrap().into_iter().map(|j| j.id.to_string()).collect::<Vec<_>>() }
    };
    let span = |from: Option<i64>, before: Option<i64>| JobFilter {
        next_run_from: from.map(at),
        next_run_before: before.map(at),
        ..JobFilter::default()
    };
    assert_eq!(ids(span(None, Some(120))).await, ["at-start", "in-first", "overdue"]);
    assert_eq!(ids(span(Some(60), Some(120))).await, ["at-start", "in-first"]);
    assert_eq!(ids(span(Some(120), Some(180))).await, ["second"]);
    assert_eq!(ids(span(Some(120), None)).await, ["later", "second", "third"], "no paused or finished job");
    assert_eq!(ids(JobFilter { limit: Some(1), offset: 1, ..span(None, Some(240)) }).await, ["in-first"]);
    assert_eq!(store.count_jobs(&span(None, Some(120))).await.unwrap().all, 3);
}

/// Adding and removing a job moves the store's change signal.
pub async fn the_change_signal_fires(h: &Harness) {
    let store = h.store().await;
    let mut changes = store.changes();
    changes.borrow_and_update();
    add(&store, job("w", 10, 10)).await;
    tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed())
        .await
        .expect("a change within 5 s of add_job")
        .unwrap();
    store.remove_job(&id("w")).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed())
        .await
        .expect("a change within 5 s of remove_job")
        .unwrap();
}

/// A job whose task no node has is kept, and only a node with that task claims it.
pub async fn an_unknown_task_name_is_kept(h: &Harness) {
    let store = h.store().await;
    let mut j = job("orphan-task", 10, 10);
    j.task = Arc::from("a_task_nobody_registered");
    add(&store, j).await;
    let back = store.get_job(&id("orphan-task")).await.unwrap().unwrap();
    assert_eq!(&*back.task, "a_task_nobody_registered", "the store keeps any task name; the scheduler reports it");
    let n = lease(&store, "n").await;
    assert!(claim(&store, &n, at(10), 10).await.is_empty(), "a node without the task leaves the job alone");
    assert_eq!(store.next_due_at(&tasks()).await.unwrap(), None, "and does not wake for it");
    let all: Vec<Arc<str>> = vec![Arc::from("task"), Arc::from("a_task_nobody_registered")];
    let req = ClaimRequest { now: at(10), limit: 10, lease: &n, ttl: TTL, tasks: &all };
    assert_eq!(store.acquire_due(&req).await.unwrap().len(), 1, "a node that has the task claims it");
}

/// A job whose stored trigger no longer parses is kept, reported, and does not stop claims.
pub async fn a_corrupt_job_is_kept_and_reported(h: &Harness) {
    let store = h.store().await;
    add(&store, job("good", 10, 10)).await;
    add(&store, job("bad", 10, 10)).await;
    let corrupt = h.corrupt.as_ref().expect("this case needs a harness made `with_corrupt`");
    corrupt(Arc::clone(&store), id("bad")).await;
    let listed = store.list_jobs(&JobFilter::default()).await.expect("listing jobs survives a corrupt row");
    assert_eq!(listed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["good"]);
    // Edited behind the store's back: not marked until a pass meets it.
    assert!(store.marked_broken().await.unwrap().is_empty());
    let broken = store.broken_jobs().await.unwrap();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].id, "bad");
    assert!(broken[0].problem.contains("trigger"), "the problem names what is unreadable: {}", broken[0].problem);
    // The pass marked it: the index of broken rows lists it from now on.
    let marked = store.marked_broken().await.unwrap();
    assert_eq!(
        marked.iter().map(|b| (b.id.as_str(), b.problem.as_str())).collect::<Vec<_>>(),
        [("bad", &*broken[0].problem)]
    );
    let n = lease(&store, "n").await;
    let claims = claim(&store, &n, at(10), 10).await;
    assert_eq!(claims.iter().map(|c| c.job.id.as_str()).collect::<Vec<_>>(), ["good"], "claims survive a corrupt row");
    claim(&store, &n, at(100), 10).await;
    assert_eq!(store.broken_jobs().await.unwrap().len(), 1, "the corrupt job is still stored, never deleted");
    let counts = store.job_counts().await.unwrap();
    assert_eq!((counts.jobs, counts.broken, counts.active), (2, 1, 1), "the claim marked it broken: {counts:?}");
    let err = store.get_job(&id("bad")).await.unwrap_err();
    assert!(
        matches!(&err, chime_core::Error::BrokenJob { id, problem } if id == "bad" && problem.contains("trigger")),
        "reading it alone is a BrokenJob error that says why: {err}"
    );
}

/// Nodes register, renew and release their leases; a live id cannot be taken.
pub async fn nodes_register_renew_and_release(h: &Harness) {
    let store = h.store().await;
    let a = lease(&store, "a").await;
    assert_eq!((&*a.node, a.expires_at), ("a", at(0) + TTL));
    let err = store.register_node(&registration("a"), TTL, at(0) + SignedDuration::from_secs(10)).await.unwrap_err();
    assert!(
        matches!(&err, chime_core::Error::NodeIdInUse { until, .. } if *until == a.expires_at),
        "a live node's id cannot be taken: {err}"
    );
    let renewed = store.renew_lease(&a, TTL, at(1)).await.unwrap();
    assert_eq!((renewed.epoch, renewed.expires_at), (a.epoch, at(1) + TTL), "a heartbeat extends the lease");
    // Past its expiry but not yet swept, the lease is still held.
    let late = store.renew_lease(&a, TTL, at(30)).await.expect("a late heartbeat before any sweep still renews");
    let b = lease(&store, "b").await;
    assert_ne!(a.epoch, b.epoch, "every registration has its own epoch");
    let nodes = store.nodes().await.unwrap();
    assert_eq!(nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!((nodes[0].host.as_str(), nodes[0].pid, nodes[0].epoch), ("test-host", 4242, a.epoch));
    assert_eq!((nodes[0].heartbeat_at, nodes[0].lease_expires_at), (at(30), late.expires_at));

    store.release_lease(&a).await.unwrap();
    assert!(store.renew_lease(&a, TTL, at(31)).await.unwrap_err().is_lease_lost(), "a released lease is gone");
    assert!(
        store
            .acquire_due(&ClaimRequest { now: at(31), limit: 1, lease: &a, ttl: TTL, tasks: &tasks() })
            .await
            .unwrap_err()
            .is_lease_lost(),
        "a claim under a released lease fails"
    );
    let again = store.register_node(&registration("a"), TTL, at(31)).await.unwrap();
    assert!(again.epoch != a.epoch && again.epoch != b.epoch, "an epoch is never handed out twice");
    let stale = store.register_node(&registration("b"), TTL, at(31) + TTL).await.expect("an expired id can be taken");
    assert!(store.renew_lease(&b, TTL, at(32)).await.unwrap_err().is_lease_lost(), "the old holder lost it");
    assert_eq!(
        store.nodes().await.unwrap().iter().filter(|n| n.id == "b").map(|n| n.epoch).collect::<Vec<_>>(),
        [stale.epoch]
    );
}

/// `max_instances` counts the runs in flight on every node, not one.
pub async fn max_instances_holds_across_nodes(h: &Harness) {
    let store = h.store().await;
    add(&store, job("shared", 10, 10)).await;
    let a = lease(&store, "a").await;
    let b = lease(&store, "b").await;
    let first = claim(&store, &a, at(10), 10).await;
    assert_eq!(first[0].runs[0].status, RunStatus::Pending);
    assert!(first[0].runs[0].is_held_by(&a));
    let second = claim(&store, &b, at(20), 10).await;
    assert_eq!(second[0].runs[0].status, RunStatus::Skipped, "node b sees node a's run in flight");
    let nodes = store.nodes().await.unwrap();
    assert_eq!(nodes.iter().map(|n| (n.id.as_str(), n.running)).collect::<Vec<_>>(), [("a", 1), ("b", 0)]);
}

/// Every decision's reason is stored with its run and read back whole: a
/// skip names the run in flight (from a claim and from a run-now request),
/// a sweep names the node, and a timed-out update keeps its own.
pub async fn reasons_are_stored_with_their_runs(h: &Harness) {
    let store = h.store().await;
    add(&store, job("j", 10, 10).with_coalesce(false)).await;
    let a = lease(&store, "a").await;
    let first = claim_and_start(&store, &a, at(10)).await;
    let skipped = claim(&store, &a, at(20), 10).await.remove(0).runs.remove(0);
    let named = Reason::MaxInstances { max_instances: 1, in_flight: vec![first.id] };
    assert_eq!((skipped.status, skipped.reason.as_ref()), (RunStatus::Skipped, Some(&named)));
    let requested = store.request_run(&id("j"), at(21), Some(&a)).await.unwrap();
    assert_eq!((requested.status, requested.reason.as_ref()), (RunStatus::Skipped, Some(&named)), "run now, too");

    let mut timed_out = first.clone();
    timed_out.status = RunStatus::TimedOut;
    timed_out.finished_at = Some(at(22));
    timed_out.set_reason(Some(Reason::TimedOut { after: SignedDuration::from_mins(5) }));
    store.update_run(&timed_out).await.unwrap();

    let history = store.history(&RunQuery { job_id: Some(id("j")), ..RunQuery::default() }).await.unwrap();
    let by_id = |run: &Run| history.iter().find(|r| r.id == run.id).cloned().expect("the run is stored");
    assert_eq!(by_id(&skipped).reason, Some(named.clone()));
    assert_eq!(by_id(&skipped).error, Some(named.to_string()), "the words beside the code");
    assert_eq!(by_id(&requested).reason, Some(named));
    assert_eq!(by_id(&timed_out).reason, timed_out.reason);

    // A sweep: the node's name and what the run was doing.
    store.remove_job(&id("j")).await.unwrap();
    add(&store, job("k", 10, 30)).await;
    let b = lease(&store, "b").await;
    claim_and_start(&store, &b, at(30)).await;
    store.renew_lease(&a, TTL, at(31)).await.unwrap();
    let swept = store.sweep(at(31)).await.unwrap();
    assert_eq!(swept.len(), 1, "{swept:?}");
    let expected = Reason::LeaseExpired { node: "b".into(), started: true, requeued: false };
    let stored = store.history(&RunQuery { job_id: Some(id("k")), ..RunQuery::default() }).await.unwrap().remove(0);
    assert_eq!((stored.status, stored.reason), (RunStatus::Abandoned, Some(expected)));
}

/// A claim writes no second run for a scheduled time that has one (runs are
/// unique per job and time): that time is neither run nor recorded again.
pub async fn a_claim_skips_a_time_that_already_has_a_run(h: &Harness) {
    let store = h.store().await;
    add(&store, job("j", 10, 10).with_coalesce(false)).await;
    let node: Arc<str> = Arc::from("elsewhere");
    let mut earlier = Run::pending(id("j"), at(10), RunKind::Scheduled, &node);
    earlier.status = RunStatus::Succeeded;
    store.insert_run(earlier.clone()).await.unwrap();
    let a = lease(&store, "a").await;
    let runs: Vec<Run> = claim(&store, &a, at(20), 10).await.into_iter().flat_map(|c| c.runs).collect();
    assert_eq!(runs.iter().map(|r| r.scheduled_for).collect::<Vec<_>>(), [at(20)], "00:10 has its run already");
    let stored = store.history(&RunQuery { job_id: Some(id("j")), ..RunQuery::default() }).await.unwrap();
    let at_ten: Vec<_> = stored.iter().filter(|r| r.scheduled_for == at(10)).collect();
    assert_eq!(at_ten.len(), 1, "one row per time: {stored:?}");
    assert_eq!(at_ten[0].id, earlier.id);
}

/// Jobs are counted by state, as `Job::status` reads them.
pub async fn jobs_are_counted_by_state(h: &Harness) {
    let store = h.store().await;
    assert_eq!(store.job_counts().await.unwrap(), chime_core::JobCounts::default(), "an empty store");
    for name in ["a", "b", "c"] {
        add(&store, job(name, 10, 10)).await;
    }
    let mut paused = job("p", 10, 10);
    paused.state.paused = Some("maintenance".into());
    add(&store, paused).await;
    let mut done = job("done", 10, 10);
    done.state.next_run_at = None;
    add(&store, done).await;
    let counts = store.job_counts().await.unwrap();
    let expected = chime_core::JobCounts { jobs: 5, active: 3, paused: 1, finished: 1, broken: 0 };
    assert_eq!(counts, expected);
    store.remove_job(&id("a")).await.unwrap();
    assert_eq!(store.job_counts().await.unwrap().active, 2);
    let counts = |jobs, active, paused, finished| chime_core::JobCounts { jobs, active, paused, finished, broken: 0 };
    // A resume and a pause are counted as they happen, and so is a paused job's removal.
    let mut p = store.get_job(&id("p")).await.unwrap().unwrap();
    p.state.paused = None;
    let p = store.update_job(p).await.unwrap();
    assert_eq!(store.job_counts().await.unwrap(), counts(4, 3, 0, 1), "resumed");
    let mut b = store.get_job(&id("b")).await.unwrap().unwrap();
    (b.state.paused, b.state.next_run_at) = (Some("holiday".into()), None);
    store.update_job(b).await.unwrap();
    assert_eq!(store.job_counts().await.unwrap(), counts(4, 2, 1, 1), "paused");
    store.add_job(p, ConflictPolicy::Replace).await.unwrap();
    assert_eq!(store.job_counts().await.unwrap(), counts(4, 2, 1, 1), "a job replaced by itself counts once");
    store.remove_job(&id("b")).await.unwrap();
    assert_eq!(store.job_counts().await.unwrap(), counts(3, 2, 0, 1), "a paused job removed");
}

/// An alert is notified once per episode: the episode is marked and the
/// hook's run queued together; the same episode again queues nothing, a new
/// one queues again, and the mark goes with the job.
pub async fn an_alert_is_notified_once_per_episode(h: &Harness) {
    let store = h.store().await;
    add(&store, job("backup", 10, 10)).await;
    add(&store, job("hook", 60 * 24, 60 * 24)).await;
    let notice =
        AlertNotice { job_id: id("backup"), reason: "2 consecutive failures".into(), last_error: None, since: at(30) };
    let hook = |now: Timestamp| {
        Run { kind: RunKind::Alert, ..Run::requested(id("hook"), now) }.with_reason(Reason::Alert(notice.clone()))
    };
    let hook_runs =
        || async { store.history(&RunQuery { job_id: Some(id("hook")), ..RunQuery::default() }).await.unwrap() };
    assert!(store.notify_alert(&id("backup"), at(5), hook(at(31))).await.unwrap(), "the first notice of the episode");
    let backup = id("backup");
    let (second, third) = tokio::join!(
        store.notify_alert(&backup, at(5), hook(at(32))),
        store.notify_alert(&backup, at(5), hook(at(33)))
    );
    assert!(!second.unwrap() && !third.unwrap(), "the same episode, from two nodes at once: nothing more");
    let runs = hook_runs().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!((runs[0].kind, runs[0].status, runs[0].node.as_deref()), (RunKind::Alert, RunStatus::Pending, None));
    assert_eq!(runs[0].reason, Some(Reason::Alert(notice.clone())));

    // A new episode (the job succeeded in between), at a time the hook already has a run for.
    assert!(store.notify_alert(&id("backup"), at(40), hook(at(31))).await.unwrap());
    let runs = hook_runs().await;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].scheduled_for, at(31) + SignedDuration::from_micros(1), "the next free microsecond");
    assert!(store.notify_alert(&id("nope"), at(5), hook(at(50))).await.unwrap_err().is_not_found());
    // An earlier episode (the last success pruned from history reads as the
    // epoch) is not a new alert.
    assert!(!store.notify_alert(&id("backup"), Timestamp::UNIX_EPOCH, hook(at(50))).await.unwrap());
    assert!(!store.notify_alert(&id("backup"), at(5), hook(at(50))).await.unwrap());
    assert_eq!(hook_runs().await.len(), 2);

    // The mark is the job's: removed and added again, the job notifies again.
    store.remove_job(&id("backup")).await.unwrap();
    add(&store, job("backup", 10, 10)).await;
    assert!(store.notify_alert(&id("backup"), at(40), hook(at(60))).await.unwrap());
}

/// A backfill queues a new run for a time with none, queues the run of a
/// time that did not succeed again under its own id, leaves a success or a
/// run in flight alone, and any node with the task claims what it queued.
pub async fn backfills_queue_each_time_once(h: &Harness) {
    let store = h.store().await;
    add(&store, job("j", 10, 10)).await;
    let node: Arc<str> = Arc::from("old-node");
    let missed = Run::not_run(id("j"), at(10), RunStatus::Missed, Reason::Coalesced { into: at(20) }, &node, at(20));
    store.insert_run(missed.clone()).await.unwrap();
    let mut ok = Run::not_run(id("j"), at(20), RunStatus::Succeeded, Reason::Coalesced { into: at(20) }, &node, at(20));
    ok.set_reason(None);
    store.insert_run(ok).await.unwrap();

    let again = store.request_backfill(&id("j"), at(10)).await.unwrap().expect("a missed time is backfilled");
    assert_eq!(
        (again.id, again.kind, again.status, again.node.as_deref()),
        (missed.id, RunKind::Backfill, RunStatus::Pending, None)
    );
    assert_eq!(store.request_backfill(&id("j"), at(10)).await.unwrap(), None, "queued once: it is in flight now");
    assert_eq!(store.request_backfill(&id("j"), at(20)).await.unwrap(), None, "a success is left alone");
    let fresh = store.request_backfill(&id("j"), at(5)).await.unwrap().expect("a time with no run");
    assert_eq!((fresh.kind, fresh.scheduled_for, fresh.status), (RunKind::Backfill, at(5), RunStatus::Pending));
    assert!(store.request_backfill(&id("nope"), at(5)).await.unwrap_err().is_not_found());
    assert_eq!(store.count_running(&id("j")).await.unwrap(), 2);

    // A node claims both, oldest first, each with its original scheduled time.
    let a = lease(&store, "a").await;
    let claimed: Vec<Run> = claim(&store, &a, at(8), 10).await.into_iter().flat_map(|c| c.runs).collect();
    let got: Vec<(Timestamp, RunKind)> = claimed.iter().map(|r| (r.scheduled_for, r.kind)).collect();
    assert_eq!(got, [(at(5), RunKind::Backfill)], "only what is due by now: the 00:05 time");
    let claimed: Vec<Run> = claim(&store, &a, at(11), 10).await.into_iter().flat_map(|c| c.runs).collect();
    let ids: Vec<_> = claimed.iter().filter(|r| r.kind == RunKind::Backfill).map(|r| r.id).collect();
    assert_eq!(ids, [missed.id], "the missed time's own run, under its id");
    let stored = store.history(&RunQuery { job_id: Some(id("j")), ..RunQuery::default() }).await.unwrap();
    let row = stored.iter().find(|r| r.id == missed.id).unwrap();
    assert_eq!((row.kind, row.status, row.node.as_deref()), (RunKind::Backfill, RunStatus::Pending, Some("a")));
}

/// Node a claims a run and goes silent: node b's sweeper decides it once,
/// never twice, and a's late finish is fenced out and kept.
pub async fn an_expired_lease_is_swept_exactly_once(h: &Harness) {
    let store = h.store().await;
    add(&store, job("j", 10, 10)).await;
    let a = lease(&store, "a").await;
    let b = lease(&store, "b").await;
    let run = claim_and_start(&store, &a, at(10)).await;

    let later = at(11);
    store.renew_lease(&b, TTL, later).await.unwrap();
    assert!(store.sweep(at(10)).await.unwrap().is_empty(), "a lease within its term is not swept");
    let (one, two) = tokio::join!(store.sweep(later), store.sweep(later));
    let swept: Vec<_> = one.unwrap().into_iter().chain(two.unwrap()).collect();
    assert_eq!(swept.len(), 1, "two sweepers decide the run exactly once: {swept:?}");
    assert_eq!((swept[0].node.as_str(), swept[0].requeued, swept[0].run.status), ("a", false, RunStatus::Abandoned));
    assert!(store.sweep(later).await.unwrap().is_empty(), "and a later sweep finds nothing");
    assert_eq!(store.nodes().await.unwrap().iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["b"]);
    assert!(store.renew_lease(&a, TTL, later).await.unwrap_err().is_lease_lost(), "a's heartbeat learns it lost");

    // a wakes up and finishes its run: fenced out, kept as a late result.
    let mut done = run.clone();
    done.status = RunStatus::Succeeded;
    done.finished_at = Some(later);
    assert!(store.update_run(&done).await.unwrap_err().is_lease_lost(), "a finish under a lost lease fails");
    let stored = store.history(&RunQuery::default()).await.unwrap().remove(0);
    assert_eq!(stored.status, RunStatus::Abandoned, "the sweeper's decision stands");
    assert!(stored.error.as_deref().unwrap().contains("its node a stopped renewing its lease"), "{stored:?}");
    let late = stored.late_result.as_deref().expect("the late result is kept");
    assert!(late.starts_with("succeeded at ") && late.contains("on node a"), "{late}");
    assert_eq!(store.get_job(&id("j")).await.unwrap().unwrap().state.last_status, Some(RunStatus::Abandoned));
    assert_eq!(store.count_running(&id("j")).await.unwrap(), 0);
}

/// A swept run with retries left is queued again as a retry.
pub async fn a_swept_run_with_retries_left_is_requeued(h: &Harness) {
    let store = h.store().await;
    add(&store, job("r", 10, 10).with_retry(RetryPolicy::new(3, SignedDuration::from_secs(1)))).await;
    let a = lease(&store, "a").await;
    let b = lease(&store, "b").await;
    let run = claim_and_start(&store, &a, at(10)).await;
    store.renew_lease(&b, TTL, at(11)).await.unwrap();
    let swept = store.sweep(at(11)).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert!(swept[0].requeued, "attempts are left, so the run is re-queued");
    assert_eq!((swept[0].run.status, swept[0].run.node.as_deref()), (RunStatus::Pending, None));
    assert_eq!(store.count_running(&id("r")).await.unwrap(), 1, "a re-queued run is still in flight");
    assert_eq!(store.next_due_at(&tasks()).await.unwrap(), Some(at(10)), "it is ready for a node now");

    let taken = claim(&store, &b, at(11), 10).await;
    assert_eq!(taken.len(), 1, "the next claim takes the re-queued run: {taken:?}");
    let mut again = taken[0].runs[0].clone();
    assert_eq!((again.id, again.attempt), (run.id, 1), "the same run (same idempotency key), its attempt so far");
    assert!(again.is_held_by(&b));
    assert!(claim(&store, &b, at(11), 10).await.is_empty(), "it is taken once");
    again.attempt = 2;
    again.status = RunStatus::Succeeded;
    again.finished_at = Some(at(12));
    store.update_run(&again).await.unwrap();
    let mut stale = run.clone();
    stale.status = RunStatus::Failed;
    stale.finished_at = Some(at(12));
    assert!(store.update_run(&stale).await.unwrap_err().is_lease_lost(), "node a's attempt cannot finish it");
    let stored = store.history(&RunQuery::default()).await.unwrap().remove(0);
    assert_eq!((stored.status, stored.attempt), (RunStatus::Succeeded, 2), "{stored:?}");
}

/// Two sweepers race for an expired node's run that has retries left: it is
/// re-queued exactly once (one decision, one pending row) and taken by one claim.
pub async fn two_sweepers_requeue_an_expired_run_exactly_once(h: &Harness) {
    let store = h.store().await;
    add(&store, job("r", 10, 10).with_retry(RetryPolicy::new(3, SignedDuration::from_secs(1)))).await;
    let a = lease(&store, "a").await;
    let b = lease(&store, "b").await;
    let c = lease(&store, "c").await;
    let run = claim_and_start(&store, &a, at(10)).await;
    store.renew_lease(&b, TTL, at(11)).await.unwrap();
    store.renew_lease(&c, TTL, at(11)).await.unwrap();

    let later = at(11);
    let (one, two) = tokio::join!(store.sweep(later), store.sweep(later));
    let swept: Vec<_> = one.unwrap().into_iter().chain(two.unwrap()).collect();
    assert_eq!(swept.len(), 1, "two sweepers decide the run exactly once: {swept:?}");
    assert!(swept[0].requeued && swept[0].run.id == run.id, "{swept:?}");
    assert!(store.sweep(later).await.unwrap().is_empty(), "and a later sweep finds nothing");
    let rows = store.history(&RunQuery { job_id: Some(id("r")), ..RunQuery::default() }).await.unwrap();
    assert_eq!(rows.len(), 1, "re-queued in place, under its id: {rows:?}");
    assert_eq!((rows[0].status, rows[0].node.as_deref(), rows[0].attempt), (RunStatus::Pending, None, 1));
    assert_eq!(store.count_running(&id("r")).await.unwrap(), 1, "one run in flight, not two");

    let (by_b, by_c) = tokio::join!(claim(&store, &b, later, 10), claim(&store, &c, later, 10));
    let taken: Vec<Run> = by_b.into_iter().chain(by_c).flat_map(|c| c.runs).collect();
    assert_eq!(taken.iter().map(|r| r.id).collect::<Vec<_>>(), [run.id], "one node takes it, once: {taken:?}");
}

/// The old holder of a run (its lease lost, the run re-queued and claimed
/// by another node) wakes up while the new holder's attempt is running:
/// every update it sends is refused with `LeaseLost` and changes nothing of
/// the new holder's run (a finish leaves only its `late_result`), even once
/// the old holder has registered again under a new epoch. An update of an
/// older attempt than the stored one is refused too, whoever sends it.
pub async fn a_stale_update_from_the_old_holder_changes_nothing(h: &Harness) {
    let store = h.store().await;
    add(&store, job("r", 10, 10).with_retry(RetryPolicy::new(3, SignedDuration::from_secs(1)))).await;
    let a = lease(&store, "a").await;
    let b = lease(&store, "b").await;
    let old = claim_and_start(&store, &a, at(10)).await;
    store.renew_lease(&b, TTL, at(11)).await.unwrap();
    assert!(store.sweep(at(11)).await.unwrap()[0].requeued);
    let mut new = claim(&store, &b, at(11), 10).await.remove(0).runs.remove(0);
    new.status = RunStatus::Running;
    new.attempt = 2;
    new.started_at = Some(at(11));
    store.update_run(&new).await.unwrap();
    let a_again = store.register_node(&registration("a"), TTL, at(11)).await.unwrap();
    assert_ne!(a_again.epoch, a.epoch);

    let stored = || async { store.history(&RunQuery::default()).await.unwrap().remove(0) };
    let before = stored().await;
    assert_eq!((before.status, before.attempt, before.node.as_deref()), (RunStatus::Running, 2, Some("b")));

    // a's next attempt starting, under its old epoch.
    let mut retrying = old.clone();
    retrying.attempt = 2;
    retrying.started_at = Some(at(12));
    retrying.output = Some("a's retry".into());
    assert!(store.update_run(&retrying).await.unwrap_err().is_lease_lost(), "a stale start is refused");
    assert_eq!(stored().await, before, "and changes nothing");

    // a's first attempt finishing.
    let mut finished = old.clone();
    finished.status = RunStatus::Failed;
    finished.error = Some("a's failure".into());
    finished.finished_at = Some(at(12));
    assert!(store.update_run(&finished).await.unwrap_err().is_lease_lost(), "a stale finish is refused");
    let after = stored().await;
    assert!(after.late_result.as_deref().is_some_and(|l| l.contains("on node a")), "{after:?}");
    assert_eq!(Run { late_result: None, ..after }, before, "nothing of b's run changed but the late result");
    let job = store.get_job(&id("r")).await.unwrap().unwrap();
    assert_eq!(job.state.last_status, None, "nor the job's last status");
    assert_eq!(store.count_running(&id("r")).await.unwrap(), 1);

    // b's own first attempt, arriving after its second: older than the stored attempt.
    let mut older = new.clone();
    older.attempt = 1;
    older.status = RunStatus::Failed;
    older.finished_at = Some(at(12));
    assert!(store.update_run(&older).await.unwrap_err().is_lease_lost(), "an older attempt is refused");
    assert_eq!((stored().await.status, stored().await.attempt), (RunStatus::Running, 2));

    // The new holder finishes as usual.
    new.status = RunStatus::Succeeded;
    new.finished_at = Some(at(13));
    store.update_run(&new).await.unwrap();
    let done = stored().await;
    assert_eq!((done.status, done.attempt, done.node.as_deref()), (RunStatus::Succeeded, 2, Some("b")));
}

/// `request_run` checks and inserts in one step: no more runs than `max_instances` allows.
pub async fn request_run_is_atomic(h: &Harness) {
    let store = h.store().await;
    let mut paused = job("manual", 10, 10);
    paused.state.paused = Some("held".into());
    paused.state.next_run_at = None;
    add(&store, paused).await;
    let requests = (0..8).map(|_| {
        let s = Arc::clone(&store);
        tokio::spawn(async move { s.request_run(&id("manual"), at(5), None).await.unwrap() })
    });
    let mut runs = Vec::new();
    for r in requests {
        runs.push(r.await.unwrap());
    }
    let pending: Vec<&Run> = runs.iter().filter(|r| r.status == RunStatus::Pending).collect();
    assert_eq!(pending.len(), 1, "eight racing requests for a max_instances = 1 job start one run: {runs:?}");
    assert!(runs.iter().all(|r| r.kind == RunKind::Manual), "every requested run is manual");
    assert!(
        runs.iter().filter(|r| r.status == RunStatus::Skipped).all(|r| r
            .error
            .as_deref()
            .unwrap()
            .contains("max_instances (1)"))
    );
    assert_eq!(pending[0].node, None, "a request without a lease waits for any node");
    let mut times: Vec<Timestamp> = runs.iter().map(|r| r.scheduled_for).collect();
    times.sort();
    times.dedup();
    assert_eq!(times.len(), 8, "each request has its own row");
    let j = store.get_job(&id("manual")).await.unwrap().unwrap();
    assert_eq!((j.state.next_run_at, j.state.paused.as_deref()), (None, Some("held")), "the schedule is untouched");
    assert!(store.request_run(&id("nobody"), at(5), None).await.unwrap_err().is_not_found());

    // With a lease the run is that node's at once.
    let store = h.store().await;
    add(&store, job("here", 10, 10).with_max_instances(2)).await;
    let a = lease(&store, "a").await;
    let run = store.request_run(&id("here"), at(5), Some(&a)).await.unwrap();
    assert!(run.status == RunStatus::Pending && run.is_held_by(&a), "{run:?}");
    assert!(claim(&store, &a, at(5), 10).await.is_empty(), "a run already held is not claimed again");
    store.release_lease(&a).await.unwrap();
    assert!(store.request_run(&id("here"), at(6), Some(&a)).await.unwrap_err().is_lease_lost());
}

/// A requested run goes to a node that has its task; a removed job's request is cancelled.
pub async fn requested_runs_are_claimed_by_a_node_with_the_task(h: &Harness) {
    let store = h.store().await;
    add(&store, job("asked", 60, 60)).await;
    let mut other = job("other-task", 60, 60);
    other.task = Arc::from("not_here");
    add(&store, other).await;
    let a = lease(&store, "a").await;
    let asked = store.request_run(&id("asked"), at(1), None).await.unwrap();
    let not_mine = store.request_run(&id("other-task"), at(1), None).await.unwrap();
    assert_eq!(store.next_due_at(&tasks()).await.unwrap(), Some(at(1)), "a requested run is ready now");
    let claims = claim(&store, &a, at(2), 10).await;
    assert_eq!(claims.len(), 1, "only the run of a task this node has: {claims:?}");
    assert_eq!((claims[0].runs[0].id, claims[0].job.state.next_run_at), (asked.id, Some(at(60))));
    assert!(claims[0].runs[0].is_held_by(&a));
    assert_eq!(store.next_due_at(&tasks()).await.unwrap(), Some(at(60)));
    let in_flight = store.history(&RunQuery { job_id: Some(id("other-task")), ..RunQuery::default() }).await.unwrap();
    assert_eq!((in_flight[0].id, in_flight[0].node.as_deref()), (not_mine.id, None), "left for a node that has it");

    // A requested run whose job is removed before any node takes it is cancelled.
    let gone = job("gone", 60, 60);
    add(&store, gone).await;
    store.request_run(&id("gone"), at(3), None).await.unwrap();
    store.remove_job(&id("gone")).await.unwrap();
    assert!(claim(&store, &a, at(4), 10).await.is_empty());
    let left = store.history(&RunQuery { job_id: Some(id("gone")), ..RunQuery::default() }).await.unwrap();
    assert_eq!(left[0].status, RunStatus::Cancelled, "{left:?}");
}
