//! Roster import (spec §1): a full export of the pensioner roster, read as a
//! stream and compared with what is stored.
//!
//! An import is a snapshot. New people are inserted, changed people keep
//! their before and after in the history, unchanged people cost nothing but
//! a hash comparison, and people absent from the export are flagged, never
//! deleted. The same file imported twice changes nothing the second time.
//!
//! Memory stays flat in the size of the file: rows flow through a bounded
//! channel in batches, and what is kept per stored pensioner is 16 bytes
//! (a packed person number and a content hash), not the row.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ahash::{AHashMap, AHashSet};
use chrono::{Datelike, NaiveDate};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::encoding::{self, EncodingError, TextEncoding};
use super::{HeaderProblem, find_columns};
use crate::identity::{self, IdError, Sex};
use crate::lifecycle::{self, RunEnd};
use crate::model::Pensioner;
use crate::store::pensioners::RosterBatch;
use crate::store::quarantine::QuarantineEntry;
use crate::store::runs::RunCounts;
use crate::store::{LockKey, Store, StoreError, StoreLock};

/// Columns an export must have; refused before anything is written if any is
/// missing.
pub const REQUIRED_COLUMNS: [&str; 12] = [
    "person_no",
    "name",
    "id_number",
    "sex",
    "birth_date",
    "insured_region",
    "residence_region",
    "benefit_type",
    "monthly_amount",
    "bank_account",
    "benefit_start",
    "status",
];
/// Columns that may be absent (then every value counts as empty).
pub const OPTIONAL_COLUMNS: [&str; 2] = ["last_certified", "phone"];

pub const SOURCE: &str = crate::store::run_source::ROSTER;
const PREFIX_LEN: usize = 64 * 1024;
/// Rows read before they are validated in parallel.
const PARSE_CHUNK: usize = 2048;
/// Rows validated in sequence by one thread, so each can start its index
/// lookup next to the previous row's.
const LOOKUP_RUN: usize = 256;
/// Quarantine reasons kept in the summary for the user to read at once; the
/// rest are in the database (`vigil quarantine RUN`).
const SAMPLE_LEN: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is empty: a roster export starts with a header row")]
    Empty { path: PathBuf },
    #[error("{path}: {source}")]
    Encoding {
        path: PathBuf,
        #[source]
        source: EncodingError,
    },
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
        "{path}: this export stands for {as_of}, older than the last one imported ({last}); \
         pass --as-of with the export's real date, or import the newer export"
    )]
    OlderSnapshot {
        path: PathBuf,
        as_of: NaiveDate,
        last: NaiveDate,
    },
    #[error(
        "{path}: the import stopped at byte {bytes} and was recorded as failed in run {run_id}: {source}"
    )]
    Interrupted {
        path: PathBuf,
        run_id: i64,
        bytes: u64,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The date the export stands for.
    pub as_of: NaiveDate,
    /// Rows per transaction.
    pub batch_rows: usize,
    /// Who is importing, for the audit log.
    pub actor: String,
}

/// What an import did; `read = inserted + changed + unchanged + quarantined`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    pub run_id: i64,
    pub file: String,
    pub sha256: String,
    pub encoding: String,
    pub as_of: Option<NaiveDate>,
    pub read: u64,
    pub inserted: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub quarantined: u64,
    /// Newly flagged as absent from this snapshot.
    pub missing: u64,
    /// Flagged missing before and present again.
    pub reappeared: u64,
    /// Rows whose legacy 15-digit ID was upgraded to 18 digits.
    pub upgraded_ids: u64,
    /// The first quarantined rows: (line, reason).
    pub quarantine_sample: Vec<(u64, String)>,
}

impl ImportSummary {
    fn counts(&self) -> RunCounts {
        RunCounts {
            read: self.read,
            inserted: self.inserted,
            changed: self.changed,
            unchanged: self.unchanged,
            quarantined: self.quarantined,
            missing: self.missing,
            details: serde_json::json!({
                "encoding": self.encoding,
                "reappeared": self.reappeared,
                "upgraded_ids": self.upgraded_ids,
            }),
        }
    }
}

/// Reads through to the inner reader, hashing every byte and counting them
/// for the progress bar.
pub(crate) struct HashingReader<R> {
    pub(crate) inner: R,
    pub(crate) sha: Sha256,
    pub(crate) bytes: Arc<AtomicU64>,
    pub(crate) last_byte: Option<u8>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.sha.update(&buf[..n]);
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
            self.last_byte = Some(buf[n - 1]);
        }
        Ok(n)
    }
}

type Source = std::io::Chain<Cursor<Vec<u8>>, HashingReader<File>>;

/// Where each known column is in this file's header.
#[derive(Debug, Clone)]
struct Columns {
    idx: [usize; 12],
    last_certified: Option<usize>,
    phone: Option<usize>,
    width: usize,
}

