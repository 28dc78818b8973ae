#!/usr/bin/env bash
# End-to-end tests: every example in examples/ played as a real Pod with `podman kube play`.
#
#   bash tests/e2e/run.sh                 # set up podman, build the images, test every example
#   bash tests/e2e/run.sh adapter debug   # only these examples
#   bash tests/e2e/run.sh --images        # only set up podman and build the images (to play
#                                         # the examples by hand, see examples/*/README.md)
#
# Needs root on a Debian-like machine (it apt-get installs podman). How podman behaves here,
# and why each setup step exists, is in the team's PODMAN.md notes; the short version is in
# the comments below. Every pod is torn down after its test, also when the test fails.
#
# Environment:
#   PODSIGNAL_STATIC_BIN  use this static podsignal binary instead of building one
#   E2E_KEEP_LOGS=DIR     keep every test's log and the pods' container logs in DIR
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E=$ROOT/tests/e2e
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")
IMAGE=localhost/podsignal:$VERSION
DEMO=localhost/podsignal-demo:$VERSION
SHELL_IMAGE=localhost/podsignal-demo-shell:$VERSION
ALL_EXAMPLES=(startup-ordering native-sidecar ambassador adapter leader-election job-sidecars debug crash-loop inject generation stop-signal)
[ -z "${PODSIGNAL_STATIC_BIN:-}" ] || PODSIGNAL_STATIC_BIN=$(realpath "$PODSIGNAL_STATIC_BIN")
WORK=$(mktemp -d /tmp/podsignal-e2e-XXXXXX)
# kube play must not run from a directory holding a folder named like an image.
cd "$WORK"

