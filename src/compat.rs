//! Everything that differs between PostgreSQL majors, in one place. The crate builds for one
//! major at a time (features `pg13`..`pg18`, as pgrx names them); each `cfg` below says what
//! changed in which release. Tested on 15, 16, 17 and 18; 13 and 14 are type-checked.

use pgrx::pg_sys;

/// OID of the predefined role `pg_read_all_settings`. PostgreSQL 14 renamed the constants of
/// the predefined roles from `DEFAULT_ROLE_*` to `ROLE_PG_*`.
#[cfg(feature = "pg13")]
pub const READ_ALL_SETTINGS: u32 = pg_sys::DEFAULT_ROLE_READ_ALL_SETTINGS;
#[cfg(not(feature = "pg13"))]
pub const READ_ALL_SETTINGS: u32 = pg_sys::ROLE_PG_READ_ALL_SETTINGS;

/// The wait event of the generator's waits. PostgreSQL 17 added named wait events for
/// extensions (`WaitEventExtensionNew`): there it shows as `SnowflakeIdWait`; before, every
/// extension's waits show as `Extension`.
#[cfg(any(feature = "pg17", feature = "pg18"))]
pub fn wait_event() -> u32 {
    use std::sync::OnceLock;
    static EVENT: OnceLock<u32> = OnceLock::new();
    // SAFETY: called in a backend; registers (or finds) the name in shared memory.
    *EVENT.get_or_init(|| unsafe { pg_sys::WaitEventExtensionNew(c"SnowflakeIdWait".as_ptr()) })
}

#[cfg(not(any(feature = "pg17", feature = "pg18")))]
pub fn wait_event() -> u32 {
    pg_sys::PG_WAIT_EXTENSION
}

/// `pgstat_report_wait_start()` / `_end()`, inline functions in C that store into
/// `my_wait_event_info`. PostgreSQL 14 introduced that pointer; 13 kept the field in PGPROC
/// behind another interface, so there short waits show no event.
#[cfg(not(feature = "pg13"))]
pub fn report_wait(event: u32) {
    // SAFETY: my_wait_event_info points at this backend's PGPROC field (or a local variable
    // before it has one); a plain store, as the C inline function does.
    unsafe { std::ptr::write_volatile(pg_sys::my_wait_event_info, event) }
}

#[cfg(feature = "pg13")]
pub fn report_wait(_event: u32) {}

/// This process's number among the server's processes, 0-based, `None` in a process without
/// one. PostgreSQL 17 replaced the 1-based `MyBackendId` by the 0-based `MyProcNumber`.
pub fn process_number() -> Option<usize> {
    #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16"))]
    // SAFETY: set once when the backend starts; 1-based, InvalidBackendId (-1) in aux processes.
    let number = unsafe { pg_sys::MyBackendId } as i64 - 1;
    #[cfg(any(feature = "pg17", feature = "pg18"))]
    // SAFETY: set once when the backend starts; 0-based, INVALID_PROC_NUMBER (-1) if none.
    let number = unsafe { pg_sys::MyProcNumber } as i64;
    usize::try_from(number).ok()
}

/// Makes `snowflake_id.<typo>` an error instead of a silently ignored placeholder.
/// PostgreSQL 15 added `MarkGUCPrefixReserved`; 13 and 14 can only warn about placeholders.
#[cfg(not(any(feature = "pg13", feature = "pg14")))]
pub fn reserve_guc_prefix() {
    // SAFETY: called while the library loads, with a static C string.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"snowflake_id".as_ptr()) }
}

#[cfg(any(feature = "pg13", feature = "pg14"))]
pub fn reserve_guc_prefix() {
    // SAFETY: called while the library loads, with a static C string.
    unsafe { pg_sys::EmitWarningsOnPlaceholders(c"snowflake_id".as_ptr()) }
}

