//! snowflake_id: Snowflake IDs generated inside PostgreSQL.
//!
//! The pure-Rust core (ID layout, generator, ceiling file) is the `snowflake_core` crate in
//! `core/`. This crate is the PostgreSQL glue, one concern a module:
//!
//! * [`guc`]: `snowflake_id.node_id` and `snowflake_id.max_drift_ms`, and the prefix reservation;
//! * [`shmem`]: the generator's state in shared memory and the one call that draws an ID;
//! * [`wait`]: the generator's clock, whose waits are interruptible latch waits;
//! * [`wal`]: the ceiling in the WAL (a custom resource manager), for standbys and restores;
//! * [`upstream`]: the node ids in use upstream of a standby, asked of its upstream by a
//!   background worker, so that a standby never issues IDs under one of them;
//! * [`compat`]: everything that differs between PostgreSQL majors;
//! * [`cluster`], [`convert`]: the node registry and the column conversion (SQL run with a
//!   pinned `search_path`);
//! * [`state`]: the state file in SQL: created by `CREATE EXTENSION`, restored by an operator;
//! * [`functions`]: the SQL functions (`snowflake_nextval()`, decoders, `snowflake_stats()`);
//! * [`errors`]: every ERROR the extension raises, with its SQLSTATE and HINT.

use pgrx::prelude::*;

mod cluster;
mod compat;
mod convert;
mod errors;
mod functions;
mod guc;
mod json;
mod shmem;
mod state;
mod upstream;
mod wait;
mod wal;

::pgrx::pg_module_magic!(name, version);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Shared memory and PGC_POSTMASTER parameters can only be requested while
    // shared_preload_libraries is processed; loaded any other way (CREATE EXTENSION, LOAD) the
    // functions raise an ERROR saying so.
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    guc::define(preloading);
    if preloading {
        shmem::init();
    }
}

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

/// Required by `cargo pgrx test`: the test server preloads the library with a node id.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![
            "shared_preload_libraries = 'snowflake_id'",
            "snowflake_id.node_id = 42",
        ]
    }
}
