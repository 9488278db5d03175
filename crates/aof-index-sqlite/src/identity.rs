//! The log identity, kept in `metadata` under [`LOG_ID_KEY`] as the 32
//! hexadecimal digits [`LogId`]'s `Display` writes. An index written before
//! identities existed has no such row: schema version 1 either way.

use crate::error::Res;
use aof_record::IndexError;
use aof_record::LogId;
use aof_record::index::contract;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

/// `metadata` key holding the log identity.
pub(crate) const LOG_ID_KEY: &str = "log_id";

/// The stored identity; a value that is not 32 hex digits is `CorruptMetadata`.
pub(crate) fn read(conn: &Connection) -> Res<Option<LogId>> {
    let mut stmt = conn.prepare_cached("SELECT value FROM metadata WHERE key = ?1")?;
    let value = stmt
        .query_row([LOG_ID_KEY], |row| {
            Ok(match row.get_ref(0)? {
                ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|s| s.parse().ok()),
                _ => None,
            })
        })
        .optional()?;
    match value {
        None => Ok(None),
        Some(Some(id)) => Ok(Some(id)),
        Some(None) => Err(IndexError::CorruptMetadata { field: LOG_ID_KEY }.into()),
    }
}

/// Stores `id` unless it is stored already; run inside the writer's
/// transaction, so the check and the write see the same rows.
pub(crate) fn set(conn: &Connection, id: LogId) -> Res<()> {
    if contract::identity_update(read(conn)?, id)? {
        conn.prepare_cached("INSERT INTO metadata (key, value) VALUES (?1, ?2)")?
            .execute(rusqlite::params![LOG_ID_KEY, id.to_string()])?;
    }
    Ok(())
}
