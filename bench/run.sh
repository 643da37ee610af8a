#!/usr/bin/env bash
# Benchmarks of snowflake_id, side by side with the usual ways to make keys, as ratios within one
# run on one server (so noise between machines does not matter).
#
#   bash bench/run.sh                 # full run (about 35 minutes), results in bench/results/
#   BENCH_QUICK=1 bash bench/run.sh   # smoke test (about 3 minutes), results in .run/bench/quick/
#
# It installs the release build, starts its own PostgreSQL 15 cluster under .run/bench (as user
# postgres, port 25801, library preloaded, node id 1), runs every case BENCH_REPS (3) times,
# interleaved, and writes RESULTS.md (also printed), raw.tsv and the charts. The server is
# stopped when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=/usr/lib/postgresql/15/bin
PORT=${BENCH_PORT:-25801}
RUN=$ROOT/.run/bench
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  T=${BENCH_T:-2}; BULK_N=500000; LONG_N=12000000; CONT_N=500000; DUP_N=100000
  GROW_ROWS=2000000; GROW_BATCH=500000; OUT=${BENCH_OUT:-$RUN/quick}
else
  T=${BENCH_T:-20}; BULK_N=5000000; LONG_N=20000000; CONT_N=5000000; DUP_N=1000000
  GROW_ROWS=${BENCH_GROW_ROWS:-20000000}; GROW_BATCH=1000000; OUT=${BENCH_OUT:-$ROOT/bench/results}
fi
REPS=${BENCH_REPS:-3}
CLIENTS=8; THREADS=2
SQL_DIR=$ROOT/bench/sql
WORK=$RUN/work
RAW=$OUT/raw.tsv

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop() { as_pg "$BIN/pg_ctl" -D "$RUN/data" -m fast -w stop >/dev/null 2>&1 || true; }
PSQL=("$BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$RUN" -p "$PORT" -U postgres -d postgres)
q() { "${PSQL[@]}" -c "$1"; }
pgb() { "$BIN/pgbench" -h "$RUN" -p "$PORT" -U postgres -n "$@" postgres; }
tps_of() { awk '/^tps = /{print $3; exit}'; }
lat_of() { awk '/^latency average = /{print $4; exit}'; }
# Server CPU: backends that exit are reaped by the postmaster, which adds their user + system
# time to its own cutime + cstime. The delta over a pgbench run, per transaction, is the CPU the
# server spent per call, which other jobs on a shared machine inflate much less than the tps.
srv_ticks() { awk '{print $16 + $17}' "/proc/$(head -1 "$RUN/data/postmaster.pid")/stat"; }
pgb_cpu() { # pgbench args -> "tps server_cpu_us_per_transaction"
  local c0 c1 out n
  c0=$(srv_ticks); out=$(pgb "$@"); sleep 0.3; c1=$(srv_ticks)
  n=$(awk '/actually processed/ {split($NF, a, "/"); print a[1]}' <<< "$out")
  echo "$(tps_of <<< "$out") $(calc %.2f "($c1 - $c0) * 1e6 / $(getconf CLK_TCK) / $n")"
}
rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RAW"; }
med() { awk -F'\t' -v s="$1" -v c="$2" '$1==s && $2==c {print $4}' "$RAW" | sort -g |
        awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }
runs() { awk -F'\t' -v s="$1" -v c="$2" '$1==s && $2==c {printf "%s%s", sep, $4; sep=" / "}' "$RAW"; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }

# Wait until borrowed milliseconds are paid back, so each snowflake run starts from the clock.
settle() { while [ "$(q "SELECT drift_ms > 0 FROM snowflake_stats()")" = t ]; do sleep 0.2; done; }
stat() { q "SELECT $1 FROM snowflake_stats()"; }

# name | SQL expression | label
GENS=(
  "select1|1|SELECT 1 (no generator)"
  "snowflake|snowflake_nextval()|snowflake_nextval()"
  "seq1|nextval('bench_seq_c1')|nextval(), cache 1"
  "seq100|nextval('bench_seq_c100')|nextval(), cache 100"
  "uuid|gen_random_uuid()|gen_random_uuid() (UUIDv4)"
  "insta|bench_insta_id()|Instagram-style PL/pgSQL"
  "offset|nextval('bench_seq_offset')|offset sequence (step 1024, start = node)"
  "tsstr|to_char(clock_timestamp(), 'YYYYMMDDHH24MISSUS')|timestamp string (µs)"
)
# Bulk and paired runs only, for scale: the cost of calling a cheap function.
# isn_weak() is a C function of the contrib extension isn that only returns a setting: what calling
# any extension's C function costs, next to which snowflake_nextval()'s own work can be seen.
BULK_EXTRA=("random|random()|random() (cheap built-in, for scale)"
            "isnweak|isn_weak()|isn_weak() (contrib isn: a C function returning a setting)")
gname() { echo "${1%%|*}"; }
gexpr() { local r=${1#*|}; echo "${r%%|*}"; }
glabel() { echo "${1##*|}"; }
label_of() { local g; for g in "${GENS[@]}" "${BULK_EXTRA[@]}"; do [ "$(gname "$g")" = "$1" ] && glabel "$g"; done; }

CONT_GENS=(select1 snowflake seq1 seq100 uuid)
KEYS=(sf serial uuid)
klabel() { case $1 in sf) echo "snowflake_nextval() bigint";; serial) echo "bigserial";; uuid) echo "gen_random_uuid() uuid";; esac; }
META=$OUT/meta.env
if [ "${BENCH_REPORT_ONLY:-0}" = 1 ]; then   # rebuild RESULTS.md and charts from the last run
  mkdir -p "$WORK"; . "$META"
