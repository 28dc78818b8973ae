# inject: a plain app + proxy Pod (no podsignal) has no start or stop order; the same Pod
# after `podsignal inject --sidecar proxy` starts the app after the proxy listens and stops
# the proxy after the app.
test_main() {
  local dir=$1 plain=$1/plain.yaml pod=inject-demo injected=$WORK/inject-injected.yaml
  "$BIN" inject --sidecar proxy --image "$IMAGE" "$plain" >"$injected" || fail "inject failed"
  "$(dirname "$PY")/kubernetes-validate" --strict --quiet "$injected" || fail "injected manifest is not valid Kubernetes"
  ok "inject --sidecar proxy: valid Kubernetes (kubernetes-validate --strict)"

  play "$plain"
  until_ok 20 log_has $pod-app "app: proxy" || fail "plain app never said whether the proxy answered"
  log_has $pod-app "proxy NOT reachable at start" || fail "plain pod: the app found the proxy at once (no race to show)"
  ok "plain pod: the app starts before the proxy listens"
  podman kube down "${PODS[0]}" >/dev/null 2>&1

  play "$injected" restart=OnFailure
  until_ok 30 log_has $pod-app "app: proxy" || fail "injected app never said whether the proxy answered"
  log_has $pod-app "proxy answered on the first try" || fail "injected pod: the app started before the proxy listened"
  ok "injected pod: the app starts only once the proxy listens"
  stop_all $pod app proxy
  log_has $pod-app "proxy reachable while draining" || fail "injected pod: the proxy stopped before the app drained"
  local lag
  lag=$(exited_after podsignal proxy app) || fail "proxy exited before the app ($lag ms)"
  [ "$(exit_code $pod-app)" = 0 ] || fail "app exit $(exit_code $pod-app), want 0"
  [ "$(exit_code $pod-proxy)" = 0 ] || fail "proxy exit $(exit_code $pod-proxy), want 0 (on-stop-zero)"
  ok "injected pod: on SIGTERM to both, the proxy served the app's drain and exited $lag ms after it"
}
