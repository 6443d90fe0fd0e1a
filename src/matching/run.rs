//! A match run: the I/O edge of matching. Loads the active roster and the
//! stored death records, runs the pure matcher on blocking threads, and
//! stores every match with its explanation, as one run with an audit entry.
//!
//! Every run re-matches all stored records under the given rules (the
//! result is deterministic, so re-running changes nothing); matching only
//! the records not yet matched is left for later, see the notes on issue 4.

use std::time::Instant;

use serde::Serialize;

use super::assign::{LifeEvidence, RejectedPairs, match_batch};
use super::blocking::RosterIndex;
use super::rules::MatchRules;
use crate::audit;
use crate::store::matches::StoredMatch;
use crate::store::runs::{RunCounts, RunStatus};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum MatchRunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the matcher stopped unexpectedly: {0}")]
    Worker(String),
}

/// What a match run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MatchSummary {
    pub run_id: i64,
    pub rules_version: String,
    pub persons: u64,
    pub records: u64,
    pub auto: u64,
    pub review: u64,
    pub pairs_scored: u64,
    /// Oversized blocks that were cut to the configured cap.
    pub capped_blocks: u64,
    pub index_seconds: f64,
    pub match_seconds: f64,
}

/// Matches every stored death record against the active roster.
pub async fn run_match(
    store: &Store,
    rules: &MatchRules,
    actor: &str,
) -> Result<MatchSummary, MatchRunError> {
    let run_id = store.start_run("match", "matcher", None, None).await?;
    let result = run_inner(store, rules, run_id).await;
    match &result {
        Ok(s) => {
            let counts = RunCounts {
                read: s.records,
                inserted: s.auto + s.review,
                details: serde_json::json!({
                    "auto": s.auto,
                    "review": s.review,
                    "persons": s.persons,
                    "pairs_scored": s.pairs_scored,
                    "capped_blocks": s.capped_blocks,
                    "rules_version": s.rules_version,
                }),
                ..Default::default()
            };
            store
                .finish_run(run_id, RunStatus::Ok, &counts, None, None)
                .await?;
            audit::append(
                store,
                actor,
                "match.run",
                &format!("run {run_id}"),
                &serde_json::json!({
                    "run_id": run_id,
                    "rules_version": s.rules_version,
                    "records": s.records,
                    "auto": s.auto,
                    "review": s.review,
                }),
            )
            .await?;
        }
        Err(e) => {
            let _ = store
                .finish_run(
                    run_id,
                    RunStatus::Failed,
                    &RunCounts::default(),
                    None,
                    Some(&e.to_string()),
                )
                .await;
        }
    }
    result
}

async fn run_inner(
    store: &Store,
    rules: &MatchRules,
    run_id: i64,
) -> Result<MatchSummary, MatchRunError> {
    let persons = store.load_match_persons().await?;
    let records = store.load_match_records().await?;
    let rejected: RejectedPairs = store.rejected_pairs().await?.into_iter().collect();
    // Evidence of life after a death date blocks `auto` and shows on the match.
    let life: LifeEvidence = store.load_life_evidence().await?;
    let rules_owned = rules.clone();
    let (summary, stored) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let index = RosterIndex::build(&persons, &rules_owned.blocking);
        let index_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let batch = match_batch(&index, &records, &rules_owned, &life, &rejected);
        let match_seconds = started.elapsed().as_secs_f64();
        let mut summary = MatchSummary {
            run_id,
            rules_version: rules_owned.version.clone(),
            persons: persons.len() as u64,
            records: records.len() as u64,
            pairs_scored: batch.pairs_scored as u64,
            capped_blocks: batch.capped_blocks.len() as u64,
            index_seconds,
            match_seconds,
            ..Default::default()
        };
        let stored: Vec<StoredMatch> = batch
            .matches
            .iter()
            .map(|m| {
                match m.band.as_str() {
                    "auto" => summary.auto += 1,
                    _ => summary.review += 1,
                }
                StoredMatch {
                    source: m.source.clone(),
                    record_key: m.record_key.clone(),
                    person_no: m.person_no.clone(),
                    score: m.score,
                    band: m.band.as_str().to_string(),
                    runner_up: m
                        .explanation
                        .runner_up
                        .as_ref()
                        .map(|r| r.person_no.clone()),
                    margin: m.explanation.runner_up.as_ref().map(|r| r.margin),
                    explanation: serde_json::to_string(&m.explanation).unwrap_or_default(),
                    rules_version: rules_owned.version.clone(),
                    run_id,
                    matched_at: String::new(),
                }
            })
            .collect();
        (summary, stored)
    })
    .await
    .map_err(|e| MatchRunError::Worker(e.to_string()))?;
    store.replace_matches(run_id, &stored).await?;
    Ok(summary)
}
