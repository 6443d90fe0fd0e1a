//! Pensioners and the history of their changes.
//!
//! Rows are only ever inserted or updated by a roster import; a person who
//! disappears from a later export is flagged (`missing_since`), never
//! deleted, because a vanished record is itself something to look into.

use chrono::NaiveDate;
use serde::Serialize;

use super::quarantine::QuarantineEntry;
use super::quarantine::insert_quarantine;
use super::with_pool;
use super::{BeginWrite, Result, Store, now_utc_text};
use crate::model::Pensioner;

const PENSIONER_COLUMNS: &str = "person_no, name, name_norm, name_key, id_number, id_upgraded, sex, \
     birth_date, insured_region, residence_region, benefit_type, monthly_amount_fen, bank_account, \
     benefit_start, status, last_certified, phone, content_hash, first_seen, missing_since";

const INSERT_COLUMN_LIST: &str = "person_no, name, name_norm, name_key, id_number, id_upgraded, sex, \
     birth_date, insured_region, residence_region, benefit_type, monthly_amount_fen, bank_account, \
     benefit_start, status, last_certified, phone, content_hash, first_seen";

/// One change to one field of one pensioner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct HistoryEntry {
    pub person_no: String,
    pub run_id: i64,
    pub as_of: NaiveDate,
    /// A column name, or `missing` / `reappeared` for presence changes.
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One batch of a roster import, already classified against what is stored.
#[derive(Debug, Default)]
pub struct RosterBatch {
    pub inserts: Vec<Pensioner>,
    /// New content for people whose stored content hash differs.
    pub changes: Vec<Pensioner>,
    /// Unchanged people who were flagged missing and are back.
    pub reappeared: Vec<String>,
    pub quarantine: Vec<QuarantineEntry>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Rows whose stored fields really differed.
    pub changed: u64,
    /// Rows whose hash differed but whose fields did not (hash rule change).
    pub rehashed: u64,
    pub reappeared: u64,
}

/// The field-by-field difference between two versions of a pensioner, as
/// text for the history table. Pure, so it is tested without a database.
pub fn diff_fields(
    old: &Pensioner,
    new: &Pensioner,
) -> Vec<(&'static str, Option<String>, Option<String>)> {
    let mut out = Vec::new();
    let mut cmp = |field: &'static str, a: Option<String>, b: Option<String>| {
        if a != b {
            out.push((field, a, b));
        }
    };
    cmp(
        "name",
        Some(old.name.to_string()),
        Some(new.name.to_string()),
    );
    cmp(
        "id_number",
        Some(old.id_number.to_string()),
        Some(new.id_number.to_string()),
    );
    cmp("sex", Some(old.sex.to_string()), Some(new.sex.to_string()));
    cmp(
        "birth_date",
        Some(old.birth_date.to_string()),
        Some(new.birth_date.to_string()),
    );
    cmp(
        "insured_region",
        Some(old.insured_region.to_string()),
        Some(new.insured_region.to_string()),
    );
    cmp(
        "residence_region",
        Some(old.residence_region.to_string()),
        Some(new.residence_region.to_string()),
    );
    cmp(
        "benefit_type",
        Some(old.benefit_type.to_string()),
        Some(new.benefit_type.to_string()),
    );
    cmp(
        "monthly_amount_fen",
        Some(old.monthly_amount_fen.to_string()),
        Some(new.monthly_amount_fen.to_string()),
    );
    cmp(
        "bank_account",
        Some(old.bank_account.to_string()),
        Some(new.bank_account.to_string()),
    );
    cmp(
        "benefit_start",
        Some(old.benefit_start.to_string()),
        Some(new.benefit_start.to_string()),
    );
    cmp(
        "status",
        Some(old.status.to_string()),
        Some(new.status.to_string()),
    );
    cmp(
        "last_certified",
        old.last_certified.map(|d| d.to_string()),
        new.last_certified.map(|d| d.to_string()),
    );
    cmp("phone", old.phone.clone(), new.phone.clone());
    out
}