/// A file opened, its encoding known and its header checked.
struct Opened {
    reader: csv::Reader<Source>,
    encoding: TextEncoding,
    columns: Columns,
    file_len: u64,
    bytes: Arc<AtomicU64>,
}

fn open(path: &Path) -> Result<Opened, ImportError> {
    let io_err = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let bytes = Arc::new(AtomicU64::new(0));
    let mut hashing = HashingReader {
        inner: file,
        sha: Sha256::new(),
        bytes: bytes.clone(),
        last_byte: None,
    };
    let mut prefix = Vec::with_capacity(PREFIX_LEN);
    (&mut hashing)
        .take(PREFIX_LEN as u64)
        .read_to_end(&mut prefix)
        .map_err(io_err)?;
    if prefix.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ImportError::Empty {
            path: path.to_path_buf(),
        });
    }
    let complete = (prefix.len() as u64) >= file_len;
    let encoding = encoding::detect(&prefix, complete).map_err(|source| ImportError::Encoding {
        path: path.to_path_buf(),
        source,
    })?;
    let body = prefix.split_off(encoding.bom_len());
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(Cursor::new(body).chain(hashing));
    let mut header = csv::ByteRecord::new();
    let got = reader
        .read_byte_record(&mut header)
        .map_err(|e| io_err(csv_io(e)))?;
    if !got {
        return Err(ImportError::Empty {
            path: path.to_path_buf(),
        });
    }
    let names: Vec<String> = header
        .iter()
        .map(|f| encoding.decode_lossy(f).trim().to_ascii_lowercase())
        .collect();
    let columns = map_columns(path, &names)?;
    Ok(Opened {
        reader,
        encoding,
        columns,
        file_len,
        bytes,
    })
}

pub(crate) fn csv_io(e: csv::Error) -> io::Error {
    io::Error::other(e.to_string())
}

fn map_columns(path: &Path, names: &[String]) -> Result<Columns, ImportError> {
    let found = find_columns(names, &REQUIRED_COLUMNS).map_err(|p| match p {
        HeaderProblem::Duplicate(column) => ImportError::DuplicateColumn {
            path: path.to_path_buf(),
            column,
        },
        HeaderProblem::Missing(missing) => ImportError::MissingColumns {
            path: path.to_path_buf(),
            missing,
            found: names.to_vec(),
        },
    })?;
    let mut idx = [0usize; 12];
    idx.copy_from_slice(&found);
    let find = |c: &str| names.iter().position(|n| n == c);
    Ok(Columns {
        idx,
        last_certified: find(OPTIONAL_COLUMNS[0]),
        phone: find(OPTIONAL_COLUMNS[1]),
        width: names.len(),
    })
}

/// Imports one roster export. `progress` is called with the bytes of the
/// file committed so far (the file's length is in `file_len` of the
/// returned summary's source; the CLI reads it from the file system).
pub async fn import_roster(
    store: &Store,
    path: &Path,
    opts: &ImportOptions,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<ImportSummary, ImportError> {
    // Held until the import ends: see `run_import` for why two roster
    // imports must never run at once.
    lifecycle::with_run_lock(store, LockKey::RosterImport, async |lock| {
        import_locked(store, path, opts, progress, lock).await
    })
    .await
}

async fn import_locked(
    store: &Store,
    path: &Path,
    opts: &ImportOptions,
    progress: &(dyn Fn(u64) + Send + Sync),
    lock: &StoreLock,
) -> Result<ImportSummary, ImportError> {
    if let Some(last) = store.last_roster_as_of().await?
        && opts.as_of < last
    {
        return Err(ImportError::OlderSnapshot {
            path: path.to_path_buf(),
            as_of: opts.as_of,
            last,
        });
    }
    let owned_path = path.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || open(&owned_path))
        .await
        .map_err(|e| ImportError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(e),
        })??;
    let file_name = path.display().to_string();
    let summary = lifecycle::run(
        store,
        lock,
        Some(&file_name),
        Some(opts.as_of),
        async |run_id| {
            let mut summary = ImportSummary {
                run_id,
                file: file_name.clone(),
                encoding: opened.encoding.name().to_string(),
                as_of: Some(opts.as_of),
                ..Default::default()
            };
            let result = run_import(store, path, opts, opened, &mut summary, progress).await;
            let end = RunEnd::ok(summary.counts())
                .with_file_sha256(summary.sha256.clone())
                .audited(
                    &opts.actor,
                    "roster.import",
                    &file_name,
                    serde_json::json!({
                        "run_id": run_id,
                        "sha256": summary.sha256,
                        "as_of": opts.as_of,
                        "read": summary.read,
                        "inserted": summary.inserted,
                        "changed": summary.changed,
                        "unchanged": summary.unchanged,
                        "quarantined": summary.quarantined,
                        "missing": summary.missing,
                        "reappeared": summary.reappeared,
                    }),
                );
            (result.map(|()| summary), end)
        },
    )
    .await?;
    // The matcher's roster, for the match runs to come: written here, once
    // a month, rather than by the first of them. Only a speed-up: a match
    // run without it reads the database.
    if let Err(e) = store.refresh_roster_snapshot().await {
        tracing::warn!(error = %e, "the roster snapshot was not written");
    }
    Ok(summary)
}

