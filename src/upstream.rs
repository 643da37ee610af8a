//! Which node ids are in use upstream of a standby, so that a standby never issues IDs under one
//! of them.
//!
//! A standby cloned with `pg_basebackup -R` inherits its upstream's `postgresql.conf`, node id
//! included, and a clone made before the primary's first ID (Patroni, repmgr and
//! pg_auto_failover build replicas right after `initdb`) finds no ceiling record or state file
//! naming the primary. A standby of a standby (a cascade) replays only the primary's WAL, which
//! says nothing of the standby in between. So a server in recovery asks its upstream itself:
//!
//! * every server shows, in the read-only setting `snowflake_id.node_id_chain`, the node ids
//!   under which it or a server upstream of it may issue IDs: a primary its own node id; a
//!   standby its own followed by its upstream's chain, or `unknown` until it has learnt it;
//! * a background worker on every server in recovery asks its upstream, over the standby's own
//!   `primary_conninfo` (a replication connection, which accepts `SHOW`), for that setting,
//!   and keeps the answer in shared memory; it asks again every 10 s (every half second while
//!   the answer is unknown or holds its own node id) and forgets the answer when
//!   `primary_conninfo` changes;
//! * a server in recovery issues an ID only when the chain is known and its node id is not in
//!   it (`check`): never allowed until proven otherwise.
//!
//! Without `primary_conninfo` (a restore from an archive) or with an upstream that does not
//! preload snowflake_id, the chain stays unknown: the standby issues no IDs until promoted.

use crate::compat;
use crate::errors;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use pgrx::{pg_sys, PGRXSharedMemory, PgAtomic};
use snowflake_core::layout::MAX_NODE;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

/// The setting a server shows its downstream standbys.
pub const CHAIN_SETTING: &CStr = c"snowflake_id.node_id_chain";
/// How often a standby asks again while the chain is known and allows its node id, and while
/// it is not known or refuses it.
const RECHECK: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_millis(500);
const WORDS: usize = (MAX_NODE as usize + 1).div_ceil(64);

/// What this server learnt from its upstream, in shared memory.
#[repr(C)]
pub struct UpstreamState {
    /// 1 while `ids` holds the upstream's chain; 0 = not known.
    known: AtomicU32,
    /// The upstream's chain: bit `n` set for node id `n`.
    ids: [AtomicU64; WORDS],
    /// A hash of the `primary_conninfo` the chain was learnt through.
    conninfo_hash: AtomicU64,
    /// Answers received from the upstream.
    checks: AtomicU64,
}

// SAFETY: `repr(C)`, atomics only, no pointers.
unsafe impl PGRXSharedMemory for UpstreamState {}

impl Default for UpstreamState {
    fn default() -> Self {
        UpstreamState {
            known: AtomicU32::new(0),
            ids: std::array::from_fn(|_| AtomicU64::new(0)),
            conninfo_hash: AtomicU64::new(0),
            checks: AtomicU64::new(0),
        }
    }
}

pub static UPSTREAM: PgAtomic<UpstreamState> = unsafe { PgAtomic::new(c"snowflake_id upstream") };

static CHAIN: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// The upstream's chain, if known.
fn known_chain() -> Option<Vec<u16>> {
    let s = UPSTREAM.get();
    if s.known.load(Acquire) == 0 {
        return None;
    }
    let ids = (0..=MAX_NODE)
        .filter(|&n| s.ids[n as usize / 64].load(Relaxed) & (1 << (n % 64)) != 0)
        .collect();
    // A change made while reading clears `known` first: read again if it did.
    (s.known.load(Acquire) != 0).then_some(ids)
}

fn store_chain(ids: Option<&[u16]>) {
    let s = UPSTREAM.get();
    let Some(ids) = ids else {
        s.known.store(0, Release);
        return;
    };
    let mut words = [0u64; WORDS];
    for &n in ids {
        words[n as usize / 64] |= 1 << (n % 64);
    }
    let same = s.known.load(Acquire) != 0
        && words
            .iter()
            .zip(s.ids.iter())
            .all(|(w, a)| a.load(Relaxed) == *w);
    if !same {
        s.known.store(0, Release);
        for (w, a) in words.iter().zip(s.ids.iter()) {
            a.store(*w, Relaxed);
        }
        s.known.store(1, Release);
    }
    s.checks.fetch_add(1, Relaxed);
}

/// This server's chain, as shown in [`CHAIN_SETTING`]: `None` is `unknown`.
fn my_chain() -> Option<Vec<u16>> {
    let mut ids: Vec<u16> = crate::guc::node_id().into_iter().collect();
    // A process outside a running server (`postgres -C`, single-user mode) may have no shared
    // memory to ask: it shows the node id alone.
    // SAFETY: reads process-global flags and, under a postmaster, shared state; no ERROR.
    if unsafe { pg_sys::IsUnderPostmaster && pg_sys::RecoveryInProgress() } {
        ids.extend(known_chain()?);
    }
    ids.sort_unstable();
    ids.dedup();
    Some(ids)
}

fn format_chain(chain: Option<&[u16]>) -> String {
    match chain {
        None => "unknown".into(),
        Some(ids) => ids.iter().map(u16::to_string).collect::<Vec<_>>().join(","),
    }
}

