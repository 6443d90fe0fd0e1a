//! What the matcher has looked at, and the deaths it fused.
//!
//! A match run first *claims* the death records it will match, at the
//! version it reads (all of them for `vigil match --full`; otherwise the
//! ones never matched, changed since, or matched under other rules). When
//! the run succeeds, its matches, the fused death events and the claimed
//! records' progress are written in one transaction; when it fails, its
//! claims are dropped and the records stay pending. A record that changes
//! while the run works is not read at its old version: it stays pending for
//! the next run.
//!
//! Bulk writes go through one JSON array parameter (`json_each` on SQLite,
//! `jsonb_array_elements` on PostgreSQL), so that a hundred thousand matches
//! are a handful of statements on either backend; SQLite takes the matches
//! themselves, the bulk of it, through one prepared statement on its C API.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::matches::{RECORD_COLUMNS, RecordRow, StoredMatch};
use super::{Backend, Result, Store, now_utc_text};
use crate::matching::model::DeathRecord;
use crate::with_pool;

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
/// death arrived since (it may block `auto`).
const PENDING: &str = "(p.source IS NULL OR p.rules_version <> $2 \
     OR p.record_version <> d.version \
     OR EXISTS (SELECT 1 FROM matches m JOIN pensioners pe ON pe.person_no = m.person_no \
       JOIN proofs_of_life l ON l.id_number = pe.id_number \
       WHERE m.source = d.source AND m.record_key = d.record_key \
       AND l.proven_on > d.death_date AND l.run_id > p.run_id))";

/// Rows per bulk statement: big enough to amortise, small enough to keep
/// one statement's JSON text in the tens of megabytes.
const CHUNK: usize = 20_000;

fn bulk_select(backend: Backend, casts: &[&str]) -> String {
    match backend {
        Backend::Sqlite => {
            let cols: Vec<String> = (0..casts.len())
                .map(|i| format!("json_extract(value, '$[{i}]')"))
                .collect();
            format!("SELECT {} FROM json_each($1)", cols.join(", "))
        }
        Backend::Postgres => {
            let cols: Vec<String> = casts
                .iter()
                .enumerate()
                .map(|(i, cast)| match *cast {
                    "" => format!("e->>{i}"),
                    c => format!("(e->>{i})::{c}"),
                })
                .collect();
            format!(
                "SELECT {} FROM jsonb_array_elements($1::jsonb) e",
                cols.join(", ")
            )
        }
    }
}

/// How a backend's transaction takes a run's matches: SQLite through one
/// prepared statement on its C API (the explanations make this the
/// largest write of a run), PostgreSQL through JSON array chunks.
trait MatchWriter {
    async fn insert_matches(
        &mut self,
        json_sql: &str,
        run_id: i64,
        now: &str,
        matches: &[StoredMatch],
    ) -> Result<()>;
}

impl MatchWriter for sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn insert_matches(
        &mut self,
        _json_sql: &str,
        run_id: i64,
        now: &str,
        matches: &[StoredMatch],
    ) -> Result<()> {
        let mut handle = self.lock_handle().await?;
        super::matches_bulk::insert_matches(handle.as_raw_handle(), run_id, now, matches)?;
        Ok(())
    }
}

impl MatchWriter for sqlx::Transaction<'_, sqlx::Postgres> {
    async fn insert_matches(
        &mut self,
        json_sql: &str,
        run_id: i64,
        now: &str,
        matches: &[StoredMatch],
    ) -> Result<()> {
        for chunk in matches.chunks(CHUNK) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|m| {
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
                .collect();
            sqlx::query(sqlx::AssertSqlSafe(json_sql))
                .bind(serde_json::Value::Array(rows).to_string())
                .execute(&mut **self)
                .await?;
        }
        Ok(())
    }
}

