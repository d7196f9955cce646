//! `CRON.md`, sentence by sentence. Each test quotes the sentence it holds.

mod common;

use chime_cron::{CronSchedule, Field};
use common::{error, next_n, same};

const UTC: &str = "UTC";
const NY: &str = "America/New_York";

fn ok(expr: &str) -> CronSchedule {
    CronSchedule::parse(expr).unwrap_or_else(|e| panic!("{expr:?}: {e}"))
}

// ## Syntax

/// "An expression is a macro, 5 fields ... or 6 fields ..."
#[test]
fn five_or_six_fields_or_a_macro() {
    assert!(!ok("0 9 * * *").has_seconds());
    assert!(ok("0 0 9 * * *").has_seconds());
    ok("@daily");
    for bad in ["* * * *", "* * * * * * *", "*", "0 9 * * * * * *"] {
        let e = error(bad);
        assert!(e.is_syntax(), "{bad}");
        assert!(e.to_string().contains("expected 5 fields"), "{bad}: {e}");
    }
    assert_eq!(next_n("15 30 9 * * *", UTC, "2026-01-01T00:00:00Z", 1), ["2026-01-01T09:30:15+00:00"]);
}

/// "Fields are separated by runs of ASCII spaces or tabs. Leading and trailing
/// spaces and tabs are ignored."
#[test]
fn blanks_separate_fields() {
    same("0 9 * * *", "  0 \t 9\t\t*  * *\t ");
    assert_eq!(ok("\t0   9 * * *  ").to_string(), "0 9 * * *");
}

/// "Any other character, including newline, NUL, no-break space and other
/// Unicode spaces, is invalid."
#[test]
fn other_whitespace_is_invalid() {
    for (bad, column) in [
        ("0 9 * * *\n", 10),
        ("0\n9 * * * *", 2),
        ("0 9\0 * * *", 4),
        ("0\u{a0}9 * * *", 2),
        ("0\u{2003}9 * * * *", 2),
        ("0 9 * * *\r", 10),
        ("0 9 * * *\u{3000}", 10),
        ("0 é * * *", 3),
    ] {
        let e = error(bad);
        assert!(e.is_syntax(), "{bad:?}");
        assert_eq!(e.column(), Some(column), "{bad:?}: {e}");
        assert!(e.to_string().starts_with("invalid character"), "{bad:?}: {e}");
    }
}

/// "Macros are whole expressions and are case-insensitive: @yearly = @annually
/// = 0 0 1 1 *, @monthly = 0 0 1 * *, @weekly = 0 0 * * 0, @daily = @midnight =
/// 0 0 * * *, @hourly = 0 * * * *."
#[test]
fn macros() {
    same("@yearly", "0 0 1 1 *");
    same("@annually", "0 0 1 1 *");
    same("@monthly", "0 0 1 * *");
    same("@weekly", "0 0 * * 0");
    same("@daily", "0 0 * * *");
    same("@midnight", "0 0 * * *");
    same("@hourly", "0 * * * *");
    same("@DAILY", "@daily");
    same("@Hourly", "@hourly");
    assert_eq!(ok(" @WEEKLY ").to_string(), "@weekly");
    assert!(error("@daily *").is_syntax());
    assert!(error("0 @daily").is_syntax());
}

/// "Other @ words (@reboot, @every …) are invalid."
#[test]
fn other_macros_are_invalid() {
    for bad in ["@reboot", "@every", "@every 5m", "@", "@day", "@dailyx"] {
        assert!(error(bad).is_syntax(), "{bad}");
    }
    assert_eq!(
        error("@reboot").to_string(),
        r#"unknown macro "@reboot" at column 1: expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"#
    );
}

