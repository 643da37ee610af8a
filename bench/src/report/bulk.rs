//! Bulk: many values in one statement, backend CPU per value.

use super::*;

/// The bulk table.
pub(super) fn section(w: &mut String, fig: &Figures) {
    let ms = &fig.ms[..];
    let d = &fig.d;
    let n = med(ms, "bulk", "select1", "ids");
    let waits: f64 = series(ms, "bulk", "snowflake", "drift_waits")
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
        series(ms, "bulk", "select1", "cpu_ms").len()
    );
    for g in GENS {
        let cpu = med(ms, "bulk", g.id, "cpu_ms");
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
            f(med(ms, "bulk", g.id, "wall_ms"), 0)
        );
    }
}
