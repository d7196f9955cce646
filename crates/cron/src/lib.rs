//! Cron expressions for chime: parse them, describe them in English, and find
//! their fire times in any IANA time zone, with DST handled the way Debian cron
//! does and `CRON.md` specifies.
//!
//! ```
//! use chime_cron::CronSchedule;
//! use jiff::{Timestamp, tz::TimeZone};
//!
//! let schedule = CronSchedule::parse("30 9 * * MON-FRI")?;
//! assert_eq!(schedule.describe(), "At 09:30, Monday through Friday");
//!
//! let tz = TimeZone::get("Europe/London")?;
//! let after: Timestamp = "2026-11-27T12:00:00Z".parse()?; // a Friday
//! let next = schedule.next_after(after, &tz).unwrap();
//! assert_eq!(next.to_string(), "2026-11-30T09:30:00Z"); // the Monday
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Overview
//!
//! [`CronSchedule::parse`] accepts the 5-field form (`minute hour day-of-month
//! month day-of-week`), the 6-field form with a leading seconds field, and the
//! macros `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`
//! and `@hourly`. Fields take `*`, values, names (`JAN`-`DEC`, `SUN`-`SAT`),
//! ranges, steps and lists; day-of-month takes `?`, `L`, `LW` and `NW`;
//! day-of-week takes `?`, `DL` and `D#K`. When both day fields are restricted,
//! a date matches if either does (the Vixie cron rule). Anything invalid —
//! including an expression that can never fire, such as `0 0 30 2 *` — is a
//! [`CronError`] naming the field, the column and what was expected.
//!
//! Evaluation takes an instant and a [`jiff::tz::TimeZone`]:
//! [`next_after`](CronSchedule::next_after),
//! [`prev_before`](CronSchedule::prev_before),
//! [`iter_after`](CronSchedule::iter_after) and
//! [`matches`](CronSchedule::matches). Each answer costs a handful of field
//! jumps, never a scan over minutes: a schedule that fires once every 28 years
//! is found as fast as one that fires every minute.
//!
//! [`CronSchedule::builder`] builds a schedule field by field in the
//! APScheduler style, and `Display` writes a schedule back as text that parses
//! to the same schedule.
//!
//! # Daylight saving time
//!
//! A schedule is *fixed-time* when neither its minute nor its hour field starts
//! with `*` (`30 2 * * *`), and *periodic* otherwise (`*/20 * * * *`,
//! `@hourly`). The two classes differ only on the days a zone's offset changes:
//!
//! * In a **gap**, when the clocks spring forward and some wall times never
//!   happen, a fixed-time schedule due inside the gap fires once, at the end of
//!   the gap. A periodic schedule skips the wall times that do not exist.
//! * In a **fold**, when the clocks fall back and some wall times happen twice,
//!   a fixed-time schedule fires at the first occurrence only. A periodic
//!   schedule fires at both, in real-time order.
//!
//! ```
//! use chime_cron::CronSchedule;
//! use jiff::{Timestamp, tz::TimeZone};
//!
//! let ny = TimeZone::get("America/New_York")?;
//! let zoned = |ts: Timestamp| ts.to_zoned_datetime(ny.clone()).to_string();
//!
//! // 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 is in a gap.
//! let daily = CronSchedule::parse("30 2 * * *")?;
//! let after: Timestamp = "2026-03-08T00:00:00-05:00".parse()?;
//! let next = daily.next_after(after, &ny).unwrap();
//! assert_eq!(zoned(next), "2026-03-08T03:00:00-04:00[America/New_York]");
//!
//! // 2026-11-01: 02:00 EDT falls back to 01:00 EST, so 01:30 is in a fold.
//! let daily = CronSchedule::parse("30 1 * * *")?;
//! let after: Timestamp = "2026-11-01T00:00:00-04:00".parse()?;
//! let times: Vec<String> = daily.iter_after(after, &ny).take(2).map(zoned).collect();
//! assert_eq!(times, [
//!     "2026-11-01T01:30:00-04:00[America/New_York]", // the first 01:30 only
//!     "2026-11-02T01:30:00-05:00[America/New_York]",
//! ]);
//!
//! // A periodic schedule keeps its period through the fold.
//! let every_20 = CronSchedule::parse("*/20 * * * *")?;
//! let times: Vec<String> = every_20.iter_after(after, &ny).skip(2).take(6).map(zoned).collect();
//! assert_eq!(times, [
//!     "2026-11-01T01:00:00-04:00[America/New_York]",
//!     "2026-11-01T01:20:00-04:00[America/New_York]",
//!     "2026-11-01T01:40:00-04:00[America/New_York]",
//!     "2026-11-01T01:00:00-05:00[America/New_York]",
//!     "2026-11-01T01:20:00-05:00[America/New_York]",
//!     "2026-11-01T01:40:00-05:00[America/New_York]",
//! ]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//!
//! None. The crate depends on jiff (with its bundled time zone database) and on
//! serde, which (de)serializes a [`CronSchedule`] as its text.

