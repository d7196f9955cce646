//! `next_after` and iteration, with croner and the `cron` crate measured
//! beside chime in the same run. Run with `cargo bench -p chime-cron`.
//!
//! The `cron` crate counts days of the week from 1 = Sunday and needs a
//! seconds field, so its expressions are spelled with names and a leading 0;
//! it has no `L`, so the last-day expression is not measured for it.

use std::str::FromStr;

use chime_cron::CronSchedule;
use chrono::{DateTime, TimeZone as _};
use divan::{Bencher, black_box};
use jiff::Timestamp;
use jiff::tz::TimeZone;

fn main() {
    divan::main();
}

/// (chime and croner spelling, `cron` crate spelling)
const EXPRESSIONS: &[(&str, Option<&str>)] = &[
    ("*/7 9-17 * * 1-5", Some("0 */7 9-17 * * MON-FRI")),
    ("0 9 * * *", Some("0 0 9 * * *")),
    ("*/15 * * * *", Some("0 */15 * * * *")),
    ("30 2 * * *", Some("0 30 2 * * *")),
    ("0 0 L * *", None),
];

const ZONES: &[&str] = &["UTC", "America/New_York"];

/// 2026-01-01T10:03:00Z.
const START: i64 = 1_767_261_780;

const ITERATIONS: usize = 100_000;
const ITERATED: &str = "*/7 9-17 * * 1-5";

fn expr_names() -> Vec<&'static str> {
    EXPRESSIONS.iter().map(|(e, _)| *e).collect()
}

/// The expressions the `cron` crate can spell.
fn cron_crate_expr_names() -> Vec<&'static str> {
    EXPRESSIONS.iter().filter(|(_, c)| c.is_some()).map(|(e, _)| *e).collect()
}

mod next_after {
    use super::*;

    #[divan::bench(args = expr_names(), consts = [0, 1])]
    fn chime<const ZONE: usize>(bencher: Bencher, expr: &str) {
        let s = CronSchedule::parse(expr).unwrap();
        let tz = TimeZone::get(ZONES[ZONE]).unwrap();
        let after = Timestamp::from_second(START).unwrap();
        bencher.bench(|| s.next_after(black_box(after), &tz));
    }

    #[divan::bench(args = expr_names(), consts = [0, 1])]
    fn croner<const ZONE: usize>(bencher: Bencher, expr: &str) {
        let c = croner::Cron::from_str(expr).unwrap();
        let tz: chrono_tz::Tz = ZONES[ZONE].parse().unwrap();
        let after = tz.timestamp_opt(START, 0).unwrap();
        bencher.bench(|| c.find_next_occurrence(black_box(&after), false).unwrap());
    }

    #[divan::bench(args = cron_crate_expr_names(), consts = [0, 1])]
    fn cron<const ZONE: usize>(bencher: Bencher, expr: &str) {
        let spelled = EXPRESSIONS.iter().find(|(e, _)| *e == expr).and_then(|(_, c)| *c).unwrap();
        let s = ::cron::Schedule::from_str(spelled).unwrap();
        let tz: chrono_tz::Tz = ZONES[ZONE].parse().unwrap();
        let after = tz.timestamp_opt(START, 0).unwrap();
        bencher.bench(|| s.after(black_box(&after)).next());
    }
}

/// 100,000 successive fire times of `*/7 9-17 * * 1-5` in America/New_York.
mod iterate_100k {
    use super::*;

    #[divan::bench(sample_count = 20)]
    fn chime(bencher: Bencher) {
        let s = CronSchedule::parse(ITERATED).unwrap();
        let tz = TimeZone::get("America/New_York").unwrap();
        let after = Timestamp::from_second(START).unwrap();
        bencher.bench(|| s.iter_after(black_box(after), &tz).take(ITERATIONS).last());
    }

    #[divan::bench(sample_count = 20)]
    fn croner(bencher: Bencher) {
        let c = croner::Cron::from_str(ITERATED).unwrap();
        let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
        let after = tz.timestamp_opt(START, 0).unwrap();
        bencher.bench(|| c.iter_after(black_box(after)).take(ITERATIONS).last());
    }

    #[divan::bench(sample_count = 20)]
    fn cron(bencher: Bencher) {
        let s = ::cron::Schedule::from_str("0 */7 9-17 * * MON-FRI").unwrap();
        let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
        let after = tz.timestamp_opt(START, 0).unwrap();
        bencher.bench(|| s.after(black_box(&after)).take(ITERATIONS).last());
    }

    /// chime calling `next_after` in a loop, without the iterator's cached zone segment.
    #[divan::bench(sample_count = 20)]
    fn chime_next_after_loop(bencher: Bencher) {
        let s = CronSchedule::parse(ITERATED).unwrap();
        let tz = TimeZone::get("America/New_York").unwrap();
        bencher.bench(|| {
            let mut t = Timestamp::from_second(START).unwrap();
            for _ in 0..ITERATIONS {
                t = s.next_after(black_box(t), &tz).unwrap();
            }
            t
        });
    }
}

/// The three implementations agree on what they are measured on.
#[divan::bench(sample_count = 1, sample_size = 1)]
fn sanity_check_same_answers() {
    let tz = TimeZone::get("America/New_York").unwrap();
    let ctz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let s = CronSchedule::parse(ITERATED).unwrap();
    let c = croner::Cron::from_str(ITERATED).unwrap();
    let k = ::cron::Schedule::from_str("0 */7 9-17 * * MON-FRI").unwrap();
    let after = Timestamp::from_second(START).unwrap();
    let cafter = ctz.timestamp_opt(START, 0).unwrap();
    let ours: Vec<i64> = s.iter_after(after, &tz).take(1000).map(|t| t.as_second()).collect();
    let theirs: Vec<i64> = c.iter_after(cafter).take(1000).map(|t| t.timestamp()).collect();
    let cron: Vec<i64> = k.after(&cafter).take(1000).map(|t: DateTime<chrono_tz::Tz>| t.timestamp()).collect();
    assert_eq!(ours, theirs);
    assert_eq!(ours, cron);
}
