//! Harness for the integration tests: real PostgreSQL 15 clusters, started by the tests as user
//! `postgres` on loopback, under `<project>/target/it/<name>`, stopped when dropped.
//!
//! The extension must be installed into the system PostgreSQL first (`cargo pgrx install`);
//! `scripts/test.sh` does that before it runs these tests.

pub mod clock;

use postgres::{Client, NoTls};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Directory of the PostgreSQL 15 programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The workspace root (the directory holding the extension's Cargo.toml).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where clusters of the integration tests live.
pub fn clusters_root() -> PathBuf {
    project_root().join("target").join("it")
}

fn running_as_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc_getuid() == 0 }
}

extern "C" {
    #[link_name = "getuid"]
    fn libc_getuid() -> u32;
}

/// Runs a program as user `postgres` (directly if we already are that user).
pub fn as_postgres(program: &str) -> Command {
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

fn check(what: &str, out: Output) -> Output {
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Lets user `postgres` reach `path`: adds search (x) permission for others on every ancestor
/// that lacks it (a checkout under /root would otherwise be unreachable).
pub fn ensure_traversable(path: &Path) {
    for dir in path.ancestors().skip(1) {
        if let Ok(meta) = fs::metadata(dir) {
            let mode = meta.permissions().mode();
            if mode & 0o001 == 0 && running_as_root() {
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o001));
            }
        }
    }
}

fn chown_postgres(path: &Path) {
    if running_as_root() {
        check(
            "chown",
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(path)
                .output()
                .unwrap(),
        );
    }
}

/// One PostgreSQL cluster.
pub struct Cluster {
    pub name: String,
    pub port: u16,
    /// The cluster's directory: `data/`, `server.log`, the Unix socket.
    pub dir: PathBuf,
    /// Environment for the postmaster (e.g. `LD_PRELOAD` of a clock shim).
    pub env: Vec<(String, String)>,
}

impl Cluster {
    /// A new cluster (any old one of that name is removed): `initdb`, then `postgresql.conf`
    /// gets loopback on `port`, the library preloaded, and the `settings` lines.
    pub fn init(name: &str, port: u16, settings: &[&str]) -> Cluster {
        let dir = clusters_root().join(name);
        if dir.exists() {
            // A server left over from an aborted run would hold the port.
            let _ = as_postgres(&format!("{PG_BIN}/pg_ctl"))
                .args(["-D"])
                .arg(dir.join("data"))
                .args(["-m", "immediate", "stop"])
                .output();
            fs::remove_dir_all(&dir).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        ensure_traversable(&dir);
        chown_postgres(&dir);
        let c = Cluster {
            name: name.into(),
            port,
            dir,
            env: Vec::new(),
        };
        check(
            "initdb",
            as_postgres(&format!("{PG_BIN}/initdb"))
                .arg("-D")
                .arg(c.data())
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ])
                .output()
                .unwrap(),
        );
        let mut conf = format!(
            "\n# integration test settings\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\nmax_connections = 60\nlog_line_prefix = '%m [%p] '\n",
            c.dir.display()
        );
        let has_preload = settings
            .iter()
            .any(|s| s.trim_start().starts_with("shared_preload_libraries"));
        if !has_preload {
            conf.push_str("shared_preload_libraries = 'snowflake_id'\n");
        }
        for s in settings {
            conf.push_str(s);
            conf.push('\n');
        }
        c.append_conf(&conf);
        c
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The server log so far. Panics if it cannot be read: an empty string would make every
    /// "the log does not contain ..." check pass without looking.
    pub fn log(&self) -> String {
        let path = self.log_path();
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read the server log {}: {e}", path.display()))
    }

    /// The log's length in bytes now: pass it to [`Cluster::log_since`] to see only what is
    /// written after this point.
    pub fn log_len(&self) -> usize {
        self.log().len()
    }

    /// What the server logged after [`Cluster::log_len`] returned `offset`.
    pub fn log_since(&self, offset: usize) -> String {
        let log = self.log();
        assert!(
            log.len() >= offset,
            "the server log {} shrank below {offset} bytes",
            self.log_path().display()
        );
        log[offset..].to_string()
    }

