//! Quality bar P10 (and R5's rate half): the request rate Common Room sees while the sync has work
//! queued, against the limit, without and with faults (30% 429, 10% 5xx, slow answers).
//!
//! `cargo run --release -p commonroom-sync --example rate_bench -- [LIMIT] [CONVERSATIONS] [RUNS]`
//! (defaults: the default limit 2/s, 120 conversations, 3 runs; the median is printed). With `BENCH_OUT`
//! set, the median runs' requests per second over time go to `$BENCH_OUT/sync-rate.json` for `bench plot`.

use e2e::fakes::commonroom::Faults;
use e2e::sync_world::{BenchFigures, rate_bench};
use serde_json::json;

/// Requests in each whole second from the first request.
fn per_second(figures: &BenchFigures) -> Vec<usize> {
    let mut counts = Vec::new();
    for arrival in &figures.arrivals {
        let second = arrival.as_secs() as usize;
        if counts.len() <= second {
            counts.resize(second + 1, 0);
        }
        counts[second] += 1;
    }
    counts
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: f64| {
        args.get(i)
            .and_then(|a| a.parse::<f64>().ok())
            .unwrap_or(default)
    };
    let (limit, count, runs) = (
        number(0, 2.0),
        number(1, 120.0) as usize,
        number(2, 3.0) as usize,
    );
    println!("limit {limit}/s, {count} conversations, {runs} runs per case");
    println!(
        "{:<10} {:>9} {:>12} {:>9} {:>14} {:>11}",
        "case", "requests", "achieved/s", "of limit", "max in any 1s", "delivered"
    );
    let mut cases = Vec::new();
    for (case, faults) in [
        ("no faults", Faults::none()),
        ("faults", Faults::misbehaving(11)),
    ] {
        let mut figures: Vec<BenchFigures> = Vec::new();
        for _ in 0..runs.max(1) {
            figures.push(rate_bench(count, limit, faults.clone()).await);
        }
        figures.sort_by(|a, b| a.achieved.total_cmp(&b.achieved));
        let median = &figures[figures.len() / 2];
        let worst_window = figures
            .iter()
            .map(|f| f.max_in_any_second)
            .max()
            .unwrap_or(0);
        println!(
            "{:<10} {:>9} {:>12.3} {:>8.1}% {:>14} {:>5}/{:<5}",
            case,
            median.requests,
            median.achieved,
            100.0 * median.achieved / median.limit,
            worst_window,
            median.activities_stored,
            median.conversations,
        );
        cases.push(json!({
            "name": case,
            "achieved_per_second": median.achieved,
            "max_in_any_second": worst_window,
            "requests": median.requests,
            "per_second": per_second(median),
        }));
    }
    e2e::bench_out::save(
        "sync-rate",
        &json!({ "bar": "P10", "limit_per_second": limit, "conversations": count, "runs": runs, "cases": cases }),
    );
}
