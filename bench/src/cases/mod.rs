//! The cases, run against one server; each returns its measurements. What the cases share is
//! here (the sizes, the generators and keys compared, the pgbench and `/proc` helpers); each
//! case is a file of its own.

// Also the imports of the files below, which take them with `use super::*`.
use crate::data::{Sample, M};
use postgres::Client;
use snowflake_cluster::Node;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

mod bulk;
mod contention;
mod growth;
mod inserts;
mod instructions;
mod profile;
mod replay;
mod roundtrip;
mod sustained;

/// Sizes of one run: quick (smoke test of the benchmark) or full.
#[derive(Clone, Debug)]
pub struct Params {
    pub quick: bool,
    /// Round trip: pairs and pgbench `-T` of each run.
    pub rt_pairs: u32,
    pub rt_secs: u32,
    /// Bulk: pairs and IDs per statement.
    pub bulk_pairs: u32,
    pub bulk_n: i64,
    /// Sustained runs: (name, backends, IDs in all, max_drift_ms or None for the default).
    pub sustained: Vec<(&'static str, u32, i64, Option<u32>)>,
    /// Inserts: pairs and pgbench `-T`.
    pub ins_pairs: u32,
    pub ins_secs: u32,
    /// Growth: rows per table and per batch.
    pub grow_rows: i64,
    pub grow_batch: i64,
    /// Contention: runs, IDs per backend (rate), IDs per backend (duplicate check).
    pub cont_reps: u32,
    pub cont_n: i64,
    pub dup_n: i64,
    /// Round trip, interleaved with snowflake_nextval(): pgbench `-T` per reference.
    pub il_secs: u32,
    /// Profile: seconds of `perf record` per generator.
    pub prof_secs: u32,
    /// Instructions: statements (N; 2N run too), calls in one bulk statement (N), generators.
    pub ir_stmts: usize,
    pub ir_calls: i64,
    pub ir_gens: Vec<&'static str>,
    /// Only these cases (all when empty).
    pub only: Vec<String>,
}

impl Params {
    pub fn new(quick: bool, only: Vec<String>) -> Params {
        if quick {
            Params {
                quick,
                rt_pairs: 3,
                rt_secs: 1,
                bulk_pairs: 3,
                bulk_n: 1_000_000,
                sustained: vec![
                    ("1 backend", 1, 3_000_000, Some(200)),
                    ("2 backends", 2, 3_000_000, Some(200)),
                ],
                ins_pairs: 2,
                ins_secs: 1,
                grow_rows: 300_000,
                grow_batch: 100_000,
                cont_reps: 1,
                cont_n: 200_000,
                dup_n: 100_000,
                il_secs: 2,
                prof_secs: 2,
                ir_stmts: 200,
                ir_calls: 10_000,
                ir_gens: vec!["select1", "isn_weak", "noop_pgrx", "snowflake"],
                only,
            }
        } else {
            Params {
                quick,
                rt_pairs: 10,
                rt_secs: 4,
                bulk_pairs: 10,
                bulk_n: 5_000_000,
                sustained: vec![
                    ("1 backend", 1, 20_000_000, None),
                    ("2 backends", 2, 20_000_000, None),
                    ("2 backends (bound 200 ms)", 2, 20_000_000, Some(200)),
                ],
                ins_pairs: 5,
                ins_secs: 10,
                grow_rows: 20_000_000,
                grow_batch: 1_000_000,
                cont_reps: 3,
                cont_n: 5_000_000,
                dup_n: 1_000_000,
                il_secs: 20,
                prof_secs: 10,
                ir_stmts: 2_000,
                ir_calls: 200_000,
                ir_gens: vec![
                    "select1",
                    "isn_weak",
                    "noop_pgrx_stable",
                    "noop_pgrx",
                    "snowflake",
                    "random",
                    "nextval",
                    "uuidv7",
                ],
                only,
            }
        }
    }
}

/// A value generator compared in the round-trip, bulk and contention cases.
pub struct Gen {
    pub id: &'static str,
    pub label: &'static str,
    pub expr: &'static str,
    pub min_major: u32,
}

pub const GENS: &[Gen] = &[
    Gen {
        id: "snowflake",
        label: "snowflake_nextval()",
        expr: "snowflake_nextval()",
        min_major: 0,
    },
    Gen {
        id: "isn_weak",
        label: "isn_weak() (no-op C function)",
        expr: "isn_weak()",
        min_major: 0,
    },
    Gen {
        id: "noop_pgrx",
        label: "no-op #[pg_extern] of snowflake_id",
        expr: "bench_noop_pgrx()",
        min_major: 0,
    },
    Gen {
        id: "noop_pgrx_stable",
        label: "the same no-op declared STABLE",
        expr: "bench_noop_pgrx_stable()",
        min_major: 0,
    },
    Gen {
        id: "select1",
        label: "SELECT 1",
        expr: "1",
        min_major: 0,
    },
    Gen {
        id: "random",
        label: "random()",
        expr: "random()",
        min_major: 0,
    },
    Gen {
        id: "nextval",
        label: "nextval() (cache 1)",
        expr: "nextval('bench_seq')",
        min_major: 0,
    },
    Gen {
        id: "uuidv7",
        label: "uuidv7()",
        expr: "uuidv7()",
        min_major: 18,
    },
];

/// The generators of the round trip: snowflake_nextval() and its references.
pub const RT_GENS: &[&str] = &[
    "snowflake",
    "isn_weak",
    "noop_pgrx",
    "select1",
    "random",
    "nextval",
    "uuidv7",
];

pub fn gen(id: &str) -> &'static Gen {
    GENS.iter()
        .find(|g| g.id == id)
        .unwrap_or_else(|| panic!("no generator {id}"))
}

