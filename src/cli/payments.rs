//! `vigil payments import`: the payment ledger read back (spec §7); `vigil
//! payments instructions`: what the payroll must do this month (spec §8).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use vigil::cases::money::Period;
use vigil::cases::{payroll, queue};
use vigil::config::Settings;
use vigil::ingest::payments::{PaymentsImportOptions, PaymentsImportSummary, import_payments};
use vigil::{audit, identity};

use super::progress::{file_len, import_bar};
use super::roster::print_quarantine_sample;
use super::{open_store, print_result};

#[derive(Subcommand)]
pub enum PaymentsAction {
    /// Import a payment ledger CSV: person_no,period,amount,bank_account,paid_on (UTF-8, BOM or not).
    #[command(
        long_about = "Imports the payment ledger (spec §7): what the payroll paid, as a CSV in \
        UTF-8, with or without a byte-order mark, with the columns person_no, period, amount, \
        bank_account, paid_on in any order. period is the month paid, YYYY-MM; amount is in \
        yuan with at most two decimals (3268.50), stored as integer fen; paid_on is YYYY-MM-DD. \
        The ledger is what vigil reconciles its instructions against and what it computes a \
        dead person's overpayment from: a month with any row in the ledger counts as known.\
        \n\nA file lacking a column is refused before anything is written, and vigil exits \
        non-zero. Rows that cannot be used (an empty person number, a period that is not a \
        month, an amount that is not yuan or is negative, a bank account that is not 10 to 32 \
        digits, a pay day that is not a real date or is in the future, a period more than one \
        month after its pay day) are quarantined with their line and reason while the rest \
        goes in; `vigil quarantine RUN` lists them. A payment is the same payment when its \
        person, period, pay day and amount are: imported again it is a duplicate, and sent \
        again into another bank account it is quarantined and the stored one is kept."
    )]
    Import {
        /// The payment ledger CSV file.
        file: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write this month's payroll instructions: person_no,instruction,effective_from,amount_fen,case_id.
    #[command(
        long_about = "Writes what the payroll system must do for payroll month PERIOD (spec \
        §8), as a CSV with the header person_no,instruction,effective_from,amount_fen,case_id: \
        one line per pensioner whose payment changes (suspend, terminate, resume), and one per \
        back pay owed (back_pay, with amount_fen). They come from the payment decisions vigil \
        made during that month: holds of `auto` matches, and the outcomes of approved \
        proposals. vigil pays no one; this file is how its decisions reach the payroll, and the \
        next ledger shows whether they were applied. The same state always gives the same file."
    )]
    Instructions {
        /// The payroll month, YYYY-MM.
        #[arg(long, value_name = "YYYY-MM")]
        period: String,
        /// Where to write the CSV (written whole or not at all).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// `vigil payments …`.
pub async fn run(action: PaymentsAction, settings: &Settings) -> Result<ExitCode> {
    match action {
        PaymentsAction::Import { file, json } => import(&file, json, settings).await,
        PaymentsAction::Instructions { period, out } => instructions(&period, &out, settings).await,
    }
}

async fn instructions(period: &str, out: &Path, settings: &Settings) -> Result<ExitCode> {
    let period = Period::parse(period)
        .map_err(|e| anyhow::anyhow!("--period {period}: {e}; give the month as YYYY-MM"))?;
    let store = open_store(settings).await?;
    // A match run's cases not yet made (a crash between the two) first.
    queue::sync_death_cases(&store, &audit::cli_actor(), chrono::Utc::now()).await?;
    let lines = payroll::instructions(&store, period).await?;
    store.close().await;
    vigil::files::write_atomically(out, "instructions", |w| payroll::write_csv(w, &lines))
        .with_context(|| format!("writing {}", out.display()))?;
    let back_pay: i64 = lines.iter().filter_map(|l| l.amount_fen).sum();
    let count = |what: &str| lines.iter().filter(|l| l.instruction == what).count();
    println!(
        "{} instructions for {period} written to {}: {} suspend, {} terminate, {} resume, {} back pay ({} yuan)",
        lines.len(),
        out.display(),
        count("suspend"),
        count("terminate"),
        count("resume"),
        count("back_pay"),
        yuan(back_pay)
    );
    Ok(ExitCode::SUCCESS)
}

async fn import(file: &Path, json: bool, settings: &Settings) -> Result<ExitCode> {
    let store = open_store(settings).await?;
    let bar = import_bar(file_len(file)?);
    let opts = PaymentsImportOptions {
        batch_rows: settings.import.batch_rows,
        actor: audit::cli_actor(),
        today: identity::today_in_china(),
    };
    let progress = |bytes: u64| bar.set_position(bytes);
    let result = import_payments(&store, file, &opts, &progress).await;
    bar.finish_and_clear();
    print_result(json, &result?, print_summary)?;
    Ok(ExitCode::SUCCESS)
}

/// One line of counts, then the first quarantined rows, if any.
pub fn print_summary(s: &PaymentsImportSummary) {
    println!(
        "imported {} (payment ledger) as run {}: read {}, inserted {} ({} yuan), duplicate {}, \
         quarantined {}",
        s.file,
        s.run_id,
        s.read,
        s.inserted,
        yuan(s.inserted_fen),
        s.duplicate,
        s.quarantined
    );
    print_quarantine_sample(s.run_id, &s.quarantine_sample);
}

/// Fen as yuan with two decimals, from the integer: no float on the way.
fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}
