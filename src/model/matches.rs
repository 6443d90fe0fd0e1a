//! What a match is worth: its band, and the stored `review` records a
//! newly matched record may be another person's death of.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// How sure the engine is about a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    None,
    Review,
    Auto,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Auto => "auto",
            Band::Review => "review",
            Band::None => "none",
        }
    }
}

/// A stored `review` match's record that a record claimed by a pending
/// run may be another person's death of ([`Store::twin_claim_candidates`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TwinCandidate {
    pub source: String,
    pub record_key: String,
    pub version: i64,
    pub name_key: String,
    pub death_date: NaiveDate,
    /// The matched pensioner's ID.
    pub person_id: String,
}
