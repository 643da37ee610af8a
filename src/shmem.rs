//! The generator's state in shared memory: one `Generator` (a handful of atomics) for the whole
//! server, created by the postmaster and re-created after a crash-restart, when its first ID
//! loads the ceiling again. Nothing here decides anything: the store (`store.rs`) and the draw
//! (`draw.rs`) use it.

use crate::guc;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgAtomic};
use snowflake_core::generator::{Generator, Stats};
use std::ffi::CStr;
use std::path::PathBuf;

/// Name of the ceiling file in the data directory.
pub const STATE_FILE: &str = "snowflake_id.state";

#[repr(transparent)]
pub struct SharedGenerator(Generator);

// SAFETY: `Generator` is `repr(C)`, made only of atomics, with no pointers: any process that maps
// the segment may use it.
unsafe impl PGRXSharedMemory for SharedGenerator {}

static GENERATOR: PgAtomic<SharedGenerator> = unsafe { PgAtomic::new(c"snowflake_id generator") };

/// Requests the segment (only while preloading).
pub fn init() {
    pg_shmem_init!(GENERATOR = SharedGenerator(Generator::new()));
}

/// The server's generator, or an ERROR if the library was not preloaded.
pub fn generator() -> &'static Generator {
    guc::require_preloaded();
    &GENERATOR.get().0
}

/// The generator without the preload check, for exit callbacks registered after one passed.
pub fn generator_unchecked() -> &'static Generator {
    &GENERATOR.get().0
}

pub fn state_path() -> PathBuf {
    // SAFETY: DataDir is set before any backend runs SQL and never changes afterwards.
    let dir = unsafe { CStr::from_ptr(pg_sys::DataDir) };
    PathBuf::from(dir.to_string_lossy().into_owned()).join(STATE_FILE)
}

/// The generator's counters (an ERROR if the library is not preloaded).
pub fn stats() -> Stats {
    generator().stats()
}
