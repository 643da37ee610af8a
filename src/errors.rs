//! Every ERROR the extension raises: SQLSTATE, message, and a HINT saying how to fix it.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use snowflake_core::generator::{Event, GenError};
use snowflake_core::layout::{self, LayoutError};
use snowflake_core::store::StoreError;

pub fn raise(code: PgSqlErrorCode, message: String, detail: Option<String>, hint: &str) -> ! {
    let mut report = ErrorReport::new(code, message, "snowflake_id").set_hint(hint);
    if let Some(d) = detail {
        report = report.set_detail(d);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR returns control to PostgreSQL")
}

pub fn not_preloaded() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "snowflake_id is not loaded through shared_preload_libraries".into(),
        Some("The generator keeps its state in shared memory, which only a preloaded library can have.".into()),
        "Add snowflake_id to shared_preload_libraries in postgresql.conf (for example \
         ALTER SYSTEM SET shared_preload_libraries = 'snowflake_id'), set snowflake_id.node_id, \
         and restart the server.",
    )
}

pub fn node_id_unset() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "snowflake_id.node_id is not set".into(),
        Some("Every server issuing Snowflake IDs needs its own node id, 0 to 1023.".into()),
        "Set snowflake_id.node_id in postgresql.conf (or with ALTER SYSTEM SET \
         snowflake_id.node_id = <n>) to a value no other server uses, then reload the \
         configuration with SELECT pg_reload_conf().",
    )
}

pub fn generator(e: GenError) -> ! {
    match e {
        GenError::Store(e @ StoreError::Corrupt { .. }) => raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            e.to_string(),
            Some("The file holds a millisecond above every ID this server issued; without it, IDs \
                  issued after a restart could repeat old ones. No ID was issued."
                .into()),
            "Restore the file from a backup, or, once the clock is certainly past every ID this \
             node ever issued (check SELECT max(id) of your tables with snowflake_timestamp()), \
             remove it; the generator then starts from the clock.",
        ),
        GenError::Store(e @ StoreError::Io { .. }) => raise(
            PgSqlErrorCode::ERRCODE_IO_ERROR,
            e.to_string(),
            Some("No ID was issued: none may be issued beyond a ceiling that is not saved.".into()),
            "Check the permissions and free space of the data directory.",
        ),
        GenError::Horizon => raise(
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            e.to_string(),
            None,
            "The 41-bit millisecond field of the Snowflake layout ends in 2094; check the system clock.",
        ),
    }
}

pub fn bad_id(e: LayoutError) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("snowflake_id: {e}"),
        None,
        "Snowflake IDs are positive bigints; pass a value from snowflake_nextval().",
    )
}

pub fn bad_timestamp(what: String) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
        format!("snowflake_id: {what}"),
        None,
        &format!(
            "Snowflake IDs cover {} to {} (Unix ms {} to {}).",
            "2025-01-01 00:00:00 UTC",
            "2094-09-07 15:47:35.551 UTC",
            layout::EPOCH_UNIX_MS,
            layout::unix_ms(layout::MAX_MS)
        ),
    )
}

/// Reports what the generator noticed, as a WARNING (to the client and the server log).
pub fn report_event(event: Event) {
    let (message, detail) = match event {
        Event::ClockStepBack { ms } => (
            format!("snowflake_id: the system clock stepped back by {ms} ms"),
            "IDs go on strictly increasing from the generator's logical clock; until the wall \
             clock catches up they decode to up to that much ahead of it.",
        ),
        Event::StartedBehindCeiling { ms } => (
            format!("snowflake_id: the system clock is {ms} ms behind the saved ceiling"),
            "IDs start above every ID issued before the restart, so they decode to up to that \
             much ahead of the wall clock until it catches up.",
        ),
    };
    ErrorReport::new(PgSqlErrorCode::ERRCODE_WARNING, message, "snowflake_id")
        .set_detail(detail)
        .set_hint("Check the time service (chrony or ntpd); snowflake_stats() counts clock steps.")
        .report(PgLogLevel::WARNING);
}
