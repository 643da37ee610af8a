//! Programs besides PostgreSQL that tests run (Patroni, etcd, PgBouncer, postgres_exporter):
//! as user `postgres`, each in a process group of its own, killed when dropped.

use crate::{ensure_traversable, wait_for};
use postgres::{Client, NoTls};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// User `postgres`'s uid and gid (PostgreSQL, and so Patroni, refuses to run as root).
pub fn postgres_ids() -> Option<(u32, u32)> {
    if !snowflake_cluster::running_as_root() {
        return None;
    }
    // SAFETY: getpwnam returns a pointer to static storage or NULL; read at once.
    unsafe {
        let pw = libc::getpwnam(c"postgres".as_ptr());
        assert!(!pw.is_null(), "no user postgres");
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

/// A fresh directory owned by `postgres` that it can reach.
pub fn fresh_dir(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    ensure_traversable(&dir.join("x"));
    chown(dir);
}

pub fn chown(path: &Path) {
    if snowflake_cluster::running_as_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown {}", path.display());
    }
}

/// A program run as user `postgres` in a process group of its own, its output in a log file;
/// killed (the whole group, SIGKILL) when dropped, also when a test panics.
pub struct Daemon {
    what: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn spawn(
        what: &str,
        program: &str,
        args: &[&str],
        env: &[(String, String)],
        log: &Path,
    ) -> Daemon {
        let out = fs::File::create(log).unwrap();
        chown(log);
        let mut c = Command::new(program);
        c.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("HOME", "/var/lib/postgresql")
            .env_remove("RUST_BACKTRACE")
            .current_dir(log.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        if let Some((uid, gid)) = postgres_ids() {
            c.uid(uid).gid(gid);
        }
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Daemon {
            what: what.into(),
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the program has exited.
    pub fn check_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.what, self.log());
        }
    }

    /// SIGKILL to the process group, then reaps the program.
    pub fn kill9(&mut self) {
        // SAFETY: signals our own child's process group.
        unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// PgBouncer in transaction pooling mode on 127.0.0.1:`listen_port`, in front of the server on
/// 127.0.0.1:`server_port` for `databases`, with its files in `dir` (made afresh): the running
/// program and a connection to its admin console, once it accepts connections. No named
/// prepared statements survive a transaction in this mode (PgBouncer 1.18).
pub fn pgbouncer(
    dir: &Path,
    listen_port: u16,
    server_port: u16,
    databases: &[&str],
) -> (Daemon, Client) {
    fresh_dir(dir);
    let ini = dir.join("pgbouncer.ini");
    let dbs: String = databases
        .iter()
        .map(|db| format!("{db} = host=127.0.0.1 port={server_port} dbname={db}\n"))
        .collect();
    fs::write(
        &ini,
        format!(
            "[databases]\n{dbs}\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {listen_port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {0}/userlist.txt\n\
             admin_users = postgres\n\
             pool_mode = transaction\n\
             default_pool_size = 2\n\
             max_client_conn = 50\n\
             server_reset_query =\n\
             server_login_retry = 1\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {0}/pgbouncer.log\n\
             pidfile = {0}/pgbouncer.pid\n",
            dir.display()
        ),
    )
    .unwrap();
    fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
    chown(dir);
    let mut bouncer = Daemon::spawn(
        "pgbouncer",
        "/usr/sbin/pgbouncer",
        &[&ini.display().to_string()],
        &[],
        &dir.join("pgbouncer.out"),
    );
    let admin_conninfo =
        format!("host=127.0.0.1 port={listen_port} user=postgres dbname=pgbouncer");
    let admin = wait_for(
        "pgbouncer to accept connections",
        Duration::from_secs(30),
        || {
            bouncer.check_running();
            Client::connect(&admin_conninfo, NoTls).ok()
        },
    );
    (bouncer, admin)
}
