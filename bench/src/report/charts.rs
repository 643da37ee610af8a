//! The charts: rendered with gnuplot from the CSV files, and linked from each major's section.

use super::*;

/// The links to the charts the major's directory holds.
pub(super) fn section(w: &mut String, fig: &Figures, dir: &Path, rel: &str) {
    let major = fig.major;
    for (png, title) in [
        ("roundtrip.png", "round trip"),
        ("sustained.png", "sustained"),
        ("growth.png", "growth"),
    ] {
        if dir.join(png).exists() {
            let _ = writeln!(w, "![{title}, PostgreSQL {major}]({rel}/{png})\n");
        }
    }
}

fn gnuplot(dir: &Path, script: &str) -> Result<(), String> {
    let out = Command::new("gnuplot")
        .current_dir(dir)
        .arg("-e")
        .arg(script)
        .output()
        .map_err(|e| format!("cannot run gnuplot: {e}"))?;
    if !out.status.success() {
        return Err(format!("gnuplot: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// roundtrip.png, sustained.png and growth.png in `dir`, from its CSV files.
pub fn charts(dir: &Path) -> Result<(), String> {
    let meta = data::read_meta(dir);
    let ms = data::read_all(dir);
    let samples: Vec<Sample> = data::read_samples(dir);
    let d = derive(&ms);
    let sub = format!(
        "PostgreSQL {}, {}, {} cores, {}",
        meta_get(&meta, "major"),
        meta_get(&meta, "start"),
        meta_get(&meta, "cores"),
        meta_get(&meta, "cpu")
    )
    .replace('"', "'");
    let head = "set terminal pngcairo noenhanced size 1100,480 font 'DejaVu Sans,10'; set grid lc rgb '#dddddd'; ";

    roundtrip(dir, &d, head, &sub)?;
    sustained(dir, &samples, head, &sub)?;
    growth(dir, &ms, head, &sub)
}

/// roundtrip.png: snowflake's paired ratios to each reference. `head` sets up the terminal,
/// `sub` is the subtitle naming the run.
fn roundtrip(dir: &Path, d: &BTreeMap<String, f64>, head: &str, sub: &str) -> Result<(), String> {
    let mut dat = String::new();
    for g in GENS.iter().filter(|g| g.id != "snowflake") {
        if let (Some(t), Some(c)) = (
            d.get(&format!("rt.tps.snowflake/{}", g.id)),
            d.get(&format!("rt.cpu.snowflake/{}", g.id)),
        ) {
            let _ = writeln!(dat, "\"{}\" {t} {c}", g.label);
        }
    }
    data::write(&dir.join("roundtrip.dat"), &dat);
    gnuplot(
        dir,
        &format!(
            "{head} set output 'roundtrip.png'; set title \"snowflake_nextval() round trip relative to each reference (paired medians)\\n{sub}\"; \
             set style data histograms; set style histogram clustered gap 1; set style fill solid 0.85 noborder; \
             set yrange [0:*]; set ylabel 'snowflake / reference'; set key outside bottom center horizontal; \
             plot 'roundtrip.dat' using 2:xtic(1) title 'tps ratio' lc rgb '#4e79a7', \
             '' using 3 title 'CPU per call, reference / snowflake' lc rgb '#f28e2b', \
             0.97 with lines dt 2 lc rgb '#e15759' title 'target vs isn_weak(): 0.97'"
        ),
    )?;
    Ok(())
}

/// sustained.png: IDs issued and the lead over the clock.
fn sustained(dir: &Path, samples: &[Sample], head: &str, sub: &str) -> Result<(), String> {
    let mut runs: Vec<String> = Vec::new();
    for s in samples {
        if !runs.contains(&s.run) {
            runs.push(s.run.clone());
        }
    }
    let (mut p1, mut p2) = (Vec::new(), Vec::new());
    for (i, run) in runs.iter().enumerate() {
        let rs: Vec<&Sample> = samples.iter().filter(|s| &s.run == run).collect();
        // Time from the last sample before the first ID of the run.
        let i0 = rs[0].issued;
        let start = rs.iter().rposition(|s| s.issued == i0).unwrap_or(0);
        let t0 = rs[start].t_ms;
        let mut dat = String::new();
        for s in &rs[start..] {
            let _ = writeln!(
                dat,
                "{} {} {}",
                (s.t_ms - t0) / 1000.0,
                (s.issued - i0) as f64 / 1e6,
                s.drift_ms
            );
        }
        let file = format!("sustained_{i}.dat");
        data::write(&dir.join(&file), &dat);
        p1.push(format!("'{file}' using 1:2 with lines lw 2 title '{run}'"));
        p2.push(format!("'{file}' using 1:3 with lines lw 2 title '{run}'"));
    }
    if !runs.is_empty() {
        gnuplot(
            dir,
            &format!(
                "{head} set output 'sustained.png'; set multiplot layout 1,2 title \"snowflake_nextval() at full speed, sampled every 50 ms\\n{sub}\"; \
                 set key top left; set xlabel 'seconds since the first ID'; set ylabel 'IDs issued (millions)'; set yrange [0:*]; \
                 plot {}, x*4.096 with lines dt 2 lc rgb '#e15759' title '4,096 IDs/ms'; \
                 set ylabel 'lead of the newest ID over the clock (ms)'; set yrange [0:*]; plot {}; unset multiplot",
                p1.join(", "),
                p2.join(", ")
            ),
        )?;
    }
    Ok(())
}

/// growth.png: rate per batch and primary-key size.
fn growth(dir: &Path, ms: &[M], head: &str, sub: &str) -> Result<(), String> {
    let (mut p1, mut p2) = (Vec::new(), Vec::new());
    for (k, _, _, _) in KEYS {
        let rows = series(ms, "growth", k, "rows");
        if rows.is_empty() {
            continue;
        }
        let mut dat = String::new();
        for (b, r) in rows {
            let v = |m: &str| data::value(ms, "growth", k, b, m).unwrap_or(f64::NAN);
            let _ = writeln!(
                dat,
                "{} {} {}",
                r / 1e6,
                v("rows_per_s"),
                v("pkey_bytes") / 1048576.0
            );
        }
        let file = format!("growth_{k}.dat");
        data::write(&dir.join(&file), &dat);
        p1.push(format!(
            "'{file}' using 1:2 with linespoints pt 7 ps 0.6 lw 2 title '{}'",
            key_label(k)
        ));
        p2.push(format!(
            "'{file}' using 1:3 with linespoints pt 7 ps 0.6 lw 2 title '{}'",
            key_label(k)
        ));
    }
    if !p1.is_empty() {
        gnuplot(
            dir,
            &format!(
                "{head} set output 'growth.png'; set multiplot layout 1,2 title \"Insert growth: INSERT ... SELECT batches\\n{sub}\"; \
                 set xlabel 'rows in the table (millions)'; set yrange [0:*]; set key bottom right; set ylabel 'rows/s in the batch'; plot {}; \
                 set ylabel 'primary-key index (MiB)'; set key top left; plot {}; unset multiplot",
                p1.join(", "),
                p2.join(", ")
            ),
        )?;
    }
    Ok(())
}
