//! Instants as people read them: on the wall clock of the job's zone with its
//! offset, and how far from now they are ("in 3h 12m", "2m ago"), measured on
//! the scheduler's clock (which, under a virtual clock, is not the browser's).

use chime_core::Zone;
use jiff::{SignedDuration, Timestamp};

use crate::nodes::human;

/// One instant, ready for a page: `<time datetime="{iso}">{local}</time>`
/// and `{relative}` beside it, which the page's script keeps fresh.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Shown {
    /// RFC 3339 in UTC, to the second: what the script counts from.
    pub(crate) iso: String,
    /// The wall-clock time in `zone` with its offset:
    /// `2026-12-02 09:00 +01:00` (seconds only when there are some).
    pub(crate) local: String,
    /// The zone's IANA name.
    pub(crate) zone: String,
    /// `in 3h 12m`, `2m ago`.
    pub(crate) relative: String,
}

impl Shown {
    pub(crate) fn new(t: Timestamp, zone: &Zone, now: Timestamp) -> Shown {
        let zoned = t.to_zoned_datetime(zone.time_zone().clone());
        let format = if zoned.second() == 0 { "%Y-%m-%d %H:%M %:z" } else { "%Y-%m-%d %H:%M:%S %:z" };
        Shown {
            iso: iso(t),
            local: zoned.strftime(format).to_string(),
            zone: zone.name().to_owned(),
            relative: relative(t, now),
        }
    }
}

/// RFC 3339 in UTC, to the second.
pub(crate) fn iso(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `in 3h 12m` for an instant after `now`, `2m ago` for one before: the
/// words the page's script writes too, so a refresh changes nothing else.
pub(crate) fn relative(t: Timestamp, now: Timestamp) -> String {
    let d = t.duration_since(now);
    if d >= SignedDuration::ZERO { format!("in {}", human(d)) } else { format!("{} ago", human(d)) }
}

/// A run's duration or lateness: `350 ms`, `2.4 s`, `3m 5s`.
pub(crate) fn seconds(d: Option<SignedDuration>) -> String {
    match d {
        Some(d) if d.as_secs_f64() < 1.0 => format!("{:.0} ms", d.as_secs_f64() * 1000.0),
        Some(d) if d.as_secs_f64() < 60.0 => format!("{:.1} s", d.as_secs_f64()),
        Some(d) => human(d),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_read_in_their_zone_with_the_offset_and_from_now() {
        let now: Timestamp = "2026-12-01T23:00:00Z".parse().unwrap();
        let paris = Zone::get("Europe/Paris").unwrap();
        let t = "2026-12-02T08:00:00Z".parse().unwrap();
        let shown = Shown::new(t, &paris, now);
        assert_eq!(shown.local, "2026-12-02 09:00 +01:00");
        assert_eq!(shown.iso, "2026-12-02T08:00:00Z");
        assert_eq!(shown.relative, "in 9h");
        let summer = Shown::new("2026-07-01T08:00:30Z".parse().unwrap(), &paris, now);
        assert_eq!(summer.local, "2026-07-01 10:00:30 +02:00");
        let past = Shown::new("2026-12-01T22:57:48Z".parse().unwrap(), &Zone::utc(), now);
        assert_eq!((past.local.as_str(), past.relative.as_str()), ("2026-12-01 22:57:48 +00:00", "2m 12s ago"));
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(seconds(Some(SignedDuration::from_millis(350))), "350 ms");
        assert_eq!(seconds(Some(SignedDuration::from_millis(2400))), "2.4 s");
        assert_eq!(seconds(Some(SignedDuration::from_secs(185))), "3m 5s");
        assert_eq!(seconds(None), "");
    }
}
