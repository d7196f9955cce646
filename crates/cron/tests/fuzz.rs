//! The cron fuzz target's check (`fuzz/fuzz_targets/check.rs`, the same
//! file) on the stable toolchain, so CI runs it without cargo-fuzz: every
//! committed seed, then inputs proptest builds from a cron alphabet (random
//! bytes would almost never parse) around random instants and zones.

#[path = "../../../fuzz/fuzz_targets/check.rs"]
mod check;

use proptest::prelude::*;

#[test]
fn every_committed_seed_passes_the_check() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/cron");
    let mut seeds = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        assert!(check::check(&std::fs::read(&path).unwrap()), "{} holds an expression that parses", path.display());
        seeds += 1;
    }
    assert!(seeds > 0, "no seeds in {dir}");
}

/// A field: a value, a range, a step, a list, or one of cron's special forms.
/// Values are mostly 1-7 (valid in every field, so whole expressions parse
/// often enough to reach the evaluator), sometimes anything up to 69.
fn field() -> impl Strategy<Value = String> {
    let value = prop_oneof![6 => 1u32..8, 1 => 0u32..70];
    let atom = prop_oneof![
        3 => Just("*".to_owned()),
        1 => Just("?".to_owned()),
        3 => value.clone().prop_map(|n| n.to_string()),
        2 => (value.clone(), value.clone()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        1 => (value.clone(), value.clone()).prop_map(|(a, s)| format!("{a}/{s}")),
        1 => (0u32..10).prop_map(|n| format!("*/{n}")),
        1 => prop::sample::select(vec!["L", "LW", "15W", "5L", "L-3", "2#3", "MON-FRI", "JAN", "sun", "W"])
            .prop_map(str::to_owned),
    ];
    prop::collection::vec(atom, 1..4).prop_map(|parts| parts.join(","))
}

/// An expression of 5 to 7 fields, sometimes a macro, sometimes with a stray character.
fn expression() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(field(), 5..=7).prop_map(|f| f.join(" ")),
        1 => prop::sample::select(vec!["@daily", "@hourly", "@weekly", "@monthly", "@yearly", "@reboot", "@every"])
            .prop_map(str::to_owned),
        1 => (prop::collection::vec(field(), 5..=6), any::<char>(), any::<usize>()).prop_map(|(f, c, at)| {
            let mut s = f.join(" ");
            let at = s.char_indices().map(|(i, _)| i).nth(at % s.chars().count().max(1)).unwrap_or(0);
            s.insert(at, c);
            s
        }),
    ]
}

/// The generated inputs reach the evaluator: a check over inputs that never
/// parse would test only the parser's refusals.
#[test]
fn a_good_share_of_the_generated_expressions_parse() {
    use proptest::strategy::ValueTree as _;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let parsed = (0..2000)
        .filter(|_| {
            let text = expression().new_tree(&mut runner).unwrap().current();
            let mut data = vec![0; 9];
            data.extend_from_slice(text.as_bytes());
            check::check(&data)
        })
        .count();
    assert!(parsed >= 200, "only {parsed} of 2000 generated expressions parse");
    assert!(parsed <= 1900, "{parsed} of 2000 parse: the refusals are hardly tried");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn the_fuzz_check_holds_for_cron_shaped_inputs(secs in any::<i64>(), zone in any::<u8>(), text in expression()) {
        let mut data = secs.to_le_bytes().to_vec();
        data.push(zone);
        data.extend_from_slice(text.as_bytes());
        check::check(&data);
    }

    #[test]
    fn the_fuzz_check_holds_for_any_bytes(data in prop::collection::vec(any::<u8>(), 0..64)) {
        check::check(&data);
    }
}
