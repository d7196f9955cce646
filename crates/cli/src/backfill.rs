//! `chime jobs backfill ID --since T`: run the scheduled times of a window
//! that did not succeed, oldest first, as runs carrying their original
//! scheduled time, at most `max_instances` at a time.

use std::time::Duration;

use anyhow::anyhow;
use chime_core::Scheduler;
use chime_core::why::parse_since;
use jiff::Timestamp;
use serde_json::json;

use crate::error::CliError;
use crate::manage::{alive_nodes, failed, short};
use crate::output::out;

/// How long a queued backfill run may wait for a node before the command
/// gives up (the runs queued stay queued).
const UNCLAIMED_FOR: Duration = Duration::from_secs(60);

pub(crate) struct Backfill<'a> {
    pub(crate) id: &'a str,
    pub(crate) since: &'a str,
    pub(crate) until: Option<&'a str>,
    pub(crate) only_missing: bool,
    pub(crate) dry_run: bool,
    pub(crate) json: bool,
}

pub(crate) async fn backfill(s: &Scheduler, b: Backfill<'_>) -> Result<(), CliError> {
    let now = Timestamp::now();
    let since = parse_since(b.since, now).map_err(failed)?;
    let until = b.until.map(|u| parse_since(u, now)).transpose().map_err(failed)?;
    let times = s.backfill_plan(b.id, since, until, b.only_missing).await.map_err(failed)?;
    if b.dry_run {
        if b.json {
            out!("{}", json!({"times": times}));
        } else if times.is_empty() {
            out!(
                "nothing to backfill: every scheduled time of {} since {} succeeded or is under way",
                b.id,
                short(since)
            );
        } else {
            out!("would backfill {} scheduled times of {}, oldest first:", times.len(), b.id);
            for t in &times {
                out!("  {t}");
            }
        }
        return Ok(());
    }
    if times.is_empty() {
        out!("nothing to backfill: every scheduled time of {} since {} succeeded or is under way", b.id, short(since));
        return Ok(());
    }
    if alive_nodes(s, now).await? == 0 {
        return Err(CliError::Failed(anyhow!(
            "no node of this store is alive (no `chime serve` is running on it), so nobody would run the {} backfill runs of {}: start one first",
            times.len(),
            b.id
        )));
    }
    let job = s.get_job(b.id).await.map_err(failed)?;
    if !b.json {
        out!(
            "backfilling {} scheduled times of {}, oldest first, at most {} at a time (max_instances); Ctrl-C stops queuing",
            times.len(),
            b.id,
            job.options.max_instances
        );
    }
    let queued = s.backfill(b.id, &times, UNCLAIMED_FOR).await.map_err(failed)?;
    if b.json {
        out!("{}", serde_json::to_string(&queued).expect("runs serialize"));
    } else {
        for run in &queued {
            out!("  queued {} for {}", run.id, run.scheduled_for);
        }
        out!("queued {} backfill runs; `chime history --job {}` shows how they went", queued.len(), b.id);
    }
    Ok(())
}
