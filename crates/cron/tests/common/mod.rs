//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use chime_cron::CronSchedule;
use jiff::Timestamp;
use jiff::tz::TimeZone;

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
