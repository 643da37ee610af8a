//! Wall clocks the fault tests can step while a server runs. Both leave `CLOCK_MONOTONIC` alone,
//! as a real clock step (NTP, an operator's `date -s`, a VM resume) does.
//!
//! * [`FakeTime`]: libfaketime (Debian package `faketime`), relative offset in a file it re-reads
//!   on every call (`FAKETIME_TIMESTAMP_FILE`, `FAKETIME_NO_CACHE=1`). On PostgreSQL 15 it shifts
//!   client backends, where IDs are drawn, but not every auxiliary process; see `clockshim.c`.
//! * [`Shim`]: our own LD_PRELOAD library, `tests/clockshim/clockshim.c`, compiled by the tests
//!   into `target/it/clockshim.so`: an offset in microseconds in a shared mapping, seen by every
//!   process of the server at once.
//!
//! Set the offset, then wait until a backend's `clock_timestamp()` shows it
//! ([`wait_until_server_offset`]), never a fixed sleep.

use crate::{clusters_root, ensure_traversable, project_root, wait_for};
use postgres::Client;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A wall clock for a server, to be stepped at runtime.
pub trait ServerClock: Send + Sync {
    /// What to put in [`crate::Cluster::env`] before starting the server.
    fn env(&self) -> Vec<(String, String)>;
    /// Sets the server's wall clock to real time plus `offset_ms` (whole seconds for libfaketime).
    fn set_offset_ms(&self, offset_ms: i64);
    /// A short name for messages.
    fn name(&self) -> &'static str;
}

/// Real Unix time in milliseconds, as this (unshifted) test process sees it.
pub fn real_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// How far the server's wall clock (a backend's `clock_timestamp()`) is from real time, in ms.
pub fn server_offset_ms(client: &mut Client) -> i64 {
    let before = real_unix_ms();
    let server: i64 = client
        .query_one(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            &[],
        )
        .unwrap()
        .get(0);
    let after = real_unix_ms();
    server - (before + after) / 2
}

/// Waits until the server's clock is `offset_ms` from real time (within 250 ms), polling.
pub fn wait_until_server_offset(client: &mut Client, offset_ms: i64) {
    wait_for(
        &format!("the server clock to be {offset_ms} ms off"),
        Duration::from_secs(30),
        || {
            let seen = server_offset_ms(client);
            ((seen - offset_ms).abs() < 250).then_some(())
        },
    );
}

/// libfaketime with a relative offset read from a file on every clock call.
pub struct FakeTime {
    file: PathBuf,
}

impl FakeTime {
    /// The installed library (Debian: `/usr/lib/<triplet>/faketime/libfaketime.so.1`).
    pub fn library() -> PathBuf {
        let mut found = None;
        if let Ok(entries) = fs::read_dir("/usr/lib") {
            for e in entries.flatten() {
                let p = e.path().join("faketime").join("libfaketime.so.1");
                if p.exists() {
                    found = Some(p);
                }
            }
        }
        found.expect(
            "libfaketime.so.1 not found: install the Debian package faketime (scripts/setup.sh)",
        )
    }

    /// A clock at real time whose offset file lives in `dir` (which user postgres can read).
    pub fn new(dir: &Path) -> FakeTime {
        let c = FakeTime {
            file: dir.join("faketime.rc"),
        };
        c.set_offset_ms(0);
        c
    }
}

impl ServerClock for FakeTime {
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), Self::library().display().to_string()),
            (
                "FAKETIME_TIMESTAMP_FILE".into(),
                self.file.display().to_string(),
            ),
            ("FAKETIME_NO_CACHE".into(), "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ]
    }

    fn set_offset_ms(&self, offset_ms: i64) {
        assert!(
            offset_ms % 1000 == 0,
            "libfaketime offsets here are whole seconds"
        );
        // Replace the file atomically: a reader sees the old or the new offset, never an empty file.
        let tmp = self.file.with_extension("rc.tmp");
        fs::write(&tmp, format!("{:+}\n", offset_ms / 1000)).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        fs::rename(&tmp, &self.file).unwrap();
    }

    fn name(&self) -> &'static str {
        "libfaketime"
    }
}

/// Our LD_PRELOAD shim: an offset in µs in a file that every server process maps.
pub struct Shim {
    file: PathBuf,
    offset: *mut AtomicI64,
}

// SAFETY: the pointer is a shared mapping that lives as long as the `Shim`; it is only accessed
// through an `AtomicI64`.
unsafe impl Send for Shim {}
unsafe impl Sync for Shim {}

impl Shim {
    /// Compiles `tests/clockshim/clockshim.c` into `target/it/clockshim.so` (once per test run).
    pub fn library() -> PathBuf {
        static BUILT: OnceLock<PathBuf> = OnceLock::new();
        BUILT
            .get_or_init(|| {
                let src = project_root()
                    .join("tests")
                    .join("clockshim")
                    .join("clockshim.c");
                let root = clusters_root();
                fs::create_dir_all(&root).unwrap();
                let out = root.join("clockshim.so");
                ensure_traversable(&out);
                let tmp = root.join(format!("clockshim.so.{}", std::process::id()));
                let cc = Command::new("cc")
                    .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
                    .arg(&tmp)
                    .arg(&src)
                    .arg("-ldl")
                    .output()
                    .expect("cannot run cc (install build-essential: scripts/setup.sh)");
                assert!(
                    cc.status.success(),
                    "cc clockshim.c failed:\n{}",
                    String::from_utf8_lossy(&cc.stderr)
                );
                fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
                fs::rename(&tmp, &out).unwrap();
                out
            })
            .clone()
    }

    /// A clock at real time whose offset file lives beside the cluster `name`, in a directory
    /// of its own made afresh.
    pub fn beside(name: &str) -> Shim {
        let dir = clusters_root().join(format!("{name}-files"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        ensure_traversable(&dir.join("x"));
        Shim::new(&dir)
    }

    /// A clock at real time whose offset file lives in `dir` (which user postgres can read).
    pub fn new(dir: &Path) -> Shim {
        use std::os::unix::io::AsRawFd;
        let file = dir.join("clockshim.offset");
        fs::write(&file, 0i64.to_ne_bytes()).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .unwrap();
        // SAFETY: maps 8 bytes of a file we just wrote with 8 bytes; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "mmap of {} failed", file.display());
        Shim {
            file,
            offset: p.cast(),
        }
    }

    fn offset(&self) -> &AtomicI64 {
        // SAFETY: page-aligned mapping of 8 bytes, valid until drop.
        unsafe { &*self.offset }
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        // SAFETY: unmaps what `new` mapped.
        unsafe { libc::munmap(self.offset.cast(), 8) };
    }
}

impl ServerClock for Shim {
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), Self::library().display().to_string()),
            (
                "SNOWFLAKE_CLOCKSHIM_FILE".into(),
                self.file.display().to_string(),
            ),
        ]
    }

    fn set_offset_ms(&self, offset_ms: i64) {
        self.offset().store(offset_ms * 1000, Ordering::SeqCst);
    }

    fn name(&self) -> &'static str {
        "clockshim"
    }
}