say() { printf 'e2e: %s\n' "$*" >&2; }
# Outside CI a machine without podman skips loudly; in CI (CI=true) that is a failure.
skip() {
  [ "${CI:-}" != true ] || { printf 'e2e: FAILED: cannot run podman in CI: %s\n' "$*" >&2; exit 1; }
  printf '\ne2e: SKIPPED because %s\n\n' "$*" >&2; exit 0
}
die() { printf 'e2e: FAILED: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------------------------------------
# Setup: podman, its configuration, the manifest validator, the images.

setup_podman() {
  if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! [ -x /bin/busybox ]; then
    [ "$(id -u)" = 0 ] || skip "podman is not installed and we are not root to install it"
    command -v apt-get >/dev/null || skip "podman is not installed and there is no apt-get"
    say "installing podman, runc, busybox-static"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >"$WORK/apt.log" 2>&1 || true
    apt-get install -y -q podman runc busybox-static >>"$WORK/apt.log" 2>&1 \
      || { tail -n 20 "$WORK/apt.log" >&2; skip "apt-get install podman runc busybox-static failed (log above)"; }
  fi
  # crun fails on this cgroup setup, and the default nofile limit is too high for runc here.
  local conf=/etc/containers/containers.conf
  if ! grep -qs 'runtime *= *"runc"' "$conf"; then
    [ -w /etc/containers ] || mkdir -p /etc/containers 2>/dev/null || skip "cannot write $conf"
    [ -f "$conf" ] && cp "$conf" "$conf.before-podsignal-e2e"
    cat >"$conf" <<'EOF'
# Written by podsignal's tests/e2e/run.sh: runc (crun fails on this cgroup setup) and ulimits
# runc accepts.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=1000:1000"]

[engine]
runtime = "runc"
EOF
  fi
  # Can podman run a container at all? Only this decides a skip; later failures are failures.
  mkdir -p "$WORK/probe"
  cp /bin/busybox "$WORK/probe/busybox"
  printf 'FROM scratch\nCOPY busybox /busybox\n' >"$WORK/probe/Containerfile"
  local out
  if ! out=$(podman build --isolation chroot -q -t localhost/podsignal-e2e-probe:1 "$WORK/probe" 2>&1); then
    skip "podman cannot build an image here: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
  fi
  if ! out=$(podman run --rm localhost/podsignal-e2e-probe:1 /busybox true 2>&1); then
    skip "podman cannot run a container here: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
  fi
  podman rmi -f localhost/podsignal-e2e-probe:1 >/dev/null 2>&1 || true
  say "podman $(podman version --format '{{.Client.Version}}') with runc works"
}

# Every manifest must be valid Kubernetes: kubernetes-validate (PyPI), strict (unknown fields
# are errors), in a private venv so the system Python stays untouched.
validate_manifests() {
  local venv=$WORK/venv
  python3 -m venv "$venv" >/dev/null 2>&1 || die "python3 -m venv failed (install python3-venv)"
  "$venv/bin/pip" install -q --disable-pip-version-check kubernetes-validate pyyaml >"$WORK/pip.log" 2>&1 \
    || { tail -n 5 "$WORK/pip.log" >&2; die "pip install kubernetes-validate failed"; }
  PY=$venv/bin/python
  local f files=()
  # The examples, inject's golden outputs and the e2e's own manifests.
  for f in "$ROOT"/examples/*/*.yaml "$ROOT"/tests/inject/golden/*.yaml "$E2E"/*/*.yaml; do files+=("$f"); done
  "$venv/bin/kubernetes-validate" --strict --quiet "${files[@]}" \
    || die "a manifest is not valid Kubernetes (kubernetes-validate --strict, above)"
  say "${#files[@]} manifests valid (kubernetes-validate --strict)"
}

# A static podsignal: glibc with crt-static (no musl target here). Its own target dir, so it
# never invalidates the debug build.
build_static() {
  if [ -n "${PODSIGNAL_STATIC_BIN:-}" ]; then
    BIN=$PODSIGNAL_STATIC_BIN
  else
    say "building a static podsignal (release, crt-static)"
    (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$ROOT/target/static" \
      cargo build --release --locked --target x86_64-unknown-linux-gnu --bin podsignal) \
      >"$WORK/cargo.log" 2>&1 || { tail -n 20 "$WORK/cargo.log" >&2; die "static build failed"; }
    BIN=$ROOT/target/static/x86_64-unknown-linux-gnu/release/podsignal
  fi
  file -L "$BIN" 2>/dev/null | grep 'static' >/dev/null || ldd "$BIN" 2>&1 | grep 'not a dynamic' >/dev/null \
    || die "$BIN is not statically linked"
}

build_images() {
  # The real image: Dockerfile's `runtime` stage, with the `build` stage replaced by a
  # directory holding the binary (nothing is pulled).
  mkdir -p "$WORK/ctx/bin"
  cp "$BIN" "$WORK/ctx/bin/podsignal"
  podman build --isolation chroot -q -f "$ROOT/Dockerfile" --target runtime \
    --build-context build="$WORK/ctx/bin" -t "$IMAGE" "$ROOT" >/dev/null \
    || die "podman build of $IMAGE failed"
  local size
  size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
  [ "$size" -lt 5000000 ] || die "$IMAGE is $size bytes, over 5 MB"
  [ "$(podman image inspect "$IMAGE" --format '{{.Config.User}}')" = "65532:65532" ] || die "$IMAGE does not run as 65532"
  if podman run --rm --entrypoint /bin/sh "$IMAGE" -c true >/dev/null 2>&1; then die "$IMAGE has a shell"; fi
  say "$IMAGE: $size bytes, user 65532, no shell"

  # The demo images: busybox (+ curl and its libraries) for the examples' app containers.
  local d=$WORK/ctx/demo l
  mkdir -p "$d/lib/usr/bin" "$d/www"
  cp /bin/busybox "$d/busybox"
  cp "$BIN" "$d/podsignal"
  echo ok >"$d/www/index.html"
  echo ok >"$d/www/healthz"
  if ! command -v curl >/dev/null; then apt-get install -y -q curl >>"$WORK/apt.log" 2>&1 || die "no curl"; fi
  cp -L "$(command -v curl)" "$d/lib/usr/bin/curl"
  for l in $(ldd "$(command -v curl)" | grep -o '/[^ ]*'); do
    mkdir -p "$d/lib$(dirname "$l")"
    cp -L "$l" "$d/lib$l"
  done
  podman build --isolation chroot -q -f "$E2E/demo.Dockerfile" --target shell -t "$SHELL_IMAGE" "$d" >/dev/null \
    || die "podman build of $SHELL_IMAGE failed"
  podman build --isolation chroot -q -f "$E2E/demo.Dockerfile" --target demo -t "$DEMO" "$d" >/dev/null \
    || die "podman build of $DEMO failed"
  say "$DEMO and $SHELL_IMAGE built"
}

# ---------------------------------------------------------------------------------------------
# Pod helpers (used inside a test's subshell).

PODS=()      # manifests played by this test, torn down on exit
VOLUMES=()   # volumes to remove on exit

# play FILE [OPTION...]: play a manifest, adapted by manifest.py's `pod` OPTIONs; remember it
# for teardown. Under kube play, restartPolicy Always restarts init containers too (each
# exit 0 starts it again, forever), so pods with init containers use `restart=OnFailure`.
PLAYED=0
play() {
  local src=$1; shift
  PLAYED=$((PLAYED + 1))
  local f=$WORK/$(basename "$(dirname "$src")")-$PLAYED.yaml
  "$PY" "$E2E/manifest.py" pod "$src" "$f" "$@"
  PODS+=("$f")
  local v
  for v in $("$PY" "$E2E/manifest.py" volumes "$f"); do VOLUMES+=("$v"); podman volume rm -f "$v" >/dev/null 2>&1 || true; done
  podman kube play --build=false "$f" >"$WORK/play.out" 2>&1 || { cat "$WORK/play.out" >&2; return 1; }
}

# teardown: what a test leaves behind goes, logs first (kube down deletes them).
teardown() {
  local rc=$?
  set +e
  local f c
  if [ "$rc" != 0 ]; then
    for f in "${PODS[@]}"; do
      for c in $(podman ps -a --format '{{.Names}}' --filter "pod=$("$PY" "$E2E/manifest.py" name "$f")" 2>/dev/null); do
        case $c in *-infra) continue ;; esac
        echo "----- logs of $c (exit $(podman inspect "$c" --format '{{.State.ExitCode}}' 2>/dev/null))"
        podman logs "$c" 2>&1 | tail -n 40
      done
    done
  fi
  for f in "${PODS[@]}"; do
    podman kube down "$f" >/dev/null 2>&1
  done
  for f in "${LATE[@]}"; do podman rm -f "$f" >/dev/null 2>&1; done
  for f in "${VOLUMES[@]}"; do podman volume rm -f "$f" >/dev/null 2>&1; done
  return $rc
}
LATE=()

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

exit_code() { podman inspect "$1" --format '{{.State.ExitCode}}'; }
state() { podman inspect "$1" --format '{{.State.Status}}'; }
finished_ns() { podman inspect "$1" --format '{{.State.FinishedAt.UnixNano}}'; }
started_ns() { podman inspect "$1" --format '{{.State.StartedAt.UnixNano}}'; }
logs() { podman logs "$1" 2>&1; }
# volume_dir NAME: the host directory of a named volume (an emptyDir under kube play).
volume_dir() { podman volume inspect "$1" --format '{{.Mountpoint}}'; }

# Shutdown ORDER is judged from tombstones, never from podman's FinishedAt: FinishedAt is the
# ctime of the exit file each container's conmon writes on its own, at kernel-tick resolution
# (4 ms here), so containers that exit in a chain within a few ms (worker -> api -> agent takes
# ~2 ms) get equal, or even swapped, FinishedAt. A tombstone's exited_ms is taken by
# `run --name` right after it reaps its command, on the one host clock, and the chain is
# causal: `run --stop-after exit:api` reads api's tombstone before it signals its own command.
#
# exited_ms VOLUME NAME: when `run --name NAME` saw its command exit (Unix ms).
exited_ms() {
  "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["exited_ms"])' \
    "$(volume_dir "$1")/exits/$2.json"
}
# exited_after VOLUME LATER EARLIER: LATER's command exited no earlier than EARLIER's (equal
# milliseconds allowed; a wrong order shows as the whole stop-after wait, hundreds of ms).
# Prints the lag in ms.
exited_after() {
  local later earlier
  later=$(exited_ms "$1" "$2") && earlier=$(exited_ms "$1" "$3") || return 1
  echo $((later - earlier))
  [ "$later" -ge "$earlier" ]
}

# until_ok SECONDS CMD...: retry CMD every 50 ms until it succeeds or SECONDS pass.
until_ok() {
  local end=$(( $(now_ms) + $1 * 1000 )); shift
  while ! "$@" >/dev/null 2>&1; do
    [ "$(now_ms)" -lt "$end" ] || return 1
    sleep 0.05
  done
}
running() { [ "$(state "$1")" = running ]; }
exited() { [ "$(state "$1")" = exited ]; }
# (grep without -q reads all input: with -q and pipefail, podman logs can die of SIGPIPE)
log_has() { logs "$1" | grep -- "$2" >/dev/null; }

# probe POD CONTAINER KIND: run the container's exec probe (readinessProbe, livenessProbe,
# startupProbe) from the manifest by hand, as a kubelet would (podman ignores readiness and
# startup probes).
probe() {
  local f=$1 ctr=$2 kind=$3 pod
  pod=$("$PY" "$E2E/manifest.py" name "$f")
  local -a cmd
  mapfile -t cmd < <("$PY" "$E2E/manifest.py" probe "$f" "$ctr" "$kind")
  [ "${#cmd[@]}" -gt 0 ] || fail "$ctr has no $kind exec probe"
  podman exec "$pod-$ctr" "${cmd[@]}"
}

# stop_all POD CTR...: SIGTERM to the containers at once, as a kubelet does, but leaving the
# pod's infra container (its network namespace) up: `podman pod stop` also stops the infra
# container, and traffic leaving the pod fails from then on ("Network is unreachable"), which a
# kubelet never does to containers still shutting down.
stop_all() {
  local pod=$1 c pids=(); shift
  for c in "$@"; do podman stop -t 20 "$pod-$c" >/dev/null & pids+=($!); done
  for c in "${pids[@]}"; do wait "$c"; done
}

# a podsignal on the host reads a pod's shared directory straight from its volume
host_podsignal() { local v=$1; shift; "$BIN" --dir "$(volume_dir "$v")" "$@"; }

# write_timeline DIR: the timeline of the pod's shared directory (the first volume holding an
# event log) as DIR/timeline.svg, the picture its README shows; the text chart goes to the
# test's log. Regenerated by every run (the times differ, the story should not).
write_timeline() {
  local dir=$1 v
  for v in "${VOLUMES[@]}"; do
    [ -d "$(volume_dir "$v")/events" ] || continue
    "$BIN" --dir "$(volume_dir "$v")" timeline --format svg >"$WORK/timeline.svg" || fail "podsignal timeline --format svg failed"
    grep -q ' run 1' "$WORK/timeline.svg" || fail "the timeline of $v shows no container"
    mv "$WORK/timeline.svg" "$dir/timeline.svg"
    "$BIN" --dir "$(volume_dir "$v")" timeline || fail "podsignal timeline failed"
    ok "timeline of $v written to examples/$(basename "$dir")/timeline.svg"
    return 0
  done
  fail "no volume of the pod holds an event log"
}

# ---------------------------------------------------------------------------------------------

run_example() {
  local name=$1 log=$WORK/$1.log start rc
  start=$(now_ms)
  set +e
  (
    set -Eeuo pipefail
    trap teardown EXIT
    # shellcheck source=/dev/null
    . "$E2E/test_${name//-/_}.sh"
    # An example's test gets its directory; a test of its own (inject, generation, stop-signal)
    # gets tests/e2e/NAME.
    if [ -d "$ROOT/examples/$name" ]; then
      test_main "$ROOT/examples/$name"
      write_timeline "$ROOT/examples/$name"
    else
      test_main "$E2E/$name"
    fi
  ) >"$log" 2>&1
  rc=$?
  set -e
  local secs=$(( ($(now_ms) - start) / 1000 ))
  if [ $rc = 0 ]; then
    printf 'e2e: PASS %-18s (%ss)\n' "$name" "$secs" >&2
    sed -n 's/^ok: /      /p' "$log" >&2
    PASSED+=("$name")
  else
    printf 'e2e: FAIL %-18s (%ss)\n' "$name" "$secs" >&2
    sed 's/^/      | /' "$log" >&2
    FAILED+=("$name")
  fi
  if [ -n "${E2E_KEEP_LOGS:-}" ]; then mkdir -p "$E2E_KEEP_LOGS"; cp "$log" "$E2E_KEEP_LOGS/"; fi
}

main() {
  local images_only=0 examples=()
  for a in "$@"; do
    case $a in
      --images) images_only=1 ;;
      -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
      *) [ -f "$E2E/test_${a//-/_}.sh" ] || die "no test for example $a"; examples+=("$a") ;;
    esac
  done
  [ ${#examples[@]} -gt 0 ] || examples=("${ALL_EXAMPLES[@]}")
  local t0; t0=$(now_ms)
  setup_podman
  validate_manifests
  build_static
  build_images
  [ $images_only = 0 ] || { say "images ready: $IMAGE $DEMO $SHELL_IMAGE"; exit 0; }
  export BIN PY IMAGE DEMO SHELL_IMAGE WORK E2E VERSION
  PASSED=() FAILED=()
  for e in "${examples[@]}"; do run_example "$e"; done
  say "${#PASSED[@]} passed, ${#FAILED[@]} failed in $(( ($(now_ms) - t0) / 1000 ))s${FAILED[*]:+: ${FAILED[*]}}"
  rm -rf "$WORK"
  [ ${#FAILED[@]} = 0 ]
}

main "$@"
