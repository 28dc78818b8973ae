#!/usr/bin/env bash
# Fuzzes podsignal-proto's parsers with libFuzzer (the cargo-fuzz crate in fuzz/): every target
# runs for a while from its seeds in fuzz/corpus/TARGET; any crash (a panic, a failed
# round-trip assertion, a hang over 10 s, over 2 GiB) fails the run.
#
#   bash tests/fuzz/run.sh            # 20 s a target (CI)
#   bash tests/fuzz/run.sh 600        # a longer run: 10 minutes a target
#   FUZZ_TARGETS="record cursor" bash tests/fuzz/run.sh 600    # some targets only
#   FUZZ_JOBS=1 bash tests/fuzz/run.sh                          # one target at a time
#   FUZZ_SANITIZER=address bash tests/fuzz/run.sh 600           # with AddressSanitizer
#
# Targets run FUZZ_JOBS at a time (default: one per core). Installs cargo-fuzz if missing.
# What the runs find goes under target/fuzz/work (kept between runs, never in the repo):
# corpus/TARGET (new inputs; the seeds are only read), artifacts/TARGET (crash inputs), and
# logs/TARGET.log. fuzz/README.md says how to reproduce a crash.
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

SECONDS_PER_TARGET=${1:-20}
CARGO_FUZZ=cargo-fuzz@0.13.2
SANITIZER=${FUZZ_SANITIZER:-none}
JOBS=${FUZZ_JOBS:-$(nproc)}
TARGET_DIR=$ROOT/target/fuzz
WORK=$TARGET_DIR/work
BIN_DIR=$TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release

say() { printf 'fuzz: %s\n' "$*" >&2; }
die() { printf 'fuzz: FAILED: %s\n' "$*" >&2; exit 1; }

[[ $SECONDS_PER_TARGET =~ ^[1-9][0-9]*$ ]] || die "usage: $0 [SECONDS_PER_TARGET]"
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "FUZZ_JOBS must be a positive number"

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing $CARGO_FUZZ"
  cargo install -q --locked "$CARGO_FUZZ"
fi

# The fuzz crate is its own workspace: rustfmt, and a lockfile that must not need changes.
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo metadata -q --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null

# libFuzzer's coverage instrumentation builds on stable; a sanitizer needs -Zsanitizer.
if [ "$SANITIZER" != none ]; then
  export RUSTC_BOOTSTRAP=1
fi
say "building the targets (sanitizer: $SANITIZER)"
RUSTFLAGS="${RUSTFLAGS:-} -Dwarnings" \
  cargo fuzz build --fuzz-dir fuzz --sanitizer "$SANITIZER" --target-dir "$TARGET_DIR"

mapfile -t ALL < <(cargo fuzz list --fuzz-dir fuzz)
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ALL[*]}}"
for t in "${TARGETS[@]}"; do
  [ -x "$BIN_DIR/$t" ] || die "no fuzz target $t (there are: ${ALL[*]})"
done

# One target: libFuzzer reads the seeds and writes what it finds to the work corpus.
fuzz_one() {
  local t=$1
  mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t" "$WORK/logs"
  touch "$WORK/logs/$t.start"
  local rc=0
  "$BIN_DIR/$t" "$WORK/corpus/$t" "fuzz/corpus/$t" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$WORK/artifacts/$t/" -print_final_stats=1 \
    >"$WORK/logs/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$WORK/logs/$t.rc"
}

say "running ${TARGETS[*]}: ${SECONDS_PER_TARGET}s each, $JOBS at a time"
rm -f "$WORK"/logs/*.rc
running=0
for t in "${TARGETS[@]}"; do
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
wait

stat_of() { sed -n "s/^stat::$2: *//p" "$WORK/logs/$1.log" | tail -n 1; }
failed=()
printf '%-10s %10s %8s %10s %8s\n' target runs exec/s "new units" corpus >&2
for t in "${TARGETS[@]}"; do
  rc=$(cat "$WORK/logs/$t.rc" 2>/dev/null || echo missing)
  corpus=$(find "$WORK/corpus/$t" "fuzz/corpus/$t" -type f 2>/dev/null | wc -l)
  printf '%-10s %10s %8s %10s %8s\n' "$t" "$(stat_of "$t" number_of_executed_units)" \
    "$(stat_of "$t" average_exec_per_sec)" "$(stat_of "$t" new_units_added)" "$corpus" >&2
  [ "$rc" = 0 ] || failed+=("$t")
done

for t in "${failed[@]}"; do
  log=$WORK/logs/$t.log
  printf '\n== %s: libFuzzer exited with %s; from its log (%s):\n' \
    "$t" "$(cat "$WORK/logs/$t.rc" 2>/dev/null || echo '?')" "$log" >&2
  # The panic (what failed and why), then libFuzzer's summary, without the backtraces.
  { sed -n '/panicked at/,/^stack backtrace:/p' "$log" | grep -v '^stack backtrace:' | head -n 60 >&2; } || true
  { sed -n '/^==[0-9]*== ERROR: libFuzzer/,$p' "$log" | grep -v '^0x\|^stat::' | tail -n 20 >&2; } || true
  find "$WORK/artifacts/$t" -type f -newer "$WORK/logs/$t.start" | while read -r crash; do
    printf '\ninput %s (hex):\n' "$crash" >&2
    od -An -tx1 -v "$crash" | head -n 32 >&2
    printf 'reproduce: cargo fuzz run --fuzz-dir fuzz -s %s %s %s\n' "$SANITIZER" "$t" "$crash" >&2
  done
done
[ ${#failed[@]} -eq 0 ] || die "${failed[*]}"
say "${#TARGETS[@]} targets, ${SECONDS_PER_TARGET}s each: no crash"
