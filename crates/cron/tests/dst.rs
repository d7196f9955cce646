//! DST on real zones: the transitions other schedulers get wrong.

mod common;

use chime_cron::CronSchedule;
use common::{brute_force, next_n};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

const NY: &str = "America/New_York";

#[test]
fn new_york_spring_2026() {
    // 2026-03-08 02:00 EST → 03:00 EDT.
    let after = "2026-03-07T12:00:00-05:00";
    assert_eq!(next_n("30 2 * * *", NY, after, 2), ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]);
    assert_eq!(next_n("0 3 * * *", NY, after, 2), ["2026-03-08T03:00:00-04:00", "2026-03-09T03:00:00-04:00"]);
    assert_eq!(
        next_n("*/30 * * * *", NY, "2026-03-08T01:00:00-05:00", 3),
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"]
    );
    // A daily job keeps its day: no skipped day, no double day (APScheduler 3 skips one).
    assert_eq!(
        next_n("0 9 * * *", NY, after, 3),
        ["2026-03-08T09:00:00-04:00", "2026-03-09T09:00:00-04:00", "2026-03-10T09:00:00-04:00"]
    );
}

#[test]
fn new_york_fall_2026() {
    // 2026-11-01 02:00 EDT → 01:00 EST.
    assert_eq!(
        next_n("30 1 * * *", NY, "2026-10-31T12:00:00-04:00", 2),
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
    );
    assert_eq!(
        next_n("0 * * * *", NY, "2026-11-01T00:30:00-04:00", 4),
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T02:00:00-05:00",
            "2026-11-01T03:00:00-05:00"
        ]
    );
    // Every 15 minutes stays every 15 minutes of real time through the fold.
    let s = CronSchedule::parse("*/15 * * * *").unwrap();
    let tz = TimeZone::get(NY).unwrap();
    let after: Timestamp = "2026-11-01T00:00:00-04:00".parse().unwrap();
    let times: Vec<Timestamp> = s.iter_after(after, &tz).take(16).collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] == SignedDuration::from_mins(15)), "{times:?}");
}

#[test]
fn europe_london() {
    // 2026-03-29 01:00 GMT → 02:00 BST; 2026-10-25 02:00 BST → 01:00 GMT.
    let z = "Europe/London";
    assert_eq!(
        next_n("30 1 * * *", z, "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"]
    );
    assert_eq!(
        next_n("30 1 * * *", z, "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"]
    );
    assert_eq!(
        next_n("30 * * * *", z, "2026-10-25T00:00:00Z", 3),
        ["2026-10-25T01:30:00+01:00", "2026-10-25T01:30:00+00:00", "2026-10-25T02:30:00+00:00"]
    );
}

#[test]
fn lord_howe_half_hour_shift() {
    // Australia/Lord_Howe moves by 30 minutes: 2026-04-05 02:00 +11:00 → 01:30
    // +10:30, and 2026-10-04 02:00 +10:30 → 02:30 +11:00.
    let z = "Australia/Lord_Howe";
    assert_eq!(
        next_n("45 1 * * *", z, "2026-04-04T12:00:00+11:00", 2),
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]
    );
    assert_eq!(
        next_n("*/15 * * * *", z, "2026-04-05T01:20:00+11:00", 5),
        [
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-05T02:00:00+10:30"
        ]
    );
    assert_eq!(
        next_n("15 2 * * *", z, "2026-10-03T12:00:00+10:30", 2),
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]
    );
    assert_eq!(
        next_n("*/15 * * * *", z, "2026-10-04T01:50:00+10:30", 3),
        ["2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00", "2026-10-04T03:00:00+11:00"]
    );
}

#[test]
fn kathmandu_quarter_hour_offset() {
    let z = "Asia/Kathmandu";
    assert_eq!(
        next_n("0 9 * * *", z, "2026-06-01T00:00:00Z", 2),
        ["2026-06-01T09:00:00+05:45", "2026-06-02T09:00:00+05:45"]
    );
    assert_eq!(
        next_n("0 * * * *", z, "2026-06-01T00:00:00Z", 2),
        ["2026-06-01T06:00:00+05:45", "2026-06-01T07:00:00+05:45"]
    );
    // 1986-01-01 00:00 +05:30 became 00:15 +05:45: a 15-minute gap at midnight.
    assert_eq!(
        next_n("5 0 * * *", z, "1985-12-31T12:00:00+05:30", 2),
        ["1986-01-01T00:15:00+05:45", "1986-01-02T00:05:00+05:45"]
    );
}

