//! What the matcher has looked at, and the deaths it fused.
//!
//! A pending match run (`vigil match`) first *claims* the death records it
//! will match, at the version stored then: the ones never matched, changed
//! since, or matched under other rules. A full run (`vigil match --full`)
//! claims nothing: it reads every record with its version in one scan and
//! records those versions. When a run succeeds, its matches, the fused death
//! events and its records' progress are written in one transaction; when it
//! fails, its claims are dropped and the records stay pending. A record that
//! changes while the run works is not marked at its new version: it stays
//! pending for the next run.
//!
//! On PostgreSQL, bulk writes go through one JSON array parameter
//! (`jsonb_array_elements`), so that a hundred thousand matches are a
//! handful of statements; SQLite takes matches, events and progress through
//! prepared statements on its C API.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::matches::{RECORD_COLUMNS, RecordRow, StoredMatch};
use super::with_pool;
use super::{Backend, BeginWriteOn, Result, Store, now_utc_text};
use crate::model::{MatchRecord, TwinCandidate};

/// Which records a match run takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchScope {
    /// Every stored death record (`vigil match --full`).
    All,
    /// Records not yet matched under these rules, at this version.
    Pending,
}

/// One fused death, as stored (`matching::fuse::DeathEvent` without the
/// in-memory indexes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub person_no: String,
    pub death_date: NaiveDate,
    pub band: String,
    /// Distinct sources in precedence order.
    pub sources: Vec<String>,
    pub evidence_strength: f64,
    /// `matching::fuse::TimelineFlag`s as JSON values.
    pub flags: Vec<serde_json::Value>,
    /// Every record of the event: source, record_key, death_date.
    pub records: Vec<serde_json::Value>,
    pub rules_version: String,
    pub run_id: i64,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    person_no: String,
    death_date: NaiveDate,
    band: String,
    sources: String,
    evidence_strength: f64,
    flags: String,
    records: String,
    rules_version: String,
    run_id: i64,
}

#[derive(sqlx::FromRow)]
struct KeptRow {
    #[sqlx(flatten)]
    record: RecordRow,
    person_no: String,
    band: String,
}

/// Which records (`d`, with their progress `p`) a pending match takes:
/// never matched, matched at an older version or under other rules (`$2`),
/// or matched to a pensioner for whom evidence of life dated after the
/// death arrived since (it may block `auto`). The newest proof's run is
/// read once: when no proof came after a record's match run, its matched
/// pensioner is not looked up at all (at 10M pensioners and a million
/// records, an idle pending run's claim took 13 s without it, 1 s with it).
const PENDING: &str = "(p.source IS NULL OR p.rules_version <> $2 \
     OR p.record_version <> d.version \
     OR (p.run_id < (SELECT max(run_id) FROM proofs_of_life) \
       AND EXISTS (SELECT 1 FROM matches m JOIN pensioners pe ON pe.person_no = m.person_no \
       JOIN proofs_of_life l ON l.id_number = pe.id_number \
       WHERE m.source = d.source AND m.record_key = d.record_key \
       AND l.proven_on > d.death_date AND l.run_id > p.run_id)))";

/// Rows per bulk statement: big enough to amortise, small enough to keep
/// one statement's JSON text in the tens of megabytes.
const CHUNK: usize = 20_000;

/// `INSERT INTO {into} SELECT ...` reading one JSON array parameter of
/// rows, each an array whose element `i` is cast with `casts[i]` (none
/// when empty): PostgreSQL's bulk insert (SQLite takes the C API).
pub(super) fn pg_json_insert(into: &str, casts: &[&str]) -> String {
    let cols: Vec<String> = casts
        .iter()
        .enumerate()
        .map(|(i, cast)| match *cast {
            "" => format!("e->>{i}"),
            c => format!("(e->>{i})::{c}"),
        })
        .collect();
    format!(
        "INSERT INTO {into} SELECT {} FROM jsonb_array_elements($1::jsonb) e",
        cols.join(", ")
    )
}

/// One death event encoded for storage: its lists as JSON text.
pub(super) struct EncodedEvent<'a> {
    pub person_no: &'a str,
    pub death_date: String,
    pub band: &'a str,
    pub sources: String,
    pub evidence_strength: f64,
    pub flags: String,
    pub records: String,
    pub rules_version: &'a str,
    pub run_id: i64,
}

