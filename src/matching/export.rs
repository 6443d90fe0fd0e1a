//! The stored matches going out of vigil: the export `vigil matches export`
//! writes and the evaluation `vigil eval` prints, both over the verdicts
//! [`match_verdicts`] gives (each record carrying its match's score and
//! band). The report and the web pages read the same functions.
//!
//! Orchestration, like [`super::run`]: it reads the store and the truth
//! file; the pure core never imports it. It writes only to the writer it is
//! handed and prints nothing. The export's bytes are an interface (external
//! checkers read the CSV header and columns): change them only on purpose.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::eval::{EvalReport, Judged, TruthRow, evaluate, record_is_usable};
use super::rules::MatchRules;
use super::run::{MatchRunError, MatchVerdict, match_verdicts};
use crate::store::{Store, StoreError};

/// The header of the CSV export, exactly.
pub const CSV_HEADER: &str = "source,record_key,person_no,score,band";

/// How the matches are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// [`CSV_HEADER`], then one row per matched record, the score to two
    /// decimals.
    Csv,
    /// A pretty-printed array of objects that adds each record's own score
    /// and band, whether it was carried, the runner-up and the margin.
    Json,
}

/// Writes `verdicts` (as [`match_verdicts`] gives them) to `out`.
pub fn write_matches<W: Write + ?Sized>(
    out: &mut W,
    verdicts: &[MatchVerdict],
    format: ExportFormat,
) -> io::Result<()> {
    match format {
        ExportFormat::Csv => {
            writeln!(out, "{CSV_HEADER}")?;
            for m in verdicts {
                writeln!(
                    out,
                    "{},{},{},{:.2},{}",
                    csv_field(&m.source),
                    csv_field(&m.record_key),
                    csv_field(&m.person_no),
                    m.score,
                    m.band.as_str()
                )?;
            }
        }
        ExportFormat::Json => {
            let rows: Vec<_> = verdicts
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "source": m.source, "record_key": m.record_key,
                        "person_no": m.person_no, "score": m.score, "band": m.band,
                        "record_score": m.record_score, "record_band": m.record_band,
                        "carried": m.carried,
                        "runner_up": m.runner_up, "margin": m.margin,
                        "rules_version": m.rules_version,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Why the stored matches cannot be scored against a truth file.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("reading {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{}: line {line} is not valid CSV", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        #[source]
        source: csv::Error,
    },
    #[error(
        "{}: line {line} has {fields} fields; expected source,record_key,person_no,kind,corruptions",
        path.display()
    )]
    TooFewFields {
        path: PathBuf,
        line: usize,
        fields: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The verdicts cannot be judged (the matches were made under other
    /// rules than those given, say).
    #[error(transparent)]
    Verdicts(#[from] MatchRunError),
}

/// Precision and recall of the stored matches against `truth` (the
/// generator's `truth.csv`: source, record_key, person_no, kind, ...),
/// the verdicts judged by `rules`, which must be the rules they were made
/// with.
pub async fn evaluate_against_truth(
    store: &Store,
    truth: &Path,
    rules: &MatchRules,
) -> Result<EvalReport, EvalError> {
    let mut reader = csv::Reader::from_path(truth).map_err(|source| EvalError::Open {
        path: truth.to_path_buf(),
        source,
    })?;
    // Which stored records carry a usable ID or a name with a full birth
    // date (the subset issue 4 asks 99.9% recall of).
    let usable: HashSet<(String, String)> = store
        .load_match_records()
        .await?
        .into_iter()
        .filter(record_is_usable)
        .map(|r| (r.source, r.record_key))
        .collect();
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|source| EvalError::Line {
            path: truth.to_path_buf(),
            line,
            source,
        })?;
        if rec.len() < 4 {
            return Err(EvalError::TooFewFields {
                path: truth.to_path_buf(),
                line,
                fields: rec.len(),
            });
        }
        rows.push(TruthRow {
            source: rec[0].to_string(),
            record_key: rec[1].to_string(),
            person_no: Some(rec[2].to_string()).filter(|p| !p.is_empty()),
            kind: rec[3].to_string(),
            usable: usable.contains(&(rec[0].to_string(), rec[1].to_string())),
        });
    }
    let matches: Vec<Judged> = match_verdicts(store, rules)
        .await?
        .into_iter()
        .map(|m| Judged {
            source: m.source,
            record_key: m.record_key,
            person_no: m.person_no,
            band: m.band.as_str().to_string(),
            record_band: m.record_band,
        })
        .collect();
    Ok(evaluate(&matches, &rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Band;

    fn verdict(record_key: &str, score: f64, band: Band) -> MatchVerdict {
        MatchVerdict {
            source: "civil_affairs".into(),
            record_key: record_key.into(),
            person_no: "P1".into(),
            score,
            band,
            record_score: score,
            record_band: band.as_str().into(),
            carried: false,
            runner_up: None,
            margin: Some(3.25),
            rules_version: "2026.5-default".into(),
        }
    }

    fn written(verdicts: &[MatchVerdict], format: ExportFormat) -> String {
        let mut out = Vec::new();
        write_matches(&mut out, verdicts, format).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_csv_export_has_the_exact_header_and_quotes_only_what_needs_it() {
        let text = written(
            &[
                verdict("4403:2026-1", 31.456, Band::Auto),
                verdict("HOME,7:\"A\"", 12.0, Band::Review),
            ],
            ExportFormat::Csv,
        );
        assert_eq!(
            text,
            "source,record_key,person_no,score,band\n\
             civil_affairs,4403:2026-1,P1,31.46,auto\n\
             civil_affairs,\"HOME,7:\"\"A\"\"\",P1,12.00,review\n"
        );
    }

    #[test]
    fn the_json_export_is_a_pretty_array_ending_in_a_line_break() {
        let text = written(&[verdict("k1", 30.0, Band::Auto)], ExportFormat::Json);
        assert!(text.starts_with("[\n  {\n"), "{text}");
        assert!(text.ends_with("}\n]\n"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back[0]["record_band"], "auto");
        assert_eq!(back[0]["margin"], 3.25);
        assert_eq!(back[0]["carried"], false);
        assert_eq!(written(&[], ExportFormat::Json), "[]\n");
    }
}
