//! The suite's outputs: terminal tables, JSON, and a hand-written SVG chart.

use super::{Backend, CLAIMS_SOURCE, CompareResult, DESIGN_SQLITE_OVER_MDBX};
use crate::si;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// SQLite against MDBX on one workload and size.
#[derive(Debug, Clone, Serialize)]
pub struct Versus {
    /// The workload.
    pub workload: String,
    /// Segments in the index.
    pub segments: u64,
    /// SQLite backend rate (for `file_size`: bytes per segment).
    pub sqlite: f64,
    /// MDBX backend rate (for `file_size`: bytes per segment).
    pub mdbx: f64,
    /// `sqlite / mdbx`: the figure the design puts at 0.70–0.80.
    pub sqlite_over_mdbx: f64,
    /// The same ratio between the two raw baselines.
    pub raw_sqlite_over_raw_mdbx: Option<f64>,
}

/// Pairs every SQLite line with the MDBX line of the same workload and size.
#[must_use]
pub fn versus(results: &[CompareResult]) -> Vec<Versus> {
    let value = |r: &CompareResult| r.ops_per_sec.or(r.bytes_per_segment);
    let base = |r: &CompareResult| r.baseline_ops_per_sec.or(r.baseline_bytes_per_segment);
    results
        .iter()
        .filter(|r| r.backend == Backend::Sqlite)
        .filter_map(|s| {
            let m = results.iter().find(|m| {
                m.backend == Backend::Mdbx && m.workload == s.workload && m.segments == s.segments
            })?;
            let (sv, mv) = (value(s)?, value(m)?);
            Some(Versus {
                workload: s.workload.clone(),
                segments: s.segments,
                sqlite: sv,
                mdbx: mv,
                sqlite_over_mdbx: sv / mv,
                raw_sqlite_over_raw_mdbx: base(s).zip(base(m)).map(|(a, b)| a / b),
            })
        })
        .collect()
}

fn fmt_us(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() && v >= 100.0 => format!("{v:.0}"),
        Some(v) if v.is_finite() && v >= 10.0 => format!("{v:.1}"),
        Some(v) if v.is_finite() => format!("{v:.2}"),
        _ => String::new(),
    }
}

fn render(rows: &[Vec<String>], left: &[usize]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let pad = " ".repeat(widths[c] - cell.chars().count());
                if left.contains(&c) {
                    format!("{cell}{pad}")
                } else {
                    format!("{pad}{cell}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1)));
            out.push('\n');
        }
    }
    out
}

/// The main table: every line beside its raw baseline and its claim.
#[must_use]
pub fn table(results: &[CompareResult]) -> String {
    let header = [
        "backend",
        "workload",
        "segments",
        "ops/s",
        "p50 µs",
        "p99 µs",
        "raw ops/s",
        "raw p50",
        "raw p99",
        "ratio",
        "claimed",
        "verdict",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    for r in results {
        let (rate, raw) = match (r.bytes_per_segment, r.baseline_bytes_per_segment) {
            (Some(b), Some(rb)) => (format!("{b:.0} B/seg"), format!("{rb:.0} B/seg")),
            _ => (
                r.ops_per_sec.map(si).unwrap_or_default(),
                r.baseline_ops_per_sec.map(si).unwrap_or_default(),
            ),
        };
        rows.push(vec![
            r.backend.name().to_owned(),
            r.workload.clone(),
            r.segments.to_string(),
            rate,
            fmt_us(r.p50_us),
            fmt_us(r.p99_us),
            raw,
            fmt_us(r.baseline_p50_us),
            fmt_us(r.baseline_p99_us),
            r.ratio_to_baseline.map(|x| format!("{x:.2}")).unwrap_or_default(),
            r.claimed.clone().unwrap_or_default(),
            match r.target_met {
                Some(true) => "met".to_owned(),
                Some(false) => "MISSED".to_owned(),
                None => String::new(),
            },
        ]);
    }
    format!(
        "{CLAIMS_SOURCE}\nratio = backend / raw baseline in the same run, median of per-round ratios \
         (file_size: bytes / raw bytes). Latencies are per call: an insert_batched call adds the whole index (or --batch N); \
         sync times sync() alone.\n\n{}",
        render(&rows, &[0, 1, 10, 11])
    )
}

/// SQLite / MDBX per workload and size, beside the design's 70–80 % claim.
#[must_use]
pub fn versus_table(results: &[CompareResult]) -> String {
    let (lo, hi) = DESIGN_SQLITE_OVER_MDBX;
    let header = [
        "workload",
        "segments",
        "sqlite",
        "mdbx",
        "sqlite/mdbx",
        "raw/raw",
        "design claim",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    for v in versus(results) {
        let size = v.workload == "file_size";
        let show = |x: f64| if size { format!("{x:.0} B/seg") } else { si(x) };
        rows.push(vec![
            v.workload.clone(),
            v.segments.to_string(),
            show(v.sqlite),
            show(v.mdbx),
            format!("{:.2}", v.sqlite_over_mdbx),
            v.raw_sqlite_over_raw_mdbx
                .map(|x| format!("{x:.2}"))
                .unwrap_or_default(),
            if size {
                "(bytes, not speed)".to_owned()
            } else {
                format!("{lo:.2}–{hi:.2}")
            },
        ]);
    }
    render(&rows, &[0, 6])
}

/// Writes `{"claimed_source", "results": [...], "sqlite_vs_mdbx": [...]}`.
pub fn write_json(path: &Path, results: &[CompareResult]) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Out<'a> {
        claimed_source: &'a str,
        design_sqlite_over_mdbx: (f64, f64),
        results: &'a [CompareResult],
        sqlite_vs_mdbx: Vec<Versus>,
    }
    let json = serde_json::to_vec_pretty(&Out {
        claimed_source: CLAIMS_SOURCE,
        design_sqlite_over_mdbx: DESIGN_SQLITE_OVER_MDBX,
        results,
        sqlite_vs_mdbx: versus(results),
    })
    .map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}

