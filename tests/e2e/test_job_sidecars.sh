# job-sidecars: the pod's result is main's exit code; sidecars exit 0 right after main.
test_main() {
  local f=$1/pod.yaml job want
  for job in job-sidecars-ok:0 job-sidecars-fail:3; do
    want=${job#*:} job=${job%:*}
    # kube play has no Job: play the Job's pod template as a Pod (restartPolicy Never, as in
    # the template).
    play "$f" only=$job
    local codes
    codes=$(timeout 60 podman wait $job-main $job-proxy $job-log-shipper | tr '\n' ' ') \
      || fail "$job: containers still running after 60 s (a sidecar kept the Job alive)"
    [ "$(exit_code $job-main)" = "$want" ] || fail "$job: main exit $(exit_code $job-main), want $want"
    [ "$(exit_code $job-proxy)" = 0 ] || fail "$job: proxy exit $(exit_code $job-proxy), want 0"
    [ "$(exit_code $job-log-shipper)" = 0 ] || fail "$job: log-shipper exit $(exit_code $job-log-shipper), want 0"
    log_has $job-log-shipper "flushed, bye" || fail "$job: log-shipper did not get a graceful stop"
    local lag_p lag_s
    lag_p=$(exited_after $job-signals proxy main) || fail "$job: proxy exited before main ($lag_p ms)"
    lag_s=$(exited_after $job-signals log-shipper main) || fail "$job: log-shipper exited before main ($lag_s ms)"
    ok "$job: exit codes main/proxy/log-shipper = $codes(want $want 0 0); sidecars stopped ${lag_p}/${lag_s} ms after main"
  done
}
