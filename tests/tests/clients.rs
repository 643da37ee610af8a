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
//! The toolchains come from `scripts/setup.sh --clients` (a venv under `target/clients`,
//! `npm ci`, Debian's pgjdbc, javac), which `scripts/test.sh` runs first; a missing one is a
//! failure. The clients do not depend on the server's major, so they run on 15 only (the test
//! prints that it skips on the others). The programs run twice: directly, and through PgBouncer in
//! transaction pooling mode. Cluster `cl-clients`.
//!
//! Safe client retries (examples/retry-client), on every major, against a real server, with the acknowledgement of
//! a COMMIT lost on the way back.
//!
//! The fault: a TCP proxy between client and server that speaks just enough of the PostgreSQL
//! protocol to see messages. Armed, it forwards the client's COMMIT to the server, reads the
//! server's reply up to ReadyForQuery (so the commit is done and durable), relays none of it and
//! closes both connections: the client sees a broken connection for a write that happened.
//! A naive client (INSERT with the DEFAULT ID, plain retry) writes the row twice under that
//! fault, which shows the fault is real; the safe client writes it once and reports success.

use postgres::{Client, NoTls};
use retry_client::{write_audit_row, AuditEvent, Outcome, RetryPolicy, CREATE_TABLE};
use snowflake_it::{pg, ports, project_root, Cluster};
use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

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
            "{} is missing: run scripts/setup.sh --clients (scripts/test.sh does)",
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
                    "{} is older than its source: run scripts/setup.sh --clients",
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

// ---------------------------------------------------------------------------------------------
// Safe client retries (examples/retry-client), on every major
// ---------------------------------------------------------------------------------------------

/// What the armed proxy does to the next COMMIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forward the COMMIT, wait for the server's ReadyForQuery, drop the reply and the connection.
    LoseAck,
    /// Drop the connection instead of forwarding the COMMIT (the transaction rolls back).
    DropCommit,
}

#[derive(Default)]
struct Faults {
    armed: Mutex<Vec<Fault>>,
    /// Acknowledgements swallowed after the server had answered the COMMIT.
    acks_lost: AtomicUsize,
    commits_dropped: AtomicUsize,
}

impl Faults {
    fn arm(&self, f: Fault) {
        self.armed.lock().unwrap().push(f);
    }
    fn take(&self) -> Option<Fault> {
        self.armed.lock().unwrap().pop()
    }
}

/// One protocol message: type byte (none for the startup packet) and the whole raw message.
async fn read_message(r: &mut OwnedReadHalf, typed: bool) -> std::io::Result<(u8, Vec<u8>)> {
    let mut raw = Vec::new();
    let kind = if typed {
        let k = r.read_u8().await?;
        raw.push(k);
        k
    } else {
        0
    };
    let len = r.read_u32().await?;
    assert!((4..1 << 30).contains(&len), "bad message length {len}");
    raw.extend_from_slice(&len.to_be_bytes());
    let start = raw.len();
    raw.resize(start + len as usize - 4, 0);
    r.read_exact(&mut raw[start..]).await?;
    Ok((kind, raw))
}

/// Whether a client message is a COMMIT: a simple query, or a Parse of the extended protocol.
fn is_commit(kind: u8, raw: &[u8]) -> bool {
    let body = &raw[5..];
    let sql = match kind {
        b'Q' => body,
        b'P' => match body.iter().position(|&b| b == 0) {
            Some(i) => &body[i + 1..],
            None => return false,
        },
        _ => return false,
    };
    let sql = String::from_utf8_lossy(sql)
        .trim_matches(char::from(0))
        .trim()
        .to_ascii_uppercase();
    sql.starts_with("COMMIT") || sql.starts_with("END")
}

async fn client_to_server(
    mut cr: OwnedReadHalf,
    mut sw: OwnedWriteHalf,
    faults: Arc<Faults>,
    fault_tx: tokio::sync::watch::Sender<Option<Fault>>,
) -> std::io::Result<()> {
    // Startup packet (sslmode=disable: no SSLRequest), then typed messages.
    let (_, startup) = read_message(&mut cr, false).await?;
    sw.write_all(&startup).await?;
    loop {
        let (kind, raw) = read_message(&mut cr, true).await?;
        if is_commit(kind, &raw) {
            if let Some(f) = faults.take() {
                // Tell the other direction before the server can possibly answer.
                let _ = fault_tx.send(Some(f));
                if f == Fault::LoseAck {
                    sw.write_all(&raw).await?;
                } else {
                    faults.commits_dropped.fetch_add(1, Ordering::SeqCst);
                }
                // Nothing more from this client reaches the server.
                std::future::pending::<()>().await;
            }
        }
        sw.write_all(&raw).await?;
    }
}