/// "Value ranges: second 0–59, minute 0–59, hour 0–23, day-of-month 1–31, month
/// 1–12, day-of-week 0–7, where 0 and 7 both mean Sunday."
#[test]
fn value_ranges() {
    ok("59 59 23 31 12 7");
    ok("0 0 0 1 1 0");
    for (bad, field, text) in [
        ("60 * * * * *", Field::Second, "60"),
        ("60 * * * *", Field::Minute, "60"),
        ("* 24 * * *", Field::Hour, "24"),
        ("* * 0 * *", Field::DayOfMonth, "0"),
        ("* * 32 * *", Field::DayOfMonth, "32"),
        ("* * * 0 *", Field::Month, "0"),
        ("* * * 13 *", Field::Month, "13"),
        ("* * * * 8", Field::DayOfWeek, "8"),
    ] {
        let e = error(bad);
        assert!(e.is_range(), "{bad}");
        assert_eq!(e.field(), Some(field), "{bad}");
        assert!(e.to_string().contains(&format!("{:?}", text)), "{bad}: {e}");
    }
    assert_eq!(error("30 9 * * 1,8").to_string(), r#"invalid day-of-week "8" at column 12: expected 0-7 or SUN-SAT"#);
    same("0 0 * * 0", "0 0 * * 7");
    assert_eq!(
        next_n("0 0 * * 7", UTC, "2026-11-26T00:00:00Z", 2),
        ["2026-11-29T00:00:00+00:00", "2026-12-06T00:00:00+00:00"]
    );
}

/// "Names are case-insensitive and only 3 letters long: JAN–DEC in the month
/// field and SUN–SAT in the day-of-week field. A name can stand wherever a
/// number can in that field. A name in any other field is invalid."
#[test]
fn names() {
    same("0 0 1 JAN,feb,Mar,apr,MAY,jun,JUL,aug,SEP,oct,NOV,dec *", "0 0 1 1-12 *");
    same("0 0 * * sun,MON,Tue,wed,THU,fri,SAT", "0 0 * * 0-6");
    same("0 0 * JAN-MAR/2 MON-FRI", "0 0 * 1-3/2 1-5");
    same("0 0 * * MON/2", "0 0 * * 1/2");
    same("0 0 * * FRIL", "0 0 * * 5L");
    same("0 0 * * FRI#3", "0 0 * * 5#3");
    for bad in ["0 0 * JANUARY *", "0 0 * * MONDAY", "0 0 * * MO", "0 0 * JA *", "0 0 * * JAN", "0 0 * MON *"] {
        assert!(error(bad).is_syntax(), "{bad}");
    }
    for bad in ["MON 0 * * *", "0 MON * * *", "0 0 MON * *", "0 0 JAN * *"] {
        let e = error(bad);
        assert!(e.is_syntax(), "{bad}");
        assert!(e.to_string().contains("names are allowed only in month and day-of-week"), "{bad}: {e}");
    }
}

/// "A field is a comma-separated list of items. Empty items are invalid."
#[test]
fn lists() {
    assert_eq!(
        next_n("0 8,12,18 * * *", UTC, "2026-01-01T09:00:00Z", 3),
        ["2026-01-01T12:00:00+00:00", "2026-01-01T18:00:00+00:00", "2026-01-02T08:00:00+00:00"]
    );
    for (bad, column) in [("0 8,,12 * * *", 5), ("0 ,8 * * *", 3), ("0 8, * * *", 5), ("0 , * * *", 3)] {
        let e = error(bad);
        assert!(e.is_syntax(), "{bad}");
        assert_eq!(e.column(), Some(column), "{bad}: {e}");
        assert!(e.to_string().contains("empty list item"), "{bad}: {e}");
    }
}

/// "*: every value of the field." "?: the same as *. It is allowed only as the
/// whole day-of-month or day-of-week field."
#[test]
fn star_and_question_mark() {
    same("0 0 ? * *", "0 0 * * *");
    same("0 0 * * ?", "0 0 * * *");
    same("0 0 ? * ?", "0 0 * * *");
    same("0 0 1 * ?", "0 0 1 * *");
    for bad in ["? 0 * * *", "0 ? * * *", "0 0 * ? *", "0 0 1,? * *", "0 0 ?/2 * *", "0 0 * * ?-1", "? * * * * *"] {
        assert!(error(bad).is_syntax(), "{bad}");
    }
}

/// "A-B: A through B. A must be ≤ B; a reversed range such as 5-1, 23-1 or
/// FRI-MON is invalid. In day-of-week, 7 is Sunday at the upper end, so 5-7
/// means Friday through Sunday."
#[test]
fn ranges() {
    same("0 9-11 * * *", "0 9,10,11 * * *");
    same("0 0 * * 5-7", "0 0 * * 0,5,6");
    same("0 0 * * 7-7", "0 0 * * 0");
    same("0 5-5 * * *", "0 5 * * *");
    for bad in ["0 0 * * 5-1", "0 23-1 * * *", "0 0 * * FRI-MON", "0 0 10-1 * *", "0 0 * DEC-JAN *"] {
        let e = error(bad);
        assert!(e.is_range(), "{bad}");
        assert!(e.to_string().contains("cannot wrap"), "{bad}: {e}");
    }
    for bad in ["0 1-2-3 * * *", "0 -1 * * *", "0 1- * * *", "0 - * * *"] {
        assert!(error(bad).is_syntax(), "{bad}");
    }
}

/// "*/S, A-B/S, A/S: every S-th value, starting at the first value. A/S means
/// A-max/S, where max is the field maximum (59, 23, 31, 12, or 7 for
/// day-of-week). S is an ASCII integer ≥ 1. A step larger than the range is
/// valid and gives only the start value. */0 is invalid."
#[test]
fn steps() {
    same("*/15 * * * *", "0,15,30,45 * * * *");
    same("0 9-17/4 * * *", "0 9,13,17 * * *");
    same("50/3 * * * *", "50,53,56,59 * * * *");
    same("0 20/2 * * *", "0 20,22 * * *");
    same("0 0 25/3 * *", "0 0 25,28,31 * *");
    same("0 0 1 10/2 *", "0 0 1 10,12 *");
    same("0 0 * * 1/2", "0 0 * * 1,3,5,7");
    same("0 0 * * 1/2", "0 0 * * 0,1,3,5");
    // `*/2` is unrestricted (it starts with `*`), so compare fire times:
    // Sunday 2026-11-29, Tuesday 12-01, Thursday 12-03.
    assert_eq!(
        next_n("0 0 * * */2", UTC, "2026-11-28T00:00:00Z", 3),
        ["2026-11-29T00:00:00+00:00", "2026-12-01T00:00:00+00:00", "2026-12-03T00:00:00+00:00"]
    );
    same("*/1 * * * *", "* * * * *");
    same("*/60 * * * *", "0 * * * *");
    same("5/100 * * * *", "5 * * * *");
    same("0 0-10/99999999999999999999 * * *", "0 0 * * *");
    same("*/05 * * * *", "*/5 * * * *");
    same("0/15 * * * * *", "0,15,30,45 * * * * *");
    for bad in ["*/0 * * * *", "0 0-5/0 * * *", "5/00 * * * *"] {
        let e = error(bad);
        assert!(e.is_range(), "{bad}");
        assert!(e.to_string().contains("a step of at least 1"), "{bad}: {e}");
    }
    for bad in ["*/ * * * *", "*/-1 * * * *", "*/1.5 * * * *", "*/x * * * *", "*/2/2 * * * *", "/5 * * * *"] {
        assert!(error(bad).is_syntax(), "{bad}");
    }
}

/// "L is the last day of the month. It can appear in a list, as in 1,L."
#[test]
fn last_day_of_month() {
    assert_eq!(
        next_n("0 0 L * *", UTC, "2028-01-15T00:00:00Z", 4),
        [
            "2028-01-31T00:00:00+00:00",
            "2028-02-29T00:00:00+00:00",
            "2028-03-31T00:00:00+00:00",
            "2028-04-30T00:00:00+00:00"
        ]
    );
    assert_eq!(
        next_n("0 0 1,L * *", UTC, "2026-02-15T00:00:00Z", 3),
        ["2026-02-28T00:00:00+00:00", "2026-03-01T00:00:00+00:00", "2026-03-31T00:00:00+00:00"]
    );
    same("0 0 l * *", "0 0 L * *");
    for bad in ["0 0 L-5 * *", "0 0 L/2 * *", "0 0 * * L"] {
        assert!(error(bad).is_syntax(), "{bad}");
    }
}

/// "LW is the last weekday (Monday–Friday) of the month."
#[test]
fn last_weekday_of_month() {
    // 2026-05-31 is a Sunday, 2026-10-31 a Saturday, 2026-12-31 a Thursday.
    assert_eq!(
        next_n("0 0 LW 5,10,12 *", UTC, "2026-01-01T00:00:00Z", 3),
        ["2026-05-29T00:00:00+00:00", "2026-10-30T00:00:00+00:00", "2026-12-31T00:00:00+00:00"]
    );
}

/// "NW is the weekday nearest to day N in the same month. It never crosses a
/// month boundary: a Saturday on the 1st moves to Monday the 3rd, and a Sunday
/// on the last day moves to the preceding Friday."
#[test]
fn nearest_weekday() {
    // 2026-08-01 is a Saturday: 1W is Monday the 3rd, not Friday July 31st.
    assert_eq!(next_n("0 0 1W 8 *", UTC, "2026-01-01T00:00:00Z", 1), ["2026-08-03T00:00:00+00:00"]);
    // 2026-05-31 is a Sunday: 31W is Friday the 29th, not Monday June 1st.
    assert_eq!(next_n("0 0 31W 5 *", UTC, "2026-01-01T00:00:00Z", 1), ["2026-05-29T00:00:00+00:00"]);
    // 2026-11-15 is a Sunday → Monday the 16th; 2026-08-15 a Saturday → Friday the 14th.
    assert_eq!(next_n("0 0 15W 11 *", UTC, "2026-01-01T00:00:00Z", 1), ["2026-11-16T00:00:00+00:00"]);
    assert_eq!(next_n("0 0 15W 8 *", UTC, "2026-01-01T00:00:00Z", 1), ["2026-08-14T00:00:00+00:00"]);
    // A weekday is its own nearest weekday.
    assert_eq!(next_n("0 0 15W 10 *", UTC, "2026-01-01T00:00:00Z", 1), ["2026-10-15T00:00:00+00:00"]);
}

/// "LW and NW must be the only item in the field."
#[test]
fn weekday_items_stand_alone() {
    for bad in ["0 0 LW,1 * *", "0 0 1,LW * *", "0 0 15W,L * *", "0 0 1,15W * *"] {
        let e = error(bad);
        assert!(e.is_syntax(), "{bad}");
        assert!(e.to_string().contains("to be the only item in the field"), "{bad}: {e}");
    }
    for bad in ["0 0 W * *", "0 0 0W * *", "0 0 32W * *", "0 0 1-5W * *", "0 0 15W/2 * *"] {
        assert!(CronSchedule::parse(bad).is_err(), "{bad}");
    }
}

/// "DL is the last D-day of the month. For example, 5L is the last Friday."
/// "D#K is the K-th D-day of the month, with K from 1 to 5. For example, 5#3 is
/// the third Friday." "Both can appear in a list."
#[test]
fn weekday_of_month() {
    assert_eq!(
        next_n("0 0 * * 5L", UTC, "2026-01-01T00:00:00Z", 3),
        ["2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00", "2026-03-27T00:00:00+00:00"]
    );
    assert_eq!(
        next_n("0 0 * * 5#3", UTC, "2026-01-01T00:00:00Z", 3),
        ["2026-01-16T00:00:00+00:00", "2026-02-20T00:00:00+00:00", "2026-03-20T00:00:00+00:00"]
    );
    // A fifth Monday exists only in some months: 2026-03-30, 2026-06-29.
    assert_eq!(
        next_n("0 0 * * 1#5", UTC, "2026-01-01T00:00:00Z", 2),
        ["2026-03-30T00:00:00+00:00", "2026-06-29T00:00:00+00:00"]
    );
    assert_eq!(
        next_n("0 0 * * 1#1,5L,3", UTC, "2026-01-01T00:00:00Z", 4),
        [
            "2026-01-05T00:00:00+00:00",
            "2026-01-07T00:00:00+00:00",
            "2026-01-14T00:00:00+00:00",
            "2026-01-21T00:00:00+00:00"
        ]
    );
    same("0 0 * * 7#1", "0 0 * * 0#1");
    same("0 0 * * 7L", "0 0 * * 0L");
    for (bad, range) in [
        ("0 0 * * 5#0", true),
        ("0 0 * * 5#6", true),
        ("0 0 * * 8#1", true),
        ("0 0 * * 5#", false),
        ("0 0 * * #1", false),
        ("0 0 * * 5#1#2", false),
        ("0 0 * * L5", false),
    ] {
        let e = error(bad);
        assert_eq!(e.is_range(), range, "{bad}: {e}");
        assert_eq!(e.is_syntax(), !range, "{bad}: {e}");
    }
}

/// "Numbers use ASCII digits only. Leading zeros are allowed. Signs, decimals,
/// hex, exponents and non-ASCII digits are invalid."
#[test]
fn numbers() {
    same("00 09 01 01 00", "0 9 1 1 0");
    same("0000005 * * * *", "5 * * * *");
    for bad in ["+5 * * * *", "-5 * * * *", "1.5 * * * *", "0x10 * * * *", "1e1 * * * *", "٣ * * * *", "５ * * * *"] {
        assert!(error(bad).is_syntax(), "{bad}");
    }
}

/// "An expression that can never fire is invalid. This is the case when the day
/// fields combine with AND (see below) and day-of-month holds only numbers
/// whose smallest value is past the end of every month listed, as in 0 0 30 2 *
/// or 0 0 31 4,6,9,11 *. February counts as 29 days here, so 0 0 29 2 * is valid
/// and fires only in leap years."
#[test]
fn expressions_that_never_fire() {
    for bad in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 2 *", "0 0 31 FEB,APR *", "0 0 30 2 ?"] {
        let e = error(bad);
        assert!(e.is_never_fires(), "{bad}: {e}");
        assert_eq!(e.field(), Some(Field::DayOfMonth));
        assert_eq!(e.column(), Some(5));
        assert!(e.to_string().starts_with("cron expression can never fire"), "{bad}: {e}");
    }
    // Day-of-week restricted too: the days combine with OR and Mondays in February exist.
    ok("0 0 30 2 MON");
    // AND combinations that no calendar satisfies are refused as well.
    assert!(error("0 0 */20 * 1#2").is_never_fires());
    assert_eq!(
        next_n("0 0 29 2 *", UTC, "2026-01-01T00:00:00Z", 3),
        ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00", "2036-02-29T00:00:00+00:00"]
    );
    // The century rule: 2100 is not a leap year.
    assert_eq!(next_n("0 0 29 2 *", UTC, "2096-03-01T00:00:00Z", 1), ["2104-02-29T00:00:00+00:00"]);
}

