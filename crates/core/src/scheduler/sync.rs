//! Jobs defined in code: `Scheduler::sync`. See docs/design.md, "Jobs defined in code".

use std::sync::Arc;

use super::Scheduler;
use super::jobs::first_fire;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::id::JobId;
use crate::job::Job;
use crate::store::{ConflictPolicy, JobFilter};

/// What `Scheduler::sync` did. `Display` reads "added 2, updated 1, kept 5, orphaned 1".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Jobs new in code, now stored.
    pub added: Vec<JobId>,
    /// Jobs whose code definition changed since the last sync, now updated.
    pub updated: Vec<JobId>,
    /// Jobs whose code definition is unchanged; runtime edits kept.
    pub kept: Vec<JobId>,
    /// Stored jobs from code that code no longer defines, now paused.
    pub orphaned: Vec<JobId>,
    /// Jobs whose stored row no longer decoded, replaced by their definition in code.
    pub repaired: Vec<JobId>,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "added {}, updated {}, kept {}, orphaned {}",
            self.added.len(),
            self.updated.len(),
            self.kept.len(),
            self.orphaned.len()
        )?;
        if !self.repaired.is_empty() {
            write!(f, ", repaired {}", self.repaired.len())?;
        }
        Ok(())
    }
}

/// Whether `SCHEDULER_FORCE_UPDATE` asks code to win: `true` (any case) or `1`.
fn force_update_requested(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
}

/// The reason given to jobs paused because code no longer defines them.
pub const REMOVED_FROM_CODE: &str = "removed from code";

impl Scheduler {
    /// Brings the store in line with the jobs a service defines in code, at
    /// start-up. See docs/design.md, "Jobs defined in code":
    ///
    /// * a job new in code is added;
    /// * a job whose code definition changed since the last sync is updated,
    ///   keeping its runtime state (history, last run, pause);
    /// * a job whose code definition is unchanged keeps its runtime edits
    ///   (paused or rescheduled from the CLI or API);
    /// * a stored job that came from code but is no longer in it is paused
    ///   with the reason "removed from code" and reported, never deleted.
    ///
    /// With `SCHEDULER_FORCE_UPDATE=true` in the environment, code wins over
    /// every runtime edit: definitions are rewritten and pauses lifted.
    ///
    /// # Errors
    ///
    /// The first invalid job or store error; jobs before it are already synced.
    pub async fn sync(&self, jobs: Vec<Job>) -> Result<SyncReport> {
        let force = force_update_requested(std::env::var("SCHEDULER_FORCE_UPDATE").ok().as_deref());
        self.sync_with(jobs, force).await
    }

    /// [`sync`](Scheduler::sync) with the force flag given rather than read from the environment.
    ///
    /// # Errors
    ///
    /// As for `sync`.
    pub async fn sync_with(&self, jobs: Vec<Job>, force: bool) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let mut in_code = std::collections::HashSet::new();
        let now = self.inner.clock.now();
        // Jobs not in the store yet, added together at the end (`add_jobs`).
        let mut fresh = Vec::new();
        for mut job in jobs {
            job.validate()?;
            self.check_min_interval(&job.trigger)
                .map_err(|e| Error::invalid(format!("job {:?}: {e}", job.id.as_str())))?;
            let hash = job.definition_hash();
            in_code.insert(job.id.clone());
            let stored = match self.inner.store.get_job(&job.id).await {
                Ok(Some(stored)) => stored,
                Ok(None) => {
                    job.state.code_hash = Some(hash.into());
                    fresh.push(job);
                    continue;
                }
                Err(Error::BrokenJob { problem, .. }) => {
                    // Code defines this job: its definition replaces the row
                    // that no longer decodes (the history stays).
                    job.state.code_hash = Some(hash.into());
                    let id = job.id.clone();
                    self.add_job(job, ConflictPolicy::Replace).await?;
                    tracing::warn!(job_id = %id, %problem, "stored job did not decode; replaced by its definition in code");
                    report.repaired.push(id);
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.sync_stored(job, hash, stored, force, now, &mut report).await?;
        }
        if !fresh.is_empty() {
            // Nodes starting at once all find the jobs missing: the first
            // adds them, the others keep its rows and go on with those.
            let stored = self.add_jobs(fresh.clone(), ConflictPolicy::KeepExisting).await?;
            for (job, stored) in fresh.into_iter().zip(stored) {
                let hash = job.state.code_hash.as_deref().unwrap_or_default().to_owned();
                if stored.state.code_hash.as_deref() == Some(hash.as_str()) {
                    report.added.push(job.id);
                } else {
                    self.sync_stored(job, hash, stored, force, now, &mut report).await?;
                }
            }
        }
        for stored in self.inner.store.list_jobs(&JobFilter::default()).await? {
            if stored.state.code_hash.is_none() || in_code.contains(&stored.id) {
                continue;
            }
            if stored.state.paused.as_deref() != Some(REMOVED_FROM_CODE) {
                self.pause_job(stored.id.as_str(), REMOVED_FROM_CODE).await?;
            }
            report.orphaned.push(stored.id);
        }
        tracing::info!(%report, force, "jobs synced from code");
        for id in &report.orphaned {
            tracing::warn!(job_id = %id, "stored job is no longer defined in code; paused, not deleted");
        }
        Ok(report)
    }

    /// Sync of a job the store already has: kept when its definition in code
    /// is unchanged, otherwise updated (or revived, or forced).
    async fn sync_stored(
        &self,
        mut job: Job,
        hash: String,
        stored: Job,
        force: bool,
        now: jiff::Timestamp,
        report: &mut SyncReport,
    ) -> Result<()> {
        let unchanged = stored.state.code_hash.as_deref() == Some(hash.as_str());
        let revived = stored.state.paused.as_deref() == Some(REMOVED_FROM_CODE);
        if unchanged && !force && !revived {
            report.kept.push(job.id);
            return Ok(());
        }
        match self.inner.tasks.interned(&job.task) {
            Some(name) => job.task = name,
            None => return Err(Error::UnknownTask(job.task.to_string())),
        }
        job.trigger.resolve(now, &self.inner.zone);
        let id = job.id.clone();
        self.update(id.as_str(), |stored| {
            let definition_changed = stored.state.code_hash.as_deref() != Some(hash.as_str());
            if definition_changed || force {
                stored.name = job.name.clone();
                stored.task = Arc::clone(&job.task);
                stored.args = job.args.clone();
                stored.trigger = job.trigger.clone();
                stored.options = job.options.clone();
            }
            if force || stored.state.paused.as_deref() == Some(REMOVED_FROM_CODE) {
                stored.state.paused = None;
            }
            if stored.is_paused() {
                stored.state.next_run_at = None;
            } else if definition_changed || force || stored.state.next_run_at.is_none() {
                stored.state.next_run_at = first_fire(&stored.trigger, now);
            }
            stored.state.code_hash = Some(hash.as_str().into());
            Ok(())
        })
        .await?;
        self.inner.events.emit(Event::JobUpdated { job_id: id.clone() });
        report.updated.push(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_force_update_values() {
        for yes in ["true", "TRUE", "True", "1", " true "] {
            assert!(force_update_requested(Some(yes)), "{yes:?}");
        }
        for no in [None, Some(""), Some("false"), Some("0"), Some("yes")] {
            assert!(!force_update_requested(no), "{no:?}");
        }
    }
}
