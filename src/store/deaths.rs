//! Death records, non-death events, the versions they replaced, and the
//! connectors' watermarks.
//!
//! The connectors decide what a record is (new, a duplicate, a correction,
//! a stale version); this module only stores what they decided, and always
//! writes a batch's records, its quarantine and the watermark that covers
//! them in one transaction, so a watermark can never run ahead of the data.
//! It never decides whether a record is a death, and never deletes one
//! without first copying it into the history.

use std::collections::HashMap;

use serde::Serialize;

use super::quarantine::QuarantineEntry;
use super::quarantine::insert_quarantine;
use super::rows::{
    DEATH_COLUMNS, NON_DEATH_COLUMNS, bind_cells, copy_text, death_cells, in_list, insert_sql,
    non_death_cells,
};
use super::with_pool;
use super::{Backend, BeginWriteOn, Result, Store, now_utc_text};
use crate::model::{DeathRecord, NonDeathEvent};

/// A version that was replaced by a correction, or that arrived after a
/// newer one and was kept without being applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct HistoryVersion {
    pub record_table: String,
    pub source: String,
    pub record_key: String,
    pub version: i32,
    pub origin: String,
    pub received_at: String,
    pub raw_sha256: String,
    pub raw: String,
    pub run_id: i64,
    pub replaced_at: String,
    pub replaced_by_run: i64,
    /// `updated` or `stale`.
    pub why: String,
}

/// What is stored under a key, enough to classify a re-delivery.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredVersion {
    pub record_key: String,
    pub raw_sha256: String,
    pub origin: String,
    pub version: i32,
}

/// A stale version to keep in the history only.
#[derive(Debug, Clone)]
pub struct StaleVersion {
    pub table: RecordTable,
    /// The version number it had (0 when it was never applied).
    pub version: i32,
    /// `stale`, or `updated` when it was replaced within the same batch.
    pub why: &'static str,
    pub source: String,
    pub record_key: String,
    pub origin: String,
    pub received_at: String,
    pub raw_sha256: String,
    pub raw: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordTable {
    Deaths,
    NonDeaths,
}

impl RecordTable {
    /// The table a record moves to when its classification changes.
    pub fn other(self) -> RecordTable {
        match self {
            RecordTable::Deaths => RecordTable::NonDeaths,
            RecordTable::NonDeaths => RecordTable::Deaths,
        }
    }

    fn name(self) -> &'static str {
        match self {
            RecordTable::Deaths => "death_records",
            RecordTable::NonDeaths => "non_death_events",
        }
    }
}

/// A watermark change, written in the same transaction as the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watermark {
    /// Sets a named value (`since`, `cursor`).
    Set { name: String, value: String },
    /// Removes a named value (the cursor, once its sequence is complete).
    Clear { name: String },
    /// Marks a file as taken with the hash of the content taken.
    File {
        name: String,
        sha256: String,
        records: u64,
    },
}

/// One batch, already classified by the connector.
#[derive(Debug, Default)]
pub struct SourceBatch {
    pub new_deaths: Vec<DeathRecord>,
    /// Corrections: the stored version goes to the history first.
    pub changed_deaths: Vec<DeathRecord>,
    pub new_non_deaths: Vec<NonDeathEvent>,
    pub changed_non_deaths: Vec<NonDeathEvent>,
    pub stale: Vec<StaleVersion>,
    /// Records that moved between the tables (a public-security
    /// cancellation corrected from another reason to death, or the other
    /// way): the stored version in this table goes to the history and is
    /// removed; the new one is among the inserts of the other table.
    pub reclassified: Vec<(RecordTable, String)>,
    pub quarantine: Vec<QuarantineEntry>,
    pub watermarks: Vec<Watermark>,
}

impl SourceBatch {
    /// Nothing to write: every record was already stored as it is.
    pub fn is_empty(&self) -> bool {
        self.new_deaths.is_empty()
            && self.changed_deaths.is_empty()
            && self.new_non_deaths.is_empty()
            && self.changed_non_deaths.is_empty()
            && self.stale.is_empty()
            && self.reclassified.is_empty()
            && self.quarantine.is_empty()
            && self.watermarks.is_empty()
    }
}

