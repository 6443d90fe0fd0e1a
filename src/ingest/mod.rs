//! Getting data in: the roster import now; the connectors for the death
//! sources (HTTP, files) and their formats come beside it.
//!
//! Everything here follows one rule: every input record ends up stored,
//! recognised as already stored, or quarantined with its reason, and a bad
//! record never stops the rest of the batch.

pub mod encoding;
pub mod roster;