/// Custom WAL resource managers arrived in PostgreSQL 15: on 13 and 14 the ceiling is not
/// WAL-logged (see `wal.rs`): nothing is registered, and no record is written or replayed.
#[cfg(not(any(feature = "pg13", feature = "pg14")))]
pub const HAS_CUSTOM_RMGR: bool = true;
#[cfg(any(feature = "pg13", feature = "pg14"))]
pub const HAS_CUSTOM_RMGR: bool = false;

/// The resource manager's callbacks: replay, and the description and name of a record.
pub struct RmgrCallbacks {
    pub redo: unsafe extern "C-unwind" fn(*mut pg_sys::XLogReaderState),
    pub desc: unsafe extern "C-unwind" fn(pg_sys::StringInfo, *mut pg_sys::XLogReaderState),
    pub identify: unsafe extern "C-unwind" fn(u8) -> *const std::ffi::c_char,
    /// At the end of replay (crash or archive recovery, a promotion), in the startup process.
    pub cleanup: unsafe extern "C-unwind" fn(),
}

/// `RegisterCustomRmgr` (PostgreSQL 15; 16 made its argument `const`). Call only while
/// preloading; PostgreSQL copies the struct.
#[cfg(not(any(feature = "pg13", feature = "pg14")))]
pub fn register_custom_rmgr(id: u8, name: &'static std::ffi::CStr, cb: RmgrCallbacks) {
    let rmgr = pg_sys::RmgrData {
        rm_name: name.as_ptr(),
        rm_redo: Some(cb.redo),
        rm_desc: Some(cb.desc),
        rm_identify: Some(cb.identify),
        rm_startup: None,
        rm_cleanup: Some(cb.cleanup),
        rm_mask: None,
        rm_decode: None,
    };
    // SAFETY: called from _PG_init while preloading, with a static name.
    #[cfg(feature = "pg15")]
    unsafe {
        pg_sys::RegisterCustomRmgr(id, &rmgr as *const _ as *mut _);
    }
    // SAFETY: as above.
    #[cfg(not(feature = "pg15"))]
    unsafe {
        pg_sys::RegisterCustomRmgr(id, &rmgr);
    }
}

#[cfg(any(feature = "pg13", feature = "pg14"))]
pub fn register_custom_rmgr(_id: u8, _name: &'static std::ffi::CStr, cb: RmgrCallbacks) {
    let _ = (cb.redo, cb.desc, cb.identify, cb.cleanup);
}

/// The replay function of PostgreSQL's own XLOG resource manager, before it was wrapped, and
/// what runs before a checkpoint record.
#[cfg(not(any(feature = "pg13", feature = "pg14")))]
type Redo = unsafe extern "C-unwind" fn(*mut pg_sys::XLogReaderState);
#[cfg(not(any(feature = "pg13", feature = "pg14")))]
static XLOG_REDO: std::sync::OnceLock<(Redo, fn())> = std::sync::OnceLock::new();

/// Wraps the replay of PostgreSQL's own XLOG records (checkpoints among them) so that
/// `at_checkpoint` runs before each checkpoint record is replayed. A restartpoint, the only
/// thing that removes WAL during recovery, starts from a replayed checkpoint record: whatever
/// `at_checkpoint` saves covers every record the restartpoint may remove. Call only while
/// preloading (the table is copied into every process the postmaster starts).
#[cfg(not(any(feature = "pg13", feature = "pg14")))]
pub fn wrap_checkpoint_replay(at_checkpoint: fn()) {
    #[pgrx::pg_guard]
    unsafe extern "C-unwind" fn xlog_redo(record: *mut pg_sys::XLogReaderState) {
        let Some(&(redo, at_checkpoint)) = XLOG_REDO.get() else {
            unreachable!("wrapped without the original");
        };
        let info = (*(*record).record).header.xl_info & !(pg_sys::XLR_INFO_MASK as u8);
        if info == pg_sys::XLOG_CHECKPOINT_SHUTDOWN as u8
            || info == pg_sys::XLOG_CHECKPOINT_ONLINE as u8
        {
            at_checkpoint();
        }
        redo(record);
    }

    // SAFETY: the postmaster, single-threaded, while preloading; RmgrTable has an entry for
    // every built-in resource manager, XLOG's among them.
    unsafe {
        let table = std::ptr::addr_of_mut!(pg_sys::RmgrTable) as *mut pg_sys::RmgrData;
        let xlog = &mut *table.add(pg_sys::RmgrIds::RM_XLOG_ID as usize);
        if let Some(original) = xlog.rm_redo {
            if XLOG_REDO.set((original, at_checkpoint)).is_ok() {
                xlog.rm_redo = Some(xlog_redo);
            }
        }
    }
}

