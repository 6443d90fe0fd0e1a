//! The payment ledger (spec §7): what the payroll paid, read back monthly
//! as a CSV (`person_no,period,amount,bank_account,paid_on`, UTF-8, columns
//! in any order) and imported as a stream, row by row.
//!
//! Like the evidence imports: the header is checked first (a file lacking
//! a column is refused before anything is written), every row is validated
//! (a person number, a period `YYYY-MM`, an amount in yuan with at most two
//! decimals turned into integer fen from its text, never through a float,
//! a bank account of digits, a real pay day not in the future), the rows
//! that cannot be used are quarantined with their line and reason, and the
//! rest is stored in batches, each in one transaction with its quarantine.
//! Every row read is stored, recognised as a duplicate, or quarantined; the
//! same file imported twice stores nothing the second time. A payment sent
//! again under the same key (person, period, pay day, amount) into another
//! bank account is not a duplicate: it is quarantined, and the stored one
//! stays. Reasons never hold a whole bank account.
//!
//! Reading the clock is the caller's business: `today` comes in the options.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDate;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::encoding::TextEncoding;
use super::roster::{HashingReader, clip, csv_io, parse_date, parse_yuan_in, raw_text};
use super::{HeaderProblem, find_columns};
use crate::identity::id::mask;
use crate::lifecycle::{self, RunEnd};
use crate::model::{Payment, Period, PeriodError};
use crate::store::payments::{PaymentKey, payment_key};
use crate::store::quarantine::QuarantineEntry;
use crate::store::runs::{RunCounts, run_source};
use crate::store::{LockKey, Store, StoreError, StoreLock};

/// The columns of spec §7, in the order of the spec.
pub const PAYMENT_COLUMNS: [&str; 5] = ["person_no", "period", "amount", "bank_account", "paid_on"];

/// The audit log's action for an import.
pub const AUDIT_ACTION: &str = "payments.import";
/// Quarantine reasons kept in the summary for the user to read at once.
const SAMPLE_LEN: usize = 20;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, thiserror::Error)]
pub enum PaymentsImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is empty: a payment ledger (spec §7) starts with the header row \
         person_no,period,amount,bank_account,paid_on"
    )]
    Empty { path: PathBuf },
    #[error(
        "{path}: the header lacks required column(s) {}; it has {}. Nothing was imported",
        missing.join(", "), found.join(", ")
    )]
    MissingColumns {
        path: PathBuf,
        missing: Vec<String>,
        found: Vec<String>,
    },
    #[error("{path}: column {column} appears twice in the header. Nothing was imported")]
    DuplicateColumn { path: PathBuf, column: String },
    #[error(
        "{path}: the import stopped and was recorded as failed in run {run_id} \
         (batches before the stop are kept; importing the file again completes it): {source}"
    )]
    Interrupted {
        path: PathBuf,
        run_id: i64,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct PaymentsImportOptions {
    /// Rows per transaction.
    pub batch_rows: usize,
    /// Who is importing, for the audit log.
    pub actor: String,
    /// Today in China: a later pay day is refused as impossible.
    pub today: NaiveDate,
}

/// What an import did; `read = inserted + duplicate + quarantined`.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentsImportSummary {
    pub run_id: i64,
    pub file: String,
    pub sha256: String,
    pub read: u64,
    pub inserted: u64,
    /// Rows already stored (or earlier in this file) with the same key and
    /// bank account.
    pub duplicate: u64,
    pub quarantined: u64,
    /// Fen of the rows inserted by this run.
    pub inserted_fen: i64,
    /// Rows stored or recognised as duplicates, by period.
    pub by_period: BTreeMap<Period, u64>,
    /// The first quarantined rows: (line, reason).
    pub quarantine_sample: Vec<(u64, String)>,
}

impl PaymentsImportSummary {
    fn counts(&self) -> RunCounts {
        let by_period: BTreeMap<String, u64> = self
            .by_period
            .iter()
            .map(|(p, n)| (p.to_string(), *n))
            .collect();
        RunCounts {
            read: self.read,
            inserted: self.inserted,
            unchanged: self.duplicate,
            quarantined: self.quarantined,
            details: serde_json::json!({
                "duplicate": self.duplicate,
                "inserted_fen": self.inserted_fen,
                "by_period": by_period,
            }),
            ..Default::default()
        }
    }

