//! pg_dump and restores with the programs of the PostgreSQL under test, the way an operator
//! runs them: every test that dumps and restores goes through here, so they all restore with
//! the same strictness (stop at the first error, all or nothing).

use crate::pg_bin;
use std::path::Path;
use std::process::{Command, Output};

/// The two dump formats an operator uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `pg_dump -Fc`, restored by `pg_restore`.
    Custom,
    /// `pg_dump`'s default, a SQL script, restored by `psql -f`.
    Plain,
}

/// Dumps the database at `conninfo` into `file`; panics with pg_dump's message on failure.
pub fn dump(conninfo: &str, file: &Path, format: Format) {
    let mut cmd = Command::new(pg_bin("pg_dump"));
    if format == Format::Custom {
        cmd.arg("-Fc");
    }
    cmd.arg("-f").arg(file).args(["-d", conninfo]);
    check("pg_dump", cmd.output().unwrap());
}

/// Restores `file` (either format, told by its first bytes) into the existing database at
/// `conninfo`, in one transaction, stopping at the first error; panics with the restoring
/// program's message on failure.
pub fn restore(conninfo: &str, file: &Path) {
    let out = if is_custom(file) {
        Command::new(pg_bin("pg_restore"))
            .args(["--exit-on-error", "--single-transaction", "-d", conninfo])
            .arg(file)
            .output()
            .unwrap()
    } else {
        Command::new(pg_bin("psql"))
            .args(["-X", "-q", "--single-transaction", "-v", "ON_ERROR_STOP=1"])
            .args(["-d", conninfo, "-f"])
            .arg(file)
            .output()
            .unwrap()
    };
    check("restore", out);
}

/// The table of contents of a custom-format dump (`pg_restore -l`).
pub fn contents(file: &Path) -> String {
    let out = check(
        "pg_restore -l",
        Command::new(pg_bin("pg_restore"))
            .arg("-l")
            .arg(file)
            .output()
            .unwrap(),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A custom-format archive starts with `PGDMP`.
fn is_custom(file: &Path) -> bool {
    let head = std::fs::read(file)
        .unwrap_or_else(|e| panic!("cannot read the dump {}: {e}", file.display()));
    head.starts_with(b"PGDMP")
}

fn check(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