#[cfg(any(feature = "pg13", feature = "pg14"))]
pub fn wrap_checkpoint_replay(_at_checkpoint: fn()) {}

/// `XLogRegisterData`: PostgreSQL 18 takes `const void *` and an unsigned length.
#[cfg(not(feature = "pg18"))]
pub unsafe fn xlog_register_data(data: &[u8]) {
    pg_sys::XLogRegisterData(data.as_ptr() as *mut _, data.len() as _)
}
#[cfg(feature = "pg18")]
pub unsafe fn xlog_register_data(data: &[u8]) {
    pg_sys::XLogRegisterData(data.as_ptr().cast(), data.len() as _)
}

/// The main data and the info byte of a record being replayed (`XLogRecGetData`,
/// `XLogRecGetInfo`: macros over the decoded record since PostgreSQL 15).
#[cfg(not(any(feature = "pg13", feature = "pg14")))]
pub unsafe fn record_data<'a>(record: *mut pg_sys::XLogReaderState) -> (u8, &'a [u8]) {
    let decoded = &*(*record).record;
    let data = if decoded.main_data.is_null() {
        &[][..]
    } else {
        std::slice::from_raw_parts(
            decoded.main_data as *const u8,
            decoded.main_data_len as usize,
        )
    };
    (decoded.header.xl_info, data)
}

/// Never called on 13 and 14: nothing is registered there.
#[cfg(any(feature = "pg13", feature = "pg14"))]
pub unsafe fn record_data<'a>(_record: *mut pg_sys::XLogReaderState) -> (u8, &'a [u8]) {
    unreachable!("no custom WAL resource managers before PostgreSQL 15")
}

/// `walrcv_connect` of PostgreSQL's libpq wrapper (`libpqwalreceiver`), for a physical
/// replication connection: 16 added `must_use_password`, 17 the `replication` flag.
#[cfg(not(feature = "pg13"))]
unsafe fn walrcv_connect(
    f: &pg_sys::WalReceiverFunctionsType,
    conninfo: &std::ffi::CStr,
    appname: &std::ffi::CStr,
    err: *mut *mut std::ffi::c_char,
) -> *mut pg_sys::WalReceiverConn {
    let connect = f
        .walrcv_connect
        .expect("libpqwalreceiver has walrcv_connect");
    #[cfg(any(feature = "pg14", feature = "pg15"))]
    return connect(conninfo.as_ptr(), false, appname.as_ptr(), err);
    #[cfg(feature = "pg16")]
    return connect(conninfo.as_ptr(), false, false, appname.as_ptr(), err);
    #[cfg(any(feature = "pg17", feature = "pg18"))]
    return connect(conninfo.as_ptr(), true, false, false, appname.as_ptr(), err);
}

/// PostgreSQL 13's bindings lack the WAL receiver's interface: a standby there learns no chain
/// and issues no IDs until promoted.
#[cfg(feature = "pg13")]
pub fn show_upstream_setting(
    _conninfo: &std::ffi::CStr,
    _setting: &std::ffi::CStr,
) -> Result<String, String> {
    Err("not available on PostgreSQL 13".into())
}

#[cfg(not(feature = "pg13"))]
fn c_message(p: *const std::ffi::c_char, default: &str) -> String {
    if p.is_null() {
        default.into()
    } else {
        // SAFETY: a NUL-terminated message from libpqwalreceiver.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .trim()
            .to_string()
    }
}