    fn note_quarantine(&mut self, entries: &[QuarantineEntry]) {
        self.quarantined += entries.len() as u64;
        for q in entries {
            if self.quarantine_sample.len() < SAMPLE_LEN {
                self.quarantine_sample
                    .push((q.line.unwrap_or(0), q.reason.clone()));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The row parser: pure, so it is tested without files or a database.

/// Longest person number accepted (the roster's rule).
const MAX_PERSON_NO: usize = 32;

/// One row of spec §7, its fields in [`PAYMENT_COLUMNS`] order and trimmed.
///
/// Refused, with a reason that never shows a whole bank account: an empty
/// or odd person number; a period that is not `YYYY-MM`; an amount that is
/// not yuan with at most two decimals, or is negative (a ledger row is a
/// payment made; a reversal cannot be placed against the payment it
/// undoes); a bank account that is not 10 to 32 digits; a pay day that is
/// not a real `YYYY-MM-DD` date or is after `today`; a period more than one
/// month after the pay day's month (a month paid that far ahead is a typing
/// error, while back pay for earlier months is normal).
pub fn parse_payment_row(fields: &[&str], today: NaiveDate) -> Result<Payment, String> {
    let person_no = fields[0];
    if person_no.is_empty() {
        return Err("person_no is empty".to_string());
    }
    if person_no.len() > MAX_PERSON_NO || !person_no.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "person_no '{}' is not letters and digits only (at most {MAX_PERSON_NO})",
            clip(person_no)
        ));
    }
    let period = Period::parse(fields[1]).map_err(|e| match e {
        PeriodError::Shape => format!("period '{}' {e}, like 2026-11", clip(fields[1])),
        PeriodError::Month(_) => format!("period {} {e}", fields[1]),
    })?;
    let amount = fields[2];
    if amount.starts_with('-') {
        return Err(format!(
            "amount {} is negative; a ledger row is a payment made (a reversal cannot be \
             placed against the payment it undoes)",
            clip(amount)
        ));
    }
    let amount_fen = parse_yuan_in("amount", amount)?;
    let bank_account = fields[3];
    if !(10..=32).contains(&bank_account.len()) || !bank_account.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "bank_account is not 10 to 32 digits ({} characters given)",
            bank_account.chars().count()
        ));
    }
    let paid_on = parse_date("paid_on", fields[4])?;
    if paid_on > today {
        return Err(format!(
            "paid_on {paid_on} is in the future (today is {today})"
        ));
    }
    if period > Period::of(paid_on).succ() {
        return Err(format!(
            "period {period} is more than one month after paid_on {paid_on}"
        ));
    }
    Ok(Payment {
        person_no: person_no.to_string(),
        period,
        amount_fen,
        bank_account: bank_account.to_string(),
        paid_on,
    })
}

// ---------------------------------------------------------------------------
// Reading the file.

/// A file opened and its header checked: where each spec column is.
struct Opened {
    reader: csv::Reader<BufReader<HashingReader<File>>>,
    /// Position in the file of each spec column, in spec order.
    idx: Vec<usize>,
    width: usize,
    bytes: Arc<AtomicU64>,
}

