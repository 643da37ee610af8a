//! The generator's state in shared memory: one `Generator` (a handful of atomics) for the whole
//! server, created by the postmaster and re-created after a crash-restart, when it loads the
//! ceiling file again. The hot path is `Generator::next`: no lock, no I/O.

use crate::wait::PgClock;
use crate::wal::{self, Recovery, WAL};
use crate::{errors, guc};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgAtomic};
use snowflake_core::generator::{Config, Generator, Stats, DEFAULT_CEILING_LEAD_MS};
use snowflake_core::layout;
use snowflake_core::store::{CeilingStore, FileStore, Saved, StoreError, Writer};
use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Name of the ceiling file in the data directory.
pub const STATE_FILE: &str = "snowflake_id.state";

#[repr(transparent)]
pub struct SharedGenerator(Generator);

// SAFETY: `Generator` is `repr(C)`, made only of atomics, with no pointers: any process that maps
// the segment may use it.
unsafe impl PGRXSharedMemory for SharedGenerator {}

static GENERATOR: PgAtomic<SharedGenerator> = unsafe { PgAtomic::new(c"snowflake_id generator") };
static PRELOADED: AtomicBool = AtomicBool::new(false);
static STORE: OnceLock<ServerStore> = OnceLock::new();

pub fn init() {
    pg_shmem_init!(GENERATOR = SharedGenerator(Generator::new()));
    pg_shmem_init!(WAL);
    wal::register();
    crate::upstream::init();
    PRELOADED.store(true, Ordering::Relaxed);
}

/// An ERROR unless the library was preloaded (and so has its state and its parameters).
pub fn require_preloaded() {
    if !PRELOADED.load(Ordering::Relaxed) {
        errors::not_preloaded();
    }
}

fn generator() -> &'static Generator {
    require_preloaded();
    &GENERATOR.get().0
}

pub fn state_path() -> PathBuf {
    // SAFETY: DataDir is set before any backend runs SQL and never changes afterwards.
    let dir = unsafe { CStr::from_ptr(pg_sys::DataDir) };
    PathBuf::from(dir.to_string_lossy().into_owned()).join(STATE_FILE)
}

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
    if GENERATOR.get().0.release_lock_of(std::process::id()) {
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
fn store(node: Option<u16>) -> &'static ServerStore {
    STORE.get_or_init(|| ServerStore {
        file: FileStore::new(state_path()),
        me: node.map(|node_id| Writer {
            system_identifier: system_identifier(),
            node_id,
        }),
    })
}

fn config() -> Config {
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

/// Whether the generator has started on this server (an ID draw saved its first ceiling).
pub fn started() -> bool {
    generator().started()
}

/// A floor from the WAL (in the startup process): raised in shared memory and written to the
/// state file. A state file that cannot be read or written does not stop recovery (a server
/// that cannot start cannot be inspected): it is reported, the floor stays in shared memory
/// for the generator's start, and `snowflake_nextval()` reports the file as before. False if
/// the file could not be written.
pub fn raise_floor(ceiling_ms: u64) -> bool {
    match generator().raise_floor(ceiling_ms, &PgClock, store(guc::node_id()), &config()) {
        Ok(Some(event)) => {
            errors::report_event(event);
            true
        }
        Ok(None) => true,
        Err(e) => {
            errors::replay_not_saved(e);
            false
        }
    }
}

/// `CREATE EXTENSION`: creates the state file if there is none, so that a file missing later
/// is known to be lost. Logged in the WAL (when the library is preloaded and the node id set),
/// so standbys and restores of this server create theirs too. Not preloaded, the file alone
/// is created (nothing could replay a record).
pub fn create_state_file() {
    if !PRELOADED.load(Ordering::Relaxed) {
        let file = FileStore::new(state_path());
        if let Ok(None) = file.load() {
            if let Err(e) = file.save(0) {
                errors::generator(e.into());
            }
        }
        return;
    }
    let floor = wal::counters().0;
    if let Err(e) = generator().save_if_missing(floor, &PgClock, store(guc::node_id())) {
        errors::generator(e);
    }
}

/// An operator's floor (`snowflake_restore_floor`): IDs from now on are above `floor_ms` and
/// above anything replayed; a missing or corrupted state file is replaced. Returns the ceiling
/// saved.
pub fn restore_floor(floor_ms: u64) -> u64 {
    let floor = floor_ms.max(wal::counters().0);
    generator()
        .restore_floor(floor, &PgClock, store(guc::node_id()), &config())
        .unwrap_or_else(|e| errors::generator(e))
}

/// On a server in recovery: an ERROR unless its node id is known to be in use nowhere upstream
/// of it (see `upstream`). Ceiling records replayed from the WAL do not decide it: a rewound
/// former primary replays its own old records, and a cascaded standby's WAL names only the
/// primary.
#[cold]
fn check_standby(node: u16) {
    crate::upstream::check(node);
}

/// The first ID draw after recovery: a standby that issued IDs extended its ceiling in its
/// state file only (it writes no WAL), and a promoted server would go on issuing under that
/// ceiling with nothing in the WAL: a standby of it, promoted in turn, would not know of those
/// IDs. The ceiling is expired once, so the next ID logs a new one first.
#[cold]
#[inline(never)]
fn after_recovery(generator: &Generator) {
    if wal::first_after_recovery() {
        generator.expire_ceiling(&PgClock);
    }
}

/// The configured node id, or an ERROR (not preloaded, or not set).
pub fn node_id() -> u16 {
    require_preloaded();
    guc::node_id().unwrap_or_else(|| errors::node_id_unset())
}

/// Draws the next ID of this server.
#[inline]
pub fn next_id() -> i64 {
    let generator = generator();
    // generator() checked the preload already: read the setting directly.
    let node = guc::node_id().unwrap_or_else(|| errors::node_id_unset());
    match wal::recovery() {
        Recovery::Over => {}
        Recovery::Replaying => check_standby(node),
        Recovery::JustEnded => after_recovery(generator),
    }
    match generator.next_as(writer(), &PgClock, store(Some(node)), &config()) {
        Ok(issued) => {
            if let Some(event) = issued.event {
                errors::report_event(event);
            }
            layout::compose(issued.tick, node).unwrap_or_else(|e| errors::bad_id(e))
        }
        Err(e) => errors::generator(e),
    }
}

/// This process's slot in the issued counter: its backend number, unique among live processes.
fn writer() -> Option<usize> {
    crate::compat::process_number()
}

/// The generator's counters (an ERROR if the library is not preloaded).
pub fn stats() -> Stats {
    generator().stats()
}
