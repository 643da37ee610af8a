//! One PostgreSQL server: `initdb`, `postgresql.conf`, `pg_ctl`, connections, its log.

use crate::pg::Pg;
use crate::process::{
    alive, as_postgres, check, children, chown_postgres, ensure_traversable, kill9, running_as_root,
};
use postgres::{Client, NoTls};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// One server, run as user `postgres`, listening on 127.0.0.1 and on a Unix socket in its
/// directory. Stopped (immediate shutdown) when dropped, unless [`Node::detach`]ed.
pub struct Node {
    pub pg: Pg,
    pub name: String,
    pub port: u16,
    /// The node's directory: `data/`, `server.log`, the Unix socket.
    pub dir: PathBuf,
    /// Environment for the postmaster (e.g. `LD_PRELOAD` of a clock shim).
    pub env: Vec<(String, String)>,
    stop_on_drop: bool,
}

impl Node {
    /// A new node under `root/name` (an old one of that name is stopped and removed): `initdb`,
    /// then `postgresql.conf` gets loopback on `port`, `snowflake_id` preloaded (unless a
    /// `settings` line sets `shared_preload_libraries`), and the `settings` lines.
    pub fn init(pg: &Pg, root: &Path, name: &str, port: u16, settings: &[&str]) -> Node {
        Node::init_with(pg, root, name, port, settings, &[])
    }

    /// [`Node::init`] with more `initdb` options (say `--no-data-checksums`, which PostgreSQL
    /// 18 needs to match an older cluster in `pg_upgrade`).
    pub fn init_with(
        pg: &Pg,
        root: &Path,
        name: &str,
        port: u16,
        settings: &[&str],
        initdb: &[&str],
    ) -> Node {
        let node = Node::fresh(pg, root, name, port);
        check(
            "initdb",
            as_postgres(pg.bin("initdb"))
                .arg("-D")
                .arg(node.data())
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ])
                .args(initdb)
                .output()
                .unwrap(),
        );
        let mut conf = format!(
            "\n# snowflake_cluster\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\nmax_connections = 60\n\
             log_line_prefix = '%m [%p] '\n",
            node.dir.display()
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
        node.append_conf(&conf);
        node
    }

    /// A streaming standby of `primary` under `root/name`: `pg_basebackup -R` (which writes
    /// `primary_conninfo` and `standby.signal`), then `postgresql.conf` gets this node's port
    /// and socket and the `settings` lines (the rest is the primary's copied configuration).
    /// Not started.
    pub fn standby_of(
        primary: &Node,
        root: &Path,
        name: &str,
        port: u16,
        settings: &[&str],
    ) -> Node {
        let node = Node::base_backup(primary, root, name, port, true);
        node.configure_copy(settings);
        node
    }

    /// A copy of `primary` made by `pg_basebackup` (with `-R` when `standby`), under
    /// `root/name`, not configured and not started: for restores.
    pub fn base_backup(primary: &Node, root: &Path, name: &str, port: u16, standby: bool) -> Node {
        let pg = &primary.pg;
        let node = Node::fresh(pg, root, name, port);
        let mut cmd = as_postgres(pg.bin("pg_basebackup"));
        cmd.arg("-D")
            .arg(node.data())
            .args(["-X", "stream", "-c", "fast", "--no-sync", "-d"])
            .arg(primary.conninfo());
        if standby {
            cmd.arg("-R");
        }
        check("pg_basebackup", cmd.output().unwrap());
        node
    }

    /// An empty directory `root/name` for a new node, owned by `postgres`: a server left over
    /// there from an aborted run (it would hold the port) is stopped and its directory removed.
    fn fresh(pg: &Pg, root: &Path, name: &str, port: u16) -> Node {
        let dir = root.join(name);
        if dir.exists() {
            if dir.join("data").join("postmaster.pid").exists() {
                let _ = as_postgres(pg.bin("pg_ctl"))
                    .arg("-D")
                    .arg(dir.join("data"))
                    .args(["-m", "immediate", "-w", "stop"])
                    .output();
            }
            fs::remove_dir_all(&dir).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        ensure_traversable(&dir);
        chown_postgres(&dir);
        Node::at(pg, &dir, name, port)
    }

    /// Creates an empty signal file (`standby.signal`, `recovery.signal`) in the data directory,
    /// owned by `postgres`.
    pub fn signal(&self, file: &str) {
        let path = self.data().join(file);
        fs::write(&path, "").unwrap();
        chown_postgres(&path);
    }

    /// Points a copied data directory at this node's port and socket, and appends `settings`.
    pub fn configure_copy(&self, settings: &[&str]) {
        let mut conf = format!(
            "\n# snowflake_cluster: this copy\nport = {}\nunix_socket_directories = '{}'\n",
            self.port,
            self.dir.display()
        );
        for s in settings {
            conf.push_str(s);
            conf.push('\n');
        }
        self.append_conf(&conf);
    }

    /// `pg_ctl promote` (waits until the server accepts writes).
    pub fn promote(&self) {
        check(
            "pg_ctl promote",
            self.pg_ctl()
                .args(["-w", "-t", "120", "promote"])
                .output()
                .unwrap(),
        );
    }

    /// A node whose directory exists already (made by [`Node::init`], `pg_basebackup`, or an
    /// earlier run of the command line): nothing is created.
    pub fn at(pg: &Pg, dir: &Path, name: &str, port: u16) -> Node {
        Node {
            pg: pg.clone(),
            name: name.into(),
            port,
            dir: dir.to_path_buf(),
            env: Vec::new(),
            stop_on_drop: true,
        }
    }

    /// Leaves the server running when this value is dropped.
    pub fn detach(mut self) {
        self.stop_on_drop = false;
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

    /// The log's length in bytes now: pass it to [`Node::log_since`] to see only what is
    /// written after this point.
    pub fn log_len(&self) -> usize {
        self.log().len()
    }

    /// What the server logged after [`Node::log_len`] returned `offset`.
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

    /// `pg_ctl -D <data>` as user `postgres`, with the node's environment.
    pub fn pg_ctl(&self) -> Command {
        let pg_ctl = self.pg.bin("pg_ctl");
        let mut c;
        if running_as_root() {
            // runuser keeps the environment, but pass the node's variables explicitly.
            c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "env"]);
            for (k, v) in &self.env {
                c.arg(format!("{k}={v}"));
            }
            c.arg(pg_ctl);
        } else {
            c = Command::new(pg_ctl);
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

    /// Immediate shutdown (waits): no shutdown checkpoint, like a crash of the whole server.
    pub fn stop_immediate(&self) {
        let _ = self
            .pg_ctl()
            .args(["-m", "immediate", "-w", "stop"])
            .output();
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
        // A dead postmaster stays a zombie until its parent reaps it, and PostgreSQL's lock-file
        // check takes a zombie for a running postmaster: wait until the process is gone.
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
            .query(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' \
                 AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// libpq connection string (TCP on loopback, database `postgres`).
    pub fn conninfo(&self) -> String {
        self.conninfo_db("postgres")
    }

    pub fn conninfo_db(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db} connect_timeout=10",
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

    /// Runs SQL through psql as a separate client (for scripts and multi-statement setup);
    /// returns its unaligned, tuples-only output. Panics on an error.
    pub fn psql(&self, sql: &str) -> String {
        let out = check(
            "psql",
            Command::new(self.pg.bin("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
                .arg(self.conninfo())
                .args(["-c", sql])
                .output()
                .unwrap(),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.stop_immediate();
        }
    }
}
