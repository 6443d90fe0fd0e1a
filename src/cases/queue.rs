//! The suspension queue, kept: cases opened from a match run's deaths and
//! from tips, the steps people take on them (through the pure
//! [`machine`](super::machine)), and what an approved step carries out on
//! vigil's own payment state. The command line and the web pages call these
//! functions; neither writes a rule of its own.
//!
//! Every function here takes the instant it acts at (`at`): the payroll
//! month that carries a payment change and the date it takes effect are
//! that instant's in Asia/Shanghai.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::machine::{self, Action, Actor, Case, CaseEvent, Outcome, ProposalId, ProposalRequest};
use super::money::{self, Period};
use super::open::{self, Death, Evidence, PaymentState, Step, StoredCase};
use super::rules::CaseRules;
use crate::audit;
use crate::lifecycle;
use crate::model::Band;
use crate::store::LockKey;
use crate::store::cases::{
    CaseEventRow, CaseFilter, CaseListRow, CaseRef, CaseRow, CaseUpdate, CaseWrites, NewCase,
    NewCaseEvent, NewPaymentChange, NewTip, OverpaymentRow, PaymentChangeRow, TipRow,
};
use crate::store::{Store, StoreError};

/// Why a step on the queue could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A rule of the case machine refused it; nothing changed.
    #[error("refused: {0}")]
    Refused(#[from] machine::Refusal),
    #[error("there is no case {0}")]
    NoCase(i64),
    #[error("there is no proposal {0}")]
    NoProposal(i64),
    #[error("there is no pensioner {0} in the roster")]
    NoPensioner(String),
    #[error("a tip needs a note saying what was reported")]
    EmptyTip,
    #[error("case {case} is stored inconsistently: {what}")]
    Corrupt { case: i64, what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the audit entry: {0}")]
    Audit(String),
}

type Result<T> = std::result::Result<T, QueueError>;

/// The kinds of history entry the engine itself writes (the case machine's
/// events are stored under their own names).
pub mod kind {
    pub const OPENED: &str = "opened";
    pub const EVIDENCE_CHANGED: &str = "evidence_changed";
    pub const PAYMENT_HELD: &str = "payment_held";
    pub const TIP_ADDED: &str = "tip_added";
    pub const CARRIED_OUT: &str = "carried_out";
}

/// The names the case machine's events are stored under.
const MACHINE_KINDS: [&str; 6] = [
    "proposed",
    "approval",
    "proposal_approved",
    "rejected",
    "withdrawn",
    "reopened",
];

/// The date and payroll month of an instant, in China.
pub fn local_day(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&chrono_tz::Asia::Shanghai).date_naive()
}

fn period_of(at: DateTime<Utc>) -> String {
    Period::of(local_day(at)).to_string()
}

/// What a case sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncSummary {
    pub opened: u64,
    pub updated: u64,
    pub reopened: u64,
    pub held: u64,
    /// The match run whose deaths the cases now reflect.
    pub events_run: i64,
}