// ## Matching

/// "Second, minute, hour and month must each be in their field's set."
#[test]
fn every_field_must_match() {
    assert_eq!(
        next_n("10 5 3 * 6 *", UTC, "2026-01-01T00:00:00Z", 2),
        ["2026-06-01T03:05:10+00:00", "2026-06-02T03:05:10+00:00"]
    );
}

/// "A day field is unrestricted when its text begins with * or is ?. This
/// includes */2." "If both day-of-month and day-of-week are restricted, a date
/// matches if either field matches." "Otherwise a date must match both fields.
/// An unrestricted field still applies its own set, so 0 0 */2 * 1 means
/// odd-numbered days that are Mondays."
#[test]
fn vixie_day_rule() {
    // Both restricted: the 13th or any Friday.
    assert_eq!(
        next_n("0 0 13 * 5", UTC, "2026-11-01T00:00:00Z", 4),
        [
            "2026-11-06T00:00:00+00:00",
            "2026-11-13T00:00:00+00:00",
            "2026-11-20T00:00:00+00:00",
            "2026-11-27T00:00:00+00:00"
        ]
    );
    assert_eq!(next_n("0 0 13 * 5", UTC, "2026-12-12T00:00:00Z", 1), ["2026-12-13T00:00:00+00:00"]);
    // Only one restricted: both must match. Odd days that are Mondays:
    // 2026-11-09, 11-23, 12-07, 12-21.
    assert_eq!(
        next_n("0 0 */2 * 1", UTC, "2026-11-01T00:00:00Z", 4),
        [
            "2026-11-09T00:00:00+00:00",
            "2026-11-23T00:00:00+00:00",
            "2026-12-07T00:00:00+00:00",
            "2026-12-21T00:00:00+00:00"
        ]
    );
    // `?` is unrestricted.
    assert_eq!(next_n("0 0 13 * ?", UTC, "2026-11-01T00:00:00Z", 1), ["2026-11-13T00:00:00+00:00"]);
    assert_eq!(next_n("0 0 ? * 5", UTC, "2026-11-01T00:00:00Z", 1), ["2026-11-06T00:00:00+00:00"]);
    // `*/1` starts with `*`, so it is unrestricted and the rule is AND.
    assert_eq!(
        next_n("0 0 * * 5", UTC, "2026-11-01T00:00:00Z", 1),
        next_n("0 0 */1 * 5", UTC, "2026-11-01T00:00:00Z", 1)
    );
    // But `1-31` is restricted, so the rule is OR and every day matches.
    assert_eq!(next_n("0 0 1-31 * 5", UTC, "2026-11-01T00:00:00Z", 1), ["2026-11-02T00:00:00+00:00"]);
}

