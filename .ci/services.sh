#!/usr/bin/env bash
# The services the tests use, started for this run and stopped at its end
# (sourced by .ci/run):
# - a PostgreSQL server (15 or later: the tests use ICU collations) in a
#   temporary directory, on a free loopback port; its URL is
#   DEVSY_TEST_POSTGRES;
# - Chromium and its WebDriver for the dashboard's browser test, installed
#   from Debian's packages when missing.

install_browser() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    return
  fi
  echo "ci: installing chromium and chromium-driver" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
}

start_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$bin" ]; then
    echo "ci: no PostgreSQL server installed (/usr/lib/postgresql/*/bin)" >&2
    return 1
  fi
  PG_DIR=$(mktemp -d /tmp/devsy-ci-pg.XXXXXX)
  local port run=()
  # The server refuses to run as root: as the postgres user, when root.
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  PG_CTL=("${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data")
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  # Ports below Linux's ephemeral range (32768 on), so that no outgoing
  # connection holds the one chosen; a port taken anyway is skipped, at
  # most ten times.
  local started=""
  for port in $(seq 15432 15441); do
    if "${PG_CTL[@]}" -l "$PG_DIR/server.log" -w -t 60 \
      -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300" \
      start >/dev/null 2>&1; then
      started=$port
      break
    fi
  done
  if [ -z "$started" ]; then
    echo "ci: PostgreSQL did not start on any port of 15432-15441" >&2
    cat "$PG_DIR/server.log" >&2
    return 1
  fi
  port=$started
  export DEVSY_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
  # The tests create their databases with psql, the server's own.
  export PATH="$bin:$PATH"
  echo "ci: PostgreSQL at $DEVSY_TEST_POSTGRES" >&2
}

stop_services() {
  if [ -n "${PG_DIR:-}" ]; then
    "${PG_CTL[@]}" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}
