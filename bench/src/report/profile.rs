//! The round trip's profile: `perf` samples by process and shared object.

use super::*;

/// The profile table, if the run has one.
pub(super) fn section(w: &mut String, fig: &Figures) {
    let ms = &fig.ms[..];
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
            let v = |b: &str| med(ms, "profile", g.id, &format!("pct_{b}"));
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
}
