# crash-loop: readiness never lies while flaky is down; incarnations differ per restart; the
# shared directory does not grow with restarts (beyond the event log).
test_main() {
  local f=$1/pod.yaml pod=crash-loop dir incs=$WORK/incarnations
  play "$f"
  dir=$(volume_dir crash-loop-signals)
  : >"$incs"
  count_files() { find "$dir" -type f ! -path "$dir/events/*" | wc -l; }
  local files_early="" end=$(( $(now_ms) + 12000 )) downs=0
  while [ "$(now_ms)" -lt $end ]; do
    "$BIN" --dir "$dir" status --json 2>/dev/null | "$PY" -c '
import json,sys
for r in json.load(sys.stdin).get("readiness", []):
    if r["name"] == "flaky" and r.get("record"): print(r["record"]["writer"]["incarnation"])' >>"$incs" || true
    downs=$(logs $pod-watcher | grep -c "flaky down and unready" || true)
    [ -n "$files_early" ] || { [ "$downs" -ge 1 ] && files_early=$(count_files); }
    [ "$downs" -ge 5 ] && break
    sleep 0.1
  done
  logs $pod-watcher | tail -n 12
  [ "$downs" -ge 5 ] || fail "only $downs crash cycles seen in 12 s"
  ! log_has $pod-watcher LIE || fail "readiness lied: $(logs $pod-watcher | grep LIE | head -n 3)"
  ok "$downs crash cycles: readiness was never ready while flaky was down, nor unready while it served"
  local n_inc restarts
  n_inc=$(sort -u "$incs" | wc -l)
  restarts=$(podman inspect $pod-flaky --format '{{.RestartCount}}')
  [ "$n_inc" -ge 3 ] || fail "only $n_inc distinct incarnations in status after $restarts restarts"
  ok "podman restarted flaky $restarts times; status showed $n_inc distinct incarnations of its readiness record"
  "$BIN" --dir "$dir" status | grep -E '^flaky ' || true
  local files_late; files_late=$(count_files)
  [ "$files_late" -le "$files_early" ] || fail "the shared directory grew from $files_early to $files_late files (outside events/)"
  ok "shared directory: $files_early files (outside events/) after the first crash, $files_late after $downs"
  [ "$(find "$dir/events" -type f | wc -l)" -le 3 ] || fail "event segments pile up"
}
