//! `chime.toml`: scheduler settings and jobs of the built-in tasks.
//!
//! Every mistake is reported before anything starts, naming the file, the
//! job, the key and the line: `chime.toml: job "report" (line 12): cron:
//! invalid day-of-week "8" at column 9: expected 0-7 or SUN-SAT`.

use std::collections::BTreeMap;
use std::path::Path;

use chime_core::{CalendarUnit, Job, JobOptions, RetryPolicy, Trigger, parse_duration};
use jiff::SignedDuration;
use serde::Deserialize;

use crate::builtin::{CommandSpec, HttpSpec};

/// What the file says.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) timezone: Option<String>,
    pub(crate) max_concurrency: Option<usize>,
    pub(crate) node_lease: SignedDuration,
    pub(crate) history_keep: usize,
    pub(crate) history_max_age: Option<SignedDuration>,
    pub(crate) shutdown_grace: SignedDuration,
    pub(crate) store: Option<String>,
    pub(crate) listen: Option<std::net::SocketAddr>,
    pub(crate) api_token: Option<String>,
    /// Reads (the API, the dashboard, /metrics) need the token too.
    pub(crate) read_token: bool,
    /// Host names besides loopback that requests may be addressed to.
    pub(crate) allowed_hosts: Vec<String>,
    /// Where `http` jobs may send requests (every job, and those created over the API).
    pub(crate) allowed_targets: Option<chime_tasks::TargetPolicy>,
    pub(crate) jobs: Vec<Job>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    scheduler: SchedulerSection,
    #[serde(default)]
    defaults: OptionsSection,
    #[serde(default)]
    http: HttpSection,
    #[serde(default, rename = "job")]
    jobs: Vec<toml::Spanned<JobSection>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SchedulerSection {
    timezone: Option<String>,
    max_concurrency: Option<usize>,
    history_keep: Option<usize>,
    history_max_age: Option<String>,
    shutdown_grace: Option<String>,
    node_lease: Option<String>,
    store: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    listen: Option<String>,
    token: Option<String>,
    #[serde(default)]
    read_token: bool,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    allowed_targets: Option<chime_tasks::TargetPolicy>,
}

