#!/usr/bin/env bash
# The HTTP API against its own OpenAPI document: validate the document, then let schemathesis
# generate requests from it (valid and invalid) against a real agent and check every answer
# (status codes documented, bodies matching their schemas, no 5xx, invalid input refused).
#
#   bash tests/api/run.sh            # 50 examples per operation (CI)
#   bash tests/api/run.sh -n 1000    # a longer run: extra arguments go to `st run`
#
# Needs python3 with pip; installs the pinned tools below into a virtualenv under target/.
# Streams and holds (a response that stays open until the client leaves) are left out:
# schemathesis reads a whole response. tests in agent/tests/ cover them with real clients.
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

SCHEMATHESIS=schemathesis==4.32.5
VALIDATOR=openapi-spec-validator==0.9.0
VENV=$ROOT/target/api-venv

say() { printf 'api: %s\n' "$*" >&2; }
die() { printf 'api: FAILED: %s\n' "$*" >&2; exit 1; }

if ! "$VENV/bin/st" --version >/dev/null 2>&1 || ! [ -x "$VENV/bin/openapi-spec-validator" ]; then
  say "installing $SCHEMATHESIS and $VALIDATOR into $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install -q "$SCHEMATHESIS" "$VALIDATOR"
fi

cargo build -q -p podsignal-agent
BIN=$ROOT/target/debug/podsignal

WORK=$(mktemp -d /tmp/podsignal-api-XXXXXX)
AGENT=
cleanup() {
  [ -z "$AGENT" ] || kill "$AGENT" 2>/dev/null || true
  [ -z "$AGENT" ] || wait "$AGENT" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A port the kernel hands out, then the agent binds it (a race with another process is
# possible but harmless: the agent then fails to start and the check below says so).
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
# --max-wait 1s: a generated ?wait=10y is cut to a second, so long-polls cannot stall the run.
PODSIGNAL_DIR=$WORK/shared PODSIGNAL_LOG=warn "$BIN" agent --listen "127.0.0.1:$PORT" --max-wait 1s \
  2>"$WORK/agent.log" &
AGENT=$!
for _ in $(seq 100); do
  curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 "$AGENT" 2>/dev/null || { cat "$WORK/agent.log" >&2; die "the agent did not start"; }
  sleep 0.1
done
curl -fsS "$URL/openapi.json" -o "$WORK/openapi.json" || die "no /openapi.json"

say "openapi-spec-validator"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json"

say "schemathesis"
# The cache of failures (.schemathesis/) goes to the scratch directory, not the repository.
cd "$WORK"
status=0
# /quitquitquit stops the agent by contract: it is checked last, on its own, below.
"$VENV/bin/st" --config-file "$ROOT/tests/api/schemathesis.toml" run "$URL/openapi.json" \
  --checks all --exclude-path-regex 'stream|/hold|/quitquitquit' -n 50 --seed 1 "$@" || status=$?
if ! kill -0 "$AGENT" 2>/dev/null; then
  cat "$WORK/agent.log" >&2
  die "the agent died during the run"
fi
if [ "$status" -ne 0 ]; then
  tail -n 50 "$WORK/agent.log" >&2
  die "schemathesis found failures (above)"
fi

say "POST /quitquitquit answers, then the agent exits 0"
answer=$(curl -fsS -X POST "$URL/quitquitquit") || die "POST /quitquitquit failed"
case $answer in *'"phase":"draining"'* | *'"phase":"stopping"'*) ;; *) die "POST /quitquitquit answered: $answer" ;; esac
code=0
for _ in $(seq 100); do kill -0 "$AGENT" 2>/dev/null || break; sleep 0.1; done
kill -0 "$AGENT" 2>/dev/null && die "the agent still runs 10 s after POST /quitquitquit"
wait "$AGENT" || code=$?
AGENT=
[ "$code" -eq 0 ] || die "the agent exited $code after POST /quitquitquit"
say "passed"
