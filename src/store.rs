//! The ceiling's store on a server: the state file and the WAL, and the rules that join them
//! (what a missing file means, what a standby's file records, who wrote what).

use crate::shmem::{self, state_path};
use crate::wal;
use crate::{errors, guc};
use pgrx::prelude::*;
use snowflake_core::generator::{Config, DEFAULT_CEILING_LEAD_MS};
use snowflake_core::store::{CeilingStore, FileStore, Saved, StoreError, Writer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static STORE: OnceLock<ServerStore> = OnceLock::new();

/// The ceiling's store: the state file, and the WAL (see `wal.rs`).
///
/// Outside recovery a save is first logged in the WAL (flushed, and confirmed by synchronous
/// standbys), then written to the file, recording this server (system identifier, node id) as
/// the writer. During recovery no WAL can be written: the file records the primary whose WAL is
/// replayed (when known), since the floor it holds came from there.
pub struct ServerStore {
    file: FileStore,
    me: Option<Writer>,
}

impl CeilingStore for ServerStore {
    /// The file's ceiling, raised to the highest ceiling replayed since the server started
    /// (replay writes the file only at checkpoints and at its end). No file and nothing
    /// replayed is a lost file (`Missing`): `CREATE EXTENSION` creates it, so a missing one
    /// was deleted or left behind (`pg_upgrade`), and "no ceiling" could repeat IDs. The one
    /// exception: a database whose extension predates that, where no file meant no ID yet.
    fn load(&self) -> Result<Option<Saved>, StoreError> {
        let file = self.file.load()?;
        let (replayed_ms, replayed, _, _) = wal::counters();
        let merged = match file {
            Some(s) if replayed > 0 && s.ceiling_ms < replayed_ms => Some(Saved {
                ceiling_ms: replayed_ms,
                writer: s.writer,
            }),
            None if replayed > 0 => Some(Saved {
                ceiling_ms: replayed_ms,
                writer: wal::primary(),
            }),
            other => other,
        };
        match merged {
            None if !created_before_state_files() => Err(StoreError::Missing {
                path: self.file.path().to_path_buf(),
            }),
            other => Ok(other),
        }
    }

    fn load_own(&self) -> Result<Option<Saved>, StoreError> {
        match self.file.load()? {
            None => Err(StoreError::Missing {
                path: self.file.path().to_path_buf(),
            }),
            saved => Ok(saved),
        }
    }

    fn save(&self, ceiling_ms: u64) -> Result<(), StoreError> {
        // The generator saves while holding its lock: make sure this process releases it
        // whichever way it exits.
        release_lock_at_exit();
        if wal::in_recovery() {
            self.file.save_as(ceiling_ms, wal::primary().or(self.me))
        } else {
            if let Some(me) = self.me {
                wal::log_ceiling(wal::CeilingRecord {
                    writer: me,
                    ceiling_ms,
                })?;
            }
            self.file.save_as(ceiling_ms, self.me)
        }
    }

    fn writer(&self) -> Option<Writer> {
        self.me
    }
}

/// Registers, once per process, an exit callback that releases the generator's lock if this
/// process holds it. A FATAL (terminate, a fast shutdown, postmaster death) runs `proc_exit`,
/// which does not unwind Rust: the lock guard's drop never runs there.
fn release_lock_at_exit() {
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    if !REGISTERED.swap(true, Ordering::Relaxed) {
        // SAFETY: a PostgreSQL process with shared memory attached; the callback is guarded.
        unsafe { pg_sys::before_shmem_exit(Some(release_lock), pg_sys::Datum::from(0)) };
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn release_lock(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    if shmem::generator_unchecked().release_lock_of(std::process::id()) {
        errors::server_log(
            "snowflake_id: released the generator's lock held by this exiting process".into(),
        );
    }
}

fn system_identifier() -> u64 {
    // SAFETY: pg_control's system identifier, read before any backend or replay starts.
    unsafe { pg_sys::GetSystemIdentifier() }
}

/// The store of this process: `node` is the node id, which cannot change while the server runs
/// (`PGC_POSTMASTER`); `None` in the startup process of a server without one.
pub fn store(node: Option<u16>) -> &'static ServerStore {
    STORE.get_or_init(|| ServerStore {
        file: FileStore::new(state_path()),
        me: node.map(|node_id| Writer {
            system_identifier: system_identifier(),
            node_id,
        }),
    })
}

pub fn config() -> Config {
    Config {
        max_drift_ms: guc::max_drift_ms(),
        ceiling_lead_ms: DEFAULT_CEILING_LEAD_MS,
    }
}

/// The first version whose `CREATE EXTENSION` creates the state file.
const STATE_FILE_SINCE: (u32, u32, u32) = (0, 6, 0);

/// Whether the calling database's extension was created by a version that did not create the
/// state file (and has not been updated since): there, no file may just mean no ID yet, as it
/// did then. Only in a backend's transaction (the catalog is read); false elsewhere.
fn created_before_state_files() -> bool {
    // SAFETY: reads this backend's transaction state.
    if !unsafe { pg_sys::IsTransactionState() } {
        return false;
    }
    let version = Spi::get_one::<String>(
        "SELECT extversion FROM pg_catalog.pg_extension \
         WHERE extname OPERATOR(pg_catalog.=) 'snowflake_id'",
    );
    let Ok(Some(version)) = version else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Some(a)), Some(Some(b)), Some(Some(c))) => (a, b, c) < STATE_FILE_SINCE,
        _ => false,
    }
}
