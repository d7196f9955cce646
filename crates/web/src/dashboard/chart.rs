//! The job page's chart of its recent runs: one bar per run for its
//! duration, red when it failed, and a dot for how late it started.

use chime_core::{Run, RunStatus};

use super::time::iso;

/// The chart as inline SVG, for the runs given newest first; empty without
/// finished runs. Every value in it is a number or a fixed word, so it
/// needs no escaping.
pub(crate) fn timeline(runs: &[Run]) -> String {
    let runs: Vec<&Run> = runs.iter().rev().filter(|r| r.status.is_finished()).collect();
    if runs.is_empty() {
        return String::new();
    }
    let (w, h, pad) = (600.0, 120.0, 4.0);
    let max = runs
        .iter()
        .flat_map(|r| [r.duration(), r.lateness()])
        .flatten()
        .map(|d| d.as_secs_f64())
        .fold(0.001_f64, f64::max);
    let step = (w - 2.0 * pad) / runs.len() as f64;
    let bar = (step * 0.7).max(1.0);
    let failed_count = runs.iter().filter(|r| is_failure(r.status)).count();
    let mut svg = format!(
        r#"<svg viewBox="0 0 {w} {h}" width="100%" height="{h}" role="img" aria-label="durations and lateness of the last {} runs, {failed_count} of them failed" style="max-width: {w}px">"#,
        runs.len()
    );
    svg.push_str(&format!(
        r#"<line x1="0" y1="{0}" x2="{w}" y2="{0}" stroke="currentColor" stroke-opacity=".2"/>"#,
        h - pad
    ));
    for (i, r) in runs.iter().enumerate() {
        let x = pad + i as f64 * step;
        let colour = if is_failure(r.status) {
            "var(--bad)"
        } else if r.status == RunStatus::Succeeded {
            "var(--ok)"
        } else {
            "var(--warn)"
        };
        let d = r.duration().map_or(0.0, |d| d.as_secs_f64());
        let bh = ((d / max) * (h - 2.0 * pad)).max(2.0);
        svg.push_str(&format!(
            r#"<rect x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{bh:.1}" fill="{colour}"><title>{} {} {:.3}s</title></rect>"#,
            h - pad - bh,
            iso(r.scheduled_for),
            r.status,
            d
        ));
        if let Some(late) = r.lateness() {
            let y = h - pad - (late.as_secs_f64().max(0.0) / max) * (h - 2.0 * pad);
            svg.push_str(&format!(r#"<circle cx="{:.1}" cy="{y:.1}" r="2.5" fill="var(--accent)"/>"#, x + bar / 2.0));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A run that ended badly: failed, timed out, or abandoned by its node.
pub(crate) fn is_failure(status: RunStatus) -> bool {
    matches!(status, RunStatus::Failed | RunStatus::TimedOut | RunStatus::Abandoned)
}
