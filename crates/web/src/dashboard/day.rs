//! The day at a glance: how many runs every active job's trigger has in
//! each hour ahead (from the start of this one, on the scheduler's zone's
//! clock), so the herd at 00:00 stands out: the next 24 hours as bars, or
//! (`?days=7`) the next 7 days as a grid of hours. Choosing an hour
//! (`?hour=H`, with `&date=YYYY-MM-DD` on the grid) lists its jobs, paged.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use chime_core::{Job, JobFilter, JobId, TimeSlots};
use jiff::{SignedDuration, Timestamp, ToSpan as _};

use super::pager::Pager;
use super::params::{PAGE_SIZE, Params, query_string};
use super::time::Shown;
use super::{Chrome, QueryPairs, html};
use crate::extract::encode_segment;
use crate::{ApiError, Handle};

/// The most fire times counted for one job per day of the view (one a
/// minute): a job firing every second would otherwise cost 86,400
/// evaluations a day.
const MAX_FIRES_PER_JOB_DAY: usize = 24 * 60;

/// The most fire times the view walks in all (a tenth of a second or so):
/// 10,000 jobs firing every minute for 7 days would be 100,000,000. Past
/// this, as past [`MAX_JOBS_WALKED`], each job counts once.
const MAX_FIRES_WALKED: usize = 1_000_000;

/// The most jobs whose triggers the view walks. Past this (a million jobs
/// would take seconds and a gigabyte), each hour counts the jobs next due
/// in it, once each, through the store's due-time index
/// ([`JobStore::count_next_runs`](chime_core::JobStore::count_next_runs)),
/// and the page says so.
const MAX_JOBS_WALKED: usize = 10_000;

/// One hour of the view.
struct Hour {
    /// `2026-12-02`, the hour's date in the scheduler's zone.
    date: String,
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
    /// Counted up to the cap only ([`MAX_FIRES_PER_JOB_DAY`] a day).
    capped: bool,
}

#[derive(Template)]
#[template(path = "day.html")]
struct DayPage {
    c: Chrome,
    zone: String,
    from: Shown,
    /// 1 or 7.
    days: usize,
    hours: Vec<Hour>,
    /// The grid's rows (7 days): a day's label and its 24 hours from 00:00,
    /// each the index of its hour in `hours` (blank before this one).
    grid: Vec<(String, Vec<Option<usize>>)>,
    total: usize,
    busiest: usize,
    chosen: Option<String>,
    jobs: Vec<HourJob>,
    pager: Option<Pager>,
    capped: usize,
    /// How many jobs fire in the view, when they are too many to walk (past
    /// [`MAX_JOBS_WALKED`] jobs or [`MAX_FIRES_WALKED`] fire times): each
    /// hour then counts the jobs next due in it.
    sampled: Option<usize>,
    max_walked: usize,
    /// The most fire times counted for one job (in the view; in the hour
    /// when sampled).
    fires_cap: usize,
}

