//! The parsed form of a cron expression and the search for matching wall-clock times.
//!
//! # Implementation
//!
//! Each field is a bit set (`seconds: u64` with bits 0-59, `hours: u32` with bits
//! 0-23, and so on), so "the next allowed minute at or after m" is one shift and
//! one `trailing_zeros`. The day fields are the only ones that depend on the
//! calendar, and they depend on it only through two numbers: the length of the
//! month and the weekday of its first day. There are 4 × 7 such month shapes,
//! so at parse time every shape gets a precomputed 31-bit mask of matching days
//! (`day_table`), with the Vixie OR/AND rule, `L`, `LW`, `NW`, `DL` and `D#K`
//! already applied. The search never looks at a day that cannot match.
//!
//! [`Fields::next_civil`] walks year → month → day → hour → minute → second,
//! jumping each field to its next allowed value and resetting the smaller ones,
//! which costs O(fields) per answer rather than O(minutes scanned). Because a
//! schedule is rejected at parse time unless some month shape has a matching
//! day, and every shape recurs within the 400-year Gregorian cycle, the walk
//! always ends: it finds a time, or it runs past year 9999.

use crate::civil::{Civil, MAX_YEAR, MIN_YEAR, days_in_month, weekday};

/// One of the six fields of a cron expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The optional leading seconds field of a 6-field expression (0-59).
    Second,
    /// Minutes (0-59).
    Minute,
    /// Hours (0-23).
    Hour,
    /// Day of the month (1-31, `L`, `LW`, `NW`).
    DayOfMonth,
    /// Month (1-12, `JAN`-`DEC`).
    Month,
    /// Day of the week (0-7 with 0 and 7 Sunday, `SUN`-`SAT`, `DL`, `D#K`).
    DayOfWeek,
}

impl Field {
    /// The field's name as used in error messages, e.g. `day-of-week`.
    pub fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    pub(crate) fn min(self) -> u32 {
        match self {
            Field::DayOfMonth | Field::Month => 1,
            _ => 0,
        }
    }

    pub(crate) fn max(self) -> u32 {
        match self {
            Field::Second | Field::Minute => 59,
            Field::Hour => 23,
            Field::DayOfMonth => 31,
            Field::Month => 12,
            Field::DayOfWeek => 7,
        }
    }

    /// What a value of this field looks like, for error messages.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Field::Second | Field::Minute => "0-59",
            Field::Hour => "0-23",
            Field::DayOfMonth => "1-31",
            Field::Month => "1-12 or JAN-DEC",
            Field::DayOfWeek => "0-7 or SUN-SAT",
        }
    }
}

/// The day-of-month and day-of-week fields, before they are folded into
/// [`Fields::day_table`]. Kept because `describe` and equality need them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct DaySpec {
    /// Plain days of the month, bits 1-31.
    pub(crate) dom: u32,
    /// `L`: the last day of the month.
    pub(crate) dom_last: bool,
    /// `LW`: the last weekday (Monday-Friday) of the month.
    pub(crate) dom_last_weekday: bool,
    /// `NW`: the weekday nearest day N; 0 when absent.
    pub(crate) dom_nearest_weekday: u8,
    /// Plain days of the week, bits 0-6 (Sunday = 0).
    pub(crate) dow: u8,
    /// `DL`: the last D-day of the month, bits 0-6.
    pub(crate) dow_last: u8,
    /// `D#K`: for each weekday D, bits 1-5 hold the K values.
    pub(crate) dow_nth: [u8; 7],
    /// Whether the day-of-month text starts with something other than `*` or `?`.
    pub(crate) dom_restricted: bool,
    /// Whether the day-of-week text starts with something other than `*` or `?`.
    pub(crate) dow_restricted: bool,
}

impl DaySpec {
    /// Both day fields restricted: a day matches if either does (Vixie cron).
    pub(crate) fn is_or(&self) -> bool {
        self.dom_restricted && self.dow_restricted
    }