/// Brings the death-match cases in line with the deaths the latest match
/// run fused (see [`open`]): opens, updates, reopens and holds payments, in
/// one transaction, and writes one audit entry for the step. Does nothing
/// when the cases already reflect that run. A match run is followed by
/// this step; a crash between the two leaves it for the next one.
/// Runs under the match run's lock; while a match run holds it, does
/// nothing (that run's own sync follows it).
pub async fn sync_death_cases(
    store: &Store,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<Option<SyncSummary>> {
    let (synced, latest) = store.case_sync_state().await?;
    if synced == latest {
        return Ok(None);
    }
    let locked = lifecycle::with_run_lock(store, LockKey::Match, async |_| {
        sync_locked(store, actor, at).await
    })
    .await;
    match locked {
        Err(QueueError::Store(StoreError::MatchRunning(_))) => Ok(None),
        other => other,
    }
}

async fn sync_locked(store: &Store, actor: &str, at: DateTime<Utc>) -> Result<Option<SyncSummary>> {
    let (synced, latest) = store.case_sync_state().await?;
    if synced == latest {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let deaths_loading = {
        let store = store.clone();
        tokio::spawn(async move { store.deaths_for_cases().await })
    };
    let payments_loading = {
        let store = store.clone();
        tokio::spawn(async move { store.payment_changes().await })
    };
    let case_rows = store.death_match_cases().await?;
    let death_rows = deaths_loading
        .await
        .map_err(|e| QueueError::Audit(format!("the loading thread stopped: {e}")))??;
    let payments = payment_states(
        &payments_loading
            .await
            .map_err(|e| QueueError::Audit(format!("the loading thread stopped: {e}")))??,
    );
    // A death whose case already holds the same records, band and date (the
    // case stores the death's records as the run wrote them) needs nothing,
    // unless an `auto` one is still to be held: left out before anything is
    // parsed (a full run of unchanged data is all such deaths).
    let unchanged = unchanged_deaths(&case_rows, &death_rows, &payments);
    let cases: Vec<StoredCase> = case_rows
        .into_iter()
        .filter(|c| !unchanged.contains(c.person_no.as_str()))
        .map(stored_case)
        .collect::<Result<_>>()?;
    let mut raw_evidence: HashMap<String, String> = HashMap::new();
    let deaths: Vec<Death> = death_rows
        .into_iter()
        .filter(|d| !unchanged.contains(d.person_no.as_str()))
        .map(|d| {
            let mut evidence: Vec<Evidence> = serde_json::from_str(&d.records)
                .map_err(|e| StoreError::Corrupt(format!("the death of {}: {e}", d.person_no)))?;
            evidence.sort();
            raw_evidence.insert(d.person_no.clone(), d.records);
            Ok(Death {
                person_no: d.person_no,
                death_date: d.death_date,
                band: band_of(&d.band).unwrap_or(Band::Review),
                evidence,
            })
        })
        .collect::<std::result::Result<_, StoreError>>()?;
    tracing::info!(
        deaths = deaths.len(),
        cases = cases.len(),
        unchanged = unchanged.len(),
        seconds = started.elapsed().as_secs_f64(),
        "loaded the deaths and the cases"
    );
    let gone = open::gone_records(&cases, &deaths);
    let present = store.death_records_present(&gone).await?;
    let steps = open::plan(&cases, &deaths, &present, &payments);
    drop((cases, deaths));
    // The records as the run wrote them: what a later run compares.
    let evidence_text = |person: &str| {
        raw_evidence
            .get(person)
            .cloned()
            .unwrap_or_else(|| "[]".into())
    };

    let holds: Vec<&str> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Open {
                person_no,
                hold: true,
                ..
            }
            | Step::Update {
                person_no,
                hold: true,
                ..
            } => Some(person_no.as_str()),
            _ => None,
        })
        .collect();
    // Nothing is paid to a pensioner the roster says is terminated: no hold.
    let not_paid = store.terminated_among(&holds).await?;
    let today = local_day(at);
    let period = period_of(at);
    let mut w = CaseWrites {
        synced_events_run: Some(latest),
        ..Default::default()
    };
    let mut summary = SyncSummary {
        events_run: latest,
        ..Default::default()
    };
    for step in steps {
        match step {
            Step::Open {
                person_no,
                band,
                death_date,
                evidence,
                hold,
            } => {
                let case = CaseRef::New(w.new_cases.len());
                // The hold is told in the opening entry (one row, not two,
                // for each of the 600,000 cases a first full run opens).
                let held = hold && !not_paid.contains(&person_no);
                if held {
                    w.payment_changes.push(NewPaymentChange {
                        person_no: person_no.clone(),
                        change: "suspend".into(),
                        effective_from: today,
                        amount_fen: None,
                        case,
                        period: period.clone(),
                    });
                    summary.held += 1;
                }
                w.new_cases.push(NewCase {
                    person_no: person_no.clone(),
                    reason: "death_match".into(),
                    band: Some(band.as_str().into()),
                    death_date: Some(death_date),
                    evidence: evidence_text(&person_no),
                    opened_by: actor.into(),
                });
                w.events.push(NewCaseEvent {
                    case,
                    seq: 1,
                    actor: actor.into(),
                    kind: kind::OPENED.into(),
                    details: serde_json::json!({
                        "reason": "death_match",
                        "band": band,
                        "death_date": death_date,
                        "records": evidence.len(),
                        "payment_held": held.then(|| serde_json::json!({
                            "effective_from": today,
                            "period": period,
                        })),
                    })
                    .to_string(),
                });
                summary.opened += 1;
            }
            Step::Update {
                case_id,
                person_no,
                band,
                death_date,
                evidence: _,
                change,
                hold,
                reopen,
            } => {
                let hold = hold && !not_paid.contains(&person_no);
                if change == open::EvidenceChange::default() && !hold && reopen.is_none() {
                    // Only a hold was owed, and the roster pays nothing.
                    continue;
                }
                let case = CaseRef::Stored(case_id);
                let mut seq = store.next_case_seq(case_id).await?;
                let mut update = CaseUpdate {
                    id: case_id,
                    band: Some(band.map(|b| b.as_str().to_string())),
                    death_date: Some(death_date),
                    evidence: Some(evidence_text(&person_no)),
                    ..Default::default()
                };
                if change != open::EvidenceChange::default() {
                    w.events.push(NewCaseEvent {
                        case,
                        seq,
                        actor: actor.into(),
                        kind: kind::EVIDENCE_CHANGED.into(),
                        details: serde_json::to_string(&change).unwrap_or_default(),
                    });
                    seq += 1;
                }
                if let Some(why) = reopen {
                    let history = machine_case(&store.case_events(case_id).await?, case_id)?;
                    // A write-off waiting for approval refuses the reopening:
                    // the case stays decided and the evidence change says why.
                    if let Ok(t) = machine::reopen(&history, &why, at) {
                        for event in t.events {
                            push_machine_event(&mut w, case, seq, actor, &event);
                            seq += 1;
                        }
                        update.state = Some("open".into());
                        update.decision = Some(None);
                        summary.reopened += 1;
                    }
                }
                if hold {
                    hold_payment(&mut w, case, seq, &person_no, actor, today, &period);
                    summary.held += 1;
                }
                w.updates.push(update);
                summary.updated += 1;
            }
        }
    }
    tracing::info!(
        steps = summary.opened + summary.updated,
        seconds = started.elapsed().as_secs_f64(),
        "planned the cases"
    );
    store.write_cases(&w).await?;
    tracing::info!(
        opened = summary.opened,
        updated = summary.updated,
        held = summary.held,
        seconds = started.elapsed().as_secs_f64(),
        "wrote the cases"
    );
    if summary.opened + summary.updated > 0 {
        audit::append(
            store,
            actor,
            "cases.sync",
            &format!("match run {latest}"),
            &serde_json::to_value(&summary).unwrap_or_default(),
        )
        .await
        .map_err(|e| QueueError::Audit(e.to_string()))?;
    }
    Ok(Some(summary))
}

