//! Matches and what the matcher reads: the active roster and the stored
//! death records, shaped as the matcher's plain inputs, and the matches it
//! writes back with their explanations.
//!
//! This module only moves data; every decision is the matcher's.

use chrono::NaiveDate;
use serde::Serialize;

use super::rows::DEATH_COLUMNS;
use super::with_pool;
use super::{Result, Store};
use crate::model::{IdStatus, MatchRecord, Person};

/// One stored match: a death record, the pensioner it points at, and why.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredMatch {
    pub source: String,
    pub record_key: String,
    pub person_no: String,
    pub score: f64,
    /// `auto` or `review`.
    pub band: String,
    pub runner_up: Option<String>,
    pub margin: Option<f64>,
    /// The explanation as JSON (`matching::explain::Explanation`).
    pub explanation: String,
    pub rules_version: String,
    pub run_id: i64,
    pub matched_at: String,
    /// Nothing in the record's own evidence speaks against the pensioner
    /// (`matching::fuse::may_carry`).
    pub may_carry: bool,
}

/// A matched record and its pensioner's fused death (see
/// [`Store::list_match_rows`]).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct MatchRow {
    pub source: String,
    pub record_key: String,
    pub person_no: String,
    /// The record's own score and band, as its explanation gives them.
    pub record_score: f64,
    pub record_band: String,
    pub record_death_date: NaiveDate,
    pub runner_up: Option<String>,
    pub margin: Option<f64>,
    pub rules_version: String,
    /// See [`StoredMatch::may_carry`].
    pub may_carry: bool,
}

#[derive(sqlx::FromRow)]
struct PersonRow {
    person_no: String,
    name: String,
    name_norm: String,
    name_key: String,
    id_number: String,
    sex: i32,
    birth_date: NaiveDate,
    insured_region: String,
    residence_region: String,
    benefit_start: NaiveDate,
}

#[derive(sqlx::FromRow)]
pub(super) struct RecordRow {
    source: String,
    record_key: String,
    name_raw: String,
    name_norm: String,
    name_key: String,
    id_raw: String,
    id_number: Option<String>,
    id_status: String,
    sex: Option<i32>,
    birth_date: Option<NaiveDate>,
    birth_year_min: Option<i32>,
    birth_year_max: Option<i32>,
    death_date: NaiveDate,
    region: Option<String>,
}

/// The columns of `death_records` the matcher reads ([`RecordRow`]), in
/// this order: every query of them, through sqlx or the C API, lists them
/// from here.
fn record_fields() -> impl Iterator<Item = &'static str> {
    DEATH_COLUMNS
        .iter()
        .copied()
        .filter(|c| !NOT_READ.contains(c))
}

/// The columns of `death_records` the matcher never reads; it reads the
/// others in [`DEATH_COLUMNS`] order (14 of them: source, record_key,
/// name_raw, name_norm, name_key, id_raw, id_number, id_status, sex,
/// birth_date, birth_year_min, birth_year_max, death_date, region).
const NOT_READ: [&str; 10] = [
    "death_date_latest",
    "event_date",
    "id_candidates",
    "origin",
    "place",
    "raw",
    "raw_sha256",
    "received_at",
    "run_id",
    "version",
];

/// [`record_fields`] as a select list over `death_records d`
/// (`d.source, d.record_key, ...`), written where a query is formatted.
pub(super) struct RecordColumns;

impl std::fmt::Display for RecordColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, c) in record_fields().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "d.{c}")?;
        }
        Ok(())
    }
}

pub(super) const RECORD_COLUMNS: RecordColumns = RecordColumns;

/// Every stored death record with its version, in (source, record_key)
/// order: the whole-table read of a full match run. The version is column
/// 14, after [`record_fields`].
pub(super) fn all_records_sql(version_cast: &str) -> String {
    format!(
        "SELECT {RECORD_COLUMNS}, d.version{version_cast} AS version FROM death_records d \
         ORDER BY d.source, d.record_key"
    )
}

impl RecordRow {
    pub(super) fn into_record(self) -> MatchRecord {
        let r = self;
        let id_status = IdStatus::from_stored(&r.id_status);
        let region = r.region.filter(|s| !s.is_empty()).or_else(|| {
            (r.source == "funeral")
                .then(|| funeral_home_city(&r.record_key))
                .flatten()
        });
        MatchRecord {
            source: r.source,
            record_key: r.record_key,
            name: r.name_raw,
            name_norm: r.name_norm,
            name_key: r.name_key,
            id_raw: r.id_raw,
            id_number: r.id_number,
            id_status,
            sex: r
                .sex
                .and_then(|s| u8::try_from(s).ok())
                .filter(|s| *s == 1 || *s == 2),
            birth_date: r.birth_date,
            birth_year_range: r.birth_year_min.zip(r.birth_year_max),
            death_date: r.death_date,
            region,
        }
    }
}

