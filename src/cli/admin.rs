//! `vigil runs`, `vigil quarantine`, `vigil audit verify|export`, `vigil db
//! migrate` and `vigil config show`: looking after the database and the
//! settings.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use vigil::audit;
use vigil::config::Settings;
use vigil::store::Store;

use super::open_store;

#[derive(Subcommand)]
pub enum ConfigAction {
    /// Print the effective settings as TOML, secrets masked.
    Show,
}

#[derive(Subcommand)]
pub enum DbAction {
    /// Apply pending migrations (they are also applied on every start).
    Migrate,
}

#[derive(Subcommand)]
pub enum AuditAction {
    /// Check the hash chain; exits non-zero and names the first broken entry if any.
    Verify,
    /// Write every entry, in order, as JSON lines (seq, at, actor, action,
    /// subject, details, prev_hash, hash).
    Export {
        /// The file to write, whole or not at all (`-` or none: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `vigil config show`.
pub fn config(action: ConfigAction, settings: &Settings) -> Result<ExitCode> {
    let ConfigAction::Show = action;
    print!("{}", settings.to_masked_toml());
    Ok(ExitCode::SUCCESS)
}

/// `vigil db migrate`.
pub async fn db(action: DbAction, settings: &Settings) -> Result<ExitCode> {
    let DbAction::Migrate = action;
    let url = settings.database.url.expose();
    let store = Store::connect(url, settings.database.max_connections).await?;
    let applied = store.migrate().await?;
    println!(
        "{}: {applied} migration(s) applied, schema up to date",
        vigil::config::mask_url_password(url)
    );
    Ok(ExitCode::SUCCESS)
}

/// `vigil runs`.
pub async fn runs(limit: i64, settings: &Settings) -> Result<ExitCode> {
    let store = open_store(settings).await?;
    let runs = store.list_runs(limit).await?;
    if runs.is_empty() {
        println!("no runs yet");
    }
    println!(
        "{:>5}  {:<16} {:<8} {:<10} {:>10} {:>9} {:>8} {:>10} {:>7} {:>7}  file",
        "run",
        "kind",
        "status",
        "as of",
        "read",
        "inserted",
        "changed",
        "unchanged",
        "quar.",
        "missing"
    );
    for r in runs {
        println!(
            "{:>5}  {:<16} {:<8} {:<10} {:>10} {:>9} {:>8} {:>10} {:>7} {:>7}  {}",
            r.id,
            r.kind,
            r.status,
            r.as_of.map(|d| d.to_string()).unwrap_or_default(),
            r.read_count,
            r.inserted,
            r.changed,
            r.unchanged,
            r.quarantined,
            r.missing,
            r.file.unwrap_or_default()
        );
        if let Some(m) = r.message {
            println!("       {m}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil quarantine RUN`: line and reason, never the raw row.
pub async fn quarantine(run: i64, limit: usize, settings: &Settings) -> Result<ExitCode> {
    let store = open_store(settings).await?;
    let Some(r) = store.get_run(run).await? else {
        bail!("there is no run {run}; `vigil runs` lists them");
    };
    let rows = store.quarantine_for_run(run).await?;
    println!(
        "run {run} ({}, {}): {} quarantined",
        r.kind,
        r.file.unwrap_or_default(),
        rows.len()
    );
    for q in rows.iter().take(limit) {
        let place = match (q.line, &q.record_key) {
            (Some(l), _) => format!("line {l}"),
            (None, Some(k)) => format!("record {k}"),
            _ => String::new(),
        };
        println!("  {place}: {}", q.reason);
    }
    if rows.len() > limit {
        println!("  … and {} more (--limit)", rows.len() - limit);
    }
    Ok(ExitCode::SUCCESS)
}

/// `vigil audit verify` (exits non-zero at the first broken entry) and
/// `vigil audit export`.
pub async fn audit(action: AuditAction, settings: &Settings) -> Result<ExitCode> {
    let store = open_store(settings).await?;
    match action {
        AuditAction::Verify => verify(&store).await,
        AuditAction::Export { out } => export(&store, out.as_deref()).await,
    }
}

async fn verify(store: &Store) -> Result<ExitCode> {
    let report = audit::verify(store).await?;
    match report.first_broken {
        None => {
            println!("audit log intact: {} entries verified", report.entries);
            Ok(ExitCode::SUCCESS)
        }
        Some(b) => {
            println!(
                "audit log BROKEN at entry {}: {} ({} entries before it are intact)",
                b.seq, b.reason, report.entries
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn export(store: &Store, out: Option<&Path>) -> Result<ExitCode> {
    match out.filter(|p| p.as_os_str() != "-") {
        None => {
            let mut stdout = std::io::BufWriter::new(std::io::stdout());
            audit::export_jsonl(store, &mut stdout).await?;
        }
        Some(path) => {
            let mut file = vigil::files::AtomicFile::create(path, ".vigil-audit-")
                .with_context(|| format!("creating {}", path.display()))?;
            let n = audit::export_jsonl(store, file.writer())
                .await
                .with_context(|| format!("writing {}", path.display()))?;
            file.commit()
                .with_context(|| format!("writing {}", path.display()))?;
            println!("{n} audit entries written to {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
