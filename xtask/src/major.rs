//! `xtask major NN`: builds snowflake_id for a `regress`-tier major against a real server of
//! that major, installs it there, and (unless --no-check) starts a throwaway node through the
//! cluster tool that preloads it and issues an ID.
//!
//! These majors are not in Debian bookworm: the cluster tool downloads a relocatable build with
//! the server headers, which is what pgrx needs, and unpacks it under target/pgNN
//! (`snowflake_cluster::majors`). Idempotent: the download, the unpacking and `cargo pgrx init`
//! are skipped when already done.
//!
//! pgrx's configuration for these majors lives in its own PGRX_HOME (`$PGRX_HOME_MAJORS`,
//! default target/pgrx-majors), so the one that `xtask setup` writes for the full-tier majors
//! is left alone.
//!
//! `--regress` also runs the SQL surface's pg_regress contracts on that major
//! (tests/tests/regress.rs, seconds: the test harness does not depend on the major, so nothing
//! more is built); `--pg-test` also runs the whole #[pg_test] suite on that major (`cargo pgrx
//! test pgNN`, which builds the extension again with its tests, about 4 to 16 minutes from cold).
//! Then target/pgNN/.../bin has the server with snowflake_id installed.

use crate::run::{cargo, cmd, fail, Cmd, Result, Sh};
use crate::{build_snowcluster, fetch, snowcluster, tier};
use snowflake_cluster::majors::Tier;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub struct Opts {
    pub check: bool,
    pub regress: bool,
    pub pg_test: bool,
}

pub fn major(sh: &Sh, major: u32, o: Opts) -> Result {
    build_snowcluster(sh)?;
    let majors = tier(Tier::Regress);
    if !majors.contains(&major) {
        let names: Vec<String> = majors.iter().map(u32::to_string).collect();
        return fail(
            2,
            format!(
                "usage: xtask major {} [--no-check | --regress | --pg-test]",
                names.join("|")
            ),
        );
    }
    let root = &sh.root;
    let dir = root.join(format!("target/pg{major}"));
    // downloaded, checked and unpacked unless already there
    let pg_config = fetch(sh, major)?;
    let pg = pg_config
        .parent()
        .and_then(Path::parent)
        .expect("pg_config is in bin/")
        .to_path_buf();
    sh.run(&cmd(&pg_config).arg("--version"))?;

    let pgrx_home = std::env::var_os("PGRX_HOME_MAJORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/pgrx-majors"));
    let with_home = |c: Cmd| c.env("PGRX_HOME", &pgrx_home);
    sh.mkdir(&pgrx_home)?;
    let config = std::fs::read_to_string(pgrx_home.join("config.toml")).unwrap_or_default();
    if !config.contains(&format!("pg{major} = \"{}\"", pg_config.display())) {
        // init rewrites the whole config: name every major already unpacked here
        let mut init = cargo(["pgrx", "init"]);
        for &m in &majors {
            let c = crate::pg_config_of(root, m)?;
            if c.is_file() || (sh.dry && m == major) {
                init = init.args([OsString::from(format!("--pg{m}")), c.into_os_string()]);
            }
        }
        sh.run(&with_home(init).quiet())?;
    }

    println!("== cargo pgrx install --features pg{major} (about 5 minutes from cold)");
    sh.run(&with_home(
        cargo(["pgrx", "install", "--release", "--no-default-features"])
            .args(["--features", &format!("pg{major}")])
            .arg("--pg-config")
            .arg(&pg_config),
    ))?;

    if !o.check {
        return Ok(());
    }
    let port = 27100 + major;
    println!("== smoke test: preload, CREATE EXTENSION, snowflake_nextval() on 127.0.0.1:{port}");
    let sc = |sub: &str| {
        cmd(snowcluster(root))
            .arg("--pg-config")
            .arg(&pg_config)
            .arg(sub)
            .arg("--dir")
            .arg(dir.join("smoke"))
            .args([
                "--name",
                "smoke",
                "--nodes",
                "1",
                "--port",
                &port.to_string(),
            ])
    };
    let down = sc("down");
    sh.run(&sc("up").args(["--engine", "none", "--node-ids", "1"]))?;
    let smoke = sh.run(
        &cmd(pg.join("bin/psql"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-U", "postgres", "-X", "-v", "ON_ERROR_STOP=1", "-qAt"])
            .args(["-c", "CREATE EXTENSION snowflake_id"])
            .args([
                "-c",
                "SELECT 'server ' || current_setting('server_version') || ': snowflake_nextval() = ' || snowflake_nextval()",
            ])
            .args(["-c", "SELECT 'snowflake_stats() = ' || snowflake_stats()"]),
    );
    // the node is stopped whether the smoke test passed or not
    let stopped = sh.run(&down);
    smoke?;
    stopped?;
    println!("pg{major}: OK");

    if o.regress {
        println!("== pg_regress contracts on pg{major} (tests/tests/regress.rs)");
        sh.run(&with_home(crate::test::regress_contracts(&pg_config)))?;
    }

    if o.pg_test {
        println!("== cargo pgrx test pg{major}");
        let data = root.join(format!("target/pgrx-test-data-{major}"));
        sh.mkdir(&data)?;
        sh.chown_postgres(&data);
        sh.run(&with_home(
            cargo(["pgrx", "test", &format!("pg{major}"), "--runas", "postgres"])
                .arg("--pgdata")
                .arg(&data),
        ))?;
    }
    Ok(())
}
