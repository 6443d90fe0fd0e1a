//! The case state machine: who may propose, approve, reject or withdraw
//! what, and what an approved proposal does. Pure: no I/O, no clock, no
//! store; the time of each step and the id of a new proposal are passed in.
//!
//! A case is the fold of its history: every step returns the events to
//! append ([`Transition`]) and [`Case::apply`] folds them in; nothing is ever
//! removed. A case is `open`; a proposal makes it `proposed`; the approval
//! that completes the set the rule asks for makes it `approved` and yields
//! the [`Outcome`] to carry out; a rejection or a withdrawal puts it back
//! where it was before the proposal. The proposer never approves their own
//! proposal, nobody approves twice, auditors change nothing and a disabled
//! user does nothing; every refusal is a [`Refusal`] that names the rule.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::rules::CaseRules;

/// What a person may do in vigil, from `vigil user add --role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 经办: works the queue and proposes decisions.
    Caseworker,
    /// 复核: approves where a rule asks for a second check (write-offs).
    Checker,
    /// 审核: approves decisions.
    Reviewer,
    /// Sees everything, manages users, may withdraw any pending proposal.
    Supervisor,
    /// Reads everything and changes nothing.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Caseworker,
        Role::Checker,
        Role::Reviewer,
        Role::Supervisor,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Caseworker => "caseworker",
            Role::Checker => "checker",
            Role::Reviewer => "reviewer",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
        }
    }

    /// The name caseworkers use for the role.
    pub fn label(self) -> &'static str {
        match self {
            Role::Caseworker => "经办",
            Role::Checker => "复核",
            Role::Reviewer => "审核",
            Role::Supervisor => "主管",
            Role::Auditor => "审计",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The role names, for error messages.
    pub fn names() -> String {
        list(Role::ALL.iter())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.as_str(), self.label())
    }
}

/// What a proposal asks to do with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The pensioner has died: terminate the pension from the death date.
    ConfirmDeath,
    /// The death is someone else's: resume payment, suppress the pair.
    FalseMatch,
    /// The pensioner is alive after a hold: resume payment (and back pay).
    Resume,
    /// Book a remote video verification before deciding; the case stays open.
    SendToVideo,
    /// Another case already covers this one.
    CloseDuplicate,
    /// Give up recovering the overpayment of a confirmed death.
    WriteOff,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::ConfirmDeath,
        Action::FalseMatch,
        Action::Resume,
        Action::SendToVideo,
        Action::CloseDuplicate,
        Action::WriteOff,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::ConfirmDeath => "confirm_death",
            Action::FalseMatch => "false_match",
            Action::Resume => "resume",
            Action::SendToVideo => "send_to_video",
            Action::CloseDuplicate => "close_duplicate",
            Action::WriteOff => "write_off",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
    }

    /// The action names, for error messages.
    pub fn names() -> String {
        list(Action::ALL.iter().map(|a| a.as_str()))
    }

    /// Whether approving it decides the case (as opposed to booking a video
    /// while the case stays open, or writing off after the decision).
    fn decides(self) -> bool {
        matches!(
            self,
            Action::ConfirmDeath | Action::FalseMatch | Action::Resume | Action::CloseDuplicate
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn list<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The id the store gives a proposal; unique across cases, so
/// `vigil case approve PROPOSAL` needs no case id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposalId(pub i64);

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The person doing a step, as the caller authenticated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user name: the machine tells people apart by it, so one person
    /// is one name whatever role they hold at the time.
    pub user: String,
    pub role: Role,
    /// A disabled user does nothing; their past steps stay in the history.
    pub enabled: bool,
}

impl Actor {
    /// An enabled user.
    pub fn new(user: impl Into<String>, role: Role) -> Actor {
        Actor {
            user: user.into(),
            role,
            enabled: true,
        }
    }
}

/// Where a case stands. Derived from the history, never stored apart from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Waiting for a proposal.
    Open,
    /// A proposal waits for its approvals.
    Proposed,
    /// Decided by an approved proposal; a write-off may still follow.
    Approved,
}

impl fmt::Display for CaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CaseState::Open => "open",
            CaseState::Proposed => "proposed",
            CaseState::Approved => "approved",
        })
    }
}

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Pending,
    Approved,
    Rejected,
    Withdrawn,
}

impl fmt::Display for ProposalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProposalStatus::Pending => "pending",
            ProposalStatus::Approved => "approved",
            ProposalStatus::Rejected => "rejected",
            ProposalStatus::Withdrawn => "withdrawn",
        })
    }
}

/// What the caller must carry out once a proposal is approved (payment
/// state, suppression, the video booking, the overpayment's status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Terminate the pension from the death date the proposal confirmed.
    Terminate { from: NaiveDate },
    /// Resume payment and suppress the (person, record) pair from matching.
    ResumeAndSuppress,
    /// Resume payment and owe the months held back.
    Resume,
    /// Book a remote video verification.
    BookVideo,
    /// Close the case as a duplicate of another.
    CloseDuplicate,
    /// Mark the overpayment written off.
    WriteOff,
}

/// What a caseworker asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRequest {
    pub action: Action,
    /// A reason code of the action in `rules/cases.toml`.
    pub reason: String,
    /// Free text for the approvers; must not be blank.
    pub note: String,
    /// The death date the pension ends from: required to confirm a death,
    /// refused with any other action.
    pub death_date: Option<NaiveDate>,
}

/// One approval of a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub user: String,
    pub role: Role,
    pub note: String,
    pub at: DateTime<Utc>,
}