#[test]
fn sao_paulo_midnight_gap_2018() {
    // 2018-11-04 00:00 -03:00 → 01:00 -02:00: that day has no midnight.
    let z = "America/Sao_Paulo";
    assert_eq!(
        next_n("0 0 * * *", z, "2018-11-03T12:00:00-03:00", 3),
        ["2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00", "2018-11-06T00:00:00-02:00"]
    );
    assert_eq!(next_n("30 0 4 11 *", z, "2018-01-01T00:00:00-02:00", 1), ["2018-11-04T01:00:00-02:00"]);
    // Periodic: hourly skips the midnight that does not exist.
    assert_eq!(
        next_n("0 * * * *", z, "2018-11-03T22:30:00-03:00", 3),
        ["2018-11-03T23:00:00-03:00", "2018-11-04T01:00:00-02:00", "2018-11-04T02:00:00-02:00"]
    );
    // 2019-02-17 00:00 -02:00 → 2019-02-16 23:00 -03:00: 23:00 happens twice.
    assert_eq!(
        next_n("30 23 * * *", z, "2019-02-16T12:00:00-02:00", 2),
        ["2019-02-16T23:30:00-02:00", "2019-02-17T23:30:00-03:00"]
    );
}

#[test]
fn apia_skipped_day_2011() {
    // Samoa skipped 2011-12-30: 2011-12-29 24:00 -10:00 became 2011-12-31 00:00 +14:00.
    let z = "Pacific/Apia";
    assert_eq!(
        next_n("0 9 * * *", z, "2011-12-28T12:00:00-10:00", 3),
        ["2011-12-29T09:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T09:00:00+14:00"]
    );
    // A fixed-time job due only on the missing day fires once, when it ends.
    assert_eq!(
        next_n("0 12 30 12 *", z, "2011-06-01T00:00:00-10:00", 2),
        ["2011-12-31T00:00:00+14:00", "2012-12-30T12:00:00+14:00"]
    );
    // A periodic job skips the whole day.
    assert_eq!(
        next_n("0 */6 * * *", z, "2011-12-29T17:00:00-10:00", 2),
        ["2011-12-29T18:00:00-10:00", "2011-12-31T00:00:00+14:00"]
    );
}

/// Every transition of 2025–2028 in every zone of the bundled database:
/// around each, a fixed-time job due inside the transition's wall-clock
/// window and a periodic job fire exactly where the brute-force oracle says.
#[test]
fn every_transition_2025_to_2028_in_every_zone() {
    let start: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
    let end: Timestamp = "2029-01-01T00:00:00Z".parse().unwrap();
    let mut checked = 0;
    for name in jiff::tz::db().available() {
        let tz = TimeZone::get(name.as_str()).unwrap();
        for tr in tz.following(start).take_while(|tr| tr.timestamp() < end) {
            let t = tr.timestamp();
            let before = tz.to_offset(t - SignedDuration::from_secs(1));
            // A wall time inside the gap (the old offset's view of the
            // instant) or at the start of the fold (the new offset's view).
            let wall = if tr.offset() > before { before.to_datetime(t) } else { tr.offset().to_datetime(t) };
            let fixed = format!("{} {} * * *", wall.minute(), wall.hour());
            let around = t - SignedDuration::from_hours(3);
            let until = t + SignedDuration::from_hours(3);
            for expr in [fixed.as_str(), "*/10 * * * *"] {
                let s = CronSchedule::parse(expr).unwrap();
                let fast: Vec<Timestamp> = s.iter_after(around, &tz).take_while(|x| *x <= until).collect();
                let slow = brute_force(&s, &tz, around, until);
                assert_eq!(fast, slow, "{expr} in {name} around {t}");
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "only {checked} checks: is the zone database there?");
}
