//! Contention: backends drawing IDs at once, and the duplicates among them.

use super::*;

/// The contention table and the duplicate counts.
pub(super) fn section(w: &mut String, fig: &Figures) {
    let ms = &fig.ms[..];
    let d = &fig.d;
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
        let v = data::value(ms, "contention", "snowflake", 1, &format!("duplicates_{b}"));
        let r = data::value(ms, "contention", "snowflake", 1, &format!("dup_rows_{b}"));
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
}
