//! Quarantine: input that could not be used, kept with where it came from,
//! why it was refused and its raw text, so nothing is ever dropped silently.

use serde::Serialize;

use super::with_pool;
use super::{Result, Store};

/// One refused record. `reason` is shown to users and written to logs, so it
/// must never contain a full ID number or bank account; `raw` may (it stays
/// in the database, where revealing it is an audited action).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineEntry {
    pub source: String,
    pub file: Option<String>,
    pub line: Option<u64>,
    pub record_key: Option<String>,
    pub reason: String,
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StoredQuarantine {
    pub id: i64,
    pub run_id: i64,
    pub source: String,
    pub file: Option<String>,
    pub line: Option<i64>,
    pub record_key: Option<String>,
    pub reason: String,
    pub raw: String,
    pub created_at: String,
}

impl Store {
    /// Quarantine entries of one run, in the order they were found.
    pub async fn quarantine_for_run(&self, run_id: i64) -> Result<Vec<StoredQuarantine>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, StoredQuarantine>(
                "SELECT id, run_id, source, file, line, record_key, reason, raw, created_at \
                 FROM quarantine WHERE run_id = $1 ORDER BY id",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}

/// Inserts entries inside the caller's transaction.
macro_rules! insert_quarantine {
    ($tx:expr, $run_id:expr, $entries:expr, $now:expr) => {{
        let mut result: ::std::result::Result<(), ::sqlx::Error> = Ok(());
        for e in $entries {
            if let Err(err) = ::sqlx::query(
                "INSERT INTO quarantine (run_id, source, file, line, record_key, reason, raw, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind($run_id)
            .bind(&e.source)
            .bind(&e.file)
            .bind(e.line.map(|l| l as i64))
            .bind(&e.record_key)
            .bind(&e.reason)
            .bind(&e.raw)
            .bind($now)
            .execute(&mut *$tx)
            .await
            {
                result = Err(err);
                break;
            }
        }
        result
    }};
}
pub(crate) use insert_quarantine;
