//! The append-only, hash-chained audit log.
//!
//! Every entry holds the SHA-256 of the one before it, so editing, deleting
//! or reordering any entry breaks the chain from that point on, and
//! [`verify`] names the first entry that no longer fits. The database also
//! refuses updates and deletes on the table; the chain is what still catches
//! someone who gets round that.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::with_pool;
use crate::store::{BeginWrite, Result, Store, StoreError, now_utc_text};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub seq: i64,
    /// RFC 3339 UTC, stored as text so it hashes the same on both backends.
    pub at: String,
    /// Who did it: a user name, or `system:<os user>` for the CLI.
    pub actor: String,
    /// What was done, e.g. `roster.import`.
    pub action: String,
    /// What it was done to, e.g. the file name or a case number.
    pub subject: String,
    /// JSON with the particulars; never a full ID number or bank account.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of an entry: SHA-256 over its fields, each length-prefixed so
/// that no two different entries serialise to the same bytes.
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
) -> String {
    let mut h = Sha256::new();
    let seq = seq.to_string();
    for field in [prev_hash, &seq, at, actor, action, subject, details] {
        h.update(field.len().to_string().as_bytes());
        h.update(b":");
        h.update(field.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries checked (all of them when the chain is intact).
    pub entries: u64,
    pub first_broken: Option<BrokenEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenEntry {
    pub seq: i64,
    pub reason: String,
}

/// Appends one entry. Retries when another writer took the same sequence
/// number first, so concurrent appenders never fork the chain.
pub async fn append(
    store: &Store,
    actor: &str,
    action: &str,
    subject: &str,
    details: &serde_json::Value,
) -> Result<AuditEntry> {
    let details = details.to_string();
    let mut last_err = None;
    for attempt in 0..10u32 {
        if attempt > 0 {
            // Another append took the slot: back off a little, more each time.
            tokio::time::sleep(std::time::Duration::from_millis(5 << attempt.min(6))).await;
        }
        let attempt = with_pool!(store, pool => {
            async {
                // On SQLite the write lock is taken as the transaction
                // begins (`begin_write`), so a concurrent append waits for
                // it instead of failing when its read of the chain's end
                // would have to become a write. PostgreSQL's unique
                // sequence number turns a race into a retry.
                let mut tx = pool.begin_write().await?;
                let last: Option<(i64, String)> = sqlx::query_as(
                    "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                )
                .fetch_optional(&mut *tx)
                .await?;
                let (prev_seq, prev_hash) = last.unwrap_or((0, GENESIS_HASH.to_string()));
                let entry = seal(prev_seq + 1, &prev_hash, actor, action, subject, &details);
                sqlx::query(
                    "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(entry.seq)
                .bind(&entry.at)
                .bind(&entry.actor)
                .bind(&entry.action)
                .bind(&entry.subject)
                .bind(&entry.details)
                .bind(&entry.prev_hash)
                .bind(&entry.hash)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(entry)
            }
            .await
        });
        match attempt {
            Ok(entry) => return Ok(entry),
            Err(e) if is_conflict(&e) => last_err = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Sql(
        last_err.unwrap_or(sqlx::Error::PoolTimedOut),
    ))
}

fn seal(
    seq: i64,
    prev_hash: &str,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
) -> AuditEntry {
    let at = now_utc_text();
    let hash = entry_hash(prev_hash, seq, &at, actor, action, subject, details);
    AuditEntry {
        seq,
        at,
        actor: actor.to_string(),
        action: action.to_string(),
        subject: subject.to_string(),
        details: details.to_string(),
        prev_hash: prev_hash.to_string(),
        hash,
    }
}

fn is_conflict(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db.message().contains("locked")
                || db.message().contains("busy")
        }
        _ => false,
    }
}

/// Walks the whole chain in order and reports the first entry that does
/// not fit: a gap in the sequence, a `prev_hash` that is not the hash of the
/// entry before, or a hash that does not match the entry's own content.
pub async fn verify(store: &Store) -> Result<VerifyReport> {
    use futures::TryStreamExt;

    let mut expected_seq = 1i64;
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut checked = 0u64;
    let broken = with_pool!(store, pool => {
        async {
            let mut rows = sqlx::query_as::<_, AuditEntry>(
                "SELECT seq, at, actor, action, subject, details, prev_hash, hash \
                 FROM audit_log ORDER BY seq",
            )
            .fetch(pool);
            while let Some(e) = rows.try_next().await? {
                if let Some(reason) = check_entry(&e, expected_seq, &prev_hash) {
                    return Ok::<_, sqlx::Error>(Some(BrokenEntry { seq: e.seq, reason }));
                }
                checked += 1;
                expected_seq = e.seq + 1;
                prev_hash = e.hash;
            }
            Ok(None)
        }
        .await
    })?;
    Ok(VerifyReport {
        entries: checked,
        first_broken: broken,
    })
}

/// Why `e` does not continue the chain, if it does not.
pub fn check_entry(e: &AuditEntry, expected_seq: i64, prev_hash: &str) -> Option<String> {
    if e.seq != expected_seq {
        return Some(format!(
            "sequence jumps from {} to {}: entries are missing",
            expected_seq - 1,
            e.seq
        ));
    }
    if e.prev_hash != prev_hash {
        return Some("its prev_hash is not the hash of the entry before it".to_string());
    }
    let recomputed = entry_hash(
        &e.prev_hash,
        e.seq,
        &e.at,
        &e.actor,
        &e.action,
        &e.subject,
        &e.details,
    );
    if recomputed != e.hash {
        return Some("its content was changed after it was written (hash mismatch)".to_string());
    }
    None
}

/// Why [`export_jsonl`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
    #[error("audit entry {seq} holds details that are not JSON: {source}")]
    Details {
        seq: i64,
        #[source]
        source: serde_json::Error,
    },
}

/// One line of [`export_jsonl`]: the entry with its details as JSON, not
/// as a string holding JSON.
#[derive(Serialize)]
struct ExportedEntry<'a> {
    seq: i64,
    at: &'a str,
    actor: &'a str,
    action: &'a str,
    subject: &'a str,
    details: &'a serde_json::value::RawValue,
    prev_hash: &'a str,
    hash: &'a str,
}

/// Writes every entry to `out` in sequence order, one JSON object per line
/// (`seq`, `at`, `actor`, `action`, `subject`, `details`, `prev_hash`,
/// `hash`), streamed from the database one row at a time. Returns how many
/// were written.
///
/// `details` is embedded as the very text that was hashed (a raw JSON
/// value, not re-serialised), so whoever holds the export can recompute
/// every [`entry_hash`] and check the chain without the database.
pub async fn export_jsonl<W: std::io::Write + Send>(
    store: &Store,
    out: &mut W,
) -> std::result::Result<u64, ExportError> {
    use futures::TryStreamExt;

    let mut written = 0u64;
    with_pool!(store, pool => {
        let mut rows = sqlx::query_as::<_, AuditEntry>(
            "SELECT seq, at, actor, action, subject, details, prev_hash, hash \
             FROM audit_log ORDER BY seq",
        )
        .fetch(pool);
        while let Some(e) = rows.try_next().await.map_err(StoreError::from)? {
            let details: &serde_json::value::RawValue = serde_json::from_str(&e.details)
                .map_err(|source| ExportError::Details { seq: e.seq, source })?;
            let line = ExportedEntry {
                seq: e.seq,
                at: &e.at,
                actor: &e.actor,
                action: &e.action,
                subject: &e.subject,
                details,
                prev_hash: &e.prev_hash,
                hash: &e.hash,
            };
            serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            written += 1;
        }
    });
    out.flush()?;
    Ok(written)
}

/// The actor the command line acts as: `system:<os user>`.
pub fn cli_actor() -> String {
    let user = std::env::var("VIGIL_ACTOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_string());
    format!("system:{user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let e = seal(seq, &prev, "system:test", "roster.import", "r.csv", "{}");
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn first_broken(entries: &[AuditEntry]) -> Option<i64> {
        let mut prev = GENESIS_HASH.to_string();
        let mut seq = 1;
        for e in entries {
            if check_entry(e, seq, &prev).is_some() {
                return Some(e.seq);
            }
            seq = e.seq + 1;
            prev = e.hash.clone();
        }
        None
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(first_broken(&chain(5)), None);
    }

    #[test]
    fn an_edited_entry_is_the_first_broken_one() {
        let mut c = chain(5);
        c[2].details = r#"{"inserted":1}"#.to_string();
        assert_eq!(first_broken(&c), Some(3));
    }

    #[test]
    fn a_deleted_entry_is_found_at_the_gap() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(first_broken(&c), Some(3));
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_next_link() {
        let mut c = chain(4);
        c[1].subject = "other.csv".to_string();
        c[1].hash = entry_hash(
            &c[1].prev_hash,
            2,
            &c[1].at,
            &c[1].actor,
            &c[1].action,
            &c[1].subject,
            &c[1].details,
        );
        assert_eq!(first_broken(&c), Some(3));
    }
}
