//! Evidence of life (spec §5) and remote video verification results
//! (spec §6): CSV files imported as a stream, row by row.
//!
//! An import checks the header first (a file lacking a column is refused
//! before anything is written), validates every row (the ID number's check
//! character, a 15-digit number upgraded, the event type or result from the
//! spec's set, real dates that are neither in the future nor before the
//! person was born, a session time with its UTC offset), quarantines the
//! rows it cannot use with their line and reason, and stores the rest in
//! batches, each in one transaction with its quarantine. Every row read is
//! stored, recognised as a duplicate, or quarantined; the same file
//! imported twice stores nothing the second time. A video session sent
//! again under the same ID and time with a different result is not a
//! duplicate: it is quarantined, and the stored one stays.
//!
//! Reading the clock is the caller's business: `today` comes in the options.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::encoding::TextEncoding;
use super::roster::{HashingReader, clip, csv_io, id_reason, parse_date, raw_text};
use super::{HeaderProblem, find_columns};
use crate::identity::{self, IdNumber};
use crate::lifecycle::{self, RunEnd};
use crate::model::{EVENT_TYPES, EvidenceEvent, VIDEO_RESULTS, VideoSession};
use crate::store::quarantine::QuarantineEntry;
use crate::store::runs::RunCounts;
use crate::store::{LockKey, Store, StoreError, StoreLock};

/// The columns of spec §5, in the order of the spec.
pub const EVIDENCE_COLUMNS: [&str; 4] = ["id_number", "event_type", "event_date", "source_ref"];
/// The columns of spec §6, in the order of the spec.
pub const VIDEO_COLUMNS: [&str; 5] = ["id_number", "session_at", "result", "operator", "note"];

/// Longest values kept for the free-text columns; longer ones are not what
/// the feeds send, and are quarantined rather than cut.
const MAX_SOURCE_REF: usize = 200;
const MAX_OPERATOR: usize = 100;
const MAX_NOTE: usize = 1000;
/// Quarantine reasons kept in the summary for the user to read at once.
const SAMPLE_LEN: usize = 20;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

pub use crate::store::runs::EvidenceKind;

