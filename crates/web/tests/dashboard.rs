//! The dashboard's pages through the router with `oneshot` (no socket): the
//! jobs page paged, searched and filtered from its URL, its JSON poll, the
//! runs page, the job page, the day at a glance, refusals of bad query
//! parameters, and the size of the first page with 10,000 jobs.

mod support;

use support::get;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chime_core::{
    ConflictPolicy, Job, JobContext, JobId, ManualClock, RetryPolicy, Run, RunKind, RunStatus, Scheduler, TaskRegistry,
    Trigger,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tower::ServiceExt as _;

const NOW: &str = "2026-01-01T00:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn scheduler() -> Scheduler {
    let mut tasks = TaskRegistry::new();
    tasks.register("noop", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    tasks.register("mail", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    Scheduler::builder()
        .tasks(tasks)
        .clock(ManualClock::new(now()))
        .timezone("UTC")
        .unwrap()
        .node_id("dash-test")
        .build()
}

/// A job stored as given (state included), its next run computed from now.
async fn store_job(s: &Scheduler, mut job: Job) {
    job.trigger.resolve(now(), s.timezone());
    if !job.is_paused() {
        job.state.next_run_at = job.trigger.next_after(now());
    }
    s.store().add_job(job, ConflictPolicy::Error).await.unwrap();
}

fn app(s: &Scheduler) -> axum::Router {
    chime_web::router(chime_web::Handle::new(s.clone()))
}

async fn page(app: &axum::Router, uri: &str) -> String {
    let (st, body) = get(app, uri).await;
    assert_eq!(st, StatusCode::OK, "GET {uri}: {body}");
    body
}

/// The ids of the job rows a page shows, in order.
fn rows(html: &str) -> Vec<String> {
    attribute_values(html, "data-job")
}

fn attribute_values(html: &str, name: &str) -> Vec<String> {
    let needle = format!("<tr {name}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// 120 jobs `job-000` ... `job-119`: every third runs the `mail` task, every
/// tenth is paused, `job-005` and `job-050` failed last, `job-007` is
/// "Nightly billing", and `job-011` has a run in flight.
async fn a_hundred_and_twenty_jobs() -> Scheduler {
    let s = scheduler();
    for i in 0..120 {
        let task = if i % 3 == 0 { "mail" } else { "noop" };
        let mut job = Job::new(&format!("job-{i:03}"), task, Trigger::cron("0 9 * * *").unwrap()).unwrap();
        if i % 10 == 0 {
            job.state.paused = Some(format!("paused #{i}").into());
        }
        if i == 7 {
            job.name = Some("Nightly billing".into());
        }
        if i == 5 || i == 50 {
            job.state.last_status = Some(RunStatus::Failed);
            job.state.last_run_at = Some(now() - SignedDuration::from_mins(90));
        }
        store_job(&s, job).await;
    }
    let node: Arc<str> = Arc::from("dash-test");
    let mut run = Run::pending(JobId::new("job-011").unwrap(), now(), RunKind::Scheduled, &node);
    run.status = RunStatus::Running;
    run.started_at = Some(now());
    s.store().insert_run(run).await.unwrap();
    s
}

#[tokio::test]
async fn the_jobs_page_is_paged_from_its_url() {
    let s = a_hundred_and_twenty_jobs().await;
    let app = app(&s);
    let first = page(&app, "/").await;
    let shown = rows(&first);
    assert_eq!(shown.len(), 50);
    assert_eq!((shown[0].as_str(), shown[49].as_str()), ("job-000", "job-049"));
    assert!(first.contains("page 1 of 3"), "{first}");
    assert!(first.contains(r#"href="./?page=2" rel="next""#));
    assert!(!first.contains(r#"rel="prev""#));

    let last = page(&app, "/?page=3").await;
    let shown = rows(&last);
    assert_eq!(shown.len(), 20);
    assert_eq!((shown[0].as_str(), shown[19].as_str()), ("job-100", "job-119"));
    assert!(last.contains(r#"href="./?page=2" rel="prev""#) && !last.contains(r#"rel="next""#));
    assert!(last.contains("<b class=\"num\">101–120</b> of <b class=\"num\">120</b>"));

    let beyond = page(&app, "/?page=9").await;
    assert!(rows(&beyond).is_empty());
    assert!(beyond.contains(r#"href="./?page=3" rel="prev""#), "back to the last page");
    assert!(beyond.contains("No jobs on this page · page 9 of 3"), "{beyond}");
}

#[tokio::test]
async fn the_jobs_page_searches_ids_names_and_tasks_and_filters_by_state_and_task() {
    let s = a_hundred_and_twenty_jobs().await;
    let app = app(&s);
    let ids = |range: std::ops::Range<usize>, keep: fn(usize) -> bool| -> Vec<String> {
        range.filter(|i| keep(*i)).map(|i| format!("job-{i:03}")).collect()
    };

    assert_eq!(rows(&page(&app, "/?q=JOB-00").await), ids(0..10, |_| true), "ids, in any case");
    assert_eq!(rows(&page(&app, "/?q=billing").await), ["job-007"], "names");
    let mail = page(&app, "/?q=mail").await;
    assert_eq!(rows(&mail), ids(0..120, |i| i % 3 == 0), "tasks");
    assert!(mail.contains(r#"data-count="all" class="num">40<"#), "40 jobs run mail");

    assert_eq!(rows(&page(&app, "/?state=paused").await), ids(0..120, |i| i % 10 == 0));
    let failing = page(&app, "/?state=failing").await;
    assert_eq!(rows(&failing), ["job-005", "job-050"], "job-050 is paused, and failing too");
    assert!(failing.contains(r#"data-count="failing" class="num">2<"#));
    assert_eq!(rows(&page(&app, "/?state=running").await), ["job-011"]);
    let active = page(&app, "/?state=active&page=3").await;
    assert_eq!(rows(&active), ids(0..120, |i| i % 10 != 0)[100..].to_vec());
    assert_eq!(rows(&page(&app, "/?task=mail&state=paused").await), ids(0..120, |i| i % 30 == 0));
    assert_eq!(rows(&page(&app, "/?task=mail&q=job-01").await), ["job-012", "job-015", "job-018"]);
    assert!(rows(&page(&app, "/?task=nothing-runs-this").await).is_empty());

    // The chips count what the search finds, state by state, and keep the search in their links.
    let found = page(&app, "/?q=job-0").await;
    assert!(found.contains(r#"data-count="all" class="num">100<"#), "job-000 ... job-099");
    assert!(found.contains(r#"data-count="paused" class="num">10<"#));
    assert!(found.contains(r#"href="./?q=job-0&#38;state=paused""#), "{found}");
    // The form shows the view it asked for.
    assert!(found.contains(r#"name="q" value="job-0""#));
    let paused = page(&app, "/?state=paused").await;
    assert!(paused.contains(r#"<option value="paused" selected>"#));
}

#[tokio::test]
async fn the_poll_sends_the_same_view_as_json() {
    let s = a_hundred_and_twenty_jobs().await;
    let app = app(&s);
    let (st, body) = get(&app, "/jobs.json?state=paused&task=mail").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = v["rows"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["job-000", "job-030", "job-060", "job-090"]);
    assert_eq!(v["total"], 4);
    assert_eq!(v["now"], NOW);
    assert_eq!(v["rows"][0]["paused"], "paused #0");
    assert_eq!(v["counts"]["paused"], 4);

    // A change shows in the next poll, without the page.
    s.resume_job("job-030").await.unwrap();
    let v: Value = serde_json::from_str(&get(&app, "/jobs.json?q=job-030").await.1).unwrap();
    let row = &v["rows"][0];
    assert_eq!((row["status"].as_str(), row["paused"].as_str()), (Some("active"), None));
    assert_eq!(row["next"]["iso"], "2026-01-01T09:00:00Z");
    assert_eq!(row["next"]["local"], "2026-01-01 09:00 +00:00");
    assert_eq!(row["next"]["relative"], "in 9h");
    let v: Value = serde_json::from_str(&get(&app, "/jobs.json?q=job-011").await.1).unwrap();
    assert_eq!((v["rows"][0]["status"].as_str(), v["rows"][0]["running"].as_u64()), (Some("running"), Some(1)));
}

#[tokio::test]
async fn instants_show_in_the_jobs_zone_with_the_offset_and_from_now() {
    let s = scheduler();
    let paris = Trigger::cron("0 9 * * *").unwrap().with_timezone("Europe/Paris").unwrap();
    store_job(&s, Job::new("paris", "noop", paris).unwrap()).await;
    let app = app(&s);
    let index = page(&app, "/").await;
    // 09:00 in Paris is 08:00 UTC, eight hours after midnight UTC.
    assert!(
        index.contains(r#"<time datetime="2026-01-01T08:00:00Z" title="Europe/Paris · 2026-01-01T08:00:00Z" data-f="next">2026-01-01 09:00 +01:00</time>"#),
        "{index}"
    );
    assert!(index.contains(r#"data-at="2026-01-01T08:00:00Z" data-f="next-rel">in 8h</span>"#));
    assert!(index.contains(r#"data-now="2026-01-01T00:00:00Z""#), "the script counts from the scheduler's clock");
}

#[tokio::test]
async fn bad_query_parameters_are_refused_by_name() {
    let s = a_hundred_and_twenty_jobs().await;
    let app = app(&s);
    for (uri, names) in [
        ("/?page=-1", "page \"-1\""),
        ("/?page=0", "page \"0\""),
        ("/?page=abc", "page \"abc\""),
        ("/?page=99999999999999999999", "page \"99999999999999999999\""),
        ("/?state=bogus", "state \"bogus\": expected one of active, paused, running, failing, finished, broken"),
        ("/?sort=name", "unknown parameter \"sort\""),
        ("/?page=1&page=2", "parameter \"page\" is given twice"),
        ("/jobs.json?state=bogus", "state \"bogus\""),
        ("/runs?status=exploded", "status \"exploded\""),
        ("/runs?window=2h", "window \"2h\""),
        ("/runs?since=yesterday", "since \"yesterday\""),
        ("/runs?window=1h&since=2026-01-01T00:00:00Z", "window"),
        ("/runs?page=-1", "page \"-1\""),
        ("/day?hour=24", "hour \"24\""),
        ("/day?days=3", "days \"3\""),
        ("/day?days=7&date=tomorrow&hour=1", "date \"tomorrow\""),
        ("/day?days=7&date=2026-01-02", "date: give an hour"),
    ] {
        let (st, body) = get(&app, uri).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "malformed", "{uri}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{uri}: {message}");
    }
    let long = format!("/?q={}", "x".repeat(201));
    assert_eq!(get(&app, &long).await.0, StatusCode::BAD_REQUEST);
    // Blank fields, as an empty form sends them, are no filter at all.
    assert_eq!(rows(&page(&app, "/?q=&state=&task=&page=").await).len(), 50);
}

/// A finished run of `job` scheduled `mins_ago` minutes before now.
fn finished(job: &str, mins_ago: i64, status: RunStatus) -> Run {
    let node: Arc<str> = Arc::from("node-a");
    let at = now() - SignedDuration::from_mins(mins_ago);
    let mut run = Run::pending(JobId::new(job).unwrap(), at, RunKind::Scheduled, &node);
    run.status = status;
    run.attempt = 1;
    run.started_at = Some(at + SignedDuration::from_millis(20));
    run.finished_at = Some(at + SignedDuration::from_millis(1500));
    if status == RunStatus::Failed {
        run.error = Some(format!("exit status 3 <{job}>\nsecond line"));
        run.output = Some("disk full at /var/backups".into());
    }
    run
}

#[tokio::test]
async fn the_runs_page_lists_recent_runs_newest_first_filtered_and_paged() {
    let s = scheduler();
    for id in ["backup", "report"] {
        store_job(&s, Job::new(id, "noop", Trigger::cron("0 * * * *").unwrap()).unwrap()).await;
    }
    // 60 hourly runs of backup (every fifth failed), 3 of report.
    for h in 1..=60 {
        let status = if h % 5 == 0 { RunStatus::Failed } else { RunStatus::Succeeded };
        s.store().insert_run(finished("backup", h * 60, status)).await.unwrap();
    }
    for h in 1..=3 {
        s.store().insert_run(finished("report", h * 60 + 30, RunStatus::Succeeded)).await.unwrap();
    }
    let app = app(&s);
    let scheduled = |html: &str| -> Vec<String> {
        html.match_indices("data-f=\"scheduled\">")
            .map(|(at, m)| html[at + m.len()..at + m.len() + 16].to_owned())
            .collect()
    };

    let all = page(&app, "/runs").await;
    let times = scheduled(&all);
    assert_eq!(times.len(), 50);
    assert_eq!(times[0], "2025-12-31 23:00", "newest first");
    assert_eq!(times[1], "2025-12-31 22:30", "report's run between backup's");
    assert!(all.contains(r#"href="./runs?page=2" rel="next""#));
    let second = page(&app, "/runs?page=2").await;
    assert_eq!(scheduled(&second).len(), 13);
    assert!(!second.contains(r#"rel="next""#));

    let failed = page(&app, "/runs?status=failed").await;
    assert_eq!(failed.matches(r#"data-run-status="failed""#).count(), 12);
    assert_eq!(failed.matches("data-run-status=").count(), 12, "nothing but failures");
    // A failure opens to its error and output, escaped.
    assert!(failed.contains("<details open>"));
    assert!(failed.contains("<summary class=\"small\">exit status 3 &#60;backup&#62;</summary>"), "{failed}");
    assert!(failed.contains("<pre>exit status 3 &#60;backup&#62;\nsecond line</pre>"));
    assert!(failed.contains("<pre>disk full at /var/backups</pre>"));
    assert_eq!(page(&app, "/runs?status=failures").await.matches("data-run-status=").count(), 12);

    let report = page(&app, "/runs?job=report").await;
    assert_eq!(report.matches("data-run-status=").count(), 3);
    assert!(!report.contains(r#"href="./jobs/backup""#));

    // The last 3 hours hold backup's runs of 1, 2 and 3 hours ago and report's of 1.5 and 2.5.
    assert_eq!(page(&app, "/runs?window=1h").await.matches("data-run-status=").count(), 1);
    let window = page(&app, "/runs?since=2025-12-31T21:00:00Z&until=2025-12-31T23:00:00Z").await;
    assert_eq!(scheduled(&window), ["2025-12-31 22:30", "2025-12-31 22:00", "2025-12-31 21:30", "2025-12-31 21:00"]);
    let civil = page(&app, "/runs?since=2025-12-31T21:00&until=2025-12-31T23:00&status=succeeded&job=backup").await;
    assert_eq!(scheduled(&civil), ["2025-12-31 22:00", "2025-12-31 21:00"], "wall-clock times in the scheduler's zone");
    // The filters stay in the paging links.
    let paged = page(&app, "/runs?job=backup&window=7d").await;
    assert!(paged.contains(r#"href="./runs?job=backup&#38;window=7d&#38;page=2" rel="next""#), "{paged}");
}

#[tokio::test]
async fn the_job_page_shows_the_whole_job() {
    let s = scheduler();
    let trigger = Trigger::cron("30 2 * * MON-FRI").unwrap().with_timezone("America/New_York").unwrap();
    let job = Job::new("nightly", "noop", trigger)
        .unwrap()
        .with_name("Nightly export")
        .with_timeout(SignedDuration::from_mins(5))
        .with_max_instances(2)
        .with_misfire_grace_time(SignedDuration::from_secs(90))
        .with_retry(RetryPolicy::new(3, SignedDuration::from_secs(10)));
    s.add_job(job, ConflictPolicy::Error).await.unwrap();
    s.store().insert_run(finished("nightly", 30, RunStatus::Failed)).await.unwrap();
    let app = app(&s);
    let job = page(&app, "/jobs/nightly").await;
    for needed in [
        "At 02:30, Monday through Friday (America/New_York)",
        r#"{&#34;type&#34;:&#34;cron&#34;,&#34;expr&#34;:&#34;30 2 * * MON-FRI&#34;,&#34;timezone&#34;:&#34;America/New_York&#34;}"#,
        "America/New_York (UTC-05:00 now)",
        "<dt>timeout</dt><dd>5m</dd>",
        "<dt>max instances</dt><dd>2</dd>",
        "<dt>retry</dt><dd>up to 3 attempts, backoff 10s (×2 each time)</dd>",
        "<dt>misfire grace</dt><dd>1m 30s</dd>",
        "<dt>coalesce</dt><dd>yes",
        "<dt>jitter</dt><dd>none</dd>",
        "added at runtime",
        "<dt>Last ran on</dt><dd>node-a</dd>",
        // 2026-01-01 is a Thursday: 02:30 in New York is 07:30 UTC.
        r#"<time datetime="2026-01-01T07:30:00Z" title="America/New_York · 2026-01-01T07:30:00Z" data-f="upcoming">2026-01-01 02:30 -05:00</time>"#,
        "<pre>disk full at /var/backups</pre>",
        r#"<input id="pause-reason""#,
        r#"data-action="pause" data-id="nightly" aria-label="Pause Nightly export""#,
        r#"href="../runs?job=nightly""#,
    ] {
        assert!(job.contains(needed), "{needed} is missing from {job}");
    }
    assert_eq!(job.matches("data-f=\"upcoming\">").count(), 10, "ten next fire times");
    assert!(
        job.contains(r#"data-action="reschedule" data-id="nightly" data-zone="America/New_York""#),
        "a job added at runtime can be rescheduled, in its zone"
    );

    // A job synced from code says so.
    s.sync(vec![Job::new("from-code", "noop", Trigger::every("1h").unwrap()).unwrap()]).await.unwrap();
    let synced = page(&app, "/jobs/from-code").await;
    assert!(synced.contains("the config file or the service&#39;s code"), "{synced}");
    assert!(synced.contains("none: elapsed time"));
    assert!(!synced.contains(r#"data-action="reschedule""#), "its trigger comes from the code");
}

#[tokio::test]
async fn the_job_page_answers_why_with_a_mark_per_scheduled_time() {
    let s = scheduler();
    // Every 10 minutes for eight days: 23:10 failed, 23:30 succeeded, the
    // rest left no row, and no scheduler runs (none was started).
    let mut job = Job::new("tenmin", "noop", Trigger::every("10m").unwrap()).unwrap();
    job.trigger.resolve(now() - SignedDuration::from_hours(24 * 8), s.timezone());
    job.state.next_run_at = job.trigger.next_after(now());
    s.store().add_job(job, ConflictPolicy::Error).await.unwrap();
    s.store().insert_run(finished("tenmin", 50, RunStatus::Failed)).await.unwrap();
    s.store().insert_run(finished("tenmin", 30, RunStatus::Succeeded)).await.unwrap();
    let app = app(&s);
    let html = page(&app, "/jobs/tenmin").await;
    assert!(html.contains("Why didn't it run?"), "the section is there");
    assert!(html.contains(r#"last day · <a href="?why=week">last week</a>"#), "the window switch");
    let tones: Vec<&str> = html
        .match_indices(r#"class="why-mark "#)
        .map(|(at, _)| {
            let rest = &html[at + 16..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    // 145 times in the day, both ends in (139 before the first row), then the next.
    let mut expected = vec!["none"; 139];
    expected.extend(["bad", "none", "ok", "none", "none", "none", "next"]);
    assert_eq!(tones, expected);
    assert!(html.contains("failed in 1.5s (attempt 1, node node-a): exit status 3 &#60;tenmin&#62;"), "escaped words");
    assert!(html.contains("before_history, no record: before the job&#39;s first recorded run"), "a time's words");
    let answer = "<strong>the last 3 scheduled times (the latest 2026-01-01T00:00:00Z) left no record: the scheduler \
                  was not running (no node holds a lease now); next at 2026-01-01T00:10:00Z</strong>";
    let shown = html.find("<p id=\"why-answer\">").map(|at| &html[at..(at + 400).min(html.len())]);
    assert!(html.contains(answer), "{shown:?}");

    let week = page(&app, "/jobs/tenmin?why=week").await;
    assert!(week.contains(r#"last week · <a href="?why=day">last day</a>"#));
    assert!(week.contains("710 earlier scheduled times of the window are not drawn"), "a week is capped at 300 marks");
    assert_eq!(week.matches(r#"class="why-mark "#).count(), 300);
    let (st, body) = get(&app, "/jobs/tenmin?why=year").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains(r#"why \"year\": expected one of day, week"#), "{body}");
}

#[tokio::test]
async fn the_day_shows_the_herd_at_midnight_and_its_jobs() {
    let s = scheduler();
    for i in 0..30 {
        store_job(&s, Job::new(&format!("midnight-{i:02}"), "noop", Trigger::cron("0 0 * * *").unwrap()).unwrap())
            .await;
    }
    store_job(&s, Job::new("hourly", "noop", Trigger::cron("15 * * * *").unwrap()).unwrap()).await;
    let mut paused = Job::new("paused", "noop", Trigger::cron("0 5 * * *").unwrap()).unwrap();
    paused.state.paused = Some("not today".into());
    store_job(&s, paused).await;
    let app = app(&s);

    let day = page(&app, "/day").await;
    let fires = |hour: u32| -> String {
        let needle = format!("data-hour=\"{hour}\" data-fires=\"");
        let at = day.find(&needle).unwrap_or_else(|| panic!("no hour {hour}")) + needle.len();
        day[at..at + day[at..].find('"').unwrap()].to_owned()
    };
    // It is 00:00: midnight's jobs fire tomorrow at 00:00, outside the 24 hours from now.
    assert_eq!(fires(0), "1", "only hourly at 00:15");
    assert_eq!(fires(5), "1", "the paused job does not count");
    assert_eq!(day.matches("data-fires=").count(), 24);

    // An hour later, the herd is in the last hour of the view, and dense.
    let s2 = scheduler();
    for i in 0..30 {
        store_job(&s2, Job::new(&format!("evening-{i:02}"), "noop", Trigger::cron("0 18 * * *").unwrap()).unwrap())
            .await;
    }
    store_job(&s2, Job::new("hourly", "noop", Trigger::cron("15 * * * *").unwrap()).unwrap()).await;
    let app2 = chime_web::router(chime_web::Handle::new(s2.clone()));
    let day = page(&app2, "/day").await;
    assert!(day.contains(r#"class="dense" aria-label="18:00, 31 runs of 31 jobs""#), "{day}");
    let hour = page(&app2, "/day?hour=18").await;
    assert_eq!(rows(&hour).len(), 31);
    assert_eq!(rows(&hour)[0], "evening-00", "by first fire time, then id");
    assert_eq!(rows(&hour)[30], "hourly");
    assert!(hour.contains(r#"href="./jobs/evening-00""#));
    assert!(hour.contains("Jobs firing 18:00–19:00"));

    // The 7 days: a grid of dates and hours, each hour a link to its jobs.
    let week = page(&app2, "/day?days=7").await;
    assert_eq!(week.matches("data-fires=").count(), 7 * 24);
    assert!(week.contains("<b>378</b> in all"), "7 × 30 evening runs and 7 × 24 hourly ones: {week}");
    let cell = r#"href="./day?days=7&#38;date=2026-01-03&#38;hour=18" class="cell dense""#;
    assert!(week.contains(cell), "{week}");
    let chosen = page(&app2, "/day?days=7&date=2026-01-03&hour=18").await;
    assert_eq!(rows(&chosen).len(), 31);
    assert!(chosen.contains("Jobs firing 18:00–19:00 on Sat 3 Jan"), "{chosen}");
    assert!(chosen.contains(r#"datetime="2026-01-03T18:00:00Z""#), "the first run in that hour, on that day");
}

/// Past 10,000 jobs firing in the view, the day counts each job once, in
/// the hour it is next due (the store's due index), instead of walking
/// every trigger; the page says so, and an hour still lists its jobs.
#[tokio::test]
async fn past_ten_thousand_jobs_the_day_counts_next_runs() {
    let s = scheduler();
    store_job(&s, Job::new("quarterly", "noop", Trigger::cron("*/15 * * * *").unwrap()).unwrap()).await;
    let at_three = |i: usize| Job::new(&format!("three-{i:05}"), "noop", Trigger::cron("0 3 * * *").unwrap()).unwrap();
    for i in 0..9_999 {
        store_job(&s, at_three(i)).await;
    }
    let app = app(&s);
    let fires = |day: &str, hour: u32| -> String {
        let needle = format!("data-hour=\"{hour}\" data-fires=\"");
        let at = day.find(&needle).unwrap_or_else(|| panic!("no hour {hour}")) + needle.len();
        day[at..at + day[at..].find('"').unwrap()].to_owned()
    };

    // 10,000 jobs: every trigger walked; quarterly fires four times an hour.
    let walked = page(&app, "/day").await;
    assert!(!walked.contains(r#"id="sampled""#), "{walked}");
    assert_eq!((fires(&walked, 1).as_str(), fires(&walked, 3).as_str()), ("4", "10003"));
    assert!(walked.contains(r#"aria-label="03:00, 10003 runs of 10000 jobs""#), "{walked}");

    // One more: each job counts once, at its next fire.
    store_job(&s, at_three(9_999)).await;
    let sampled = page(&app, "/day").await;
    assert!(sampled.contains(r#"id="sampled"><b>10001</b> jobs fire in this view"#), "{sampled}");
    assert_eq!(fires(&sampled, 0), "1", "quarterly, next due at 00:15");
    assert_eq!(fires(&sampled, 1), "0", "quarterly's later runs are not counted");
    assert_eq!(fires(&sampled, 3), "10000");
    assert!(sampled.contains(r#"aria-label="03:00, 10000 next runs of 10000 jobs""#), "{sampled}");
    assert!(sampled.contains("<b>10001</b> in all"), "{sampled}");

    // An hour lists the jobs next due in it, by id, paged; each one walked.
    let hour = page(&app, "/day?hour=3&page=2").await;
    let listed = rows(&hour);
    assert_eq!(listed.len(), 50);
    assert_eq!(listed[0], "three-00050");
    assert!(hour.contains("page 2 of 200"), "{hour}");
    let first = page(&app, "/day?hour=0").await;
    assert_eq!(rows(&first), ["quarterly"]);
    assert!(first.contains(r#"<td class="num">3</td>"#), "00:15, 00:30 and 00:45: {first}");
    assert!(page(&app, "/day?hour=1").await.contains("No job is next due in this hour."));
}

/// Fewer than 10,000 jobs, but more than a million fire times to walk (700
/// jobs every 30 s, each walked for its first 1,440 in 24 hours): counted
/// at their next fire too.
#[tokio::test]
async fn past_a_million_fire_times_the_day_counts_next_runs() {
    let s = scheduler();
    for i in 0..700 {
        store_job(&s, Job::new(&format!("often-{i:03}"), "noop", Trigger::every("30s").unwrap()).unwrap()).await;
    }
    let day = page(&app(&s), "/day").await;
    assert!(day.contains(r#"id="sampled"><b>700</b> jobs fire in this view"#), "{day}");
    assert!(day.contains(r#"aria-label="00:00, 700 next runs of 700 jobs""#), "{day}");
    let hour = page(&app(&s), "/day?hour=0").await;
    assert!(hour.contains("each is counted for its first 60 fire times in the hour only"), "{hour}");
}

#[tokio::test]
async fn with_ten_thousand_jobs_the_first_page_stays_small() {
    let s = scheduler();
    for i in 0..10_000 {
        let name = format!("Nightly export for customer {i:05} with a long descriptive name");
        let cron = format!("{} {} * * *", i % 60, i % 24);
        let job = Job::new(
            &format!("customer-{i:05}-export"),
            if i % 2 == 0 { "noop" } else { "mail" },
            Trigger::cron(&cron).unwrap(),
        )
        .unwrap()
        .with_name(&name);
        store_job(&s, job).await;
    }
    let app = app(&s);
    let started = Instant::now();
    let first = page(&app, "/").await;
    let rendered = started.elapsed();
    assert_eq!(rows(&first).len(), 50);
    assert!(first.contains("page 1 of 200"));
    assert!(first.len() < 300 * 1024, "the first page is {} bytes", first.len());
    let started = Instant::now();
    let (_, json) = get(&app, "/jobs.json").await;
    let polled = started.elapsed();
    assert!(json.len() < 100 * 1024, "the poll is {} bytes", json.len());
    let started = Instant::now();
    let searched = page(&app, "/?q=customer-0999").await;
    let search_time = started.elapsed();
    assert_eq!(rows(&searched).len(), 10);
    let started = Instant::now();
    let day = page(&app, "/day").await;
    let day_time = started.elapsed();
    // Every job fires once in the next 24 hours, but those at 00:00 (every
    // 120th): it is 00:00 now, and their next run is tomorrow's.
    assert!(day.contains("<b>9916</b> in all"), "{day}");
    eprintln!(
        "10,000 jobs: first page {} bytes in {rendered:?}, poll {} bytes in {polled:?}, search in {search_time:?}, day in {day_time:?} (debug build)",
        first.len(),
        json.len()
    );
}

#[tokio::test]
async fn the_new_pages_are_reads_behind_the_guard_and_the_read_token() {
    let s = a_hundred_and_twenty_jobs().await;
    let token = "0123456789abcdef-test-token";
    let handle = chime_web::Handle::new(s.clone()).with_token(Some(token.into())).unwrap().with_read_token(true);
    let app = chime_web::router(handle);
    let send = |method: &'static str, uri: &'static str, headers: Vec<(&'static str, String)>| {
        let app = app.clone();
        async move {
            let mut req = Request::builder().method(method).uri(uri);
            if !headers.iter().any(|(k, _)| *k == "host") {
                req = req.header("host", "127.0.0.1:8080");
            }
            for (k, v) in headers {
                req = req.header(k, v);
            }
            app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap().status()
        }
    };
    for uri in ["/", "/jobs.json", "/runs", "/day", "/jobs/job-001", "/assets/dashboard.js", "/assets/dashboard.css"] {
        assert_eq!(send("GET", uri, vec![]).await, StatusCode::UNAUTHORIZED, "{uri} without the token");
        let bearer = vec![("authorization", format!("Bearer {token}"))];
        assert_eq!(send("GET", uri, bearer).await, StatusCode::OK, "{uri} with it");
        let rebound = vec![("host", "evil.example.com".to_owned())];
        assert_eq!(send("GET", uri, rebound).await, StatusCode::MISDIRECTED_REQUEST, "{uri} for another host");
    }
    // They change nothing: no other method.
    let bearer = || vec![("authorization", format!("Bearer {token}")), ("content-type", "application/json".to_owned())];
    for uri in ["/runs", "/day", "/jobs.json"] {
        assert_eq!(send("POST", uri, bearer()).await, StatusCode::METHOD_NOT_ALLOWED, "{uri}");
    }
}