fn open(path: &Path) -> Result<Opened, PaymentsImportError> {
    let io_err = |source| PaymentsImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let empty = || PaymentsImportError::Empty {
        path: path.to_path_buf(),
    };
    let bytes = Arc::new(AtomicU64::new(0));
    let mut buffered = BufReader::with_capacity(
        256 * 1024,
        HashingReader {
            inner: File::open(path).map_err(io_err)?,
            sha: Sha256::new(),
            bytes: bytes.clone(),
            last_byte: None,
        },
    );
    // UTF-8, with or without a byte-order mark; the mark is hashed with
    // the rest but is not part of the first column's name.
    if buffered.fill_buf().map_err(io_err)?.starts_with(UTF8_BOM) {
        buffered.consume(UTF8_BOM.len());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(buffered);
    let mut header = csv::ByteRecord::new();
    if !reader
        .read_byte_record(&mut header)
        .map_err(|e| io_err(csv_io(e)))?
    {
        return Err(empty());
    }
    let names: Vec<String> = header
        .iter()
        .map(|f| String::from_utf8_lossy(f).trim().to_ascii_lowercase())
        .collect();
    if names.iter().all(|n| n.is_empty()) {
        return Err(empty());
    }
    let idx = find_columns(&names, &PAYMENT_COLUMNS).map_err(|p| match p {
        HeaderProblem::Duplicate(column) => PaymentsImportError::DuplicateColumn {
            path: path.to_path_buf(),
            column,
        },
        HeaderProblem::Missing(missing) => PaymentsImportError::MissingColumns {
            path: path.to_path_buf(),
            missing,
            found: names.clone(),
        },
    })?;
    Ok(Opened {
        idx,
        width: names.len(),
        reader,
        bytes,
    })
}

/// A row that passed validation, with where it was and its text (kept for
/// the quarantine, should it turn out to conflict with a stored one).
struct Accepted {
    line: u64,
    raw: String,
    row: Payment,
}

#[derive(Default)]
struct ParsedBatch {
    rows: Vec<Accepted>,
    quarantine: Vec<QuarantineEntry>,
    /// Bytes of the file read when the batch was sent.
    bytes: u64,
}

struct ParseEnd {
    read: u64,
    sha256: String,
}

fn quarantine_entry(file: &str, line: u64, reason: String, raw: String) -> QuarantineEntry {
    QuarantineEntry {
        source: run_source::PAYMENT_LEDGER.to_string(),
        file: Some(file.to_string()),
        line: Some(line),
        record_key: None,
        reason,
        raw,
    }
}

/// Reads, validates and batches every row; runs on a blocking thread.
fn parse_file(
    mut opened: Opened,
    path: &Path,
    batch_rows: usize,
    today: NaiveDate,
    tx: &tokio::sync::mpsc::Sender<ParsedBatch>,
) -> Result<ParseEnd, PaymentsImportError> {
    let file_name = path.display().to_string();
    let stopped = || PaymentsImportError::Io {
        path: path.to_path_buf(),
        source: io::Error::other("the database writer stopped"),
    };
    let mut batch = ParsedBatch::default();
    let (mut read, mut last_line) = (0u64, 1u64);
    let mut record = csv::ByteRecord::new();
    loop {
        let line_hint = last_line + 1;
        match opened.reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // An I/O error is not a bad row: stop, and let the run be
                // recorded as failed with what was committed.
                if let csv::ErrorKind::Io(_) = e.kind() {
                    return Err(PaymentsImportError::Io {
                        path: path.to_path_buf(),
                        source: csv_io(e),
                    });
                }
                read += 1;
                last_line = line_hint;
                batch.quarantine.push(quarantine_entry(
                    &file_name,
                    line_hint,
                    format!("unreadable CSV row: {e}"),
                    String::new(),
                ));
                continue;
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(line_hint);
        last_line = line;
        if record.len() == 1 && record.get(0).is_some_and(|f| f.trim_ascii().is_empty()) {
            continue; // a blank line is not a record
        }
        read += 1;
        let raw = raw_text(&record, TextEncoding::Utf8);
        if record.len() != opened.width {
            batch.quarantine.push(quarantine_entry(
                &file_name,
                line,
                format!(
                    "expected {} fields as in the header, found {}",
                    opened.width,
                    record.len()
                ),
                raw,
            ));
        } else {
            let mut fields = [""; 5];
            let mut bad = None;
            for (k, &i) in opened.idx.iter().enumerate() {
                match std::str::from_utf8(&record[i]) {
                    Ok(s) => fields[k] = s.trim(),
                    Err(_) => {
                        bad = Some(format!(
                            "column {} is not valid UTF-8 text (spec §7 files are UTF-8)",
                            PAYMENT_COLUMNS[k]
                        ));
                        break;
                    }
                }
            }
            let parsed = match bad {
                Some(reason) => Err(reason),
                None => parse_payment_row(&fields, today),
            };
            match parsed {
                Ok(row) => batch.rows.push(Accepted { line, raw, row }),
                Err(reason) => batch
                    .quarantine
                    .push(quarantine_entry(&file_name, line, reason, raw)),
            }
        }
        if batch.rows.len() + batch.quarantine.len() >= batch_rows {
            let mut sent = std::mem::take(&mut batch);
            sent.bytes = opened.bytes.load(Ordering::Relaxed);
            tx.blocking_send(sent).map_err(|_| stopped())?;
        }
    }
    let hashing = opened.reader.into_inner().into_inner();
    let total = hashing.bytes.load(Ordering::Relaxed);
    if !batch.rows.is_empty() || !batch.quarantine.is_empty() {
        batch.bytes = total;
        tx.blocking_send(batch).map_err(|_| stopped())?;
    }
    Ok(ParseEnd {
        read,
        sha256: hex::encode(hashing.sha.finalize()),
    })
}

/// Stores one batch: a row already stored, or earlier in the file, with
/// the same key and bank account is a duplicate; with another bank account
/// it is a conflict, quarantined, and the first one stays.
async fn store_batch(
    store: &Store,
    file: &str,
    batch: ParsedBatch,
    first_line: &mut HashMap<PaymentKey, (u64, String)>,
    summary: &mut PaymentsImportSummary,
) -> Result<(), StoreError> {
    let ParsedBatch {
        rows,
        mut quarantine,
        ..
    } = batch;
    let refs: Vec<&Payment> = rows.iter().map(|a| &a.row).collect();
    let stored = store.stored_payments(&refs).await?;
    let mut fresh: Vec<Payment> = Vec::with_capacity(rows.len());
    let mut duplicates = 0u64;
    for a in rows {
        let key = payment_key(&a.row);
        let period = a.row.period;
        let conflict = if let Some(s) = stored.get(&key) {
            if s.bank_account == a.row.bank_account {
                duplicates += 1;
                None
            } else {
                Some(format!(
                    "this payment (period {}, paid_on {}, amount {} fen) is already stored \
                     (run {}) into bank account {}; this row says {}. The stored one is kept",
                    a.row.period,
                    a.row.paid_on,
                    a.row.amount_fen,
                    s.run_id,
                    mask(&s.bank_account),
                    mask(&a.row.bank_account)
                ))
            }
        } else if let Some((line, account)) = first_line.get(&key) {
            if *account == a.row.bank_account {
                duplicates += 1;
                None
            } else {
                Some(format!(
                    "line {line} has this payment (period {}, paid_on {}, amount {} fen) into \
                     bank account {}; this row says {}. The first one is kept",
                    a.row.period,
                    a.row.paid_on,
                    a.row.amount_fen,
                    mask(account),
                    mask(&a.row.bank_account)
                ))
            }
        } else {
            first_line.insert(key, (a.line, a.row.bank_account.clone()));
            fresh.push(a.row);
            None
        };
        match conflict {
            Some(reason) => quarantine.push(quarantine_entry(file, a.line, reason, a.raw)),
            None => *summary.by_period.entry(period).or_default() += 1,
        }
    }
    let inserted = store
        .insert_payments(summary.run_id, &fresh, &quarantine)
        .await?;
    // Under the import's lock nothing else writes the ledger, so the rows
    // found new are the rows inserted; should they differ, the difference
    // was stored meanwhile and counts as duplicates.
    summary.inserted += inserted.rows;
    summary.inserted_fen = summary.inserted_fen.saturating_add(inserted.fen);
    summary.duplicate += duplicates + (fresh.len() as u64 - inserted.rows);
    quarantine.sort_by_key(|q| q.line);
    summary.note_quarantine(&quarantine);
    Ok(())
}

/// Imports a payment ledger (spec §7). `progress` is called with the bytes
/// of the file committed so far.
pub async fn import_payments(
    store: &Store,
    path: &Path,
    opts: &PaymentsImportOptions,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<PaymentsImportSummary, PaymentsImportError> {
    let owned = path.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || open(&owned))
        .await
        .map_err(|e| PaymentsImportError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(e),
        })??;
    let file_name = path.display().to_string();
    // One ledger import at a time; holding the lock, an import still
    // marked running died.
    lifecycle::with_run_lock(store, LockKey::PaymentsImport, async |lock| {
        import_locked(store, path, opts, progress, opened, file_name, lock).await
    })
    .await
}

