# stop-signal: containers whose lifecycle.stopSignal is SIGQUIT (KEP-4960), injected: `run`
# stops in order (tombstone `stopped`, termination message) on the kubelet's SIGQUIT, which it
# forwards, and still on SIGTERM.
#
# podman 4.3.1's kube play accepts lifecycle.stopSignal and ignores it (measured: the
# container's StopSignal stays 15 and `podman stop` sends SIGTERM), so the test delivers the
# signals itself: `podman kill --signal QUIT`, what a kubelet with the ContainerStopSignals
# feature sends, and `podman stop` (SIGTERM), what one without it sends. It also ignores
# terminationMessagePath (nothing is read back): the file is read from its volume instead.
test_main() {
  local dir=$1 plain=$1/plain.yaml pod=stop-signal injected=$WORK/stop-signal-injected.yaml
  "$BIN" inject --image "$IMAGE" "$plain" >"$injected" || fail "inject failed"
  [ "$(grep -c -- '--stop-on=QUIT,TERM,INT' "$injected")" = 2 ] || fail "inject did not give both containers --stop-on=QUIT,TERM,INT"
  grep -- '--termination-log=/out/why' "$injected" >/dev/null || fail "inject did not pass terminationMessagePath on"
  "$(dirname "$PY")/kubernetes-validate" --strict --quiet "$injected" || fail "injected manifest is not valid Kubernetes"
  ok "inject: stopSignal SIGQUIT -> --stop-on=QUIT,TERM,INT, terminationMessagePath -> --termination-log (valid Kubernetes)"

  play "$injected" restart=OnFailure
  until_ok 30 log_has $pod-quit "quit: serving" || fail "quit never started"
  until_ok 30 log_has $pod-term "term: serving" || fail "term never started"
  [ "$(podman inspect $pod-quit --format '{{.Config.StopSignal}}')" = 15 ] \
    || ok "note: this podman honours lifecycle.stopSignal ($(podman inspect $pod-quit --format '{{.Config.StopSignal}}'))"
  podman kill --signal QUIT $pod-quit >/dev/null
  podman stop -t 10 $pod-term >/dev/null
  until_ok 15 exited $pod-quit || fail "quit did not stop on SIGQUIT"
  until_ok 15 exited $pod-term || fail "term did not stop on SIGTERM"

  local shared out t
  shared=$(volume_dir podsignal)
  out=$(volume_dir stop-signal-out)
  [ "$(exit_code $pod-quit)" = 0 ] || fail "quit exit $(exit_code $pod-quit), want 0"
  log_has $pod-quit "quit: got SIGQUIT, graceful stop" || fail "quit's command did not get SIGQUIT"
  log_has $pod-quit "stopping: received SIGQUIT" || fail "run did not start its stop on SIGQUIT"
  t=$("$PY" -c 'import json,sys; t=json.load(open(sys.argv[1])); print(t["stopped"], t["reason"])' "$shared/exits/quit.json")
  [ "$t" = "True stopped by podsignal, received SIGQUIT: exited with code 0" ] || fail "quit's tombstone: $t"
  ok "SIGQUIT (the kubelet's stopSignal): run stopped in order, CMD got SIGQUIT, tombstone: $t"
  [ "$(cat "$out/why")" = "$(printf 'quit: drained\nstopped by podsignal, received SIGQUIT: exited with code 0')" ] \
    || fail "termination message: $(cat "$out/why")"
  ok "termination message: the app's own line first, then run's"

  [ "$(exit_code $pod-term)" = 0 ] || fail "term exit $(exit_code $pod-term), want 0"
  log_has $pod-term "term: got SIGTERM, fast stop" || fail "term's command did not get SIGTERM"
  t=$("$PY" -c 'import json,sys; t=json.load(open(sys.argv[1])); print(t["stopped"], t["reason"])' "$shared/exits/term.json")
  [ "$t" = "True stopped by podsignal, received SIGTERM: exited with code 0" ] || fail "term's tombstone: $t"
  ok "SIGTERM (a kubelet without the feature, podman): still a stop in order, forwarded as SIGTERM"
}