/// A proposal as its events built it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: ProposalId,
    pub action: Action,
    pub reason: String,
    pub note: String,
    pub death_date: Option<NaiveDate>,
    pub proposer: String,
    pub proposer_role: Role,
    /// The approvals the rule asked for when the proposal was made: a rule
    /// changed later does not change what a pending proposal needs.
    pub approvers: Vec<Role>,
    /// The version of `rules/cases.toml` that set `approvers`.
    pub rules_version: String,
    pub at: DateTime<Utc>,
    pub status: ProposalStatus,
    /// Only ever appended to.
    pub approvals: Vec<Approval>,
}

impl Proposal {
    /// The roles whose approvals are still missing, in the rule's order.
    pub fn still_needed(&self) -> Vec<Role> {
        let mut needed = self.approvers.clone();
        for approval in &self.approvals {
            if let Some(i) = needed.iter().position(|r| *r == approval.role) {
                needed.remove(i);
            }
        }
        needed
    }

    fn outcome(&self) -> Option<Outcome> {
        Some(match self.action {
            Action::ConfirmDeath => Outcome::Terminate {
                from: self.death_date?,
            },
            Action::FalseMatch => Outcome::ResumeAndSuppress,
            Action::Resume => Outcome::Resume,
            Action::SendToVideo => Outcome::BookVideo,
            Action::CloseDuplicate => Outcome::CloseDuplicate,
            Action::WriteOff => Outcome::WriteOff,
        })
    }
}

/// One entry of a case's history. The store appends these; the case is
/// their fold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CaseEvent {
    Proposed {
        proposal: Proposal,
    },
    /// One approval; the proposal may still need others.
    Approval {
        proposal: ProposalId,
        approval: Approval,
    },
    /// The approval before it completed the set: the outcome to carry out.
    ProposalApproved {
        proposal: ProposalId,
        outcome: Outcome,
        at: DateTime<Utc>,
    },
    Rejected {
        proposal: ProposalId,
        user: String,
        role: Role,
        note: String,
        at: DateTime<Utc>,
    },
    Withdrawn {
        proposal: ProposalId,
        user: String,
        role: Role,
        at: DateTime<Utc>,
    },
    /// A decided case opened again, e.g. because its evidence was withdrawn.
    Reopened {
        why: String,
        at: DateTime<Utc>,
    },
}

/// The events a step appends, and the outcome to carry out if it completed
/// a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub events: Vec<CaseEvent>,
    pub outcome: Option<Outcome>,
}

/// Why a step was refused: each names the rule, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("user `{user}` is disabled and can do nothing; a supervisor can enable them again")]
    UserDisabled { user: String },
    #[error("user `{user}` is an auditor: auditors read everything and change nothing")]
    AuditorChangesNothing { user: String },
    #[error("a {role} cannot propose `{action}`: the case rules let only {allowed} propose it")]
    RoleCannotPropose {
        role: Role,
        action: Action,
        allowed: String,
    },
    #[error("`{reason}` is not a reason for `{action}`; its reasons are {known}")]
    UnknownReason {
        action: Action,
        reason: String,
        known: String,
    },
    #[error("a {what} needs a note saying why")]
    EmptyNote { what: &'static str },
    #[error("confirming a death needs the death date the pension ends from")]
    DeathDateMissing,
    #[error("only `confirm_death` takes a death date, not `{action}`")]
    DeathDateNotExpected { action: Action },
    #[error(
        "case already has proposal {pending} waiting for approval; approve, reject or withdraw it first"
    )]
    ProposalPending { pending: ProposalId },
    #[error("the case is already decided; only a write-off of its overpayment may be proposed now")]
    CaseDecided,
    #[error("a write-off is only for the overpayment of a confirmed death; this case has none")]
    NothingToWriteOff,
    #[error("the overpayment of this case is already written off")]
    AlreadyWrittenOff,
    #[error("proposal id {proposal} is already used; give the new proposal a fresh id")]
    ProposalIdTaken { proposal: ProposalId },
    #[error("the case is not decided, so there is nothing to reopen")]
    NotDecided,
    #[error("this case has no proposal {proposal}")]
    UnknownProposal { proposal: ProposalId },
    #[error("proposal {proposal} is {status}, no longer pending: propose again if needed")]
    NotPending {
        proposal: ProposalId,
        status: ProposalStatus,
    },
    #[error(
        "`{user}` made this proposal and cannot approve it: a decision takes two different people"
    )]
    OwnProposal { user: String },
    #[error("`{user}` made this proposal; to take it back, withdraw it instead of rejecting it")]
    RejectOwnProposal { user: String },
    #[error(
        "`{user}` has already approved this proposal; another person must give the next approval"
    )]
    AlreadyApproved { user: String },
    #[error("this proposal needs no approval from a {role}; it still needs {still_needed}")]
    RoleNotNeeded { role: Role, still_needed: String },
    #[error("a {role} cannot reject this proposal: only {allowed} may decide it")]
    RoleCannotReject { role: Role, allowed: String },
    #[error("only the proposer `{proposer}` or a supervisor may withdraw this proposal")]
    NotYoursToWithdraw { proposer: String },
}

/// A case: the fold of its history.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Case {
    /// Every event, in order; only ever appended to.
    history: Vec<CaseEvent>,
    /// Every proposal ever made, in order; none is removed.
    proposals: Vec<Proposal>,
    /// The approved action that decided the case, until it is reopened.
    decision: Option<Action>,
    written_off: bool,
}

impl Case {
    /// An open case with no history yet.
    pub fn new() -> Case {
        Case::default()
    }

    /// The case a stored history describes.
    pub fn from_history(events: impl IntoIterator<Item = CaseEvent>) -> Case {
        let mut case = Case::new();
        for event in events {
            case.apply(event);
        }
        case
    }

