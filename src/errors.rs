//! Every ERROR and WARNING the extension raises: SQLSTATE, message, and a HINT saying how to fix
//! it. Paths inside the data directory go to the server log only (`LOG_SERVER_ONLY`): clients
//! that may not read `data_directory` must not learn it from a message either.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use snowflake_core::generator::{Event, GenError};
use snowflake_core::layout::{self, LayoutError};
use snowflake_core::store::{StoreError, Writer};

pub fn raise(code: PgSqlErrorCode, message: String, detail: Option<String>, hint: &str) -> ! {
    let mut report = ErrorReport::new(code, message, "snowflake_id").set_hint(hint);
    if let Some(d) = detail {
        report = report.set_detail(d);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR returns control to PostgreSQL")
}

fn warn(message: String, detail: String, hint: &str) {
    ErrorReport::new(PgSqlErrorCode::ERRCODE_WARNING, message, "snowflake_id")
        .set_detail(detail)
        .set_hint(hint)
        .report(PgLogLevel::WARNING);
}

/// A line for the server log only, never sent to the client.
pub fn server_log(message: String) {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        message,
        "snowflake_id",
    )
    .report(PgLogLevel::LOG_SERVER_ONLY);
}

pub fn not_preloaded() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "snowflake_id is not loaded through shared_preload_libraries".into(),
        Some("The generator keeps its state in shared memory, which only a preloaded library can have.".into()),
        &format!(
            "Add snowflake_id to shared_preload_libraries, keeping the libraries already there: \
             {}; then add snowflake_id.node_id = <a number no other server uses> to \
             postgresql.conf (ALTER SYSTEM accepts it only once the library is loaded) and \
             restart the server. Where postgresql.conf or an HA manager (Patroni) sets the \
             list, add it there instead.",
            preload_command()
        ),
    )
}

/// `ALTER SYSTEM SET shared_preload_libraries = 'lib1', 'snowflake_id'`: each library of the
/// running list quoted on its own (one quoted string holding a comma would name one library
/// called "lib1, snowflake_id", and the server would not start), snowflake_id added.
fn preload_command() -> String {
    // SAFETY: reads the setting's current value (NULL if unknown; never an ERROR with
    // missing_ok).
    let current = unsafe {
        let p = pgrx::pg_sys::GetConfigOption(c"shared_preload_libraries".as_ptr(), true, false);
        if p.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    let mut list: Vec<String> = current
        .split(',')
        .map(|l| l.trim().trim_matches('"').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if !list.iter().any(|l| l == "snowflake_id") {
        list.push("snowflake_id".into());
    }
    let quoted: Vec<String> = list
        .iter()
        .map(|l| format!("'{}'", l.replace('\'', "''")))
        .collect();
    format!(
        "ALTER SYSTEM SET shared_preload_libraries = {}",
        quoted.join(", ")
    )
}

pub fn node_id_unset() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "snowflake_id.node_id is not set".into(),
        Some("Every server issuing Snowflake IDs needs its own node id, 0 to 1023.".into()),
        "Choose a node id no other server uses (SELECT * FROM snowflake_nodes lists those \
         registered), set it in postgresql.conf or with ALTER SYSTEM SET \
         snowflake_id.node_id = 1 (with your number), then restart the server.",
    )
}

pub fn standby_node_upstream(node: u16, chain: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
        format!(
            "snowflake_id: this standby's node id {node} is in use upstream of it and cannot \
             issue IDs while in recovery"
        ),
        Some(format!(
            "Its upstream shows snowflake_id.node_id_chain = '{chain}': the node ids under which \
             the upstream, or a server above it, may issue IDs. After promotion this server \
             issues IDs above every ID in the WAL it replayed."
        )),
        "To issue IDs on this standby while it replays, give it a node id outside that list \
         (snowflake_id.node_id in its postgresql.conf, or Patroni's local \
         postgresql.parameters), then restart it.",
    )
}

