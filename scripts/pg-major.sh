#!/usr/bin/env bash
# Builds snowflake_id for PostgreSQL 16 or 17 against a real server of that major, installs it
# there, and (unless --no-check) starts a throwaway node through the cluster tool that preloads
# it and issues an ID.
#
# Neither major is in Debian bookworm: the cluster tool downloads a relocatable build with the
# server headers, which is what pgrx needs, and unpacks it under target/pgNN (the majors, their
# sources and versions: cluster/src/majors.rs). Idempotent: the download, the unpacking and
# `cargo pgrx init` are skipped when already done.
#
# pgrx's config for these majors lives in its own PGRX_HOME (target/pgrx-majors), so the
# ~/.pgrx/config.toml that setup.sh writes for 15 and 18 is left alone.
#
# Usage: scripts/pg-major.sh 16|17 [--no-check | --regress | --pg-test]
#   --regress also runs the SQL surface's pg_regress contracts on that major (tests/tests/regress.rs,
#   seconds: the test harness does not depend on the major, so nothing more is built);
#   --pg-test also runs the whole #[pg_test] suite on that major (cargo pgrx test pgNN, which
#   builds the extension again with its tests, about 4 to 16 minutes from cold).
# Then:  target/pgNN/postgresql-*/bin has the server with snowflake_id installed.
set -euo pipefail
MAJOR=${1:-}
CHECK=1 PGTEST=0 REGRESS=0
case "${2:-}" in --no-check) CHECK=0 ;; --regress) REGRESS=1 ;; --pg-test) PGTEST=1 ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build -q --release -p snowflake_cluster --manifest-path "$ROOT/Cargo.toml"
SNOWCLUSTER=$ROOT/target/release/snowcluster
MAJORS=$("$SNOWCLUSTER" majors --tier regress)
case " $MAJORS " in
  *" $MAJOR "*) ;;
  *) echo "usage: $0 ${MAJORS// /|} [--no-check | --regress | --pg-test]" >&2; exit 2 ;;
esac
DIR=$ROOT/target/pg$MAJOR
# downloaded, checked and unpacked unless already there (cluster/src/majors.rs)
PG_CONFIG=$("$SNOWCLUSTER" pg-config "$MAJOR" --fetch)
PG=$(dirname "$(dirname "$PG_CONFIG")")
"$PG_CONFIG" --version

export PGRX_HOME=${PGRX_HOME_MAJORS:-$ROOT/target/pgrx-majors}
mkdir -p "$PGRX_HOME"
if ! grep -qsF "pg$MAJOR = \"$PG_CONFIG\"" "$PGRX_HOME/config.toml"; then
  # init rewrites the whole config: name every major already unpacked here
  args=()
  for m in $MAJORS; do
    c=$("$SNOWCLUSTER" pg-config "$m")
    [ -x "$c" ] && args+=("--pg$m" "$c")
  done
  cargo pgrx init "${args[@]}" >/dev/null
fi

echo "== cargo pgrx install --features pg$MAJOR (about 5 minutes from cold)"
cd "$ROOT"
cargo pgrx install --release --no-default-features --features "pg$MAJOR" --pg-config "$PG_CONFIG"

((CHECK)) || exit 0
echo "== smoke test: preload, CREATE EXTENSION, snowflake_nextval() on 127.0.0.1:$((27100 + MAJOR))"
SC=("$SNOWCLUSTER" --pg-config "$PG_CONFIG")
NODES=(--dir "$DIR/smoke" --name smoke --nodes 1 --port $((27100 + MAJOR)))
trap '"${SC[@]}" down "${NODES[@]}" || true' EXIT
"${SC[@]}" up "${NODES[@]}" --engine none --node-ids 1
"$PG/bin/psql" -h 127.0.0.1 -p $((27100 + MAJOR)) -U postgres -X -v ON_ERROR_STOP=1 -qAt \
  -c "CREATE EXTENSION snowflake_id" \
  -c "SELECT 'server ' || current_setting('server_version') || ': snowflake_nextval() = ' || snowflake_nextval()" \
  -c "SELECT 'snowflake_stats() = ' || snowflake_stats()"
"${SC[@]}" down "${NODES[@]}"
trap - EXIT
echo "pg$MAJOR: OK"

if ((REGRESS)); then
  echo "== pg_regress contracts on pg$MAJOR (tests/tests/regress.rs)"
  SNOWFLAKE_PG_CONFIG=$PG_CONFIG cargo test -q -p snowflake_it --release --test regress -- --test-threads=1
fi

((PGTEST)) || exit 0
echo "== cargo pgrx test pg$MAJOR"
mkdir -p "$ROOT/target/pgrx-test-data-$MAJOR"
if [ "$(id -u)" = 0 ]; then chown postgres "$ROOT/target/pgrx-test-data-$MAJOR"; fi
cargo pgrx test "pg$MAJOR" --runas postgres --pgdata "$ROOT/target/pgrx-test-data-$MAJOR"
