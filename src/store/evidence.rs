//! Evidence of life (spec §5) and remote video sessions (spec §6): what
//! proves a pensioner was alive on a date.
//!
//! The import decides what a row is (valid, quarantined, a conflicting
//! re-delivery); this module stores what it decided, a batch's rows and its
//! quarantine in one transaction, and answers the two questions the rest of
//! the engine asks: the latest date each person was proven alive (the
//! matcher's counter-evidence) and the events of one person (the
//! certification scheduler, the queue pages). It never decides whether a
//! row is valid and never deletes one.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;

use super::quarantine::QuarantineEntry;
use super::quarantine::insert_quarantine;
use super::rows::{
    Cell, LIFE_COLUMNS, VIDEO_COLUMNS, bind_cells, in_list, insert_sql, life_cells, video_cells,
};
use super::with_pool;
use super::{BeginWrite, Result, Store, now_utc_text};
use crate::model::{EvidenceEvent, LifeEvent, LifeEvidence, VideoSession};

/// What is stored for a video session key, enough to tell an identical
/// re-delivery from a conflicting one.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredSession {
    pub id_number: String,
    pub session_at: String,
    pub result: String,
    pub operator: String,
    pub note: String,
    pub run_id: i64,
}

/// Rows per multi-row `INSERT`: at most 6,000 binds, well under both
/// backends' limits (SQLite 32766, PostgreSQL 65535).
const ROWS_PER_STATEMENT: usize = 1000;

#[derive(sqlx::FromRow)]
struct EventRow {
    event_type: String,
    event_date: NaiveDate,
    source_ref: String,
    result: Option<String>,
    operator: Option<String>,
    run_id: i64,
}

impl Store {
    /// Stores one batch of the evidence feed and its quarantine in one
    /// transaction. Rows already stored under the same (id_number,
    /// event_type, event_date, source_ref) are left alone; returns how many
    /// rows were new (the rest of `rows` are duplicates).
    pub async fn insert_life_evidence(
        &self,
        run_id: i64,
        rows: &[EvidenceEvent],
        quarantine: &[QuarantineEntry],
    ) -> Result<u64> {
        self.insert_new_rows(
            "life_evidence",
            &LIFE_COLUMNS,
            rows,
            life_cells,
            run_id,
            quarantine,
        )
        .await
    }

