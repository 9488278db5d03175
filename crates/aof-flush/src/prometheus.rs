//! Renders a [`FlushMetricsSnapshot`] in the Prometheus text exposition
//! format (version 0.0.4).

use crate::metrics::{FlushMetricsSnapshot, Percentiles};
use crate::policy::FlushKind;
use std::fmt::Write as _;

/// Renders `snapshot` as Prometheus text exposition format, every metric
/// name starting with `prefix` and an underscore (`aof_flush` gives
/// `aof_flush_flushes_total`). Characters not allowed in a metric name are
/// replaced by `_`; an empty prefix gives bare names.
///
/// Families, each with `# HELP` and `# TYPE`:
///
/// | name (after the prefix) | type | labels |
/// |---|---|---|
/// | `flushes_total` | counter | `outcome` = `success` / `failure` |
/// | `flushes_by_kind_total` | counter | `kind` = `forced` / `periodic` / `batched` |
/// | `records_flushed_total`, `bytes_flushed_total` | counter | |
/// | `pending_records`, `pending_bytes` | gauge | |
/// | `flush_duration_seconds` | summary (`quantile`, `_sum`, `_count`) | |
/// | `flush_duration_longest_seconds`, `flush_duration_shortest_seconds` | gauge (absent before the first flush) | |
/// | `records_per_flush`, `bytes_per_flush` | summary | |
/// | `records_per_second`, `bytes_per_second` | gauge (recent window) | |
/// | `flush_success_ratio`, `average_record_size_bytes` | gauge | |
///
/// ```
/// use aof_flush::{render_prometheus, FlushControllerMetrics, FlushKind};
/// use std::time::Duration;
///
/// let m = FlushControllerMetrics::new();
/// m.record_flush(FlushKind::Batched, 100, 6_400, Duration::from_micros(800), true);
/// let text = render_prometheus(&m.snapshot(), "aof_flush");
/// assert!(text.contains("aof_flush_flushes_total{outcome=\"success\"} 1\n"));
/// assert!(text.contains("aof_flush_records_flushed_total 100\n"));
/// ```
#[must_use]
pub fn render_prometheus(snapshot: &FlushMetricsSnapshot, prefix: &str) -> String {
    let mut out = Renderer {
        out: String::with_capacity(4096),
        prefix: sanitize(prefix),
    };
    let s = snapshot;

    out.family("flushes_total", "counter", "Flushes recorded, by outcome.");
    out.sample("flushes_total", "outcome=\"success\"", s.successful_flushes);
    out.sample("flushes_total", "outcome=\"failure\"", s.failed_flushes);

    out.family(
        "flushes_by_kind_total",
        "counter",
        "Flushes recorded, successful or not, by what triggered them.",
    );
    for (kind, n) in [
        (FlushKind::Forced, s.forced_flushes),
        (FlushKind::Periodic, s.periodic_flushes),
        (FlushKind::Batched, s.batched_flushes),
    ] {
        out.sample("flushes_by_kind_total", &format!("kind=\"{kind}\""), n);
    }

    out.single(
        "records_flushed_total",
        "counter",
        "Records made durable.",
        s.records_flushed,
    );
    out.single(
        "bytes_flushed_total",
        "counter",
        "Bytes made durable.",
        s.bytes_flushed,
    );
    out.single(
        "pending_records",
        "gauge",
        "Records appended and not yet durable.",
        s.pending_records,
    );
    out.single(
        "pending_bytes",
        "gauge",
        "Bytes appended and not yet durable.",
        s.pending_bytes,
    );

    out.summary(
        "flush_duration_seconds",
        "Latency of successful flushes.",
        &s.flush_latency_us,
        1e6,
        ns_to_seconds(s.total_flush_time_ns),
        s.successful_flushes,
    );
    if let Some(ns) = s.longest_flush_ns {
        out.single(
            "flush_duration_longest_seconds",
            "gauge",
            "Longest successful flush.",
            ns_to_seconds(ns),
        );
    }
    if let Some(ns) = s.shortest_flush_ns {
        out.single(
            "flush_duration_shortest_seconds",
            "gauge",
            "Shortest successful flush.",
            ns_to_seconds(ns),
        );
    }
    out.summary(
        "records_per_flush",
        "Records made durable per successful flush.",
        &s.records_per_flush,
        1.0,
        s.records_flushed as f64,
        s.successful_flushes,
    );
    out.summary(
        "bytes_per_flush",
        "Bytes made durable per successful flush.",
        &s.bytes_per_flush,
        1.0,
        s.bytes_flushed as f64,
        s.successful_flushes,
    );

    out.single(
        "records_per_second",
        "gauge",
        "Records made durable per second over the recent window.",
        s.records_per_second,
    );
    out.single(
        "bytes_per_second",
        "gauge",
        "Bytes made durable per second over the recent window.",
        s.bytes_per_second,
    );
    out.single(
        "flush_success_ratio",
        "gauge",
        "Successful flushes as a fraction of all flushes.",
        s.flush_success_rate,
    );
    out.single(
        "average_record_size_bytes",
        "gauge",
        "Mean bytes per flushed record.",
        s.average_record_size,
    );
    out.out
}

