# startup-ordering: init container, then proxy before app; proxy outlives app on SIGTERM.
test_main() {
  local ex=$1 f=$1/pod.yaml pod=startup-ordering
  play "$f" restart=OnFailure  # returns once the init containers (install, migrate) are done
  ok "init containers install + migrate completed before the app containers started"
  until_ok 20 log_has $pod-app "app: starting" || fail "app never started"
  # Wait for the app's verdict (either line), then check which one it printed.
  until_ok 10 log_has $pod-app "app: proxy" || fail "app never said whether the proxy answered"
  log_has $pod-app "proxy answered on the first try" || fail "app started before the proxy listened"
  ok "app started only after proxy (2 s warm-up) and db-migrated were ready"
  until_ok 10 host_podsignal startup-ordering-signals wait app --timeout 100ms || fail "app never became ready"
  probe "$f" app readinessProbe >/dev/null || fail "app's readinessProbe fails while it is ready"
  probe "$f" proxy readinessProbe >/dev/null || fail "proxy's readinessProbe fails while it is ready"
  ok "readiness probes (podsignal wait, run by hand) pass"
  # Shutdown as a kubelet does it: SIGTERM to every container at once.
  podman pod stop -t 20 $pod >/dev/null
  local lag
  lag=$(exited_after startup-ordering-signals proxy app) || fail "proxy stopped before the app ($lag ms)"
  [ "$(exit_code $pod-app)" = 0 ] || fail "app exit $(exit_code $pod-app), want 0 (on-stop-zero)"
  [ "$(exit_code $pod-proxy)" = 0 ] || fail "proxy exit $(exit_code $pod-proxy), want 0"
  ok "pod stop: proxy exited $lag ms after the app, both 0"
}
