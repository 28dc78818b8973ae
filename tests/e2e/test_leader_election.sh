# leader-election: one leader at a time, takeover after a kill, increasing fencing tokens.
test_main() {
  local f=$1/pod.yaml pod=leader-election log
  play "$f"
  log=$(volume_dir leader-election-work)/schedule.log
  until_ok 20 test -s "$log" || fail "nobody leads after 20 s"
  local round leader token kill_ms next next_token
  for round in 1 2; do
    read -r token leader _ < <(tail -n 1 "$log")
    host_podsignal leader-election-signals leader show scheduler | grep "$token" >/dev/null \
      || fail "leader show does not name token $token: $(host_podsignal leader-election-signals leader show scheduler 2>&1)"
    kill_ms=$(now_ms)
    podman kill -s KILL $pod-$leader >/dev/null
    # the next leader is whoever writes with a higher token
    until_ok 10 sh -c "tail -n 1 '$log' | awk '\$1 > $token {ok=1} END {exit !ok}'" \
      || fail "round $round: no new leader 10 s after killing $leader"
    local seen_ms; seen_ms=$(now_ms)
    read -r next_token next _ < <(awk -v t="$token" '$1 > t {print; exit}' "$log")
    [ "$next" != "$leader" ] || [ "$round" -gt 1 ] || fail "the killed leader $leader leads again at once"
    ok "round $round: killed $leader (token $token); $next took over with token $next_token; its first write seen $(( seen_ms - kill_ms )) ms after the kill (polled every 50 ms; the loop writes every 100 ms)"
  done
  # One leader at a time: in file order tokens never decrease and each token has one writer.
  awk '$1 < last {print "token went back: " $0; bad=1}
       { if (($1 in who) && who[$1] != $2) {print "token " $1 " used by " who[$1] " and " $2; bad=1}; who[$1]=$2; last=$1 }
       END {exit bad}' "$log" || fail "two leaders at once (above)"
  ok "$(wc -l <"$log") scheduled writes, tokens $(awk '{print $1}' "$log" | uniq | tr '\n' ' ')increasing, one writer per token"
  for c in a b c; do logs $pod-worker-$c; done | grep >/dev/null "leading scheduler with fencing token" || fail "no leader announcement in the logs"
}