pub fn upstream_unknown(node: u16) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
        format!(
            "snowflake_id: this standby does not know yet which node ids are in use upstream \
             of it, so it cannot issue IDs under node id {node} while in recovery"
        ),
        Some(
            "A server in recovery issues IDs only once its upstream has shown, in \
             snowflake_id.node_id_chain, that no server above it may issue IDs under its node \
             id. The background worker \"snowflake_id upstream check\" asks over \
             primary_conninfo."
                .into(),
        ),
        "Check that primary_conninfo is set and reaches an upstream that preloads \
         snowflake_id (SHOW snowflake_id.node_id_chain there must not say unknown), and see \
         the server log for the worker's messages; retry in a few seconds. A standby restored \
         from an archive without primary_conninfo issues IDs only once promoted.",
    )
}

/// The wait for the synchronous standbys ended before they confirmed a new ceiling.
pub fn ceiling_unconfirmed() -> ! {
    // The wait ended through a cancel, a statement_timeout or a terminate: that ends the call
    // as PostgreSQL ends any other (the generator's lock is already released).
    pgrx::pg_sys::check_for_interrupts!();
    raise(
        PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
        "snowflake_id: the synchronous standbys did not confirm a new ceiling".into(),
        Some("No ID above the last confirmed ceiling was issued.".into()),
        "IDs flow again once a synchronous standby confirms (see pg_stat_replication and \
         synchronous_standby_names).",
    )
}

/// During replay (the startup process: the server log is the only reader).
pub fn replay_not_saved(e: GenError) {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_WARNING,
        format!("snowflake_id: replay could not raise the state file: {e}"),
        "snowflake_id",
    )
    .set_detail(
        "The floor from the WAL is kept in shared memory until the server stops; IDs start \
         above it once the state file is readable again or removed.",
    )
    .set_hint("Check the state file and the data directory's file system.")
    .report(PgLogLevel::WARNING);
}

pub fn generator(e: GenError) -> ! {
    match e {
        GenError::Store(e) => store(e),
        GenError::Horizon => raise(
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            format!("snowflake_id: {e}"),
            Some("No ID was issued.".into()),
            "The 41-bit millisecond field of the Snowflake layout ends on 2094-09-07; check the \
             system clock. A node whose IDs reached the end needs a new node id and its state \
             file removed.",
        ),
        GenError::ClockBeforeEpoch { .. } => raise(
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            format!("snowflake_id: {e}"),
            Some(
                "No ID was issued and nothing was saved; IDs flow as soon as the clock is right."
                    .into(),
            ),
            "Check the system clock and the time service (chrony or ntpd): the server's clock is \
             before 2025-01-01, which no Snowflake ID can carry.",
        ),
    }
}

/// A state-file error: the client sees what went wrong, the server log also where.
fn store(e: StoreError) -> ! {
    server_log(format!("snowflake_id: {e}"));
    match e {
        StoreError::Corrupt { reason, .. } => raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("snowflake_id state file is corrupted: {reason}"),
            Some(
                "The file (snowflake_id.state in the data directory; the server log names it) \
                  holds a millisecond above every ID this server issued; without it, IDs issued \
                  after a restart could repeat old ones. No ID was issued."
                    .into(),
            ),
            "Restore the file from a backup. Deleting it does not bring IDs back: without the \
             file the server refuses IDs until a superuser states a floor above every ID this \
             server issued, for example SELECT snowflake_restore_floor(snowflake_timestamp(max(id)) \
             + interval '1 second') FROM your_table (this also replaces the corrupted file).",
        ),
        StoreError::Missing { .. } => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_FILE,
            "snowflake_id state file is missing".into(),
            Some(
                "The file (snowflake_id.state in the data directory; the server log names it) \
                 holds a millisecond above every ID this server issued. CREATE EXTENSION \
                 created it, so it was deleted or left behind (pg_upgrade does not copy it); \
                 started from the clock instead, IDs could repeat old ones. No ID was issued."
                    .into(),
            ),
            "Copy snowflake_id.state from the data directory this one came from (after \
             pg_upgrade: the old cluster's) while the server is stopped, or, as a superuser, \
             state a floor above every ID this server issued: SELECT \
             snowflake_restore_floor(snowflake_timestamp(max(id)) + interval '1 second') FROM \
             your_table.",
        ),
        StoreError::Io { op, source, .. } => raise(
            PgSqlErrorCode::ERRCODE_IO_ERROR,
            format!("could not {op} snowflake_id state file: {source}"),
            Some(
                "No ID was issued: none may be issued beyond a ceiling that is not saved. The \
                  server log names the file."
                    .into(),
            ),
            "Check the permissions and free space of the data directory.",
        ),
        StoreError::Unconfirmed { .. } => ceiling_unconfirmed(),
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

