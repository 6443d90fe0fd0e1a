//! Getting data in: the roster import, the evidence and payment-ledger
//! imports, and the connectors for the death
//! sources (HTTP, files) with their formats.
//!
//! Everything here follows one rule: every input record ends up stored,
//! recognised as already stored, or quarantined with its reason, and a bad
//! record never stops the rest of the batch.

pub mod connectors;
pub mod encoding;
pub mod evidence;
pub mod payments;
pub mod roster;

/// What is wrong with a CSV header, before any row is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// A column name appears twice.
    Duplicate(String),
    /// Required columns that are absent, in the order they were asked for.
    Missing(Vec<String>),
}

/// Where each of `required` is among the header's (trimmed, lower-cased)
/// `names`: the same check for every CSV input, so every one refuses a bad
/// header in the same words.
pub(crate) fn find_columns(
    names: &[String],
    required: &[&str],
) -> Result<Vec<usize>, HeaderProblem> {
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !n.is_empty() && !seen.insert(n.as_str()) {
            return Err(HeaderProblem::Duplicate(n.clone()));
        }
    }
    let find = |c: &str| names.iter().position(|n| n == c);
    let missing: Vec<String> = required
        .iter()
        .filter(|c| find(c).is_none())
        .map(|c| c.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(HeaderProblem::Missing(missing));
    }
    Ok(required.iter().filter_map(|c| find(c)).collect())
}
