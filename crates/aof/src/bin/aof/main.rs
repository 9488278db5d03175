//! `aof`: the command-line tool of the aof log.
//!
//! ```text
//! aof append DIR [--sync] [--archive-threshold N]  one record per stdin line; prints each id
//! aof archive DIR --archive URL            archive every finalized segment now
//! aof read DIR ID                          the payload of record ID, raw, to stdout
//! aof dump DIR [--from ID] [--to ID] [--json]
//! aof tail DIR [-n N] [-f] [--json]        the last N records; -f keeps following
//! aof verify DIR                           every checksum of every segment, against the index
//! aof stat DIR [--json]                    segments, statuses, sizes, ids, metrics
//! aof index migrate DIR --to mdbx|sqlite   switch the index backend
//! aof index backup DIR DEST                consistent copy of the index, while in use
//! aof snapshot export DIR OUT              a snapshot of the log to OUT (a file, or - for stdout)
//! aof snapshot import IN DIR               a snapshot from IN (a file, or - for stdin) into a new log
//! ```
//!
//! Every failure is one line on stderr, `aof: <message>`, and exit status 1;
//! a usage error is exit status 2 (from clap). A panic would be a bug: it is
//! reported on one line too, never with a backtrace.
//!
//! Which index a log uses is read from its directory: `index.mdbx` means
//! MDBX, otherwise SQLite (`index.sqlite`, the embedded default).
//!
//! Every command that opens a log takes `--archive URL`, the archive its
//! archived segments are in (read transparently): a path or `file:///path`
//! (a directory archive), or `s3://bucket/prefix` with the endpoint,
//! credentials and region from the standard `AWS_*` environment variables.

use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

