//! What `switchyard plugin replay` prints: per member the picks of the method under test
//! (beside the live proxy's), and the same over time, as a table, CSV or JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;

use super::replay::Replay;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for a terminal.
    Table,
    /// One row per time window, one column per member (for plotting).
    Csv,
    /// Everything, as one JSON object.
    Json,
}

/// Renders `replay` in `format`, with time windows of `interval`.
pub fn render(replay: &Replay, format: Format, interval: Duration) -> String {
    match format {
        Format::Table => table(replay, interval),
        Format::Csv => csv(replay, interval),
        Format::Json => json(replay, interval).to_string(),
    }
}

fn table(replay: &Replay, interval: Duration) -> String {
    let mut out = String::new();
    for (i, s) in replay.segments.iter().enumerate() {
        let picks = s.chosen.len();
        let _ = writeln!(out, "segment {} — balancer {}: {picks} picks", i + 1, s.balancer);
        let width = s.members.iter().map(String::len).max().unwrap_or(6).max(6);
        let _ = writeln!(out, "  {:width$}  {:>8} {:>7}  {:>8} {:>7}", "member", "replayed", "share", "recorded", "share");
        let (replayed, recorded) = (s.per_member(), s.recorded_per_member());
        for (m, url) in s.members.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {url:width$}  {:>8} {:>6.1}%  {:>8} {:>6.1}%",
                replayed[m],
                percent(replayed[m], picks),
                recorded[m],
                percent(recorded[m], picks)
            );
        }
        let _ = writeln!(out, "  same member as the live proxy: {} of {picks} ({:.1}%)", s.matched(), percent(s.matched() as u64, picks));
        if s.refused() > 0 {
            let _ = writeln!(out, "  refused (the client would get 503): {}", s.refused());
        }
        let _ = writeln!(out, "  over time ({} windows):", humantime(interval));
        for (start, counts) in s.over_time(interval) {
            let counts: Vec<String> = counts.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "    {:>10}  {}", humantime(Duration::from_micros(start)), counts.join(" "));
        }
    }
    out
}

fn csv(replay: &Replay, interval: Duration) -> String {
    let mut out = String::new();
    for (i, s) in replay.segments.iter().enumerate() {
        let header: Vec<String> = s.members.iter().map(|m| format!("\"{}\"", m.replace('"', "\"\""))).collect();
        let _ = writeln!(out, "segment,t_us,{}", header.join(","));
        for (start, counts) in s.over_time(interval) {
            let counts: Vec<String> = counts.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "{},{start},{}", i + 1, counts.join(","));
        }
    }
    out
}

fn json(replay: &Replay, interval: Duration) -> serde_json::Value {
    let segments: Vec<serde_json::Value> = replay
        .segments
        .iter()
        .map(|s| {
            json!({
                "balancer": s.balancer,
                "members": s.members,
                "picks": s.chosen.len(),
                "replayed": s.per_member(),
                "recorded": s.recorded_per_member(),
                "matched": s.matched(),
                "refused": s.refused(),
                "interval_us": u64::try_from(interval.as_micros()).unwrap_or(u64::MAX),
                "over_time": s.over_time(interval).into_iter().map(|(t, counts)| json!({ "t_us": t, "picks": counts })).collect::<Vec<_>>(),
                "sequence": s.chosen,
            })
        })
        .collect();
    json!({ "segments": segments })
}

fn percent(n: u64, of: usize) -> f64 {
    if of == 0 { 0.0 } else { 100.0 * n as f64 / of as f64 }
}

fn humantime(d: Duration) -> String {
    if d.is_zero() {
        "0s".to_string()
    } else if d.as_secs() >= 1 && d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_millis() >= 1 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}
