//! The one check of the cron fuzz target, shared with the stable-toolchain
//! test that drives it (`crates/cron/tests/fuzz.rs`): the parser never
//! panics and round-trips through `Display`; the evaluator terminates and
//! returns later instants that match.
//!
//! Input: 8 bytes of instant, 1 byte of zone choice, then the expression.

use chime_cron::CronSchedule;
use jiff::Timestamp;
use jiff::tz::TimeZone;

const ZONES: &[&str] = &["UTC", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kathmandu"];

/// Panics when `data` breaks a promise of the parser or the evaluator;
/// returns whether it held an expression that parsed (and was evaluated).
#[allow(unreachable_pub)] // a module of the fuzz target and of a test
pub fn check(data: &[u8]) -> bool {
    if data.len() < 9 {
        return false;
    }
    let secs = i64::from_le_bytes(data[..8].try_into().unwrap());
    let zone = ZONES[usize::from(data[8]) % ZONES.len()];
    let Ok(text) = std::str::from_utf8(&data[9..]) else { return false };
    let Ok(schedule) = CronSchedule::parse(text) else { return false };

    let again = CronSchedule::parse(&schedule.to_string()).expect("Display output parses");
    assert_eq!(again, schedule);
    assert_eq!(again.to_string(), schedule.to_string());
    let _ = schedule.describe();

    let span = Timestamp::MAX.as_second() - Timestamp::MIN.as_second();
    let after = Timestamp::from_second(Timestamp::MIN.as_second() + secs.rem_euclid(span)).unwrap();
    let tz = TimeZone::get(zone).unwrap();
    let mut previous = after;
    for next in schedule.iter_after(after, &tz).take(3) {
        assert!(next > previous);
        assert!(schedule.matches(next, &tz));
        previous = next;
    }
    if let Some(prev) = schedule.prev_before(after, &tz) {
        assert!(prev < after);
    }
    true
}