    /// Appends one event and folds it in. Events come from this machine (or
    /// from a history it wrote), so one that names an unknown proposal is
    /// kept in the history and otherwise ignored rather than refused.
    pub fn apply(&mut self, event: CaseEvent) {
        match &event {
            CaseEvent::Proposed { proposal } => self.proposals.push(proposal.clone()),
            CaseEvent::Approval { proposal, approval } => {
                if let Some(p) = self.proposal_mut(*proposal) {
                    p.approvals.push(approval.clone());
                }
            }
            CaseEvent::ProposalApproved { proposal, .. } => {
                if let Some(p) = self.proposal_mut(*proposal) {
                    p.status = ProposalStatus::Approved;
                    let action = p.action;
                    if action.decides() {
                        self.decision = Some(action);
                    } else if action == Action::WriteOff {
                        self.written_off = true;
                    }
                }
            }
            CaseEvent::Rejected { proposal, .. } => {
                if let Some(p) = self.proposal_mut(*proposal) {
                    p.status = ProposalStatus::Rejected;
                }
            }
            CaseEvent::Withdrawn { proposal, .. } => {
                if let Some(p) = self.proposal_mut(*proposal) {
                    p.status = ProposalStatus::Withdrawn;
                }
            }
            CaseEvent::Reopened { .. } => {
                self.decision = None;
                self.written_off = false;
            }
        }
        self.history.push(event);
    }

    pub fn state(&self) -> CaseState {
        if self.pending().is_some() {
            CaseState::Proposed
        } else if self.decision.is_some() {
            CaseState::Approved
        } else {
            CaseState::Open
        }
    }

    /// The approved action that decided the case, if any.
    pub fn decision(&self) -> Option<Action> {
        self.decision
    }

    pub fn is_written_off(&self) -> bool {
        self.written_off
    }

    pub fn history(&self) -> &[CaseEvent] {
        &self.history
    }

    pub fn proposals(&self) -> &[Proposal] {
        &self.proposals
    }

    pub fn proposal(&self, id: ProposalId) -> Option<&Proposal> {
        self.proposals.iter().find(|p| p.id == id)
    }

    /// The proposal waiting for approvals, if any (at most one).
    pub fn pending(&self) -> Option<&Proposal> {
        self.proposals
            .iter()
            .find(|p| p.status == ProposalStatus::Pending)
    }

    fn proposal_mut(&mut self, id: ProposalId) -> Option<&mut Proposal> {
        self.proposals.iter_mut().find(|p| p.id == id)
    }

    fn pending_proposal(&self, id: ProposalId) -> Result<&Proposal, Refusal> {
        let proposal = self
            .proposal(id)
            .ok_or(Refusal::UnknownProposal { proposal: id })?;
        if proposal.status != ProposalStatus::Pending {
            return Err(Refusal::NotPending {
                proposal: id,
                status: proposal.status,
            });
        }
        Ok(proposal)
    }
}

/// Refuses anyone who may change nothing: disabled users, then auditors.
fn may_change(actor: &Actor) -> Result<(), Refusal> {
    if !actor.enabled {
        return Err(Refusal::UserDisabled {
            user: actor.user.clone(),
        });
    }
    if actor.role == Role::Auditor {
        return Err(Refusal::AuditorChangesNothing {
            user: actor.user.clone(),
        });
    }
    Ok(())
}

fn blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// Proposes an action on a case, as `actor`, under `rules`; the new
/// proposal gets `id` and `at`.
pub fn propose(
    case: &Case,
    rules: &CaseRules,
    actor: &Actor,
    request: ProposalRequest,
    id: ProposalId,
    at: DateTime<Utc>,
) -> Result<Transition, Refusal> {
    may_change(actor)?;
    if let Some(pending) = case.pending() {
        return Err(Refusal::ProposalPending {
            pending: pending.id,
        });
    }
    if case.proposal(id).is_some() {
        return Err(Refusal::ProposalIdTaken { proposal: id });
    }
    match (request.action, case.decision) {
        (Action::WriteOff, Some(Action::ConfirmDeath)) if case.written_off => {
            return Err(Refusal::AlreadyWrittenOff);
        }
        (Action::WriteOff, Some(Action::ConfirmDeath)) => {}
        (Action::WriteOff, _) => return Err(Refusal::NothingToWriteOff),
        (_, Some(_)) => return Err(Refusal::CaseDecided),
        (_, None) => {}
    }
    let rule = rules.rule(request.action);
    if !rule.proposers.contains(&actor.role) {
        return Err(Refusal::RoleCannotPropose {
            role: actor.role,
            action: request.action,
            allowed: list(rule.proposers.iter()),
        });
    }
    if !rule.reasons.contains_key(&request.reason) {
        return Err(Refusal::UnknownReason {
            action: request.action,
            reason: request.reason,
            known: list(rule.reasons.keys()),
        });
    }
    if blank(&request.note) {
        return Err(Refusal::EmptyNote { what: "proposal" });
    }
    match (request.action, request.death_date) {
        (Action::ConfirmDeath, None) => return Err(Refusal::DeathDateMissing),
        (Action::ConfirmDeath, Some(_)) | (_, None) => {}
        (action, Some(_)) => return Err(Refusal::DeathDateNotExpected { action }),
    }
    let proposal = Proposal {
        id,
        action: request.action,
        reason: request.reason,
        note: request.note,
        death_date: request.death_date,
        proposer: actor.user.clone(),
        proposer_role: actor.role,
        approvers: rule.approvers.clone(),
        rules_version: rules.version.clone(),
        at,
        status: ProposalStatus::Pending,
        approvals: Vec::new(),
    };
    Ok(Transition {
        events: vec![CaseEvent::Proposed { proposal }],
        outcome: None,
    })
}

