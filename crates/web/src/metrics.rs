//! `/metrics` in the Prometheus text format.
//!
//! # Implementation
//!
//! A task subscribed to the scheduler's events counts runs by job and status
//! and fills two histograms per job (duration, of every outcome, and
//! lateness); a removed job's series are dropped. Gauges (running
//! runs, jobs by state, loop lag, the nodes in the store with their leases
//! and runs in flight) are read at scrape time. The text is written by hand
//! (no client library); label values are escaped by [`label`]. State lives in the
//! handle, not in a process-global recorder, so several schedulers (or
//! tests) in one process keep separate figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use chime_core::{Event, Scheduler};

/// Runs in progress remembered for their durations; a run whose end is
/// never seen here (its lease lost elsewhere) is forgotten past this many.
const MAX_STARTED: usize = 100_000;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 3600.0];

#[derive(Default, Debug)]
pub(crate) struct Metrics {
    state: Mutex<State>,
}

#[derive(Default, Debug)]
struct State {
    /// (job, status) → runs.
    runs: BTreeMap<(String, &'static str), u64>,
    /// job → durations of its finished runs, whatever their outcome (a
    /// failing job has a duration series too).
    duration: BTreeMap<String, Histogram>,
    lateness: BTreeMap<String, Histogram>,
    /// When each run in progress here started (its first attempt), so a run
    /// that fails, times out or is cancelled has a duration too. Run ids are
    /// time-ordered: past [`MAX_STARTED`] the oldest go first.
    started: BTreeMap<chime_core::RunId, jiff::Timestamp>,
    /// Events this collector missed because it fell behind.
    lagged: u64,
}

#[derive(Default, Debug, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        let secs = secs.max(0.0);
        for (bound, c) in BUCKETS.iter().zip(&mut self.counts) {
            if secs <= *bound {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

impl Metrics {
    /// Starts counting the scheduler's events (when called inside a tokio runtime).
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
                    let mut s = metrics.state.lock().unwrap_or_else(|p| p.into_inner());
                    match event {
                        Ok(e) => s.record(&e, clock.now()),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => s.lagged += n,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }
        metrics
    }

    /// The Prometheus text exposition.
    pub(crate) async fn render(&self, scheduler: &Scheduler) -> String {
        let mut out = String::new();
        {
            let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            out.push_str("# HELP chime_runs_total Finished runs by job and status (including missed and skipped).\n");
            out.push_str("# TYPE chime_runs_total counter\n");
            for ((job, status), n) in &s.runs {
                let _ = writeln!(out, "chime_runs_total{{job=\"{}\",status=\"{status}\"}} {n}", label(job));
            }
            histogram(
                &mut out,
                "chime_run_duration_seconds",
                "How long finished runs took, whatever their outcome.",
                &s.duration,
            );
            histogram(
                &mut out,
                "chime_run_lateness_seconds",
                "How long after its scheduled time a run started.",
                &s.lateness,
            );
            out.push_str("# HELP chime_events_dropped_total Events the metrics collector missed by falling behind.\n");
            out.push_str("# TYPE chime_events_dropped_total counter\n");
            let _ = writeln!(out, "chime_events_dropped_total {}", s.lagged);
        }
        out.push_str("# HELP chime_running_runs Runs in progress in this process.\n# TYPE chime_running_runs gauge\n");
        let _ = writeln!(out, "chime_running_runs {}", scheduler.running_here());
        if let Ok(c) = scheduler.job_counts().await {
            out.push_str("# HELP chime_jobs Jobs by state.\n# TYPE chime_jobs gauge\n");
            for (state, n) in
                [("active", c.active), ("paused", c.paused), ("finished", c.finished), ("broken", c.broken)]
            {
                let _ = writeln!(out, "chime_jobs{{state=\"{state}\"}} {n}");
            }
        }
        if let Some(tick) = scheduler.last_tick() {
            let lag = scheduler.clock().now().duration_since(tick).as_secs_f64().max(0.0);
            out.push_str("# HELP chime_loop_lag_seconds Time since the scheduler loop last came round.\n");
            out.push_str("# TYPE chime_loop_lag_seconds gauge\n");
            let _ = writeln!(out, "chime_loop_lag_seconds {lag}");
        }
        if let Ok((_, nodes)) = crate::nodes::nodes(scheduler).await {
            out.push_str("# HELP chime_nodes Nodes registered in the store, expired leases included until swept.\n");
            out.push_str("# TYPE chime_nodes gauge\n");
            let _ = writeln!(out, "chime_nodes {}", nodes.len());
            out.push_str(
                "# HELP chime_node_lease_seconds_left Until each node's lease runs out, by this node's clock (negative once expired).\n",
            );
            out.push_str("# TYPE chime_node_lease_seconds_left gauge\n");
            for n in &nodes {
                let _ = writeln!(
                    out,
                    "chime_node_lease_seconds_left{{node=\"{}\"}} {}",
                    label(&n.info.id),
                    n.lease_left_secs()
                );
            }
            out.push_str("# HELP chime_node_runs_in_flight Runs each node holds, pending or running.\n");
            out.push_str("# TYPE chime_node_runs_in_flight gauge\n");
            for n in &nodes {
                let _ = writeln!(out, "chime_node_runs_in_flight{{node=\"{}\"}} {}", label(&n.info.id), n.info.running);
            }
        }
        out
    }
}

impl State {
    fn record(&mut self, event: &Event, now: jiff::Timestamp) {
        if let (Some(outcome), Some(job_id)) = (event.run_outcome(), event.job_id()) {
            // A success carries its duration; other ends are timed from the
            // run's start, when this node saw it (missed and skipped runs never started).
            let took = match event {
                Event::RunSucceeded { run_id, duration, .. } => {
                    self.started.remove(run_id);
                    Some(duration.as_secs_f64())
                }
                Event::RunFailed { run_id, .. }
                | Event::RunTimedOut { run_id, .. }
                | Event::RunCancelled { run_id, .. }
                | Event::RunAbandoned { run_id, .. } => self.took(run_id, now),
                _ => None,
            };
            self.finished(job_id, outcome.as_str(), took);
            return;
        }
        match event {
            Event::RunStarted { job_id, run_id, scheduled_for, attempt: 1 } => {
                let late = now.duration_since(*scheduled_for).as_secs_f64();
                self.lateness.entry(job_id.to_string()).or_default().observe(late);
                self.started.insert(*run_id, now);
                while self.started.len() > MAX_STARTED {
                    self.started.pop_first();
                }
            }
            Event::JobRemoved { job_id } => {
                let job = job_id.as_str();
                self.runs.retain(|(j, _), _| j != job);
                self.duration.remove(job);
                self.lateness.remove(job);
            }
            _ => {}
        }
    }

    fn finished(&mut self, job: &chime_core::JobId, status: &'static str, took: Option<f64>) {
        *self.runs.entry((job.to_string(), status)).or_default() += 1;
        if let Some(secs) = took {
            self.duration.entry(job.to_string()).or_default().observe(secs);
        }
    }

    /// How long a run that ends now took, when its start was seen here.
    fn took(&mut self, run: &chime_core::RunId, now: jiff::Timestamp) -> Option<f64> {
        self.started.remove(run).map(|at| now.duration_since(at).as_secs_f64())
    }
}

fn histogram(out: &mut String, name: &str, help: &str, by_job: &BTreeMap<String, Histogram>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (job, h) in by_job {
        let job = label(job);
        for (bound, c) in BUCKETS.iter().zip(h.counts) {
            let _ = writeln!(out, "{name}_bucket{{job=\"{job}\",le=\"{bound}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{job=\"{job}\",le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum{{job=\"{job}\"}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{job=\"{job}\"}} {}", h.count);
    }
}

/// Escapes a label value as the text format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
