//! `snowbench`: the benchmark of snowflake_id on every tested PostgreSQL major (issue 13).
//!
//! ```text
//! cargo run --release -p snowflake_bench -- [--pg-config P]... [--quick] [--out DIR] [--report-only] [--readme]
//! ```
//! For each install (default: /usr/bin/pg_config and target/pg18's) it starts its own server
//! through the cluster tool (library preloaded, node id 1, port 27400 + major), runs the cases,
//! writes one CSV per case into `DIR/pg<major>/`, then renders `DIR/RESULTS.md` and the charts
//! from those files and evaluates the targets (a table of data in `targets.rs`). `--quick` is a
//! smoke test of the benchmark (a few minutes, `target/bench-quick`), which assesses no target.
//! `--readme` writes a full run's per-major results into docs/benchmarks.md's marked block.

mod cases;
mod data;
mod report;
mod targets;

use cases::{Bench, Params};
use clap::Parser;
use snowflake_cluster::majors::{self, Tier};
use snowflake_cluster::{Node, Pg};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "snowbench",
    about = "Benchmark of snowflake_id on each PostgreSQL major"
)]
struct Cli {
    /// pg_config of an install to measure (repeatable) [default: those of the majors that every
    /// suite runs on, 15 and 18, where the cluster tool's table of majors places them]
    #[arg(long = "pg-config")]
    pg_config: Vec<PathBuf>,
    /// Smoke test of the benchmark: tiny runs, no target assessed [out: target/bench-quick]
    #[arg(long)]
    quick: bool,
    /// Where the CSV files, RESULTS.md and charts go [default: bench/results]
    #[arg(long)]
    out: Option<PathBuf>,
    /// First of the ports used (the server of major M listens on PORT + M)
    #[arg(long, default_value_t = 27400)]
    port: u16,
    /// Only render RESULTS.md and the charts from the CSV files already in --out
    #[arg(long)]
    report_only: bool,
    /// Also write the results of a full run into docs/benchmarks.md's results block
    #[arg(long)]
    readme: bool,
    /// Run only this case (repeatable; the instruction counts are skipped): roundtrip,
    /// profile, bulk, sustained, inserts, growth, contention, replay
    #[arg(long = "case")]
    case: Vec<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn now() -> String {
    sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

fn machine() -> Vec<(String, String)> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|x| x.1.trim().to_string())
        .unwrap_or_else(|| "?".into());
    let mem = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kb| format!("{:.0} GB", kb / 1048576.0))
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let commit = {
        let r = root();
        let r = r.to_str().unwrap_or(".");
        let hash = sh("git", &["-C", r, "rev-parse", "--short=12", "HEAD"]);
        let dirty = !sh(
            "git",
            &["-C", r, "status", "--porcelain", "--untracked-files=no"],
        )
        .is_empty();
        if dirty {
            format!("{hash} + uncommitted changes")
        } else {
            hash
        }
    };
    vec![
        ("cpu".into(), cpu),
        ("cores".into(), cores.to_string()),
        ("memory".into(), mem),
        (
            "kernel".into(),
            fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
        ("commit".into(), commit),
    ]
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where uuidv7() and gen_random_uuid() get their random bytes in this build.
fn random_source(pg: &Pg) -> String {
    let conf = sh(
        pg.pg_config.to_str().unwrap_or("pg_config"),
        &["--configure"],
    );
    if conf.contains("--with-openssl") || conf.contains("--with-ssl=openssl") {
        "OpenSSL (RAND_bytes), built --with-openssl".into()
    } else {
        "no OpenSSL in this build: pg_strong_random() opens and reads /dev/urandom on every call"
            .into()
    }
}

const SERVER: &[&str] = &[
    "snowflake_id.node_id = 1",
    "shared_buffers = 256MB",
    "synchronous_commit = off",
    "max_wal_size = 4GB",
    "jit = off",
    "max_parallel_workers_per_gather = 0",
    "autovacuum = off",
    "work_mem = '256MB'",
];

/// Runs every case on one install; returns its directory name under `out` (`pg<major>`).
fn run_major(pg: &Pg, out: &Path, p: &Params, port_base: u16) -> Result<String, String> {
    let lib = pg.pkglibdir.join("snowflake_id.so");
    if !lib.exists() || !pg.has_extension("snowflake_id") {
        return Err(format!(
            "snowflake_id is not installed into {} ({} missing): cargo pgrx install --release --pg-config {}",
            pg.version,
            lib.display(),
            pg.pg_config.display()
        ));
    }
    if !pg.has_extension("isn") {
        return Err(format!(
            "{} has no contrib extension isn (isn_weak())",
            pg.version
        ));
    }
    let name = format!("pg{}", pg.major);
    let dir = out.join(&name);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let nodes = root().join("target").join("bench-nodes");
    fs::create_dir_all(&nodes).map_err(|e| e.to_string())?;
    let work = nodes.join(format!("work-{name}"));
    fs::create_dir_all(&work).map_err(|e| e.to_string())?;

    let t0 = Instant::now();
    let start = now();
    let load_before = loadavg();
    let port = port_base + pg.major as u16;
    println!("== {} ({}): server on port {port}", name, pg.version);
    let node = Node::init(pg, &nodes, &format!("bench-{name}"), port, SERVER);
    node.start();
    let b = Bench {
        node: &node,
        p,
        major: pg.major,
        work,
    };
    b.setup();
    let mut samples = Vec::new();
    type Case<'a> = (&'a str, Box<dyn FnMut() -> Vec<data::M> + 'a>);
    let samples_ref = &mut samples;
    let cases: Vec<Case> = vec![
        ("roundtrip", Box::new(|| b.roundtrip())),
        ("profile", Box::new(|| b.profile())),
        ("bulk", Box::new(|| b.bulk())),
        ("sustained", Box::new(|| b.sustained(samples_ref))),
        ("inserts", Box::new(|| b.inserts())),
        ("growth", Box::new(|| b.growth())),
        ("contention", Box::new(|| b.contention())),
        ("replay", Box::new(|| b.replay())),
    ];
    for (case, mut run) in cases {
        if !p.only.is_empty() && !p.only.iter().any(|c| c == case) {
            continue;
        }
        let tc = Instant::now();
        println!("== {name}: {case}");
        let rows = run();
        if rows.is_empty() {
            return Err(format!("{name}: case {case} produced no data"));
        }
        data::write_case(&dir, case, &rows);
        println!("   ({:.0} s)", tc.elapsed().as_secs_f64());
    }
    data::write_samples(&dir, &samples);
    let version: String = node
        .connect()
        .query_one("SELECT version()", &[])
        .map(|r| r.get(0))
        .map_err(|e| e.to_string())?;
    node.stop();
    if p.only.is_empty() {
        // A single-user backend needs the server stopped.
        let tc = Instant::now();
        println!("== {name}: instructions (callgrind, postgres --single)");
        let rows = b.instructions();
        data::write_case(&dir, "instructions", &rows);
        println!("   ({:.0} s)", tc.elapsed().as_secs_f64());
    }

    let mut meta: Vec<(String, String)> = vec![
        ("major".into(), pg.major.to_string()),
        ("version".into(), version),
        ("start".into(), start),
        ("end".into(), now()),
        ("minutes".into(), format!("{:.1}", t0.elapsed().as_secs_f64() / 60.0)),
        ("load_before".into(), load_before),
        ("load_after".into(), loadavg()),
        ("random_source".into(), random_source(pg)),
        ("server".into(), SERVER.join(", ")),
        ("quick".into(), p.quick.to_string()),
        ("rt_secs".into(), p.rt_secs.to_string()),
        ("ins_secs".into(), p.ins_secs.to_string()),
        ("il_secs".into(), p.il_secs.to_string()),
        (
            "params".into(),
            format!(
                "round trip {} pairs of -T {}, interleaved -T {} per reference; bulk {} pairs of {} IDs; sustained {}; inserts {} pairs of -T {}; \
                 growth {} rows in batches of {}; contention {} runs of {} IDs per backend, duplicate check {} per backend; \
                 instructions {} and {} statements, {} and {} calls",
                p.rt_pairs,
                p.rt_secs,
                p.il_secs,
                p.bulk_pairs,
                p.bulk_n,
                p.sustained
                    .iter()
                    .map(|s| format!("{} ({} IDs)", s.0, s.2))
                    .collect::<Vec<_>>()
                    .join(" / "),
                p.ins_pairs,
                p.ins_secs,
                p.grow_rows,
                p.grow_batch,
                p.cont_reps,
                p.cont_n,
                p.dup_n,
                p.ir_stmts,
                2 * p.ir_stmts,
                p.ir_calls,
                2 * p.ir_calls
            ),
        ),
    ];
    meta.extend(machine());
    data::write_meta(&dir, &meta);
    println!(
        "== {name}: done in {:.1} min",
        t0.elapsed().as_secs_f64() / 60.0
    );
    Ok(name)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = root();
    let out = cli.out.clone().unwrap_or_else(|| {
        if cli.quick {
            root.join("target").join("bench-quick")
        } else {
            root.join("bench").join("results")
        }
    });
    if let Err(e) = fs::create_dir_all(&out) {
        eprintln!("cannot create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let p = Params::new(cli.quick, cli.case.clone());
    let t0 = Instant::now();
    let mut majors = Vec::new();
    if cli.report_only {
        let mut v: Vec<String> = fs::read_dir(&out)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("meta.csv").exists())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        majors = v;
    } else {
        let configs = if cli.pg_config.is_empty() {
            majors::of_tier(Tier::Full)
                .filter_map(|m| majors::pg_config(&root, m.major))
                .collect()
        } else {
            cli.pg_config.clone()
        };
        for c in &configs {
            let pg = match Pg::from_pg_config(c) {
                Ok(pg) => pg,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match run_major(&pg, &out, &p, cli.port) {
                Ok(name) => majors.push(name),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    if majors.is_empty() {
        eprintln!("error: no results in {}", out.display());
        return ExitCode::FAILURE;
    }
    if !cli.case.is_empty() {
        // Some cases only: their figures were printed and written; no report, no targets.
        println!("== CSV files in {}", out.display());
        return ExitCode::SUCCESS;
    }

    for m in &majors {
        if let Err(e) = report::charts(&out.join(m)) {
            eprintln!("warning: charts of {m}: {e}");
        }
    }
    let mut ok = true;
    let md = report::results_md(&out, &majors, cli.quick);
    data::write(&out.join("RESULTS.md"), &md);
    if cli.readme {
        let any_quick = majors
            .iter()
            .any(|m| data::meta_get(&data::read_meta(&out.join(m)), "quick") == "true");
        // Links in the block are relative to docs/, where it lives.
        let rel = out
            .strip_prefix(&root)
            .map(|p| format!("../{}", p.display()))
            .unwrap_or_else(|_| out.display().to_string());
        let path = root.join("docs").join("benchmarks.md");
        let done = if any_quick {
            Err("quick-mode figures do not go into docs/benchmarks.md".to_string())
        } else {
            fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| report::splice_readme(&t, &report::readme_block(&out, &rel, &majors)))
                .map(|t| data::write(&path, &t))
        };
        match done {
            Ok(()) => println!("== docs/benchmarks.md: results block rewritten"),
            Err(e) => {
                eprintln!("error: docs/benchmarks.md not written: {e}");
                ok = false;
            }
        }
    }
    println!("\n== targets");
    for m in &majors {
        let dir = out.join(m);
        let ms = data::read_all(&dir);
        let meta = data::read_meta(&dir);
        let quick = data::meta_get(&meta, "quick") == "true";
        let major: u32 = data::meta_get(&meta, "major").parse().unwrap_or(0);
        for case in data::CASES {
            if !ms.iter().any(|x| x.case == *case) {
                eprintln!("error: {m}: no data for case {case}");
                ok = false;
            }
        }
        let d = targets::derive(&ms);
        for v in targets::evaluate(major, &d) {
            let verdict = if quick {
                "not assessed in quick mode"
            } else if v.met {
                "met"
            } else {
                "NOT MET"
            };
            println!(
                "   {m}  {:<72} {:>10.3} {} {:<6} {verdict}",
                v.target.name,
                v.value,
                v.target.cmp.sign(),
                v.target.threshold
            );
            // A figure that could not be computed means the benchmark broke, except the
            // sustained rate, which has none when the load never reached the drift bound.
            if !v.value.is_finite() && v.target.metric != "sustained.share_at_bound" {
                eprintln!("error: {m}: no figure for {}", v.target.metric);
                ok = false;
            }
            if !quick && !v.met {
                ok = false;
            }
        }
    }
    println!(
        "== results in {} (RESULTS.md, pg*/ CSV files and charts); {:.1} min in all",
        out.display(),
        t0.elapsed().as_secs_f64() / 60.0
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