pub(crate) async fn day(State(h): State<Handle>, query: QueryPairs) -> Result<Response, ApiError> {
    let Query(pairs) = query?;
    let p = Params::new(pairs, &["days", "date", "hour", "page"])?;
    let days = match p.get("days") {
        None | Some("1") => 1,
        Some("7") => 7,
        Some(text) => return Err(ApiError::malformed(format!("days {text:?}: expected 1 or 7"))),
    };
    let hour = match p.get("hour") {
        None => None,
        Some(text) => match text.parse::<i8>() {
            Ok(hour) if (0..24).contains(&hour) => Some(hour),
            _ => return Err(ApiError::malformed(format!("hour {text:?}: expected a whole number from 0 to 23"))),
        },
    };
    let date = p
        .get("date")
        .map(|text| {
            text.parse::<jiff::civil::Date>()
                .map_err(|_| ApiError::malformed(format!("date {text:?}: expected a date such as 2026-12-02")))
        })
        .transpose()?;
    if date.is_some() && hour.is_none() {
        return Err(ApiError::malformed("date: give an hour with it"));
    }
    let page = p.page()?;
    let hours_in_view = days * 24;

    let s = &h.scheduler;
    let now = s.clock().now();
    let zone = s.timezone();
    let tz = zone.time_zone().clone();
    let zoned = now.to_zoned_datetime(tz.clone());
    let from = zoned.with().minute(0).second(0).subsec_nanosecond(0).build().map_or(now, |z| z.timestamp());
    let starts: Vec<Timestamp> =
        (0..=hours_in_view).map(|i| from.checked_add((i as i64).hours()).unwrap_or(from)).collect();
    let local: Vec<jiff::ZonedDateTime> = starts.iter().map(|t| t.to_zoned_datetime(tz.clone())).collect();
    let end = starts[hours_in_view];
    let hour_of = |t: Timestamp| -> Option<usize> {
        let i = usize::try_from(t.duration_since(from).as_secs() / 3600).ok()?;
        (i < hours_in_view).then_some(i)
    };
    // The first hour of the view with that wall-clock hour (on that date).
    let chosen_index = hour.and_then(|hour| {
        local[..hours_in_view].iter().position(|z| z.hour() == hour && date.is_none_or(|d| z.date() == d))
    });
    let max_fires_per_job = MAX_FIRES_PER_JOB_DAY * days;

    // One pass over the due jobs' index says how many jobs fire in the view.
    let slots = TimeSlots::new(from, SignedDuration::from_hours(1), hours_in_view)?;
    let next_runs = s.store().count_next_runs(&slots).await?;
    let due: usize = next_runs.iter().sum();
    // Every trigger walked while the jobs and their fires are few enough.
    let walked = 'walk: {
        if due > MAX_JOBS_WALKED {
            break 'walk None;
        }
        let window = JobFilter { next_run_before: Some(end), ..JobFilter::default() };
        let mut fires = vec![0usize; hours_in_view];
        let mut jobs_in = vec![0usize; hours_in_view];
        let mut in_chosen = Vec::new();
        let (mut capped, mut counted) = (0, 0);
        for job in s.store().list_jobs(&window).await? {
            let walk = Walk::new(&job, from, end, max_fires_per_job, hour_of);
            counted += walk.counted;
            if counted > MAX_FIRES_WALKED {
                break 'walk None;
            }
            capped += usize::from(walk.capped);
            for (&i, &(n, _)) in &walk.per_hour {
                fires[i] += n;
                jobs_in[i] += 1;
            }
            if let Some(&(n, first)) = chosen_index.and_then(|i| walk.per_hour.get(&i)) {
                in_chosen.push((first, job, n, walk.capped));
            }
        }
        in_chosen.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        let chosen_total = in_chosen.len();
        // The page of the chosen hour's jobs.
        in_chosen = in_chosen.into_iter().skip((page - 1) * PAGE_SIZE).take(PAGE_SIZE).collect();
        Some((fires, jobs_in, in_chosen, capped, chosen_total))
    };
    let sampled = walked.is_none();
    let fires_cap = if sampled { MAX_FIRES_PER_JOB_DAY / 24 } else { max_fires_per_job };
    let (fires, jobs_in, mut in_chosen, capped, chosen_total) = match walked {
        Some(walked) => walked,
        None => {
            // Too many triggers to walk: each job counts once, in the hour it
            // is next due; the chosen hour's page of those jobs is walked alone.
            let mut in_chosen = Vec::new();
            let mut capped = 0;
            if let Some(i) = chosen_index {
                let next_due_in_hour = JobFilter {
                    next_run_from: (i > 0).then_some(starts[i]),
                    next_run_before: Some(starts[i + 1]),
                    limit: Some(PAGE_SIZE),
                    offset: (page - 1) * PAGE_SIZE,
                    ..JobFilter::default()
                };
                for job in s.store().list_jobs(&next_due_in_hour).await? {
                    let walk = Walk::new(&job, from, starts[i + 1], fires_cap, hour_of);
                    capped += usize::from(walk.capped);
                    if let Some(&(n, first)) = walk.per_hour.get(&i) {
                        in_chosen.push((first, job, n, walk.capped));
                    }
                }
            }
            let chosen_total = chosen_index.map_or(0, |i| next_runs[i]);
            (next_runs.clone(), next_runs, in_chosen, capped, chosen_total)
        }
    };

    let busiest = fires.iter().copied().max().unwrap_or(0);
    let total: usize = fires.iter().sum();
    let mean = total as f64 / hours_in_view as f64;
    // A link to an hour keeps the view; on the grid it names the date too.
    let link = |i: usize, page: usize| {
        let z = &local[i];
        query_string(&[
            ("days", (days > 1).then(|| days.to_string())),
            ("date", (days > 1).then(|| z.date().to_string())),
            ("hour", Some(z.hour().to_string())),
            ("page", (page > 1).then(|| page.to_string())),
        ])
    };
    let hours: Vec<Hour> = (0..hours_in_view)
        .map(|i| {
            let hour = local[i].hour();
            Hour {
                date: local[i].date().to_string(),
                label: format!("{hour:02}"),
                hour,
                start: Shown::new(starts[i], zone, now),
                fires: fires[i],
                jobs: jobs_in[i],
                height: if busiest == 0 { 0 } else { ((fires[i] * 100).div_ceil(busiest)) as u32 },
                // Three times the average hour, and not just a handful of runs.
                dense: fires[i] >= 10 && fires[i] as f64 > 3.0 * mean,
                href: format!("day{}", link(i, 1)),
                current: Some(i) == chosen_index,
            }
        })
        .collect();
    // The grid: one row per local date, one column per wall-clock hour.
    let mut grid: Vec<(String, Vec<Option<usize>>)> = Vec::new();
    if days > 1 {
        for (i, z) in local[..hours_in_view].iter().enumerate() {
            let label = z.strftime("%a %-d %b").to_string();
            if grid.last().is_none_or(|(l, _)| *l != label) {
                grid.push((label, vec![None; 24]));
            }
            let row = &mut grid.last_mut().unwrap().1;
            // A repeated hour (the night clocks go back) adds to the first.
            let cell = &mut row[z.hour() as usize];
            *cell = Some(cell.map_or(i, |first| first));
        }
    }

    let pager = chosen_index.map(|i| Pager::new(chosen_total, page, |page| format!("./day{}", link(i, page))));
    let listed = in_chosen
        .drain(..)
        .map(|(first, job, n, job_capped)| HourJob {
            id: job.id.to_string(),
            href: encode_segment(JobId::as_str(&job.id)),
            name: job.name().to_owned(),
            fires: n,
            first: Shown::new(first, job.trigger.zone().unwrap_or(zone), now),
            capped: job_capped,
        })
        .collect();
    Ok(html(DayPage {
        c: Chrome::new(&h, "./".to_owned(), now, "day"),
        zone: zone.name().to_owned(),
        from: Shown::new(from, zone, now),
        chosen: chosen_index.map(|i| {
            let on = if days > 1 { local[i].strftime(" on %a %-d %b").to_string() } else { String::new() };
            format!("{:02}:00–{:02}:00{on}", local[i].hour(), local[i + 1].hour())
        }),
        days,
        hours,
        grid,
        total,
        busiest,
        jobs: listed,
        pager,
        capped,
        sampled: sampled.then_some(due),
        max_walked: MAX_JOBS_WALKED,
        fires_cap,
    }))
}

/// Where one job's trigger fires in the view: its fire times from its next
/// one (an overdue job fires at once, in the first hour) to the end, at most
/// `cap` of them.
struct Walk {
    /// Hour of the view → fire times in it, and the first.
    per_hour: HashMap<usize, (usize, Timestamp)>,
    /// Whether the cap cut the walk short.
    capped: bool,
    /// The fire times walked.
    counted: usize,
}

impl Walk {
    fn new(
        job: &Job,
        from: Timestamp,
        end: Timestamp,
        cap: usize,
        hour_of: impl Fn(Timestamp) -> Option<usize>,
    ) -> Walk {
        let mut per_hour: HashMap<usize, (usize, Timestamp)> = HashMap::new();
        let Some(next) = job.state.next_run_at else { return Walk { per_hour, capped: false, counted: 0 } };
        let mut t = next.max(from);
        let mut counted = 0;
        while t < end && counted < cap {
            if let Some(i) = hour_of(t) {
                per_hour.entry(i).or_insert((0, t)).0 += 1;
            }
            counted += 1;
            match job.trigger.next_after(t) {
                Some(next) => t = next,
                None => break,
            }
        }
        Walk { per_hour, capped: counted == cap && t < end, counted }
    }
}
