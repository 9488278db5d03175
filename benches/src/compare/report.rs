//! The suite's tables and JSON, drawn with the harness's one renderer
//! ([`crate::report`]); the chart is in [`super::chart`].

use super::{Backend, CLAIMS_SOURCE, CompareResult, DESIGN_SQLITE_OVER_MDBX};
use crate::report::{Table, ratio, si, us};
use serde::Serialize;
use std::path::Path;

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

/// The main table: every line beside its raw baseline and its claim.
#[must_use]
pub fn table(results: &[CompareResult]) -> String {
    let mut t = Table::new(
        &[
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
        ],
        &[0, 1, 10, 11],
    );
    for r in results {
        let (rate, raw) = match (r.bytes_per_segment, r.baseline_bytes_per_segment) {
            (Some(b), Some(rb)) => (format!("{b:.0} B/seg"), format!("{rb:.0} B/seg")),
            _ => (
                r.ops_per_sec.map(si).unwrap_or_default(),
                r.baseline_ops_per_sec.map(si).unwrap_or_default(),
            ),
        };
        t.push(vec![
            r.backend.name().to_owned(),
            r.workload.clone(),
            r.segments.to_string(),
            rate,
            us(r.p50_us),
            us(r.p99_us),
            raw,
            us(r.baseline_p50_us),
            us(r.baseline_p99_us),
            ratio(r.ratio_to_baseline),
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
         sync times sync() alone.\n\n{t}"
    )
}

/// SQLite / MDBX per workload and size, beside the design's 70–80 % claim.
#[must_use]
pub fn versus_table(results: &[CompareResult]) -> String {
    let (lo, hi) = DESIGN_SQLITE_OVER_MDBX;
    let mut t = Table::new(
        &[
            "workload",
            "segments",
            "sqlite",
            "mdbx",
            "sqlite/mdbx",
            "raw/raw",
            "design claim",
        ],
        &[0, 6],
    );
    for v in versus(results) {
        let size = v.workload == "file_size";
        let show = |x: f64| if size { format!("{x:.0} B/seg") } else { si(x) };
        t.push(vec![
            v.workload.clone(),
            v.segments.to_string(),
            show(v.sqlite),
            show(v.mdbx),
            ratio(Some(v.sqlite_over_mdbx)),
            ratio(v.raw_sqlite_over_raw_mdbx),
            if size {
                "(bytes, not speed)".to_owned()
            } else {
                format!("{lo:.2}–{hi:.2}")
            },
        ]);
    }
    t.to_string()
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
    crate::report::write_json(
        path,
        &Out {
            claimed_source: CLAIMS_SOURCE,
            design_sqlite_over_mdbx: DESIGN_SQLITE_OVER_MDBX,
            results,
            sqlite_vs_mdbx: versus(results),
        },
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::measure::Side;
    use std::path::PathBuf;

    fn fake(backend: Backend, workload: &str, rate: f64, raw: f64) -> CompareResult {
        let side = |rate| Side {
            rate,
            p50_us: Some(1.5),
            p99_us: Some(9.0),
        };
        CompareResult::measured(backend, workload.to_owned(), 10_000, "lookups/s", "raw").with_sides(
            side(rate),
            side(raw),
            rate / raw,
            (rate / raw, rate / raw),
        )
    }

    /// A fresh directory under the system's temporary directory.
    pub(crate) fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aof-compare-test-{}-{name}", std::process::id()));
        crate::scratch::fresh_dir(&dir).unwrap();
        dir
    }

    pub(crate) fn fakes() -> Vec<CompareResult> {
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
    fn tables_show_claims_and_verdicts() {
        let t = table(&fakes());
        assert!(t.contains("issue 3"));
        assert!(t.contains("≥250k/s") && t.contains("met") && t.contains("MISSED"));
        assert!(t.contains("200 B/seg"));
        let v = versus_table(&fakes());
        assert!(v.contains("0.22") && v.contains("0.70–0.80"));
    }
}
