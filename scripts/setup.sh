#!/usr/bin/env bash
# Installs what building and testing snowflake_id needs, skipping what is already there:
# `xtask setup` (xtask/src/setup.rs). Needs only cargo: xtask builds without libclang or
# PostgreSQL's headers.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run -q --release -p xtask -- setup "$@"