/// "L, LW, NW, DL and D#K belong to their own field for this rule. For example,
/// 0 0 1 * 5#3 fires on the 1st or on the third Friday."
#[test]
fn extensions_belong_to_their_field() {
    assert_eq!(
        next_n("0 0 1 * 5#3", UTC, "2026-11-02T00:00:00Z", 3),
        ["2026-11-20T00:00:00+00:00", "2026-12-01T00:00:00+00:00", "2026-12-18T00:00:00+00:00"]
    );
    // L with a weekday: the last day or any Monday.
    assert_eq!(
        next_n("0 0 L * 1", UTC, "2026-11-24T00:00:00Z", 3),
        ["2026-11-30T00:00:00+00:00", "2026-12-07T00:00:00+00:00", "2026-12-14T00:00:00+00:00"]
    );
    // 5L with an unrestricted day-of-month: AND with every day, so just the last Friday.
    assert_eq!(next_n("0 0 * * 5L", UTC, "2026-11-01T00:00:00Z", 1), ["2026-11-27T00:00:00+00:00"]);
}

// ## Time and time zones

/// "after is an instant. The answer is the first N fire instants strictly after
/// it. Each is written as RFC 3339 with the UTC offset the zone has at that
/// instant. The sequence is strictly increasing and has no duplicates."
#[test]
fn strictly_after_with_the_offset_of_the_instant() {
    assert_eq!(next_n("0 9 * * *", UTC, "2026-01-01T09:00:00Z", 1), ["2026-01-02T09:00:00+00:00"]);
    assert_eq!(next_n("0 9 * * *", UTC, "2026-01-01T08:59:59.999Z", 1), ["2026-01-01T09:00:00+00:00"]);
    assert_eq!(next_n("0 9 * * *", UTC, "2026-01-01T09:00:00.001Z", 1), ["2026-01-02T09:00:00+00:00"]);
    assert_eq!(
        next_n("0 12 1 * *", NY, "2026-02-15T00:00:00Z", 2),
        ["2026-03-01T12:00:00-05:00", "2026-04-01T12:00:00-04:00"]
    );
    let s = ok("0 9 * * *");
    let tz = jiff::tz::TimeZone::UTC;
    let at: jiff::Timestamp = "2026-01-01T09:00:00Z".parse().unwrap();
    assert_eq!(s.prev_before(at, &tz).unwrap().to_string(), "2025-12-31T09:00:00Z");
    assert!(s.matches(at, &tz));
    assert!(!s.matches("2026-01-01T09:00:00.5Z".parse().unwrap(), &tz));
}

