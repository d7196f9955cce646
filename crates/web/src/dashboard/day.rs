//! The day at a glance: how many runs every active job's trigger has in
//! each of the next 24 hours (from the start of this hour, on the
//! scheduler's zone's clock), so the herd at 00:00 stands out; `?hour=H`
//! lists the jobs that fire in that hour, paged.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use chime_core::{JobFilter, JobId};
use jiff::{Timestamp, ToSpan as _};

use super::pager::Pager;
use super::params::{PAGE_SIZE, Params, query_string};
use super::time::Shown;
use super::{Chrome, QueryPairs, html};
use crate::extract::encode_segment;
use crate::{ApiError, Handle};

/// Hours in the view.
const HOURS: usize = 24;
/// The most fire times counted for one job in the view (one a minute): a
/// job firing every second would otherwise cost 86,400 evaluations.
const MAX_FIRES_PER_JOB: usize = 24 * 60;

/// One hour of the view.
struct Hour {
    /// `00`–`23`, the wall-clock hour in the scheduler's zone.
    label: String,
    hour: i8,
    start: Shown,
    fires: usize,
    jobs: usize,
    /// The bar's height, percent of the busiest hour.
    height: u32,
    /// Far busier than the average hour.
    dense: bool,
    href: String,
    current: bool,
}

/// A job firing in the chosen hour.
struct HourJob {
    id: String,
    href: String,
    name: String,
    fires: usize,
    first: Shown,
    /// Counted up to [`MAX_FIRES_PER_JOB`] only.
    capped: bool,
}

#[derive(Template)]
#[template(path = "day.html")]
struct DayPage {
    c: Chrome,
    zone: String,
    from: Shown,
    hours: Vec<Hour>,
    total: usize,
    busiest: usize,
    chosen: Option<String>,
    jobs: Vec<HourJob>,
    pager: Option<Pager>,
    capped: usize,
}

pub(crate) async fn day(State(h): State<Handle>, query: QueryPairs) -> Result<Response, ApiError> {
    let Query(pairs) = query?;
    let p = Params::new(pairs, &["hour", "page"])?;
    let chosen = match p.get("hour") {
        None => None,
        Some(text) => match text.parse::<i8>() {
            Ok(hour) if (0..24).contains(&hour) => Some(hour),
            _ => return Err(ApiError::malformed(format!("hour {text:?}: expected a whole number from 0 to 23"))),
        },
    };
    let page = p.page()?;

    let s = &h.scheduler;
    let now = s.clock().now();
    let zone = s.timezone();
    let tz = zone.time_zone().clone();
    let zoned = now.to_zoned_datetime(tz.clone());
    let from = zoned.with().minute(0).second(0).subsec_nanosecond(0).build().map_or(now, |z| z.timestamp());
    let starts: Vec<Timestamp> = (0..=HOURS).map(|i| from.checked_add((i as i64).hours()).unwrap_or(from)).collect();
    let end = starts[HOURS];
    let hour_of = |t: Timestamp| -> Option<usize> {
        let i = usize::try_from(t.duration_since(from).as_secs() / 3600).ok()?;
        (i < HOURS).then_some(i)
    };
    let chosen_index =
        chosen.and_then(|hour| starts[..HOURS].iter().position(|t| t.to_zoned_datetime(tz.clone()).hour() == hour));

    let jobs = s.store().list_jobs(&JobFilter { paused: Some(false), ..JobFilter::default() }).await?;
    let mut fires = [0usize; HOURS];
    let mut jobs_in = [0usize; HOURS];
    let mut in_chosen: Vec<(Timestamp, &chime_core::Job, usize, bool)> = Vec::new();
    let mut capped = 0;
    for job in &jobs {
        let Some(mut t) = job.state.next_run_at else { continue };
        let mut per_hour: HashMap<usize, (usize, Timestamp)> = HashMap::new();
        let mut counted = 0;
        // A job overdue now fires at once: it counts in this hour.
        t = t.max(from);
        while t < end && counted < MAX_FIRES_PER_JOB {
            if let Some(i) = hour_of(t) {
                per_hour.entry(i).or_insert((0, t)).0 += 1;
            }
            counted += 1;
            match job.trigger.next_after(t) {
                Some(next) => t = next,
                None => break,
            }
        }
        let job_capped = counted == MAX_FIRES_PER_JOB && t < end;
        capped += usize::from(job_capped);
        for (i, (n, first)) in &per_hour {
            fires[*i] += n;
            jobs_in[*i] += 1;
            if Some(*i) == chosen_index {
                in_chosen.push((*first, job, *n, job_capped));
            }
        }
    }

    let busiest = fires.iter().copied().max().unwrap_or(0);
    let total: usize = fires.iter().sum();
    let mean = total as f64 / HOURS as f64;
    let hours = (0..HOURS)
        .map(|i| {
            let local = starts[i].to_zoned_datetime(tz.clone());
            let hour = local.hour();
            Hour {
                label: format!("{hour:02}"),
                hour,
                start: Shown::new(starts[i], zone, now),
                fires: fires[i],
                jobs: jobs_in[i],
                height: if busiest == 0 { 0 } else { ((fires[i] * 100).div_ceil(busiest)) as u32 },
                // Three times the average hour, and not just a handful of runs.
                dense: fires[i] >= 10 && fires[i] as f64 > 3.0 * mean,
                href: format!("day{}", query_string(&[("hour", Some(hour.to_string()))])),
                current: Some(i) == chosen_index,
            }
        })
        .collect();

    in_chosen.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    let pager = chosen_index.map(|i| {
        let hour = starts[i].to_zoned_datetime(tz.clone()).hour();
        Pager::new(in_chosen.len(), page, |page| {
            format!(
                "./day{}",
                query_string(&[("hour", Some(hour.to_string())), ("page", (page > 1).then(|| page.to_string()))])
            )
        })
    });
    let listed = in_chosen
        .iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|(first, job, n, job_capped)| HourJob {
            id: job.id.to_string(),
            href: encode_segment(JobId::as_str(&job.id)),
            name: job.name().to_owned(),
            fires: *n,
            first: Shown::new(*first, job.trigger.zone().unwrap_or(zone), now),
            capped: *job_capped,
        })
        .collect();
    Ok(html(DayPage {
        c: Chrome::new(&h, "./".to_owned(), now, "day"),
        zone: zone.name().to_owned(),
        from: Shown::new(from, zone, now),
        chosen: chosen_index.map(|i| {
            let start = starts[i].to_zoned_datetime(tz.clone());
            format!("{:02}:00–{:02}:00", start.hour(), starts[i + 1].to_zoned_datetime(tz.clone()).hour())
        }),
        hours,
        total,
        busiest,
        jobs: listed,
        pager,
        capped,
    }))
}