mod append;
mod index;
mod layout;
mod output;
mod read;
mod snapshot;
mod stat;
mod tail;
mod verify;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "aof",
    version,
    about = "Inspect, write and maintain an aof segmented append-only log"
)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Append one record per line of standard input and print each id, on
    /// its own line, in input order, once the record is acknowledged.
    ///
    /// A record is a line without its terminating `\n` (a `\r` before it is
    /// kept: records are bytes, not text; lines need not be UTF-8). A last
    /// line without `\n` is a record too; an empty line is an empty record.
    /// Creates the log, on the embedded defaults, if DIR does not exist or is
    /// empty.
    ///
    /// Without --sync an id is printed once the record is appended, and every
    /// record is durable when the command exits successfully (the log is
    /// flushed in the background within 100 ms, and at the end). With --sync
    /// an id is printed only once its record is durable on disk.
    Append {
        /// The log directory.
        dir: PathBuf,
        /// The log's archive: a path, file:///path, or s3://bucket/prefix (endpoint and credentials from AWS_* variables).
        #[arg(long, value_name = "URL")]
        archive: Option<String>,
        /// Print each id only once its record is durable (fsync per batch of lines).
        #[arg(long)]
        sync: bool,
        /// Segment size in bytes for segments created from now on (default 64 MiB).
        #[arg(long, value_name = "BYTES")]
        segment_size: Option<u64>,
        /// Index backend, when this creates the log (an existing log keeps its own).
        #[arg(long, value_enum, value_name = "BACKEND")]
        index: Option<Backend>,
        /// Store each line of 128 bytes or more zstd-compressed when that saves
        /// bytes (reads give back the original bytes, with or without this).
        #[arg(long)]
        compress: bool,
        /// Archive finalized segments as the log grows, keeping this many
        /// locally (needs --archive; with --archive alone, 4).
        #[arg(long, value_name = "N")]
        archive_threshold: Option<u64>,
    },
    /// Archive every finalized segment now (compress, upload, verify, commit,
    /// remove the local file), with progress; the active segment stays.
    Archive {
        /// The log directory.
        dir: PathBuf,
        /// The archive: a path, file:///path, or s3://bucket/prefix (endpoint and credentials from AWS_* variables).
        #[arg(long, value_name = "URL")]
        archive: String,
    },
    /// Write the payload of record ID to standard output, exactly as stored.
    Read {
        /// The log directory.
        dir: PathBuf,
        /// The log's archive: a path, file:///path, or s3://bucket/prefix (endpoint and credentials from AWS_* variables).
        #[arg(long, value_name = "URL")]
        archive: Option<String>,
        /// The record id.
        id: u64,
    },
    /// Print records in id order, one per line.
    ///
    /// Text lines are `ID<TAB>TIME<TAB>PAYLOAD`: TIME in RFC 3339 (UTC, µs),
    /// PAYLOAD escaped so that it stays on one line (UTF-8 payloads with
    /// Rust's `escape_debug`, others byte by byte with `\xNN`). With --json
    /// each line is an object `{"id":…,"timestamp_us":…,"payload":"…"}` when
    /// the payload is valid UTF-8, else `{"id":…,"timestamp_us":…,"payload_base64":"…"}`
    /// (standard alphabet, padded).
    Dump {
        /// The log directory.
        dir: PathBuf,
        /// The log's archive: a path, file:///path, or s3://bucket/prefix (endpoint and credentials from AWS_* variables).
        #[arg(long, value_name = "URL")]
        archive: Option<String>,
        /// First id to print (default: the first kept).
        #[arg(long, value_name = "ID")]
        from: Option<u64>,
        /// Last id to print, inclusive (default: the last durable).
        #[arg(long, value_name = "ID")]
        to: Option<u64>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print the last records (as `dump` does); with -f, keep printing new ones.
    ///
    /// Takes no lock and writes nothing, so it works while a writer appends:
    /// it reads the log through a read-only view and shows a record once the
    /// writer has written it to its segment file (under the Sync flush
    /// strategy, once it is durable).
    Tail {
        /// The log directory.
        dir: PathBuf,
        /// The log's archive: a path, file:///path, or s3://bucket/prefix (endpoint and credentials from AWS_* variables).
        #[arg(long, value_name = "URL")]
        archive: Option<String>,
        /// How many of the last records to print first.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
        lines: u64,
        /// Keep running and print records as they are appended (stop with Ctrl-C).
        #[arg(short = 'f', long)]
        follow: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Check every checksum of every segment against the index.
    ///
    /// Changes nothing (a damaged log is left for `aof repair`). Exits 0 and
    /// prints a summary if everything checks out; otherwise exits 1 naming
    /// the first problem: the segment and, for a bad record, the byte offset
    /// in the segment file, or the damage opening the log would repair.
    Verify {
        /// The log directory.
        dir: PathBuf,
        /// The log's archive: a path, file:///path, or s3://bucket/prefix (endpoint and credentials from AWS_* variables).
        #[arg(long, value_name = "URL")]
        archive: Option<String>,
    },
    /// Do what opening the log after a crash does, printing each change first.
    ///
    /// Completes interrupted steps (a finalization, a segment's index entry),
    /// cuts a torn tail (saving its bytes beside the segment), moves files
    /// that do not belong into lost+found/, removes temp files. With
    /// --dry-run, only prints what it would do. With --archive, also deletes
    /// the archive objects of this log that no segment uses (never another
    /// log's). Exits 0 once the log is repaired (or had nothing to repair).
    Repair {
        /// The log directory.
        dir: PathBuf,
        /// The log's archive: a path, file:///path, or s3://bucket/prefix (endpoint and credentials from AWS_* variables).
        #[arg(long, value_name = "URL")]
        archive: Option<String>,
        /// Print the changes without making them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show segments, statuses, sizes, ids, the index and metrics.
    Stat {
        /// The log directory.
        dir: PathBuf,
        /// The log's archive: a path, file:///path, or s3://bucket/prefix (endpoint and credentials from AWS_* variables).
        #[arg(long, value_name = "URL")]
        archive: Option<String>,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Index maintenance.
    Index {
        /// What to do with the index.
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Snapshots: the whole log as one checksummed stream, and back.
    Snapshot {
        /// Export or import.
        #[command(subcommand)]
        command: SnapshotCommand,
    },
}

/// `aof snapshot` subcommands.
#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Write a consistent snapshot of the log in DIR to OUT.
    ///
    /// Every record durable when the export starts, none after. Opens the
    /// log read-only (no lock), so it works while a writer appends in
    /// another process. OUT is a new file, or `-` for standard output.
    /// Progress goes to standard error when it is a terminal.
    Export {
        /// The log directory.
        dir: PathBuf,
        /// Where to write the snapshot (`-`: standard output).
        out: PathBuf,
        /// Bytes of file data per chunk (default 1 MiB, at most 16 MiB).
        #[arg(long, value_name = "BYTES")]
        chunk_size: Option<usize>,
    },
    /// Read a snapshot from IN into DIR, which must not exist or be empty.
    ///
    /// Checks every chunk, each file's SHA-256 and the snapshot's checksum,
    /// and the staged log, before installing it with one rename; on any
    /// error DIR is left as it was. Then opens the log (building its SQLite
    /// index) and checks its first and last id.
    Import {
        /// The snapshot (`-`: standard input).
        input: PathBuf,
        /// The new log directory.
        dir: PathBuf,
    },
}

/// `aof index` subcommands.
#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Move the index to the other backend; the old file stays as `<name>.bak`.
    Migrate {
        /// The log directory.
        dir: PathBuf,
        /// The backend to migrate to.
        #[arg(long, value_enum, value_name = "BACKEND")]
        to: Backend,
    },
    /// Write a consistent copy of the index to DEST, while the log may be in use.
    ///
    /// A SQLite index is copied with SQLite's online backup API while a
    /// writer keeps going; an MDBX index only while no writer has the log
    /// open (MDBX opens it exclusively). DEST is the new file (it must not exist), or an existing directory to
    /// put the copy in under the index's own file name.
    Backup {
        /// The log directory.
        dir: PathBuf,
        /// Where to write the copy.
        dest: PathBuf,
    },
}

/// An index backend, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// SQLite: `index.sqlite`.
    Sqlite,
    /// libmdbx: `index.mdbx`.
    Mdbx,
}

impl From<Backend> for aof::IndexBackend {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Sqlite => Self::Sqlite,
            Backend::Mdbx => Self::Mdbx,
        }
    }
}

