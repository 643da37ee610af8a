//! The targets, as one table of data, and the figures they are evaluated against: derived
//! from the measurements (paired medians, ratios), by name.

use crate::data::{median, series, value, M};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cmp {
    Ge,
    Le,
    Eq,
}

impl Cmp {
    pub fn holds(self, v: f64, t: f64) -> bool {
        match self {
            Cmp::Ge => v >= t,
            Cmp::Le => v <= t,
            Cmp::Eq => v == t,
        }
    }
    pub fn sign(self) -> &'static str {
        match self {
            Cmp::Ge => ">=",
            Cmp::Le => "<=",
            Cmp::Eq => "=",
        }
    }
}

pub struct Target {
    pub name: &'static str,
    /// A key of [`derive`]'s figures.
    pub metric: &'static str,
    pub cmp: Cmp,
    pub threshold: f64,
    /// Assessed on this major and later (uuidv7() exists from 18 on).
    pub min_major: u32,
}

const fn t(
    name: &'static str,
    metric: &'static str,
    cmp: Cmp,
    threshold: f64,
    min_major: u32,
) -> Target {
    Target {
        name,
        metric,
        cmp,
        threshold,
        min_major,
    }
}

/// Issue 13's targets.
pub const TARGETS: &[Target] = &[
    t(
        "round trip: snowflake_nextval() / isn_weak() tps (paired median)",
        "rt.tps.snowflake/isn_weak",
        Cmp::Ge,
        0.97,
        0,
    ),
    t(
        "bulk: backend CPU ns per ID net of the baseline (paired median)",
        "bulk.net_ns.snowflake",
        Cmp::Le,
        50.0,
        0,
    ),
    t(
        "bulk: net CPU per ID / uuidv7()'s (paired median)",
        "bulk.net.snowflake/uuidv7",
        Cmp::Le,
        0.5,
        18,
    ),
    t(
        "sustained: share of 4,096 IDs/ms at the drift bound (worst run)",
        "sustained.share_at_bound",
        Cmp::Ge,
        0.99,
        0,
    ),
    t(
        "inserts, 8 clients: tps / bigserial's (paired median)",
        "ins.tps.sf/serial",
        Cmp::Ge,
        0.98,
        0,
    ),
    t(
        "inserts, 8 clients: server CPU per row, bigserial's / snowflake's",
        "ins.cpu.sf/serial",
        Cmp::Ge,
        0.98,
        0,
    ),
    t(
        "inserts, 8 clients: tps / uuidv7() keys'",
        "ins.tps.sf/uuidv7",
        Cmp::Ge,
        0.98,
        18,
    ),
    t(
        "inserts, 8 clients: server CPU per row, uuidv7()'s / snowflake's",
        "ins.cpu.sf/uuidv7",
        Cmp::Ge,
        0.98,
        18,
    ),
    t(
        "growth: primary-key index size / bigserial's at the end",
        "growth.pkey.sf/serial",
        Cmp::Le,
        1.0,
        0,
    ),
    t(
        "growth: primary-key index size / uuidv7()'s at the end (about 0.7)",
        "growth.pkey.sf/uuidv7",
        Cmp::Le,
        0.75,
        18,
    ),
    t(
        "contention: duplicates among IDs of 2 backends at once",
        "cont.duplicates_2",
        Cmp::Eq,
        0.0,
        0,
    ),
    t(
        "contention: duplicates among IDs of 8 backends at once",
        "cont.duplicates_8",
        Cmp::Eq,
        0.0,
        0,
    ),
];

/// Median over the pairs of f(a's value, b's value) within each pair.
fn paired(
    ms: &[M],
    case: &str,
    a: &str,
    b: &str,
    metric: &str,
    f: impl Fn(f64, f64) -> f64,
) -> f64 {
    let v: Vec<f64> = series(ms, case, a, metric)
        .into_iter()
        .filter_map(|(rep, x)| value(ms, case, b, rep, metric).map(|y| f(x, y)))
        .collect();
    median(&v)
}