/// Parses a chain shown by an upstream; `None` for `unknown` or anything unexpected.
fn parse_chain(text: &str) -> Option<Vec<u16>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|n| n.trim().parse::<u16>().ok().filter(|&n| n <= MAX_NODE))
        .collect()
}

#[pg_guard]
unsafe extern "C-unwind" fn show_chain() -> *const std::ffi::c_char {
    static mut SHOWN: Option<CString> = None;
    let text = CString::new(format_chain(my_chain().as_deref())).unwrap();
    // SAFETY: one thread per process; PostgreSQL copies the string before the next call.
    unsafe {
        let shown = &mut *std::ptr::addr_of_mut!(SHOWN);
        shown.insert(text).as_ptr()
    }
}

/// Defines the read-only setting and the worker (only while preloading).
pub fn init() {
    // SAFETY: the show hook is guarded; the setting is a static.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            CHAIN_SETTING,
            c"Node ids under which this server, or a server upstream of it, may issue Snowflake IDs.",
            c"Read-only. A primary shows its own node id; a standby its own and its upstream's chain, or unknown until it has asked its upstream. A standby issues IDs only under a node id not in its upstream's chain.",
            &CHAIN,
            GucContext::Internal,
            GucFlags::DISALLOW_IN_FILE | GucFlags::NO_RESET_ALL,
            None,
            None,
            Some(show_chain),
        );
    }
    pgrx::pg_shmem_init!(UPSTREAM);
    BackgroundWorkerBuilder::new("snowflake_id upstream check")
        .set_type("snowflake_id upstream check")
        .set_library("snowflake_id")
        .set_function("snowflake_id_upstream_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::ConsistentState)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// On a server in recovery: an ERROR unless its upstream's chain is known and does not hold
/// `node`.
pub fn check(node: u16) {
    match known_chain() {
        None => errors::upstream_unknown(node),
        Some(ids) if ids.contains(&node) => {
            errors::standby_node_upstream(node, &format_chain(Some(&ids)))
        }
        Some(_) => {}
    }
}

fn hash(text: &[u8]) -> u64 {
    // FNV-1a: only to notice that primary_conninfo changed.
    text.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The worker: while the server is in recovery, asks the upstream for its chain. It exits once
/// recovery is over (a promoted server is its own chain), and is not restarted then.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn snowflake_id_upstream_main(_arg: pg_sys::Datum) {
    // SIGTERM keeps PostgreSQL's handler for workers: it ends the worker wherever it waits.
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP);
    // SAFETY: reads shared state.
    if !unsafe { pg_sys::RecoveryInProgress() } {
        return;
    }
    // walrcv_exec builds its result with the catalogs' type information: a database is
    // needed, and template1 (OID 1) is the one every cluster has.
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(1u32)), None);
    loop {
        pg_sys::check_for_interrupts!();
        // SAFETY: as above.
        if !unsafe { pg_sys::RecoveryInProgress() } {
            return;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: the worker's own configuration, reloaded between checks.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        // Asked again soon while the answer refuses this server's IDs: right after a switchover
        // the answer may be the new upstream's from before its promotion.
        let known = ask_upstream();
        let settled = known
            && crate::guc::node_id()
                .is_none_or(|n| known_chain().is_some_and(|chain| !chain.contains(&n)));
        if !BackgroundWorker::wait_latch(Some(if settled { RECHECK } else { RETRY })) {
            return;
        }
    }
}

/// One question to the upstream; true if the chain is known afterwards.
fn ask_upstream() -> bool {
    // SAFETY: the worker's copy of the setting (empty or NULL when unset).
    let conninfo = unsafe {
        let p = pg_sys::PrimaryConnInfo;
        if p.is_null() {
            CString::default()
        } else {
            CStr::from_ptr(p).to_owned()
        }
    };
    let s = UPSTREAM.get();
    let h = hash(conninfo.as_bytes());
    if s.conninfo_hash.swap(h, Relaxed) != h {
        store_chain(None);
    }
    if conninfo.as_bytes().is_empty() {
        store_chain(None);
        return false;
    }
    match BackgroundWorker::transaction(|| compat::show_upstream_setting(&conninfo, CHAIN_SETTING))
    {
        Ok(text) => {
            let chain = parse_chain(&text);
            store_chain(chain.as_deref());
            chain.is_some()
        }
        Err(e) => {
            // Unreachable, or not preloading snowflake_id: the last answer stands while
            // primary_conninfo is unchanged (the upstream's chain changes only with a restart).
            errors::server_log(format!(
                "snowflake_id: could not ask the upstream for {}: {e}",
                CHAIN_SETTING.to_string_lossy()
            ));
            known_chain().is_some()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_round_trip_and_bad_ones_are_unknown() {
        assert_eq!(parse_chain(""), Some(vec![]));
        assert_eq!(parse_chain("1"), Some(vec![1]));
        assert_eq!(parse_chain("2,1,1023"), Some(vec![2, 1, 1023]));
        assert_eq!(parse_chain("unknown"), None);
        assert_eq!(parse_chain("1,1024"), None);
        assert_eq!(parse_chain("1,,2"), None);
        assert_eq!(format_chain(Some(&[1, 2])), "1,2");
        assert_eq!(format_chain(Some(&[])), "");
        assert_eq!(format_chain(None), "unknown");
        assert_eq!(
            parse_chain(&format_chain(Some(&[0, 7, 1023]))),
            Some(vec![0, 7, 1023])
        );
    }
}
