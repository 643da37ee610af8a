#!/usr/bin/env bash
# Builds a Debian package of snowflake_id for one PostgreSQL major, in the layout of Debian's and
# PGDG's PostgreSQL packages (postgresql-NN), for the pg_config given in $PG_CONFIG:
#
#   PG_CONFIG=/usr/bin/pg_config bash packaging/build-deb.sh
#     # -> target/deb/postgresql-<major>-snowflake-id_<version>-1_<arch>.deb
#
# (docs/packages.md has the command for each major, as tests/tests/packaging.rs runs it.)
#
# The major comes from that pg_config; the library and the extension files go to
# /usr/lib/postgresql/<major>/lib and /usr/share/postgresql/<major>/extension whatever the
# pg_config's own pkglibdir and sharedir are. So a .deb for a major that has no Debian server
# package on the build machine (16, 17, 18 here) is built against a relocatable PostgreSQL of that
# major (scripts/pg-major.sh, scripts/setup.sh), and installs into PGDG's postgresql-<major>.
#
# `cargo pgrx package` (release profile, the same build `cargo pgrx install --release` makes, so
# it is reused) lays out the shared library, the control file, the generated install script and
# the upgrade scripts from sql/ under target/; this script moves them to Debian's paths, adds the
# DEBIAN/ metadata and the docs, and calls dpkg-deb. The package needs no Rust at install time:
# it holds a compiled .so that links only libc and libgcc_s (found with dpkg-shlibdeps), plus SQL
# and text.
#
# Install on Debian bookworm (amd64/arm64 as built) with PostgreSQL <major> from Debian or PGDG:
#   dpkg -i postgresql-<major>-snowflake-id_*.deb
# then shared_preload_libraries = 'snowflake_id', snowflake_id.node_id = <n>, restart,
# CREATE EXTENSION snowflake_id (docs/packages.md). Prints the path of the .deb on its last line.
set -euo pipefail
PG_CONFIG=${PG_CONFIG:-/usr/bin/pg_config}
[ -x "$PG_CONFIG" ] || { echo "build-deb.sh: no pg_config at $PG_CONFIG (set PG_CONFIG)" >&2; exit 1; }
# Absolute (relative to where this was called), symlinks kept: Debian's /usr/bin/pg_config is a
# link to a wrapper that picks the major by its name.
PG_CONFIG=$(realpath -s "$PG_CONFIG")
cd "$(dirname "$0")/.."
ROOT=$PWD
PG_VERSION=$("$PG_CONFIG" --version)
PG_MAJOR=$(echo "$PG_VERSION" | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
[[ $PG_MAJOR =~ ^[0-9]+$ ]] || { echo "cannot read a major from '$PG_VERSION'" >&2; exit 1; }

# The one version source: the [package] version of Cargo.toml.
VERSION=$(cargo pkgid -p snowflake_id | sed -E 's/.*[#@]//')
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "bad version '$VERSION'" >&2; exit 1; }
DEB_REVISION=${DEB_REVISION:-1}
ARCH=$(dpkg --print-architecture)
NAME=postgresql-$PG_MAJOR-snowflake-id
OUT=$ROOT/target/deb
STAGE=$OUT/$NAME
PKGDIR=$ROOT/target/release/snowflake_id-pg$PG_MAJOR
# Debian's layout (postgresql-common), the same for every major.
DEB_LIBDIR=/usr/lib/postgresql/$PG_MAJOR/lib
DEB_EXTDIR=/usr/share/postgresql/$PG_MAJOR/extension
# The documents shipped in /usr/share/doc/<package>/, besides the copyright file.
DOCS=(README.md docs/packages.md docs/operations.md)

source packaging/pgrx-home.sh
pgrx_home_for "$PG_CONFIG" "$PG_MAJOR" "$ROOT"
echo "== cargo pgrx package (release, $PG_VERSION, version $VERSION, PGRX_HOME=$PGRX_HOME)" >&2
rm -rf "$PKGDIR"
cargo pgrx package --pg-config "$PG_CONFIG" >&2

# cargo pgrx package lays the files out at the pg_config's own directories; they move to
# Debian's, and nothing else may have been laid out.
LIBDIR=$("$PG_CONFIG" --pkglibdir)
EXTDIR=$("$PG_CONFIG" --sharedir)/extension
rm -rf "$STAGE"
mkdir -p "$STAGE$DEB_LIBDIR" "$STAGE$DEB_EXTDIR"
cp "$PKGDIR$LIBDIR"/snowflake_id.so "$STAGE$DEB_LIBDIR"/
cp "$PKGDIR$EXTDIR"/snowflake_id* "$STAGE$DEB_EXTDIR"/
made=$(cd "$PKGDIR" && find . -type f | wc -l)
taken=$(cd "$STAGE" && find . -type f | wc -l)
[ "$made" = "$taken" ] || { echo "cargo pgrx package made $made files, the package takes $taken:" >&2; (cd "$PKGDIR" && find . -type f) >&2; exit 1; }
SO=$STAGE$DEB_LIBDIR/snowflake_id.so
for f in "$SO" "$STAGE$DEB_EXTDIR/snowflake_id.control" "$STAGE$DEB_EXTDIR/snowflake_id--$VERSION.sql"; do
  [ -f "$f" ] || { echo "cargo pgrx package did not produce ${f#"$STAGE"}" >&2; exit 1; }
done
strip --strip-unneeded "$SO"
chmod 0644 "$SO" "$STAGE$DEB_EXTDIR"/*

DOC=$STAGE/usr/share/doc/$NAME
mkdir -p "$DOC"
for d in "${DOCS[@]}"; do
  [ -f "$d" ] || { echo "build-deb.sh: $d is missing (DOCS in packaging/build-deb.sh lists it)" >&2; exit 1; }
  cp "$d" "$DOC"/
done
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
