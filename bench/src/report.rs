//! RESULTS.md and the charts, rendered from the CSV files of each major's directory.

use crate::cases::{gen, key_label, GENS, KEYS};
use crate::data::{self, median, meta_get, series, Sample, M};
use crate::targets::{derive, evaluate};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

fn med(ms: &[M], case: &str, variant: &str, metric: &str) -> f64 {
    median(
        &series(ms, case, variant, metric)
            .into_iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
    )
}

fn f(v: f64, prec: usize) -> String {
    // Rounded to zero, a tiny negative figure would print as "-0.0".
    let v = if v.abs() < 0.5 * 10f64.powi(-(prec as i32)) {
        0.0
    } else {
        v
    };
    if v.is_finite() {
        format!("{v:.prec$}")
    } else {
        "–".into()
    }
}

fn fmt_int(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The targets of one major with their figures and verdicts, as a Markdown table.
fn targets_table(w: &mut String, major: u32, d: &BTreeMap<String, f64>, quick: bool) {
    let _ = writeln!(w, "| target | measured | target | |\n|---|---:|---:|---|");
    for v in evaluate(major, d) {
        let verdict = if quick {
            "not assessed in quick mode"
        } else if v.met {
            "**met**"
        } else {
            "**not met**"
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} {} | {verdict} |",
            v.target.name,
            f(v.value, 3),
            v.target.cmp.sign(),
            v.target.threshold
        );
    }
}

