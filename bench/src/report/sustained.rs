//! Sustained: IDs at full speed, and how often the drift bound was reached.

use super::*;

/// The sustained table, one row per run.
pub(super) fn section(w: &mut String, fig: &Figures) {
    let ms = &fig.ms[..];
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
        let g = |metric: &str| med(ms, "sustained", run, metric);
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
}