/// Backend CPU ns per value of a bulk generator net of the constant, per pair.
fn bulk_net(ms: &[M], g: &str) -> Vec<(u32, f64)> {
    series(ms, "bulk", g, "cpu_ms")
        .into_iter()
        .filter_map(|(rep, cpu)| {
            let base = value(ms, "bulk", "select1", rep, "cpu_ms")?;
            let n = value(ms, "bulk", g, rep, "ids")?;
            Some((rep, (cpu - base) * 1e6 / n))
        })
        .collect()
}

/// Every figure the targets and the report's summary use, by name.
pub fn derive(ms: &[M]) -> BTreeMap<String, f64> {
    let mut d = BTreeMap::new();
    for g in crate::cases::RT_GENS.iter().filter(|g| **g != "snowflake") {
        if series(ms, "roundtrip", g, "tps").is_empty() {
            continue;
        }
        d.insert(
            format!("rt.tps.snowflake/{g}"),
            paired(ms, "roundtrip", "snowflake", g, "tps", |a, b| a / b),
        );
        if let (Some(a), Some(b)) = (
            value(ms, "roundtrip", g, 1, "il_us"),
            value(ms, "roundtrip", g, 1, "il_us_snowflake"),
        ) {
            d.insert(format!("rt.il.snowflake/{g}"), a / b);
        }
        d.insert(
            format!("rt.cpu.snowflake/{g}"),
            paired(ms, "roundtrip", "snowflake", g, "cpu_us", |a, b| b / a),
        );
    }
    if !series(ms, "roundtrip", "noop_pgrx", "tps").is_empty() {
        d.insert(
            "rt.tps.noop_pgrx/isn_weak".into(),
            paired(ms, "roundtrip", "noop_pgrx", "isn_weak", "tps", |a, b| {
                a / b
            }),
        );
    }
    for g in ["snowflake", "isn_weak", "noop_pgrx", "random", "uuidv7"] {
        let net = bulk_net(ms, g);
        if net.is_empty() {
            continue;
        }
        d.insert(
            format!("bulk.net_ns.{g}"),
            median(&net.iter().map(|x| x.1).collect::<Vec<_>>()),
        );
    }
    let sf = bulk_net(ms, "snowflake");
    let uu = bulk_net(ms, "uuidv7");
    if !uu.is_empty() {
        let v: Vec<f64> = sf
            .iter()
            .filter_map(|(r, a)| uu.iter().find(|x| x.0 == *r).map(|x| a / x.1))
            .collect();
        d.insert("bulk.net.snowflake/uuidv7".into(), median(&v));
    }
    // Sustained: the worst run among those that reached the bound; NaN when none did.
    let shares: Vec<f64> = ms
        .iter()
        .filter(|m| m.case == "sustained" && m.metric == "rate_at_bound" && m.value.is_finite())
        .map(|m| m.value / 4096.0)
        .collect();
    d.insert(
        "sustained.share_at_bound".into(),
        shares.iter().copied().fold(f64::NAN, f64::min),
    );
    for k in ["serial", "uuidv7"] {
        if series(ms, "inserts", k, "tps").is_empty() {
            continue;
        }
        d.insert(
            format!("ins.tps.sf/{k}"),
            paired(ms, "inserts", "sf", k, "tps", |a, b| a / b),
        );
        d.insert(
            format!("ins.cpu.sf/{k}"),
            paired(ms, "inserts", "sf", k, "cpu_us", |a, b| b / a),
        );
    }
    let last = |k: &str, metric: &str| -> Option<f64> {
        series(ms, "growth", k, metric)
            .into_iter()
            .max_by_key(|x| x.0)
            .map(|x| x.1)
    };
    let first = |k: &str, metric: &str| -> Option<f64> {
        series(ms, "growth", k, metric)
            .into_iter()
            .min_by_key(|x| x.0)
            .map(|x| x.1)
    };
    for k in ["serial", "uuidv7"] {
        if let (Some(a), Some(b)) = (last("sf", "pkey_bytes"), last(k, "pkey_bytes")) {
            d.insert(format!("growth.pkey.sf/{k}"), a / b);
        }
    }
    for k in ["sf", "serial", "uuidv7"] {
        if let (Some(a), Some(b)) = (first(k, "rows_per_s"), last(k, "rows_per_s")) {
            d.insert(format!("growth.rate_last/first.{k}"), b / a);
        }
    }
    for b in [2, 8] {
        for g in ["select1", "snowflake"] {
            let v: Vec<f64> = series(ms, "contention", g, &format!("ids_per_s_{b}"))
                .into_iter()
                .map(|x| x.1)
                .collect();
            if !v.is_empty() {
                d.insert(format!("cont.ids_per_s_{b}.{g}"), median(&v));
            }
        }
        if let Some(v) = value(ms, "contention", "snowflake", 1, &format!("duplicates_{b}")) {
            d.insert(format!("cont.duplicates_{b}"), v);
        }
    }
    // Instructions: net of the constant `1`, per statement and per call.
    let ir = |g: &str, metric: &str| value(ms, "instructions", g, 1, metric);
    for g in crate::cases::GENS {
        for (metric, key) in [("ir_per_stmt", "stmt"), ("ir_per_call", "call")] {
            if let (Some(v), Some(base)) = (ir(g.id, metric), ir("select1", metric)) {
                d.insert(format!("ir.{key}.{}", g.id), v);
                d.insert(format!("ir.{key}_net.{}", g.id), v - base);
            }
        }
    }
    d
}

