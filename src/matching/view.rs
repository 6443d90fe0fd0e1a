//! Views of the stored matches for the people who decide on them: one
//! match with its explanation and what was seen of the person after the
//! death date (`vigil match explain`, and the case pages of `vigil serve`),
//! and the tally of matches that carry such evidence (`vigil demo`).
//!
//! Orchestration, like [`super::run`]: it reads the store; the pure core
//! never imports it. A view holds what a screen shows and nothing more: a
//! person's ID number only masked. It renders no text (the waterfall is
//! [`super::explain::render_waterfall`]) and prints nothing.

use chrono::NaiveDate;
use serde::Serialize;

use super::explain::Explanation;
use super::score::Safeguard;
use crate::identity;
use crate::model::LifeEvent;
use crate::store::match_state::StoredEvent;
use crate::store::matches::StoredMatch;
use crate::store::{Store, StoreError};

/// Why a stored match cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("the stored explanation of {source_name} {record_key} is unreadable")]
    UnreadableExplanation {
        source_name: String,
        record_key: String,
        #[source]
        cause: serde_json::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One match as the person who must decide on it sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainedMatch {
    /// The match as stored: the death record (source, key), the pensioner
    /// it is matched to, its score, band and run.
    pub stored: StoredMatch,
    /// Why it scored what it did, level by level, as the run recorded it
    /// (`stored.explanation`, read).
    pub explanation: Explanation,
    /// Evidence of life and video sessions dated after the record's death
    /// date; `None` when there is none (or the record or the pensioner is
    /// gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen_after_death: Option<SeenAfterDeath>,
    /// The pensioner's death fused across sources, if a run fused one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub death_event: Option<StoredEvent>,
}

/// What was seen of a matched person after the death date the record gives:
/// the evidence that speaks against the death.
#[derive(Debug, Clone, Serialize)]
pub struct SeenAfterDeath {
    /// The death date of the record.
    pub death_date: NaiveDate,
    /// The person's ID number, masked: a view never holds a full one.
    pub masked_id: String,
    /// Oldest first: evidence-of-life events, and video sessions whatever
    /// their result (`proves_life` says which count).
    pub events: Vec<LifeEvent>,
    /// Some of it proves life, yet the match records no counter-evidence:
    /// it arrived after the match was made, and matching again takes it
    /// into account.
    pub arrived_after_match: bool,
}

/// The stored matches of the death record `record_key` (of `source`, when
/// given: a key may recur across sources), in (source, record_key) order.
pub async fn matches_of_record(
    store: &Store,
    record_key: &str,
    source: Option<&str>,
) -> Result<Vec<StoredMatch>, StoreError> {
    Ok(store
        .list_matches()
        .await?
        .into_iter()
        .filter(|m| m.record_key == record_key && source.is_none_or(|s| m.source == s))
        .collect())
}

/// The view of one stored match: its explanation, what was seen of the
/// person after the death date, and the fused death event.
pub async fn explain_match(store: &Store, m: &StoredMatch) -> Result<ExplainedMatch, ViewError> {
    let explanation = Explanation::from_stored(&m.explanation).map_err(|cause| {
        ViewError::UnreadableExplanation {
            source_name: m.source.clone(),
            record_key: m.record_key.clone(),
            cause,
        }
    })?;
    let seen_after_death = seen_after_death(store, m, &explanation).await?;
    let death_event = store.death_event(&m.person_no).await?;
    Ok(ExplainedMatch {
        stored: m.clone(),
        explanation,
        seen_after_death,
        death_event,
    })
}

async fn seen_after_death(
    store: &Store,
    m: &StoredMatch,
    e: &Explanation,
) -> Result<Option<SeenAfterDeath>, StoreError> {
    let (Some(record), Some(person)) = (
        store.get_death_record(&m.source, &m.record_key).await?,
        store.get_pensioner(&m.person_no).await?,
    ) else {
        return Ok(None);
    };
    // The store gives them latest first.
    let mut events: Vec<LifeEvent> = store
        .life_evidence_for(&person.id_number)
        .await?
        .into_iter()
        .filter(|ev| ev.event_date > record.death_date)
        .collect();
    if events.is_empty() {
        return Ok(None);
    }
    events.reverse();
    let counted = e.safeguards.iter().any(is_counter_evidence);
    Ok(Some(SeenAfterDeath {
        death_date: record.death_date,
        masked_id: identity::mask(&person.id_number),
        arrived_after_match: !counted && events.iter().any(|ev| ev.proves_life),
        events,
    }))
}

fn is_counter_evidence(s: &Safeguard) -> bool {
    matches!(s, Safeguard::CounterEvidence { .. })
}

/// How the evidence of life dated after a death weighed on the stored
/// matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CounterEvidenceTally {
    /// Matches whose explanation records such evidence.
    pub carrying: usize,
    /// Of them, those it alone kept from `auto`: the score reached the auto
    /// threshold and no other safeguard fired.
    pub held_back: usize,
    /// The record key of the first match carrying it, to show as an example.
    pub example: Option<String>,
}

/// Tallies the matches (as [`Store::list_matches`] gives them) that carry
/// evidence of life after the death date. A match whose explanation cannot
/// be read is not counted.
pub fn counter_evidence_tally(matches: &[StoredMatch]) -> CounterEvidenceTally {
    let mut tally = CounterEvidenceTally::default();
    for m in matches {
        let Ok(e) = Explanation::from_stored(&m.explanation) else {
            continue;
        };
        if e.safeguards.iter().any(is_counter_evidence) {
            tally.carrying += 1;
            tally.example.get_or_insert_with(|| m.record_key.clone());
            if e.score >= e.auto_threshold && e.safeguards.iter().all(is_counter_evidence) {
                tally.held_back += 1;
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Band;

    fn stored(record_key: &str, score: f64, safeguards: Vec<Safeguard>) -> StoredMatch {
        let e = Explanation {
            rules_version: "2026.5-default".into(),
            prior: 0.0,
            fields: Vec::new(),
            tf: None,
            score,
            band: Band::Review,
            auto_threshold: 24.0,
            review_threshold: 10.0,
            runner_up: None,
            safeguards,
        };
        StoredMatch {
            source: "funeral".into(),
            record_key: record_key.into(),
            person_no: "P1".into(),
            score,
            band: "review".into(),
            runner_up: None,
            margin: None,
            explanation: serde_json::to_string(&e).unwrap(),
            rules_version: e.rules_version.clone(),
            run_id: 1,
            matched_at: String::new(),
            may_carry: true,
        }
    }

    #[test]
    fn evidence_of_life_holds_back_only_what_would_otherwise_be_auto() {
        let alive = Safeguard::CounterEvidence {
            alive_on: NaiveDate::from_ymd_opt(2026, 11, 3).unwrap(),
        };
        let mut unreadable = stored("k0", 30.0, vec![alive.clone()]);
        unreadable.explanation = "{".into();
        let tally = counter_evidence_tally(&[
            unreadable,
            stored("k1", 12.0, Vec::new()),
            // Under the auto threshold anyway: carries it, not held back by it.
            stored("k2", 12.0, vec![alive.clone()]),
            stored("k3", 30.0, vec![alive.clone()]),
            // Another safeguard would have kept it from auto as well.
            stored(
                "k4",
                30.0,
                vec![alive, Safeguard::Ambiguous { margin: 1.0 }],
            ),
        ]);
        assert_eq!(
            tally,
            CounterEvidenceTally {
                carrying: 3,
                held_back: 1,
                example: Some("k2".into()),
            }
        );
    }
}
