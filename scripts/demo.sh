#!/usr/bin/env bash
# The main job: three local PostgreSQL 15 nodes in bidirectional pglogical replication write one
# audit log at the same time, with snowflake_nextval() IDs, and side by side with the broken
# yyyyMMddHHmmssSSS timestamp IDs it replaces. When replication has caught up it checks that
# every node holds the same rows, no ID repeats, pglogical logged no conflict, and IDs order the
# changes by time across nodes to the millisecond; it prints a report and exits non-zero if a
# check fails. Every server it starts is stopped at the end (or on Ctrl-C).
#
# Usage: scripts/demo.sh [--duration SECONDS] [--port FIRST_PORT] [--no-build]
# Environment (same meaning): DURATION (30), DEMO_PORT (25432; the nodes use it and the next
# two), DEMO_NAME (demo; nodes live in .run/$DEMO_NAME-node{1,2,3}), CLIENTS (connections per
# node, 4), ROWS_PER_INSERT (50), MIN_RATE (20000 rows/s, a check), DEMO_NO_BUILD=1 (skip
# setup.sh and the install: the extension is installed already), CATCHUP_TIMEOUT (600 s),
# NODE_IDS ("1 2 3"; e.g. "1 1 3" misconfigures two nodes with one id, and the checks fail),
# ORDER_SLACK_MS (100: how long a backend may take between reading changed_at and drawing the
# ID, in the ordering check), DEMO_FAULT_SQL (SQL run on node 3 after the scenario, before the
# loads: the tests use it to break a property on purpose and watch its check fail).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=/usr/lib/postgresql/15/bin
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
while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --port) PORT0=$2; shift 2 ;;
    --no-build) NO_BUILD=1; shift ;;
    *) echo "usage: $0 [--duration SECONDS] [--port FIRST_PORT] [--no-build]" >&2; exit 2 ;;
  esac