impl<'a> EncodedEvent<'a> {
    fn of(e: &'a StoredEvent) -> EncodedEvent<'a> {
        fn json<T: Serialize>(list: &[T]) -> String {
            serde_json::to_string(list).unwrap_or_else(|_| "[]".to_string())
        }
        EncodedEvent {
            person_no: &e.person_no,
            death_date: e.death_date.to_string(),
            band: &e.band,
            sources: json(&e.sources),
            evidence_strength: e.evidence_strength,
            flags: json(&e.flags),
            records: json(&e.records),
            rules_version: &e.rules_version,
            run_id: e.run_id,
        }
    }
}

/// Which records a run's commit marks as matched.
pub enum Progress<'a> {
    /// The records this run claimed (`vigil match`).
    Claimed,
    /// Every record, at the version the run read of each
    /// (`Store::load_match_records_versioned`): `vigil match --full`, which
    /// claims nothing. A record changed since it was read is stored newer
    /// than its progress, so it stays pending for the next run.
    All {
        records: &'a [MatchRecord],
        versions: &'a [i64],
    },
}

/// How a backend's transaction takes a run's rows: SQLite through prepared
/// statements on its C API (the explanations make the matches the largest
/// write of a run), PostgreSQL through JSON array chunks.
trait RunWriter {
    async fn insert_matches(
        &mut self,
        run_id: i64,
        now: &str,
        matches: &[StoredMatch],
    ) -> Result<()>;

