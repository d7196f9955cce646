use std::fmt;

use crate::Field;

/// Why a cron expression was rejected.
///
/// The message names the field, the column (1-based, counted in characters)
/// and what was expected:
///
/// ```
/// use chime_cron::CronSchedule;
///
/// let err = CronSchedule::parse("30 9 * * 1,8").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#"invalid day-of-week "8" at column 12: expected 0-7 or SUN-SAT"#,
/// );
/// assert!(err.is_range());
/// assert_eq!(err.column(), Some(12));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError {
    kind: Kind,
    field: Option<Field>,
    column: Option<usize>,
    message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Syntax,
    Range,
    NeverFires,
    TooLong,
}

impl CronError {
    pub(crate) fn syntax(field: Option<Field>, column: usize, message: String) -> CronError {
        CronError { kind: Kind::Syntax, field, column: Some(column), message }
    }

    pub(crate) fn range(field: Field, column: usize, message: String) -> CronError {
        CronError { kind: Kind::Range, field: Some(field), column: Some(column), message }
    }

    pub(crate) fn never_fires(column: usize, message: String) -> CronError {
        CronError { kind: Kind::NeverFires, field: Some(Field::DayOfMonth), column: Some(column), message }
    }

    pub(crate) fn too_long(len: usize) -> CronError {
        CronError {
            kind: Kind::TooLong,
            field: None,
            column: None,
            message: format!("cron expression is {len} bytes long: at most {} are accepted", crate::MAX_EXPRESSION_LEN),
        }
    }

    /// True when the text is malformed: an unknown character, a wrong number
    /// of fields, an empty list item, a name where none is allowed, an unknown
    /// macro, or an expression longer than 1,024 bytes.
    pub fn is_syntax(&self) -> bool {
        matches!(self.kind, Kind::Syntax | Kind::TooLong)
    }

    /// True when the text is well formed but a value is out of bounds: a
    /// number outside the field's range, a reversed range such as `5-1`, a step
    /// of 0, or a `#K` outside 1-5.
    pub fn is_range(&self) -> bool {
        self.kind == Kind::Range
    }

    /// True when every field is valid on its own but no date satisfies them
    /// together, as in `0 0 30 2 *`.
    pub fn is_never_fires(&self) -> bool {
        self.kind == Kind::NeverFires
    }

    /// The field at fault, when one is.
    pub fn field(&self) -> Option<Field> {
        self.field
    }

    /// The 1-based character column where the problem starts, when there is one.
    pub fn column(&self) -> Option<usize> {
        self.column
    }
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CronError {}
