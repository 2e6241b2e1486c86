//! Where the benchmark programs (`bench`, the sync's `rate_bench` example) leave their figures besides
//! standard output: one JSON file per benchmark in the directory `BENCH_OUT` names (`scripts/bench.sh`
//! sets `target/bench`), which `bench plot` draws. Unset: nothing is written.

use std::path::PathBuf;

use serde_json::Value;

/// The variable naming the directory.
pub const BENCH_OUT: &str = "BENCH_OUT";

/// Writes `figures` as `$BENCH_OUT/<name>.json` and says where; nothing without `BENCH_OUT`.
pub fn save(name: &str, figures: &Value) {
    let Some(dir) = std::env::var_os(BENCH_OUT).map(PathBuf::from) else {
        return;
    };
    let path = dir.join(format!("{name}.json"));
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(figures)?))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    println!("figures written to {}", path.display());
}
