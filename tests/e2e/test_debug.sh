# debug: a late container (kubectl debug) sees the pod's state, history and lock holders.
test_main() {
  local f=$1/pod.yaml pod=debug out
  play "$f"
  until_ok 20 host_podsignal debug-signals wait web --timeout 100ms || fail "web never became ready"
  until_ok 10 sh -c "'$BIN' --dir '$(volume_dir debug-signals)' status | grep 'db-maintenance.*held' >/dev/null" || fail "lock never held"
  # What `kubectl debug -it debug --image=$IMAGE --target=web` gives: a container joining the
  # pod's namespaces, here with the shared volume mounted, running the shell-less image.
  LATE+=(debug-late-status)
  out=$(podman run --name debug-late-status --rm --pod $pod --read-only --cap-drop ALL \
    --security-opt no-new-privileges -v debug-signals:/run/podsignal "$IMAGE" status) \
    || fail "podsignal status in the late container failed"
  echo "$out"
  grep -Eq '^PHASE +running' <<<"$out" || fail "status does not show phase running"
  grep -Eq '^web +ready +alive' <<<"$out" || fail "status does not show web ready and held"
  grep -Eq '^db-maintenance +held +[0-9]+ +maintenance' <<<"$out" || fail "status does not show who holds db-maintenance"
  ok "late container: podsignal status shows phase running, web ready (held, alive), db-maintenance held by maintenance"
  out=$(podman run --rm --pod $pod -v debug-signals:/run/podsignal "$IMAGE" event watch --since 0 --kind maintenance-started --kind phase --count 2) \
    || fail "podsignal event watch in the late container failed"
  echo "$out"
  grep -q '"kind":"maintenance-started"' <<<"$out" || fail "event watch misses maintenance-started"
  grep -q '"kind":"phase"' <<<"$out" || fail "event watch misses the phase event"
  ok "late container: podsignal event watch --since 0 replays the history ($(wc -l <<<"$out") events)"
  out=$(podman run --rm --pod $pod --read-only --cap-drop ALL -v debug-signals:/run/podsignal:ro "$IMAGE" timeline) \
    || fail "podsignal timeline in the late container failed"
  echo "$out"
  grep -Eq '^web +[-#]' <<<"$out" || fail "the timeline has no lane for web"
  grep -Eq '^lock db-maint' <<<"$out" || fail "the timeline does not show the db-maintenance lock held"
  ok "late container: podsignal timeline (volume read-only) draws web's lane and the db-maintenance lock held"
  # A late container can also see every container's processes (shareProcessNamespace).
  out=$(podman run --rm --pod $pod --pid container:$pod-web --user 65532 --cap-drop ALL "$DEMO" ps -o pid,user,args 2>&1) \
    || fail "ps in the late container failed: $out"
  grep -q 'podsignal run --name=web' <<<"$out" && grep -q 'podsignal lock db-maintenance' <<<"$out" \
    || fail "the late container does not see the pod's processes: $out"
  ok "late container with --pid: sees podsignal run --name=web and podsignal lock db-maintenance"
}
