//! Typed results and their CSV files: every case yields [`M`]easurements (one CSV per case,
//! `case,variant,rep,metric,value`), the sustained runs also [`Sample`]s; the report and the
//! charts are rendered from what these files hold.

use std::fs;
use std::path::Path;

/// One measured value: `variant` is the generator or key type, `rep` the pair (or backend
/// count, or batch) it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct M {
    pub case: String,
    pub variant: String,
    pub rep: u32,
    pub metric: String,
    pub value: f64,
}

impl M {
    pub fn new(case: &str, variant: &str, rep: u32, metric: &str, value: f64) -> M {
        M {
            case: case.into(),
            variant: variant.into(),
            rep,
            metric: metric.into(),
            value,
        }
    }
}

/// One reading of `snowflake_stats()` during a sustained run.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub run: String,
    pub t_ms: f64,
    pub issued: i64,
    pub drift_ms: i64,
    pub drift_waits: i64,
}

pub const CASES: &[&str] = &[
    "roundtrip",
    "profile",
    "bulk",
    "sustained",
    "inserts",
    "growth",
    "contention",
    "instructions",
];

pub fn write_case(dir: &Path, case: &str, rows: &[M]) {
    let mut s = String::from("case,variant,rep,metric,value\n");
    for m in rows.iter().filter(|m| m.case == case) {
        s.push_str(&format!(
            "{},{},{},{},{}\n",
            m.case, m.variant, m.rep, m.metric, m.value
        ));
    }
    write(&dir.join(format!("{case}.csv")), &s);
}

/// All measurements of a major's directory (every case's CSV that exists).
pub fn read_all(dir: &Path) -> Vec<M> {
    let mut out = Vec::new();
    for case in CASES {
        let path = dir.join(format!("{case}.csv"));
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        for (i, line) in text.lines().enumerate().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let parsed = match f.as_slice() {
                [case, variant, rep, metric, value] => rep
                    .parse()
                    .ok()
                    .zip(value.parse().ok())
                    .map(|(rep, value)| M {
                        case: case.to_string(),
                        variant: variant.to_string(),
                        rep,
                        metric: metric.to_string(),
                        value,
                    }),
                _ => None,
            };
            match parsed {
                Some(m) => out.push(m),
                None => panic!("{}:{}: bad line {line:?}", path.display(), i + 1),
            }
        }
    }
    out
}

pub fn write_samples(dir: &Path, samples: &[Sample]) {
    let mut s = String::from("run,t_ms,issued,drift_ms,drift_waits\n");
    for x in samples {
        s.push_str(&format!(
            "{},{:.1},{},{},{}\n",
            x.run, x.t_ms, x.issued, x.drift_ms, x.drift_waits
        ));
    }
    write(&dir.join("sustained_samples.csv"), &s);
}

pub fn read_samples(dir: &Path) -> Vec<Sample> {
    let Ok(text) = fs::read_to_string(dir.join("sustained_samples.csv")) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some(Sample {
                run: f.first()?.to_string(),
                t_ms: f.get(1)?.parse().ok()?,
                issued: f.get(2)?.parse().ok()?,
                drift_ms: f.get(3)?.parse().ok()?,
                drift_waits: f.get(4)?.parse().ok()?,
            })
        })
        .collect()
}

/// `key,value` lines (the value is the rest of the line) describing a run: date, machine, ...
pub fn write_meta(dir: &Path, meta: &[(String, String)]) {
    let mut s = String::from("key,value\n");
    for (k, v) in meta {
        s.push_str(&format!("{k},{}\n", v.replace('\n', " ")));
    }
    write(&dir.join("meta.csv"), &s);
}

pub fn read_meta(dir: &Path) -> Vec<(String, String)> {
    fs::read_to_string(dir.join("meta.csv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn meta_get<'a>(meta: &'a [(String, String)], key: &str) -> &'a str {
    meta.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("?")
}

pub fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Values of one series (case, variant, metric) by rep.
pub fn series(ms: &[M], case: &str, variant: &str, metric: &str) -> Vec<(u32, f64)> {
    ms.iter()
        .filter(|m| m.case == case && m.variant == variant && m.metric == metric)
        .map(|m| (m.rep, m.value))
        .collect()
}

/// The value of one (case, variant, rep, metric), if measured.
pub fn value(ms: &[M], case: &str, variant: &str, rep: u32, metric: &str) -> Option<f64> {
    ms.iter()
        .find(|m| m.case == case && m.variant == variant && m.rep == rep && m.metric == metric)
        .map(|m| m.value)
}

/// Median of the finite values; NaN when there are none.
pub fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[f64::NAN]).is_nan());
    }

    #[test]
    fn csv_round_trip() {
        let dir = std::env::temp_dir().join(format!("snowbench-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let rows = vec![
            M::new("bulk", "snowflake", 1, "cpu_ms", 12.5),
            M::new("bulk", "select1", 1, "cpu_ms", 10.0),
        ];
        write_case(&dir, "bulk", &rows);
        assert_eq!(read_all(&dir), rows);
        fs::remove_dir_all(&dir).unwrap();
    }
}
