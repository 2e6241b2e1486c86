.PHONY: run test cluster fmt lint bench

# Local defaults of `make run`: documented development values, never used in AWS (where the
# template injects real secrets). Any of them can be overridden from the environment.
LOCAL_ENV = GITHUB_WEBHOOK_SECRET=$${GITHUB_WEBHOOK_SECRET:-local-webhook-secret} \
	JWT_HS256_SECRET=$${JWT_HS256_SECRET:-local-jwt-secret} \
	INTERNAL_API_KEY=$${INTERNAL_API_KEY:-local-internal-key} \
	PUBLIC_URL=$${PUBLIC_URL:-http://127.0.0.1:$${PORT:-3000}} \
	PROACTIVE_USERS="$${PROACTIVE_USERS:-*=local-user}"

# The whole product locally, embedded defaults (AGENT_RUNTIME=openhands installs the agent-server).
run:
	env $(LOCAL_ENV) scripts/run.sh

# Every test, installing and starting what it needs.
test:
	scripts/test-stack.sh

# NODES (default 3) clustered nodes on PORT, PORT+1, ... over Redis and DynamoDB (moto if no AWS endpoint).
cluster:
	scripts/cluster.sh

# The quality bars' benchmarks (release builds); QUICK=1 for small sizes.
bench:
	scripts/bench.sh

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings
