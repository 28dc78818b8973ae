#!/usr/bin/env bash
# Wake latency of `run --wait-for tcp:...` and `--wait-for http://...`: how long after a
# real server starts listening (0.5-3.5 s after the wait started) the command starts. The
# command (`date`) stamps its own start, so podsignal's exit (closing an inotify instance
# costs the kernel ~10 ms) is not counted: the app has started by then.
# Goal (docs/conditions.md): p50 < 10 ms for tcp, < 100 ms for http.
#
#   bench/wait-latency.sh [ROUNDS]        (PODSIGNAL_BIN=path/to/podsignal to skip the build)
set -euo pipefail
rounds=${1:-20}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

# One round: start the waiter, start a server after a random delay, and print
# (waiter returned) - (server listening) in ms, both stamped by the same clock.
python3 - "$PODSIGNAL_BIN" "$rounds" <<'PY'
import random, socket, subprocess, sys, threading, time, statistics, http.server

bin, rounds = sys.argv[1], int(sys.argv[2])

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def tcp_server(port, t):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(); t.append(time.time()); return s.close

def http_server(port, t):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a): pass
    srv = http.server.HTTPServer(("127.0.0.1", port), H)
    t.append(time.time())
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.shutdown

def measure(kind):
    out = []
    for _ in range(rounds):
        port = free_port()
        cond = f"tcp:127.0.0.1:{port}" if kind == "tcp" else f"http://127.0.0.1:{port}/"
        w = subprocess.Popen([bin, "run", "--wait-for", cond, "--timeout", "30s", "--", "date", "+%s.%N"], stdout=subprocess.PIPE, text=True)
        delay = random.uniform(0.5, 3.5)
        time.sleep(delay)
        t = []
        stop = (tcp_server if kind == "tcp" else http_server)(port, t)
        done = float(w.communicate()[0].strip())
        stop()
        out.append((done - t[0]) * 1000)
    out.sort()
    p50 = statistics.median(out); p90 = out[int(len(out) * 0.9) - 1]
    print(f"{kind:5} rounds={rounds} p50={p50:.1f}ms p90={p90:.1f}ms max={out[-1]:.1f}ms")

measure("tcp")
measure("http")
PY
