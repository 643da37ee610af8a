//! Client languages end to end: each recipe of docs/clients.md runs with its real driver against
//! a real server and writes an audit table keyed by `id bigint PRIMARY KEY DEFAULT
//! snowflake_nextval()`. Python (psycopg 3, Django, SQLAlchemy), JavaScript (node-postgres, Knex,
//! JSON), Java (pgjdbc) and psql run as programs under `tests/clients/`, each printing
//! `row <table> <ref> <id> <unix ms> <node> <sequence>` for every row it wrote: the key as the
//! driver gave it back and the fields the client decoded with shifts. Rust (tokio-postgres)
//! runs in this process. Here every printed row is compared with what the server stored under
//! that ref (`id::text`) and with `snowflake_parse()`, and every ID must be above 2^53 (where a
//! double, and so a JavaScript Number, no longer holds every integer). The INSERT statements each
//! client sent are counted in the server log: many rows must have gone in one statement.
//!
//! The toolchains come from `scripts/clients-setup.sh` (a venv under `target/clients`,
//! `npm ci`, Debian's pgjdbc, javac), which `scripts/test.sh` runs first; a missing one is a
//! failure. The clients do not depend on the server's major, so they run on 15 only (the test
//! prints that it skips on the others). The programs run twice: directly, and through PgBouncer in
//! transaction pooling mode. Cluster `cl-clients`.

use postgres::{Client, NoTls};
use snowflake_it::{pg, ports, project_root, Cluster};
use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const NODE_ID: i32 = 617;
const EPOCH_UNIX_MS: i64 = 1_735_689_600_000;

/// One line a client printed for one row it wrote.
#[derive(Debug)]
struct Printed {
    table: String,
    reference: String,
    id: String,
    decoded: (i64, i32, i32),
}

fn parse_rows(client: &str, stdout: &str) -> Result<Vec<Printed>, String> {
    stdout
        .lines()
        .filter(|l| l.starts_with("row "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let num = |i: usize| -> Result<i64, String> {
                f.get(i)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("{client}: bad line {l:?}"))
            };
            if f.len() != 7 {
                return Err(format!("{client}: bad line {l:?}"));
            }
            Ok(Printed {
                table: f[1].to_string(),
                reference: f[2].to_string(),
                id: f[3].to_string(),
                decoded: (num(4)?, num(5)? as i32, num(6)? as i32),
            })
        })
        .collect()
}

/// The printed rows against the server: the same set of refs, each with the stored ID exactly
/// and `snowflake_parse()`'s fields; IDs above 2^53, of this server's node, distinct.
fn cross_check(
    c: &mut Client,
    client: &str,
    table: &str,
    printed: &[Printed],
    expected_rows: usize,
) -> Result<(), String> {
    let stored: HashMap<String, (String, i64, i32, i32)> = c
        .query(
            &format!(
                "SELECT t.ref, t.id::text, (extract(epoch FROM p.ts) * 1000)::bigint, p.node, p.sequence
                 FROM {table} t, snowflake_parse(t.id) p"
            ),
            &[],
        )
        .map_err(|e| format!("{client}: reading {table}: {e}"))?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4))))
        .collect();
    if printed.len() != expected_rows || stored.len() != expected_rows {
        return Err(format!(
            "{client}: {} rows printed, {} stored in {table}, {expected_rows} expected",
            printed.len(),
            stored.len()
        ));
    }
    let mut seen = HashSet::new();
    for p in printed {
        if p.table != table {
            return Err(format!("{client}: a row of {} printed", p.table));
        }
        let Some((id, ms, node, seq)) = stored.get(&p.reference) else {
            return Err(format!("{client}: {} printed, not stored", p.reference));
        };
        if &p.id != id {
            return Err(format!(
                "{client} {}: the client read back {}, the server stored {id}",
                p.reference, p.id
            ));
        }
        let value: i64 = id.parse().unwrap();
        if value <= 1 << 53 {
            return Err(format!("{client} {}: {id} is not above 2^53", p.reference));
        }
        if p.decoded != (*ms, *node, *seq) || *node != NODE_ID {
            return Err(format!(
                "{client} {}: decoded on the client {:?}, snowflake_parse() ({ms}, {node}, {seq}), node id {NODE_ID}",
                p.reference, p.decoded
            ));
        }
        if !seen.insert(value) {
            return Err(format!("{client}: {id} printed twice"));
        }
    }
    Ok(())
}

