//! The `vigil` command line: parses arguments, calls the library, prints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use vigil::config::Settings;
use vigil::demo;
use vigil::ingest::connectors;
use vigil::ingest::evidence::{EvidenceImportOptions, EvidenceImportSummary, EvidenceKind};
use vigil::ingest::roster::{self, ImportOptions, ImportSummary};
use vigil::matching::export::{evaluate_against_truth, write_matches};
use vigil::matching::rules_file::{self, load_rules};
use vigil::matching::train::TrainingOptions;
use vigil::matching::view;
use vigil::store::Store;
use vigil::store::match_state::{MatchScope, StoredEvent};
use vigil::{audit, identity};

/// mimalloc: a pull normalises records on one thread and frees them on
/// another, millions of small strings a run; glibc's malloc spent about a
/// fifth of a CSV pull's CPU on that (cross-thread frees, and consolidating
/// their chunks whenever a file's buffer was allocated).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps memory the process freed for its own reuse instead of handing it
/// back to the system (mimalloc's `purge_delay` of -1).
///
/// vigil's runs are batch jobs that allocate and free gigabytes in phases
/// (a match run: roster, index, candidate pairs, explanations). By default
/// mimalloc returns freed pages to the kernel after 10 ms (`MADV_DONTNEED`,
/// about 6 GB over a 10M-pensioner `match --full`), and every later
/// allocation on them is a fresh page the kernel must zero again; on the
/// virtual machines this runs on a fresh page costs about a second per GiB.
/// Kept, the run no longer re-zeroes those pages, for 0.1-0.5 GiB more peak
/// memory; its wall-clock gain is inside our machines' noise (BENCHMARKS.md,
/// session 6). The `MIMALLOC_PURGE_DELAY` environment variable
/// is read before `main`; this overrides it.
fn keep_freed_memory() {
    // `mi_option_purge_delay` in mimalloc's include/mimalloc.h (the 16th
    // option of `mi_option_e`, in v2 and v3 alike); libmimalloc-sys is
    // pinned in Cargo.toml so that the number cannot drift.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets one integer option; mimalloc reads it when it next
    // considers purging.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

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
struct Cli {
    /// Settings file (default: vigil.toml in the working directory, if present).
    #[arg(long, global = true, env = "VIGIL_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Database to use: sqlite://FILE (created if missing) or postgres://USER@HOST/DB.
    #[arg(
        long,
        global = true,
        env = "VIGIL_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the effective settings.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Database maintenance.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// Import a roster export (spec §1).
    Roster {
        #[command(subcommand)]
        action: RosterAction,
    },
    /// Import evidence of life (spec §5): hospital bills settled in person, counter visits, face checks.
    Evidence {
        #[command(subcommand)]
        action: EvidenceAction,
    },
    /// Import remote video verification results (spec §6).
    Video {
        #[command(subcommand)]
        action: VideoAction,
    },
    /// The matching rules: train proposed weights from the stored data.
    Rules {
        #[command(subcommand)]
        action: RulesAction,
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
        action: Option<MatchAction>,
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
        action: MatchesAction,
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
    /// Check connector definitions.
    Connectors {
        #[command(subcommand)]
        action: ConnectorsAction,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Write deterministic synthetic data in every source's real format.
    Generate(GenerateArgs),
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

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the effective settings as TOML, secrets masked.
    Show,
}

#[derive(Subcommand)]
enum DbAction {
    /// Apply pending migrations (they are also applied on every start).
    Migrate,
}

#[derive(Subcommand)]
enum RosterAction {
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

#[derive(Subcommand)]
enum EvidenceAction {
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
enum VideoAction {
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

#[derive(Subcommand)]
enum RulesAction {
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

#[derive(Subcommand)]
enum MatchAction {
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
enum MatchesAction {
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
enum ExportFormat {
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
enum ConnectorsAction {
    /// Validate every definition; says exactly what is wrong in which file and key.
    Check {
        #[arg(long, default_value = "connectors", value_name = "DIR")]
        connectors: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Check the hash chain; exits non-zero and names the first broken entry if any.
    Verify,
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Number of pensioners in the roster.
    #[arg(long)]
    pensioners: u64,
    /// Seed: the same seed and date give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// The date the data stands for (default: today in China).
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: Option<NaiveDate>,
    /// Share of pensioners who died in the 60 days before the date (at most
    /// 0.2); about 2.2 death-source records come per death. 0.023 gives
    /// about a million records for ten million pensioners.
    #[arg(long, default_value_t = 0.01)]
    death_rate: f64,
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref(), cli.database_url.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings.log.level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn open_store(settings: &Settings) -> Result<Store> {
    let url = settings.database.url.expose();
    Store::open(url, settings.database.max_connections)
        .await
        .with_context(|| format!("opening {}", vigil::config::mask_url_password(url)))
}

async fn run(command: Command, settings: Settings) -> Result<ExitCode> {
    match command {
        Command::Config {
            action: ConfigAction::Show,
        } => {
            print!("{}", settings.to_masked_toml());
        }
        Command::Db {
            action: DbAction::Migrate,
        } => {
            let url = settings.database.url.expose();
            let store = Store::connect(url, settings.database.max_connections).await?;
            let applied = store.migrate().await?;
            println!(
                "{}: {applied} migration(s) applied, schema up to date",
                vigil::config::mask_url_password(url)
            );
        }
        Command::Roster {
            action: RosterAction::Import { file, as_of, json },
        } => {
            let store = open_store(&settings).await?;
            let summary = import_with_progress(&store, &file, as_of, &settings).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print_import_summary(&summary);
            }
        }
        Command::Evidence {
            action: EvidenceAction::Import { file, json },
        } => import_evidence_file(EvidenceKind::LifeEvidence, &file, json, &settings).await?,
        Command::Video {
            action: VideoAction::Import { file, json },
        } => import_evidence_file(EvidenceKind::VideoResults, &file, json, &settings).await?,
        Command::Rules {
            action:
                RulesAction::Train {
                    rules,
                    out,
                    sample_pairs,
                    seed,
                    json,
                },
        } => {
            let rules_path = rules_file::rules_path_in_use(rules.as_deref());
            let current = load_rules(rules.as_deref())?;
            let store = open_store(&settings).await?;
            let opts = vigil::matching::propose::ProposeOptions {
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
            let result = vigil::matching::propose::propose_rules(&store, &current, &opts).await;
            bar.finish_and_clear();
            let proposal = result?;
            if json {
                println!("{}", serde_json::to_string_pretty(&proposal)?);
            } else {
                print_proposal(&proposal, rules_path.as_deref());
            }
        }
        Command::Runs { limit } => {
            let store = open_store(&settings).await?;
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
        }
        Command::Quarantine { run, limit } => {
            let store = open_store(&settings).await?;
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
        }
        Command::Match {
            action: None,
            full,
            rules,
        } => {
            let rules = load_rules(rules.as_deref())?;
            let store = open_store(&settings).await?;
            let scope = if full {
                MatchScope::All
            } else {
                MatchScope::Pending
            };
            let s = match_with_spinner(&store, &rules, scope).await?;
            print_match_summary(&s);
        }
        Command::Match {
            action: Some(MatchAction::Explain { key, source }),
            ..
        } => {
            let store = open_store(&settings).await?;
            let found = view::matches_of_record(&store, &key, source.as_deref()).await?;
            if found.is_empty() {
                bail!(
                    "no match for record {key}; `vigil matches export` lists the matched records"
                );
            }
            for m in &found {
                print_explained_match(&view::explain_match(&store, m).await?);
            }
        }
        Command::Matches {
            action: MatchesAction::Export { format, out, rules },
        } => {
            let store = open_store(&settings).await?;
            let rules = load_rules(rules.as_deref())?;
            let matches = vigil::matching::run::match_verdicts(&store, &rules).await?;
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
        }
        Command::Eval { truth, json, rules } => {
            let store = open_store(&settings).await?;
            let rules = load_rules(rules.as_deref())?;
            let report = evaluate_against_truth(&store, &truth, &rules).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_eval(&report);
            }
        }
        Command::Connectors {
            action: ConnectorsAction::Check { connectors },
        } => {
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
            } else {
                for p in &problems {
                    println!("{p}");
                }
                println!("{} problem(s) in {}", problems.len(), connectors.display());
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Pull {
            connectors: dir,
            sources,
            json,
        } => {
            let defs = match connectors::load_definitions(&dir) {
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
            let store = open_store(&settings).await?;
            let summaries = pull_with_progress(&store, &defs, &sources, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summaries)?);
            } else {
                print_pull_summaries(&summaries);
            }
            if summaries.iter().any(|s| !s.ok()) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Audit {
            action: AuditAction::Verify,
        } => {
            let store = open_store(&settings).await?;
            let report = audit::verify(&store).await?;
            match report.first_broken {
                None => println!("audit log intact: {} entries verified", report.entries),
                Some(b) => {
                    println!(
                        "audit log BROKEN at entry {}: {} ({} entries before it are intact)",
                        b.seq, b.reason, report.entries
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Command::Generate(args) => {
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
        }
        Command::Demo {
            pensioners,
            seed,
            data_dir,
            db,
        } => {
            let opts = demo::DemoOptions {
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
            demo::run(&opts, &mut printer).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Pulls with a spinner on a terminal. With `sim_data`, the sources are
/// served from that generated directory by a local server.
async fn pull_with_progress(
    store: &Store,
    defs: &[connectors::Definition],
    only: &[String],
    sim_data: Option<&Path>,
) -> Result<Vec<connectors::PullSummary>> {
    let bar = pull_spinner();
    let progress = |p: &connectors::PullProgress<'_>| show_pull_progress(&bar, p);
    let result = match sim_data {
        None => connectors::pull(store, defs, only, &progress)
            .await
            .map_err(anyhow::Error::from),
        Some(dir) => connectors::sim::pull_through_sim(store, defs, only, dir, &progress)
            .await
            .map_err(anyhow::Error::from),
    };
    bar.finish_and_clear();
    result
}

fn print_pull_summaries(summaries: &[connectors::PullSummary]) {
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

async fn match_with_spinner(
    store: &Store,
    rules: &vigil::matching::rules::MatchRules,
    scope: MatchScope,
) -> Result<vigil::matching::run::MatchSummary> {
    let bar = ticking_spinner("{spinner} matching… {elapsed}");
    let result =
        vigil::matching::run::run_match_scoped(store, rules, &audit::cli_actor(), scope).await;
    bar.finish_and_clear();
    Ok(result?)
}

fn print_match_summary(s: &vigil::matching::run::MatchSummary) {
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

fn print_eval(r: &vigil::matching::eval::EvalReport) {
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
    if !r.usable_missed_by_source.is_empty() {
        println!(
            "     of them missed, by source: {:?}",
            r.usable_missed_by_source
        );
    }
    if !r.false_auto_by_kind.is_empty() {
        println!("   wrong auto matches by kind: {:?}", r.false_auto_by_kind);
        println!(
            "     of them on a pensioner alive in the truth: {}",
            r.false_auto_living
        );
    }
    if !r.false_review_by_kind.is_empty() {
        println!(
            "   wrong review matches by kind: {:?}",
            r.false_review_by_kind
        );
    }
    if !r.missed_by_source.is_empty() {
        println!("   true deaths missed, by source: {:?}", r.missed_by_source);
    }
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

fn print_import_summary(s: &ImportSummary) {
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
    if !s.quarantine_sample.is_empty() {
        println!(
            "  quarantined rows (first {}; `vigil quarantine {}` lists all):",
            s.quarantine_sample.len(),
            s.run_id
        );
        for (line, reason) in &s.quarantine_sample {
            println!("    line {line}: {reason}");
        }
    }
    println!("  sha256 {}", s.sha256);
}

/// `vigil evidence import` and `vigil video import`.
async fn import_evidence_file(
    kind: EvidenceKind,
    file: &Path,
    json: bool,
    settings: &Settings,
) -> Result<()> {
    let store = open_store(settings).await?;
    let s = evidence_import_with_progress(&store, kind, file, settings).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_evidence_summary(&s);
    }
    Ok(())
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

fn print_evidence_summary(s: &EvidenceImportSummary) {
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
    if !s.quarantine_sample.is_empty() {
        println!(
            "  quarantined rows (first {}; `vigil quarantine {}` lists all):",
            s.quarantine_sample.len(),
            s.run_id
        );
        for (line, reason) in &s.quarantine_sample {
            println!("    line {line}: {reason}");
        }
    }
    println!("  sha256 {}", s.sha256);
}

fn print_proposal(p: &vigil::matching::propose::Proposal, in_use: Option<&Path>) {
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
        .unwrap_or_else(|| vigil::matching::propose::DEFAULT_RULES_PATH.to_string());
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
fn print_explained_match(v: &view::ExplainedMatch) {
    println!("{} {} -> pensioner {}", v.source, v.record_key, v.person_no);
    println!(
        "{}",
        vigil::matching::explain::render_waterfall(&v.explanation)
    );
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

/// `vigil demo`: prints the demo's steps as they happen and draws their
/// progress.
struct DemoPrinter {
    db: PathBuf,
    bar: ProgressBar,
}

impl demo::Observer for DemoPrinter {
    fn event(&mut self, event: demo::Event<'_>) {
        use demo::Event;
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
                "\n5. importing evidence of life and video verification results: proof that people were \
                 alive on a date"
            ),
            Event::EvidenceImported(summary) => print_evidence_summary(summary),
            Event::Matching => {
                println!("\n6. matching the death records against the active roster")
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
                "   matching again: only new or changed records are matched, the rest are kept"
            ),
            Event::MatchedAgain(summary) => println!(
                "   {} records to match, {} earlier matches kept",
                summary.records, summary.kept
            ),
            Event::VerifyingAudit => println!("\n7. verifying the audit log"),
            Event::AuditIntact { entries } => println!("   intact: {entries} entries"),
            Event::Finished => println!(
                "\ndone. Look around with: vigil --database-url sqlite://{} runs",
                self.db.display()
            ),
        }
    }

    fn work_started(&mut self, work: demo::Work) {
        self.bar = match work {
            demo::Work::Generate { pensioners } => generate_bar(pensioners),
            demo::Work::Import { bytes } => import_bar(bytes),
            demo::Work::Pull => pull_spinner(),
            demo::Work::Match => ticking_spinner("{spinner} matching… {elapsed}"),
        };
    }

    fn advanced(&self, done: u64) {
        self.bar.set_position(done);
    }

    fn pulled(&self, progress: &connectors::PullProgress<'_>) {
        show_pull_progress(&self.bar, progress);
    }

    fn work_finished(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn file_len(file: &Path) -> Result<u64> {
    Ok(std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len())
}

/// A bar over the bytes of a file being imported.
fn import_bar(bytes: u64) -> ProgressBar {
    ProgressBar::new(bytes).with_style(
        ProgressStyle::with_template(
            "{spinner} importing [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    )
}

/// A bar over the pensioners being generated.
fn generate_bar(pensioners: u64) -> ProgressBar {
    ProgressBar::new(pensioners).with_style(
        ProgressStyle::with_template(
            "{spinner} generating [{bar:40}] {human_pos}/{human_len} pensioners ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    )
}

/// A spinner that says which source is being pulled and how far.
fn pull_spinner() -> ProgressBar {
    ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} pulling {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    )
}

fn show_pull_progress(bar: &ProgressBar, p: &connectors::PullProgress<'_>) {
    bar.set_message(format!(
        "{}: {} records, {} pages, {} files",
        p.source, p.read, p.pages, p.files
    ));
    bar.tick();
}

/// A spinner that turns on its own while work that reports no progress runs.
fn ticking_spinner(template: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