/// A funeral home's code carries the city it serves (`FH440300-07`): the
/// best region a record without a home address has.
pub(super) fn funeral_home_city(record_key: &str) -> Option<String> {
    let code = record_key.strip_prefix("FH")?;
    let city = code.get(..6)?;
    city.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| city.to_string())
}

impl Store {
    /// The matcher's roster, in person-number order: pensioners being paid,
    /// and those whose death is already matched whatever their status now
    /// (a pension suspended or stopped because of a match keeps it, and its
    /// evidence, through a full re-match). Rows are converted as they are
    /// read, never all held at once.
    /// On SQLite, read from the roster snapshot while the roster is
    /// unchanged (see `store::roster_snapshot`).
    pub async fn load_match_persons(&self) -> Result<Vec<Person>> {
        Ok(self.load_match_roster().await?.0)
    }

    /// The matcher's roster, read from the database, never the snapshot.
    pub async fn load_match_persons_from_database(&self) -> Result<Vec<Person>> {
        use futures::TryStreamExt;
        match self {
            Store::Sqlite(pool) => {
                let mut first = pool.acquire().await?;
                let mut a = first.lock_handle().await?;
                // A second connection for a second scan thread, when the
                // pool allows two (with one, waiting for another would
                // wait forever).
                if pool.options().get_max_connections() >= 2 {
                    let mut second = pool.acquire().await?;
                    let mut b = second.lock_handle().await?;
                    super::matches_bulk::load_persons(a.as_raw_handle(), Some(b.as_raw_handle()))
                } else {
                    super::matches_bulk::load_persons(a.as_raw_handle(), None)
                }
            }
            Store::Postgres(pool) => {
                let mut rows = sqlx::query_as::<_, PersonRow>(
                    "SELECT person_no, name, name_norm, name_key, id_number, sex, birth_date, \
                     insured_region, residence_region, benefit_start FROM pensioners \
                     WHERE status <> 'terminated' OR person_no IN (SELECT person_no FROM matches) \
                     ORDER BY person_no",
                )
                .fetch(pool);
                let mut out = Vec::new();
                while let Some(r) = rows.try_next().await? {
                    out.push(Person {
                        person_no: r.person_no.into(),
                        name: r.name.into(),
                        name_norm: r.name_norm.into(),
                        name_key: r.name_key.into(),
                        id_number: r.id_number.into(),
                        sex: u8::try_from(r.sex).unwrap_or(0),
                        birth_date: r.birth_date,
                        insured_region: r.insured_region.into(),
                        residence_region: r.residence_region.into(),
                        benefit_start: r.benefit_start,
                    });
                }
                Ok(out)
            }
        }
    }

    /// Every stored death record, ordered by (source, record_key).
    pub async fn load_match_records(&self) -> Result<Vec<MatchRecord>> {
        Ok(self.load_match_records_versioned().await?.0)
    }

    /// Every stored death record, ordered by (source, record_key), with the
    /// version read of each alongside (in one read: what a full match run
    /// records as matched).
    pub async fn load_match_records_versioned(&self) -> Result<(Vec<MatchRecord>, Vec<i64>)> {
        let started = std::time::Instant::now();
        let (records, versions) = self.load_match_records_inner().await?;
        tracing::info!(
            records = records.len(),
            seconds = started.elapsed().as_secs_f64(),
            "loaded the death records for matching"
        );
        Ok((records, versions))
    }

