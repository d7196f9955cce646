//! The ids of jobs and runs: leaf types that every other module may use,
//! depending on nothing in the crate.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A job id's text, shared by every clone. `triomphe`'s `Arc` has no weak
/// count: its header is 8 bytes, so an id of up to 16 bytes takes a 32-byte
/// allocation rather than std's 48: 16 bytes a job of a million.
type IdText = triomphe::Arc<str>;

/// Why a string is not a valid [`JobId`]; converts into [`crate::Error::Invalid`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(String);

/// Characters that render as nothing, as blank, or reorder text: bidi
/// controls, zero-width and other format characters (soft hyphen, tags,
/// variation selectors, fillers, line separators). An id holding one can
/// look like another id.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// The longest job id accepted, in characters.
pub const MAX_JOB_ID_LEN: usize = 200;

/// A job's id: non-empty, at most 200 characters, no control characters, no
/// bidi controls or zero-width characters, no leading or trailing whitespace.
///
/// ```
/// use chime_core::JobId;
///
/// assert!(JobId::new("daily-report").is_ok());
/// let err = JobId::new("bad\nid").unwrap_err();
/// assert_eq!(err.to_string(), r#"invalid job id "bad\nid": it contains a control character"#);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(IdText);

impl JobId {
    /// Validates and wraps an id.
    ///
    /// # Errors
    ///
    /// [`InvalidId`] saying what is wrong with it (it converts into
    /// [`crate::Error::Invalid`]).
    pub fn new(id: &str) -> Result<JobId, InvalidId> {
        // The common id (printable ASCII, no edge spaces, not a dot path)
        // needs one pass over its bytes; the char checks below are for the rest.
        let printable = |b: &u8| (b' '..=b'~').contains(b);
        if !id.is_empty()
            && id.len() <= MAX_JOB_ID_LEN
            && id.bytes().all(|b| printable(&b))
            && !id.starts_with(' ')
            && !id.ends_with(' ')
            && id != "."
            && id != ".."
        {
            return Ok(JobId(IdText::from(id)));
        }
        let why = if id.is_empty() {
            Some("it is empty".to_owned())
        } else if id.chars().count() > MAX_JOB_ID_LEN {
            Some(format!("it is longer than {MAX_JOB_ID_LEN} characters"))
        } else if id.chars().any(char::is_control) {
            Some("it contains a control character".to_owned())
        } else if let Some(c) = id.chars().find(|c| is_invisible(*c)) {
            Some(format!(
                "it contains the invisible character U+{:04X} (a bidi control or zero-width character, which would make two ids look alike)",
                c as u32
            ))
        } else if id.trim() != id {
            Some("it starts or ends with whitespace".to_owned())
        } else if id == "." || id == ".." {
            // Every URL client reads these path segments as "here" and "up".
            Some("`.` and `..` cannot be named in a URL path".to_owned())
        } else {
            None
        };
        match why {
            Some(why) => {
                let shown: String = id.chars().take(60).collect();
                Err(InvalidId(format!("invalid job id {shown:?}: {why}")))
            }
            None => Ok(JobId(IdText::from(id))),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<JobId, InvalidId> {
        JobId::new(&s)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0.to_string()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A run's id, a UUID v7 (time-ordered). Tasks can use it as an idempotency key:
/// it is the same for every retry of one scheduled time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunId(pub Uuid);

impl RunId {
    /// A new id: the current time in milliseconds, then random bits. The
    /// random bits come from a fast thread-local generator rather than the
    /// OS, because a burst of runs would otherwise make one `getrandom` call
    /// per run.
    pub fn new() -> RunId {
        let millis =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let random = fastrand::u128(..).to_le_bytes();
        let mut bytes = [0u8; 10];
        bytes.copy_from_slice(&random[..10]);
        RunId(uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid())
    }
}

impl Default for RunId {
    fn default() -> Self {
        RunId::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_validated() {
        assert!(JobId::new("a").is_ok());
        assert!(JobId::new(&"x".repeat(200)).is_ok());
        assert!(JobId::new("日本語のジョブ").is_ok());
        assert!(JobId::new("café-émile").is_ok(), "letters with accents are not format characters");
        for (bad, why) in [
            ("", "it is empty"),
            (&"x".repeat(201), "longer than 200 characters"),
            ("tab\there", "control character"),
            ("nul\0", "control character"),
            (" padded", "whitespace"),
            ("pay\u{202E}lyad", "U+202E"),
            ("zero\u{200B}width", "U+200B"),
            ("bom\u{FEFF}", "U+FEFF"),
            ("iso\u{2066}late", "U+2066"),
            ("soft\u{00AD}hyphen", "U+00AD"),
            ("deploy\u{E0041}", "U+E0041"),
            ("vs\u{FE0F}", "U+FE0F"),
            ("line\u{2028}sep", "U+2028"),
            ("hangul\u{3164}filler", "U+3164"),
            ("mongolian\u{180E}", "U+180E"),
            (".", "cannot be named in a URL path"),
            ("..", "cannot be named in a URL path"),
        ] {
            let e = JobId::new(bad).unwrap_err();
            assert!(crate::Error::from(e.clone()).is_invalid());
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
        assert!(serde_json::from_str::<JobId>(r#""""#).is_err());
    }
}
