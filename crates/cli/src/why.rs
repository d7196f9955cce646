//! `chime jobs why ID`: every scheduled time of a job in a window, what
//! happened to it and why, under one line that answers the question.

use chime_core::Scheduler;
use chime_core::why::{Why, parse_since};
use jiff::Timestamp;

use crate::error::CliError;
use crate::manage::{failed, in_zone, table};
use crate::output::{out, out_raw};

/// The window when `--since` is not given.
pub(crate) const DEFAULT_SINCE: &str = "24h";

pub(crate) async fn why(s: &Scheduler, id: &str, since: Option<&str>, json: bool) -> Result<(), CliError> {
    let since = parse_since(since.unwrap_or(DEFAULT_SINCE), Timestamp::now()).map_err(failed)?;
    let job = s.get_job(id).await.map_err(failed)?;
    let why = s.why(id, since).await.map_err(failed)?;
    if json {
        out!("{}", serde_json::to_string(&why).expect("an answer serializes"));
        return Ok(());
    }
    print(&why, job.trigger.zone().cloned().unwrap_or_else(chime_core::Zone::utc))
}

fn print(why: &Why, zone: chime_core::Zone) -> Result<(), CliError> {
    out!("{}: {}", why.job_id, why.answer);
    if why.unlisted > 0 {
        out!("({} earlier scheduled times since {} are not listed)", why.unlisted, why.since);
    }
    let rows: Vec<Vec<String>> = why
        .times
        .iter()
        .map(|t| vec![in_zone(t.scheduled_for, &zone), t.outcome.as_str().to_owned(), t.words.clone()])
        .collect();
    out_raw!("{}", table(&["SCHEDULED", "OUTCOME", "WHAT HAPPENED"], &rows));
    Ok(())
}
