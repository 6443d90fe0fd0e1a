//! Getting data in: the roster import, and the connectors for the death
//! sources (HTTP, files) with their formats.
//!
//! Everything here follows one rule: every input record ends up stored,
//! recognised as already stored, or quarantined with its reason, and a bad
//! record never stops the rest of the batch.

pub mod connectors;
pub mod encoding;
pub mod evidence;
pub mod roster;
