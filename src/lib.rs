//! snowflake_id: Snowflake IDs generated inside PostgreSQL.
//!
//! The pure-Rust core (ID layout, generator, ceiling file) is the `snowflake_core` crate in
//! `core/`. This crate is the PostgreSQL glue, one concern a module:
//!
//! * [`guc`]: the settings (`snowflake_id.node_id`, `snowflake_id.max_drift_ms`), the prefix
//!   reservation, and whether the library was preloaded;
//! * [`shmem`]: the generator in shared memory;
//! * [`store`]: the ceiling's store on a server: state file and WAL, and what a missing file means;
//! * [`draw`]: drawing an ID (`snowflake_nextval()`), and raising the floor;
//! * [`wal`]: the ceiling record, writing it (with the wait for synchronous standbys), and what
//!   replay told this server;
//! * [`replay`]: the WAL resource manager's callbacks (replay writes the state file at
//!   checkpoint records and at the end of recovery), and the test-only record emitter;
//! * [`wait`]: the generator's clock, whose waits are interruptible latch waits;
//! * [`upstream`]: the node ids in use upstream of a standby, asked of its upstream by a
//!   background worker, so that a standby never issues IDs under one of them;
//! * [`compat`]: everything that differs between PostgreSQL majors;
//! * [`registry`], [`convert`]: the node registry and the column conversion (SQL run with a
//!   pinned `search_path`);
//! * [`state`]: the state file in SQL: created by `CREATE EXTENSION`, restored by an operator;
//! * [`functions`], [`json`]: the SQL functions (`snowflake_nextval()`, decoders,
//!   `snowflake_stats()`, `snowflake_json()`);
//! * [`errors`]: every ERROR the extension raises, with its SQLSTATE and HINT.
//!
//! Dependencies run one way: `errors` and `compat` use nothing of this crate; `guc`, `wait`,
//! `wal` and `upstream` only those; `shmem` only `guc`; `store` uses `shmem` and `wal`; `draw`
//! uses `store`; `replay` and the SQL modules use `draw`.

use pgrx::prelude::*;

mod compat;
mod convert;
mod draw;
mod errors;
mod functions;
mod guc;
mod json;
mod registry;
mod replay;
mod shmem;
mod state;
mod store;
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
        wal::init();
        replay::register();
        upstream::init();
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
