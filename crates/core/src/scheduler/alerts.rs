//! `on_alert` hooks: the loop looks once a minute for jobs with an
//! `on_alert` that are in alert, and queues one run of the hook job per
//! alert, with the alert in the run's reason (what the hook's task reads as
//! `JobContext::alert`).
//!
//! "Once per alert" holds across ticks, restarts and nodes: the store
//! records each job's notified episode ([`crate::alert_episode`]: its last
//! success before the alert) and queues the hook's run in the same atomic
//! step (`JobStore::notify_alert`), so a second node, or this one after a
//! restart, finds the episode notified and queues nothing.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::Inner;
use crate::error::Result;
use crate::health::{alert_episode, check_job};
use crate::reason::{AlertNotice, Reason};
use crate::run::{Run, RunQuery};
use crate::status::{RunKind, RunStatus};
use crate::store::JobFilter;

/// How often the loop looks for alerts to notify.
pub(super) const ALERT_EVERY: SignedDuration = SignedDuration::from_mins(1);

/// Queues the hook run of each job newly in alert; returns how many.
pub(super) async fn notify(inner: &Inner, now: Timestamp) -> Result<usize> {
    let store = &inner.store;
    let jobs = store.list_jobs(&JobFilter { with_alerts: true, ..JobFilter::default() }).await?;
    let mut queued = 0;
    for job in jobs.iter().filter(|j| j.options.on_alert.is_some()) {
        let Some(alert) = check_job(&**store, job, now).await? else { continue };
        let hook = job.options.on_alert.clone().expect("filtered on on_alert");
        match store.get_job(&hook).await? {
            None => {
                tracing::warn!(job_id = %job.id, hook = %hook, "job in alert names an on_alert job that does not exist");
                continue;
            }
            // A paused hook is not run: pausing is how a hook is silenced,
            // and a command job the config dropped ("removed from code") is
            // paused and must not be run by an alert either.
            Some(h) if h.is_paused() => {
                tracing::warn!(job_id = %job.id, hook = %hook, "job in alert: its on_alert job is paused, not run");
                continue;
            }
            Some(_) => {}
        }
        // The alert read only the newest runs: its last success may be older.
        let last_success = match alert.last_success {
            Some(t) => Some(t),
            None => {
                let q = RunQuery {
                    job_id: Some(job.id.clone()),
                    statuses: vec![RunStatus::Succeeded],
                    limit: Some(1),
                    ..RunQuery::default()
                };
                store.history(&q).await?.first().map(|r| r.finished_at.unwrap_or(r.scheduled_for))
            }
        };
        let notice = AlertNotice {
            job_id: job.id.clone(),
            reason: alert.reason.clone(),
            last_error: alert.last_error.clone(),
            since: alert.since,
        };
        let run = Run { kind: RunKind::Alert, ..Run::requested(hook.clone(), now) }.with_reason(Reason::Alert(notice));
        let run_id = run.id;
        if store.notify_alert(&job.id, alert_episode(last_success), run).await? {
            tracing::warn!(job_id = %job.id, hook = %hook, run_id = %run_id, reason = %alert.reason, "job in alert: its on_alert job is asked to run");
            queued += 1;
        }
    }
    Ok(queued)
}

/// For the loop: an `Arc` is what it holds.
pub(super) async fn notify_logged(inner: &Arc<Inner>, now: Timestamp) {
    if let Err(e) = notify(inner, now).await {
        inner.events.store_error("notifying alerts", &e);
    }
}