    async fn load_match_records_inner(&self) -> Result<(Vec<MatchRecord>, Vec<i64>)> {
        use futures::TryStreamExt;
        match self {
            Store::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let mut handle = conn.lock_handle().await?;
                super::matches_bulk::load_records(handle.as_raw_handle())
            }
            Store::Postgres(pool) => {
                #[derive(sqlx::FromRow)]
                struct Versioned {
                    #[sqlx(flatten)]
                    record: RecordRow,
                    version: i64,
                }
                let mut rows = sqlx::query_as::<_, Versioned>(sqlx::AssertSqlSafe(
                    all_records_sql("::bigint"),
                ))
                .fetch(pool);
                let (mut out, mut versions) = (Vec::new(), Vec::new());
                while let Some(r) = rows.try_next().await? {
                    out.push(r.record.into_record());
                    versions.push(r.version);
                }
                Ok((out, versions))
            }
        }
    }

    /// Stored death records with a valid ID whose pinyin name key is one of
    /// `name_keys`, not claimed by run `run_id` (the run has those in hand),
    /// in (source, record_key) order: the deaths of other people that a
    /// pending run checks its records against
    /// (`matching::fuse::mark_other_deaths`). One scan of the table.
    pub async fn load_other_deaths(
        &self,
        run_id: i64,
        name_keys: &[String],
    ) -> Result<Vec<MatchRecord>> {
        if name_keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = match self {
            Store::Sqlite(pool) => {
                let keys = serde_json::to_string(name_keys).unwrap_or_else(|_| "[]".into());
                sqlx::query_as::<_, RecordRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT {RECORD_COLUMNS} FROM death_records d WHERE d.id_number IS NOT NULL \
                     AND d.name_key IN (SELECT value FROM json_each(?)) \
                     AND NOT EXISTS (SELECT 1 FROM match_claims c WHERE c.run_id = ? \
                       AND c.source = d.source AND c.record_key = d.record_key) \
                     ORDER BY d.source, d.record_key"
                )))
                .bind(keys)
                .bind(run_id)
                .fetch_all(pool)
                .await?
            }
            Store::Postgres(pool) => {
                sqlx::query_as::<_, RecordRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT {RECORD_COLUMNS} FROM death_records d WHERE d.id_number IS NOT NULL \
                     AND d.name_key = ANY($1) \
                     AND NOT EXISTS (SELECT 1 FROM match_claims c WHERE c.run_id = $2 \
                       AND c.source = d.source AND c.record_key = d.record_key) \
                     ORDER BY d.source, d.record_key"
                )))
                .bind(name_keys)
                .bind(run_id)
                .fetch_all(pool)
                .await?
            }
        };
        Ok(rows.into_iter().map(RecordRow::into_record).collect())
    }

    /// Pairs reviewers rejected: (source, record_key, person_no).
    pub async fn rejected_pairs(&self) -> Result<Vec<(String, String, String)>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, (String, String, String)>(
                "SELECT source, record_key, person_no FROM rejected_pairs",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// One row per matched death record with what the verdict of the match
    /// it takes part in is made of: the record's own score, band, margin and
    /// death date, and whether it may be carried. The other rows of the same
    /// pensioner are the rest; `matching::fuse::match_verdict` decides.
    /// In (source, record_key) order.
    pub async fn list_match_rows(&self) -> Result<Vec<MatchRow>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, MatchRow>(
                "SELECT m.source, m.record_key, m.person_no, m.score AS record_score, \
                 m.band AS record_band, d.death_date AS record_death_date, \
                 m.runner_up, m.margin, m.rules_version, m.may_carry \
                 FROM matches m \
                 JOIN death_records d ON d.source = m.source AND d.record_key = m.record_key \
                 ORDER BY m.source, m.record_key",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// The stored matches of one pensioner, by (source, record_key).
    pub async fn matches_of_person(&self, person_no: &str) -> Result<Vec<StoredMatch>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, StoredMatch>(
                "SELECT source, record_key, person_no, score, band, runner_up, margin, \
                 explanation, rules_version, run_id, matched_at, may_carry FROM matches \
                 WHERE person_no = $1 ORDER BY source, record_key",
            )
            .bind(person_no)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// Stored matches in (source, record_key) order.
    pub async fn list_matches(&self) -> Result<Vec<StoredMatch>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, StoredMatch>(
                "SELECT source, record_key, person_no, score, band, runner_up, margin, explanation, \
                 rules_version, run_id, matched_at, may_carry FROM matches \
                 ORDER BY source, record_key",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_funeral_home_code_gives_its_city() {
        assert_eq!(
            funeral_home_city("FH440300-07:20261125-0031").as_deref(),
            Some("440300")
        );
        assert_eq!(funeral_home_city("PS-2026-1"), None);
    }

    #[test]
    fn the_matcher_reads_its_fourteen_columns_in_the_order_the_c_api_indexes_them() {
        assert_eq!(
            all_records_sql(""),
            "SELECT d.source, d.record_key, d.name_raw, d.name_norm, d.name_key, d.id_raw, \
             d.id_number, d.id_status, d.sex, d.birth_date, d.birth_year_min, d.birth_year_max, \
             d.death_date, d.region, d.version AS version FROM death_records d \
             ORDER BY d.source, d.record_key"
        );
    }
}
