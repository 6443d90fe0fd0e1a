//! `vigil demo`: the whole pipeline on generated data, step by step, into a
//! database of its own: generate a population, import the roster and next
//! month's export (twice: an import is a snapshot), pull the death data
//! through the real connectors from a local simulated server, import
//! evidence of life and video results, match, score the matches against the
//! generator's truth, match again, verify the audit log.
//!
//! It sits on top like the command line: it calls the library's stages and
//! nothing calls it. It prints nothing: each step tells an [`Observer`] what
//! it begins and what it did (the summaries the commands print), and how far
//! its long work has got; the command line prints the one and draws the
//! other as a progress bar. It reads no clock (the date comes in).

use std::io;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};

use crate::audit;
use crate::cases::machine::{Action, Role};
use crate::cases::queue::{self, CaseView, QueueError, StepDone, SyncSummary};
use crate::cases::users::{self, AuthError, UserError};
use crate::cases::{CaseRules, ProposalRequest};
use crate::generate::{self, GenerateError, GenerateOptions, GenerateSummary, NextExportSummary};
use crate::ingest::connectors::{self, PullProgress, PullSummary, sim::SimPullError};
use crate::ingest::evidence::{
    self, EvidenceImportError, EvidenceImportOptions, EvidenceImportSummary, EvidenceKind,
};
use crate::ingest::payments::{
    PaymentsImportError, PaymentsImportOptions, PaymentsImportSummary, import_payments,
};
use crate::ingest::roster::{self, ImportError, ImportOptions, ImportSummary};
use crate::matching::eval::EvalReport;
use crate::matching::explain::Explanation;
use crate::matching::export::{EvalError, evaluate_against_truth};
use crate::matching::rules::MatchRules;
use crate::matching::rules_file::{RulesFileError, load_rules};
use crate::matching::run::{MatchRunError, MatchSummary, run_match_scoped};
use crate::matching::view::{CounterEvidenceTally, counter_evidence_tally};
use crate::store::cases::CaseFilter;
use crate::store::match_state::MatchScope;
use crate::store::matches::StoredMatch;
use crate::store::{Store, StoreError};

/// The connector definitions shipped in `connectors/`, compiled in so the
/// demo runs from any directory.
const BUILTIN_CONNECTORS: [(&str, &str); 3] = [
    (
        "public_security.toml",
        include_str!("../connectors/public_security.toml"),
    ),
    (
        "civil_affairs.toml",
        include_str!("../connectors/civil_affairs.toml"),
    ),
    ("funeral.toml", include_str!("../connectors/funeral.toml")),
];

/// What the demo runs on.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Pensioners to generate.
    pub pensioners: u64,
    /// The generator's seed: the same seed and date give the same data.
    pub seed: u64,
    /// Where the generated files (and the connector definitions) go.
    pub data_dir: PathBuf,
    /// The demo's SQLite database, deleted and created again on every run
    /// so that every run tells the same story.
    pub db: PathBuf,
    /// The date the data stands for; next month's export is a month later.
    pub as_of: NaiveDate,
    /// Rows per transaction in the imports (`import.batch_rows`).
    pub batch_rows: usize,
    /// The database pool's size (`database.max_connections`).
    pub max_connections: u32,
    /// Who acts in the audit log.
    pub actor: String,
}

/// Long work a step does, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Generating data; [`Observer::advanced`] counts the pensioners written.
    Generate { pensioners: u64 },
    /// Importing a file; [`Observer::advanced`] counts the bytes read.
    Import { bytes: u64 },
    /// Pulling the death sources; [`Observer::pulled`] says how far.
    Pull,
    /// Matching; no count, only time passing.
    Match,
}

