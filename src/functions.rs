//! The SQL surface. Decoders are `IMMUTABLE STRICT PARALLEL SAFE` so they can back expression
//! indexes; `snowflake_nextval()` is `VOLATILE` (every call a new value) and parallel safe (the
//! state is in shared memory, the node id is a server-wide setting).

use crate::{errors, guc, shmem};
use pgrx::prelude::*;
use snowflake_core::clock::SystemClock;
use snowflake_core::layout::{self, Parts};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_UNIX_US: i64 = 946_684_800_000_000;

fn parts(id: i64) -> Parts {
    layout::decode(id).unwrap_or_else(|e| errors::bad_id(e))
}

fn timestamptz_of_ms(ms_since_epoch: u64) -> TimestampWithTimeZone {
    let pg_us = layout::unix_ms(ms_since_epoch) * 1000 - PG_EPOCH_UNIX_US;
    TimestampWithTimeZone::try_from(pg_us).unwrap_or_else(|_| {
        errors::bad_timestamp(format!("{ms_since_epoch} ms is not a timestamp"))
    })
}

/// The next Snowflake ID of this server: unique across the cluster (by node id), strictly
/// increasing on this server.
#[pg_extern(volatile, parallel_safe)]
fn snowflake_nextval() -> i64 {
    shmem::next_id()
}

/// The millisecond an ID was issued at.
/// `snowflake_nextval()`'s signature and wrapper with nothing behind it, returning an ID-sized
/// constant (the same output cost). Not in the extension's SQL: the benchmark declares it from
/// the library (`snowflake_noop_wrapper`) to tell pgrx's call wrapper's cost from the generator's.
#[pg_extern(sql = false, volatile, parallel_safe)]
fn snowflake_noop() -> i64 {
    253_080_630_940_676_096
}

#[pg_extern(immutable, strict, parallel_safe)]
fn snowflake_timestamp(id: i64) -> TimestampWithTimeZone {
    timestamptz_of_ms(parts(id).ms)
}

/// The node id an ID was issued by.
#[pg_extern(immutable, strict, parallel_safe)]
fn snowflake_node(id: i64) -> i32 {
    parts(id).node.into()
}

/// The sequence number of an ID within its millisecond.
#[pg_extern(immutable, strict, parallel_safe)]
fn snowflake_sequence(id: i64) -> i32 {
    parts(id).sequence.into()
}

/// All three fields of an ID.
#[pg_extern(immutable, strict, parallel_safe)]
fn snowflake_parse(
    id: i64,
) -> TableIterator<
    'static,
    (
        name!(ts, TimestampWithTimeZone),
        name!(node, i32),
        name!(sequence, i32),
    ),
> {
    let p = parts(id);
    TableIterator::once((timestamptz_of_ms(p.ms), p.node.into(), p.sequence.into()))
}

/// The smallest ID of the millisecond holding `ts` (node 0, sequence 0): every ID issued at or
/// after `ts`'s millisecond, by any node, is `>=` it. For range scans on an ID primary key.
#[pg_extern(immutable, strict, parallel_safe)]
fn snowflake_from_timestamp(ts: TimestampWithTimeZone) -> i64 {
    if ts.is_infinity() || ts.is_neg_infinity() {
        errors::bad_timestamp("infinite timestamps have no Snowflake ID".into());
    }
    let pg_us: i64 = ts.into();
    let unix_ms = pg_us
        .checked_add(PG_EPOCH_UNIX_US)
        .map(|us| us.div_euclid(1000))
        .unwrap_or_else(|| errors::bad_timestamp(format!("{ts} is outside the Snowflake range")));
    layout::first_id_at(unix_ms).unwrap_or_else(|e| errors::bad_timestamp(e.to_string()))
}

/// Whether the caller may learn paths of the data directory, as `data_directory` itself.
fn may_read_settings() -> bool {
    // SAFETY: catalog lookups of the current user inside a transaction.
    unsafe {
        pg_sys::has_privs_of_role(
            pg_sys::GetUserId(),
            pg_sys::Oid::from(crate::compat::READ_ALL_SETTINGS),
        )
    }
}

/// One row of `snowflake_stats()`, in column order.
type StatsRow = (
    Option<i32>,
    Option<i64>,
    Option<TimestampWithTimeZone>,
    i64,
    i64,
    i64,
    i64,
    f64,
    i64,
    i64,
    Option<TimestampWithTimeZone>,
    i64,
    i64,
    Option<TimestampWithTimeZone>,
    Option<String>,
);

