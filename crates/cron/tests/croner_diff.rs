//! Differential tests against croner, where the two semantics coincide.
//!
//! Known differences, so excluded from the generated expressions:
//!
//! * **Unrestricted day fields.** `CRON.md` (after Vixie and Debian cron) calls
//!   a day field unrestricted when its text starts with `*`, so `*/2` combines
//!   with day-of-week by AND. croner treats only a bare `*` as unrestricted and
//!   combines `*/2` with day-of-week by OR.
//! * **`?`.** chime reads it as `*`; croner gives it its own meaning.
//! * **`A/S`.** croner refuses it unless built with `sloppy_ranges`, which
//!   this test turns on; with it, both read `A/S` as `A-max/S`.
//! * **A seventh (year) field**: croner accepts it; chime does not.
//! * **Expressions that never fire** (`0 0 30 2 *`): chime refuses them at
//!   parse time; croner accepts them and fails when searching.
//! * **DST.** croner evaluates through chrono and does not follow Debian cron's
//!   fixed-time/periodic classes, so the comparison runs in UTC, where there
//!   are no gaps or folds. chime's DST behaviour is held by `dst.rs` and the
//!   brute-force oracle instead.

use chime_cron::CronSchedule;
use chrono::{DateTime, Utc};
use croner::parser::CronParser;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use proptest::prelude::*;

fn items(lo: u32, hi: u32) -> BoxedStrategy<String> {
    let v = move || lo..=hi;
    prop_oneof![
        v().prop_map(|a| a.to_string()),
        (v(), v()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (v(), v(), 1..=hi).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
        (v(), 1..=hi).prop_map(|(a, s)| format!("{a}/{s}")),
    ]
    .boxed()
}

/// A field: `*`, `*/S`, or a list of one to three items.
fn field(lo: u32, hi: u32, allow_star_step: bool) -> BoxedStrategy<String> {
    let list = proptest::collection::vec(items(lo, hi), 1..4).prop_map(|v| v.join(","));
    if allow_star_step {
        prop_oneof![Just("*".to_owned()), (1..=hi).prop_map(|s| format!("*/{s}")), list].boxed()
    } else {
        prop_oneof![Just("*".to_owned()), list].boxed()
    }
}

fn day_of_month() -> BoxedStrategy<String> {
    prop_oneof![
        3 => field(1, 31, false),
        1 => Just("L".to_owned()),
        1 => Just("LW".to_owned()),
        1 => (1..=28u32).prop_map(|n| format!("{n}W")),
    ]
    .boxed()
}

fn day_of_week() -> BoxedStrategy<String> {
    prop_oneof![
        3 => field(0, 7, false),
        1 => (0..=6u32).prop_map(|d| format!("{d}L")),
        1 => (0..=6u32, 1..=5u32).prop_map(|(d, k)| format!("{d}#{k}")),
    ]
    .boxed()
}

fn expression() -> impl Strategy<Value = String> {
    (
        proptest::option::of(field(0, 59, true)),
        field(0, 59, true),
        field(0, 23, true),
        day_of_month(),
        field(1, 12, true),
        day_of_week(),
    )
        .prop_map(|(s, mi, h, dom, mo, dow)| match s {
            Some(s) => format!("{s} {mi} {h} {dom} {mo} {dow}"),
            None => format!("{mi} {h} {dom} {mo} {dow}"),
        })
}

fn croner_next(expr: &str, after: Timestamp, n: usize) -> Vec<i64> {
    let cron = CronParser::builder().sloppy_ranges(true).build().parse(expr).unwrap();
    let mut at: DateTime<Utc> = DateTime::from_timestamp(after.as_second(), 0).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        at = cron.find_next_occurrence(&at, false).unwrap();
        out.push(at.timestamp());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_croner_in_utc(expr in expression(), after in 946_684_800i64..2_208_988_800) {
        // Expressions that can never fire are a documented difference.
        let Ok(ours) = CronSchedule::parse(&expr) else { return Ok(()) };
        let after = Timestamp::from_second(after).unwrap();
        let mine: Vec<i64> = ours.iter_after(after, &TimeZone::UTC).take(20).map(|t| t.as_second()).collect();
        prop_assert_eq!(mine, croner_next(&expr, after, 20), "{}", expr);
    }
}

#[test]
fn agrees_on_familiar_expressions() {
    let after: Timestamp = "2026-11-26T17:00:00Z".parse().unwrap();
    for expr in [
        "*/7 9-17 * * 1-5",
        "0 9 * * *",
        "30 9 * * MON-FRI",
        "0 0 L * *",
        "0 0 LW * *",
        "0 0 15W * *",
        "0 0 * * 5L",
        "0 0 * * 5#3",
        "0 0 13 * 5",
        "0 0 29 2 *",
        "*/10 * * * * *",
        "0 0 1 JAN-MAR *",
        "@hourly",
        "@weekly",
    ] {
        let ours = CronSchedule::parse(expr).unwrap();
        let mine: Vec<i64> = ours.iter_after(after, &TimeZone::UTC).take(50).map(|t| t.as_second()).collect();
        assert_eq!(mine, croner_next(expr, after, 50), "{expr}");
    }
}

/// The first documented difference, shown: `*/2` with a day of week.
#[test]
fn differs_on_star_step_day_fields() {
    let expr = "0 0 */2 * 1";
    let after: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    let ours = CronSchedule::parse(expr).unwrap();
    let mine: Vec<i64> = ours.iter_after(after, &TimeZone::UTC).take(3).map(|t| t.as_second()).collect();
    assert_ne!(mine, croner_next(expr, after, 3));
}