/// What the demo tells its observer, in order: a step begins, then what it
/// did. The summaries are those the commands of the same name give.
#[derive(Debug)]
pub enum Event<'a> {
    /// The demo begins.
    Started {
        pensioners: u64,
        seed: u64,
        as_of: NaiveDate,
    },
    /// Step 1: synthetic data is generated into this directory.
    Generating {
        data_dir: &'a Path,
    },
    Generated(&'a GenerateSummary),
    /// Step 2: the roster is imported into this (new) database.
    ImportingRoster {
        db: &'a Path,
    },
    /// A roster export was imported (the first, then next month's).
    RosterImported(&'a ImportSummary),
    /// Step 3: next month's export was written, with these changes; it is
    /// imported next.
    NextExportWritten {
        file: &'a Path,
        changes: &'a NextExportSummary,
    },
    /// The same export is imported again.
    ReimportingRoster,
    /// ... and nothing changed.
    RosterReimported(&'a ImportSummary),
    /// Step 4: the death data is pulled through the connectors from a local
    /// simulated server.
    Pulling,
    /// A pull of every source ended (the first, then the second).
    Pulled(&'a [PullSummary]),
    /// Everything is pulled again: all of it is recognised.
    PullingAgain,
    /// Step 6: evidence of life and video results are imported.
    ImportingEvidence,
    /// One evidence file was imported (evidence of life, then video results).
    EvidenceImported(&'a EvidenceImportSummary),
    /// Step 5: the death records are matched against the roster.
    Matching,
    Matched(&'a MatchSummary),
    /// How evidence of life after the death date weighed on the matches.
    CounterEvidence(&'a CounterEvidenceTally),
    /// The matches scored against the generator's truth file.
    Evaluated(&'a EvalReport),
    /// The first match in `review`, to show why; `explanation` is `None`
    /// when the stored one cannot be read.
    ReviewExample {
        stored: &'a StoredMatch,
        explanation: Option<&'a Explanation>,
    },
    /// The records are matched again after the evidence of life: only
    /// new or changed ones, and those whose pensioner was proven alive
    /// after the death since.
    MatchingAgain,
    MatchedAgain(&'a MatchSummary),
    /// A match run's deaths became cases: opened (payments held for
    /// `auto`) or updated.
    CasesOpened(&'a SyncSummary),
    /// Step 7: the suspension queue: a caseworker and a reviewer are
    /// created, the payment ledger imported, and two cases worked.
    WorkingCases,
    /// A demo user, with the demo password printed so the reader can sign
    /// in as them.
    UserCreated {
        name: &'a str,
        role: Role,
        password: &'a str,
    },
    LedgerImported(&'a PaymentsImportSummary),
    /// One case worked end to end: proposed by the caseworker, approved by
    /// the reviewer, its outcome carried out.
    CaseWorked(&'a WorkedCase),
    /// Step 8: the audit log is verified.
    VerifyingAudit,
    /// ... and holds this many entries, the chain intact.
    AuditIntact {
        entries: u64,
    },
    /// The demo ran to its end.
    Finished,
}

/// A case the demo worked, as the command line would have.
#[derive(Debug, Clone)]
pub struct WorkedCase {
    pub case_id: i64,
    pub person_no: String,
    pub band: Option<String>,
    pub request: ProposalRequest,
    pub proposer: String,
    pub approver: String,
    pub proposed: StepDone,
    pub approved: StepDone,
}

/// The demo's users: (name, role, password). Printed, since this is a demo.
pub const DEMO_USERS: [(&str, Role, &str); 2] = [
    ("demo-jingban", Role::Caseworker, "jingban-demo-2026"),
    ("demo-shenhe", Role::Reviewer, "shenhe-demo-2026"),
];

/// Whoever runs the demo: told every [`Event`] and the progress of every
/// piece of long [`Work`]. Progress may be reported from another thread.
pub trait Observer: Send + Sync {
    /// A step began or ended.
    fn event(&mut self, event: Event<'_>);
    /// Long work begins; [`Observer::work_finished`] follows it, also when
    /// it fails.
    fn work_started(&mut self, work: Work);
    /// How much of a [`Work::Generate`] or [`Work::Import`] is done.
    fn advanced(&self, done: u64);
    /// How far a [`Work::Pull`] has got.
    fn pulled(&self, progress: &PullProgress<'_>);
    fn work_finished(&mut self);
}

/// Why the demo stopped: the step's own error, with the file it concerns
/// where the step names none.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("generating data into {}", data_dir.display())]
    Generate {
        data_dir: PathBuf,
        #[source]
        source: GenerateError,
    },
    /// A file or directory of the demo could not be read, written or
    /// removed; `doing` says which.
    #[error("{doing} {}", path.display())]
    File {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Roster(#[from] ImportError),
    #[error(transparent)]
    NextExport(GenerateError),
    /// A build defect: the definitions compiled in do not load.
    #[error("built-in connector definitions are invalid: {0}")]
    Connectors(String),
    #[error(transparent)]
    Pull(#[from] SimPullError),
    #[error(transparent)]
    Evidence(#[from] EvidenceImportError),
    /// `rules/matching.toml` (read if present) is unreadable or invalid.
    #[error(transparent)]
    Rules(#[from] RulesFileError),
    #[error(transparent)]
    Match(#[from] MatchRunError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("audit log broken at entry {seq}: {reason}")]
    AuditBroken { seq: i64, reason: String },
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Payments(#[from] PaymentsImportError),
}

/// The [`DemoError::File`] of an I/O error on `path`.
fn file_error(doing: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DemoError {
    let path = path.to_path_buf();
    move |source| DemoError::File {
        doing,
        path,
        source,
    }
}

/// Runs the demo, step by step, telling `observer` what happens.
pub async fn run<O: Observer + ?Sized>(
    opts: &DemoOptions,
    observer: &mut O,
) -> Result<(), DemoError> {
    let data_dir = opts.data_dir.as_path();
    observer.event(Event::Started {
        pensioners: opts.pensioners,
        seed: opts.seed,
        as_of: opts.as_of,
    });

    observer.event(Event::Generating { data_dir });
    let generated = generate_data(opts, observer)?;
    observer.event(Event::Generated(&generated));

    let store = fresh_database(opts).await?;
    let roster_file = data_dir.join(generate::ROSTER_FILE);
    observer.event(Event::ImportingRoster { db: &opts.db });
    let first = import_roster(&store, &roster_file, opts.as_of, opts, observer).await?;
    observer.event(Event::RosterImported(&first));

    let next_as_of = opts
        .as_of
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(opts.as_of);
    let next_file = data_dir.join("roster-next-month.csv");
    let changes = generate::next_export(&roster_file, &next_file, opts.seed)
        .map_err(DemoError::NextExport)?;
    observer.event(Event::NextExportWritten {
        file: &next_file,
        changes: &changes,
    });
    let second = import_roster(&store, &next_file, next_as_of, opts, observer).await?;
    observer.event(Event::RosterImported(&second));
    observer.event(Event::ReimportingRoster);
    let third = import_roster(&store, &next_file, next_as_of, opts, observer).await?;
    observer.event(Event::RosterReimported(&third));

    observer.event(Event::Pulling);
    let defs = builtin_connectors(&data_dir.join("connectors"))?;
    let pulled = pull(&store, &defs, data_dir, observer).await?;
    observer.event(Event::Pulled(&pulled));
    observer.event(Event::PullingAgain);
    let again = pull(&store, &defs, data_dir, observer).await?;
    observer.event(Event::Pulled(&again));

    // The cases are made at the start of the demo's day in China.
    let day_start = |d: NaiveDate| {
        d.and_hms_opt(9, 0, 0)
            .and_then(|t| t.and_local_timezone(chrono_tz::Asia::Shanghai).single())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    };
    // Matched as the deaths arrive, before the evidence of life: an `auto`
    // match holds the payment at once.
    observer.event(Event::Matching);
    let rules = load_rules(None)?;
    let matched = match_pending(&store, &rules, opts, observer).await?;
    observer.event(Event::Matched(&matched));
    if let Some(opened) =
        queue::sync_death_cases(&store, &opts.actor, day_start(opts.as_of)).await?
    {
        observer.event(Event::CasesOpened(&opened));
    }

    observer.event(Event::ImportingEvidence);
    for (kind, name) in [
        (EvidenceKind::LifeEvidence, generate::EVIDENCE_FILE),
        (EvidenceKind::VideoResults, generate::VIDEO_FILE),
    ] {
        let s = import_evidence(&store, kind, &data_dir.join(name), opts, observer).await?;
        observer.event(Event::EvidenceImported(&s));
    }
    // Proof of life dated after a death: those records are judged again,
    // and their cases say so (the payment stays held until people decide).
    observer.event(Event::MatchingAgain);
    let again = match_pending(&store, &rules, opts, observer).await?;
    observer.event(Event::MatchedAgain(&again));
    if let Some(updated) =
        queue::sync_death_cases(&store, &opts.actor, day_start(opts.as_of)).await?
    {
        observer.event(Event::CasesOpened(&updated));
    }
    let tally = counter_evidence_tally(&store.list_matches().await?);
    observer.event(Event::CounterEvidence(&tally));
    let report =
        evaluate_against_truth(&store, &data_dir.join(generate::TRUTH_FILE), &rules).await?;
    observer.event(Event::Evaluated(&report));
    if let Some(stored) = store
        .list_matches()
        .await?
        .into_iter()
        .find(|m| m.band == "review")
    {
        let explanation = Explanation::from_stored(&stored.explanation).ok();
        observer.event(Event::ReviewExample {
            stored: &stored,
            explanation: explanation.as_ref(),
        });
    }

    observer.event(Event::WorkingCases);
    work_cases(&store, opts, observer, day_start).await?;

    observer.event(Event::VerifyingAudit);
    let verified = audit::verify(&store).await?;
    if let Some(b) = verified.first_broken {
        return Err(DemoError::AuditBroken {
            seq: b.seq,
            reason: b.reason,
        });
    }
    observer.event(Event::AuditIntact {
        entries: verified.entries,
    });
    observer.event(Event::Finished);
    store.close().await;
    Ok(())
}

/// Step 7: two demo users, the ledger, and two cases worked end to end
/// two months after the cases opened: a true death confirmed (its
/// overpayment counted) and a false match resumed (its back pay counted),
/// each chosen with the generator's truth.
async fn work_cases<O: Observer + ?Sized>(
    store: &Store,
    opts: &DemoOptions,
    observer: &mut O,
    day_start: impl Fn(NaiveDate) -> chrono::DateTime<Utc>,
) -> Result<(), DemoError> {
    for (name, role, password) in DEMO_USERS {
        users::add_user(store, name, role, password, &opts.actor).await?;
        observer.event(Event::UserCreated {
            name,
            role,
            password,
        });
    }
    let ledger_file = opts.data_dir.join(generate::PAYMENTS_FILE);
    let bytes = file_len(&ledger_file)?;
    observer.work_started(Work::Import { bytes });
    let ledger = import_payments(
        store,
        &ledger_file,
        &PaymentsImportOptions {
            batch_rows: opts.batch_rows,
            actor: opts.actor.clone(),
            today: opts.as_of,
        },
        &|b| observer_advanced(b),
    )
    .await;
    observer.work_finished();
    observer.event(Event::LedgerImported(&ledger?));

    let truth = read_truth(&opts.data_dir.join(generate::TRUTH_FILE))?;
    let cases = queue::list_cases(store, &CaseFilter::default()).await?;
    let mut true_death = None;
    let mut false_match = None;
    for c in &cases {
        let view = queue::case_view(store, c.id, None).await?;
        let all_true = !view.evidence.is_empty()
            && view.evidence.iter().all(|e| {
                truth.get(&(e.source.clone(), e.record_key.clone()))
                    == Some(&(c.person_no.clone(), "pensioner".to_string()))
            });
        // Prefer a held payment for the false match: its back pay shows.
        // The true death longest ago: the most paid after it.
        if all_true
            && c.band.as_deref() == Some("auto")
            && true_death
                .as_ref()
                .is_none_or(|t: &CaseView| view.death_date < t.death_date)
        {
            true_death = Some(view);
        } else if !all_true
            && !view.evidence.is_empty()
            && false_match
                .as_ref()
                .is_none_or(|f: &CaseView| f.payment != "suspended" && c.payment == "suspended")
        {
            false_match = Some(view);
        }
    }
    let rules = CaseRules::default_rules();
    let at = day_start(
        opts.as_of
            .checked_add_months(chrono::Months::new(2))
            .unwrap_or(opts.as_of),
    );
    let signed_in = |i: usize| async move {
        let (name, _, password) = DEMO_USERS[i];
        users::authenticate(store, name, password).await
    };
    let (caseworker, reviewer) = (signed_in(0).await?, signed_in(1).await?);
    let plans = [
        true_death.map(|v| {
            let date = v.death_date;
            (
                v,
                ProposalRequest {
                    action: Action::ConfirmDeath,
                    reason: "death_confirmed_by_registry".into(),
                    note: "户籍注销与火化记录一致，家属确认".into(),
                    death_date: date,
                },
            )
        }),
        false_match.map(|v| {
            (
                v,
                ProposalRequest {
                    action: Action::FalseMatch,
                    reason: "alive_verified".into(),
                    note: "本人到社保窗口核验身份，确认生存".into(),
                    death_date: None,
                },
            )
        }),
    ];
    for (view, request) in plans.into_iter().flatten() {
        let proposed =
            queue::propose(store, &rules, &caseworker, view.id, request.clone(), at).await?;
        let Some(proposal) = proposed.proposal else {
            continue;
        };
        let approved = queue::approve(store, &reviewer, proposal, "核实无误，同意", at).await?;
        observer.event(Event::CaseWorked(&WorkedCase {
            case_id: view.id,
            person_no: view.person_no.clone(),
            band: view.band.clone(),
            request,
            proposer: caseworker.user.clone(),
            approver: reviewer.user.clone(),
            proposed,
            approved,
        }));
    }
    Ok(())
}

/// Progress of the ledger import is not drawn: it is a second's work.
fn observer_advanced(_bytes: u64) {}

/// The generator's truth: (source, record_key) → (person_no, kind).
type Truth = std::collections::HashMap<(String, String), (String, String)>;

/// Reads the generator's truth file.
fn read_truth(path: &Path) -> Result<Truth, DemoError> {
    let text = std::fs::read_to_string(path).map_err(file_error("reading", path))?;
    let mut out = std::collections::HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() >= 4 {
            out.insert(
                (f[0].to_string(), f[1].to_string()),
                (f[2].to_string(), f[3].to_string()),
            );
        }
    }
    Ok(out)
}

fn generate_data<O: Observer + ?Sized>(
    opts: &DemoOptions,
    observer: &mut O,
) -> Result<GenerateSummary, DemoError> {
    let mut gen_opts = GenerateOptions::new(
        opts.pensioners,
        opts.seed,
        opts.data_dir.clone(),
        opts.as_of,
    );
    gen_opts.death_rate = 0.01;
    // A few more living people wrongly registered dead than the default: the
    // queue's false match, its held payment resumed with back pay, shows.
    gen_opts.false_deaths = 0.05;
    observer.work_started(Work::Generate {
        pensioners: opts.pensioners,
    });
    let o: &O = observer;
    let result = generate::generate(&gen_opts, &|n| o.advanced(n));
    observer.work_finished();
    result.map_err(|source| DemoError::Generate {
        data_dir: opts.data_dir.clone(),
        source,
    })
}

/// The demo database, deleted with its SQLite companions and opened anew.
async fn fresh_database(opts: &DemoOptions) -> Result<Store, DemoError> {
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", opts.db.display()));
        if path.exists() {
            std::fs::remove_file(&path)
                .map_err(file_error("removing the old demo database", &path))?;
        }
    }
    let url = format!("sqlite://{}", opts.db.display());
    Ok(Store::open(&url, opts.max_connections).await?)
}

fn file_len(path: &Path) -> Result<u64, DemoError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(file_error("cannot read", path))
}

async fn import_roster<O: Observer + ?Sized>(
    store: &Store,
    file: &Path,
    as_of: NaiveDate,
    opts: &DemoOptions,
    observer: &mut O,
) -> Result<ImportSummary, DemoError> {
    let bytes = file_len(file)?;
    let import = ImportOptions {
        as_of,
        batch_rows: opts.batch_rows,
        actor: opts.actor.clone(),
    };
    observer.work_started(Work::Import { bytes });
    let o: &O = observer;
    let result = roster::import_roster(store, file, &import, &|n| o.advanced(n)).await;
    observer.work_finished();
    Ok(result?)
}

async fn import_evidence<O: Observer + ?Sized>(
    store: &Store,
    kind: EvidenceKind,
    file: &Path,
    opts: &DemoOptions,
    observer: &mut O,
) -> Result<EvidenceImportSummary, DemoError> {
    let bytes = file_len(file)?;
    let import = EvidenceImportOptions {
        batch_rows: opts.batch_rows,
        actor: opts.actor.clone(),
        today: opts.as_of,
    };
    observer.work_started(Work::Import { bytes });
    let o: &O = observer;
    let progress = |n| o.advanced(n);
    let result = match kind {
        EvidenceKind::LifeEvidence => {
            evidence::import_life_evidence(store, file, &import, &progress).await
        }
        EvidenceKind::VideoResults => {
            evidence::import_video_results(store, file, &import, &progress).await
        }
    };
    observer.work_finished();
    Ok(result?)
}

/// Writes the built-in connector definitions into `dir` and loads them.
fn builtin_connectors(dir: &Path) -> Result<Vec<connectors::Definition>, DemoError> {
    std::fs::create_dir_all(dir).map_err(file_error("creating", dir))?;
    for (name, text) in BUILTIN_CONNECTORS {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(file_error("writing", &path))?;
    }
    connectors::load_definitions(dir).map_err(|problems| {
        DemoError::Connectors(
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// Every source, served from the generated files by a local server.
async fn pull<O: Observer + ?Sized>(
    store: &Store,
    defs: &[connectors::Definition],
    data_dir: &Path,
    observer: &mut O,
) -> Result<Vec<PullSummary>, DemoError> {
    observer.work_started(Work::Pull);
    let o: &O = observer;
    let result =
        connectors::sim::pull_through_sim(store, defs, &[], data_dir, &|p| o.pulled(p)).await;
    observer.work_finished();
    Ok(result?)
}

async fn match_pending<O: Observer + ?Sized>(
    store: &Store,
    rules: &MatchRules,
    opts: &DemoOptions,
    observer: &mut O,
) -> Result<MatchSummary, DemoError> {
    observer.work_started(Work::Match);
    let result = run_match_scoped(store, rules, &opts.actor, MatchScope::Pending).await;
    observer.work_finished();
    Ok(result?)
}
