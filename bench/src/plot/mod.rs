//! `bench plot`: the pictures of `docs/benchmarks.md`, SVG files drawn from the JSON figures the
//! benchmarks leave in `BENCH_OUT` (`e2e::bench_out`): P5 round trips, P6 CPU per round trip and
//! throughput, P7 memory per idle connection (ours beside the peers), P9 takeover times, P10 the sync's
//! request rate over time. A picture whose figures are missing is skipped, with a line saying so.
//! [`charts`] draws; this file reads the figures.

mod charts;

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use charts::{Bars, Lines};

/// A figure of the JSON (null, from a median of no runs: NaN, no bar).
fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("?").to_owned()
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// P5: the round trip's p50 and p99 per server, and the store's append beside them.
fn round_trips(figures: &Value) -> Vec<(String, Bars)> {
    let mut rows = list(&figures["servers"]).to_vec();
    rows.push(figures["store_append"].clone());
    let series = |key: &str| rows.iter().map(|row| number(&row[key])).collect();
    vec![(
        "socketio-p5-round-trip".into(),
        Bars {
            title: format!(
                "P5 cross-node round trip, median of {} runs of {}",
                figures["runs"], figures["rounds"]
            ),
            axis: "milliseconds (lower is better)".into(),
            rows: rows.iter().map(|row| text(&row["name"])).collect(),
            series: vec![
                ("p50".into(), series("p50_ms")),
                ("p99".into(), series("p99_ms")),
            ],
            target: None,
        },
    )]
}

/// P6: server CPU per round trip, and round trips per second, per server and cluster size.
fn load(figures: &Value) -> Vec<(String, Bars)> {
    let servers = list(&figures["servers"]);
    let rows: Vec<String> = servers
        .iter()
        .map(|s| match s["servers"].as_u64() {
            Some(count) if count > 1 => format!("{} x{count}", text(&s["server"])),
            _ => text(&s["server"]),
        })
        .collect();
    let series = |key: &str| servers.iter().map(|s| number(&s[key])).collect();
    let clients = &figures["clients"];
    vec![
        (
            "socketio-p6-cpu".into(),
            Bars {
                title: format!(
                    "P6 server CPU per round trip, {clients} clients as fast as answered"
                ),
                axis: "CPU-ms per round trip, every server process (lower is better)".into(),
                rows: rows.clone(),
                series: vec![(
                    "CPU-ms per round trip".into(),
                    series("cpu_ms_per_round_trip"),
                )],
                target: Some(("bar: 0.045 at 2 nodes".into(), 0.045)),
            },
        ),
        (
            "socketio-p6-throughput".into(),
            Bars {
                title: format!("P6 throughput, {clients} clients as fast as answered"),
                axis: "round trips per second (higher is better)".into(),
                rows,
                series: vec![("round trips/s".into(), series("round_trips_per_second"))],
                target: None,
            },
        ),
    ]
}

/// P7: RSS per idle connection per server.
fn idle(figures: &Value) -> Vec<(String, Bars)> {
    let servers = list(&figures["servers"]);
    vec![(
        "socketio-p7-idle".into(),
        Bars {
            title: format!(
                "P7 memory per idle connection, {} connections",
                figures["connections"]
            ),
            axis: "KB of RSS per connection (lower is better)".into(),
            rows: servers.iter().map(|s| text(&s["server"])).collect(),
            series: vec![(
                "KB per connection".into(),
                servers
                    .iter()
                    .map(|s| number(&s["kb_per_connection"]))
                    .collect(),
            )],
            target: Some(("bar: 12 KB".into(), 12.0)),
        },
    )]
}

/// P9: every takeover time of the run, by percentile.
fn takeovers(figures: &Value) -> Vec<(String, Lines)> {
    let samples = list(&figures["takeovers"]["samples_ms"]);
    let count = samples.len() as f64;
    let curve = samples
        .iter()
        .enumerate()
        .map(|(rank, ms)| (100.0 * (rank + 1) as f64 / count, number(ms) / 1000.0))
        .collect();
    vec![(
        "takeover-p9".into(),
        Lines {
            title: format!(
                "P9 takeover after kill -9: {} conversations, {} kills, {} takeovers ({})",
                figures["conversations"],
                figures["kills"],
                samples.len(),
                text(&figures["backend"]),
            ),
            x_axis: "percentile of takeovers".into(),
            y_axis: "seconds from the kill to the new owner's first event".into(),
            series: vec![("takeover time".into(), curve)],
            target: Some(("bar: p99 2 s".into(), 2.0)),
        },
    )]
}

/// Seconds over which P10's rate is averaged: one second's count is 1 or 2 at the default limit.
const RATE_WINDOW: usize = 10;

/// P10: the request rate Common Room saw over time (averaged over sliding windows), against the limit.
fn sync_rate(figures: &Value) -> Vec<(String, Lines)> {
    let limit = number(&figures["limit_per_second"]);
    let series = list(&figures["cases"])
        .iter()
        .map(|case| {
            let counts: Vec<f64> = list(&case["per_second"]).iter().map(number).collect();
            let points = counts
                .windows(RATE_WINDOW)
                .enumerate()
                .map(|(start, window)| {
                    let rate = window.iter().sum::<f64>() / RATE_WINDOW as f64;
                    ((start + RATE_WINDOW) as f64, rate)
                })
                .collect();
            (text(&case["name"]), points)
        })
        .collect();
    vec![(
        "sync-rate-p10".into(),
        Lines {
            title: format!(
                "P10 Common Room requests per second over {RATE_WINDOW} s windows, {} conversations",
                figures["conversations"]
            ),
            x_axis: "seconds since the first request".into(),
            y_axis: "requests per second".into(),
            series,
            target: Some((format!("the limit: {limit}/s"), limit)),
        },
    )]
}

/// Draws every picture whose figures are in `from` into `to`.
pub(crate) fn run(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| to.display().to_string())?;
    let read = |name: &str| -> anyhow::Result<Option<Value>> {
        let path = from.join(format!("{name}.json"));
        match std::fs::read(&path) {
            Ok(raw) => Ok(Some(
                serde_json::from_slice(&raw).with_context(|| path.display().to_string())?,
            )),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                println!(
                    "no {} (that benchmark did not run): skipped",
                    path.display()
                );
                Ok(None)
            }
            Err(error) => Err(error).with_context(|| path.display().to_string()),
        }
    };
    let mut bars = Vec::new();
    let mut lines = Vec::new();
    if let Some(figures) = read("socketio-p5")? {
        bars.extend(round_trips(&figures));
    }
    if let Some(figures) = read("socketio-p6")? {
        bars.extend(load(&figures));
    }
    if let Some(figures) = read("socketio-p7")? {
        bars.extend(idle(&figures));
    }
    if let Some(figures) = read("takeover")? {
        lines.extend(takeovers(&figures));
    }
    if let Some(figures) = read("sync-rate")? {
        lines.extend(sync_rate(&figures));
    }
    let mut drawn = Vec::new();
    for (name, chart) in bars {
        let path = to.join(format!("{name}.svg"));
        chart
            .draw(&path)
            .with_context(|| path.display().to_string())?;
        drawn.push(path);
    }
    for (name, chart) in lines {
        let path = to.join(format!("{name}.svg"));
        chart
            .draw(&path)
            .with_context(|| path.display().to_string())?;
        drawn.push(path);
    }
    for path in drawn {
        println!("drew {}", path.display());
    }
    Ok(())
}
