#!/usr/bin/env bash
# `make test`: install what is missing, start what is not running (loopback only), run every test,
# and stop exactly what this script started (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

ensure_test_tools

trap stop_started_services EXIT
start_test_services

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets --no-fail-fast "$@"
