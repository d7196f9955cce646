//! The `command` task: runs a program (or a shell command line) and keeps
//! the tail of its output.

use std::collections::BTreeMap;

use chime_core::{JobContext, TaskError};
use serde::{Deserialize, Serialize};

/// Output kept per run, in bytes: the tail of stdout and stderr.
pub(crate) const OUTPUT_TAIL: usize = 4096;

/// The arguments of a `command` job.
///
/// ```
/// let spec: chime_tasks::CommandSpec = serde_json::from_value(serde_json::json!({"argv": ["echo", "hi"]}))?;
/// assert_eq!(spec.argv, ["echo", "hi"]);
/// assert!(!spec.shell);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The program, then its arguments; with `shell`, one shell command line.
    pub argv: Vec<String>,
    /// Run through `/bin/sh -c` (off unless asked for).
    #[serde(default)]
    pub shell: bool,
    /// Environment variables set for the program, beside the server's own
    /// and `CHIME_JOB_ID`, `CHIME_RUN_ID`, `CHIME_SCHEDULED_FOR`, `CHIME_ATTEMPT`
    /// (and, for a run an alert asked for, `CHIME_ALERT_JOB`,
    /// `CHIME_ALERT_REASON`, `CHIME_ALERT_ERROR`, `CHIME_ALERT_SINCE`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The directory to run in (the server's own when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

pub(crate) async fn run_command(ctx: JobContext) -> Result<(), TaskError> {
    let spec: CommandSpec = ctx.args()?;
    let (program, args) = if spec.shell {
        ("/bin/sh".to_owned(), vec!["-c".to_owned(), spec.argv.join(" ")])
    } else {
        let (program, args) = spec.argv.split_first().ok_or("the command is empty")?;
        (program.clone(), args.to_vec())
    };
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&args)
        .envs(&spec.env)
        .env("CHIME_JOB_ID", ctx.job_id.as_str())
        .env("CHIME_RUN_ID", ctx.run_id.to_string())
        .env("CHIME_SCHEDULED_FOR", ctx.scheduled_for.to_string())
        .env("CHIME_ATTEMPT", ctx.attempt.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // A run that times out or is cancelled is dropped: the child dies with it.
        .kill_on_drop(true);
    if let Some(dir) = &spec.working_dir {
        cmd.current_dir(dir);
    }
    // An on_alert hook is told which alert; a NUL cannot be in a variable.
    if let Some(alert) = &ctx.alert {
        let clean = |text: &str| text.replace('\0', "");
        cmd.env("CHIME_ALERT_JOB", alert.job_id.as_str())
            .env("CHIME_ALERT_REASON", clean(&alert.reason))
            .env("CHIME_ALERT_ERROR", clean(alert.last_error.as_deref().unwrap_or("")))
            .env("CHIME_ALERT_SINCE", alert.since.to_string());
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {program:?}: {e}"))?;
    // Both pipes are read as the child writes and only their tails kept: a
    // program that prints gigabytes costs the server 2 x OUTPUT_TAIL bytes.
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (stdout, stderr, status) = tokio::join!(read_tail(stdout), read_tail(stderr), child.wait());
    let status = status.map_err(|e| format!("waiting for {program:?}: {e}"))?;
    let tail = output_tail(&stdout, &stderr);
    if !tail.is_empty() {
        ctx.set_output(tail.clone());
    }
    if status.success() {
        tracing::debug!(job_id = %ctx.job_id, run_id = %ctx.run_id, output = %tail, "command succeeded");
        Ok(())
    } else {
        let status = match status.code() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_owned(),
        };
        Err(if tail.is_empty() { status } else { format!("{status}; output: {tail}") }.into())
    }
}

/// Everything a pipe gives until it closes, keeping the last
/// [`OUTPUT_TAIL`] bytes. A read error ends the stream (what was read stays).
async fn read_tail(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let mut tail = std::collections::VecDeque::with_capacity(OUTPUT_TAIL);
    let Some(mut pipe) = pipe else { return Vec::new() };
    let mut chunk = [0u8; 8192];
    while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
        let fresh = &chunk[n.saturating_sub(OUTPUT_TAIL)..n];
        let overflow = (tail.len() + fresh.len()).saturating_sub(OUTPUT_TAIL);
        tail.drain(..overflow);
        tail.extend(fresh);
    }
    tail.into()
}

