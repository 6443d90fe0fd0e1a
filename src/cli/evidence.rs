//! `vigil evidence import` and `vigil video import`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use vigil::config::Settings;
use vigil::ingest::evidence::{EvidenceImportOptions, EvidenceImportSummary, EvidenceKind};
use vigil::store::Store;
use vigil::{audit, identity};

use super::progress::{file_len, import_bar};
use super::roster::print_quarantine_sample;
use super::{open_store, print_result};

#[derive(Subcommand)]
pub enum EvidenceAction {
    /// Import an evidence-of-life CSV: id_number,event_type,event_date,source_ref (UTF-8, BOM or not).
    #[command(
        long_about = "Imports an evidence-of-life file (spec §5): a CSV in UTF-8, with or \
        without a byte-order mark, with the columns id_number, event_type, event_date, source_ref \
        in any order. event_type is one of medical_settlement, in_person_service, bank_counter, \
        face_app, video_verified; event_date is YYYY-MM-DD. Each event proves the person was alive \
        on that day: a later death record for them is never matched `auto`, and the match shows \
        the evidence.\n\nThe header is checked first: a file lacking a column is refused before \
        anything is written, and vigil exits non-zero. Rows that cannot be used (a broken ID \
        number, an unknown event type, a date that is not real, in the future or before the \
        person's birth) are quarantined with their line and reason while the rest goes in; \
        `vigil quarantine RUN` lists them. Legacy 15-digit ID numbers are upgraded. Importing \
        the same file again stores nothing twice: those rows count as duplicates."
    )]
    Import {
        /// The evidence-of-life CSV file.
        file: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum VideoAction {
    /// Import a video-results CSV: id_number,session_at,result,operator,note (UTF-8, BOM or not).
    #[command(
        long_about = "Imports remote video verification results (spec §6): a CSV in UTF-8, \
        with or without a byte-order mark, with the columns id_number, session_at, result, \
        operator, note in any order. session_at is an ISO 8601 time with its offset \
        (2026-11-26T09:30:00+08:00); result is passed, failed or no_show. Only a passed session \
        proves the person was alive, on the session's day in China; failed (the face did not \
        match, or someone else appeared) and no_show do not.\n\nA file lacking a column is \
        refused before anything is written, and vigil exits non-zero. Bad rows are quarantined \
        with line and reason while the rest goes in. The same session (ID and time) imported \
        again is a duplicate; sent again with a different result it is quarantined and the \
        stored one is kept."
    )]
    Import {
        /// The video-results CSV file.
        file: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `vigil evidence import`.
pub async fn evidence(action: EvidenceAction, settings: &Settings) -> Result<ExitCode> {
    let EvidenceAction::Import { file, json } = action;
    import_evidence_file(EvidenceKind::LifeEvidence, &file, json, settings).await
}

/// `vigil video import`.
pub async fn video(action: VideoAction, settings: &Settings) -> Result<ExitCode> {
    let VideoAction::Import { file, json } = action;
    import_evidence_file(EvidenceKind::VideoResults, &file, json, settings).await
}

/// Either import: the summary, or the summary as JSON.
async fn import_evidence_file(
    kind: EvidenceKind,
    file: &Path,
    json: bool,
    settings: &Settings,
) -> Result<ExitCode> {
    let store = open_store(settings).await?;
    let s = evidence_import_with_progress(&store, kind, file, settings).await?;
    print_result(json, &s, print_evidence_summary)?;
    Ok(ExitCode::SUCCESS)
}

async fn evidence_import_with_progress(
    store: &Store,
    kind: EvidenceKind,
    file: &Path,
    settings: &Settings,
) -> Result<EvidenceImportSummary> {
    let bar = import_bar(file_len(file)?);
    let opts = EvidenceImportOptions {
        batch_rows: settings.import.batch_rows,
        actor: audit::cli_actor(),
        today: identity::today_in_china(),
    };
    let progress = |bytes: u64| bar.set_position(bytes);
    let result = match kind {
        EvidenceKind::LifeEvidence => {
            vigil::ingest::evidence::import_life_evidence(store, file, &opts, &progress).await
        }
        EvidenceKind::VideoResults => {
            vigil::ingest::evidence::import_video_results(store, file, &opts, &progress).await
        }
    };
    bar.finish_and_clear();
    Ok(result?)
}

pub fn print_evidence_summary(s: &EvidenceImportSummary) {
    let what = match s.kind {
        EvidenceKind::LifeEvidence => "evidence of life",
        EvidenceKind::VideoResults => "video verification results",
    };
    println!("imported {} ({what}) as run {}", s.file, s.run_id);
    println!("  read         {:>10}", s.read);
    println!("  inserted     {:>10}", s.inserted);
    println!(
        "  duplicate    {:>10}  (already stored, or repeated in the file)",
        s.duplicate
    );
    println!("  quarantined  {:>10}", s.quarantined);
    if s.upgraded_ids > 0 {
        println!("  legacy 15-digit IDs upgraded: {}", s.upgraded_ids);
    }
    if !s.by_type.is_empty() {
        let parts: Vec<String> = s.by_type.iter().map(|(k, n)| format!("{k} {n}")).collect();
        match s.kind {
            EvidenceKind::LifeEvidence => println!("  by event type: {}", parts.join(", ")),
            EvidenceKind::VideoResults => println!(
                "  by result: {} (only passed sessions prove life)",
                parts.join(", ")
            ),
        }
    }
    print_quarantine_sample(s.run_id, &s.quarantine_sample);
    println!("  sha256 {}", s.sha256);
}