/// An SPI failure inside one of the extension's own statements.
pub fn spi(what: &str, e: pgrx::spi::SpiError) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("snowflake_id: {what}: {e}"),
        None,
        "This is a bug in snowflake_id unless another error was reported just before.",
    )
}

pub fn must_be_superuser(function: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("snowflake_id: only a superuser may run {function}"),
        Some("It sets the floor every future ID of this server starts above.".into()),
        "Run it as a superuser.",
    )
}

pub fn not_owner(table: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("snowflake_id: must be owner of table {table}"),
        None,
        "Run snowflake_convert_column() as the table's owner (or a member of the owning role).",
    )
}

fn who(w: Option<Writer>) -> String {
    match w {
        Some(w) => format!("system {} as node id {}", w.system_identifier, w.node_id),
        None => "an unknown server".into(),
    }
}

/// Reports what the generator noticed, as a WARNING (to the client and the server log).
pub fn report_event(event: Event) {
    let hint = "Check the time service (chrony or ntpd); snowflake_stats() counts clock steps.";
    match event {
        Event::ClockStepBack { ms } => warn(
            format!("snowflake_id: the system clock stepped back by {ms} ms"),
            "IDs go on strictly increasing from the generator's logical clock; until the wall \
             clock catches up they decode to up to that much ahead of it."
                .into(),
            hint,
        ),
        Event::ClockStepForward { ms } => warn(
            format!("snowflake_id: the system clock jumped forward by {ms} ms"),
            format!(
                "IDs follow the monotonic clock, not the jumped wall clock, until the jump has \
                 lasted {} s; a clock set right before then never shows in an ID.",
                snowflake_core::generator::FORWARD_CONFIRM_US / 1_000_000
            ),
            hint,
        ),
        Event::FloorFromWal { ms } => warn(
            format!(
                "snowflake_id: replayed WAL raised the floor to {ms} ms ahead of this server's clock"
            ),
            "The primary that wrote the WAL issued IDs that far ahead (its clock was ahead). \
             IDs here go on above them and decode to up to that much ahead of the wall clock \
             until it catches up."
                .into(),
            hint,
        ),
        Event::StartedBehindCeiling { ms } => warn(
            format!("snowflake_id: the system clock is {ms} ms behind the saved ceiling"),
            "IDs start above every ID issued before the restart, so they decode to up to that \
             much ahead of the wall clock until it catches up."
                .into(),
            hint,
        ),
        Event::ForeignCeiling {
            found,
            me,
            ceiling_ms,
            floor_ms,
        } => warn(
            format!(
                "snowflake_id: the state file was written by {}, not by this server ({})",
                who(found),
                who(Some(me))
            ),
            format!(
                "The file was copied from another server (pg_basebackup, pg_rewind, a file-level \
                 copy). IDs start above its ceiling ({} Unix ms) and above anything this server \
                 can have issued before ({} Unix ms).",
                layout::unix_ms(ceiling_ms),
                layout::unix_ms(floor_ms)
            ),
            "Give every server its own snowflake_id.node_id; see docs/operations.md on clones.",
        ),
    }
}

/// `snowflake_check_nodes()` found node ids claimed by more than one server.
pub fn node_id_clash(list: &[String]) {
    warn(
        format!(
            "snowflake_id: {} node id{} used by more than one server: {}",
            list.len(),
            if list.len() == 1 { " is" } else { "s are" },
            list.join("; ")
        ),
        "Servers sharing a node id can issue the same Snowflake ID in the same millisecond.".into(),
        "Give each server its own snowflake_id.node_id in postgresql.conf and restart it; the \
         registry row of a server is replaced when it registers again \
         (SELECT snowflake_register_node()). Delete rows of servers that no longer exist \
         from snowflake_nodes.",
    );
}
