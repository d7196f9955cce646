//! Helpers shared by the integration tests.
//!
//! [`brute_force`] is the oracle: it knows nothing of segments, day tables or
//! field jumps. It walks real instants one minute apart, asks jiff for the
//! wall-clock time, and applies the rules of `CRON.md` directly (periodic:
//! fire when the wall time matches; fixed-time: not in the second pass of a
//! fold, and once at the end of a gap that hides a matching wall time).
#![allow(dead_code, unreachable_pub)]

use chime_cron::CronSchedule;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// The first `n` fire times of `expr` in `zone` strictly after `after`, as
/// RFC 3339 strings with the zone's offset at each instant.
#[track_caller]
pub fn next_n(expr: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
    let s = CronSchedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let tz = TimeZone::get(zone).unwrap();
    let after: Timestamp = after.parse().unwrap();
    let times: Vec<String> = s.iter_after(after, &tz).take(n).map(|t| rfc3339(t, &tz)).collect();
    // `next_after` in a loop must agree with the iterator.
    let mut at = after;
    for expected in &times {
        at = s.next_after(at, &tz).unwrap();
        assert_eq!(&rfc3339(at, &tz), expected, "{expr}: next_after disagrees with iter_after");
    }
    times
}

pub fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The error message for `expr`, which must be invalid.
#[track_caller]
pub fn error(expr: &str) -> chime_cron::CronError {
    match CronSchedule::parse(expr) {
        Ok(s) => panic!("{expr:?} parsed as {s:?}, expected an error"),
        Err(e) => e,
    }
}

#[track_caller]
pub fn same(a: &str, b: &str) {
    let pa = CronSchedule::parse(a).unwrap_or_else(|e| panic!("{a}: {e}"));
    let pb = CronSchedule::parse(b).unwrap_or_else(|e| panic!("{b}: {e}"));
    assert_eq!(pa, pb, "{a:?} should mean the same as {b:?}");
}

/// Every instant in (after, until] at which `s` fires, found by stepping one
/// minute at a time (one second for 6-field expressions).
pub fn brute_force(s: &CronSchedule, tz: &TimeZone, after: Timestamp, until: Timestamp) -> Vec<Timestamp> {
    let step_secs = if s.has_seconds() { 1 } else { 60 };
    let step = SignedDuration::from_secs(step_secs);
    // The first whole step strictly after `after`.
    let mut t = Timestamp::from_second(after.as_second().div_euclid(step_secs) * step_secs).unwrap() + step;
    let mut fires = Vec::new();
    while t <= until {
        let wall = tz.to_datetime(t);
        let offset = tz.to_offset(t);
        let fires_here = if !s.is_fixed_time() {
            s.matches_datetime(wall)
        } else {
            let second_pass = matches!(
                tz.to_ambiguous_timestamp(wall).offset(),
                AmbiguousOffset::Fold { before, after } if after == offset && before != after
            );
            let before_offset = tz.to_offset(t - SignedDuration::from_secs(1));
            let gap_hides_a_match = offset > before_offset && {
                // Wall times from t + before_offset up to t + offset do not exist.
                let mut w = before_offset.to_datetime(t);
                let end = offset.to_datetime(t);
                let mut hit = false;
                while w < end {
                    hit |= s.matches_datetime(w);
                    w += step;
                }
                hit
            };
            gap_hides_a_match || (!second_pass && s.matches_datetime(wall))
        };
        if fires_here {
            fires.push(t);
        }
        t += step;
    }
    fires
}
