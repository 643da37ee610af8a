//! Configuration parameters.
//!
//! `snowflake_id.node_id` is `PGC_POSTMASTER`: set in `postgresql.conf` (or with `ALTER SYSTEM`)
//! and applied by a restart. A reload cannot change it, so a server never issues IDs under two
//! node ids at once (a backend applies a reload only between statements, so a long statement
//! would go on under the old id while new backends used the new one), and every ID after a
//! change is above every ID before it (the ceiling carries across the restart). `SET` is refused
//! for every role. Such a parameter can only be defined while the library is preloaded; loaded
//! any other way the SQL functions raise the "not preloaded" ERROR instead.
//!
//! `snowflake_id.max_drift_ms` is `PGC_SIGHUP`: it bounds how far IDs lead the clock and can
//! change at any time without affecting uniqueness.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use snowflake_core::generator::DEFAULT_MAX_DRIFT_MS;
use snowflake_core::layout::MAX_NODE;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the library was preloaded: only then does it have its shared memory, its WAL
/// resource manager and its `PGC_POSTMASTER` settings.
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// An ERROR unless the library was preloaded.
pub fn require_preloaded() {
    if !preloaded() {
        crate::errors::not_preloaded();
    }
}

pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

/// The configured node id, or an ERROR (not preloaded, or not set).
pub fn require_node_id() -> u16 {
    require_preloaded();
    node_id().unwrap_or_else(|| crate::errors::node_id_unset())
}

/// `-1` means "not configured": `snowflake_nextval()` then raises an ERROR.
pub const NODE_ID_UNSET: i32 = -1;

pub static NODE_ID: GucSetting<i32> = GucSetting::<i32>::new(NODE_ID_UNSET);
pub static MAX_DRIFT_MS: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_MAX_DRIFT_MS as i32);

pub fn define(preloading: bool) {
    PRELOADED.store(preloading, Ordering::Relaxed);
    if preloading {
        GucRegistry::define_int_guc(
            c"snowflake_id.node_id",
            c"Node id (0..1023) embedded in every Snowflake ID issued by this server.",
            c"Each server that issues IDs (primaries and standbys alike) needs its own. -1 means not set: snowflake_nextval() then raises an error. Changed only by a restart.",
            &NODE_ID,
            NODE_ID_UNSET,
            i32::from(MAX_NODE),
            GucContext::Postmaster,
            GucFlags::default(),
        );
    }
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
    crate::compat::reserve_guc_prefix();
}

/// A setting's current value, read on every ID. pgrx's `GucSetting::get()` checks the calling
/// thread's identity on each read (26 instructions per ID for the two settings, measured with
/// callgrind); this reads the variable directly.
#[inline(always)]
fn read(setting: &GucSetting<i32>) -> i32 {
    // SAFETY: guc.c writes the variable only from this process's one thread, between statements
    // or at a reload; an aligned i32 read sees either the old or the new value.
    unsafe { *setting.as_ptr() }
}

/// The configured node id, `None` if unset.
pub fn node_id() -> Option<u16> {
    u16::try_from(read(&NODE_ID)).ok()
}

/// `snowflake_id.max_drift_ms`.
pub fn max_drift_ms() -> u64 {
    read(&MAX_DRIFT_MS).max(0) as u64
}