fn main() -> ExitCode {
    install_panic_hook();
    log::set_logger(&STDERR_LOGGER)
        .map(|()| log::set_max_level(log::LevelFilter::Warn))
        .ok();
    let cli = Cli::parse();
    let quiet_on_closed_stdout = !matches!(cli.command, Command::Append { .. });
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // `aof dump … | head`: the reader has what it wanted.
        Err(e) if quiet_on_closed_stdout && is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "aof: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Append {
            dir,
            archive,
            sync,
            segment_size,
            index,
            compress,
            archive_threshold,
        } => append::run(
            &dir,
            sync,
            segment_size,
            index.map(Into::into),
            compress,
            archive.as_deref(),
            archive_threshold,
        ),
        Command::Archive { dir, archive } => append::archive(&dir, &archive),
        Command::Read { dir, archive, id } => read::read(&dir, archive.as_deref(), id),
        Command::Dump {
            dir,
            archive,
            from,
            to,
            json,
        } => read::dump(&dir, archive.as_deref(), from, to, json),
        Command::Tail {
            dir,
            archive,
            lines,
            follow,
            json,
        } => tail::tail(&dir, archive.as_deref(), lines, follow, json),
        Command::Verify { dir, archive } => verify::run(&dir, archive.as_deref()),
        Command::Repair {
            dir,
            archive,
            dry_run,
        } => verify::repair(&dir, archive.as_deref(), dry_run),
        Command::Stat { dir, archive, json } => stat::run(&dir, archive.as_deref(), json),
        Command::Index { command } => match command {
            IndexCommand::Migrate { dir, to } => index::migrate(&dir, to.into()),
            IndexCommand::Backup { dir, dest } => index::backup(&dir, &dest),
        },
        Command::Snapshot { command } => match command {
            SnapshotCommand::Export { dir, out, chunk_size } => snapshot::export(&dir, &out, chunk_size),
            SnapshotCommand::Import { input, dir } => snapshot::import(&input, &dir),
        },
    }
}

/// The error and its causes on one line, leaving out a cause whose text the
/// message already contains (the log's errors quote their sources).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace(['\n', '\r'], " ")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Panics are bugs; report one on one line, without a backtrace, whatever
/// `RUST_BACKTRACE` says.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "aof: internal error (a bug, please report it): {}{at}",
            msg.replace('\n', " ")
        );
    }));
}

/// Writes the aof crates' warnings to stderr, one line each (what the log
/// repaired on open, say). Their errors are not printed: each one is also
/// returned, and reported once, as the command's error.
struct StderrLogger;

static STDERR_LOGGER: StderrLogger = StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        // The log's own crates only: what a storage engine underneath
        // logs is reported through the error it returns.
        metadata.level() == log::Level::Warn && metadata.target().starts_with("aof")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(std::io::stderr(), "aof: warning: {}", record.args());
        }
    }

    fn flush(&self) {}
}
