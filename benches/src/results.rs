//! What `aof-bench` reports: one [`BenchResult`] per line, its table and
//! its JSON (`{"results": [...]}`).

use crate::measure::Side;
use crate::report::{Table, ratio, si, us, write_json};
use serde::Serialize;
use std::path::Path;

/// One line of results: a workload on one configuration, or a baseline.
///
/// Serialised as one object of `{"results": [...]}`; fields that do not apply
/// are `null`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// What was measured, e.g. `record_encode`, `baseline_memcpy`.
    pub workload: String,
    /// Flush strategy, where one applies.
    pub strategy: Option<String>,
    /// Payload size in bytes.
    pub record_size: usize,
    /// Concurrent appenders (1 where not applicable).
    pub appenders: usize,
    /// Median records per second.
    pub records_per_sec: f64,
    /// Median payload-and-header bytes per second.
    pub bytes_per_sec: f64,
    /// Median per-operation latency, where measured.
    pub p50_us: Option<f64>,
    /// 99th percentile per-operation latency, where measured.
    pub p99_us: Option<f64>,
    /// The baseline's records per second, measured in the same run.
    pub baseline_records_per_sec: Option<f64>,
    /// `records_per_sec / baseline_records_per_sec`, median over paired rounds.
    pub ratio_to_baseline: Option<f64>,
    /// The target this figure is judged against, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether the target was met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_met: Option<bool>,
}

impl BenchResult {
    /// A line of `workload` at `record_size` bytes: `records_per_sec` and
    /// `bytes_per_sec`, one appender, nothing else.
    #[must_use]
    pub fn new(
        workload: impl Into<String>,
        record_size: usize,
        records_per_sec: f64,
        bytes_per_sec: f64,
    ) -> Self {
        Self {
            workload: workload.into(),
            strategy: None,
            record_size,
            appenders: 1,
            records_per_sec,
            bytes_per_sec,
            p50_us: None,
            p99_us: None,
            baseline_records_per_sec: None,
            ratio_to_baseline: None,
            target: None,
            target_met: None,
        }
    }

    /// A line from a measured side; bytes per second count `bytes_per_record`.
    #[must_use]
    pub fn of_side(
        workload: impl Into<String>,
        record_size: usize,
        bytes_per_record: usize,
        side: Side,
    ) -> Self {
        Self::new(
            workload,
            record_size,
            side.rate,
            side.rate * bytes_per_record as f64,
        )
        .latency(side.p50_us, side.p99_us)
    }

    /// With a flush strategy.
    #[must_use]
    pub fn strategy(mut self, strategy: impl Into<String>) -> Self {
        self.strategy = Some(strategy.into());
        self
    }

    /// With `n` concurrent appenders.
    #[must_use]
    pub fn appenders(mut self, n: usize) -> Self {
        self.appenders = n;
        self
    }

    /// With per-operation latency percentiles, µs.
    #[must_use]
    pub fn latency(mut self, p50_us: Option<f64>, p99_us: Option<f64>) -> Self {
        self.p50_us = p50_us;
        self.p99_us = p99_us;
        self
    }

    /// With the same-run baseline's rate and the ratio to it.
    #[must_use]
    pub fn baseline(mut self, records_per_sec: f64, ratio: f64) -> Self {
        self.baseline_records_per_sec = Some(records_per_sec);
        self.ratio_to_baseline = Some(ratio);
        self
    }

    /// Judged against `target`, which was `met` or not.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>, met: bool) -> Self {
        self.target = Some(target.into());
        self.target_met = Some(met);
        self
    }
}

/// Renders results as a plain-text table.
#[must_use]
pub fn table(results: &[BenchResult]) -> String {
    let mut t = Table::new(
        &[
            "workload",
            "strategy",
            "size",
            "thr",
            "records/s",
            "MB/s",
            "p50 µs",
            "p99 µs",
            "baseline/s",
            "ratio",
            "target",
        ],
        &[0, 1, 10],
    );
    for r in results {
        t.push(vec![
            r.workload.clone(),
            r.strategy.clone().unwrap_or_default(),
            r.record_size.to_string(),
            r.appenders.to_string(),
            if r.records_per_sec > 0.0 {
                si(r.records_per_sec)
            } else {
                String::new()
            },
            if r.bytes_per_sec > 0.0 {
                format!("{:.0}", r.bytes_per_sec / 1e6)
            } else {
                String::new()
            },
            us(r.p50_us),
            us(r.p99_us),
            r.baseline_records_per_sec.map(si).unwrap_or_default(),
            ratio(r.ratio_to_baseline),
            match (&r.target, r.target_met) {
                (Some(t), Some(true)) => format!("{t}: met"),
                (Some(t), Some(false)) => format!("{t}: MISSED"),
                (Some(t), None) => t.clone(),
                _ => String::new(),
            },
        ]);
    }
    t.to_string()
}

/// Writes `{"results": [...]}` to `path`.
pub fn write_results(path: &Path, results: &[BenchResult]) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Out<'a> {
        results: &'a [BenchResult],
    }
    write_json(path, &Out { results })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_json_keep_their_shape() {
        let rows = [
            BenchResult::new("append", 64, 4.76e6, 4.76e6 * 64.0)
                .strategy("Async")
                .baseline(1.31e6, 3.64)
                .target("≥ 5M records/s", false),
            BenchResult::new("append_to_tail_wakeup", 8, 0.0, 0.0)
                .strategy("Sync")
                .latency(Some(166.2), Some(306.0)),
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("workload") && lines[0].ends_with("target"));
        assert!(lines[1].chars().all(|c| c == '-'));
        assert!(lines[2].contains("4.76M") && lines[2].contains("305") && lines[2].contains("1.31M"));
        assert!(lines[2].ends_with("≥ 5M records/s: MISSED"));
        assert!(lines[3].contains("166") && lines[3].contains("306"));

        let dir = std::env::temp_dir().join(format!("aof-bench-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.json");
        write_results(&path, &rows).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["workload"], "append");
        assert_eq!(results[0]["ratio_to_baseline"], 3.64);
        assert_eq!(results[0]["target_met"], false);
        assert!(results[1]["baseline_records_per_sec"].is_null());
        assert!(results[1].get("target").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
