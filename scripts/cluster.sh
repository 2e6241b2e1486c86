#!/usr/bin/env bash
# `make cluster`: NODES (default 3) conversation nodes on PORT, PORT+1, ... (default 3000), their
# metrics on METRICS_PORT, METRICS_PORT+1, ... (default 9464), sharing one
# Redis (REDIS_URL, default the local one, started if not running) and DynamoDB (AWS_ENDPOINT_URL, else
# a moto server started here, tables created). Prints a development token and the PIDs; Ctrl-C stops
# exactly what this script started (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

NODES="${NODES:-3}"
PORT="${PORT:-3000}"
METRICS_PORT="${METRICS_PORT:-9464}"
export JWT_HS256_SECRET="${JWT_HS256_SECRET:-local-cluster-secret}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export REDIS_KEY_PREFIX="${REDIS_KEY_PREFIX:-cn:}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"

started_pids=()
cleanup() {
  for pid in "${started_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$REDIS_URL" = "redis://127.0.0.1:6379" ] && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  ensure_redis_server
  redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --daemonize no >/tmp/proactive-cluster-redis.log 2>&1 &
  started_pids+=($!)
  wait_for "redis" redis-cli -h 127.0.0.1 -p 6379 ping
fi

if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  ensure_python_tools
  moto_port=$(free_port)
  "$VENV/bin/python" scripts/lib/moto_server.py 127.0.0.1 "$moto_port" >/tmp/proactive-cluster-moto.log 2>&1 &
  started_pids+=($!)
  export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
  wait_for "moto" curl -fsS -o /dev/null "$AWS_ENDPOINT_URL/moto-api/"
fi

cargo build -q -p conversation-node --bin conversation-node
token=$(cargo run -q -p e2e --bin cluster-setup)
binary="${CARGO_TARGET_DIR:-target}/debug/conversation-node"

for n in $(seq 0 $((NODES - 1))); do
  NODE_ID="node-$n" PORT=$((PORT + n)) METRICS_ADDR="127.0.0.1:$((METRICS_PORT + n))" \
    "$binary" >"/tmp/proactive-cluster-node-$n.log" 2>&1 &
  started_pids+=($!)
  log "node-$n: http://127.0.0.1:$((PORT + n)), metrics http://127.0.0.1:$((METRICS_PORT + n))/metrics (pid $!, logs /tmp/proactive-cluster-node-$n.log)"
done
for n in $(seq 0 $((NODES - 1))); do
  wait_for "node-$n" curl -fsS -o /dev/null "http://127.0.0.1:$((METRICS_PORT + n))/ready"
done

echo "redis: $REDIS_URL (prefix $REDIS_KEY_PREFIX); DynamoDB: $AWS_ENDPOINT_URL"
echo "pids: ${started_pids[*]}"
echo "dev token (user dev-user): $token"
echo "try: curl -H \"Authorization: Bearer \$TOKEN\" -d '{\"initial_user_msg\":\"hi\"}' -H 'content-type: application/json' http://127.0.0.1:$PORT/api/conversations"
echo "Ctrl-C stops the cluster."
wait
