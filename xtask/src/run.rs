//! Running child commands: stdio inherited, the working directory the project's root, each
//! command's own environment; with `--dry-run`, printed (`+ ` and the command as a shell line)
//! instead of run. Commands that only read (`dpkg-query`, `pg_config --version`) run either way.

use std::ffi::OsString;
use std::fmt;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a command (and so the xtask) failed, with the exit status to end with.
#[derive(Debug)]
pub struct Fail {
    pub code: i32,
    pub msg: String,
}

pub type Result<T = ()> = std::result::Result<T, Fail>;

/// A failure with exit status 1, or `code`.
pub fn fail<T>(code: i32, msg: impl Into<String>) -> Result<T> {
    Err(Fail {
        code,
        msg: msg.into(),
    })
}

/// One child command.
#[derive(Clone)]
pub struct Cmd {
    prog: OsString,
    args: Vec<OsString>,
    env: Vec<(String, OsString)>,
    quiet: bool,
    to_stderr: bool,
}

pub fn cmd(prog: impl Into<OsString>) -> Cmd {
    Cmd {
        prog: prog.into(),
        args: Vec::new(),
        env: Vec::new(),
        quiet: false,
        to_stderr: false,
    }
}

/// `cargo` with its arguments.
pub fn cargo<I, S>(args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    cmd("cargo").args(args)
}

impl Cmd {
    pub fn arg(mut self, a: impl Into<OsString>) -> Cmd {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<OsString>) -> Cmd {
        self.env.push((k.to_string(), v.into()));
        self
    }

    /// Standard output to /dev/null (`>/dev/null`).
    pub fn quiet(mut self) -> Cmd {
        self.quiet = true;
        self
    }

    /// Standard output to standard error (`>&2`): for a command whose own standard output is
    /// what a script reads, such as the path a build prints last.
    pub fn stdout_to_stderr(mut self) -> Cmd {
        self.to_stderr = true;
        self
    }

    pub fn command(&self, root: &Path) -> Command {
        let mut c = Command::new(&self.prog);
        c.args(&self.args).current_dir(root);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if self.quiet {
            c.stdout(Stdio::null());
        } else if self.to_stderr {
            match std::io::stderr().as_fd().try_clone_to_owned() {
                Ok(fd) => c.stdout(Stdio::from(fd)),
                Err(_) => c.stdout(Stdio::null()),
            };
        }
        c
    }
}

/// The command as a shell line.
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(&v.to_string_lossy())))
            .chain(std::iter::once(quote(&self.prog.to_string_lossy())))
            .chain(self.args.iter().map(|a| quote(&a.to_string_lossy())))
            .collect();
        write!(f, "{}", words.join(" "))?;
        if self.quiet {
            write!(f, " >/dev/null")?;
        } else if self.to_stderr {
            write!(f, " >&2")?;
        }
        Ok(())
    }
}

/// A word as the shell reads it back.
pub fn quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Where commands run and whether they run at all.
pub struct Sh {
    pub root: PathBuf,
    pub dry: bool,
}

impl Sh {
    /// Runs `c` (prints it under `--dry-run`); a non-zero exit is a [`Fail`] with its status.
    pub fn run(&self, c: &Cmd) -> Result {
        if self.dry {
            println!("+ {c}");
            return Ok(());
        }
        let status = c
            .command(&self.root)
            .status()
            .or_else(|e| fail(127, format!("cannot run {c}: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            fail(status.code().unwrap_or(1), format!("{c}: {status}"))
        }
    }

    /// Runs `c` also under `--dry-run` (it only reads) and returns its standard output, trimmed.
    pub fn read(&self, c: &Cmd) -> Result<String> {
        let out = c
            .command(&self.root)
            .stderr(Stdio::inherit())
            .output()
            .or_else(|e| fail(127, format!("cannot run {c}: {e}")))?;
        if !out.status.success() {
            return fail(
                out.status.code().unwrap_or(1),
                format!("{c}: {}", out.status),
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `mkdir -p`.
    pub fn mkdir(&self, dir: &Path) -> Result {
        if self.dry {
            println!("+ mkdir -p {}", quote(&dir.display().to_string()));
            return Ok(());
        }
        std::fs::create_dir_all(dir).or_else(|e| fail(1, format!("{}: {e}", dir.display())))
    }

    /// `chown postgres DIR`, its failure ignored (not root: the directory is ours already).
    pub fn chown_postgres(&self, dir: &Path) {
        let c = cmd("chown").arg("postgres").arg(dir);
        if self.dry {
            println!("+ {c} 2>/dev/null || true");
            return;
        }
        let _ = c.command(&self.root).stderr(Stdio::null()).status();
    }

    /// `chmod o+x` on the root and every directory above it: user `postgres` must reach the
    /// data directories under target/.
    pub fn traversable(&self) {
        if self.dry {
            println!(
                "+ chmod o+x {} and every directory above it",
                self.root.display()
            );
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        for d in self.root.ancestors().filter(|d| d.parent().is_some()) {
            if let Ok(m) = std::fs::metadata(d) {
                let mut p = m.permissions();
                p.set_mode(p.mode() | 0o001);
                let _ = std::fs::set_permissions(d, p);
            }
        }
    }
}

/// The durations of a command's steps, printed at its end.
pub struct Timings {
    start: Instant,
    done: Vec<(String, Duration)>,
    current: Option<(String, Instant)>,
}

impl Timings {
    pub fn new() -> Timings {
        Timings {
            start: Instant::now(),
            done: Vec::new(),
            current: None,
        }
    }

    /// A new step with its `=== ` header.
    pub fn step(&mut self, header: &str) {
        println!();
        println!("=== {header}");
        self.phase(header);
    }

    /// A new timed part without a header.
    pub fn phase(&mut self, name: &str) {
        self.close();
        self.current = Some((name.to_string(), Instant::now()));
    }

    fn close(&mut self) {
        if let Some((name, t)) = self.current.take() {
            self.done.push((name, t.elapsed()));
        }
    }

    /// Prints each part's duration and the total.
    pub fn report(&mut self, outcome: &str) {
        self.close();
        println!();
        println!("=== durations ({outcome})");
        for (name, d) in &self.done {
            println!("{:>9}  {name}", secs(*d));
        }
        println!("{:>9}  total", secs(self.start.elapsed()));
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_print_as_the_shell_lines_that_run_them() {
        let c = cargo(["test", "-p", "snowflake_core", "--", "--test-threads=1"])
            .env("RUSTFLAGS", "--cfg loom")
            .quiet();
        assert_eq!(
            c.to_string(),
            "RUSTFLAGS='--cfg loom' cargo test -p snowflake_core -- --test-threads=1 >/dev/null"
        );
        assert_eq!(
            cmd("dpkg-deb")
                .arg("--build")
                .stdout_to_stderr()
                .to_string(),
            "dpkg-deb --build >&2"
        );
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