/// The generator's state and counters since the server started (or crash-restarted).
fn stats_row() -> StatsRow {
    let s = shmem::stats();
    let node = guc::node_id().map(i32::from);
    let last_ms = s.last_tick >> layout::SEQUENCE_BITS;
    let issued_any = s.issued > 0;
    let last_id = match node {
        Some(n) if issued_any => layout::compose(s.last_tick, n as u16).ok(),
        _ => None,
    };
    let drift = if issued_any {
        layout::unix_ms(last_ms) - SystemClock::unix_ms()
    } else {
        0
    };
    let started = s.ceiling_ms > 0;
    (
        node,
        last_id,
        issued_any.then(|| timestamptz_of_ms(last_ms)),
        s.issued as i64,
        drift,
        s.max_borrowed_ms as i64,
        s.drift_waits as i64,
        s.drift_wait_us as f64 / 1000.0,
        s.clock_steps as i64,
        s.clock_behind_ms as i64,
        started.then(|| timestamptz_of_ms(s.ceiling_ms)),
        s.ceiling_writes as i64,
        s.ceiling_waits as i64,
        started
            .then(|| timestamptz_of_ms((s.started_unix_ms - layout::EPOCH_UNIX_MS).max(0) as u64)),
        may_read_settings().then(|| shmem::state_path().display().to_string()),
    )
}

/// The generator's state and counters since the server started (or crash-restarted), and the
/// ceilings in the WAL since then: the highest replayed (the floor received from a primary, a
/// restore or crash recovery) and the highest this server logged. EXECUTE is granted to
/// `pg_monitor` only; `state_file` is NULL for a caller that may not read `data_directory`.
/// (Its C symbol is new in 0.4.0: the 0.3.0 definition, with fewer columns, keeps its own.)
#[pg_extern(name = "snowflake_stats", volatile, parallel_safe)]
#[allow(clippy::type_complexity)]
fn snowflake_stats_v2() -> TableIterator<
    'static,
    (
        name!(node_id, Option<i32>),
        name!(last_id, Option<i64>),
        name!(last_id_time, Option<TimestampWithTimeZone>),
        name!(issued, i64),
        name!(drift_ms, i64),
        name!(max_borrowed_ms, i64),
        name!(drift_waits, i64),
        name!(drift_wait_ms, f64),
        name!(clock_steps, i64),
        name!(clock_behind_ms, i64),
        name!(ceiling, Option<TimestampWithTimeZone>),
        name!(ceiling_writes, i64),
        name!(ceiling_waits, i64),
        name!(started_at, Option<TimestampWithTimeZone>),
        name!(state_file, Option<String>),
        name!(wal_floor, Option<TimestampWithTimeZone>),
        name!(wal_records_replayed, i64),
        name!(wal_ceiling, Option<TimestampWithTimeZone>),
        name!(wal_records_written, i64),
    ),
> {
    let r = stats_row();
    let (replayed_ms, replayed, logged_ms, logged) = crate::wal::counters();
    TableIterator::once((
        r.0,
        r.1,
        r.2,
        r.3,
        r.4,
        r.5,
        r.6,
        r.7,
        r.8,
        r.9,
        r.10,
        r.11,
        r.12,
        r.13,
        r.14,
        (replayed > 0).then(|| timestamptz_of_ms(replayed_ms)),
        replayed as i64,
        (logged > 0).then(|| timestamptz_of_ms(logged_ms)),
        logged as i64,
    ))
}

/// `snowflake_stats()` as releases up to 0.3.0 declare it (15 columns), for a server running
/// this library before `ALTER EXTENSION snowflake_id UPDATE`. Not in this release's SQL.
#[pg_extern(sql = false, volatile, parallel_safe)]
#[allow(clippy::type_complexity)]
fn snowflake_stats() -> TableIterator<
    'static,
    (
        name!(node_id, Option<i32>),
        name!(last_id, Option<i64>),
        name!(last_id_time, Option<TimestampWithTimeZone>),
        name!(issued, i64),
        name!(drift_ms, i64),
        name!(max_borrowed_ms, i64),
        name!(drift_waits, i64),
        name!(drift_wait_ms, f64),
        name!(clock_steps, i64),
        name!(clock_behind_ms, i64),
        name!(ceiling, Option<TimestampWithTimeZone>),
        name!(ceiling_writes, i64),
        name!(ceiling_waits, i64),
        name!(started_at, Option<TimestampWithTimeZone>),
        name!(state_file, Option<String>),
    ),
> {
    TableIterator::once(stats_row())
}

extension_sql!(
    r#"
REVOKE ALL ON FUNCTION snowflake_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowflake_stats() TO pg_monitor;
"#,
    name = "snowflake_stats_acl",
    requires = [snowflake_stats_v2],
);