/// The section of one major: `dir` holds its CSV files; `rel` is its path from RESULTS.md.
pub fn major_section(dir: &Path, rel: &str, quick: bool) -> String {
    let meta = data::read_meta(dir);
    let ms = data::read_all(dir);
    let major: u32 = meta_get(&meta, "major").parse().unwrap_or(0);
    let d = derive(&ms);
    let m = |k: &str| meta_get(&meta, k).to_string();
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "## PostgreSQL {major}\n");
    let _ = writeln!(
        w,
        "| | |\n|---|---|\n| date | {} to {} ({} min){} |\n| machine | {}, {} cores, {} RAM, Linux {} |\n\
         | PostgreSQL | {} |\n| random source of uuidv7() / gen_random_uuid() | {} |\n\
         | load average before / after | {} / {} |\n| server | {} |\n| sizes | {} |\n",
        m("start"),
        m("end"),
        m("minutes"),
        if quick { ", QUICK mode: a smoke test of the benchmark, figures not meaningful" } else { "" },
        m("cpu"),
        m("cores"),
        m("memory"),
        m("kernel"),
        m("version"),
        m("random_source"),
        m("load_before"),
        m("load_after"),
        m("server"),
        m("params"),
    );

    let _ = writeln!(w, "### Targets\n");
    targets_table(w, major, &d, quick);

    let pairs = series(&ms, "roundtrip", "snowflake", "tps").len();
    let _ = writeln!(
        w,
        "\n### Round trip: `SELECT <generator>;`, pgbench -c 8 -j 2 -T {}, {pairs} pairs\n\n\
         Each pair runs every generator back to back (order rotated); ratios are taken within a pair, \
         the figure is their median. Server CPU: user + system time of the backends per transaction.\n\n\
         Interleaved: one client picking `snowflake_nextval()` or the reference at random in one \
         {}-second run (pgbench's transaction log), so the VM's drift falls on both alike: the reference's \
         mean round-trip time over snowflake_nextval()'s.\n\n\
         | generator | median tps | median server CPU µs/call | snowflake / it, tps | it / snowflake, CPU per call | \
         interleaved, 1 client: µs per round trip | snowflake / it, interleaved |\n\
         |---|---:|---:|---:|---:|---:|---:|",
        m("rt_secs"),
        m("il_secs")
    );
    for g in GENS {
        let tps = med(&ms, "roundtrip", g.id, "tps");
        if !tps.is_finite() {
            continue;
        }
        let il = |k: &str| d.get(&format!("{k}{}", g.id)).copied().unwrap_or(f64::NAN);
        let (r, c, us, i) = if g.id == "snowflake" {
            let us: Vec<f64> = ms
                .iter()
                .filter(|x| x.case == "roundtrip" && x.metric == "il_us_snowflake")
                .map(|x| x.value)
                .collect();
            (
                String::new(),
                String::new(),
                format!("{} (median of its runs)", f(median(&us), 1)),
                String::new(),
            )
        } else {
            (
                f(il("rt.tps.snowflake/"), 3),
                f(il("rt.cpu.snowflake/"), 3),
                f(med(&ms, "roundtrip", g.id, "il_us"), 1),
                f(il("rt.il.snowflake/"), 3),
            )
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {r} | {c} | {us} | {i} |",
            g.label,
            fmt_int(tps),
            f(med(&ms, "roundtrip", g.id, "cpu_us"), 1)
        );
    }

    if let Some(v) = d.get("rt.tps.noop_pgrx/isn_weak") {
        let _ = writeln!(
            w,
            "\nThe call wrapper alone: no-op `#[pg_extern]` / `isn_weak()`, tps (paired median): {}.",
            f(*v, 3)
        );
    }

    if ms.iter().any(|x| x.case == "profile") {
        let _ = writeln!(
            w,
            "\n### Profile of the round trip: `perf record -a -e cpu-clock` during pgbench (as above)\n\n\
             Share of all CPU samples of the machine, by process and shared object. The server's \
             kernel time is the socket I/O and scheduling of each round trip.\n\n\
             | generator | server: kernel | server: postgres | server: libc | server: vdso | \
             server: snowflake_id.so | server: isn.so | client (pgbench) | other |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for g in GENS {
            let v = |b: &str| med(&ms, "profile", g.id, &format!("pct_{b}"));
            if !v("server_postgres").is_finite() {
                continue;
            }
            let cells: Vec<String> = [
                "server_kernel",
                "server_postgres",
                "server_libc",
                "server_vdso",
                "server_snowflake_id",
                "server_isn",
                "client",
                "other",
            ]
            .iter()
            .map(|b| format!("{}%", f(v(b), 2)))
            .collect();
            let _ = writeln!(w, "| {} | {} |", g.label, cells.join(" | "));
        }
    }

    let n = med(&ms, "bulk", "select1", "ids");
    let waits: f64 = series(&ms, "bulk", "snowflake", "drift_waits")
        .iter()
        .map(|x| x.1)
        .sum();
    let _ = writeln!(
        w,
        "\n### Bulk: `SELECT count(x) FROM (SELECT <generator> AS x FROM generate_series(1, {})) s`\n\n\
         Backend CPU from `/proc/<pid>/stat` (utime + stime, {} ticks/s) around the statement; net = minus the \
         constant `1` of the same pair, per value; median over {} pairs. Drift waits of snowflake_nextval() \
         over these runs: {waits}.\n\n\
         | generator | median backend CPU ms | median wall ms | net CPU ns per value |\n|---|---:|---:|---:|",
        n,
        crate::cases::clk_tck(),
        series(&ms, "bulk", "select1", "cpu_ms").len()
    );
    for g in GENS {
        let cpu = med(&ms, "bulk", g.id, "cpu_ms");
        if !cpu.is_finite() {
            continue;
        }
        let net = d
            .get(&format!("bulk.net_ns.{}", g.id))
            .map_or("(baseline)".into(), |v| f(*v, 1));
        let _ = writeln!(
            w,
            "| {} | {} | {} | {net} |",
            if g.id == "select1" {
                "the constant 1"
            } else {
                g.label
            },
            f(cpu, 0),
            f(med(&ms, "bulk", g.id, "wall_ms"), 0)
        );
    }

    let _ = writeln!(
        w,
        "\n### Sustained: many IDs at once, `snowflake_stats()` sampled every 50 ms\n\n\
         `SELECT count(greatest(<10 calls>)) FROM generate_series(...)` in each backend. At the bound: the \
         intervals in which the newest ID led the clock by the whole drift allowance (within 10 ms).\n\n\
         | run | backends | IDs | max_drift_ms | IDs/ms over the run | IDs/ms at the bound | share of 4,096/ms | drift waits |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut runs: Vec<(u32, String)> = ms
        .iter()
        .filter(|x| x.case == "sustained" && x.metric == "ids")
        .map(|x| (x.rep, x.variant.clone()))
        .collect();
    runs.sort();
    for (_, run) in &runs {
        let g = |metric: &str| med(&ms, "sustained", run, metric);
        let at = g("rate_at_bound");
        let _ = writeln!(
            w,
            "| {run} | {} | {} | {} | {} | {} | {} | {} |",
            g("backends"),
            fmt_int(g("ids")),
            g("bound_ms"),
            f(g("rate_total"), 0),
            if at.is_finite() {
                f(at, 0)
            } else {
                "bound not reached".into()
            },
            if at.is_finite() {
                format!("{:.1}%", at * 100.0 / 4096.0)
            } else {
                "–".into()
            },
            g("drift_waits")
        );
    }

    let _ = writeln!(
        w,
        "\n### Inserts: one row per transaction, pgbench -c 8 -j 2 -T {}, {} pairs\n\n\
         | primary key | median tps | median server CPU µs/row | snowflake / it, tps | it / snowflake, CPU per row | pkey bytes per row |\n\
         |---|---:|---:|---:|---:|---:|",
        m("ins_secs"),
        series(&ms, "inserts", "sf", "tps").len()
    );
    for (k, label, _, _) in KEYS {
        let tps = med(&ms, "inserts", k, "tps");
        if !tps.is_finite() {
            continue;
        }
        let (r, c) = if *k == "sf" {
            (String::new(), String::new())
        } else {
            (
                f(d[&format!("ins.tps.sf/{k}")], 3),
                f(d[&format!("ins.cpu.sf/{k}")], 3),
            )
        };
        let _ = writeln!(
            w,
            "| {label} | {} | {} | {r} | {c} | {} |",
            fmt_int(tps),
            f(med(&ms, "inserts", k, "cpu_us"), 1),
            f(med(&ms, "inserts", k, "pkey_bytes_per_row"), 1)
        );
    }

    let _ = writeln!(
        w,
        "\n### Growth: `INSERT ... SELECT` batches, key types interleaved\n\n\
         | primary key | rows | rows/s first batch | rows/s last batch | last / first | pkey MiB | heap MiB | pkey bytes per row |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (k, label, _, _) in KEYS {
        let rows = series(&ms, "growth", k, "rows");
        let Some(&(last_b, nrows)) = rows.iter().max_by_key(|x| x.0) else {
            continue;
        };
        let at =
            |metric: &str, b: u32| data::value(&ms, "growth", k, b, metric).unwrap_or(f64::NAN);
        let first_b = rows.iter().map(|x| x.0).min().unwrap_or(1);
        let _ = writeln!(
            w,
            "| {label} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_int(nrows),
            fmt_int(at("rows_per_s", first_b)),
            fmt_int(at("rows_per_s", last_b)),
            f(
                d.get(&format!("growth.rate_last/first.{k}"))
                    .copied()
                    .unwrap_or(f64::NAN),
                2
            ),
            f(at("pkey_bytes", last_b) / 1048576.0, 1),
            f(at("heap_bytes", last_b) / 1048576.0, 1),
            f(at("pkey_bytes", last_b) / nrows, 1)
        );
    }

    let _ = writeln!(
        w,
        "\n### Contention: backends running the bulk query at once\n\n\
         | generator | 2 backends, IDs/s | 8 backends, IDs/s |\n|---|---:|---:|"
    );
    for id in ["select1", "snowflake"] {
        let g = |b: u32| {
            d.get(&format!("cont.ids_per_s_{b}.{id}"))
                .copied()
                .unwrap_or(f64::NAN)
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} |",
            gen(id).label,
            fmt_int(g(2)),
            fmt_int(g(8))
        );
    }
    let dups = |b: u32| {
        let v = data::value(
            &ms,
            "contention",
            "snowflake",
            1,
            &format!("duplicates_{b}"),
        );
        let r = data::value(&ms, "contention", "snowflake", 1, &format!("dup_rows_{b}"));
        format!(
            "{} duplicates in {} IDs",
            f(v.unwrap_or(f64::NAN), 0),
            fmt_int(r.unwrap_or(f64::NAN))
        )
    };
    let _ = writeln!(
        w,
        "\nDuplicates (`count(*) - count(DISTINCT)` of the IDs that the backends inserted at once): \
         2 backends: {}; 8 backends: {}.\n",
        dups(2),
        dups(8)
    );
    let replay = |metric: &str| data::value(&ms, "replay", "snowflake", 1, metric);
    if let (Some(records), Some(secs), Some(writes)) =
        (replay("records"), replay("seconds"), replay("file_writes"))
    {
        let _ = writeln!(
            w,
            "Archive recovery of a restored base backup through {} ceiling records (the test-only \
             emitter's, 1 ms apart), start to promotion: {} s, {} µs a record; replay wrote the state \
             file {} times (at checkpoint records and at the end of recovery, not per record).\n",
            fmt_int(records),
            f(secs, 2),
            f(secs * 1e6 / records.max(1.0), 1),
            f(writes, 0)
        );
    }
    if ms.iter().any(|x| x.case == "instructions") {
        let _ = writeln!(
            w,
            "### Instructions: callgrind on a single-user backend (`postgres --single`)\n\n\
             Exactly repeatable, unlike time on a shared VM: the same work run N and 2N times, \
             (Ir(2N) - Ir(N)) / N. Per statement: one more `SELECT <generator>;` (parse, plan, execute, \
             print; no client protocol). Per call: one more value in the bulk statement. User-space \
             instructions only: system calls (socket I/O, uuidv7()'s /dev/urandom read) are not in them.\n\n\
             | generator | per statement | net of `SELECT 1` | per call in bulk | net of the constant |\n\
             |---|---:|---:|---:|---:|"
        );
        for g in GENS {
            let Some(stmt) = d.get(&format!("ir.stmt.{}", g.id)) else {
                continue;
            };
            let get = |k: &str| {
                d.get(&format!("ir.{k}.{}", g.id))
                    .copied()
                    .unwrap_or(f64::NAN)
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} |",
                g.label,
                f(*stmt, 1),
                f(get("stmt_net"), 1),
                f(get("call"), 1),
                f(get("call_net"), 1)
            );
        }
        let _ = writeln!(w);
    }
    for (png, title) in [
        ("roundtrip.png", "round trip"),
        ("sustained.png", "sustained"),
        ("growth.png", "growth"),
    ] {
        if dir.join(png).exists() {
            let _ = writeln!(w, "![{title}, PostgreSQL {major}]({rel}/{png})\n");
        }
    }
    s
}