/// What the parser thread hands back when the file is done.
struct ParseEnd {
    index: StoredRosterKeys,
    read: u64,
    unchanged: u64,
    upgraded: u64,
    sha256: String,
}

async fn run_import(
    store: &Store,
    path: &Path,
    opts: &ImportOptions,
    opened: Opened,
    summary: &mut ImportSummary,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<(), ImportError> {
    let mut index = StoredRosterKeys::default();
    let stored = store
        .for_each_roster_hash(|person_no, hash, missing| {
            index.add_stored(person_no, hash as u64, missing)
        })
        .await?;
    index.seal();
    // Into an empty table, building the indexes once at the end is several
    // times faster than maintaining them row by row; that includes the
    // UNIQUE index on person_no. Uniqueness holds meanwhile because the
    // index above classifies every row (a person twice in the file is
    // quarantined) and because the caller holds the roster-import lock, so
    // no other import can insert the same people concurrently. Should that
    // ever fail, rebuilding the unique index fails loudly, here or on the
    // next start of vigil (which also rebuilds whatever a crash left
    // dropped).
    let bulk = stored == 0;
    if bulk {
        store.drop_roster_indexes().await?;
    }
    let result = stream_rows(store, path, opts, opened, index, summary, progress).await;
    if bulk {
        // Statistics need no index: on PostgreSQL, gather them while the
        // indexes build.
        tokio::try_join!(store.ensure_indexes(), store.analyze_pensioners())?;
    }
    result
}

async fn stream_rows(
    store: &Store,
    path: &Path,
    opts: &ImportOptions,
    opened: Opened,
    index: StoredRosterKeys,
    summary: &mut ImportSummary,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<(), ImportError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(RosterBatch, u64)>(4);
    let bytes = opened.bytes.clone();
    let parse_path = path.to_path_buf();
    let as_of = opts.as_of;
    let batch_rows = opts.batch_rows.max(1);
    let parser = tokio::task::spawn_blocking(move || {
        parse_all(opened, index, &parse_path, as_of, batch_rows, &tx)
    });

    let mut write_error = None;
    while let Some((batch, committed_bytes)) = rx.recv().await {
        for q in batch.quarantine.iter() {
            if summary.quarantine_sample.len() < SAMPLE_LEN {
                summary
                    .quarantine_sample
                    .push((q.line.unwrap_or(0), q.reason.clone()));
            }
        }
        match store
            .apply_roster_batch(summary.run_id, as_of, &batch)
            .await
        {
            Ok(outcome) => {
                summary.inserted += batch.inserts.len() as u64;
                summary.changed += outcome.changed + outcome.rehashed;
                summary.reappeared += outcome.reappeared;
                summary.quarantined += batch.quarantine.len() as u64;
                progress(committed_bytes);
                // Freeing 20,000 rows' strings is a few milliseconds this
                // writer (the import's one sequential stage) need not spend.
                rayon::spawn(move || drop(batch));
            }
            Err(e) => {
                write_error = Some(e);
                break;
            }
        }
    }
    drop(rx);
    let end = parser.await.map_err(|e| ImportError::Io {
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    if let Some(source) = write_error {
        return Err(ImportError::Interrupted {
            path: path.to_path_buf(),
            run_id: summary.run_id,
            bytes: bytes.load(Ordering::Relaxed),
            source,
        });
    }
    let end = end?;
    summary.read = end.read;
    summary.unchanged = end.unchanged;
    summary.upgraded_ids = end.upgraded;
    summary.sha256 = end.sha256;
    // Unchanged people who come back are counted as unchanged by the
    // parser and as reappeared by the writer; both are true.
    let absent = end.index.absent();
    summary.missing = store.flag_missing(summary.run_id, as_of, &absent).await?;
    Ok(())
}

fn parse_all(
    mut opened: Opened,
    mut index: StoredRosterKeys,
    path: &Path,
    as_of: NaiveDate,
    batch_rows: usize,
    tx: &tokio::sync::mpsc::Sender<(RosterBatch, u64)>,
) -> Result<ParseEnd, ImportError> {
    let today = identity::id::today_in_china();
    let file_name = path.display().to_string();
    let enc = opened.encoding;
    let mut batch = RosterBatch::default();
    let mut in_batch = 0usize;
    let (mut read, mut unchanged, mut upgraded) = (0u64, 0u64, 0u64);
    let mut last_line = 0u64;
    let mut last_was_short = false;
    // Rows are read in order on this thread, validated and normalised in
    // parallel (the expensive part: names, pinyin, ID checks), then
    // classified in order again.
    let mut records: Vec<csv::ByteRecord> =
        (0..PARSE_CHUNK).map(|_| csv::ByteRecord::new()).collect();
    let mut lines = vec![0u64; PARSE_CHUNK];
    let mut done = false;
    while !done {
        let mut n = 0;
        while n < PARSE_CHUNK {
            let line_hint = last_line + 1;
            match opened.reader.read_byte_record(&mut records[n]) {
                Ok(false) => {
                    done = true;
                    break;
                }
                Ok(true) => {}
                Err(e) => {
                    // An I/O error mid-file is not a bad row: stop, and let
                    // the run be recorded as failed with what was committed.
                    if let csv::ErrorKind::Io(_) = e.kind() {
                        return Err(ImportError::Io {
                            path: path.to_path_buf(),
                            source: csv_io(e),
                        });
                    }
                    read += 1;
                    batch.quarantine.push(QuarantineEntry {
                        source: SOURCE.to_string(),
                        file: Some(file_name.clone()),
                        line: Some(line_hint),
                        record_key: None,
                        reason: format!("unreadable CSV row: {e}"),
                        raw: String::new(),
                    });
                    continue;
                }
            }
            let record = &records[n];
            let line = record.position().map(|p| p.line()).unwrap_or(line_hint);
            last_line = line;
            if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
                continue; // a blank line is not a record
            }
            lines[n] = line;
            n += 1;
        }
        let columns = &opened.columns;
        let stored = &index;
        let parsed: Vec<(Result<Pensioner, Reject>, Option<usize>)> = records[..n]
            .par_chunks(LOOKUP_RUN)
            .flat_map_iter(|run| {
                let mut hint = None;
                run.iter().map(move |r| {
                    let row = parse_record(r, columns, enc, as_of, today);
                    let at = row
                        .as_ref()
                        .ok()
                        .and_then(|p| stored.locate_near(&p.person_no, hint.map(|h: usize| h + 1)));
                    if at.is_some() {
                        hint = at;
                    }
                    (row, at)
                })
            })
            .collect();
        for (i, (result, at)) in parsed.into_iter().enumerate() {
            let (record, line) = (&records[i], lines[i]);
            read += 1;
            last_was_short = false;
            match result {
                Ok(row) => {
                    if row.id_upgraded {
                        upgraded += 1;
                    }
                    match index.classify_located(&row.person_no, row.content_hash as u64, at) {
                        Seen::New => batch.inserts.push(row),
                        Seen::Changed => batch.changes.push(row),
                        Seen::Unchanged { was_missing } => {
                            unchanged += 1;
                            if was_missing {
                                batch.reappeared.push(row.person_no.into());
                            }
                        }
                        Seen::AgainInFile => batch.quarantine.push(QuarantineEntry {
                            source: SOURCE.to_string(),
                            file: Some(file_name.clone()),
                            line: Some(line),
                            record_key: Some(row.person_no.to_string()),
                            reason: "person_no appears more than once in this file; the first row was kept"
                                .to_string(),
                            raw: raw_text(record, enc),
                        }),
                    }
                }
                Err(reject) => {
                    last_was_short = reject.short_row;
                    batch.quarantine.push(QuarantineEntry {
                        source: SOURCE.to_string(),
                        file: Some(file_name.clone()),
                        line: Some(line),
                        record_key: reject.person_no,
                        reason: reject.reason,
                        raw: raw_text(record, enc),
                    });
                }
            }
            in_batch += 1;
        }
        // The last row of the file, short and with no newline after it:
        // say so while its entry is still in hand.
        if done
            && last_was_short
            && opened.reader.get_ref().get_ref().1.last_byte != Some(b'\n')
            && let Some(q) = batch.quarantine.last_mut()
        {
            q.reason
                .push_str("; the file ends in the middle of this row (truncated export?)");
        }
        if in_batch >= batch_rows {
            let sent = std::mem::take(&mut batch);
            in_batch = 0;
            if tx
                .blocking_send((sent, opened.bytes.load(Ordering::Relaxed)))
                .is_err()
            {
                // The writer stopped; it reports why.
                return Err(ImportError::Io {
                    path: path.to_path_buf(),
                    source: io::Error::other("the database writer stopped"),
                });
            }
        }
    }
    let source = opened.reader.into_inner();
    let (_, hashing) = source.into_inner();
    let total = opened.file_len.max(hashing.bytes.load(Ordering::Relaxed));
    if (in_batch > 0 || !batch.quarantine.is_empty()) && tx.blocking_send((batch, total)).is_err() {
        return Err(ImportError::Io {
            path: path.to_path_buf(),
            source: io::Error::other("the database writer stopped"),
        });
    }
    Ok(ParseEnd {
        index,
        read,
        unchanged,
        upgraded,
        sha256: hex::encode(hashing.sha.finalize()),
    })
}

/// The row as it was in the file, for the quarantine table.
pub(crate) fn raw_text(record: &csv::ByteRecord, enc: TextEncoding) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    if w.write_byte_record(record).is_err() {
        return String::new();
    }
    let bytes = w.into_inner().unwrap_or_default();
    let text = enc.decode_lossy(&bytes);
    text.trim_end_matches('\n').to_string()
}

/// Why a row was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: String,
    pub person_no: Option<String>,
    /// Fewer fields than the header: a truncated last line looks like this.
    pub short_row: bool,
}

