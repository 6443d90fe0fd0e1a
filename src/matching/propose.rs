//! Proposing trained rules: the I/O edge of [`super::train`]. Loads the
//! active roster and the stored death records, trains (u from random roster
//! pairs, m by EM over the candidate pairs blocking proposes), and writes
//! the proposed rules beside the rules file in use, marked as a proposal
//! with the date it was trained.
//!
//! It must never write over the rules in use: adopting a proposal is a
//! person's decision, made by copying the file after reading it. It reads
//! no clock (the date comes in) and prints nothing.

use std::io;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Serialize;

use super::blocking::RosterIndex;
use super::compare::{BirthLevel, IdLevel, NameLevel, RegionLevel, SexLevel};
use super::rules::{MatchRules, RulesError};
use super::train::{TrainingOptions, TrainingReport, train};
use crate::audit;
use crate::store::{Store, StoreError};

/// Where the rules are read from when no file is named.
pub const DEFAULT_RULES_PATH: &str = "rules/matching.toml";

#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the trained rules are not valid: {0}")]
    Rules(#[from] RulesError),
    #[error(
        "{path} is where the rules in use are read from: a proposal is never written there. \
         Choose another --out (default: {default} beside it)"
    )]
    WouldOverwrite { path: PathBuf, default: PathBuf },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "nothing to train on: {persons} active pensioner(s) and {records} death record(s) are \
         stored; import a roster (`vigil roster import`) and pull death data (`vigil pull`) first"
    )]
    NoData { persons: usize, records: usize },
    #[error("training stopped unexpectedly: {0}")]
    Worker(String),
}

#[derive(Debug, Clone)]
pub struct ProposeOptions {
    /// The rules file in use; `None` when the built-in rules are in use.
    pub rules_path: Option<PathBuf>,
    /// Where to write; default [`proposed_path`] of the rules file.
    pub out: Option<PathBuf>,
    pub training: TrainingOptions,
    /// The day of training, for the version and the file's header.
    pub date: NaiveDate,
    /// Who trained, for the audit log.
    pub actor: String,
}

/// One comparison level, before and after training.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelChange {
    pub field: &'static str,
    pub level: &'static str,
    /// Estimated share of random pairs of different people at this level.
    pub u: f64,
    /// Estimated share of true pairs at this level.
    pub m: f64,
    /// log2(m/u) in the rules in use.
    pub old_weight: f64,
    /// log2(m/u) proposed (after the monotonicity guard and rounding).
    pub new_weight: f64,
    /// `missing` levels keep their weight: how often a field is missing
    /// says how a source is filled, not who the person is.
    pub trained: bool,
}

/// What `propose_rules` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    pub path: PathBuf,
    /// The proposal replaced an earlier proposal at the same path.
    pub replaced_earlier: bool,
    pub old_version: String,
    pub version: String,
    pub persons: usize,
    pub records: usize,
    pub random_pairs: usize,
    pub candidate_pairs: usize,
    pub iterations: usize,
    /// Share of candidate pairs EM believes to be matches.
    pub match_share: f64,
    pub levels: Vec<LevelChange>,
    #[serde(skip)]
    pub rules: MatchRules,
}

/// `rules/matching.toml` → `rules/matching.proposed.toml`.
pub fn proposed_path(rules_path: &Path) -> PathBuf {
    let stem = rules_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "matching".to_string());
    rules_path.with_file_name(format!("{stem}.proposed.toml"))
}

/// The same file, whether or not the paths are spelled alike.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

/// `2026.1-default` or `2026.1-default-trained-2026-10-01` →
/// `2026.1-default-trained-2026-11-27`.
pub fn trained_version(version: &str, date: NaiveDate) -> String {
    let base = version.find("-trained").map_or(version, |i| &version[..i]);
    format!("{base}-trained-{date}")
}

