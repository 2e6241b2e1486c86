#!/usr/bin/env bash
# `make test`: install what is missing, start what is not running (loopback only), run every test,
# and stop exactly what this script started (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

ensure_redis_server
ensure_python_tools
ensure_node_tools
# cargo-lambda (a cargo subcommand) finds its zig through the venv's Python; cfn-lint and sam live there too.
export PATH="$VENV/bin:$PATH"

started_pids=()
cleanup() {
  for pid in "${started_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# Redis: tests use their own key prefixes, so a developer's running server is shared safely.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --daemonize no >/tmp/proactive-test-redis.log 2>&1 &
  started_pids+=($!)
  wait_for "redis" redis-cli -h 127.0.0.1 -p 6379 ping
fi
export TEST_REDIS_URL="redis://127.0.0.1:6379"

# One AWS-compatible server (moto, serialised) for the whole run; tests use their own table names.
moto_port=$(free_port)
"$VENV/bin/python" "$SHARED_TOOLS/moto_serial.py" 127.0.0.1 "$moto_port" >/tmp/proactive-test-moto.log 2>&1 &
started_pids+=($!)
wait_for "moto" curl -fsS -o /dev/null "http://127.0.0.1:$moto_port/moto-api/"
export TEST_AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets --no-fail-fast "$@"
