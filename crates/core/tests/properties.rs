//! Property tests for the two pure parts of the engine: the triggers (when a
//! job fires) and `plan_fire` (what a due job does), over random triggers of
//! every kind, zones with odd DST rules, times, options and running counts.
//!
//! Failing cases are kept in `proptest-regressions/properties.txt` and
//! replayed first on every run.

use chime_core::{
    CalendarTrigger, CalendarUnit, CombinedTrigger, CronTrigger, DateTrigger, Decision, IntervalTrigger, Job,
    MAX_DUE_TIMES, Reason, RunId, Trigger, Zone, plan_fire,
};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const ZONES: &[&str] = &["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"];

const CRONS: &[&str] = &[
    "0 9 * * *",
    "*/15 * * * *",
    "30 2 * * *",
    "0 1 * * SUN",
    "0 0 L * *",
    "5 4 29 2 *",
    "0 9-17 * * MON-FRI",
    "59 23 31 12 *",
];

/// An instant from 2025 to 2028, to the second.
fn instant() -> impl Strategy<Value = Timestamp> {
    let lo = "2025-01-01T00:00:00Z".parse::<Timestamp>().unwrap().as_second();
    let hi = "2028-12-31T00:00:00Z".parse::<Timestamp>().unwrap().as_second();
    (lo..hi).prop_map(|s| Timestamp::from_second(s).unwrap())
}

fn zone() -> impl Strategy<Value = Zone> {
    proptest::sample::select(ZONES).prop_map(|z| Zone::get(z).unwrap())
}

fn leaf() -> impl Strategy<Value = Trigger> {
    prop_oneof![
        (proptest::sample::select(CRONS), zone(), proptest::option::of(instant())).prop_map(|(e, zone, start)| {
            let Trigger::Cron(mut c) = Trigger::cron(e).unwrap() else { unreachable!() };
            *c = CronTrigger { timezone: Some(zone), start, ..*c };
            Trigger::Cron(c)
        }),
        (60i64..=3 * 86_400, instant()).prop_map(|(every, start)| Trigger::Interval(IntervalTrigger {
            every: SignedDuration::from_secs(every),
            start: Some(start),
            end: None,
        })),
        (
            1u32..=3,
            proptest::sample::select(
                &[CalendarUnit::Days, CalendarUnit::Weeks, CalendarUnit::Months, CalendarUnit::Years][..]
            ),
            0i8..24,
            0i8..60,
            zone(),
            instant(),
        )
            .prop_map(|(every, unit, h, m, zone, start)| {
                let start = zone.time_zone().to_datetime(start).date();
                Trigger::Calendar(Box::new(CalendarTrigger {
                    every,
                    unit,
                    at: jiff::civil::time(h, m, 0, 0),
                    timezone: Some(zone),
                    start: Some(start),
                    end: None,
                }))
            }),
        instant().prop_map(|at| Trigger::Date(DateTrigger { at })),
    ]
}

/// Crons on the quarter hour, and the finer ones they always coincide with:
/// an `all` of one of each fires (the search finds it in a step or two).
const QUARTER_HOURLY: &[&str] = &["0 9 * * *", "30 2 * * *", "0 1 * * SUN", "0 0 L * *", "45 9-17 * * MON-FRI"];
const FINER: &[&str] = &["*/15 * * * *", "*/5 * * * *", "* * * * *"];

fn all_of_coinciding() -> impl Strategy<Value = Trigger> {
    (
        proptest::sample::select(QUARTER_HOURLY),
        proptest::sample::select(FINER),
        zone().prop_map(|z| z.name().to_owned()),
    )
        .prop_map(|(a, b, z)| {
            Trigger::all(vec![Trigger::cron(a).unwrap(), Trigger::cron(b).unwrap()]).with_timezone(&z).unwrap()
        })
}

fn trigger() -> impl Strategy<Value = Trigger> {
    let node = prop_oneof![4 => leaf(), 1 => all_of_coinciding()];
    node.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..4).prop_map(|t| Trigger::Any(CombinedTrigger { triggers: t })),
            proptest::collection::vec(inner, 1..2).prop_map(|t| Trigger::All(CombinedTrigger { triggers: t })),
        ]
    })
}

