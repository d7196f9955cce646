//! Durations as people write them: `"90s"`, `"1h 30m"`, `"PT4H"`.

use jiff::{SignedDuration, Span, SpanRelativeTo};

use crate::error::{Error, Result};

/// A duration as chime's options take it: a `jiff::SignedDuration` or a
/// `std::time::Duration` (saturating at `SignedDuration::MAX`), so code written
/// with either type needs no conversion.
///
/// ```
/// use chime_core::{Job, Trigger};
///
/// let a = Job::new("a", "t", Trigger::every("1h")?)?.with_timeout(std::time::Duration::from_secs(90));
/// let b = Job::new("a", "t", Trigger::every("1h")?)?.with_timeout(jiff::SignedDuration::from_secs(90));
/// assert_eq!(a.options.timeout, b.options.timeout);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait IntoDuration {
    /// The duration as a `SignedDuration`.
    fn into_duration(self) -> SignedDuration;
}

impl IntoDuration for SignedDuration {
    fn into_duration(self) -> SignedDuration {
        self
    }
}

impl IntoDuration for std::time::Duration {
    fn into_duration(self) -> SignedDuration {
        SignedDuration::try_from(self).unwrap_or(SignedDuration::MAX)
    }
}

/// Parses a positive duration: `"90s"`, `"1h 30m"`, `"PT4H"`, `"2 days"`.
/// Days and weeks count as 24 hours and 7 days; months and years are refused
/// because their length varies (use a calendar trigger).
///
/// ```
/// use chime_core::parse_duration;
/// use jiff::SignedDuration;
///
/// assert_eq!(parse_duration("1h 30m")?, SignedDuration::from_mins(90));
/// assert_eq!(parse_duration("PT4H")?, SignedDuration::from_hours(4));
/// assert!(parse_duration("0s").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`Error::Invalid`] quoting the text.
pub fn parse_duration(text: &str) -> Result<SignedDuration> {
    let bad = |why: &str| {
        Error::invalid(format!(
            "invalid duration {text:?}: {why}; expected a positive duration such as \"90s\", \"1h 30m\" or \"PT4H\""
        ))
    };
    let span: Span = text.trim().parse().map_err(|_| bad("not a duration"))?;
    let d = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| bad("months and years have no fixed length"))?;
    if !d.is_positive() {
        return Err(bad("it must be greater than zero"));
    }
    Ok(d)
}

/// Formats a duration the way [`parse_duration`] reads it: `"1h 30m"`.
pub fn format_duration(d: SignedDuration) -> String {
    format!("{d:#}")
}

/// Serde for a duration as text (`"1h 30m"`); reads every form [`parse_duration`] reads.
pub(crate) mod text {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// [`text`] for an optional duration.
pub(crate) mod opt_text {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Option<SignedDuration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SignedDuration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => super::parse_duration(&text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_documented_form() {
        assert_eq!(parse_duration("90s").unwrap(), SignedDuration::from_secs(90));
        assert_eq!(parse_duration("1h 30m").unwrap(), SignedDuration::from_mins(90));
        assert_eq!(parse_duration("PT4H").unwrap(), SignedDuration::from_hours(4));
        assert_eq!(parse_duration("1d").unwrap(), SignedDuration::from_hours(24));
        assert_eq!(parse_duration(" 2 weeks ").unwrap(), SignedDuration::from_hours(336));
        assert_eq!(parse_duration("100ms").unwrap(), SignedDuration::from_millis(100));
        for bad in ["", "abc", "0s", "-5s", "1 month", "P1Y", "5"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.is_invalid(), "{bad}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert_eq!(format_duration(SignedDuration::from_mins(90)), "1h 30m");
    }
}
