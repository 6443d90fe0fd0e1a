//! The normalising pipeline: source records normalised on blocking threads
//! while the batch before is committed, in order.

use std::sync::Arc;

use chrono::NaiveDate;

use super::definition::Definition;
use super::normalise::{Columns, CsvRow, Normalised, Origin, normalise};

use super::errors::ConnectorError;
use super::{Ctx, FILE_BATCH};
use crate::store::deaths::Watermark;
use crate::store::now_utc_text;
use crate::store::quarantine::QuarantineEntry;

/// One source record before normalisation.
pub(super) enum Raw {
    /// A JSON object's text, with its line in a JSON Lines file.
    Json(String, Option<u64>),
    /// A row of the CSV file in [`Work::csv`].
    Csv(CsvLine),
}

/// Where one CSV row lies in its file's [`CsvText`].
#[derive(Clone, Copy)]
pub(super) struct CsvLine {
    pub(super) line: u64,
    /// Its exact text in [`CsvText::text`], line break excluded.
    pub(super) raw: (usize, usize),
    /// Its fields in [`CsvText::fields`].
    pub(super) fields: (usize, usize),
    /// Its field ends in [`CsvText::ends`].
    pub(super) ends: (usize, usize),
}

/// A decoded CSV file whose rows are [`CsvLine`]s: one buffer for the text,
/// one for all the fields, instead of a record and a line copied per row.
#[derive(Default)]
pub(super) struct CsvText {
    pub(super) columns: Columns,
    pub(super) text: String,
    pub(super) fields: String,
    /// The end of each field, counted from the start of its row's fields.
    pub(super) ends: Vec<usize>,
}

/// What normalising a batch needs, owned, so it can run on blocking threads.
pub(super) struct Work {
    pub(super) def: Arc<Definition>,
    /// The CSV file the batch's rows come from (empty for JSON).
    pub(super) csv: Arc<CsvText>,
    pub(super) origin: Arc<str>,
    pub(super) received_at: Arc<str>,
    pub(super) today: NaiveDate,
}

impl Work {
    pub(super) fn one(&self, raw: Raw) -> Normalised {
        let def = &*self.def;
        let quarantine = |line: Option<u64>, reason: String, raw: &str| {
            Normalised::Quarantined(Box::new(QuarantineEntry {
                source: def.name.clone(),
                file: Some(self.origin.to_string()),
                line,
                record_key: None,
                reason,
                raw: raw.to_string(),
            }))
        };
        match raw {
            Raw::Json(text, line) => {
                let at = Origin {
                    origin: &self.origin,
                    line,
                    received_at: &self.received_at,
                };
                match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text) {
                    Ok(map) => normalise(def, &map, &text, &at, self.today),
                    Err(e) => {
                        let reason = match line {
                            Some(n) => format!("line {n} is not a JSON object: {e}"),
                            None => format!("the record is not a JSON object: {e}"),
                        };
                        quarantine(line, reason, &text)
                    }
                }
            }
            Raw::Csv(l) => {
                let at = Origin {
                    origin: &self.origin,
                    line: Some(l.line),
                    received_at: &self.received_at,
                };
                let csv = &*self.csv;
                let row = CsvRow {
                    columns: &csv.columns,
                    fields: &csv.fields[l.fields.0..l.fields.1],
                    ends: &csv.ends[l.ends.0..l.ends.1],
                };
                normalise(def, &row, &csv.text[l.raw.0..l.raw.1], &at, self.today)
            }
        }
    }

    /// Normalises `raws` on a blocking thread, so the async threads keep
    /// fetching and committing meanwhile. JSON records (parsed here, the
    /// heavier work) are spread over rayon's threads; CSV rows, already
    /// split by the file's own blocking thread, are normalised in order on
    /// this one: with the commit on another thread that fills two cores,
    /// and on a shared two-core machine rayon's extra threads cost more in
    /// switching than they gained (1M rows: 7.3-9.0 CPU s instead of
    /// 9.5-9.6, and no slower).
    pub(super) fn spawn(self, raws: Vec<Raw>) -> tokio::task::JoinHandle<Vec<Normalised>> {
        tokio::task::spawn_blocking(move || {
            use rayon::prelude::*;
            if matches!(raws.first(), Some(Raw::Csv(_))) {
                raws.into_iter().map(|r| self.one(r)).collect()
            } else {
                raws.into_par_iter().map(|r| self.one(r)).collect()
            }
        })
    }
}

/// Commits batch k while batch k+1 is being normalised. Batches are
/// committed in order, each with its own watermarks, so the overlap changes
/// nothing about what a crash can leave behind.
#[derive(Default)]
pub(super) struct Pipeline {
    pub(super) pending: Option<(tokio::task::JoinHandle<Vec<Normalised>>, Vec<Watermark>)>,
}

impl Pipeline {
    pub(super) async fn push(
        &mut self,
        ctx: &mut Ctx<'_>,
        job: tokio::task::JoinHandle<Vec<Normalised>>,
        watermarks: Vec<Watermark>,
    ) -> Result<(), ConnectorError> {
        let previous = self.pending.replace((job, watermarks));
        if let Some((job, watermarks)) = previous {
            ctx.commit_job(job, watermarks).await?;
        }
        Ok(())
    }

    pub(super) async fn finish(&mut self, ctx: &mut Ctx<'_>) -> Result<(), ConnectorError> {
        if let Some((job, watermarks)) = self.pending.take() {
            ctx.commit_job(job, watermarks).await?;
        }
        Ok(())
    }
}

impl Ctx<'_> {
    pub(super) async fn commit_job(
        &mut self,
        job: tokio::task::JoinHandle<Vec<Normalised>>,
        watermarks: Vec<Watermark>,
    ) -> Result<(), ConnectorError> {
        let items = job.await.map_err(|e| ConnectorError::Internal {
            source_name: self.def.name.clone(),
            message: e.to_string(),
        })?;
        self.commit(items, watermarks).await
    }

    pub(super) fn work(&self, origin: &str, csv: Arc<CsvText>) -> Work {
        Work {
            def: self.shared.clone(),
            csv,
            origin: Arc::from(origin),
            received_at: Arc::from(now_utc_text().as_str()),
            today: self.today,
        }
    }
}

/// Normalises and commits the records of one file in batches; the last
/// batch marks the file taken.
pub(super) async fn take_raws(
    ctx: &mut Ctx<'_>,
    pipe: &mut Pipeline,
    name: &str,
    raws: Vec<Raw>,
    csv: Arc<CsvText>,
    sha: String,
    records: u64,
) -> Result<(), ConnectorError> {
    let mut raws = raws.into_iter().peekable();
    loop {
        let chunk: Vec<Raw> = raws.by_ref().take(FILE_BATCH).collect();
        let last = raws.peek().is_none();
        let watermarks = if last {
            vec![Watermark::File {
                name: name.to_string(),
                sha256: sha.clone(),
                records,
            }]
        } else {
            Vec::new()
        };
        let job = ctx.work(name, csv.clone()).spawn(chunk);
        pipe.push(ctx, job, watermarks).await?;
        if last {
            break;
        }
    }
    ctx.counts.files_taken += 1;
    Ok(())
}
