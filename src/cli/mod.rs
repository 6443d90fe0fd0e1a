//! The command line, one file per command group: [`roster`], [`evidence`]
//! (and video results), [`payments`] (the ledger and the payroll
//! instructions), [`pull`] (and connectors), [`matching`] (match, matches,
//! eval, rules), [`cases`] (the queue: cases, case, tip), [`users`] (user),
//! [`admin`] (runs, quarantine, audit, db, config) and [`demo`] (and
//! generate). A command calls the library, prints its
//! result and draws its progress ([`progress`]); the work itself is the
//! library's, where `vigil serve` finds it too.

mod admin;
mod cases;
mod demo;
mod evidence;
mod matching;
mod payments;
mod progress;
mod pull;
mod roster;
mod users;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use vigil::config::Settings;
use vigil::store::Store;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Finds pensioners who have died, without ever cutting off the living by mistake",
    long_about = "vigil imports the pensioner roster and death data from public security, civil \
                  affairs and funeral homes, matches them, and keeps an audited record of every \
                  step.\n\nSettings come from built-in defaults, then vigil.toml (or --config), \
                  then VIGIL__SECTION__KEY environment variables; `vigil config show` prints the \
                  result."
)]
pub struct Cli {
    /// Settings file (default: vigil.toml in the working directory, if present).
    #[arg(long, global = true, env = "VIGIL_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Database to use: sqlite://FILE (created if missing) or postgres://USER@HOST/DB.
    #[arg(
        long,
        global = true,
        env = "VIGIL_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Log what a run does step by step: -v info, -vv debug (VIGIL_LOG overrides). Warnings and errors always show.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show the effective settings.
    Config {
        #[command(subcommand)]
        action: admin::ConfigAction,
    },
    /// Database maintenance.
    Db {
        #[command(subcommand)]
        action: admin::DbAction,
    },
    /// Import a roster export (spec §1).
    Roster {
        #[command(subcommand)]
        action: roster::RosterAction,
    },
    /// Import evidence of life (spec §5): hospital bills settled in person, counter visits, face checks.
    Evidence {
        #[command(subcommand)]
        action: evidence::EvidenceAction,
    },
    /// Import remote video verification results (spec §6).
    Video {
        #[command(subcommand)]
        action: evidence::VideoAction,
    },
    /// The payment ledger (spec §7): what the payroll paid, read back monthly.
    Payments {
        #[command(subcommand)]
        action: payments::PaymentsAction,
    },
    /// The matching rules: train proposed weights from the stored data.
    Rules {
        #[command(subcommand)]
        action: matching::RulesAction,
    },
    /// List recent runs (imports and pulls) with their counts.
    Runs {
        /// How many runs to show, newest first.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Show what a run quarantined: line, reason (never the raw row, which may hold ID numbers).
    Quarantine {
        /// The run id, as shown by `vigil runs`.
        run: i64,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Pull death data from the sources defined in the connectors directory.
    Pull {
        /// Directory of connector definitions (one TOML file per source).
        #[arg(long, default_value = "connectors", value_name = "DIR")]
        connectors: PathBuf,
        /// Sources to pull, by name (default: all).
        sources: Vec<String>,
        /// Print the summaries as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Match stored death records against the active roster.
    Match {
        #[command(subcommand)]
        action: Option<matching::MatchAction>,
        /// Re-match every death record. Without it, only the records not yet
        /// matched under the current rules (new, changed, or matched under
        /// other rules) are matched; the other matches are kept.
        #[arg(long)]
        full: bool,
        /// Rules file (default: rules/matching.toml if present, else the built-in rules).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
    },
    /// Export matches.
    Matches {
        #[command(subcommand)]
        action: matching::MatchesAction,
    },
    /// Precision and recall of the stored matches against a truth file (the generator's truth.csv).
    Eval {
        #[arg(long, value_name = "FILE")]
        truth: PathBuf,
        #[arg(long)]
        json: bool,
        /// The rules the matches were made with (default: rules/matching.toml if present, else the built-in rules); a match carried to auto by another source is judged by its fusion settings.
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
    },
    /// The suspension queue: list the cases.
    Cases {
        #[command(subcommand)]
        action: cases::CasesAction,
    },
    /// One case: show it, propose an action, approve, reject or withdraw a proposal, record a recovery.
    Case {
        #[command(subcommand)]
        action: cases::CaseAction,
    },
    /// Tips (举报) about pensioners.
    Tip {
        #[command(subcommand)]
        action: cases::TipAction,
    },
    /// Check connector definitions.
    Connectors {
        #[command(subcommand)]
        action: pull::ConnectorsAction,
    },
    /// The people who work the queue and their roles.
    User {
        #[command(subcommand)]
        action: users::UserAction,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        action: admin::AuditAction,
    },
    /// Write deterministic synthetic data in every source's real format.
    Generate(demo::GenerateArgs),
    /// Generate a population, run the whole pipeline on it into vigil-demo.db, and say what happened.
    Demo {
        /// Pensioners to generate.
        #[arg(long, default_value_t = 20_000)]
        pensioners: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Where the generated files go.
        #[arg(long, default_value = "vigil-demo-data")]
        data_dir: PathBuf,
        /// The demo database (recreated on every run).
        #[arg(long, default_value = "vigil-demo.db")]
        db: PathBuf,
    },
}

/// Runs one command; the exit code says whether it found what it checks
/// for (a failed source, a wrong definition, a broken audit chain).
pub async fn run(command: Command, settings: Settings) -> Result<ExitCode> {
    let settings = &settings;
    match command {
        Command::Config { action } => admin::config(action, settings),
        Command::Db { action } => admin::db(action, settings).await,
        Command::Roster { action } => roster::run(action, settings).await,
        Command::Evidence { action } => evidence::evidence(action, settings).await,
        Command::Video { action } => evidence::video(action, settings).await,
        Command::Payments { action } => payments::run(action, settings).await,
        Command::Rules { action } => matching::rules(action, settings).await,
        Command::Runs { limit } => admin::runs(limit, settings).await,
        Command::Quarantine { run, limit } => admin::quarantine(run, limit, settings).await,
        Command::Pull {
            connectors,
            sources,
            json,
        } => pull::pull(&connectors, &sources, json, settings).await,
        Command::Match {
            action: None,
            full,
            rules,
        } => matching::match_records(full, rules.as_deref(), settings).await,
        Command::Match {
            action: Some(action),
            ..
        } => matching::match_action(action, settings).await,
        Command::Matches { action } => matching::matches(action, settings).await,
        Command::Eval { truth, json, rules } => {
            matching::eval(&truth, json, rules.as_deref(), settings).await
        }
        Command::Cases { action } => cases::cases(action, settings).await,
        Command::Case { action } => cases::case(action, settings).await,
        Command::Tip { action } => cases::tip(action, settings).await,
        Command::Connectors { action } => pull::connectors(action),
        Command::User { action } => users::run(action, settings).await,
        Command::Audit { action } => admin::audit(action, settings).await,
        Command::Generate(args) => demo::generate(args),
        Command::Demo {
            pensioners,
            seed,
            data_dir,
            db,
        } => demo::run(pensioners, seed, data_dir, db, settings).await,
    }
}

/// A command's result: as pretty JSON with `--json`, else as `text` prints
/// it.
fn print_result<T: serde::Serialize + ?Sized>(
    json: bool,
    value: &T,
    text: impl FnOnce(&T),
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        text(value);
    }
    Ok(())
}

/// The database the settings name, migrated.
async fn open_store(settings: &Settings) -> Result<Store> {
    let url = settings.database.url.expose();
    Store::open(url, settings.database.max_connections)
        .await
        .with_context(|| format!("opening {}", vigil::config::mask_url_password(url)))
}

/// A password: asked for with `prompt` and not echoed when standard input
/// is a terminal, else the first line of standard input (its line ending
/// removed, nothing else: spaces may be part of a password).
pub fn read_password(prompt: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return rpassword::prompt_password(prompt).context("reading the password");
    }
    let mut line = String::new();
    let read = stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    if read == 0 {
        bail!("no password: standard input is empty (give the password as its first line)");
    }
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(line)
}
