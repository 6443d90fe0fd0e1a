//! Matching: finds, for each death record, the pensioner it is about, if
//! any, and how sure the engine is. Blocking ([`blocking`]) proposes a few
//! candidates from in-memory indexes of the roster; each pair is compared
//! field by field ([`compare`]) into levels whose Fellegi-Sunter weights come
//! from [`rules`]; [`score`] adds them up, adjusts name agreement for how
//! common the name is, and applies the safeguards that keep a living person
//! from being suspended on weak evidence; [`assign`] makes the one-to-one
//! choice across a batch; [`explain`] keeps and renders the reasons;
//! [`fuse`] merges the records of one death from several sources; [`train`]
//! proposes new weights from the data.
//!
//! Everything here is a pure function over plain data ([`model`]): no
//! database, no files, no clock, no printing, except the I/O edges
//! (orchestration: they read the store or files, and the pure core never
//! imports them): [`run`] loads the roster, the records and the evidence of
//! life from the store, runs the rest, and keeps the results; [`propose`]
//! trains on the stored data and writes proposed rules beside the rules in
//! use; [`index_file`] keeps the built indexes in a file beside the
//! database and maps them back for the next run over the same roster;
//! [`rules_file`] finds and reads the rules a command uses; [`export`]
//! writes the stored matches out and scores them against a truth file
//! ([`eval`] is the scoring, pure); [`view`] shows a stored match with the
//! evidence that speaks against it.

pub mod assign;
pub mod blocking;
pub mod compare;
pub mod eval;
pub mod explain;
pub mod export;
pub mod fuse;
pub mod index_file;
pub mod propose;
pub mod rules;
pub mod rules_file;
pub mod run;
pub mod score;
pub mod train;
pub mod view;

#[cfg(test)]
mod end_to_end;

pub use assign::{Match, MatchBatch, match_batch};
pub use blocking::{BlockKind, Candidates, CappedBlock, RosterIndex};
pub use compare::{BirthLevel, Comparison, IdLevel, NameLevel, RegionLevel, SexLevel};
pub use explain::{Explanation, render_waterfall};
pub use rules::{MatchRules, RulesError};
pub use score::{NameFrequencies, Safeguard};
