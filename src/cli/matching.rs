//! `vigil match` (and `match explain`), `vigil matches export`,
//! `vigil eval` and `vigil rules train`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use vigil::config::Settings;
use vigil::matching::export::{evaluate_against_truth, write_matches};
use vigil::matching::rules::MatchRules;
use vigil::matching::rules_file::{self, load_rules};
use vigil::matching::run::{MatchSummary, match_verdicts, run_match_scoped};
use vigil::matching::train::TrainingOptions;
use vigil::matching::{explain, propose, view};
use vigil::store::Store;
use vigil::store::match_state::{MatchScope, StoredEvent};
use vigil::{audit, identity};

use super::progress::ticking_spinner;
use super::{open_store, print_result};

#[derive(Subcommand)]
pub enum MatchAction {
    /// Show why a death record matched: field by field, as a waterfall.
    Explain {
        /// The record key (public security record_id; civil affairs OFFICE:NUMBER; funeral HOME:SERIAL).
        key: String,
        /// The source, when the key alone is ambiguous.
        #[arg(long)]
        source: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum MatchesAction {
    /// Write every match: CSV header `source,record_key,person_no,score,band`, or JSON.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// Output file (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The rules the matches were made with (default: rules/matching.toml if present, else the built-in rules); a match carried to auto by another source is judged by its fusion settings.
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl From<ExportFormat> for vigil::matching::export::ExportFormat {
    fn from(f: ExportFormat) -> Self {
        match f {
            ExportFormat::Csv => Self::Csv,
            ExportFormat::Json => Self::Json,
        }
    }
}

#[derive(Subcommand)]
pub enum RulesAction {
    /// Estimate new match weights from the stored roster and death records; write them as a proposal.
    #[command(
        long_about = "Estimates the match weight of every comparison level from the data, \
        as Splink does: u (how often a level occurs between two different people) from random \
        pairs of roster persons, m (how often it occurs for the same person) by \
        expectation-maximisation over the candidate pairs blocking finds between the stored death \
        records and the active roster. The new weight of a level is log2(m/u).\n\nThe result is \
        written as a proposal beside the rules file (rules/matching.proposed.toml by default), \
        with a version marking it as trained on today's date; thresholds, the prior, blocking \
        and fusion are copied unchanged. The rules file in use is never written: to adopt the \
        proposal, read it, try it with `vigil match --rules FILE`, then copy it over the rules \
        file yourself."
    )]
    Train {
        /// The rules to start from (default: rules/matching.toml if present, else the built-in rules).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// Where to write the proposal (default: <rules>.proposed.toml beside the rules file).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// Random pairs of roster persons drawn to estimate u.
        #[arg(long, value_name = "N", default_value_t = TrainingOptions::default().random_pairs)]
        sample_pairs: usize,
        /// Seed of the random pairs: the same data and seed give the same proposal.
        #[arg(long, value_name = "S", default_value_t = TrainingOptions::default().seed)]
        seed: u64,
        /// Print what was estimated as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `vigil match`: only the pending records, or all of them with `full`.
pub async fn match_records(
    full: bool,
    rules: Option<&Path>,
    settings: &Settings,
) -> Result<ExitCode> {
    let rules = load_rules(rules)?;
    let store = open_store(settings).await?;
    let scope = if full {
        MatchScope::All
    } else {
        MatchScope::Pending
    };
    let s = match_with_spinner(&store, &rules, scope).await?;
    print_match_summary(&s);
    // The run's deaths become cases: opened, updated, payments held.
    if let Some(c) =
        vigil::cases::queue::sync_death_cases(&store, &audit::cli_actor(), chrono::Utc::now())
            .await?
    {
        println!(
            "cases: {} opened, {} updated, {} reopened; {} payments held",
            c.opened, c.updated, c.reopened, c.held
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil match explain`.
pub async fn match_action(action: MatchAction, settings: &Settings) -> Result<ExitCode> {
    let MatchAction::Explain { key, source } = action;
    let store = open_store(settings).await?;
    let found = view::matches_of_record(&store, &key, source.as_deref()).await?;
    if found.is_empty() {
        bail!("no match for record {key}; `vigil matches export` lists the matched records");
    }
    for m in &found {
        print_explained_match(&view::explain_match(&store, m).await?);
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil matches export`: to standard output, or to a file written only
/// once the verdicts are in hand.
pub async fn matches(action: MatchesAction, settings: &Settings) -> Result<ExitCode> {
    let MatchesAction::Export { format, out, rules } = action;
    let store = open_store(settings).await?;
    let rules = load_rules(rules.as_deref())?;
    let matches = match_verdicts(&store, &rules).await?;
    match out {
        Some(path) => {
            let write = || -> std::io::Result<()> {
                let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
                write_matches(&mut w, &matches, format.into())?;
                w.flush()
            };
            write().with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} matches to {}", matches.len(), path.display());
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            write_matches(&mut w, &matches, format.into())?;
            w.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil eval`.
pub async fn eval(
    truth: &Path,
    json: bool,
    rules: Option<&Path>,
    settings: &Settings,
) -> Result<ExitCode> {
    let store = open_store(settings).await?;
    let rules = load_rules(rules)?;
    let report = evaluate_against_truth(&store, truth, &rules).await?;
    print_result(json, &report, print_eval)?;
    Ok(ExitCode::SUCCESS)
}

/// `vigil rules train`: writes a proposal beside the rules in use, never
/// over them.
pub async fn rules(action: RulesAction, settings: &Settings) -> Result<ExitCode> {
    let RulesAction::Train {
        rules,
        out,
        sample_pairs,
        seed,
        json,
    } = action;
    let rules_path = rules_file::rules_path_in_use(rules.as_deref());
    let current = load_rules(rules.as_deref())?;
    let store = open_store(settings).await?;
    let opts = propose::ProposeOptions {
        rules_path: rules_path.clone(),
        out,
        training: TrainingOptions {
            random_pairs: sample_pairs,
            seed,
            ..Default::default()
        },
        date: identity::today_in_china(),
        actor: audit::cli_actor(),
    };
    let bar = ticking_spinner("{spinner} training… {elapsed}");
    let result = propose::propose_rules(&store, &current, &opts).await;
    bar.finish_and_clear();
    let proposal = result?;
    print_result(json, &proposal, |p| {
        print_proposal(p, rules_path.as_deref())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn match_with_spinner(
    store: &Store,
    rules: &MatchRules,
    scope: MatchScope,
) -> Result<MatchSummary> {
    let bar = ticking_spinner("{spinner} matching… {elapsed}");
    let result = run_match_scoped(store, rules, &audit::cli_actor(), scope).await;
    bar.finish_and_clear();
    Ok(result?)
}

pub fn print_match_summary(s: &MatchSummary) {
    if s.scope == "pending" {
        println!(
            "   matched {} new or changed death records against {} active pensioners \
             (rules {}) as run {}; {} earlier matches kept",
            s.records, s.persons, s.rules_version, s.run_id, s.kept
        );
    } else {
        println!(
            "   matched all {} death records against {} active pensioners (rules {}) as run {}",
            s.records, s.persons, s.rules_version, s.run_id
        );
    }
    println!(
        "   auto {} (payment may be suspended after checks), review {} (a caseworker looks), \
         {} pairs scored",
        s.auto, s.review, s.pairs_scored
    );
    if s.already_matched > 0 {
        println!(
            "   {} sent to review because an earlier record of the same source holds the pensioner",
            s.already_matched
        );
    }
    if s.other_deaths > 0 {
        println!(
            "   {} review matches not carried to auto by their pensioner's other records: \
             another person's recorded death fits them as well",
            s.other_deaths
        );
    }
    println!(
        "   {} death events fused from all sources, {} with a timeline flag \
         (conflicting dates, death before birth or pension, age over the maximum)",
        s.events, s.flagged_events
    );
    if s.capped_blocks > 0 {
        println!(
            "   {} searches hit an oversized block and were cut to the cap; largest:",
            s.capped_blocks
        );
        for c in s.largest_capped.iter().take(5) {
            println!(
                "     {} {}: {} pensioners, {} compared, {} records",
                c.kind,
                c.name_key.as_deref().unwrap_or("-"),
                c.size,
                c.kept,
                c.records
            );
        }
    }
    let index = if s.index_from == "file" {
        "index mapped from its file"
    } else {
        "index built"
    };
    println!(
        "   {index} in {:.2} s, matched in {:.2} s, {:.2} s in all",
        s.index_seconds, s.match_seconds, s.total_seconds
    );
}

fn print_death_event(ev: &StoredEvent) {
    println!(
        "death event of pensioner {}: died {} (by source precedence), band {}, \
         evidence strength {:.1} from {}",
        ev.person_no,
        ev.death_date,
        ev.band,
        ev.evidence_strength,
        ev.sources.join(" + ")
    );
    for r in &ev.records {
        println!(
            "   {} {} says {}",
            r["source"].as_str().unwrap_or("?"),
            r["record_key"].as_str().unwrap_or("?"),
            r["death_date"].as_str().unwrap_or("?")
        );
    }
    for f in &ev.flags {
        let text = match f["flag"].as_str() {
            Some("conflicting_death_dates") => {
                "FLAG the sources give different death dates (all kept above)".to_string()
            }
            Some("death_before_birth") => "FLAG the death date is before the birth date".into(),
            Some("death_before_benefit_start") => {
                "FLAG the death date is before the pension started".into()
            }
            Some("age_over_maximum") => format!(
                "FLAG age at death {} is over the rules' maximum",
                f["age"].as_i64().unwrap_or(0)
            ),
            _ => format!("FLAG {f}"),
        };
        println!("   {text}");
    }
}

pub fn print_eval(r: &vigil::matching::eval::EvalReport) {
    println!(
        "   true deaths of pensioners in the truth: {}",
        r.true_links
    );
    println!(
        "   auto:          {:>7} records (each carries its match's band), precision {:.3}%, recall {:.2}%",
        r.auto,
        r.auto_precision * 100.0,
        r.auto_recall * 100.0
    );
    println!(
        "     of them auto on their own evidence: {} records, precision {:.3}%, recall {:.2}%",
        r.record_auto,
        r.record_auto_precision * 100.0,
        r.record_auto_recall * 100.0
    );
    println!(
        "   auto + review: {:>7} matches, precision {:.3}%, recall {:.2}%",
        r.auto_or_review,
        r.auto_or_review_precision * 100.0,
        r.auto_or_review_recall * 100.0
    );
    println!(
        "   auto + review recall of the {} deaths with a usable ID or a full birth date: {:.3}%",
        r.usable_links,
        r.usable_recall * 100.0
    );
    // The counts by source or kind, each only when there are some.
    let counts = |label: &str, counts: &BTreeMap<String, u64>| {
        if !counts.is_empty() {
            println!("{label}: {counts:?}");
        }
    };
    counts("     of them missed, by source", &r.usable_missed_by_source);
    counts("   wrong auto matches by kind", &r.false_auto_by_kind);
    if !r.false_auto_by_kind.is_empty() {
        println!(
            "     of them on a pensioner alive in the truth: {}",
            r.false_auto_living
        );
    }
    counts("   wrong review matches by kind", &r.false_review_by_kind);
    counts("   true deaths missed, by source", &r.missed_by_source);
}

fn print_proposal(p: &propose::Proposal, in_use: Option<&Path>) {
    println!(
        "{} proposed rules {} to {}",
        if p.replaced_earlier {
            "replaced the earlier"
        } else {
            "wrote"
        },
        p.version,
        p.path.display()
    );
    println!(
        "  trained on {} active pensioners and {} death records: u from {} random roster pairs, \
         m by EM over {} candidate pairs ({} iterations, {:.1}% estimated true matches)",
        p.persons,
        p.records,
        p.random_pairs,
        p.candidate_pairs,
        p.iterations,
        p.match_share * 100.0
    );
    println!(
        "\n  {:<7} {:<17} {:>11} {:>11} {:>9} {:>9} {:>8}",
        "field", "level", "u", "m", "now", "proposed", "change"
    );
    for l in &p.levels {
        if l.trained {
            println!(
                "  {:<7} {:<17} {:>11.3e} {:>11.3e} {:>+9.2} {:>+9.2} {:>+8.2}",
                l.field,
                l.level,
                l.u,
                l.m,
                l.old_weight,
                l.new_weight,
                l.new_weight - l.old_weight
            );
        } else {
            println!(
                "  {:<7} {:<17} {:>11} {:>11} {:>+9.2} {:>+9.2}  (not trained)",
                l.field, l.level, "", "", l.old_weight, l.new_weight
            );
        }
    }
    let target = in_use
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| propose::DEFAULT_RULES_PATH.to_string());
    println!(
        "\n  weights are log2(m/u) in bits. The rules in use ({}) are unchanged.",
        in_use
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in".to_string())
    );
    println!(
        "  to try it:  vigil match --rules {}   then  vigil eval --truth FILE",
        p.path.display()
    );
    println!(
        "  to adopt it: review it, then  cp {} {}",
        p.path.display(),
        target
    );
}

/// `vigil match explain`: the header, the waterfall, what was seen of the
/// person after the death date, and the fused death event.
pub(super) fn print_explained_match(v: &view::ExplainedMatch) {
    let m = &v.stored;
    println!("{} {} -> pensioner {}", m.source, m.record_key, m.person_no);
    println!("{}", explain::render_waterfall(&v.explanation));
    if let Some(seen) = &v.seen_after_death {
        print_seen_after_death(seen);
    }
    if let Some(ev) = &v.death_event {
        print_death_event(ev);
    }
}

/// Under an explanation: what was seen of the person after the record's
/// death date (evidence of life, video sessions whatever their result).
fn print_seen_after_death(seen: &view::SeenAfterDeath) {
    println!(
        "  seen after the death date {} (ID {}):",
        seen.death_date, seen.masked_id
    );
    for ev in &seen.events {
        match &ev.result {
            None => println!(
                "    {}  {:<20} ref {}  (proof of life, run {})",
                ev.event_date, ev.event_type, ev.source_ref, ev.run_id
            ),
            Some(result) => println!(
                "    {}  video session {} at {}, operator {}{}  (run {})",
                ev.event_date,
                result,
                ev.source_ref,
                ev.operator.as_deref().unwrap_or(""),
                if ev.proves_life {
                    ": proof of life"
                } else {
                    ": not proof of life"
                },
                ev.run_id
            ),
        }
    }
    if seen.arrived_after_match {
        println!(
            "  this evidence arrived after the match was made; `vigil match` again takes it into account"
        );
    }
}
