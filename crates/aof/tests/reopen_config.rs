//! Issue 10, part A: everything that decides how bytes already on disk are
//! read lives with the data, so any configuration may change between opens.
//! A proptest against a `Vec` model: appends under a random configuration,
//! then a reopen under another one — segment size, record limit, flush
//! strategy and (through `aof index migrate`, as a user does it) the index
//! backend — and every record must read back as written.
#![cfg(feature = "cli")]

use aof::{AofConfig, FlushStrategy, IndexBackend};
use proptest::prelude::*;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone)]
struct Open {
    segment_size: u64,
    /// Fraction (in 1/8) of the segment's room a record may take.
    max_record_eighths: u64,
    strategy: FlushStrategy,
    /// Migrate the index to the other backend before this open.
    switch_backend: bool,
}

fn open_strategy() -> impl Strategy<Value = Open> {
    (
        prop_oneof![Just(4096u64), Just(16 << 10), Just(256 << 10), Just(1 << 20)],
        1u64..=8,
        prop_oneof![
            Just(FlushStrategy::Sync),
            Just(FlushStrategy::Async),
            Just(FlushStrategy::Batched(3)),
            Just(FlushStrategy::Periodic(2)),
        ],
        any::<bool>(),
    )
        .prop_map(
            |(segment_size, max_record_eighths, strategy, switch_backend)| Open {
                segment_size,
                max_record_eighths,
                strategy,
                switch_backend,
            },
        )
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 131 + j) as u8).collect()
}

fn migrate(dir: &Path, to: IndexBackend) {
    let to = if to == IndexBackend::Mdbx {
        "mdbx"
    } else {
        "sqlite"
    };
    let out = Command::new(env!("CARGO_BIN_EXE_aof"))
        .args(["index", "migrate"])
        .arg(dir)
        .args(["--to", to])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn any_configuration_reads_what_any_other_wrote(
        opens in proptest::collection::vec((open_strategy(), proptest::collection::vec(0usize..6000, 1..40)), 2..5)
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut backend = IndexBackend::Sqlite;
        for (open, sizes) in opens {
            if open.switch_backend && dir.exists() {
                backend = if backend == IndexBackend::Sqlite { IndexBackend::Mdbx } else { IndexBackend::Sqlite };
                migrate(&dir, backend);
            }
            let room = open.segment_size - 96;
            let max = u32::try_from(room * open.max_record_eighths / 8).unwrap().max(1);
            let config = AofConfig::builder()
                .segment_size(open.segment_size)
                .max_record_size(max)
                .flush_strategy(open.strategy)
                .index_backend(backend)
                .build()
                .unwrap();
            let log = aof::open(&dir, config).unwrap();
            prop_assert_eq!(log.next_id(), model.len() as u64, "{:?}", open);
            for (id, expected) in model.iter().enumerate() {
                let got = log.read(id as u64).unwrap();
                prop_assert_eq!(got.as_deref(), Some(&expected[..]), "record {} under {:?}", id, open);
            }
            for len in sizes {
                let p = payload(model.len() as u64, len);
                match log.append(&p) {
                    Ok(id) => {
                        prop_assert_eq!(id, model.len() as u64);
                        model.push(p);
                    }
                    Err(aof::AofError::RecordTooLarge { .. }) => prop_assert!(len > max as usize),
                    Err(e) => panic!("append: {e}"),
                }
            }
            log.close_blocking().unwrap();
        }
    }
}
