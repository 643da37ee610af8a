//! The state file in SQL: `CREATE EXTENSION` creates it (so that a file missing later is known
//! to be lost, not new), and `snowflake_restore_floor()` is the operator's way back when it is
//! lost or corrupted: a stated floor instead of a guess from the clock.

use crate::{draw, errors};
use pgrx::prelude::*;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_UNIX_US: i64 = 946_684_800_000_000;

/// Run once by the install and update scripts, then dropped by them.
#[pg_extern(volatile, parallel_unsafe)]
fn snowflake_id_create_state_file() {
    draw::create_state_file();
}

/// Declares that this server issued no ID at or after `floor`: IDs from now on are above it
/// (and above the state file's ceiling if it is readable, and any ceiling replayed from the
/// WAL). Replaces a missing or corrupted state file. Superusers only; returns the ceiling
/// saved.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn snowflake_restore_floor(floor: TimestampWithTimeZone) -> TimestampWithTimeZone {
    // SAFETY: the current user, inside a transaction.
    if !unsafe { pg_sys::superuser() } {
        errors::must_be_superuser("snowflake_restore_floor()");
    }
    if floor.is_infinity() || floor.is_neg_infinity() {
        errors::bad_timestamp("the floor must be a finite timestamp".into());
    }
    let pg_us: i64 = floor.into();
    let unix_ms = pg_us
        .checked_add(PG_EPOCH_UNIX_US)
        .map(|us| us.div_euclid(1000))
        .unwrap_or_else(|| errors::bad_timestamp(format!("{floor} is out of range")));
    let floor_ms = (unix_ms - snowflake_core::layout::EPOCH_UNIX_MS).max(0) as u64;
    let ceiling = draw::restore_floor(floor_ms);
    errors::server_log(format!(
        "snowflake_id: floor restored by an operator: IDs are issued above {} Unix ms",
        snowflake_core::layout::unix_ms(ceiling)
    ));
    let pg_us = snowflake_core::layout::unix_ms(ceiling) * 1000 - PG_EPOCH_UNIX_US;
    TimestampWithTimeZone::try_from(pg_us)
        .unwrap_or_else(|_| errors::bad_timestamp(format!("{ceiling} ms is not a timestamp")))
}

extension_sql!(
    r#"
REVOKE ALL ON FUNCTION snowflake_restore_floor(timestamptz) FROM PUBLIC;
SELECT snowflake_id_create_state_file();
DROP FUNCTION snowflake_id_create_state_file();
"#,
    name = "snowflake_state_file",
    finalize,
);
