//! Writes the seed corpus of every fuzz target (see `aof_fuzz::seeds`) as
//! `DIR/<target>/seed-N`: `cargo run --example seeds -- fuzz/seeds` from the
//! repository root regenerates the checked-in seeds.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "seeds".into()));
    // The snapshot seeds live beside their harness (`src/snapshot.rs`),
    // which the engine's test suites do not include.
    let snapshot = ("snapshot_stream", aof_fuzz::snapshot::seeds());
    for (target, inputs) in aof_fuzz::seeds::all().into_iter().chain([snapshot]) {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, input) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), input)?;
        }
        println!("{}: {} seeds", dir.display(), inputs.len());
    }
    Ok(())
}
