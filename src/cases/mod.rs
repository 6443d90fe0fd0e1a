//! Cases: the suspension queue's decisions. [`machine`] is the state
//! machine every case follows (open → proposed → approved, or back to open
//! by a rejection or a withdrawal), with who may propose, approve, reject
//! and withdraw what; [`rules`] reads `rules/cases.toml`, the reason codes
//! and approval rules a policy officer may tune; [`money`] computes what
//! was paid after a death and the back pay owed after a hold.
//!
//! All three are pure: plain values in, events and outcomes out; no store, no
//! files, no clock, no printing. They must never delete anything (a step
//! only appends to a case's history) and never let one person decide
//! alone: termination, resumption, suppressing a false match and writing
//! off always take a proposer and at least one other person with the role
//! the rule names. Keeping cases, carrying out outcomes and the command
//! line come from the layers that use this one.
//!
//! [`users`] is this module's first edge: the people who work the queue,
//! kept in the store and audited, and authenticated into the [`Actor`]
//! the machine decides with. The core never imports it.

pub mod machine;
pub mod money;
pub mod open;
pub mod payroll;
pub mod queue;
pub mod rules;
pub mod users;

pub use machine::{
    Action, Actor, Approval, Case, CaseEvent, CaseState, Outcome, Proposal, ProposalId,
    ProposalRequest, ProposalStatus, Refusal, Role, Transition, approve, propose, reject, reopen,
    withdraw,
};
pub use rules::{ActionRule, CaseRules, RulesError};
pub use users::{AuthError, User, UserError};
