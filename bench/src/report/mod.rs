//! RESULTS.md and the charts, rendered from the CSV files of each major's directory. A major's
//! section is its run's header and targets (here), then one file per part of the benchmark, in
//! the order they print; `charts` renders the charts and links them.

// Also the imports of the files below, which take them with `use super::*`.
use crate::cases::{gen, key_label, GENS, KEYS};
use crate::data::{self, median, meta_get, series, Sample, M};
use crate::targets::{derive, evaluate};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

mod bulk;
mod charts;
mod contention;
mod growth;
mod inserts;
mod instructions;
mod profile;
mod replay;
mod roundtrip;
mod sustained;

pub use charts::charts;

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

/// One major's figures, as every section reads them: its run's metadata, its measurements and
/// the figures derived from them.
struct Figures {
    meta: Vec<(String, String)>,
    ms: Vec<M>,
    d: BTreeMap<String, f64>,
    major: u32,
}

impl Figures {
    fn read(dir: &Path) -> Self {
        let meta = data::read_meta(dir);
        let ms = data::read_all(dir);
        let major: u32 = meta_get(&meta, "major").parse().unwrap_or(0);
        let d = derive(&ms);
        Figures { meta, ms, d, major }
    }

    fn meta(&self, k: &str) -> String {
        meta_get(&self.meta, k).to_string()
    }
}

/// The section of one major: `dir` holds its CSV files; `rel` is its path from RESULTS.md.
pub fn major_section(dir: &Path, rel: &str, quick: bool) -> String {
    let fig = Figures::read(dir);
    let (major, d) = (fig.major, &fig.d);
    let m = |k: &str| fig.meta(k);
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
    targets_table(w, major, d, quick);

    roundtrip::section(w, &fig);
    profile::section(w, &fig);
    bulk::section(w, &fig);
    sustained::section(w, &fig);
    inserts::section(w, &fig);
    growth::section(w, &fig);
    contention::section(w, &fig);
    replay::section(w, &fig);
    instructions::section(w, &fig);
    charts::section(w, &fig, dir, rel);
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