pub struct Verdict<'a> {
    pub target: &'a Target,
    pub value: f64,
    pub met: bool,
}

pub fn evaluate(major: u32, d: &BTreeMap<String, f64>) -> Vec<Verdict<'static>> {
    TARGETS
        .iter()
        .filter(|t| major >= t.min_major)
        .map(|t| {
            let value = d.get(t.metric).copied().unwrap_or(f64::NAN);
            Verdict {
                target: t,
                value,
                met: value.is_finite() && t.cmp.holds(value, t.threshold),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_names_a_derived_figure() {
        // A full set of measurements for 18 yields every metric the targets name.
        let mut ms = Vec::new();
        for rep in 1..=3 {
            for g in [
                "snowflake",
                "isn_weak",
                "select1",
                "random",
                "nextval",
                "uuidv7",
            ] {
                ms.push(M::new("roundtrip", g, rep, "tps", 100.0));
                ms.push(M::new("roundtrip", g, rep, "cpu_us", 10.0));
                let cpu = if g == "select1" {
                    90.0
                } else {
                    100.0 + rep as f64
                };
                ms.push(M::new("bulk", g, rep, "cpu_ms", cpu));
                ms.push(M::new("bulk", g, rep, "ids", 1e6));
            }
            for k in ["sf", "serial", "uuidv7"] {
                ms.push(M::new("inserts", k, rep, "tps", 100.0));
                ms.push(M::new("inserts", k, rep, "cpu_us", 10.0));
                ms.push(M::new("growth", k, rep, "pkey_bytes", 1e6));
                ms.push(M::new("growth", k, rep, "rows_per_s", 1e5));
            }
        }
        ms.push(M::new("sustained", "1 backend", 1, "rate_at_bound", 4090.0));
        ms.push(M::new("contention", "snowflake", 1, "duplicates_2", 0.0));
        ms.push(M::new("contention", "snowflake", 1, "duplicates_8", 0.0));
        let d = derive(&ms);
        for t in TARGETS {
            assert!(
                d.get(t.metric).is_some_and(|v| v.is_finite()),
                "{}",
                t.metric
            );
        }
        assert!(evaluate(18, &d).iter().all(|v| v.value.is_finite()));
    }
}
