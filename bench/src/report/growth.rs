//! Growth: `INSERT ... SELECT` batches, rate and index size per primary-key type.

use super::*;

/// The growth table.
pub(super) fn section(w: &mut String, fig: &Figures) {
    let ms = &fig.ms[..];
    let d = &fig.d;
    let _ = writeln!(
        w,
        "\n### Growth: `INSERT ... SELECT` batches, key types interleaved\n\n\
         | primary key | rows | rows/s first batch | rows/s last batch | last / first | pkey MiB | heap MiB | pkey bytes per row |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (k, label, _, _) in KEYS {
        let rows = series(ms, "growth", k, "rows");
        let Some(&(last_b, nrows)) = rows.iter().max_by_key(|x| x.0) else {
            continue;
        };
        let at = |metric: &str, b: u32| data::value(ms, "growth", k, b, metric).unwrap_or(f64::NAN);
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
}