/// Job options, in a job or as `[defaults]` for every job.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct OptionsSection {
    max_instances: Option<u32>,
    coalesce: Option<bool>,
    misfire_grace_time: Option<String>,
    jitter: Option<String>,
    timeout: Option<String>,
    retry: Option<RetrySection>,
    alert_after: Option<String>,
    alert_on_failures: Option<i64>,
    on_alert: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RetrySection {
    /// Named as in the API and chime-core; `attempts` is the older spelling.
    #[serde(alias = "attempts")]
    max_attempts: u32,
    backoff: String,
    max_backoff: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobSection {
    id: String,
    name: Option<String>,
    cron: Option<String>,
    every: Option<String>,
    at: Option<String>,
    calendar: Option<CalendarSection>,
    timezone: Option<String>,
    command: Option<CommandValue>,
    #[serde(default)]
    shell: bool,
    #[serde(default)]
    env: BTreeMap<String, String>,
    working_dir: Option<String>,
    http: Option<HttpSpec>,
    #[serde(flatten)]
    options: OptionsSection,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CommandValue {
    Line(String),
    Argv(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarSection {
    #[serde(default = "one")]
    every: u32,
    unit: String,
    at: String,
    start: Option<String>,
}

fn one() -> u32 {
    1
}

/// Reads and validates a config file.
pub(crate) fn load(path: &Path) -> Result<Config, String> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read the config file: {e}"))?;
    parse(&text, &shown)
}

/// The longest node lease the config accepts: a dead node's runs wait this
/// long to be taken over.
const MAX_NODE_LEASE: SignedDuration = SignedDuration::from_hours(1);

/// The settings `chime serve` uses without a config file: the documented
/// defaults, the same as an empty file's.
pub(crate) fn defaults() -> Config {
    parse("", "(defaults)").expect("an empty config is valid")
}

/// The keys each part of the file accepts, for "unknown key" errors that
/// list the valid ones (serde's message names neither the line nor them).
const TOP_KEYS: &[&str] = &["scheduler", "defaults", "http", "job"];
const SCHEDULER_KEYS: &[&str] =
    &["timezone", "max_concurrency", "history_keep", "history_max_age", "shutdown_grace", "node_lease", "store"];
const HTTP_KEYS: &[&str] = &["listen", "token", "read_token", "allowed_hosts", "allowed_targets"];
const OPTION_KEYS: &[&str] = &[
    "max_instances",
    "coalesce",
    "misfire_grace_time",
    "jitter",
    "timeout",
    "retry",
    "alert_after",
    "alert_on_failures",
    "on_alert",
];
const JOB_KEYS: &[&str] =
    &["id", "name", "cron", "every", "at", "calendar", "timezone", "command", "shell", "env", "working_dir", "http"];
const RETRY_KEYS: &[&str] = &["max_attempts", "attempts", "backoff", "max_backoff"];
const CALENDAR_KEYS: &[&str] = &["every", "unit", "at", "start"];

/// Every key of the file that no section accepts, each with its line, the
/// closest valid key and the list of valid ones.
fn unknown_keys(text: &str, shown: &str) -> Vec<String> {
    let Ok(table) = toml::from_str::<toml::Table>(text) else { return Vec::new() };
    let mut errors = Vec::new();
    let headers = section_lines(text);
    // `parent` is the key of an inline table (`retry = { ... }`), whose line is
    // where its keys are.
    let mut check =
        |what: &str, header: Option<usize>, parent: Option<&str>, table: &toml::Table, valid: &[&[&str]]| {
            for key in table.keys() {
                if valid.iter().any(|v| v.contains(&key.as_str())) {
                    continue;
                }
                let line = header.map_or(1, |h| key_line(text, h, parent.unwrap_or(key)));
                let all: Vec<&str> = valid.iter().flat_map(|v| v.iter().copied()).collect();
                let hint = closest(key, &all).map_or_else(String::new, |k| format!(" (did you mean {k:?}?)"));
                errors
                    .push(format!("{shown}:{line}: {what}: unknown key {key:?}{hint}; valid keys: {}", all.join(", ")));
            }
        };
    check("the file", None, None, &table, &[TOP_KEYS]);
    let section = |name: &str| table.get(name).and_then(toml::Value::as_table);
    let header_of = |name: &str, index: usize| headers.iter().filter(|(n, _)| n == name).nth(index).map(|(_, l)| *l);
    if let Some(t) = section("scheduler") {
        check("[scheduler]", header_of("scheduler", 0), None, t, &[SCHEDULER_KEYS]);
    }
    if let Some(t) = section("http") {
        check("[http]", header_of("http", 0), None, t, &[HTTP_KEYS]);
    }
    if let Some(t) = section("defaults") {
        check("[defaults]", header_of("defaults", 0), None, t, &[OPTION_KEYS]);
        if let Some(r) = t.get("retry").and_then(toml::Value::as_table) {
            check("[defaults] retry", header_of("defaults", 0), Some("retry"), r, &[RETRY_KEYS]);
        }
    }
    for (i, job) in table.get("job").and_then(toml::Value::as_array).into_iter().flatten().enumerate() {
        let Some(job) = job.as_table() else { continue };
        let id = job.get("id").and_then(toml::Value::as_str).unwrap_or("?");
        let what = format!("job {id:?}");
        let header = header_of("job", i);
        check(&what, header, None, job, &[JOB_KEYS, OPTION_KEYS]);
        if let Some(r) = job.get("retry").and_then(toml::Value::as_table) {
            check(&format!("{what} retry"), header, Some("retry"), r, &[RETRY_KEYS]);
        }
        if let Some(c) = job.get("calendar").and_then(toml::Value::as_table) {
            check(&format!("{what} calendar"), header, Some("calendar"), c, &[CALENDAR_KEYS]);
        }
    }
    errors
}

/// The section headers of the file: (`job` for `[[job]]`, `scheduler`, …; line).
fn section_lines(text: &str) -> Vec<(String, usize)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let l = line.trim();
            let name = l
                .strip_prefix("[[")
                .and_then(|r| r.split("]]").next())
                .or_else(|| l.strip_prefix('[').and_then(|r| r.split(']').next()))?;
            Some((name.trim().to_owned(), i + 1))
        })
        .collect()
}

/// The line of `key = ...` in the section that starts at line `header`.
fn key_line(text: &str, header: usize, key: &str) -> usize {
    text.lines()
        .enumerate()
        .skip(header)
        .find(|(_, line)| {
            let l = line.trim_start();
            let l = l.strip_prefix('"').unwrap_or(l);
            l.strip_prefix(key).is_some_and(|rest| rest.trim_start_matches('"').trim_start().starts_with('='))
        })
        .map_or(header, |(i, _)| i + 1)
}

