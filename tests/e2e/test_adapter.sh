# adapter: on pod stop (SIGTERM to both at once) every line the app wrote reaches the adapter.
test_main() {
  local f=$1/pod.yaml pod=adapter logfile
  play "$f"
  logfile=$(volume_dir adapter-logs)/app.log
  until_ok 10 sh -c "[ \$(wc -l < '$logfile') -ge 50 ]" || fail "the app does not log"
  podman pod stop -t 20 $pod >/dev/null
  local written adapted json_lines
  written=$(wc -l <"$logfile")
  log_has $pod-app "app: wrote $written lines" || fail "app's own count differs from the file: $(podman logs $pod-app 2>&1 | tail -n 2)"
  json_lines=$(podman logs $pod-adapter 2>/dev/null | grep -c '^{"line":' || true)
  adapted=$(podman logs $pod-adapter 2>/dev/null | grep '^{"line":' | "$PY" -c '
import json,sys
seen=[json.loads(l)["line"] for l in sys.stdin]
assert seen == list(range(1, len(seen)+1)), "gaps or duplicates"
print(len(seen))') || fail "the adapter's output has gaps or duplicates"
  [ "$adapted" = "$written" ] || fail "app wrote $written lines, adapter emitted $adapted"
  podman logs $pod-adapter 2>/dev/null | tail -n 1 | grep >/dev/null '"msg":"shutdown step 50"' || fail "last shutdown line not adapted"
  [ "$(exit_code $pod-app)" = 0 ] && [ "$(exit_code $pod-adapter)" = 0 ] || fail "exit codes app=$(exit_code $pod-app) adapter=$(exit_code $pod-adapter), want 0 0"
  local lag
  lag=$(exited_after adapter-signals adapter app) || fail "the adapter exited before the app ($lag ms)"
  ok "pod stop: app wrote $written lines (50 of them during its shutdown), adapter emitted all $adapted as JSON, in order, no duplicates; both exit 0, adapter last"
}
