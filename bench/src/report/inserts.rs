//! Inserts: one row per transaction, per primary-key type.

use super::*;

/// The inserts table.
pub(super) fn section(w: &mut String, fig: &Figures) {
    let ms = &fig.ms[..];
    let d = &fig.d;
    let m = |k: &str| fig.meta(k);
    let _ = writeln!(
        w,
        "\n### Inserts: one row per transaction, pgbench -c 8 -j 2 -T {}, {} pairs\n\n\
         | primary key | median tps | median server CPU µs/row | snowflake / it, tps | it / snowflake, CPU per row | pkey bytes per row |\n\
         |---|---:|---:|---:|---:|---:|",
        m("ins_secs"),
        series(ms, "inserts", "sf", "tps").len()
    );
    for (k, label, _, _) in KEYS {
        let tps = med(ms, "inserts", k, "tps");
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
            f(med(ms, "inserts", k, "cpu_us"), 1),
            f(med(ms, "inserts", k, "pkey_bytes_per_row"), 1)
        );
    }
}