async fn import_locked(
    store: &Store,
    path: &Path,
    opts: &PaymentsImportOptions,
    progress: &(dyn Fn(u64) + Send + Sync),
    opened: Opened,
    file_name: String,
    lock: &StoreLock,
) -> Result<PaymentsImportSummary, PaymentsImportError> {
    lifecycle::run(store, lock, Some(&file_name), None, async |run_id| {
        let mut summary = PaymentsImportSummary {
            run_id,
            file: file_name.clone(),
            sha256: String::new(),
            read: 0,
            inserted: 0,
            duplicate: 0,
            quarantined: 0,
            inserted_fen: 0,
            by_period: BTreeMap::new(),
            quarantine_sample: Vec::new(),
        };
        let result = stream(store, path, opts, opened, &mut summary, progress).await;
        let end = RunEnd::ok(summary.counts())
            .with_file_sha256(summary.sha256.clone())
            .audited(
                &opts.actor,
                AUDIT_ACTION,
                &file_name,
                serde_json::json!({
                    "run_id": run_id,
                    "sha256": summary.sha256,
                    "read": summary.read,
                    "inserted": summary.inserted,
                    "duplicate": summary.duplicate,
                    "quarantined": summary.quarantined,
                    "inserted_fen": summary.inserted_fen,
                }),
            );
        (result.map(|()| summary), end)
    })
    .await
}