else
bash scripts/setup.sh
echo "== building and installing the extension (release)"
cargo pgrx install --release --pg-config /usr/bin/pg_config >/dev/null
d=$ROOT; while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done

[ -f "$RUN/data/postmaster.pid" ] && stop
rm -rf "$RUN/data" "$WORK"; mkdir -p "$RUN" "$WORK" "$OUT"; chown postgres: "$RUN" 2>/dev/null || true
as_pg "$BIN/initdb" -D "$RUN/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
cat >> "$RUN/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$RUN'
shared_preload_libraries = 'snowflake_id'
snowflake_id.node_id = 1
max_connections = 40
shared_buffers = 256MB
synchronous_commit = off
max_wal_size = 4GB
jit = off
max_parallel_workers_per_gather = 0
autovacuum = off
work_mem = 1GB
CONF
trap stop EXIT
# Start right after the install: the postmaster keeps the release .so it loads now.
as_pg "$BIN/pg_ctl" -D "$RUN/data" -l "$RUN/server.log" -w start >/dev/null
"${PSQL[@]}" -f "$SQL_DIR/setup.sql" >/dev/null

: > "$RAW"

START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)

# 1. Round trip ---------------------------------------------------------------------------------
echo "== 1. round trip: pgbench -T $T -c $CLIENTS -j $THREADS, $REPS runs each, interleaved"
for g in "${GENS[@]}"; do echo "SELECT $(gexpr "$g");" > "$WORK/rt_$(gname "$g").sql"; done
for rep in $(seq "$REPS"); do
  for g in "${GENS[@]}"; do
    n=$(gname "$g")
    read -r tps cpu < <(pgb_cpu -T "$T" -c "$CLIENTS" -j "$THREADS" -f "$WORK/rt_$n.sql")
    rec rt "$n" "$rep" "$tps"; rec rtcpu "$n" "$rep" "$cpu"
    printf '   run %s  %-10s %12.0f tps  server CPU %s us/call\n' "$rep" "$n" "$tps" "$cpu"
  done
done

# 2. Bulk ---------------------------------------------------------------------------------------
# One query in its own session; prints its wall time (psql \timing) and the CPU time its backend
# used (utime + stime from /proc), which the other jobs on a shared machine do not inflate.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
bulk_run() { # sql file
  local f=$WORK/bulk_out.txt pid="" c0 c1 bg
  rm -f "$f"
  { echo "SELECT pg_backend_pid();"; echo "SELECT pg_sleep(0.3);"; echo '\timing on'; cat "$1"
    echo '\timing off'; echo "SELECT pg_sleep(0.5);"; } | "${PSQL[@]}" > "$f" &
  bg=$!
  until [[ $pid =~ ^[0-9]+$ ]]; do sleep 0.02; pid=$(head -1 "$f" 2>/dev/null || true); done
  c0=$(cpu_ticks "$pid")
  until grep -q '^Time:' "$f"; do sleep 0.02; done
  c1=$(cpu_ticks "$pid"); wait "$bg"
  echo "$(awk '/^Time:/ {print $2}' "$f") $(( (c1 - c0) * 1000 / $(getconf CLK_TCK) ))"
}
echo "== 2. bulk: count over $BULK_N generated values in one backend, $REPS runs each"
for g in "${GENS[@]}" "${BULK_EXTRA[@]}"; do
  echo "SELECT count(x) FROM (SELECT $(gexpr "$g") AS x FROM generate_series(1, $BULK_N)) s;" \
    > "$WORK/bulk_$(gname "$g").sql"
done
MAX_DRIFT=$(q "SELECT setting FROM pg_settings WHERE name = 'snowflake_id.max_drift_ms'")
WAITS0=$(stat drift_waits); ISSUED0=$(stat issued)
for rep in $(seq "$REPS"); do
  for g in "${GENS[@]}" "${BULK_EXTRA[@]}"; do
    n=$(gname "$g"); [ "$n" = snowflake ] && settle
    read -r ms cpu < <(bulk_run "$WORK/bulk_$n.sql")
    rec bulk "$n" "$rep" "$ms"; rec bulkcpu "$n" "$rep" "$cpu"
    printf '   run %s  %-10s %10.1f ms  (backend CPU %s ms)\n' "$rep" "$n" "$ms" "$cpu"
  done
done
BULK_BORROWED=$(stat max_borrowed_ms); BULK_WAITS=$(( $(stat drift_waits) - WAITS0 ))
BULK_ISSUED=$(( $(stat issued) - ISSUED0 ))

# 2c. Paired runs. On a shared VM the machine's speed drifts by tens of percent over minutes, more
# than the differences measured here, so medians of runs minutes apart carry that drift. Here each
# pair is SELECT 1, snowflake_nextval(), random() and isn_weak() back to back in short runs: one
# ratio (round trip) or difference (bulk) per pair, and the median over the pairs. random() and
# isn_weak() show what calling a built-in and an extension's C function costs by itself.
PAIRS=${BENCH_PAIRS:-$([ "$QUICK" = 1 ] && echo 3 || echo 10)}
PAIR_T=${BENCH_PAIR_T:-$([ "$QUICK" = 1 ] && echo 1 || echo 4)}
PAIR_GENS=(select1 snowflake random isnweak)
echo "SELECT random();" > "$WORK/rt_random.sql"
echo "SELECT isn_weak();" > "$WORK/rt_isnweak.sql"
echo "== 2c. paired runs: $PAIRS x (${PAIR_GENS[*]}), round trip -T $PAIR_T, then bulk"
for i in $(seq "$PAIRS"); do
  line="   pair $i:"
  for n in "${PAIR_GENS[@]}"; do
    read -r tps cpu < <(pgb_cpu -T "$PAIR_T" -c "$CLIENTS" -j "$THREADS" -f "$WORK/rt_$n.sql")
    rec prt "$n" "$i" "$tps"; rec prtcpu "$n" "$i" "$cpu"; line+=" $n $(calc %.0f "$tps") tps"
  done
  for n in "${PAIR_GENS[@]}"; do
    [ "$n" = snowflake ] && settle
    read -r ms cpu < <(bulk_run "$WORK/bulk_$n.sql")
    rec pbulk "$n" "$i" "$ms"; rec pbulkcpu "$n" "$i" "$cpu"; line+=" $n ${cpu} ms CPU"
  done
  echo "$line"
