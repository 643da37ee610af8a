//! `pg_upgrade` from every tested major to a newer one (16 to 17, 16 to 18, 17 to 18), with
//! `--copy` and with `--link`, with the old cluster's IDs running an hour ahead of its clock.
//! `pg_upgrade` carries neither the WAL nor the state file: started without the file, the new
//! cluster refuses IDs; with the old cluster's file copied (the documented step), its IDs are
//! above every ID before, and `ALTER EXTENSION snowflake_id UPDATE` brings a database still on
//! an older version of the extension up to date.
//!
//! It needs PostgreSQL 16, 17 and 18 with the extension installed (`scripts/pg-major.sh 16`,
//! `... 17`, and target/pg18 as `scripts/setup.sh` and `scripts/test.sh` leave them), and runs
//! once, in the suite's pass over PostgreSQL 18. Clusters `upg-*`.
//!
//! PostgreSQL 15 is not among the old majors: Debian's 15.20 marks columns with an attribute
//! option (`pg_attver`) that the reachable 16.15, 17.11 and 18.6 builds predate, so
//! `pg_upgrade` from it fails for any table, with or without this extension.

use postgres::error::SqlState;
use snowflake_cluster::{as_postgres, Node, Pg};
use snowflake_core::layout;
use snowflake_it::project_root;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The install of `major` under target/ (the cluster tool's table of majors says where).
fn pg_of(major: u32) -> Pg {
    let path = snowflake_cluster::majors::pg_config(&project_root(), major)
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("PostgreSQL {major} is not under target/: run bash scripts/pg-major.sh {major}")
        });
    let pg = Pg::from_pg_config(&path).unwrap_or_else(|e| panic!("{e}"));
    snowflake_it::install_frozen_sql(&pg);
    assert!(
        pg.has_extension("snowflake_id"),
        "snowflake_id is not installed into PostgreSQL {major}: bash scripts/install-from-source.sh --pg-config {}",
        path.display()
    );
    pg
}

fn unix_ms_of(id: i64) -> i64 {
    layout::unix_ms(layout::decode(id).unwrap().ms)
}

/// The previous release of the extension (the newest frozen install script below the current
/// version).
fn previous_release(pg: &Pg) -> String {
    let mut versions: Vec<(u32, u32, u32)> = fs::read_dir(pg.sharedir.join("extension"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let v = name
                .strip_prefix("snowflake_id--")?
                .strip_suffix(".sql")?
                .to_string();
            if v.contains("--") {
                return None;
            }
            let p: Vec<u32> = v.split('.').filter_map(|x| x.parse().ok()).collect();
            (p.len() == 3).then(|| (p[0], p[1], p[2]))
        })
        .collect();
    versions.sort();
    versions.dedup();
    let (a, b, c) = versions[versions.len() - 2];
    format!("{a}.{b}.{c}")
}

