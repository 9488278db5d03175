//! Progress on standard error: one line per case, so a log shows which
//! table and case is running; on a terminal also a bar below the lines.

use indicatif::{ProgressBar, ProgressStyle};

/// Counts the cases of a run and announces each one on standard error.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    who: &'static str,
}

impl Progress {
    /// Progress of `who` (the program's name) over `cases` cases.
    #[must_use]
    pub fn new(who: &'static str, cases: u64) -> Self {
        let bar = ProgressBar::new(cases);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
        {
            bar.set_style(style);
        }
        Self { bar, who }
    }

    /// A new case starts: counts it and prints `who [k/n mm:ss] what`.
    pub fn case(&self, what: &str) {
        self.bar.inc(1);
        self.line(&format!(
            "[{}/{}] {what}",
            self.bar.position(),
            self.bar.length().unwrap_or(0)
        ));
        self.bar.set_message(what.to_owned());
    }

    /// Prints `who [mm:ss] what` without counting a case.
    pub fn note(&self, what: &str) {
        self.line(what);
        self.bar.set_message(what.to_owned());
    }

    fn line(&self, what: &str) {
        let secs = self.bar.elapsed().as_secs();
        let line = format!("{} {:>3}:{:02} {what}", self.who, secs / 60, secs % 60);
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Removes the bar (the lines stay).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
