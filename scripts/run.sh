#!/usr/bin/env bash
# `make run`: the whole product locally (the local stack). With AGENT_RUNTIME=openhands and no
# AGENT_SERVER_URL the node runs its own agent-server: it is installed first when missing. The node
# stops the agent-server it started when it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

if [ "${AGENT_RUNTIME:-}" = openhands ] && [ -z "${AGENT_SERVER_URL:-}" ] && [ -z "${AGENT_SERVER_PYTHON:-}" ]; then
  ensure_agent_server
fi
exec cargo run -q -p local-stack