/// "Fire times are wall-clock times in the IANA zone (tzdata as jiff finds it:
/// the system's zoneinfo, else the copy bundled with jiff)."
#[test]
fn wall_clock_in_the_zone() {
    assert_eq!(next_n("0 9 * * *", "Asia/Tokyo", "2026-05-31T12:00:00Z", 1), ["2026-06-01T09:00:00+09:00"]);
    assert_eq!(next_n("0 9 * * *", "Asia/Kathmandu", "2026-06-01T00:00:00Z", 1), ["2026-06-01T09:00:00+05:45"]);
}

/// "A job is fixed-time when neither the minute field nor the hour field begins
/// with *. Otherwise it is periodic." "The seconds field plays no part in this
/// test." "The test is the same for 5-field and 6-field expressions." "@hourly
/// is periodic. The other macros are fixed-time."
#[test]
fn job_classes() {
    for fixed in [
        "30 2 * * *",
        "0 9-17 * * *",
        "0,30 2 * * *",
        "0/15 2 * * *",
        "5 1-23/2 * * *",
        "* 30 2 * * *",
        "*/5 30 2 * * *",
    ] {
        assert!(ok(fixed).is_fixed_time(), "{fixed}");
    }
    for periodic in
        ["* 2 * * *", "*/20 * * * *", "0 * * * *", "30 */2 * * *", "0 0 * * * *", "0 */5 2 * * *", "0 0 */1 * * *"]
    {
        assert!(!ok(periodic).is_fixed_time(), "{periodic}");
    }
    assert!(!ok("@hourly").is_fixed_time());
    for m in ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight"] {
        assert!(ok(m).is_fixed_time(), "{m}");
    }
}

