//! The server's periodic summary of runs: one INFO line a minute (when
//! anything ran) instead of lines per run, so a server running hundreds of
//! jobs a second keeps a log a person can read. Failures are still logged
//! one by one, at WARN, by the executor; per-run lines are at DEBUG
//! (`CHIME_LOG=debug`).

use std::time::Duration;

use chime_core::{Event, RunStatus};
use tokio::sync::broadcast::{self, error::RecvError};

/// Runs decided over one period, by outcome.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) timed_out: u64,
    pub(crate) cancelled: u64,
    pub(crate) abandoned: u64,
    pub(crate) missed: u64,
    pub(crate) skipped: u64,
    /// Events the summary fell too far behind to see (a burst larger than
    /// the event channel holds): counted, never silently dropped.
    pub(crate) unseen: u64,
}

impl Tally {
    /// Counts `event` if it ends a run ([`Event::run_outcome`]).
    pub(crate) fn count(&mut self, event: &Event) {
        let Some(outcome) = event.run_outcome() else { return };
        *match outcome {
            RunStatus::Succeeded => &mut self.succeeded,
            RunStatus::Failed => &mut self.failed,
            RunStatus::TimedOut => &mut self.timed_out,
            RunStatus::Cancelled => &mut self.cancelled,
            RunStatus::Abandoned => &mut self.abandoned,
            RunStatus::Missed => &mut self.missed,
            RunStatus::Skipped => &mut self.skipped,
            _ => return, // pending or running: not an end
        } += 1;
    }

    fn is_empty(&self) -> bool {
        *self == Tally::default()
    }
}

/// Logs the runs of every `period` in which anything happened, until the
/// scheduler's event channel closes (it shut down), then once more.
pub(crate) async fn log_every(events: broadcast::Receiver<Event>, period: Duration) {
    summarize(events, period, |t| log(&t, period)).await;
}

/// Hands `report` the [`Tally`] of every `period` in which anything
/// happened, and the last one when the channel closes.
async fn summarize(mut events: broadcast::Receiver<Event>, period: Duration, mut report: impl FnMut(Tally)) {
    let mut tally = Tally::default();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut flush = |tally: &mut Tally| {
        if !tally.is_empty() {
            report(std::mem::take(tally));
        }
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => tally.count(&event),
                Err(RecvError::Lagged(n)) => tally.unseen += n,
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => flush(&mut tally),
        }
    }
    flush(&mut tally);
}

fn log(t: &Tally, period: Duration) {
    tracing::info!(
        succeeded = t.succeeded,
        failed = t.failed,
        timed_out = t.timed_out,
        cancelled = t.cancelled,
        abandoned = t.abandoned,
        missed = t.missed,
        skipped = t.skipped,
        unseen = t.unseen,
        "runs in the last {}",
        chime_core::format_duration(jiff::SignedDuration::try_from(period).unwrap_or_default())
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use chime_core::{JobId, RunId};

    fn job() -> JobId {
        JobId::new("j").unwrap()
    }

    #[test]
    fn only_the_end_of_a_run_is_counted() {
        let mut t = Tally::default();
        let run_id = RunId::new();
        t.count(&Event::RunSucceeded { job_id: job(), run_id, duration: jiff::SignedDuration::ZERO });
        t.count(&Event::RunFailed { job_id: job(), run_id, attempt: 1, error: "e".into(), will_retry: true });
        t.count(&Event::RunFailed { job_id: job(), run_id, attempt: 2, error: "e".into(), will_retry: false });
        t.count(&Event::RunTimedOut { job_id: job(), run_id, attempt: 1, will_retry: false });
        t.count(&Event::SchedulerStarted);
        assert_eq!(t, Tally { succeeded: 1, failed: 1, timed_out: 1, ..Tally::default() });
    }

    #[tokio::test(start_paused = true)]
    async fn each_period_with_runs_is_reported_and_the_rest_at_shutdown() {
        let (tx, rx) = broadcast::channel(4);
        let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let collected = std::sync::Arc::clone(&reports);
        let summary = tokio::spawn(summarize(rx, Duration::from_secs(60), move |t| collected.lock().unwrap().push(t)));
        let succeeded = || Event::RunSucceeded { job_id: job(), run_id: RunId::new(), duration: Default::default() };
        tx.send(succeeded()).unwrap();
        tx.send(succeeded()).unwrap();
        // The first minute ends; a quiet second minute reports nothing.
        tokio::time::sleep(Duration::from_secs(121)).await;
        // Six where the channel holds four: two are never seen, and counted so.
        for _ in 0..6 {
            tx.send(succeeded()).unwrap();
        }
        drop(tx);
        tokio::time::timeout(Duration::from_secs(600), summary)
            .await
            .expect("the summary ends with the channel")
            .unwrap();
        assert_eq!(
            *reports.lock().unwrap(),
            [Tally { succeeded: 2, ..Tally::default() }, Tally { succeeded: 4, unseen: 2, ..Tally::default() }]
        );
    }
}
