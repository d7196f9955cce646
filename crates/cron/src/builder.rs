//! The field builder, in the style of APScheduler's `CronTrigger(hour=9, minute=0)`.

use std::fmt;

use crate::{CronError, CronSchedule, Field};

/// Builds a [`CronSchedule`] one field at a time.
///
/// As in APScheduler, the fields are ordered month, day, day-of-week, hour,
/// minute, second. Fields more significant than the least significant one you
/// set default to `*`; less significant ones default to their minimum (day 1,
/// hour 0, minute 0, second 0), except day-of-week, which defaults to `*`.
/// Each field takes anything the corresponding cron field accepts: a number,
/// or text such as `"9-17"`, `"*/15"` or `"mon-fri"`.
///
/// Setting [`second`](CronBuilder::second) makes a 6-field expression.
/// The result follows cron's rules, including the Vixie rule: when both
/// [`day`](CronBuilder::day) and [`day_of_week`](CronBuilder::day_of_week) are
/// restricted, a date matches if either does.
///
/// ```
/// use chime_cron::CronSchedule;
///
/// let daily = CronSchedule::builder().hour(9).minute(30).build()?;
/// assert_eq!(daily.to_string(), "30 9 * * *");
///
/// let weekdays = CronSchedule::builder().day_of_week("mon-fri").hour(17).build()?;
/// assert_eq!(weekdays.to_string(), "0 17 * * mon-fri");
///
/// let quarterly = CronSchedule::builder().month("*/3").build()?;
/// assert_eq!(quarterly.to_string(), "0 0 1 */3 *");
///
/// let every_5s = CronSchedule::builder().second("*/5").build()?;
/// assert_eq!(every_5s.to_string(), "*/5 * * * * *");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct CronBuilder {
    // Most significant first.
    month: Option<String>,
    day: Option<String>,
    day_of_week: Option<String>,
    hour: Option<String>,
    minute: Option<String>,
    second: Option<String>,
}

impl CronBuilder {
    /// Sets the month field (1-12, `JAN`-`DEC`).
    pub fn month(mut self, value: impl fmt::Display) -> CronBuilder {
        self.month = Some(value.to_string());
        self
    }

    /// Sets the day-of-month field (1-31, `L`, `LW`, `NW`).
    pub fn day(mut self, value: impl fmt::Display) -> CronBuilder {
        self.day = Some(value.to_string());
        self
    }

    /// Sets the day-of-week field (0-7, `SUN`-`SAT`, `DL`, `D#K`).
    pub fn day_of_week(mut self, value: impl fmt::Display) -> CronBuilder {
        self.day_of_week = Some(value.to_string());
        self
    }

    /// Sets the hour field (0-23).
    pub fn hour(mut self, value: impl fmt::Display) -> CronBuilder {
        self.hour = Some(value.to_string());
        self
    }

    /// Sets the minute field (0-59).
    pub fn minute(mut self, value: impl fmt::Display) -> CronBuilder {
        self.minute = Some(value.to_string());
        self
    }

    /// Sets the second field (0-59), making the expression 6 fields long.
    pub fn second(mut self, value: impl fmt::Display) -> CronBuilder {
        self.second = Some(value.to_string());
        self
    }

    /// Builds the expression and parses it.
    ///
    /// # Errors
    ///
    /// The [`CronError`] of parsing the built expression; its column refers to
    /// that expression (its `Display`), and its message names the field.
    pub fn build(self) -> Result<CronSchedule, CronError> {
        let given = [&self.month, &self.day, &self.day_of_week, &self.hour, &self.minute, &self.second];
        let least_significant = given.iter().rposition(|v| v.is_some());
        let defaults = ["1", "1", "*", "0", "0", "0"];
        let field_text = |i: usize| -> String {
            match (given[i], least_significant) {
                (Some(v), _) => v.trim().to_owned(),
                (None, Some(last)) if i < last => "*".to_owned(),
                (None, _) => defaults[i].to_owned(),
            }
        };
        // Cron order: (second) minute hour day-of-month month day-of-week.
        let mut order = vec![
            (Field::Minute, 4),
            (Field::Hour, 3),
            (Field::DayOfMonth, 1),
            (Field::Month, 0),
            (Field::DayOfWeek, 2),
        ];
        if self.second.is_some() {
            order.insert(0, (Field::Second, 5));
        }
        let mut text = String::new();
        for (field, i) in order {
            if !text.is_empty() {
                text.push(' ');
            }
            let value = field_text(i);
            // A blank would shift every later field; an empty value would drop one.
            if value.is_empty() || value.contains(|c: char| c.is_whitespace()) {
                let column = text.chars().count() + 1;
                return Err(CronError::syntax(
                    Some(field),
                    column,
                    format!("invalid {} {value:?} in the builder: expected one field with no blanks", field.name()),
                ));
            }
            text.push_str(&value);
        }
        CronSchedule::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use crate::CronSchedule;

    #[test]
    fn fields_above_the_least_significant_default_to_star() {
        let s = CronSchedule::builder().hour(9).build().unwrap();
        assert_eq!(s.to_string(), "0 9 * * *");
        let s = CronSchedule::builder().day(15).build().unwrap();
        assert_eq!(s.to_string(), "0 0 15 * *");
        let s = CronSchedule::builder().minute("*/10").build().unwrap();
        assert_eq!(s.to_string(), "*/10 * * * *");
    }

    #[test]
    fn fields_below_default_to_their_minimum() {
        let s = CronSchedule::builder().month("jun").build().unwrap();
        assert_eq!(s.to_string(), "0 0 1 jun *");
        let s = CronSchedule::builder().day_of_week("fri").build().unwrap();
        assert_eq!(s.to_string(), "0 0 * * fri");
        let s = CronSchedule::builder().month(1).second(30).build().unwrap();
        assert_eq!(s.to_string(), "30 * * * 1 *");
        // Nothing set: every field at its default, as APScheduler does.
        let s = CronSchedule::builder().build().unwrap();
        assert_eq!(s.to_string(), "0 0 1 1 *");
    }

    #[test]
    fn invalid_values_are_reported_with_the_field() {
        let err = CronSchedule::builder().hour(24).build().unwrap_err();
        assert!(err.is_range());
        assert_eq!(err.to_string(), r#"invalid hour "24" at column 3: expected 0-23"#);
        let err = CronSchedule::builder().minute("1 2").build().unwrap_err();
        assert!(err.is_syntax());
        assert_eq!(err.field(), Some(crate::Field::Minute));
        let err = CronSchedule::builder().hour("").build().unwrap_err();
        assert!(err.is_syntax());
        assert_eq!(err.field(), Some(crate::Field::Hour));
    }
}