struct Program {
    name: &'static str,
    table: &'static str,
    rows: usize,
    command: Command,
}

fn program(
    name: &'static str,
    table: &'static str,
    rows: usize,
    exe: PathBuf,
    args: &[&str],
    dir: &str,
) -> Program {
    let mut command = Command::new(exe);
    command.args(args).current_dir(project_root().join(dir));
    Program {
        name,
        table,
        rows,
        command,
    }
}

/// How many INSERT statements into its table a client sends: many rows go in one statement,
/// which the server log (`log_statement = 'all'`) shows. A pipeline is one statement a row, sent
/// together: counted as what it is.
fn expected_inserts(client: &str) -> RangeInclusive<usize> {
    match client {
        // one row; 500 by unnest; 100 by executemany (pipelined); the reserved keys go by COPY
        "psycopg" => 102..=102,
        // save(); bulk_create() of 500
        "django" => 2..=2,
        // flush() of one; flush() of 500 (one statement thanks to the insert sentinel); Core
        // insert of 100
        "sqlalchemy" => 3..=3,
        // one; 500 by unnest; 1000 reserved keys by unnest
        "pg" => 3..=3,
        // one; an array of 500
        "knex" => 2..=2,
        "json" => 1..=1,
        // RETURNING; getGeneratedKeys(); a batch of 500 returning keys (pipelined, one statement
        // a row); 500 by unnest; 1000 reserved keys as a batch that reWriteBatchedInserts turns
        // into a few multi-row INSERTs (not 1000)
        "pgjdbc" => 504..=519,
        // one; 500 from generate_series
        "psql" | "tokio-postgres" => 2..=2,
        _ => unreachable!("{client}"),
    }
}

/// The INSERT statements into `table` in a piece of the server log.
fn inserts_logged(log: &str, table: &str) -> usize {
    let (a, b) = (
        format!("insert into {table} "),
        format!("insert into {table}("),
    );
    log.lines()
        .filter(|l| l.contains(" LOG:  statement: ") || l.contains(" LOG:  execute "))
        .map(|l| l.to_lowercase().replace('"', ""))
        .filter(|l| l.contains(&a) || l.contains(&b))
        .count()
}

fn required(path: PathBuf) -> Result<PathBuf, String> {
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: run scripts/clients-setup.sh (scripts/test.sh does)",
            path.display()
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The Rust recipe (docs/clients.md quotes it): tokio-postgres, keys read back with RETURNING.
// A Rust i64 holds every ID exactly.

/// Writes `audit_rust` and returns (ref, id) of every row, as the driver gave them back.
async fn tokio_postgres_recipe(
    conninfo: &str,
) -> Result<Vec<(String, i64)>, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE audit_rust (id bigint PRIMARY KEY DEFAULT snowflake_nextval(),
                                      ref text NOT NULL UNIQUE, note text)",
        )
        .await?;
    let mut rows = Vec::new();
    // One row.
    let one = client
        .query_one(
            "INSERT INTO audit_rust (ref, note) VALUES ($1, $2) RETURNING id",
            &[&"rust-0", &"one"],
        )
        .await?;
    rows.push(("rust-0".to_string(), one.get::<_, i64>(0)));
    // Many rows in one statement, one round trip: an array in, (ref, id) pairs out.
    let refs: Vec<String> = (1..=500).map(|i| format!("rust-{i}")).collect();
    for r in client
        .query(
            "INSERT INTO audit_rust (ref, note) SELECT r, 'batch' FROM unnest($1::text[]) AS r
             RETURNING ref, id",
            &[&refs],
        )
        .await?
    {
        rows.push((r.get(0), r.get(1)));
    }
    Ok(rows)
}

