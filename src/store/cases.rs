//! Cases, their history, tips and vigil's own payment changes, as stored.
//!
//! Nothing here decides anything: the case machine and the planner in
//! `cases` say what to write, and this module writes it. Nothing is ever
//! deleted: events, proposals, tips and payment changes are only inserted;
//! a case's row holds the fold of its history (state, decision, band,
//! evidence) so that the queue can be listed without replaying it.
//!
//! A step on one case is written with the sequence number its history is
//! expected to continue from: the key (case, seq) refuses a second writer
//! that read the same history, so two people deciding the same case at the
//! same moment never both succeed ([`StoreError::Conflict`]).

use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;

use chrono::NaiveDate;

use super::sqlite_c::{Statement, Value};
use super::{Backend, BeginWrite, Result, Store, StoreError, now_utc_text, with_pool};

/// One case row: the fold of its history, for listing.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CaseRow {
    pub id: i64,
    pub person_no: String,
    /// `death_match`, `tip` or `certification`.
    pub reason: String,
    /// `auto` or `review` for a death match.
    pub band: Option<String>,
    /// `open`, `proposed` or `approved` (the case machine's state).
    pub state: String,
    /// The approved action that decided the case, if any.
    pub decision: Option<String>,
    pub death_date: Option<NaiveDate>,
    /// JSON list of the death records behind the case.
    pub evidence: String,
    pub opened_at: String,
    pub opened_by: String,
    pub updated_at: String,
}

/// One entry of a case's history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CaseEventRow {
    pub case_id: i64,
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub kind: String,
    /// JSON.
    pub details: String,
}

/// A case as the queue lists it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CaseListRow {
    pub id: i64,
    pub person_no: String,
    pub reason: String,
    pub band: Option<String>,
    pub state: String,
    pub decision: Option<String>,
    /// `paid`, `suspended` or `terminated`.
    pub payment: String,
    pub opened_at: String,
}

/// Which cases to list.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub state: Option<String>,
    pub band: Option<String>,
    pub person_no: Option<String>,
}

/// Which case a written row belongs to: one already stored, or one this
/// write opens (by its index in [`CaseWrites::new_cases`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseRef {
    Stored(i64),
    New(usize),
}

/// A case to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCase {
    pub person_no: String,
    pub reason: String,
    pub band: Option<String>,
    pub death_date: Option<NaiveDate>,
    pub evidence: String,
    pub opened_by: String,
}

/// New values for a stored case's row (`None` leaves a column as it is).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseUpdate {
    pub id: i64,
    pub state: Option<String>,
    /// `Some(None)` clears the decision (a reopening).
    pub decision: Option<Option<String>>,
    pub band: Option<Option<String>>,
    pub death_date: Option<Option<NaiveDate>>,
    pub evidence: Option<String>,
}

/// One history entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCaseEvent {
    pub case: CaseRef,
    /// Its sequence number in the case's history (from 1).
    pub seq: i64,
    pub actor: String,
    pub kind: String,
    pub details: String,
}

/// One of vigil's payment decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPaymentChange {
    pub person_no: String,
    /// `suspend`, `terminate`, `resume` or `back_pay`.
    pub change: String,
    pub effective_from: NaiveDate,
    pub amount_fen: Option<i64>,
    pub case: CaseRef,
    /// The payroll month that carries it, `YYYY-MM`.
    pub period: String,
}

/// A stored payment change.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PaymentChangeRow {
    pub id: i64,
    pub person_no: String,
    pub change: String,
    pub effective_from: NaiveDate,
    pub amount_fen: Option<i64>,
    pub case_id: i64,
    pub period: String,
    pub at: String,
}

/// A tip (举报) to store with the case it opened or joined.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTip {
    pub person_no: String,
    pub note: String,
    pub contact: Option<String>,
    pub case: CaseRef,
    pub added_by: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TipRow {
    pub id: i64,
    pub person_no: String,
    pub note: String,
    pub contact: Option<String>,
    pub case_id: i64,
    pub added_by: String,
    pub added_at: String,
}

/// What a confirmed death was overpaid, as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OverpaymentRow {
    pub case_id: i64,
    pub person_no: String,
    pub death_date: NaiveDate,
    pub amount_fen: i64,
    pub ledger_fen: i64,
    pub estimated_fen: i64,
    /// JSON list of the months owed.
    pub months: String,
    /// `to_recover`, `recovered` or `written_off`.
    pub status: String,
    pub computed_at: String,
}

/// Everything one step writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct CaseWrites {
    pub new_cases: Vec<NewCase>,
    pub updates: Vec<CaseUpdate>,
    pub events: Vec<NewCaseEvent>,
    pub payment_changes: Vec<NewPaymentChange>,
    pub tips: Vec<NewTip>,
    /// (source, record_key, person_no, by): pairs never to match again.
    pub suppress: Vec<(String, String, String, String)>,
    pub overpayment: Option<OverpaymentRow>,
    /// (case id, new status) for a stored overpayment.
    pub overpayment_status: Option<(i64, String)>,
    /// The match run whose deaths the cases now reflect.
    pub synced_events_run: Option<i64>,
}

/// What a write gave out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    /// The ids of the new cases, in order.
    pub case_ids: Vec<i64>,
}

impl Written {
    fn id_of(&self, case: CaseRef) -> i64 {
        match case {
            CaseRef::Stored(id) => id,
            CaseRef::New(i) => self.case_ids[i],
        }
    }
}

/// A fused death as a case reads it: who, when, how sure, and the records
/// (JSON list of {source, record_key, death_date, digest}).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeathForCase {
    pub person_no: String,
    pub death_date: NaiveDate,
    pub band: String,
    pub records: String,
    pub run_id: i64,
}

const CASE_COLUMNS: &str = "id, person_no, reason, band, state, decision, death_date, evidence, \
     opened_at, opened_by, updated_at";

/// vigil's payment state where it has one (`lc`, its latest change), the
/// roster's otherwise, read through the partial indexes of the suspended
/// and the terminated (never the roster's rows); a stop the payroll did not
/// apply (the ledger shows a payment for a month after the stop's) shows
/// as `paid`, which it is.
const PAYMENT_SQL: &str = "CASE \
     WHEN lc.change IN ('suspend', 'terminate') AND EXISTS (SELECT 1 FROM payments pay \
       WHERE pay.person_no = c.person_no AND pay.period > lc.period) THEN 'paid' \
     WHEN lc.change = 'suspend' THEN 'suspended' \
     WHEN lc.change = 'terminate' THEN 'terminated' \
     WHEN EXISTS (SELECT 1 FROM pensioners p WHERE p.person_no = c.person_no \
       AND p.status = 'terminated') THEN 'terminated' \
     WHEN EXISTS (SELECT 1 FROM pensioners p WHERE p.person_no = c.person_no \
       AND p.status = 'suspended') THEN 'suspended' \
     ELSE 'paid' END";

/// The latest change of vigil's payment state of each case's pensioner.
const LATEST_CHANGE_JOIN: &str = "LEFT JOIN payment_changes lc ON lc.id = \
     (SELECT MAX(pc.id) FROM payment_changes pc WHERE pc.person_no = c.person_no \
      AND pc.change <> 'back_pay')";

/// Rows per `IN (...)` list.
const IN_CHUNK: usize = 500;

impl Store {
    /// Every fused death, for the cases it opens or updates.
    pub async fn deaths_for_cases(&self) -> Result<Vec<DeathForCase>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, DeathForCase>(
                "SELECT person_no, death_date, band, records, run_id FROM death_events \
                 ORDER BY person_no",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// The match run whose deaths the cases reflect, and the one whose
    /// deaths are stored: the cases are behind when they differ.
    pub async fn case_sync_state(&self) -> Result<(i64, i64)> {
        let row: (i64, i64) = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT events_run, (SELECT COALESCE(MAX(run_id), 0) FROM death_events) \
                 FROM case_sync WHERE id = 1",
            )
            .fetch_one(pool)
            .await
        })?;
        Ok(row)
    }

    /// The next sequence number of a case's history.
    pub async fn next_case_seq(&self, id: i64) -> Result<i64> {
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM case_events WHERE case_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
        })?;
        Ok(n)
    }

    /// Every case opened by a death match, oldest first.
    pub async fn death_match_cases(&self) -> Result<Vec<CaseRow>> {
        let sql =
            format!("SELECT {CASE_COLUMNS} FROM cases WHERE reason = 'death_match' ORDER BY id");
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, CaseRow>(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// Every payment change, oldest first.
    pub async fn payment_changes(&self) -> Result<Vec<PaymentChangeRow>> {
        self.payment_changes_where("TRUE", None, "id").await
    }

    /// The payment changes of one pensioner, oldest first.
    pub async fn payment_changes_of(&self, person_no: &str) -> Result<Vec<PaymentChangeRow>> {
        self.payment_changes_where("person_no = $1", Some(person_no), "id")
            .await
    }

    /// The payment changes a payroll month carries, by person and order.
    pub async fn payment_changes_for_period(&self, period: &str) -> Result<Vec<PaymentChangeRow>> {
        self.payment_changes_where("period = $1", Some(period), "person_no, id")
            .await
    }

    async fn payment_changes_where(
        &self,
        condition: &str,
        bind: Option<&str>,
        order: &str,
    ) -> Result<Vec<PaymentChangeRow>> {
        let sql = format!(
            "SELECT id, person_no, change, effective_from, amount_fen, case_id, period, at \
             FROM payment_changes WHERE {condition} ORDER BY {order}"
        );
        let rows = with_pool!(self, pool => {
            let mut q = sqlx::query_as::<_, PaymentChangeRow>(sqlx::AssertSqlSafe(sql));
            if let Some(b) = bind {
                q = q.bind(b);
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// Which of `keys` (source, record_key) are stored death records.
    pub async fn death_records_present(
        &self,
        keys: &[(String, String)],
    ) -> Result<HashSet<(String, String)>> {
        let mut present = HashSet::new();
        for chunk in keys.chunks(IN_CHUNK) {
            let pairs: Vec<String> = (0..chunk.len())
                .map(|i| format!("(source = ${} AND record_key = ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!(
                "SELECT source, record_key FROM death_records WHERE {}",
                pairs.join(" OR ")
            );
            let rows: Vec<(String, String)> = with_pool!(self, pool => {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
                for (s, k) in chunk {
                    q = q.bind(s).bind(k);
                }
                q.fetch_all(pool).await
            })?;
            present.extend(rows);
        }
        Ok(present)
    }

    /// Which of `person_nos` the roster says are terminated (nothing is
    /// paid to them, so nothing is held). Reads the terminated ones through
    /// their partial index (few, whatever the roster's size) rather than
    /// looking each of `person_nos` up.
    pub async fn terminated_among(&self, person_nos: &[&str]) -> Result<HashSet<String>> {
        if person_nos.is_empty() {
            return Ok(HashSet::new());
        }
        let terminated: Vec<String> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT person_no FROM pensioners WHERE status = 'terminated'")
                .fetch_all(pool)
                .await
        })?;
        let wanted: HashSet<&str> = person_nos.iter().copied().collect();
        Ok(terminated
            .into_iter()
            .filter(|p| wanted.contains(p.as_str()))
            .collect())
    }

    pub async fn case(&self, id: i64) -> Result<Option<CaseRow>> {
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1");
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, CaseRow>(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    /// The newest case of a pensioner for `reason`.
    pub async fn latest_case_of(&self, person_no: &str, reason: &str) -> Result<Option<CaseRow>> {
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE person_no = $1 AND reason = $2 \
             ORDER BY id DESC LIMIT 1"
        );
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, CaseRow>(sqlx::AssertSqlSafe(sql))
                .bind(person_no)
                .bind(reason)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    /// A case's history, in order.
    pub async fn case_events(&self, id: i64) -> Result<Vec<CaseEventRow>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, CaseEventRow>(
                "SELECT case_id, seq, at, actor, kind, details FROM case_events \
                 WHERE case_id = $1 ORDER BY seq",
            )
            .bind(id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// Gives out a new proposal id on a case. Ids are never reused: one
    /// given out to a proposal that then failed to be written stays unused.
    pub async fn new_proposal_id(&self, case_id: i64) -> Result<i64> {
        let now = now_utc_text();
        let id = with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO proposals (case_id, created_at) VALUES ($1, $2) RETURNING id",
            )
            .bind(case_id)
            .bind(&now)
            .fetch_one(pool)
            .await
        })?;
        Ok(id)
    }

    /// The case a proposal belongs to.
    pub async fn case_of_proposal(&self, proposal: i64) -> Result<Option<i64>> {
        let id = with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT case_id FROM proposals WHERE id = $1")
                .bind(proposal)
                .fetch_optional(pool)
                .await
        })?;
        Ok(id)
    }

    pub async fn tips_of_case(&self, case_id: i64) -> Result<Vec<TipRow>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, TipRow>(
                "SELECT id, person_no, note, contact, case_id, added_by, added_at FROM tips \
                 WHERE case_id = $1 ORDER BY id",
            )
            .bind(case_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    pub async fn overpayment(&self, case_id: i64) -> Result<Option<OverpaymentRow>> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, OverpaymentRow>(
                "SELECT case_id, person_no, death_date, amount_fen, ledger_fen, estimated_fen, \
                 months, status, computed_at FROM overpayments WHERE case_id = $1",
            )
            .bind(case_id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// (amount_fen, recovered_on, recorded_by) of each recovery of a case's
    /// overpayment, oldest first.
    pub async fn recoveries(&self, case_id: i64) -> Result<Vec<(i64, NaiveDate, String)>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT amount_fen, recovered_on, recorded_by FROM recoveries \
                 WHERE case_id = $1 ORDER BY id",
            )
            .bind(case_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// Records money recovered on a case's overpayment, and its new status.
    pub async fn record_recovery(
        &self,
        case_id: i64,
        amount_fen: i64,
        on: NaiveDate,
        by: &str,
        status: &str,
    ) -> Result<()> {
        let now = now_utc_text();
        with_pool!(self, pool => {
            async {
                let mut tx = pool.begin_write().await?;
                sqlx::query(
                    "INSERT INTO recoveries (case_id, amount_fen, recovered_on, recorded_by, \
                     recorded_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(case_id)
                .bind(amount_fen)
                .bind(on)
                .bind(by)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE overpayments SET status = $2 WHERE case_id = $1")
                    .bind(case_id)
                    .bind(status)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            .await
        })?;
        Ok(())
    }

    /// The queue: cases by `filter`, newest first... ordered by id.
    pub async fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<CaseListRow>> {
        let mut conditions = Vec::new();
        let mut binds: Vec<&str> = Vec::new();
        for (column, value) in [
            ("c.state", &filter.state),
            ("c.band", &filter.band),
            ("c.person_no", &filter.person_no),
        ] {
            if let Some(v) = value {
                binds.push(v);
                conditions.push(format!("{column} = ${}", binds.len()));
            }
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT c.id, c.person_no, c.reason, c.band, c.state, c.decision, \
             {PAYMENT_SQL} AS payment, c.opened_at \
             FROM cases c {LATEST_CHANGE_JOIN} \
             {filter_sql} ORDER BY c.id"
        );
        let rows = with_pool!(self, pool => {
            let mut q = sqlx::query_as::<_, CaseListRow>(sqlx::AssertSqlSafe(sql));
            for b in &binds {
                q = q.bind(*b);
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// Writes one step in one transaction: new cases (ids given out here),
    /// row updates, history entries (a clash on (case, seq) means another
    /// writer got there first: [`StoreError::Conflict`], nothing written),
    /// payment changes, tips, suppressed pairs and the overpayment.
    pub async fn write_cases(&self, w: &CaseWrites) -> Result<Written> {
        let now = now_utc_text();
        let backend = self.backend();
        with_pool!(self, pool => {
            async {
                let mut tx = pool.begin_write().await?;
                if backend == Backend::Postgres {
                    // New case ids are given out below as max + 1...: one
                    // writer of new cases at a time.
                    if !w.new_cases.is_empty() {
                        sqlx::query("LOCK TABLE cases IN SHARE ROW EXCLUSIVE MODE")
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                let first: i64 =
                    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM cases")
                        .fetch_one(&mut *tx)
                        .await?;
                let written = Written {
                    case_ids: (0..w.new_cases.len() as i64).map(|i| first + i).collect(),
                };
                let new_cases: Vec<Vec<Cell>> = w
                    .new_cases
                    .iter()
                    .zip(&written.case_ids)
                    .map(|(c, id)| {
                        vec![
                            Cell::Int(*id),
                            Cell::text(&c.person_no),
                            Cell::text(&c.reason),
                            Cell::opt_text(c.band.as_deref()),
                            Cell::text("open"),
                            Cell::Null,
                            Cell::opt_date(c.death_date),
                            Cell::text(&c.evidence),
                            Cell::text(&now),
                            Cell::text(&c.opened_by),
                            Cell::text(&now),
                        ]
                    })
                    .collect();
                bulk_insert(
                    &mut tx,
                    "cases",
                    &[
                        ("id", "bigint"),
                        ("person_no", ""),
                        ("reason", ""),
                        ("band", ""),
                        ("state", ""),
                        ("decision", ""),
                        ("death_date", "date"),
                        ("evidence", ""),
                        ("opened_at", ""),
                        ("opened_by", ""),
                        ("updated_at", ""),
                    ],
                    &new_cases,
                )
                .await
                .map_err(BulkInsertError::into_store)?;
                drop(new_cases);
                if backend == Backend::Postgres && !w.new_cases.is_empty() {
                    sqlx::query(
                        "SELECT setval(pg_get_serial_sequence('cases', 'id'), \
                         (SELECT MAX(id) FROM cases))",
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                for u in &w.updates {
                    sqlx::query(
                        "UPDATE cases SET \
                         state = CASE WHEN $2 THEN $3 ELSE state END, \
                         decision = CASE WHEN $4 THEN $5 ELSE decision END, \
                         band = CASE WHEN $6 THEN $7 ELSE band END, \
                         death_date = CASE WHEN $8 THEN $9 ELSE death_date END, \
                         evidence = CASE WHEN $10 THEN $11 ELSE evidence END, \
                         updated_at = $12 WHERE id = $1",
                    )
                    .bind(u.id)
                    .bind(u.state.is_some())
                    .bind(u.state.clone())
                    .bind(u.decision.is_some())
                    .bind(u.decision.clone().flatten())
                    .bind(u.band.is_some())
                    .bind(u.band.clone().flatten())
                    .bind(u.death_date.is_some())
                    .bind(u.death_date.flatten())
                    .bind(u.evidence.is_some())
                    .bind(u.evidence.clone())
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
                }
                let events: Vec<Vec<Cell>> = w
                    .events
                    .iter()
                    .map(|e| {
                        vec![
                            Cell::Int(written.id_of(e.case)),
                            Cell::Int(e.seq),
                            Cell::text(&now),
                            Cell::text(&e.actor),
                            Cell::text(&e.kind),
                            Cell::text(&e.details),
                        ]
                    })
                    .collect();
                let inserted = bulk_insert(
                    &mut tx,
                    "case_events",
                    &[
                        ("case_id", "bigint"),
                        ("seq", "bigint"),
                        ("at", ""),
                        ("actor", ""),
                        ("kind", ""),
                        ("details", ""),
                    ],
                    &events,
                )
                .await;
                if let Err(e) = inserted {
                    return Err(match e {
                        BulkInsertError::Unique => StoreError::Conflict(
                            "the case changed while this step was being made; look at it again \
                             and retry"
                                .to_string(),
                        ),
                        BulkInsertError::Other(e) => e,
                    });
                }
                let changes: Vec<Vec<Cell>> = w
                    .payment_changes
                    .iter()
                    .map(|c| {
                        vec![
                            Cell::text(&c.person_no),
                            Cell::text(&c.change),
                            Cell::opt_date(Some(c.effective_from)),
                            c.amount_fen.map_or(Cell::Null, Cell::Int),
                            Cell::Int(written.id_of(c.case)),
                            Cell::text(&c.period),
                            Cell::text(&now),
                        ]
                    })
                    .collect();
                bulk_insert(
                    &mut tx,
                    "payment_changes",
                    &[
                        ("person_no", ""),
                        ("change", ""),
                        ("effective_from", "date"),
                        ("amount_fen", "bigint"),
                        ("case_id", "bigint"),
                        ("period", ""),
                        ("at", ""),
                    ],
                    &changes,
                )
                .await
                .map_err(BulkInsertError::into_store)?;
                for t in &w.tips {
                    sqlx::query(
                        "INSERT INTO tips (person_no, note, contact, case_id, added_by, added_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&t.person_no)
                    .bind(&t.note)
                    .bind(&t.contact)
                    .bind(written.id_of(t.case))
                    .bind(&t.added_by)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
                }
                for (source, key, person, by) in &w.suppress {
                    sqlx::query(
                        "INSERT INTO rejected_pairs (source, record_key, person_no, rejected_by, \
                         rejected_at) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (source, record_key, person_no) DO NOTHING",
                    )
                    .bind(source)
                    .bind(key)
                    .bind(person)
                    .bind(by)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(o) = &w.overpayment {
                    sqlx::query(
                        "INSERT INTO overpayments (case_id, person_no, death_date, amount_fen, \
                         ledger_fen, estimated_fen, months, status, computed_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (case_id) DO UPDATE SET death_date = excluded.death_date, \
                         amount_fen = excluded.amount_fen, ledger_fen = excluded.ledger_fen, \
                         estimated_fen = excluded.estimated_fen, months = excluded.months, \
                         status = excluded.status, computed_at = excluded.computed_at",
                    )
                    .bind(o.case_id)
                    .bind(&o.person_no)
                    .bind(o.death_date)
                    .bind(o.amount_fen)
                    .bind(o.ledger_fen)
                    .bind(o.estimated_fen)
                    .bind(&o.months)
                    .bind(&o.status)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some((case_id, status)) = &w.overpayment_status {
                    sqlx::query("UPDATE overpayments SET status = $2 WHERE case_id = $1")
                        .bind(case_id)
                        .bind(status)
                        .execute(&mut *tx)
                        .await?;
                }
                for (source, key, _, _) in &w.suppress {
                    // Matched again by the next run, which leaves the pair out.
                    sqlx::query("DELETE FROM match_progress WHERE source = $1 AND record_key = $2")
                        .bind(source)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(run) = w.synced_events_run {
                    sqlx::query("UPDATE case_sync SET events_run = $1 WHERE id = 1")
                        .bind(run)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(written)
            }
            .await
        })
    }

    /// Counts of cases by (state, band), for the top of the queue.
    pub async fn case_counts(&self) -> Result<BTreeMap<(String, String), i64>> {
        let rows: Vec<(String, Option<String>, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT state, band, COUNT(*) FROM cases GROUP BY state, band ORDER BY state, band",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(s, b, n)| ((s, b.unwrap_or_default()), n))
            .collect())
    }
}

/// One value of a bulk-inserted row.
#[derive(Debug, Clone)]
enum Cell<'a> {
    Text(&'a str),
    Int(i64),
    Date(String),
    Null,
}

impl<'a> Cell<'a> {
    fn text(s: &'a str) -> Cell<'a> {
        Cell::Text(s)
    }
    fn opt_text(s: Option<&'a str>) -> Cell<'a> {
        s.map_or(Cell::Null, Cell::Text)
    }
    fn opt_date(d: Option<NaiveDate>) -> Cell<'a> {
        d.map_or(Cell::Null, |d| Cell::Date(d.format("%Y-%m-%d").to_string()))
    }
    fn json(&self) -> serde_json::Value {
        match self {
            Cell::Text(s) => serde_json::Value::from(*s),
            Cell::Int(n) => serde_json::Value::from(*n),
            Cell::Date(d) => serde_json::Value::from(d.as_str()),
            Cell::Null => serde_json::Value::Null,
        }
    }
    fn value(&self) -> Value<'_> {
        match self {
            Cell::Text(s) => Value::text(s),
            Cell::Int(n) => Value::Int(*n),
            Cell::Date(d) => Value::text(d),
            Cell::Null => Value::Null,
        }
    }
}

enum BulkInsertError {
    /// A unique key refused a row.
    Unique,
    Other(StoreError),
}

impl BulkInsertError {
    fn into_store(self) -> StoreError {
        match self {
            BulkInsertError::Unique => {
                StoreError::Conflict("a row that must be unique was written twice".to_string())
            }
            BulkInsertError::Other(e) => e,
        }
    }
}

impl From<sqlx::Error> for BulkInsertError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => BulkInsertError::Unique,
            _ => BulkInsertError::Other(e.into()),
        }
    }
}

/// Inserts `rows` into `table`: on SQLite through one prepared statement on
/// the C API, on PostgreSQL as JSON array chunks (`columns` pairs each
/// column with its PostgreSQL cast, empty for text).
async fn bulk_insert<W: BulkTx>(
    tx: &mut W,
    table: &str,
    columns: &[(&str, &str)],
    rows: &[Vec<Cell<'_>>],
) -> std::result::Result<(), BulkInsertError> {
    if rows.is_empty() {
        return Ok(());
    }
    tx.bulk_insert(table, columns, rows).await
}

trait BulkTx {
    async fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[(&str, &str)],
        rows: &[Vec<Cell<'_>>],
    ) -> std::result::Result<(), BulkInsertError>;
}

impl BulkTx for sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[(&str, &str)],
        rows: &[Vec<Cell<'_>>],
    ) -> std::result::Result<(), BulkInsertError> {
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        let marks = vec!["?"; columns.len()].join(",");
        let sql = CString::new(format!(
            "INSERT INTO {table} ({}) VALUES ({marks})",
            names.join(", ")
        ))
        .map_err(|e| BulkInsertError::Other(StoreError::Corrupt(e.to_string())))?;
        let mut handle = self.lock_handle().await?;
        let mut s = Statement::prepare(handle.as_raw_handle(), &sql)
            .map_err(|e| BulkInsertError::Other(e.into()))?;
        let mut values = Vec::with_capacity(columns.len());
        for row in rows {
            values.clear();
            values.extend(row.iter().map(Cell::value));
            if let Err(e) = s.execute(&values) {
                // SQLITE_CONSTRAINT_PRIMARYKEY / _UNIQUE
                return Err(if e.code & 0xff == libsqlite3_sys::SQLITE_CONSTRAINT {
                    BulkInsertError::Unique
                } else {
                    BulkInsertError::Other(e.into())
                });
            }
        }
        Ok(())
    }
}

impl BulkTx for sqlx::Transaction<'_, sqlx::Postgres> {
    async fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[(&str, &str)],
        rows: &[Vec<Cell<'_>>],
    ) -> std::result::Result<(), BulkInsertError> {
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        let casts: Vec<&str> = columns.iter().map(|(_, c)| *c).collect();
        let sql =
            super::match_state::pg_json_insert(&format!("{table} ({})", names.join(", ")), &casts);
        for chunk in rows.chunks(20_000) {
            let values: Vec<serde_json::Value> = chunk
                .iter()
                .map(|r| serde_json::Value::Array(r.iter().map(Cell::json).collect()))
                .collect();
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(serde_json::Value::Array(values).to_string())
                .execute(&mut **self)
                .await?;
        }
        Ok(())
    }
}