/// "Fixed-time jobs fire once at the first valid instant after the gap, which is
/// the transition instant itself. For example, New York 30 2 * * * on
/// 2025-03-09 fires at 03:00:00-04:00. A 6-field 30 30 2 * * * also fires at
/// 03:00:00."
#[test]
fn gap_fixed_time_fires_at_the_transition() {
    assert_eq!(
        next_n("30 2 * * *", NY, "2025-03-08T12:00:00-05:00", 3),
        ["2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00", "2025-03-11T02:30:00-04:00"]
    );
    assert_eq!(next_n("30 30 2 * * *", NY, "2025-03-08T12:00:00-05:00", 1), ["2025-03-09T03:00:00-04:00"]);
    // From just before the transition instant, and from exactly one second before it.
    assert_eq!(next_n("30 2 * * *", NY, "2025-03-09T01:59:59-05:00", 1), ["2025-03-09T03:00:00-04:00"]);
    assert_eq!(next_n("30 2 * * *", NY, "2025-03-09T03:00:00-04:00", 1), ["2025-03-10T02:30:00-04:00"]);
}

/// "Several gap times of one gap collapse into that single firing. So does a
/// regular fire time at the same instant: 0 2,3 * * * fires once at 03:00."
#[test]
fn gap_times_collapse() {
    assert_eq!(
        next_n("0 2,3 * * *", NY, "2025-03-09T00:00:00-05:00", 2),
        ["2025-03-09T03:00:00-04:00", "2025-03-10T02:00:00-04:00"]
    );
    assert_eq!(
        next_n("0,15,30,45 2 * * *", NY, "2025-03-09T00:00:00-05:00", 2),
        ["2025-03-09T03:00:00-04:00", "2025-03-10T02:00:00-04:00"]
    );
    assert_eq!(
        next_n("0,30 2,3 * * *", NY, "2025-03-09T00:00:00-05:00", 3),
        ["2025-03-09T03:00:00-04:00", "2025-03-09T03:30:00-04:00", "2025-03-10T02:00:00-04:00"]
    );
}

