//! Bounds on what can be scheduled. A value past one of these is refused
//! with an error naming it, rather than accepted and silently misread: an
//! interval of `1ns` would write hundreds of thousands of `missed` rows a
//! second, and one of `80000000h` would put the next run past the end of time
//! so the job would quietly count as "finished".

use jiff::SignedDuration;

/// The longest interval, timeout, misfire grace time, jitter or retry
/// backoff accepted: ten years (of 24-hour days).
pub const MAX_DURATION: SignedDuration = SignedDuration::from_hours(24 * 3650);

/// The shortest interval a scheduler accepts unless told otherwise
/// ([`crate::SchedulerBuilder::min_interval`]).
pub const DEFAULT_MIN_INTERVAL: SignedDuration = SignedDuration::from_secs(1);

/// The shortest interval any scheduler accepts, and any store reads back.
pub const MIN_INTERVAL_FLOOR: SignedDuration = SignedDuration::from_millis(1);

/// The most runs of one job at once (`max_instances`).
pub const MAX_INSTANCES: u32 = 10_000;

/// The most consecutive failures `alert_on_failures` may wait for (each
/// health check reads that many runs).
pub const MAX_ALERT_FAILURES: u32 = 1_000;

/// The shortest `alert_after` accepted.
pub const MIN_ALERT_AFTER: SignedDuration = SignedDuration::from_secs(1);

/// The most attempts of one run (`retry.max_attempts`).
pub const MAX_ATTEMPTS: u32 = 1_000;

/// The largest step of a calendar trigger (every N days, weeks, months or years).
pub const MAX_CALENDAR_STEP: u32 = 10_000;

/// The most triggers in one `any`/`all`, and how deep they may nest.
pub const MAX_COMBINED: usize = 100;
/// See [`MAX_COMBINED`].
pub const MAX_NESTING: usize = 8;

/// Checks that a duration named `name` is within (0, [`MAX_DURATION`]].
pub(crate) fn check_duration(name: &str, d: SignedDuration) -> crate::Result<()> {
    if !d.is_positive() {
        return Err(crate::Error::invalid(format!("{name} must be greater than zero")));
    }
    if d > MAX_DURATION {
        return Err(crate::Error::invalid(format!(
            "{name} {} is longer than the longest accepted, {}",
            crate::format_duration(d),
            crate::format_duration(MAX_DURATION)
        )));
    }
    Ok(())
}
