"""The agent's live page in a real browser: headless Chromium, driven over the Chrome DevTools
Protocol, loads the page from a real agent over a directory with a scripted pod history
(real `podsignal` commands), and the checks read the rendered DOM.

    page_test.py BIN LOGDIR [SCREENSHOT]

Run by tests/ui/run.sh, which installs Chromium and websocket-client and builds BIN.
"""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # websocket-client

DEADLINE = 20.0  # seconds for anything the page must show; polled, never slept on


def log(msg):
    print(f"ui: {msg}", file=sys.stderr, flush=True)


def fail(msg):
    raise SystemExit(f"ui: FAILED: {msg}")


def eventually(what, probe, limit=DEADLINE):
    """Polls probe() until it returns something true; fails naming `what` and the last value."""
    end = time.monotonic() + limit
    last = None
    while time.monotonic() < end:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    fail(f"{what}: not within {limit:.0f}s (last: {last!r})")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pod:
    """A shared directory, an agent over it, and the background `podsignal` processes of the
    scripted history; every process is ended by pid on close."""

    def __init__(self, bin_path, work, logdir):
        self.bin = bin_path
        self.env = dict(os.environ, PODSIGNAL_DIR=os.path.join(work, "shared"), PODSIGNAL_LOG="warn")
        self.env.pop("PODSIGNAL_AGENT", None)
        self.logdir = logdir
        self.procs = []
        token_file = os.path.join(work, "token")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.background("agent", "agent", "--listen", f"127.0.0.1:{self.port}",
                        "--token-file", token_file, "--generate-token")
        eventually("the agent listens", self.healthy, 10)
        with open(token_file) as f:
            self.token = f.read().strip()

    def healthy(self):
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def cli(self, *args, name=None):
        """`podsignal ARGS` on the directory, written as container `name` (PODSIGNAL_NAME)."""
        env = dict(self.env, PODSIGNAL_NAME=name) if name else self.env
        r = subprocess.run([self.bin, *args], env=env, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            fail(f"podsignal {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def background(self, name, *args, env=None):
        err = open(os.path.join(self.logdir, f"{name}.log"), "w")
        p = subprocess.Popen([self.bin, *args], env=dict(self.env, **(env or {})),
                             stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        self.procs.append(p)
        return p

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Browser:
    """Headless Chromium with one page, spoken to over the DevTools Protocol."""

    def __init__(self, work, logdir):
        chromium = next((c for c in ("chromium", "chromium-browser") if self.which(c)), None)
        if chromium is None:
            fail("no chromium")
        self.stderr = open(os.path.join(logdir, "chromium.log"), "w+")
        self.proc = subprocess.Popen(
            [chromium, "--headless=new",
             # Chromium's sandbox needs user namespaces or a setuid helper, and refuses to
             # start as root without them: CI runs as root in a container. The page under test
             # is this agent's own, over loopback, not the open web.
             "--no-sandbox",
             "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={os.path.join(work, 'profile')}",
             "--window-size=1200,1000", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr)
        endpoint = eventually("chromium's DevTools endpoint", self.devtools_port, 30)
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{endpoint}/json/list"))
        page = next(p for p in pages if p["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    @staticmethod
    def which(cmd):
        return any(os.access(os.path.join(d, cmd), os.X_OK) for d in os.environ["PATH"].split(":"))

    def devtools_port(self):
        if self.proc.poll() is not None:
            self.stderr.seek(0)
            fail(f"chromium exited {self.proc.returncode}: {self.stderr.read()[-2000:]}")
        self.stderr.seek(0)
        m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", self.stderr.read())
        return m and int(m.group(1))

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    fail(f"{method}: {msg['error']}")
                return msg["result"]
            self.events.append(msg)

    def eval(self, expr):
        """The value of a JavaScript expression in the page (promises awaited)."""
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            fail(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def problems(self):
        """What the page logged that is wrong: exceptions, CSP violations, console errors.
        (Network errors are left out: the first load answers 401 before the token is given.)"""
        out = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"].get("text"))
            elif method == "Log.entryAdded" and p["entry"]["level"] == "error" \
                    and p["entry"]["source"] != "network":
                out.append(p["entry"]["text"])
            elif method == "Runtime.consoleAPICalled" and p["type"] == "error":
                out.append(str(p["args"]))
        return out

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def rows(browser, table):
    return browser.eval(
        f"Object.fromEntries([...document.querySelectorAll('#{table} tr[data-name]')]"
        ".map(r => [r.dataset.name, r.dataset.state]))")


def timeline_lanes(browser):
    """The lane labels of the timeline picture (the agent's SVG, in the page's DOM)."""
    return browser.eval(
        "[...document.querySelectorAll('#timeline svg text[x=\"8\"]')].map(t => t.textContent)") or []


def event_kinds(browser):
    return browser.eval("[...document.querySelectorAll('#events li')].map(li => li.dataset.kind)")


def main():
    bin_path, logdir = sys.argv[1], sys.argv[2]
    screenshot = sys.argv[3] if len(sys.argv) > 3 else None
    os.makedirs(logdir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="podsignal-ui-") as work:
        pod = Pod(bin_path, work, logdir)
        browser = None
        try:
            log("a scripted pod history, with real podsignal commands")
            pod.cli("ready", "db-migrated", "--reason", "schema v42", name="migrate")
            pod.cli("unready", "cache", "--reason", "warming up", name="cache")
            pod.background("app", "run", "--name", "app", "--", "sleep", "600")
            pod.background("lock", "lock", "migrations", "--", "sleep", "600", env={"PODSIGNAL_NAME": "migrate"})
            pod.background("leader", "leader", "scheduler", "--", "sleep", "600", env={"PODSIGNAL_NAME": "worker"})
            pod.cli("phase", "set", "running", name="app")
            pod.cli("event", "publish", "deploy", "--data", '{"version":"1.4.2"}', name="app")
            eventually("the history is in place", lambda: all(
                s in pod.cli("status") for s in ("app", "migrations", "scheduler")))

            browser = Browser(work, logdir)
            browser.call("Page.navigate", url=pod.url + "/")
            log("the page asks for the token before it shows anything")
            eventually("the token form", lambda: browser.eval(
                "!!document.getElementById('token') && !document.getElementById('token').hidden"))
            if not browser.eval("document.getElementById('data').hidden"):
                fail("data shown without a token")
            browser.eval("document.getElementById('token-value').focus()")
            browser.call("Input.insertText", text=pod.token)
            browser.eval("document.querySelector('#token button').click()")

            log("lanes and states")
            want = {"db-migrated": "ready", "cache": "unready", "app": "ready"}
            eventually("readiness rows " + str(want),
                       lambda: (r := rows(browser, "readiness")) and all(r.get(k) == v for k, v in want.items()) and r)
            eventually("migrations held", lambda: rows(browser, "locks").get("migrations") == "held")
            eventually("scheduler led", lambda: rows(browser, "leaders").get("scheduler") == "led")
            eventually("phase running", lambda: browser.eval(
                "document.getElementById('phase').dataset.phase") == "running")
            eventually("the events", lambda: {"phase", "deploy"} <= set(event_kinds(browser) or []))
            lanes = {"app", "lock migrations", "leader scheduler"}
            eventually(f"the timeline's lanes {lanes}", lambda: lanes <= set(timeline_lanes(browser)))
            if browser.eval("document.getElementById('timeline-box').hidden"):
                fail("the timeline panel is hidden")
            eventually("the page says it is live", lambda: browser.eval(
                "document.getElementById('link').dataset.state") == "live")

            log("it follows the directory: `podsignal ready web` shows up, with no reload")
            pod.cli("ready", "web", "--reason", "listening on 8080", name="web")
            eventually("web ready on the page", lambda: rows(browser, "readiness").get("web") == "ready")
            eventually("a timeline lane for web", lambda: "web" in timeline_lanes(browser))
            pod.cli("event", "publish", "cache-warmed", "--data", '{"keys":1200}', name="cache")
            eventually("the new event on the page", lambda: "cache-warmed" in (event_kinds(browser) or []))
            pod.cli("unready", "cache", "--reason", "evicted", name="cache")
            eventually("cache still unready, with its new reason", lambda: browser.eval(
                "document.querySelector('#readiness tr[data-name=cache]').textContent.includes('evicted')"))

            log("the page cannot change anything: a browser's PUT carries Origin, refused")
            status = browser.eval(
                "fetch('/v1/phase', {method: 'PUT', headers: {'Content-Type': 'application/json',"
                f" Authorization: 'Bearer {pod.token}'}}, body: '{{\"phase\":\"draining\"}}'}})"
                ".then(r => r.status)")
            if status != 403:
                fail(f"a PUT from the page answered {status}, not 403")
            if "running" not in pod.cli("phase", "get"):
                fail("the phase moved")

            height = browser.eval("Math.ceil(document.body.getBoundingClientRect().bottom)")
            clip = {"x": 0, "y": 0, "width": 1200, "height": height + 16, "scale": 1}
            shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png", clip=clip,
                                                  captureBeyondViewport=True)["data"])
            for path in filter(None, [os.path.join(logdir, "agent-page.png"), screenshot]):
                with open(path, "wb") as f:
                    f.write(shot)
                log(f"screenshot: {path}")

            log("what the directory says is shown as text, never run as markup")
            markup = "<img src=x onerror=\"document.title='owned'\">"
            pod.cli("unready", "cache", "--reason", markup, name="cache")
            pod.cli("event", "publish", "note", "--data", json.dumps({"html": markup}), name="cache")
            eventually("the markup, as text", lambda: browser.eval(
                "document.querySelector('#readiness tr[data-name=cache]').textContent.includes('<img')"
                " && document.querySelector('#events li').textContent.includes('<img')"))
            if browser.eval("document.querySelectorAll('main img').length") != 0:
                fail("markup from the directory became elements")
            if browser.eval("document.title") != "podsignal":
                fail("markup from the directory ran")

            problems = browser.problems()
            if problems:
                fail(f"the page logged errors: {problems}")
            log("passed")
        finally:
            if browser:
                browser.close()
            pod.close()


if __name__ == "__main__":
    main()
