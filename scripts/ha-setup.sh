#!/usr/bin/env bash
# Installs the tools the high-availability tests (tests/tests/ha.rs) run as ordinary processes:
# Patroni, etcd, PgBouncer and the Prometheus exporter for PostgreSQL, from Debian. Idempotent.
# The tests start these programs themselves on loopback ports and stop them; the services the
# packages would start (etcd on 2379, pgbouncer on 6432, the exporter on 9187) must not run, so
# that nothing holds a port or a data directory when a session or CI starts: they are kept from
# starting during the install (policy-rc.d), and stopped and disabled should they run anyway.
set -euo pipefail
PACKAGES=(patroni etcd-server pgbouncer prometheus-postgres-exporter)
SERVICES=(etcd pgbouncer prometheus-postgres-exporter patroni)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "== installing Debian packages for the HA tests: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # invoke-rc.d asks policy-rc.d whether a service may start: 101 says no. Keep an existing one.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  trap '[ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Should a service run anyway (a machine where the install did start it), stop and disable it.
for s in "${SERVICES[@]}"; do
  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    systemctl disable --now "$s" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$s" ]; then
    service "$s" stop >/dev/null 2>&1 || true
    update-rc.d "$s" disable >/dev/null 2>&1 || true
  fi
done
# Without an init system, a daemon started by a package is found by its pid file.
for pidfile in /run/etcd.pid /run/postgresql/pgbouncer.pid /run/prometheus-postgres-exporter.pid; do
  if [ -s "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
  fi
done