async fn server_to_client(
    mut sr: OwnedReadHalf,
    mut cw: OwnedWriteHalf,
    faults: Arc<Faults>,
    fault_rx: tokio::sync::watch::Receiver<Option<Fault>>,
) -> std::io::Result<()> {
    loop {
        let read = tokio::select! {
            m = read_message(&mut sr, true) => Some(m?),
            _ = wait_for_fault(fault_rx.clone(), Fault::DropCommit) => None,
        };
        let Some((kind, raw)) = read else {
            return Ok(()); // COMMIT dropped: close the client connection
        };
        if *fault_rx.borrow() == Some(Fault::LoseAck) {
            // The reply to the COMMIT: swallow it; once ReadyForQuery came, the commit is over.
            if kind == b'Z' {
                faults.acks_lost.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
            continue;
        }
        cw.write_all(&raw).await?;
    }
}

async fn wait_for_fault(mut rx: tokio::sync::watch::Receiver<Option<Fault>>, want: Fault) {
    let _ = rx.wait_for(|f| *f == Some(want)).await;
}

async fn relay(client: TcpStream, server_port: u16, faults: Arc<Faults>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
        return;
    };
    // Messages are relayed one by one: no Nagle delay on top of the peer's delayed ACKs.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let (tx, rx) = tokio::sync::watch::channel(None);
    // Whichever direction ends first ends the relay; dropping the halves closes both sockets.
    tokio::select! {
        _ = client_to_server(cr, sw, faults.clone(), tx) => {}
        _ = server_to_client(sr, cw, faults, rx) => {}
    }
}

async fn start_proxy(port: u16, server_port: u16, faults: Arc<Faults>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(relay(sock, server_port, faults.clone()));
        }
    });
}

fn conninfo(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable connect_timeout=10")
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        max_retries: 6,
    }
}

/// The naive way: INSERT with the DEFAULT ID, retried as a whole on a transient error.
async fn naive_write(conninfo: &str, event: &AuditEvent) -> (u32, Result<(), String>) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result: Result<(), tokio_postgres::Error> = async {
            let mut c = retry_client::connect(conninfo).await?;
            let tx = c.transaction().await?;
            tx.execute(
                "INSERT INTO audit_log (actor, action, detail) VALUES ($1, $2, $3)",
                &[&event.actor, &event.action, &event.detail],
            )
            .await?;
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => return (attempts, Ok(())),
            Err(e) if retry_client::is_transient(&e) && attempts < 5 => {
                tokio::time::sleep(Duration::from_millis(20 << attempts)).await
            }
            Err(e) => return (attempts, Err(e.to_string())),
        }
    }
}

fn event(detail: &str) -> AuditEvent {
    AuditEvent {
        actor: "alice".into(),
        action: "login".into(),
        detail: detail.into(),
    }
}

