#!/usr/bin/env bash
# Installs what the client-language tests (tests/tests/clients.rs) run, fast when already done:
#   - target/clients/venv: Python virtual environment (Debian's pip refuses the system Python)
#     with tests/clients/python/requirements.txt, reinstalled when that file changes;
#   - tests/clients/node/node_modules: `npm ci` from package-lock.json, when the lock changes;
#   - pgjdbc from Debian (libpostgresql-jdbc-java, /usr/share/java/postgresql.jar), and the Java
#     recipe compiled with javac into target/clients/java (Maven Central is not used).
# Python 3, Node >= 20 and a JDK >= 17 must be on the machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/target/clients
mkdir -p "$OUT"
export DEBIAN_FRONTEND=noninteractive
need_deb=()
for p in python3-venv libpostgresql-jdbc-java; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_deb+=("$p")
done
if ((${#need_deb[@]})); then
  echo "== clients: installing Debian packages: ${need_deb[*]}"
  apt-get install -y -qq --no-install-recommends "${need_deb[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_deb[@]}" >/dev/null; }
fi

# Python: Debian's interpreter (not whatever python3 comes first on PATH), as CI has it.
REQ=$ROOT/tests/clients/python/requirements.txt
VENV=$OUT/venv
if ! cmp -s "$REQ" "$VENV/requirements.installed"; then
  echo "== clients: Python venv $VENV"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
  cp "$REQ" "$VENV/requirements.installed"
fi

# Node: exactly the locked tree.
NODE=$ROOT/tests/clients/node
if ! cmp -s "$NODE/package-lock.json" "$NODE/node_modules/.package-lock.json.installed"; then
  echo "== clients: npm ci in tests/clients/node"
  (cd "$NODE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$NODE/package-lock.json" "$NODE/node_modules/.package-lock.json.installed"
fi

# Java: compiled when a source is newer than its class.
JAVA_SRC=$ROOT/tests/clients/java
mkdir -p "$OUT/java"
for src in "$JAVA_SRC"/*.java; do
  cls=$OUT/java/$(basename "${src%.java}").class
  if [ ! -f "$cls" ] || [ "$src" -nt "$cls" ]; then
    echo "== clients: javac $(basename "$src")"
    javac -d "$OUT/java" -cp /usr/share/java/postgresql.jar "$src"
  fi
done