/// Validates and normalises one row. Pure: the dates it needs are passed in.
/// Reasons name the column and what is wrong, never the full ID number or
/// bank account.
fn parse_record(
    record: &csv::ByteRecord,
    cols: &Columns,
    enc: TextEncoding,
    as_of: NaiveDate,
    today: NaiveDate,
) -> Result<Pensioner, Reject> {
    let reject = |reason: String, person_no: Option<String>| Reject {
        reason,
        person_no,
        short_row: false,
    };
    if record.len() != cols.width {
        return Err(Reject {
            reason: format!("expected {} fields, found {}", cols.width, record.len()),
            person_no: None,
            short_row: record.len() < cols.width,
        });
    }
    let mut fields: Vec<std::borrow::Cow<'_, str>> = Vec::with_capacity(record.len());
    for (i, f) in record.iter().enumerate() {
        match enc.decode(f) {
            Some(s) => fields.push(s),
            None => {
                return Err(reject(
                    format!("field {} is not valid {} text", i + 1, enc.name()),
                    None,
                ));
            }
        }
    }
    let get = |i: usize| fields[cols.idx[i]].trim();
    let person_no = get(0);
    if person_no.is_empty()
        || person_no.len() > 32
        || !person_no.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(reject(
            "person_no is empty or not letters and digits only".to_string(),
            None,
        ));
    }
    let pn = || Some(person_no.to_string());
    let name = get(1);
    let name_norm = identity::name::normalize_name(name);
    if name_norm.is_empty() {
        return Err(reject("name is empty".to_string(), pn()));
    }
    let parsed = identity::id::parse_on(get(2), today)
        .map_err(|e| reject(id_reason(&e, get(2), today), pn()))?;
    let id = parsed.id;
    let sex = match get(3) {
        "1" => Sex::Male,
        "2" => Sex::Female,
        other => {
            return Err(reject(
                format!("sex '{}' is not 1 (male) or 2 (female)", clip(other)),
                pn(),
            ));
        }
    };
    if id.sex() != sex {
        return Err(reject(
            format!(
                "sex column says {} but the ID number's sequence digit says {}",
                sex_word(sex),
                sex_word(id.sex())
            ),
            pn(),
        ));
    }
    let birth_date = parse_date("birth_date", get(4)).map_err(|r| reject(r, pn()))?;
    if birth_date != id.birth_date() {
        return Err(reject(
            format!(
                "birth_date {birth_date} does not match the birth date in the ID number ({})",
                id.birth_date()
            ),
            pn(),
        ));
    }
    let insured_region = region("insured_region", get(5)).map_err(|r| reject(r, pn()))?;
    let residence_region = region("residence_region", get(6)).map_err(|r| reject(r, pn()))?;
    let benefit_type = match get(7) {
        t @ ("employee_basic" | "resident_basic") => t,
        other => {
            return Err(reject(
                format!(
                    "benefit_type '{}' is not employee_basic or resident_basic",
                    clip(other)
                ),
                pn(),
            ));
        }
    };
    let monthly_amount_fen = parse_yuan(get(8)).map_err(|r| reject(r, pn()))?;
    let bank_account = get(9);
    if !(10..=32).contains(&bank_account.len()) || !bank_account.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(reject(
            format!(
                "bank_account is not 10 to 32 digits ({} characters given)",
                bank_account.chars().count()
            ),
            pn(),
        ));
    }
    let benefit_start = parse_date("benefit_start", get(10)).map_err(|r| reject(r, pn()))?;
    if benefit_start < birth_date {
        return Err(reject(
            format!("benefit_start {benefit_start} is before the birth date"),
            pn(),
        ));
    }
    let status = match get(11) {
        s @ ("active" | "suspended" | "terminated") => s,
        other => {
            return Err(reject(
                format!(
                    "status '{}' is not active, suspended or terminated",
                    clip(other)
                ),
                pn(),
            ));
        }
    };
    let last_certified = match cols.last_certified.map(|i| fields[i].trim()) {
        None | Some("") => None,
        Some(s) => Some(parse_date("last_certified", s).map_err(|r| reject(r, pn()))?),
    };
    let phone = match cols.phone.map(|i| fields[i].trim()) {
        None | Some("") => None,
        Some(s) => {
            if !(5..=20).contains(&s.len())
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
            {
                return Err(reject(
                    "phone is not a telephone number (digits, - or + only)".to_string(),
                    pn(),
                ));
            }
            Some(s.to_string())
        }
    };
    let mut p = Pensioner {
        person_no: person_no.into(),
        name: name.into(),
        name_key: identity::name::pinyin_key(&name_norm).into(),
        name_norm: name_norm.into(),
        id_number: id.as_str().into(),
        id_upgraded: parsed.upgraded_from_15,
        sex: i32::from(sex.code()),
        birth_date,
        insured_region: insured_region.into(),
        residence_region: residence_region.into(),
        benefit_type: benefit_type.into(),
        monthly_amount_fen,
        bank_account: bank_account.into(),
        benefit_start,
        status: status.into(),
        last_certified,
        phone,
        content_hash: 0,
        first_seen: as_of,
        missing_since: None,
    };
    p.content_hash = content_hash(&p) as i64;
    Ok(p)
}