/// Primary keys of the insert and growth cases: (id, label, column definition, min major).
pub const KEYS: &[(&str, &str, &str, u32)] = &[
    (
        "sf",
        "snowflake_nextval() bigint",
        "id bigint PRIMARY KEY DEFAULT snowflake_nextval()",
        0,
    ),
    ("serial", "bigserial", "id bigserial PRIMARY KEY", 0),
    (
        "uuidv7",
        "uuidv7() uuid",
        "id uuid PRIMARY KEY DEFAULT uuidv7()",
        18,
    ),
];

pub fn key_label(id: &str) -> &'static str {
    KEYS.iter().find(|k| k.0 == id).map(|k| k.1).unwrap_or("?")
}

pub struct Bench<'a> {
    pub node: &'a Node,
    pub p: &'a Params,
    pub major: u32,
    pub work: PathBuf,
}

fn sql_err(sql: &str) -> impl Fn(postgres::Error) -> String + '_ {
    move |e| format!("SQL failed: {sql}\n  {e}")
}

pub(crate) fn exec(c: &mut Client, sql: &str) {
    c.batch_execute(sql)
        .unwrap_or_else(|e| panic!("{}", sql_err(sql)(e)));
}

pub(crate) fn q_i64(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or_else(|e| panic!("{}", sql_err(sql)(e)))
}

/// utime + stime (or, with `children`, cutime + cstime) of a process, in clock ticks.
fn ticks(pid: i32, children: bool) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/stat: {e}"));
    // Fields after the command name (which may hold spaces): 3 = state, 14 = utime, ...
    let rest = &text[text.rfind(')').expect("bad /proc stat") + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let (a, b) = if children { (13, 14) } else { (11, 12) };
    f[a] + f[b]
}

extern "C" {
    fn sysconf(name: i32) -> i64;
}

