#!/usr/bin/env bash
# `make bench`: every benchmark of the quality bars, in release builds, against the same local services
# as the tests (started only when missing, stopped by PID at the end). Figures go to standard output and,
# as JSON, to BENCH_OUT (default target/bench); at the end `bench plot` draws them as SVG into docs/img
# (QUICK: into BENCH_OUT/img).
# docs/benchmarks.md keeps the table. `QUICK=1` runs the small sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

ensure_test_tools
trap stop_started_services EXIT
start_test_services

export BENCH_OUT="${BENCH_OUT:-$PWD/target/bench}"
quick=()
[ -n "${QUICK:-}" ] && quick=(--quick)
log "P3, P4, R1: the trigger decision"
cargo run -q --release -p bench -- "${quick[@]}" trigger
log "P8, P9, R3: node processes on a cluster (the release node binary beside the bench)"
cargo build -q --release -p conversation-node -p bench --bins
cargo run -q --release -p bench -- "${quick[@]}" cluster
log "R2: fuzzing the webhook handler (FUZZ_SECONDS, default 600)"
fuzz_seconds=()
[ -z "${QUICK:-}" ] && fuzz_seconds=(--seconds "${FUZZ_SECONDS:-600}")
cargo run -q --release -p bench -- "${quick[@]}" fuzz-webhook "${fuzz_seconds[@]}"
log "P5, P6, P7: Socket.IO round trips, load and idle connections, beside the peers"
ulimit -n "$(ulimit -Hn)"  # P7 holds 10,000 connections in one node
cargo run -q --release -p bench -- "${quick[@]}" socketio
log "P10, R5: the Common Room sync's rate"
cargo run -q --release -p commonroom-sync --example rate_bench
log "P1: Lambda init against a local runtime API"
cargo run -q --release -p e2e --example lambda_init_bench
log "P2: arm64 bundle sizes"
scripts/build-arm64.sh
# The small sizes' pictures stay beside their figures: docs/img keeps the full runs'.
pictures=docs/img
[ -n "${QUICK:-}" ] && pictures="$BENCH_OUT/img"
log "the pictures: the JSON figures of $BENCH_OUT drawn into $pictures"
cargo run -q --release -p bench -- plot --from "$BENCH_OUT" --to "$pictures"