fn sex_word(s: Sex) -> &'static str {
    match s {
        Sex::Male => "male",
        Sex::Female => "female",
    }
}

/// Shortens a bad value for a message (values that fail validation may be
/// anything, including a pasted ID number).
pub(crate) fn clip(s: &str) -> String {
    if s.chars().count() > 12 || s.bytes().filter(|b| b.is_ascii_digit()).count() >= 10 {
        identity::id::mask(s)
    } else {
        s.to_string()
    }
}

pub(crate) fn id_reason(e: &IdError, raw: &str, today: NaiveDate) -> String {
    let mut reason = format!("id_number {}: {e}", identity::id::mask(raw));
    if matches!(e, IdError::BadCheckCharacter { .. }) {
        let n = identity::id::repair_candidates_on(raw, today).len();
        reason.push_str(&format!(
            " ({n} valid number(s) are one typing error away; correct it in the core system)"
        ));
    }
    reason
}

/// `YYYY-MM-DD` exactly, and a real calendar date.
pub fn parse_date(column: &str, s: &str) -> Result<NaiveDate, String> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return Err(format!(
            "{column} '{}' is not a date as YYYY-MM-DD",
            clip(s)
        ));
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    NaiveDate::from_ymd_opt(num(0..4) as i32, num(5..7), num(8..10))
        .ok_or_else(|| format!("{column} {s} is not a real calendar date"))
}