done

# A poller samples snowflake_stats() every 50 ms while the load runs: IDs issued and the lead of
# the newest ID over the clock, whatever the number of backends.
long_run() { # name backends ids_per_backend drift_bound_ms
  local name=$1 c=$2 n=$3 bound=$4 i
  settle
  for i in $(seq 2400); do
    echo "SELECT round(extract(epoch FROM clock_timestamp()) * 1000, 1), issued, drift_ms, drift_waits FROM snowflake_stats();"
    echo "SELECT pg_sleep(0.05);"
  done | "${PSQL[@]}" -F, > "$OUT/$name.csv" 2>/dev/null &
  local poller=$!
  sleep 0.3
  # Ten IDs per row, so that the row machinery costs little next to the generator.
  echo "SELECT count(greatest($(printf 'snowflake_nextval()%.0s, ' $(seq 9))snowflake_nextval())) FROM generate_series(1, $((n / 10)));" > "$WORK/$name.sql"
  pgb -t 1 -c "$c" -j "$THREADS" -f "$WORK/$name.sql" >/dev/null
  sleep 0.3
  kill "$poller" 2>/dev/null || true; wait "$poller" 2>/dev/null || true
  sed -i '/^$/d' "$OUT/$name.csv"
  # Phases by the lead of the newest ID: under 100 ms, borrowing up to the bound, at the bound.
  awk -F, -v bound="$bound" -v name="$name" '
    NR == 1 { tp=$1; ip=$2; i0=$2; dp=$3; next }
    { dt=$1-tp; di=$2-ip; atb=(dp >= bound - 10 && $3 >= bound - 10); tp=$1; ip=$2; dp=$3
      if (di == 0) next
      if (!t0) t0=$1-dt
      ph = atb ? "sustained" : ($3 < 100) ? "hot" : "borrow"
      n[ph]+=di; t[ph]+=dt; last=$1; lasti=$2 }
    END { for (p in n) printf "%s\t%s\t%d\t%.1f\n", name, p, n[p], t[p]
          printf "%s\ttotal\t%d\t%.1f\n", name, lasti-i0, last-t0 }' "$OUT/$name.csv" >> "$WORK/long_phases.tsv"
  printf '   %s: %s\n' "$name" "$(grep -P "^$name\t" "$WORK/long_phases.tsv" | cut -f2- | tr '\t\n' ' ;')"
}
: > "$WORK/long_phases.tsv"
echo "== 2b. $LONG_N IDs in one query, then $((LONG_N / 2)) in each of 2 backends at once: sustained rate vs 4,096 IDs per ms"
LW0=$(stat drift_waits)
long_run long1 1 "$LONG_N" "$MAX_DRIFT"
LW1=$(stat drift_waits)
long_run long2 2 $((LONG_N / 2)) "$MAX_DRIFT"
LW2=$(stat drift_waits)
# A slow machine may not outrun 4,096 IDs/ms by enough to use up the default 2 s allowance; with
# a smaller one the limiter is reached early and the rest of the run shows the sustained rate.
SMALL_DRIFT=200
q "ALTER SYSTEM SET snowflake_id.max_drift_ms = $SMALL_DRIFT" >/dev/null; q "SELECT pg_reload_conf()" >/dev/null; sleep 1
long_run long3 2 $((LONG_N / 2)) "$SMALL_DRIFT"
q "ALTER SYSTEM RESET snowflake_id.max_drift_ms" >/dev/null; q "SELECT pg_reload_conf()" >/dev/null; sleep 1
LW3=$(stat drift_waits)

# 3. Contention ---------------------------------------------------------------------------------
CONT_GENS=(select1 snowflake seq1 seq100 uuid)
echo "== 3. contention: 2 and $CLIENTS backends, $CONT_N values each, $REPS runs each"
for g in "${GENS[@]}"; do
  n=$(gname "$g")
  echo "SELECT count(x) FROM (SELECT $(gexpr "$g") AS x FROM generate_series(1, $CONT_N)) s;" \
    > "$WORK/cont_$n.sql"
  echo "INSERT INTO bench_dup SELECT ($(gexpr "$g"))::text FROM generate_series(1, $DUP_N);" \
    > "$WORK/dup_$n.sql"
done
for rep in $(seq "$REPS"); do
  for c in 2 "$CLIENTS"; do
    for n in "${CONT_GENS[@]}"; do
      [ "$n" = snowflake ] && settle
      tps=$(pgb -t 1 -c "$c" -j "$THREADS" -f "$WORK/cont_$n.sql" | tps_of)
      rate=$(calc %.0f "$tps * $CONT_N")
      rec "cont$c" "$n" "$rep" "$rate"; printf '   run %s  %s backends %-10s %12.0f IDs/s\n' "$rep" "$c" "$n" "$rate"
    done
  done