/// Writes PostgreSQL `COPY … (FORMAT binary)` data for the insert columns,
/// in [`INSERT_COLUMN_LIST`] order. Binary, not CSV text: the server then
/// parses no dates, numbers or quoting, which was most of its time per row.
///
/// The format: a fixed header; per row a 16-bit field count, then each
/// field as a 32-bit length (-1 for NULL) and its bytes in the type's wire
/// form (text as UTF-8, `int4`/`int8` big-endian, `bool` one byte, `date`
/// as days since 2000-01-01); a 16-bit -1 ends the data.
fn pg_copy_binary(rows: &[Pensioner]) -> Vec<u8> {
    const FIELDS: i16 = 19;
    fn text(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as i32).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    fn int4(out: &mut Vec<u8>, v: i32) {
        out.extend_from_slice(&4i32.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
    fn int8(out: &mut Vec<u8>, v: i64) {
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
    fn date(out: &mut Vec<u8>, d: NaiveDate) {
        let days = d.signed_duration_since(PG_EPOCH).num_days();
        int4(out, days as i32);
    }
    fn null(out: &mut Vec<u8>) {
        out.extend_from_slice(&(-1i32).to_be_bytes());
    }
    let mut out = Vec::with_capacity(19 + rows.len() * 260);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    for p in rows {
        out.extend_from_slice(&FIELDS.to_be_bytes());
        text(&mut out, &p.person_no);
        text(&mut out, &p.name);
        text(&mut out, &p.name_norm);
        text(&mut out, &p.name_key);
        text(&mut out, &p.id_number);
        out.extend_from_slice(&1i32.to_be_bytes());
        out.push(u8::from(p.id_upgraded));
        int4(&mut out, p.sex);
        date(&mut out, p.birth_date);
        text(&mut out, &p.insured_region);
        text(&mut out, &p.residence_region);
        text(&mut out, &p.benefit_type);
        int8(&mut out, p.monthly_amount_fen);
        text(&mut out, &p.bank_account);
        date(&mut out, p.benefit_start);
        text(&mut out, &p.status);
        match p.last_certified {
            Some(d) => date(&mut out, d),
            None => null(&mut out),
        }
        match &p.phone {
            Some(phone) => text(&mut out, phone),
            None => null(&mut out),
        }
        int8(&mut out, p.content_hash);
        date(&mut out, p.first_seen);
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

/// Day zero of PostgreSQL's binary `date`.
const PG_EPOCH: NaiveDate = NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date");

/// The change-handling part of a batch, the same on both backends: reads the
/// stored row, records each differing field as history, writes the new row.
macro_rules! apply_changes_and_presence {
    ($tx:expr, $batch:expr, $run_id:expr, $as_of:expr, $outcome:expr) => {{
        let sql_select = format!("SELECT {PENSIONER_COLUMNS} FROM pensioners WHERE person_no = $1");
        for new in &$batch.changes {
            let old: Option<Pensioner> = sqlx::query_as(sqlx::AssertSqlSafe(sql_select.clone()))
                .bind(new.person_no.as_str())
                .fetch_optional(&mut *$tx)
                .await?;
            let Some(old) = old else {
                return Err(super::StoreError::Corrupt(format!(
                    "person {} was classified as changed but is not stored",
                    new.person_no
                )));
            };
            let diffs = diff_fields(&old, new);
            if diffs.is_empty() {
                $outcome.rehashed += 1;
            } else {
                $outcome.changed += 1;
            }
            for (field, before, after) in diffs {
                insert_history!(
                    $tx,
                    new.person_no.as_str(),
                    $run_id,
                    $as_of,
                    field,
                    before,
                    after
                );
            }
            if let Some(since) = old.missing_since {
                $outcome.reappeared += 1;
                insert_history!(
                    $tx,
                    new.person_no.as_str(),
                    $run_id,
                    $as_of,
                    "reappeared",
                    Some(format!("missing since {since}")),
                    None::<String>
                );
            }
            sqlx::query(
                "UPDATE pensioners SET name = $1, name_norm = $2, name_key = $3, id_number = $4, \
                 id_upgraded = $5, sex = $6, birth_date = $7, insured_region = $8, \
                 residence_region = $9, benefit_type = $10, monthly_amount_fen = $11, \
                 bank_account = $12, benefit_start = $13, status = $14, last_certified = $15, \
                 phone = $16, content_hash = $17, missing_since = NULL WHERE person_no = $18",
            )
            .bind(new.name.as_str())
            .bind(new.name_norm.as_str())
            .bind(new.name_key.as_str())
            .bind(new.id_number.as_str())
            .bind(new.id_upgraded)
            .bind(new.sex)
            .bind(new.birth_date)
            .bind(new.insured_region.as_str())
            .bind(new.residence_region.as_str())
            .bind(new.benefit_type.as_str())
            .bind(new.monthly_amount_fen)
            .bind(new.bank_account.as_str())
            .bind(new.benefit_start)
            .bind(new.status.as_str())
            .bind(new.last_certified)
            .bind(&new.phone)
            .bind(new.content_hash)
            .bind(new.person_no.as_str())
            .execute(&mut *$tx)
            .await?;
        }
        for person_no in &$batch.reappeared {
            let cleared = sqlx::query(
                "UPDATE pensioners SET missing_since = NULL WHERE person_no = $1 \
                 AND missing_since IS NOT NULL",
            )
            .bind(person_no)
            .execute(&mut *$tx)
            .await?;
            if cleared.rows_affected() > 0 {
                $outcome.reappeared += 1;
                insert_history!(
                    $tx,
                    person_no,
                    $run_id,
                    $as_of,
                    "reappeared",
                    None::<String>,
                    None::<String>
                );
            }
        }
    }};
}

macro_rules! insert_history {
    ($tx:expr, $person_no:expr, $run_id:expr, $as_of:expr, $field:expr, $before:expr, $after:expr) => {
        sqlx::query(
            "INSERT INTO pensioner_history (person_no, run_id, as_of, field, before, after) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($person_no)
        .bind($run_id)
        .bind($as_of)
        .bind($field)
        .bind($before)
        .bind($after)
        .execute(&mut *$tx)
        .await?
    };
}

impl Store {
    /// Streams `(person_no, content_hash, is_missing)` of every stored
    /// pensioner into `f`, without holding them all as rows.
    pub async fn for_each_roster_hash(
        &self,
        mut f: impl FnMut(&str, i64, bool) + Send,
    ) -> Result<u64> {
        use futures::TryStreamExt;
        match self {
            Store::Sqlite(pool) => {
                // Millions of rows: read them straight from SQLite's buffers.
                let mut conn = pool.acquire().await?;
                let mut handle = conn.lock_handle().await?;
                Ok(super::pensioners_bulk::for_each_hash(
                    handle.as_raw_handle(),
                    f,
                )?)
            }
            Store::Postgres(pool) => {
                let mut n = 0u64;
                let mut rows = sqlx::query_as::<_, (String, i64, bool)>(
                    "SELECT person_no, content_hash, missing_since IS NOT NULL FROM pensioners",
                )
                .fetch(pool);
                while let Some((person_no, hash, missing)) = rows.try_next().await? {
                    f(&person_no, hash, missing);
                    n += 1;
                }
                Ok(n)
            }
        }
    }

    /// Writes one classified batch of a roster import in one transaction:
    /// a crash leaves every batch either fully stored or not at all.
    pub async fn apply_roster_batch(
        &self,
        run_id: i64,
        as_of: NaiveDate,
        batch: &RosterBatch,
    ) -> Result<BatchOutcome> {
        let mut outcome = BatchOutcome::default();
        let now = now_utc_text();
        match self {
            Store::Sqlite(pool) => {
                // IMMEDIATE: a batch of changes only reads each person before
                // writing, and a deferred transaction whose read is upgraded
                // to a write fails at once (SQLITE_BUSY, whatever the busy
                // timeout) when a pull, an evidence import or a match run
                // committed in between. Taking the write lock first makes it
                // wait for them instead.
                let mut tx = pool.begin_write().await?;
                if !batch.inserts.is_empty() {
                    let mut handle = tx.lock_handle().await?;
                    super::pensioners_bulk::insert_pensioners(
                        handle.as_raw_handle(),
                        &batch.inserts,
                    )?;
                }
                apply_changes_and_presence!(tx, batch, run_id, as_of, outcome);
                insert_quarantine!(tx, run_id, &batch.quarantine, &now)?;
                tx.commit().await?;
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin_write().await?;
                if !batch.inserts.is_empty() {
                    let sql = format!(
                        "COPY pensioners ({INSERT_COLUMN_LIST}) FROM STDIN WITH (FORMAT binary)"
                    );
                    let mut copy = tx.copy_in_raw(&sql).await?;
                    copy.send(pg_copy_binary(&batch.inserts)).await?;
                    copy.finish().await?;
                }
                apply_changes_and_presence!(tx, batch, run_id, as_of, outcome);
                insert_quarantine!(tx, run_id, &batch.quarantine, &now)?;
                tx.commit().await?;
            }
        }
        Ok(outcome)
    }

    /// Flags the people absent from a complete snapshot; returns how many
    /// were newly flagged (those already missing stay as they are).
    pub async fn flag_missing(
        &self,
        run_id: i64,
        as_of: NaiveDate,
        person_nos: &[String],
    ) -> Result<u64> {
        let mut flagged = 0u64;
        for chunk in person_nos.chunks(5_000) {
            with_pool!(self, pool => {
                let mut tx = pool.begin_write().await?;
                for person_no in chunk {
                    let done = sqlx::query(
                        "UPDATE pensioners SET missing_since = $1 WHERE person_no = $2 AND missing_since IS NULL",
                    )
                    .bind(as_of)
                    .bind(person_no)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() > 0 {
                        flagged += 1;
                        insert_history!(tx, person_no, run_id, as_of, "missing", None::<String>,
                            Some(format!("absent from the export of {as_of}")));
                    }
                }
                tx.commit().await?;
            });
        }
        Ok(flagged)
    }

    pub async fn get_pensioner(&self, person_no: &str) -> Result<Option<Pensioner>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {PENSIONER_COLUMNS} FROM pensioners WHERE person_no = $1"
        ));
        let p = with_pool!(self, pool => {
            sqlx::query_as::<_, Pensioner>(sql).bind(person_no).fetch_optional(pool).await
        })?;
        Ok(p)
    }

    pub async fn count_pensioners(&self) -> Result<u64> {
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM pensioners").fetch_one(pool).await
        })?;
        Ok(n as u64)
    }

    /// The history of one pensioner, oldest first.
    pub async fn pensioner_history(&self, person_no: &str) -> Result<Vec<HistoryEntry>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, HistoryEntry>(
                "SELECT person_no, run_id, as_of, field, before, after FROM pensioner_history \
                 WHERE person_no = $1 ORDER BY id",
            )
            .bind(person_no)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// All history rows written by one run, in order.
    pub async fn history_for_run(&self, run_id: i64) -> Result<Vec<HistoryEntry>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, HistoryEntry>(
                "SELECT person_no, run_id, as_of, field, before, after FROM pensioner_history \
                 WHERE run_id = $1 ORDER BY id",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}
