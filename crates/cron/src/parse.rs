//! The parser: text → [`Fields`], following `CRON.md` to the letter.

use crate::error::CronError;
use crate::schedule::{DaySpec, Field, Fields};

/// The result of parsing, before it is wrapped in a `CronSchedule`.
pub(crate) struct Parsed {
    pub(crate) fields: Fields,
    pub(crate) has_seconds: bool,
    pub(crate) fixed_time: bool,
    /// The expression with runs of blanks collapsed to one space, and macros lowercased.
    pub(crate) normalized: String,
}

const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const MONTH_NAMES: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

pub(crate) fn parse(input: &str) -> Result<Parsed, CronError> {
    if input.len() > crate::MAX_EXPRESSION_LEN {
        return Err(CronError::too_long(input.len()));
    }
    // Reject anything that is not printable ASCII or a blank before looking at
    // structure, so every later offset is a character offset too.
    for (col, c) in input.chars().enumerate() {
        if !(c.is_ascii_graphic() || is_blank(c)) {
            return Err(CronError::syntax(
                None,
                col + 1,
                format!(
                    "invalid character {c:?} at column {}: expected digits, names, blanks or * ? , - / # L W",
                    col + 1
                ),
            ));
        }
    }
    let tokens: Vec<(usize, &str)> = split_blanks(input);
    match tokens.as_slice() {
        [] => Err(CronError::syntax(
            None,
            1,
            "empty cron expression: expected 5 or 6 fields or a macro such as @daily".into(),
        )),
        [(col, word)] if word.starts_with('@') => {
            let lower = word.to_ascii_lowercase();
            let Some((name, expansion)) = MACROS.iter().find(|(name, _)| *name == lower) else {
                return Err(CronError::syntax(
                    None,
                    col + 1,
                    format!(
                        "unknown macro {word:?} at column {}: expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly",
                        col + 1
                    ),
                ));
            };
            let mut parsed =
                parse_fields(&split_blanks(expansion), input).expect("every macro expands to a valid expression");
            parsed.normalized = (*name).to_owned();
            Ok(parsed)
        }
        tokens => parse_fields(tokens, input),
    }
}

