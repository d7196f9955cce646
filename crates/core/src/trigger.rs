//! Triggers: when a job fires. Plain data with a stable JSON shape.
//!
//! A trigger answers one question, [`Trigger::next_after`]: the first fire
//! time strictly after an instant, or none. Everything else (upcoming times,
//! misfire planning, the scheduler's sleep) is built on that.

use std::fmt;

use chime_cron::CronSchedule;
use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Span, Timestamp};
use serde::{Deserialize, Serialize};

use crate::limits::{MAX_CALENDAR_STEP, MAX_COMBINED, MAX_NESTING, MIN_INTERVAL_FLOOR, check_duration};

use crate::duration::{format_duration, parse_duration};
use crate::error::{Error, Result};

/// When a job fires.
///
/// JSON shapes (the `type` field selects the kind):
///
/// ```json
/// {"type": "cron", "expr": "0 9 * * MON-FRI", "timezone": "Europe/London"}
/// {"type": "interval", "every": "4h", "start": "2026-12-01T00:00:00Z"}
/// {"type": "calendar", "every": 1, "unit": "months", "at": "09:00:00", "start": "2026-01-31"}
/// {"type": "date", "at": "2026-12-01T09:00:00Z"}
/// {"type": "any", "triggers": [...]}
/// ```
///
/// `start`, `end` and `timezone` are optional wherever they appear. When a
/// job is added, the scheduler fills in what is missing: the zone with its
/// default zone, an interval's start with "now + every", a calendar's start
/// date with today.
///
/// ```
/// use chime_core::Trigger;
///
/// let t = Trigger::cron("0 9 * * *")?.with_timezone("Europe/London")?;
/// let after = "2026-03-28T12:00:00Z".parse()?;
/// // London moves to BST on 2026-03-29: 09:00 BST is 08:00 UTC.
/// assert_eq!(t.upcoming(after, 2)[1].to_string(), "2026-03-30T08:00:00Z");
/// assert_eq!(t.describe(), "At 09:00 (Europe/London)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    /// A cron expression in a time zone; see [`CronTrigger`].
    Cron(Box<CronTrigger>),
    /// Every fixed elapsed duration; see [`IntervalTrigger`].
    Interval(IntervalTrigger),
    /// Every N days, weeks, months or years at a wall-clock time; see [`CalendarTrigger`].
    Calendar(Box<CalendarTrigger>),
    /// Once, at an instant.
    Date(DateTrigger),
    /// Fires whenever any of its triggers fires.
    Any(CombinedTrigger),
    /// Fires only at instants where all of its triggers fire.
    All(CombinedTrigger),
}

/// A cron expression evaluated in a zone, between optional `start` and `end`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CronTrigger {
    /// The expression, as `chime-cron` parses it.
    pub expr: CronSchedule,
    /// The zone its wall-clock times are read in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Zone>,
    /// No fire time before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
    /// No fire time after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
}

/// Every `every` of elapsed time, at `start`, `start + every`, ...
///
/// Elapsed time ignores DST: an interval of 24h fires at 09:00 and then, after
/// a spring-forward night, at 10:00. Use a calendar trigger for "every day at
/// 09:00". Anchoring at `start` means a restart does not push runs back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntervalTrigger {
    /// The period: `"90s"`, `"1h 30m"`, `"PT4H"`, `"1d"` (24 hours).
    #[serde(with = "crate::duration::text")]
    pub every: SignedDuration,
    /// The first fire time; the scheduler sets it to "now + every" (to the
    /// second, or the millisecond for sub-second periods) when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
    /// No fire time after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
}

/// Every `every` `unit`s from `start`, at the wall-clock time `at` in `timezone`.
///
/// Dates are counted from `start` each time, not from the previous fire date,
/// so a monthly trigger anchored on the 31st fires on the 31st, on the last
/// day of shorter months (Feb 28 or 29, Apr 30), and on the 31st again when a
/// month has one. A yearly trigger anchored on Feb 29 fires on Feb 28 in
/// common years.
///
/// DST follows the cron rules for fixed-time jobs: a time in a gap fires at
/// the end of the gap, and a time in a fold fires at its first occurrence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalendarTrigger {
    /// How many units between fire dates, at least 1.
    pub every: u32,
    /// The unit.
    pub unit: CalendarUnit,
    /// The wall-clock time of day.
    pub at: Time,
    /// The zone the wall-clock time is read in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Zone>,
    /// The first fire date; the scheduler sets it to today (in `timezone`) when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Date>,
    /// No fire time after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
}

/// The unit of a [`CalendarTrigger`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarUnit {
    /// Calendar days (23, 24 or 25 hours long across DST).
    Days,
    /// Weeks of 7 calendar days.
    Weeks,
    /// Calendar months.
    Months,
    /// Calendar years.
    Years,
}

/// Once, at `at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DateTrigger {
    /// The instant.
    pub at: Timestamp,
}

/// The children of an `any` or `all` trigger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CombinedTrigger {
    /// At least one trigger.
    pub triggers: Vec<Trigger>,
}

