//! Property tests: the fast evaluator agrees with a minute-by-minute scan.
//!
//! The oracle, `common::brute_force`, walks real instants one at a time and
//! applies `CRON.md`'s rules directly; random expressions are checked against
//! it around DST transitions in zones chosen for their odd transitions.

mod common;

use chime_cron::CronSchedule;
use common::brute_force;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

const ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "Pacific/Chatham",
    "Antarctica/Troll",
    "America/St_Johns",
    "Africa/Casablanca",
    "Asia/Tehran",
    "America/Santiago",
];

fn field(choices: Vec<BoxedStrategy<String>>) -> BoxedStrategy<String> {
    proptest::strategy::Union::new(choices).boxed()
}

fn numeric(lo: u32, hi: u32) -> BoxedStrategy<String> {
    let v = move || lo..=hi;
    field(vec![
        Just("*".to_owned()).boxed(),
        v().prop_map(|a| a.to_string()).boxed(),
        (v(), v()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))).boxed(),
        (1..=hi).prop_map(|s| format!("*/{s}")).boxed(),
        (v(), 1..=hi).prop_map(|(a, s)| format!("{a}/{s}")).boxed(),
        (v(), v(), 1..=hi).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))).boxed(),
        proptest::collection::vec(v(), 2..4)
            .prop_map(|vs| vs.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
            .boxed(),
    ])
}

fn day_of_month() -> BoxedStrategy<String> {
    field(vec![
        numeric(1, 31),
        numeric(1, 31),
        Just("?".to_owned()).boxed(),
        Just("L".to_owned()).boxed(),
        Just("LW".to_owned()).boxed(),
        (1..=28u32).prop_map(|n| format!("{n}W")).boxed(),
        (1..=28u32).prop_map(|n| format!("{n},L")).boxed(),
    ])
}

fn day_of_week() -> BoxedStrategy<String> {
    field(vec![
        numeric(0, 7),
        numeric(0, 7),
        Just("?".to_owned()).boxed(),
        Just("MON-FRI".to_owned()).boxed(),
        (0..=7u32).prop_map(|d| format!("{d}L")).boxed(),
        (0..=7u32, 1..=5u32).prop_map(|(d, k)| format!("{d}#{k}")).boxed(),
        (0..=6u32, 0..=6u32, 1..=5u32).prop_map(|(a, d, k)| format!("{a},{d}#{k}")).boxed(),
    ])
}

fn expression() -> impl Strategy<Value = CronSchedule> {
    (numeric(0, 59), numeric(0, 23), day_of_month(), numeric(1, 12), day_of_week())
        .prop_filter_map("can never fire", |(mi, h, dom, mo, dow)| {
            CronSchedule::parse(&format!("{mi} {h} {dom} {mo} {dow}")).ok()
        })
}

fn expression_with_seconds() -> impl Strategy<Value = CronSchedule> {
    (numeric(0, 59), numeric(0, 59), numeric(0, 23), day_of_month(), day_of_week())
        .prop_filter_map("can never fire", |(sec, mi, h, dom, dow)| {
            CronSchedule::parse(&format!("{sec} {mi} {h} {dom} * {dow}")).ok()
        })
}

/// A zone and an instant up to `max_minutes` before one of its transitions
/// (or an ordinary instant, for zones without any).
fn zone_and_instant(max_minutes: i64) -> impl Strategy<Value = (TimeZone, Timestamp)> {
    (0..ZONES.len(), 1995..2035i16, 0..2usize, 0..max_minutes).prop_map(|(z, year, nth, minutes_before)| {
        let tz = TimeZone::get(ZONES[z]).unwrap();
        let start = jiff::civil::date(year, 1, 1).at(0, 0, 0, 0).to_zoned_datetime(tz.clone()).unwrap().timestamp();
        let anchor = tz.following(start).nth(nth).map_or(start, |tr| tr.timestamp());
        let after = anchor - SignedDuration::from_secs(minutes_before * 60 + 17);
        (tz, after)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Over three days around a transition, the iterator yields exactly the
    /// instants the minute-by-minute scan finds.
    #[test]
    fn prop_next_matches_brute_force(s in expression(), (tz, after) in zone_and_instant(36 * 60)) {
        let until = after + SignedDuration::from_hours(72);
        let fast: Vec<Timestamp> = s.iter_after(after, &tz).take_while(|t| *t <= until).collect();
        let slow = brute_force(&s, &tz, after, until);
        prop_assert_eq!(fast, slow, "{} in {:?} after {}", s, tz.iana_name(), after);
    }

    /// The same at one-second resolution for 6-field expressions, over the
    /// three hours around a transition.
    #[test]
    fn prop_next_with_seconds_matches_brute_force(s in expression_with_seconds(), (tz, after) in zone_and_instant(150)) {
        let until = after + SignedDuration::from_hours(3);
        let fast: Vec<Timestamp> = s.iter_after(after, &tz).take_while(|t| *t <= until).collect();
        let slow = brute_force(&s, &tz, after, until);
        prop_assert_eq!(fast, slow, "{} in {:?} after {}", s, tz.iana_name(), after);
    }

    /// `next_after` is later, fires, and nothing fires in between (checked
    /// backwards with `prev_before`, which walks the timeline the other way).
    #[test]
    fn prop_next_after_is_later_and_first(s in expression(), (tz, after) in zone_and_instant(36 * 60)) {
        let next = s.next_after(after, &tz).expect("a valid schedule fires again before 9999");
        prop_assert!(next > after);
        prop_assert!(s.matches(next, &tz), "{} does not match its own fire time {}", s, next);
        let prev = s.prev_before(next, &tz);
        prop_assert!(prev.is_none_or(|p| p <= after), "{}: {:?} lies between {} and {}", s, prev, after, next);
        prop_assert_eq!(s.prev_before(next + SignedDuration::from_secs(1), &tz), Some(next));
    }

    /// Fire times strictly increase, with no duplicates.
    #[test]
    fn prop_fire_times_strictly_increase(s in expression(), (tz, after) in zone_and_instant(36 * 60)) {
        let times: Vec<Timestamp> = s.iter_after(after, &tz).take(50).collect();
        prop_assert!(times.windows(2).all(|w| w[0] < w[1]), "{}: {:?}", s, times);
    }

    /// Display round-trips through parse.
    #[test]
    fn prop_display_round_trips(s in expression()) {
        let again = CronSchedule::parse(&s.to_string()).unwrap();
        prop_assert_eq!(&again, &s);
        prop_assert_eq!(again.to_string(), s.to_string());
    }
}
