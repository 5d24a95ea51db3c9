#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against /openapi.json of a real running FiLot, once per role
# with a valid token: every check (`--checks all`: no 5xx, status codes, content types, bodies
# and headers as the spec says, schema-valid requests accepted, 405s with `Allow`, …) over
# every phase (examples, coverage, fuzzing, and stateful sequences that follow the spec's
# links from a created document or verification to the operations taking its id). Fails on
# any finding.
#
#   scripts/schemathesis.sh              # 60 s of generated requests per role
#   ST_SECONDS=20 scripts/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/filot-target}"
SECONDS_PER_ROLE="${ST_SECONDS:-60}"
ST_VERSION="4.32.5"

if ! command -v st >/dev/null 2>&1 || ! st --version 2>/dev/null | grep -q "$ST_VERSION"; then
  echo "== installing schemathesis $ST_VERSION from PyPI"
  python3 -m pip install -q "schemathesis==$ST_VERSION"
fi
ST="$(command -v st)"

cargo build -q --bin filot
BIN="$CARGO_TARGET_DIR/debug/filot"
WORK="$(mktemp -d /tmp/filot-st.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# OCR off (uploads stay queued; the spec is what is under test) and limits out of the way.
export FILOT_DATA_DIR="$WORK/data"
export FILOT_OCR__DEVICES='[]'
export FILOT_LIMITS__UPLOADS_PER_USER_PER_MINUTE=1000000
export FILOT_LIMITS__UPLOADS_PER_IP_PER_MINUTE=1000000
export FILOT_LIMITS__REQUESTS_PER_USER_PER_MINUTE=10000000
export FILOT_LIMITS__AUTH_FAILURES_PER_IP_PER_MINUTE=1000000
"$BIN" serve --listen "127.0.0.1:$PORT" >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/health/live', timeout=1)" 2>/dev/null && break
  sleep 0.2
done

# One worker: hypothesis parses lambda sources with `ast.parse`, which CPython before 3.12
# can crash on when two threads do it at once ("AST constructor recursion depth mismatch").
status=0
for role in user reviewer admin; do
  echo "== schemathesis as $role (${SECONDS_PER_ROLE}s)"
  token="$("$BIN" token --sub "st-$role" --role "$role" --ttl 1h)"
  "$ST" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" \
    -H "Authorization: Bearer $token" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful --max-time "$SECONDS_PER_ROLE" -w 1 \
    --warnings off || status=1
done
if [ "$status" -ne 0 ]; then
  echo "schemathesis found problems; server log: $WORK/server.log" >&2
  tail -n 50 "$WORK/server.log" >&2 || true
fi
exit "$status"
