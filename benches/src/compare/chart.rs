//! The suite's chart: a hand-written SVG bar chart of ops/s, written next
//! to the JSON.

use super::{Backend, CompareResult};
use crate::report::si;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

/// Writes [`svg`] next to `json_path` (same name, `.svg`) and returns its path.
pub fn write_svg(json_path: &Path, results: &[CompareResult]) -> std::io::Result<PathBuf> {
    let path = json_path.with_extension("svg");
    std::fs::write(&path, svg(results).map_err(std::io::Error::other)?)?;
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
pub fn svg(results: &[CompareResult]) -> Result<String, fmt::Error> {
    let mut s = String::new();
    draw(&mut s, results)?;
    Ok(s)
}

fn draw(s: &mut String, results: &[CompareResult]) -> fmt::Result {
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

    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    )?;
    writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#)?;
    writeln!(
        s,
        r#"<text x="{left}" y="18" font-size="14" font-weight="bold">aof segment index: SQLite vs MDBX, ops/s (log scale)</text>"#
    )?;
    for (i, (label, colour)) in SERIES.iter().enumerate() {
        let x = left + i as f64 * 120.0;
        writeln!(
            s,
            r#"<rect x="{x}" y="28" width="10" height="10" fill="{colour}"/><text x="{}" y="37">{}</text>"#,
            x + 14.0,
            escape(label)
        )?;
    }
    for (p, &size) in sizes.iter().enumerate() {
        let y0 = top + panel_h * p as f64 + 20.0;
        writeln!(
            s,
            r#"<text x="{left}" y="{}" font-weight="bold">{size} segments</text>"#,
            y0 - 6.0
        )?;
        for d in lo_dec..=hi_dec {
            let v = 10f64.powi(d);
            let y = y_of(v, y0);
            writeln!(
                s,
                r##"<line x1="{left}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + plot_w,
                left - 4.0,
                y + 4.0,
                decade(d)
            )?;
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
                writeln!(
                    s,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{} {} {size}: {}/s</title></rect>"#,
                    bar_w - 1.0,
                    y0 + plot_h - y,
                    escape(label),
                    escape(w),
                    escape(&si(v))
                )?;
            }
            let lx = gx + bar_w * 2.0;
            let ly = y0 + plot_h + 10.0;
            writeln!(
                s,
                r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="end" transform="rotate(-45 {lx:.1} {ly:.1})">{}</text>"#,
                escape(w)
            )?;
        }
        writeln!(
            s,
            r#"<line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="black"/>"#,
            left + plot_w,
            y0 + plot_h,
            y0 + plot_h
        )?;
    }
    s.push_str("</svg>\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::report::tests::{fakes, scratch};

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
}
