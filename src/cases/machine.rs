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

/// Approves a pending proposal as `actor`. The approval that completes the
/// set the proposal needs also approves the proposal and yields its outcome.
pub fn approve(
    case: &Case,
    actor: &Actor,
    proposal: ProposalId,
    note: &str,
    at: DateTime<Utc>,
) -> Result<Transition, Refusal> {
    may_change(actor)?;
    let pending = case.pending_proposal(proposal)?;
    if pending.proposer == actor.user {
        return Err(Refusal::OwnProposal {
            user: actor.user.clone(),
        });
    }
    if pending.approvals.iter().any(|a| a.user == actor.user) {
        return Err(Refusal::AlreadyApproved {
            user: actor.user.clone(),
        });
    }
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
    may_change(actor)?;
    let pending = case.pending_proposal(proposal)?;
    if pending.proposer == actor.user {
        return Err(Refusal::RejectOwnProposal {
            user: actor.user.clone(),
        });
    }
    if pending.approvals.iter().any(|a| a.user == actor.user) {
        return Err(Refusal::AlreadyApproved {
            user: actor.user.clone(),
        });
    }
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