    async fn insert_events(&mut self, now: &str, events: &[EncodedEvent<'_>]) -> Result<()>;

    /// Into an emptied `match_progress`.
    async fn insert_progress(
        &mut self,
        run_id: i64,
        rules_version: &str,
        records: &[MatchRecord],
        versions: &[i64],
    ) -> Result<()>;
}

impl RunWriter for sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn insert_matches(
        &mut self,
        run_id: i64,
        now: &str,
        matches: &[StoredMatch],
    ) -> Result<()> {
        let mut handle = self.lock_handle().await?;
        super::matches_bulk::insert_matches(handle.as_raw_handle(), run_id, now, matches)?;
        Ok(())
    }

    async fn insert_events(&mut self, now: &str, events: &[EncodedEvent<'_>]) -> Result<()> {
        let mut handle = self.lock_handle().await?;
        super::matches_bulk::insert_events(handle.as_raw_handle(), now, events)?;
        Ok(())
    }

    async fn insert_progress(
        &mut self,
        run_id: i64,
        rules_version: &str,
        records: &[MatchRecord],
        versions: &[i64],
    ) -> Result<()> {
        let mut handle = self.lock_handle().await?;
        super::matches_bulk::insert_progress(
            handle.as_raw_handle(),
            run_id,
            rules_version,
            records,
            versions,
        )?;
        Ok(())
    }
}

/// Inserts `rows` with `sql` ([`pg_json_insert`]), `CHUNK` rows per
/// statement.
async fn insert_json_chunks<T>(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    sql: &str,
    rows: &[T],
    row: impl Fn(&T) -> serde_json::Value,
) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let values: Vec<serde_json::Value> = chunk.iter().map(&row).collect();
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(serde_json::Value::Array(values).to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl RunWriter for sqlx::Transaction<'_, sqlx::Postgres> {
    async fn insert_matches(
        &mut self,
        run_id: i64,
        now: &str,
        matches: &[StoredMatch],
    ) -> Result<()> {
        let sql = pg_json_insert(
            "matches (source, record_key, person_no, score, band, runner_up, margin, \
             explanation, rules_version, run_id, matched_at, may_carry)",
            &[
                "", "", "", "float8", "", "", "float8", "", "", "bigint", "", "boolean",
            ],
        );
        insert_json_chunks(self, &sql, matches, |m| {
            serde_json::json!([
                m.source,
                m.record_key,
                m.person_no,
                m.score,
                m.band,
                m.runner_up,
                m.margin,
                m.explanation,
                m.rules_version,
                run_id,
                now,
                m.may_carry
            ])
        })
        .await
    }

    async fn insert_events(&mut self, now: &str, events: &[EncodedEvent<'_>]) -> Result<()> {
        let sql = pg_json_insert(
            "death_events (person_no, death_date, band, sources, evidence_strength, flags, \
             records, rules_version, run_id, updated_at)",
            &["", "date", "", "", "float8", "", "", "", "bigint", ""],
        );
        insert_json_chunks(self, &sql, events, |e| {
            serde_json::json!([
                e.person_no,
                e.death_date,
                e.band,
                e.sources,
                e.evidence_strength,
                e.flags,
                e.records,
                e.rules_version,
                e.run_id,
                now
            ])
        })
        .await
    }

    async fn insert_progress(
        &mut self,
        run_id: i64,
        rules_version: &str,
        records: &[MatchRecord],
        versions: &[i64],
    ) -> Result<()> {
        let rows: Vec<(&MatchRecord, i64)> = records.iter().zip(versions.iter().copied()).collect();
        let sql = pg_json_insert(
            "match_progress (source, record_key, record_version, rules_version, run_id)",
            &["", "", "integer", "", "bigint"],
        );
        insert_json_chunks(self, &sql, &rows, |(r, version)| {
            serde_json::json!([r.source, r.record_key, version, rules_version, run_id])
        })
        .await
    }
}

impl Store {
    /// Claims the records a pending run (`vigil match`) takes, at the
    /// version stored now; returns how many. A full run claims nothing: it
    /// records the versions it reads ([`Progress::All`]).
    pub async fn claim_match_records(&self, run_id: i64, rules_version: &str) -> Result<u64> {
        let sql = format!(
            "INSERT INTO match_claims (run_id, source, record_key, record_version) \
             SELECT $1, d.source, d.record_key, d.version FROM death_records d \
             LEFT JOIN match_progress p \
               ON p.source = d.source AND p.record_key = d.record_key \
             WHERE {PENDING}"
        );
        let n = with_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(run_id)
                .bind(rules_version)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Stored `review` matches that may be carried, not claimed by this run,
    /// whose record shares a pinyin name key with a record this run claimed
    /// that carries a valid ID: a new record may be another person's death
    /// that such a record fits as well (`matching::fuse::mark_other_deaths`).
    /// Each with its pensioner's ID and death date, and the claimed records'
    /// (name key, ID, death date) to check them against.
    pub async fn twin_claim_candidates(
        &self,
        run_id: i64,
    ) -> Result<(Vec<TwinCandidate>, Vec<(String, String, NaiveDate)>)> {
        let (candidates, claimed) = with_pool!(self, pool => {
            let candidates = sqlx::query_as::<_, TwinCandidate>(
                "SELECT d.source, d.record_key, CAST(d.version AS BIGINT) AS version, d.name_key, \
                 d.death_date, p.id_number AS person_id FROM matches m \
                 JOIN death_records d ON d.source = m.source AND d.record_key = m.record_key \
                 JOIN pensioners p ON p.person_no = m.person_no \
                 WHERE m.band = 'review' AND m.may_carry \
                 AND d.name_key IN (SELECT n.name_key FROM match_claims c \
                   JOIN death_records n ON n.source = c.source AND n.record_key = c.record_key \
                   WHERE c.run_id = $1 AND n.id_number IS NOT NULL) \
                 AND NOT EXISTS (SELECT 1 FROM match_claims c WHERE c.run_id = $1 \
                   AND c.source = d.source AND c.record_key = d.record_key) \
                 ORDER BY d.source, d.record_key",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await;
            match candidates {
                Ok(c) if c.is_empty() => Ok((c, Vec::new())),
                Ok(c) => sqlx::query_as::<_, (String, String, NaiveDate)>(
                    "SELECT n.name_key, n.id_number, n.death_date FROM match_claims c \
                     JOIN death_records n ON n.source = c.source AND n.record_key = c.record_key \
                     WHERE c.run_id = $1 AND n.id_number IS NOT NULL",
                )
                .bind(run_id)
                .fetch_all(pool)
                .await
                .map(|claimed| (c, claimed)),
                Err(e) => Err(e),
            }
        })?;
        Ok((candidates, claimed))
    }

    /// Claims these records too, at the version read with them.
    pub async fn claim_more_records(&self, run_id: i64, records: &[&TwinCandidate]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for r in records {
                sqlx::query(
                    "INSERT INTO match_claims (run_id, source, record_key, record_version) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(run_id)
                .bind(&r.source)
                .bind(&r.record_key)
                .bind(r.version)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// The records this run claimed, at the claimed version, ordered by
    /// (source, record_key).
    pub async fn load_claimed_records(&self, run_id: i64) -> Result<Vec<MatchRecord>> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM match_claims c JOIN death_records d \
             ON d.source = c.source AND d.record_key = c.record_key \
             AND d.version = c.record_version \
             WHERE c.run_id = $1 ORDER BY d.source, d.record_key"
        );
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, RecordRow>(sqlx::AssertSqlSafe(sql))
                .bind(run_id)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(RecordRow::into_record).collect())
    }

    /// The stored matches this run keeps (their records were not claimed),
    /// with their records: what the new matches must not contradict and
    /// what the death events are fused from. Ordered by (source, key).
    pub async fn load_kept_matches(
        &self,
        run_id: i64,
    ) -> Result<Vec<(MatchRecord, String, String)>> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS}, m.person_no, m.band FROM matches m \
             JOIN death_records d ON d.source = m.source AND d.record_key = m.record_key \
             WHERE NOT EXISTS (SELECT 1 FROM match_claims c WHERE c.run_id = $1 \
               AND c.source = m.source AND c.record_key = m.record_key) \
             ORDER BY d.source, d.record_key"
        );
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, KeptRow>(sqlx::AssertSqlSafe(sql))
                .bind(run_id)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| (r.record.into_record(), r.person_no, r.band))
            .collect())
    }