fn region<'a>(column: &str, s: &'a str) -> Result<&'a str, String> {
    if identity::region::is_valid_region(s) {
        Ok(s)
    } else {
        Err(format!(
            "{column} '{}' is not a known 6-digit region code",
            clip(s)
        ))
    }
}

/// Yuan with at most two decimals → integer fen. No thousands separators,
/// no sign, no exponent: anything else is refused rather than guessed.
pub fn parse_yuan(s: &str) -> Result<i64, String> {
    parse_yuan_in("monthly_amount", s)
}

/// [`parse_yuan`] for the column `column`, which its refusal names.
pub fn parse_yuan_in(column: &str, s: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "{column} '{}' is not a yuan amount like 3268.50 (digits, at most two decimals, no thousands separators)",
            clip(s)
        )
    };
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty()
        || int.len() > 12
        || frac.len() > 2
        || (s.contains('.') && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let yuan: i64 = int.parse().map_err(|_| bad())?;
    let mut fen: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        fen += i64::from(b - b'0') * if i == 0 { 10 } else { 1 };
    }
    Ok(yuan * 100 + fen)
}

/// FNV-1a over every source field, separated, masked to 63 bits so it fits
/// a signed BIGINT and leaves the top bit for the index's "missing" flag.
/// Stable across versions: changing it makes every row look changed once.
pub fn content_hash(p: &Pensioner) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
        h ^= 0x1f;
        h = h.wrapping_mul(PRIME);
    };
    eat(p.name.as_bytes());
    eat(p.id_number.as_bytes());
    eat(&[p.id_upgraded as u8]);
    eat(&p.sex.to_le_bytes());
    eat(&p.birth_date.num_days_from_ce().to_le_bytes());
    eat(p.insured_region.as_bytes());
    eat(p.residence_region.as_bytes());
    eat(p.benefit_type.as_bytes());
    eat(&p.monthly_amount_fen.to_le_bytes());
    eat(p.bank_account.as_bytes());
    eat(&p.benefit_start.num_days_from_ce().to_le_bytes());
    eat(p.status.as_bytes());
    // The date as `Display` writes it, without its allocation for the
    // four-digit years every parsed date has.
    let mut iso = [0u8; 10];
    let slow;
    eat(match p.last_certified {
        None => &[],
        Some(d) if (0..=9999).contains(&d.year()) => {
            crate::store::date_text(d, &mut iso);
            &iso
        }
        Some(d) => {
            slow = d.to_string();
            slow.as_bytes()
        }
    });
    eat(p.phone.as_deref().unwrap_or("").as_bytes());
    h & !MISSING_BIT
}

