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

/// What a key's value must be. Checked on the parsed table before the file
/// is decoded, so a value of the wrong type is reported with its key and
/// line and hides no other mistake (serde's message names neither).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Text,
    /// Text that parses as a duration ("30s").
    Duration,
    /// A whole number, zero or more.
    Count,
    /// A whole number, checked for range later.
    Integer,
    Flag,
    TextList,
    /// A command: one string or a list of strings.
    TextOrList,
    /// A table of strings (`env`).
    TextTable,
    Table,
    /// `[[job]]`: a list of tables.
    Tables,
}

impl Kind {
    fn accepts(self, v: &toml::Value) -> bool {
        let all_text = |a: &Vec<toml::Value>| a.iter().all(toml::Value::is_str);
        match self {
            Kind::Text | Kind::Duration => v.is_str(),
            Kind::Count => v.as_integer().is_some_and(|n| n >= 0),
            Kind::Integer => v.is_integer(),
            Kind::Flag => v.is_bool(),
            Kind::TextList => v.as_array().is_some_and(all_text),
            Kind::TextOrList => v.is_str() || v.as_array().is_some_and(all_text),
            Kind::TextTable => v.as_table().is_some_and(|t| t.values().all(toml::Value::is_str)),
            Kind::Table => v.is_table(),
            Kind::Tables => v.as_array().is_some_and(|a| a.iter().all(toml::Value::is_table)),
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::Duration => "a duration as a string, such as \"30s\"",
            Kind::Count => "a whole number, 0 or more",
            Kind::Integer => "a whole number",
            Kind::Flag => "true or false",
            Kind::TextList => "a list of strings",
            Kind::TextOrList => "a string or a list of strings",
            Kind::TextTable => "a table of strings, such as { NAME = \"value\" }",
            Kind::Table => "a table",
            Kind::Tables => "[[job]] tables",
        }
    }
}

/// A value as an error shows it: `the integer 26`, `the string "two"`.
fn shown_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) if s.chars().count() > 40 => {
            format!("the string {:?}…", s.chars().take(40).collect::<String>())
        }
        toml::Value::String(s) => format!("the string {s:?}"),
        toml::Value::Integer(n) => format!("the integer {n}"),
        toml::Value::Float(n) => format!("the number {n}"),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => format!("the date {d}"),
        toml::Value::Array(_) => "a list".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
    }
}

/// The keys each part of the file accepts and what each holds, for
/// "unknown key" errors that list the valid ones and for type errors.
type Keys = &'static [(&'static str, Kind)];
const TOP_KEYS: Keys =
    &[("scheduler", Kind::Table), ("defaults", Kind::Table), ("http", Kind::Table), ("job", Kind::Tables)];
const SCHEDULER_KEYS: Keys = &[
    ("timezone", Kind::Text),
    ("max_concurrency", Kind::Count),
    ("history_keep", Kind::Count),
    ("history_max_age", Kind::Duration),
    ("shutdown_grace", Kind::Duration),
    ("node_lease", Kind::Duration),
    ("store", Kind::Text),
];
const HTTP_KEYS: Keys = &[
    ("listen", Kind::Text),
    ("token", Kind::Text),
    ("read_token", Kind::Flag),
    ("allowed_hosts", Kind::TextList),
    ("allowed_targets", Kind::TextList),
];
const OPTION_KEYS: Keys = &[
    ("max_instances", Kind::Count),
    ("coalesce", Kind::Flag),
    ("misfire_grace_time", Kind::Duration),
    ("jitter", Kind::Duration),
    ("timeout", Kind::Duration),
    ("retry", Kind::Table),
    ("alert_after", Kind::Duration),
    ("alert_on_failures", Kind::Integer),
    ("on_alert", Kind::Text),
];
const JOB_KEYS: Keys = &[
    ("id", Kind::Text),
    ("name", Kind::Text),
    ("cron", Kind::Text),
    ("every", Kind::Duration),
    ("at", Kind::Text),
    ("calendar", Kind::Table),
    ("timezone", Kind::Text),
    ("command", Kind::TextOrList),
    ("shell", Kind::Flag),
    ("env", Kind::TextTable),
    ("working_dir", Kind::Text),
    ("http", Kind::Table),
];
const RETRY_KEYS: Keys = &[
    ("max_attempts", Kind::Count),
    ("attempts", Kind::Count),
    ("backoff", Kind::Duration),
    ("max_backoff", Kind::Duration),
];
const CALENDAR_KEYS: Keys = &[("every", Kind::Count), ("unit", Kind::Text), ("at", Kind::Text), ("start", Kind::Text)];

