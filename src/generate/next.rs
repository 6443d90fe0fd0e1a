//! A later export of the same roster: what the core system would send a
//! month on. Some people changed bank account, amount, residence or status,
//! a few are gone, and the file ends with the damage real exports carry
//! (an impossible date, a formatted amount, a mistyped ID, a short row and a
//! truncated last line). The demo imports it after the first export, so the
//! history, the missing flags and the quarantine have something to show.
//!
//! Deterministic in the seed, streamed row by row like the roster itself.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::GenerateError;

/// What the later export differs in, so the demo can say what to expect.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct NextExportSummary {
    pub rows: u64,
    pub bank_account_changed: u64,
    pub amount_changed: u64,
    pub residence_changed: u64,
    pub status_changed: u64,
    pub dropped: u64,
    /// Damaged rows appended at the end (each must be quarantined).
    pub bad_rows: u64,
}

/// Column positions in the generator's roster header (spec §1 order).
const BANK: usize = 9;
const AMOUNT: usize = 8;
const RESIDENCE: usize = 6;
const STATUS: usize = 11;
const BIRTH: usize = 4;
const ID: usize = 2;

/// Writes `out`, the export after `roster`.
pub fn next_export(
    roster: &Path,
    out: &Path,
    seed: u64,
) -> Result<NextExportSummary, GenerateError> {
    let read_err = |source| GenerateError::Write {
        path: roster.to_path_buf(),
        source,
    };
    let write_err = |source| GenerateError::Write {
        path: out.to_path_buf(),
        source,
    };
    let input = BufReader::with_capacity(1 << 20, File::open(roster).map_err(read_err)?);
    let mut w = BufWriter::with_capacity(1 << 20, File::create(out).map_err(write_err)?);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6e65_7874);
    let mut s = NextExportSummary::default();
    let mut sample: Option<Vec<String>> = None;
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(read_err)?;
        if i == 0 {
            writeln!(w, "{line}").map_err(write_err)?;
            continue;
        }
        let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
        if f.len() != 14 {
            writeln!(w, "{line}").map_err(write_err)?;
            continue;
        }
        let roll: f64 = rng.random();
        if roll < 0.001 {
            s.dropped += 1;
            continue;
        } else if roll < 0.006 {
            f[BANK] = format!("6217{:015}", rng.random_range(0..1_000_000_000_000_000u64));
            s.bank_account_changed += 1;
        } else if roll < 0.009 {
            if let Some((yuan, fen)) = f[AMOUNT].split_once('.')
                && let Ok(y) = yuan.parse::<u64>()
            {
                f[AMOUNT] = format!("{}.{fen}", y + y / 50);
                s.amount_changed += 1;
            }
        } else if roll < 0.011 {
            f[RESIDENCE] = if f[RESIDENCE].starts_with("51") {
                "440304"
            } else {
                "510104"
            }
            .to_string();
            s.residence_changed += 1;
        } else if roll < 0.012 && f[STATUS] == "active" {
            f[STATUS] = "suspended".to_string();
            s.status_changed += 1;
        }
        if sample.is_none() && f[ID].len() == 18 {
            sample = Some(f.clone());
        }
        writeln!(w, "{}", f.join(",")).map_err(write_err)?;
        s.rows += 1;
    }
    if let Some(base) = sample {
        let bad = |mutate: &dyn Fn(&mut Vec<String>), n: u64| {
            let mut f = base.clone();
            f[0] = format!("9{:015}", 900_000_000 + n);
            mutate(&mut f);
            f.join(",")
        };
        let rows = [
            bad(&|f| f[BIRTH] = "1942-02-30".to_string(), 1),
            bad(&|f| f[AMOUNT] = "\"3,268.5\"".to_string(), 2),
            bad(
                &|f| {
                    let mut id: Vec<u8> = f[ID].bytes().collect();
                    id[17] = if id[17] == b'0' { b'1' } else { b'0' };
                    f[ID] = String::from_utf8(id).unwrap_or_default();
                },
                3,
            ),
            bad(&|f| f.truncate(9), 4),
        ];
        for r in &rows {
            writeln!(w, "{r}").map_err(write_err)?;
        }
        // A last line cut off mid-row, with no newline: an interrupted export.
        let cut = bad(&|_| {}, 5);
        write!(w, "{}", &cut[..cut.len() / 2]).map_err(write_err)?;
        s.bad_rows = rows.len() as u64 + 1;
    }
    w.flush().map_err(write_err)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_export_is_deterministic_and_ends_with_damaged_rows() {
        let dir = tempfile::tempdir().unwrap();
        let opts = super::super::GenerateOptions::new(
            3000,
            5,
            dir.path().to_path_buf(),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        );
        super::super::generate(&opts, &|_| {}).unwrap();
        let roster = dir.path().join("roster.csv");
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        let sa = next_export(&roster, &a, 9).unwrap();
        let sb = next_export(&roster, &b, 9).unwrap();
        assert_eq!(sa, sb);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(sa.bad_rows, 5);
        assert!(sa.bank_account_changed > 0);
        let text = std::fs::read_to_string(&a).unwrap();
        assert!(text.contains("1942-02-30") && text.contains("\"3,268.5\""));
        assert!(!text.ends_with('\n'));
    }
}
