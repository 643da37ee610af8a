//! Harness for the integration tests: real PostgreSQL servers of the major under test
//! (`$SNOWFLAKE_PG_CONFIG`, default the system's PostgreSQL 15), started through the cluster tool
//! (`cluster/`) as user `postgres` on loopback, under `<project>/target/it/pg<major>/<name>`,
//! stopped when dropped.
//!
//! The extension must be installed into that PostgreSQL first (`cargo pgrx install
//! --pg-config ...`); `scripts/test.sh` does that before it runs these tests.

pub mod clock;
pub mod daemon;

pub use snowflake_cluster::{
    alive, as_postgres, children, conflict_lines, ensure_traversable, kill9, mesh, wait_for,
    wait_streaming, Engine, Node, Pg,
};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The PostgreSQL under test: `$SNOWFLAKE_PG_CONFIG`, else the system's `/usr/bin/pg_config`
/// (`scripts/test.sh` runs the suite once per tested major).
pub fn pg() -> &'static Pg {
    static PG: OnceLock<Pg> = OnceLock::new();
    PG.get_or_init(Pg::from_env)
}

/// A program of the PostgreSQL under test.
pub fn pg_bin(program: &str) -> PathBuf {
    pg().bin(program)
}

/// The replication engine for multi-master on the PostgreSQL under test.
pub fn engine() -> Engine {
    Engine::for_major(pg().major)
}

/// The workspace root (the directory holding the extension's Cargo.toml).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where clusters of the integration tests live: `target/it/pg<major>`.
pub fn clusters_root() -> PathBuf {
    project_root()
        .join("target")
        .join("it")
        .join(format!("pg{}", pg().major))
}

/// A server of the PostgreSQL under test, under [`clusters_root`]; a [`Node`] of the cluster
/// tool, stopped when dropped.
pub struct Cluster(Node);

impl Cluster {
    /// A new server (any old one of that name is removed): `initdb`, then `postgresql.conf`
    /// gets loopback on `port`, the library preloaded, and the `settings` lines.
    pub fn init(name: &str, port: u16, settings: &[&str]) -> Cluster {
        Cluster(Node::init(pg(), &clusters_root(), name, port, settings))
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), with `settings` appended; not
    /// started.
    pub fn standby_of(primary: &Cluster, name: &str, port: u16, settings: &[&str]) -> Cluster {
        Cluster(Node::standby_of(
            primary,
            &clusters_root(),
            name,
            port,
            settings,
        ))
    }

    /// A base backup of `primary` (no recovery settings), not configured and not started.
    pub fn base_backup(primary: &Cluster, name: &str, port: u16) -> Cluster {
        Cluster(Node::base_backup(
            primary,
            &clusters_root(),
            name,
            port,
            false,
        ))
    }
}

impl Deref for Cluster {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.0
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Node {
        &mut self.0
    }
}

/// `pg_dump -Fc` of the database at `conninfo` into `file`; panics with pg_dump's message on failure.
pub fn pg_dump(conninfo: &str, file: &Path) {
    snowflake_cluster::pg_dump(pg(), conninfo, file)
}

/// Asserts there are no duplicates in `ids`; returns how many there were for the message.
pub fn count_duplicates(ids: &[i64]) -> usize {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.windows(2).filter(|w| w[0] == w[1]).count()
}

/// `synchronous_standby_names = '*'` on the primary `c` is connected to, and waits until one
/// standby is synchronous.
pub fn make_standbys_synchronous(c: &mut postgres::Client) {
    c.batch_execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        .unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    wait_sync_standby(c);
}

/// Waits until one standby of the primary `c` is connected to is synchronous.
pub fn wait_sync_standby(c: &mut postgres::Client) {
    wait_for(
        "a synchronous standby",
        std::time::Duration::from_secs(60),
        || {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
                    &[],
                )
                .unwrap()
                .get(0);
            (n == 1).then_some(())
        },
    );
}

/// Copies the extension's frozen SQL scripts (`sql/*.sql`: every earlier release's install
/// script and every update script) into `pg`'s extension directory, so that a test can create an
/// earlier release and update it. The current version's generated script, installed with the
/// library, is left alone.
pub fn install_frozen_sql(pg: &Pg) {
    let extdir = pg.sharedir.join("extension");
    let current = format!("snowflake_id--{}.sql", extension_version());
    for entry in std::fs::read_dir(project_root().join("sql")).unwrap() {
        let src = entry.unwrap().path();
        let name = src.file_name().unwrap();
        if name.to_str() == Some(current.as_str()) {
            continue;
        }
        let dst = extdir.join(name);
        let text = std::fs::read(&src).unwrap();
        if std::fs::read(&dst).ok().as_deref() != Some(&text[..]) {
            // Written aside and renamed: a server reading the directory sees whole files.
            let tmp = dst.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, &text).unwrap();
            std::fs::rename(&tmp, &dst).unwrap();
        }
    }
}

/// The extension's version: the `version` of the workspace root's Cargo.toml.
pub fn extension_version() -> String {
    let text = std::fs::read_to_string(project_root().join("Cargo.toml")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("a version line in Cargo.toml")
        .to_string()
}
