# ambassador: app starts after the ambassador; the ambassador outlives the app on SIGTERM.
test_main() {
  local ex=$1 pod=ambassador ip
  play "$ex/backend.yaml"
  until_ok 10 running ambassador-backend-web || fail "backend not running"
  ip=$(podman inspect ambassador-backend-web --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}')
  [ -n "$ip" ] || fail "backend has no IP"
  # No cluster DNS under kube play: give the ambassador the backend pod's IP.
  play "$ex/pod.yaml" env.ambassador.BACKEND_HOST="$ip"
  until_ok 15 host_podsignal ambassador-signals wait ambassador --timeout 100ms || fail "ambassador never ready"
  sleep 1
  stop_all $pod app ambassador
  logs $pod-app | tail -n 3
  log_has $pod-app "requests served" || fail "the app did not run"
  logs $pod-app | grep -E 'app: [1-9][0-9]* requests served' >/dev/null || fail "no request got through the ambassador"
  log_has $pod-app "final flush through the ambassador ok" || fail "the ambassador was gone before the app's final request"
  local lag
  lag=$(exited_after ambassador-signals ambassador app) || fail "ambassador exited before the app ($lag ms)"
  [ "$(exit_code $pod-app)" = 0 ] && [ "$(exit_code $pod-ambassador)" = 0 ] || fail "exit codes app=$(exit_code $pod-app) ambassador=$(exit_code $pod-ambassador)"
  ok "$(logs $pod-app | grep -o '[0-9]* requests served') through the ambassador to a pod outside; final request 1 s into the app's shutdown got through"
  ok "pod stop: ambassador exited $lag ms after the app, both 0"
}
