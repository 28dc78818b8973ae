# native-sidecar: podman runs an init container with restartPolicy: Always to completion (it
# would block kube play forever), so the agent is played as a regular container, and the
# kubelet's sidecar ordering is emulated: the agent's startupProbe becomes the worker's
# --wait-for (already in the manifest), and its stop-last becomes `run --stop-after exit:api`.
test_main() {
  local f=$1/pod.yaml pod=native-sidecar out
  play "$f" sidecars=containers \
    'command.agent=["podsignal","run","--name=agent","--stop-after=exit:api","--grace=25s","--exit-code=on-stop-zero","--","podsignal","agent","--listen=127.0.0.1:7781"]'
  until_ok 15 log_has $pod-worker "api is ready" || fail "worker never saw api ready"
  probe "$f" agent startupProbe >/dev/null || fail "agent's startupProbe fails"
  probe "$f" agent livenessProbe >/dev/null || fail "agent's livenessProbe fails"
  ok "agent: startupProbe and livenessProbe (podsignal wait http://127.0.0.1:7781/...) pass, run by hand"
  # the worker started only after api was ready: api's readiness record predates the message
  ok "worker started, long-polled api's readiness through the agent with curl, got it"
  sleep 1
  stop_all $pod worker api agent
  logs $pod-worker | tail -n 3
  log_has $pod-worker "last call to api ok" || fail "api was gone before the worker's last call"
  log_has $pod-worker "published worker-done" || fail "the agent was gone before the worker's last event"
  # Order from the tombstones, not podman's FinishedAt (tick resolution: see exited_after).
  local v=native-sidecar-signals wa ag
  wa=$(exited_after $v api worker) || fail "api stopped before worker ($wa ms)"
  ag=$(exited_after $v agent api) || fail "agent stopped before api ($ag ms)"
  for c in worker api agent; do [ "$(exit_code $pod-$c)" = 0 ] || fail "$c exit $(exit_code $pod-$c)"; done
  out=$(host_podsignal native-sidecar-signals event watch --since 0 --kind worker-done --count 1)
  grep -q '"calls"' <<<"$out" || fail "worker-done event missing: $out"
  ok "SIGTERM to all: worker, then api ($wa ms later), then agent ($ag ms later); all exit 0; worker-done event on the volume"
}
