//! `aof tail [-f]`: the last records of a log, then (with `-f`) each new one
//! as a writer in another process appends it.
//!
//! Everything goes through the library's read-only view (no lock taken,
//! nothing written); its [`aof::Tail`] polls the files for new records. A
//! writer that truncates the log under the view makes it outdated: the
//! view is opened again, following resumes at the first record that is no
//! longer the one printed (so replaced records are printed again), and a
//! warning says so.

use crate::layout;
use crate::output::write_record;
use anyhow::Context;
use aof::Record;
use aof::{Aof, AofError};
use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

/// Records remembered (by fingerprint) to find where a truncation cut.
const REMEMBERED: usize = 1 << 16;

/// How long one wait for a new record lasts before output is flushed again.
const WAIT: Duration = Duration::from_millis(500);

/// How often a follower looks for a log that has no files yet.
const POLL: Duration = Duration::from_millis(100);

/// Prints the last `lines` records of the log in `dir` (archived ones read
/// from `archive`); with `follow`, then waits for new ones and prints them
/// as they come, until killed or stdout closes.
pub fn tail(dir: &Path, archive: Option<&str>, lines: u64, follow: bool, json: bool) -> anyhow::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    let mut log = open(dir, archive, follow)?;
    let mut next = log.next_id().saturating_sub(lines).max(log.first_id());
    if !follow {
        for record in log.reader(next).context("reading the log")? {
            let r = record.context("reading the log")?;
            write_record(&mut out, json, r.id, r.timestamp_us, &r.payload)?;
        }
        out.flush()?;
        return Ok(());
    }
    let mut printed = Printed::default();
    loop {
        match follow_view(&log, &mut next, &mut printed, &mut out, json) {
            Err(AofError::ViewOutdated { .. }) => {}
            Err(e) => return Err(anyhow::Error::new(e).context("following the log")),
            Ok(()) => unreachable!("following ends only with an error"),
        }
        log = open(dir, archive, true)?;
        let resume = printed.still_there(&log, next).context("reading the log")?;
        if resume < next {
            eprintln!(
                "aof: warning: the log was truncated: records from id {resume} on were replaced or removed; following from there"
            );
            next = resume;
        }
    }
}

/// Fingerprints of the last records printed, to tell after a truncation
/// which of them the log still holds.
#[derive(Default)]
struct Printed {
    /// `(id, fingerprint)`, oldest first, ids consecutive.
    last: VecDeque<(u64, u64)>,
}

impl Printed {
    fn push(&mut self, r: &Record) {
        if self.last.back().is_some_and(|(id, _)| id + 1 != r.id) {
            self.last.clear();
        }
        if self.last.len() == REMEMBERED {
            self.last.pop_front();
        }
        self.last.push_back((r.id, fingerprint(r)));
    }

    /// Where following resumes in `log` after printing everything below
    /// `next`: the first remembered record `log` no longer holds as it was
    /// printed (`next` if all are still there). If none of them is still
    /// there, the truncation may have cut further back than this follower
    /// has seen, which nothing on disk records: it resumes at the oldest
    /// remembered one, or at the log's new end if that is lower.
    fn still_there(&mut self, log: &Aof, next: u64) -> Result<u64, AofError> {
        let mut resume = next.min(log.next_id());
        while let Some(&(id, print)) = self.last.back() {
            if id >= resume {
                self.last.pop_back();
                continue;
            }
            let same = log
                .reader(id)?
                .next()
                .transpose()?
                .is_some_and(|r| r.id == id && fingerprint(&r) == print);
            if same {
                break;
            }
            self.last.pop_back();
            resume = id;
        }
        Ok(resume)
    }
}

fn fingerprint(r: &Record) -> u64 {
    let mut h = DefaultHasher::new();
    (r.timestamp_us, &r.payload[..]).hash(&mut h);
    h.finish()
}

/// Prints records from `next` on as they come, until the view fails
/// (outdated, or stdout gone).
fn follow_view(
    log: &Aof,
    next: &mut u64,
    printed: &mut Printed,
    out: &mut impl Write,
    json: bool,
) -> Result<(), AofError> {
    let mut tail = log.tail(*next)?;
    loop {
        let record = match tail.next_timeout(Duration::ZERO)? {
            Some(r) => Some(r),
            None => {
                out.flush().map_err(|e| AofError::io("<stdout>", e))?;
                tail.next_timeout(WAIT)?
            }
        };
        if let Some(r) = record {
            write_record(out, json, r.id, r.timestamp_us, &r.payload)
                .map_err(|e| AofError::io("<stdout>", e))?;
            printed.push(&r);
            *next = r.id + 1;
        }
    }
}

/// The read-only view of the log in `dir`; with `wait`, waits for a log
/// directory that holds no log files yet.
fn open(dir: &Path, archive: Option<&str>, wait: bool) -> anyhow::Result<Aof> {
    loop {
        match layout::open_existing(dir, archive) {
            Ok((_, log)) => return Ok(log),
            Err(e)
                if wait
                    && e.downcast_ref::<AofError>()
                        .is_some_and(|e| matches!(e, AofError::NotALog { .. })) =>
            {
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(e),
        }
    }
}
