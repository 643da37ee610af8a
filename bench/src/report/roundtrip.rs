//! The round trip: `SELECT <generator>;` under pgbench, paired and interleaved.

use super::*;

/// The round-trip table, and the call wrapper's own ratio.
pub(super) fn section(w: &mut String, fig: &Figures) {
    let ms = &fig.ms[..];
    let d = &fig.d;
    let m = |k: &str| fig.meta(k);
    let pairs = series(ms, "roundtrip", "snowflake", "tps").len();
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
        let tps = med(ms, "roundtrip", g.id, "tps");
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
                f(med(ms, "roundtrip", g.id, "il_us"), 1),
                f(il("rt.il.snowflake/"), 3),
            )
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {r} | {c} | {us} | {i} |",
            g.label,
            fmt_int(tps),
            f(med(ms, "roundtrip", g.id, "cpu_us"), 1)
        );
    }

    if let Some(v) = d.get("rt.tps.noop_pgrx/isn_weak") {
        let _ = writeln!(
            w,
            "\nThe call wrapper alone: no-op `#[pg_extern]` / `isn_weak()`, tps (paired median): {}.",
            f(*v, 3)
        );
    }
}
