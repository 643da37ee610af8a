//! Case 4, inserts: single-row `INSERT` by pgbench, per primary-key type.

use super::*;

impl Bench<'_> {
    /// 4. Inserts: single-row `INSERT` by pgbench, 8 clients, key types in pairs.
    pub fn inserts(&self) -> Vec<M> {
        let keys = self.keys();
        let mut out = Vec::new();
        let mut admin = self.client();
        for pair in 1..=self.p.ins_pairs {
            let mut line = format!("   pair {pair}:");
            for k in 0..keys.len() {
                let key = keys[(k + pair as usize) % keys.len()];
                exec(&mut admin, &format!("TRUNCATE bench_audit_{key}"));
                exec(&mut admin, "CHECKPOINT");
                if key == "sf" {
                    self.settle(&mut admin);
                }
                let f = self.script(
                    &format!("ins_{key}"),
                    &format!(
                        "\\set uid random(1, 100000)\nINSERT INTO bench_audit_{key} (user_id, action, detail) \
                         VALUES (:uid, 'update', 'email changed');\n"
                    ),
                );
                let (tps, _, cpu) = self.pgbench(&f, 8, self.p.ins_secs);
                let rows = q_i64(
                    &mut admin,
                    &format!("SELECT count(*) FROM bench_audit_{key}"),
                );
                let idx = q_i64(
                    &mut admin,
                    &format!("SELECT pg_relation_size('bench_audit_{key}_pkey')"),
                );
                out.push(M::new("inserts", key, pair, "tps", tps));
                out.push(M::new("inserts", key, pair, "cpu_us", cpu));
                out.push(M::new("inserts", key, pair, "rows", rows as f64));
                out.push(M::new(
                    "inserts",
                    key,
                    pair,
                    "pkey_bytes_per_row",
                    idx as f64 / rows.max(1) as f64,
                ));
                line.push_str(&format!(" {key} {tps:.0} tps {cpu:.1} µs/row"));
            }
            println!("{line}");
        }
        out
    }
}
