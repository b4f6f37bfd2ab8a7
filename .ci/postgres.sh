#!/usr/bin/env bash
# Install and start a throwaway PostgreSQL server for the store tests, listening on 127.0.0.1 only.
# Prints one line for the caller to eval:
#     export ASSESS_TEST_PG_URL=postgresql+psycopg://assess:...@127.0.0.1:PORT/assess_test
# Re-running it while the server is up prints the same line again. Everything else goes to stderr.
set -euo pipefail
PORT="${ASSESS_PG_PORT:-54329}"
ROOT="${ASSESS_PG_ROOT:-/tmp/assess-pg}"
DATA="$ROOT/data"
PWFILE="$ROOT/password"

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    echo "installing postgresql (apt-get)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
as_pg() { runuser -u postgres -- "$@"; }

mkdir -p "$ROOT"
chown postgres "$ROOT"
chmod 700 "$ROOT"
if [ ! -s "$DATA/PG_VERSION" ]; then
    # A fresh random password per cluster; scram-sha-256 for every TCP connection, peer for the socket.
    umask 077
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$PWFILE"
    chown postgres "$PWFILE"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >&2
fi
if ! as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    as_pg "$BIN/pg_ctl" -D "$DATA" -w -l "$ROOT/server.log" start \
        -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$ROOT -c fsync=off" >&2
fi
PW="$(cat "$PWFILE")"
psql_() { as_pg "$BIN/psql" -h "$ROOT" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_ -c "SELECT 1 FROM pg_roles WHERE rolname = 'assess'")" != "1" ]; then
    psql_ -c "CREATE ROLE assess LOGIN PASSWORD '$PW'" >&2
fi
if [ "$(psql_ -c "SELECT 1 FROM pg_database WHERE datname = 'assess_test'")" != "1" ]; then
    psql_ -c "CREATE DATABASE assess_test OWNER assess" >&2
fi
echo "export ASSESS_TEST_PG_URL=postgresql+psycopg://assess:$PW@127.0.0.1:$PORT/assess_test"
