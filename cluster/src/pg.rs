//! A PostgreSQL install, found by its `pg_config`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The programs and directories of one PostgreSQL install, and its major version.
#[derive(Clone, Debug)]
pub struct Pg {
    pub pg_config: PathBuf,
    pub bindir: PathBuf,
    pub pkglibdir: PathBuf,
    pub sharedir: PathBuf,
    /// `pg_config --version`, e.g. `PostgreSQL 18.1`.
    pub version: String,
    pub major: u32,
}

impl Pg {
    /// Reads the install's paths and version from `pg_config`.
    pub fn from_pg_config(pg_config: &Path) -> Result<Pg, String> {
        let ask = |flag: &str| -> Result<String, String> {
            let out = Command::new(pg_config)
                .arg(flag)
                .output()
                .map_err(|e| format!("cannot run {}: {e}", pg_config.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "{} {flag} failed: {}",
                    pg_config.display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let version = ask("--version")?;
        let major = parse_major(&version)
            .ok_or_else(|| format!("cannot read a major version from {version:?}"))?;
        Ok(Pg {
            pg_config: pg_config.to_path_buf(),
            bindir: ask("--bindir")?.into(),
            pkglibdir: ask("--pkglibdir")?.into(),
            sharedir: ask("--sharedir")?.into(),
            version,
            major,
        })
    }

    /// The install named by `$SNOWFLAKE_PG_CONFIG`, else the system's `/usr/bin/pg_config`.
    /// Panics with the reason if it cannot be read.
    pub fn from_env() -> Pg {
        let path = std::env::var_os("SNOWFLAKE_PG_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/pg_config"));
        Pg::from_pg_config(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The path of one of the install's programs (`psql`, `pg_ctl`, ...).
    pub fn bin(&self, program: &str) -> PathBuf {
        self.bindir.join(program)
    }

    /// Whether the install has an extension's control file.
    pub fn has_extension(&self, name: &str) -> bool {
        self.sharedir
            .join("extension")
            .join(format!("{name}.control"))
            .exists()
    }
}

/// `PostgreSQL 15.20 (Debian ...)` -> 15, `PostgreSQL 18.1` -> 18, `PostgreSQL 19devel` -> 19.
fn parse_major(version: &str) -> Option<u32> {
    let v = version.strip_prefix("PostgreSQL ")?;
    let digits: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_major;

    #[test]
    fn majors_are_read_from_release_and_development_versions() {
        assert_eq!(
            parse_major("PostgreSQL 15.20 (Debian 15.20-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("PostgreSQL 18.1"), Some(18));
        assert_eq!(parse_major("PostgreSQL 19devel"), Some(19));
        assert_eq!(parse_major("psql (PostgreSQL) 15"), None);
    }
}
