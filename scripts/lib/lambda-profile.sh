# The release profile of the Lambda bundles, sourced by scripts/build-arm64.sh and before `sam build`:
# size first (quality bar P2, each zipped bootstrap <= 5 MB), without changing the workspace's release
# profile, which the conversation node keeps for speed. Environment overrides of `[profile.release]`.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=s
export CARGO_PROFILE_RELEASE_LTO=fat
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
# A Lambda process that panics is replaced by the service; unwinding tables would only add size.
export CARGO_PROFILE_RELEASE_PANIC=abort