/// The persons whose death needs no step: their latest case is active and
/// holds exactly the death's records (as text), band and date, and no hold
/// is still owed.
fn unchanged_deaths(
    cases: &[CaseRow],
    deaths: &[crate::store::cases::DeathForCase],
    payments: &HashMap<String, PaymentState>,
) -> std::collections::HashSet<String> {
    let mut latest: HashMap<&str, &CaseRow> = HashMap::with_capacity(cases.len());
    for c in cases {
        // Ordered by id: the last one is the newest.
        latest.insert(c.person_no.as_str(), c);
    }
    deaths
        .iter()
        .filter(|d| {
            let Some(c) = latest.get(d.person_no.as_str()) else {
                return false;
            };
            let active = matches!(c.decision.as_deref(), None | Some("confirm_death"));
            let hold_owed = d.band == "auto"
                && c.decision.is_none()
                && !matches!(
                    payments.get(&d.person_no).copied().unwrap_or_default(),
                    PaymentState::Held | PaymentState::Terminated
                );
            active
                && !hold_owed
                && c.evidence == d.records
                && c.band.as_deref() == Some(d.band.as_str())
                && c.death_date == Some(d.death_date)
        })
        .map(|d| d.person_no.clone())
        .collect()
}

fn hold_payment(
    w: &mut CaseWrites,
    case: CaseRef,
    seq: i64,
    person_no: &str,
    actor: &str,
    today: NaiveDate,
    period: &str,
) {
    w.payment_changes.push(NewPaymentChange {
        person_no: person_no.into(),
        change: "suspend".into(),
        effective_from: today,
        amount_fen: None,
        case,
        period: period.into(),
    });
    w.events.push(NewCaseEvent {
        case,
        seq,
        actor: actor.into(),
        kind: kind::PAYMENT_HELD.into(),
        details: serde_json::json!({"effective_from": today, "period": period}).to_string(),
    });
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn band_of(text: &str) -> Option<Band> {
    match text {
        "auto" => Some(Band::Auto),
        "review" => Some(Band::Review),
        _ => None,
    }
}

fn stored_case(row: CaseRow) -> Result<StoredCase> {
    let mut evidence: Vec<Evidence> =
        serde_json::from_str(&row.evidence).map_err(|e| QueueError::Corrupt {
            case: row.id,
            what: format!("its evidence: {e}"),
        })?;
    evidence.sort();
    Ok(StoredCase {
        id: row.id,
        person_no: row.person_no,
        band: row.band.as_deref().and_then(band_of),
        death_date: row.death_date,
        evidence,
        decision: row.decision.as_deref().and_then(Action::parse),
    })
}

/// vigil's payment state per pensioner, from every change in order.
fn payment_states(changes: &[PaymentChangeRow]) -> HashMap<String, PaymentState> {
    let mut states: HashMap<String, PaymentState> = HashMap::new();
    for c in changes {
        let s = states.entry(c.person_no.clone()).or_default();
        *s = s.after(&c.change);
    }
    states
}

/// The case machine's view of a stored history.
fn machine_case(events: &[CaseEventRow], case: i64) -> Result<Case> {
    let mut out = Vec::new();
    for e in events {
        if MACHINE_KINDS.contains(&e.kind.as_str()) {
            let event: CaseEvent =
                serde_json::from_str(&e.details).map_err(|err| QueueError::Corrupt {
                    case,
                    what: format!("history entry {}: {err}", e.seq),
                })?;
            out.push(event);
        }
    }
    Ok(Case::from_history(out))
}

fn machine_kind(event: &CaseEvent) -> &'static str {
    match event {
        CaseEvent::Proposed { .. } => "proposed",
        CaseEvent::Approval { .. } => "approval",
        CaseEvent::ProposalApproved { .. } => "proposal_approved",
        CaseEvent::Rejected { .. } => "rejected",
        CaseEvent::Withdrawn { .. } => "withdrawn",
        CaseEvent::Reopened { .. } => "reopened",
    }
}