/// `SHOW <setting>` on the server `conninfo` names, over a replication connection through
/// PostgreSQL's own libpq wrapper (its waits are latch waits that check for interrupts). Call
/// inside a transaction of a process connected to a database: the result is built with the
/// catalogs' type information.
#[cfg(not(feature = "pg13"))]
pub fn show_upstream_setting(
    conninfo: &std::ffi::CStr,
    setting: &std::ffi::CStr,
) -> Result<String, String> {
    // SAFETY: libpqwalreceiver fills WalReceiverFunctions when loaded; every pointer below comes
    // from it and is released before returning.
    unsafe {
        if pg_sys::WalReceiverFunctions.is_null() {
            pg_sys::load_file(c"libpqwalreceiver".as_ptr(), false);
        }
        let f = &*pg_sys::WalReceiverFunctions;
        let mut err: *mut std::ffi::c_char = std::ptr::null_mut();
        let conn = walrcv_connect(f, conninfo, c"snowflake_id upstream check", &mut err);
        if conn.is_null() {
            return Err(c_message(err, "could not connect"));
        }
        let query = std::ffi::CString::new(format!("SHOW {}", setting.to_string_lossy())).unwrap();
        let types = [pg_sys::TEXTOID];
        let exec = f.walrcv_exec.expect("libpqwalreceiver has walrcv_exec");
        let res = exec(conn, query.as_ptr(), 1, types.as_ptr());
        let out = if (*res).status == pg_sys::WalRcvExecStatus::WALRCV_OK_TUPLES {
            let slot =
                pg_sys::MakeSingleTupleTableSlot((*res).tupledesc, &pg_sys::TTSOpsMinimalTuple);
            let text = if pg_sys::tuplestore_gettupleslot((*res).tuplestore, true, false, slot) {
                if (*slot).tts_nvalid < 1 {
                    pg_sys::slot_getsomeattrs_int(slot, 1);
                }
                if *(*slot).tts_isnull {
                    Err("the setting is NULL".to_string())
                } else {
                    let datum = *(*slot).tts_values;
                    Ok(c_message(pg_sys::text_to_cstring(datum.cast_mut_ptr()), ""))
                }
            } else {
                Err("no row".to_string())
            };
            pg_sys::ExecDropSingleTupleTableSlot(slot);
            text
        } else {
            Err(c_message((*res).err, "the query failed"))
        };
        pg_sys::walrcv_clear_result(res);
        if let Some(disconnect) = f.walrcv_disconnect {
            disconnect(conn);
        }
        out
    }
}

/// Whether the synchronous standbys have flushed `lsn`, or none is configured (then nothing
/// waits). PostgreSQL keeps in `WalSndCtl` whether `synchronous_standby_names` names any
/// (once the checkpointer has set it up) and the position they all confirmed. (On 13 and 14
/// no ceiling is WAL-logged, so nothing waits.)
#[cfg(any(feature = "pg13", feature = "pg14"))]
pub unsafe fn sync_standbys_confirmed(_lsn: pg_sys::XLogRecPtr) -> bool {
    true
}

#[cfg(not(any(feature = "pg13", feature = "pg14")))]
pub unsafe fn sync_standbys_confirmed(lsn: pg_sys::XLogRecPtr) -> bool {
    let ctl = pg_sys::WalSndCtl;
    if ctl.is_null() || pg_sys::max_wal_senders == 0 {
        return true;
    }
    let status = std::ptr::read_volatile(std::ptr::addr_of!((*ctl).sync_standbys_status)) as u32;
    let defined = if status & pg_sys::SYNC_STANDBY_INIT != 0 {
        status & pg_sys::SYNC_STANDBY_DEFINED != 0
    } else {
        let names = pg_sys::SyncRepStandbyNames;
        !names.is_null() && *names != 0
    };
    if !defined {
        return true;
    }
    let flushed = std::ptr::read_volatile(std::ptr::addr_of!(
        (*ctl).lsn[pg_sys::SYNC_REP_WAIT_FLUSH as usize]
    ));
    flushed >= lsn
}