/// RESULTS.md of a run: one section per major directory.
pub fn results_md(out: &Path, majors: &[String], quick: bool) -> String {
    let mut s = String::from("# snowflake_id benchmark results\n\n");
    s.push_str(
        "Written by `cargo run --release -p snowflake_bench --` (binary `snowbench`) from the CSV files \
         beside this file; ratios come from pairs of runs on the same server, back to back.\n\n",
    );
    if quick {
        s.push_str(
            "**QUICK mode**: a smoke test of the benchmark itself (tiny runs); the targets are not assessed.\n\n",
        );
    }
    for m in majors {
        s.push_str(&major_section(&out.join(m), m, quick));
    }
    s
}

pub const README_BEGIN: &str = "<!-- snowbench results: begin (written by snowbench --readme) -->";
pub const README_END: &str = "<!-- snowbench results: end -->";

/// The README's results: per major, the run (date, machine), its targets table, the
/// instruction counts and the charts, from the CSV files under `out` (`rel`: `out` from the
/// README).
pub fn readme_block(out: &Path, rel: &str, majors: &[String]) -> String {
    let mut s = format!("{README_BEGIN}\n");
    let w = &mut s;
    for name in majors {
        let dir = out.join(name);
        let meta = data::read_meta(&dir);
        let ms = data::read_all(&dir);
        let major: u32 = meta_get(&meta, "major").parse().unwrap_or(0);
        let d = derive(&ms);
        let m = |k: &str| meta_get(&meta, k).to_string();
        let _ = writeln!(
            w,
            "#### PostgreSQL {major}\n\n{}, {} to {} ({} min); {}, {} cores, {} RAM, Linux {}; \
             load average {} before, {} after; uuidv7() random source: {}. All tables: \
             [{rel}/RESULTS.md]({rel}/RESULTS.md#postgresql-{major}).\n",
            m("version"),
            m("start"),
            m("end"),
            m("minutes"),
            m("cpu"),
            m("cores"),
            m("memory"),
            m("kernel"),
            m("load_before"),
            m("load_after"),
            m("random_source"),
        );
        targets_table(w, major, &d, m("quick") == "true");
        let ir = |k: &str| d.get(k).copied().unwrap_or(f64::NAN);
        let _ = writeln!(
            w,
            "\nInstructions per call in bulk, net of the constant (callgrind): snowflake_nextval() {}, \
             no-op `#[pg_extern]` {}, isn_weak() {}; per `SELECT <generator>;` statement net of `SELECT 1`: \
             {}, {}, {}. Round trip, no-op `#[pg_extern]` / isn_weak() tps (paired median): {}. \
             Round trip interleaved in one run (1 client, mean round-trip time), snowflake_nextval() / \
             isn_weak(): {}, / no-op `#[pg_extern]`: {}, / `SELECT 1`: {}.\n",
            f(ir("ir.call_net.snowflake"), 1),
            f(ir("ir.call_net.noop_pgrx"), 1),
            f(ir("ir.call_net.isn_weak"), 1),
            f(ir("ir.stmt_net.snowflake"), 1),
            f(ir("ir.stmt_net.noop_pgrx"), 1),
            f(ir("ir.stmt_net.isn_weak"), 1),
            f(ir("rt.tps.noop_pgrx/isn_weak"), 3),
            f(ir("rt.il.snowflake/isn_weak"), 3),
            f(ir("rt.il.snowflake/noop_pgrx"), 3),
            f(ir("rt.il.snowflake/select1"), 3),
        );
        let prof = |g: &str, b: &str| {
            data::value(&ms, "profile", g, 1, &format!("pct_{b}")).unwrap_or(f64::NAN)
        };
        let _ = writeln!(
            w,
            "Round-trip profile (`perf`, share of the machine's CPU samples): snowflake_id.so {}% \
             with snowflake_nextval(), {}% with the no-op `#[pg_extern]`; isn.so {}% with isn_weak(); \
             kernel (server) {}%, PostgreSQL {}%, client {}% with snowflake_nextval().\n",
            f(prof("snowflake", "server_snowflake_id"), 2),
            f(prof("noop_pgrx", "server_snowflake_id"), 2),
            f(prof("isn_weak", "server_isn"), 2),
            f(prof("snowflake", "server_kernel"), 1),
            f(prof("snowflake", "server_postgres"), 1),
            f(prof("snowflake", "client"), 1),
        );
        for png in ["roundtrip.png", "sustained.png", "growth.png"] {
            if dir.join(png).exists() {
                let _ = writeln!(w, "![{png}, PostgreSQL {major}]({rel}/{name}/{png})\n");
            }
        }
    }
    s.push_str(README_END);
    s
}

