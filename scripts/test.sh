#!/usr/bin/env bash
# Runs every test of snowflake_id, cheapest first, stopping at the first failure: `xtask test`
# (xtask/src/test.rs lists the steps).
# Usage: scripts/test.sh [--dry-run] [cargo test filter for the integration tests]
#        scripts/test.sh --quick [--pg-config PATH] [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run -q --release -p xtask -- test "$@"
