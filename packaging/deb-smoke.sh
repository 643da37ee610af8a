#!/usr/bin/env bash
# Installs a snowflake_id .deb with `dpkg -i` into a throw-away view of this machine, starts a
# fresh PostgreSQL 15 server on it through the cluster tool (`snowcluster`) and calls the
# functions. Used by tests/tests/packaging.rs.
#
#   cargo build --release -p snowflake_cluster     # before: Rust is hidden below
#   unshare --mount --propagation private bash packaging/deb-smoke.sh <deb> <workdir> <port> \
#     [<snowcluster>]                               # default: target/release/snowcluster
#
# Inside the private mount namespace, overlays (packaging/deb-overlay.sh) make the real `dpkg -i`
# below change nothing outside this process tree and start from no snowflake_id files, and tmpfs
# covers the Rust toolchain, so the package is shown to work on a machine without Rust or a
# previous install.
# Prints `key=value` lines for the test to check.
set -euo pipefail
DEB=$(realpath "$1")
WORK=$(realpath -m "$2")
PORT=$3
SNOWCLUSTER=$(realpath "${4:-$(dirname "$0")/../target/release/snowcluster}")
[ -x "$SNOWCLUSTER" ] || { echo "no $SNOWCLUSTER: cargo build --release -p snowflake_cluster first" >&2; exit 2; }

# The .deb is for Debian's PostgreSQL 15; the cluster tool reads the install from its pg_config.
PG_CONFIG=/usr/bin/pg_config
eval "$("$SNOWCLUSTER" --pg-config "$PG_CONFIG" info)"
[ "$PG_MAJOR" = 15 ] || { echo "$PG_CONFIG is PostgreSQL $PG_MAJOR, the .deb is for 15" >&2; exit 2; }
BIN=$PG_BIN
LIBDIR=$PG_PKGLIBDIR
EXTDIR=$PG_SHAREDIR/extension

rm -rf "$WORK"
mkdir -p "$WORK"
source "$(dirname "$0")/deb-overlay.sh"
deb_overlay "$WORK" "$LIBDIR" "$EXTDIR"
# No Rust on this "machine".
for d in "${HOME:-/root}/.cargo" "${HOME:-/root}/.rustup" "${CARGO_HOME:-/nonexistent}" "${RUSTUP_HOME:-/nonexistent}" /usr/local/cargo /usr/local/rustup; do
  [ -d "$d" ] && mount -t tmpfs -o size=1m none "$d"
done
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# A system-wide toolchain too (e.g. Debian's rustc): /dev/null over each binary in PATH.
for p in $(which -a rustc cargo rustup 2>/dev/null || true); do
  mount --bind /dev/null "$(realpath "$p")"
done
hash -r
works() { "$@" >/dev/null 2>&1 && echo yes || echo no; }
echo "rustc_works=$(works rustc --version)"
echo "cargo_works=$(works cargo --version)"

# deb_overlay left a machine where snowflake_id is not installed.
echo "preinstalled_files=$(ls "$LIBDIR" "$EXTDIR" | grep -c snowflake_id || true)"

dpkg -i "$DEB" >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; exit 1; }
echo "dpkg_status=$(dpkg-query -W -f='${Status} ${Version}' postgresql-15-snowflake-id)"
echo "owner_of_so=$(dpkg -S "$LIBDIR/snowflake_id.so" | cut -d: -f1)"
echo "so_needs=$(objdump -p "$LIBDIR/snowflake_id.so" | awk '/NEEDED/ {print $2}' | sort | tr '\n' ' ')"
echo "extension_files=$(cd "$EXTDIR" && ls snowflake_id* | tr '\n' ' ')"

# One node, no replication engine: $WORK/deb-node1 (data/, server.log, the socket).
node=(--pg-config "$PG_CONFIG" --dir "$WORK" --name deb --nodes 1 --port "$PORT")
DATA=$WORK/deb-node1/data
trap '"$SNOWCLUSTER" down "${node[@]}" --immediate >/dev/null 2>&1 || true' EXIT
"$SNOWCLUSTER" up "${node[@]}" --engine none --node-ids 77 >"$WORK/snowcluster.log" 2>&1 \
  || { cat "$WORK/snowcluster.log" >&2; exit 1; }
q() { "$BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "$1"; }
q "CREATE EXTENSION snowflake_id"
echo "extversion=$(q "SELECT extversion FROM pg_extension WHERE extname = 'snowflake_id'")"
echo "library=$(q "SELECT DISTINCT probin FROM pg_proc WHERE proname LIKE 'snowflake%'")"
q "CREATE TABLE audit_log(id bigint PRIMARY KEY DEFAULT snowflake_nextval(), note text)"
q "INSERT INTO audit_log(note) SELECT 'row ' || g FROM generate_series(1, 1000) g"
echo "rows=$(q "SELECT count(DISTINCT id) FROM audit_log")"
echo "nodes=$(q "SELECT string_agg(DISTINCT snowflake_node(id)::text, ',') FROM audit_log")"
echo "age_ms=$(q "SELECT round(extract(epoch FROM clock_timestamp() - snowflake_timestamp(max(id))) * 1000) FROM audit_log")"
echo "parse_node=$(q "SELECT node FROM snowflake_parse(snowflake_nextval())")"
echo "stats_issued=$(q "SELECT issued FROM snowflake_stats()")"
echo "stats_state_file=$(q "SELECT state_file FROM snowflake_stats()")"
"$SNOWCLUSTER" down "${node[@]}" >>"$WORK/snowcluster.log" 2>&1
echo "state_file_exists=$([ -f "$DATA/snowflake_id.state" ] && echo yes || echo no)"
echo "done=yes"
