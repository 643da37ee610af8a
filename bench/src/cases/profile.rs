//! Case 1b, the round trip's profile: `perf record` while pgbench runs.

use super::*;

/// Where a profile's samples fall: (bucket, command, shared object; `None` matches any).
const PROFILE_BUCKETS: &[(&str, Option<&str>, Option<&str>)] = &[
    ("server_kernel", Some("postgres"), Some("[kernel.kallsyms]")),
    ("server_postgres", Some("postgres"), Some("postgres")),
    ("server_libc", Some("postgres"), Some("libc.so.6")),
    ("server_vdso", Some("postgres"), Some("[vdso]")),
    (
        "server_snowflake_id",
        Some("postgres"),
        Some("snowflake_id.so"),
    ),
    ("server_isn", Some("postgres"), Some("isn.so")),
    ("client", Some("pgbench"), None),
    ("other", None, None),
];

impl Bench<'_> {
    /// 1b. Profile of the round trip: `perf record -a` (cpu-clock sampling: a VM may have no
    ///     hardware counters) while pgbench runs `SELECT <generator>;` as in case 1; the share
    ///     of the samples in the kernel, PostgreSQL, the extension's library and the client.
    pub fn profile(&self) -> Vec<M> {
        let mut out = Vec::new();
        for g in self.gens(&["snowflake", "noop_pgrx", "isn_weak"]) {
            let f = self.script(&format!("prof_{}", g.id), &format!("SELECT {};\n", g.expr));
            let data = self.work.join(format!("prof_{}.perf", g.id));
            let secs = self.p.prof_secs;
            let mut bench = self
                .pgbench_cmd(8, 2, secs + 2)
                .arg("-f")
                .arg(&f)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run pgbench: {e}"));
            // Sample the steady state: the clients are connected after the first second.
            thread::sleep(Duration::from_secs(1));
            let rec = Command::new("perf")
                .args(["record", "-e", "cpu-clock", "-F", "999", "-a", "-q", "-o"])
                .arg(&data)
                .args(["--", "sleep", &secs.to_string()])
                .output()
                .unwrap_or_else(|e| panic!("cannot run perf (apt-get install linux-perf): {e}"));
            let status = bench.wait().expect("pgbench");
            assert!(status.success(), "pgbench -f {} failed", f.display());
            if !rec.status.success() {
                panic!(
                    "perf record failed: {}",
                    String::from_utf8_lossy(&rec.stderr)
                );
            }
            let rep = Command::new("perf")
                .args([
                    "report",
                    "--no-children",
                    "-g",
                    "none",
                    "--sort",
                    "comm,dso",
                ])
                .args(["--stdio", "--percent-limit", "0", "-i"])
                .arg(&data)
                .output()
                .expect("perf report");
            let text = String::from_utf8_lossy(&rep.stdout);
            let mut shares = vec![0.0; PROFILE_BUCKETS.len()];
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let mut it = line.split_whitespace();
                let (Some(pct), Some(comm), Some(dso)) = (it.next(), it.next(), it.next()) else {
                    continue;
                };
                let Ok(pct) = pct.trim_end_matches('%').parse::<f64>() else {
                    continue;
                };
                let i = PROFILE_BUCKETS
                    .iter()
                    .position(|(_, c, d)| c.is_none_or(|c| comm == c) && d.is_none_or(|d| dso == d))
                    .expect("the last bucket takes any sample");
                shares[i] += pct;
            }
            let _ = std::fs::remove_file(&data);
            let mut line = format!("   {}:", g.id);
            for ((bucket, _, _), v) in PROFILE_BUCKETS.iter().zip(&shares) {
                out.push(M::new("profile", g.id, 1, &format!("pct_{bucket}"), *v));
                if *v > 0.0 {
                    line.push_str(&format!(" {bucket} {v:.2}%"));
                }
            }
            println!("{line}");
        }
        out
    }
}