/// `readme` with its results block replaced by `block` (an error if it has no such block).
pub fn splice_readme(readme: &str, block: &str) -> Result<String, String> {
    let a = readme
        .find(README_BEGIN)
        .ok_or("README.md has no snowbench results block")?;
    let b = readme[a..]
        .find(README_END)
        .map(|i| a + i + README_END.len())
        .ok_or("README.md's snowbench results block has no end")?;
    Ok(format!("{}{block}{}", &readme[..a], &readme[b..]))
}

fn gnuplot(dir: &Path, script: &str) -> Result<(), String> {
    let out = Command::new("gnuplot")
        .current_dir(dir)
        .arg("-e")
        .arg(script)
        .output()
        .map_err(|e| format!("cannot run gnuplot: {e}"))?;
    if !out.status.success() {
        return Err(format!("gnuplot: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// roundtrip.png, sustained.png and growth.png in `dir`, from its CSV files.
pub fn charts(dir: &Path) -> Result<(), String> {
    let meta = data::read_meta(dir);
    let ms = data::read_all(dir);
    let samples: Vec<Sample> = data::read_samples(dir);
    let d = derive(&ms);
    let sub = format!(
        "PostgreSQL {}, {}, {} cores, {}",
        meta_get(&meta, "major"),
        meta_get(&meta, "start"),
        meta_get(&meta, "cores"),
        meta_get(&meta, "cpu")
    )
    .replace('"', "'");
    let head = "set terminal pngcairo noenhanced size 1100,480 font 'DejaVu Sans,10'; set grid lc rgb '#dddddd'; ";

    // Round trip: snowflake's paired ratios to each reference.
    let mut dat = String::new();
    for g in GENS.iter().filter(|g| g.id != "snowflake") {
        if let (Some(t), Some(c)) = (
            d.get(&format!("rt.tps.snowflake/{}", g.id)),
            d.get(&format!("rt.cpu.snowflake/{}", g.id)),
        ) {
            let _ = writeln!(dat, "\"{}\" {t} {c}", g.label);
        }
    }
    data::write(&dir.join("roundtrip.dat"), &dat);
    gnuplot(
        dir,
        &format!(
            "{head} set output 'roundtrip.png'; set title \"snowflake_nextval() round trip relative to each reference (paired medians)\\n{sub}\"; \
             set style data histograms; set style histogram clustered gap 1; set style fill solid 0.85 noborder; \
             set yrange [0:*]; set ylabel 'snowflake / reference'; set key outside bottom center horizontal; \
             plot 'roundtrip.dat' using 2:xtic(1) title 'tps ratio' lc rgb '#4e79a7', \
             '' using 3 title 'CPU per call, reference / snowflake' lc rgb '#f28e2b', \
             0.97 with lines dt 2 lc rgb '#e15759' title 'target vs isn_weak(): 0.97'"
        ),
    )?;

    // Sustained: IDs issued and the lead over the clock.
    let mut runs: Vec<String> = Vec::new();
    for s in &samples {
        if !runs.contains(&s.run) {
            runs.push(s.run.clone());
        }
    }
    let (mut p1, mut p2) = (Vec::new(), Vec::new());
    for (i, run) in runs.iter().enumerate() {
        let rs: Vec<&Sample> = samples.iter().filter(|s| &s.run == run).collect();
        // Time from the last sample before the first ID of the run.
        let i0 = rs[0].issued;
        let start = rs.iter().rposition(|s| s.issued == i0).unwrap_or(0);
        let t0 = rs[start].t_ms;
        let mut dat = String::new();
        for s in &rs[start..] {
            let _ = writeln!(
                dat,
                "{} {} {}",
                (s.t_ms - t0) / 1000.0,
                (s.issued - i0) as f64 / 1e6,
                s.drift_ms
            );
        }
        let file = format!("sustained_{i}.dat");
        data::write(&dir.join(&file), &dat);
        p1.push(format!("'{file}' using 1:2 with lines lw 2 title '{run}'"));
        p2.push(format!("'{file}' using 1:3 with lines lw 2 title '{run}'"));
    }
    if !runs.is_empty() {
        gnuplot(
            dir,
            &format!(
                "{head} set output 'sustained.png'; set multiplot layout 1,2 title \"snowflake_nextval() at full speed, sampled every 50 ms\\n{sub}\"; \
                 set key top left; set xlabel 'seconds since the first ID'; set ylabel 'IDs issued (millions)'; set yrange [0:*]; \
                 plot {}, x*4.096 with lines dt 2 lc rgb '#e15759' title '4,096 IDs/ms'; \
                 set ylabel 'lead of the newest ID over the clock (ms)'; set yrange [0:*]; plot {}; unset multiplot",
                p1.join(", "),
                p2.join(", ")
            ),
        )?;
    }

    // Growth: rate per batch and primary-key size.
    let (mut p1, mut p2) = (Vec::new(), Vec::new());
    for (k, _, _, _) in KEYS {
        let rows = series(&ms, "growth", k, "rows");
        if rows.is_empty() {
            continue;
        }
        let mut dat = String::new();
        for (b, r) in rows {
            let v = |m: &str| data::value(&ms, "growth", k, b, m).unwrap_or(f64::NAN);
            let _ = writeln!(
                dat,
                "{} {} {}",
                r / 1e6,
                v("rows_per_s"),
                v("pkey_bytes") / 1048576.0
            );
        }
        let file = format!("growth_{k}.dat");
        data::write(&dir.join(&file), &dat);
        p1.push(format!(
            "'{file}' using 1:2 with linespoints pt 7 ps 0.6 lw 2 title '{}'",
            key_label(k)
        ));
        p2.push(format!(
            "'{file}' using 1:3 with linespoints pt 7 ps 0.6 lw 2 title '{}'",
            key_label(k)
        ));
    }
    if !p1.is_empty() {
        gnuplot(
            dir,
            &format!(
                "{head} set output 'growth.png'; set multiplot layout 1,2 title \"Insert growth: INSERT ... SELECT batches\\n{sub}\"; \
                 set xlabel 'rows in the table (millions)'; set yrange [0:*]; set key bottom right; set ylabel 'rows/s in the batch'; plot {}; \
                 set ylabel 'primary-key index (MiB)'; set key top left; plot {}; unset multiplot",
                p1.join(", "),
                p2.join(", ")
            ),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_the_block() {
        let readme = format!("intro\n{README_BEGIN}\nold figures\n{README_END}\nafter\n");
        let block = format!("{README_BEGIN}\nnew\n{README_END}");
        let out = splice_readme(&readme, &block).unwrap();
        assert_eq!(out, format!("intro\n{block}\nafter\n"));
        assert!(splice_readme("no block here", &block).is_err());
        assert!(splice_readme(&format!("x {README_BEGIN} y"), &block).is_err());
    }
}
