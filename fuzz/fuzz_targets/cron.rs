//! The cron fuzz target: the check in `check.rs` (also driven by proptest on
//! the stable toolchain in `crates/cron/tests/fuzz.rs`, so CI runs it too).
#![no_main]

mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::check(data);
});