/// Clock ticks per second (`_SC_CLK_TCK`).
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions; 2 is _SC_CLK_TCK on Linux.
    let t = unsafe { sysconf(2) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

impl Bench<'_> {
    pub fn client(&self) -> Client {
        self.node.connect()
    }

    pub fn setup(&self) {
        let mut c = self.client();
        let mut sql = String::from(
            "CREATE EXTENSION snowflake_id;\n\
             CREATE EXTENSION isn;\n\
             CREATE SEQUENCE bench_seq CACHE 1;\n\
             CREATE UNLOGGED TABLE bench_dup (v bigint);\n\
             CREATE FUNCTION bench_noop_pgrx() RETURNS bigint VOLATILE PARALLEL SAFE \
             LANGUAGE c AS '$libdir/snowflake_id', 'snowflake_noop_wrapper';\n\
             CREATE FUNCTION bench_noop_pgrx_stable() RETURNS bigint STABLE PARALLEL SAFE \
             LANGUAGE c AS '$libdir/snowflake_id', 'snowflake_noop_wrapper';\n",
        );
        for (id, _, col, min) in KEYS {
            if self.major < *min {
                continue;
            }
            for t in ["audit", "grow"] {
                sql.push_str(&format!(
                    "CREATE TABLE bench_{t}_{id} ({col}, user_id int NOT NULL, action text NOT NULL, \
                     detail text, created_at timestamptz NOT NULL DEFAULT now());\n"
                ));
            }
        }
        exec(&mut c, &sql);
    }

    pub fn gens(&self, ids: &[&str]) -> Vec<&'static Gen> {
        ids.iter()
            .map(|id| gen(id))
            .filter(|g| self.major >= g.min_major)
            .collect()
    }

    pub fn keys(&self) -> Vec<&'static str> {
        KEYS.iter()
            .filter(|k| self.major >= k.3)
            .map(|k| k.0)
            .collect()
    }

    /// Waits until the newest ID no longer leads the clock, so each run starts from the clock.
    fn settle(&self, c: &mut Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while q_i64(c, "SELECT drift_ms FROM snowflake_stats()") > 0 {
            assert!(Instant::now() < deadline, "drift did not settle in 60 s");
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn postmaster_ticks(&self) -> u64 {
        ticks(self.node.postmaster_pid().expect("no postmaster.pid"), true)
    }

    fn script(&self, name: &str, text: &str) -> PathBuf {
        let path = self.work.join(format!("{name}.sql"));
        crate::data::write(&path, text);
        path
    }

    /// pgbench without vacuum over the server's Unix socket into database postgres, with
    /// `-c clients -j threads -T secs`; the caller adds the scripts.
    fn pgbench_cmd(&self, clients: u32, threads: u32, secs: u32) -> Command {
        let mut c = Command::new(self.node.pg.bin("pgbench"));
        c.arg("-n")
            .arg("-h")
            .arg(&self.node.dir)
            .args(["-p", &self.node.port.to_string(), "-U", "postgres"])
            .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
            .args(["-T", &secs.to_string()])
            .env("PGDATABASE", "postgres");
        c
    }

    /// pgbench `-T secs -c clients -j 2 -f file` over the Unix socket: (tps, transactions,
    /// server CPU µs per transaction from the postmaster's reaped children's time).
    fn pgbench(&self, file: &Path, clients: u32, secs: u32) -> (f64, f64, f64) {
        let c0 = self.postmaster_ticks();
        let out = self
            .pgbench_cmd(clients, 2, secs)
            .arg("-f")
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run pgbench: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            panic!(
                "pgbench -f {} failed ({}):\n{text}\n{}",
                file.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Backends are reaped (and their time added to the postmaster's) once they exit.
        thread::sleep(Duration::from_millis(300));
        let c1 = self.postmaster_ticks();
        let find = |prefix: &str| -> f64 {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .and_then(|v| v.trim().split([' ', '/']).next()?.parse().ok())
                .unwrap_or_else(|| panic!("pgbench printed no {prefix:?}:\n{text}"))
        };
        let tps = find("tps =");
        let n = find("number of transactions actually processed:");
        if n <= 0.0 {
            panic!("pgbench processed no transactions:\n{text}");
        }
        let cpu_us = (c1 - c0) as f64 * 1e6 / clk_tck() / n;
        (tps, n, cpu_us)
    }
}
