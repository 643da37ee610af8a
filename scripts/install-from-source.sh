#!/usr/bin/env bash
# Builds snowflake_id from these sources and installs it into the PostgreSQL of the given
# pg_config, for any PostgreSQL layout (the .debs of `xtask package` are for Debian's and PGDG's
# packages):
#
#   bash scripts/install-from-source.sh --pg-config /path/to/pg_config [--sudo]
#
# It installs no tools. It needs Rust, cargo-pgrx at the version pgrx is pinned to, libclang (pgrx
# generates its bindings with it), a C compiler and the server headers of that PostgreSQL; it
# checks each first and names every one that is missing with the command that gets it. Then
# `cargo pgrx install --release --pg-config <pg_config>` (with --sudo: built as you, the files
# copied with sudo). The files go to that pg_config's --pkglibdir and --sharedir/extension;
# the server then needs snowflake_id in shared_preload_libraries, a snowflake_id.node_id and a
# restart before CREATE EXTENSION snowflake_id (the README's quick start).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGRX_VERSION=0.18.0
usage() { echo "usage: $0 --pg-config /path/to/pg_config [--sudo]" >&2; exit 2; }
PG_CONFIG= SUDO=()
while (($#)); do
  case "$1" in
    --pg-config) [ $# -ge 2 ] || usage; PG_CONFIG=$2; shift 2 ;;
    --pg-config=*) PG_CONFIG=${1#--pg-config=}; shift ;;
    --sudo) SUDO=(--sudo); shift ;;
    *) usage ;;
  esac
done
[ -n "$PG_CONFIG" ] || usage
[ -x "$PG_CONFIG" ] || { echo "install-from-source.sh: $PG_CONFIG is not an executable pg_config" >&2; exit 2; }
# Absolute, symlinks kept: Debian's /usr/bin/pg_config is a link to a wrapper that picks the
# major by its name.
PG_CONFIG=$(realpath -s "$PG_CONFIG")
PG_VERSION=$("$PG_CONFIG" --version)
MAJOR=$(echo "$PG_VERSION" | sed -nE 's/^PostgreSQL ([0-9]+).*/\1/p')
[ -n "$MAJOR" ] || { echo "install-from-source.sh: cannot read a major from '$PG_VERSION'" >&2; exit 2; }

# The majors the crate builds for: its pgNN features.
majors=$(sed -nE 's/^pg([0-9]+) = \[.*/\1/p' "$ROOT/Cargo.toml" | tr '\n' ' ')
case " $majors" in
  *" $MAJOR "*) ;;
  *) echo "install-from-source.sh: $PG_VERSION is not supported; snowflake_id builds for PostgreSQL ${majors% }" >&2; exit 1 ;;
esac

missing=()
need() { missing+=("$1"$'\n'"      $2"); }

# Rust, at least the crate's rust-version.
RUST_MIN=$(sed -nE 's/^rust-version = "([0-9.]+)"/\1/p' "$ROOT/Cargo.toml")
if ! command -v cargo >/dev/null || ! command -v rustc >/dev/null; then
  need "Rust $RUST_MIN or newer (cargo and rustc in PATH)" \
       "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh   # then: . ~/.cargo/env"
else
  have=$(rustc --version | sed -nE 's/^rustc ([0-9]+\.[0-9]+).*/\1/p')
  if [ "$(printf '%s\n%s\n' "$RUST_MIN" "$have" | sort -V | head -1)" != "$RUST_MIN" ]; then
    need "Rust $RUST_MIN or newer (found rustc $have)" "rustup update stable"
  fi
  if ! cargo pgrx --version 2>/dev/null | grep -qw "$PGRX_VERSION"; then
    found=$(cargo pgrx --version 2>/dev/null || echo none)
    need "cargo-pgrx $PGRX_VERSION (found: $found)" "cargo install cargo-pgrx --version $PGRX_VERSION --locked"
  fi
fi

# A C compiler: pgrx compiles a small C shim against the server headers.
command -v cc >/dev/null || need "a C compiler (cc)" "apt-get install build-essential   # Fedora/RHEL: dnf install gcc"

# libclang, which bindgen loads to read the server headers: $LIBCLANG_PATH, the linker's cache,
# or LLVM's directories, as clang-sys searches them.
have_libclang() {
  local d
  if [ -n "${LIBCLANG_PATH:-}" ]; then
    compgen -G "$LIBCLANG_PATH/libclang*.so*" >/dev/null && return 0
  fi
  ldconfig -p 2>/dev/null | grep -qE 'libclang(-[0-9.]+)?\.so' && return 0
  for d in /usr/lib/llvm-*/lib /usr/lib64 /usr/lib /usr/local/lib /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu; do
    compgen -G "$d/libclang*.so*" >/dev/null && return 0
  done
  return 1
}
have_libclang || need "libclang (for pgrx's bindgen)" \
  "apt-get install libclang-dev   # Fedora/RHEL: dnf install clang-devel; or set LIBCLANG_PATH"

# The server headers of this PostgreSQL.
INCLUDE_SERVER=$("$PG_CONFIG" --includedir-server)
[ -f "$INCLUDE_SERVER/postgres.h" ] || need "the server headers of $PG_VERSION (no $INCLUDE_SERVER/postgres.h)" \
  "apt-get install postgresql-server-dev-$MAJOR   # PGDG RPMs: dnf install postgresql$MAJOR-devel"

if ((${#missing[@]})); then
  {
    echo "install-from-source.sh: cannot build snowflake_id for $PG_VERSION ($PG_CONFIG); missing:"
    for m in "${missing[@]}"; do echo "  - $m"; done
  } >&2
  exit 1
fi

# Where the files go must be writable, unless sudo copies them.
LIBDIR=$("$PG_CONFIG" --pkglibdir)
EXTDIR=$("$PG_CONFIG" --sharedir)/extension
if ((${#SUDO[@]} == 0)); then
  for d in "$LIBDIR" "$EXTDIR"; do
    [ -w "$d" ] || { echo "install-from-source.sh: cannot write $d; run again with --sudo (builds as you, copies with sudo)" >&2; exit 1; }
  done
fi

cd "$ROOT"
source packaging/pgrx-home.sh
pgrx_home_for "$PG_CONFIG" "$MAJOR" "$ROOT"
echo "== cargo pgrx install --release --pg-config $PG_CONFIG ($PG_VERSION; PGRX_HOME=$PGRX_HOME)" >&2
cargo pgrx install --release --pg-config "$PG_CONFIG" "${SUDO[@]}" >&2

VERSION=$(cargo pkgid -p snowflake_id | sed -E 's/.*[#@]//')
for f in "$LIBDIR/snowflake_id.so" "$EXTDIR/snowflake_id.control" "$EXTDIR/snowflake_id--$VERSION.sql"; do
  [ -f "$f" ] || { echo "install-from-source.sh: cargo pgrx install did not install $f" >&2; exit 1; }
done
cat <<EOF
installed snowflake_id $VERSION into $PG_VERSION:
  $LIBDIR/snowflake_id.so
  $EXTDIR/snowflake_id.control, snowflake_id--*.sql
next: add snowflake_id to shared_preload_libraries, set snowflake_id.node_id, restart,
      CREATE EXTENSION snowflake_id (README.md, Quick start)
EOF