    /// The days (bits 1-31) of a month of `len` days starting on weekday
    /// `first` (0 = Sunday) that this spec matches.
    fn month_mask(&self, len: u8, first: u8) -> u32 {
        let valid = mask_through(len);
        let weekday_of = |day: u8| (first + (day - 1) % 7) % 7;

        let mut dom = self.dom & valid;
        if self.dom_last {
            dom |= 1 << len;
        }
        if self.dom_last_weekday {
            let last = match weekday_of(len) {
                0 => len - 2, // Sunday → Friday
                6 => len - 1, // Saturday → Friday
                _ => len,
            };
            dom |= 1 << last;
        }
        let n = self.dom_nearest_weekday;
        if n != 0 && n <= len {
            let day = match weekday_of(n) {
                6 if n == 1 => 3,       // Saturday the 1st → Monday the 3rd
                6 => n - 1,             // Saturday → Friday
                0 if n == len => n - 2, // Sunday the last → Friday
                0 => n + 1,             // Sunday → Monday
                _ => n,
            };
            dom |= 1 << day;
        }

        let mut dow = 0u32;
        for wd in 0..7u8 {
            // The first day of the month that falls on weekday `wd`.
            let first_day = 1 + (wd + 7 - first) % 7;
            if self.dow & (1 << wd) != 0 {
                dow |= EVERY_SEVENTH_DAY << first_day;
            }
            let nth = self.dow_nth[usize::from(wd)];
            for k in 1..=5u8 {
                if nth & (1 << k) != 0 {
                    let day = first_day + 7 * (k - 1);
                    if day <= len {
                        dow |= 1 << day;
                    }
                }
            }
            if self.dow_last & (1 << wd) != 0 {
                let mut day = first_day;
                while day + 7 <= len {
                    day += 7;
                }
                dow |= 1 << day;
            }
        }
        dow &= valid;

        if self.is_or() { dom | dow } else { dom & dow }
    }

    /// Whether `year-month-day` matches, computed directly rather than from a
    /// table. Used to check the table in tests.
    #[cfg(test)]
    pub(crate) fn matches_date_slowly(&self, year: i32, month: u8, day: u8) -> bool {
        let len = days_in_month(year, month);
        let wd = weekday(year, month, day);
        let is_weekday = |d: u8| (1..=5).contains(&weekday(year, month, d));
        let nearest = |n: u8| (1..=len).filter(|&d| is_weekday(d)).min_by_key(|&d| (d.abs_diff(n), d)).unwrap();
        let dom = self.dom & (1 << day) != 0
            || (self.dom_last && day == len)
            || (self.dom_last_weekday && day == (1..=len).rev().find(|&d| is_weekday(d)).unwrap())
            || (self.dom_nearest_weekday != 0
                && self.dom_nearest_weekday <= len
                && day == nearest(self.dom_nearest_weekday));
        let nth = (day - 1) / 7 + 1;
        let dow = self.dow & (1 << wd) != 0
            || self.dow_nth[usize::from(wd)] & (1 << nth) != 0
            || (self.dow_last & (1 << wd) != 0 && day + 7 > len);
        if self.is_or() { dom || dow } else { dom && dow }
    }
}

/// Bits 1, 8, 15, 22 and 29: shifted left by d - 1 it marks every seventh day from d.
const EVERY_SEVENTH_DAY: u32 = (1 << 0) | (1 << 7) | (1 << 14) | (1 << 21) | (1 << 28);

/// Bits 1 through `len`.
fn mask_through(len: u8) -> u32 {
    ((1u64 << (len + 1)) - 2) as u32
}

/// The allowed values of every field, in the form the search uses.
#[derive(Clone, Debug)]
pub(crate) struct Fields {
    pub(crate) seconds: u64,
    pub(crate) minutes: u64,
    pub(crate) hours: u32,
    pub(crate) months: u16,
    pub(crate) days: DaySpec,
    /// Matching days for each month shape, indexed `[len - 28][weekday of the 1st]`.
    day_table: [[u32; 7]; 4],
}

impl PartialEq for Fields {
    fn eq(&self, other: &Self) -> bool {
        // `day_table` is derived from `days`.
        (self.seconds, self.minutes, self.hours, self.months, self.days)
            == (other.seconds, other.minutes, other.hours, other.months, other.days)
    }
}

impl Eq for Fields {}

impl Fields {
    pub(crate) fn new(seconds: u64, minutes: u64, hours: u32, months: u16, days: DaySpec) -> Fields {
        let mut day_table = [[0; 7]; 4];
        for (i, row) in day_table.iter_mut().enumerate() {
            for (first, mask) in row.iter_mut().enumerate() {
                *mask = days.month_mask(28 + i as u8, first as u8);
            }
        }
        Fields { seconds, minutes, hours, months, days, day_table }
    }

