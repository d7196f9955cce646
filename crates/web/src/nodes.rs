//! The nodes sharing the store, as the API, the dashboard and `/metrics`
//! show them: each one's lease measured against the scheduler's clock.

use chime_core::{NodeInfo, Scheduler};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// A registered node, seen from this scheduler at `now`.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) info: NodeInfo,
    /// Until its lease runs out: negative once it has.
    pub(crate) lease_left: SignedDuration,
    /// Whether it is the node serving this request.
    pub(crate) this_node: bool,
}

impl Node {
    /// The node as `GET /api/v1/nodes` lists it: the store's fields, plus
    /// `lease_left_s` (seconds, to the millisecond; negative once expired)
    /// and `this_node`.
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!(self.info);
        v["lease_left_s"] = json!(self.lease_left_secs());
        v["this_node"] = json!(self.this_node);
        v
    }

    /// The lease left in seconds, rounded to the millisecond.
    pub(crate) fn lease_left_secs(&self) -> f64 {
        (self.lease_left.as_secs_f64() * 1000.0).round() / 1000.0
    }
}

/// The nodes registered in the store, ordered by id, and the scheduler's
/// time they were measured at.
///
/// # Errors
///
/// The store's.
pub(crate) async fn nodes(scheduler: &Scheduler) -> chime_core::Result<(Timestamp, Vec<Node>)> {
    let mut infos = scheduler.nodes().await?;
    let now = scheduler.clock().now();
    infos.sort_by(|a, b| a.id.cmp(&b.id).then(a.epoch.cmp(&b.epoch)));
    let nodes = infos
        .into_iter()
        .map(|info| Node {
            lease_left: info.lease_expires_at.duration_since(now),
            this_node: info.id == scheduler.node_id(),
            info,
        })
        .collect();
    Ok((now, nodes))
}

/// A duration as people read it, in its two largest units: `3s`, `4m 12s`,
/// `2h 5m`, `1d 3h` (the dashboard's countdowns say the same).
pub(crate) fn human(d: SignedDuration) -> String {
    let mut left = d.as_secs().unsigned_abs();
    if d.subsec_millis().unsigned_abs() >= 500 {
        left += 1;
    }
    let parts: Vec<(u64, &str)> = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")]
        .into_iter()
        .map(|(n, unit)| {
            let v = left / n;
            left -= v * n;
            (v, unit)
        })
        .collect();
    let Some(first) = parts.iter().position(|(v, _)| *v > 0) else {
        return "0s".to_owned();
    };
    parts[first..]
        .iter()
        .take(2)
        .enumerate()
        .filter(|(i, (v, _))| *i == 0 || *v > 0)
        .map(|(_, (v, unit))| format!("{v}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_two_units() {
        let s = SignedDuration::from_secs;
        assert_eq!(human(s(0)), "0s");
        assert_eq!(human(s(3)), "3s");
        assert_eq!(human(s(-4)), "4s");
        assert_eq!(human(SignedDuration::from_millis(2600)), "3s");
        assert_eq!(human(s(252)), "4m 12s");
        assert_eq!(human(s(3600)), "1h");
        assert_eq!(human(s(3600 + 59)), "1h");
        assert_eq!(human(s(7500)), "2h 5m");
        assert_eq!(human(s(86_400 + 3 * 3600 + 7)), "1d 3h");
    }
}