done
NODES=(1 2 3)
read -r -a IDS <<<"${NODE_IDS:-1 2 3}"
((${#IDS[@]} == 3)) || { echo "NODE_IDS needs 3 ids" >&2; exit 2; }
nid() { echo "${IDS[$1 - 1]}"; }
port() { echo $((PORT0 + $1 - 1)); }
dir() { echo "$ROOT/.run/$NAME-node$1"; }
say() { echo "== $*"; }

if [ "$NO_BUILD" != 1 ]; then
  bash scripts/setup.sh
  say "building and installing the extension (release)"
  cargo pgrx install --release --pg-config /usr/bin/pg_config >/dev/null
fi

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
d=$ROOT; while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
mkdir -p "$ROOT/.run"

PIDS=()
stop_node() { as_pg "$BIN/pg_ctl" -D "$(dir "$1")/data" -m "${2:-fast}" -w stop >/dev/null 2>&1 || true; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in "${NODES[@]}"; do stop_node "$n"; done
  [ "$rc" = 0 ] || echo "== stopped the nodes (exit $rc); logs: $ROOT/.run/$NAME-node*/server.log" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Servers of an earlier run under these names are ours: stop them, start afresh.
for n in "${NODES[@]}"; do
  if [ -f "$(dir "$n")/data/postmaster.pid" ]; then stop_node "$n" immediate; fi
  rm -rf "$(dir "$n")"
done

say "starting 3 nodes on ports $(port 1)-$(port 3) (pglogical + snowflake_id, node ids ${IDS[*]})"
for n in "${NODES[@]}"; do
  D=$(dir "$n"); mkdir -p "$D"; chown postgres: "$D" 2>/dev/null || true
  as_pg "$BIN/initdb" -D "$D/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
  cat >> "$D/data/postgresql.conf" <<CONF
# scripts/demo.sh
port = $(port "$n")
listen_addresses = '127.0.0.1'
unix_socket_directories = '$D'
max_connections = 60
shared_preload_libraries = 'pglogical,snowflake_id'
snowflake_id.node_id = $(nid "$n")
wal_level = logical
track_commit_timestamp = on
max_replication_slots = 10
max_wal_senders = 10
max_worker_processes = 16
output_plugin_libraries = 'pgoutput, test_decoding, pglogical_output'
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
log_line_prefix = '%m [%p] %b %e: '
log_min_messages = warning
pglogical.conflict_log_level = log
CONF
  as_pg "$BIN/pg_ctl" -D "$D/data" -l "$D/server.log" -w -t 120 start >/dev/null
done

psql_n() { local n=$1; shift; "$BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(port "$n")" -U postgres -d postgres "$@"; }
dsn() { echo "host=127.0.0.1 port=$(port "$1") dbname=postgres user=postgres"; }
# Polls `sql` on node `n` until it returns `t`, up to `timeout` seconds.
wait_true() {
  local n=$1 sql=$2 what=$3 timeout=${4:-120} start=$SECONDS
  until [ "$(psql_n "$n" -c "$sql" 2>/dev/null)" = t ]; do
    if ((SECONDS - start > timeout)); then echo "timed out after ${timeout}s waiting for $what on node $n" >&2; return 1; fi
    sleep 0.2
  done
}

say "schema on every node; pglogical full mesh with forward_origins = '{}'"
for n in "${NODES[@]}"; do
  psql_n "$n" -f scripts/cluster/schema.sql >/dev/null
  psql_n "$n" >/dev/null <<SQL
SELECT pglogical.create_node(node_name := 'node$n', dsn := '$(dsn "$n")');
SELECT pglogical.replication_set_add_table('default', t, synchronize_data := false)
FROM unnest(ARRAY['audit_log', 'audit_log_ts', 'demo_marker', 'snowflake_nodes']::regclass[]) t;
SQL
done
for n in "${NODES[@]}"; do
  for m in "${NODES[@]}"; do
    [ "$n" = "$m" ] && continue
    psql_n "$n" -c "SELECT pglogical.create_subscription(
        subscription_name := 'node${n}_from_node$m', provider_dsn := '$(dsn "$m")',
        replication_sets := '{default}', synchronize_structure := false,
        synchronize_data := false, forward_origins := '{}')" >/dev/null
  done
done
for n in "${NODES[@]}"; do
  wait_true "$n" "SELECT count(*) = 2 AND bool_and(status = 'replicating') FROM pglogical.show_subscription_status()" \
    "both subscriptions replicating"
done

# Waits until every node holds every node's marker of a phase: all rows written before it have
# been applied everywhere. Prints the seconds it took.
mark_and_wait() {
  local phase=$1 t0=$SECONDS
  for n in "${NODES[@]}"; do psql_n "$n" -c "INSERT INTO demo_marker(node, phase) VALUES ($n, '$phase')" >/dev/null; done
  for n in "${NODES[@]}"; do
    wait_true "$n" "SELECT count(*) = 3 FROM demo_marker WHERE phase = '$phase'" "replication of phase $phase" "$CATCHUP_TIMEOUT" >&2
  done
  echo $((SECONDS - t0))
}

say "registering the nodes in the replicated snowflake_nodes registry"
for n in "${NODES[@]}"; do psql_n "$n" -c "SELECT snowflake_register_node()" >/dev/null; done
mark_and_wait registry >/dev/null

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
scen_phase=$(mark_and_wait scenario)
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
# PIDs of the pglogical apply workers running on node n (a worker that fails exits and is
# started again under a new PID).
apply_pids() { psql_n "$1" -c "SELECT coalesce(string_agg(pid::text, ' ' ORDER BY pid), '') FROM pg_stat_activity WHERE backend_type LIKE 'pglogical apply%'"; }

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
sf_catchup=$(mark_and_wait load_snowflake)
for n in "${NODES[@]}"; do LOG1[$n]=$(log_size "$n"); APPLY1[$n]=$(apply_pids "$n"); done

say "load 2: the same load with yyyyMMddHHmmssSSS IDs (ON CONFLICT DO NOTHING keeps it running)"
run_load timestamp scripts/cluster/insert_timestamp.pgbench
ts_tx=$LOAD_TX
ts_us=$LOAD_US
ts_rows_attempted=$((ts_tx * ROWS))
say "waiting for replication to catch up"
ts_catchup=$(mark_and_wait load_timestamp)

say "checking"
declare -A APPERR APPEXIT PKDUP LEAD TSAPPERR CNT SUM TSCNT TSSUM TSLOCAL CONF TSCONF SUBS CLASH REG
for n in "${NODES[@]}"; do
  IFS='|' read -r CNT[$n] SUM[$n] < <(psql_n "$n" -c \
    "SELECT count(*), md5(string_agg(a::text, ',' ORDER BY id)) FROM audit_log a")
  IFS='|' read -r TSCNT[$n] TSSUM[$n] TSLOCAL[$n] < <(psql_n "$n" -c \
    "SELECT count(*), md5(string_agg(a::text, ',' ORDER BY id)), count(*) FILTER (WHERE written_on = $(nid "$n")) FROM audit_log_ts a")
  # Load 1's slice of the log, told apart by the prefix's backend type and SQLSTATE: ERRORs of
  # pglogical apply workers, and INSERTs a node's primary key refused as duplicates (23505).
  slice=$(log_slice "$n" "${LOG0[$n]}" "${LOG1[$n]}")
  APPERR[$n]=$(grep -cE '\] pglogical apply( [^ ]+)? [0-9A-Z]{5}: (ERROR|FATAL|PANIC): ' <<<"$slice" || true)
  PKDUP[$n]=$(grep -cE '\] client backend 23505: ERROR: ' <<<"$slice" || true)
  # Apply workers running before load 1 that were gone after it: each one exited (an apply
  # error ends the worker; pglogical starts a new one).
  APPEXIT[$n]=0
  for p in ${APPLY0[$n]}; do [[ " ${APPLY1[$n]} " == *" $p "* ]] || APPEXIT[$n]=$((APPEXIT[$n] + 1)); done
  LEAD[$n]=$(psql_n "$n" -c "SELECT max_borrowed_ms FROM snowflake_stats()")
  TSAPPERR[$n]=$(grep -A2 ' ERROR: ' "$(dir "$n")/server.log" | grep -c 'CONTEXT: .* relation public\.audit_log_ts ' || true)
  CONF[$n]=$(grep -c 'CONFLICT: .* on relation public\.audit_log ' "$(dir "$n")/server.log" || true)
  TSCONF[$n]=$(grep -c 'CONFLICT: .* on relation public\.audit_log_ts ' "$(dir "$n")/server.log" || true)
  SUBS[$n]=$(psql_n "$n" -c "SELECT count(*) FILTER (WHERE status = 'replicating') || '/' || count(*) FROM pglogical.show_subscription_status()")
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
echo "nodes: 3 x PostgreSQL 15 on 127.0.0.1:$(port 1)-$(port 3), node ids ${IDS[*]}, pglogical full mesh"
echo "  (6 subscriptions, forward_origins = '{}'), synchronous_commit = on (default)"
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
echo "  replication caught up ${sf_catchup} s after the load"
echo "  ID millisecond minus changed_at's millisecond: median $lag_p50 ms, 99.9% $lag_p999 ms, max $lag_max ms"
echo
echo "yyyyMMddHHmmssSSS IDs (the approach this replaces), same load"
echo "  rows attempted: $ts_rows_attempted ($ts_rate rows/s; at most one row per millisecond per node gets in)"
echo "  after replication: rows per node ${TSCNT[1]} / ${TSCNT[2]} / ${TSCNT[3]} of $ts_rows_attempted attempted; $((ts_rows_attempted - ts_distinct)) audit records lost on node 1"
echo "  replication conflicts (pglogical CONFLICT lines, local row overwritten): ${TSCONF[1]} / ${TSCONF[2]} / ${TSCONF[3]}"
echo "  apply workers failed on a duplicate key and restarted: ${TSAPPERR[1]} / ${TSAPPERR[2]} / ${TSAPPERR[3]} times"
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
check "0 replication conflicts" "$(b "((CONF[1] + CONF[2] + CONF[3] == 0))")" "pglogical CONFLICT lines for audit_log: ${CONF[1]} / ${CONF[2]} / ${CONF[3]}"
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