/// An IANA time zone, serialized as its name.
#[derive(Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    /// Looks up an IANA zone such as `Europe/London`, or `UTC`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the zone when jiff does not know it.
    pub fn get(name: &str) -> Result<Zone> {
        let tz = TimeZone::get(name).map_err(|_| {
            Error::invalid(format!("unknown time zone {name:?}: expected an IANA name such as Europe/London"))
        })?;
        Ok(Zone { name: name.to_owned(), tz })
    }

    /// The system's zone (`TZ`, else `/etc/localtime`), or UTC when it has no IANA name.
    pub fn system() -> Zone {
        let tz = TimeZone::system();
        match tz.iana_name() {
            Some(name) => Zone { name: name.to_owned(), tz },
            None => Zone::utc(),
        }
    }

    /// UTC.
    pub fn utc() -> Zone {
        Zone { name: "UTC".to_owned(), tz: TimeZone::UTC }
    }

    /// The IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The jiff zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({:?})", self.name)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Serialize for Zone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Zone, D::Error> {
        let name = String::deserialize(d)?;
        Zone::get(&name).map_err(serde::de::Error::custom)
    }
}

/// How many candidate instants an `all` trigger examines before giving up.
const ALL_SEARCH_LIMIT: usize = 10_000;

impl Trigger {
    /// A cron trigger; the zone defaults to the scheduler's.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] with the cron parser's message.
    pub fn cron(expr: &str) -> Result<Trigger> {
        let expr =
            CronSchedule::parse(expr).map_err(|e| Error::invalid(format!("invalid cron expression {expr:?}: {e}")))?;
        Ok(Trigger::Cron(Box::new(CronTrigger { expr, timezone: None, start: None, end: None })))
    }

