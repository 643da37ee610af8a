#!/usr/bin/env bash
# Builds a Debian package of snowflake_id for PostgreSQL 15:
#
#   bash packaging/build-deb.sh        # -> target/deb/postgresql-15-snowflake-id_<version>-1_<arch>.deb
#
# `cargo pgrx package` (release profile, the same build `cargo pgrx install --release` makes, so
# it is reused) lays out the shared library, the control file, the generated install script and
# the upgrade scripts from sql/ under target/; this script adds the DEBIAN/ metadata and the docs
# and calls dpkg-deb. The package needs no Rust at install time: it holds a compiled .so that
# links only libc and libgcc_s (found with dpkg-shlibdeps), plus SQL and text.
#
# Install on any Debian bookworm (amd64/arm64 as built) with PostgreSQL 15 from Debian or PGDG:
#   dpkg -i postgresql-15-snowflake-id_*.deb
# then shared_preload_libraries = 'snowflake_id', snowflake_id.node_id = <n>, restart,
# CREATE EXTENSION snowflake_id. Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PG_CONFIG=${PG_CONFIG:-/usr/bin/pg_config}
PG_MAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')

# The one version source: the [package] version of Cargo.toml.
VERSION=$(cargo pkgid -p snowflake_id | sed -E 's/.*[#@]//')
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "bad version '$VERSION'" >&2; exit 1; }
DEB_REVISION=${DEB_REVISION:-1}
ARCH=$(dpkg --print-architecture)
NAME=postgresql-$PG_MAJOR-snowflake-id
OUT=$ROOT/target/deb
STAGE=$OUT/$NAME
PKGDIR=$ROOT/target/release/snowflake_id-pg$PG_MAJOR

echo "== cargo pgrx package (release, PostgreSQL $PG_MAJOR, version $VERSION)" >&2
rm -rf "$PKGDIR"
cargo pgrx package --pg-config "$PG_CONFIG" >&2

rm -rf "$STAGE"
mkdir -p "$STAGE"
cp -a "$PKGDIR"/. "$STAGE"/
LIBDIR=$("$PG_CONFIG" --pkglibdir)
EXTDIR=$("$PG_CONFIG" --sharedir)/extension
SO=$STAGE$LIBDIR/snowflake_id.so
for f in "$SO" "$STAGE$EXTDIR/snowflake_id.control" "$STAGE$EXTDIR/snowflake_id--$VERSION.sql"; do
  [ -f "$f" ] || { echo "cargo pgrx package did not produce $f" >&2; exit 1; }
done
strip --strip-unneeded "$SO"
chmod 0644 "$SO" "$STAGE$EXTDIR"/*

DOC=$STAGE/usr/share/doc/$NAME
mkdir -p "$DOC"
cp README.md docs/operations.md "$DOC"/
cat >"$DOC/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: snowflake_id
License: MIT
Files: *
License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this software
 and associated documentation files (the "Software"), to deal in the Software without
 restriction, including without limitation the rights to use, copy, modify, merge, publish,
 distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions: The above copyright
 notice and this permission notice shall be included in all copies or substantial portions of
 the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
EOF

# Shared-library dependencies of the .so, as Debian package names with versions.
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir "$TMP/debian"
printf 'Source: snowflake-id\n\nPackage: %s\nArchitecture: any\n' "$NAME" >"$TMP/debian/control"
SHLIBS=$(cd "$TMP" && dpkg-shlibdeps -O "$SO" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
DEPENDS="postgresql-$PG_MAJOR${SHLIBS:+, $SHLIBS}"

mkdir -p "$STAGE/DEBIAN"
cat >"$STAGE/DEBIAN/control" <<EOF
Package: $NAME
Version: $VERSION-$DEB_REVISION
Architecture: $ARCH
Maintainer: snowflake_id developers <snowflake-id@localhost>
Section: database
Priority: optional
Depends: $DEPENDS
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Description: Snowflake IDs for PostgreSQL $PG_MAJOR
 snowflake_nextval() returns 64-bit, time-sortable, globally unique bigints
 (41-bit milliseconds since 2025-01-01, 10-bit node id, 12-bit sequence) from a
 lock-free generator in shared memory. Needs shared_preload_libraries =
 'snowflake_id' and a distinct snowflake_id.node_id per server.
EOF
(cd "$STAGE" && find usr -type f | LC_ALL=C sort | xargs md5sum >DEBIAN/md5sums)

DEB=$OUT/${NAME}_${VERSION}-${DEB_REVISION}_${ARCH}.deb
dpkg-deb --build --root-owner-group -Zxz "$STAGE" "$DEB" >&2
echo "$DEB"
