//! `vigil payments import`: the payment ledger read back (spec §7).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
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
}

/// `vigil payments …`.
pub async fn run(action: PaymentsAction, settings: &Settings) -> Result<ExitCode> {
    match action {
        PaymentsAction::Import { file, json } => import(&file, json, settings).await,
    }
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
