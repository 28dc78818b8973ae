#!/usr/bin/env bash
# Probe timing and cost, with real processes (docs/conditions.md, "Probe timing"):
#
#  1. latency from a loopback server turning ready to `podsignal wait COND` returning, for
#     `tcp:PORT` (the server starts listening) and `http://127.0.0.1:PORT/ready` (the server
#     has answered 503 since the wait began, then answers 200), against a 1 s poll loop,
#     `until curl -fs URL; do sleep 1; done` (linkerd-await's default). The server turns
#     ready 0.2-1.2 s after the wait started. p50 and p99 (with 30 rounds, p99 is the max).
#  2. the CPU time `podsignal wait` spends over 3 s (it times out: the condition never
#     holds) for `tcp:PORT` with 10,000 established loopback connections (20,000 sockets)
#     in the network namespace, and for `http://127.0.0.1:PORT/missing` answered 404 (the
#     cost of probing a loopback target every --local-interval), with the server's too.
#
#   bench/probes.sh [ROUNDS]
#     PODSIGNAL_BIN=path     the binary to measure (default: build --release here)
#     PODSIGNAL_BEFORE=path  also measure this one (e.g. a release build of an older commit)
set -euo pipefail
rounds=${1:-30}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

python3 - "$rounds" "$PODSIGNAL_BIN" ${PODSIGNAL_BEFORE:+"$PODSIGNAL_BEFORE"} <<'PY'
import http.server, os, random, socket, subprocess, sys, tempfile, threading, time

rounds, bins = int(sys.argv[1]), [("after", sys.argv[2])]
if len(sys.argv) > 3:
    bins.insert(0, ("before", sys.argv[3]))

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def pct(xs, q):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]

def report(label, ms):
    print(f"  {label:34} p50 {pct(ms, .5):7.1f} ms   p99 {pct(ms, .99):7.1f} ms   (n={len(ms)})", flush=True)

class Readiness(http.server.BaseHTTPRequestHandler):
    """/ready: 503 until the server's `ready` is set, then 200."""
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        code = 200 if self.server.ready else 503
        self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass

def turn_ready_tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(128)
    return time.time(), s.close

def http_server(port):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Readiness)
    srv.ready = False; srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv

def latency(argv_for, kind):
    """Per round: start the waiter, turn the server ready after 0.2-1.2 s, and time from
    then to the waiter's exit."""
    out = []
    for _ in range(rounds):
        port = free_port()
        srv = http_server(port) if kind == "http" else None
        w = subprocess.Popen(argv_for(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0.2, 1.2))
        if srv:
            ready_at, stop = time.time(), srv.shutdown
            srv.ready = True
        else:
            ready_at, stop = turn_ready_tcp(port)
        w.wait(); done = time.time()
        assert w.returncode == 0, (argv_for(port), w.returncode)
        stop()
        if srv: srv.server_close()
        out.append((done - ready_at) * 1000)
    return out

print(f"Latency, server turned ready -> waiter returned ({rounds} rounds each):")
for name, b in bins:
    report(f"{name}: wait tcp:PORT", latency(lambda p: [b, "wait", f"tcp:{p}", "--timeout", "30s"], "tcp"))
for name, b in bins:
    report(f"{name}: wait http 503->200", latency(lambda p: [b, "wait", f"http://127.0.0.1:{p}/ready", "--timeout", "30s"], "http"))
report("1 s poll: until curl -fs", latency(lambda p: ["sh", "-c", f"until curl -fs -o /dev/null http://127.0.0.1:{p}/ready; do sleep 1; done"], "http"))

def cpu_of(argv):
    """CPU seconds (user+system) of a process run to its end."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, ru = os.wait4(p.pid, 0)
    return ru.ru_utime + ru.ru_stime

def proc_cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

# 10,000 connections take 20,000 descriptors: the accepting and the connecting ends live in
# two processes, each under a 20,000 limit.
ACCEPTOR = """
import socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4096)
print(l.getsockname()[1], flush=True)
conns = [l.accept()[0] for _ in range(int(sys.argv[1]))]
print("ready", flush=True); sys.stdin.read()
"""
CONNECTOR = """
import socket, sys
conns = [socket.create_connection(("127.0.0.1", int(sys.argv[2]))) for _ in range(int(sys.argv[1]))]
print("ready", flush=True); sys.stdin.read()
"""
n = 10_000
acc = subprocess.Popen([sys.executable, "-c", ACCEPTOR, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
port = acc.stdout.readline().strip()
con = subprocess.Popen([sys.executable, "-c", CONNECTOR, str(n), port], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
assert con.stdout.readline().strip() == "ready" and acc.stdout.readline().strip() == "ready"
established = sum(1 for t in ("/proc/net/tcp", "/proc/net/tcp6") for l in open(t) if l.split()[3:4] == ["01"])
print(f"\nCPU over 3 s of `wait tcp:PORT` (never listening), {established} established TCP sockets present:")
idle = free_port()
for name, b in bins:
    cpu = cpu_of([b, "wait", f"tcp:{idle}", "--timeout", "3s"])
    print(f"  {name:8} {cpu:6.3f} s CPU = {cpu / 3 * 100:5.1f} % of a core", flush=True)
for p in (acc, con):
    p.stdin.close(); p.wait()

print("\nCPU over 3 s of `wait http://127.0.0.1:PORT/missing` answered 404 (python http.server):")
with tempfile.TemporaryDirectory() as empty:
    for name, b in bins:
        port = free_port()
        srv = subprocess.Popen([sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", empty, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while subprocess.call(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/"]) != 0:
            time.sleep(0.05)
        before = proc_cpu(srv.pid)
        cpu = cpu_of([b, "wait", f"http://127.0.0.1:{port}/missing", "--timeout", "3s"])
        server = proc_cpu(srv.pid) - before
        srv.terminate(); srv.wait()
        print(f"  {name:8} podsignal {cpu:6.3f} s CPU = {cpu / 3 * 100:5.1f} % of a core; the server {server:5.2f} s = {server / 3 * 100:5.1f} %", flush=True)
PY
