# Sourced by scripts/install-from-source.sh, and by `xtask package` (xtask/src/package.rs) through
# `bash -c`, which reads the chosen PGRX_HOME back:
#
#   pgrx_home_for <pg_config> <major> <project root>
#
# pgrx compiles against the server headers of the pg_config that $PGRX_HOME/config.toml names
# for the major being built; `--pg-config` of `cargo pgrx install/package` only decides where the
# files go. So the configuration used must name exactly the given pg_config for that major. This
# exports PGRX_HOME as the first of $PGRX_HOME (default ~/.pgrx, where scripts/setup.sh puts 15
# and 18) and target/pgrx-majors (where scripts/pg-major.sh puts 16 and 17) that does; else it
# adds the pg_config to target/pgrx-majors with `cargo pgrx init`, which rewrites the whole file,
# so the entries already there are passed along.
pgrx_home_for() {
  local pg_config=$1 major=$2 root=$3 home line key value
  local entry="pg$major = \"$pg_config\""
  for home in "${PGRX_HOME:-$HOME/.pgrx}" "$root/target/pgrx-majors"; do
    if grep -qsxF "$entry" "$home/config.toml"; then
      export PGRX_HOME=$home
      return 0
    fi
  done
  home=$root/target/pgrx-majors
  local args=()
  if [ -f "$home/config.toml" ]; then
    while IFS= read -r line; do
      if [[ $line =~ ^(pg[0-9]+)\ =\ \"(.*)\"$ ]]; then
        key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
        [ "$key" = "pg$major" ] || args+=("--$key" "$value")
      fi
    done <"$home/config.toml"
  fi
  echo "== cargo pgrx init --pg$major $pg_config (PGRX_HOME=$home)" >&2
  mkdir -p "$home"
  PGRX_HOME=$home cargo pgrx init "${args[@]}" "--pg$major" "$pg_config" >&2
  export PGRX_HOME=$home
}