    /// Whether some date can match: some allowed month, in some year, has a
    /// matching day. Every (length, first weekday) shape of every month occurs
    /// within the 400-year Gregorian cycle, so checking the shapes is exact.
    pub(crate) fn can_fire(&self) -> bool {
        (1..=12u8).filter(|m| self.months & (1 << m) != 0).any(|month| {
            let lengths: &[u8] = match month {
                2 => &[28, 29],
                4 | 6 | 9 | 11 => &[30],
                _ => &[31],
            };
            lengths.iter().any(|&len| self.day_table[usize::from(len - 28)].iter().any(|&m| m != 0))
        })
    }

    fn day_mask(&self, year: i32, month: u8) -> u32 {
        let len = days_in_month(year, month);
        self.day_table[usize::from(len - 28)][usize::from(weekday(year, month, 1))]
    }

    /// Whether a wall-clock time matches every field.
    pub(crate) fn matches_civil(&self, c: Civil) -> bool {
        self.seconds & (1 << c.second) != 0
            && self.minutes & (1 << c.minute) != 0
            && self.hours & (1 << c.hour) != 0
            && self.months & (1 << c.month) != 0
            && self.day_mask(c.year, c.month) & (1 << c.day) != 0
    }

    /// The first matching wall-clock time at or after `from`, or `None` when
    /// there is none before the end of year 9999.
    pub(crate) fn next_civil(&self, from: Civil) -> Option<Civil> {
        let Civil { mut year, mut month, mut day, mut hour, mut minute, mut second } = from;
        loop {
            if year > MAX_YEAR {
                return None;
            }
            match next_bit(u64::from(self.months), month) {
                None => {
                    (year, month, day, hour, minute, second) = (year + 1, 1, 1, 0, 0, 0);
                    continue;
                }
                Some(m) if m != month => (month, day, hour, minute, second) = (m, 1, 0, 0, 0),
                Some(_) => {}
            }
            match next_bit(u64::from(self.day_mask(year, month)), day) {
                None => {
                    (month, day, hour, minute, second) = (month + 1, 1, 0, 0, 0);
                    if month > 12 {
                        (year, month) = (year + 1, 1);
                    }
                    continue;
                }
                Some(d) if d != day => (day, hour, minute, second) = (d, 0, 0, 0),
                Some(_) => {}
            }
            match next_bit(u64::from(self.hours), hour) {
                // Day 32 is never in a day mask, so the day search moves on to the next month.
                None => {
                    (day, hour, minute, second) = (day + 1, 0, 0, 0);
                    continue;
                }
                Some(h) if h != hour => (hour, minute, second) = (h, 0, 0),
                Some(_) => {}
            }
            match next_bit(self.minutes, minute) {
                None => {
                    (hour, minute, second) = (hour + 1, 0, 0);
                    continue;
                }
                Some(m) if m != minute => (minute, second) = (m, 0),
                Some(_) => {}
            }
            match next_bit(self.seconds, second) {
                None => {
                    (minute, second) = (minute + 1, 0);
                    continue;
                }
                Some(s) => second = s,
            }
            return Some(Civil { year, month, day, hour, minute, second });
        }
    }

    /// The last matching wall-clock time at or before `from`, or `None` when
    /// there is none after the start of year -9999.
    pub(crate) fn prev_civil(&self, from: Civil) -> Option<Civil> {
        const END: u8 = u8::MAX; // "the last value of this field"
        let Civil { mut year, mut month, mut day, mut hour, mut minute, mut second } = from;
        loop {
            if year < MIN_YEAR {
                return None;
            }
            match prev_bit(u64::from(self.months), month) {
                None => {
                    (year, month, day, hour, minute, second) = (year - 1, 12, END, END, END, END);
                    continue;
                }
                Some(m) if m != month => (month, day, hour, minute, second) = (m, END, END, END, END),
                Some(_) => {}
            }
            let len = days_in_month(year, month);
            match prev_bit(u64::from(self.day_mask(year, month)), day.min(len)) {
                None => {
                    (day, hour, minute, second) = (END, END, END, END);
                    if month == 1 {
                        (year, month) = (year - 1, 12);
                    } else {
                        month -= 1;
                    }
                    continue;
                }
                Some(d) if d != day => (day, hour, minute, second) = (d, END, END, END),
                Some(_) => {}
            }
            match prev_bit(u64::from(self.hours), hour.min(23)) {
                None => {
                    // Day 0 is never in a day mask, so the day search moves to the previous month.
                    (day, hour, minute, second) = (day - 1, END, END, END);
                    continue;
                }
                Some(h) if h != hour => (hour, minute, second) = (h, END, END),
                Some(_) => {}
            }
            match prev_bit(self.minutes, minute.min(59)) {
                None if hour == 0 => {
                    (day, hour, minute, second) = (day - 1, END, END, END);
                    continue;
                }
                None => {
                    (hour, minute, second) = (hour - 1, END, END);
                    continue;
                }
                Some(m) if m != minute => (minute, second) = (m, END),
                Some(_) => {}
            }
            match prev_bit(self.seconds, second.min(59)) {
                None if minute == 0 && hour == 0 => {
                    (day, hour, minute, second) = (day - 1, END, END, END);
                    continue;
                }
                None if minute == 0 => {
                    (hour, minute, second) = (hour - 1, END, END);
                    continue;
                }
                None => {
                    (minute, second) = (minute - 1, END);
                    continue;
                }
                Some(s) => second = s,
            }
            return Some(Civil { year, month, day, hour, minute, second });
        }
    }
}

