//! The ceiling in the WAL, so that crash recovery, streaming standbys, point-in-time recovery
//! and `pg_rewind` carry the floor: every extension of the ceiling (about twice a second under
//! load, never per ID) is a WAL record of this extension's resource manager, flushed, and
//! confirmed by the synchronous standbys as a commit would be, before any ID beyond the old
//! ceiling is issued. Replay is in `replay.rs`.
//!
//! The record also names its writer (system identifier and node id): a hot standby whose node
//! id is its primary's refuses to issue IDs until it is promoted.
//!
//! Resource manager id [`RMGR_ID`] = 211: ids 128-255 are for extensions, 128 is for
//! development, and the PostgreSQL wiki's list (CustomWALResourceManagers) names the ones taken;
//! 211 was not among them. WAL holding these records can only be replayed by a server that
//! preloads snowflake_id (PostgreSQL stops recovery with "resource manager with ID 211 not
//! registered"): see docs/operations.md for taking the library out.

use crate::compat;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{PGRXSharedMemory, PgAtomic};
use snowflake_core::layout;
use snowflake_core::store::{StoreError, Writer};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

/// This extension's WAL resource manager id (see the module documentation).
pub const RMGR_ID: u8 = 211;
/// The one record type: a new ceiling. (The low four bits of the info byte are PostgreSQL's.)
pub const XLOG_CEILING: u8 = 0x10;
/// First byte of the record: its format.
const FORMAT: u8 = 1;
const RECORD_LEN: usize = 1 + 2 + 8 + 8;

/// A ceiling record: `ceiling_ms` (since the Snowflake epoch) is above every ID `writer` issues
/// before it logs the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CeilingRecord {
    pub writer: Writer,
    pub ceiling_ms: u64,
}

impl CeilingRecord {
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0] = FORMAT;
        b[1..3].copy_from_slice(&self.writer.node_id.to_le_bytes());
        b[3..11].copy_from_slice(&self.writer.system_identifier.to_le_bytes());
        b[11..19].copy_from_slice(&self.ceiling_ms.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<CeilingRecord, String> {
        if b.len() != RECORD_LEN || b[0] != FORMAT {
            return Err(format!(
                "record of {} bytes, format {:?}; expected {RECORD_LEN} bytes, format {FORMAT}",
                b.len(),
                b.first()
            ));
        }
        let node_id = u16::from_le_bytes([b[1], b[2]]);
        let ceiling_ms = u64::from_le_bytes(b[11..19].try_into().unwrap());
        if node_id > layout::MAX_NODE || ceiling_ms > layout::MAX_MS {
            return Err(format!(
                "node id {node_id} or ceiling {ceiling_ms} out of range"
            ));
        }
        Ok(CeilingRecord {
            writer: Writer {
                system_identifier: u64::from_le_bytes(b[3..11].try_into().unwrap()),
                node_id,
            },
            ceiling_ms,
        })
    }
}

/// What the WAL told this server, in shared memory.
#[repr(C)]
pub struct WalState {
    /// Highest ceiling replayed since the server started (ms since the epoch; 0 = none).
    replayed_ms: AtomicU64,
    /// Records replayed since the server started.
    replayed: AtomicU64,
    /// `replayed` when the floor was last written to the state file.
    flushed: AtomicU64,
    /// The writer of the WAL being replayed: the primary. `primary_node` is node id + 1
    /// (0 = unknown).
    primary_node: AtomicU32,
    primary_sysid: AtomicU64,
    /// Highest ceiling this server logged, and how many records it wrote.
    logged_ms: AtomicU64,
    logged: AtomicU64,
    /// Set by the first ID draw after recovery (see [`first_after_recovery`]).
    after_recovery: AtomicBool,
}

// SAFETY: `repr(C)`, atomics only, no pointers.
unsafe impl PGRXSharedMemory for WalState {}