    /// The log for a failure message: what could be read, or why not (no panic inside a panic).
    fn log_for_message(&self) -> String {
        fs::read_to_string(self.log_path())
            .unwrap_or_else(|e| format!("(server log {}: {e})", self.log_path().display()))
    }

    pub fn append_conf(&self, text: &str) {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.data().join("postgresql.conf"))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn pg_ctl(&self) -> Command {
        let mut c = as_postgres(&format!("{PG_BIN}/pg_ctl"));
        if running_as_root() && !self.env.is_empty() {
            // runuser resets nothing by default, but pass the variables explicitly through env.
            c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "env"]);
            for (k, v) in &self.env {
                c.arg(format!("{k}={v}"));
            }
            c.arg(format!("{PG_BIN}/pg_ctl"));
        } else {
            for (k, v) in &self.env {
                c.env(k, v);
            }
        }
        // A Rust backtrace setting inherited by the server would turn up in error DETAILs.
        c.env_remove("RUST_BACKTRACE");
        c.arg("-D").arg(self.data());
        c
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let out = self
            .pg_ctl()
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "120", "start"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !out.status.success() {
            panic!(
                "pg_ctl start of {} failed:\n{}{}\n{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_for_message()
            );
        }
    }

    /// Fast shutdown (waits).
    pub fn stop(&self) {
        let _ = self.pg_ctl().args(["-m", "fast", "-w", "stop"]).output();
    }

    /// `pg_ctl reload`.
    pub fn reload(&self) {
        check(
            "pg_ctl reload",
            self.pg_ctl().arg("reload").output().unwrap(),
        );
    }

    /// PID of the postmaster, from `postmaster.pid`.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// `kill -9` of the postmaster, then waits until it and all its children are gone (orphaned
    /// backends would keep the old shared memory attached and block a restart) and it is reaped.
    pub fn kill9_postmaster(&self) {
        let pid = self.postmaster_pid().expect("no postmaster.pid");
        let mut pids = children(pid);
        pids.push(pid);
        kill9(pid);
        let deadline = Instant::now() + Duration::from_secs(60);
        while pids.iter().any(|p| alive(*p)) {
            assert!(
                Instant::now() < deadline,
                "processes of {} did not exit: {pids:?}",
                self.name
            );
            thread::sleep(Duration::from_millis(20));
        }
        // A dead postmaster stays a zombie until init reaps it, and PostgreSQL's lock-file check
        // takes a zombie for a running postmaster: wait until the process is gone entirely.
        while Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                Instant::now() < deadline,
                "postmaster {pid} of {} was not reaped",
                self.name
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// PIDs of the backends serving client connections now.
    pub fn backend_pids(&self, client: &mut Client) -> Vec<i32> {
        client
            .query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// libpq-style connection string.
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=10",
            self.port
        )
    }

    pub fn try_connect(&self) -> Option<Client> {
        Client::connect(&self.conninfo(), NoTls).ok()
    }

    /// Connects, retrying for a while (a crash-restart takes a moment).
    pub fn connect(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match Client::connect(&self.conninfo(), NoTls) {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "cannot connect to {}: {e}\n{}",
                        self.name,
                        self.log_for_message()
                    )
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Runs SQL through psql as a separate client (for scripts and multi-statement setup).
    pub fn psql(&self, sql: &str) -> String {
        let out = check(
            "psql",
            Command::new(format!("{PG_BIN}/psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
                .arg(self.conninfo())
                .args(["-c", sql])
                .output()
                .unwrap(),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl()
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// `pg_dump -Fc` of the database at `conninfo` into `file`; panics with pg_dump's message on failure.
pub fn pg_dump(conninfo: &str, file: &Path) {
    let out = Command::new(format!("{PG_BIN}/pg_dump"))
        .args(["-Fc", "-f"])
        .arg(file)
        .args(["-d", conninfo])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends SIGKILL.
pub fn kill9(pid: i32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Direct children of a process.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(out) = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits until `f` returns `Some`, polling (not a fixed sleep); panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts there are no duplicates in `ids`; returns how many there were for the message.
pub fn count_duplicates(ids: &[i64]) -> usize {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.windows(2).filter(|w| w[0] == w[1]).count()
}
