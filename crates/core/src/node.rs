//! Nodes and their leases: how several schedulers share one store, and how a
//! dead one's runs are found.
//!
//! Every scheduler is a **node**. It registers in the store and gets a
//! [`Lease`]: its id and an epoch, a number the store never hands out twice.
//! Every run it executes records that node and epoch, and every update of the
//! run is conditional on them ([`crate::JobStore::update_run`]), so a node that
//! lost its lease cannot overwrite what another node decided.
//!
//! A lease is held while the store keeps its node row. The node renews it by a
//! heartbeat (one per node, every third of the lease). Once it is past its
//! expiry, any node's sweeper may delete the row and, in the same
//! transaction, mark that node's unfinished runs `abandoned` or re-queue them
//! as their next attempt. A node whose row is gone gets [`crate::Error::LeaseLost`]
//! from its next heartbeat, claim or run update: it cancels its runs and
//! registers again under a new epoch.
//!
//! ```text
//! register ─▶ lease (node, epoch 7) ─▶ heartbeat, heartbeat, …   (each: expires_at = now + ttl)
//!                 │ SIGSTOP for longer than the lease
//!                 ▼
//!     another node's sweep: expired → delete node row + abandon / re-queue its runs  (one transaction)
//!                 │ SIGCONT
//!                 ▼
//!     heartbeat → LeaseLost → cancel runs (their late results are kept beside the sweeper's decision)
//!               → register again (node, epoch 9)
//! ```

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::id::RunId;
use crate::job::{Job, RetryPolicy};
use crate::reason::Reason;
use crate::run::Run;
use crate::status::{RunKind, RunStatus};

/// The default lease: a node not heard from for this long is taken for dead.
pub const DEFAULT_NODE_LEASE: SignedDuration = SignedDuration::from_secs(30);

/// The shortest lease a scheduler accepts. Below it, a loaded machine's
/// scheduling delays would be mistaken for death.
pub const MIN_NODE_LEASE: SignedDuration = SignedDuration::from_millis(300);

/// A node's hold on the runs it executes, as granted by the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The node's id.
    pub node: Arc<str>,
    /// Which registration of the node this is; never reused by a store.
    pub epoch: u64,
    /// When it runs out unless renewed, on the store's clock.
    pub expires_at: Timestamp,
}

/// What a node says about itself when it registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRegistration {
    /// The node's id, unique among live nodes of a store.
    pub id: Arc<str>,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The chime version it runs.
    pub version: String,
}

impl NodeRegistration {
    /// This process, under `id`.
    pub fn this_process(id: Arc<str>) -> NodeRegistration {
        NodeRegistration {
            id,
            host: host_name(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// A registered node, as the store sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// The node's id.
    pub id: String,
    /// Its current epoch.
    pub epoch: u64,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The chime version it runs.
    pub version: String,
    /// When this registration began.
    pub started_at: Timestamp,
    /// When it last renewed its lease.
    pub heartbeat_at: Timestamp,
    /// When its lease runs out; in the past for a node the sweeper has not
    /// reached yet.
    pub lease_expires_at: Timestamp,
    /// Its runs pending or running.
    pub running: u32,
}

/// What one claim asks of the store; see [`crate::JobStore::acquire_due`].
#[derive(Clone, Copy, Debug)]
pub struct ClaimRequest<'a> {
    /// The scheduler's time. Due means `next_run_at <= now`.
    pub now: Timestamp,
    /// At most this many jobs (and requested runs).
    pub limit: usize,
    /// The claiming node's lease; the claim renews it, and fails with
    /// `LeaseLost` when the store no longer has it.
    pub lease: &'a Lease,
    /// How long the renewed lease lasts.
    pub ttl: SignedDuration,
    /// The tasks this node can run: jobs of other tasks are left for nodes
    /// that have them (a rolling deploy adds a task to some nodes first).
    pub tasks: &'a [Arc<str>],
}

impl ClaimRequest<'_> {
    /// Whether this node can run `task`.
    pub fn has_task(&self, task: &str) -> bool {
        self.tasks.iter().any(|t| &**t == task)
    }
}

/// A run the sweeper took from a node whose lease ran out.
#[derive(Clone, Debug, PartialEq)]
pub struct SweptRun {
    /// The run as the sweeper left it: `abandoned`, or `pending` again for
    /// any node to claim as its next attempt.
    pub run: Run,
    /// The node that held it.
    pub node: String,
    /// Whether it was re-queued (true) or abandoned.
    pub requeued: bool,
}

/// The sweeper's decision for one unfinished run whose lease is gone, the
/// same in every store: re-queued (pending, held by no node, its attempt
/// count kept) when `retry` has attempts left, else `abandoned` at `now`;
/// either way with the reason. Returns the decision, the store writes `run`.
pub fn sweep_run(run: &mut Run, retry: Option<&RetryPolicy>, now: Timestamp) -> SweptRun {
    let node = run.node.as_deref().unwrap_or("").to_owned();
    let requeued = retry.is_some_and(|r| run.attempt.max(1) < r.max_attempts);
    let swept = Reason::LeaseExpired { node: node.clone(), started: run.started_at.is_some(), requeued };
    if requeued && matches!(run.reason, Some(Reason::Alert(_))) {
        // A re-queued hook run keeps the alert it was asked for: the node
        // that takes it tells its task. The words say what happened.
        run.error = Some(crate::run::cap_error(swept.to_string()));
    } else {
        run.set_reason(Some(swept));
    }
    if requeued {
        run.status = RunStatus::Pending;
        run.attempt = run.attempt.max(1);
        run.node = None;
        run.epoch = None;
    } else {
        run.status = RunStatus::Abandoned;
        run.finished_at = Some(now);
    }
    SweptRun { run: run.clone(), node, requeued }
}

/// The run a run-now request records, the same in every store: a pending
/// `manual` run for `at` (held by `lease`, or by no node yet), or, when
/// the runs `in_flight` already number the job's `max_instances`, a
/// `skipped` one naming them.
pub fn requested_run(job: &Job, in_flight: &[RunId], at: Timestamp, now: Timestamp, lease: Option<&Lease>) -> Run {
    let max = job.options.max_instances;
    if u32::try_from(in_flight.len()).unwrap_or(u32::MAX) >= max {
        let node: Arc<str> = lease.map_or_else(|| Arc::from(""), |l| Arc::clone(&l.node));
        let why = Reason::max_instances(max, in_flight.iter().copied());
        let mut run = Run::not_run(job.id.clone(), at, RunStatus::Skipped, why, &node, now);
        run.kind = RunKind::Manual;
        run.node = lease.map(|l| Arc::clone(&l.node));
        return run;
    }
    match lease {
        Some(lease) => Run::claimed(job.id.clone(), at, RunKind::Manual, lease),
        None => Run::requested(job.id.clone(), at),
    }
}

/// The run a backfill of `at` records, the same in every store, given the
/// job's run already stored for that time, if any: a new pending `backfill`
/// run held by no node; or that same run (its id, so a task's idempotency
/// key, kept) queued again as a `backfill` when it did not succeed; or none
/// when it succeeded or is in flight (nothing to do).
pub fn backfill_run(job_id: &crate::JobId, at: Timestamp, existing: Option<&Run>) -> Option<Run> {
    match existing {
        None => Some(Run { kind: RunKind::Backfill, ..Run::requested(job_id.clone(), at) }),
        Some(run) if run.status == RunStatus::Succeeded || !run.status.is_finished() => None,
        Some(run) => {
            let was = run.error.as_deref().and_then(|e| e.lines().next()).unwrap_or("");
            let why = if was.is_empty() { String::new() } else { format!(": {was}") };
            Some(Run {
                kind: RunKind::Backfill,
                status: RunStatus::Pending,
                started_at: None,
                finished_at: None,
                attempt: 0,
                node: None,
                epoch: None,
                error: Some(crate::run::cap_error(format!("a backfill of a time that was {}{why}", run.status))),
                reason: None,
                output: None,
                late_result: None,
                ..run.clone()
            })
        }
    }
}

/// This host's name: `HOSTNAME`, else `/etc/hostname`, else "node".
pub fn host_name() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.trim().is_empty()).unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".into())
    })
}

