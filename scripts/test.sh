#!/usr/bin/env bash
# Runs every test of snowflake_id, cheapest first:
#   0. formatting (cargo fmt --check) and lints (cargo clippy, warnings are errors);
#   1. pure-Rust unit and property tests of the core (layout, generator, ceiling file) and of the
#      cluster tool;
#   2. loom model check of the generator (compare-and-swap and fetch-and-add paths);
#   3. #[pg_test]s of the SQL surface (cargo pgrx test, library preloaded) on PostgreSQL 15 and
#      18; on 16 and 17 (scripts/pg-major.sh) the release build, a smoke test and the pg_regress
#      contracts, which need no second build of the extension with its tests;
#   4. the end-of-life majors 13 and 14 still compile (pregenerated bindings);
#   5. integration tests against real servers started by the tests through the cluster tool, on
#      PostgreSQL 15 and then 18 (the release build installed into each): the SQL surface's
#      contracts as pg_regress files, crashes, clock faults, hostile roles, multi-master (pglogical
#      on 15, native logical replication on 18) with the main job, failover, packaging and
#      upgrades; then the README's quick start, as written, on 16 and 17 as well;
#   6. the benchmark in quick mode on 15 and 18 (a smoke test of snowbench; no target assessed).
#
# The quick tier, for the inner loop (under a minute on a warm machine): the core's and the
# cluster tool's unit and property tests, the harness's own unit tests, then the release build
# installed into one PostgreSQL (default the system's 15) and the pg_regress contracts on it.
# No formatting, lints, loom, pg_test or integration suites.
#
# Usage: scripts/test.sh [cargo test filter for step 5]
#        scripts/test.sh --quick [--pg-config PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/setup.sh
# the supported majors and where each one's pg_config is: cluster/src/majors.rs
SC=$ROOT/target/release/snowcluster
pg_config_of() { "$SC" pg-config "$1"; }

step() { echo; echo "=== $*"; }
# postgres must be able to reach the data directories under target/
traversable() { local d=$ROOT; while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done; }

if [ "${1:-}" = --quick ]; then
  PG_CONFIG=$(pg_config_of 15)
  case "${2:-}" in
    --pg-config) PG_CONFIG=${3:?--pg-config needs a path} ;;
    "") ;;
    *) echo "usage: $0 --quick [--pg-config PATH]" >&2; exit 2 ;;
  esac
  major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
  step "quick 1/3 core unit and property tests, cluster tool and harness unit tests"
  cargo test -q -p snowflake_core -p snowflake_cluster --release
  cargo test -q -p snowflake_it --release --lib
  step "quick 2/3 release build installed into PostgreSQL $major"
  traversable
  bash scripts/install-from-source.sh --pg-config "$PG_CONFIG" >/dev/null
  step "quick 3/3 pg_regress contracts on PostgreSQL $major"
  SNOWFLAKE_PG_CONFIG=$PG_CONFIG cargo test -q -p snowflake_it --release --test regress -- --test-threads=1
  exit 0
fi

step "0/6 cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all --check
cargo clippy -q -p snowflake_core -p snowflake_cluster -p snowflake_it -p snowflake_bench -p retry_client --release --tests -- -D warnings
cargo clippy -q -p snowflake_id --release -- -D warnings

step "1/6 core unit and property tests, cluster tool unit tests"
cargo test -p snowflake_core -p snowflake_cluster --release

step "2/6 loom model of the generator"
RUSTFLAGS="--cfg loom" cargo test -p snowflake_core --release --test loom \
  --target-dir target/loom -- --test-threads=1

traversable
for v in $("$SC" majors --tier full); do
  step "3a/6 pg_test suite (PostgreSQL $v)"
  mkdir -p "target/pgrx-test-data-$v"
  chown postgres "target/pgrx-test-data-$v" 2>/dev/null || true
  cargo pgrx test "pg$v" --runas postgres --pgdata "$ROOT/target/pgrx-test-data-$v"
done

for v in $("$SC" majors --tier regress); do
  step "3b/6 PostgreSQL $v (a PyPI build): build, install, smoke test, pg_regress contracts"
  bash scripts/pg-major.sh "$v" --regress
done

step "4/6 the other PostgreSQL majors compile (pregenerated bindings)"
for v in $("$SC" majors --tier compile); do
  RUSTC_WRAPPER="$ROOT/scripts/rustc-docsrs-pgsys.sh" DOCS_RS=1 cargo check -q -p snowflake_id \
    --no-default-features --features "pg$v" --target-dir target/featurecheck
  echo "pg$v: compiles"
done

# the client-language recipes' toolchains (Python venv, npm ci, pgjdbc, javac) for tests/tests/clients.rs
bash scripts/clients-setup.sh
# Patroni, etcd, PgBouncer and postgres_exporter for tests/tests/ha.rs (run on PostgreSQL 15)
bash scripts/ha-setup.sh
for major in $("$SC" majors --tier full); do
  pg_config=$(pg_config_of "$major")
  step "5/6 integration tests on real servers (PostgreSQL $major)"
  bash scripts/install-from-source.sh --pg-config "$pg_config" >/dev/null
  SNOWFLAKE_PG_CONFIG=$pg_config cargo test -p snowflake_it --release -- --test-threads=1 "$@"
done
# The README's quick start on 16 and 17 too (15 and 18 ran it above), on the builds of step 3b:
# its install-from-source.sh reuses their release builds.
for v in $("$SC" majors --tier regress); do
  step "5/6 the README's quick start on PostgreSQL $v"
  pg_config=$(pg_config_of "$v")
  SNOWFLAKE_PG_CONFIG=$pg_config cargo test -p snowflake_it --release --test packaging -- \
    --test-threads=1 --exact quick_start_on_a_fresh_server_gives_an_id
done

step "6/6 benchmark smoke test (snowbench --quick on 15 and 18: the benchmark works; no target assessed)"
bench_args=()
for v in $("$SC" majors --tier full); do bench_args+=(--pg-config "$(pg_config_of "$v")"); done
cargo run -q --release -p snowflake_bench -- --quick "${bench_args[@]}"