    /// A cron trigger from `chime-cron`'s field builder, in the style of
    /// APScheduler's `CronTrigger(hour=9, minute=0)`: fields above the least
    /// significant one given default to `*`, lower ones to their minimum.
    ///
    /// ```
    /// use chime_core::Trigger;
    /// use chime_cron::CronSchedule;
    ///
    /// let nine = Trigger::cron_fields(CronSchedule::builder().hour(9).minute(0))?;
    /// assert_eq!(nine, Trigger::cron("0 9 * * *")?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] with the cron parser's message for a bad field.
    pub fn cron_fields(fields: chime_cron::CronBuilder) -> Result<Trigger> {
        let expr = fields.build().map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Trigger::from(expr))
    }

    /// An interval trigger from a duration text such as `"4h"`; the first run
    /// is one period after the job is added.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when the duration does not parse or is not positive.
    pub fn every(duration: &str) -> Result<Trigger> {
        Ok(Trigger::Interval(IntervalTrigger { every: parse_duration(duration)?, start: None, end: None }))
    }

    /// A calendar trigger: every `every` `unit`s at `at` (`"09:00"`).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when `every` is 0 or `at` is not a time of day.
    pub fn calendar(every: u32, unit: CalendarUnit, at: &str) -> Result<Trigger> {
        let at: Time = at
            .parse()
            .map_err(|_| Error::invalid(format!("invalid time of day {at:?}: expected HH:MM or HH:MM:SS")))?;
        let t =
            Trigger::Calendar(Box::new(CalendarTrigger { every, unit, at, timezone: None, start: None, end: None }));
        t.validate()?;
        Ok(t)
    }

    /// Fires once, at `at`.
    pub fn at(at: Timestamp) -> Trigger {
        Trigger::Date(DateTrigger { at })
    }

    /// Fires whenever any of `triggers` fires.
    pub fn any(triggers: Vec<Trigger>) -> Trigger {
        Trigger::Any(CombinedTrigger { triggers })
    }

    /// Fires at instants where every one of `triggers` fires.
    pub fn all(triggers: Vec<Trigger>) -> Trigger {
        Trigger::All(CombinedTrigger { triggers })
    }

    /// Sets the zone of this trigger and of any children that have none.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for an unknown zone.
    pub fn with_timezone(mut self, name: &str) -> Result<Trigger> {
        let zone = Zone::get(name)?;
        self.visit_mut(&mut |t| match t {
            Trigger::Cron(c) => c.timezone = Some(zone.clone()),
            Trigger::Calendar(c) => c.timezone = Some(zone.clone()),
            _ => {}
        });
        Ok(self)
    }

    /// Sets the first instant (or, for a calendar trigger, the first date) it may fire.
    pub fn with_start(mut self, start: Timestamp) -> Trigger {
        match &mut self {
            Trigger::Cron(c) => c.start = Some(start),
            Trigger::Interval(i) => i.start = Some(start),
            Trigger::Calendar(c) => {
                let tz = c.timezone.as_ref().map_or(TimeZone::UTC, |z| z.tz.clone());
                c.start = Some(tz.to_datetime(start).date());
            }
            Trigger::Date(_) | Trigger::Any(_) | Trigger::All(_) => {}
        }
        self
    }

    /// Sets the last instant it may fire.
    pub fn with_end(mut self, end: Timestamp) -> Trigger {
        match &mut self {
            Trigger::Cron(c) => c.end = Some(end),
            Trigger::Interval(i) => i.end = Some(end),
            Trigger::Calendar(c) => c.end = Some(end),
            Trigger::Date(_) | Trigger::Any(_) | Trigger::All(_) => {}
        }
        self
    }

    fn visit_mut(&mut self, f: &mut impl FnMut(&mut Trigger)) {
        f(self);
        if let Trigger::Any(c) | Trigger::All(c) = self {
            for t in &mut c.triggers {
                t.visit_mut(f);
            }
        }
    }

    /// Checks what the types cannot: a positive interval, a calendar step of
    /// at least 1, a start before the end, non-empty combinations.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] saying which rule is broken.
    pub fn validate(&self) -> Result<()> {
        self.validate_at(0)
    }

    /// The shortest interval anywhere in the trigger (intervals only: cron
    /// fires at most once a second, calendars once a day).
    pub fn min_interval(&self) -> Option<SignedDuration> {
        match self {
            Trigger::Interval(i) => Some(i.every),
            Trigger::Any(c) | Trigger::All(c) => c.triggers.iter().filter_map(Trigger::min_interval).min(),
            Trigger::Cron(_) | Trigger::Calendar(_) | Trigger::Date(_) => None,
        }
    }

    fn validate_at(&self, depth: usize) -> Result<()> {
        let check_range = |start: Option<Timestamp>, end: Option<Timestamp>| match (start, end) {
            (Some(s), Some(e)) if e < s => Err(Error::invalid(format!("trigger end {e} is before its start {s}"))),
            _ => Ok(()),
        };
        match self {
            Trigger::Cron(c) => check_range(c.start, c.end),
            Trigger::Interval(i) if !i.every.is_positive() => {
                Err(Error::invalid("an interval must be greater than zero"))
            }
            Trigger::Interval(i) if i.every < MIN_INTERVAL_FLOOR => Err(Error::invalid(format!(
                "an interval of {} is shorter than the shortest accepted, {}",
                crate::format_duration(i.every),
                crate::format_duration(MIN_INTERVAL_FLOOR)
            ))),
            Trigger::Interval(i) => {
                check_duration("an interval", i.every)?;
                check_range(i.start, i.end)
            }
            Trigger::Calendar(c) if c.every == 0 || c.every > MAX_CALENDAR_STEP => Err(Error::invalid(format!(
                "a calendar trigger's `every` must be between 1 and {MAX_CALENDAR_STEP}, not {}",
                c.every
            ))),
            Trigger::Calendar(_) | Trigger::Date(_) => Ok(()),
            Trigger::Any(c) | Trigger::All(c) => {
                if c.triggers.is_empty() {
                    return Err(Error::invalid("an any/all trigger needs at least one trigger"));
                }
                if c.triggers.len() > MAX_COMBINED {
                    return Err(Error::invalid(format!(
                        "an any/all trigger holds {} triggers; at most {MAX_COMBINED}",
                        c.triggers.len()
                    )));
                }
                if depth >= MAX_NESTING {
                    return Err(Error::invalid(format!("any/all triggers nest at most {MAX_NESTING} deep")));
                }
                c.triggers.iter().try_for_each(|t| t.validate_at(depth + 1))
            }
        }
    }

    /// The zone its wall-clock times are read in: a cron or calendar
    /// trigger's own, the first one found in a combination, none for
    /// intervals and instants (elapsed time has no zone).
    pub fn zone(&self) -> Option<&Zone> {
        match self {
            Trigger::Cron(c) => c.timezone.as_ref(),
            Trigger::Calendar(c) => c.timezone.as_ref(),
            Trigger::Interval(_) | Trigger::Date(_) => None,
            Trigger::Any(c) | Trigger::All(c) => c.triggers.iter().find_map(Trigger::zone),
        }
    }

    /// Fills in what the user left out, as of `now`: zones with `default_zone`,
    /// an interval's start with `now + every`, a calendar's start with today.
    /// Instants are truncated to microseconds, the precision stores keep.
    pub fn resolve(&mut self, now: Timestamp, default_zone: &Zone) {
        // Truncation toward zero to a whole `unit_ns`, as jiff's
        // `RoundMode::Trunc` (whose `round` divides in i128; this runs for
        // every job added).
        let whole = |t: Timestamp, unit_ns: i32| {
            let nanos = t.subsec_nanosecond();
            Timestamp::new(t.as_second(), nanos - nanos % unit_ns).unwrap_or(t)
        };
        // Stores keep instants in microseconds; a trigger that fires at a
        // finer instant would fire at a time its store cannot tell apart
        // from the stored next run, and fire twice or not at all.
        let micros = |t: &mut Option<Timestamp>| *t = t.map(|t| whole(t, 1_000));
        self.visit_mut(&mut |t| match t {
            Trigger::Cron(c) => {
                c.timezone.get_or_insert_with(|| default_zone.clone());
                micros(&mut c.start);
                micros(&mut c.end);
            }
            Trigger::Interval(i) => {
                if i.start.is_none() {
                    // Whole seconds (or milliseconds, for sub-second periods)
                    // read better than nanoseconds and store exactly.
                    let unit = if i.every < SignedDuration::from_secs(1) { 1_000_000 } else { 1_000_000_000 };
                    i.start = now.checked_add(i.every).ok().map(|a| whole(a, unit));
                }
                micros(&mut i.start);
                micros(&mut i.end);
                let whole_micros = i.every.as_micros().clamp(1, i128::from(i64::MAX)) as i64;
                i.every = SignedDuration::from_micros(whole_micros);
            }
            Trigger::Calendar(c) => {
                let zone = c.timezone.get_or_insert_with(|| default_zone.clone());
                let today = zone.tz.to_datetime(now).date();
                c.start.get_or_insert(today);
                micros(&mut c.end);
            }
            Trigger::Date(d) => d.at = whole(d.at, 1_000),
            Trigger::Any(_) | Trigger::All(_) => {}
        });
    }

    /// The first fire time strictly after `after`, or `None` when it has
    /// finished. Zones left unset are read as UTC.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Trigger::Cron(c) => c.next_after(after),
            Trigger::Interval(i) => i.next_after(after),
            Trigger::Calendar(c) => c.next_after(after),
            Trigger::Date(d) => (d.at > after).then_some(d.at),
            Trigger::Any(c) => c.triggers.iter().filter_map(|t| t.next_after(after)).min(),
            Trigger::All(c) => all_next_after(&c.triggers, after),
        }
    }

    /// The next `n` fire times after `after`.
    pub fn upcoming(&self, after: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut at = after;
        while out.len() < n {
            match self.next_after(at) {
                Some(t) => {
                    out.push(t);
                    at = t;
                }
                None => break,
            }
        }
        out
    }

    /// A human description: "At 09:00, Monday through Friday (Europe/London)",
    /// "every 4h", "every month on day 31 at 09:00 (UTC)".
    pub fn describe(&self) -> String {
        let zone = |z: &Option<Zone>| z.as_ref().map_or_else(|| "default zone".to_owned(), |z| z.name.clone());
        match self {
            Trigger::Cron(c) => format!("{} ({})", c.expr.describe(), zone(&c.timezone)),
            Trigger::Interval(i) => format!("every {}", format_duration(i.every)),
            Trigger::Calendar(c) => {
                let n = c.every;
                let unit = match (c.unit, n) {
                    (CalendarUnit::Days, 1) => "day".to_owned(),
                    (CalendarUnit::Weeks, 1) => "week".to_owned(),
                    (CalendarUnit::Months, 1) => "month".to_owned(),
                    (CalendarUnit::Years, 1) => "year".to_owned(),
                    (u, n) => format!("{n} {}", format!("{u:?}").to_lowercase()),
                };
                let on = match (c.unit, c.start) {
                    (CalendarUnit::Weeks, Some(d)) => format!(" on {:?}", d.weekday()),
                    (CalendarUnit::Months, Some(d)) if d.day() > 28 => {
                        format!(" on day {} (or the month's last day)", d.day())
                    }
                    (CalendarUnit::Months, Some(d)) => format!(" on day {}", d.day()),
                    (CalendarUnit::Years, Some(d)) => format!(" on {}", d.strftime("%B %-d")),
                    _ => String::new(),
                };
                format!("every {unit}{on} at {} ({})", c.at.strftime("%H:%M"), zone(&c.timezone))
            }
            Trigger::Date(d) => format!("once at {}", d.at),
            Trigger::Any(c) => {
                format!("any of: {}", c.triggers.iter().map(Trigger::describe).collect::<Vec<_>>().join("; "))
            }
            Trigger::All(c) => {
                format!("all of: {}", c.triggers.iter().map(Trigger::describe).collect::<Vec<_>>().join("; "))
            }
        }
    }
}

