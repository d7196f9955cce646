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
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RetrySection {
    attempts: u32,
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

/// Parses config text; `shown` names the file in errors.
pub(crate) fn parse(text: &str, shown: &str) -> Result<Config, String> {
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
        jobs: Vec::new(),
    };
    let defaults = options(&file.defaults, &JobOptions::default())
        .map_err(|(key, e)| format!("{shown}: [defaults] {key}: {e}"))?;
    let mut seen = std::collections::HashSet::new();
    for spanned in file.jobs {
        let line = line_of(text, spanned.span().start);
        let job = spanned.into_inner();
        let at = format!("{shown}: job {:?} (line {line})", job.id);
        if !seen.insert(job.id.clone()) {
            return Err(format!("{at}: id: another job above has the same id"));
        }
        config.jobs.push(
            job_from(job, &defaults, config.timezone.as_deref()).map_err(|(key, e)| format!("{at}: {key}: {e}"))?,
        );
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
            let mut policy = RetryPolicy::new(r.attempts, backoff);
            if let Some(cap) = &r.max_backoff {
                policy =
                    policy.with_max_backoff(parse_duration(cap).map_err(|e| ("retry.max_backoff", e.to_string()))?);
            }
            Some(Box::new(policy))
        }
        None => base.retry.clone(),
    };
    let options = JobOptions {
        max_instances: section.max_instances.unwrap_or(base.max_instances),
        coalesce: section.coalesce.unwrap_or(base.coalesce),
        misfire_grace_time: dur("misfire_grace_time", &section.misfire_grace_time, base.misfire_grace_time)?,
        jitter: dur("jitter", &section.jitter, base.jitter)?,
        timeout: dur("timeout", &section.timeout, base.timeout)?,
        retry,
    };
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