const MISSING_BIT: u64 = 1 << 63;

/// What the index says about a row of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    New,
    Changed,
    Unchanged { was_missing: bool },
    AgainInFile,
}

/// The stored roster, reduced to what classifying a row needs. Person
/// numbers of up to 17 digits (all real ones) pack into a u64 with their
/// length, so leading zeros survive; anything else goes to a small map.
#[derive(Default)]
struct StoredRosterKeys {
    /// (packed person_no, content hash | MISSING_BIT), sorted by key.
    packed: Vec<(u64, u64)>,
    seen: Vec<bool>,
    other: AHashMap<String, (u64, bool)>,
    /// Every new person of a first import passes through here: a fast
    /// hash, not SipHash (the keys are our own file's, not an attacker's
    /// choice of collisions against a server).
    new_packed: AHashSet<u64>,
    new_other: AHashSet<String>,
}

fn pack(person_no: &str) -> Option<u64> {
    let len = person_no.len();
    if !(1..=17).contains(&len) || !person_no.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = person_no.parse().ok()?;
    Some((v << 5) | len as u64)
}

fn unpack(key: u64) -> String {
    let len = (key & 31) as usize;
    format!("{:0len$}", key >> 5)
}

impl StoredRosterKeys {
    fn add_stored(&mut self, person_no: &str, hash: u64, missing: bool) {
        let h = (hash & !MISSING_BIT) | if missing { MISSING_BIT } else { 0 };
        match pack(person_no) {
            Some(k) => self.packed.push((k, h)),
            None => {
                self.other.insert(person_no.to_string(), (h, false));
            }
        }
    }

    fn seal(&mut self) {
        self.packed.sort_unstable_by_key(|e| e.0);
        self.seen = vec![false; self.packed.len()];
    }

    #[cfg(test)]
    fn classify(&mut self, person_no: &str, hash: u64) -> Seen {
        let at = self.locate(person_no);
        self.classify_located(person_no, hash, at)
    }

    /// Where a packed person number sits in the stored index. Read-only, so
    /// the rows of a chunk look themselves up in parallel.
    #[cfg(test)]
    fn locate(&self, person_no: &str) -> Option<usize> {
        self.locate_near(person_no, None)
    }

    /// As `locate`, trying `hint` first: exports are usually sorted by
    /// person number, so the next row's entry is usually the next one, and a
    /// binary search over millions of entries is a cache miss per step.
    fn locate_near(&self, person_no: &str, hint: Option<usize>) -> Option<usize> {
        let k = pack(person_no)?;
        if let Some(h) = hint
            && self.packed.get(h).is_some_and(|e| e.0 == k)
        {
            return Some(h);
        }
        self.packed.binary_search_by_key(&k, |e| e.0).ok()
    }

    /// Classifies a row whose stored position `locate` found (or not).
    fn classify_located(&mut self, person_no: &str, hash: u64, at: Option<usize>) -> Seen {
        let judge = |stored: u64| {
            if stored & !MISSING_BIT == hash {
                Seen::Unchanged {
                    was_missing: stored & MISSING_BIT != 0,
                }
            } else {
                Seen::Changed
            }
        };
        match pack(person_no) {
            Some(k) => match at {
                Some(i) => {
                    if std::mem::replace(&mut self.seen[i], true) {
                        Seen::AgainInFile
                    } else {
                        judge(self.packed[i].1)
                    }
                }
                None => {
                    if self.new_packed.insert(k) {
                        Seen::New
                    } else {
                        Seen::AgainInFile
                    }
                }
            },
            None => match self.other.get_mut(person_no) {
                Some((stored, seen)) => {
                    if std::mem::replace(seen, true) {
                        Seen::AgainInFile
                    } else {
                        judge(*stored)
                    }
                }
                None => {
                    if self.new_other.insert(person_no.to_string()) {
                        Seen::New
                    } else {
                        Seen::AgainInFile
                    }
                }
            },
        }
    }

