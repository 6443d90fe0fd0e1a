//! `vigil generate` and `vigil demo`: synthetic data, and the whole
//! pipeline run on it (the steps are `vigil::demo`'s; this prints them).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use indicatif::ProgressBar;
use vigil::config::Settings;
use vigil::demo::{DemoOptions, Event, Observer, Work};
use vigil::ingest::connectors::PullProgress;
use vigil::{audit, identity};

use super::evidence::print_evidence_summary;
use super::matching::{print_eval, print_match_summary};
use super::progress::{
    generate_bar, import_bar, pull_spinner, show_pull_progress, ticking_spinner,
};
use super::pull::print_pull_summaries;
use super::roster::print_import_summary;

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Number of pensioners in the roster.
    #[arg(long)]
    pub pensioners: u64,
    /// Seed: the same seed and date give byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// The date the data stands for (default: today in China).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,
    /// Share of pensioners who died in the 60 days before the date (at most
    /// 0.2); about 2.2 death-source records come per death. 0.023 gives
    /// about a million records for ten million pensioners.
    #[arg(long, default_value_t = 0.01)]
    pub death_rate: f64,
}

/// `vigil generate`.
pub fn generate(args: GenerateArgs) -> Result<ExitCode> {
    let as_of = args.as_of.unwrap_or_else(identity::today_in_china);
    let summary = generate_with_progress(
        args.pensioners,
        args.seed,
        &args.out,
        as_of,
        args.death_rate,
    )?;
    println!(
        "wrote {} pensioners and {} deaths to {}",
        summary.pensioners,
        summary.deaths,
        args.out.display()
    );
    for (path, n) in &summary.files {
        println!("  {:>10}  {}", n, path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil demo`.
pub async fn run(
    pensioners: u64,
    seed: u64,
    data_dir: PathBuf,
    db: PathBuf,
    settings: &Settings,
) -> Result<ExitCode> {
    let opts = DemoOptions {
        pensioners,
        seed,
        data_dir,
        db,
        as_of: identity::today_in_china(),
        batch_rows: settings.import.batch_rows,
        max_connections: settings.database.max_connections,
        actor: audit::cli_actor(),
    };
    let mut printer = DemoPrinter {
        db: opts.db.clone(),
        bar: ProgressBar::hidden(),
    };
    vigil::demo::run(&opts, &mut printer).await?;
    Ok(ExitCode::SUCCESS)
}

fn generate_with_progress(
    pensioners: u64,
    seed: u64,
    out: &Path,
    as_of: NaiveDate,
    death_rate: f64,
) -> Result<vigil::generate::GenerateSummary> {
    let bar = generate_bar(pensioners);
    let mut opts =
        vigil::generate::GenerateOptions::new(pensioners, seed, out.to_path_buf(), as_of);
    opts.death_rate = death_rate;
    let progress = |n: u64| bar.set_position(n);
    let summary = vigil::generate::generate(&opts, &progress)
        .with_context(|| format!("generating data into {}", out.display()))?;
    bar.finish_and_clear();
    Ok(summary)
}

/// `vigil demo`: prints the demo's steps as they happen and draws their
/// progress.
struct DemoPrinter {
    db: PathBuf,
    bar: ProgressBar,
}

impl Observer for DemoPrinter {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Started {
                pensioners,
                seed,
                as_of,
            } => println!(
                "vigil demo: {pensioners} synthetic pensioners, seed {seed}, as of {as_of}\n"
            ),
            Event::Generating { data_dir } => {
                println!("1. generating data into {}/", data_dir.display())
            }
            Event::Generated(summary) => println!(
                "   {} pensioners, {} deaths across the three death sources",
                summary.pensioners, summary.deaths
            ),
            Event::ImportingRoster { db } => {
                println!("\n2. importing the roster into {}", db.display())
            }
            Event::RosterImported(summary) => print_import_summary(summary),
            Event::NextExportWritten {
                file,
                changes: next,
            } => println!(
                "\n3. importing next month's export ({}): {} bank accounts, {} amounts, {} residences and {} statuses \
                 changed, {} people gone, {} damaged rows at the end",
                file.display(),
                next.bank_account_changed,
                next.amount_changed,
                next.residence_changed,
                next.status_changed,
                next.dropped,
                next.bad_rows
            ),
            Event::ReimportingRoster => println!(
                "\n   importing the same export again: an import is a snapshot, so nothing changes"
            ),
            Event::RosterReimported(third) => println!(
                "   read {}, inserted {}, changed {}, unchanged {}, quarantined {} (the same bad rows), newly missing {}",
                third.read,
                third.inserted,
                third.changed,
                third.unchanged,
                third.quarantined,
                third.missing
            ),
            Event::Pulling => println!(
                "\n4. pulling the generated death data through the real connectors: public security and \
                 funeral homes from a local HTTP server on 127.0.0.1, civil affairs from GBK files"
            ),
            Event::Pulled(summaries) => print_pull_summaries(summaries),
            Event::PullingAgain => {
                println!("   pulling again: everything is recognised, nothing is stored twice")
            }
            Event::ImportingEvidence => println!(
                "\n6. importing evidence of life and video verification results: proof that people were \
                 alive on a date"
            ),
            Event::EvidenceImported(summary) => print_evidence_summary(summary),
            Event::Matching => {
                println!("\n5. matching the death records against the roster, as they arrive")
            }
            Event::Matched(summary) => print_match_summary(summary),
            Event::CounterEvidence(tally) => {
                println!(
                    "   evidence of life after the death date held {} match(es) back from auto \
                     ({} match(es) carry such evidence in all)",
                    tally.held_back, tally.carrying
                );
                if let Some(key) = &tally.example {
                    println!(
                        "   see one with its evidence: vigil --database-url sqlite://{} match explain {key}",
                        self.db.display()
                    );
                }
            }
            Event::Evaluated(report) => {
                println!("   checked against the generator's truth file:");
                print_eval(report);
            }
            Event::ReviewExample {
                stored,
                explanation,
            } => {
                println!(
                    "   why {} {} is in review (`vigil match explain {}`):",
                    stored.source, stored.record_key, stored.record_key
                );
                if let Some(e) = explanation {
                    for line in vigil::matching::explain::render_waterfall(e).lines() {
                        println!("     {line}");
                    }
                }
            }
            Event::MatchingAgain => println!(
                "   matching again: the records whose pensioner was proven alive after the death \
                 since, and any new or changed ones; the rest are kept"
            ),
            Event::MatchedAgain(summary) => println!(
                "   {} records to match, {} earlier matches kept",
                summary.records, summary.kept
            ),
            Event::CasesOpened(c) => println!(
                "   cases: {} opened (one per pensioner, however many records), {} updated; {} \
                 payments held at once (auto)",
                c.opened, c.updated, c.held
            ),
            Event::WorkingCases => println!(
                "\n7. the suspension queue: two people decide every case (`vigil cases list` shows it)"
            ),
            Event::UserCreated {
                name,
                role,
                password,
            } => println!("   user {name}: {role}, demo password {password}"),
            Event::LedgerImported(summary) => {
                print!("   ");
                super::payments::print_summary(summary);
            }
            Event::CaseWorked(w) => {
                let r = &w.request;
                println!(
                    "   case {} ({}), pensioner {}:",
                    w.case_id,
                    w.band.as_deref().unwrap_or("-"),
                    w.person_no
                );
                let date = r
                    .death_date
                    .map(|d| format!(" --death-date {d}"))
                    .unwrap_or_default();
                println!(
                    "     $ vigil case propose {} --action {} --reason {} --note \"{}\"{date} --user {}",
                    w.case_id, r.action, r.reason, r.note, w.proposer
                );
                println!("     {}", super::cases::step_line(&w.proposed));
                if let Some(p) = w.proposed.proposal {
                    println!(
                        "     $ vigil case approve {p} --note \"核实无误，同意\" --user {}",
                        w.approver
                    );
                }
                println!("     {}", super::cases::step_line(&w.approved));
            }
            Event::VerifyingAudit => println!("\n8. verifying the audit log"),
            Event::AuditIntact { entries } => println!("   intact: {entries} entries"),
            Event::Finished => println!(
                "\ndone. Look around with: vigil --database-url sqlite://{} runs",
                self.db.display()
            ),
        }
    }

    fn work_started(&mut self, work: Work) {
        self.bar = match work {
            Work::Generate { pensioners } => generate_bar(pensioners),
            Work::Import { bytes } => import_bar(bytes),
            Work::Pull => pull_spinner(),
            Work::Match => ticking_spinner("{spinner} matching… {elapsed}"),
        };
    }

    fn advanced(&self, done: u64) {
        self.bar.set_position(done);
    }

    fn pulled(&self, progress: &PullProgress<'_>) {
        show_pull_progress(&self.bar, progress);
    }

    fn work_finished(&mut self) {
        self.bar.finish_and_clear();
    }
}
