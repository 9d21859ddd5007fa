#!/usr/bin/env bash
# A three-node Juncture cluster on this machine, for trying many nodes out (not for production):
# a PostgreSQL server run as an unprivileged user in a temporary directory, and three
# `juncture serve` nodes on loopback ports 8901-8903 over it, sharing their key files in one
# directory. Prints the URLs and the admin token; Ctrl-C (or any exit) stops everything and
# removes the directory.
#
# Needs PostgreSQL's `initdb` and `pg_ctl` (on PATH, or Debian's /usr/lib/postgresql/*/bin:
# `apt-get install postgresql`) and `juncture` (on PATH, or set JUNCTURE).
# Settings (environment): JUNCTURE_BASE_PORT (first node's port, default 8901),
# JUNCTURE_PG_PORT (PostgreSQL's, default 8904), JUNCTURE (the juncture command),
# JUNCTURE_BUNDLE (the journeys the first node publishes; default: this checkout's
# examples/journeys).
set -euo pipefail

BASE_PORT=${JUNCTURE_BASE_PORT:-8901}
PG_PORT=${JUNCTURE_PG_PORT:-8904}
JUNCTURE=${JUNCTURE:-juncture}
PORTS=("$BASE_PORT" "$((BASE_PORT + 1))" "$((BASE_PORT + 2))")
BUNDLE=$(realpath "${JUNCTURE_BUNDLE:-$(dirname "$0")/../examples/journeys}")

find_pg_bin() {
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
        return
    fi
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r); do
        if [ -x "$dir/initdb" ]; then
            echo "$dir"
            return
        fi
    done
    echo "error: PostgreSQL is not installed (no initdb/pg_ctl on PATH or in" \
        "/usr/lib/postgresql/*/bin); apt-get install postgresql" >&2
    exit 2
}

PG_BIN=$(find_pg_bin)
ROOT=$(mktemp -d "${TMPDIR:-/tmp}/juncture-cluster-XXXXXX")
chmod 755 "$ROOT"
NODES_DIR="$ROOT/nodes"  # the nodes' shared key files and admin token
mkdir -m 700 "$NODES_DIR"
PIDS=()

# PostgreSQL refuses to run as root: as root, run it as `nobody`.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u nobody -- "$@"
    else
        "$@"
    fi
}
if [ "$(id -u)" = 0 ]; then
    chown nobody "$ROOT"
fi

cleanup() {
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -f "$ROOT/data/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$ROOT/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$ROOT"
    echo "stopped: three nodes and PostgreSQL; removed $ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

failed() {  # what failed, and its log
    echo "error: $1 failed; its log:" >&2
    cat "$2" >&2 || true
    exit 2
}
as_pg "$PG_BIN/initdb" -D "$ROOT/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    >"$ROOT/initdb.log" 2>&1 || failed initdb "$ROOT/initdb.log"
as_pg "$PG_BIN/pg_ctl" -D "$ROOT/data" -l "$ROOT/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $ROOT" start >/dev/null \
    || failed "starting PostgreSQL" "$ROOT/postgres.log"
DB="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"

start_node() {  # port [serve options...]
    local port=$1
    shift
    (cd "$NODES_DIR" && exec "$JUNCTURE" serve --db "$DB" --host 127.0.0.1 --port "$port" "$@" \
        >>"$ROOT/node-$port.log" 2>&1) &
    PIDS+=("$!")
    "$JUNCTURE" wait --url "http://127.0.0.1:$port" --timeout 60 >/dev/null \
        || failed "starting the node on port $port" "$ROOT/node-$port.log"
}

# The first node migrates the schema and publishes the journeys; the others join it.
start_node "${PORTS[0]}" --bundle "$BUNDLE"
start_node "${PORTS[1]}"
start_node "${PORTS[2]}"

echo "PostgreSQL: $DB (directory $ROOT)"
for port in "${PORTS[@]}"; do
    echo "node: http://127.0.0.1:$port (log $ROOT/node-$port.log)"
done
echo "admin token: $(cat "$NODES_DIR"/*.admin-token)"
echo "ready: Ctrl-C stops everything"

# Until Ctrl-C, or until a node exits by itself (then the others are stopped too).
wait -n "${PIDS[@]}" || true