/// A node id for this process: host, pid and four random hex digits, so a
/// restarted container that reuses PID 1 under the same host name is a new node.
pub fn default_node_id() -> String {
    format!("{}-{}-{:04x}", host_name(), std::process::id(), fastrand::u16(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfill_keeps_the_id_of_a_time_that_did_not_succeed_and_leaves_the_rest() {
        let id = crate::JobId::new("j").unwrap();
        let at: Timestamp = "2026-01-01T03:00:00Z".parse().unwrap();
        let new = backfill_run(&id, at, None).unwrap();
        assert_eq!(
            (new.kind, new.status, new.node.as_deref(), new.scheduled_for),
            (RunKind::Backfill, RunStatus::Pending, None, at)
        );
        let node: Arc<str> = Arc::from("n");
        let mut missed =
            Run::not_run(id.clone(), at, RunStatus::Missed, crate::Reason::Coalesced { into: at }, &node, at);
        missed.attempt = 2;
        let again = backfill_run(&id, at, Some(&missed)).unwrap();
        assert_eq!(
            (again.id, again.kind, again.status, again.attempt, again.node),
            (missed.id, RunKind::Backfill, RunStatus::Pending, 0, None)
        );
        assert_eq!((again.finished_at, again.reason), (None, None));
        assert!(again.error.unwrap().starts_with("a backfill of a time that was missed: coalesced into"));
        for status in [RunStatus::Succeeded, RunStatus::Running, RunStatus::Pending] {
            let mut done = missed.clone();
            done.status = status;
            assert_eq!(backfill_run(&id, at, Some(&done)), None, "{status}: nothing to do");
        }
    }

    #[test]
    fn a_requeued_hook_run_keeps_the_alert_it_was_asked_for() {
        let id = crate::JobId::new("pager").unwrap();
        let notice = crate::AlertNotice {
            job_id: crate::JobId::new("backup").unwrap(),
            reason: "2 consecutive failures".into(),
            last_error: None,
            since: "2026-01-01T03:00:00Z".parse().unwrap(),
        };
        let now: Timestamp = "2026-01-01T04:00:00Z".parse().unwrap();
        let mut run = Run::requested(id, now).with_reason(Reason::Alert(notice.clone()));
        run.node = Some(Arc::from("gone"));
        run.attempt = 1;
        let retry = RetryPolicy::new(3, SignedDuration::from_secs(1));
        let swept = sweep_run(&mut run.clone(), Some(&retry), now);
        assert!(swept.requeued);
        assert_eq!(swept.run.reason, Some(Reason::Alert(notice)), "the next node still tells the hook");
        assert!(swept.run.error.unwrap().contains("stopped renewing its lease"));
        let abandoned = sweep_run(&mut run, None, now);
        assert!(
            matches!(abandoned.run.reason, Some(Reason::LeaseExpired { .. })),
            "no retry left: the sweep decided it"
        );
    }

    #[test]
    fn default_ids_differ_between_schedulers_of_one_process() {
        let ids: std::collections::HashSet<String> = (0..50).map(|_| default_node_id()).collect();
        assert!(ids.len() > 40, "ids repeat: {ids:?}");
        assert!(ids.iter().all(|id| id.contains(&format!("-{}-", std::process::id()))));
    }
}
