.PHONY: run test cluster fmt lint

# The whole product locally, embedded defaults.
run:
	cargo run -p conversation-node --bin local-stack

# Every test, installing and starting what it needs.
test:
	scripts/test-stack.sh

# NODES (default 3) clustered nodes on PORT, PORT+1, ... over Redis and DynamoDB (moto if no AWS endpoint).
cluster:
	scripts/cluster.sh

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings
