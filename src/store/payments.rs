//! The payment ledger (spec §7) as stored: what the payroll says it paid,
//! one row per payment, keyed by (person_no, period, paid_on, amount_fen).
//!
//! The import decides what a row is (valid, quarantined, a duplicate, a
//! conflicting re-delivery); this module stores a batch's new rows and its
//! quarantine in one transaction, and answers the questions the
//! reconciliation asks: one person's ledger, the months the ledger covers
//! at all, and whether a person was still paid from a month on. It never
//! decides whether a row is valid and never deletes or edits one.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::NaiveDate;

use super::quarantine::{QuarantineEntry, insert_quarantine};
use super::rows::{in_list, insert_sql};
use super::with_pool;
use super::{BeginWrite, Result, Store, StoreError, now_utc_text};
use crate::model::{LedgerEntry, Payment, Period};

/// The columns written, in bind order.
const COLUMNS: [&str; 6] = [
    "person_no",
    "period",
    "amount_fen",
    "bank_account",
    "paid_on",
    "run_id",
];

/// Rows per multi-row `INSERT`: 6,000 binds, well under both backends'
/// limits (SQLite 32766, PostgreSQL 65535).
const ROWS_PER_STATEMENT: usize = 1000;

/// A payment's key: (person_no, period, paid_on, amount_fen). The same key
/// again is the same payment.
pub type PaymentKey = (String, Period, NaiveDate, i64);

/// The key of a payment.
pub fn payment_key(p: &Payment) -> PaymentKey {
    (p.person_no.clone(), p.period, p.paid_on, p.amount_fen)
}

/// What is stored under a key, enough to tell an identical re-delivery
/// from one into another account.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPayment {
    pub bank_account: String,
    pub run_id: i64,
}

impl std::fmt::Debug for StoredPayment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPayment")
            .field(
                "bank_account",
                &crate::identity::id::mask(&self.bank_account),
            )
            .field("run_id", &self.run_id)
            .finish()
    }
}

/// What [`Store::insert_payments`] stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertedPayments {
    /// Rows new to the ledger.
    pub rows: u64,
    /// Their amounts summed, in fen.
    pub fen: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    person_no: String,
    period: String,
    amount_fen: i64,
    bank_account: String,
    paid_on: NaiveDate,
    run_id: i64,
}

fn period_of(text: &str) -> Result<Period> {
    Period::parse(text).map_err(|e| StoreError::Corrupt(format!("payments.period '{text}' {e}")))
}

impl Row {
    fn entry(self) -> Result<LedgerEntry> {
        Ok(LedgerEntry {
            payment: Payment {
                period: period_of(&self.period)?,
                person_no: self.person_no,
                amount_fen: self.amount_fen,
                bank_account: self.bank_account,
                paid_on: self.paid_on,
            },
            run_id: self.run_id,
        })
    }
}

impl Store {
    /// What is stored under the keys of `payments`.
    pub async fn stored_payments(
        &self,
        payments: &[&Payment],
    ) -> Result<HashMap<PaymentKey, StoredPayment>> {
        let backend = self.backend();
        let mut out = HashMap::with_capacity(payments.len());
        let wanted: HashSet<PaymentKey> = payments.iter().map(|p| payment_key(p)).collect();
        // By person and month (a ledger file is mostly one month), then
        // the exact key picked out here: one statement per chunk.
        let periods: BTreeSet<String> = payments.iter().map(|p| p.period.to_string()).collect();
        let periods: Vec<String> = periods.into_iter().collect();
        let mut people: Vec<&str> = payments.iter().map(|p| p.person_no.as_str()).collect();
        people.sort_unstable();
        people.dedup();
        for chunk in people.chunks(ROWS_PER_STATEMENT) {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT person_no, period, amount_fen, bank_account, paid_on, run_id \
                 FROM payments WHERE period IN ({}) AND person_no IN ({})",
                in_list(backend, 0, periods.len()),
                in_list(backend, periods.len(), chunk.len())
            ));
            let rows: Vec<Row> = with_pool!(self, pool => {
                let mut q = sqlx::query_as::<_, Row>(sql);
                for p in &periods {
                    q = q.bind(p);
                }
                for n in chunk {
                    q = q.bind(*n);
                }
                q.fetch_all(pool).await
            })?;
            for r in rows {
                let e = r.entry()?;
                let key = payment_key(&e.payment);
                if wanted.contains(&key) {
                    out.insert(
                        key,
                        StoredPayment {
                            bank_account: e.payment.bank_account,
                            run_id: e.run_id,
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// Stores one batch of the ledger and its quarantine in one
    /// transaction. A row whose key is stored already is left alone;
    /// returns how many rows were new, and their fen (the rest of `rows`
    /// are duplicates).
    pub async fn insert_payments(
        &self,
        run_id: i64,
        rows: &[Payment],
        quarantine: &[QuarantineEntry],
    ) -> Result<InsertedPayments> {
        let backend = self.backend();
        let now = now_utc_text();
        let periods: Vec<String> = rows.iter().map(|r| r.period.to_string()).collect();
        let mut inserted = InsertedPayments::default();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for (chunk, periods) in rows
                .chunks(ROWS_PER_STATEMENT)
                .zip(periods.chunks(ROWS_PER_STATEMENT))
            {
                let mut sql = insert_sql(backend, "payments", &COLUMNS, chunk.len());
                sql.push_str(" ON CONFLICT DO NOTHING RETURNING amount_fen");
                let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
                for (r, period) in chunk.iter().zip(periods) {
                    q = q
                        .bind(&r.person_no)
                        .bind(period)
                        .bind(r.amount_fen)
                        .bind(&r.bank_account)
                        .bind(r.paid_on)
                        .bind(run_id);
                }
                for fen in q.fetch_all(&mut *tx).await? {
                    inserted.rows += 1;
                    inserted.fen = inserted.fen.saturating_add(fen);
                }
            }
            insert_quarantine!(tx, run_id, quarantine, &now)?;
            tx.commit().await?;
        });
        Ok(inserted)
    }

    /// Every payment the ledger shows for one person, by period, then pay
    /// day, then amount.
    pub async fn ledger_for(&self, person_no: &str) -> Result<Vec<LedgerEntry>> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, Row>(
                "SELECT person_no, period, amount_fen, bank_account, paid_on, run_id \
                 FROM payments WHERE person_no = $1 ORDER BY period, paid_on, amount_fen",
            )
            .bind(person_no)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(Row::entry).collect()
    }

    /// The months the ledger covers: those with any row at all, for anyone.
    /// For a covered month, no row for a person means they were not paid;
    /// for another month, the ledger says nothing.
    pub async fn ledger_periods(&self) -> Result<BTreeSet<Period>> {
        // A skip scan of the period index: one probe per month, not one
        // row per payment (SQLite and PostgreSQL both scan every row for a
        // plain DISTINCT).
        let texts: Vec<String> = with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>(
                "WITH RECURSIVE months (period) AS ( \
                   SELECT MIN(period) FROM payments \
                   UNION ALL \
                   SELECT (SELECT MIN(p.period) FROM payments p WHERE p.period > months.period) \
                   FROM months WHERE months.period IS NOT NULL \
                 ) SELECT period FROM months WHERE period IS NOT NULL",
            )
            .fetch_all(pool)
            .await
        })?;
        texts.iter().map(|t| period_of(t)).collect()
    }

    /// The months from `from` on (included) for which the ledger shows the
    /// person paid, with what was paid each month (rows summed; months
    /// summing to zero are left out), in order. Empty when the payroll
    /// paid nothing from `from` on, as far as the ledger covers: the
    /// question a stop instruction effective `from` raises. A month the
    /// ledger does not cover (see [`Store::ledger_periods`]) is not in it
    /// either way.
    pub async fn paid_periods_since(
        &self,
        person_no: &str,
        from: Period,
    ) -> Result<Vec<(Period, i64)>> {
        let rows: Vec<(String, i64)> = with_pool!(self, pool => {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT period, CAST(SUM(amount_fen) AS BIGINT) FROM payments \
                 WHERE person_no = $1 AND period >= $2 \
                 GROUP BY period HAVING SUM(amount_fen) > 0 ORDER BY period",
            )
            .bind(person_no)
            .bind(from.to_string())
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(p, fen)| Ok((period_of(&p)?, fen)))
            .collect()
    }

    /// How many rows the ledger holds.
    pub async fn count_payments(&self) -> Result<u64> {
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM payments")
                .fetch_one(pool)
                .await
        })?;
        Ok(n as u64)
    }
}
