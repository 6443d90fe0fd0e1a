//! The domain types every stage shares: the bottom layer, beside
//! [`crate::identity`]. A pensioner ([`Pensioner`], and the [`Person`] the
//! matcher compares), a death record ([`DeathRecord`], [`MatchRecord`]) and
//! its [`IdStatus`], a cancellation that is not a death ([`NonDeathEvent`]),
//! evidence of life ([`EvidenceEvent`], [`VideoSession`], [`LifeEvent`],
//! [`LifeEvidence`]), a match's [`Band`], and the payment ledger
//! ([`Period`], [`Payment`], [`LedgerEntry`]).
//!
//! Plain data and the small pure helpers that derive its fields the same
//! way everywhere. Nothing here does I/O, and nothing here may use any
//! module but [`crate::identity`].

pub mod death;
pub mod evidence;
pub mod matches;
pub mod payment;
pub mod person;

pub use death::{
    DeathRecord, IdStatus, MatchRecord, NonDeathEvent, birth_year_range_from_age, names_of,
    parse_death_id, widen_age_ranges,
};
pub use evidence::{
    EVENT_TYPES, EvidenceEvent, LifeEvent, LifeEvidence, VIDEO_RESULTS, VideoSession,
};
pub use matches::{Band, TwinCandidate};
pub use payment::{LedgerEntry, Payment, Period, PeriodError};
pub use person::{Pensioner, Person};
