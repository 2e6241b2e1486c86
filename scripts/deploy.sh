#!/usr/bin/env bash
# `make deploy`: the bundle to the AWS account of the current credentials. Checks the tools and the
# credentials first (nothing is built without them), then `sam build` with the Lambda size profile
# (scripts/lib/lambda-profile.sh: each zipped bootstrap under 5 MB, quality bar P2; nothing to set) and
# `sam deploy` with samconfig.toml. Arguments go to `sam deploy` (`--guided` the first time, to answer
# the template's parameters, saved into samconfig.toml). The node's image is built and pushed apart
# (docs/deploy.md) and named by the `NodeImageUri` parameter.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

die() { log "make deploy: $*"; exit 1; }

# The venv's tools first (cargo-lambda finds its zig through the venv's Python), as in the tests.
export PATH="$VENV/bin:$PATH"
command -v sam >/dev/null \
  || die "the AWS SAM CLI (sam) is not installed: 'make test' installs it into .venv, or 'pip install aws-sam-cli'"
command -v cargo-lambda >/dev/null \
  || die "cargo-lambda is not installed (sam build runs it): 'make test' installs it into .venv, or 'pip install cargo-lambda'"

# boto3 and sam read AWS_DEFAULT_REGION; the product's variable is AWS_REGION.
if [ -n "${AWS_REGION:-}" ] && [ -z "${AWS_DEFAULT_REGION:-}" ]; then export AWS_DEFAULT_REGION=$AWS_REGION; fi
python=""
for candidate in "$VENV/bin/python" python3; do
  if "$candidate" -c 'import boto3' 2>/dev/null; then python=$candidate; break; fi
done
[ -n "$python" ] || die "no Python with boto3 to check the AWS credentials with ('make test' installs one into .venv)"
"$python" - <<'PY' || die "no usable AWS credentials: nothing was built or deployed"
import sys

import boto3

session = boto3.session.Session()
if session.get_credentials() is None:
    sys.exit("no AWS credentials found (AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, SSO, or a role)")
if not session.region_name:
    sys.exit("no AWS region: set AWS_REGION, or the profile's region")
try:
    identity = session.client("sts").get_caller_identity()
except Exception as error:  # any failure means the deploy cannot work: say why
    sys.exit(f"the AWS credentials do not work: {error}")
print(f"deploying as {identity['Arn']} to {session.region_name}", file=sys.stderr)
PY

source scripts/lib/lambda-profile.sh
log "sam build: the three Lambda functions, arm64, size profile"
sam build
log "sam deploy ${*:-}"
sam deploy "$@"