    /// Writes a successful run's outcome in one transaction: the matches of
    /// the records in `progress` replace their old ones (with
    /// [`Progress::All`], every match is replaced), the death events are
    /// replaced, and those records are marked as matched under
    /// `rules_version`.
    pub async fn commit_match_run(
        &self,
        run_id: i64,
        rules_version: &str,
        progress: Progress<'_>,
        matches: &[StoredMatch],
        events: &[StoredEvent],
    ) -> Result<()> {
        let (matches, events) = (matches.to_vec(), events.to_vec());
        self.commit_match_run_with(
            run_id,
            rules_version,
            progress,
            async { Ok(matches) },
            async { Ok(events) },
        )
        .await
        .map(|_| ())
    }

    /// [`Store::commit_match_run`] with the matches and the death events
    /// still being made (their explanations written, the events fused, on
    /// the other cores): the old matches are deleted and the progress
    /// recorded while `matches` finishes, the matches written while
    /// `events` finishes, then the events and the commit. Returns the
    /// events written. When either gives an error, nothing is written and
    /// the error is [`StoreError::Interrupted`].
    pub async fn commit_match_run_with(
        &self,
        run_id: i64,
        rules_version: &str,
        progress: Progress<'_>,
        matches: impl std::future::Future<Output = std::result::Result<Vec<StoredMatch>, String>>,
        events: impl std::future::Future<Output = std::result::Result<Vec<StoredEvent>, String>>,
    ) -> Result<Vec<StoredEvent>> {
        use rayon::prelude::*;
        let now = now_utc_text();
        let backend = self.backend();
        let full = matches!(progress, Progress::All { .. });
        with_pool!(self, pool => {
            let mut step = std::time::Instant::now();
            let mut timed = |what: &str| {
                tracing::debug!(seconds = step.elapsed().as_secs_f64(), "{what}");
                step = std::time::Instant::now();
            };
            let mut conn = pool.acquire().await?;
            // A full run on SQLite empties whole tables. SQLite truncates a
            // table at once only when foreign keys are not enforced
            // (enforced, it deletes a million matches row by row and index
            // by index: tens of seconds); the rows written reference this
            // run, which exists. The connection is closed afterwards, never
            // handed back to the pool without enforcement.
            if full && backend == Backend::Sqlite {
                conn.close_on_drop();
                sqlx::query("PRAGMA foreign_keys = OFF")
                    .execute(&mut *conn)
                    .await?;
            }
            let mut tx = (*conn).begin_write().await?;
            if full {
                // Every match is replaced: emptied at once.
                sqlx::query("DELETE FROM matches").execute(&mut *tx).await?;
            } else {
                sqlx::query(
                    "DELETE FROM matches WHERE EXISTS (SELECT 1 FROM match_claims c \
                     WHERE c.run_id = $1 AND c.source = matches.source \
                     AND c.record_key = matches.record_key)",
                )
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
                // A record that left death_records (a cancellation corrected
                // to another reason) takes its match with it.
                sqlx::query(
                    "DELETE FROM matches WHERE NOT EXISTS (SELECT 1 FROM death_records d \
                     WHERE d.source = matches.source AND d.record_key = matches.record_key)",
                )
                .execute(&mut *tx)
                .await?;
            }
            timed("deleted the replaced matches");
            // The progress first (it needs only the records): written while
            // the explanations are.
            match progress {
                // Every record's progress, written into an emptied table (an
                // upsert of a million rows, each found and rewritten, took
                // ten seconds).
                Progress::All { records, versions } => {
                    sqlx::query("DELETE FROM match_progress").execute(&mut *tx).await?;
                    tx.insert_progress(run_id, rules_version, records, versions)
                        .await?;
                }
                Progress::Claimed => {
                    sqlx::query(
                        "INSERT INTO match_progress \
                         (source, record_key, record_version, rules_version, run_id) \
                         SELECT source, record_key, record_version, $2, $1 FROM match_claims \
                         WHERE run_id = $1 ON CONFLICT (source, record_key) DO UPDATE SET \
                         record_version = excluded.record_version, \
                         rules_version = excluded.rules_version, run_id = excluded.run_id",
                    )
                    .bind(run_id)
                    .bind(rules_version)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM match_claims WHERE run_id = $1")
                        .bind(run_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            timed("recorded the progress");
            // A failed explanation or fuse drops the transaction: nothing
            // is written.
            let matches = matches.await.map_err(super::StoreError::Interrupted)?;
            timed("waited for the matches");
            tx.insert_matches(run_id, &now, &matches).await?;
            drop(matches);
            timed("inserted the matches");
            let events = events.await.map_err(super::StoreError::Interrupted)?;
            timed("waited for the death events");
            let encoded: Vec<EncodedEvent<'_>> = events.par_iter().map(EncodedEvent::of).collect();
            sqlx::query("DELETE FROM death_events").execute(&mut *tx).await?;
            tx.insert_events(&now, &encoded).await?;
            drop(encoded);
            timed("replaced the death events");
            tx.commit().await?;
            timed("committed");
            Ok(events)
        })
    }

    /// Drops a failed run's claims: its records stay pending.
    pub async fn drop_match_claims(&self, run_id: i64) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM match_claims WHERE run_id = $1")
                .bind(run_id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Death records not yet matched under `rules_version` (what a
    /// `vigil match` without `--full` would take).
    pub async fn count_pending_match_records(&self, rules_version: &str) -> Result<i64> {
        let sql = format!(
            "SELECT COUNT(*) FROM death_records d LEFT JOIN match_progress p \
             ON p.source = d.source AND p.record_key = d.record_key \
             WHERE $1 = $1 AND {}",
            PENDING.replace("$2", "$1")
        );
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(rules_version)
            .fetch_one(pool)
            .await
        })?;
        Ok(n)
    }

    /// The fused death of one pensioner, if a match points at them.
    pub async fn death_event(&self, person_no: &str) -> Result<Option<StoredEvent>> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, EventRow>(
                "SELECT person_no, death_date, band, sources, evidence_strength, flags, records, \
                 rules_version, run_id FROM death_events WHERE person_no = $1",
            )
            .bind(person_no)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(EventRow::into_event))
    }

    /// Every fused death event, by person number.
    pub async fn list_death_events(&self) -> Result<Vec<StoredEvent>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, EventRow>(
                "SELECT person_no, death_date, band, sources, evidence_strength, flags, records, \
                 rules_version, run_id FROM death_events ORDER BY person_no",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(EventRow::into_event).collect())
    }
}

impl EventRow {
    fn into_event(self) -> StoredEvent {
        StoredEvent {
            person_no: self.person_no,
            death_date: self.death_date,
            band: self.band,
            sources: serde_json::from_str(&self.sources).unwrap_or_default(),
            evidence_strength: self.evidence_strength,
            flags: serde_json::from_str(&self.flags).unwrap_or_default(),
            records: serde_json::from_str(&self.records).unwrap_or_default(),
            rules_version: self.rules_version,
            run_id: self.run_id,
        }
    }
}
