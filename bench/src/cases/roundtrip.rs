//! Case 1, the round trip: `SELECT <generator>;` by pgbench, in pairs and interleaved.

use super::*;

impl Bench<'_> {
    /// 1. Round trip: `SELECT <generator>;` by pgbench, 8 clients, in pairs (the generators
    ///    back to back, their order rotated from pair to pair).
    pub fn roundtrip(&self) -> Vec<M> {
        let gens = self.gens(RT_GENS);
        let mut out = Vec::new();
        for pair in 1..=self.p.rt_pairs {
            let mut line = format!("   pair {pair}:");
            for k in 0..gens.len() {
                let g = gens[(k + pair as usize) % gens.len()];
                let f = self.script(&format!("rt_{}", g.id), &format!("SELECT {};\n", g.expr));
                let (tps, _, cpu) = self.pgbench(&f, 8, self.p.rt_secs);
                out.push(M::new("roundtrip", g.id, pair, "tps", tps));
                out.push(M::new("roundtrip", g.id, pair, "cpu_us", cpu));
                line.push_str(&format!(" {} {tps:.0}", g.id));
            }
            println!("{line}");
        }
        // Interleaved: one client alternating at random between snowflake_nextval() and a
        // reference within one run, so the VM's drift falls on both alike; the ratio of their
        // mean round-trip latencies (from pgbench's per-transaction log) is a rate ratio.
        let sf = self.script("rt_snowflake", "SELECT snowflake_nextval();\n");
        for g in gens.iter().filter(|g| g.id != "snowflake") {
            let f = self.script(&format!("rt_{}", g.id), &format!("SELECT {};\n", g.expr));
            let lat = self.interleaved(&[&sf, &f], self.p.il_secs);
            out.push(M::new("roundtrip", g.id, 1, "il_us_snowflake", lat[0]));
            out.push(M::new("roundtrip", g.id, 1, "il_us", lat[1]));
            println!(
                "   interleaved, 1 client: snowflake {:.2} µs, {} {:.2} µs per round trip",
                lat[0], g.id, lat[1]
            );
        }
        out
    }

    /// Mean latency (µs) of each script when one pgbench client picks among `scripts` at random
    /// (equal weights) for `secs`, from pgbench's per-transaction log (`-l`).
    fn interleaved(&self, scripts: &[&Path], secs: u32) -> Vec<f64> {
        let prefix = self.work.join("il_log");
        for e in std::fs::read_dir(&self.work)
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with("il_log.") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let mut cmd = self.pgbench_cmd(1, 1, secs);
        cmd.arg("-l")
            .arg(format!("--log-prefix={}", prefix.display()));
        for s in scripts {
            cmd.arg("-f").arg(format!("{}@1", s.display()));
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run pgbench: {e}"));
        if !out.status.success() {
            panic!(
                "interleaved pgbench failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Log lines: client_id transaction_no time_us script_no epoch epoch_us [...].
        let (mut sum, mut n) = (vec![0.0; scripts.len()], vec![0u64; scripts.len()]);
        for e in std::fs::read_dir(&self.work)
            .into_iter()
            .flatten()
            .flatten()
        {
            if !e.file_name().to_string_lossy().starts_with("il_log.") {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).expect("pgbench log");
            for l in text.lines() {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (Some(us), Some(script)) = (
                    f.get(2).and_then(|v| v.parse::<f64>().ok()),
                    f.get(3).and_then(|v| v.parse::<usize>().ok()),
                ) else {
                    continue;
                };
                if script < scripts.len() {
                    sum[script] += us;
                    n[script] += 1;
                }
            }
        }
        assert!(
            n.iter().all(|&k| k > 100),
            "pgbench logged too few transactions per script: {n:?}"
        );
        sum.iter().zip(&n).map(|(s, k)| s / *k as f64).collect()
    }
}
