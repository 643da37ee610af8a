//! Instructions: callgrind counts on a single-user backend.

use super::*;

/// The instructions table, if the run has one.
pub(super) fn section(w: &mut String, fig: &Figures) {
    let ms = &fig.ms[..];
    let d = &fig.d;
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
}