impl CronTrigger {
    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let tz = &self.timezone.as_ref().map_or(TimeZone::UTC, |z| z.tz.clone());
        // Fire times are whole seconds, so one second before `start` lets
        // `start` itself fire.
        let from = match self.start {
            Some(start) if after < start => start.checked_sub(SignedDuration::from_secs(1)).ok()?,
            _ => after,
        };
        let next = self.expr.next_after(from, tz)?;
        self.end.is_none_or(|end| next <= end).then_some(next)
    }
}

impl IntervalTrigger {
    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = self.start?;
        let next = if after < start {
            start
        } else {
            let every = self.every.as_nanos();
            let elapsed = after.duration_since(start).as_nanos();
            let periods = elapsed / every + 1;
            let offset = SignedDuration::try_from_nanos_i128(periods.checked_mul(every)?)?;
            start.checked_add(offset).ok()?
        };
        self.end.is_none_or(|end| next <= end).then_some(next)
    }
}

impl CalendarTrigger {
    fn nth(&self, k: i64) -> Option<Timestamp> {
        let start = self.start?;
        let n = i64::from(self.every).checked_mul(k)?;
        let span = match self.unit {
            CalendarUnit::Days => Span::new().try_days(n).ok()?,
            CalendarUnit::Weeks => Span::new().try_weeks(n).ok()?,
            CalendarUnit::Months => Span::new().try_months(n).ok()?,
            CalendarUnit::Years => Span::new().try_years(n).ok()?,
        };
        let date = start.checked_add(span).ok()?;
        let tz = &self.timezone.as_ref().map_or(TimeZone::UTC, |z| z.tz.clone());
        fixed_time_instant(tz, date.to_datetime(self.at))
    }

    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = self.start?;
        let tz = &self.timezone.as_ref().map_or(TimeZone::UTC, |z| z.tz.clone());
        let today = tz.to_datetime(after).date();
        // An estimate of the period index at `after`, one low so the walk
        // below only ever moves forward a step or two. Only its speed
        // depends on it: an estimate at most one above the true index gives
        // the same answer after the `- 1`, and the walk corrects any lower
        // one. So cargo-mutants' survivors in these lines (`/` to `%`, `-`
        // or `*` to `/`, and `periods - 1` to `periods / 1`: the `- 1` is
        // a margin, the estimate is never above the index) are equivalent
        // mutants: slower, not wrong.
        let every = i64::from(self.every.max(1));
        let periods = match self.unit {
            CalendarUnit::Days => i64::from(start.until(today).ok()?.get_days()) / every,
            CalendarUnit::Weeks => i64::from(start.until(today).ok()?.get_days()) / (7 * every),
            CalendarUnit::Months => {
                let months = (i64::from(today.year()) - i64::from(start.year())) * 12 + i64::from(today.month())
                    - i64::from(start.month());
                months / every
            }
            CalendarUnit::Years => (i64::from(today.year()) - i64::from(start.year())) / every,
        };
        let mut k = (periods - 1).max(0);
        let next = loop {
            let t = self.nth(k)?;
            if t > after {
                break t;
            }
            k += 1;
        };
        self.end.is_none_or(|end| next <= end).then_some(next)
    }
}