done
echo "== duplicate checks: backends insert $DUP_N values each at the same time"
dup_check() { # backends generator
  settle; q "TRUNCATE bench_dup"
  pgb -t 1 -c "$1" -j "$THREADS" -f "$WORK/dup_$2.sql" >/dev/null
  local r; r=$(q "SET work_mem = '512MB'; SELECT count(*) || ' ' || (count(*) - count(DISTINCT v)) FROM bench_dup")
  rec "dup$1" "$2" 1 "$r"; printf '   %s backends %-10s rows/duplicates %s\n' "$1" "$2" "$r"
}
dup_check 1 snowflake; dup_check 2 snowflake; dup_check "$CLIENTS" snowflake
for n in seq1 seq100 uuid insta offset tsstr; do dup_check 1 "$n"; dup_check "$CLIENTS" "$n"; done
q "TRUNCATE bench_dup"

# 4. Inserts ------------------------------------------------------------------------------------
KEYS=(sf serial uuid)
klabel() { case $1 in sf) echo "snowflake_nextval() bigint";; serial) echo "bigserial";; uuid) echo "gen_random_uuid() uuid";; esac; }
echo "== 4. inserts: pgbench -T $T -c $CLIENTS -j $THREADS, one row per transaction"
for k in "${KEYS[@]}"; do
  printf '\\set uid random(1, 100000)\nINSERT INTO bench_audit_%s (user_id, action, detail) VALUES (:uid, '"'update'"', '"'email changed'"');\n' "$k" > "$WORK/ins_$k.sql"
done
for rep in $(seq "$REPS"); do
  for k in "${KEYS[@]}"; do
    q "TRUNCATE bench_audit_$k" >/dev/null; q "CHECKPOINT" >/dev/null
    read -r tps cpu < <(pgb_cpu -T "$T" -c "$CLIENTS" -j "$THREADS" -f "$WORK/ins_$k.sql")
    rec inscpu "$k" "$rep" "$cpu"
    rows=$(q "SELECT count(*) FROM bench_audit_$k")
    idx=$(q "SELECT pg_relation_size('bench_audit_${k}_pkey')")
    rec ins "$k" "$rep" "$tps"; rec insidx "$k" "$rep" "$(calc %.1f "$idx * 1e6 / $rows")"
    printf '   run %s  %-7s %10.0f rows/s  %9s rows  pkey %s bytes\n' "$rep" "$k" "$tps" "$rows" "$idx"
  done
done

echo "== 4b. growth: $GROW_ROWS rows per table in batches of $GROW_BATCH, key types interleaved"
for k in "${KEYS[@]}"; do
  echo "INSERT INTO bench_grow_$k (user_id, action, detail) SELECT g % 100000, 'update', 'email changed' FROM generate_series(1, $GROW_BATCH) g;" > "$WORK/grow_$k.sql"
done
echo "key,rows,rows_per_s,pkey_bytes,heap_bytes" > "$OUT/growth.csv"
q "CHECKPOINT" >/dev/null
for b in $(seq $((GROW_ROWS / GROW_BATCH))); do
  line="   $((b * GROW_BATCH)) rows:"
  for k in "${KEYS[@]}"; do
    ms=$(pgb -t 1 -c 1 -f "$WORK/grow_$k.sql" | lat_of)
    sizes=$(q "SELECT pg_relation_size('bench_grow_${k}_pkey') || ',' || pg_relation_size('bench_grow_$k')")
    rate=$(calc %.0f "$GROW_BATCH * 1000 / $ms")
    echo "$k,$((b * GROW_BATCH)),$rate,$sizes" >> "$OUT/growth.csv"
    line+=$(printf ' %s %7s rows/s' "$k" "$rate")
  done
  echo "$line"
done

END_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(( ($(date +%s) - T0) / 60 ))
PGVER=$(q "SELECT version()")
cp "$WORK/long_phases.tsv" "$OUT/long_phases.tsv"
for v in START_DATE END_DATE LOAD_BEFORE LOAD_AFTER ELAPSED PGVER MAX_DRIFT BULK_BORROWED BULK_WAITS \
         BULK_ISSUED LW0 LW1 LW2 LW3 SMALL_DRIFT QUICK PAIRS PAIR_T; do printf '%s=%q\n' "$v" "${!v}"; done > "$META"
fi
cp "$OUT/long_phases.tsv" "$WORK/long_phases.tsv"

# Report ----------------------------------------------------------------------------------------
CPU=$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')
MACHINE="$CPU, $(nproc) vCPU, $(awk '/MemTotal/ {printf "%.0f GB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r), clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo '?')"
REF_RT=$(med rt select1)
REF_BULK=$(med bulk select1)
REF_CPU=$(med bulkcpu select1)
# Paired runs: the median over the pairs of a ratio a/b, or of a difference a-b per bulk value (ns).
pratio() { awk -F'\t' -v s="$1" -v a="$2" -v b="$3" '$1==s && $2==a {x[$3]=$4} $1==s && $2==b {y[$3]=$4}
    END {for (r in x) if ((r in y) && y[r] > 0) print x[r] / y[r]}' "$RAW" | sort -g |
  awk '{v[NR]=$1} END {if (NR) printf "%.3f", (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; else print "nan"}'; }
pdiff() { awk -F'\t' -v s="$1" -v a="$2" -v b="$3" '$1==s && $2==a {x[$3]=$4} $1==s && $2==b {y[$3]=$4}
    END {for (r in x) if (r in y) print x[r] - y[r]}' "$RAW" | sort -g |
  awk -v n="$BULK_N" '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "%.1f", m * 1e6 / n}'; }