/// Writes [`svg`] next to `json_path` (same name, `.svg`) and returns its path.
pub fn write_svg(json_path: &Path, results: &[CompareResult]) -> std::io::Result<PathBuf> {
    let path = json_path.with_extension("svg");
    std::fs::write(&path, svg(results))?;
    Ok(path)
}

/// `10^d` as a short axis label: 1, 10, 100, 1k, …, 1G.
fn decade(d: i32) -> String {
    const UNITS: [&str; 4] = ["", "k", "M", "G"];
    if d < 0 {
        return format!("1e{d}");
    }
    let d = d as usize;
    match UNITS.get(d / 3) {
        Some(unit) => format!("{}{unit}", 10usize.pow((d % 3) as u32)),
        None => format!("1e{d}"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Bars of the chart: (label, colour) of the backend and of its baseline.
const SERIES: [(&str, &str); 4] = [
    ("sqlite", "#1f6fb4"),
    ("raw rusqlite", "#9ec5e8"),
    ("mdbx", "#c23b22"),
    ("raw libmdbx", "#f4a582"),
];

/// A bar chart of ops/s per workload (log scale), one panel per size, with
/// the backends and their raw baselines side by side.
#[must_use]
pub fn svg(results: &[CompareResult]) -> String {
    let rated: Vec<&CompareResult> = results.iter().filter(|r| r.ops_per_sec.is_some()).collect();
    let mut sizes: Vec<u64> = rated.iter().map(|r| r.segments).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut workloads: Vec<&str> = Vec::new();
    for r in &rated {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
    }
    let values = rated
        .iter()
        .flat_map(|r| [r.ops_per_sec, r.baseline_ops_per_sec])
        .flatten()
        .filter(|x| *x > 0.0 && x.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (lo_dec, hi_dec) = if hi > 0.0 {
        (
            lo.log10().floor() as i32,
            (hi.log10().ceil() as i32).max(lo.log10().floor() as i32 + 1),
        )
    } else {
        (0, 1)
    };

    let (left, right, top) = (70.0, 20.0, 50.0);
    let bar_w = 9.0;
    let group_w = bar_w * 4.0 + 14.0;
    let plot_w = group_w * workloads.len().max(1) as f64;
    let plot_h = 220.0;
    let label_h = 120.0;
    let panel_h = plot_h + label_h + 30.0;
    let width = left + plot_w + right;
    let height = top + panel_h * sizes.len().max(1) as f64 + 10.0;
    let y_of = |v: f64, y0: f64| {
        let t = (v.log10() - f64::from(lo_dec)) / f64::from(hi_dec - lo_dec);
        y0 + plot_h * (1.0 - t.clamp(0.0, 1.0))
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="18" font-size="14" font-weight="bold">aof segment index: SQLite vs MDBX, ops/s (log scale)</text>"#
    );
    for (i, (label, colour)) in SERIES.iter().enumerate() {
        let x = left + i as f64 * 120.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="28" width="10" height="10" fill="{colour}"/><text x="{}" y="37">{}</text>"#,
            x + 14.0,
            escape(label)
        );
    }
    for (p, &size) in sizes.iter().enumerate() {
        let y0 = top + panel_h * p as f64 + 20.0;
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="{}" font-weight="bold">{size} segments</text>"#,
            y0 - 6.0
        );
        for d in lo_dec..=hi_dec {
            let v = 10f64.powi(d);
            let y = y_of(v, y0);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + plot_w,
                left - 4.0,
                y + 4.0,
                decade(d)
            );
        }
        for (g, w) in workloads.iter().enumerate() {
            let gx = left + g as f64 * group_w + 7.0;
            let bars = [Backend::Sqlite, Backend::Mdbx].into_iter().flat_map(|b| {
                let r = rated
                    .iter()
                    .find(|r| r.backend == b && r.workload == *w && r.segments == size);
                [
                    r.and_then(|r| r.ops_per_sec),
                    r.and_then(|r| r.baseline_ops_per_sec),
                ]
            });
            for (i, v) in bars.enumerate() {
                let Some(v) = v.filter(|v| *v > 0.0 && v.is_finite()) else {
                    continue;
                };
                let (label, colour) = SERIES[i];
                let x = gx + i as f64 * bar_w;
                let y = y_of(v, y0);
                let _ = writeln!(
                    s,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{} {} {size}: {}/s</title></rect>"#,
                    bar_w - 1.0,
                    y0 + plot_h - y,
                    escape(label),
                    escape(w),
                    escape(&si(v))
                );
            }
            let lx = gx + bar_w * 2.0;
            let ly = y0 + plot_h + 10.0;
            let _ = writeln!(
                s,
                r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="end" transform="rotate(-45 {lx:.1} {ly:.1})">{}</text>"#,
                escape(w)
            );
        }
        let _ = writeln!(
            s,
            r#"<line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="black"/>"#,
            left + plot_w,
            y0 + plot_h,
            y0 + plot_h
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::measure::Side;

    fn fake(backend: Backend, workload: &str, rate: f64, raw: f64) -> CompareResult {
        let side = |rate| Side {
            rate,
            p50_us: 1.5,
            p99_us: 9.0,
        };
        CompareResult::measured(backend, workload.to_owned(), 10_000, "lookups/s", "raw").with_sides(
            side(rate),
            side(raw),
            rate / raw,
            (rate / raw, rate / raw),
        )
    }

    /// A fresh directory under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aof-compare-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn fakes() -> Vec<CompareResult> {
        let mut size = CompareResult::measured(
            Backend::Sqlite,
            "file_size".into(),
            10_000,
            "bytes/segment",
            "raw",
        );
        size.bytes_per_segment = Some(200.0);
        size.baseline_bytes_per_segment = Some(180.0);
        let mut msize = size.clone();
        msize.backend = Backend::Mdbx;
        msize.bytes_per_segment = Some(250.0);
        vec![
            fake(Backend::Sqlite, "find_segment_for_id", 260e3, 300e3),
            fake(Backend::Mdbx, "find_segment_for_id", 1.2e6, 1.7e6),
            fake(Backend::Sqlite, "a<b&c", 10.0, 20.0),
            size,
            msize,
        ]
    }

    #[test]
    fn json_has_one_object_per_line_and_the_comparison() {
        let dir = scratch("json");
        let path = dir.join("out.json");
        write_json(&path, &fakes()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 5);
        let first = &results[0];
        assert_eq!(first["backend"], "sqlite");
        assert_eq!(first["workload"], "find_segment_for_id");
        assert_eq!(first["segments"], 10_000);
        assert_eq!(first["ops_per_sec"], 260e3);
        assert_eq!(first["p50_us"], 1.5);
        assert_eq!(first["p99_us"], 9.0);
        assert!(first["ratio_to_baseline"].as_f64().unwrap() > 0.86);
        assert_eq!(first["target_met"], true);
        assert_eq!(results[1]["target_met"], false);
        let vs = v["sqlite_vs_mdbx"].as_array().unwrap();
        assert_eq!(vs.len(), 2);
        let lookup = vs
            .iter()
            .find(|x| x["workload"] == "find_segment_for_id")
            .unwrap();
        assert!((lookup["sqlite_over_mdbx"].as_f64().unwrap() - 260e3 / 1.2e6).abs() < 1e-9);
        let size = vs.iter().find(|x| x["workload"] == "file_size").unwrap();
        assert_eq!(size["sqlite_over_mdbx"], 0.8);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn svg_sits_next_to_the_json_and_is_well_formed() {
        let dir = scratch("svg");
        let path = write_svg(&dir.join("out.json"), &fakes()).unwrap();
        assert_eq!(path, dir.join("out.svg"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
        assert_eq!(
            text.matches("<rect").count(),
            1 + 4 + 6,
            "background, legend, six bars"
        );
        assert!(text.contains("a&lt;b&amp;c") && !text.contains("a<b"));
        assert!(!text.contains("NaN") && !text.contains("inf"));
        assert!(text.contains(">10k</text>") && text.contains(">1M</text>"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tables_show_claims_and_verdicts() {
        let t = table(&fakes());
        assert!(t.contains("issue 3"));
        assert!(t.contains("≥250k/s") && t.contains("met") && t.contains("MISSED"));
        assert!(t.contains("200 B/seg"));
        let v = versus_table(&fakes());
        assert!(v.contains("0.22") && v.contains("0.70–0.80"));
    }
}
