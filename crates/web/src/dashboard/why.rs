//! The job page's answer to "why didn't it run?": chime-core's `why` over
//! the last day or week, as one line and a timeline with one mark per
//! scheduled time, coloured by outcome, its words on hover and on tap.

use chime_core::why::{Outcome, Why};
use chime_core::{Scheduler, Zone};
use jiff::SignedDuration;

use super::time::Shown;
use crate::ApiError;

/// The most marks the timeline draws (the latest); a job every second has
/// 86,400 times a day.
const MAX_MARKS: usize = 300;
/// How many of the latest times the list under it spells out.
const LISTED: usize = 12;

/// The windows offered, by their query value.
pub(crate) const WINDOWS: [(&str, &str, i64); 2] = [("day", "last day", 24), ("week", "last week", 24 * 7)];

/// The section as the template shows it.
pub(crate) struct WhySection {
    pub(crate) answer: String,
    /// "last day" or "last week".
    pub(crate) window: &'static str,
    /// The query value of the other window and its words, for the switch.
    pub(crate) other: (&'static str, &'static str),
    pub(crate) marks: Vec<Mark>,
    /// The latest times, newest first, in words.
    pub(crate) latest: Vec<Mark>,
    /// Times of the window not drawn.
    pub(crate) not_drawn: u64,
}

pub(crate) struct Mark {
    pub(crate) at: Shown,
    /// The outcome's code, for the mark's class and label.
    pub(crate) outcome: &'static str,
    /// ok, bad, warn, none or next: its colour.
    pub(crate) tone: &'static str,
    pub(crate) words: String,
}

/// The window a `why` query value names (`day` when none).
pub(crate) fn window(value: Option<&str>) -> Result<usize, ApiError> {
    match value {
        None => Ok(0),
        Some(v) => WINDOWS.iter().position(|(name, _, _)| *name == v).ok_or_else(|| {
            ApiError::malformed(format!("why {v:?}: expected one of {}", WINDOWS.map(|w| w.0).join(", ")))
        }),
    }
}

pub(crate) async fn section(s: &Scheduler, id: &str, which: usize, zone: &Zone) -> Result<WhySection, ApiError> {
    let now = s.clock().now();
    let (_, words, hours) = WINDOWS[which];
    let since = now.checked_sub(SignedDuration::from_hours(hours)).unwrap_or(now);
    let why = s.why(id, since).await?;
    let other = WINDOWS[1 - which];
    Ok(from_why(why, words, (other.0, other.1), zone))
}

fn from_why(why: Why, window: &'static str, other: (&'static str, &'static str), zone: &Zone) -> WhySection {
    let now = why.now;
    let mark = |t: &chime_core::why::WhyTime| Mark {
        at: Shown::new(t.scheduled_for, zone, now),
        outcome: t.outcome.as_str(),
        tone: tone(t.outcome),
        words: t.words.clone(),
    };
    let skip = why.times.len().saturating_sub(MAX_MARKS);
    WhySection {
        answer: why.answer.clone(),
        window,
        other,
        marks: why.times[skip..].iter().map(mark).collect(),
        latest: why.times.iter().rev().take(LISTED).map(mark).collect(),
        not_drawn: why.unlisted + skip as u64,
    }
}

fn tone(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded | Outcome::Running | Outcome::Pending | Outcome::Due => "ok",
        Outcome::Failed | Outcome::TimedOut | Outcome::Abandoned => "bad",
        Outcome::Missed | Outcome::Skipped | Outcome::Cancelled | Outcome::Paused => "warn",
        Outcome::NotYetDue => "next",
        _ => "none",
    }
}