/// The instant of a wall-clock time under the cron rules for fixed-time jobs:
/// in a gap, the end of the gap; in a fold, the first occurrence.
fn fixed_time_instant(tz: &TimeZone, dt: jiff::civil::DateTime) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } | AmbiguousOffset::Fold { before: offset, .. } => {
            offset.to_timestamp(dt).ok()
        }
        AmbiguousOffset::Gap { after, .. } => {
            // `dt` read with the later offset is an instant before the gap;
            // the transition that follows it is where the gap ends.
            let before_gap = after.to_timestamp(dt).ok()?;
            tz.following(before_gap).next().map(|tr| tr.timestamp())
        }
    }
}

fn all_next_after(triggers: &[Trigger], after: Timestamp) -> Option<Timestamp> {
    let mut candidate = triggers.first()?.next_after(after)?;
    for _ in 0..ALL_SEARCH_LIMIT {
        // The latest of each child's first fire time at or after `candidate`.
        let just_before = candidate.checked_sub(SignedDuration::from_nanos(1)).ok()?;
        let mut latest = candidate;
        for t in triggers {
            latest = latest.max(t.next_after(just_before)?);
        }
        if latest == candidate {
            return Some(candidate);
        }
        candidate = latest;
    }
    None
}

/// A cron trigger for a parsed expression, in the scheduler's zone.
impl From<CronSchedule> for Trigger {
    fn from(expr: CronSchedule) -> Trigger {
        Trigger::Cron(Box::new(CronTrigger { expr, timezone: None, start: None, end: None }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn an_interval_of_zero_or_less_is_refused_as_such() {
        for every in [SignedDuration::ZERO, SignedDuration::from_secs(-5)] {
            let t = Trigger::Interval(IntervalTrigger { every, start: None, end: None });
            let e = t.validate().unwrap_err().to_string();
            assert!(e.contains("an interval must be greater than zero"), "{every:?}: {e}");
        }
    }

    #[test]
    fn resolving_starts_an_interval_on_a_whole_second_from_one_second_up() {
        let now = ts("2026-01-01T00:00:00.750Z");
        let start = |every: SignedDuration| {
            let mut t = Trigger::Interval(IntervalTrigger { every, start: None, end: None });
            t.resolve(now, &Zone::utc());
            let Trigger::Interval(i) = t else { unreachable!() };
            i.start.unwrap()
        };
        assert_eq!(start(SignedDuration::from_secs(1)), ts("2026-01-01T00:00:01Z"), "1s: whole seconds");
        assert_eq!(start(SignedDuration::from_millis(999)), ts("2026-01-01T00:00:01.749Z"), "below: milliseconds");
        assert_eq!(start(SignedDuration::from_secs(90)), ts("2026-01-01T00:01:30Z"));
    }

    #[test]
    fn interval_is_anchored_at_its_start() {
        let t = Trigger::Interval(IntervalTrigger {
            every: SignedDuration::from_hours(4),
            start: Some(ts("2026-01-01T00:00:00Z")),
            end: Some(ts("2026-01-01T12:00:00Z")),
        });
        assert_eq!(t.next_after(ts("2025-12-31T00:00:00Z")), Some(ts("2026-01-01T00:00:00Z")));
        assert_eq!(t.next_after(ts("2026-01-01T00:00:00Z")), Some(ts("2026-01-01T04:00:00Z")));
        assert_eq!(t.next_after(ts("2026-01-01T05:59:59Z")), Some(ts("2026-01-01T08:00:00Z")));
        assert_eq!(t.next_after(ts("2026-01-01T08:00:00Z")), Some(ts("2026-01-01T12:00:00Z")));
        assert_eq!(t.next_after(ts("2026-01-01T12:00:00Z")), None);
        assert_eq!(t.describe(), "every 4h");
    }

    #[test]
    fn calendar_months_clamp_to_the_last_day_without_drifting() {
        let mut t = Trigger::calendar(1, CalendarUnit::Months, "09:00").unwrap();
        if let Trigger::Calendar(c) = &mut t {
            c.start = Some("2026-01-31".parse().unwrap());
            c.timezone = Some(Zone::utc());
        }
        let times: Vec<String> = t.upcoming(ts("2026-01-01T00:00:00Z"), 4).iter().map(|t| t.to_string()).collect();
        assert_eq!(
            times,
            ["2026-01-31T09:00:00Z", "2026-02-28T09:00:00Z", "2026-03-31T09:00:00Z", "2026-04-30T09:00:00Z"]
        );
        assert_eq!(t.describe(), "every month on day 31 (or the month's last day) at 09:00 (UTC)");
    }

    #[test]
    fn a_calendar_trigger_stops_at_its_end() {
        let mut t = Trigger::calendar(1, CalendarUnit::Days, "09:00").unwrap();
        if let Trigger::Calendar(c) = &mut t {
            c.start = Some("2026-01-01".parse().unwrap());
            c.timezone = Some(Zone::utc());
            c.end = Some(ts("2026-01-03T09:00:00Z"));
        }
        let times: Vec<String> = t.upcoming(ts("2025-12-31T00:00:00Z"), 10).iter().map(|t| t.to_string()).collect();
        assert_eq!(
            times,
            ["2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z", "2026-01-03T09:00:00Z"],
            "the end is inclusive"
        );
        assert_eq!(t.next_after(ts("2026-01-03T09:00:00Z")), None);
    }

    #[test]
    fn calendar_days_keep_their_wall_time_across_dst() {
        let mut t =
            Trigger::calendar(1, CalendarUnit::Days, "02:30").unwrap().with_timezone("America/New_York").unwrap();
        if let Trigger::Calendar(c) = &mut t {
            c.start = Some("2026-03-01".parse().unwrap());
        }
        let tz = TimeZone::get("America/New_York").unwrap();
        let times: Vec<String> = t
            .upcoming(ts("2026-03-07T00:00:00Z"), 3)
            .iter()
            .map(|t| t.to_zoned_datetime(tz.clone()).strftime("%F %T %:z").to_string())
            .collect();
        // 02:30 does not exist on 2026-03-08: the gap ends at 03:00 EDT.
        assert_eq!(times, ["2026-03-07 02:30:00 -05:00", "2026-03-08 03:00:00 -04:00", "2026-03-09 02:30:00 -04:00"]);
        let mut fold =
            Trigger::calendar(1, CalendarUnit::Days, "01:30").unwrap().with_timezone("America/New_York").unwrap();
        if let Trigger::Calendar(c) = &mut fold {
            c.start = Some("2026-10-01".parse().unwrap());
        }
        let first = fold.next_after(ts("2026-11-01T04:00:00Z")).unwrap();
        assert_eq!(first.to_zoned_datetime(tz).strftime("%T %:z").to_string(), "01:30:00 -04:00");
    }

    #[test]
    fn any_and_all_combine() {
        let a = Trigger::cron("0 9 * * *").unwrap();
        let b = Trigger::cron("0 * * * MON").unwrap();
        let any = Trigger::any(vec![a.clone(), b.clone()]);
        // 2026-11-30 is a Monday.
        assert_eq!(any.next_after(ts("2026-11-29T23:30:00Z")), Some(ts("2026-11-30T00:00:00Z")));
        let all = Trigger::all(vec![a, b]);
        assert_eq!(all.next_after(ts("2026-11-26T00:00:00Z")), Some(ts("2026-11-30T09:00:00Z")));
        assert_eq!(all.next_after(ts("2026-11-30T09:00:00Z")), Some(ts("2026-12-07T09:00:00Z")));
        assert!(Trigger::any(vec![]).validate().is_err());
    }

    #[test]
    fn cron_respects_start_and_end() {
        let t = Trigger::cron("0 9 * * *")
            .unwrap()
            .with_start(ts("2026-01-05T09:00:00Z"))
            .with_end(ts("2026-01-06T09:00:00Z"));
        assert_eq!(t.upcoming(ts("2026-01-01T00:00:00Z"), 5), [ts("2026-01-05T09:00:00Z"), ts("2026-01-06T09:00:00Z")]);
    }

    #[test]
    fn resolve_truncates_instants_to_the_microseconds_stores_keep() {
        let start = ts("2026-01-01T00:00:00.123456789Z");
        let mut t = Trigger::every("1h").unwrap().with_start(start).with_end(ts("2026-02-01T00:00:00.999999999Z"));
        t.resolve(ts("2026-01-01T00:00:00Z"), &Zone::utc());
        let Trigger::Interval(i) = &t else { unreachable!() };
        assert_eq!(i.start, Some(ts("2026-01-01T00:00:00.123456Z")));
        assert_eq!(i.end, Some(ts("2026-02-01T00:00:00.999999Z")));
        // The first fire time is then exactly what a store will read back.
        assert_eq!(t.next_after(ts("2025-12-31T00:00:00Z")), Some(ts("2026-01-01T00:00:00.123456Z")));
        let mut d = Trigger::at(start);
        d.resolve(start, &Zone::utc());
        assert_eq!(d.next_after(ts("2025-01-01T00:00:00Z")), Some(ts("2026-01-01T00:00:00.123456Z")));
    }

    #[test]
    fn json_shape_is_stable() {
        let t = Trigger::cron("0 9 * * MON-FRI").unwrap().with_timezone("Europe/London").unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"type":"cron","expr":"0 9 * * MON-FRI","timezone":"Europe/London"}"#);
        assert_eq!(serde_json::from_str::<Trigger>(&json).unwrap(), t);

        let t: Trigger =
            serde_json::from_str(r#"{"type":"interval","every":"1h 30m","start":"2026-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"type":"interval","every":"1h 30m","start":"2026-01-01T00:00:00Z"}"#
        );

        let t: Trigger = serde_json::from_str(
            r#"{"type":"calendar","every":2,"unit":"weeks","at":"09:00:00","start":"2026-01-05"}"#,
        )
        .unwrap();
        assert_eq!(t.describe(), "every 2 weeks on Monday at 09:00 (default zone)");

        for bad in [
            r#"{"type":"cron","expr":"0 9 * * 8"}"#,
            r#"{"type":"cron","expr":"0 9 * * *","timezone":"Mars/Olympus"}"#,
            r#"{"type":"interval","every":"0s"}"#,
            r#"{"type":"lunar"}"#,
        ] {
            assert!(serde_json::from_str::<Trigger>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn any_and_all_have_a_stable_json_shape_and_nest() {
        let t = Trigger::any(vec![
            Trigger::cron("0 9 * * *").unwrap().with_timezone("Europe/London").unwrap(),
            Trigger::all(vec![Trigger::cron("0 * * * MON").unwrap(), Trigger::at(ts("2026-11-30T09:00:00Z"))]),
        ]);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(
            json,
            r#"{"type":"any","triggers":[{"type":"cron","expr":"0 9 * * *","timezone":"Europe/London"},{"type":"all","triggers":[{"type":"cron","expr":"0 * * * MON"},{"type":"date","at":"2026-11-30T09:00:00Z"}]}]}"#
        );
        assert_eq!(serde_json::from_str::<Trigger>(&json).unwrap(), t);
        assert_eq!(
            t.describe(),
            "any of: At 09:00 (Europe/London); all of: Every hour, only on Monday (default zone); once at 2026-11-30T09:00:00Z"
        );
        // An `all` inside an `any`: its instant (a Monday, 09:00 UTC) and the daily 09:00 London.
        assert_eq!(t.next_after(ts("2026-11-30T08:30:00Z")), Some(ts("2026-11-30T09:00:00Z")));
        for bad in
            [r#"{"type":"any"}"#, r#"{"type":"all","triggers":{}}"#, r#"{"type":"any","triggers":[{"type":"lunar"}]}"#]
        {
            assert!(serde_json::from_str::<Trigger>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn combinations_are_bounded_in_width_and_depth() {
        let leaf = || Trigger::cron("0 9 * * *").unwrap();
        assert!(Trigger::any((0..MAX_COMBINED).map(|_| leaf()).collect()).validate().is_ok());
        let e = Trigger::all((0..=MAX_COMBINED).map(|_| leaf()).collect()).validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("an any/all trigger holds {} triggers; at most {MAX_COMBINED}", MAX_COMBINED + 1)
        );
        let nest = |depth: usize| {
            (0..depth).fold(leaf(), |t, i| if i % 2 == 0 { Trigger::any(vec![t]) } else { Trigger::all(vec![t]) })
        };
        assert!(nest(MAX_NESTING).validate().is_ok(), "{MAX_NESTING} deep is allowed");
        let e = nest(MAX_NESTING + 1).validate().unwrap_err();
        assert_eq!(e.to_string(), format!("any/all triggers nest at most {MAX_NESTING} deep"));
        // A too-deep trigger read from JSON is refused by validation, not by the parser.
        let json = serde_json::to_string(&nest(MAX_NESTING + 1)).unwrap();
        assert!(serde_json::from_str::<Trigger>(&json).unwrap().validate().is_err());
        assert!(Trigger::all(vec![Trigger::any(vec![])]).validate().is_err(), "an empty child too");
        let wide_child = Trigger::any(vec![Trigger::all((0..=MAX_COMBINED).map(|_| leaf()).collect())]);
        assert!(wide_child.validate().is_err(), "a child too wide");
    }

    #[test]
    fn an_all_that_never_coincides_gives_up_after_its_search_limit() {
        // 09:00 and 09:30 never coincide: after ALL_SEARCH_LIMIT candidates
        // (one a day here, so about 27 years), there is no next fire time.
        let never = Trigger::all(vec![Trigger::cron("0 9 * * *").unwrap(), Trigger::cron("30 9 * * *").unwrap()]);
        assert_eq!(never.next_after(ts("2026-01-01T00:00:00Z")), None);
        assert!(never.upcoming(ts("2026-01-01T00:00:00Z"), 3).is_empty());
        // One that coincides only after many candidates is still found: every
        // 7 minutes and every 11 minutes meet every 77.
        let start = ts("2026-01-01T00:00:00Z");
        let every = |m: i64| {
            Trigger::Interval(IntervalTrigger { every: SignedDuration::from_mins(m), start: Some(start), end: None })
        };
        let both = Trigger::all(vec![every(7), every(11)]);
        assert_eq!(
            both.upcoming(start, 2),
            [start + SignedDuration::from_mins(77), start + SignedDuration::from_mins(154)]
        );
        // An `all` with a finished child is finished.
        let ended = Trigger::all(vec![every(7), Trigger::at(ts("2025-01-01T00:00:00Z"))]);
        assert_eq!(ended.next_after(start), None);
    }

    #[test]
    fn describe_names_every_kind_and_unit() {
        let cal = |every: u32, unit: CalendarUnit, start: &str| {
            let mut t = Trigger::calendar(every, unit, "09:05").unwrap().with_timezone("UTC").unwrap();
            if let Trigger::Calendar(c) = &mut t {
                c.start = Some(start.parse().unwrap());
            }
            t.describe()
        };
        assert_eq!(cal(1, CalendarUnit::Days, "2026-01-05"), "every day at 09:05 (UTC)");
        assert_eq!(cal(3, CalendarUnit::Days, "2026-01-05"), "every 3 days at 09:05 (UTC)");
        assert_eq!(cal(1, CalendarUnit::Weeks, "2026-01-05"), "every week on Monday at 09:05 (UTC)");
        assert_eq!(cal(1, CalendarUnit::Months, "2026-01-28"), "every month on day 28 at 09:05 (UTC)");
        assert_eq!(
            cal(1, CalendarUnit::Months, "2026-01-29"),
            "every month on day 29 (or the month's last day) at 09:05 (UTC)"
        );
        assert_eq!(cal(2, CalendarUnit::Months, "2026-01-05"), "every 2 months on day 5 at 09:05 (UTC)");
        assert_eq!(cal(1, CalendarUnit::Years, "2026-02-05"), "every year on February 5 at 09:05 (UTC)");
        assert_eq!(
            Trigger::calendar(1, CalendarUnit::Days, "09:05").unwrap().describe(),
            "every day at 09:05 (default zone)"
        );
        assert_eq!(Trigger::at(ts("2026-01-01T00:00:00Z")).describe(), "once at 2026-01-01T00:00:00Z");
        assert_eq!(Trigger::every("90m").unwrap().describe(), "every 1h 30m");
    }

    #[test]
    fn validate_refuses_an_end_before_the_start_and_bad_steps() {
        let (a, b) = (ts("2026-01-02T00:00:00Z"), ts("2026-01-01T00:00:00Z"));
        for t in [Trigger::cron("0 9 * * *").unwrap(), Trigger::every("1h").unwrap()] {
            let e = t.clone().with_start(a).with_end(b).validate().unwrap_err();
            assert_eq!(e.to_string(), format!("trigger end {b} is before its start {a}"));
            assert!(t.clone().with_start(a).with_end(a).validate().is_ok(), "a start equal to the end is fine");
        }
        assert!(Trigger::calendar(0, CalendarUnit::Days, "09:00").is_err());
        assert!(Trigger::calendar(MAX_CALENDAR_STEP, CalendarUnit::Days, "09:00").is_ok());
        assert!(Trigger::calendar(MAX_CALENDAR_STEP + 1, CalendarUnit::Days, "09:00").is_err());
        assert!(Trigger::calendar(1, CalendarUnit::Days, "25:00").is_err());
        let floor = Trigger::Interval(IntervalTrigger { every: MIN_INTERVAL_FLOOR, start: None, end: None });
        assert!(floor.validate().is_ok(), "the floor itself is accepted");
        let below = Trigger::Interval(IntervalTrigger {
            every: MIN_INTERVAL_FLOOR - SignedDuration::from_nanos(1),
            start: None,
            end: None,
        });
        assert!(below.validate().is_err());
    }

    #[test]
    fn min_interval_and_zone_look_inside_combinations() {
        let london = Trigger::cron("0 9 * * *").unwrap().with_timezone("Europe/London").unwrap();
        let t = Trigger::all(vec![
            Trigger::every("2h").unwrap(),
            Trigger::any(vec![Trigger::at(ts("2026-01-01T00:00:00Z")), Trigger::every("30m").unwrap(), london]),
        ]);
        assert_eq!(t.min_interval(), Some(SignedDuration::from_mins(30)));
        assert_eq!(t.zone().map(Zone::name), Some("Europe/London"));
        assert_eq!(Trigger::cron("0 9 * * *").unwrap().min_interval(), None);
        assert_eq!(Trigger::every("1h").unwrap().zone(), None);
        let cal = Trigger::calendar(1, CalendarUnit::Days, "09:00").unwrap().with_timezone("Asia/Tokyo").unwrap();
        assert_eq!(cal.zone().map(Zone::name), Some("Asia/Tokyo"));
    }

    #[test]
    fn resolve_fills_in_what_was_left_out() {
        let now = ts("2026-01-01T10:20:30.456789Z");
        let mut t = Trigger::all(vec![
            Trigger::every("1h").unwrap(),
            Trigger::every("250ms").unwrap(),
            Trigger::cron("0 9 * * *").unwrap(),
            Trigger::calendar(1, CalendarUnit::Days, "09:00").unwrap().with_timezone("Asia/Tokyo").unwrap(),
        ]);
        t.resolve(now, &Zone::get("Europe/Paris").unwrap());
        let Trigger::All(c) = &t else { unreachable!() };
        let [Trigger::Interval(hourly), Trigger::Interval(fast), Trigger::Cron(cron), Trigger::Calendar(cal)] =
            &c.triggers[..]
        else {
            panic!("{t:?}")
        };
        // Whole seconds for a period of a second or more, milliseconds below.
        assert_eq!(hourly.start, Some(ts("2026-01-01T11:20:30Z")));
        assert_eq!(fast.start, Some(ts("2026-01-01T10:20:30.706Z")));
        assert_eq!(cron.timezone.as_ref().map(Zone::name), Some("Europe/Paris"));
        // The calendar keeps its zone, and starts today in it (19:20 in Tokyo).
        assert_eq!(cal.timezone.as_ref().map(Zone::name), Some("Asia/Tokyo"));
        assert_eq!(cal.start, Some("2026-01-01".parse().unwrap()));
        let mut late = Trigger::calendar(1, CalendarUnit::Days, "09:00").unwrap().with_timezone("Asia/Tokyo").unwrap();
        late.resolve(ts("2026-01-01T20:00:00Z"), &Zone::utc());
        let Trigger::Calendar(cal) = &late else { unreachable!() };
        assert_eq!(cal.start, Some("2026-01-02".parse().unwrap()), "already 2 January in Tokyo");
    }

    #[test]
    fn with_start_on_a_calendar_takes_the_date_in_its_zone() {
        let t = Trigger::calendar(1, CalendarUnit::Days, "09:00")
            .unwrap()
            .with_timezone("Asia/Tokyo")
            .unwrap()
            .with_start(ts("2026-01-01T20:00:00Z"));
        let Trigger::Calendar(c) = &t else { unreachable!() };
        assert_eq!(c.start, Some("2026-01-02".parse().unwrap()));
        assert_eq!(t.next_after(ts("2026-01-01T00:00:00Z")), Some(ts("2026-01-02T00:00:00Z")), "09:00 in Tokyo");
        let date = Trigger::at(ts("2026-01-01T00:00:00Z"));
        assert_eq!(date.clone().with_start(ts("2027-01-01T00:00:00Z")).with_end(ts("2025-01-01T00:00:00Z")), date);
    }

    #[test]
    fn zones_are_iana_names() {
        let e = Zone::get("Mars/Olympus").unwrap_err();
        assert_eq!(e.to_string(), "unknown time zone \"Mars/Olympus\": expected an IANA name such as Europe/London");
        let z = Zone::get("Europe/London").unwrap();
        assert_eq!(
            (z.name(), z.to_string(), format!("{z:?}")),
            ("Europe/London", "Europe/London".into(), "Zone(\"Europe/London\")".into())
        );
        assert_eq!(z, Zone::get("Europe/London").unwrap());
        assert_ne!(z, Zone::utc());
        assert!(!Zone::system().name().is_empty());
    }
}
