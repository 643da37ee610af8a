#!/usr/bin/env bash
# The main job (docs/demo.md): set-up, install, then `snowcluster demo`: `xtask demo`
# (xtask/src/demo.rs).
# Usage: scripts/demo.sh [--pg MAJOR | --pg-config PATH] [--no-build] [`snowcluster demo` options]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run -q --release -p xtask -- demo "$@"