/// "Periodic jobs skip nonexistent times. They fire only at wall times that
/// really occur."
#[test]
fn gap_periodic_skips() {
    assert_eq!(
        next_n("*/30 * * * *", NY, "2025-03-09T01:00:00-05:00", 3),
        ["2025-03-09T01:30:00-05:00", "2025-03-09T03:00:00-04:00", "2025-03-09T03:30:00-04:00"]
    );
    // A periodic job that only matches inside the gap skips that day.
    assert_eq!(next_n("* 2 * * *", NY, "2025-03-08T23:00:00-05:00", 1), ["2025-03-10T02:00:00-04:00"]);
}

/// "Fixed-time jobs fire only at the first occurrence. If after lies inside the
/// second pass, the repeated time does not fire again."
#[test]
fn fold_fixed_time_fires_once() {
    assert_eq!(
        next_n("30 1 * * *", NY, "2025-11-01T12:00:00-04:00", 2),
        ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]
    );
    // `after` in the second pass, before the repeated 01:30.
    assert_eq!(next_n("30 1 * * *", NY, "2025-11-02T01:10:00-05:00", 1), ["2025-11-03T01:30:00-05:00"]);
    // `after` between the two passes' 01:30.
    assert_eq!(next_n("30 1 * * *", NY, "2025-11-02T01:45:00-04:00", 1), ["2025-11-03T01:30:00-05:00"]);
    // A job later in the fold hour still fires in the first pass; 02:00 follows the fold.
    assert_eq!(
        next_n("0 1,2 * * *", NY, "2025-11-02T00:30:00-04:00", 3),
        ["2025-11-02T01:00:00-04:00", "2025-11-02T02:00:00-05:00", "2025-11-03T01:00:00-05:00"]
    );
}

/// "Periodic jobs fire at both occurrences, in real-time order. For example,
/// */20 * * * * in New York on 2025-11-02 fires at 01:00, 01:20 and 01:40 EDT,
/// then at 01:00, 01:20 and 01:40 EST."
#[test]
fn fold_periodic_fires_twice() {
    assert_eq!(
        next_n("*/20 * * * *", NY, "2025-11-02T00:59:00-04:00", 7),
        [
            "2025-11-02T01:00:00-04:00",
            "2025-11-02T01:20:00-04:00",
            "2025-11-02T01:40:00-04:00",
            "2025-11-02T01:00:00-05:00",
            "2025-11-02T01:20:00-05:00",
            "2025-11-02T01:40:00-05:00",
            "2025-11-02T02:00:00-05:00"
        ]
    );
    // From inside the second pass, only the second pass remains.
    assert_eq!(
        next_n("*/20 * * * *", NY, "2025-11-02T01:10:00-05:00", 2),
        ["2025-11-02T01:20:00-05:00", "2025-11-02T01:40:00-05:00"]
    );
}

// ## Errors

