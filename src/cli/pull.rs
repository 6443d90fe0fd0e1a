//! `vigil pull` and `vigil connectors check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use vigil::config::Settings;
use vigil::ingest::connectors;

use super::progress::{pull_spinner, show_pull_progress};
use super::{open_store, print_result};

#[derive(Subcommand)]
pub enum ConnectorsAction {
    /// Validate every definition; says exactly what is wrong in which file and key.
    Check {
        #[arg(long, default_value = "connectors", value_name = "DIR")]
        connectors: PathBuf,
    },
}

/// `vigil pull`: exits non-zero when a source failed (what it committed is
/// kept and counted).
pub async fn pull(
    dir: &Path,
    sources: &[String],
    json: bool,
    settings: &Settings,
) -> Result<ExitCode> {
    let defs = match connectors::load_definitions(dir) {
        Ok(d) => d,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            bail!(
                "{} problem(s) in the connector definitions in {}; `vigil connectors check` lists them",
                problems.len(),
                dir.display()
            );
        }
    };
    let store = open_store(settings).await?;
    let bar = pull_spinner();
    let progress = |p: &connectors::PullProgress<'_>| show_pull_progress(&bar, p);
    let result = connectors::pull(&store, &defs, sources, &progress).await;
    bar.finish_and_clear();
    let summaries = result?;
    print_result(json, summaries.as_slice(), print_pull_summaries)?;
    if summaries.iter().any(|s| !s.ok()) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil connectors check`: exits non-zero when a definition is wrong.
pub fn connectors(action: ConnectorsAction) -> Result<ExitCode> {
    let ConnectorsAction::Check { connectors } = action;
    let problems = connectors::check_definitions(&connectors);
    if problems.is_empty() {
        let defs = connectors::load_definitions(&connectors).unwrap_or_default();
        println!(
            "{}: {} definition(s), all valid",
            connectors.display(),
            defs.len()
        );
        for d in defs {
            println!("  {:<18} {}", d.name, d.kind.as_str());
        }
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("{p}");
        }
        println!("{} problem(s) in {}", problems.len(), connectors.display());
        Ok(ExitCode::FAILURE)
    }
}

pub fn print_pull_summaries(summaries: &[connectors::PullSummary]) {
    println!(
        "   {:<16} {:>5} {:>8} {:>8} {:>8} {:>9} {:>9} {:>11} {:>7}  status",
        "source",
        "run",
        "read",
        "stored",
        "updated",
        "duplicate",
        "non-death",
        "quarantined",
        "retries",
    );
    for s in summaries {
        let c = &s.counts;
        println!(
            "   {:<16} {:>5} {:>8} {:>8} {:>8} {:>9} {:>9} {:>11} {:>7}  {}",
            s.source,
            s.run_id,
            c.read,
            c.inserted,
            c.updated,
            c.duplicate + c.stale,
            c.non_death,
            c.quarantined,
            c.retries,
            match &s.error {
                None => format!("ok in {:.1} s", s.elapsed.as_secs_f64()),
                Some(e) => format!("FAILED (what is counted was kept): {e}"),
            }
        );
    }
}
