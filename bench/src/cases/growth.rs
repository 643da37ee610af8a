//! Case 4b, growth: `INSERT ... SELECT` batches, rate and index size per primary-key type.

use super::*;

impl Bench<'_> {
    /// 4b. Growth: `INSERT ... SELECT` batches into each key type's table, interleaved; the
    ///     rate of each batch and the primary-key index size after it.
    pub fn growth(&self) -> Vec<M> {
        let keys = self.keys();
        let mut out = Vec::new();
        let mut c = self.client();
        let batches = (self.p.grow_rows / self.p.grow_batch).max(1);
        for b in 1..=batches as u32 {
            let mut line = format!("   batch {b}/{batches}:");
            for key in &keys {
                if *key == "sf" {
                    self.settle(&mut c);
                }
                let sql = format!(
                    "INSERT INTO bench_grow_{key} (user_id, action, detail) SELECT g % 100000, \
                     'update', 'email changed' FROM generate_series(1, {}) g",
                    self.p.grow_batch
                );
                let t0 = Instant::now();
                exec(&mut c, &sql);
                let rate = self.p.grow_batch as f64 / t0.elapsed().as_secs_f64();
                let pkey = q_i64(
                    &mut c,
                    &format!("SELECT pg_relation_size('bench_grow_{key}_pkey')"),
                );
                let heap = q_i64(
                    &mut c,
                    &format!("SELECT pg_relation_size('bench_grow_{key}')"),
                );
                for (metric, v) in [
                    ("rows", (b as i64 * self.p.grow_batch) as f64),
                    ("rows_per_s", rate),
                    ("pkey_bytes", pkey as f64),
                    ("heap_bytes", heap as f64),
                ] {
                    out.push(M::new("growth", key, b, metric, v));
                }
                line.push_str(&format!(" {key} {rate:.0} rows/s"));
            }
            println!("{line}");
        }
        out
    }
}