/// "Everything above that is called invalid is rejected with an error that names
/// the field, the column and what was expected."
#[test]
fn errors_name_field_column_and_expectation() {
    for (bad, message) in [
        ("0 9 * * 8", r#"invalid day-of-week "8" at column 9: expected 0-7 or SUN-SAT"#),
        ("61 9 * * *", r#"invalid minute "61" at column 1: expected 0-59"#),
        ("0 25 * * *", r#"invalid hour "25" at column 3: expected 0-23"#),
        ("0 0 * 13 *", r#"invalid month "13" at column 7: expected 1-12 or JAN-DEC"#),
        ("0 0 0 * *", r#"invalid day-of-month "0" at column 5: expected 1-31"#),
        ("0 0 * * 5#9", r#"invalid day-of-week "9" at column 11: expected a week number 1-5 after #"#),
        ("*/0 * * * *", r#"invalid minute "0" at column 3: expected a step of at least 1"#),
        (
            "0 0 * * x",
            r#"invalid day-of-week "x" at column 9: expected 0-7 or SUN-SAT, DL or D#K, *, a range A-B or a step */S"#,
        ),
    ] {
        assert_eq!(error(bad).to_string(), message, "{bad}");
    }
}

/// "Input longer than 1,024 bytes is rejected before parsing."
#[test]
fn long_input_is_rejected() {
    let long = format!("0 0 * * {}", vec!["1"; 600].join(","));
    assert!(long.len() > 1024);
    let e = error(&long);
    assert!(e.is_syntax());
    assert_eq!(e.to_string(), format!("cron expression is {} bytes long: at most 1024 are accepted", long.len()));
    // Exactly 1,024 bytes is accepted.
    let pad = " ".repeat(1024 - "0 0 * * *".len());
    ok(&format!("0 0 * * *{pad}"));
    assert!(error(&format!("0 0 * * *{pad} ")).to_string().contains("1025 bytes"));
}

/// "No input may make the parser or the evaluator panic, overflow or hang."
mod no_input_panics {
    use super::*;
    use jiff::Timestamp;
    use jiff::tz::TimeZone;
    use proptest::prelude::*;

    fn check(text: &str, after: i64, zone: usize) {
        let Ok(s) = CronSchedule::parse(text) else {
            return;
        };
        let again = CronSchedule::parse(&s.to_string()).expect("Display output parses");
        assert_eq!(again, s);
        let _ = s.describe();
        let zones = ["UTC", "America/New_York", "Pacific/Apia", "Australia/Lord_Howe"];
        let tz = TimeZone::get(zones[zone % zones.len()]).unwrap();
        let after = Timestamp::from_second(after).unwrap();
        if let Some(next) = s.next_after(after, &tz) {
            assert!(next > after);
            assert!(s.matches(next, &tz));
        }
        if let Some(prev) = s.prev_before(after, &tz) {
            assert!(prev < after);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text(text in "\\PC{0,40}", after in -377_705_116_800i64..253_402_207_200, zone in 0..4usize) {
            check(&text, after, zone);
        }

        #[test]
        fn cron_alphabet(
            text in "[0-9*?,/#LW@a-zA-Z \t-]{0,40}",
            after in -377_705_116_800i64..253_402_207_200,
            zone in 0..4usize,
        ) {
            check(&text, after, zone);
        }

        #[test]
        fn near_valid(
            fields in proptest::collection::vec("[0-9]{1,3}|\\*|\\*/[0-9]{1,2}|[0-9]{1,2}-[0-9]{1,2}|L|LW|[0-9]{1,2}W|[0-9]L|[0-9]#[0-9]|[A-Z]{3}", 5..=6),
            after in -377_705_116_800i64..253_402_207_200,
            zone in 0..4usize,
        ) {
            check(&fields.join(" "), after, zone);
        }
    }

    /// The ends of time: searches stop at jiff's limits instead of overflowing.
    #[test]
    fn the_ends_of_time() {
        let s = CronSchedule::parse("0 0 29 2 *").unwrap();
        let tz = TimeZone::UTC;
        assert_eq!(s.next_after(Timestamp::MAX, &tz), None);
        assert_eq!(s.prev_before(Timestamp::MIN, &tz), None);
        let last = s.prev_before(Timestamp::MAX, &tz).unwrap();
        assert_eq!(last.to_string(), "9996-02-29T00:00:00Z");
        assert_eq!(s.next_after(last, &tz), None);
        let every = CronSchedule::parse("* * * * * *").unwrap();
        assert_eq!(every.next_after(Timestamp::MAX, &tz), None);
        assert!(every.prev_before(Timestamp::MAX, &tz).is_some());
        // MAX is 9999-12-30T22:00:00.999999999Z: three whole seconds remain after MAX - 3s.
        assert_eq!(every.iter_after(Timestamp::MAX - jiff::SignedDuration::from_secs(3), &tz).count(), 3);
    }
}
