#!/usr/bin/env bash
# Runs the whole test suite, as CI does: installs PostgreSQL, Redis, OpenSSL, Chromium with its
# WebDriver and Firefox ESR from Debian when they are missing (and Firefox's WebDriver,
# geckodriver, which Debian does not package, from crates.io), starts a throwaway PostgreSQL on loopback so the
# store tests run on both SQLite and Postgres, runs `cargo test`, and stops the server again.
#
#   scripts/test.sh              # everything
#   scripts/test.sh --test api   # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/filot-target}"

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

install_services() {
  if [ -n "$(pg_bin)" ] && command -v redis-server >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 \
    && command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
    && command -v firefox-esr >/dev/null 2>&1; then
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL/Redis/OpenSSL/Chromium/Firefox missing; install them: sudo apt-get install -y postgresql redis-server openssl chromium chromium-driver firefox-esr" >&2
    return
  fi
  echo "== installing postgresql, redis-server, openssl (the cluster TLS test's certificates), chromium, chromium-driver and firefox-esr (the console's browser test) from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql redis-server openssl chromium chromium-driver firefox-esr >/dev/null
}

# Firefox's WebDriver: not in Debian, so built from crates.io (about 2 minutes, once) into
# cargo's own bin directory, with its own target directory so FiLot's build cache is untouched.
GECKODRIVER_VERSION=0.37.1
install_geckodriver() {
  if command -v geckodriver >/dev/null 2>&1; then
    return
  fi
  echo "== installing geckodriver $GECKODRIVER_VERSION from crates.io (the console's Firefox test)"
  env -u CARGO_TARGET_DIR cargo install --quiet --locked "geckodriver@$GECKODRIVER_VERSION"
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PG_DIR=""
stop_postgres() {
  if [ -n "$PG_DIR" ] && [ -d "$PG_DIR" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}
trap stop_postgres EXIT

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start_postgres() {
  local bin
  bin="$(pg_bin)"
  if [ -z "$bin" ]; then
    echo "PostgreSQL not available: store tests run on SQLite only" >&2
    return
  fi
  PG_DIR="$(mktemp -d /tmp/filot-pg.XXXXXX)"
  chmod 755 "$PG_DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres "$PG_DIR"
  local port
  port="$(free_port)"
  as_pg "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
  as_pg "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
  export FILOT_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  # `ctl.sh stop|start`: lets the outage test restart this server under a running FiLot.
  local run_as=""
  [ "$(id -u)" -eq 0 ] && run_as="runuser -u postgres --"
  cat >"$PG_DIR/ctl.sh" <<CTL
#!/bin/sh
if [ "\$1" = stop ]; then
  exec $run_as "$bin/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop
fi
exec $run_as "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 \\
  -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start
CTL
  chmod 755 "$PG_DIR/ctl.sh"
  export FILOT_TEST_POSTGRES_CTL="$PG_DIR/ctl.sh"
  echo "== PostgreSQL on 127.0.0.1:$port for the store tests"
}

install_services
install_geckodriver
if [ -z "${FILOT_TEST_POSTGRES_URL:-}" ]; then
  start_postgres
fi
LOG="$(mktemp)"
status=0
cargo test --no-fail-fast "$@" 2>&1 | tee "$LOG" || status=$?
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$LOG"
rm -f "$LOG"
exit "$status"
