//! The synthetic data generator: a pensioner roster and every source the
//! engine reads (death records from public security, civil affairs and
//! funeral homes; evidence of life; video results; the payment ledger), in
//! the exact formats of spec/sources.md, with the damage real data has, and a
//! `truth.csv` saying what every death-source record really is. It exists so
//! that the engine can be tested, benchmarked and demonstrated at realistic
//! size without real people's data.
//!
//! Deterministic: the same options give byte-identical files whatever the
//! number of threads. The roster is made in fixed-size chunks, each from its
//! own random stream, generated in parallel and written in chunk order; the
//! death records come from one stream after the roster. It never prints: the
//! caller gets progress through a callback and counts in the summary.

mod corrupt;
mod deaths;
mod fmt;
mod names;
mod next;
mod regions;
mod roster;
mod sample;
mod sources;
#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use chrono::NaiveDate;
use rayon::prelude::*;
use serde::Serialize;

pub use next::{NextExportSummary, next_export};
use regions::Regions;
use roster::{ChunkOut, Fate, Pensioner, Plan};
use sample::FastSet;

pub const ROSTER_FILE: &str = "roster.csv";
pub const PAYMENTS_FILE: &str = "payments.csv";
pub const EVIDENCE_FILE: &str = "evidence_of_life.csv";
pub const VIDEO_FILE: &str = "video_results.csv";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const PUBLIC_SECURITY_FILE: &str = sources::PUBLIC_SECURITY_FILE;
pub const CIVIL_AFFAIRS_DIR: &str = sources::CIVIL_AFFAIRS_DIR;
pub const FUNERAL_DIR: &str = sources::FUNERAL_DIR;
pub const TRUTH_FILE: &str = sources::TRUTH_FILE;

/// What to generate.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateOptions {
    /// Rows in the roster.
    pub pensioners: u64,
    /// Same seed, same files.
    pub seed: u64,
    /// Not in the manifest: the same data written elsewhere is the same data.
    #[serde(skip)]
    pub out_dir: PathBuf,
    /// The date the export stands for; ages and death dates are relative to it.
    pub as_of: NaiveDate,
    /// Share of pensioners who died in the 60 days before `as_of`.
    pub death_rate: f64,
    /// Deaths of people not in the roster, as a share of pensioner deaths.
    pub outsider_deaths: f64,
    /// Living pensioners wrongly reported dead by one source (a registration
    /// made on the wrong person), as a share of pensioner deaths.
    pub false_deaths: f64,
}

impl GenerateOptions {
    pub fn new(pensioners: u64, seed: u64, out_dir: PathBuf, as_of: NaiveDate) -> Self {
        GenerateOptions {
            pensioners,
            seed,
            out_dir,
            as_of,
            death_rate: 0.01,
            outsider_deaths: 1.0,
            false_deaths: 0.005,
        }
    }
}

/// What was generated: counts overall and per file.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateSummary {
    pub pensioners: u64,
    /// Pensioners who died in the window (still active in the roster).
    pub deaths: u64,
    /// Deaths of non-pensioners, hard negatives included.
    pub outsider_deaths: u64,
    /// Outsider deaths built to resemble a living pensioner.
    pub hard_negatives: u64,
    /// Living pensioners reported dead by one source.
    pub false_deaths: u64,
    /// Non-death household cancellations (emigration, moving away, ...).
    pub non_deaths: u64,
    pub civil_affairs_files: u64,
    pub funeral_files: u64,
    /// Paths relative to `out_dir` with their data rows (lines for JSON
    /// Lines; for the civil-affairs and funeral folders, all their rows).
    pub files: Vec<(PathBuf, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: a generated value cannot be encoded in GBK (a generator bug)")]
    Encoding { path: PathBuf },
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    #[error("the region table is empty: nothing to build ID numbers from")]
    NoRegions,
    #[error(
        "ran out of ID sequence numbers for one region, birth date and sex; use a larger region table"
    )]
    IdSpaceExhausted,
}

/// Chunks generated together before their rows go to the writer. A few per
/// thread keeps both cores busy while bounding memory to a few batches.
const CHUNKS_PER_BATCH_PER_THREAD: usize = 2;

