//! The cases, run against one server; each returns its measurements.

use crate::data::{Sample, M};
use postgres::Client;
use snowflake_cluster::Node;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

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

    /// 1. Round trip: `SELECT <generator>;` by pgbench, 8 clients, in pairs (the generators
    ///    back to back, their order rotated from pair to pair).
    pub fn roundtrip(&self) -> Vec<M> {
        let gens = self.gens(RT_GENS);
        let mut out = Vec::new();
        for pair in 1..=self.p.rt_pairs {
            let mut line = format!("   pair {pair}:");
            for k in 0..gens.len() {
                let g = gens[(k + pair as usize) % gens.len()];
                let f = self.script(&format!("rt_{}", g.id), &format!("SELECT {};\n", g.expr));
                let (tps, _, cpu) = self.pgbench(&f, 8, self.p.rt_secs);
                out.push(M::new("roundtrip", g.id, pair, "tps", tps));
                out.push(M::new("roundtrip", g.id, pair, "cpu_us", cpu));
                line.push_str(&format!(" {} {tps:.0}", g.id));
            }
            println!("{line}");
        }
        // Interleaved: one client alternating at random between snowflake_nextval() and a
        // reference within one run, so the VM's drift falls on both alike; the ratio of their
        // mean round-trip latencies (from pgbench's per-transaction log) is a rate ratio.
        let sf = self.script("rt_snowflake", "SELECT snowflake_nextval();\n");
        for g in gens.iter().filter(|g| g.id != "snowflake") {
            let f = self.script(&format!("rt_{}", g.id), &format!("SELECT {};\n", g.expr));
            let lat = self.interleaved(&[&sf, &f], self.p.il_secs);
            out.push(M::new("roundtrip", g.id, 1, "il_us_snowflake", lat[0]));
            out.push(M::new("roundtrip", g.id, 1, "il_us", lat[1]));
            println!(
                "   interleaved, 1 client: snowflake {:.2} µs, {} {:.2} µs per round trip",
                lat[0], g.id, lat[1]
            );
        }
        out
    }

    /// Mean latency (µs) of each script when one pgbench client picks among `scripts` at random
    /// (equal weights) for `secs`, from pgbench's per-transaction log (`-l`).
    fn interleaved(&self, scripts: &[&Path], secs: u32) -> Vec<f64> {
        let prefix = self.work.join("il_log");
        for e in std::fs::read_dir(&self.work)
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with("il_log.") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let mut cmd = self.pgbench_cmd(1, 1, secs);
        cmd.arg("-l")
            .arg(format!("--log-prefix={}", prefix.display()));
        for s in scripts {
            cmd.arg("-f").arg(format!("{}@1", s.display()));
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run pgbench: {e}"));
        if !out.status.success() {
            panic!(
                "interleaved pgbench failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Log lines: client_id transaction_no time_us script_no epoch epoch_us [...].
        let (mut sum, mut n) = (vec![0.0; scripts.len()], vec![0u64; scripts.len()]);
        for e in std::fs::read_dir(&self.work)
            .into_iter()
            .flatten()
            .flatten()
        {
            if !e.file_name().to_string_lossy().starts_with("il_log.") {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).expect("pgbench log");
            for l in text.lines() {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (Some(us), Some(script)) = (
                    f.get(2).and_then(|v| v.parse::<f64>().ok()),
                    f.get(3).and_then(|v| v.parse::<usize>().ok()),
                ) else {
                    continue;
                };
                if script < scripts.len() {
                    sum[script] += us;
                    n[script] += 1;
                }
            }
        }
        assert!(
            n.iter().all(|&k| k > 100),
            "pgbench logged too few transactions per script: {n:?}"
        );
        sum.iter().zip(&n).map(|(s, k)| s / *k as f64).collect()
    }

    /// 2. Bulk: `SELECT count(x) FROM (SELECT <generator> AS x FROM generate_series(1, N)) s`
    ///    in a fresh backend; its CPU time from `/proc/<pid>/stat`, in pairs with the constant.
    pub fn bulk(&self) -> Vec<M> {
        let gens = self.gens(&[
            "select1",
            "snowflake",
            "isn_weak",
            "noop_pgrx",
            "random",
            "uuidv7",
        ]);
        let n = self.p.bulk_n;
        let mut out = Vec::new();
        let mut admin = self.client();
        for pair in 1..=self.p.bulk_pairs {
            let mut line = format!("   pair {pair}: backend CPU ms");
            for k in 0..gens.len() {
                let g = gens[(k + pair as usize) % gens.len()];
                if g.id == "snowflake" {
                    self.settle(&mut admin);
                }
                let waits0 = q_i64(&mut admin, "SELECT drift_waits FROM snowflake_stats()");
                let mut c = self.client();
                let pid = c
                    .query_one("SELECT pg_backend_pid()", &[])
                    .expect("pg_backend_pid()")
                    .get::<_, i32>(0);
                let sql = format!(
                    "SELECT count(x) FROM (SELECT {} AS x FROM generate_series(1, {n})) s",
                    g.expr
                );
                let t0 = ticks(pid, false);
                let start = Instant::now();
                let got = q_i64(&mut c, &sql);
                let wall = start.elapsed().as_secs_f64() * 1e3;
                let t1 = ticks(pid, false);
                assert_eq!(got, n, "{sql} counted {got}");
                let cpu_ms = (t1 - t0) as f64 * 1e3 / clk_tck();
                out.push(M::new("bulk", g.id, pair, "ids", n as f64));
                out.push(M::new("bulk", g.id, pair, "cpu_ms", cpu_ms));
                out.push(M::new("bulk", g.id, pair, "wall_ms", wall));
                if g.id == "snowflake" {
                    let waits = q_i64(&mut admin, "SELECT drift_waits FROM snowflake_stats()");
                    out.push(M::new(
                        "bulk",
                        g.id,
                        pair,
                        "drift_waits",
                        (waits - waits0) as f64,
                    ));
                }
                line.push_str(&format!(" {} {cpu_ms:.0}", g.id));
            }
            println!("{line}");
        }
        out
    }

    fn set_drift_bound(&self, c: &mut Client, bound: Option<u32>) {
        match bound {
            Some(b) => exec(
                c,
                &format!("ALTER SYSTEM SET snowflake_id.max_drift_ms = {b}"),
            ),
            None => exec(c, "ALTER SYSTEM RESET snowflake_id.max_drift_ms"),
        }
        exec(c, "SELECT pg_reload_conf()");
        thread::sleep(Duration::from_millis(500));
    }

    /// 3. Sustained: many IDs from 1 or 2 backends at once, `snowflake_stats()` sampled every
    ///    50 ms; the rate once the newest ID leads the clock by the whole drift allowance.
    pub fn sustained(&self, samples: &mut Vec<Sample>) -> Vec<M> {
        let mut out = Vec::new();
        let mut admin = self.client();
        for (i, (name, backends, ids, bound)) in self.p.sustained.iter().enumerate() {
            let rep = i as u32 + 1;
            self.set_drift_bound(&mut admin, *bound);
            let bound_ms = admin
                .query_one(
                    "SELECT setting::bigint FROM pg_settings WHERE name = 'snowflake_id.max_drift_ms'",
                    &[],
                )
                .expect("max_drift_ms")
                .get::<_, i64>(0);
            self.settle(&mut admin);
            let stop = AtomicBool::new(false);
            let per_backend = ids / *backends as i64 / 10;
            let mut run_samples = Vec::new();
            thread::scope(|s| {
                let poller = s.spawn(|| {
                    let mut c = self.client();
                    let mut v = Vec::new();
                    loop {
                        let r = c
                            .query_one(
                                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8, \
                                 issued, drift_ms, drift_waits FROM snowflake_stats()",
                                &[],
                            )
                            .expect("snowflake_stats()");
                        v.push(Sample {
                            run: name.to_string(),
                            t_ms: r.get(0),
                            issued: r.get(1),
                            drift_ms: r.get(2),
                            drift_waits: r.get(3),
                        });
                        if stop.load(Ordering::Relaxed) {
                            return v;
                        }
                        thread::sleep(Duration::from_millis(50));
                    }
                });
                thread::sleep(Duration::from_millis(300));
                let calls = ["snowflake_nextval()"; 10].join(", ");
                let sql = format!(
                    "SELECT count(greatest({calls})) FROM generate_series(1, {per_backend})"
                );
                let workers: Vec<_> = (0..*backends)
                    .map(|_| {
                        let sql = sql.clone();
                        s.spawn(move || {
                            let mut c = self.client();
                            q_i64(&mut c, &sql)
                        })
                    })
                    .collect();
                for w in workers {
                    assert_eq!(w.join().expect("sustained worker"), per_backend);
                }
                thread::sleep(Duration::from_millis(300));
                stop.store(true, Ordering::Relaxed);
                run_samples = poller.join().expect("poller");
            });
            let (at_ids, at_ms, tot_ids, tot_ms) = phases(&run_samples, bound_ms);
            let waits = run_samples.last().map_or(0, |s| s.drift_waits)
                - run_samples.first().map_or(0, |s| s.drift_waits);
            let rate_at = if at_ms > 0.0 {
                at_ids / at_ms
            } else {
                f64::NAN
            };
            for (metric, v) in [
                ("backends", *backends as f64),
                ("ids", *ids as f64),
                ("bound_ms", bound_ms as f64),
                ("at_bound_ids", at_ids),
                ("at_bound_ms", at_ms),
                ("rate_at_bound", rate_at),
                ("rate_total", tot_ids / tot_ms),
                ("drift_waits", waits as f64),
            ] {
                out.push(M::new("sustained", name, rep, metric, v));
            }
            println!(
                "   {name} (bound {bound_ms} ms): {:.0} IDs/ms over the run, {} at the bound",
                tot_ids / tot_ms,
                if rate_at.is_finite() {
                    format!("{rate_at:.0} IDs/ms")
                } else {
                    "bound not reached".into()
                }
            );
            samples.extend(run_samples);
        }
        self.set_drift_bound(&mut admin, None);
        out
    }

    /// 4. Inserts: single-row `INSERT` by pgbench, 8 clients, key types in pairs.
    pub fn inserts(&self) -> Vec<M> {
        let keys = self.keys();
        let mut out = Vec::new();
        let mut admin = self.client();
        for pair in 1..=self.p.ins_pairs {
            let mut line = format!("   pair {pair}:");
            for k in 0..keys.len() {
                let key = keys[(k + pair as usize) % keys.len()];
                exec(&mut admin, &format!("TRUNCATE bench_audit_{key}"));
                exec(&mut admin, "CHECKPOINT");
                if key == "sf" {
                    self.settle(&mut admin);
                }
                let f = self.script(
                    &format!("ins_{key}"),
                    &format!(
                        "\\set uid random(1, 100000)\nINSERT INTO bench_audit_{key} (user_id, action, detail) \
                         VALUES (:uid, 'update', 'email changed');\n"
                    ),
                );
                let (tps, _, cpu) = self.pgbench(&f, 8, self.p.ins_secs);
                let rows = q_i64(
                    &mut admin,
                    &format!("SELECT count(*) FROM bench_audit_{key}"),
                );
                let idx = q_i64(
                    &mut admin,
                    &format!("SELECT pg_relation_size('bench_audit_{key}_pkey')"),
                );
                out.push(M::new("inserts", key, pair, "tps", tps));
                out.push(M::new("inserts", key, pair, "cpu_us", cpu));
                out.push(M::new("inserts", key, pair, "rows", rows as f64));
                out.push(M::new(
                    "inserts",
                    key,
                    pair,
                    "pkey_bytes_per_row",
                    idx as f64 / rows.max(1) as f64,
                ));
                line.push_str(&format!(" {key} {tps:.0} tps {cpu:.1} µs/row"));
            }
            println!("{line}");
        }
        out
    }

    /// 4b. Growth: `INSERT ... SELECT` batches into each key type's table, interleaved; the
    ///     rate of each batch and the primary-key index size after it.
    pub fn growth(&self) -> Vec<M> {
        let keys = self.keys();
        let mut out = Vec::new();
        let mut c = self.client();
        let batches = (self.p.grow_rows / self.p.grow_batch).max(1);
        for b in 1..=batches as u32 {
            let mut line = format!("   batch {b}/{batches}:");
            for key in &keys {
                if *key == "sf" {
                    self.settle(&mut c);
                }
                let sql = format!(
                    "INSERT INTO bench_grow_{key} (user_id, action, detail) SELECT g % 100000, \
                     'update', 'email changed' FROM generate_series(1, {}) g",
                    self.p.grow_batch
                );
                let t0 = Instant::now();
                exec(&mut c, &sql);
                let rate = self.p.grow_batch as f64 / t0.elapsed().as_secs_f64();
                let pkey = q_i64(
                    &mut c,
                    &format!("SELECT pg_relation_size('bench_grow_{key}_pkey')"),
                );
                let heap = q_i64(
                    &mut c,
                    &format!("SELECT pg_relation_size('bench_grow_{key}')"),
                );
                for (metric, v) in [
                    ("rows", (b as i64 * self.p.grow_batch) as f64),
                    ("rows_per_s", rate),
                    ("pkey_bytes", pkey as f64),
                    ("heap_bytes", heap as f64),
                ] {
                    out.push(M::new("growth", key, b, metric, v));
                }
                line.push_str(&format!(" {key} {rate:.0} rows/s"));
            }
            println!("{line}");
        }
        out
    }

    /// 5. Contention: 2 and 8 backends at once, aggregate rate; then duplicates among the IDs
    ///    that 2 and 8 backends insert at once.
    pub fn contention(&self) -> Vec<M> {
        let mut out = Vec::new();
        let mut admin = self.client();
        let at_once = |backends: u32, sql: &str| -> f64 {
            let barrier = Barrier::new(backends as usize + 1);
            thread::scope(|s| {
                let ws: Vec<_> = (0..backends)
                    .map(|_| {
                        s.spawn(|| {
                            let mut c = self.client();
                            barrier.wait();
                            c.batch_execute(sql).map_err(sql_err(sql))
                        })
                    })
                    .collect();
                barrier.wait();
                let t0 = Instant::now();
                for w in ws {
                    w.join().expect("worker").unwrap_or_else(|e| panic!("{e}"));
                }
                t0.elapsed().as_secs_f64()
            })
        };
        for rep in 1..=self.p.cont_reps {
            for backends in [2u32, 8] {
                for g in self.gens(&["select1", "snowflake"]) {
                    self.settle(&mut admin);
                    let n = self.p.cont_n;
                    let secs = at_once(
                        backends,
                        &format!(
                            "SELECT count(x) FROM (SELECT {} AS x FROM generate_series(1, {n})) s",
                            g.expr
                        ),
                    );
                    let rate = (n * backends as i64) as f64 / secs;
                    let metric = format!("ids_per_s_{backends}");
                    out.push(M::new("contention", g.id, rep, &metric, rate));
                    println!("   run {rep}: {backends} backends {} {rate:.0} IDs/s", g.id);
                }
            }
        }
        for backends in [2u32, 8] {
            self.settle(&mut admin);
            exec(&mut admin, "TRUNCATE bench_dup");
            at_once(
                backends,
                &format!(
                    "INSERT INTO bench_dup SELECT snowflake_nextval() FROM generate_series(1, {})",
                    self.p.dup_n
                ),
            );
            let r = admin
                .query_one(
                    "SELECT count(*), count(*) - count(DISTINCT v) FROM bench_dup",
                    &[],
                )
                .expect("duplicate count");
            let (rows, dups): (i64, i64) = (r.get(0), r.get(1));
            assert_eq!(rows, self.p.dup_n * backends as i64, "rows in bench_dup");
            let (m_rows, m_dups) = (
                format!("dup_rows_{backends}"),
                format!("duplicates_{backends}"),
            );
            out.push(M::new("contention", "snowflake", 1, &m_rows, rows as f64));
            out.push(M::new("contention", "snowflake", 1, &m_dups, dups as f64));
            println!("   {backends} backends: {rows} IDs, {dups} duplicates");
        }
        exec(&mut admin, "TRUNCATE bench_dup");
        out
    }
}

/// Where a profile's samples fall: (bucket, command, shared object; `None` matches any).
const PROFILE_BUCKETS: &[(&str, Option<&str>, Option<&str>)] = &[
    ("server_kernel", Some("postgres"), Some("[kernel.kallsyms]")),
    ("server_postgres", Some("postgres"), Some("postgres")),
    ("server_libc", Some("postgres"), Some("libc.so.6")),
    ("server_vdso", Some("postgres"), Some("[vdso]")),
    (
        "server_snowflake_id",
        Some("postgres"),
        Some("snowflake_id.so"),
    ),
    ("server_isn", Some("postgres"), Some("isn.so")),
    ("client", Some("pgbench"), None),
    ("other", None, None),
];

impl Bench<'_> {
    /// 1b. Profile of the round trip: `perf record -a` (cpu-clock sampling: a VM may have no
    ///     hardware counters) while pgbench runs `SELECT <generator>;` as in case 1; the share
    ///     of the samples in the kernel, PostgreSQL, the extension's library and the client.
    pub fn profile(&self) -> Vec<M> {
        let mut out = Vec::new();
        for g in self.gens(&["snowflake", "noop_pgrx", "isn_weak"]) {
            let f = self.script(&format!("prof_{}", g.id), &format!("SELECT {};\n", g.expr));
            let data = self.work.join(format!("prof_{}.perf", g.id));
            let secs = self.p.prof_secs;
            let mut bench = self
                .pgbench_cmd(8, 2, secs + 2)
                .arg("-f")
                .arg(&f)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run pgbench: {e}"));
            // Sample the steady state: the clients are connected after the first second.
            thread::sleep(Duration::from_secs(1));
            let rec = Command::new("perf")
                .args(["record", "-e", "cpu-clock", "-F", "999", "-a", "-q", "-o"])
                .arg(&data)
                .args(["--", "sleep", &secs.to_string()])
                .output()
                .unwrap_or_else(|e| panic!("cannot run perf (apt-get install linux-perf): {e}"));
            let status = bench.wait().expect("pgbench");
            assert!(status.success(), "pgbench -f {} failed", f.display());
            if !rec.status.success() {
                panic!(
                    "perf record failed: {}",
                    String::from_utf8_lossy(&rec.stderr)
                );
            }
            let rep = Command::new("perf")
                .args([
                    "report",
                    "--no-children",
                    "-g",
                    "none",
                    "--sort",
                    "comm,dso",
                ])
                .args(["--stdio", "--percent-limit", "0", "-i"])
                .arg(&data)
                .output()
                .expect("perf report");
            let text = String::from_utf8_lossy(&rep.stdout);
            let mut shares = vec![0.0; PROFILE_BUCKETS.len()];
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let mut it = line.split_whitespace();
                let (Some(pct), Some(comm), Some(dso)) = (it.next(), it.next(), it.next()) else {
                    continue;
                };
                let Ok(pct) = pct.trim_end_matches('%').parse::<f64>() else {
                    continue;
                };
                let i = PROFILE_BUCKETS
                    .iter()
                    .position(|(_, c, d)| c.is_none_or(|c| comm == c) && d.is_none_or(|d| dso == d))
                    .expect("the last bucket takes any sample");
                shares[i] += pct;
            }
            let _ = std::fs::remove_file(&data);
            let mut line = format!("   {}:", g.id);
            for ((bucket, _, _), v) in PROFILE_BUCKETS.iter().zip(&shares) {
                out.push(M::new("profile", g.id, 1, &format!("pct_{bucket}"), *v));
                if *v > 0.0 {
                    line.push_str(&format!(" {bucket} {v:.2}%"));
                }
            }
            println!("{line}");
        }
        out
    }

    /// 6. Instructions, exactly repeatable where time is not: callgrind on a single-user backend
    ///    (`postgres --single`, so the server must be stopped) running the work N and 2N times;
    ///    (Ir(2N) - Ir(N)) / N is the cost of one more statement (`SELECT <generator>;`: parse,
    ///    plan, execute, print, no client protocol) or of one more call in a bulk statement.
    ///    User-space instructions only: system calls (socket I/O, /dev/urandom) are not counted.
    pub fn instructions(&self) -> Vec<M> {
        let mut out = Vec::new();
        for g in self.gens(&self.p.ir_gens) {
            let n = self.p.ir_stmts;
            let stmt = format!("SELECT {};\n", g.expr);
            let a = self.callgrind(&format!("ir_{}_stmt_1", g.id), &stmt.repeat(n));
            let b = self.callgrind(&format!("ir_{}_stmt_2", g.id), &stmt.repeat(2 * n));
            let per_stmt = (b as f64 - a as f64) / n as f64;
            let n = self.p.ir_calls;
            let bulk = |n: i64| {
                format!(
                    "SELECT count(x) FROM (SELECT {} AS x FROM generate_series(1, {n})) s;\n",
                    g.expr
                )
            };
            let a = self.callgrind(&format!("ir_{}_bulk_1", g.id), &bulk(n));
            let b = self.callgrind(&format!("ir_{}_bulk_2", g.id), &bulk(2 * n));
            let per_call = (b as f64 - a as f64) / n as f64;
            out.push(M::new("instructions", g.id, 1, "ir_per_stmt", per_stmt));
            out.push(M::new("instructions", g.id, 1, "ir_per_call", per_call));
            println!(
                "   {}: {per_stmt:.1} instructions per statement, {per_call:.1} per call",
                g.id
            );
        }
        out
    }

    /// Instructions (Ir) that a single-user backend executes for the statements in `sql`.
    fn callgrind(&self, name: &str, sql: &str) -> u64 {
        let file = self.script(name, sql);
        let stdin = std::fs::File::open(&file)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", file.display()));
        let out = snowflake_cluster::as_postgres("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(self.node.pg.bin("postgres"))
            .arg("--single")
            .arg("-D")
            .arg(self.node.data())
            .arg("postgres")
            .stdin(stdin)
            .output()
            .unwrap_or_else(|e| panic!("cannot run valgrind (apt-get install valgrind): {e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        // A single-user backend reports a failed statement on stderr and still exits 0.
        if !out.status.success() || err.contains("ERROR:  ") {
            panic!(
                "postgres --single under callgrind failed ({}) on {}:\n{stdout}\n{err}",
                out.status,
                file.display()
            );
        }
        err.lines()
            .find_map(|l| l.split_once("Collected :").map(|x| x.1.trim().to_string()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("callgrind reported no instruction count:\n{err}"))
    }
}

/// Splits a sustained run's samples: (IDs and ms of the intervals spent at the drift bound,
/// IDs and ms of all intervals in which IDs were issued).
pub fn phases(s: &[Sample], bound_ms: i64) -> (f64, f64, f64, f64) {
    let (mut at_ids, mut at_ms, mut ids, mut ms) = (0.0, 0.0, 0.0, 0.0);
    for w in s.windows(2) {
        let di = (w[1].issued - w[0].issued) as f64;
        let dt = w[1].t_ms - w[0].t_ms;
        if di <= 0.0 {
            continue;
        }
        ids += di;
        ms += dt;
        if w[0].drift_ms >= bound_ms - 10 && w[1].drift_ms >= bound_ms - 10 {
            at_ids += di;
            at_ms += dt;
        }
    }
    (at_ids, at_ms, ids, ms)
}