impl EvidenceKind {
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            EvidenceKind::LifeEvidence => &EVIDENCE_COLUMNS,
            EvidenceKind::VideoResults => &VIDEO_COLUMNS,
        }
    }

    /// The lock that keeps imports of this kind to one at a time.
    pub fn lock_key(self) -> LockKey<'static> {
        LockKey::EvidenceImport(self)
    }

    fn audit_action(self) -> &'static str {
        match self {
            EvidenceKind::LifeEvidence => "evidence.import",
            EvidenceKind::VideoResults => "video.import",
        }
    }

    fn what(self) -> &'static str {
        match self {
            EvidenceKind::LifeEvidence => "an evidence-of-life file (spec §5)",
            EvidenceKind::VideoResults => "a video-results file (spec §6)",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is empty: {what} starts with the header row {header}")]
    Empty {
        path: PathBuf,
        what: &'static str,
        header: String,
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
pub struct EvidenceImportOptions {
    /// Rows per transaction.
    pub batch_rows: usize,
    /// Who is importing, for the audit log.
    pub actor: String,
    /// Today in China: a later date in a row is refused as impossible, and
    /// ID numbers are judged against it.
    pub today: NaiveDate,
}

/// What an import did; `read = inserted + duplicate + quarantined`.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceImportSummary {
    pub run_id: i64,
    pub kind: EvidenceKind,
    pub file: String,
    pub sha256: String,
    pub read: u64,
    pub inserted: u64,
    /// Rows already stored (or earlier in this file) with the same content.
    pub duplicate: u64,
    pub quarantined: u64,
    /// Rows whose legacy 15-digit ID was upgraded to 18 digits.
    pub upgraded_ids: u64,
    /// Rows stored or recognised, by event type (§5) or by result (§6).
    pub by_type: BTreeMap<String, u64>,
    /// The first quarantined rows: (line, reason).
    pub quarantine_sample: Vec<(u64, String)>,
}

impl EvidenceImportSummary {
    fn counts(&self) -> RunCounts {
        RunCounts {
            read: self.read,
            inserted: self.inserted,
            unchanged: self.duplicate,
            quarantined: self.quarantined,
            details: serde_json::json!({
                "duplicate": self.duplicate,
                "upgraded_ids": self.upgraded_ids,
                "by_type": self.by_type,
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
// Row parsers: pure, so they are tested without files or a database.

/// Validates an ID number column: empty, broken or impossible numbers are
/// refused with a reason that shows the number masked; a 15-digit number is
/// upgraded (the `bool`).
fn parse_id(raw: &str, today: NaiveDate) -> Result<(IdNumber, bool), String> {
    if raw.is_empty() {
        return Err("id_number is empty".to_string());
    }
    identity::id::parse_on(raw, today)
        .map(|p| (p.id, p.upgraded_from_15))
        .map_err(|e| id_reason(&e, raw, today))
}

/// A date a person was seen alive must have happened, and after the birth
/// the ID number records.
fn plausible(column: &str, date: NaiveDate, id: &IdNumber, today: NaiveDate) -> Result<(), String> {
    if date > today {
        return Err(format!(
            "{column} {date} is in the future (today is {today})"
        ));
    }
    if date < id.birth_date() {
        return Err(format!(
            "{column} {date} is before the birth date in the ID number"
        ));
    }
    Ok(())
}

fn bounded<'a>(column: &str, s: &'a str, max: usize) -> Result<&'a str, String> {
    let n = s.chars().count();
    if n > max {
        Err(format!(
            "{column} has {n} characters; at most {max} are accepted"
        ))
    } else {
        Ok(s)
    }
}

/// One row of spec §5, its fields in [`EVIDENCE_COLUMNS`] order and trimmed.
/// Returns the row and whether its ID was upgraded from 15 digits.
pub fn parse_evidence_row(
    fields: &[&str],
    today: NaiveDate,
) -> Result<(EvidenceEvent, bool), String> {
    let (id, upgraded) = parse_id(fields[0], today)?;
    let event_type = fields[1];
    if !EVENT_TYPES.contains(&event_type) {
        return Err(format!(
            "event_type '{}' is not one of {}",
            clip(event_type),
            EVENT_TYPES.join(", ")
        ));
    }
    let event_date = parse_date("event_date", fields[2])?;
    plausible("event_date", event_date, &id, today)?;
    let source_ref = bounded("source_ref", fields[3], MAX_SOURCE_REF)?;
    Ok((
        EvidenceEvent {
            id_number: id.as_str().to_string(),
            event_type: event_type.to_string(),
            event_date,
            source_ref: source_ref.to_string(),
        },
        upgraded,
    ))
}

/// An ISO 8601 time with its UTC offset: `2026-11-26T09:30:00+08:00`, also
/// `Z`, fractional seconds, no seconds, or an offset without the colon. A
/// time without an offset cannot be placed on a calendar day and is refused.
pub fn parse_session_at(s: &str) -> Result<DateTime<FixedOffset>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Ok(t);
        }
    }
    let without_offset = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .any(|f| NaiveDateTime::parse_from_str(s, f).is_ok());
    if without_offset {
        Err(format!(
            "session_at '{}' has no UTC offset; spec §6 gives times like 2026-11-26T09:30:00+08:00",
            clip(s)
        ))
    } else {
        Err(format!(
            "session_at '{}' is not an ISO 8601 time with offset like 2026-11-26T09:30:00+08:00",
            clip(s)
        ))
    }
}

/// One row of spec §6, its fields in [`VIDEO_COLUMNS`] order and trimmed.
/// Returns the row and whether its ID was upgraded from 15 digits.
pub fn parse_video_row(fields: &[&str], today: NaiveDate) -> Result<(VideoSession, bool), String> {
    let (id, upgraded) = parse_id(fields[0], today)?;
    let at = parse_session_at(fields[1])?;
    // The day in China: death dates are Chinese calendar days.
    let session_date = at.with_timezone(&chrono_tz::Asia::Shanghai).date_naive();
    plausible("session_at", session_date, &id, today)?;
    let result = fields[2];
    if !VIDEO_RESULTS.contains(&result) {
        return Err(format!(
            "result '{}' is not one of {}",
            clip(result),
            VIDEO_RESULTS.join(", ")
        ));
    }
    let operator = bounded("operator", fields[3], MAX_OPERATOR)?;
    let note = bounded("note", fields[4], MAX_NOTE)?;
    Ok((
        VideoSession {
            id_number: id.as_str().to_string(),
            session_at: at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            session_utc: at
                .with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            session_date,
            result: result.to_string(),
            operator: operator.to_string(),
            note: note.to_string(),
        },
        upgraded,
    ))
}

// ---------------------------------------------------------------------------
// Reading the file.

/// A file opened and its header checked: where each spec column is.
struct Opened {
    reader: csv::Reader<BufReader<HashingReader<File>>>,
    /// Position in the file of each of the kind's columns, in spec order.
    idx: Vec<usize>,
    width: usize,
    bytes: Arc<AtomicU64>,
}

fn open(path: &Path, kind: EvidenceKind) -> Result<Opened, EvidenceImportError> {
    let io_err = |source| EvidenceImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let empty = || EvidenceImportError::Empty {
        path: path.to_path_buf(),
        what: kind.what(),
        header: kind.columns().join(","),
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
    // UTF-8, with or without a byte-order mark (spec §5-6); the mark is
    // hashed with the rest but is not part of the first column's name.
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
    let idx = find_columns(&names, kind.columns()).map_err(|p| match p {
        HeaderProblem::Duplicate(column) => EvidenceImportError::DuplicateColumn {
            path: path.to_path_buf(),
            column,
        },
        HeaderProblem::Missing(missing) => EvidenceImportError::MissingColumns {
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

/// A row that passed validation, with where it was.
struct Accepted<T> {
    line: u64,
    /// The row as written; kept only where a later step may quarantine it.
    raw: String,
    row: T,
}

struct ParsedBatch<T> {
    rows: Vec<Accepted<T>>,
    quarantine: Vec<QuarantineEntry>,
    /// Bytes of the file read when the batch was sent.
    bytes: u64,
}

impl<T> Default for ParsedBatch<T> {
    fn default() -> Self {
        ParsedBatch {
            rows: Vec::new(),
            quarantine: Vec::new(),
            bytes: 0,
        }
    }
}

struct ParseEnd {
    read: u64,
    upgraded: u64,
    sha256: String,
}

/// What one kind of row needs: its parser, and how a batch is stored.
trait EvidenceRow: Sized + Send + 'static {
    const KIND: EvidenceKind;
    /// Whether accepted rows keep their raw text (for a later quarantine).
    const KEEP_RAW: bool;
    fn parse(fields: &[&str], today: NaiveDate) -> Result<(Self, bool), String>;
    /// Stores one batch with its quarantine; adds to the summary what it did.
    async fn store(
        store: &Store,
        file: &str,
        batch: ParsedBatch<Self>,
        summary: &mut EvidenceImportSummary,
    ) -> Result<(), StoreError>;
}

impl EvidenceRow for EvidenceEvent {
    const KIND: EvidenceKind = EvidenceKind::LifeEvidence;
    const KEEP_RAW: bool = false;

    fn parse(fields: &[&str], today: NaiveDate) -> Result<(Self, bool), String> {
        parse_evidence_row(fields, today)
    }

    async fn store(
        store: &Store,
        _file: &str,
        batch: ParsedBatch<Self>,
        summary: &mut EvidenceImportSummary,
    ) -> Result<(), StoreError> {
        let rows: Vec<EvidenceEvent> = batch.rows.into_iter().map(|a| a.row).collect();
        let inserted = store
            .insert_life_evidence(summary.run_id, &rows, &batch.quarantine)
            .await?;
        for r in &rows {
            *summary.by_type.entry(r.event_type.clone()).or_default() += 1;
        }
        summary.inserted += inserted;
        summary.duplicate += rows.len() as u64 - inserted;
        summary.note_quarantine(&batch.quarantine);
        Ok(())
    }
}

impl EvidenceRow for VideoSession {
    const KIND: EvidenceKind = EvidenceKind::VideoResults;
    const KEEP_RAW: bool = true;

    fn parse(fields: &[&str], today: NaiveDate) -> Result<(Self, bool), String> {
        parse_video_row(fields, today)
    }

    /// A session already stored, or earlier in the batch, with the same
    /// content is a duplicate; with another result, operator or note it is
    /// a conflict, quarantined, and the first one stays.
    async fn store(
        store: &Store,
        file: &str,
        batch: ParsedBatch<Self>,
        summary: &mut EvidenceImportSummary,
    ) -> Result<(), StoreError> {
        let ParsedBatch {
            rows,
            mut quarantine,
            ..
        } = batch;
        let keys: Vec<(&str, &str)> = rows
            .iter()
            .map(|a| (a.row.id_number.as_str(), a.row.session_at.as_str()))
            .collect();
        let stored = store.stored_video_sessions(&keys).await?;
        let same = |a: &VideoSession, result: &str, operator: &str, note: &str| {
            a.result == result && a.operator == operator && a.note == note
        };
        let mut fresh: Vec<VideoSession> = Vec::with_capacity(rows.len());
        let mut first_line: HashMap<(String, String), (u64, usize)> = HashMap::new();
        let mut duplicates = 0u64;
        for a in &rows {
            let key = (a.row.id_number.clone(), a.row.session_at.clone());
            let conflict = if let Some(s) = stored.get(&key) {
                if same(&a.row, &s.result, &s.operator, &s.note) {
                    duplicates += 1;
                    None
                } else {
                    Some(format!(
                        "a session for this ID at {} is already stored (run {}) with result {}, \
                         operator '{}'; this row says {}, operator '{}'. The stored one is kept",
                        a.row.session_at,
                        s.run_id,
                        s.result,
                        clip(&s.operator),
                        a.row.result,
                        clip(&a.row.operator)
                    ))
                }
            } else if let Some(&(line, i)) = first_line.get(&key) {
                let f = &fresh[i];
                if same(&a.row, &f.result, &f.operator, &f.note) {
                    duplicates += 1;
                    None
                } else {
                    Some(format!(
                        "line {line} has a session for this ID at {} with result {}, operator \
                         '{}'; this row says {}, operator '{}'. The first one is kept",
                        a.row.session_at,
                        f.result,
                        clip(&f.operator),
                        a.row.result,
                        clip(&a.row.operator)
                    ))
                }
            } else {
                first_line.insert(key, (a.line, fresh.len()));
                fresh.push(a.row.clone());
                None
            };
            match conflict {
                Some(reason) => quarantine.push(QuarantineEntry {
                    source: Self::KIND.source().to_string(),
                    file: Some(file.to_string()),
                    line: Some(a.line),
                    record_key: None,
                    reason,
                    raw: a.raw.clone(),
                }),
                None => *summary.by_type.entry(a.row.result.clone()).or_default() += 1,
            }
        }
        let inserted = store
            .insert_video_sessions(summary.run_id, &fresh, &quarantine)
            .await?;
        summary.inserted += inserted;
        // Rows another import stored between the look-up and the insert
        // are duplicates too.
        summary.duplicate += duplicates + (fresh.len() as u64 - inserted);
        quarantine.sort_by_key(|q| q.line);
        summary.note_quarantine(&quarantine);
        Ok(())
    }
}

/// Reads, validates and batches every row; runs on a blocking thread.
fn parse_file<T: EvidenceRow>(
    mut opened: Opened,
    path: &Path,
    batch_rows: usize,
    today: NaiveDate,
    tx: &tokio::sync::mpsc::Sender<ParsedBatch<T>>,
) -> Result<ParseEnd, EvidenceImportError> {
    let kind = T::KIND;
    let file_name = path.display().to_string();
    let quarantine = |line: u64, reason: String, raw: String| QuarantineEntry {
        source: kind.source().to_string(),
        file: Some(file_name.clone()),
        line: Some(line),
        record_key: None,
        reason,
        raw,
    };
    let stopped = || EvidenceImportError::Io {
        path: path.to_path_buf(),
        source: io::Error::other("the database writer stopped"),
    };
    let mut batch = ParsedBatch::<T>::default();
    let (mut read, mut upgraded, mut last_line) = (0u64, 0u64, 1u64);
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
                    return Err(EvidenceImportError::Io {
                        path: path.to_path_buf(),
                        source: csv_io(e),
                    });
                }
                read += 1;
                last_line = line_hint;
                batch.quarantine.push(quarantine(
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
        let raw = || raw_text(&record, TextEncoding::Utf8);
        if record.len() != opened.width {
            batch.quarantine.push(quarantine(
                line,
                format!(
                    "expected {} fields as in the header, found {}",
                    opened.width,
                    record.len()
                ),
                raw(),
            ));
        } else {
            // At most five columns (spec §6); no allocation per row.
            let mut fields = [""; 5];
            let mut bad = None;
            for (k, &i) in opened.idx.iter().enumerate() {
                match std::str::from_utf8(&record[i]) {
                    Ok(s) => fields[k] = s.trim(),
                    Err(_) => {
                        bad = Some(format!(
                            "column {} is not valid UTF-8 text (spec §5-6 files are UTF-8)",
                            kind.columns()[k]
                        ));
                        break;
                    }
                }
            }
            let parsed = match bad {
                Some(reason) => Err(reason),
                None => T::parse(&fields[..opened.idx.len()], today),
            };
            match parsed {
                Ok((row, was_15)) => {
                    upgraded += u64::from(was_15);
                    batch.rows.push(Accepted {
                        line,
                        raw: if T::KEEP_RAW { raw() } else { String::new() },
                        row,
                    });
                }
                Err(reason) => batch.quarantine.push(quarantine(line, reason, raw())),
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
        upgraded,
        sha256: hex::encode(hashing.sha.finalize()),
    })
}

/// Imports an evidence-of-life file (spec §5). `progress` is called with
/// the bytes of the file committed so far.
pub async fn import_life_evidence(
    store: &Store,
    path: &Path,
    opts: &EvidenceImportOptions,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<EvidenceImportSummary, EvidenceImportError> {
    import::<EvidenceEvent>(store, path, opts, progress).await
}

/// Imports a video-results file (spec §6). `progress` is called with the
/// bytes of the file committed so far.
pub async fn import_video_results(
    store: &Store,
    path: &Path,
    opts: &EvidenceImportOptions,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<EvidenceImportSummary, EvidenceImportError> {
    import::<VideoSession>(store, path, opts, progress).await
}

async fn import<T: EvidenceRow>(
    store: &Store,
    path: &Path,
    opts: &EvidenceImportOptions,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<EvidenceImportSummary, EvidenceImportError> {
    let kind = T::KIND;
    let owned = path.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || open(&owned, kind))
        .await
        .map_err(|e| EvidenceImportError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(e),
        })??;
    let file_name = path.display().to_string();
    // One import of a kind at a time; holding the lock, an import of this
    // kind still marked running died.
    lifecycle::with_run_lock(store, kind.lock_key(), async |lock| {
        import_locked::<T>(store, path, opts, progress, opened, file_name, lock).await
    })
    .await
}

async fn import_locked<T: EvidenceRow>(
    store: &Store,
    path: &Path,
    opts: &EvidenceImportOptions,
    progress: &(dyn Fn(u64) + Send + Sync),
    opened: Opened,
    file_name: String,
    lock: &StoreLock,
) -> Result<EvidenceImportSummary, EvidenceImportError> {
    let kind = T::KIND;
    lifecycle::run(store, lock, Some(&file_name), None, async |run_id| {
        let mut summary = EvidenceImportSummary {
            run_id,
            kind,
            file: file_name.clone(),
            sha256: String::new(),
            read: 0,
            inserted: 0,
            duplicate: 0,
            quarantined: 0,
            upgraded_ids: 0,
            by_type: BTreeMap::new(),
            quarantine_sample: Vec::new(),
        };
        let result = stream::<T>(store, path, opts, opened, &mut summary, progress).await;
        let end = RunEnd::ok(summary.counts())
            .with_file_sha256(summary.sha256.clone())
            .audited(
                &opts.actor,
                kind.audit_action(),
                &file_name,
                serde_json::json!({
                    "run_id": run_id,
                    "sha256": summary.sha256,
                    "read": summary.read,
                    "inserted": summary.inserted,
                    "duplicate": summary.duplicate,
                    "quarantined": summary.quarantined,
                    "upgraded_ids": summary.upgraded_ids,
                }),
            );
        (result.map(|()| summary), end)
    })
    .await
}

async fn stream<T: EvidenceRow>(
    store: &Store,
    path: &Path,
    opts: &EvidenceImportOptions,
    opened: Opened,
    summary: &mut EvidenceImportSummary,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<(), EvidenceImportError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ParsedBatch<T>>(2);
    let parse_path = path.to_path_buf();
    let batch_rows = opts.batch_rows.max(1);
    let today = opts.today;
    let parser = tokio::task::spawn_blocking(move || {
        parse_file::<T>(opened, &parse_path, batch_rows, today, &tx)
    });
    let file = summary.file.clone();
    let mut write_error = None;
    while let Some(batch) = rx.recv().await {
        let bytes = batch.bytes;
        if let Err(e) = T::store(store, &file, batch, summary).await {
            write_error = Some(e);
            break;
        }
        progress(bytes);
    }
    drop(rx);
    let end = parser.await.map_err(|e| EvidenceImportError::Io {
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    if let Some(source) = write_error {
        return Err(EvidenceImportError::Interrupted {
            path: path.to_path_buf(),
            run_id: summary.run_id,
            source,
        });
    }
    let end = end?;
    summary.read = end.read;
    summary.upgraded_ids = end.upgraded;
    summary.sha256 = end.sha256;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
    }

    /// A valid 18-digit number for a region, birth date and sequence.
    fn id(region: &str, birth: &str, seq: u32) -> String {
        let first17 = format!("{region}{birth}{seq:03}");
        let c = identity::id::check_char(first17.as_bytes()) as char;
        format!("{first17}{c}")
    }

    #[test]
    fn a_feed_event_is_parsed_with_its_normalised_id() {
        let n = id("440304", "19420315", 122);
        let (row, upgraded) =
            parse_evidence_row(&[&n, "medical_settlement", "2026-11-20", "MS-1"], today()).unwrap();
        assert!(!upgraded);
        assert_eq!(row.id_number, n);
        assert_eq!(row.event_type, "medical_settlement");
        assert_eq!(
            row.event_date,
            NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
        );
        assert_eq!(row.source_ref, "MS-1");
        // Lower-case x and spaces are what clerks type; the stored form is canonical.
        let spaced = format!("{} {}", &n[..6], &n[6..]).to_lowercase();
        let (row, _) =
            parse_evidence_row(&[&spaced, "face_app", "2026-11-20", ""], today()).unwrap();
        assert_eq!(row.id_number, n);
    }

    #[test]
    fn a_fifteen_digit_id_is_upgraded_and_said_so() {
        let n = id("440304", "19420315", 122);
        let short = format!("{}{}", &n[..6], &n[8..17]);
        let (row, upgraded) =
            parse_evidence_row(&[&short, "bank_counter", "2026-11-20", "BC-9"], today()).unwrap();
        assert!(upgraded);
        assert_eq!(row.id_number, n);
    }

    #[test]
    fn a_broken_check_character_is_refused_without_showing_the_number() {
        let n = id("440304", "19420315", 122);
        let last = if n.ends_with('1') { '2' } else { '1' };
        let broken = format!("{}{last}", &n[..17]);
        let reason =
            parse_evidence_row(&[&broken, "face_app", "2026-11-20", ""], today()).unwrap_err();
        assert!(reason.contains("check character"), "{reason}");
        assert!(!reason.contains(&broken), "{reason}");
        assert!(reason.contains("440304********"), "{reason}");
    }

    #[test]
    fn unknown_event_types_impossible_dates_and_empty_ids_are_refused() {
        let n = id("440304", "19420315", 122);
        let cases: [([&str; 4], &str); 6] = [
            ([&n, "hospital", "2026-11-20", ""], "event_type 'hospital'"),
            (
                [&n, "face_app", "2026-02-30", ""],
                "not a real calendar date",
            ),
            ([&n, "face_app", "2026/11/20", ""], "YYYY-MM-DD"),
            ([&n, "face_app", "2026-12-01", ""], "in the future"),
            ([&n, "face_app", "1941-01-01", ""], "before the birth date"),
            (["", "face_app", "2026-11-20", ""], "id_number is empty"),
        ];
        for (fields, want) in cases {
            let reason = parse_evidence_row(&fields, today()).unwrap_err();
            assert!(reason.contains(want), "{fields:?}: {reason}");
        }
    }

    #[test]
    fn a_video_session_keeps_its_offset_and_gets_its_day_in_china() {
        let n = id("510104", "19381130", 57);
        let (row, _) = parse_video_row(
            &[&n, "2026-11-25T20:30:00Z", "passed", "op007", ""],
            today(),
        )
        .unwrap();
        assert_eq!(row.session_at, "2026-11-25T20:30:00Z");
        assert_eq!(row.session_utc, "2026-11-25T20:30:00Z");
        // 20:30 UTC is 04:30 the next morning in China.
        assert_eq!(
            row.session_date,
            NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
        );
        let (row, _) = parse_video_row(
            &[
                &n,
                "2026-11-26T09:30:00+08:00",
                "no_show",
                "op001",
                "电话无人接听",
            ],
            today(),
        )
        .unwrap();
        assert_eq!(row.session_at, "2026-11-26T09:30:00+08:00");
        assert_eq!(row.session_utc, "2026-11-26T01:30:00Z");
        assert_eq!(
            row.session_date,
            NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
        );
        assert_eq!(row.note, "电话无人接听");
    }

    #[test]
    fn session_times_need_an_offset_and_results_come_from_the_spec() {
        let n = id("510104", "19381130", 57);
        let cases: [([&str; 5], &str); 4] = [
            (
                [&n, "2026-11-26T09:30:00", "passed", "", ""],
                "no UTC offset",
            ),
            (
                [&n, "26/11/2026 09:30", "passed", "", ""],
                "not an ISO 8601 time",
            ),
            (
                [&n, "2026-11-26T09:30:00+08:00", "ok", "", ""],
                "result 'ok'",
            ),
            (
                [&n, "2026-11-28T09:30:00+08:00", "passed", "", ""],
                "in the future",
            ),
        ];
        for (fields, want) in cases {
            let reason = parse_video_row(&fields, today()).unwrap_err();
            assert!(reason.contains(want), "{fields:?}: {reason}");
        }
        for ok in ["2026-11-26T09:30+08:00", "2026-11-26T09:30:00.250+0800"] {
            assert!(parse_session_at(ok).is_ok(), "{ok}");
        }
    }
}