/// The last few KiB of stdout then stderr, as text.
fn output_tail(stdout: &[u8], stderr: &[u8]) -> String {
    let mut all = String::from_utf8_lossy(stdout).into_owned();
    let err = String::from_utf8_lossy(stderr);
    if !err.trim().is_empty() {
        all.push_str(&err);
    }
    let all = all.trim();
    let mut start = all.len().saturating_sub(OUTPUT_TAIL);
    while !all.is_char_boundary(start) {
        start += 1;
    }
    all[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chime_core::JobId;

    fn ctx(args: serde_json::Value) -> JobContext {
        JobContext::new(JobId::new("cmd").unwrap(), args)
    }

    #[tokio::test]
    async fn an_alert_hook_is_told_the_alert_in_its_environment() {
        let notice = chime_core::AlertNotice {
            job_id: JobId::new("backup").unwrap(),
            reason: "3 consecutive failures".into(),
            last_error: Some("disk\0 full".into()),
            since: "2026-01-01T03:00:00Z".parse().unwrap(),
        };
        let script = "echo \"$CHIME_ALERT_JOB|$CHIME_ALERT_REASON|$CHIME_ALERT_ERROR|$CHIME_ALERT_SINCE\"";
        let c = ctx(serde_json::json!({"argv": ["sh", "-c", script]})).with_alert(notice);
        run_command(c.clone()).await.unwrap();
        assert_eq!(c.output().as_deref(), Some("backup|3 consecutive failures|disk full|2026-01-01T03:00:00Z"));
        let plain = ctx(serde_json::json!({"argv": ["sh", "-c", "echo \"[${CHIME_ALERT_JOB-unset}]\""]}));
        run_command(plain.clone()).await.unwrap();
        assert_eq!(plain.output().as_deref(), Some("[unset]"), "no alert, no variables");
    }

    #[tokio::test]
    async fn a_command_that_prints_a_lot_keeps_only_its_tail_while_it_runs() {
        let c = ctx(
            serde_json::json!({"argv": ["sh", "-c", "head -c 50000000 /dev/zero | tr '\\0' x; echo; echo END; echo ERR-END >&2"]}),
        );
        run_command(c.clone()).await.unwrap();
        let out = c.output().unwrap();
        assert!(out.len() <= OUTPUT_TAIL, "{} bytes kept", out.len());
        assert!(out.ends_with("END\nERR-END"), "the ends of both streams: {:?}", &out[out.len().saturating_sub(40)..]);
        let tail = read_tail(Some(&b"0123456789"[..])).await;
        assert_eq!(tail, b"0123456789", "a short stream whole");
        let long: Vec<u8> = (0..3 * OUTPUT_TAIL + 17).map(|i| (i % 251) as u8).collect();
        let tail = read_tail(Some(long.as_slice())).await;
        assert_eq!(tail, &long[long.len() - OUTPUT_TAIL..], "the last OUTPUT_TAIL bytes, in order");
    }

    #[test]
    fn output_tail_keeps_the_end() {
        let long = "x".repeat(10_000) + "END";
        let tail = output_tail(long.as_bytes(), b"");
        assert_eq!(tail.len(), OUTPUT_TAIL);
        assert!(tail.ends_with("END"));
        assert_eq!(output_tail(b"out\n", b"err\n"), "out\nerr");
    }

    #[tokio::test]
    async fn a_command_gets_its_env_and_the_run_variables() {
        let c =
            ctx(serde_json::json!({"argv": ["sh", "-c", "echo $GREETING $CHIME_JOB_ID"], "env": {"GREETING": "hi"}}));
        run_command(c.clone()).await.unwrap();
        assert_eq!(c.output().as_deref(), Some("hi cmd"));
    }

    #[tokio::test]
    async fn a_failing_command_reports_its_status_and_output() {
        let err =
            run_command(ctx(serde_json::json!({"argv": ["echo nope; exit 3"], "shell": true}))).await.unwrap_err();
        assert_eq!(err.to_string(), "exit status 3; output: nope");
        let err = run_command(ctx(serde_json::json!({"argv": []}))).await.unwrap_err();
        assert_eq!(err.to_string(), "the command is empty");
        let err = run_command(ctx(serde_json::json!({"argv": ["/nonexistent/x"]}))).await.unwrap_err();
        assert!(err.to_string().starts_with("cannot start \"/nonexistent/x\""), "{err}");
    }
}
