//! `vigil cases list`, `vigil case show|propose|approve|reject|withdraw|recover`
//! and `vigil tip add`: the suspension queue from the command line. Every
//! step calls `vigil::cases::queue`, the same functions the web pages use.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Subcommand, ValueEnum};
use vigil::audit;
use vigil::cases::machine::{Action, Actor};
use vigil::cases::queue::{self, CaseView, QueueError};
use vigil::cases::{CaseRules, ProposalRequest};
use vigil::config::Settings;
use vigil::identity;
use vigil::store::Store;
use vigil::store::cases::{CaseFilter, CaseListRow};

use super::open_store;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Subcommand)]
pub enum CasesAction {
    /// List the queue: CSV header case_id,person_no,reason,band,state,payment,opened_at.
    #[command(
        long_about = "Lists the suspension queue, oldest case first. reason is why the case \
        opened (death_match, tip, certification); band is the match's (auto, review) for a \
        death match; state is open, proposed (a proposal waits for approval) or approved \
        (decided); payment is paid, suspended or terminated (vigil's own hold or termination \
        where it made one, the roster's status otherwise); opened_at is in Asia/Shanghai."
    )]
    List {
        /// Only cases in this state: open, proposed, approved.
        #[arg(long)]
        state: Option<String>,
        /// Only death-match cases of this band: auto, review.
        #[arg(long)]
        band: Option<String>,
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum CaseAction {
    /// Show one case: the pensioner, each death record beside the roster, the score, the history, the money.
    Show {
        id: i64,
        /// Print the case as JSON.
        #[arg(long)]
        json: bool,
        /// Read as this user (a supervisor also sees a tip's contact); asks for the password.
        #[arg(long)]
        user: Option<String>,
    },
    /// Propose an action on a case; prints the new proposal's id as its last word.
    #[command(
        long_about = "Proposes an action on a case. Actions: confirm_death, false_match, \
        resume, send_to_video, close_duplicate, write_off. --reason is one of the action's \
        reason codes in rules/cases.toml (`vigil case reasons` lists them). A confirmed death \
        ends the pension from the death date: the case's, unless --death-date says otherwise. \
        The password is read from a prompt, or from standard input when it is not a terminal. \
        A refused proposal changes nothing, says which rule refused it and exits 1."
    )]
    Propose {
        id: i64,
        #[arg(long)]
        action: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        note: String,
        #[arg(long)]
        user: String,
        /// For confirm_death: the date the pension ends from (default: the case's death date).
        #[arg(long, value_name = "YYYY-MM-DD")]
        death_date: Option<NaiveDate>,
        /// Case rules file (default: rules/cases.toml if present, else the built-in rules).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
    },
    /// Approve a proposal; the last approval it needs carries it out.
    Approve {
        proposal: i64,
        #[arg(long)]
        note: String,
        #[arg(long)]
        user: String,
    },
    /// Reject a proposal: the case goes back to open.
    Reject {
        proposal: i64,
        #[arg(long)]
        note: String,
        #[arg(long)]
        user: String,
    },
    /// Withdraw your own proposal (a supervisor may withdraw anyone's).
    Withdraw {
        proposal: i64,
        #[arg(long)]
        user: String,
    },
    /// Record money recovered on a confirmed death's overpayment.
    Recover {
        id: i64,
        /// Yuan, e.g. 3268.50.
        #[arg(long)]
        amount: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        on: NaiveDate,
        #[arg(long)]
        user: String,
    },
    /// List the reason codes of every action, with their labels.
    Reasons {
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum TipAction {
    /// Record a tip (举报) about a pensioner: opens a case, or joins their open one.
    Add {
        person_no: String,
        #[arg(long)]
        note: String,
        /// The reporter's contact: kept private, shown only to supervisors.
        #[arg(long)]
        contact: Option<String>,
    },
}

/// Opens the store and brings the cases up to the latest match run first
/// (a crash between a match run and its cases leaves them behind).
async fn store_with_cases(settings: &Settings) -> Result<Store> {
    let store = open_store(settings).await?;
    queue::sync_death_cases(&store, &audit::cli_actor(), Utc::now()).await?;
    Ok(store)
}

pub async fn cases(action: CasesAction, settings: &Settings) -> Result<ExitCode> {
    let CasesAction::List {
        state,
        band,
        format,
        out,
    } = action;
    let store = store_with_cases(settings).await?;
    let rows = queue::list_cases(
        &store,
        &CaseFilter {
            state,
            band,
            person_no: None,
        },
    )
    .await?;
    let write = |w: &mut dyn Write| -> Result<()> {
        match format {
            Format::Csv => write_csv(w, &rows),
            Format::Json => {
                let list: Vec<serde_json::Value> = rows.iter().map(row_json).collect();
                serde_json::to_writer_pretty(&mut *w, &list)?;
                writeln!(w)?;
                Ok(())
            }
        }
    };
    match out {
        Some(path) => {
            vigil::files::write_atomically(&path, "cases", |f| {
                write(f).map_err(std::io::Error::other)
            })
            .with_context(|| format!("writing {}", path.display()))?;
            println!("{} cases written to {}", rows.len(), path.display());
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            write(&mut lock)?;
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

fn shanghai(at: &str) -> String {
    DateTime::parse_from_rfc3339(at)
        .map(|t| {
            t.with_timezone(&chrono_tz::Asia::Shanghai)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_else(|_| at.to_string())
}

fn write_csv(w: &mut dyn Write, rows: &[CaseListRow]) -> Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    csv.write_record([
        "case_id",
        "person_no",
        "reason",
        "band",
        "state",
        "payment",
        "opened_at",
    ])?;
    for r in rows {
        csv.write_record([
            r.id.to_string().as_str(),
            &r.person_no,
            &r.reason,
            r.band.as_deref().unwrap_or(""),
            &r.state,
            &r.payment,
            &shanghai(&r.opened_at),
        ])?;
    }
    csv.flush()?;
    Ok(())
}

fn row_json(r: &CaseListRow) -> serde_json::Value {
    serde_json::json!({
        "case_id": r.id,
        "person_no": r.person_no,
        "reason": r.reason,
        "band": r.band,
        "state": r.state,
        "payment": r.payment,
        "opened_at": shanghai(&r.opened_at),
    })
}

pub async fn tip(action: TipAction, settings: &Settings) -> Result<ExitCode> {
    let TipAction::Add {
        person_no,
        note,
        contact,
    } = action;
    let store = open_store(settings).await?;
    let added = queue::add_tip(
        &store,
        &person_no,
        &note,
        contact.as_deref(),
        &audit::cli_actor(),
    )
    .await;
    store.close().await;
    let added = added?;
    if added.opened {
        println!("tip recorded: case {} opened", added.case_id);
    } else {
        println!("tip recorded on open case {}", added.case_id);
    }
    Ok(ExitCode::SUCCESS)
}

/// Signs `user` in with a password read from a prompt or standard input.
async fn sign_in(store: &Store, user: &str) -> Result<Actor> {
    let password = super::read_password(&format!("password for {user}: "))?;
    let actor = vigil::cases::users::authenticate(store, user, &password).await?;
    Ok(actor)
}

/// A refusal exits 1 with the rule that refused it; other errors are errors.
fn refused(
    result: std::result::Result<queue::StepDone, QueueError>,
) -> Result<Option<queue::StepDone>> {
    match result {
        Ok(done) => Ok(Some(done)),
        Err(QueueError::Refused(r)) => {
            eprintln!("error: refused: {r}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, (fen % 100).abs())
}

fn fen_of(text: &str) -> Result<i64> {
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        bail!("amount `{text}` is not yuan with at most two decimals, like 3268.50");
    }
    let whole: i64 = whole.parse().context("amount too large")?;
    let frac: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
    Ok(whole * 100 + frac)
}

pub async fn case(action: CaseAction, settings: &Settings) -> Result<ExitCode> {
    let store = store_with_cases(settings).await?;
    let result = case_inner(action, &store).await;
    store.close().await;
    result
}

async fn case_inner(action: CaseAction, store: &Store) -> Result<ExitCode> {
    let now = Utc::now();
    let done = match action {
        CaseAction::Show { id, json, user } => {
            let reader = match user {
                Some(u) => Some(sign_in(store, &u).await?),
                None => None,
            };
            let view = queue::case_view(store, id, reader.as_ref()).await?;
            let matches = store.matches_of_person(&view.person_no).await?;
            if json {
                let mut explained = Vec::new();
                for m in &matches {
                    explained.push(vigil::matching::view::explain_match(store, m).await?);
                }
                let mut value = serde_json::to_value(&view)?;
                value["matches"] = serde_json::to_value(&explained)?;
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print_case(store, &view, &matches).await?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        CaseAction::Reasons { rules } => {
            let rules = CaseRules::load(rules.as_deref()).map_err(anyhow::Error::msg)?;
            println!("case rules {}", rules.version);
            for action in Action::ALL {
                let rule = rules.rule(action);
                let roles: Vec<String> = rule.approvers.iter().map(|r| r.to_string()).collect();
                println!("{action} (approved by {}):", roles.join(" + "));
                for (code, label) in &rule.reasons {
                    println!("  {code:<28} {label}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        CaseAction::Propose {
            id,
            action,
            reason,
            note,
            user,
            death_date,
            rules,
        } => {
            let rules = CaseRules::load(rules.as_deref()).map_err(anyhow::Error::msg)?;
            let Some(action) = Action::parse(&action) else {
                bail!("unknown action `{action}`; actions are {}", Action::names());
            };
            let case = store.case(id).await?.ok_or(QueueError::NoCase(id))?;
            let death_date = match action {
                Action::ConfirmDeath => death_date.or(case.death_date),
                _ => death_date,
            };
            let actor = sign_in(store, &user).await?;
            let request = ProposalRequest {
                action,
                reason,
                note,
                death_date,
            };
            refused(queue::propose(store, &rules, &actor, id, request, now).await)?
        }
        CaseAction::Approve {
            proposal,
            note,
            user,
        } => {
            let actor = sign_in(store, &user).await?;
            refused(queue::approve(store, &actor, proposal, &note, now).await)?
        }
        CaseAction::Reject {
            proposal,
            note,
            user,
        } => {
            let actor = sign_in(store, &user).await?;
            refused(queue::reject(store, &actor, proposal, &note, now).await)?
        }
        CaseAction::Withdraw { proposal, user } => {
            let actor = sign_in(store, &user).await?;
            refused(queue::withdraw(store, &actor, proposal, now).await)?
        }
        CaseAction::Recover {
            id,
            amount,
            on,
            user,
        } => {
            let fen = fen_of(&amount)?;
            let actor = sign_in(store, &user).await?;
            match queue::record_recovery(store, &actor, id, fen, on).await {
                Ok(o) => {
                    println!(
                        "case {id}: recovered {} of {} yuan; overpayment {}",
                        yuan(o.recovered_fen),
                        yuan(o.amount_fen),
                        o.status
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                Err(QueueError::Refused(r)) => {
                    eprintln!("error: refused: {r}");
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let Some(done) = done else {
        return Ok(ExitCode::FAILURE);
    };
    print_step(&done);
    Ok(ExitCode::SUCCESS)
}

fn print_step(done: &queue::StepDone) {
    println!("{}", step_line(done));
}

/// What a step did, in one line; the proposal's id is its last word.
pub(super) fn step_line(done: &queue::StepDone) -> String {
    let mut line = format!("case {}: {}", done.case_id, done.state);
    if let Some(outcome) = &done.outcome {
        let what = match outcome {
            vigil::cases::Outcome::Terminate { from } => {
                format!("pension terminated from {from}")
            }
            vigil::cases::Outcome::ResumeAndSuppress if done.amount_fen.is_some() => {
                "false match: payment resumed, the pair suppressed from matching".into()
            }
            vigil::cases::Outcome::ResumeAndSuppress => {
                "false match: the pair suppressed from matching (the payment was never held)".into()
            }
            vigil::cases::Outcome::Resume if done.amount_fen.is_some() => "payment resumed".into(),
            vigil::cases::Outcome::Resume => "nothing was held: payment goes on".into(),
            vigil::cases::Outcome::BookVideo => "sent to video verification".into(),
            vigil::cases::Outcome::CloseDuplicate => "closed as a duplicate".into(),
            vigil::cases::Outcome::WriteOff => "overpayment written off".into(),
        };
        line.push_str(&format!("; {what}"));
        match (outcome, done.amount_fen) {
            (vigil::cases::Outcome::Terminate { .. }, Some(fen)) => {
                line.push_str(&format!("; overpayment to recover {} yuan", yuan(fen)));
            }
            (_, Some(fen)) => line.push_str(&format!("; back pay {} yuan", yuan(fen))),
            _ => {}
        }
    }
    // The proposal's id is the last word, for scripts.
    if let Some(p) = done.proposal {
        line.push_str(&format!("; proposal {p}"));
    }
    line
}

async fn print_case(
    store: &Store,
    view: &CaseView,
    matches: &[vigil::store::matches::StoredMatch],
) -> Result<()> {
    println!(
        "case {}  {}  state {}{}  payment {}",
        view.id,
        view.reason,
        view.state,
        view.decision
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default(),
        view.payment
    );
    println!(
        "  opened {} by {}",
        shanghai(&view.opened_at),
        view.opened_by
    );
    if let Some(p) = store.get_pensioner(&view.person_no).await? {
        println!(
            "pensioner {}  {}  ID {}  born {}  sex {}  insured {}  lives {}  {} yuan/month  status {}",
            p.person_no,
            p.name,
            identity::mask(&p.id_number),
            p.birth_date,
            p.sex,
            p.insured_region,
            p.residence_region,
            yuan(p.monthly_amount_fen),
            p.status
        );
    }
    if let (Some(band), Some(date)) = (&view.band, view.death_date) {
        println!("death {date} ({band}), {} record(s):", view.evidence.len());
    }
    for m in matches {
        let explained = vigil::matching::view::explain_match(store, m).await?;
        super::matching::print_explained_match(&explained);
    }
    if !view.tips.is_empty() {
        println!("tips:");
        for t in &view.tips {
            println!(
                "  {} by {}: {}{}",
                shanghai(&t.added_at),
                t.added_by,
                t.note,
                t.contact
                    .as_deref()
                    .map(|c| format!("  (contact: {c})"))
                    .unwrap_or_default()
            );
        }
    }
    if !view.proposals.is_empty() {
        println!("proposals:");
        for p in &view.proposals {
            let approvals: Vec<String> = p
                .approvals
                .iter()
                .map(|a| format!("{} ({})", a.user, a.role))
                .collect();
            println!(
                "  {} {} by {} ({}): reason {}, note {:?}; {}{}",
                p.id,
                p.action,
                p.proposer,
                p.proposer_role,
                p.reason,
                p.note,
                p.status,
                if approvals.is_empty() {
                    String::new()
                } else {
                    format!(", approved by {}", approvals.join(", "))
                }
            );
        }
    }
    println!("history:");
    for h in &view.history {
        println!("  {:>3} {} {} {}", h.seq, shanghai(&h.at), h.actor, h.kind);
    }
    if !view.payment_changes.is_empty() {
        println!("payment changes:");
        for c in &view.payment_changes {
            println!(
                "  {} {} from {}{} (case {}, payroll {})",
                c.period,
                c.change,
                c.effective_from,
                c.amount_fen
                    .map(|f| format!(", {} yuan", yuan(f)))
                    .unwrap_or_default(),
                c.case_id,
                c.period
            );
        }
    }
    if let Some(o) = &view.overpayment {
        println!(
            "overpayment since {}: {} yuan ({} from the ledger, {} estimated), recovered {} yuan, {}",
            o.death_date,
            yuan(o.amount_fen),
            yuan(o.ledger_fen),
            yuan(o.estimated_fen),
            yuan(o.recovered_fen),
            o.status
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_text_becomes_fen_exactly() {
        assert_eq!(fen_of("3268.50").unwrap(), 326_850);
        assert_eq!(fen_of("12").unwrap(), 1200);
        assert_eq!(fen_of("0.5").unwrap(), 50);
        assert!(fen_of("1.234").is_err());
        assert!(fen_of("-1").is_err());
        assert!(fen_of("abc").is_err());
        assert_eq!(yuan(326_850), "3268.50");
    }

    #[test]
    fn an_instant_is_shown_in_china() {
        assert_eq!(
            shanghai("2026-12-03T20:00:00Z"),
            "2026-12-04T04:00:00+08:00"
        );
    }
}
