#!/usr/bin/env bash
# The agent's live page in a real browser: headless Chromium loads it from a real agent over a
# directory with a scripted pod history, and tests/ui/page_test.py checks the rendered DOM
# (lanes, states, the update after `podsignal ready web`), that the page cannot write, and
# that it logged no error (a CSP violation included); then saves a screenshot.
#
#   bash tests/ui/run.sh                        # screenshot in target/ui-logs/
#   UI_SCREENSHOT=1 bash tests/ui/run.sh        # ... and in docs/img/agent-page.png (README)
#
# Needs chromium (installed with apt-get when run as root) and python3 with venv; installs
# the pinned websocket-client below into a virtualenv under target/. With CI=true a browser
# that cannot be had is a failure, elsewhere a skip.
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

WEBSOCKET=websocket-client==1.9.2
VENV=$ROOT/target/ui-venv
LOGS=$ROOT/target/ui-logs

say() { printf 'ui: %s\n' "$*" >&2; }
die() { printf 'ui: FAILED: %s\n' "$*" >&2; exit 1; }
skip() {
  [ "${CI:-}" != true ] || die "$*"
  say "SKIPPED: $*"
  exit 0
}

rm -rf "$LOGS" && mkdir -p "$LOGS"

have_chromium() { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; }
if ! have_chromium; then
  [ "$(id -u)" = 0 ] || skip "no chromium (apt-get install chromium, as root)"
  say "installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; } \
    >"$LOGS/apt.log" 2>&1 || { tail -n 20 "$LOGS/apt.log" >&2; skip "apt-get install chromium failed"; }
  have_chromium || skip "chromium is not on PATH after installing it"
fi

if ! "$VENV/bin/python" -c 'import websocket' 2>/dev/null; then
  say "installing $WEBSOCKET into $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "$WEBSOCKET"
fi

cargo build -q -p podsignal-agent
shot=
[ -z "${UI_SCREENSHOT:-}" ] || shot=$ROOT/docs/img/agent-page.png
"$VENV/bin/python" tests/ui/page_test.py "$ROOT/target/debug/podsignal" "$LOGS" $shot \
  || { say "logs: $LOGS"; exit 1; }
