# generation: a Pod restarted in place (RestartAllContainers) runs its init containers again
# and keeps its emptyDir. Simulated on the played Pod: its exited containers are started again
# (`podman start`: same pod, same volume), after the init container's `podsignal reset` is
# replayed on the volume (`podman run` with the image and volume of the manifest's init
# container). With the reset, the sidecar (--exit-with exit:main) waits for main's exit in
# this run; without it, it finds main's tombstone from the last run and exits at once.
test_main() {
  local dir=$1 pod=generation-demo vol=generation-shared

  generation() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["generation"])' "$(volume_dir $vol)/generation.json"; }
  # restart: start main and side again and wait until both have exited.
  restart() {
    podman start $pod-main $pod-side >/dev/null || return 1
    podman wait $pod-main $pod-side >/dev/null
  }
  # replay_reset: the init container again, on the same volume.
  replay_reset() {
    podman run --rm -v $vol:/run/podsignal "$IMAGE" reset --reason "replayed init container" \
      >"$WORK/reset.out" 2>"$WORK/reset.err" || { cat "$WORK/reset.err" >&2; return 1; }
  }

  play "$dir/pod.yaml"
  podman wait $pod-main $pod-side >/dev/null
  local lag
  lag=$(exited_after $vol side main) || fail "first run: side exited $lag ms before main"
  [ "$(generation)" = 2 ] || fail "first run: generation $(generation), want 2 (one reset)"
  ok "first run (generation 2): side exited $lag ms after main"

  # The hazard: restarted without the reset, side finds main's tombstone from the last run.
  restart || fail "restart without reset failed"
  if lag=$(exited_after $vol side main); then
    fail "restarted without reset: side waited for main ($lag ms after it): no hazard shown"
  fi
  ok "restarted without reset: side exited ${lag#-} ms BEFORE main, on the last run's tombstone (the hazard)"

  # The fix: the init container's reset first.
  replay_reset || fail "replayed reset failed"
  [ "$(cat "$WORK/reset.out")" = 3 ] || fail "reset printed $(cat "$WORK/reset.out"), want 3"
  [ "$(generation)" = 3 ] || fail "generation $(generation) after the replayed reset, want 3"
  grep 'generation 3 started.*removed 2 readiness records, 2 tombstones' "$WORK/reset.err" >/dev/null \
    || fail "reset did not log what it did: $(cat "$WORK/reset.err")"
  restart || fail "restart with reset failed"
  lag=$(exited_after $vol side main) || fail "restarted with reset: side exited $lag ms before main"
  [ "$(exit_code $pod-side)" = 0 ] || fail "side exit $(exit_code $pod-side), want 0"
  ok "restarted after reset (generation 3): side waited for this run's main, exited $lag ms after it"

  local markers
  markers=$(host_podsignal $vol event watch --since 0 --timeout 100ms | grep -c '"kind":"generation"') || true
  [ "$markers" = 2 ] || fail "$markers generation events in the log, want 2"
  host_podsignal $vol status | grep '^GEN    3' >/dev/null || fail "status does not show generation 3"
  ok "the log holds both generation markers; status shows generation 3"
}
