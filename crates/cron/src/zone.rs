//! From wall-clock matches to instants: the DST rules of `CRON.md`.
//!
//! # Implementation
//!
//! A time zone's timeline is a sequence of *segments*: the spans between two
//! transitions, during which the UTC offset is constant. Inside a segment,
//! instant ↦ wall clock is `instant + offset`, a monotonic map, so the first
//! fire time in a segment is the first matching wall-clock time at or after
//! `t + offset`, shifted back by the offset, provided it lands before the
//! segment ends. Otherwise the search moves to the next segment.
//!
//! The job classes of Debian cron then need only two rules at segment edges:
//!
//! * Periodic jobs need none. Wall times inside a gap belong to no segment,
//!   so they never fire; wall times in a fold belong to two segments (the end
//!   of one, the start of the next), so they fire twice, in real-time order.
//! * Fixed-time jobs skip the start of a segment that begins with a fold (its
//!   wall times already fired in the first pass), and fire once at the
//!   transition instant that ends a gap if any wall time inside the gap
//!   matches. A regular fire at the transition instant is the same instant, so
//!   it collapses into that single firing.
//!
//! Finding a segment costs one offset lookup and one or two transition
//! lookups in jiff (binary searches, tens of nanoseconds). [`SegmentCache`]
//! keeps the last one so that iterating fire times pays for it once per
//! segment, not once per fire time.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::civil::Civil;
use crate::schedule::Fields;

/// An upper bound on the magnitude of any UTC offset jiff supports (±25:59:59).
const MAX_OFFSET: i64 = 26 * 3600;

/// A span of constant UTC offset, in epoch seconds.
#[derive(Clone, Copy, Debug)]
struct Segment {
    offset: i64,
    /// The transition that started this segment and the offset before it.
    start: Option<(i64, i64)>,
    /// The transition that ends this segment and the offset after it.
    end: Option<(i64, i64)>,
}

impl Segment {
    fn contains(&self, t: i64) -> bool {
        self.start.is_none_or(|(s, _)| s <= t) && self.end.is_none_or(|(e, _)| t < e)
    }
}

/// Remembers the segment of the last lookup.
#[derive(Clone, Debug, Default)]
pub(crate) struct SegmentCache {
    last: Option<Segment>,
}

impl SegmentCache {
    fn segment_at(&mut self, tz: &TimeZone, t: i64) -> Option<Segment> {
        if let Some(seg) = self.last.filter(|s| s.contains(t)) {
            return Some(seg);
        }
        let ts = Timestamp::from_second(t).ok()?;
        let offset = i64::from(tz.to_offset(ts).seconds());
        let end = tz.following(ts).next().map(|tr| (tr.timestamp().as_second(), i64::from(tr.offset().seconds())));
        // `preceding` is strictly before its argument; a transition exactly at
        // `t` starts the segment that holds `t`.
        let start = Timestamp::from_second(t + 1).ok().and_then(|after_t| {
            let tr = tz.preceding(after_t).next()?;
            let at = tr.timestamp().as_second();
            let before = Timestamp::from_second(at - 1).ok()?;
            Some((at, i64::from(tz.to_offset(before).seconds())))
        });
        let seg = Segment { offset, start, end };
        self.last = Some(seg);
        Some(seg)
    }
}

/// The first fire time at or after epoch second `t`.
pub(crate) fn next_at_or_after(
    fields: &Fields,
    fixed_time: bool,
    tz: &TimeZone,
    cache: &mut SegmentCache,
    mut t: i64,
) -> Option<i64> {
    let origin = t;
    loop {
        let seg = cache.segment_at(tz, t)?;
        let mut from = t + seg.offset;
        if fixed_time && let Some((start, before)) = seg.start {
            if start == t && gap_hides_a_match(fields, start, before, seg.offset) {
                return Some(start);
            }
            // A segment that starts with a fold begins with the second pass
            // over wall times that fixed-time jobs already fired in the first.
            if before > seg.offset {
                from = from.max(start + before);
            }
        }
        let found = fields.next_civil(Civil::from_secs(from));
        if let Some(c) = found
            && seg.end.is_none_or(|(end, _)| c.to_secs() - seg.offset < end)
        {
            return Some(c.to_secs() - seg.offset);
        }
        let (end, _) = seg.end?;
        if found.is_none() && end > origin + 2 * MAX_OFFSET {
            // No wall time at or after `from` matches, and from here on every
            // wall time is later than `from`.
            return None;
        }
        t = end;
    }
}

/// The last fire time at or before epoch second `t`.
pub(crate) fn prev_at_or_before(
    fields: &Fields,
    fixed_time: bool,
    tz: &TimeZone,
    cache: &mut SegmentCache,
    mut t: i64,
) -> Option<i64> {
    let origin = t;
    loop {
        let seg = cache.segment_at(tz, t)?;
        // The earliest wall time this segment may fire at: fixed-time jobs
        // skip the second pass of a fold that starts the segment.
        let lowest = seg.start.map(
            |(start, before)| {
                if fixed_time && before > seg.offset { start + before } else { start + seg.offset }
            },
        );
        let found = fields.prev_civil(Civil::from_secs(t + seg.offset));
        if let Some(c) = found
            && lowest.is_none_or(|low| c.to_secs() >= low)
        {
            return Some(c.to_secs() - seg.offset);
        }
        let (start, before) = seg.start?;
        if found.is_none() && start < origin - 2 * MAX_OFFSET {
            return None;
        }
        if fixed_time && gap_hides_a_match(fields, start, before, seg.offset) {
            return Some(start);
        }
        t = start - 1;
    }
}

/// Whether the transition at `start` from offset `before` to `offset` is a gap
/// (the clocks spring forward) hiding a matching wall time. The wall times in
/// `[start + before, start + offset)` never happen; fixed-time jobs due in
/// them fire once, at `start`, when the gap ends.
fn gap_hides_a_match(fields: &Fields, start: i64, before: i64, offset: i64) -> bool {
    before < offset && fields.next_civil(Civil::from_secs(start + before)).is_some_and(|c| c.to_secs() < start + offset)
}
