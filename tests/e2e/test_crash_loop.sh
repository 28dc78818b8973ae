# crash-loop: readiness never lies while flaky is down; incarnations differ per restart; the
# shared directory does not grow with restarts (beyond the event log).
test_main() {
  local f=$1/pod.yaml pod=crash-loop dir incs=$WORK/incarnations
  play "$f"
  dir=$(volume_dir crash-loop-signals)
  : >"$incs"
  # Files outside events/, temporary files being renamed into place excluded. A running
  # flaky has its record and liveness file; a crashed one its record and tombstone. The
  # watcher's own record and liveness file (`run --name watcher` is ready once started) do
  # not change with flaky's restarts: left out.
  count_files() { find "$dir" -type f ! -path "$dir/events/*" ! -name '.*.tmp' ! -name 'watcher.*' | wc -l; }
  local most=0 n end=$(( $(now_ms) + 12000 )) downs=0
  while [ "$(now_ms)" -lt $end ]; do
    "$BIN" --dir "$dir" status --json 2>/dev/null | "$PY" -c '
import json,sys
for r in json.load(sys.stdin).get("readiness", []):
    if r["name"] == "flaky" and r.get("record"): print(r["record"]["writer"]["incarnation"])' >>"$incs" || true
    downs=$(logs $pod-watcher | grep -c "flaky down and unready" || true)
    n=$(count_files); [ "$n" -le "$most" ] || most=$n
    [ "$downs" -ge 5 ] && break
    sleep 0.1
  done
  logs $pod-watcher | tail -n 12
  [ "$downs" -ge 5 ] || fail "only $downs crash cycles seen in 12 s"
  ! log_has $pod-watcher "^watcher: LIE" || fail "readiness lied: $(logs $pod-watcher | grep "^watcher: LIE" | head -n 3)"
  ok "$downs crash cycles: readiness was never ready while flaky was down, nor unready while it served"
  local n_inc restarts
  n_inc=$(sort -u "$incs" | wc -l)
  restarts=$(podman inspect $pod-flaky --format '{{.RestartCount}}')
  [ "$n_inc" -ge 3 ] || fail "only $n_inc distinct incarnations in status after $restarts restarts"
  ok "podman restarted flaky $restarts times; status showed $n_inc distinct incarnations of its readiness record"
  "$BIN" --dir "$dir" status | grep -E '^flaky ' || true
  local files_late; files_late=$(count_files)
  # At most: the record, one liveness file, one tombstone. One leaked file per crash would
  # be 5 or more by now.
  [ "$most" -le 3 ] && [ "$files_late" -le 3 ] \
    || fail "the shared directory grew: up to $most files outside events/, $files_late at the end: $(find "$dir" -type f ! -path "$dir/events/*" | tr '\n' ' ')"
  ok "shared directory: at most $most files outside events/ across $downs crashes ($files_late at the end)"
  [ "$(find "$dir/events" -type f | wc -l)" -le 3 ] || fail "event segments pile up"
}
