#!/usr/bin/env bash
# Holds a private mount namespace in which Debian's PostgreSQL 15 has no snowflake_id and `dpkg -i`
# of a package changes nothing outside it (packaging/deb-overlay.sh), for the quick-start test of
# tests/tests/packaging.rs, which runs each step in it with `nsenter --target <this pid> --mount`.
#
#   unshare --mount --propagation private bash packaging/deb-sandbox.sh <workdir>
#
# Prints `ready` once the namespace is set up, then waits until its stdin is closed. A server
# started in the namespace keeps it (and its overlays) alive until the server stops.
set -euo pipefail
WORK=$(realpath -m "$1")
PG_CONFIG=/usr/bin/pg_config
source "$(dirname "$0")/deb-overlay.sh"
rm -rf "$WORK"
mkdir -p "$WORK"
deb_overlay "$WORK" "$("$PG_CONFIG" --pkglibdir)" "$("$PG_CONFIG" --sharedir)/extension"
echo ready
# stdin closed (or the caller gone): the namespace is released with its last process
while read -r _; do :; done
