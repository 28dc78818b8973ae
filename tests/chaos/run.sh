#!/usr/bin/env bash
# podsignal attacking itself: every fault-injection scenario with real processes (kill -9
# storms, a full or read-only filesystem, agent restarts, hostile users and files, a crash
# loop, a soak), then a table of what each injected, what had to hold, the counts and the
# result. The scenarios are in chaos/src/scenarios/; RELIABILITY.md keeps the long run's table.
#
#   bash tests/chaos/run.sh                       # --quick: the CI size, under 5 minutes
#   bash tests/chaos/run.sh --minutes 10          # the long run: each scenario 10 minutes
#   bash tests/chaos/run.sh --only mutex,leader   # some scenarios (--list names them)
#   bash tests/chaos/run.sh --release --minutes 10  # against a release build
#
# Needs root on Linux (tmpfs mounts, sysctls, setpriv, pid namespaces) and flock(1),
# unshare(1), setpriv(1) (util-linux) and curl. Exit status: 0 everything held, 1 a violation
# or a scenario that could not run.
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

profile=debug
args=()
for a in "$@"; do
  case "$a" in
    --release) profile=release ;;
    *) args+=("$a") ;;
  esac
done
[ ${#args[@]} -gt 0 ] || args=(--quick)

for tool in flock unshare setpriv curl; do
  command -v "$tool" >/dev/null || { echo "chaos: needs $tool (Debian: util-linux, curl)" >&2; exit 1; }
done

if [ "$profile" = release ]; then
  cargo build -q --release -p podsignal-agent -p podsignal-chaos
else
  cargo build -q -p podsignal-agent -p podsignal-chaos
fi
exec "$ROOT/target/$profile/podsignal-chaos" "${args[@]}"