# Net of the baseline: the median over the runs of (generator - baseline) in the same round of the
# interleaved runs; and the best of 3 (fastest generator run minus fastest baseline run).
pnet() { pdiff "$1" "$2" select1; }
bmin() { awk -F'\t' -v s="$1" -v c="$2" '$1==s && $2==c && (m == "" || $4 < m) {m=$4} END {print m}' "$RAW"; }
net_ns() { pnet bulk "$1"; }
net_cpu() { pnet bulkcpu "$1"; }
best_cpu() { calc %.1f "($(bmin bulkcpu "$1") - $(bmin bulkcpu select1)) * 1e6 / $BULK_N"; }
SEQ1_NET=$(net_ns seq1)
SF_NET=$(net_ns snowflake)
SF_CPU=$(net_cpu snowflake); SEQ1_CPU=$(net_cpu seq1)
SF_BEST=$(best_cpu snowflake); SEQ1_BEST=$(best_cpu seq1)
P_RT=$(pratio prt snowflake select1); P_RT_RANDOM=$(pratio prt random select1)
P_RT_ISN=$(pratio prt isnweak select1); P_RT_SF_ISN=$(pratio prt snowflake isnweak)
P_RTCPU=$(pratio prtcpu select1 snowflake); P_RTCPU_RANDOM=$(pratio prtcpu select1 random)
P_BULK=$(pdiff pbulkcpu snowflake select1); P_BULK_RANDOM=$(pdiff pbulkcpu random select1)
P_BULK_ISN=$(pdiff pbulkcpu isnweak select1)
P_BULK_WALL=$(pdiff pbulk snowflake select1); P_BULK_WALL_RANDOM=$(pdiff pbulk random select1)
SF_RT_RATIO=$(calc %.3f "$(med rt snowflake) / $REF_RT")
SF_RT_CPU=$(calc %.3f "$(med rtcpu select1) / $(med rtcpu snowflake)")
phase() { awk -F'\t' -v r="$1" -v p="$2" -v f="$3" 'BEGIN {v = (f == "n" || f == "ms") ? "-" : 0}
  $1==r && $2==p {v = (f=="n") ? $3 : (f=="ms") ? $4 : ($4 > 0 ? $3/$4 : 0)} END {print v}' "$WORK/long_phases.tsv"; }
SUST=$(phase long1 sustained rate); SUST_PCT=$(calc %.1f "$SUST * 100 / 4096")
SUST2=$(phase long2 sustained rate); SUST2_PCT=$(calc %.1f "$SUST2 * 100 / 4096")
SUST3=$(phase long3 sustained rate); SUST3_PCT=$(calc %.1f "$SUST3 * 100 / 4096")
ins_ratio() { calc %.3f "$(med ins "$1") / $(med ins serial)"; }
last_grow() { awk -F, -v k="$1" -v c="$2" '$1==k {v=$c} END {print v}' "$OUT/growth.csv"; }
grow_rate() { # key first|last|mean
  awk -F, -v k="$1" -v w="$2" '$1==k {n++; if (n==1) f=$3; l=$3; s+=$3}
    END {print (w=="first") ? f : (w=="last") ? l : s/n}' "$OUT/growth.csv"; }
mib() { calc %.1f "$1 / 1048576"; }
dups() { awk -F'\t' -v s="dup$1" -v c="$2" '$1==s && $2==c {split($4, a, " "); print a[2]}' "$RAW"; }
yes_no() { [ "$(awk "BEGIN {print ($1) ? 1 : 0}")" = 1 ] && echo "**met**" || echo "**not met**"; }

{
echo "# snowflake_id benchmark results"
echo
echo "- **Date**: $START_DATE to $END_DATE ($ELAPSED min)$([ "$QUICK" = 1 ] && echo ", QUICK mode (short runs, for smoke tests only)")"
echo "- **Machine**: $MACHINE"
echo "- **PostgreSQL**: $PGVER"
echo "- **Load average** (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER. The machine was shared with other"
echo "  jobs (builds and tests) during the run, so absolute figures are noisy; compare the ratios, which"
echo "  come from the same run on the same server, with the cases interleaved."
echo "- **Server**: shared_buffers 256MB, synchronous_commit off, max_wal_size 4GB, jit off, no parallel"
echo "  query, autovacuum off; library preloaded, node id 1, snowflake_id.max_drift_ms $MAX_DRIFT."
echo "- **Server CPU** columns: the user + system time of the backends (the postmaster's cutime + cstime"
echo "  over the run, or \`/proc/<pid>/stat\` of the one backend), per call or per value. Other jobs"
echo "  on the machine slow the wall clock of a run much more than they change its CPU per call."
echo "- Each case ran $REPS times; the figure is the median, all runs are listed. Command: \`bash bench/run.sh\`."
echo
echo "## Targets"
echo
echo "| target | measured | |"
echo "|---|---|---|"
echo "| round trip: snowflake_nextval() >= 0.97 of SELECT 1 | $PAIRS paired runs (median): tps $P_RT, server CPU $P_RTCPU (random(): $P_RT_RANDOM, $P_RTCPU_RANDOM; isn_weak(): $P_RT_ISN; snowflake_nextval() / isn_weak(): $P_RT_SF_ISN); medians of the $REPS long runs: tps $SF_RT_RATIO, server CPU $SF_RT_CPU | paired tps: $(yes_no "$P_RT >= 0.97"); long runs: $(yes_no "$SF_RT_RATIO >= 0.97") |"
echo "| bulk: $BULK_N IDs within the drift bound | max lead $BULK_BORROWED ms of $MAX_DRIFT, $BULK_WAITS drift waits | $(yes_no "$BULK_WAITS == 0 && $BULK_BORROWED < $MAX_DRIFT") |"
echo "| bulk: at CPU speed, a few tens of ns per ID (net of the baseline; taken as < 50) | $PAIRS paired runs (median): backend CPU $P_BULK ns/ID, wall clock $P_BULK_WALL ns/ID (random(): $P_BULK_RANDOM and $P_BULK_WALL_RANDOM); $REPS long rounds: backend CPU $SF_CPU ns/ID (median), $SF_BEST ns/ID (best of $REPS), wall clock $SF_NET ns/ID | paired CPU: $(yes_no "$P_BULK < 50"); best of $REPS: $(yes_no "$SF_BEST < 50") |"
echo "| bulk: >= 2x faster than nextval() cache 1 | CPU: $(calc %.1f "$SEQ1_CPU / $SF_CPU")x (paired), $(calc %.1f "$SEQ1_BEST / $SF_BEST")x (best of $REPS); wall clock: $(calc %.1f "$SEQ1_NET / $SF_NET")x | $(yes_no "$SEQ1_BEST >= 2 * $SF_BEST && $SEQ1_NET >= 2 * $SF_NET") |"
# Met when every run that reached the bound sustained >= 99% (and at least one did).
sust_ok() { local r ok=0 bad=0
  for r in long1 long2 long3; do
    [ "$(phase "$r" sustained n)" = - ] && continue
    if [ "$(awk "BEGIN {print ($(phase "$r" sustained rate) * 100 / 4096 >= 99)}")" = 1 ]; then ok=1; else bad=1; fi
  done
  [ $ok = 1 ] && [ $bad = 0 ] && echo "**met**" || echo "**not met**"; }
sust_cell() { [ "$(phase "$1" sustained n)" = - ] && echo "bound not reached (CPU-bound, $(calc %.0f "$(phase "$1" total rate)") IDs/ms over the run)" || echo "$(calc %.0f "$(phase "$1" sustained rate)") IDs/ms = $(calc %.1f "$(phase "$1" sustained rate) * 100 / 4096")%"; }
echo "| $LONG_N IDs: sustained rate >= 99% of 4,096 IDs/ms once the drift allowance is used | 1 backend: $(sust_cell long1); 2 backends: $(sust_cell long2); 2 backends, max_drift_ms $SMALL_DRIFT: $(sust_cell long3) | $(sust_ok) |"
echo "| contention: 0 duplicates with 2 and $CLIENTS backends | $(dups 2 snowflake) and $(dups "$CLIENTS" snowflake) | $(yes_no "$(dups 2 snowflake) == 0 && $(dups "$CLIENTS" snowflake) == 0") |"
INS_CPU=$(calc %.3f "$(med inscpu serial) / $(med inscpu sf)")
echo "| inserts: >= 0.98 of bigserial's rate ($CLIENTS clients) | tps: $(ins_ratio sf); server CPU: $INS_CPU | tps: $(yes_no "$(ins_ratio sf) >= 0.98"); CPU: $(yes_no "$INS_CPU >= 0.98") |"
echo "| growth: primary-key index no bigger than bigserial's at $GROW_ROWS rows | $(mib "$(last_grow sf 4)") MiB vs $(mib "$(last_grow serial 4)") MiB | $(yes_no "$(last_grow sf 4) <= $(last_grow serial 4)") |"
echo "| growth: UUIDv4 falls behind as the table grows | last/first batch rate: uuid $(calc %.2f "$(grow_rate uuid last) / $(grow_rate uuid first)"), bigserial $(calc %.2f "$(grow_rate serial last) / $(grow_rate serial first)"), snowflake $(calc %.2f "$(grow_rate sf last) / $(grow_rate sf first)") | see chart |"
echo
echo "## 1. Round trip: \`SELECT <generator>;\`, pgbench -T $T -c $CLIENTS -j $THREADS (Unix socket)"
echo
echo "tps: transactions per second (pgbench). Server CPU: user + system time of the backends per"
echo "transaction (see the note at the top); its ratio is SELECT 1's CPU per call over the generator's."
echo
echo "| generator | median tps | runs | ratio to SELECT 1 (tps) | server CPU µs per call | ratio to SELECT 1 (CPU) |"
echo "|---|---:|---|---:|---:|---:|"
for g in "${GENS[@]}"; do
  n=$(gname "$g"); m=$(med rt "$n")
  echo "| $(glabel "$g") | $(calc %.0f "$m") | $(runs rt "$n" | awk '{gsub(/\.[0-9]+/, ""); print}') | $(calc %.3f "$m / $REF_RT") | $(med rtcpu "$n") | $(calc %.3f "$(med rtcpu select1) / $(med rtcpu "$n")") |"
done
echo
echo "## 2. Bulk: \`SELECT count(x) FROM (SELECT <generator> AS x FROM generate_series(1, $BULK_N)) s\`"
echo
echo "Net = time per value minus the baseline's (the same query with the constant \`1\`), as the median over"
echo "the rounds of the interleaved runs of (generator - baseline of the same round); best of $REPS = fastest"
echo "generator run minus fastest baseline run. Wall = psql \`\\timing\`;"
echo "CPU = user + system time of the backend (from \`/proc\`, 10 ms resolution), which other jobs on a"
echo "shared machine inflate much less than the wall clock."
echo
echo "| generator | median wall ms | runs (ms) | net wall ns/value | CPU ms, runs | net CPU ns/value | best of $REPS net CPU ns/value | speed vs nextval() cache 1 (best CPU) |"
echo "|---|---:|---|---:|---|---:|---:|---:|"
for g in "${GENS[@]}" "${BULK_EXTRA[@]}"; do
  n=$(gname "$g"); m=$(med bulk "$n")
  if [ "$n" = select1 ]; then net="(baseline)"; netc="(baseline)"; bc=""; sp="";
  else net=$(net_ns "$n"); netc=$(net_cpu "$n"); bc=$(best_cpu "$n"); sp="$(calc %.2f "$SEQ1_BEST / $bc")x"; fi
  echo "| $(glabel "$g") | $(calc %.1f "$m") | $(runs bulk "$n" | awk '{gsub(/\.[0-9]+/, ""); print}') | $net | $(runs bulkcpu "$n") | $netc | $bc | $sp |"
done
echo
echo "snowflake_nextval() over the $REPS bulk runs ($BULK_ISSUED IDs, expected $((REPS * BULK_N))): largest lead of an ID over"
echo "the clock $BULK_BORROWED ms (bound $MAX_DRIFT ms), drift waits $BULK_WAITS. $BULK_N IDs are $(calc %.0f "$BULK_N / 4096") ms of ID space."
echo
echo "### Paired runs: SELECT 1, snowflake_nextval(), random() and isn_weak() back to back, $PAIRS times"
echo
echo "The machine's speed drifts over minutes (a shared VM), so the cases above, each run minutes apart from"
echo "its reference, carry that drift. Here every pair runs the four back to back: round trip pgbench"
echo "\`-T $PAIR_T -c $CLIENTS -j $THREADS\`, then the bulk query over $BULK_N values. Ratios and differences are taken"
echo "within each pair; the figure is their median. \`random()\` is a built-in function and \`isn_weak()\` a C function"
echo "of the contrib extension \`isn\` that only returns a setting: what a call costs before the function does anything."
echo
echo "| pair | round trip tps: SELECT 1 / snowflake / random / isn_weak | snowflake / SELECT 1 | snowflake / isn_weak | bulk backend CPU ms: SELECT 1 / snowflake / random / isn_weak | snowflake net ns/ID |"
echo "|---|---|---:|---:|---|---:|"
for i in $(seq "$PAIRS"); do
  v() { awk -F'\t' -v s="$1" -v c="$2" -v r="$i" '$1==s && $2==c && $3==r {print $4}' "$RAW"; }
  echo "| $i | $(calc %.0f "$(v prt select1)") / $(calc %.0f "$(v prt snowflake)") / $(calc %.0f "$(v prt random)") / $(calc %.0f "$(v prt isnweak)") | $(calc %.3f "$(v prt snowflake) / $(v prt select1)") | $(calc %.3f "$(v prt snowflake) / $(v prt isnweak)") | $(v pbulkcpu select1) / $(v pbulkcpu snowflake) / $(v pbulkcpu random) / $(v pbulkcpu isnweak) | $(calc %.1f "($(v pbulkcpu snowflake) - $(v pbulkcpu select1)) * 1e6 / $BULK_N") |"
done
echo "| **median** | | **$P_RT** (random(): $P_RT_RANDOM, isn_weak(): $P_RT_ISN) | **$P_RT_SF_ISN** | | **$P_BULK** (random(): $P_BULK_RANDOM, isn_weak(): $P_BULK_ISN) |"
echo
echo "### Sustained rate: $LONG_N IDs in one query, then $((LONG_N / 2)) in each of 2 backends at once"
echo
echo "The query is \`SELECT count(greatest(snowflake_nextval(), ... ten calls)) FROM generate_series(1, N / 10)\`."
echo "$LONG_N IDs are $(calc %.0f "$LONG_N / 4096") ms of ID space. A poller read \`snowflake_stats()\` every 50 ms (\`long1.csv\`,"
echo "\`long2.csv\`, chart \`sustained.png\`); the intervals are grouped by how far the newest ID led the clock."
echo "Drift waits: $((LW1 - LW0)) (one backend), $((LW2 - LW1)) (two backends), $((LW3 - LW2)) (two backends with"
echo "\`snowflake_id.max_drift_ms\` = $SMALL_DRIFT, a third run added because a loaded 2-vCPU machine may not outrun"
echo "4,096 IDs/ms by enough to use up the default 2 s allowance within $LONG_N IDs)."
echo
echo "| run | phase | IDs | ms | IDs per ms | share of 4,096/ms |"
echo "|---|---|---:|---:|---:|---:|"
for r in long1 long2 long3; do
  for p in hot borrow sustained total; do
    case $p in hot) l="lead < 100 ms";; borrow) l="lead 100 ms .. bound";; sustained) l="**at the bound (sustained)**";; total) l="whole run";; esac
    case $r in long1) rl="1 backend";; long2) rl="2 backends";; long3) rl="2 backends, bound $SMALL_DRIFT ms";; esac
    echo "| $rl | $l | $(phase $r $p n) | $(phase $r $p ms) | $(calc %.0f "$(phase $r $p rate)") | $(calc %.1f "$(phase $r $p rate) * 100 / 4096")% |"
  done
