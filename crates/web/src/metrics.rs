//! `/metrics` in the Prometheus text format.
//!
//! # Implementation
//!
//! A task subscribed to the scheduler's events counts runs by job and status
//! and fills two histograms per job (duration and lateness); gauges (running
//! runs, jobs by state, loop lag, the nodes in the store with their leases
//! and runs in flight) are read at scrape time. The text is written by hand
//! (no client library); label values are escaped by [`label`]. State lives in the
//! handle, not in a process-global recorder, so several schedulers (or
//! tests) in one process keep separate figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use chime_core::{Event, Scheduler};

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
    duration: BTreeMap<String, Histogram>,
    lateness: BTreeMap<String, Histogram>,
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
            histogram(&mut out, "chime_run_duration_seconds", "How long runs took.", &s.duration);
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
        let mut finished = |job: &chime_core::JobId, status: &'static str| {
            *self.runs.entry((job.to_string(), status)).or_default() += 1;
        };
        match event {
            Event::RunSucceeded { job_id, duration, .. } => {
                finished(job_id, "succeeded");
                self.duration.entry(job_id.to_string()).or_default().observe(duration.as_secs_f64());
            }
            Event::RunFailed { job_id, will_retry: false, .. } => finished(job_id, "failed"),
            Event::RunTimedOut { job_id, will_retry: false, .. } => finished(job_id, "timed_out"),
            Event::RunCancelled { job_id, .. } => finished(job_id, "cancelled"),
            Event::RunMissed { job_id, .. } => finished(job_id, "missed"),
            Event::RunSkipped { job_id, .. } => finished(job_id, "skipped"),
            Event::RunAbandoned { job_id, .. } => finished(job_id, "abandoned"),
            Event::RunStarted { job_id, scheduled_for, attempt: 1, .. } => {
                let late = now.duration_since(*scheduled_for).as_secs_f64();
                self.lateness.entry(job_id.to_string()).or_default().observe(late);
            }
            _ => {}
        }
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
