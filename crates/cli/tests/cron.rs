//! `chime cron next|explain`, run as a user would: the real binary.

use std::process::{Command, Output};

fn chime(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chime"))
        .args(args)
        .env("TZ", "America/New_York")
        .output()
        .expect("the chime binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn next_json_is_one_array_with_offsets() {
    let out = chime(&[
        "cron",
        "next",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2026-03-07T12:00:00Z",
        "-n",
        "3",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "[\"2026-03-08T03:00:00-04:00\",\"2026-03-09T02:30:00-04:00\",\"2026-03-10T02:30:00-04:00\"]\n"
    );
    let parsed: Vec<String> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(parsed.len(), 3);
}

#[test]
fn next_defaults_to_the_system_zone_and_five_times() {
    // TZ=America/New_York is set for every test run; the fold fires the first 01:30 only.
    let out = chime(&["cron", "next", "30 1 * * *", "--after", "2026-10-31T12:00:00-04:00", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let times: Vec<String> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(times.len(), 5);
    assert_eq!(times[0], "2026-11-01T01:30:00-04:00");
    assert_eq!(times[1], "2026-11-02T01:30:00-05:00");
}

#[test]
fn next_human_output_shows_local_time_offset_and_distance() {
    let out = chime(&[
        "cron",
        "next",
        "*/20 * * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2026-11-01T00:50:00-04:00",
        "-n",
        "4",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "*/20 * * * * (Every 20 minutes) in America/New_York");
    assert_eq!(lines[1], "  Sun 2026-11-01 01:00:00 EDT (-04:00)  in 10m");
    assert_eq!(lines[3], "  Sun 2026-11-01 01:40:00 EDT (-04:00)  in 50m");
    assert_eq!(lines[4], "  Sun 2026-11-01 01:00:00 EST (-05:00)  in 1h 10m");
}

#[test]
fn next_with_count_zero_prints_an_empty_array() {
    let out = chime(&["cron", "next", "@daily", "-n", "0", "--json"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "[]\n");
}

#[test]
fn explain_describes_and_lists_five_times() {
    let out = chime(&["cron", "explain", "30 9 * * MON-FRI", "--tz", "Europe/London"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("At 09:30, Monday through Friday\n"), "{text}");
    assert!(text.contains("time zone   Europe/London"), "{text}");
    assert!(text.contains("fixed-time"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains(" 09:30:00 ")).count(), 5, "{text}");

    let out = chime(&["cron", "explain", "@hourly", "--tz", "UTC", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["description"], "Every hour");
    assert_eq!(v["fixed_time"], false);
    assert_eq!(v["next"].as_array().unwrap().len(), 5);
}

#[test]
fn an_invalid_expression_is_one_line_on_stderr_with_exit_code_2() {
    let out = chime(&["cron", "next", "0 9 * * 8"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty());
    assert_eq!(
        stderr(&out),
        "error: invalid day-of-week \"8\" at column 9: expected 0-7 or SUN-SAT (in \"0 9 * * 8\")\n"
    );
    let out = chime(&["cron", "explain", "0 0 30 2 *"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(stderr(&out).contains("can never fire"));
}

#[test]
fn an_unknown_zone_or_instant_exits_2() {
    let out = chime(&["cron", "next", "@daily", "--tz", "Mars/Olympus"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(stderr(&out).contains("unknown time zone \"Mars/Olympus\""));

    let out = chime(&["cron", "next", "@daily", "--after", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error: invalid --after \"yesterday\""), "{}", stderr(&out));
}

#[test]
fn unknown_subcommands_and_flags_get_clap_usage_errors() {
    for args in [&["cron", "nope"][..], &["cron", "next", "@daily", "--bogus"], &["cron", "next"], &["frobnicate"]] {
        let out = chime(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("Usage:"), "{args:?}: {}", stderr(&out));
    }
}
