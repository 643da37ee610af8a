#!/usr/bin/env bash
# RUSTC_WRAPPER used by scripts/test.sh to type-check the pg13..pg18 features on a machine that
# only has PostgreSQL 15: it compiles pgrx-pg-sys with `--cfg docsrs`, which makes it use the
# bindings pregenerated for every major (with DOCS_RS=1 its build script skips bindgen).
rustc=$1; shift
for a in "$@"; do
  if [ "$a" = pgrx_pg_sys ]; then exec "$rustc" "$@" --cfg docsrs; fi
done
exec "$rustc" "$@"
