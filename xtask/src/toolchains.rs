//! The toolchains of two suites, installed by `xtask setup --clients --ha` and by the test
//! command before the integration tests; each part is skipped when it is already there.
//!
//! - Clients (tests/tests/clients.rs): a Python venv under target/clients (Debian's pip
//!   refuses the system Python) with tests/clients/python/requirements.txt, `npm ci` in
//!   tests/clients/node, pgjdbc from Debian (Maven Central is not reachable) and the Java
//!   recipe compiled with javac. Python 3, Node 20 and a JDK 17 come with the machine.
//! - HA (tests/tests/ha.rs): Patroni, etcd, PgBouncer and postgres_exporter from Debian, run
//!   by the tests as ordinary processes on loopback ports. The services the packages would
//!   start must not run, so that nothing holds a port when a session or CI starts.

use crate::run::{cmd, fail, Cmd, Result, Sh};
use crate::setup::{apt_install, installed};
use std::path::Path;
use std::process::Stdio;

/// Whether `a` and `b` both exist with the same bytes (`cmp -s`).
fn same_file(a: &Path, b: &Path) -> bool {
    matches!((std::fs::read(a), std::fs::read(b)), (Ok(x), Ok(y)) if x == y)
}

fn copy(sh: &Sh, from: &Path, to: &Path) -> Result {
    if sh.dry {
        println!("+ cp {} {}", from.display(), to.display());
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(drop)
        .or_else(|e| fail(1, format!("cp {} {}: {e}", from.display(), to.display())))
}

/// Whether `class` is missing or older than `source` (make's rule).
fn stale(source: &Path, class: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(source), modified(class)) {
        (Some(s), Some(c)) => s > c,
        _ => true,
    }
}

pub fn clients(sh: &Sh) -> Result {
    let root = &sh.root;
    let out = root.join("target/clients");
    sh.mkdir(&out)?;
    apt_install(sh, &["python3-venv", "libpostgresql-jdbc-java"], "clients")?;

    // Debian's interpreter, not whatever python3 comes first on PATH: CI has only that one.
    let req = root.join("tests/clients/python/requirements.txt");
    let venv = out.join("venv");
    let stamp = venv.join("requirements.installed");
    if !same_file(&req, &stamp) {
        println!("== clients: Python venv {}", venv.display());
        sh.run(&cmd("rm").arg("-rf").arg(&venv))?;
        sh.run(&cmd("/usr/bin/python3").args(["-m", "venv"]).arg(&venv))?;
        sh.run(
            &cmd(venv.join("bin/pip"))
                .args(["install", "-q", "--disable-pip-version-check", "-r"])
                .arg(&req),
        )?;
        copy(sh, &req, &stamp)?;
    }

    // Node: exactly the locked tree, again when the lock changes.
    let node = root.join("tests/clients/node");
    let lock = node.join("package-lock.json");
    let stamp = node.join("node_modules/.package-lock.json.installed");
    if !same_file(&lock, &stamp) {
        println!("== clients: npm ci in tests/clients/node");
        let npm = cmd("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
        let npm = npm.quiet();
        if sh.dry {
            println!("+ (cd tests/clients/node && {npm})");
        } else {
            let status = npm
                .command(root)
                .current_dir(&node)
                .status()
                .or_else(|e| fail(127, format!("cannot run {npm}: {e}")))?;
            if !status.success() {
                return fail(status.code().unwrap_or(1), format!("{npm}: {status}"));
            }
        }
        copy(sh, &lock, &stamp)?;
    }

    // Java: each recipe compiled again when its source is newer than its class.
    let classes = out.join("java");
    sh.mkdir(&classes)?;
    let sources = std::fs::read_dir(root.join("tests/clients/java"))
        .or_else(|e| fail(1, format!("tests/clients/java: {e}")))?;
    let mut sources: Vec<_> = sources
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "java"))
        .collect();
    sources.sort();
    for src in sources {
        let class = classes.join(src.with_extension("class").file_name().expect("a file"));
        if stale(&src, &class) {
            println!("== clients: javac {}", src.display());
            sh.run(
                &cmd("javac")
                    .arg("-d")
                    .arg(&classes)
                    .args(["-cp", "/usr/share/java/postgresql.jar"])
                    .arg(&src),
            )?;
        }
    }
    Ok(())
}

const HA_PACKAGES: [&str; 4] = [
    "patroni",
    "etcd-server",
    "pgbouncer",
    "prometheus-postgres-exporter",
];
const HA_SERVICES: [&str; 4] = [
    "etcd",
    "pgbouncer",
    "prometheus-postgres-exporter",
    "patroni",
];
/// Where the daemons write their pid files when a package started them without an init system.
const HA_PID_FILES: [&str; 3] = [
    "/run/etcd.pid",
    "/run/postgresql/pgbouncer.pid",
    "/run/prometheus-postgres-exporter.pid",
];
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

pub fn ha(sh: &Sh) -> Result {
    if !HA_PACKAGES.iter().all(|p| installed(sh, p)) {
        // invoke-rc.d asks policy-rc.d whether a service may start; 101 says no. An existing
        // policy is the machine's and is kept.
        let own_policy = !sh.dry && !Path::new(POLICY_RC_D).exists();
        if own_policy {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(POLICY_RC_D, "#!/bin/sh\nexit 101\n")
                .and_then(|()| {
                    std::fs::set_permissions(POLICY_RC_D, std::fs::Permissions::from_mode(0o755))
                })
                .or_else(|e| fail(1, format!("{POLICY_RC_D}: {e}")))?;
        }
        let r = apt_install(sh, &HA_PACKAGES, "the HA tests");
        if own_policy {
            let _ = std::fs::remove_file(POLICY_RC_D);
        }
        r?;
    }

    // Should a service run anyway (a machine where the install did start it), stop and disable
    // it: with systemd when it is the init system, else with the SysV scripts.
    let systemd = !sh.dry && quietly(sh, &cmd("systemctl").arg("is-system-running"));
    for s in HA_SERVICES {
        let stops = if systemd {
            vec![cmd("systemctl").args(["disable", "--now", s])]
        } else if Path::new("/etc/init.d").join(s).exists() {
            vec![
                cmd("service").args([s, "stop"]),
                cmd("update-rc.d").args([s, "disable"]),
            ]
        } else {
            vec![]
        };
        for c in stops {
            quietly(sh, &c);
        }
    }
    for pid_file in HA_PID_FILES {
        let pid = std::fs::read_to_string(pid_file).unwrap_or_default();
        if !pid.trim().is_empty() {
            quietly(sh, &cmd("kill").arg(pid.trim()));
        }
    }
    Ok(())
}

/// Runs `c` with its output discarded and tells whether it succeeded; a failure is no error
/// (`c >/dev/null 2>&1 || true`).
fn quietly(sh: &Sh, c: &Cmd) -> bool {
    if sh.dry {
        println!("+ {} 2>&1 || true", c.clone().quiet());
        return false;
    }
    c.clone()
        .quiet()
        .command(&sh.root)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
