# Sourced by the bench/*.sh scripts: the podsignal binary to measure (PODSIGNAL_BIN, else a
# release build of this tree) and a fresh shared directory (PODSIGNAL_DIR), removed on exit;
# the processes measured log warnings only (run and wait log at info by default).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${PODSIGNAL_BIN:-}" ]; then
  cargo build --release -q --bin podsignal
  PODSIGNAL_BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/podsignal
fi
export PODSIGNAL_BIN
PODSIGNAL_DIR=$(mktemp -d)
export PODSIGNAL_DIR
trap 'rm -rf "$PODSIGNAL_DIR"' EXIT
export PODSIGNAL_LOG=warn