/// Rounds every trained weight to hundredths: the file is read by people,
/// and no weight is known better than that.
fn round_weights(r: &mut MatchRules) {
    let round = |x: &mut f64| *x = (*x * 100.0).round() / 100.0;
    for l in IdLevel::ALL {
        if l != IdLevel::Missing {
            round(l.weight_mut(r));
        }
    }
    for l in NameLevel::ALL {
        if l != NameLevel::Missing {
            round(l.weight_mut(r));
        }
    }
    for l in BirthLevel::ALL {
        if l != BirthLevel::Missing
            && let Some(x) = l.weight_mut(r)
        {
            round(x);
        }
    }
    for l in SexLevel::ALL {
        if l != SexLevel::Missing
            && let Some(x) = l.weight_mut(r)
        {
            round(x);
        }
    }
    for l in RegionLevel::ALL {
        if l != RegionLevel::Missing {
            round(l.weight_mut(r));
        }
    }
}

/// Every level's u, m and weight before and after, in waterfall order.
/// `implied_by_id` levels carry no weight of their own and are left out.
pub fn level_changes(report: &TrainingReport, old: &MatchRules) -> Vec<LevelChange> {
    let new = &report.rules;
    let mut out = Vec::new();
    let mut push = |field: &'static str,
                    f: usize,
                    l: usize,
                    level: &'static str,
                    old_w: f64,
                    new_w: f64,
                    missing: bool| {
        out.push(LevelChange {
            field,
            level,
            u: report.u.0[f][l],
            m: report.m.0[f][l],
            old_weight: old_w,
            new_weight: new_w,
            trained: !missing,
        });
    };
    for (i, l) in IdLevel::ALL.iter().enumerate() {
        push(
            "id",
            0,
            i,
            l.as_str(),
            l.weight(old),
            l.weight(new),
            *l == IdLevel::Missing,
        );
    }
    for (i, l) in NameLevel::ALL.iter().enumerate() {
        push(
            "name",
            1,
            i,
            l.as_str(),
            l.weight(old),
            l.weight(new),
            *l == NameLevel::Missing,
        );
    }
    for (i, l) in BirthLevel::ALL.iter().enumerate() {
        if *l != BirthLevel::ImpliedById {
            push(
                "birth",
                2,
                i,
                l.as_str(),
                l.weight(old),
                l.weight(new),
                *l == BirthLevel::Missing,
            );
        }
    }
    for (i, l) in SexLevel::ALL.iter().enumerate() {
        if *l != SexLevel::ImpliedById {
            push(
                "sex",
                3,
                i,
                l.as_str(),
                l.weight(old),
                l.weight(new),
                *l == SexLevel::Missing,
            );
        }
    }
    for (i, l) in RegionLevel::ALL.iter().enumerate() {
        push(
            "region",
            4,
            i,
            l.as_str(),
            l.weight(old),
            l.weight(new),
            *l == RegionLevel::Missing,
        );
    }
    out
}

/// The proposal as a file: a header that says what it is and how to adopt
/// it, then the rules.
fn render(p: &Proposal, from: &str, adopt_to: &Path, date: NaiveDate) -> String {
    format!(
        "# PROPOSED matching rules, not in use. Written by `vigil rules train` on {date}\n\
         # from {persons} active pensioners and {records} death records: u from {random} random\n\
         # roster pairs, m by expectation-maximisation over {cands} candidate pairs\n\
         # ({iters} iterations; {share:.1}% of candidates estimated to be true matches).\n\
         # Trained from {from} (version {old}).\n\
         # Thresholds, the prior, the name-frequency adjustment, blocking and fusion are\n\
         # copied unchanged; `missing` levels are not trained.\n\
         #\n\
         # Try it:   vigil match --rules {path}   (then vigil eval --truth FILE)\n\
         # Adopt it: review the weights, then copy this file over {adopt}\n\
         #           (vigil never does that itself).\n\n{toml}",
        persons = p.persons,
        records = p.records,
        random = p.random_pairs,
        cands = p.candidate_pairs,
        iters = p.iterations,
        share = p.match_share * 100.0,
        old = p.old_version,
        path = p.path.display(),
        adopt = adopt_to.display(),
        toml = p.rules.to_toml(),
    )
}