fn ns_to_seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Keeps `[a-zA-Z0-9_:]`, replaces anything else with `_`, and prefixes `_`
/// if the name would start with a digit.
fn sanitize(prefix: &str) -> String {
    let mut s: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// A sample value in the exposition format.
trait Value {
    fn write(&self, out: &mut String);
}

impl Value for u64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            // `Display` never uses exponent notation and round-trips exactly.
            let _ = write!(out, "{self}");
        }
    }
}

struct Renderer {
    out: String,
    prefix: String,
}

impl Renderer {
    fn name(&mut self, name: &str) {
        if !self.prefix.is_empty() {
            self.out.push_str(&self.prefix);
            self.out.push('_');
        }
        self.out.push_str(name);
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        self.out.push_str("# HELP ");
        self.name(name);
        self.out.push(' ');
        self.out.push_str(help);
        self.out.push_str("\n# TYPE ");
        self.name(name);
        self.out.push(' ');
        self.out.push_str(kind);
        self.out.push('\n');
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl Value) {
        self.name(name);
        if !labels.is_empty() {
            self.out.push('{');
            self.out.push_str(labels);
            self.out.push('}');
        }
        self.out.push(' ');
        value.write(&mut self.out);
        self.out.push('\n');
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Value) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }

    /// A summary whose quantile values are `p`'s divided by `divisor` (a
    /// division, not a multiplication by the inverse: 91 µs renders as
    /// 0.000091 s, not 0.00009099999999999999).
    fn summary(&mut self, name: &str, help: &str, p: &Percentiles, divisor: f64, sum: f64, count: u64) {
        self.family(name, "summary", help);
        for ((label, _), v) in Percentiles::QUANTILES.iter().zip(p.values()) {
            self.sample(name, &format!("quantile=\"{label}\""), v as f64 / divisor);
        }
        self.sample(&format!("{name}_sum"), "", sum);
        self.sample(&format!("{name}_count"), "", count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_sanitised() {
        assert_eq!(sanitize("aof_flush"), "aof_flush");
        assert_eq!(sanitize("my-log.0"), "my_log_0");
        assert_eq!(sanitize("0log"), "_0log");
        assert_eq!(sanitize("ns:sub"), "ns:sub");
        assert_eq!(sanitize(""), "");
    }

    #[test]
    fn floats_render_as_prometheus_reads_them() {
        let render = |v: f64| {
            let mut s = String::new();
            v.write(&mut s);
            s
        };
        assert_eq!(render(0.5), "0.5");
        assert_eq!(render(1e-7), "0.0000001");
        assert_eq!(render(f64::NAN), "NaN");
        assert_eq!(render(f64::INFINITY), "+Inf");
        assert_eq!(render(f64::NEG_INFINITY), "-Inf");
    }
}