/// The pending proposal `actor` means to approve or reject, once the rules
/// every decision shares allow it: the actor may change things, is not the
/// proposer (`own` is the refusal then) and has not approved it already.
fn decider_of<'c>(
    case: &'c Case,
    actor: &Actor,
    proposal: ProposalId,
    own: impl FnOnce(String) -> Refusal,
) -> Result<&'c Proposal, Refusal> {
    may_change(actor)?;
    let pending = case.pending_proposal(proposal)?;
    if pending.proposer == actor.user {
        return Err(own(actor.user.clone()));
    }
    if pending.approvals.iter().any(|a| a.user == actor.user) {
        return Err(Refusal::AlreadyApproved {
            user: actor.user.clone(),
        });
    }
    Ok(pending)
}

/// Approves a pending proposal as `actor`. The approval that completes the
/// set the proposal needs also approves the proposal and yields its outcome.
pub fn approve(
    case: &Case,
    actor: &Actor,
    proposal: ProposalId,
    note: &str,
    at: DateTime<Utc>,
) -> Result<Transition, Refusal> {
    let pending = decider_of(case, actor, proposal, |user| Refusal::OwnProposal { user })?;
    let mut still_needed = pending.still_needed();
    let Some(slot) = still_needed.iter().position(|r| *r == actor.role) else {
        return Err(Refusal::RoleNotNeeded {
            role: actor.role,
            still_needed: list(still_needed.iter()),
        });
    };
    still_needed.remove(slot);
    let mut events = vec![CaseEvent::Approval {
        proposal,
        approval: Approval {
            user: actor.user.clone(),
            role: actor.role,
            note: note.to_string(),
            at,
        },
    }];
    let mut outcome = None;
    if still_needed.is_empty() {
        // A confirm_death proposal always has its date (`propose` refuses
        // one without), so the outcome is always there.
        outcome = pending.outcome();
        if let Some(outcome) = outcome {
            events.push(CaseEvent::ProposalApproved {
                proposal,
                outcome,
                at,
            });
        }
    }
    Ok(Transition { events, outcome })
}

/// Rejects a pending proposal as `actor`: the case goes back to where it
/// was before the proposal. Anyone whose role the proposal's rule names as
/// an approver may reject, except its proposer and those who approved it.
pub fn reject(
    case: &Case,
    actor: &Actor,
    proposal: ProposalId,
    note: &str,
    at: DateTime<Utc>,
) -> Result<Transition, Refusal> {
    let pending = decider_of(case, actor, proposal, |user| Refusal::RejectOwnProposal {
        user,
    })?;
    if !pending.approvers.contains(&actor.role) {
        return Err(Refusal::RoleCannotReject {
            role: actor.role,
            allowed: list(pending.approvers.iter()),
        });
    }
    if blank(note) {
        return Err(Refusal::EmptyNote { what: "rejection" });
    }
    Ok(Transition {
        events: vec![CaseEvent::Rejected {
            proposal,
            user: actor.user.clone(),
            role: actor.role,
            note: note.to_string(),
            at,
        }],
        outcome: None,
    })
}

/// Withdraws a pending proposal: its proposer or a supervisor may. The
/// case goes back to where it was before the proposal.
pub fn withdraw(
    case: &Case,
    actor: &Actor,
    proposal: ProposalId,
    at: DateTime<Utc>,
) -> Result<Transition, Refusal> {
    may_change(actor)?;
    let pending = case.pending_proposal(proposal)?;
    if pending.proposer != actor.user && actor.role != Role::Supervisor {
        return Err(Refusal::NotYoursToWithdraw {
            proposer: pending.proposer.clone(),
        });
    }
    Ok(Transition {
        events: vec![CaseEvent::Withdrawn {
            proposal,
            user: actor.user.clone(),
            role: actor.role,
            at,
        }],
        outcome: None,
    })
}