done
echo
echo "## 3. Contention: backends running the bulk query at once ($CONT_N values each)"
echo
echo "| generator | 2 backends: IDs/s | vs baseline | $CLIENTS backends: IDs/s | vs baseline | share of 4,096/ms at $CLIENTS |"
echo "|---|---:|---:|---:|---:|---:|"
for n in "${CONT_GENS[@]}"; do
  a=$(med cont2 "$n"); b=$(med "cont$CLIENTS" "$n")
  share=""; [ "$n" = snowflake ] && share="$(calc %.1f "$b / 4096000 * 100")%"
  echo "| $(label_of "$n") | $(calc %.0f "$a") | $(calc %.3f "$a / $(med cont2 select1)") | $(calc %.0f "$b") | $(calc %.3f "$b / $(med "cont$CLIENTS" select1)") | $share |"
done
echo
echo "### Duplicate checks: each backend inserts $DUP_N values at the same time, then \`count(*) - count(DISTINCT)\`"
echo
echo "| generator | backends | values | duplicates |"
echo "|---|---:|---:|---:|"
awk -F'\t' '$1 ~ /^dup/ {split($4, a, " "); print substr($1, 4) "\t" $2 "\t" a[1] "\t" a[2]}' "$RAW" |
while IFS=$'\t' read -r c n rows d; do echo "| $(label_of "$n") | $c | $rows | $d |"; done
echo
echo "## 4. Inserts into an audit table, one row per transaction, pgbench -T $T -c $CLIENTS -j $THREADS"
echo
echo "| primary key | median rows/s | runs | ratio to bigserial (tps) | server CPU µs per row | ratio to bigserial (CPU) | pkey bytes per 1M rows |"
echo "|---|---:|---|---:|---:|---:|---:|"
for k in "${KEYS[@]}"; do
  echo "| $(klabel "$k") | $(calc %.0f "$(med ins "$k")") | $(runs ins "$k" | awk '{gsub(/\.[0-9]+/, ""); print}') | $(ins_ratio "$k") | $(med inscpu "$k") | $(calc %.3f "$(med inscpu serial) / $(med inscpu "$k")") | $(calc %.0f "$(med insidx "$k")") |"
