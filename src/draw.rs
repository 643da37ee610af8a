//! Drawing IDs and moving the floor: the one call behind `snowflake_nextval()`, the floor that
//! replay and operators raise, and the state file that `CREATE EXTENSION` creates.

use crate::shmem::{generator, state_path};
use crate::store::{config, store};
use crate::upstream;
use crate::wait::PgClock;
use crate::wal::{self, Recovery};
use crate::{errors, guc};
use snowflake_core::generator::Generator;
use snowflake_core::layout;
use snowflake_core::store::{CeilingStore, FileStore};

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
    if !guc::preloaded() {
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
    upstream::check(node);
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
