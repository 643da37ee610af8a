//! Replay of ceiling records: the resource manager's callbacks. Replaying a record raises the
//! replaying server's floor in shared memory; the state file gets it when replay reaches a
//! checkpoint record (a restartpoint, which may remove the WAL before it, starts from one) and at
//! the end of recovery, not once per record: archive recovery of a long history writes the file
//! once per checkpoint it replays. Also the test-only emitter of ceiling records.

use crate::wal::{self, CeilingRecord, RMGR_ID, XLOG_CEILING};
use crate::{compat, draw, guc};
use pgrx::pg_sys;
use pgrx::prelude::*;
use snowflake_core::layout;
use snowflake_core::store::Writer;

/// Registers the resource manager (only while preloading, before recovery can start).
pub fn register() {
    compat::register_custom_rmgr(
        RMGR_ID,
        c"snowflake_id",
        compat::RmgrCallbacks {
            redo,
            desc,
            identify,
            cleanup,
        },
    );
    compat::wrap_checkpoint_replay(flush_replayed);
}

/// Writes the floor replayed since the last write to the state file (in the startup process:
/// before a checkpoint record, and at the end of recovery).
fn flush_replayed() {
    if let Some((floor, replayed)) = wal::pending() {
        if draw::raise_floor(floor) {
            wal::mark_flushed(replayed);
        }
    }
}

/// Writes `n` ceiling records, the first at `first_unix_ms` and each `step_ms` above the one
/// before, as this server (its node id), without touching the generator or the state file:
/// a long WAL history for the benchmark and the replay tests to replay. Not in the extension's
/// SQL (`sql = false`): a superuser declares it from the library
/// (`snowflake_emit_ceilings_wrapper`). Returns the LSN after the last record.
#[pg_extern(sql = false, volatile, parallel_unsafe, strict)]
fn snowflake_emit_ceilings(n: i32, first_unix_ms: i64, step_ms: i32) -> i64 {
    // SAFETY: the current user, inside a transaction.
    if !unsafe { pg_sys::superuser() } {
        crate::errors::must_be_superuser("snowflake_emit_ceilings()");
    }
    let node_id = guc::require_node_id();
    if wal::in_recovery() || !compat::HAS_CUSTOM_RMGR {
        error!("snowflake_id: ceiling records can only be written on a primary of PostgreSQL 15 or later");
    }
    let writer = Writer {
        // SAFETY: pg_control's system identifier.
        system_identifier: unsafe { pg_sys::GetSystemIdentifier() },
        node_id,
    };
    let mut lsn = 0;
    for i in 0..n.max(0) as i64 {
        let unix = first_unix_ms + i * step_ms as i64;
        let ceiling_ms = (unix - layout::EPOCH_UNIX_MS).clamp(0, layout::MAX_MS as i64) as u64;
        let bytes = CeilingRecord { writer, ceiling_ms }.encode();
        // SAFETY: a backend outside recovery; the data outlives the insertion.
        unsafe {
            pg_sys::XLogBeginInsert();
            compat::xlog_register_data(&bytes);
            lsn = pg_sys::XLogInsert(RMGR_ID, XLOG_CEILING);
        }
    }
    // SAFETY: flushes what was inserted.
    unsafe { pg_sys::XLogFlush(lsn) };
    lsn as i64
}

fn read(record: *mut pg_sys::XLogReaderState) -> CeilingRecord {
    // SAFETY: PostgreSQL passes the record being replayed or described.
    let (info, data) = unsafe { compat::record_data(record) };
    let kind = info & !(pg_sys::XLR_INFO_MASK as u8);
    if kind != XLOG_CEILING {
        error!("snowflake_id: unknown WAL record type {kind:#04x}");
    }
    CeilingRecord::decode(data).unwrap_or_else(|e| error!("snowflake_id: invalid WAL record: {e}"))
}

/// Replay: remember the primary and raise this server's floor.
#[pg_guard]
unsafe extern "C-unwind" fn redo(record: *mut pg_sys::XLogReaderState) {
    let rec = read(record);
    wal::note_replayed(&rec);
    // A standby issuing IDs of its own: its running generator takes the floor at once (and
    // saves a ceiling above it when it needs one). Otherwise the floor waits in shared memory
    // (which the generator's start reads) for the next checkpoint record or the end of replay.
    if draw::started() && draw::raise_floor(rec.ceiling_ms) {
        wal::mark_flushed(wal::replayed());
    }
}

/// End of replay: the floor goes to the state file before the server leaves recovery.
#[pg_guard]
unsafe extern "C-unwind" fn cleanup() {
    flush_replayed();
}

#[pg_guard]
unsafe extern "C-unwind" fn desc(buf: pg_sys::StringInfo, record: *mut pg_sys::XLogReaderState) {
    let rec = read(record);
    let text = format!(
        "ceiling {} Unix ms, node {}, system identifier {}",
        layout::unix_ms(rec.ceiling_ms),
        rec.writer.node_id,
        rec.writer.system_identifier
    );
    let c = std::ffi::CString::new(text).unwrap();
    pg_sys::appendStringInfoString(buf, c.as_ptr());
}

#[pg_guard]
unsafe extern "C-unwind" fn identify(info: u8) -> *const std::ffi::c_char {
    if info & !(pg_sys::XLR_INFO_MASK as u8) == XLOG_CEILING {
        c"CEILING".as_ptr()
    } else {
        std::ptr::null()
    }
}
