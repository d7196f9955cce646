//! `/metrics` in the Prometheus text format (version 0.0.4), on the
//! `prometheus-client` crate.
//!
//! # Implementation
//!
//! A task subscribed to the scheduler's events counts runs by job and status
//! and fills two histograms per job (duration, of every outcome, and
//! lateness), and remembers when each job last succeeded (seeded once from
//! the store at start: the newest `succeeded` run of each job); a removed
//! job's series are dropped ([`Family::remove`]). Gauges (running runs, jobs
//! by state, loop lag, the nodes in the store with their leases and runs in
//! flight, the age of each job's last success, whether each job with an
//! alert option is in alert) are read at
//! scrape time into a registry made for that scrape, so two scrapes at once
//! cannot mix their figures. Every registry belongs to its [`Metrics`], not to
//! the process: several schedulers (or tests) in one process keep separate
//! figures.
//!
//! # A million jobs
//!
//! Per-job series are for a few hundred jobs, not a million: each costs
//! memory here and in Prometheus, and listing every job at each scrape would
//! make a scrape O(all jobs). So at most [`PER_JOB_SERIES`] jobs get series
//! of their own: the first whose runs start or finish here. A job removed
//! here frees its place at once; one removed through another node, at the
//! next scrape that lists every job. The runs of any other job are counted
//! under an empty `job_id` label, so sums over jobs stay whole. The
//! scrape-time per-job gauges (last-success age, alerting) are read only
//! while the store holds at most [`PER_JOB_SERIES`] jobs; past that they are
//! left out and `chime_per_job_series_limited` is 1. A scrape then costs
//! the same with 1,001 jobs as with 1,000,000.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use chime_core::{Event, JobFilter, RunQuery, RunStatus, Scheduler};
use jiff::Timestamp;
use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of the exposition.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Runs in progress remembered for their durations; a run whose end is
/// never seen here (its lease lost elsewhere) is forgotten past this many.
const MAX_STARTED: usize = 100_000;

/// The most jobs with series of their own; see the module's documentation.
pub(crate) const PER_JOB_SERIES: usize = 1_000;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 3600.0];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// A float gauge.
type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    /// Not `job`: Prometheus gives every scraped series a `job` label of its own
    /// (the scrape job), and a series carrying one too would see it renamed
    /// `exported_job`.
    job_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobStatusLabels {
    job_id: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

pub(crate) struct Metrics {
    /// The series fed by events; registered once.
    registry: Registry,
    runs: Family<JobStatusLabels, Counter>,
    duration: Family<JobLabel, Histogram, fn() -> Histogram>,
    lateness: Family<JobLabel, Histogram, fn() -> Histogram>,
    /// Events this collector missed because it fell behind.
    dropped: Counter,
    state: Mutex<State>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Default, Debug)]
struct State {
    /// When each run in progress here started (its first attempt), so a run
    /// that fails, times out or is cancelled has a duration too. Run ids are
    /// time-ordered: past [`MAX_STARTED`] the oldest go first.
    started: std::collections::BTreeMap<chime_core::RunId, Timestamp>,
    /// job → when its newest success finished, as far as this node knows
    /// (the store's newest `succeeded` run at start, then the events); only
    /// for the jobs in `own_series`.
    last_success: HashMap<String, Timestamp>,
    /// The jobs with series of their own, at most [`PER_JOB_SERIES`].
    own_series: std::collections::HashSet<String>,
}

impl State {
    /// The `job_id` label for a run of `job`: its id while it has (or can take)
    /// a place among the [`PER_JOB_SERIES`], else `""`.
    fn label(&mut self, job: &str) -> String {
        if self.own_series.contains(job) {
            return job.to_owned();
        }
        if self.own_series.len() < PER_JOB_SERIES {
            self.own_series.insert(job.to_owned());
            return job.to_owned();
        }
        String::new()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let runs = Family::<JobStatusLabels, Counter>::default();
        let duration = Family::new_with_constructor(histogram as fn() -> Histogram);
        let lateness = Family::new_with_constructor(histogram as fn() -> Histogram);
        let dropped = Counter::default();
        registry.register("chime_runs", "Finished runs by job and status (including missed and skipped)", runs.clone());
        registry.register(
            "chime_run_duration_seconds",
            "How long finished runs took, whatever their outcome",
            duration.clone(),
        );
        registry.register(
            "chime_run_lateness_seconds",
            "How long after its scheduled time a run started",
            lateness.clone(),
        );
        registry.register(
            "chime_events_dropped",
            "Events the metrics collector missed by falling behind",
            dropped.clone(),
        );
        Metrics { registry, runs, duration, lateness, dropped, state: Mutex::default() }
    }
}