    /// Stored people the file did not mention and who are not flagged yet.
    fn absent(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .packed
            .iter()
            .zip(&self.seen)
            .filter(|((_, h), seen)| !**seen && h & MISSING_BIT == 0)
            .map(|((k, _), _)| unpack(*k))
            .collect();
        out.extend(
            self.other
                .iter()
                .filter(|(_, (h, seen))| !*seen && h & MISSING_BIT == 0)
                .map(|(p, _)| p.clone()),
        );
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_with_two_decimals_becomes_fen() {
        assert_eq!(parse_yuan("3268.50"), Ok(326_850));
        assert_eq!(parse_yuan("3268.5"), Ok(326_850));
        assert_eq!(parse_yuan("3268"), Ok(326_800));
        assert_eq!(parse_yuan("0.07"), Ok(7));
    }

    #[test]
    fn thousands_separators_and_oddities_are_refused() {
        for bad in [
            "3,268.5", "-12.00", "12.345", "1e3", "", ".5", "12.", "１２",
        ] {
            let err = parse_yuan(bad).unwrap_err();
            assert!(err.contains("monthly_amount"), "{bad}: {err}");
        }
    }

    #[test]
    fn february_thirtieth_is_not_a_date() {
        let err = parse_date("birth_date", "1942-02-30").unwrap_err();
        assert!(err.contains("not a real calendar date"), "{err}");
        assert!(parse_date("birth_date", "1942/3/15").is_err());
        assert_eq!(
            parse_date("x", "1942-03-15"),
            Ok(NaiveDate::from_ymd_opt(1942, 3, 15).unwrap())
        );
    }

    /// The hash as first written (dates through `to_string`): a stored
    /// hash must never change, or every row looks changed once.
    fn content_hash_as_first_written(p: &Pensioner) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h ^= 0x1f;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        };
        eat(p.name.as_bytes());
        eat(p.id_number.as_bytes());
        eat(&[p.id_upgraded as u8]);
        eat(&p.sex.to_le_bytes());
        eat(&p.birth_date.num_days_from_ce().to_le_bytes());
        eat(p.insured_region.as_bytes());
        eat(p.residence_region.as_bytes());
        eat(p.benefit_type.as_bytes());
        eat(&p.monthly_amount_fen.to_le_bytes());
        eat(p.bank_account.as_bytes());
        eat(&p.benefit_start.num_days_from_ce().to_le_bytes());
        eat(p.status.as_bytes());
        eat(p
            .last_certified
            .map(|d| d.to_string())
            .unwrap_or_default()
            .as_bytes());
        eat(p.phone.as_deref().unwrap_or("").as_bytes());
        h & !MISSING_BIT
    }

    #[test]
    fn the_content_hash_is_what_it_always_was() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let mut p = Pensioner {
            person_no: "4403000000000001".into(),
            name: "王秀英".into(),
            name_norm: "王秀英".into(),
            name_key: "wangxiuying".into(),
            id_number: "44030419400110100X".into(),
            id_upgraded: false,
            sex: 2,
            birth_date: day(1940, 1, 10),
            insured_region: "440304".into(),
            residence_region: "440304".into(),
            benefit_type: "employee_basic".into(),
            monthly_amount_fen: 326_850,
            bank_account: "6222021200000000000".into(),
            benefit_start: day(2002, 4, 1),
            status: "active".into(),
            last_certified: Some(day(2026, 2, 11)),
            phone: Some("13800138000".to_string()),
            content_hash: 0,
            first_seen: day(2026, 11, 1),
            missing_since: None,
        };
        for certified in [
            Some(day(2026, 2, 11)),
            Some(day(987, 6, 5)),
            Some(day(0, 1, 1)),
            Some(day(-1, 12, 31)),
            Some(day(12345, 1, 1)),
            None,
        ] {
            p.last_certified = certified;
            assert_eq!(
                content_hash(&p),
                content_hash_as_first_written(&p),
                "{certified:?}"
            );
        }
    }

    #[test]
    fn person_numbers_pack_and_unpack_with_leading_zeros() {
        for p in [
            "4403000012345678",
            "0000000000000001",
            "7",
            "12345678901234567",
        ] {
            assert_eq!(unpack(pack(p).unwrap()), p);
        }
        assert_eq!(pack("123456789012345678"), None);
        assert_eq!(pack("A123"), None);
        assert_ne!(pack("01"), pack("1"));
    }

    #[test]
    fn index_classifies_new_changed_unchanged_and_repeats() {
        let mut idx = StoredRosterKeys::default();
        idx.add_stored("0001", 10, false);
        idx.add_stored("0002", 20, true);
        idx.add_stored("X-9", 30, false);
        idx.add_stored("0004", 40, false);
        idx.seal();
        assert_eq!(
            idx.classify("0001", 10),
            Seen::Unchanged { was_missing: false }
        );
        assert_eq!(
            idx.classify("0002", 20),
            Seen::Unchanged { was_missing: true }
        );
        assert_eq!(idx.classify("X-9", 31), Seen::Changed);
        assert_eq!(idx.classify("0003", 1), Seen::New);
        assert_eq!(idx.classify("0003", 1), Seen::AgainInFile);
        assert_eq!(idx.classify("0001", 10), Seen::AgainInFile);
        assert_eq!(idx.absent(), vec!["0004".to_string()]);
    }
}
