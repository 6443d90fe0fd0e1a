//! Transport: a directory of CSV files (civil affairs, spec §3).

use std::path::Path;
use std::sync::Arc;

use super::definition::SourceEncoding;
use super::normalise::{Columns, sha256_hex};

use super::Ctx;
use super::classify::file_rank;
use super::errors::ConnectorError;
use super::pipeline::{CsvLine, CsvText, Pipeline, Raw, take_raws};
use crate::store::deaths::Watermark;

pub(super) async fn pull_dir(ctx: &mut Ctx<'_>) -> Result<(), ConnectorError> {
    let def = ctx.def;
    let dir = ctx.required(def.dir.clone(), "dir")?;
    let io = |path: &Path, error| ConnectorError::Io {
        source_name: def.name.clone(),
        path: path.to_path_buf(),
        error,
    };
    let mut names = Vec::new();
    let mut entries = tokio::fs::read_dir(&dir).await.map_err(|e| io(&dir, e))?;
    while let Some(e) = entries.next_entry().await.map_err(|e| io(&dir, e))? {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(&def.files.suffix) && e.file_type().await.is_ok_and(|t| t.is_file()) {
            names.push(name);
        }
    }
    // Corrections after the files they correct, whatever the other names.
    names.sort_by_key(|n| file_rank(n));
    let taken = ctx.store.taken_files(&def.name).await?;
    // One pipeline across files: a file is normalised while the previous
    // one commits.
    let mut pipe = Pipeline::default();
    let mut required: Vec<String> = def.record.key.clone();
    required.push(def.fields.name.clone());
    required.push(def.fields.death_date.clone());
    let required = Arc::new(required);
    // The next file is read, hashed, decoded and split on a blocking thread
    // while this one is normalised and committed (hashing a file on the
    // async thread that commits took a tenth of that thread's time).
    type Job = tokio::task::JoinHandle<std::io::Result<Option<(String, ParsedCsv)>>>;
    let mut reading: Option<(String, Job)> = None;
    for name in names.into_iter().map(Some).chain(std::iter::once(None)) {
        let next = name.map(|name| {
            let path = dir.join(&name);
            let taken = taken.get(&name).cloned();
            let (encoding, required) = (def.encoding, required.clone());
            let job = tokio::task::spawn_blocking(move || {
                let bytes = std::fs::read(&path)?;
                let sha = sha256_hex(&bytes);
                if taken.as_ref() == Some(&sha) {
                    return Ok(None);
                }
                Ok(Some((sha, parse_csv(encoding, &required, &bytes))))
            });
            (name, job)
        });
        if let Some((name, job)) = std::mem::replace(&mut reading, next) {
            let read = job.await.map_err(|e| ConnectorError::Internal {
                source_name: def.name.clone(),
                message: e.to_string(),
            })?;
            match read.map_err(|e| io(&dir.join(&name), e))? {
                None => ctx.counts.files_unchanged += 1,
                Some((sha, parsed)) => take_csv(ctx, &mut pipe, &name, parsed, sha).await?,
            }
        }
    }
    pipe.finish(ctx).await?;
    Ok(())
}

/// A CSV file split into rows, off the async threads.
pub(super) struct ParsedCsv {
    /// Required columns the header lacks (then nothing else is parsed, and
    /// `csv.text` is kept only to quarantine the file whole).
    pub(super) missing: Vec<String>,
    pub(super) csv: CsvText,
    pub(super) rows: Vec<CsvLine>,
    /// Rows the CSV reader could not split: line, reason, raw text.
    pub(super) bad: Vec<(u64, String, String)>,
}