async fn stream(
    store: &Store,
    path: &Path,
    opts: &PaymentsImportOptions,
    opened: Opened,
    summary: &mut PaymentsImportSummary,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<(), PaymentsImportError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ParsedBatch>(2);
    let parse_path = path.to_path_buf();
    let batch_rows = opts.batch_rows.max(1);
    let today = opts.today;
    let parser = tokio::task::spawn_blocking(move || {
        parse_file(opened, &parse_path, batch_rows, today, &tx)
    });
    let file = summary.file.clone();
    let mut first_line = HashMap::new();
    let mut write_error = None;
    while let Some(batch) = rx.recv().await {
        let bytes = batch.bytes;
        if let Err(e) = store_batch(store, &file, batch, &mut first_line, summary).await {
            write_error = Some(e);
            break;
        }
        progress(bytes);
    }
    drop(rx);
    let end = parser.await.map_err(|e| PaymentsImportError::Io {
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    if let Some(source) = write_error {
        return Err(PaymentsImportError::Interrupted {
            path: path.to_path_buf(),
            run_id: summary.run_id,
            source,
        });
    }
    let end = end?;
    summary.read = end.read;
    summary.sha256 = end.sha256;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
    }

    const ACCOUNT: &str = "6222021234567890123";

    #[test]
    fn a_ledger_row_becomes_exact_fen() {
        let p = parse_payment_row(
            &[
                "4403000000000001",
                "2026-10",
                "3268.50",
                ACCOUNT,
                "2026-10-15",
            ],
            today(),
        )
        .unwrap();
        assert_eq!(p.amount_fen, 326_850);
        assert_eq!(p.period.to_string(), "2026-10");
        assert_eq!(p.paid_on, NaiveDate::from_ymd_opt(2026, 10, 15).unwrap());
        for (text, fen) in [
            ("0.07", 7),
            ("3268.5", 326_850),
            ("3268", 326_800),
            ("0", 0),
        ] {
            let p = parse_payment_row(&["P1", "2026-10", text, ACCOUNT, "2026-10-15"], today())
                .unwrap();
            assert_eq!(p.amount_fen, fen, "{text}");
        }
    }

    #[test]
    fn bad_rows_are_refused_with_a_reason_naming_the_column() {
        let ok = ["P1", "2026-10", "3268.50", ACCOUNT, "2026-10-15"];
        let with = |k: usize, v: &'static str| {
            let mut f = ok;
            f[k] = v;
            f
        };
        let cases = [
            (with(0, ""), "person_no is empty"),
            (with(0, "P-1"), "person_no 'P-1'"),
            (with(1, "2026-13"), "period 2026-13 has no month 13"),
            (
                with(1, "2026/10"),
                "period '2026/10' is not a month as YYYY-MM",
            ),
            (with(1, "2026-12"), "more than one month after paid_on"),
            (with(2, "-12.00"), "amount -12.00 is negative"),
            (
                with(2, "3,268.50"),
                "amount '3,268.50' is not a yuan amount",
            ),
            (with(2, "12.345"), "amount '12.345'"),
            (with(2, ""), "amount '' is not a yuan amount"),
            (with(3, "12345"), "bank_account is not 10 to 32 digits"),
            (
                with(3, "6222-0212-3456"),
                "bank_account is not 10 to 32 digits",
            ),
            (with(4, "2026-02-30"), "not a real calendar date"),
            (with(4, "2026/10/15"), "paid_on '2026/10/15' is not a date"),
            (with(4, "2026-11-28"), "in the future"),
        ];
        for (fields, want) in cases {
            let reason = parse_payment_row(&fields, today()).unwrap_err();
            assert!(reason.contains(want), "{fields:?}: {reason}");
            assert!(!reason.contains(ACCOUNT), "{reason}");
        }
        // Paid a month ahead, or back pay for old months: both fine.
        assert!(parse_payment_row(&with(1, "2026-11"), today()).is_ok());
        assert!(parse_payment_row(&with(1, "2025-01"), today()).is_ok());
    }
}