mod builder;
mod civil;
mod describe;
mod error;
mod parse;
mod schedule;
mod zone;

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use crate::builder::CronBuilder;
pub use crate::error::CronError;
pub use crate::schedule::Field;
use crate::schedule::Fields;
use crate::zone::SegmentCache;

/// The longest expression [`CronSchedule::parse`] accepts, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 1024;

/// A parsed cron expression.
///
/// Two schedules are equal when their fields allow the same values and they
/// have the same DST class, whatever their spelling: `@daily` equals
/// `0 0 * * *`, and `0 9 * * MON` equals `0 9 * * 1`.
#[derive(Clone)]
pub struct CronSchedule {
    fields: Fields,
    has_seconds: bool,
    fixed_time: bool,
    text: Box<str>,
}

impl CronSchedule {
    /// Parses a cron expression as `CRON.md` defines it.
    ///
    /// # Example
    ///
    /// ```
    /// use chime_cron::CronSchedule;
    ///
    /// let s = CronSchedule::parse("0 0 L * *")?;
    /// assert_eq!(s.describe(), "At 00:00 on the last day of the month");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`CronError`] when the text is not a valid expression, names a value
    /// out of range, can never fire, or is longer than
    /// [`MAX_EXPRESSION_LEN`] bytes.
    pub fn parse(text: &str) -> Result<CronSchedule, CronError> {
        let parsed = parse::parse(text)?;
        Ok(CronSchedule {
            fields: parsed.fields,
            has_seconds: parsed.has_seconds,
            fixed_time: parsed.fixed_time,
            text: parsed.normalized.into_boxed_str(),
        })
    }

    /// Starts building a schedule field by field; see [`CronBuilder`].
    pub fn builder() -> CronBuilder {
        CronBuilder::default()
    }

