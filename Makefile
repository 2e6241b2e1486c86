.PHONY: run test cluster bench deploy fmt lint help

# Local defaults of `make run`: documented development values, never used in AWS (where the
# secrets come from Secrets Manager). Any of them can be overridden from the environment.
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

# The quality bars' benchmarks (release builds), then their pictures in docs/img; QUICK=1 for small sizes.
bench:
	scripts/bench.sh

# Build the Lambdas (size profile) and `sam deploy` with samconfig.toml; DEPLOY_ARGS=--guided the first time.
deploy:
	scripts/deploy.sh $(DEPLOY_ARGS)

# Format the workspace.
fmt:
	cargo fmt --all

# Clippy on every crate and target, warnings as errors.
lint:
	cargo clippy --workspace --all-targets -- -D warnings

# This list: each target and the comment line above it.
help:
	@awk '/^# / { if (!comment) comment = substr($$0, 3); next } \
	     /^[a-z-]+:/ { if (comment) printf "  make %-8s %s\n", substr($$1, 1, length($$1) - 1), comment } \
	     { comment = "" }' $(firstword $(MAKEFILE_LIST))