fn upgrade(from: u32, to: u32, mode: &str) -> String {
    // the old server, the new one, and pg_upgrade's two
    let port = snowflake_it::ports::take(4);
    let (old_pg, new_pg) = (pg_of(from), pg_of(to));
    let root = snowflake_it::clusters_root().join("upgrade");
    fs::create_dir_all(&root).unwrap();
    snowflake_it::ensure_traversable(&root.join("x"));
    let name = format!("upg-{from}-{to}{mode}");
    let settings = ["snowflake_id.node_id = 21"];
    let old = Node::init(&old_pg, &root, &format!("{name}-old"), port, &settings);
    old.start();
    let previous = previous_release(&old_pg);
    let mut c = old.connect();
    c.batch_execute(
        "CREATE EXTENSION snowflake_id;
         CREATE TABLE audit (id bigint PRIMARY KEY DEFAULT snowflake_nextval(), v int NOT NULL)",
    )
    .unwrap();
    c.batch_execute("CREATE DATABASE legacy").unwrap();
    // IDs an hour ahead of the clock (as after a backward clock step), in both databases.
    c.query_one(
        "SELECT snowflake_restore_floor(now() + interval '1 hour')",
        &[],
    )
    .unwrap();
    c.batch_execute("INSERT INTO audit (v) SELECT g FROM generate_series(1, 20000) g")
        .unwrap();
    let mut l = postgres::Client::connect(&old.conninfo_db("legacy"), postgres::NoTls).unwrap();
    l.batch_execute(&format!(
        "CREATE EXTENSION snowflake_id VERSION '{previous}';
         CREATE TABLE audit (id bigint PRIMARY KEY DEFAULT snowflake_nextval(), v int NOT NULL);
         INSERT INTO audit (v) SELECT g FROM generate_series(1, 1000) g"
    ))
    .unwrap();
    let max_before: i64 = l
        .query_one("SELECT max(id) FROM audit", &[])
        .unwrap()
        .get(0);
    let now_ms = snowflake_it::clock::real_unix_ms();
    assert!(
        unix_ms_of(max_before) > now_ms + 3_000_000,
        "IDs an hour ahead"
    );
    drop((c, l));
    old.stop();

    // The new cluster: same settings; PostgreSQL 18's initdb turns data checksums on, the
    // older clusters have none.
    let initdb: &[&str] = if to >= 18 {
        &["--no-data-checksums"]
    } else {
        &[]
    };
    let new = Node::init_with(
        &new_pg,
        &root,
        &format!("{name}-new"),
        port + 1,
        &settings,
        initdb,
    );
    let work = root.join(format!("{name}-work"));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    Command::new("chown")
        .arg("postgres")
        .arg(&work)
        .status()
        .unwrap();
    let out = as_postgres(new_pg.bin("pg_upgrade"))
        .current_dir(&work)
        .arg("-b")
        .arg(&old_pg.bindir)
        .arg("-B")
        .arg(&new_pg.bindir)
        .arg("-d")
        .arg(old.data())
        .arg("-D")
        .arg(new.data())
        .arg("-p")
        .arg((port + 2).to_string())
        .arg("-P")
        .arg((port + 3).to_string())
        .arg("-s")
        .arg(&work)
        .arg(mode)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_upgrade {from} -> {to} {mode}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The old cluster must not start again (with --link it shares the files).
    let old_data = old.data();
    old.detach();

    // Without the state file, no ID: the floor an hour ahead exists nowhere else.
    new.start();
    let mut c = new.connect();
    let e = match c.query_one("SELECT snowflake_nextval()", &[]) {
        Ok(r) => panic!(
            "{from} -> {to} {mode}: without the state file the new cluster issued {} ({} ms after the old cluster's last ID)",
            r.get::<_, i64>(0),
            unix_ms_of(r.get(0)) - unix_ms_of(max_before)
        ),
        Err(e) => e.as_db_error().unwrap().clone(),
    };
    assert_eq!(e.code(), &SqlState::UNDEFINED_FILE, "{}", e.message());
    drop(c);
    new.stop();

    // The documented step: copy the old cluster's state file into the new data directory.
    copy_state_file(&old_data, &new.data());
    new.start();
    let mut c = new.connect();
    c.batch_execute("INSERT INTO audit (v) SELECT g FROM generate_series(1, 5000) g")
        .unwrap();
    let (n_above, distinct): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT count(*) FILTER (WHERE id > $1), count(DISTINCT id) FROM audit",
                &[&max_before],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        n_above, 5000,
        "{from} -> {to} {mode}: new IDs above the old ones"
    );
    assert_eq!(distinct, 25_000);
    // The database on the previous release is brought up to date.
    let mut l = postgres::Client::connect(&new.conninfo_db("legacy"), postgres::NoTls).unwrap();
    l.batch_execute("ALTER EXTENSION snowflake_id UPDATE")
        .unwrap();
    let v: String = l
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'snowflake_id'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(v, snowflake_it::cargo_version());
    let next: i64 = l
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    assert!(next > max_before);
    drop((c, l));
    new.stop();
    format!("{from}->{to} {mode}: refused without the file, 5000 IDs above after the copy; {previous} updated")
}

/// `cp -p` as postgres: the file keeps its owner and mode.
fn copy_state_file(old: &Path, new: &Path) {
    let out = as_postgres("cp")
        .arg("-p")
        .arg(old.join("snowflake_id.state"))
        .arg(new.join("snowflake_id.state"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pg_upgrade_between_every_tested_pair_of_majors_keeps_the_floor_with_the_documented_steps() {
    if snowflake_it::pg().major != 18 {
        eprintln!("[pg_upgrade] runs in the suite's pass over PostgreSQL 18");
        return;
    }
    let mut done = Vec::new();
    for (from, to) in [(16, 17), (16, 18), (17, 18)] {
        for mode in ["--copy", "--link"] {
            done.push(upgrade(from, to, mode));
        }
    }
    eprintln!("[pg_upgrade] {}", done.join("; "));
}