impl Default for WalState {
    fn default() -> Self {
        WalState {
            replayed_ms: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            primary_node: AtomicU32::new(0),
            primary_sysid: AtomicU64::new(0),
            logged_ms: AtomicU64::new(0),
            logged: AtomicU64::new(0),
            after_recovery: AtomicBool::new(false),
        }
    }
}

pub static WAL: PgAtomic<WalState> = unsafe { PgAtomic::new(c"snowflake_id wal") };

/// Requests the segment (only while preloading).
pub fn init() {
    pgrx::pg_shmem_init!(WAL);
}

/// Notes a replayed record: its writer is the primary, its ceiling the floor so far.
pub fn note_replayed(rec: &CeilingRecord) {
    let w = WAL.get();
    w.primary_sysid.store(rec.writer.system_identifier, Relaxed);
    w.primary_node.store(rec.writer.node_id as u32 + 1, Relaxed);
    w.replayed_ms.fetch_max(rec.ceiling_ms, Relaxed);
    w.replayed.fetch_add(1, Relaxed);
}

/// The floor replayed since it was last written to the state file, if any, and the record count
/// to pass to [`mark_flushed`] once it is.
pub fn pending() -> Option<(u64, u64)> {
    let w = WAL.get();
    let replayed = w.replayed.load(Relaxed);
    (w.flushed.load(Relaxed) != replayed).then(|| (w.replayed_ms.load(Relaxed), replayed))
}

/// Marks the floor of the first `replayed` records as written to the state file.
pub fn mark_flushed(replayed: u64) {
    WAL.get().flushed.fetch_max(replayed, Relaxed);
}

/// Records replayed since the server started.
pub fn replayed() -> u64 {
    WAL.get().replayed.load(Relaxed)
}

/// Writes a ceiling record and waits until it is flushed here and, when synchronous standbys
/// are configured, confirmed by them, whatever the session's `synchronous_commit` (a session
/// with `local` or `off` would otherwise not wait, and issue IDs above a ceiling no standby
/// has). Not during recovery, where no WAL can be written (a standby's own IDs are kept by its
/// file).
///
/// Interrupts are held meanwhile: `SyncRepWaitForLSN` answers a cancel or a terminate with a
/// WARNING, and a WARNING processes interrupts, so a FATAL would exit right there, with the
/// generator's lock held. Held, the wait just ends; an unconfirmed ceiling is then an error
/// (no ID is issued under it), and the cancel, which the wait consumed, is made pending again
/// so that it ends the statement once the lock is released.
pub fn log_ceiling(record: CeilingRecord) -> Result<(), StoreError> {
    if !compat::HAS_CUSTOM_RMGR {
        return Ok(());
    }
    // SAFETY: HOLD_INTERRUPTS(); resumed below. An ERROR on the way resets the count itself.
    unsafe { pg_sys::InterruptHoldoffCount += 1 };
    let confirmed = unsafe {
        let bytes = record.encode();
        // SAFETY: a backend outside recovery; the data outlives the insertion.
        pg_sys::XLogBeginInsert();
        compat::xlog_register_data(&bytes);
        let lsn = pg_sys::XLogInsert(RMGR_ID, XLOG_CEILING);
        pg_sys::XLogFlush(lsn);
        wait_for_sync_standbys(lsn)
    };
    let w = WAL.get();
    w.logged_ms.fetch_max(record.ceiling_ms, Relaxed);
    w.logged.fetch_add(1, Relaxed);
    // SAFETY: RESUME_INTERRUPTS(); flags set by the signal handlers' rules.
    unsafe {
        if !confirmed && pg_sys::ProcDiePending == 0 {
            pg_sys::QueryCancelPending = 1;
            pg_sys::InterruptPending = 1;
        }
        pg_sys::InterruptHoldoffCount = pg_sys::InterruptHoldoffCount.saturating_sub(1);
    }
    if confirmed {
        Ok(())
    } else {
        Err(StoreError::Unconfirmed {
            reason: "the wait for the synchronous standbys was cancelled".into(),
        })
    }
}

