#!/usr/bin/env bash
# Builds snowflake_id for a regress-tier major (16, 17: a PyPI build under target/pgNN), installs
# it there and smoke-tests it: `xtask major` (xtask/src/major.rs).
# Usage: scripts/pg-major.sh NN [--no-check | --regress | --pg-test]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run -q --release -p xtask -- major "$@"
