//! `aof read` and `aof dump`.

use crate::layout;
use anyhow::{Context, bail};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Writes the payload of record `id` to stdout, exactly as stored.
pub fn read(dir: &Path, archive: Option<&str>, id: u64) -> anyhow::Result<()> {
    let (_, log) = layout::open_existing(dir, archive)?;
    let Some(payload) = log.read(id).with_context(|| format!("reading record {id}"))? else {
        let (first, next) = (log.first_id(), log.next_id());
        if next <= first {
            bail!("no record {id}: the log in {} holds no records", dir.display());
        }
        bail!(
            "no record {id} in {} (it holds ids {first}..={})",
            dir.display(),
            next - 1
        );
    };
    let mut out = io::stdout().lock();
    out.write_all(&payload)?;
    out.flush()?;
    drop(out);
    log.close_blocking().context("closing the log")
}

/// Prints records `from..=to` in id order.
pub fn dump(
    dir: &Path,
    archive: Option<&str>,
    from: Option<u64>,
    to: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let (_, log) = layout::open_existing(dir, archive)?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        bail!("--from {f} is after --to {t}");
    }
    let mut out = BufWriter::new(io::stdout().lock());
    for record in log.reader(from.unwrap_or(0)).context("reading the log")? {
        let record = record.context("reading the log")?;
        if to.is_some_and(|t| record.id > t) {
            break;
        }
        crate::output::write_record(&mut out, json, record.id, record.timestamp_us, &record.payload)?;
    }
    out.flush()?;
    drop(out);
    log.close_blocking().context("closing the log")
}