fn push_machine_event(w: &mut CaseWrites, case: CaseRef, seq: i64, actor: &str, event: &CaseEvent) {
    w.events.push(NewCaseEvent {
        case,
        seq,
        actor: actor.into(),
        kind: machine_kind(event).into(),
        details: json(event),
    });
}

/// A tip, and the case it opened or joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TipAdded {
    pub case_id: i64,
    /// A new case was opened (otherwise the tip joined an undecided one).
    pub opened: bool,
}

/// Records a tip (举报) about a pensioner: it opens a `tip` case, or joins
/// the pensioner's undecided one. The reporter's contact is kept with the
/// tip, never in the case's history or the audit log.
pub async fn add_tip(
    store: &Store,
    person_no: &str,
    note: &str,
    contact: Option<&str>,
    actor: &str,
) -> Result<TipAdded> {
    if note.trim().is_empty() {
        return Err(QueueError::EmptyTip);
    }
    if store.get_pensioner(person_no).await?.is_none() {
        return Err(QueueError::NoPensioner(person_no.to_string()));
    }
    let mut w = CaseWrites::default();
    let existing = store
        .latest_case_of(person_no, "tip")
        .await?
        .filter(|c| c.decision.is_none());
    let (case, seq, opened) = match &existing {
        Some(c) => (
            CaseRef::Stored(c.id),
            store.next_case_seq(c.id).await?,
            false,
        ),
        None => {
            w.new_cases.push(NewCase {
                person_no: person_no.into(),
                reason: "tip".into(),
                band: None,
                death_date: None,
                evidence: "[]".into(),
                opened_by: actor.into(),
            });
            (CaseRef::New(0), 1, true)
        }
    };
    let kind = if opened {
        kind::OPENED
    } else {
        kind::TIP_ADDED
    };
    w.events.push(NewCaseEvent {
        case,
        seq,
        actor: actor.into(),
        kind: kind.into(),
        details: serde_json::json!({
            "reason": "tip",
            "note": note,
            "contact_given": contact.is_some_and(|c| !c.trim().is_empty()),
        })
        .to_string(),
    });
    w.tips.push(NewTip {
        person_no: person_no.into(),
        note: note.into(),
        contact: contact.filter(|c| !c.trim().is_empty()).map(str::to_string),
        case,
        added_by: actor.into(),
    });
    let written = store.write_cases(&w).await?;
    let case_id = match case {
        CaseRef::Stored(id) => id,
        CaseRef::New(_) => written.case_ids[0],
    };
    audit_entry(
        store,
        actor,
        "case.tip",
        case_id,
        serde_json::json!({"person_no": person_no, "opened": opened, "note": note}),
    )
    .await?;
    Ok(TipAdded { case_id, opened })
}

