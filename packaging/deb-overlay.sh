# Sourced by packaging/deb-smoke.sh and packaging/deb-sandbox.sh, inside a private mount
# namespace (`unshare --mount --propagation private`):
#
#   deb_overlay <workdir> <libdir> <extdir>
#
# Overlays (upper layers under <workdir>/ovl) cover the PostgreSQL library and extension
# directories, /usr/share/doc and the dpkg database, so a real `dpkg -i` changes nothing outside
# the processes of this namespace; whatever snowflake_id files `cargo pgrx install` or an earlier
# package put there are deleted (in the overlay), so what is found afterwards came from the
# package.
deb_overlay() {
  local work=$1 libdir=$2 extdir=$3 d key
  [ "$(findmnt -n -o PROPAGATION /)" != shared ] || { echo "run me under unshare --mount --propagation private" >&2; return 2; }
  mkdir -p "$work/ovl"
  for d in "$libdir" "$extdir" /usr/share/doc /var/lib/dpkg; do
    key=$(echo "$d" | tr / _)
    mkdir -p "$work/ovl/$key/upper" "$work/ovl/$key/work"
    mount -t overlay overlay -o "lowerdir=$d,upperdir=$work/ovl/$key/upper,workdir=$work/ovl/$key/work" "$d"
  done
  rm -f "$libdir"/snowflake_id*.so "$extdir"/snowflake_id*
  for d in $(dpkg-query -W -f='${Package}\n' 'postgresql-*-snowflake-id' 2>/dev/null); do
    dpkg --purge "$d" >/dev/null
  done
}