done
echo
echo "### Growth to $GROW_ROWS rows (\`INSERT ... SELECT\` of $GROW_BATCH rows per batch, one backend, key types interleaved)"
echo
echo "| primary key | rows/s first batch | rows/s last batch | mean | pkey size at end | table size at end | pkey vs bigserial |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for k in "${KEYS[@]}"; do
  echo "| $(klabel "$k") | $(grow_rate "$k" first) | $(grow_rate "$k" last) | $(calc %.0f "$(grow_rate "$k" mean)") | $(mib "$(last_grow "$k" 4)") MiB | $(mib "$(last_grow "$k" 5)") MiB | $(calc %.3f "$(last_grow "$k" 4) / $(last_grow serial 4)") |"
done
echo
echo "Per batch: \`growth.csv\`; chart: \`growth.png\`."
echo
echo "## 5. What snowflake_id replaces"
echo
echo "The timestamp string, the offset sequence and the Instagram-style function are rows of the tables"
echo "above. Timestamp strings (\`to_char(clock_timestamp(), 'YYYYMMDDHH24MISSUS')\`) repeat whenever two"
echo "calls fall in one microsecond: $(dups 1 tsstr) duplicates in $DUP_N from one backend, $(dups "$CLIENTS" tsstr) in"
echo "$((DUP_N * CLIENTS)) from $CLIENTS. Offset sequences (\`INCREMENT BY 1024 START WITH <node>\`, the"
echo "\`auto_increment_increment\`/\`auto_increment_offset\` pattern) are unique but cost a sequence call"
echo "(cache 1 to keep the order across sessions) and sort by node's counter, not by time across nodes. The Instagram"
echo "function repeats once more than 1,024 IDs fall in one millisecond: $(dups 1 insta) duplicates from one backend,"
echo "$(dups "$CLIENTS" insta) from $CLIENTS."
} > "$OUT/RESULTS.md"