/// Opens a decided case again, saying why (the engine does this when the
/// evidence it was decided on is withdrawn; no person is involved). Undoing
/// what the decision carried out is the caller's.
pub fn reopen(case: &Case, why: &str, at: DateTime<Utc>) -> Result<Transition, Refusal> {
    if let Some(pending) = case.pending() {
        return Err(Refusal::ProposalPending {
            pending: pending.id,
        });
    }
    if case.decision.is_none() {
        return Err(Refusal::NotDecided);
    }
    if blank(why) {
        return Err(Refusal::EmptyNote { what: "reopening" });
    }
    Ok(Transition {
        events: vec![CaseEvent::Reopened {
            why: why.to_string(),
            at,
        }],
        outcome: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn rules() -> CaseRules {
        CaseRules::default_rules()
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 9, minute % 60, 0).unwrap()
    }

    fn death_date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, 14).unwrap()
    }

    fn caseworker() -> Actor {
        Actor::new("li", Role::Caseworker)
    }

    fn reviewer() -> Actor {
        Actor::new("wang", Role::Reviewer)
    }

    fn checker() -> Actor {
        Actor::new("zhao", Role::Checker)
    }

    fn request(action: Action, reason: &str) -> ProposalRequest {
        ProposalRequest {
            action,
            reason: reason.to_string(),
            note: "户籍系统已注销".to_string(),
            death_date: (action == Action::ConfirmDeath).then(death_date),
        }
    }

    fn apply(transition: Transition, case: &mut Case) -> Option<Outcome> {
        for event in transition.events {
            case.apply(event);
        }
        transition.outcome
    }

    /// A case with a pending proposal `1` of `action` by the caseworker.
    fn proposed(action: Action, reason: &str) -> Case {
        let mut case = Case::new();
        let t = propose(
            &case,
            &rules(),
            &caseworker(),
            request(action, reason),
            ProposalId(1),
            at(0),
        );
        apply(t.unwrap(), &mut case);
        case
    }

    /// A case whose death was confirmed by the caseworker and the reviewer.
    fn death_confirmed() -> Case {
        let mut case = proposed(Action::ConfirmDeath, "cremation_record");
        apply(
            approve(&case, &reviewer(), ProposalId(1), "", at(1)).unwrap(),
            &mut case,
        );
        case
    }

    #[test]
    fn a_caseworker_proposal_approved_by_a_reviewer_terminates_from_the_death_date() {
        let mut case = proposed(Action::ConfirmDeath, "death_confirmed_by_registry");
        assert_eq!(case.state(), CaseState::Proposed);
        let outcome = apply(
            approve(&case, &reviewer(), ProposalId(1), "核实无误", at(1)).unwrap(),
            &mut case,
        );
        assert_eq!(outcome, Some(Outcome::Terminate { from: death_date() }));
        assert_eq!(case.state(), CaseState::Approved);
        assert_eq!(case.decision(), Some(Action::ConfirmDeath));
        assert_eq!(
            case.proposal(ProposalId(1)).unwrap().status,
            ProposalStatus::Approved
        );
    }

    #[test]
    fn a_false_match_approved_resumes_and_suppresses_the_pair() {
        let mut case = proposed(Action::FalseMatch, "namesake");
        let outcome = apply(
            approve(&case, &reviewer(), ProposalId(1), "", at(1)).unwrap(),
            &mut case,
        );
        assert_eq!(outcome, Some(Outcome::ResumeAndSuppress));
    }

    #[test]
    fn the_proposer_cannot_approve_their_own_proposal() {
        let case = proposed(Action::Resume, "certified_alive");
        // Even holding the approving role, the proposer is still one person.
        let same_person_as_reviewer = Actor::new("li", Role::Reviewer);
        let refusal =
            approve(&case, &same_person_as_reviewer, ProposalId(1), "", at(1)).unwrap_err();
        assert_eq!(refusal, Refusal::OwnProposal { user: "li".into() });
        assert!(refusal.to_string().contains("two different people"));
    }

    #[test]
    fn the_same_approver_twice_is_refused() {
        let mut case = death_confirmed();
        let t = propose(
            &case,
            &rules(),
            &caseworker(),
            request(Action::WriteOff, "no_heir"),
            ProposalId(2),
            at(2),
        );
        apply(t.unwrap(), &mut case);
        apply(
            approve(&case, &checker(), ProposalId(2), "", at(3)).unwrap(),
            &mut case,
        );
        let refusal = approve(&case, &checker(), ProposalId(2), "", at(4)).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::AlreadyApproved {
                user: "zhao".into()
            }
        );
    }

    #[test]
    fn write_off_needs_a_checker_and_a_reviewer() {
        let mut case = death_confirmed();
        let t = propose(
            &case,
            &rules(),
            &caseworker(),
            request(Action::WriteOff, "no_heir"),
            ProposalId(2),
            at(2),
        );
        apply(t.unwrap(), &mut case);
        let first = apply(
            approve(&case, &reviewer(), ProposalId(2), "", at(3)).unwrap(),
            &mut case,
        );
        assert_eq!(first, None, "one approval of two is not a decision");
        assert_eq!(case.pending().unwrap().still_needed(), [Role::Checker]);
        let second = apply(
            approve(&case, &checker(), ProposalId(2), "", at(4)).unwrap(),
            &mut case,
        );
        assert_eq!(second, Some(Outcome::WriteOff));
        assert!(case.is_written_off());
        assert_eq!(case.state(), CaseState::Approved);
    }

    #[test]
    fn a_second_reviewer_cannot_stand_in_for_the_checker() {
        let mut case = death_confirmed();
        let t = propose(
            &case,
            &rules(),
            &caseworker(),
            request(Action::WriteOff, "no_heir"),
            ProposalId(2),
            at(2),
        );
        apply(t.unwrap(), &mut case);
        apply(
            approve(&case, &reviewer(), ProposalId(2), "", at(3)).unwrap(),
            &mut case,
        );
        let other_reviewer = Actor::new("chen", Role::Reviewer);
        let refusal = approve(&case, &other_reviewer, ProposalId(2), "", at(4)).unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::RoleNotNeeded {
                role: Role::Reviewer,
                ..
            }
        ));
        assert!(refusal.to_string().contains("checker"), "{refusal}");
    }

    #[test]
    fn an_auditor_cannot_propose() {
        let auditor = Actor::new("sun", Role::Auditor);
        let refusal = propose(
            &Case::new(),
            &rules(),
            &auditor,
            request(Action::Resume, "certified_alive"),
            ProposalId(1),
            at(0),
        )
        .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::AuditorChangesNothing { user: "sun".into() }
        );
    }

    #[test]
    fn an_auditor_cannot_approve_reject_or_withdraw() {
        let case = proposed(Action::Resume, "certified_alive");
        let auditor = Actor::new("sun", Role::Auditor);
        let expected = Refusal::AuditorChangesNothing { user: "sun".into() };
        assert_eq!(
            approve(&case, &auditor, ProposalId(1), "", at(1)).unwrap_err(),
            expected
        );
        assert_eq!(
            reject(&case, &auditor, ProposalId(1), "不同意", at(1)).unwrap_err(),
            expected
        );
        assert_eq!(
            withdraw(&case, &auditor, ProposalId(1), at(1)).unwrap_err(),
            expected
        );
    }

    #[test]
    fn a_disabled_user_can_do_nothing() {
        let case = proposed(Action::Resume, "certified_alive");
        let disabled = Actor {
            enabled: false,
            ..reviewer()
        };
        let expected = Refusal::UserDisabled {
            user: "wang".into(),
        };
        assert_eq!(
            approve(&case, &disabled, ProposalId(1), "", at(1)).unwrap_err(),
            expected
        );
        let disabled_proposer = Actor {
            enabled: false,
            ..caseworker()
        };
        assert_eq!(
            withdraw(&case, &disabled_proposer, ProposalId(1), at(1)).unwrap_err(),
            Refusal::UserDisabled { user: "li".into() }
        );
    }

    #[test]
    fn a_reviewer_cannot_propose_under_the_shipped_rules() {
        let refusal = propose(
            &Case::new(),
            &rules(),
            &reviewer(),
            request(Action::Resume, "certified_alive"),
            ProposalId(1),
            at(0),
        )
        .unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::RoleCannotPropose {
                role: Role::Reviewer,
                ..
            }
        ));
    }

    #[test]
    fn a_reason_code_from_another_action_is_refused() {
        let refusal = propose(
            &Case::new(),
            &rules(),
            &caseworker(),
            request(Action::ConfirmDeath, "namesake"),
            ProposalId(1),
            at(0),
        )
        .unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::UnknownReason {
                action: Action::ConfirmDeath,
                ..
            }
        ));
        assert!(
            refusal.to_string().contains("`cremation_record`"),
            "{refusal}"
        );
    }

    #[test]
    fn an_empty_note_is_refused() {
        let blank = ProposalRequest {
            note: "  ".into(),
            ..request(Action::FalseMatch, "wrong_id")
        };
        let refusal = propose(
            &Case::new(),
            &rules(),
            &caseworker(),
            blank,
            ProposalId(1),
            at(0),
        )
        .unwrap_err();
        assert_eq!(refusal, Refusal::EmptyNote { what: "proposal" });
    }

    #[test]
    fn confirming_a_death_needs_the_death_date() {
        let undated = ProposalRequest {
            death_date: None,
            ..request(Action::ConfirmDeath, "cremation_record")
        };
        let refusal = propose(
            &Case::new(),
            &rules(),
            &caseworker(),
            undated,
            ProposalId(1),
            at(0),
        )
        .unwrap_err();
        assert_eq!(refusal, Refusal::DeathDateMissing);
    }

    #[test]
    fn a_rejection_sends_the_case_back_to_open() {
        let mut case = proposed(Action::ConfirmDeath, "cremation_record");
        assert_eq!(
            reject(&case, &reviewer(), ProposalId(1), "", at(1)).unwrap_err(),
            Refusal::EmptyNote { what: "rejection" }
        );
        apply(
            reject(&case, &reviewer(), ProposalId(1), "火化记录不是本人", at(1)).unwrap(),
            &mut case,
        );
        assert_eq!(case.state(), CaseState::Open);
        assert_eq!(
            case.proposal(ProposalId(1)).unwrap().status,
            ProposalStatus::Rejected
        );
        assert_eq!(case.proposals().len(), 1, "the rejected proposal is kept");
    }

    #[test]
    fn the_proposer_cannot_reject_their_own_proposal() {
        let case = proposed(Action::Resume, "certified_alive");
        let refusal = reject(
            &case,
            &Actor::new("li", Role::Reviewer),
            ProposalId(1),
            "算了",
            at(1),
        )
        .unwrap_err();
        assert_eq!(refusal, Refusal::RejectOwnProposal { user: "li".into() });
    }

    #[test]
    fn the_proposer_or_a_supervisor_may_withdraw_but_nobody_else() {
        let case = proposed(Action::SendToVideo, "unreachable");
        assert_eq!(
            withdraw(&case, &reviewer(), ProposalId(1), at(1)).unwrap_err(),
            Refusal::NotYoursToWithdraw {
                proposer: "li".into()
            }
        );
        let other_caseworker = Actor::new("zhou", Role::Caseworker);
        assert!(withdraw(&case, &other_caseworker, ProposalId(1), at(1)).is_err());
        for who in [caseworker(), Actor::new("boss", Role::Supervisor)] {
            let mut case = case.clone();
            apply(
                withdraw(&case, &who, ProposalId(1), at(1)).unwrap(),
                &mut case,
            );
            assert_eq!(case.state(), CaseState::Open, "{}", who.user);
        }
    }

    #[test]
    fn a_second_proposal_waits_for_the_first() {
        let case = proposed(Action::Resume, "certified_alive");
        let refusal = propose(
            &case,
            &rules(),
            &Actor::new("zhou", Role::Caseworker),
            request(Action::FalseMatch, "namesake"),
            ProposalId(2),
            at(1),
        )
        .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::ProposalPending {
                pending: ProposalId(1)
            }
        );
    }

    #[test]
    fn a_decided_proposal_cannot_be_approved_again() {
        let case = death_confirmed();
        let refusal = approve(
            &case,
            &Actor::new("chen", Role::Reviewer),
            ProposalId(1),
            "",
            at(2),
        )
        .unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::NotPending {
                status: ProposalStatus::Approved,
                ..
            }
        ));
    }

    #[test]
    fn a_decided_case_takes_only_a_write_off() {
        let case = death_confirmed();
        let refusal = propose(
            &case,
            &rules(),
            &caseworker(),
            request(Action::Resume, "hold_in_error"),
            ProposalId(2),
            at(2),
        )
        .unwrap_err();
        assert_eq!(refusal, Refusal::CaseDecided);
    }

    #[test]
    fn a_write_off_needs_a_confirmed_death() {
        let refusal = propose(
            &Case::new(),
            &rules(),
            &caseworker(),
            request(Action::WriteOff, "no_heir"),
            ProposalId(1),
            at(0),
        )
        .unwrap_err();
        assert_eq!(refusal, Refusal::NothingToWriteOff);
    }

    #[test]
    fn a_rejected_write_off_leaves_the_death_confirmed() {
        let mut case = death_confirmed();
        let t = propose(
            &case,
            &rules(),
            &caseworker(),
            request(Action::WriteOff, "below_threshold"),
            ProposalId(2),
            at(2),
        );
        apply(t.unwrap(), &mut case);
        apply(
            reject(&case, &checker(), ProposalId(2), "家属有能力退还", at(3)).unwrap(),
            &mut case,
        );
        assert_eq!(case.state(), CaseState::Approved);
        assert_eq!(case.decision(), Some(Action::ConfirmDeath));
        assert!(!case.is_written_off());
    }

    #[test]
    fn sending_to_video_leaves_the_case_open_for_the_decision() {
        let mut case = proposed(Action::SendToVideo, "evidence_unclear");
        let outcome = apply(
            approve(&case, &reviewer(), ProposalId(1), "", at(1)).unwrap(),
            &mut case,
        );
        assert_eq!(outcome, Some(Outcome::BookVideo));
        assert_eq!(case.state(), CaseState::Open);
    }

    #[test]
    fn a_rule_changed_later_does_not_change_what_a_pending_proposal_needs() {
        let case = proposed(Action::Resume, "certified_alive");
        let stricter = CaseRules::from_toml(&crate::cases::rules::DEFAULT_RULES_TOML.replacen(
            "[actions.resume]\nproposers = [\"caseworker\"]\napprovers = [\"reviewer\"]",
            "[actions.resume]\nproposers = [\"caseworker\"]\napprovers = [\"checker\", \"reviewer\"]",
            1,
        ))
        .unwrap();
        assert_eq!(stricter.rule(Action::Resume).approvers.len(), 2);
        let t = approve(&case, &reviewer(), ProposalId(1), "", at(1)).unwrap();
        assert_eq!(t.outcome, Some(Outcome::Resume));
    }

    #[test]
    fn reopening_a_decided_case_opens_it_and_keeps_its_history() {
        let mut case = death_confirmed();
        let before = case.history().to_vec();
        assert_eq!(
            reopen(&Case::new(), "记录撤回", at(2)).unwrap_err(),
            Refusal::NotDecided
        );
        apply(reopen(&case, "公安撤回死亡记录", at(2)).unwrap(), &mut case);
        assert_eq!(case.state(), CaseState::Open);
        assert_eq!(&case.history()[..before.len()], &before[..]);
        assert_eq!(
            case.proposal(ProposalId(1)).unwrap().status,
            ProposalStatus::Approved
        );
    }

    #[test]
    fn a_case_rebuilt_from_its_history_is_the_same_case() {
        let case = death_confirmed();
        assert_eq!(Case::from_history(case.history().to_vec()), case);
    }

    #[test]
    fn history_events_round_trip_through_json() {
        let case = death_confirmed();
        let json = serde_json::to_string(case.history()).unwrap();
        let back: Vec<CaseEvent> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, case.history());
    }

    // ---- property tests ----

    /// One step of a random session.
    #[derive(Debug, Clone)]
    enum Step {
        Propose {
            actor: Actor,
            action: Action,
            reason: usize,
            blank_note: bool,
        },
        Approve {
            actor: Actor,
            proposal: Target,
        },
        Reject {
            actor: Actor,
            proposal: Target,
        },
        Withdraw {
            actor: Actor,
            proposal: Target,
        },
        Reopen,
    }

    /// Which proposal a step names: mostly the pending one, else any id
    /// (older ones, and ones that do not exist).
    #[derive(Debug, Clone, Copy)]
    enum Target {
        Pending,
        Id(i64),
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![3 => Just(Target::Pending), 1 => (0..6i64).prop_map(Target::Id)]
    }

    fn role() -> impl Strategy<Value = Role> {
        prop::sample::select(Role::ALL.to_vec())
    }

    fn action() -> impl Strategy<Value = Action> {
        prop::sample::select(Action::ALL.to_vec())
    }

    /// An actor named from `names`, holding any role (one person's role may
    /// change over time), enabled nine times in ten.
    fn actor(names: &'static [&'static str]) -> impl Strategy<Value = Actor> {
        (
            prop::sample::select(names),
            role(),
            prop::bool::weighted(0.9),
        )
            .prop_map(|(user, role, enabled)| Actor {
                user: user.to_string(),
                role,
                enabled,
            })
    }

    fn step(names: &'static [&'static str]) -> impl Strategy<Value = Step> {
        // Proposal ids run 1.. in the order proposals are made.
        prop_oneof![
            3 => (actor(names), action(), 0..8usize, prop::bool::weighted(0.1)).prop_map(
                |(actor, action, reason, blank_note)| Step::Propose { actor, action, reason, blank_note }
            ),
            4 => (actor(names), target()).prop_map(|(actor, proposal)| Step::Approve { actor, proposal }),
            1 => (actor(names), target()).prop_map(|(actor, proposal)| Step::Reject { actor, proposal }),
            1 => (actor(names), target()).prop_map(|(actor, proposal)| Step::Withdraw { actor, proposal }),
            1 => Just(Step::Reopen),
        ]
    }

    /// Every reason code of every action: a random index is sometimes the
    /// action's own reason and sometimes another action's.
    fn all_reasons(rules: &CaseRules) -> Vec<String> {
        Action::ALL
            .iter()
            .flat_map(|a| rules.rule(*a).reasons.keys().cloned())
            .collect()
    }

    /// Plays the steps on `case`, checking after each that the history only
    /// grew and that a pending proposal can always be taken back; returns
    /// the outcomes the steps yielded.
    fn play(case: &mut Case, steps: &[Step]) -> Vec<Outcome> {
        let rules = rules();
        let reasons = all_reasons(&rules);
        let mut outcomes = Vec::new();
        let mut next_id = case.proposals().len() as i64 + 1;
        for (minute, step) in steps.iter().enumerate() {
            let now = at(minute as u32);
            let state_before = case.state();
            let id = |target: &Target| match target {
                Target::Pending => case.pending().map_or(ProposalId(0), |p| p.id),
                Target::Id(id) => ProposalId(*id),
            };
            let result = match step {
                Step::Propose {
                    actor,
                    action,
                    reason,
                    blank_note,
                } => {
                    let request = ProposalRequest {
                        action: *action,
                        // Mostly one of the action's own reasons, else any.
                        reason: match rules.rule(*action).reasons.keys().nth(*reason) {
                            Some(own) => own.clone(),
                            None => reasons[reason % reasons.len()].clone(),
                        },
                        note: if *blank_note {
                            String::new()
                        } else {
                            "note".into()
                        },
                        death_date: (*action == Action::ConfirmDeath).then(death_date),
                    };
                    propose(case, &rules, actor, request, ProposalId(next_id), now)
                }
                Step::Approve { actor, proposal } => approve(case, actor, id(proposal), "ok", now),
                Step::Reject { actor, proposal } => reject(case, actor, id(proposal), "no", now),
                Step::Withdraw { actor, proposal } => withdraw(case, actor, id(proposal), now),
                Step::Reopen => reopen(case, "evidence withdrawn", now),
            };
            let history_before = case.history().to_vec();
            let proposals_before = case.proposals().to_vec();
            if let Ok(transition) = result {
                if matches!(step, Step::Propose { .. }) {
                    next_id += 1;
                }
                outcomes.extend(apply(transition, case));
            }
            // (b) the history only grows, and no proposal or approval is lost.
            assert_eq!(&case.history()[..history_before.len()], &history_before[..]);
            assert!(case.proposals().len() >= proposals_before.len());
            for (old, new) in proposals_before.iter().zip(case.proposals()) {
                assert_eq!(old.id, new.id);
                assert_eq!(&new.approvals[..old.approvals.len()], &old.approvals[..]);
            }
            // (c) a pending proposal can always be taken back, by its
            // proposer or by a supervisor, to where the case was before it.
            if let Some(pending) = case.pending() {
                let went_back_to = if state_before == CaseState::Proposed {
                    None // still the same proposal as before this step
                } else {
                    Some(state_before)
                };
                for who in [
                    Actor::new(pending.proposer.clone(), pending.proposer_role),
                    Actor::new("a supervisor", Role::Supervisor),
                ] {
                    let mut undone = case.clone();
                    let t = withdraw(&undone, &who, pending.id, now).expect("withdrawable");
                    apply(t, &mut undone);
                    assert_ne!(undone.state(), CaseState::Proposed);
                    if let Some(state) = went_back_to {
                        assert_eq!(undone.state(), state);
                    }
                }
                let rejecter = Actor::new("an approver", pending.approvers[0]);
                let mut undone = case.clone();
                apply(
                    reject(&undone, &rejecter, pending.id, "no", now).expect("rejectable"),
                    &mut undone,
                );
                assert_ne!(undone.state(), CaseState::Proposed);
            }
        }
        outcomes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// (a) One person, whatever roles they hold, decides nothing alone:
        /// not from a fresh case, nor on a death others confirmed (where a
        /// write-off could be proposed).
        #[test]
        fn no_sequence_by_one_person_alone_decides_anything(
            steps in prop::collection::vec(step(&["solo"]), 0..40),
            start_decided in any::<bool>(),
        ) {
            let mut case = if start_decided { death_confirmed() } else { Case::new() };
            let outcomes = play(&mut case, &steps);
            prop_assert!(outcomes.is_empty(), "one person alone got {outcomes:?}");
        }

        /// With several people: every outcome comes from a proposal whose
        /// approvals are by distinct people, none of them the proposer, in
        /// the roles the rule named; (b) and (c) are checked at every step.
        #[test]
        fn every_outcome_has_a_proposer_and_distinct_approvers_in_the_named_roles(
            steps in prop::collection::vec(step(&["li", "wang", "zhao", "chen"]), 0..60),
        ) {
            let mut case = Case::new();
            play(&mut case, &steps);
            for proposal in case.proposals() {
                let mut users: Vec<&str> = proposal.approvals.iter().map(|a| a.user.as_str()).collect();
                prop_assert!(!users.contains(&proposal.proposer.as_str()));
                users.sort_unstable();
                users.dedup();
                prop_assert_eq!(users.len(), proposal.approvals.len());
                if proposal.status == ProposalStatus::Approved {
                    prop_assert!(proposal.still_needed().is_empty());
                    let mut roles: Vec<Role> = proposal.approvals.iter().map(|a| a.role).collect();
                    let mut needed = proposal.approvers.clone();
                    roles.sort();
                    needed.sort();
                    prop_assert_eq!(roles, needed);
                }
            }
        }
    }
}
