//! `chime cron next|explain`: preview an expression's fire times in a zone.

use std::fmt::Write as _;

use chime_cron::CronSchedule;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::args::{CronCommand, ExplainArgs, NextArgs};
use crate::error::CliError;
use crate::output::out_raw;

pub(crate) fn run(cmd: CronCommand) -> Result<(), CliError> {
    let out = match cmd {
        CronCommand::Next(args) => next(args)?,
        CronCommand::Explain(args) => explain(args)?,
    };
    out_raw!("{out}");
    Ok(())
}

fn next(args: NextArgs) -> Result<String, CliError> {
    let schedule = parse_expression(&args.expression)?;
    let tz = parse_zone(args.tz.as_deref())?;
    let after = match &args.after {
        None => Timestamp::now(),
        Some(text) => text.parse::<Timestamp>().map_err(|e| {
            CliError::Usage(format!(
                "invalid --after {text:?}: expected an RFC 3339 instant such as 2026-03-08T00:00:00Z ({e})"
            ))
        })?,
    };
    let times: Vec<Timestamp> = schedule.iter_after(after, &tz).take(args.count as usize).collect();
    if args.json {
        let strings: Vec<String> = times.iter().map(|t| rfc3339(*t, &tz)).collect();
        return Ok(serde_json::to_string(&strings).expect("strings serialize") + "\n");
    }
    let mut out = String::new();
    writeln!(out, "{} ({}) in {}", schedule, schedule.describe(), zone_name(&tz)).unwrap();
    out.push_str(&fire_time_lines(&times, &tz, after));
    if times.len() < args.count as usize {
        writeln!(out, "  (no further fire times before the year 10000)").unwrap();
    }
    Ok(out)
}

fn explain(args: ExplainArgs) -> Result<String, CliError> {
    let schedule = parse_expression(&args.expression)?;
    let tz = parse_zone(args.tz.as_deref())?;
    let now = Timestamp::now();
    let times: Vec<Timestamp> = schedule.iter_after(now, &tz).take(5).collect();
    let class = if schedule.is_fixed_time() {
        "fixed-time: fires once when its time falls in a DST gap or fold"
    } else {
        "periodic: fires only at wall times that occur, twice in a DST fold"
    };
    if args.json {
        let value = serde_json::json!({
            "expression": schedule.to_string(),
            "description": schedule.describe(),
            "timezone": zone_name(&tz),
            "fixed_time": schedule.is_fixed_time(),
            "next": times.iter().map(|t| rfc3339(*t, &tz)).collect::<Vec<_>>(),
        });
        return Ok(value.to_string() + "\n");
    }
    let mut out = String::new();
    writeln!(out, "{}", schedule.describe()).unwrap();
    writeln!(out, "  expression  {schedule}").unwrap();
    writeln!(out, "  time zone   {}", zone_name(&tz)).unwrap();
    writeln!(out, "  DST class   {class}").unwrap();
    writeln!(out, "Next {} fire times:", times.len()).unwrap();
    out.push_str(&fire_time_lines(&times, &tz, now));
    Ok(out)
}

fn parse_expression(text: &str) -> Result<CronSchedule, CliError> {
    CronSchedule::parse(text).map_err(|e| CliError::Usage(format!("{e} (in {text:?})")))
}

/// The named zone, else the system's (`TZ`, then `/etc/localtime`).
fn parse_zone(name: Option<&str>) -> Result<TimeZone, CliError> {
    match name {
        None => Ok(TimeZone::system()),
        Some(name) => TimeZone::get(name).map_err(|_| {
            CliError::Usage(format!(
                "unknown time zone {name:?}: expected an IANA name such as Europe/London or America/New_York"
            ))
        }),
    }
}

fn zone_name(tz: &TimeZone) -> String {
    tz.iana_name().map_or_else(|| "the system zone".to_owned(), str::to_owned)
}

fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

fn fire_time_lines(times: &[Timestamp], tz: &TimeZone, from: Timestamp) -> String {
    let mut out = String::new();
    for t in times {
        let local = t.to_zoned_datetime(tz.clone()).strftime("%a %Y-%m-%d %H:%M:%S %Z (%:z)").to_string();
        writeln!(out, "  {local}  in {}", relative(t.duration_since(from))).unwrap();
    }
    out
}

/// "3h 12m", "2d 4h", "45s": the two most significant units.
pub(crate) fn relative(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let parts = [(secs / 86_400, "d"), (secs / 3600 % 24, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")];
    let first = parts.iter().position(|(n, _)| *n != 0).unwrap_or(3);
    parts[first..]
        .iter()
        .take(2)
        .enumerate()
        .filter(|(i, (n, _))| *i == 0 || *n != 0)
        .map(|(_, (n, unit))| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_durations() {
        assert_eq!(relative(SignedDuration::from_secs(45)), "45s");
        assert_eq!(relative(SignedDuration::from_secs(3 * 3600 + 12 * 60 + 5)), "3h 12m");
        assert_eq!(relative(SignedDuration::from_secs(2 * 86_400 + 4 * 3600)), "2d 4h");
        assert_eq!(relative(SignedDuration::from_secs(86_400 + 59)), "1d");
        assert_eq!(relative(SignedDuration::from_secs(0)), "0s");
        assert_eq!(relative(SignedDuration::from_millis(400)), "0s");
    }
}
