#!/usr/bin/env bash
# podsignal's benchmark suite (issue 17): builds the release binaries, runs every benchmark
# with real processes, each next to its floor measured in the same run, and writes
# BENCHMARKS.md and the plots in docs/img/.
#
#   bench/run.sh              the full suite (~10 min on 2 cores)
#   bench/run.sh --quick      fewer trials, shorter periods, no 10k waiters (~3 min)
#   bench/run.sh --no-write   leave BENCHMARKS.md and docs/img alone (CI's smoke run);
#                             the report goes to a temporary directory, without plots
#
# Needs: wrk, inotifywait (inotify-tools), curl, flock(1), cc (a tiny static program is the
# spawn floor); as root it installs what is missing with apt-get. Plots: a Python venv with
# matplotlib, made in the target directory.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=() write=1
for arg in "$@"; do
  case $arg in
    --quick) quick=(--quick) ;;
    --no-write) write=0 ;;
    *) echo "usage: bench/run.sh [--quick] [--no-write]" >&2; exit 2 ;;
  esac
done

step() { printf '\n== %s (%ss)\n' "$*" "$SECONDS" >&2; }

step "tools"
missing=()
for tool in wrk inotifywait curl flock cc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing for: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends wrk inotify-tools curl util-linux gcc libc6-dev >&2
  else
    echo "bench/run.sh: missing ${missing[*]}" >&2; exit 1
  fi
fi

step "build (release; podsignal static, as the image ships it)"
# The code measured (as built now): the commit, and whether the work tree differed from it.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- . ':!BENCHMARKS.md' ':!docs/img' 2>/dev/null; then commit="$commit with uncommitted changes"; fi
cargo build --release -q --bin podsignal-bench
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bench=$target/release/podsignal-bench
# The binary under test is the one users run: static (glibc, crt-static), built exactly as
# tests/e2e/run.sh builds it, in the same target directory (CI builds it once for both).
# A dynamic build starts ~0.4 ms slower (the loader), which every CLI row would count.
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$PWD/target/static" \
  cargo build --release -q --locked --target x86_64-unknown-linux-gnu --bin podsignal
ps=$PWD/target/static/x86_64-unknown-linux-gnu/release/podsignal
tiny=$target/bench-tiny
printf 'int main(void) { return 0; }\n' | cc -static -O2 -o "$tiny" -x c -

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# run, wait and lock log at info by default (what they wait for, hold, start): thousands of
# trials would fill the output with it. Warnings only, as in the runs BENCHMARKS.md reports.
export PODSIGNAL_LOG=warn
# 10k waiters need 10k descriptors in the client and as many in the agent.
ulimit -n "$(ulimit -Hn)"

if [ ${#quick[@]} -gt 0 ]; then ns=10,1000 idle=5 rounds=1 probe_rounds=3 probe_503_rounds=5; else ns=10,1000,10000 idle=10 rounds=3 probe_rounds=10 probe_503_rounds=30; fi

step "many long-poll waiters ($ns)"
"$bench" waiters --podsignal "$ps" --n "$ns" --idle-secs "$idle" --rounds "$rounds" --json "$out/waiters.json"
step "readiness wake: raw inotify, library, HTTP"
"$bench" readiness --podsignal "$ps" "${quick[@]}" --json "$out/readiness.json"
step "the CLI path and the shell baselines"
"$bench" cli --podsignal "$ps" --tiny "$tiny" "${quick[@]}" --json "$out/cli.json"
step "locks: hand-off and holder death"
"$bench" locks --podsignal "$ps" "${quick[@]}" --json "$out/locks.json"
step "events: 8 publishers → 8 watchers"
"$bench" events "${quick[@]}" --json "$out/events.json"
step "scaling with the number of records ($ns)"
"$bench" scaling --podsignal "$ps" --records "$ns" "${quick[@]}" --json "$out/scaling.json"
step "agent cost"
"$bench" cost --podsignal "$ps" "${quick[@]}" --json "$out/cost.json"
step "probes: run --wait-for tcp:/http:// (bench/wait-latency.sh $probe_rounds)"
PODSIGNAL_BIN=$ps bash bench/wait-latency.sh "$probe_rounds" | tee "$out/probes.txt"
step "probes: 503 → 200 vs a 1 s poll, and their CPU cost (bench/probes.sh $probe_503_rounds)"
PODSIGNAL_BIN=$ps bash bench/probes.sh "$probe_503_rounds" | tee "$out/probes-503.txt"

step "report"
machine=$("$bench" machine)
command="bench/run.sh${quick[*]:+ ${quick[*]}}"
if [ "$write" = 1 ]; then
  venv=$target/bench-venv
  if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q matplotlib
  fi
  "$venv/bin/python" bench/render.py --results "$out" --machine "$machine" \
    --command "$command" --commit "$commit" --markdown BENCHMARKS.md --plots docs/img
  echo "wrote BENCHMARKS.md and docs/img/bench-*.png" >&2
else
  python3 bench/render.py --results "$out" --machine "$machine" --command "$command" \
    --commit "$commit" --markdown "$out/BENCHMARKS.md"
  echo "report rendered (not written: --no-write)" >&2
fi
step "done"
