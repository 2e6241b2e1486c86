#!/usr/bin/env bash
# The arm64 bundle that template.yaml deploys (`sam build` runs the same cargo-lambda build per function):
# `cargo lambda build --release --arm64` of every Lambda function with the Lambda profile
# (scripts/lib/lambda-profile.sh), each bootstrap zipped as Lambda takes it, then one line per function
# with the bootstrap's size and the zip's. Fails when a zip is larger
# than the quality bar P2 (5 MB), or when the aarch64 standard library cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh
source scripts/lib/lambda-profile.sh

FUNCTIONS=(webhook commonroom-sync cleanup)
LIMIT_BYTES=$((5 * 1000 * 1000))

ensure_python_tools
export PATH="$VENV/bin:$PATH"   # cargo-lambda finds its zig through the venv's Python

if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  log "adding the aarch64 standard library"
  if ! rustup target add aarch64-unknown-linux-gnu; then
    log "the aarch64 standard library is not available on this machine: cannot build the arm64 bundle"
    exit 1
  fi
fi

# One build per function, as `sam build` does: each links only the adapters its own features select
# (built together, cargo would unify them, and every bundle would link SQLite and Redis).
for function in "${FUNCTIONS[@]}"; do
  cargo lambda build --release --arm64 --output-format zip -p "$function"
done

target_dir=$(cargo metadata --format-version 1 --no-deps \
  | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
"$VENV/bin/python" - "$target_dir" "$LIMIT_BYTES" "${FUNCTIONS[@]}" <<'PY'
import os, sys, zipfile
target_dir, limit, functions = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
AARCH64 = 0xB7  # ELF e_machine
over = []
print(f"{'function':<18}{'bootstrap':>14}{'zipped':>14}  (arm64, release)")
for name in functions:
    path = f"{target_dir}/lambda/{name}/bootstrap.zip"
    with zipfile.ZipFile(path) as bundle:
        entry = bundle.getinfo("bootstrap")
        head = bundle.open(entry).read(20)
    if head[:4] != b"\x7fELF" or int.from_bytes(head[18:20], "little") != AARCH64:
        sys.exit(f"{path}: the bootstrap is not an aarch64 ELF executable")
    zipped = os.path.getsize(path)
    print(f"{name:<18}{entry.file_size:>14,}{zipped:>14,}")
    if zipped > limit:
        over.append(name)
if over:
    sys.exit(f"over the {limit:,}-byte bar (P2): {', '.join(over)}")
PY