/// Trains on the stored roster and death records and writes the proposed
/// rules; never over the rules file in use.
pub async fn propose_rules(
    store: &Store,
    rules: &MatchRules,
    opts: &ProposeOptions,
) -> Result<Proposal, ProposeError> {
    let in_use = opts
        .rules_path
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RULES_PATH));
    let out = opts.out.clone().unwrap_or_else(|| proposed_path(&in_use));
    // Checked before the long part; nothing else chooses the path later.
    // With the built-in rules in use, a file at the default path would
    // become the rules in use on the next run: just as refused.
    if same_file(&out, &in_use) {
        return Err(ProposeError::WouldOverwrite {
            path: out,
            default: proposed_path(&in_use),
        });
    }
    let persons = store.load_match_persons().await?;
    let records = store.load_match_records().await?;
    if persons.len() < 2 || records.is_empty() {
        return Err(ProposeError::NoData {
            persons: persons.len(),
            records: records.len(),
        });
    }
    let owned = rules.clone();
    let training = opts.training;
    let (report, n_persons, n_records) = tokio::task::spawn_blocking(move || {
        let index = RosterIndex::build(&persons, &owned.blocking);
        let report = train(&index, &records, &owned, training);
        (report, persons.len(), records.len())
    })
    .await
    .map_err(|e| ProposeError::Worker(e.to_string()))?;
    let mut report = report?;
    report.rules.version = trained_version(&rules.version, opts.date);
    round_weights(&mut report.rules);
    report.rules.validate()?;

    let proposal = Proposal {
        replaced_earlier: out.exists(),
        path: out.clone(),
        old_version: rules.version.clone(),
        version: report.rules.version.clone(),
        persons: n_persons,
        records: n_records,
        random_pairs: report.random_pairs,
        candidate_pairs: report.candidate_pairs,
        iterations: report.iterations,
        match_share: report.match_share,
        levels: level_changes(&report, rules),
        rules: report.rules.clone(),
    };
    let from = match &opts.rules_path {
        Some(p) => p.display().to_string(),
        None => "the built-in rules".to_string(),
    };
    let text = render(&proposal, &from, &in_use, opts.date);
    let io_err = |source| ProposeError::Io {
        path: out.clone(),
        source,
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    // Written whole or not at all: a half-written proposal is never left.
    let tmp = out.with_extension("toml.tmp");
    std::fs::write(&tmp, text).map_err(io_err)?;
    std::fs::rename(&tmp, &out).map_err(io_err)?;
    audit::append(
        store,
        &opts.actor,
        "rules.propose",
        &out.display().to_string(),
        &serde_json::json!({
            "from": from,
            "from_version": proposal.old_version,
            "version": proposal.version,
            "persons": proposal.persons,
            "records": proposal.records,
            "random_pairs": proposal.random_pairs,
            "candidate_pairs": proposal.candidate_pairs,
            "seed": opts.training.seed,
        }),
    )
    .await?;
    Ok(proposal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proposal_goes_beside_the_rules_file() {
        assert_eq!(
            proposed_path(Path::new("rules/matching.toml")),
            PathBuf::from("rules/matching.proposed.toml")
        );
        assert_eq!(
            proposed_path(Path::new("/etc/vigil/strict.toml")),
            PathBuf::from("/etc/vigil/strict.proposed.toml")
        );
    }

    #[test]
    fn a_trained_version_carries_the_date_once() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        assert_eq!(
            trained_version("2026.1-default", d),
            "2026.1-default-trained-2026-11-27"
        );
        assert_eq!(
            trained_version("2026.1-default-trained-2026-10-01", d),
            "2026.1-default-trained-2026-11-27"
        );
    }

    #[test]
    fn the_same_file_is_recognised_under_another_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("matching.toml");
        std::fs::write(&a, "x").unwrap();
        let b = dir.path().join(".").join("matching.toml");
        assert!(same_file(&a, &b));
        assert!(!same_file(&a, &dir.path().join("matching.proposed.toml")));
    }
}
