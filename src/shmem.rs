//! The generator's state in shared memory: one `Generator` (a handful of atomics) for the whole
//! server, created by the postmaster and re-created after a crash-restart, when it loads the
//! ceiling file again. The hot path is `Generator::next`: no lock, no I/O.

use crate::wait::PgClock;
use crate::{errors, guc};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgAtomic};
use snowflake_core::generator::{Config, Generator, Stats, DEFAULT_CEILING_LEAD_MS};
use snowflake_core::layout;
use snowflake_core::store::{FileStore, Writer};
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
static STORE: OnceLock<FileStore> = OnceLock::new();

pub fn init() {
    pg_shmem_init!(GENERATOR = SharedGenerator(Generator::new()));
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

/// The state file, recording this server (system identifier, node id) as its writer. The node
/// id cannot change while the server runs (`PGC_POSTMASTER`).
fn store(node: u16) -> &'static FileStore {
    STORE.get_or_init(|| {
        // SAFETY: reads pg_control's system identifier, set before any backend starts.
        let system_identifier = unsafe { pg_sys::GetSystemIdentifier() };
        FileStore::with_writer(
            state_path(),
            Writer {
                system_identifier,
                node_id: node,
            },
        )
    })
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
    let cfg = Config {
        max_drift_ms: guc::MAX_DRIFT_MS.get() as u64,
        ceiling_lead_ms: DEFAULT_CEILING_LEAD_MS,
    };
    match generator.next_as(writer(), &PgClock, store(node), &cfg) {
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