# Charts ----------------------------------------------------------------------------------------
for g in "${GENS[@]}"; do
  n=$(gname "$g"); printf '"%s"\t%s\t%s\n' "$(glabel "$g" | sed 's/µ/u/')" "$(calc %.4f "$(med rt "$n") / $REF_RT")" "$(calc %.4f "$(med rtcpu select1) / $(med rtcpu "$n")")"
done > "$WORK/rt_ratio.dat"
for k in "${KEYS[@]}"; do awk -F, -v k="$k" '$1==k {print $2/1e6, $3, $4/1048576}' "$OUT/growth.csv" > "$WORK/grow_$k.dat"; done
gnuplot -e "out='$OUT/roundtrip.png'; dat='$WORK/rt_ratio.dat'; subtitle='$START_DATE, $(nproc) vCPU $CPU, PostgreSQL 15, pgbench -T $T -c $CLIENTS, median of $REPS'" "$ROOT/bench/roundtrip.gp"
gnuplot -e "out='$OUT/growth.png'; dir='$WORK'; subtitle='$START_DATE, $(nproc) vCPU $CPU, PostgreSQL 15, INSERT ... SELECT $GROW_BATCH rows per batch'" "$ROOT/bench/growth.gp"
for r in long1 long2 long3; do  # time from the last sample before the first ID
  awk -F, 'NR==1 {i0=$2} !go && $2 == i0 {t0=$1; next} {go=1; print ($1-t0)/1000, ($2-i0)/1e6, $3}' "$OUT/$r.csv" > "$WORK/$r.dat"
done
gnuplot -e "out='$OUT/sustained.png'; dir='$WORK'; bound=$MAX_DRIFT; small=$SMALL_DRIFT; subtitle='$START_DATE, $(nproc) vCPU $CPU, PostgreSQL 15'" "$ROOT/bench/sustained.gp"

cat "$OUT/RESULTS.md"
echo "== results in $OUT (RESULTS.md, raw.tsv, growth.csv, long1.csv, long2.csv, long3.csv, roundtrip.png, growth.png, sustained.png)"