/// Decodes and splits one CSV file (pure; runs on a blocking thread).
pub(super) fn parse_csv(encoding: SourceEncoding, required: &[String], bytes: &[u8]) -> ParsedCsv {
    let text = match encoding {
        SourceEncoding::Gbk => encoding_rs::GBK.decode_without_bom_handling(bytes).0,
        SourceEncoding::Utf8 => {
            String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
        }
    }
    .into_owned();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let columns: Columns = match reader.headers() {
        Ok(h) => h
            .iter()
            .enumerate()
            .map(|(i, c)| (c.trim().to_string(), i))
            .collect(),
        Err(_) => Columns::default(),
    };
    let missing: Vec<String> = required
        .iter()
        .filter(|c| !columns.contains_key(c.as_str()))
        .cloned()
        .collect();
    let mut csv = CsvText {
        columns,
        ..CsvText::default()
    };
    if !missing.is_empty() {
        csv.text = text;
        return ParsedCsv {
            missing,
            csv,
            rows: Vec::new(),
            bad: Vec::new(),
        };
    }
    /// A row read, before its end (the next row's start) is known.
    enum Read {
        Row(CsvLine),
        Blank,
        Bad(String),
    }
    // Positions first, so each row's raw text is the exact line it came from.
    let mut read: Vec<(u64, usize, Read)> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let pos = reader.position().clone();
        let (line, start) = (pos.line(), pos.byte() as usize);
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) if record.iter().all(|f| f.trim().is_empty()) => {
                read.push((line, start, Read::Blank))
            }
            Ok(true) => {
                let (from, first) = (csv.fields.len(), csv.ends.len());
                for f in &record {
                    csv.fields.push_str(f);
                    csv.ends.push(csv.fields.len() - from);
                }
                let row = CsvLine {
                    line,
                    raw: (start, start),
                    fields: (from, csv.fields.len()),
                    ends: (first, csv.ends.len()),
                };
                read.push((line, start, Read::Row(row)));
            }
            Err(e) => read.push((line, start, Read::Bad(e.to_string()))),
        }
    }
    drop(reader);
    let ends: Vec<usize> = read
        .iter()
        .skip(1)
        .map(|r| r.1)
        .chain(std::iter::once(text.len()))
        .collect();
    let mut rows = Vec::with_capacity(read.len());
    let mut bad = Vec::new();
    for ((line, start, r), end) in read.into_iter().zip(ends) {
        let raw = text
            .get(start..end)
            .unwrap_or_default()
            .trim_end_matches(['\r', '\n']);
        match r {
            Read::Blank => {}
            Read::Row(mut row) => {
                // An out-of-range span reads as empty, as `get` above.
                row.raw = match text.get(start..end) {
                    Some(_) => (start, start + raw.len()),
                    None => (0, 0),
                };
                rows.push(row);
            }
            Read::Bad(e) => bad.push((
                line,
                format!("line {line} is not valid CSV: {e}"),
                raw.to_string(),
            )),
        }
    }
    csv.text = text;
    ParsedCsv {
        missing,
        csv,
        rows,
        bad,
    }
}

/// Stores one parsed CSV file; the last batch marks it taken.
pub(super) async fn take_csv(
    ctx: &mut Ctx<'_>,
    pipe: &mut Pipeline,
    name: &str,
    parsed: ParsedCsv,
    sha: String,
) -> Result<(), ConnectorError> {
    if !parsed.missing.is_empty() {
        let item = ctx.quarantine_raw(
            name,
            Some(1),
            format!(
                "the header lacks column(s) {}; the whole file is quarantined",
                parsed.missing.join(", ")
            ),
            &parsed.csv.text,
        );
        let mark = Watermark::File {
            name: name.to_string(),
            sha256: sha,
            records: 0,
        };
        ctx.commit(vec![item], vec![mark]).await?;
        ctx.counts.files_taken += 1;
        return Ok(());
    }
    // Rows the CSV reader could not split go in with the first batch.
    if !parsed.bad.is_empty() {
        let bad = parsed
            .bad
            .iter()
            .map(|(line, reason, raw)| ctx.quarantine_raw(name, Some(*line), reason.clone(), raw))
            .collect();
        ctx.commit(bad, Vec::new()).await?;
    }
    let records = parsed.rows.len() as u64;
    let raws = parsed.rows.into_iter().map(Raw::Csv).collect();
    take_raws(ctx, pipe, name, raws, Arc::new(parsed.csv), sha, records).await
}
