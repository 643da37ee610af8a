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
    crate::draw::next_id()
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

/// What `snowflake_stats()` reports, read once per call.
struct Row {
    s: snowflake_core::generator::Stats,
    node: Option<i32>,
    last_ms: u64,
    issued_any: bool,
    started: bool,
    wal: (u64, u64, u64, u64),
}

impl Row {
    fn read() -> Row {
        let s = shmem::stats();
        Row {
            node: guc::node_id().map(i32::from),
            last_ms: s.last_tick >> layout::SEQUENCE_BITS,
            issued_any: s.issued > 0,
            started: s.ceiling_ms > 0,
            wal: crate::wal::counters(),
            s,
        }
    }

    fn last_id(&self) -> Option<i64> {
        match self.node {
            Some(n) if self.issued_any => layout::compose(self.s.last_tick, n as u16).ok(),
            _ => None,
        }
    }

    fn drift_ms(&self) -> i64 {
        if self.issued_any {
            layout::unix_ms(self.last_ms) - SystemClock::unix_ms()
        } else {
            0
        }
    }
}

/// `snowflake_stats()`'s columns, each named, typed and computed once. Two functions share
/// them: this release's, and the one that releases up to 0.3.0 declare, with only the first
/// group (so a server running this library before `ALTER EXTENSION snowflake_id UPDATE` still
/// answers it). (A macro: pgrx reads a function's columns from its signature.)
macro_rules! stats_functions {
    (
        base: [$($b:ident: [$($bt:tt)+] = $bv:expr,)*]
        wal: [$($w:ident: [$($wt:tt)+] = $wv:expr,)*]
    ) => {
        /// The generator's state and counters since the server started (or crash-restarted),
        /// and the ceilings in the WAL since then: the highest replayed (the floor received from
        /// a primary, a restore or crash recovery) and the highest this server logged. EXECUTE
        /// is granted to `pg_monitor` only; `state_file` is NULL for a caller that may not read
        /// `data_directory`. (Its C symbol is new in 0.4.0: the 0.3.0 definition, with fewer
        /// columns, keeps its own.)
        #[pg_extern(name = "snowflake_stats", volatile, parallel_safe)]
        #[allow(clippy::type_complexity)]
        fn snowflake_stats_v2() -> TableIterator<
            'static,
            ($(name!($b, $($bt)+),)* $(name!($w, $($wt)+),)*),
        > {
            let row = Row::read();
            TableIterator::once(($(($bv)(&row),)* $(($wv)(&row),)*))
        }

        /// `snowflake_stats()` as releases up to 0.3.0 declare it. Not in this release's SQL.
        #[pg_extern(sql = false, volatile, parallel_safe)]
        #[allow(clippy::type_complexity)]
        fn snowflake_stats() -> TableIterator<'static, ($(name!($b, $($bt)+),)*)> {
            let row = Row::read();
            TableIterator::once(($(($bv)(&row),)*))
        }
    };
}

stats_functions! {
    base: [
        node_id: [Option<i32>] = |r: &Row| r.node,
        last_id: [Option<i64>] = |r: &Row| r.last_id(),
        last_id_time: [Option<TimestampWithTimeZone>] =
            |r: &Row| r.issued_any.then(|| timestamptz_of_ms(r.last_ms)),
        issued: [i64] = |r: &Row| r.s.issued as i64,
        drift_ms: [i64] = |r: &Row| r.drift_ms(),
        max_borrowed_ms: [i64] = |r: &Row| r.s.max_borrowed_ms as i64,
        drift_waits: [i64] = |r: &Row| r.s.drift_waits as i64,
        drift_wait_ms: [f64] = |r: &Row| r.s.drift_wait_us as f64 / 1000.0,
        clock_steps: [i64] = |r: &Row| r.s.clock_steps as i64,
        clock_behind_ms: [i64] = |r: &Row| r.s.clock_behind_ms as i64,
        ceiling: [Option<TimestampWithTimeZone>] =
            |r: &Row| r.started.then(|| timestamptz_of_ms(r.s.ceiling_ms)),
        ceiling_writes: [i64] = |r: &Row| r.s.ceiling_writes as i64,
        ceiling_waits: [i64] = |r: &Row| r.s.ceiling_waits as i64,
        started_at: [Option<TimestampWithTimeZone>] = |r: &Row| {
            r.started.then(|| {
                timestamptz_of_ms((r.s.started_unix_ms - layout::EPOCH_UNIX_MS).max(0) as u64)
            })
        },
        state_file: [Option<String>] =
            |_: &Row| may_read_settings().then(|| shmem::state_path().display().to_string()),
    ]
    wal: [
        wal_floor: [Option<TimestampWithTimeZone>] =
            |r: &Row| (r.wal.1 > 0).then(|| timestamptz_of_ms(r.wal.0)),
        wal_records_replayed: [i64] = |r: &Row| r.wal.1 as i64,
        wal_ceiling: [Option<TimestampWithTimeZone>] =
            |r: &Row| (r.wal.3 > 0).then(|| timestamptz_of_ms(r.wal.2)),
        wal_records_written: [i64] = |r: &Row| r.wal.3 as i64,
    ]
}

extension_sql!(
    r#"
REVOKE ALL ON FUNCTION snowflake_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowflake_stats() TO pg_monitor;
"#,
    name = "snowflake_stats_acl",
    requires = [snowflake_stats_v2],
);
