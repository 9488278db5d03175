//! The one table renderer of both harnesses, the number formats its cells
//! use, and the JSON writer.
//!
//! A [`Table`] is a header and rows of strings; it renders as aligned plain
//! text with a rule under the header. What goes in the columns is up to the
//! caller ([`crate::results`] for `aof-bench`, [`crate::compare::report`]
//! for `aof-compare`).

use serde::Serialize;
use std::fmt;
use std::path::Path;

/// A plain-text table: columns padded to their widest cell, numbers
/// right-aligned, the columns named in `left` left-aligned.
#[derive(Debug, Clone)]
pub struct Table {
    rows: Vec<Vec<String>>,
    left: Vec<usize>,
}

impl Table {
    /// A table with `header`, whose columns `left` (0-based) are left-aligned.
    #[must_use]
    pub fn new(header: &[&str], left: &[usize]) -> Self {
        Self {
            rows: vec![header.iter().map(|s| (*s).to_owned()).collect()],
            left: left.to_vec(),
        }
    }

    /// Adds a row; it should have one cell per column (missing cells are blank).
    pub fn push(&mut self, mut cells: Vec<String>) {
        cells.resize(self.rows[0].len(), String::new());
        self.rows.push(cells);
    }

    /// Rows below the header.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len() - 1
    }

    /// Whether there are no rows below the header.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols = self.rows[0].len();
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (i, row) in self.rows.iter().enumerate() {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate().take(cols) {
                if c > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(widths[c] - cell.chars().count());
                if self.left.contains(&c) {
                    line.push_str(cell);
                    line.push_str(&pad);
                } else {
                    line.push_str(&pad);
                    line.push_str(cell);
                }
            }
            writeln!(f, "{}", line.trim_end())?;
            if i == 0 {
                let rule = widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
                writeln!(f, "{}", "-".repeat(rule))?;
            }
        }
        Ok(())
    }
}

/// A rate with an SI suffix: `950.0`, `12.3k`, `4.56M`, `1.20G`.
#[must_use]
pub fn si(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.1}")
    }
}

/// A latency in µs with three significant figures or so; blank if absent
/// or not finite.
#[must_use]
pub fn us(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() && v >= 100.0 => format!("{v:.0}"),
        Some(v) if v.is_finite() && v >= 10.0 => format!("{v:.1}"),
        Some(v) if v.is_finite() => format!("{v:.2}"),
        _ => String::new(),
    }
}

/// A ratio with two decimals; blank if absent.
#[must_use]
pub fn ratio(x: Option<f64>) -> String {
    x.map(|x| format!("{x:.2}")).unwrap_or_default()
}

/// Writes `value` to `path` as pretty-printed JSON.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_a_rule_follows_the_header() {
        let mut t = Table::new(&["name", "rate", "note"], &[0, 2]);
        t.push(vec!["a".into(), "1.0k".into(), "x".into()]);
        t.push(vec!["longer".into(), "12.34M".into()]);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.to_string(),
            "name      rate  note\n\
             --------------------\n\
             a         1.0k  x\n\
             longer  12.34M\n"
        );
    }

    #[test]
    fn number_formats() {
        assert_eq!(si(950.0), "950.0");
        assert_eq!(si(12_345.0), "12.3k");
        assert_eq!(si(4_560_000.0), "4.56M");
        assert_eq!(si(1.2e9), "1.20G");
        assert_eq!(us(Some(137.4)), "137");
        assert_eq!(us(Some(12.34)), "12.3");
        assert_eq!(us(Some(1.234)), "1.23");
        assert_eq!(us(Some(f64::NAN)), "");
        assert_eq!(us(None), "");
        assert_eq!(ratio(Some(0.987)), "0.99");
        assert_eq!(ratio(None), "");
    }
}
