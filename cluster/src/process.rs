//! Processes: running programs as user `postgres` (PostgreSQL refuses root), signals, waits.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

extern "C" {
    fn getuid() -> u32;
}

pub fn running_as_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { getuid() == 0 }
}

/// A command running `program` as user `postgres` (directly if we are not root).
pub fn as_postgres(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Panics with the program's output unless it succeeded.
pub(crate) fn check(what: &str, out: Output) -> Output {
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Lets user `postgres` reach `path`: adds search (x) permission for others on every ancestor
/// that lacks it (a checkout under /root would otherwise be unreachable).
pub fn ensure_traversable(path: &Path) {
    for dir in path.ancestors().skip(1) {
        if let Ok(meta) = fs::metadata(dir) {
            let mode = meta.permissions().mode();
            if mode & 0o001 == 0 && running_as_root() {
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o001));
            }
        }
    }
}

pub(crate) fn chown_postgres(path: &Path) {
    if running_as_root() {
        check(
            "chown",
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(path)
                .output()
                .unwrap(),
        );
    }
}

/// Sends SIGKILL.
pub fn kill9(pid: i32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Direct children of a process.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(out) = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits until `f` returns `Some`, polling (not a fixed sleep); panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}