async fn audit_entry(
    store: &Store,
    actor: &str,
    action: &str,
    case_id: i64,
    details: serde_json::Value,
) -> Result<()> {
    audit::append(store, actor, action, &format!("case {case_id}"), &details)
        .await
        .map_err(|e| QueueError::Audit(e.to_string()))?;
    Ok(())
}

/// A case with everything a person deciding it reads.
#[derive(Debug, Clone, Serialize)]
pub struct CaseView {
    pub id: i64,
    pub person_no: String,
    pub reason: String,
    pub band: Option<String>,
    pub state: String,
    pub decision: Option<String>,
    pub death_date: Option<NaiveDate>,
    pub evidence: Vec<Evidence>,
    pub opened_at: String,
    pub opened_by: String,
    /// `paid`, `suspended` or `terminated`.
    pub payment: String,
    pub history: Vec<HistoryEntry>,
    pub proposals: Vec<machine::Proposal>,
    /// Tips, without the reporter's contact unless the reader may see it.
    pub tips: Vec<TipView>,
    pub payment_changes: Vec<PaymentChangeView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overpayment: Option<OverpaymentView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub kind: String,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct TipView {
    pub id: i64,
    pub note: String,
    /// Only for supervisors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    pub added_by: String,
    pub added_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentChangeView {
    pub change: String,
    pub effective_from: NaiveDate,
    pub amount_fen: Option<i64>,
    pub case_id: i64,
    pub period: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OverpaymentView {
    pub death_date: NaiveDate,
    pub amount_fen: i64,
    pub ledger_fen: i64,
    pub estimated_fen: i64,
    pub months: serde_json::Value,
    pub status: String,
    pub recovered_fen: i64,
    pub recoveries: Vec<(i64, NaiveDate, String)>,
}

/// One case as [`CaseView`]; `reader` decides what private parts show (a
/// tip's contact: supervisors only).
pub async fn case_view(store: &Store, id: i64, reader: Option<&Actor>) -> Result<CaseView> {
    let row = store.case(id).await?.ok_or(QueueError::NoCase(id))?;
    let events = store.case_events(id).await?;
    let machine = machine_case(&events, id)?;
    let payment = store
        .list_cases(&CaseFilter {
            person_no: Some(row.person_no.clone()),
            ..Default::default()
        })
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.payment)
        .unwrap_or_else(|| "paid".into());
    let supervisor = reader.is_some_and(|a| a.role == machine::Role::Supervisor);
    let tips = store
        .tips_of_case(id)
        .await?
        .into_iter()
        .map(|t: TipRow| TipView {
            id: t.id,
            note: t.note,
            contact: t.contact.filter(|_| supervisor),
            added_by: t.added_by,
            added_at: t.added_at,
        })
        .collect();
    let payment_changes = store
        .payment_changes_of(&row.person_no)
        .await?
        .into_iter()
        .map(|c| PaymentChangeView {
            change: c.change,
            effective_from: c.effective_from,
            amount_fen: c.amount_fen,
            case_id: c.case_id,
            period: c.period,
        })
        .collect();
    let overpayment = match store.overpayment(id).await? {
        Some(o) => Some(overpayment_view(store, o).await?),
        None => None,
    };
    let mut evidence: Vec<Evidence> = serde_json::from_str(&row.evidence).unwrap_or_default();
    evidence.sort();
    Ok(CaseView {
        id,
        person_no: row.person_no,
        reason: row.reason,
        band: row.band,
        state: row.state,
        decision: row.decision,
        death_date: row.death_date,
        evidence,
        opened_at: row.opened_at,
        opened_by: row.opened_by,
        payment,
        history: events
            .into_iter()
            .map(|e| HistoryEntry {
                seq: e.seq,
                at: e.at,
                actor: e.actor,
                kind: e.kind,
                details: serde_json::from_str(&e.details).unwrap_or(serde_json::Value::Null),
            })
            .collect(),
        proposals: machine.proposals().to_vec(),
        tips,
        payment_changes,
        overpayment,
    })
}

async fn overpayment_view(store: &Store, o: OverpaymentRow) -> Result<OverpaymentView> {
    let recoveries = store.recoveries(o.case_id).await?;
    Ok(OverpaymentView {
        death_date: o.death_date,
        amount_fen: o.amount_fen,
        ledger_fen: o.ledger_fen,
        estimated_fen: o.estimated_fen,
        months: serde_json::from_str(&o.months).unwrap_or(serde_json::Value::Null),
        status: o.status,
        recovered_fen: recoveries.iter().map(|r| r.0).sum(),
        recoveries,
    })
}

/// The queue, filtered.
pub async fn list_cases(store: &Store, filter: &CaseFilter) -> Result<Vec<CaseListRow>> {
    Ok(store.list_cases(filter).await?)
}

/// What a step on a case did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDone {
    pub case_id: i64,
    pub proposal: Option<i64>,
    /// The case's state after the step.
    pub state: String,
    /// What the approval carried out, when it completed a proposal.
    pub outcome: Option<Outcome>,
    /// Back pay or overpayment recorded by the outcome, in fen.
    pub amount_fen: Option<i64>,
}

/// Proposes an action on a case, as `actor`, under `rules`.
pub async fn propose(
    store: &Store,
    rules: &CaseRules,
    actor: &Actor,
    case_id: i64,
    request: ProposalRequest,
    at: DateTime<Utc>,
) -> Result<StepDone> {
    let row = store
        .case(case_id)
        .await?
        .ok_or(QueueError::NoCase(case_id))?;
    let events = store.case_events(case_id).await?;
    let case = machine_case(&events, case_id)?;
    let seq = next_seq(&events);
    // Checked with a placeholder id first: a refused proposal gives out no id.
    machine::propose(
        &case,
        rules,
        actor,
        request.clone(),
        ProposalId(i64::MAX),
        at,
    )?;
    let proposal = store.new_proposal_id(case_id).await?;
    let t = machine::propose(
        &case,
        rules,
        actor,
        request.clone(),
        ProposalId(proposal),
        at,
    )?;
    let mut after = case.clone();
    let mut w = CaseWrites::default();
    for (i, event) in t.events.iter().enumerate() {
        after.apply(event.clone());
        push_machine_event(
            &mut w,
            CaseRef::Stored(case_id),
            seq + i as i64,
            &actor.user,
            event,
        );
    }
    w.updates.push(CaseUpdate {
        id: case_id,
        state: Some(after.state().to_string()),
        ..Default::default()
    });
    store.write_cases(&w).await?;
    audit_entry(
        store,
        &actor.user,
        "case.propose",
        case_id,
        serde_json::json!({
            "proposal": proposal,
            "action": request.action,
            "reason": request.reason,
            "note": request.note,
            "death_date": request.death_date,
            "person_no": row.person_no,
            "before": row.state,
            "after": after.state().to_string(),
        }),
    )
    .await?;
    Ok(StepDone {
        case_id,
        proposal: Some(proposal),
        state: after.state().to_string(),
        outcome: None,
        amount_fen: None,
    })
}

fn next_seq(events: &[CaseEventRow]) -> i64 {
    events.last().map_or(1, |e| e.seq + 1)
}

/// Approves a pending proposal as `actor`; the approval that completes it
/// carries out its outcome.
pub async fn approve(
    store: &Store,
    actor: &Actor,
    proposal: i64,
    note: &str,
    at: DateTime<Utc>,
) -> Result<StepDone> {
    decide(store, actor, proposal, at, Decision::Approve(note)).await
}

/// Rejects a pending proposal as `actor`: the case goes back to open.
pub async fn reject(
    store: &Store,
    actor: &Actor,
    proposal: i64,
    note: &str,
    at: DateTime<Utc>,
) -> Result<StepDone> {
    decide(store, actor, proposal, at, Decision::Reject(note)).await
}

/// Withdraws a pending proposal (its proposer, or a supervisor).
pub async fn withdraw(
    store: &Store,
    actor: &Actor,
    proposal: i64,
    at: DateTime<Utc>,
) -> Result<StepDone> {
    decide(store, actor, proposal, at, Decision::Withdraw).await
}

enum Decision<'a> {
    Approve(&'a str),
    Reject(&'a str),
    Withdraw,
}

async fn decide(
    store: &Store,
    actor: &Actor,
    proposal: i64,
    at: DateTime<Utc>,
    decision: Decision<'_>,
) -> Result<StepDone> {
    let case_id = store
        .case_of_proposal(proposal)
        .await?
        .ok_or(QueueError::NoProposal(proposal))?;
    let row = store
        .case(case_id)
        .await?
        .ok_or(QueueError::NoCase(case_id))?;
    let events = store.case_events(case_id).await?;
    let case = machine_case(&events, case_id)?;
    let id = ProposalId(proposal);
    let (transition, action_name) = match decision {
        Decision::Approve(note) => (
            machine::approve(&case, actor, id, note, at)?,
            "case.approve",
        ),
        Decision::Reject(note) => (machine::reject(&case, actor, id, note, at)?, "case.reject"),
        Decision::Withdraw => (machine::withdraw(&case, actor, id, at)?, "case.withdraw"),
    };
    let mut after = case.clone();
    for e in &transition.events {
        after.apply(e.clone());
    }
    let mut w = CaseWrites::default();
    let mut seq = next_seq(&events);
    let target = CaseRef::Stored(case_id);
    for event in &transition.events {
        push_machine_event(&mut w, target, seq, &actor.user, event);
        seq += 1;
    }
    w.updates.push(CaseUpdate {
        id: case_id,
        state: Some(after.state().to_string()),
        decision: Some(after.decision().map(|a| a.as_str().to_string())),
        ..Default::default()
    });
    let mut amount_fen = None;
    if let Some(outcome) = transition.outcome {
        amount_fen = carry_out(store, &mut w, &row, outcome, seq, &actor.user, at).await?;
    }
    store.write_cases(&w).await?;
    audit_entry(
        store,
        &actor.user,
        action_name,
        case_id,
        serde_json::json!({
            "proposal": proposal,
            "person_no": row.person_no,
            "before": row.state,
            "after": after.state().to_string(),
            "outcome": transition.outcome,
            "amount_fen": amount_fen,
            "payment_changes": w.payment_changes.iter().map(|c| serde_json::json!({
                "change": c.change, "effective_from": c.effective_from, "amount_fen": c.amount_fen,
            })).collect::<Vec<_>>(),
        }),
    )
    .await?;
    Ok(StepDone {
        case_id,
        proposal: Some(proposal),
        state: after.state().to_string(),
        outcome: transition.outcome,
        amount_fen,
    })
}

/// Carries out an approved outcome into `w`: payment changes, suppressed
/// pairs, the overpayment and its status. Returns the money it recorded.
async fn carry_out(
    store: &Store,
    w: &mut CaseWrites,
    case: &CaseRow,
    outcome: Outcome,
    seq: i64,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<Option<i64>> {
    let target = CaseRef::Stored(case.id);
    let today = local_day(at);
    let period = period_of(at);
    let changes = store.payment_changes_of(&case.person_no).await?;
    let state = payment_states(&changes)
        .remove(&case.person_no)
        .unwrap_or_default();
    let mut amount = None;
    let change = |w: &mut CaseWrites, change: &str, from: NaiveDate, fen: Option<i64>| {
        w.payment_changes.push(NewPaymentChange {
            person_no: case.person_no.clone(),
            change: change.into(),
            effective_from: from,
            amount_fen: fen,
            case: target,
            period: period.clone(),
        });
    };
    match outcome {
        Outcome::Terminate { from } => {
            change(w, "terminate", from, None);
            let o = overpayment_of(store, case, from, &changes, today).await?;
            amount = Some(o.amount_fen);
            w.overpayment = Some(o);
        }
        Outcome::ResumeAndSuppress | Outcome::Resume => {
            if outcome == Outcome::ResumeAndSuppress {
                let evidence: Vec<Evidence> =
                    serde_json::from_str(&case.evidence).unwrap_or_default();
                for e in evidence {
                    w.suppress.push((
                        e.source,
                        e.record_key,
                        case.person_no.clone(),
                        actor.to_string(),
                    ));
                }
            }
            if state == PaymentState::Held {
                change(w, "resume", today, None);
                let held_from = changes
                    .iter()
                    .rev()
                    .find(|c| c.change == "suspend")
                    .map(|c| c.effective_from)
                    .unwrap_or(today);
                let owed = back_pay_of(store, case, held_from, today).await?;
                if owed.amount_fen > 0 {
                    change(w, "back_pay", today, Some(owed.amount_fen));
                }
                amount = Some(owed.amount_fen);
            }
        }
        Outcome::WriteOff => {
            w.overpayment_status = Some((case.id, "written_off".into()));
        }
        Outcome::BookVideo | Outcome::CloseDuplicate => {}
    }
    w.events.push(NewCaseEvent {
        case: target,
        seq,
        actor: actor.into(),
        kind: kind::CARRIED_OUT.into(),
        details: serde_json::json!({
            "outcome": outcome,
            "payment_changes": w.payment_changes.iter().map(|c| serde_json::json!({
                "change": c.change, "effective_from": c.effective_from,
                "amount_fen": c.amount_fen, "period": c.period,
            })).collect::<Vec<_>>(),
            "suppressed": w.suppress.iter().map(|(s, k, _, _)| format!("{s}/{k}")).collect::<Vec<_>>(),
            "amount_fen": amount,
        })
        .to_string(),
    });
    Ok(amount)
}

/// The ledger of one pensioner as the money rules read it.
async fn ledger_of(
    store: &Store,
    person_no: &str,
) -> Result<(Vec<(Period, i64)>, std::collections::BTreeSet<Period>)> {
    let ledger = money::ledger_amounts(&store.ledger_for(person_no).await?);
    let covered = store.ledger_periods().await?;
    Ok((ledger, covered))
}

async fn overpayment_of(
    store: &Store,
    case: &CaseRow,
    death_date: NaiveDate,
    changes: &[PaymentChangeRow],
    today: NaiveDate,
) -> Result<OverpaymentRow> {
    let pensioner = store
        .get_pensioner(&case.person_no)
        .await?
        .ok_or_else(|| QueueError::NoPensioner(case.person_no.clone()))?;
    let (ledger, covered) = ledger_of(store, &case.person_no).await?;
    // Paid until the month before vigil first stopped the payment after
    // the death, or this month if it never did.
    let stopped = changes
        .iter()
        .filter(|c| c.change == "suspend" || c.change == "terminate")
        .map(|c| c.effective_from)
        .filter(|d| *d > death_date)
        .min();
    let paid_until = match stopped {
        Some(d) => Period::of(d).pred(),
        None => Period::of(today),
    };
    let o = money::overpayment(
        death_date,
        pensioner.monthly_amount_fen,
        &ledger,
        &covered,
        paid_until,
        pensioner.status == "active",
    );
    Ok(OverpaymentRow {
        case_id: case.id,
        person_no: case.person_no.clone(),
        death_date,
        amount_fen: o.amount_fen,
        ledger_fen: o.ledger_fen,
        estimated_fen: o.estimated_fen,
        months: json(&o.months),
        status: if o.amount_fen > 0 {
            "to_recover".into()
        } else {
            "recovered".into()
        },
        computed_at: String::new(),
    })
}

async fn back_pay_of(
    store: &Store,
    case: &CaseRow,
    held_from: NaiveDate,
    resumed_on: NaiveDate,
) -> Result<money::BackPay> {
    let pensioner = store
        .get_pensioner(&case.person_no)
        .await?
        .ok_or_else(|| QueueError::NoPensioner(case.person_no.clone()))?;
    let (ledger, covered) = ledger_of(store, &case.person_no).await?;
    Ok(money::back_pay(
        held_from,
        resumed_on,
        pensioner.monthly_amount_fen,
        &ledger,
        &covered,
    ))
}

/// Records money recovered on a confirmed death's overpayment; the status
/// becomes `recovered` once the recoveries cover it.
pub async fn record_recovery(
    store: &Store,
    actor: &Actor,
    case_id: i64,
    amount_fen: i64,
    on: NaiveDate,
) -> Result<OverpaymentView> {
    if !actor.enabled {
        return Err(machine::Refusal::UserDisabled {
            user: actor.user.clone(),
        }
        .into());
    }
    if actor.role == machine::Role::Auditor {
        return Err(machine::Refusal::AuditorChangesNothing {
            user: actor.user.clone(),
        }
        .into());
    }
    let o = store
        .overpayment(case_id)
        .await?
        .ok_or(QueueError::NoCase(case_id))?;
    let before: i64 = store.recoveries(case_id).await?.iter().map(|r| r.0).sum();
    let status = if before + amount_fen >= o.amount_fen {
        "recovered"
    } else {
        o.status.as_str()
    };
    store
        .record_recovery(case_id, amount_fen, on, &actor.user, status)
        .await?;
    audit_entry(
        store,
        &actor.user,
        "case.recovery",
        case_id,
        serde_json::json!({"amount_fen": amount_fen, "on": on, "before": o.status, "after": status}),
    )
    .await?;
    let o = store
        .overpayment(case_id)
        .await?
        .ok_or(QueueError::NoCase(case_id))?;
    overpayment_view(store, o).await
}