/// Rows per multi-row `INSERT`: well under both backends' bind limits
/// (SQLite 32766, PostgreSQL 65535) at 24 columns.
const ROWS_PER_STATEMENT: usize = 400;

/// Streams `data` (COPY text) into `COPY {table} ({columns}) FROM STDIN`.
async fn copy_in(
    conn: &mut sqlx::PgConnection,
    table: &str,
    columns: &[&str],
    data: &[u8],
) -> std::result::Result<(), sqlx::Error> {
    let sql = format!("COPY {table} ({}) FROM STDIN", columns.join(", "));
    let mut copy = conn.copy_in_raw(&sql).await?;
    for chunk in data.chunks(1 << 20) {
        if let Err(e) = copy.send(chunk).await {
            // Leaves the connection usable; the transaction is rolled back.
            let _ = copy.abort(e.to_string()).await;
            return Err(e);
        }
    }
    copy.finish().await?;
    Ok(())
}

/// Copies the stored version of a key into the history, then deletes it so
/// the new version can be inserted by the bulk path.
macro_rules! retire_version {
    ($tx:expr, $table:expr, $source:expr, $key:expr, $run_id:expr, $now:expr) => {{
        let table: RecordTable = $table;
        let copy = sqlx::AssertSqlSafe(format!(
            "INSERT INTO source_record_history (record_table, source, record_key, version, origin, \
             received_at, raw_sha256, raw, run_id, replaced_at, replaced_by_run, why) \
             SELECT '{t}', source, record_key, version, origin, received_at, raw_sha256, raw, \
             run_id, $1, $2, 'updated' FROM {t} WHERE source = $3 AND record_key = $4",
            t = table.name()
        ));
        // Unprepared (see `stored_versions`): a cached generic plan may be
        // a sequential scan made when the table was empty.
        sqlx::query(copy)
            .bind($now)
            .bind($run_id)
            .bind($source)
            .bind($key)
            .persistent(false)
            .execute(&mut *$tx)
            .await?;
        let delete = sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE source = $1 AND record_key = $2",
            table.name()
        ));
        sqlx::query(delete)
            .bind($source)
            .bind($key)
            .persistent(false)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// The body of [`Store::apply_source_batch`], shared by both backends; only
/// the insertion of death records (the bulk of every batch) differs.
macro_rules! apply_batch {
    ($pool:expr, $backend:expr, $batch:expr, $run_id:expr, $now:expr, $source:expr, |$tx:ident| $insert_deaths:block) => {{
        #[allow(unused_variables)]
        let (backend, batch, run_id, now, source) = ($backend, $batch, $run_id, $now, $source);

            let mut $tx = $pool.begin_write().await?;
            for (table, key) in &batch.reclassified {
                retire_version!($tx, *table, source, key, run_id, &now);
            }
            for r in &batch.changed_deaths {
                retire_version!($tx, RecordTable::Deaths, &r.source, &r.record_key, run_id, &now);
            }
            for r in &batch.changed_non_deaths {
                retire_version!($tx, RecordTable::NonDeaths, &r.source, &r.record_key, run_id, &now);
            }
            $insert_deaths
            for rows in [&batch.new_non_deaths, &batch.changed_non_deaths] {
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let sql =
                        insert_sql(backend, "non_death_events", &NON_DEATH_COLUMNS, chunk.len());
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for r in chunk {
                        q = bind_cells!(q, non_death_cells(r));
                    }
                    q.execute(&mut *$tx).await?;
                }
            }
            for s in &batch.stale {
                let table = s.table.name();
                sqlx::query(
                    "INSERT INTO source_record_history (record_table, source, record_key, version, \
                     origin, received_at, raw_sha256, raw, run_id, replaced_at, replaced_by_run, why) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(table)
                .bind(&s.source)
                .bind(&s.record_key)
                .bind(s.version)
                .bind(&s.origin)
                .bind(&s.received_at)
                .bind(&s.raw_sha256)
                .bind(&s.raw)
                .bind(run_id)
                .bind(&now)
                .bind(run_id)
                .bind(s.why)
                .execute(&mut *$tx)
                .await?;
            }
            insert_quarantine!($tx, run_id, &batch.quarantine, &now)?;
            for w in &batch.watermarks {
                match w {
                    Watermark::Set { name, value } => {
                        sqlx::query(
                            "INSERT INTO connector_state (source, name, value, run_id, updated_at) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source, name) DO UPDATE SET \
                             value = excluded.value, run_id = excluded.run_id, \
                             updated_at = excluded.updated_at",
                        )
                        .bind(source)
                        .bind(name)
                        .bind(value)
                        .bind(run_id)
                        .bind(&now)
                        .execute(&mut *$tx)
                        .await?;
                    }
                    Watermark::Clear { name } => {
                        sqlx::query("DELETE FROM connector_state WHERE source = $1 AND name = $2")
                            .bind(source)
                            .bind(name)
                            .execute(&mut *$tx)
                            .await?;
                    }
                    Watermark::File { name, sha256, records } => {
                        sqlx::query(
                            "INSERT INTO connector_files (source, name, sha256, records, run_id, taken_at) \
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, name) DO UPDATE SET \
                             sha256 = excluded.sha256, records = excluded.records, \
                             run_id = excluded.run_id, taken_at = excluded.taken_at",
                        )
                        .bind(source)
                        .bind(name)
                        .bind(sha256)
                        .bind(*records as i64)
                        .bind(run_id)
                        .bind(&now)
                        .execute(&mut *$tx)
                        .await?;
                    }
                }
            }
            $tx.commit().await?;
    }};
}

/// One pooled connection held for a whole pull, through which it reads
/// what is stored and writes its batches.
///
/// Why one connection: in WAL mode SQLite throws away a connection's whole
/// page cache when it begins a transaction after *another* connection has
/// written. With lookups and writes on whichever connection the pool
/// handed out, nearly every batch started from a cold cache and re-read its
/// index pages (perf: `pread64` under `sqlite3BtreeIndexMoveto`), so a pull
/// slowed as the table grew.
pub enum DeathWriter {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl Store {
    /// Takes a connection from the pool for one pull; dropping the writer
    /// gives it back.
    pub async fn death_writer(&self) -> Result<DeathWriter> {
        Ok(match self {
            Store::Sqlite(pool) => DeathWriter::Sqlite(pool.acquire().await?),
            Store::Postgres(pool) => DeathWriter::Postgres(pool.acquire().await?),
        })
    }

    /// What is stored under each of `keys` in one table of one source.
    pub async fn stored_versions(
        &self,
        table: RecordTable,
        source: &str,
        keys: &[&str],
    ) -> Result<HashMap<String, StoredVersion>> {
        self.death_writer()
            .await?
            .stored_versions(table, source, keys)
            .await
    }

    /// Writes one classified batch, its quarantine and its watermarks in one
    /// transaction: either all of it is stored or none of it.
    pub async fn apply_source_batch(
        &self,
        source: &str,
        run_id: i64,
        batch: &SourceBatch,
    ) -> Result<()> {
        self.death_writer()
            .await?
            .apply_source_batch(source, run_id, batch)
            .await
    }
}

impl DeathWriter {
    fn backend(&self) -> Backend {
        match self {
            DeathWriter::Sqlite(_) => Backend::Sqlite,
            DeathWriter::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether the source has any death record or non-death event stored.
    pub async fn holds_source(&mut self, source: &str) -> Result<bool> {
        const SQL: &str = "SELECT EXISTS (SELECT 1 FROM death_records WHERE source = $1) \
                           OR EXISTS (SELECT 1 FROM non_death_events WHERE source = $1)";
        let held: bool = match self {
            DeathWriter::Sqlite(conn) => {
                sqlx::query_scalar(SQL)
                    .bind(source)
                    .fetch_one(&mut **conn)
                    .await?
            }
            DeathWriter::Postgres(conn) => {
                sqlx::query_scalar(SQL)
                    .bind(source)
                    .fetch_one(&mut **conn)
                    .await?
            }
        };
        Ok(held)
    }

    /// What is stored under each of `keys` in one table of one source.
    pub async fn stored_versions(
        &mut self,
        table: RecordTable,
        source: &str,
        keys: &[&str],
    ) -> Result<HashMap<String, StoredVersion>> {
        let mut out = HashMap::with_capacity(keys.len());
        let backend = self.backend();
        for chunk in keys.chunks(ROWS_PER_STATEMENT * 4) {
            let rows: Vec<StoredVersion> = match self {
                DeathWriter::Sqlite(conn) => {
                    let sql = sqlx::AssertSqlSafe(format!(
                        "SELECT record_key, raw_sha256, origin, version FROM {} \
                         WHERE source = ? AND record_key IN ({})",
                        table.name(),
                        in_list(backend, 1, chunk.len())
                    ));
                    let mut q = sqlx::query_as::<_, StoredVersion>(sql).bind(source);
                    for k in chunk {
                        q = q.bind(*k);
                    }
                    q.fetch_all(&mut **conn).await
                }
                DeathWriter::Postgres(conn) => {
                    // One primary-key probe per key, whatever the planner
                    // believes: without fresh statistics (autovacuum may be
                    // off) it hashed the whole source per batch, and a 1M
                    // pull slowed to about a thousand records/s. `LIMIT 1`
                    // keeps the lateral subquery from being flattened into
                    // such a join. Not a prepared statement (`persistent
                    // (false)`): a named statement's generic plan, made
                    // when the table was empty (or last analysed so), was
                    // a sequential scan per key that it kept as the table
                    // grew; a pull into a freshly analysed empty table ran
                    // at 600 records/s, reading the whole table per key.
                    // Planned afresh, the plan follows the table's size.
                    let sql = sqlx::AssertSqlSafe(format!(
                        "SELECT d.record_key, d.raw_sha256, d.origin, d.version \
                         FROM unnest($2::text[]) AS k(key) CROSS JOIN LATERAL ( \
                           SELECT record_key, raw_sha256, origin, version FROM {} \
                           WHERE source = $1 AND record_key = k.key LIMIT 1) d",
                        table.name()
                    ));
                    let keys: Vec<&str> = chunk.to_vec();
                    sqlx::query_as::<_, StoredVersion>(sql)
                        .bind(source)
                        .bind(keys)
                        .persistent(false)
                        .fetch_all(&mut **conn)
                        .await
                }
            }?;
            for r in rows {
                out.insert(r.record_key.clone(), r);
            }
        }
        Ok(out)
    }

    /// Writes one classified batch, its quarantine and its watermarks in one
    /// transaction: either all of it is stored or none of it.
    pub async fn apply_source_batch(
        &mut self,
        source: &str,
        run_id: i64,
        batch: &SourceBatch,
    ) -> Result<()> {
        // A batch of records all stored already (a re-read file) writes
        // nothing, and takes no write lock to do so.
        if batch.is_empty() {
            return Ok(());
        }
        let backend = self.backend();
        let now = now_utc_text();
        match self {
            DeathWriter::Sqlite(conn) => {
                let conn = &mut **conn;
                apply_batch!(conn, backend, batch, run_id, &now, source, |tx| {
                    let mut handle = tx.lock_handle().await?;
                    for rows in [&batch.new_deaths, &batch.changed_deaths] {
                        if !rows.is_empty() {
                            super::deaths_bulk::insert_death_records(handle.as_raw_handle(), rows)?;
                        }
                    }
                })
            }
            DeathWriter::Postgres(conn) => {
                let conn = &mut **conn;
                apply_batch!(conn, backend, batch, run_id, &now, source, |tx| {
                    for rows in [&batch.new_deaths, &batch.changed_deaths] {
                        // COPY: a multi-row INSERT of 400 rows × 24 binds
                        // cost the server about 15 µs a record to parse,
                        // plan and bind, with the client idle meanwhile.
                        if rows.is_empty() {
                            continue;
                        }
                        if let Some(data) = copy_text(rows, death_cells) {
                            copy_in(&mut tx, "death_records", &DEATH_COLUMNS, &data).await?;
                            continue;
                        }
                        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                            let sql =
                                insert_sql(backend, "death_records", &DEATH_COLUMNS, chunk.len());
                            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                            for r in chunk {
                                q = bind_cells!(q, death_cells(r));
                            }
                            q.execute(&mut *tx).await?;
                        }
                    }
                })
            }
        }
        Ok(())
    }
}

impl Store {
    /// A named watermark value of a source.
    pub async fn connector_state(&self, source: &str, name: &str) -> Result<Option<String>> {
        let v = with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>(
                "SELECT value FROM connector_state WHERE source = $1 AND name = $2",
            )
            .bind(source)
            .bind(name)
            .fetch_optional(pool)
            .await
        })?;
        Ok(v)
    }

    /// Every watermark value of a source, by name.
    pub async fn connector_states(&self, source: &str) -> Result<Vec<(String, String)>> {
        let v = with_pool!(self, pool => {
            sqlx::query_as::<_, (String, String)>(
                "SELECT name, value FROM connector_state WHERE source = $1 ORDER BY name",
            )
            .bind(source)
            .fetch_all(pool)
            .await
        })?;
        Ok(v)
    }

    /// Files already taken from a source: name → sha256 of the content taken.
    pub async fn taken_files(&self, source: &str) -> Result<HashMap<String, String>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, (String, String)>(
                "SELECT name, sha256 FROM connector_files WHERE source = $1",
            )
            .bind(source)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().collect())
    }

    pub async fn get_death_record(
        &self,
        source: &str,
        record_key: &str,
    ) -> Result<Option<DeathRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM death_records WHERE source = $1 AND record_key = $2",
            DEATH_COLUMNS.join(", ")
        ));
        let r = with_pool!(self, pool => {
            sqlx::query_as::<_, DeathRecord>(sql)
                .bind(source)
                .bind(record_key)
                .fetch_optional(pool)
                .await
        })?;
        Ok(r)
    }

    /// Every death record of a source, by key. For tests, checks and small
    /// sources; matching reads through its own blocking queries.
    pub async fn death_records(&self, source: &str) -> Result<Vec<DeathRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM death_records WHERE source = $1 ORDER BY record_key",
            DEATH_COLUMNS.join(", ")
        ));
        let r = with_pool!(self, pool => {
            sqlx::query_as::<_, DeathRecord>(sql).bind(source).fetch_all(pool).await
        })?;
        Ok(r)
    }

    pub async fn non_death_events(&self, source: &str) -> Result<Vec<NonDeathEvent>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM non_death_events WHERE source = $1 ORDER BY record_key",
            NON_DEATH_COLUMNS.join(", ")
        ));
        let r = with_pool!(self, pool => {
            sqlx::query_as::<_, NonDeathEvent>(sql).bind(source).fetch_all(pool).await
        })?;
        Ok(r)
    }

    /// Earlier and stale versions of one record, oldest first.
    pub async fn record_history(
        &self,
        source: &str,
        record_key: &str,
    ) -> Result<Vec<HistoryVersion>> {
        let r = with_pool!(self, pool => {
            sqlx::query_as::<_, HistoryVersion>(
                "SELECT record_table, source, record_key, version, origin, received_at, raw_sha256, \
                 raw, run_id, replaced_at, replaced_by_run, why FROM source_record_history \
                 WHERE source = $1 AND record_key = $2 ORDER BY id",
            )
            .bind(source)
            .bind(record_key)
            .fetch_all(pool)
            .await
        })?;
        Ok(r)
    }

    /// How many death records a source has.
    pub async fn count_death_records(&self, source: &str) -> Result<u64> {
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM death_records WHERE source = $1")
                .bind(source)
                .fetch_one(pool)
                .await
        })?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_inserts_use_anonymous_placeholders() {
        let sql = insert_sql(Backend::Sqlite, "t", &["a", "b"], 2);
        assert_eq!(sql, "INSERT INTO t (a, b) VALUES (?,?),(?,?)");
        let sql = insert_sql(Backend::Postgres, "t", &["a", "b"], 2);
        assert_eq!(sql, "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4)");
        assert_eq!(in_list(Backend::Postgres, 1, 2), "$2,$3");
    }
}