/// The lowest set bit of `mask` at or above `from`.
fn next_bit(mask: u64, from: u8) -> Option<u8> {
    if from >= 64 {
        return None;
    }
    let rest = mask >> from;
    (rest != 0).then(|| from + rest.trailing_zeros() as u8)
}

/// The highest set bit of `mask` at or below `from`.
fn prev_bit(mask: u64, from: u8) -> Option<u8> {
    let keep = if from >= 63 { u64::MAX } else { (1u64 << (from + 1)) - 1 };
    let rest = mask & keep;
    (rest != 0).then(|| 63 - rest.leading_zeros() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CronSchedule;

    #[test]
    fn bit_helpers() {
        assert_eq!(next_bit(0b1010, 0), Some(1));
        assert_eq!(next_bit(0b1010, 2), Some(3));
        assert_eq!(next_bit(0b1010, 4), None);
        assert_eq!(next_bit(u64::MAX, 64), None);
        assert_eq!(prev_bit(0b1010, 2), Some(1));
        assert_eq!(prev_bit(0b1010, 0), None);
        assert_eq!(prev_bit(1 << 63, 255), Some(63));
    }

    /// The precomputed day table agrees with a direct evaluation of every
    /// day-field feature on every day of a full 28-year weekday cycle.
    #[test]
    fn day_table_agrees_with_direct_evaluation() {
        let exprs = [
            "0 0 * * *",
            "0 0 1,15 * *",
            "0 0 L * *",
            "0 0 1,L * *",
            "0 0 LW * *",
            "0 0 1W * *",
            "0 0 15W * *",
            "0 0 31W * *",
            "0 0 30W * *",
            "0 0 * * 5L",
            "0 0 * * 1#1,5#5",
            "0 0 1 * 5#3",
            "0 0 */2 * 1",
            "0 0 13 * 5",
            "0 0 ? * MON-FRI",
            "0 0 L * 0L,6#2",
            "0 0 1-7 * 1",
            "0 0 * * 7",
            "0 0 29 * 0-3",
        ];
        for expr in exprs {
            let s = CronSchedule::parse(expr).unwrap();
            let f = &s.fields;
            for year in 2000..2028 {
                for month in 1..=12 {
                    for day in 1..=days_in_month(year, month) {
                        let c = Civil { year, month, day, hour: 0, minute: 0, second: 0 };
                        assert_eq!(
                            f.matches_civil(c),
                            f.days.matches_date_slowly(year, month, day),
                            "{expr} on {year}-{month}-{day}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn next_and_prev_civil_walk_in_both_directions() {
        let s = CronSchedule::parse("*/7 9-17 * * 1-5").unwrap();
        let f = &s.fields;
        let mut c = Civil { year: 2026, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
        let mut forward = Vec::new();
        for _ in 0..500 {
            c = f.next_civil(c).unwrap();
            forward.push(c);
            c = Civil::from_secs(c.to_secs() + 1);
        }
        let mut back = Vec::new();
        let mut c = Civil::from_secs(forward.last().unwrap().to_secs());
        for _ in 0..500 {
            c = f.prev_civil(c).unwrap();
            back.push(c);
            c = Civil::from_secs(c.to_secs() - 1);
        }
        back.reverse();
        assert_eq!(forward, back);
    }
}