impl Store {
    /// Claims this run's records; returns how many.
    pub async fn claim_match_records(
        &self,
        run_id: i64,
        rules_version: &str,
        scope: MatchScope,
    ) -> Result<u64> {
        let sql: &str = match scope {
            MatchScope::All => {
                "INSERT INTO match_claims (run_id, source, record_key, record_version) \
                 SELECT $1, d.source, d.record_key, d.version FROM death_records d \
                 WHERE $2 = $2"
            }
            MatchScope::Pending => &format!(
                "INSERT INTO match_claims (run_id, source, record_key, record_version) \
                 SELECT $1, d.source, d.record_key, d.version FROM death_records d \
                 LEFT JOIN match_progress p \
                   ON p.source = d.source AND p.record_key = d.record_key \
                 WHERE {PENDING}"
            ),
        };
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

    /// The records this run claimed, at the claimed version, ordered by
    /// (source, record_key).
    pub async fn load_claimed_records(&self, run_id: i64) -> Result<Vec<DeathRecord>> {
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
    ) -> Result<Vec<(DeathRecord, String, String)>> {
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

    /// Writes a successful run's outcome in one transaction: the claimed
    /// records' matches replace their old ones (with `All`, every match is
    /// replaced), the death events are replaced, and the claimed records
    /// are marked as matched under `rules_version`.
    pub async fn commit_match_run(
        &self,
        run_id: i64,
        rules_version: &str,
        scope: MatchScope,
        matches: &[StoredMatch],
        events: &[StoredEvent],
    ) -> Result<()> {
        let now = now_utc_text();
        let backend = self.backend();
        let match_sql = format!(
            "INSERT INTO matches (source, record_key, person_no, score, band, runner_up, margin, \
             explanation, rules_version, run_id, matched_at, may_carry) {}",
            bulk_select(
                backend,
                &[
                    "", "", "", "float8", "", "", "float8", "", "", "bigint", "", "boolean"
                ]
            )
        );
        let event_sql = format!(
            "INSERT INTO death_events (person_no, death_date, band, sources, evidence_strength, \
             flags, records, rules_version, run_id, updated_at) {}",
            bulk_select(
                backend,
                &["", "date", "", "", "float8", "", "", "", "bigint", ""]
            )
        );
        let full = scope == MatchScope::All;
        let event_chunks: Vec<String> = events
            .chunks(CHUNK)
            .map(|chunk| {
                let rows: Vec<serde_json::Value> = chunk
                    .iter()
                    .map(|e| {
                        serde_json::json!([
                            e.person_no,
                            e.death_date.to_string(),
                            e.band,
                            serde_json::to_string(&e.sources).unwrap_or_default(),
                            e.evidence_strength,
                            serde_json::to_string(&e.flags).unwrap_or_default(),
                            serde_json::to_string(&e.records).unwrap_or_default(),
                            e.rules_version,
                            run_id,
                            now
                        ])
                    })
                    .collect();
                serde_json::Value::Array(rows).to_string()
            })
            .collect();
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
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
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
            tx.insert_matches(&match_sql, run_id, &now, matches).await?;
            timed("inserted the matches");
            sqlx::query("DELETE FROM death_events").execute(&mut *tx).await?;
            for chunk in &event_chunks {
                sqlx::query(sqlx::AssertSqlSafe(event_sql.as_str()))
                    .bind(chunk)
                    .execute(&mut *tx)
                    .await?;
            }
            timed("replaced the death events");
            // A full run claimed every record: its claims are the whole
            // progress, written into an emptied table (an upsert of a
            // million rows, each found and rewritten, took ten seconds).
            if full {
                sqlx::query("DELETE FROM match_progress").execute(&mut *tx).await?;
            }
            let conflict = if full {
                ""
            } else {
                " ON CONFLICT (source, record_key) DO UPDATE SET \
                 record_version = excluded.record_version, \
                 rules_version = excluded.rules_version, run_id = excluded.run_id"
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO match_progress (source, record_key, record_version, rules_version, run_id) \
                 SELECT source, record_key, record_version, $2, $1 FROM match_claims \
                 WHERE run_id = $1{conflict}"
            )))
            .bind(run_id)
            .bind(rules_version)
            .execute(&mut *tx)
            .await?;
            timed("recorded the progress");
            sqlx::query("DELETE FROM match_claims WHERE run_id = $1")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            timed("dropped the claims");
            tx.commit().await?;
            timed("committed");
        });
        Ok(())
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
