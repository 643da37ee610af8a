//! `xtask test`: every test, cheapest first, stopping at the first failure:
//!   0. formatting (cargo fmt --check) and lints (cargo clippy, warnings are errors);
//!   1. pure-Rust unit and property tests of the core (layout, generator, ceiling file) and of
//!      the cluster tool;
//!   2. loom model check of the generator (compare-and-swap and fetch-and-add paths);
//!   3. #[pg_test]s of the SQL surface (cargo pgrx test, library preloaded) on the `full`-tier
//!      majors; on the `regress`-tier majors (`xtask major NN --regress`) the release build, a
//!      smoke test and the pg_regress contracts, which need no second build of the extension
//!      with its tests;
//!   4. the `compile`-tier (end-of-life) majors still compile (pregenerated bindings);
//!   5. integration tests against real servers started by the tests through the cluster tool,
//!      on each `full`-tier major (the release build installed into each): the SQL surface's
//!      contracts as pg_regress files, crashes, clock faults, hostile roles, multi-master with
//!      the main job, failover, packaging and upgrades; then the README's quick start, as
//!      written, on the `regress`-tier majors as well;
//!   6. the benchmark in quick mode on the `full`-tier majors (a smoke test of snowbench).
//!
//! The quick tier, for the inner loop: the core's and the cluster tool's unit and property
//! tests, the harness's own unit tests, then the release build installed into one PostgreSQL
//! (default the system's) and the pg_regress contracts on it.
//!
//! Majors and tiers: `snowflake_cluster::majors`. Each step's duration and the total are printed
//! at the end, also after a failure.

use crate::run::{cargo, cmd, Cmd, Result, Sh, Timings};
use crate::{major, major_of, pg_config_of, system_major, tier, toolchains};
use snowflake_cluster::majors::Tier;
use std::path::{Path, PathBuf};

/// Runs `steps` under timings printed at the end, whatever the outcome.
fn timed(sh: &Sh, steps: impl FnOnce(&Sh, &mut Timings) -> Result) -> Result {
    let mut t = Timings::new();
    t.phase("setup");
    let r = crate::setup::setup(sh).and_then(|()| steps(sh, &mut t));
    let outcome = match (&r, sh.dry) {
        (Err(_), _) => "failed",
        (Ok(()), true) => "dry run",
        (Ok(()), false) => "passed",
    };
    t.report(outcome);
    r
}

/// `cargo install-from-source.sh --pg-config P >/dev/null`.
fn install_from_source(sh: &Sh, pg_config: &PathBuf) -> Result {
    sh.run(
        &cmd("bash")
            .arg("scripts/install-from-source.sh")
            .arg("--pg-config")
            .arg(pg_config)
            .quiet(),
    )
}

pub fn quick(sh: &Sh, pg_config: Option<PathBuf>) -> Result {
    timed(sh, |sh, t| {
        let pg_config = match pg_config {
            Some(p) => p,
            None => pg_config_of(&sh.root, system_major())?,
        };
        let major = major_of(sh, &pg_config)?;
        t.step("quick 1/3 core unit and property tests, cluster tool and harness unit tests");
        sh.run(&unit_tests().arg("-q"))?;
        sh.run(&cargo([
            "test",
            "-q",
            "-p",
            "snowflake_it",
            "--release",
            "--lib",
        ]))?;
        t.step(&format!(
            "quick 2/3 release build installed into PostgreSQL {major}"
        ));
        sh.traversable();
        install_from_source(sh, &pg_config)?;
        t.step(&format!(
            "quick 3/3 pg_regress contracts on PostgreSQL {major}"
        ));
        sh.run(&regress_contracts(&pg_config))
    })
}

/// The core's and the cluster tool's unit and property tests: no server, no extension build.
fn unit_tests() -> Cmd {
    cargo([
        "test",
        "-p",
        "snowflake_core",
        "-p",
        "snowflake_cluster",
        "--release",
    ])
}

/// The pg_regress contracts (tests/tests/regress.rs) on the server of `pg_config`, which has
/// the release build installed.
pub fn regress_contracts(pg_config: &Path) -> Cmd {
    integration(pg_config, true, Some("regress"))
}

/// The integration tests (crate `snowflake_it`, one test at a time) against the server of
/// `pg_config`: the suite `test` of tests/tests/, or all; the test binary's arguments follow.
fn integration(pg_config: &Path, quiet: bool, test: Option<&str>) -> Cmd {
    let quiet = if quiet { &["-q"][..] } else { &[] };
    let test = test.map(|t| ["--test", t]);
    cargo(["test"])
        .args(quiet)
        .args(["-p", "snowflake_it", "--release"])
        .args(test.iter().flatten())
        .args(["--", "--test-threads=1"])
        .env("SNOWFLAKE_PG_CONFIG", pg_config)
}