impl Metrics {
    /// Starts counting the scheduler's events (when called inside a tokio
    /// runtime), and reads each job's last success from the store once.
    pub(crate) fn collect(scheduler: &Scheduler) -> Arc<Metrics> {
        let metrics = Arc::new(Metrics::default());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let mut events = scheduler.subscribe();
            let clock = Arc::clone(scheduler.clock());
            let weak = Arc::downgrade(&metrics);
            rt.spawn(async move {
                loop {
                    let event = events.recv().await;
                    let Some(metrics) = weak.upgrade() else { return };
                    match event {
                        Ok(e) => metrics.record(&e, clock.now()),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            metrics.dropped.inc_by(n);
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
            let weak = Arc::downgrade(&metrics);
            let scheduler = scheduler.clone();
            rt.spawn(async move { seed_last_success(&scheduler, &weak).await });
        }
        metrics
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, event: &Event, now: Timestamp) {
        if let (Some(outcome), Some(job_id)) = (event.run_outcome(), event.job_id()) {
            let job = self.state().label(job_id.as_str());
            // A success carries its duration; other ends are timed from the
            // run's start, when this node saw it (missed and skipped runs never started).
            let took = match event {
                Event::RunSucceeded { run_id, duration, .. } => {
                    let mut s = self.state();
                    s.started.remove(run_id);
                    if !job.is_empty() {
                        let at = s.last_success.entry(job.clone()).or_insert(now);
                        *at = (*at).max(now);
                    }
                    Some(duration.as_secs_f64())
                }
                Event::RunFailed { run_id, .. }
                | Event::RunTimedOut { run_id, .. }
                | Event::RunCancelled { run_id, .. }
                | Event::RunAbandoned { run_id, .. } => {
                    self.state().started.remove(run_id).map(|at| now.duration_since(at).as_secs_f64())
                }
                _ => None,
            };
            self.runs.get_or_create(&JobStatusLabels { job_id: job.clone(), status: outcome.as_str() }).inc();
            if let Some(secs) = took {
                self.duration.get_or_create(&JobLabel { job_id: job }).observe(secs.max(0.0));
            }
            return;
        }
        match event {
            Event::RunStarted { job_id, run_id, scheduled_for, attempt: 1 } => {
                let late = now.duration_since(*scheduled_for).as_secs_f64().max(0.0);
                let mut s = self.state();
                self.lateness.get_or_create(&JobLabel { job_id: s.label(job_id.as_str()) }).observe(late);
                s.started.insert(*run_id, now);
                while s.started.len() > MAX_STARTED {
                    s.started.pop_first();
                }
            }
            Event::JobRemoved { job_id } => self.forget(job_id.to_string()),
            _ => {}
        }
    }

    /// Drops the series of jobs with a place of their own that are no longer
    /// stored (removed through another node: no `JobRemoved` reaches this
    /// one), given every stored job. A job added after that listing whose
    /// run already ended here starts its series again at its next run: a
    /// counter reset, which Prometheus's `rate` and `increase` allow for.
    fn forget_gone(&self, stored: &[chime_core::Job]) {
        let stored: std::collections::HashSet<&str> = stored.iter().map(|j| j.id.as_str()).collect();
        let gone: Vec<String> =
            self.state().own_series.iter().filter(|j| !stored.contains(j.as_str())).cloned().collect();
        for job in gone {
            self.forget(job);
        }
    }

    /// Drops every series of `job` and its place among the [`PER_JOB_SERIES`].
    fn forget(&self, job: String) {
        for status in RunStatus::ALL {
            self.runs.remove(&JobStatusLabels { job_id: job.clone(), status: status.as_str() });
        }
        let mut s = self.state();
        s.last_success.remove(&job);
        s.own_series.remove(&job);
        drop(s);
        let label = JobLabel { job_id: job };
        self.duration.remove(&label);
        self.lateness.remove(&label);
    }

    /// The Prometheus text exposition.
    pub(crate) async fn render(&self, scheduler: &Scheduler) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        let scrape = self.scrape(scheduler).await;
        let _ = prometheus_text::encode(&mut out, &scrape);
        out
    }

    /// The figures read at scrape time, in a registry of their own.
    async fn scrape(&self, scheduler: &Scheduler) -> Registry {
        let mut reg = Registry::default();
        let now = scheduler.clock().now();

        let running = Gauge::<i64>::default();
        running.set(i64::try_from(scheduler.running_here()).unwrap_or(i64::MAX));
        reg.register("chime_running_runs", "Runs in progress in this process", running);

        let store = scheduler.store();
        // Counted by the store (one query in the SQL stores), no job decoded.
        if let Ok(c) = store.job_counts().await {
            let by_state = Family::<StateLabel, Gauge>::default();
            for (state, n) in
                [("active", c.active), ("paused", c.paused), ("finished", c.finished), ("broken", c.broken)]
            {
                by_state.get_or_create(&StateLabel { state }).set(count(n));
            }
            reg.register("chime_jobs", "Jobs by state", by_state);
        }
        // Per-job gauges only while the jobs are few; see the module's documentation.
        let jobs = store.list_jobs(&few_jobs()).await;
        let too_many = jobs.as_ref().is_ok_and(|j| j.len() > PER_JOB_SERIES);
        let limited = Gauge::<i64>::default();
        limited.set(i64::from(too_many));
        reg.register(
            "chime_per_job_series_limited",
            "1 when the store holds more jobs than have series of their own (the per-job gauges are then left out)",
            limited,
        );
        if let Ok(jobs) = &jobs
            && !too_many
        {
            self.forget_gone(jobs);
            let age = Family::<JobLabel, FloatGauge>::default();
            {
                let s = self.state();
                for job in jobs {
                    // The store's word too: another node may have run the last success.
                    let from_store = (job.state.last_status == Some(RunStatus::Succeeded))
                        .then_some(job.state.last_run_at)
                        .flatten();
                    if let Some(at) = s.last_success.get(job.id.as_str()).copied().max(from_store) {
                        let secs = now.duration_since(at).as_secs_f64().max(0.0);
                        age.get_or_create(&JobLabel { job_id: job.id.to_string() }).set(secs);
                    }
                }
            }
            reg.register(
                "chime_job_last_success_age_seconds",
                "Since each job's newest successful run finished (jobs that have one)",
                age,
            );
            // Only jobs with an alert option are read about (a few runs each).
            if let Ok(alerts) = chime_core::alerts_of(&**store, jobs, now).await {
                let alerting = Family::<JobLabel, Gauge>::default();
                for job in jobs.iter().filter(|j| j.has_alerts()) {
                    let on = alerts.iter().any(|a| a.job_id == job.id);
                    alerting.get_or_create(&JobLabel { job_id: job.id.to_string() }).set(i64::from(on));
                }
                reg.register(
                    "chime_job_alerting",
                    "Whether each job with alert_after or alert_on_failures is in alert (1) or not (0)",
                    alerting,
                );
            }
        }

        if let Some(tick) = scheduler.last_tick() {
            let lag = FloatGauge::default();
            lag.set(now.duration_since(tick).as_secs_f64().max(0.0));
            reg.register("chime_loop_lag_seconds", "Time since the scheduler loop last came round", lag);
        }

        if let Ok((_, nodes)) = crate::nodes::nodes(scheduler).await {
            let total = Gauge::<i64>::default();
            total.set(count(nodes.len()));
            reg.register("chime_nodes", "Nodes registered in the store, expired leases included until swept", total);
            let lease = Family::<NodeLabel, FloatGauge>::default();
            let in_flight = Family::<NodeLabel, Gauge>::default();
            for n in &nodes {
                let label = NodeLabel { node: n.info.id.clone() };
                lease.get_or_create(&label).set(n.lease_left_secs());
                in_flight.get_or_create(&label).set(i64::from(n.info.running));
            }
            reg.register(
                "chime_node_lease_seconds_left",
                "Until each node's lease runs out, by this node's clock (negative once expired)",
                lease,
            );
            reg.register("chime_node_runs_in_flight", "Runs each node holds, pending or running", in_flight);
        }
        reg
    }
}

/// Enough jobs to tell whether there are more than [`PER_JOB_SERIES`].
fn few_jobs() -> JobFilter {
    JobFilter { limit: Some(PER_JOB_SERIES + 1), ..JobFilter::default() }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Reads each job's newest `succeeded` run from the store, once, into what
/// the events keep up to date (the later of the two wins).
async fn seed_last_success(scheduler: &Scheduler, metrics: &std::sync::Weak<Metrics>) {
    let store = scheduler.store();
    let Ok(jobs) = store.list_jobs(&few_jobs()).await else { return };
    if jobs.len() > PER_JOB_SERIES {
        return;
    }
    for job in jobs {
        let query = RunQuery {
            job_id: Some(job.id.clone()),
            statuses: vec![RunStatus::Succeeded],
            limit: Some(1),
            ..RunQuery::default()
        };
        let Ok(runs) = store.history(&query).await else { continue };
        let Some(at) = runs.first().and_then(|r| r.finished_at) else { continue };
        let Some(metrics) = metrics.upgrade() else { return };
        let mut s = metrics.state();
        if s.label(job.id.as_str()).is_empty() {
            continue;
        }
        let known = s.last_success.entry(job.id.to_string()).or_insert(at);
        *known = (*known).max(at);
    }
}

#[cfg(test)]
mod tests {
    use chime_core::{JobId, RunId};
    use jiff::SignedDuration;

    use super::*;

    fn success(job: &str) -> Event {
        Event::RunSucceeded { job_id: JobId::new(job).unwrap(), run_id: RunId::new(), duration: SignedDuration::ZERO }
    }

    fn exposition(metrics: &Metrics) -> String {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &metrics.registry).unwrap();
        out
    }

    #[test]
    fn past_the_limit_runs_are_counted_without_a_job_label_until_a_job_is_removed() {
        let metrics = Metrics::default();
        let now = Timestamp::UNIX_EPOCH;
        for i in 0..PER_JOB_SERIES {
            metrics.record(&success(&format!("job-{i}")), now);
        }
        metrics.record(&success("one-too-many"), now);
        metrics.record(&success("one-too-many"), now);
        metrics.record(&success("job-0"), now);
        let text = exposition(&metrics);
        assert!(text.contains("chime_runs_total{job_id=\"\",status=\"succeeded\"} 2\n"), "{text}");
        assert!(text.contains("chime_runs_total{job_id=\"job-0\",status=\"succeeded\"} 2\n"), "{text}");
        assert!(!text.contains("one-too-many"), "{text}");
        assert_eq!(metrics.state().last_success.len(), PER_JOB_SERIES);

        // A removed job frees its place for the next job that finishes a run.
        metrics.record(&Event::JobRemoved { job_id: JobId::new("job-0").unwrap() }, now);
        metrics.record(&success("one-too-many"), now);
        let text = exposition(&metrics);
        assert!(text.contains("chime_runs_total{job_id=\"one-too-many\",status=\"succeeded\"} 1\n"), "{text}");
        assert!(!text.contains("job_id=\"job-0\""), "{text}");
        assert_eq!(metrics.state().own_series.len(), PER_JOB_SERIES);

        // Jobs removed through another node are forgotten at a scrape that
        // lists every stored job.
        let kept = chime_core::Job::new("job-1", "noop", chime_core::Trigger::every("1h").unwrap()).unwrap();
        metrics.forget_gone(&[kept]);
        assert_eq!(metrics.state().own_series.iter().collect::<Vec<_>>(), ["job-1"]);
        let text = exposition(&metrics);
        assert!(text.contains("job_id=\"job-1\"") && !text.contains("job_id=\"job-2\""), "{text}");
        assert!(text.contains("chime_runs_total{job_id=\"\",status=\"succeeded\"} 2\n"), "{text}");
    }
}
