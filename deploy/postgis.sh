#!/usr/bin/env bash
# Private PostgreSQL + PostGIS cluster for the demo, the tests and the benchmarks.
#   deploy/postgis.sh start   # idempotent; prints the SQLAlchemy URL on stdout
#   deploy/postgis.sh stop | status | url
# With YOUHU_DATABASE_URL set, nothing is started: that database is used as it is.
source "$(dirname "$0")/lib.sh"

PG_DIR="$RUN_DIR/postgres"
DATA="$PG_DIR/data"
SOCK="$PG_DIR/sock"
PORT_FILE="$PG_DIR/port"
DB_NAME="${YOUHU_DB_NAME:-youhu}"
PG_MAJOR="${YOUHU_PG_MAJOR:-15}"

url() { echo "postgresql+psycopg://postgres@127.0.0.1:$(cat "$PORT_FILE")/$DB_NAME"; }

# initdb refuses to run as root, so the cluster belongs to the `postgres` system user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {
  local d="/usr/lib/postgresql/$PG_MAJOR/bin"
  [ -x "$d/pg_ctl" ] || d="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/x)")"
  echo "$d"
}

ensure_installed() {
  apt_ensure "postgresql-$PG_MAJOR" "postgresql-$PG_MAJOR-postgis-3"
  [ -f "/usr/share/postgresql/$PG_MAJOR/extension/postgis.control" ] \
    || die "postgis extension not found for PostgreSQL $PG_MAJOR"
}

running() { [ -f "$DATA/postmaster.pid" ] && as_pg "$(pg_bin)/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
  if [ -n "${YOUHU_DATABASE_URL:-}" ]; then echo "$YOUHU_DATABASE_URL"; return; fi
  ensure_installed
  local bin; bin="$(pg_bin)"
  if running; then url; return; fi
  mkdir -p "$PG_DIR" "$SOCK"
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$PG_DIR"; fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    log "initialising cluster in $DATA"
    as_pg "$bin/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    # Durability stays on: offsets are committed only after the database commit, so a lost
    # commit would lose an accepted event. wal_level=minimal only skips replication data.
    cat >> "$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCK'
max_connections = 200
shared_buffers = 256MB
fsync = on
wal_level = minimal
max_wal_senders = 0
# Checkpoints by time rather than by WAL volume: a burst of reports writes ~10 kB of WAL per
# event, so 1GB forced a checkpoint every ~60,000 events, and the full-page images that follow
# each one made every write after it dearer for minutes.
max_wal_size = 4GB
checkpoint_timeout = 15min
CONF
  fi
  local attempt
  for attempt in 1 2 3; do
    local port; port="$(free_port)"
    sed -i "/^port = /d" "$DATA/postgresql.conf"; echo "port = $port" >> "$DATA/postgresql.conf"
    if as_pg "$bin/pg_ctl" -D "$DATA" -l "$PG_DIR/server.log" -w -t 60 start >/dev/null; then
      echo "$port" > "$PORT_FILE"; break
    fi
    log "start attempt $attempt failed (see $PG_DIR/server.log)"; [ "$attempt" = 3 ] && die "postgres did not start"
  done
  as_pg "$bin/psql" -h "$SOCK" -p "$(cat "$PORT_FILE")" -U postgres -d postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'" | grep -q 1 \
    || as_pg "$bin/createdb" -h "$SOCK" -p "$(cat "$PORT_FILE")" -U postgres "$DB_NAME"
  as_pg "$bin/psql" -h "$SOCK" -p "$(cat "$PORT_FILE")" -U postgres -d "$DB_NAME" -qc \
    "CREATE EXTENSION IF NOT EXISTS postgis" >/dev/null
  log "PostgreSQL + PostGIS ready on 127.0.0.1:$(cat "$PORT_FILE")"
  url
}

stop() {
  [ -n "${YOUHU_DATABASE_URL:-}" ] && return 0
  if running; then as_pg "$(pg_bin)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; log "stopped"; fi
}

status() {
  if [ -n "${YOUHU_DATABASE_URL:-}" ]; then echo "external: $YOUHU_DATABASE_URL"; return 0; fi
  if running; then echo "running: $(url)"; else echo "stopped"; return 3; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) if [ -n "${YOUHU_DATABASE_URL:-}" ]; then echo "$YOUHU_DATABASE_URL"; else url; fi ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
