#!/usr/bin/env bash
# The main job: build and install snowflake_id, start a local PostgreSQL 15 cluster under
# .run/demo (as user postgres, loopback only) with the library preloaded and node id 1, write an
# audit table from several connections at once, and show the IDs decoded. Stops the server at
# the end (or on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=/usr/lib/postgresql/15/bin
PORT=${DEMO_PORT:-25432}
RUN=$ROOT/.run/demo
bash scripts/setup.sh

echo "== building and installing the extension (release)"
cargo pgrx install --release --pg-config /usr/bin/pg_config >/dev/null

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
d=$ROOT; while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done

stop() { as_pg "$BIN/pg_ctl" -D "$RUN/data" -m fast -w stop >/dev/null 2>&1 || true; }
[ -f "$RUN/data/postmaster.pid" ] && stop
rm -rf "$RUN"; mkdir -p "$RUN"; chown postgres: "$RUN" 2>/dev/null || true
as_pg "$BIN/initdb" -D "$RUN/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
cat >> "$RUN/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$RUN'
shared_preload_libraries = 'snowflake_id'
snowflake_id.node_id = 1
CONF
trap stop EXIT
as_pg "$BIN/pg_ctl" -D "$RUN/data" -l "$RUN/server.log" -w start >/dev/null
PSQL=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres)

"${PSQL[@]}" <<'SQL'
CREATE EXTENSION snowflake_id;
CREATE TABLE audit_log (
  id            bigint PRIMARY KEY DEFAULT snowflake_nextval(),
  user_id       int NOT NULL,
  changed_field text NOT NULL,
  old_value     text,
  new_value     text,
  changed_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
SQL
echo "== 4 connections insert 25,000 rows each at the same time"
for c in 1 2 3 4; do
  "${PSQL[@]}" -c "INSERT INTO audit_log(user_id, changed_field, old_value, new_value)
                   SELECT g % 100, 'email', 'old' || g, 'new' || g FROM generate_series(1, 25000) g" &
done
wait
"${PSQL[@]}" <<'SQL'
\echo == the newest rows, IDs decoded
SELECT id, snowflake_timestamp(id) AS issued_at, snowflake_node(id) AS node,
       snowflake_sequence(id) AS seq, user_id, changed_field
FROM audit_log ORDER BY id DESC LIMIT 5;
\echo == checks
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_ids,
       min(snowflake_timestamp(id)) AS first_at, max(snowflake_timestamp(id)) AS last_at
FROM audit_log;
\echo == rows of the last second, found through the primary key
EXPLAIN (COSTS OFF) SELECT * FROM audit_log WHERE id >= snowflake_from_timestamp(now() - interval '1 second');
\echo == generator state
SELECT node_id, last_id, issued, drift_ms, clock_steps, ceiling, ceiling_writes FROM snowflake_stats();
SQL
echo "== done; the server is stopped (its data stays in $RUN)"