/// (unix ms, node, sequence) of an ID, with shifts.
fn decode(id: i64) -> (i64, i32, i32) {
    (
        (id >> 22) + EPOCH_UNIX_MS,
        ((id >> 12) & 0x3ff) as i32,
        (id & 0xfff) as i32,
    )
}

// ---------------------------------------------------------------------------------------------

/// What the JSON recipe printed: each unsafe path corrupted IDs, each safe path none.
fn check_json(c: &mut Client, stdout: &str) -> Result<String, String> {
    let mut unsafe_paths = Vec::new();
    let mut safe_paths = Vec::new();
    for l in stdout.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        match f[0] {
            "json-unsafe" => {
                // path, IDs changed, IDs printed differently, IDs, stored -> delivered -> printed
                let n = |i: usize| f.get(i).and_then(|x| x.parse::<usize>().ok());
                let (Some(bad), Some(misprinted), Some(total), 8) = (n(2), n(3), n(4), f.len())
                else {
                    return Err(format!("json: bad line {l:?}"));
                };
                if bad == 0 {
                    return Err(format!("json: the unsafe path {} corrupted no ID", f[1]));
                }
                // The example is a stored ID and what the path made of it: another number.
                let stored: i64 = c
                    .query_one(
                        "SELECT count(*) FROM audit_json WHERE id::text = $1",
                        &[&f[5]],
                    )
                    .unwrap()
                    .get(0);
                if stored != 1 || f[5] == f[6] {
                    return Err(format!(
                        "json: {l:?} is not a stored ID and a different value"
                    ));
                }
                unsafe_paths.push(format!(
                    "{}: {bad} of {total} IDs changed, {misprinted} printed differently (e.g. {} became {}, printed {})",
                    f[1], f[5], f[6], f[7]
                ));
            }
            "json-safe" => {
                if f[2] != "0" {
                    return Err(format!(
                        "json: the safe path {} corrupted {} IDs",
                        f[1], f[2]
                    ));
                }
                safe_paths.push(f[1].to_string());
            }
            _ => {}
        }
    }
    if unsafe_paths.len() != 2 || safe_paths.len() != 5 {
        return Err(format!(
            "json: expected 2 unsafe and 5 safe paths, got {unsafe_paths:?} and {safe_paths:?}"
        ));
    }
    Ok(format!(
        "unsafe: {}; safe, exact: {}",
        unsafe_paths.join("; "),
        safe_paths.join(", ")
    ))
}

/// Which client toolchains are installed (a missing one is reported as a failure already).
struct Toolchains {
    python: Option<PathBuf>,
    node: bool,
    java: bool,
}