/// Splits on runs of spaces and tabs, keeping each token's byte offset.
fn split_blanks(input: &str) -> Vec<(usize, &str)> {
    let mut tokens = Vec::new();
    let mut start = None;
    for (i, c) in input.char_indices() {
        match (is_blank(c), start) {
            (true, Some(s)) => {
                tokens.push((s, &input[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        tokens.push((s, &input[s..]));
    }
    tokens
}

fn parse_fields(tokens: &[(usize, &str)], input: &str) -> Result<Parsed, CronError> {
    let order: &[Field] = match tokens.len() {
        5 => &[Field::Minute, Field::Hour, Field::DayOfMonth, Field::Month, Field::DayOfWeek],
        6 => &[Field::Second, Field::Minute, Field::Hour, Field::DayOfMonth, Field::Month, Field::DayOfWeek],
        n => {
            let (col, word) = tokens[0];
            let message = if word.starts_with('@') {
                format!("a macro such as {word:?} must be the whole expression (column {})", col + 1)
            } else {
                format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with a leading second), found {n} in {:?}",
                    input.trim_matches(is_blank)
                )
            };
            return Err(CronError::syntax(None, col + 1, message));
        }
    };

    let mut seconds = 1u64; // second 0 when there is no seconds field
    let (mut minutes, mut hours, mut months) = (0u64, 0u32, 0u16);
    let mut days = DaySpec::default();
    let mut dom_text = (0, "");
    for (&field, &(offset, text)) in order.iter().zip(tokens) {
        let p = FieldParser { field, text, offset };
        match field {
            Field::Second => seconds = p.plain()?,
            Field::Minute => minutes = p.plain()?,
            Field::Hour => hours = p.plain()? as u32,
            Field::Month => months = p.plain()? as u16,
            Field::DayOfMonth => {
                p.day_of_month(&mut days)?;
                dom_text = (offset, text);
            }
            Field::DayOfWeek => p.day_of_week(&mut days)?,
        }
    }

    let minute_text = tokens[tokens.len() - 5].1;
    let hour_text = tokens[tokens.len() - 4].1;
    let fields = Fields::new(seconds, minutes, hours, months, days);
    if !fields.can_fire() {
        let month_text = tokens[tokens.len() - 2].1;
        let dow_text = tokens[tokens.len() - 1].1;
        return Err(CronError::never_fires(
            dom_text.0 + 1,
            format!(
                "cron expression can never fire: no date has day-of-month {:?} in month {month_text:?}{} (column {})",
                dom_text.1,
                if days.is_or() { String::new() } else { format!(" and day-of-week {dow_text:?}") },
                dom_text.0 + 1
            ),
        ));
    }
    Ok(Parsed {
        fields,
        has_seconds: tokens.len() == 6,
        fixed_time: !minute_text.starts_with('*') && !hour_text.starts_with('*'),
        normalized: tokens.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(" "),
    })
}

/// Parses one field's text; `offset` is its byte (= character) offset in the input.
struct FieldParser<'a> {
    field: Field,
    text: &'a str,
    offset: usize,
}

impl FieldParser<'_> {
    /// The comma-separated items of the field with their offsets.
    fn items(&self) -> impl Iterator<Item = (usize, &str)> {
        let mut at = self.offset;
        self.text.split(',').map(move |item| {
            let start = at;
            at += item.len() + 1;
            (start, item)
        })
    }

    fn syntax(&self, at: usize, what: &str, expected: &str) -> CronError {
        CronError::syntax(
            Some(self.field),
            at + 1,
            format!("invalid {} {what:?} at column {}: expected {expected}", self.field.name(), at + 1),
        )
    }

    fn range_error(&self, at: usize, what: &str, expected: &str) -> CronError {
        CronError::range(
            self.field,
            at + 1,
            format!("invalid {} {what:?} at column {}: expected {expected}", self.field.name(), at + 1),
        )
    }

    fn expected_items(&self) -> String {
        let extra = match self.field {
            Field::DayOfMonth => ", L, LW or NW",
            Field::DayOfWeek => ", DL or D#K",
            _ => "",
        };
        format!("{}{extra}, *, a range A-B or a step */S", self.field.expected())
    }

    /// A field with only `*`, values, ranges and steps, as a bit set.
    fn plain(&self) -> Result<u64, CronError> {
        let mut bits = 0u64;
        for (at, item) in self.items() {
            bits |= self.item(at, item)?;
        }
        Ok(bits)
    }

    /// One `*`, `N`, `A-B`, `*/S`, `A-B/S` or `A/S` item.
    fn item(&self, at: usize, item: &str) -> Result<u64, CronError> {
        if item.is_empty() {
            return Err(self.syntax(at, item, &format!("a value, not an empty list item ({})", self.expected_items())));
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some((at + base.len() + 1, step))),
            None => (item, None),
        };
        let (lo, hi) = if base == "*" {
            (self.field.min(), self.field.max())
        } else if base == "?" {
            return Err(self.syntax(
                at,
                item,
                if matches!(self.field, Field::DayOfMonth | Field::DayOfWeek) {
                    "? to stand alone as the whole field"
                } else {
                    "? only in the day-of-month or day-of-week field"
                },
            ));
        } else if let Some((a, b)) = base.split_once('-') {
            let lo = self.value(at, a)?;
            let hi = self.value(at + a.len() + 1, b)?;
            if lo > hi {
                return Err(self.range_error(
                    at,
                    base,
                    &format!("a range whose start is not after its end ({} ranges cannot wrap)", self.field.name()),
                ));
            }
            (lo, hi)
        } else {
            let v = self.value(at, base)?;
            (v, if step.is_some() { self.field.max() } else { v })
        };
        let step = match step {
            None => 1,
            Some((step_at, text)) => {
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(self.syntax(step_at, text, "a step of ASCII digits after /"));
                }
                let step = saturating_number(text);
                if step == 0 {
                    return Err(self.range_error(step_at, text, "a step of at least 1"));
                }
                step
            }
        };
        let mut bits = 0u64;
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v = v.saturating_add(step);
        }
        if self.field == Field::DayOfWeek && bits & (1 << 7) != 0 {
            bits = (bits & !(1 << 7)) | 1; // 7 is Sunday
        }
        Ok(bits)
    }

    /// A number or (in month and day-of-week) a three-letter name, within the field's range.
    fn value(&self, at: usize, text: &str) -> Result<u32, CronError> {
        let names: &[&str] = match self.field {
            Field::Month => &MONTH_NAMES,
            Field::DayOfWeek => &DAY_NAMES,
            _ => &[],
        };
        if text.is_empty() {
            return Err(self.syntax(at, text, &format!("a value ({})", self.field.expected())));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            let v = saturating_number(text);
            if v < self.field.min() || v > self.field.max() {
                return Err(self.range_error(at, text, self.field.expected()));
            }
            return Ok(v);
        }
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(i as u32 + self.field.min());
        }
        if text.bytes().all(|b| b.is_ascii_alphabetic()) && names.is_empty() {
            return Err(self.syntax(
                at,
                text,
                &format!("{} (names are allowed only in month and day-of-week)", self.field.expected()),
            ));
        }
        Err(self.syntax(at, text, &self.expected_items()))
    }

    fn day_of_month(&self, days: &mut DaySpec) -> Result<(), CronError> {
        days.dom_restricted = !(self.text.starts_with('*') || self.text == "?");
        if self.text == "?" {
            days.dom = u32::MAX << 1;
            return Ok(());
        }
        let upper = self.text.to_ascii_uppercase();
        if upper == "LW" {
            days.dom_last_weekday = true;
            return Ok(());
        }
        if let Some(n) = upper.strip_suffix('W')
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            days.dom_nearest_weekday = self.value(self.offset, n)? as u8;
            return Ok(());
        }
        for (at, item) in self.items() {
            let upper = item.to_ascii_uppercase();
            if upper == "L" {
                days.dom_last = true;
            } else if upper == "LW"
                || (upper.ends_with('W')
                    && upper.len() > 1
                    && upper[..upper.len() - 1].bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(self.syntax(at, item, &format!("{item} to be the only item in the field")));
            } else {
                days.dom |= self.item(at, item)? as u32;
            }
        }
        Ok(())
    }

    fn day_of_week(&self, days: &mut DaySpec) -> Result<(), CronError> {
        days.dow_restricted = !(self.text.starts_with('*') || self.text == "?");
        if self.text == "?" {
            days.dow = 0x7f;
            return Ok(());
        }
        for (at, item) in self.items() {
            if let Some((d, k)) = item.split_once('#') {
                let wd = self.value(at, d)? % 7;
                let k_at = at + d.len() + 1;
                if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(self.syntax(k_at, k, "a week number 1-5 after #"));
                }
                let k_value = saturating_number(k);
                if !(1..=5).contains(&k_value) {
                    return Err(self.range_error(k_at, k, "a week number 1-5 after #"));
                }
                days.dow_nth[wd as usize] |= 1 << k_value;
            } else if item.len() > 1 && (item.ends_with('L') || item.ends_with('l')) && !item.contains(['-', '/', '*'])
            {
                let wd = self.value(at, &item[..item.len() - 1])? % 7;
                days.dow_last |= 1 << wd;
            } else {
                days.dow |= self.item(at, item)? as u8;
            }
        }
        Ok(())
    }
}

/// The value of a string of ASCII digits, saturating rather than overflowing.
fn saturating_number(digits: &str) -> u32 {
    digits.bytes().fold(0u32, |n, b| n.saturating_mul(10).saturating_add(u32::from(b - b'0')))
}