    /// What is stored under the given (id_number, session_at) keys.
    pub async fn stored_video_sessions(
        &self,
        keys: &[(&str, &str)],
    ) -> Result<HashMap<(String, String), StoredSession>> {
        let backend = self.backend();
        let mut out = HashMap::with_capacity(keys.len());
        // By ID number (the index's first column), then the exact session
        // picked out here: one statement per chunk instead of one per key.
        let wanted: HashSet<(&str, &str)> = keys.iter().copied().collect();
        let mut ids: Vec<&str> = keys.iter().map(|k| k.0).collect();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let list = in_list(backend, 0, chunk.len());
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT id_number, session_at, result, operator, note, run_id \
                 FROM video_sessions WHERE id_number IN ({list})"
            ));
            let rows: Vec<StoredSession> = with_pool!(self, pool => {
                let mut q = sqlx::query_as::<_, StoredSession>(sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.fetch_all(pool).await
            })?;
            for r in rows {
                if wanted.contains(&(r.id_number.as_str(), r.session_at.as_str())) {
                    out.insert((r.id_number.clone(), r.session_at.clone()), r);
                }
            }
        }
        Ok(out)
    }

    /// Stores one batch of video sessions and its quarantine in one
    /// transaction. A session already stored under (id_number, session_at)
    /// is left alone; returns how many rows were new.
    pub async fn insert_video_sessions(
        &self,
        run_id: i64,
        rows: &[VideoSession],
        quarantine: &[QuarantineEntry],
    ) -> Result<u64> {
        self.insert_new_rows(
            "video_sessions",
            &VIDEO_COLUMNS,
            rows,
            video_cells,
            run_id,
            quarantine,
        )
        .await
    }

    /// Inserts `rows` of an import run (each as its `cells`, then the run
    /// and the time received, in `columns` order) and its quarantine in one
    /// transaction, leaving alone rows whose key is stored already; returns
    /// how many rows were new.
    async fn insert_new_rows<'r, T, const N: usize>(
        &self,
        table: &str,
        columns: &[&str],
        rows: &'r [T],
        cells: impl Fn(&'r T) -> [Cell<'r>; N],
        run_id: i64,
        quarantine: &[QuarantineEntry],
    ) -> Result<u64> {
        debug_assert_eq!(columns.len(), N + 2);
        let backend = self.backend();
        let now = now_utc_text();
        let mut inserted = 0u64;
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut sql = insert_sql(backend, table, columns, chunk.len());
                sql.push_str(" ON CONFLICT DO NOTHING");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for r in chunk {
                    q = bind_cells!(q, cells(r)).bind(run_id).bind(&now);
                }
                inserted += q.execute(&mut *tx).await?.rows_affected();
            }
            insert_quarantine!(tx, run_id, quarantine, &now)?;
            tx.commit().await?;
        });
        Ok(inserted)
    }

    /// For every person with any proof of life, the latest date they were
    /// proven alive, ordered by ID number. Every event of the feed counts; a
    /// video session counts only when passed, on its date in China.
    pub async fn latest_life_dates(&self) -> Result<Vec<(String, NaiveDate)>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, (String, NaiveDate)>(
                "SELECT id_number, MAX(proven_on) FROM proofs_of_life \
                 GROUP BY id_number ORDER BY id_number",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// The matcher's counter-evidence: [`Store::latest_life_dates`] as a
    /// [`LifeEvidence`].
    pub async fn load_life_evidence(&self) -> Result<LifeEvidence> {
        let started = std::time::Instant::now();
        let life = match self {
            // Millions of events: streamed through the C API.
            Store::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let mut handle = conn.lock_handle().await?;
                super::matches_bulk::load_life_evidence(handle.as_raw_handle())?
            }
            Store::Postgres(_) => {
                let mut life = LifeEvidence::new();
                for (id_number, date) in self.latest_life_dates().await? {
                    life.insert(&id_number, date);
                }
                life
            }
        };
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "loaded the evidence of life"
        );
        Ok(life)
    }

    /// Every event stored for one (normalised) ID number, video sessions
    /// included whatever their result, latest first.
    pub async fn life_evidence_for(&self, id_number: &str) -> Result<Vec<LifeEvent>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, EventRow>(
                "SELECT event_type, event_date, source_ref, result, operator, run_id FROM ( \
                   SELECT event_type, event_date, source_ref, \
                          CAST(NULL AS TEXT) AS result, CAST(NULL AS TEXT) AS operator, run_id \
                   FROM life_evidence WHERE id_number = $1 \
                   UNION ALL \
                   SELECT 'video_session', session_date, session_at, result, operator, run_id \
                   FROM video_sessions WHERE id_number = $1 \
                 ) AS events ORDER BY event_date DESC, event_type, source_ref",
            )
            .bind(id_number)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| LifeEvent {
                proves_life: r.result.as_deref().is_none_or(|res| res == "passed"),
                event_type: r.event_type,
                event_date: r.event_date,
                source_ref: r.source_ref,
                result: r.result,
                operator: r.operator,
                run_id: r.run_id,
            })
            .collect())
    }

    /// How many rows the two tables hold: (life_evidence, video_sessions).
    pub async fn count_life_evidence(&self) -> Result<(u64, u64)> {
        let (a, b): (i64, i64) = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM life_evidence), (SELECT COUNT(*) FROM video_sessions)",
            )
            .fetch_one(pool)
            .await
        })?;
        Ok((a as u64, b as u64))
    }
}