/// Generates every file into `opts.out_dir`. `progress` gets the number of
/// pensioners written so far, after each chunk.
pub fn generate(
    opts: &GenerateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<GenerateSummary, GenerateError> {
    validate(opts)?;
    let regions = Regions::new().ok_or(GenerateError::NoRegions)?;
    let plan = Plan::new(
        opts.seed,
        opts.pensioners,
        opts.as_of,
        opts.death_rate,
        opts.outsider_deaths,
        opts.false_deaths,
        regions,
    );
    let out = &opts.out_dir;
    fs::create_dir_all(out).map_err(|source| GenerateError::Write {
        path: out.clone(),
        source,
    })?;

    let (counts, featured, mut taken) = write_roster_files(&plan, out, progress)?;
    let records = deaths::records(&plan, opts.outsider_deaths, &featured, &mut taken);
    drop(taken);
    let summary_counts = (
        records.pensioner_deaths,
        records.outsider_deaths,
        records.hard_negatives,
        records.false_deaths,
        records.non_deaths,
    );
    let written = sources::write(out, opts.seed, records)?;

    let files = vec![
        (PathBuf::from(ROSTER_FILE), counts.roster),
        (PathBuf::from(PAYMENTS_FILE), counts.payments),
        (PathBuf::from(EVIDENCE_FILE), counts.evidence),
        (PathBuf::from(VIDEO_FILE), counts.video),
        (
            PathBuf::from(PUBLIC_SECURITY_FILE),
            written.public_security_lines,
        ),
        (PathBuf::from(CIVIL_AFFAIRS_DIR), written.civil_affairs_rows),
        (PathBuf::from(FUNERAL_DIR), written.funeral_records),
        (PathBuf::from(TRUTH_FILE), written.truth_rows),
    ];
    let summary = GenerateSummary {
        pensioners: opts.pensioners,
        deaths: summary_counts.0,
        outsider_deaths: summary_counts.1,
        hard_negatives: summary_counts.2,
        false_deaths: summary_counts.3,
        non_deaths: summary_counts.4,
        civil_affairs_files: written.civil_affairs_files,
        funeral_files: written.funeral_files,
        files,
    };
    write_manifest(out, opts, &summary)?;
    Ok(summary)
}

fn validate(opts: &GenerateOptions) -> Result<(), GenerateError> {
    use chrono::Datelike;
    // Pensioners are born as_of-106 years at the earliest: keep that after
    // 1900 (15-digit IDs imply 19xx) and the person number within 16 digits.
    if !(2006..=2099).contains(&opts.as_of.year()) {
        return Err(GenerateError::InvalidOptions(format!(
            "as_of {} must be in 2006..=2099",
            opts.as_of
        )));
    }
    if !(0.0..=0.2).contains(&opts.death_rate) {
        return Err(GenerateError::InvalidOptions(format!(
            "death_rate {} must be between 0 and 0.2",
            opts.death_rate
        )));
    }
    if !(0.0..=10.0).contains(&opts.outsider_deaths) {
        return Err(GenerateError::InvalidOptions(format!(
            "outsider_deaths {} must be between 0 and 10",
            opts.outsider_deaths
        )));
    }
    if !(0.0..=0.5).contains(&opts.false_deaths) {
        return Err(GenerateError::InvalidOptions(format!(
            "false_deaths {} must be between 0 and 0.5",
            opts.false_deaths
        )));
    }
    if opts.pensioners >= 10_000_000_000 {
        return Err(GenerateError::InvalidOptions(
            "at most 9 999 999 999 pensioners".into(),
        ));
    }
    Ok(())
}

#[derive(Default)]
struct RowCounts {
    roster: u64,
    payments: u64,
    evidence: u64,
    video: u64,
}

struct Outputs {
    files: Vec<(PathBuf, BufWriter<File>)>,
}

impl Outputs {
    fn create(out: &Path) -> Result<Self, GenerateError> {
        let mut files = Vec::new();
        for (name, header) in [
            (ROSTER_FILE, roster::ROSTER_HEADER),
            (PAYMENTS_FILE, roster::PAYMENTS_HEADER),
            (EVIDENCE_FILE, roster::EVIDENCE_HEADER),
            (VIDEO_FILE, roster::VIDEO_HEADER),
        ] {
            let path = out.join(name);
            let file = File::create(&path).map_err(|source| GenerateError::Write {
                path: path.clone(),
                source,
            })?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            w.write_all(header.as_bytes())
                .map_err(|source| GenerateError::Write {
                    path: path.clone(),
                    source,
                })?;
            files.push((path, w));
        }
        Ok(Outputs { files })
    }

    fn write_chunk(&mut self, c: &ChunkOut) -> Result<(), GenerateError> {
        for ((path, w), bytes) in
            self.files
                .iter_mut()
                .zip([&c.roster, &c.payments, &c.evidence, &c.video])
        {
            w.write_all(bytes).map_err(|source| GenerateError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), GenerateError> {
        for (path, w) in self.files {
            w.into_inner()
                .map_err(|e| GenerateError::Write {
                    path: path.clone(),
                    source: e.into_error(),
                })?
                .sync_all()
                .map_err(|source| GenerateError::Write { path, source })?;
        }
        Ok(())
    }
}

/// The roster pass. A writer thread takes finished batches in order while
/// the next batch is generated, so disk and CPU overlap. Returns the row
/// counts, the pensioners with a fate worth a death record, and every
/// roster ID (outsiders must not reuse one).
fn write_roster_files(
    plan: &Plan,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(RowCounts, Vec<Pensioner>, FastSet), GenerateError> {
    let chunks = plan.chunks();
    let batch = (rayon::current_num_threads() * CHUNKS_PER_BATCH_PER_THREAD).max(1) as u64;
    let mut taken = FastSet::default();
    taken.reserve(plan.pensioners as usize + plan.pensioners as usize / 20);
    let mut featured = Vec::new();
    let outputs = Outputs::create(out)?;

    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Vec<ChunkOut>>(1);
        let writer = scope.spawn(move || -> Result<RowCounts, GenerateError> {
            let mut outputs = outputs;
            let mut counts = RowCounts::default();
            for batch in rx {
                for c in &batch {
                    outputs.write_chunk(c)?;
                    counts.roster += c.people;
                    counts.payments += c.payment_rows;
                    counts.evidence += c.evidence_rows;
                    counts.video += c.video_rows;
                    progress(counts.roster);
                }
            }
            outputs.finish()?;
            Ok(counts)
        });

        let mut generated: Result<(), GenerateError> = Ok(());
        let mut start = 0;
        while start < chunks {
            let end = (start + batch).min(chunks);
            let mut people: Vec<Vec<Pensioner>> = (start..end)
                .into_par_iter()
                .map(|c| roster::people(plan, c))
                .collect();
            for chunk in &mut people {
                if !roster::make_ids_unique(chunk, &mut taken) {
                    generated = Err(GenerateError::IdSpaceExhausted);
                    break;
                }
                featured.extend(chunk.iter().filter(|p| p.fate != Fate::Alive).cloned());
            }
            if generated.is_err() {
                break;
            }
            let rows: Vec<ChunkOut> = people
                .par_iter()
                .enumerate()
                .map(|(k, chunk)| roster::rows(plan, start + k as u64, chunk))
                .collect();
            if tx.send(rows).is_err() {
                // The writer stopped on an error; it reports it below.
                break;
            }
            start = end;
        }
        drop(tx);
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        generated?;
        written
    })
    .map(|counts| (counts, featured, taken))
}

#[derive(Serialize)]
struct Manifest<'a> {
    generator: &'static str,
    options: &'a GenerateOptions,
    summary: &'a GenerateSummary,
}

fn write_manifest(
    out: &Path,
    opts: &GenerateOptions,
    summary: &GenerateSummary,
) -> Result<(), GenerateError> {
    let path = out.join(MANIFEST_FILE);
    let manifest = Manifest {
        generator: concat!("vigil-generate ", env!("CARGO_PKG_VERSION")),
        options: opts,
        summary,
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| GenerateError::Write {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    bytes.push(b'\n');
    sources::write_file(&path, &bytes)
}
