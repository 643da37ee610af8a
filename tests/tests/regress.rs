//! The SQL surface's contracts as pg_regress files (`tests/pg_regress/sql/*.sql` against
//! `tests/pg_regress/expected/*.out`): every ERROR a caller can cause, with SQLSTATE, message,
//! DETAIL and HINT, and which roles may execute which function. PostgreSQL's own `pg_regress`
//! runs them against a server started here (library preloaded, node id 42), so a change of an
//! error contract is a visible diff of an expected file. (`cargo pgrx regress` 0.18 starts its
//! server with `initdb` as the calling user, which fails as root, and ignores `--runas`.)
//! Cluster `regress`.
//!
//! To accept a reviewed change: copy `target/pg_regress/results/<test>.out` over
//! `tests/pg_regress/expected/<test>.out`.

use snowflake_it::{project_root, Cluster};
use std::fs;
use std::path::PathBuf;
use std::process::Command;

const TESTS: &[&str] = &[
    "setup",
    "decoders",
    "settings",
    "privileges",
    "convert",
    "json",
];

fn pg_regress() -> PathBuf {
    let p = snowflake_it::pg()
        .pkglibdir
        .join("pgxs/src/test/regress/pg_regress");
    assert!(
        p.is_file(),
        "{} missing: install the server development files of {}",
        p.display(),
        snowflake_it::pg().version
    );
    p
}

#[test]
fn sql_contracts_match_the_expected_files() {
    let node = Cluster::init("regress", &["snowflake_id.node_id = 42"]);
    node.start();
    // --use-existing: pg_regress neither creates the database nor drops it.
    node.psql("CREATE DATABASE snowflake_regress");
    let input = project_root().join("tests/pg_regress");
    // Every test file has an expected file and is run.
    let mut files: Vec<String> = fs::read_dir(input.join("sql"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut listed: Vec<String> = TESTS.iter().map(|t| format!("{t}.sql")).collect();
    listed.sort();
    assert_eq!(files, listed, "tests/pg_regress/sql and TESTS disagree");
    let outdir = project_root()
        .join("target/pg_regress")
        .join(format!("pg{}", snowflake_it::pg().major));
    let _ = fs::remove_dir_all(&outdir);
    fs::create_dir_all(&outdir).unwrap();
    let out = Command::new(pg_regress())
        .arg("--use-existing")
        .arg(format!("--bindir={}", snowflake_it::pg().bindir.display()))
        .arg("--host=127.0.0.1")
        .arg(format!("--port={}", node.port))
        .arg("--user=postgres")
        .arg("--dbname=snowflake_regress")
        .arg(format!("--inputdir={}", input.display()))
        .arg(format!("--outputdir={}", outdir.display()))
        .args(TESTS)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    let diffs = fs::read_to_string(outdir.join("regression.diffs")).unwrap_or_default();
    assert!(
        out.status.success(),
        "pg_regress failed:\n{stdout}\n{}\n{diffs}",
        String::from_utf8_lossy(&out.stderr)
    );
}