/// Every key of the file that no section accepts, each with its line, the
/// closest valid key and the list of valid ones; and every value of the
/// wrong type, with its key and line.
///
/// Each key reported is removed from `table`, so that decoding what is left
/// finds the file's other mistakes instead of stopping at these.
fn check_keys(table: &mut toml::Table, text: &str, shown: &str) -> (Vec<String>, Vec<usize>) {
    let mut errors = Vec::new();
    // The jobs that lost a key here: a key they miss now is a consequence.
    let mut flagged = Vec::new();
    let headers = section_lines(text);
    // `parent` is the key of an inline table (`retry = { ... }`), whose line is
    // where its keys are.
    let mut check =
        |what: &str, header: Option<usize>, parent: Option<&str>, table: &mut toml::Table, valid: &[Keys]| {
            let before = errors.len();
            let mut bad = Vec::new();
            for (key, value) in table.iter() {
                let line = match header {
                    Some(h) => key_line(text, h, parent.unwrap_or(key)),
                    // A key of the file itself: a section header (`[[jobs]]`) or a key before any.
                    None => headers.iter().find(|(n, _)| n == key).map_or_else(|| key_line(text, 0, key), |(_, l)| *l),
                };
                match valid.iter().flat_map(|v| v.iter()).find(|(k, _)| k == key) {
                    Some((_, kind)) if kind.accepts(value) => {}
                    Some((_, kind)) => errors.push(format!(
                        "{shown}:{line}: {what}: {key}: expected {}, not {}",
                        kind.expected(),
                        shown_value(value)
                    )),
                    None => {
                        let all: Vec<&str> = valid.iter().flat_map(|v| v.iter().map(|(k, _)| *k)).collect();
                        let hint = closest(key, &all).map_or_else(String::new, |k| format!(" (did you mean {k:?}?)"));
                        errors.push(format!(
                            "{shown}:{line}: {what}: unknown key {key:?}{hint}; valid keys: {}",
                            all.join(", ")
                        ));
                    }
                }
                if errors.len() > before + bad.len() {
                    bad.push(key.clone());
                }
            }
            table.retain(|k, _| !bad.iter().any(|b| b == k));
            !bad.is_empty()
        };
    check("the file", None, None, table, &[TOP_KEYS]);
    let header_of = |name: &str, index: usize| headers.iter().filter(|(n, _)| n == name).nth(index).map(|(_, l)| *l);
    // A sub-table written as its own section (`[job.retry]`) has its own header.
    let sub_header = |parent: Option<usize>, name: &str| {
        headers.iter().find(|(n, l)| n == name && parent.is_none_or(|p| *l > p)).map(|(_, l)| *l)
    };
    if let Some(t) = table.get_mut("scheduler").and_then(toml::Value::as_table_mut) {
        check("[scheduler]", header_of("scheduler", 0), None, t, &[SCHEDULER_KEYS]);
    }
    if let Some(t) = table.get_mut("http").and_then(toml::Value::as_table_mut) {
        check("[http]", header_of("http", 0), None, t, &[HTTP_KEYS]);
    }
    if let Some(t) = table.get_mut("defaults").and_then(toml::Value::as_table_mut) {
        let header = header_of("defaults", 0);
        check("[defaults]", header, None, t, &[OPTION_KEYS]);
        if let Some(r) = t.get_mut("retry").and_then(toml::Value::as_table_mut) {
            match sub_header(header, "defaults.retry") {
                Some(h) => check("[defaults] retry", Some(h), None, r, &[RETRY_KEYS]),
                None => check("[defaults] retry", header, Some("retry"), r, &[RETRY_KEYS]),
            };
        }
    }
    let jobs = table.get_mut("job").and_then(toml::Value::as_array_mut).map(|a| a.as_mut_slice()).unwrap_or_default();
    for (i, job) in jobs.iter_mut().enumerate() {
        let Some(job) = job.as_table_mut() else { continue };
        let id = job.get("id").and_then(toml::Value::as_str).unwrap_or("?");
        let what = format!("job {id:?}");
        let header = header_of("job", i);
        let mut found = check(&what, header, None, job, &[JOB_KEYS, OPTION_KEYS]);
        for (name, keys) in [("retry", RETRY_KEYS), ("calendar", CALENDAR_KEYS)] {
            let Some(sub) = job.get_mut(name).and_then(toml::Value::as_table_mut) else { continue };
            let next_job = header_of("job", i + 1);
            let own = sub_header(header, &format!("job.{name}")).filter(|l| next_job.is_none_or(|n| *l < n));
            found |= match own {
                Some(h) => check(&format!("{what} {name}"), Some(h), None, sub, &[keys]),
                None => check(&format!("{what} {name}"), header, Some(name), sub, &[keys]),
            };
        }
        if found {
            flagged.push(i);
        }
    }
    (errors, flagged)
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
/// the file is reported at once, one per line, each with its line number:
/// only a file that is not TOML at all stops at its first mistake.
pub(crate) fn parse(text: &str, shown: &str) -> Result<Config, String> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        let what = e.message().trim().to_owned();
        match line {
            Some(line) => format!("{shown}:{line}: {what}"),
            None => format!("{shown}: {what}"),
        }
    })?;
    let (mut errors, flagged) = check_keys(&mut table, text, shown);
    // A key reported above was removed: what a flagged job now misses
    // (its trigger after a typo in `every`) would say the same again.
    let consequence = |i: usize, message: &str| flagged.contains(&i) && message.contains("missing");
    let headers = section_lines(text);
    let header_of =
        |name: &str, index: usize| headers.iter().filter(|(n, _)| n == name).nth(index).map_or(1, |(_, l)| *l);
    // Each section decoded on its own, so a mistake in one hides none in another.
    fn section<T: Default + serde::de::DeserializeOwned>(
        table: &mut toml::Table,
        name: &str,
        line: usize,
        shown: &str,
        errors: &mut Vec<String>,
    ) -> T {
        match table.remove(name).map(toml::Value::try_into::<T>) {
            None => T::default(),
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                errors.push(format!("{shown}:{line}: [{name}]: {}", e.message().trim()));
                T::default()
            }
        }
    }
    let s: SchedulerSection = section(&mut table, "scheduler", header_of("scheduler", 0), shown, &mut errors);
    let http: HttpSection = section(&mut table, "http", header_of("http", 0), shown, &mut errors);
    let defaults_section: OptionsSection =
        section(&mut table, "defaults", header_of("defaults", 0), shown, &mut errors);

    let in_section = |name: &str, key: &str| key_line(text, header_of(name, 0), key);
    let mut duration = |key: &str, v: &Option<String>| -> Option<SignedDuration> {
        let text = v.as_deref()?;
        parse_duration(text)
            .map_err(|e| errors.push(format!("{shown}:{}: [scheduler] {key}: {e}", in_section("scheduler", key))))
            .ok()
    };
    let history_max_age = duration("history_max_age", &s.history_max_age);
    let shutdown_grace = duration("shutdown_grace", &s.shutdown_grace).unwrap_or(chime_core::DEFAULT_SHUTDOWN_GRACE);
    let node_lease = duration("node_lease", &s.node_lease).unwrap_or(chime_core::DEFAULT_NODE_LEASE);
    if let Some(zone) = &s.timezone
        && let Err(e) = chime_core::Zone::get(zone)
    {
        errors.push(format!("{shown}:{}: [scheduler] timezone: {e}", in_section("scheduler", "timezone")));
    }
    if node_lease < chime_core::MIN_NODE_LEASE || node_lease > MAX_NODE_LEASE {
        errors.push(format!(
            "{shown}:{}: [scheduler] node_lease: {} is out of range: between {} and {}",
            in_section("scheduler", "node_lease"),
            chime_core::format_duration(node_lease),
            chime_core::format_duration(chime_core::MIN_NODE_LEASE),
            chime_core::format_duration(MAX_NODE_LEASE)
        ));
    }
    let listen = http.listen.as_deref().and_then(|a| {
        a.parse()
            .map_err(|e| {
                errors.push(format!(
                    "{shown}:{}: [http] listen: {a:?} is not an address such as 127.0.0.1:8080: {e}",
                    in_section("http", "listen")
                ))
            })
            .ok()
    });
    let mut config = Config {
        timezone: s.timezone.clone(),
        max_concurrency: s.max_concurrency,
        node_lease,
        history_keep: s.history_keep.unwrap_or(chime_core::DEFAULT_HISTORY_LIMIT),
        history_max_age,
        shutdown_grace,
        store: s.store,
        listen,
        api_token: http.token,
        read_token: http.read_token,
        allowed_hosts: http.allowed_hosts,
        allowed_targets: http.allowed_targets,
        jobs: Vec::new(),
    };
    let defaults = options(&defaults_section, &JobOptions::default()).unwrap_or_else(|mistakes| {
        for (key, e) in mistakes {
            let line = key_line(text, header_of("defaults", 0), key.split('.').next().unwrap_or(key));
            errors.push(format!("{shown}:{line}: [defaults] {key}: {e}"));
        }
        JobOptions::default()
    });

    let jobs = match table.remove("job") {
        Some(toml::Value::Array(jobs)) => jobs,
        _ => Vec::new(),
    };
    let job_headers: Vec<usize> = headers.iter().filter(|(n, _)| n == "job").map(|(_, l)| *l).collect();
    let mut seen = std::collections::HashSet::new();
    for (i, value) in jobs.into_iter().enumerate() {
        let header = job_headers.get(i).copied().unwrap_or(1);
        let next = job_headers.get(i + 1).copied();
        let id = value.get("id").and_then(toml::Value::as_str).unwrap_or("?").to_owned();
        let job: JobSection = match value.try_into() {
            Ok(job) => job,
            Err(e) => {
                if !consequence(i, e.message()) {
                    errors.push(format!("{shown}:{header}: job {id:?}: {}", e.message().trim()));
                }
                continue;
            }
        };
        if !seen.insert(job.id.clone()) {
            errors.push(format!("{shown}:{header}: job {id:?}: id: another job above has the same id"));
            continue;
        }
        match job_from(job, &defaults, config.timezone.as_deref()) {
            Ok(job) => config.jobs.push(job),
            Err(mistakes) => {
                for (key, e) in mistakes.into_iter().filter(|(_, e)| !consequence(i, e)) {
                    let line = job_key_line(text, &headers, header, next, key);
                    errors.push(format!("{shown}:{line}: job {id:?}: {key}: {e}"));
                }
            }
        }
    }
    let ids: std::collections::HashSet<&str> = config.jobs.iter().map(|j| j.id.as_str()).collect();
    for (i, job) in config.jobs.iter().enumerate() {
        let line = || {
            let header = job_headers.get(i).copied().unwrap_or(1);
            job_key_line(text, &headers, header, job_headers.get(i + 1).copied(), "on_alert")
        };
        match job.options.on_alert.as_ref().map(chime_core::JobId::as_str) {
            Some(hook) if hook == job.id.as_str() => errors.push(format!(
                "{shown}:{}: job {:?}: on_alert: names the job itself; name another job to run when it alerts",
                line(),
                job.id.as_str()
            )),
            Some(hook) if !ids.contains(hook) => errors.push(format!(
                "{shown}:{}: job {:?}: on_alert: {hook:?} is not a job of this file",
                line(),
                job.id.as_str()
            )),
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(config)
}

/// The line of a job's key for an error: `cron`'s own line, `retry.backoff`'s
/// within `retry = { ... }` or a `[job.retry]` section, or the `[[job]]`
/// line for a mistake of the whole job (`trigger`, `task`).
fn job_key_line(text: &str, headers: &[(String, usize)], header: usize, next: Option<usize>, key: &str) -> usize {
    let (root, leaf) = key.split_once('.').unwrap_or((key, key));
    if matches!(root, "trigger" | "task" | "options") {
        return header;
    }
    let own_section = headers
        .iter()
        .find(|(n, l)| *n == format!("job.{root}") && *l > header && next.is_none_or(|n| *l < n))
        .map(|(_, l)| *l);
    match own_section {
        Some(section) => key_line(text, section, leaf),
        None => key_line(text, header, root),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

type KeyError = (&'static str, String);

/// Job options from a `[[job]]` or `[defaults]`, over `base`: every key's
/// mistake, not only the first.
fn options(section: &OptionsSection, base: &JobOptions) -> Result<JobOptions, Vec<KeyError>> {
    let mut errors = Vec::new();
    let mut dur = |key: &'static str, v: &Option<String>, current: Option<SignedDuration>| match v {
        Some(text) => parse_duration(text).map_err(|e| errors.push((key, e.to_string()))).ok(),
        None => current,
    };
    let misfire_grace_time = dur("misfire_grace_time", &section.misfire_grace_time, base.misfire_grace_time);
    let jitter = dur("jitter", &section.jitter, base.jitter);
    let timeout = dur("timeout", &section.timeout, base.timeout);
    let alert_after = dur("alert_after", &section.alert_after, base.alert_after);
    let retry = match &section.retry {
        Some(r) => {
            let backoff = parse_duration(&r.backoff).map_err(|e| errors.push(("retry.backoff", e.to_string()))).ok();
            let cap = r.max_backoff.as_deref().and_then(|cap| {
                parse_duration(cap).map_err(|e| errors.push(("retry.max_backoff", e.to_string()))).ok()
            });
            backoff.map(|backoff| {
                let policy = RetryPolicy::new(r.max_attempts, backoff);
                Box::new(match cap {
                    Some(cap) => policy.with_max_backoff(cap),
                    None => policy,
                })
            })
        }
        None => base.retry.clone(),
    };
    let alert_on_failures = match section.alert_on_failures {
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| (1..=chime_core::MAX_ALERT_FAILURES).contains(n))
            .ok_or_else(|| {
                let says = format!("must be between 1 and {}, not {n}", chime_core::MAX_ALERT_FAILURES);
                errors.push(("alert_on_failures", says));
            })
            .ok(),
        None => base.alert_on_failures,
    };
    let on_alert = match &section.on_alert {
        Some(id) => chime_core::JobId::new(id).map_err(|e| errors.push(("on_alert", e.to_string()))).ok(),
        None => base.on_alert.clone(),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let options = JobOptions {
        max_instances: section.max_instances.unwrap_or(base.max_instances),
        coalesce: section.coalesce.unwrap_or(base.coalesce),
        misfire_grace_time,
        jitter,
        timeout,
        retry,
        alert_after,
        alert_on_failures,
        on_alert,
    };
    if let Some(d) = options.alert_after {
        // The key named, not "options": `alert_after: must be ...`.
        let alone = JobOptions { alert_after: Some(d), ..JobOptions::default() };
        alone.validate().map_err(|e| vec![("alert_after", e.to_string())])?;
    }
    options.validate().map_err(|e| vec![("options", e.to_string())])?;
    Ok(options)
}

/// A job's trigger, in its zone (or the file's).
fn trigger_of(s: &JobSection, zone: Option<&str>) -> Result<Trigger, KeyError> {
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
    Ok(trigger)
}

/// A job's task and its arguments: a command or an http request.
fn task_of(s: &mut JobSection) -> Result<(&'static str, serde_json::Value), KeyError> {
    match (s.command.take(), s.http.take()) {
        (Some(_), Some(_)) => Err(("command", "a job runs a command or an http request, not both".into())),
        (None, None) => {
            Err(("task", "missing: give command = [\"program\", \"arg\"] or http = { url = \"...\" }".into()))
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
            let spec = CommandSpec {
                argv,
                shell: s.shell,
                env: std::mem::take(&mut s.env),
                working_dir: s.working_dir.take(),
            };
            Ok(("command", serde_json::to_value(spec).expect("serializes")))
        }
        (None, Some(http)) => {
            crate::builtin::parse_http_url(&http.url).map_err(|e| ("http.url", e))?;
            chime_tasks::validate(&http).map_err(|e| ("http", e))?;
            Ok(("http", serde_json::to_value(http).expect("serializes")))
        }
    }
}

/// A `[[job]]` as a job, or every mistake in it.
fn job_from(mut s: JobSection, defaults: &JobOptions, zone: Option<&str>) -> Result<Job, Vec<KeyError>> {
    let mut errors = Vec::new();
    let trigger = trigger_of(&s, zone).map_err(|e| errors.push(e)).ok();
    let task = task_of(&mut s).map_err(|e| errors.push(e)).ok();
    let options = options(&s.options, defaults).map_err(|e| errors.extend(e)).ok();
    let id_ok = chime_core::JobId::new(&s.id).map_err(|e| errors.push(("id", e.to_string()))).is_ok();
    let (Some(trigger), Some((task, args)), Some(options), true) = (trigger, task, options, id_ok) else {
        return Err(errors);
    };
    let mut job = Job::new(&s.id, task, trigger).map_err(|e| vec![("id", e.to_string())])?;
    job.name = s.name.map(String::into_boxed_str);
    job.args = args;
    job.options = options;
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
            r#"chime.toml:3: job "r": cron: invalid cron expression "0 9 * * 8": invalid day-of-week "8" at column 9: expected 0-7 or SUN-SAT"#
        );
        assert_eq!(
            error("\n[[job]]\nid = \"r\"\nevery = \"soon\"\ncommand = [\"true\"]\n"),
            "chime.toml:4: job \"r\": every: invalid duration \"soon\": not a duration; expected a positive duration such as \"90s\", \"1h 30m\" or \"PT4H\""
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
        assert!(smuggled.starts_with("chime.toml:4: job \"r\": http: header"), "{smuggled}");
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
        assert!(lines[0].starts_with("chime.toml:3: job \"a\": cron:"), "{e}");
        assert!(lines[1].starts_with("chime.toml:7: job \"b\": every:"), "{e}");
    }

    #[test]
    fn mistakes_of_every_kind_and_section_are_reported_together_each_at_its_own_line() {
        let text = [
            "[scheduler]",                     // 1
            "timezone = \"Mars/Olympus\"",     // 2
            "node_lease = \"2h\"",             // 3
            "[[jobs]]",                        // 4
            "id = \"typo\"",                   // 5
            "[[job]]",                         // 6
            "id = \"a\"",                      // 7
            "",                                // 8
            "cron = \"0 9 * * 8\"",            // 9
            "timeout = \"0s\"",                // 10
            "max_instances = \"two\"",         // 11
            "command = [\"true\"]",            // 12
            "[job.retry]",                     // 13
            "max_attempts = 2",                // 14
            "backoff = \"soon\"",              // 15
            "[[job]]",                         // 16
            "id = \"b\"",                      // 17
            "every = \"1h\"",                  // 18
            "http = { urll = \"http://x/\" }", // 19
        ]
        .join("\n");
        let e = error(&text);
        let lines: Vec<&str> = e.lines().collect();
        let expect = [
            "chime.toml:4: the file: unknown key \"jobs\" (did you mean \"job\"?)",
            "chime.toml:11: job \"a\": max_instances: expected a whole number, 0 or more, not the string \"two\"",
            "chime.toml:2: [scheduler] timezone:",
            "chime.toml:3: [scheduler] node_lease: 2h is out of range",
            "chime.toml:9: job \"a\": cron: invalid cron expression",
            "chime.toml:15: job \"a\": retry.backoff: invalid duration \"soon\"",
            "chime.toml:10: job \"a\": timeout: invalid duration \"0s\"",
            "chime.toml:16: job \"b\": unknown field `urll`",
        ];
        for want in expect {
            assert!(lines.iter().any(|l| l.starts_with(want)), "missing {want:?} in:\n{e}");
        }
        assert_eq!(lines.len(), expect.len(), "one line per mistake, no echo of a removed key:\n{e}");
        // A typo in the trigger's key is one mistake, not also "trigger: missing".
        let e = error("[[job]]\nid = \"r\"\nevry = \"1h\"\ncommand = [\"true\"]\n");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn the_defaults_without_a_file_are_the_documented_ones() {
        let d = defaults();
        assert_eq!(d.history_keep, chime_core::DEFAULT_HISTORY_LIMIT);
        assert_eq!(d.shutdown_grace, chime_core::DEFAULT_SHUTDOWN_GRACE);
        assert_eq!(d.node_lease, chime_core::DEFAULT_NODE_LEASE);
        assert_eq!(
            (d.history_keep, d.shutdown_grace.as_secs(), d.node_lease.as_secs()),
            (100, 30, 30),
            "as docs/cli.md says"
        );
        assert!(d.jobs.is_empty() && d.api_token.is_none() && !d.read_token && d.listen.is_none());
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
            (
                "alert_on_failures = 0",
                "chime.toml:5: job \"backup\": alert_on_failures: must be between 1 and 1000, not 0",
            ),
            ("alert_on_failures = -2", "alert_on_failures: must be between 1 and 1000, not -2"),
            ("alert_on_failures = 100000", "alert_on_failures: must be between 1 and 1000, not 100000"),
            ("alert_after = \"0s\"", "alert_after: invalid duration \"0s\""),
            ("alert_after = \"soon\"", "alert_after: invalid duration \"soon\""),
            ("alert_after = \"10ms\"", "alert_after: alert_after 10ms is shorter than the shortest accepted, 1s"),
            ("alert_after = \"100000d\"", "alert_after: alert_after 2400000h is longer than the longest accepted"),
            (
                "alert_after = 26",
                "chime.toml:5: job \"backup\": alert_after: expected a duration as a string, such as \"30s\", not the integer 26",
            ),
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
