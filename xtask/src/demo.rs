//! `xtask demo`: the main job (docs/demo.md). Sets up, installs the extension, builds the
//! cluster tool, then becomes `snowcluster demo` (cluster/src/demo/), which runs the nodes, the
//! loads and the checks and stops every server it started (also on an error or a signal).
//!
//! Options: `--pg MAJOR | --pg-config PATH`, `--no-build`; any other is `snowcluster demo`'s.
//! Environment: DEMO_PG, DEMO_PG_CONFIG, DEMO_NO_BUILD=1 (the extension is installed already),
//! SNOWCLUSTER (the tool's binary; default: built into target/release), and the variables
//! `snowcluster demo` reads.

use crate::run::{cargo, cmd, fail, Result, Sh};
use crate::{build_snowcluster, pg_config_of, snowcluster, system_major};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

pub fn demo(sh: &Sh, args: Vec<String>) -> Result {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut pg_sel = env("DEMO_PG");
    let mut pg_config = env("DEMO_PG_CONFIG").map(PathBuf::from);
    let mut no_build = env("DEMO_NO_BUILD").as_deref() == Some("1");
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--pg" | "--pg-config" => {
                let Some(v) = it.next() else {
                    return fail(2, format!("{a} needs a value"));
                };
                if a == "--pg" {
                    pg_sel = Some(v);
                    pg_config = None;
                } else {
                    pg_config = Some(PathBuf::from(v));
                }
            }
            "--no-build" => no_build = true,
            _ => rest.push(a),
        }
    }
    if !no_build {
        crate::setup::setup(sh)?;
    }
    let sc = match env("SNOWCLUSTER") {
        Some(p) => PathBuf::from(p),
        None => {
            build_snowcluster(sh)?;
            snowcluster(&sh.root)
        }
    };
    let pg_config = match pg_config {
        Some(p) => p,
        None => {
            let major = match pg_sel {
                Some(s) => s
                    .parse()
                    .or_else(|_| fail(2, format!("--pg {s}: not a major")))?,
                None => system_major(),
            };
            pg_config_of(&sh.root, major)?
        }
    };
    if !pg_config.is_file() {
        return fail(
            2,
            format!(
                "no pg_config at {} (xtask setup unpacks the full-tier majors, xtask major NN the others)",
                pg_config.display()
            ),
        );
    }
    if !no_build {
        let version = sh.read(&cmd(&pg_config).arg("--version"))?;
        println!("== building and installing the extension (release) into {version}");
        sh.run(
            &cargo(["pgrx", "install", "--release", "--pg-config"])
                .arg(&pg_config)
                .quiet(),
        )?;
    }
    let c = cmd(&sc)
        .arg("--pg-config")
        .arg(&pg_config)
        .arg("demo")
        .args(rest);
    let e = c.command(&sh.root).exec();
    fail(127, format!("cannot run {c}: {e}"))
}