/// Runs every recipe program against `uri` / `jdbc` and checks its rows through `c` (a direct
/// connection to the same database) and the INSERT statements in `node`'s log; `via` names the
/// path in the messages.
fn run_recipes(
    node: &Cluster,
    c: &mut Client,
    uri: &str,
    jdbc: &str,
    t: &Toolchains,
    via: &str,
    failures: &mut Vec<String>,
) {
    let root = project_root();
    let mut programs = Vec::new();
    if let Some(python) = &t.python {
        for (name, table, rows) in [
            ("psycopg", "audit_psycopg", 1601),
            ("django", "audit_django", 501),
            ("sqlalchemy", "audit_sqlalchemy", 601),
        ] {
            let script = format!("{name}_recipe.py");
            programs.push(program(
                name,
                table,
                rows,
                python.clone(),
                &[&script],
                "tests/clients/python",
            ));
        }
    }
    if t.node {
        for (name, table, rows) in [
            ("pg", "audit_pg", 1501),
            ("knex", "audit_knex", 501),
            ("json", "audit_json", 200),
        ] {
            let script = format!("{name}_recipe.mjs");
            programs.push(program(
                name,
                table,
                rows,
                "node".into(),
                &[&script],
                "tests/clients/node",
            ));
        }
    }
    if t.java {
        let cp = format!(
            "{}:/usr/share/java/postgresql.jar",
            root.join("target/clients/java").display()
        );
        programs.push(program(
            "pgjdbc",
            "audit_jdbc",
            2002,
            "java".into(),
            &["-cp", &cp, "SnowflakeJdbc"],
            "tests/clients/java",
        ));
    }
    programs.push(program(
        "psql",
        "audit_psql",
        501,
        pg().bin("psql"),
        &["-X", "-v", "ON_ERROR_STOP=1", "-f", "recipe.sql", uri],
        "tests/clients/psql",
    ));

    for mut p in programs {
        let log_at = node.log_len();
        let started = Instant::now();
        let out = match p
            .command
            .env("SNOWFLAKE_DSN", uri)
            .env("SNOWFLAKE_JDBC_URL", jdbc)
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("{}: cannot run {:?}: {e}", p.name, p.command));
                continue;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            failures.push(format!(
                "{}: {}\n{}",
                p.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let checked = parse_rows(p.name, &stdout)
            .and_then(|rows| cross_check(c, p.name, p.table, &rows, p.rows));
        let checked = match (checked, p.name) {
            (Ok(()), "json") => check_json(c, &stdout).map(|s| format!(", {s}")),
            (Ok(()), "django") if !stdout.contains("django-plain-bulk-create-keys-unset 3") => {
                Err("django: the plain db_default model's bulk_create pitfall was not shown".into())
            }
            (r, _) => r.map(|()| String::new()),
        };
        let checked = checked.and_then(|extra| {
            let n = inserts_logged(&node.log_since(log_at), p.table);
            let expected = expected_inserts(p.name);
            if expected.contains(&n) {
                Ok(format!(" in {n} INSERT statements{extra}"))
            } else {
                Err(format!(
                    "{}: {n} INSERT statements into {} logged, expected {expected:?}",
                    p.name, p.table
                ))
            }
        });
        match checked {
            Ok(extra) => eprintln!(
                "clients: {}{via} ok ({:.1} s): {} rows in {}{extra}; IDs read back exact, above 2^53, decoded as snowflake_parse()",
                p.name,
                started.elapsed().as_secs_f64(),
                p.rows,
                p.table,
            ),
            Err(e) => failures.push(format!("{e}{via}")),
        }
    }
}

#[test]
fn every_client_reads_back_the_stored_ids_and_decodes_them_as_snowflake_parse() {
    if pg().major != 15 {
        eprintln!(
            "clients: skipped on PostgreSQL {} (the client recipes run once, on 15)",
            pg().major
        );
        return;
    }
    let node = Cluster::init(
        "cl-clients",
        &[
            &format!("snowflake_id.node_id = {NODE_ID}"),
            "log_statement = 'all'",
        ],
    );
    node.start();
    node.psql("CREATE DATABASE clients");
    let conninfo = node.conninfo_db("clients");
    let mut c = Client::connect(&conninfo, NoTls).unwrap();
    c.batch_execute("CREATE EXTENSION snowflake_id").unwrap();
    let port = node.port;
    let uri = format!("postgresql://postgres@127.0.0.1:{port}/clients");
    let jdbc = format!("jdbc:postgresql://127.0.0.1:{port}/clients");

    let root = project_root();
    let mut failures = Vec::new();
    let python = required(root.join("target/clients/venv/bin/python"));
    let node_modules = required(root.join("tests/clients/node/node_modules/pg"));
    let java_class = required(root.join("target/clients/java/SnowflakeJdbc.class"))
        .and_then(|class| {
            let modified = |p: &PathBuf| p.metadata().and_then(|m| m.modified()).unwrap();
            let source = root.join("tests/clients/java/SnowflakeJdbc.java");
            if modified(&source) > modified(&class) {
                Err(format!(
                    "{} is older than its source: run scripts/clients-setup.sh",
                    class.display()
                ))
            } else {
                Ok(class)
            }
        })
        .and_then(|_| required(PathBuf::from("/usr/share/java/postgresql.jar")));
    for e in [&python, &node_modules, &java_class]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
    {
        failures.push(e.clone());
    }
    let toolchains = Toolchains {
        python: python.ok(),
        node: node_modules.is_ok(),
        java: java_class.is_ok(),
    };
    run_recipes(&node, &mut c, &uri, &jdbc, &toolchains, "", &mut failures);

    // The same recipes through PgBouncer in transaction pooling mode (each with its setting for
    // it: no server-side prepared statements), into a database of their own.
    node.psql("CREATE DATABASE clients_bouncer");
    let mut cb = Client::connect(&node.conninfo_db("clients_bouncer"), NoTls).unwrap();
    cb.batch_execute("CREATE EXTENSION snowflake_id").unwrap();
    let bouncer_port = ports::one();
    let (_bouncer, mut admin) = snowflake_it::daemon::pgbouncer(
        &snowflake_it::clusters_root().join("cl-clients-pgbouncer"),
        bouncer_port,
        port,
        &["clients_bouncer"],
    );
    run_recipes(
        &node,
        &mut cb,
        &format!("postgresql://postgres@127.0.0.1:{bouncer_port}/clients_bouncer"),
        &format!("jdbc:postgresql://127.0.0.1:{bouncer_port}/clients_bouncer"),
        &toolchains,
        " through PgBouncer (transaction pooling)",
        &mut failures,
    );
    // The recipes' transactions did go through PgBouncer.
    let xacts: u64 = admin
        .simple_query("SHOW STATS")
        .unwrap()
        .iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r)
                if r.get("database") == Some("clients_bouncer") =>
            {
                r.get("total_xact_count").and_then(|v| v.parse().ok())
            }
            _ => None,
        })
        .unwrap_or(0);
    assert!(
        xacts > 0,
        "PgBouncer counted no transaction to clients_bouncer"
    );
    eprintln!("clients: PgBouncer counted {xacts} transactions of the recipes");

    // Rust, in this process.
    let log_at = node.log_len();
    let started = Instant::now();
    let rust = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(tokio_postgres_recipe(&conninfo));
    let rust = match rust {
        Ok(rows) => {
            let printed: Vec<Printed> = rows
                .iter()
                .map(|(r, id)| Printed {
                    table: "audit_rust".into(),
                    reference: r.clone(),
                    id: id.to_string(),
                    decoded: decode(*id),
                })
                .collect();
            cross_check(&mut c, "tokio-postgres", "audit_rust", &printed, 501).and_then(|()| {
                let n = inserts_logged(&node.log_since(log_at), "audit_rust");
                if expected_inserts("tokio-postgres").contains(&n) {
                    Ok(())
                } else {
                    Err(format!(
                        "tokio-postgres: {n} INSERT statements logged, expected 2"
                    ))
                }
            })
        }
        Err(e) => Err(format!("tokio-postgres: {e}")),
    };
    match rust {
        Ok(()) => eprintln!(
            "clients: tokio-postgres ok ({:.1} s): 501 rows in audit_rust in 2 INSERT statements; IDs read back exact, above 2^53, decoded as snowflake_parse()",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => failures.push(e),
    }

    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// docs/clients.md quotes the recipes: each block marked `<!-- quoted from PATH -->` must appear
/// in that file as it is, so the documented snippet is the one the test above runs.
#[test]
fn docs_quote_the_tested_recipes_exactly() {
    let root = project_root();
    let doc = std::fs::read_to_string(root.join("docs/clients.md")).unwrap();
    let mut lines = doc.lines();
    let mut quoted = 0;
    let mut stale = Vec::new();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .strip_prefix("<!-- quoted from ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        assert!(
            lines.next().is_some_and(|l| l.starts_with("```")),
            "docs/clients.md: no code block after {line}"
        );
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let source = std::fs::read_to_string(root.join(path))
            .unwrap_or_else(|e| panic!("docs/clients.md quotes {path}: {e}"));
        if !source.contains(&block.join("\n")) {
            stale.push(format!("{path}:\n{}", block.join("\n")));
        }
        quoted += 1;
    }
    assert!(quoted >= 15, "only {quoted} quoted blocks found");
    assert!(
        stale.is_empty(),
        "docs/clients.md quotes code that its file no longer holds:\n{}",
        stale.join("\n---\n")
    );
}
