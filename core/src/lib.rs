//! Pure-Rust core of `snowflake_id`. Nothing here knows about PostgreSQL:
//!
//! * [`layout`]: the 64-bit ID format (encode, decode, the custom epoch);
//! * [`clock`]: the clocks the generator reads and time conversions;
//! * [`generator`]: the lock-free generator over one shared 64-bit word, with an injectable
//!   [`clock::Clock`] and [`store::CeilingStore`];
//! * [`store`]: the ceiling store: its trait, its errors and the crash-safe file kept in the
//!   data directory;
//! * [`tally`]: the issued counter, one slot per backend.
//!
//! The PostgreSQL glue (GUCs, shared memory, SQL functions) lives in the `snowflake_id` crate.

pub mod clock;
pub mod generator;
pub mod layout;
pub mod store;
pub mod tally;

/// Atomics: `std` normally, `loom`'s model-checked ones under `--cfg loom`.
pub(crate) mod sync {
    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
    #[cfg(not(loom))]
    pub use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
}
