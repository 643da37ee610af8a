//! Configuration parameters. Both are `PGC_SIGHUP`: set in `postgresql.conf` (or with
//! `ALTER SYSTEM`) and applied by a reload or restart; `SET` in a session is refused, even for
//! superusers, so no session or role can make a node issue IDs under another node's id.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use snowflake_core::generator::DEFAULT_MAX_DRIFT_MS;
use snowflake_core::layout::MAX_NODE;

/// `-1` means "not configured": `snowflake_nextval()` then raises an ERROR.
pub const NODE_ID_UNSET: i32 = -1;

pub static NODE_ID: GucSetting<i32> = GucSetting::<i32>::new(NODE_ID_UNSET);
pub static MAX_DRIFT_MS: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_MAX_DRIFT_MS as i32);

pub fn define() {
    GucRegistry::define_int_guc(
        c"snowflake_id.node_id",
        c"Node id (0..1023) embedded in every Snowflake ID issued by this server.",
        c"Each server that issues IDs (primaries and standbys alike) needs its own. -1 means not set: snowflake_nextval() then raises an error.",
        &NODE_ID,
        NODE_ID_UNSET,
        i32::from(MAX_NODE),
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"snowflake_id.max_drift_ms",
        c"How far ahead of real time a burst may borrow milliseconds before snowflake_nextval() waits.",
        c"Above 4,096 IDs per millisecond the generator borrows future milliseconds up to this bound, then sleeps until the clock catches up.",
        &MAX_DRIFT_MS,
        0,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    reserve_prefix();
}

/// Makes `snowflake_id.<typo>` an error instead of a silently ignored placeholder.
#[cfg(not(any(feature = "pg13", feature = "pg14")))]
fn reserve_prefix() {
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"snowflake_id".as_ptr()) }
}

#[cfg(any(feature = "pg13", feature = "pg14"))]
fn reserve_prefix() {
    unsafe { pgrx::pg_sys::EmitWarningsOnPlaceholders(c"snowflake_id".as_ptr()) }
}