pub fn full(sh: &Sh, filter: &[String]) -> Result {
    timed(sh, |sh, t| steps(sh, t, filter))
}

fn steps(sh: &Sh, t: &mut Timings, filter: &[String]) -> Result {
    let root = &sh.root;
    let (full, regress, compile) = (tier(Tier::Full), tier(Tier::Regress), tier(Tier::Compile));

    t.step("0/6 cargo fmt --check, cargo clippy -D warnings");
    sh.run(&cargo(["fmt", "--all", "--check"]))?;
    sh.run(&cargo([
        "clippy",
        "-q",
        "-p",
        "snowflake_core",
        "-p",
        "snowflake_cluster",
        "-p",
        "snowflake_it",
        "-p",
        "snowflake_bench",
        "-p",
        "retry_client",
        "-p",
        "xtask",
        "--release",
        "--tests",
        "--",
        "-D",
        "warnings",
    ]))?;
    sh.run(&cargo([
        "clippy",
        "-q",
        "-p",
        "snowflake_id",
        "--release",
        "--",
        "-D",
        "warnings",
    ]))?;

    t.step("1/6 core unit and property tests, cluster tool unit tests");
    sh.run(&unit_tests())?;

    t.step("2/6 loom model of the generator");
    sh.run(
        &cargo([
            "test",
            "-p",
            "snowflake_core",
            "--release",
            "--test",
            "loom",
            "--target-dir",
            "target/loom",
            "--",
            "--test-threads=1",
        ])
        .env("RUSTFLAGS", "--cfg loom"),
    )?;

    sh.traversable();
    for &v in &full {
        t.step(&format!("3a/6 pg_test suite (PostgreSQL {v})"));
        let data = root.join(format!("target/pgrx-test-data-{v}"));
        sh.mkdir(&data)?;
        sh.chown_postgres(&data);
        sh.run(
            &cargo(["pgrx", "test", &format!("pg{v}"), "--runas", "postgres"])
                .arg("--pgdata")
                .arg(&data),
        )?;
    }

    for &v in &regress {
        t.step(&format!(
            "3b/6 PostgreSQL {v} (a PyPI build): build, install, smoke test, pg_regress contracts"
        ));
        major::major(
            sh,
            v,
            major::Opts {
                check: true,
                regress: true,
                pg_test: false,
            },
        )?;
    }

    t.step("4/6 the other PostgreSQL majors compile (pregenerated bindings)");
    for &v in &compile {
        sh.run(
            &cargo(["check", "-q", "-p", "snowflake_id", "--no-default-features"])
                .args(["--features", &format!("pg{v}")])
                .args(["--target-dir", "target/featurecheck"])
                .env("RUSTC_WRAPPER", root.join("scripts/rustc-docsrs-pgsys.sh"))
                .env("DOCS_RS", "1"),
        )?;
        println!("pg{v}: compiles");
    }

    // the client-language recipes' toolchains (Python venv, npm ci, pgjdbc, javac) for
    // tests/tests/clients.rs; Patroni, etcd, PgBouncer and postgres_exporter for tests/tests/ha.rs
    t.phase("the clients' and the HA tools' set-up");
    toolchains::clients(sh)?;
    toolchains::ha(sh)?;
    for &major in &full {
        let pg_config = pg_config_of(root, major)?;
        t.step(&format!(
            "5/6 integration tests on real servers (PostgreSQL {major})"
        ));
        install_from_source(sh, &pg_config)?;
        sh.run(&integration(&pg_config, false, None).args(filter))?;
    }
    // The README's quick start on the regress-tier majors too (the full-tier ones ran it above),
    // on the builds of step 3b: its install-from-source.sh reuses their release builds.
    for &v in &regress {
        t.step(&format!("5/6 the README's quick start on PostgreSQL {v}"));
        let pg_config = pg_config_of(root, v)?;
        sh.run(
            &integration(&pg_config, false, Some("packaging"))
                .args(["--exact", "quick_start_on_a_fresh_server_gives_an_id"]),
        )?;
    }

    let names: Vec<String> = full.iter().map(u32::to_string).collect();
    t.step(&format!(
        "6/6 benchmark smoke test (snowbench --quick on {}: the benchmark works; no target assessed)",
        names.join(" and ")
    ));
    let mut bench = cargo([
        "run",
        "-q",
        "--release",
        "-p",
        "snowflake_bench",
        "--",
        "--quick",
    ]);
    for &v in &full {
        bench = bench.arg("--pg-config").arg(pg_config_of(root, v)?);
    }
    sh.run(&bench)
}