/// A trigger with an optional end, as stores keep them.
fn ended(t: Trigger, end: Option<Timestamp>) -> Trigger {
    match end {
        Some(end) => t.with_end(end),
        None => t,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // Relative to the crate, where `cargo test` runs: the default looks
        // for a lib.rs beside the source, and an integration test has none.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/proptest-regressions/properties.txt"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn next_after_is_strictly_later_and_nothing_fires_in_between(t in trigger(), after in instant(), frac in 0.0f64..1.0) {
        prop_assert!(t.validate().is_ok(), "{t:?}");
        if let Some(next) = t.next_after(after) {
            prop_assert!(next > after, "{next} after {after}");
            // Any instant between `after` and `next` has the same next fire time.
            let gap = next.duration_since(after);
            let mid = after + SignedDuration::from_secs_f64(gap.as_secs_f64() * frac).min(gap - SignedDuration::from_nanos(1));
            prop_assert_eq!(t.next_after(mid), Some(next), "from {} ({:?})", mid, t);
        }
    }

    #[test]
    fn upcoming_is_strictly_increasing_and_follows_next_after(t in trigger(), after in instant(), n in 0usize..12) {
        let times = t.upcoming(after, n);
        prop_assert!(times.len() <= n);
        let mut prev = after;
        for (i, at) in times.iter().enumerate() {
            prop_assert!(*at > prev, "time {} ({}) not after {}", i, at, prev);
            prop_assert_eq!(t.next_after(prev), Some(*at));
            prev = *at;
        }
        if times.len() < n {
            prop_assert_eq!(t.next_after(prev), None, "stopped early while the trigger goes on");
        }
    }

    #[test]
    fn json_round_trips(t in trigger(), end in proptest::option::of(instant())) {
        let t = ended(t, end);
        let json = serde_json::to_string(&t).unwrap();
        let back: Trigger = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &t, "{}", json);
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn plan_fire_accounts_for_every_due_time(
        t in trigger(),
        first_after in instant(),
        backlog in 0i64..2 * 86_400,
        coalesce in any::<bool>(),
        max_instances in 1u32..4,
        grace in proptest::option::of(0i64..4 * 3_600),
        running in 0u32..5,
        paused in proptest::bool::weighted(0.1),
    ) {
        let Some(first) = t.next_after(first_after) else { return Ok(()) };
        let now = first + SignedDuration::from_secs(backlog);
        let mut job = Job::new("j", "t", t.clone()).unwrap().with_coalesce(coalesce).with_max_instances(max_instances);
        if let Some(g) = grace {
            job = job.with_misfire_grace_time(SignedDuration::from_secs(g));
        }
        job.state.next_run_at = Some(first);
        if paused {
            job.state.paused = Some("p".into());
        }
        let in_flight: Vec<RunId> = (0..running).map(|_| RunId::new()).collect();
        let plan = plan_fire(&job, now, &in_flight);
        if paused {
            prop_assert!(plan.runs.is_empty() && plan.uncounted == 0);
            prop_assert_eq!(plan.next_run_at, Some(first), "a paused job's next run is left alone");
            return Ok(());
        }

        // The due times, walked one by one: every one is listed or counted.
        let mut due = vec![first];
        while let Some(next) = t.next_after(*due.last().unwrap()).filter(|n| *n <= now) {
            due.push(next);
        }
        let listed: Vec<Timestamp> = plan.runs.iter().map(|r| r.scheduled_for).collect();
        prop_assert_eq!(plan.runs.len() as u64 + plan.uncounted, due.len() as u64);
        prop_assert_eq!(&listed[..], &due[due.len() - listed.len()..], "the latest due times, oldest first");
        prop_assert!(listed.windows(2).all(|w| w[0] < w[1]), "oldest first, each once");
        prop_assert!(listed.len() <= MAX_DUE_TIMES);
        match plan.uncounted_span {
            None => prop_assert_eq!(plan.uncounted, 0),
            Some((from, to)) => {
                prop_assert_eq!(from, first);
                prop_assert_eq!(to, due[plan.uncounted as usize - 1]);
            }
        }

        let next = plan.next_run_at;
        prop_assert_eq!(next, t.next_after(now));
        prop_assert!(next.is_none_or(|n| n > now), "next {:?} is after now {}", next, now);

        let late = |at: Timestamp| grace.is_some_and(|g| now.duration_since(at) > SignedDuration::from_secs(g));
        let ran: Vec<Timestamp> =
            plan.runs.iter().filter(|r| r.decision == Decision::Run).map(|r| r.scheduled_for).collect();
        for r in &plan.runs {
            match &r.decision {
                Decision::Run => {}
                Decision::Missed(Reason::PastGrace { .. }) => prop_assert!(late(r.scheduled_for)),
                Decision::Missed(Reason::Coalesced { into }) => {
                    prop_assert!(coalesce && *into > r.scheduled_for && listed.contains(into), "{:?}", r.decision);
                }
                Decision::Skipped(Reason::MaxInstances { max_instances: m, in_flight: named }) => {
                    prop_assert_eq!((*m, named), (max_instances, &in_flight), "a skip names the runs in flight");
                }
                other => prop_assert!(false, "no other reason comes out of a plan: {:?}", other),
            }
            if late(r.scheduled_for) {
                prop_assert!(matches!(r.decision, Decision::Missed(Reason::PastGrace { .. })), "{} is past the grace time: {:?}", r.scheduled_for, r.decision);
            }
        }
        prop_assert!(ran.iter().all(|at| !late(*at)), "nothing past the grace time runs");
        prop_assert!(ran.len() as u32 <= max_instances.saturating_sub(running), "at most max_instances in flight");
        let fresh: Vec<Timestamp> = listed.iter().copied().filter(|at| !late(*at)).collect();
        if coalesce {
            prop_assert!(ran.len() <= 1, "coalesce runs at most one: {:?}", ran);
            if running < max_instances {
                prop_assert_eq!(ran.last(), fresh.last(), "the latest on-time one");
            }
        } else {
            let room = max_instances.saturating_sub(running) as usize;
            prop_assert_eq!(&ran[..], &fresh[..fresh.len().min(room)], "the oldest on-time ones, up to the room left");
        }
    }
}
