# Shared by the scripts: locating and installing the tools the stacks need. Sourced, not run.
VENV="${VENV:-$PWD/.venv}"

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

apt_install() {
  log "installing $* from Debian's packages"
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_redis_server() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server
  command -v curl >/dev/null || apt_install curl
}

# Python tools into an ignored venv: moto's server (DynamoDB/EventBridge/SQS), the Socket.IO client,
# cargo-lambda (with its zig) for `cargo lambda build/watch/invoke`, cfn-lint and the SAM CLI for the
# template. One pip call, so that one resolver run settles their shared dependencies (boto3).
ensure_python_tools() {
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  local want=("moto[server]>=5.1,<6" "python-socketio[asyncio-client]>=5.11,<6" "redis>=5,<7"
              "cargo-lambda>=1.8,<2" "cfn-lint>=1.20,<2" "aws-sam-cli>=1.130,<2")
  if ! "$VENV/bin/python" -c 'import moto, socketio, aiohttp, redis, cfnlint, samcli' 2>/dev/null \
     || [ ! -x "$VENV/bin/cargo-lambda" ]; then
    log "installing ${want[*]} into $VENV"
    "$VENV/bin/pip" install -q "${want[@]}"
  fi
}

ensure_node_tools() {
  if [ ! -d node_modules/socket.io-client ] || [ ! -d node_modules/@socket.io/redis-adapter ]; then
    log "installing socket.io-client and the benchmarks' node.js peer from npm"
    npm install --no-audit --no-fund --silent >/dev/null
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for NAME CMD...: retry CMD for up to 30 s.
wait_for() {
  local name=$1; shift
  for _ in $(seq 1 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "$name did not come up"; return 1
}

# Everything the tests and benchmarks need installed; the venv's tools first on PATH (cargo-lambda finds its
# zig through the venv's Python; cfn-lint and sam live there too).
ensure_test_tools() {
  ensure_redis_server
  ensure_python_tools
  ensure_node_tools
  ensure_agent_server
  export PATH="$VENV/bin:$PATH"
}

# The local services the tests and benchmarks talk to, started only when missing and remembered in
# STARTED_PIDS so that the caller's `stop_started_services` (an EXIT trap) stops exactly those.
STARTED_PIDS=()
stop_started_services() {
  for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}

# Redis on 127.0.0.1:6379 (callers use their own key prefixes, so a developer's server is shared safely)
# and one serialised moto server on a free port; exports TEST_REDIS_URL and TEST_AWS_ENDPOINT_URL.
start_test_services() {
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --daemonize no \
      >/tmp/proactive-test-redis.log 2>&1 &
    STARTED_PIDS+=($!)
    wait_for "redis" redis-cli -h 127.0.0.1 -p 6379 ping
  fi
  export TEST_REDIS_URL="redis://127.0.0.1:6379"
  local moto_port
  moto_port=$(free_port)
  "$VENV/bin/python" scripts/lib/moto_server.py 127.0.0.1 "$moto_port" >/tmp/proactive-test-moto.log 2>&1 &
  STARTED_PIDS+=($!)
  wait_for "moto" curl -fsS -o /dev/null "http://127.0.0.1:$moto_port/moto-api/"
  export TEST_AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
}

# The OpenHands agent-server (`AGENT_RUNTIME=openhands`) in a venv of its own: it needs Python >= 3.12,
# looked for as python3.13/python3.12/python3 on PATH, then among pyenv's versions.
AGENT_SERVER_VENV="${AGENT_SERVER_VENV:-$PWD/.venv-agent-server}"
AGENT_SERVER_PACKAGE="openhands-agent-server==1.58.2"

find_python_312() {
  local candidate
  for candidate in python3.13 python3.12 python3 \
      "$(pyenv root 2>/dev/null)"/versions/3.1[2-9]*/bin/python3; do
    command -v "$candidate" >/dev/null 2>&1 || [ -x "$candidate" ] || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate" 2>/dev/null || echo "$candidate"
      return 0
    fi
  done
  return 1
}

# Exports AGENT_SERVER_PYTHON: the venv's interpreter, with the agent-server installed.
ensure_agent_server() {
  if ! "$AGENT_SERVER_VENV/bin/python" -c 'import openhands.agent_server' 2>/dev/null; then
    local python
    if ! python=$(find_python_312); then
      log "the OpenHands agent-server needs Python >= 3.12: none found (tried python3.13, python3.12, python3 and pyenv's versions); install one, or set AGENT_RUNTIME=builtin"
      return 1
    fi
    log "installing $AGENT_SERVER_PACKAGE into $AGENT_SERVER_VENV with $python (about 2 minutes, 750 MB)"
    "$python" -m venv "$AGENT_SERVER_VENV"
    "$AGENT_SERVER_VENV/bin/pip" install -q "$AGENT_SERVER_PACKAGE"
  fi
  export AGENT_SERVER_PYTHON="$AGENT_SERVER_VENV/bin/python"
}
