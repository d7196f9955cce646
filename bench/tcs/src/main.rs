//! tokio-cron-scheduler on chime's workloads: `tcs-bench WORKLOAD N [CHANNEL]`,
//! one JSON line. CHANNEL is its internal channel size (default 200, its own default).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_cron_scheduler::{Job, JobScheduler};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = args.first().cloned().unwrap_or_default();
    let n: usize = args.get(1).and_then(|n| n.parse().ok()).expect("usage: tcs-bench WORKLOAD N [CHANNEL]");
    let channel: usize = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(200);
    let result = match workload.as_str() {
        "w1" => w1(n, channel).await,
        "w2" => w2(n, channel).await,
        "w3" => w3(n, channel).await,
        "w4" => w4(n, channel).await,
        "w5" => w5(n),
        other => panic!("unknown workload {other:?}"),
    };
    println!("{}", json!({"scheduler": "tokio-cron-scheduler", "workload": workload, "n": n, "channel": channel, "result": result}));
}

async fn w1(n: usize, channel: usize) -> serde_json::Value {
    let sched = JobScheduler::new_with_channel_size(channel).await.unwrap();
    let before = rss_bytes();
    let start = Instant::now();
    for _ in 0..n {
        let job = Job::new_repeated_async(Duration::from_secs(3600), |_id, _l| Box::pin(async {})).unwrap();
        sched.add(job).await.unwrap();
    }
    let add_s = start.elapsed().as_secs_f64();
    json!({"add_s": add_s, "add_per_s": n as f64 / add_s, "rss_bytes_per_job": rss_bytes().saturating_sub(before) as f64 / n as f64})
}

async fn w2(n: usize, channel: usize) -> serde_json::Value {
    let sched = JobScheduler::new_with_channel_size(channel).await.unwrap();
    // W2_LEAD_S: see chime-bench's w2.
    let lead: f64 = std::env::var("W2_LEAD_S").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let due = Instant::now() + Duration::from_secs_f64(lead);
    let lateness = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let executed = Arc::new(AtomicU64::new(0));
    for _ in 0..n {
        let (l, e) = (Arc::clone(&lateness), Arc::clone(&executed));
        let job = Job::new_one_shot_at_instant_async(due, move |_id, _lock| {
            let (l, e) = (Arc::clone(&l), Arc::clone(&e));
            Box::pin(async move {
                let now = Instant::now();
                // Signed: a run that starts before its due instant counts as negative lateness.
                let late = if now >= due { now.duration_since(due).as_secs_f64() } else { -due.duration_since(now).as_secs_f64() };
                l.lock().unwrap().push(late * 1000.0);
                e.fetch_add(1, Ordering::Relaxed);
            })
        })
        .unwrap();
        sched.add(job).await.unwrap();
    }
    sched.start().await.unwrap();
    // Wait until runs stop arriving (dropped ones never will).
    let mut last = 0;
    let mut quiet = 0;
    while quiet < 20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = executed.load(Ordering::Relaxed);
        if now == last && Instant::now() > due { quiet += 1 } else { quiet = 0 }
        last = now;
        if now as usize == n { break; }
    }
    let mut late = lateness.lock().unwrap().clone();
    let drain_s = late.iter().copied().fold(f64::MIN, f64::max) / 1000.0;
    let earliest_ms = late.iter().copied().fold(f64::MAX, f64::min);
    let executed = executed.load(Ordering::Relaxed);
    json!({
        "drain_s": drain_s, "jobs_per_s": late.len() as f64 / drain_s.max(1e-9),
        "lateness_p50_ms": percentile(&mut late, 0.5), "lateness_p99_ms": percentile(&mut late, 0.99),
        "lateness_max_ms": percentile(&mut late, 1.0), "executed": executed, "missed": n as u64 - executed,
        "earliest_ms": earliest_ms,
    })
}

async fn w3(n: usize, channel: usize) -> serde_json::Value {
    let sched = JobScheduler::new_with_channel_size(channel).await.unwrap();
    let executed = Arc::new(AtomicU64::new(0));
    for _ in 0..n {
        let e = Arc::clone(&executed);
        let job = Job::new_repeated_async(Duration::from_secs(1), move |_id, _lock| {
            let e = Arc::clone(&e);
            Box::pin(async move {
                e.fetch_add(1, Ordering::Relaxed);
            })
        })
        .unwrap();
        sched.add(job).await.unwrap();
    }
    let cpu = process_cpu_s();
    sched.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = process_cpu_s() - cpu;
    // tcs does not tell a job its scheduled time and does not align repeated
    // jobs to a common start, so lateness is not measured here.
    json!({"executed": executed.load(Ordering::Relaxed), "expected": n * 10, "process_cpu_s": cpu})
}

async fn w4(n: usize, channel: usize) -> serde_json::Value {
    let sched = JobScheduler::new_with_channel_size(channel).await.unwrap();
    for _ in 0..n {
        let job = Job::new_one_shot_async(Duration::from_secs(3600), |_id, _l| Box::pin(async {})).unwrap();
        sched.add(job).await.unwrap();
    }
    sched.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = process_cpu_s();
    tokio::time::sleep(Duration::from_secs(10)).await;
    json!({"idle_cpu_s": process_cpu_s() - before})
}

/// tcs evaluates cron expressions with croner 3 (its dependency); this times
/// that library directly, since tcs has no API to list fire times.
fn w5(n: usize) -> serde_json::Value {
    use chrono::TimeZone;
    use std::str::FromStr;
    let cron = croner::Cron::from_str("*/7 9-17 * * 1-5").unwrap();
    let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let mut at = tz.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        at = cron.find_next_occurrence(&at, false).unwrap();
    }
    let s = start.elapsed().as_secs_f64();
    json!({"next_fire_s": s, "next_fire_per_s": n as f64 / s, "last": at.to_rfc3339()})
}

fn percentile(v: &mut [f64], p: f64) -> Option<f64> {
    if v.is_empty() { return None; }
    v.sort_by(f64::total_cmp);
    let rank = ((v.len() as f64) * p).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn process_cpu_s() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum::<u64>() as f64 / 1e9
}
