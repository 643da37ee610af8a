#!/usr/bin/env bash
# Installs what building and testing snowflake_id needs, skipping what is already there:
# Debian packages, cargo-pgrx at the pinned version, and `cargo pgrx init` for PostgreSQL 15.
set -euo pipefail
PGRX_VERSION=0.18.0
PACKAGES=(build-essential pkg-config libssl-dev clang libclang-dev sudo procps dpkg-dev binutils
          postgresql-15 postgresql-server-dev-15 postgresql-15-pglogical postgresql-15-pgtap
          faketime gnuplot-nox)

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

if ! grep -qs '^pg15' "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  echo "== cargo pgrx init --pg15 /usr/bin/pg_config"
  cargo pgrx init --pg15 /usr/bin/pg_config >/dev/null
fi
