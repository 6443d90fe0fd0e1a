//! `vigil roster import`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Subcommand;
use vigil::config::Settings;
use vigil::ingest::roster::{self, ImportOptions, ImportSummary};
use vigil::store::Store;
use vigil::{audit, identity};

use super::progress::{file_len, import_bar};
use super::{open_store, print_result};

#[derive(Subcommand)]
pub enum RosterAction {
    /// Import a roster CSV (UTF-8, UTF-8 with BOM, or GBK; detected).
    Import {
        file: PathBuf,
        /// The date the export stands for (default: today in China). An export older
        /// than the last one imported is refused.
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `vigil roster import`.
pub async fn run(action: RosterAction, settings: &Settings) -> Result<ExitCode> {
    let RosterAction::Import { file, as_of, json } = action;
    let store = open_store(settings).await?;
    let summary = import_with_progress(&store, &file, as_of, settings).await?;
    print_result(json, &summary, print_import_summary)?;
    Ok(ExitCode::SUCCESS)
}

async fn import_with_progress(
    store: &Store,
    file: &Path,
    as_of: Option<NaiveDate>,
    settings: &Settings,
) -> Result<ImportSummary> {
    let bar = import_bar(file_len(file)?);
    let opts = ImportOptions {
        as_of: as_of.unwrap_or_else(identity::today_in_china),
        batch_rows: settings.import.batch_rows,
        actor: audit::cli_actor(),
    };
    let progress = |bytes: u64| bar.set_position(bytes);
    let result = roster::import_roster(store, file, &opts, &progress).await;
    bar.finish_and_clear();
    Ok(result?)
}

pub fn print_import_summary(s: &ImportSummary) {
    println!(
        "imported {} ({}, snapshot of {}) as run {}",
        s.file,
        s.encoding,
        s.as_of.map(|d| d.to_string()).unwrap_or_default(),
        s.run_id
    );
    println!("  read         {:>10}", s.read);
    println!("  inserted     {:>10}", s.inserted);
    println!("  changed      {:>10}", s.changed);
    println!("  unchanged    {:>10}", s.unchanged);
    println!("  quarantined  {:>10}", s.quarantined);
    println!(
        "  missing      {:>10}  (absent from this export, flagged, not deleted)",
        s.missing
    );
    if s.reappeared > 0 {
        println!("  reappeared   {:>10}", s.reappeared);
    }
    if s.upgraded_ids > 0 {
        println!("  legacy 15-digit IDs upgraded: {}", s.upgraded_ids);
    }
    print_quarantine_sample(s.run_id, &s.quarantine_sample);
    println!("  sha256 {}", s.sha256);
}

/// The first rows an import quarantined, under its summary (a roster or an
/// evidence import alike).
pub fn print_quarantine_sample(run_id: i64, sample: &[(u64, String)]) {
    if !sample.is_empty() {
        println!(
            "  quarantined rows (first {}; `vigil quarantine {run_id}` lists all):",
            sample.len(),
        );
        for (line, reason) in sample {
            println!("    line {line}: {reason}");
        }
    }
}
