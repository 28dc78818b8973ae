# generation: a Pod restarted in place keeps its emptyDir. Simulated by playing the Pod, then
# replaying it on the same volume (kube down keeps named volumes): the init container runs
# again, as under RestartAllContainers. With `podsignal reset` in it, the sidecar
# (--exit-with exit:main) waits for main's exit in this run; without it (the same Pod with
# its init containers dropped), it finds main's tombstone from the last run and exits at once.
test_main() {
  local dir=$1 pod=generation-demo vol=generation-shared
  local f=$WORK/generation-replay.yaml bare=$WORK/generation-noreset.yaml

  both_exited() { exited $pod-main && exited $pod-side; }
  generation() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["generation"])' "$(volume_dir $vol)/generation.json"; }
  # replay FILE: play again on the volume as it is (play() would remove it first).
  replay() {
    podman kube down "$1" >/dev/null 2>&1 || true
    podman kube play --build=false "$1" >"$WORK/play.out" 2>&1 || { cat "$WORK/play.out" >&2; return 1; }
  }

  play "$dir/pod.yaml"
  until_ok 30 both_exited || fail "first run: main and side did not both exit"
  local lag
  lag=$(exited_after $vol side main) || fail "first run: side exited $lag ms before main"
  [ "$(generation)" = 2 ] || fail "first run: generation $(generation), want 2 (one reset)"
  ok "first run (generation 2): side exited $lag ms after main"

  # The hazard: replayed without the reset, side finds main's old tombstone.
  "$PY" "$E2E/manifest.py" pod "$dir/pod.yaml" "$bare" init=none
  podman kube down "${PODS[0]}" >/dev/null 2>&1
  PODS+=("$bare")
  replay "$bare" || fail "replay without reset failed"
  until_ok 30 both_exited || fail "replay without reset: main and side did not both exit"
  if lag=$(exited_after $vol side main); then
    fail "replay without reset: side waited for main ($lag ms after): no hazard shown"
  fi
  ok "replayed without reset: side exited ${lag#-} ms BEFORE main, on the last run's tombstone (the hazard)"

  # The fix: replayed with the reset init container.
  cp "${PODS[0]}" "$f"
  podman kube down "$bare" >/dev/null 2>&1
  PODS+=("$f")
  replay "$f" || fail "replay with reset failed"
  [ "$(generation)" = 3 ] || fail "replay: generation $(generation), want 3"
  until_ok 30 both_exited || fail "replay with reset: main and side did not both exit"
  lag=$(exited_after $vol side main) || fail "replay with reset: side exited $lag ms before main"
  [ "$(exit_code $pod-side)" = 0 ] || fail "side exit $(exit_code $pod-side), want 0"
  ok "replayed with reset (generation 3): side waited for this run's main, exited $lag ms after it"

  local markers
  markers=$(host_podsignal event watch --since 0 --timeout 100ms | grep -c '"kind":"generation"') || true
  [ "$markers" = 2 ] || fail "$markers generation events in the log, want 2"
  host_podsignal status | grep '^GEN    3' >/dev/null || fail "status does not show generation 3"
  ok "the log holds both generation markers; status shows generation 3"
}