    /// The first fire time strictly after `after`, or `None` if the schedule
    /// never fires again before the end of what jiff can represent (year 9999).
    ///
    /// Fire times are whole seconds.
    ///
    /// # Example
    ///
    /// ```
    /// use chime_cron::CronSchedule;
    /// use jiff::{Timestamp, tz::TimeZone};
    ///
    /// let leap_day = CronSchedule::parse("0 0 29 2 *")?;
    /// let after: Timestamp = "2026-01-01T00:00:00Z".parse()?;
    /// let next = leap_day.next_after(after, &TimeZone::UTC).unwrap();
    /// assert_eq!(next.to_string(), "2028-02-29T00:00:00Z");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let from = floor_second(after).checked_add(1)?;
        let at = zone::next_at_or_after(&self.fields, self.fixed_time, tz, &mut SegmentCache::default(), from)?;
        Timestamp::from_second(at).ok()
    }

    /// The last fire time strictly before `before`, or `None` if there is none
    /// after year -9999.
    pub fn prev_before(&self, before: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let to = ceil_second(before).checked_sub(1)?;
        let at = zone::prev_at_or_before(&self.fields, self.fixed_time, tz, &mut SegmentCache::default(), to)?;
        Timestamp::from_second(at).ok()
    }

    /// The fire times strictly after `after`, in increasing order.
    ///
    /// Faster than calling [`next_after`](CronSchedule::next_after) in a loop:
    /// the iterator remembers the zone's current offset period.
    pub fn iter_after(&self, after: Timestamp, tz: &TimeZone) -> FireTimes<'_> {
        FireTimes {
            schedule: self,
            tz: tz.clone(),
            cache: SegmentCache::default(),
            from: floor_second(after).checked_add(1),
        }
    }

    /// Whether the schedule fires at exactly `instant` in `tz`, DST rules included.
    ///
    /// ```
    /// use chime_cron::CronSchedule;
    /// use jiff::{Timestamp, tz::TimeZone};
    ///
    /// let ny = TimeZone::get("America/New_York")?;
    /// let s = CronSchedule::parse("30 1 * * *")?;
    /// let first: Timestamp = "2026-11-01T01:30:00-04:00".parse()?;
    /// let second: Timestamp = "2026-11-01T01:30:00-05:00".parse()?;
    /// assert!(s.matches(first, &ny));
    /// assert!(!s.matches(second, &ny)); // fixed-time: the first 01:30 only
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn matches(&self, instant: Timestamp, tz: &TimeZone) -> bool {
        if instant.subsec_nanosecond() != 0 {
            return false;
        }
        let t = instant.as_second();
        zone::next_at_or_after(&self.fields, self.fixed_time, tz, &mut SegmentCache::default(), t) == Some(t)
    }

    /// Whether a wall-clock time matches every field, ignoring time zones and
    /// so DST. Sub-second parts are ignored.
    pub fn matches_datetime(&self, dt: jiff::civil::DateTime) -> bool {
        self.fields.matches_civil(civil::Civil {
            year: i32::from(dt.year()),
            month: dt.month() as u8,
            day: dt.day() as u8,
            hour: dt.hour() as u8,
            minute: dt.minute() as u8,
            second: dt.second() as u8,
        })
    }

    /// Whether this is a fixed-time schedule (neither the minute nor the hour
    /// field starts with `*`), which fires once across a DST gap or fold.
    /// Otherwise it is periodic and fires only at wall times that occur.
    pub fn is_fixed_time(&self) -> bool {
        self.fixed_time
    }

    /// Whether the expression has a leading seconds field.
    pub fn has_seconds(&self) -> bool {
        self.has_seconds
    }

    /// The expression as text: fields separated by single spaces, macros in
    /// lower case. The same as `Display`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A plain English description, such as "At 09:30, Monday through Friday"
    /// or "Every 15 minutes".
    pub fn describe(&self) -> String {
        describe::describe(self)
    }
}

fn floor_second(ts: Timestamp) -> i64 {
    ts.as_second() - i64::from(ts.subsec_nanosecond() < 0)
}

fn ceil_second(ts: Timestamp) -> i64 {
    ts.as_second() + i64::from(ts.subsec_nanosecond() > 0)
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields && self.fixed_time == other.fixed_time
    }
}

impl Eq for CronSchedule {}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", &*self.text)
    }
}

impl FromStr for CronSchedule {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronSchedule::parse(s)
    }
}

impl serde::Serialize for CronSchedule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for CronSchedule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CronSchedule;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a cron expression")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CronSchedule, E> {
                CronSchedule::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// The fire times of a schedule after an instant; see [`CronSchedule::iter_after`].
#[derive(Clone, Debug)]
pub struct FireTimes<'a> {
    schedule: &'a CronSchedule,
    tz: TimeZone,
    cache: SegmentCache,
    /// The epoch second to search from, inclusive; `None` once exhausted.
    from: Option<i64>,
}

impl Iterator for FireTimes<'_> {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        let from = self.from?;
        let s = self.schedule;
        let at = zone::next_at_or_after(&s.fields, s.fixed_time, &self.tz, &mut self.cache, from);
        let ts = at.and_then(|at| Timestamp::from_second(at).ok());
        self.from = ts.and_then(|_| at?.checked_add(1));
        ts
    }
}

impl std::iter::FusedIterator for FireTimes<'_> {}

/// Runs the Rust examples in the README as doctests, so they stay true.
#[cfg(doctest)]
mod readme_examples {
    #[doc = include_str!("../README.md")]
    struct CrateReadme;
}