fn rows_with_detail(node: &Cluster, detail: &str) -> Vec<i64> {
    node.connect()
        .query(
            "SELECT id FROM audit_log WHERE detail = $1 ORDER BY id",
            &[&detail],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn lost_commit_acknowledgement_safe_client_writes_once_naive_client_twice() {
    let node = Cluster::init("retry-ack", &["snowflake_id.node_id = 6"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    node.psql(CREATE_TABLE);
    let proxy_port = ports::one();
    let via_proxy = conninfo(proxy_port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let faults = Arc::new(Faults::default());
    rt.block_on(start_proxy(proxy_port, node.port, faults.clone()));

    // No fault: one attempt, written.
    let r = rt
        .block_on(write_audit_row(
            &via_proxy,
            &event("no fault"),
            &fast_policy(),
        ))
        .unwrap();
    assert_eq!((r.outcome, r.attempts), (Outcome::Written, 1));
    assert_eq!(rows_with_detail(&node, "no fault"), vec![r.id]);

    // The naive client under a lost acknowledgement: its retry writes a second row.
    faults.arm(Fault::LoseAck);
    let (attempts, result) = rt.block_on(naive_write(&via_proxy, &event("naive")));
    assert_eq!(
        faults.acks_lost.load(Ordering::SeqCst),
        1,
        "the fault was not injected"
    );
    assert!(result.is_ok(), "naive client failed: {result:?}");
    assert_eq!(attempts, 2);
    let naive_rows = rows_with_detail(&node, "naive");
    assert_eq!(
        naive_rows.len(),
        2,
        "the lost acknowledgement did not make the naive client duplicate: {naive_rows:?}"
    );

    // The safe client under the same fault: it succeeds on its retry, and there is one row.
    faults.arm(Fault::LoseAck);
    let r = rt
        .block_on(write_audit_row(&via_proxy, &event("safe"), &fast_policy()))
        .unwrap();
    assert_eq!(
        faults.acks_lost.load(Ordering::SeqCst),
        2,
        "the fault was not injected"
    );
    assert_eq!(r.outcome, Outcome::AlreadyWritten, "{r:?}");
    assert_eq!(r.attempts, 2, "{r:?}");
    assert_eq!(rows_with_detail(&node, "safe"), vec![r.id]);

    // The COMMIT never reaches the server: the transaction rolls back, the retry writes the row.
    faults.arm(Fault::DropCommit);
    let r = rt
        .block_on(write_audit_row(
            &via_proxy,
            &event("dropped commit"),
            &fast_policy(),
        ))
        .unwrap();
    assert_eq!(
        faults.commits_dropped.load(Ordering::SeqCst),
        1,
        "the fault was not injected"
    );
    assert_eq!((r.outcome, r.attempts), (Outcome::Written, 2), "{r:?}");
    assert_eq!(rows_with_detail(&node, "dropped commit"), vec![r.id]);

    // Several rows in a row, a lost acknowledgement for every other one: still one row each.
    for i in 0..10 {
        if i % 2 == 0 {
            faults.arm(Fault::LoseAck);
        }
        let detail = format!("batch {i}");
        let r = rt
            .block_on(write_audit_row(&via_proxy, &event(&detail), &fast_policy()))
            .unwrap();
        let expected = if i % 2 == 0 {
            Outcome::AlreadyWritten
        } else {
            Outcome::Written
        };
        assert_eq!(r.outcome, expected, "row {i}: {r:?}");
        assert_eq!(rows_with_detail(&node, &detail), vec![r.id]);
    }
    assert_eq!(faults.acks_lost.load(Ordering::SeqCst), 7);
    let total: i64 = node
        .connect()
        .query_one("SELECT count(*) FROM audit_log", &[])
        .unwrap()
        .get(0);
    assert_eq!(total, 1 + 2 + 1 + 1 + 10);
}

#[test]
fn unique_violation_on_the_first_attempt_is_an_error_not_success() {
    // A row already holds the ID the client is about to use (as if two servers shared a node id):
    // without a retry behind it, a unique violation must not be taken for "already written".
    let node = Cluster::init("retry-conflict", &["snowflake_id.node_id = 7"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    node.psql(CREATE_TABLE);
    // Every ID this server issues from now on collides with a row written with the same value.
    node.psql(
        "CREATE FUNCTION collide() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.actor <> 'squatter' THEN
             INSERT INTO audit_log (id, actor, action, detail) VALUES (NEW.id, 'squatter', 'x', 'x');
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER collide BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION collide();",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(write_audit_row(
            &conninfo(node.port),
            &event("mine"),
            &fast_policy(),
        ))
        .unwrap_err();
    assert!(!err.is_transient());
    assert!(err.to_string().contains("23505"), "{err}");
    assert!(rows_with_detail(&node, "mine").is_empty());
}

/// The guide's case of a lost attempt still running on the server (its COMMIT not yet done when
/// the client gave up on it): the retry's INSERT of the same ID waits on the primary key until
/// that transaction ends, then fails with 23505 if it committed, or writes the row if it rolled
/// back. One row either way.
#[test]
fn retry_while_the_first_attempt_is_still_open_waits_on_the_key_then_fails_or_writes() {
    let node = Cluster::init("retry-pending", &["snowflake_id.node_id = 8"]);
    node.start();
    node.psql("CREATE EXTENSION snowflake_id");
    node.psql(CREATE_TABLE);
    const INSERT: &str =
        "INSERT INTO audit_log (id, actor, action, detail) VALUES ($1, 'alice', 'login', $2)";
    for commit in [true, false] {
        let detail = format!("pending, first attempt commits: {commit}");
        let mut first = node.connect();
        let id: i64 = first
            .query_one("SELECT snowflake_nextval()", &[])
            .unwrap()
            .get(0);
        let mut attempt = first.transaction().unwrap();
        attempt.execute(INSERT, &[&id, &detail]).unwrap();
        let (conninfo, d) = (node.conninfo(), detail.clone());
        let retry = std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
            let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
            (pid, c.execute(INSERT, &[&id, &d]))
        });
        // The retry is blocked on the first attempt's transaction, not finished.
        let waiting = snowflake_it::wait_for(
            "the retry to wait on the key",
            Duration::from_secs(30),
            || {
                let v = node.psql(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'transactionid' \
                 AND query LIKE 'INSERT INTO audit_log%'",
            );
                (!v.is_empty()).then_some(v)
            },
        );
        assert!(!retry.is_finished(), "the retry did not wait");
        if commit {
            attempt.commit().unwrap();
        } else {
            attempt.rollback().unwrap();
        }
        let (pid, result) = retry.join().unwrap();
        assert_eq!(waiting, pid.to_string(), "another backend was waiting");
        if commit {
            let e = result.expect_err("the retry wrote a second row");
            assert_eq!(
                e.as_db_error().map(|d| d.code().code()),
                Some("23505"),
                "{e}"
            );
        } else {
            assert_eq!(result.unwrap(), 1);
        }
        assert_eq!(rows_with_detail(&node, &detail), vec![id]);
    }
}
