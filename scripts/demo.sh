#!/usr/bin/env bash
# The main job (docs/demo.md): three local PostgreSQL nodes in bidirectional logical replication
# (pglogical on 15, PostgreSQL's own from 16 on) write one audit log with snowflake_nextval() IDs
# and, side by side, with the yyyyMMddHHmmssSSS timestamp IDs it replaces; a report with checks,
# a non-zero exit if one fails. This script sets up, installs the extension and builds the
# cluster tool; `snowcluster demo` (cluster/src/demo/) runs the nodes, the loads and the checks,
# and stops every server it started (also on an error or Ctrl-C).
#
# Usage: scripts/demo.sh [--pg MAJOR | --pg-config PATH] [--no-build] [`snowcluster demo` options]
# Environment: DEMO_PG, DEMO_PG_CONFIG, DEMO_NO_BUILD=1 (the extension is installed already),
# SNOWCLUSTER (the tool's binary; default: built into target/release), and the variables
# `snowcluster demo` reads: DURATION, DEMO_PORT, DEMO_NAME, DEMO_DIR, CLIENTS, ROWS_PER_INSERT,
# MIN_RATE, CATCHUP_TIMEOUT, NODE_IDS, ORDER_SLACK_MS, DEMO_FAULT_SQL.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_SEL=${DEMO_PG:-15} PG_CONFIG=${DEMO_PG_CONFIG:-} NO_BUILD=${DEMO_NO_BUILD:-0} ARGS=()
while (($#)); do
  case $1 in
    --pg) PG_SEL=$2; PG_CONFIG=''; shift 2 ;;
    --pg-config) PG_CONFIG=$2; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[ "$NO_BUILD" = 1 ] || bash scripts/setup.sh
SC=${SNOWCLUSTER:-$PWD/target/release/snowcluster}
[ -n "${SNOWCLUSTER:-}" ] || cargo build -q --release -p snowflake_cluster
# where each major's pg_config is: the cluster tool's table of majors (cluster/src/majors.rs)
[ -n "$PG_CONFIG" ] || PG_CONFIG=$("$SC" pg-config "$PG_SEL")
[ -x "$PG_CONFIG" ] || { echo "no pg_config at $PG_CONFIG (scripts/setup.sh unpacks 18, scripts/pg-major.sh 16 and 17)" >&2; exit 2; }
if [ "$NO_BUILD" != 1 ]; then
  echo "== building and installing the extension (release) into $("$PG_CONFIG" --version)"
  cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
fi
exec "$SC" --pg-config "$PG_CONFIG" demo ${ARGS[@]+"${ARGS[@]}"}