/// The valid key nearest to `key`, if it is a plausible typo (at most two edits).
fn closest<'a>(key: &str, valid: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    valid.iter().map(|v| (distance(key, v), *v)).filter(|(d, _)| *d <= 2).min().map(|(_, v)| v)
}

/// Parses config text; `shown` names the file in errors. Every mistake of
/// the file is reported at once, one per line.
pub(crate) fn parse(text: &str, shown: &str) -> Result<Config, String> {
    let unknown = unknown_keys(text, shown);
    if !unknown.is_empty() {
        return Err(unknown.join("\n"));
    }
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        let what = e.message().trim().to_owned();
        match line {
            Some(line) => format!("{shown}:{line}: {what}"),
            None => format!("{shown}: {what}"),
        }
    })?;
    let s = file.scheduler;
    let duration = |key: &str, v: &Option<String>| -> Result<Option<SignedDuration>, String> {
        v.as_deref().map(|t| parse_duration(t).map_err(|e| format!("{shown}: [scheduler] {key}: {e}"))).transpose()
    };
    if let Some(zone) = &s.timezone {
        chime_core::Zone::get(zone).map_err(|e| format!("{shown}: [scheduler] timezone: {e}"))?;
    }
    let node_lease = duration("node_lease", &s.node_lease)?.unwrap_or(chime_core::DEFAULT_NODE_LEASE);
    if node_lease < chime_core::MIN_NODE_LEASE || node_lease > MAX_NODE_LEASE {
        return Err(format!(
            "{shown}: [scheduler] node_lease: {} is out of range: between {} and {}",
            chime_core::format_duration(node_lease),
            chime_core::format_duration(chime_core::MIN_NODE_LEASE),
            chime_core::format_duration(MAX_NODE_LEASE)
        ));
    }
    let mut config = Config {
        timezone: s.timezone.clone(),
        max_concurrency: s.max_concurrency,
        node_lease,
        history_keep: s.history_keep.unwrap_or(chime_core::DEFAULT_HISTORY_LIMIT),
        history_max_age: duration("history_max_age", &s.history_max_age)?,
        shutdown_grace: duration("shutdown_grace", &s.shutdown_grace)?.unwrap_or(SignedDuration::from_secs(30)),
        store: s.store,
        listen: file
            .http
            .listen
            .as_deref()
            .map(|a| {
                a.parse()
                    .map_err(|e| format!("{shown}: [http] listen: {a:?} is not an address such as 127.0.0.1:8080: {e}"))
            })
            .transpose()?,
        api_token: file.http.token,
        read_token: file.http.read_token,
        allowed_hosts: file.http.allowed_hosts,
        allowed_targets: file.http.allowed_targets,
        jobs: Vec::new(),
    };
    let defaults = options(&file.defaults, &JobOptions::default())
        .map_err(|(key, e)| format!("{shown}: [defaults] {key}: {e}"))?;
    let mut seen = std::collections::HashSet::new();
    let mut errors = Vec::new();
    for spanned in file.jobs {
        let line = line_of(text, spanned.span().start);
        let job = spanned.into_inner();
        let at = format!("{shown}: job {:?} (line {line})", job.id);
        if !seen.insert(job.id.clone()) {
            errors.push(format!("{at}: id: another job above has the same id"));
            continue;
        }
        match job_from(job, &defaults, config.timezone.as_deref()) {
            Ok(job) => config.jobs.push(job),
            Err((key, e)) => errors.push(format!("{at}: {key}: {e}")),
        }
    }
    let ids: std::collections::HashSet<&str> = config.jobs.iter().map(|j| j.id.as_str()).collect();
    for job in &config.jobs {
        match job.options.on_alert.as_ref().map(chime_core::JobId::as_str) {
            Some(hook) if hook == job.id.as_str() => errors.push(format!(
                "{shown}: job {:?}: on_alert: names the job itself; name another job to run when it alerts",
                job.id.as_str()
            )),
            Some(hook) if !ids.contains(hook) => {
                errors.push(format!("{shown}: job {:?}: on_alert: {hook:?} is not a job of this file", job.id.as_str()))
            }
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(config)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

type KeyError = (&'static str, String);

fn options(section: &OptionsSection, base: &JobOptions) -> Result<JobOptions, KeyError> {
    let dur = |key: &'static str,
               v: &Option<String>,
               current: Option<SignedDuration>|
     -> Result<Option<SignedDuration>, KeyError> {
        match v {
            Some(text) => parse_duration(text).map(Some).map_err(|e| (key, e.to_string())),
            None => Ok(current),
        }
    };
    let retry = match &section.retry {
        Some(r) => {
            let backoff = parse_duration(&r.backoff).map_err(|e| ("retry.backoff", e.to_string()))?;
            let mut policy = RetryPolicy::new(r.max_attempts, backoff);
            if let Some(cap) = &r.max_backoff {
                policy =
                    policy.with_max_backoff(parse_duration(cap).map_err(|e| ("retry.max_backoff", e.to_string()))?);
            }
            Some(Box::new(policy))
        }
        None => base.retry.clone(),
    };
    let alert_on_failures = match section.alert_on_failures {
        Some(n) => {
            Some(u32::try_from(n).ok().filter(|n| (1..=chime_core::MAX_ALERT_FAILURES).contains(n)).ok_or_else(
                || ("alert_on_failures", format!("must be between 1 and {}, not {n}", chime_core::MAX_ALERT_FAILURES)),
            )?)
        }
        None => base.alert_on_failures,
    };
    let on_alert = match &section.on_alert {
        Some(id) => Some(chime_core::JobId::new(id).map_err(|e| ("on_alert", e.to_string()))?),
        None => base.on_alert.clone(),
    };
    let options = JobOptions {
        max_instances: section.max_instances.unwrap_or(base.max_instances),
        coalesce: section.coalesce.unwrap_or(base.coalesce),
        misfire_grace_time: dur("misfire_grace_time", &section.misfire_grace_time, base.misfire_grace_time)?,
        jitter: dur("jitter", &section.jitter, base.jitter)?,
        timeout: dur("timeout", &section.timeout, base.timeout)?,
        retry,
        alert_after: dur("alert_after", &section.alert_after, base.alert_after)?,
        alert_on_failures,
        on_alert,
    };
    if let Some(d) = options.alert_after {
        // The key named, not "options": `alert_after: must be ...`.
        let named = |e: chime_core::Error| ("alert_after", e.to_string());
        JobOptions { alert_after: Some(d), ..JobOptions::default() }.validate().map_err(named)?;
    }
    options.validate().map_err(|e| ("options", e.to_string()))?;
    Ok(options)
}

fn job_from(s: JobSection, defaults: &JobOptions, zone: Option<&str>) -> Result<Job, KeyError> {
    let triggers = [s.cron.is_some(), s.every.is_some(), s.at.is_some(), s.calendar.is_some()];
    let mut trigger = match triggers.iter().filter(|t| **t).count() {
        0 => return Err(("trigger", "missing: give one of cron, every, at or calendar".into())),
        1 => {
            if let Some(expr) = &s.cron {
                Trigger::cron(expr).map_err(|e| ("cron", e.to_string()))?
            } else if let Some(every) = &s.every {
                Trigger::every(every).map_err(|e| ("every", e.to_string()))?
            } else if let Some(at) = &s.at {
                let at: jiff::Timestamp = at.parse().map_err(|e| {
                    ("at", format!("{at:?} is not an RFC 3339 instant such as 2026-12-01T09:00:00Z: {e}"))
                })?;
                Trigger::at(at)
            } else {
                let c = s.calendar.as_ref().expect("counted above");
                let unit = match c.unit.as_str() {
                    "days" | "day" => CalendarUnit::Days,
                    "weeks" | "week" => CalendarUnit::Weeks,
                    "months" | "month" => CalendarUnit::Months,
                    "years" | "year" => CalendarUnit::Years,
                    other => {
                        return Err(("calendar.unit", format!("{other:?}: expected days, weeks, months or years")));
                    }
                };
                let mut t = Trigger::calendar(c.every, unit, &c.at).map_err(|e| ("calendar", e.to_string()))?;
                if let (Some(start), Trigger::Calendar(cal)) = (&c.start, &mut t) {
                    cal.start =
                        Some(start.parse().map_err(|e| ("calendar.start", format!("{start:?} is not a date: {e}")))?);
                }
                t
            }
        }
        _ => return Err(("trigger", "give only one of cron, every, at or calendar".into())),
    };
    if let Some(z) = s.timezone.as_deref().or(zone) {
        trigger = trigger.with_timezone(z).map_err(|e| ("timezone", e.to_string()))?;
    }
    trigger.validate().map_err(|e| ("trigger", e.to_string()))?;
    if let Some(every) = trigger.min_interval().filter(|e| *e < chime_core::DEFAULT_MIN_INTERVAL) {
        return Err((
            "every",
            format!(
                "{} is shorter than the shortest interval chime serve runs, {}",
                chime_core::format_duration(every),
                chime_core::format_duration(chime_core::DEFAULT_MIN_INTERVAL)
            ),
        ));
    }
    let (task, args) = match (s.command, s.http) {
        (Some(_), Some(_)) => return Err(("command", "a job runs a command or an http request, not both".into())),
        (None, None) => {
            return Err(("task", "missing: give command = [\"program\", \"arg\"] or http = { url = \"...\" }".into()));
        }
        (Some(command), None) => {
            let argv = match (command, s.shell) {
                (CommandValue::Argv(argv), _) => argv,
                (CommandValue::Line(line), true) => vec![line],
                (CommandValue::Line(_), false) => {
                    return Err((
                        "command",
                        "a command line as one string needs shell = true; otherwise write command = [\"program\", \"arg\", ...]".into(),
                    ));
                }
            };
            if argv.is_empty() || argv[0].trim().is_empty() {
                return Err(("command", "the command is empty".into()));
            }
            let spec = CommandSpec { argv, shell: s.shell, env: s.env, working_dir: s.working_dir };
            ("command", serde_json::to_value(spec).expect("serializes"))
        }
        (None, Some(http)) => {
            crate::builtin::parse_http_url(&http.url).map_err(|e| ("http.url", e))?;
            chime_tasks::validate(&http).map_err(|e| ("http", e))?;
            ("http", serde_json::to_value(http).expect("serializes"))
        }
    };
    let mut job = Job::new(&s.id, task, trigger).map_err(|e| ("id", e.to_string()))?;
    job.name = s.name;
    job.args = args;
    job.options = options(&s.options, defaults)?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../../../examples/chime.toml");
        let config = parse(text, "examples/chime.toml").unwrap();
        assert!(config.jobs.len() >= 4);
        assert!(config.jobs.iter().any(|j| &*j.task == "http"));
    }

    #[track_caller]
    fn error(text: &str) -> String {
        parse(text, "chime.toml").unwrap_err()
    }

    #[test]
    fn mistakes_name_the_file_the_job_the_key_and_the_line() {
        assert_eq!(
            error("[[job]]\nid = \"r\"\ncron = \"0 9 * * 8\"\ncommand = [\"true\"]\n"),
            r#"chime.toml: job "r" (line 1): cron: invalid cron expression "0 9 * * 8": invalid day-of-week "8" at column 9: expected 0-7 or SUN-SAT"#
        );
        assert_eq!(
            error("\n[[job]]\nid = \"r\"\nevery = \"soon\"\ncommand = [\"true\"]\n"),
            "chime.toml: job \"r\" (line 2): every: invalid duration \"soon\": not a duration; expected a positive duration such as \"90s\", \"1h 30m\" or \"PT4H\""
        );
        assert!(error("[[job]]\nid = \"r\"\ncommand = [\"true\"]\n").contains("trigger: missing"));
        assert!(
            error("[[job]]\nid = \"r\"\ncron = \"* * * * *\"\nevery = \"1h\"\ncommand = [\"true\"]\n")
                .contains("give only one")
        );
        assert!(error("[[job]]\nid = \"r\"\nevery = \"1h\"\ncommand = \"ls -l\"\n").contains("needs shell = true"));
        assert!(error("[[job]]\nid = \"r\"\nevery = \"1h\"\nhttp = { url = \"ftp://x\" }\n").contains("http.url"));
        let smuggled = error(
            "[[job]]\nid = \"r\"\nevery = \"1h\"\nhttp = { url = \"http://127.0.0.1/\", headers = { X = \"a\\r\\nFLUSHALL\" } }\n",
        );
        assert!(smuggled.contains("job \"r\" (line 1): http: header"), "{smuggled}");
        assert!(
            error("[[job]]\nid = \"r\"\nevery = \"1h\"\ncommand = [\"true\"]\ntimeout = \"0s\"\n").contains("timeout")
        );
        assert!(error("[[job]]\nid = \"a\"\nevery = \"1h\"\ncommand = [\"x\"]\n[[job]]\nid = \"a\"\nevery = \"1h\"\ncommand = [\"x\"]\n").contains("same id"));
        let unknown_key = error("[[job]]\nid = \"r\"\nevry = \"1h\"\ncommand = [\"true\"]\n");
        assert!(unknown_key.starts_with("chime.toml:"), "{unknown_key}");
        assert!(unknown_key.contains("evry"), "{unknown_key}");
        assert!(error("[scheduler]\ntimezone = \"Mars/Olympus\"\n").contains("[scheduler] timezone"));
        let syntax = error("[[job]\n");
        assert!(syntax.starts_with("chime.toml:1:"), "{syntax}");
    }

    #[test]
    fn every_mistake_is_reported_at_once_with_its_line_and_the_valid_keys() {
        let text = "[scheduler]\ntimezone = \"UTC\"\nlease = \"10s\"\n\n[[job]]\nid = \"r\"\n\nevry = \"1h\"\ncommand = [\"true\"]\n\n[[job]]\nid = \"s\"\ncron = \"* * * * *\"\ncommand = [\"true\"]\nretry = { attempts = 2, backof = \"1s\" }\n";
        let e = error(text);
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(lines[0].starts_with("chime.toml:3: [scheduler]: unknown key \"lease\""), "{e}");
        assert!(lines[0].contains("valid keys: timezone, max_concurrency"), "{e}");
        assert_eq!(
            lines[1],
            "chime.toml:8: job \"r\": unknown key \"evry\" (did you mean \"every\"?); valid keys: id, name, cron, every, at, calendar, timezone, command, shell, env, working_dir, http, max_instances, coalesce, misfire_grace_time, jitter, timeout, retry, alert_after, alert_on_failures, on_alert"
        );
        assert!(
            lines[2].starts_with("chime.toml:15: job \"s\" retry: unknown key \"backof\" (did you mean \"backoff\"?)"),
            "{e}"
        );

        // Mistakes in values: every job's, not only the first.
        let e = error(
            "[[job]]\nid = \"a\"\ncron = \"0 9 * * 8\"\ncommand = [\"true\"]\n[[job]]\nid = \"b\"\nevery = \"soon\"\ncommand = [\"true\"]\n",
        );
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 2, "{e}");
        assert!(lines[0].starts_with("chime.toml: job \"a\" (line 1): cron:"), "{e}");
        assert!(lines[1].starts_with("chime.toml: job \"b\" (line 5): every:"), "{e}");
    }

    #[test]
    fn every_valid_key_is_accepted() {
        let text = "[scheduler]\ntimezone = \"UTC\"\nmax_concurrency = 4\nhistory_keep = 10\nhistory_max_age = \"1d\"\nshutdown_grace = \"5s\"\nnode_lease = \"10s\"\nstore = \"memory:\"\n[http]\nlisten = \"127.0.0.1:9000\"\ntoken = \"0123456789abcdef\"\nread_token = true\nallowed_hosts = [\"chime.example.com\"]\n[defaults]\ntimeout = \"1m\"\nmax_instances = 2\ncoalesce = false\nmisfire_grace_time = \"1m\"\njitter = \"1s\"\nretry = { max_attempts = 2, backoff = \"1s\", max_backoff = \"5s\" }\n[[job]]\nid = \"a\"\nname = \"A\"\ncalendar = { every = 1, unit = \"days\", at = \"09:00\", start = \"2026-01-01\" }\ntimezone = \"UTC\"\ncommand = [\"true\"]\nshell = false\nenv = { A = \"1\" }\nworking_dir = \"/tmp\"\ntimeout = \"1m\"\n[[job]]\nid = \"b\"\nevery = \"1h\"\nhttp = { url = \"http://127.0.0.1/\" }\n[[job]]\nid = \"c\"\nat = \"2026-12-01T09:00:00Z\"\ncommand = [\"true\"]\n[[job]]\nid = \"d\"\ncron = \"0 9 * * *\"\ncommand = [\"true\"]\n";
        let c = parse(text, "chime.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.jobs.len(), 4);
        assert_eq!(c.node_lease, SignedDuration::from_secs(10));
        assert!(c.read_token && c.allowed_hosts == ["chime.example.com"]);
        let targets = parse("[http]\nallowed_targets = [\"127.0.0.1:9000\", \"*.internal\"]\n", "chime.toml").unwrap();
        assert!(targets.allowed_targets.is_some());
        assert!(
            error("[http]\nallowed_targets = [\"\"]\n").contains("allowed target"),
            "{}",
            error("[http]\nallowed_targets = [\"\"]\n")
        );
        assert!(error("[scheduler]\nnode_lease = \"100ms\"\n").contains("node_lease: 100ms is out of range"));
        assert!(
            error("[[job]]\nid = \"r\"\nevery = \"1ns\"\ncommand = [\"true\"]\n")
                .contains("shorter than the shortest accepted, 1ms")
        );
        assert!(
            error("[[job]]\nid = \"r\"\nevery = \"500ms\"\ncommand = [\"true\"]\n")
                .contains("every: 500ms is shorter than the shortest interval chime serve runs, 1s")
        );
        assert!(
            error("[[job]]\nid = \"r\"\nevery = \"80000000h\"\ncommand = [\"true\"]\n")
                .contains("longer than the longest accepted")
        );
        assert!(error("[scheduler]\nnode_lease = \"2h\"\n").contains("between 300ms and 1h"));
    }

    #[test]
    fn alert_options_are_read_and_checked() {
        let job = "[[job]]\nid = \"backup\"\ncron = \"0 3 * * *\"\ncommand = [\"true\"]\n";
        let hook =
            "[[job]]\nid = \"notify\"\nat = \"2036-01-01T00:00:00Z\"\nhttp = { url = \"http://127.0.0.1:9/hook\" }\n";
        let c = parse(
            &format!("{job}alert_after = \"26h\"\nalert_on_failures = 3\non_alert = \"notify\"\n{hook}"),
            "chime.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let o = &c.jobs[0].options;
        assert_eq!(o.alert_after, Some(SignedDuration::from_hours(26)));
        assert_eq!(o.alert_on_failures, Some(3));
        assert_eq!(o.on_alert.as_ref().map(|j| j.as_str()), Some("notify"));
        // [defaults] apply to every job.
        let c = parse(&format!("[defaults]\nalert_after = \"2d\"\n{job}"), "chime.toml").unwrap();
        assert_eq!(c.jobs[0].options.alert_after, Some(SignedDuration::from_hours(48)));

        for (line, says) in [
            ("alert_on_failures = 0", "job \"backup\" (line 1): alert_on_failures: must be between 1 and 1000, not 0"),
            ("alert_on_failures = -2", "alert_on_failures: must be between 1 and 1000, not -2"),
            ("alert_on_failures = 100000", "alert_on_failures: must be between 1 and 1000, not 100000"),
            ("alert_after = \"0s\"", "alert_after: invalid duration \"0s\""),
            ("alert_after = \"soon\"", "alert_after: invalid duration \"soon\""),
            ("alert_after = \"10ms\"", "alert_after: alert_after 10ms is shorter than the shortest accepted, 1s"),
            ("alert_after = \"100000d\"", "alert_after: alert_after 2400000h is longer than the longest accepted"),
            ("alert_after = 26", "invalid type: integer `26`, expected a string"),
            ("on_alert = \"nobody\"\nalert_after = \"1h\"", "on_alert: \"nobody\" is not a job of this file"),
            ("on_alert = \"backup\"\nalert_after = \"1h\"", "on_alert: names the job itself"),
            ("on_alert = \"notify\"", "on_alert needs alert_after or alert_on_failures"),
            ("on_alert = \"\"", "on_alert: invalid job id"),
        ] {
            let e = error(&format!("{job}{line}\n{hook}"));
            assert!(e.contains(says), "{line}: {e}");
        }
        assert!(error(&format!("{job}alert_afer = \"1h\"\n")).contains("did you mean \"alert_after\"?"));
    }

    #[test]
    fn defaults_apply_and_jobs_override() {
        let c = parse(
            "[defaults]\ntimeout = \"10m\"\nmax_instances = 2\n[[job]]\nid = \"a\"\nevery = \"1h\"\ncommand = [\"true\"]\n[[job]]\nid = \"b\"\nevery = \"1h\"\ncommand = [\"true\"]\ntimeout = \"1m\"\n",
            "c",
        )
        .unwrap();
        assert_eq!(c.jobs[0].options.timeout, Some(SignedDuration::from_mins(10)));
        assert_eq!(c.jobs[0].options.max_instances, 2);
        assert_eq!(c.jobs[1].options.timeout, Some(SignedDuration::from_mins(1)));
    }
}