/// `SyncRepWaitForLSN` with `synchronous_commit` at least `remote_flush` for this call (set
/// as a function's `SET` clause is, and restored); true if the standbys confirmed `lsn` or
/// none is configured.
unsafe fn wait_for_sync_standbys(lsn: pg_sys::XLogRecPtr) -> bool {
    let nest = pg_sys::NewGUCNestLevel();
    if pg_sys::synchronous_commit < pg_sys::SyncCommitLevel::SYNCHRONOUS_COMMIT_REMOTE_FLUSH as i32
    {
        pg_sys::set_config_option(
            c"synchronous_commit".as_ptr(),
            c"on".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
    }
    pg_sys::SyncRepWaitForLSN(lsn, false);
    pg_sys::AtEOXact_GUC(true, nest);
    compat::sync_standbys_confirmed(lsn)
}

/// Set in a process once it has seen recovery over: recovery never starts again while the
/// server runs, and the hot path then skips the call (through pgrx's guard, ~120 instructions
/// an ID).
static RECOVERY_OVER: AtomicBool = AtomicBool::new(false);

/// Where this server stands, as seen by the calling process's ID draws.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Recovery was over already at this process's last draw.
    Over,
    /// Replaying WAL (a standby, or a server in crash or archive recovery).
    Replaying,
    /// Over, first seen now by this process.
    JustEnded,
}

/// For the ID path only: reports the end of recovery once per process.
#[inline(always)]
pub fn recovery() -> Recovery {
    if RECOVERY_OVER.load(Relaxed) {
        Recovery::Over
    } else {
        ask_recovery()
    }
}

/// Out of line: pgrx's guard around the call needs a large stack frame, which inlined would be
/// set up on every ID.
#[cold]
#[inline(never)]
fn ask_recovery() -> Recovery {
    if in_recovery() {
        Recovery::Replaying
    } else {
        RECOVERY_OVER.store(true, Relaxed);
        Recovery::JustEnded
    }
}

/// Whether this server is replaying WAL now (off the ID path).
pub fn in_recovery() -> bool {
    // SAFETY: reads shared state; no ERROR.
    unsafe { pg_sys::RecoveryInProgress() }
}

/// True for the first caller on this server once recovery is over (a promotion, the end of
/// crash or archive recovery), false for every later one.
pub fn first_after_recovery() -> bool {
    !WAL.get().after_recovery.swap(true, Relaxed)
}

/// The primary whose WAL this server replays, if known: from a record replayed since start.
pub fn primary() -> Option<Writer> {
    let w = WAL.get();
    let node = w.primary_node.load(Relaxed);
    (node != 0).then(|| Writer {
        system_identifier: w.primary_sysid.load(Relaxed),
        node_id: (node - 1) as u16,
    })
}

/// (highest ceiling replayed, records replayed, highest ceiling logged, records logged).
/// Replayed counts from the server's start (a crash-restart included).
pub fn counters() -> (u64, u64, u64, u64) {
    let w = WAL.get();
    (
        w.replayed_ms.load(Relaxed),
        w.replayed.load(Relaxed),
        w.logged_ms.load(Relaxed),
        w.logged.load(Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let r = CeilingRecord {
            writer: Writer {
                system_identifier: 7_441_234_567_890_123_456,
                node_id: 1023,
            },
            ceiling_ms: layout::MAX_MS,
        };
        assert_eq!(CeilingRecord::decode(&r.encode()), Ok(r));
        let mut bad = r.encode();
        bad[0] = 2;
        assert!(CeilingRecord::decode(&bad).is_err());
        assert!(CeilingRecord::decode(&r.encode()[..18]).is_err());
        let mut node = r.encode();
        node[1..3].copy_from_slice(&1024u16.to_le_bytes());
        assert!(CeilingRecord::decode(&node).is_err());
    }
}
