//! Secrets in job arguments never leave the server: every job the API or the
//! dashboard shows goes through [`job`], which replaces the values of a
//! `command` job's `env` and of an `http` job's credential headers (and the
//! password and secret-looking query values of its URL) with a placeholder.
//!
//! The shapes are those of the built-in tasks in `chime-tasks`
//! (`crates/tasks/src/command.rs`, `chime_tasks::CommandSpec`, and
//! `crates/tasks/src/http.rs`, `chime_tasks::HttpSpec`): `command` takes
//! `{argv, shell, env: {NAME: value}, working_dir}` and `http` takes `{url,
//! method, headers: {Name: value}, body, ca_cert, max_redirects, timeout}`.
//! Only the values named above are secrets: the other fields (`method`,
//! `body`, `ca_cert`, a path, and `max_redirects` and `timeout`, which hold
//! a number and a duration) are shown as stored.

use chime_core::Job;
use serde_json::Value;

use crate::ApiError;

/// What a secret value reads as.
pub(crate) const REDACTED: &str = "<redacted>";

/// Header and query names whose values are credentials, matched in lower
/// case. Names holding any of these words count too (`X-Api-Key`,
/// `X-Auth-Token`, `client_secret`).
const SECRET_WORDS: [&str; 9] =
    ["auth", "cookie", "token", "secret", "key", "password", "passwd", "credential", "session"];

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// The job as the API shows it: [`Job::to_json`] with its secrets redacted.
pub(crate) fn job(job: &Job) -> Value {
    let mut v = job.to_json();
    args(&job.task, &mut v["args"]);
    v
}

/// Redacts the secrets of `task`'s arguments in place.
pub(crate) fn args(task: &str, args: &mut Value) {
    match task {
        "command" => {
            if let Some(env) = args.get_mut("env").and_then(Value::as_object_mut) {
                env.values_mut().for_each(|v| *v = Value::from(REDACTED));
            }
        }
        "http" => {
            if let Some(headers) = args.get_mut("headers").and_then(Value::as_object_mut) {
                for (name, value) in headers.iter_mut() {
                    if is_secret_name(name) {
                        *value = Value::from(REDACTED);
                    }
                }
            }
            if let Some(url) = args.get_mut("url")
                && let Some(redacted) = url.as_str().map(url_redacted)
            {
                *url = Value::from(redacted);
            }
        }
        _ => {}
    }
}

/// The URL with the password of its user info and the values of
/// secret-looking query parameters replaced.
fn url_redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:{REDACTED}@{host}"),
            None => format!("{REDACTED}@{host}"),
        },
        None => authority.to_owned(),
    };
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (tail, None),
    };
    let tail = match before_fragment.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_secret_name(k) => format!("{k}={REDACTED}"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => before_fragment.to_owned(),
    };
    match fragment {
        Some(f) => format!("{scheme}://{authority}{tail}#{f}"),
        None => format!("{scheme}://{authority}{tail}"),
    }
}

/// New arguments for `stored`, given over the API after a read: values a
/// client sends back as they read them (`<redacted>`) keep the stored
/// secret rather than overwrite it with the placeholder.
///
/// # Errors
///
/// 422 when a placeholder stands where there is no stored secret to keep.
pub(crate) fn restore(stored: &Job, mut new: Value) -> Result<Value, ApiError> {
    if &*stored.task != "http" {
        return Ok(new);
    }
    let old = &stored.args;
    if let (Some(url), Some(old_url)) = (new.get_mut("url"), old.get("url").and_then(Value::as_str))
        && url.as_str() == Some(url_redacted(old_url).as_str())
    {
        *url = Value::from(old_url);
    }
    if let Some(headers) = new.get_mut("headers").and_then(Value::as_object_mut) {
        let old_headers = old.get("headers").and_then(Value::as_object);
        for (name, value) in headers.iter_mut() {
            if value.as_str() != Some(REDACTED) {
                continue;
            }
            let kept = old_headers.and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)));
            match kept {
                Some((_, v)) => *value = v.clone(),
                None => {
                    return Err(ApiError::invalid(format!(
                        "header {name:?} is {REDACTED:?} but the job has no such header to keep: send its value"
                    )));
                }
            }
        }
    }
    if new.get("url").and_then(Value::as_str).is_some_and(|u| u.contains(REDACTED)) {
        return Err(ApiError::invalid(format!("the url holds {REDACTED:?}: send the whole url")));
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_lose_passwords_and_secret_query_values() {
        assert_eq!(
            url_redacted("https://u:p@h.example/x?a=1&api_key=z#f"),
            "https://u:<redacted>@h.example/x?a=1&api_key=<redacted>#f"
        );
        assert_eq!(url_redacted("http://tok@h/"), "http://<redacted>@h/");
        assert_eq!(url_redacted("http://h:80/p?page=2"), "http://h:80/p?page=2");
        assert_eq!(url_redacted("not a url"), "not a url");
    }

    #[test]
    fn command_env_and_http_credentials_are_redacted() {
        let mut a = json!({"argv": ["x"], "env": {"DB_PASSWORD": "hunter2", "MODE": "fast"}});
        args("command", &mut a);
        assert_eq!(a["env"], json!({"DB_PASSWORD": REDACTED, "MODE": REDACTED}));
        let mut a = json!({"url": "http://h/", "headers": {"Authorization": "Bearer x", "Cookie": "s=1", "X-Api-Key": "k", "Accept": "text/plain"}});
        args("http", &mut a);
        assert_eq!(
            a["headers"],
            json!({"Authorization": REDACTED, "Cookie": REDACTED, "X-Api-Key": REDACTED, "Accept": "text/plain"})
        );
    }

    #[test]
    fn http_limits_are_not_secrets() {
        let stored = json!({"url": "https://h.example/x?token=t", "method": "POST", "body": "{}",
            "ca_cert": "/etc/ca.pem", "max_redirects": 0, "timeout": "30s"});
        let mut a = stored.clone();
        args("http", &mut a);
        assert_eq!(a["url"], format!("https://h.example/x?token={REDACTED}"));
        for field in ["method", "body", "ca_cert", "max_redirects", "timeout"] {
            assert_eq!(a[field], stored[field], "{field} is shown as stored");
        }
        // And they go back as sent, next to a restored secret.
        let job = Job::new("hook", "http", chime_core::Trigger::every("5m").unwrap()).unwrap().with_args(stored);
        a["max_redirects"] = json!(3);
        a["timeout"] = json!("1m");
        let back = restore(&job, a).unwrap();
        assert_eq!(back["url"], "https://h.example/x?token=t");
        assert_eq!((back["max_redirects"].clone(), back["timeout"].clone()), (json!(3), json!("1m")));
        // Every field of the task's spec is one this module knows.
        let spec: chime_tasks::HttpSpec = serde_json::from_value(back).unwrap();
        assert_eq!(spec.max_redirects, 3);
    }
}
