//! A match run: the I/O edge of matching. Loads the active roster and the
//! death records to match, runs the pure matcher on blocking threads, fuses
//! the matched records into death events, and stores it all as one run with
//! an audit entry.
//!
//! `MatchScope::Pending` (plain `vigil match`) takes only the records not yet
//! matched under the current rules, or changed since; the matches of the
//! other records are kept, and a new record may not take a pensioner that a
//! kept match of the same source already holds (it goes to review, saying
//! which record holds them). `MatchScope::All` (`--full`) re-matches every
//! record; the result is deterministic, so re-running changes nothing.

use std::time::Instant;

use ahash::AHashMap;
use rayon::prelude::*;
use serde::Serialize;

use super::assign::{RejectedPairs, match_batch};
use super::fuse::fuse_assigned;
use super::rules::MatchRules;
use super::score::Safeguard;
use crate::lifecycle::{self, RunEnd};
use crate::model::{Band, LifeEvidence};
use crate::model::{MatchRecord, Person};
use crate::store::match_state::{MatchScope, Progress, StoredEvent};
use crate::store::matches::StoredMatch;
use crate::store::runs::RunCounts;
use crate::store::{LockKey, Store, StoreError, StoreLock};

#[derive(Debug, thiserror::Error)]
pub enum MatchRunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the matcher stopped unexpectedly: {0}")]
    Worker(String),
    /// The stored matches were made under other rules than those given:
    /// their verdicts (which records another source carries to `auto`)
    /// would be judged by settings they were not made with.
    #[error(
        "the stored matches were made under rules {stored:?}, not {given:?}: pass the rules \
         file they were made with (--rules FILE), or run `vigil match` with these rules first"
    )]
    RulesMismatch { stored: String, given: String },
}

/// What a match run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MatchSummary {
    pub run_id: i64,
    pub rules_version: String,
    /// `full` or `pending`.
    pub scope: String,
    pub persons: u64,
    /// Records matched in this run.
    pub records: u64,
    /// Matches of earlier runs kept as they were (pending scope only).
    pub kept: u64,
    /// New matches of this run, by band.
    pub auto: u64,
    pub review: u64,
    /// New matches sent to review because a kept match of the same source
    /// already holds the pensioner.
    pub already_matched: u64,
    /// `review` matches that another person's recorded death fits as well:
    /// never carried to `auto` by their pensioner's other records.
    pub other_deaths: u64,
    pub pairs_scored: u64,
    /// Oversized blocks that were cut to the configured cap.
    pub capped_blocks: u64,
    /// The largest capped blocks (at most ten), for the run's record.
    pub largest_capped: Vec<CappedReport>,
    /// Fused death events now stored, and how many carry a timeline flag.
    pub events: u64,
    pub flagged_events: u64,
    pub index_seconds: f64,
    /// `built`, or `file` when the index was mapped from the index file
    /// an earlier run over the same roster and rules wrote.
    pub index_from: String,
    pub match_seconds: f64,
    pub total_seconds: f64,
}

/// One capped block, as reported (a name key, never an ID).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CappedReport {
    pub kind: String,
    pub name_key: Option<String>,
    pub size: u64,
    pub kept: u64,
    /// Death records whose search hit this block.
    pub records: u64,
}

/// Matches every stored death record against the active roster
/// (`vigil match --full`).
pub async fn run_match(
    store: &Store,
    rules: &MatchRules,
    actor: &str,
) -> Result<MatchSummary, MatchRunError> {
    run_match_scoped(store, rules, actor, MatchScope::All).await
}

/// Matches the records in `scope` against the active roster.
pub async fn run_match_scoped(
    store: &Store,
    rules: &MatchRules,
    actor: &str,
    scope: MatchScope,
) -> Result<MatchSummary, MatchRunError> {
    let started = Instant::now();
    // One match run at a time; holding the lock, any match run still
    // marked running died, and its claims are given back.
    lifecycle::with_run_lock(store, LockKey::Match, async |lock| {
        run_locked(store, rules, actor, scope, started, lock).await
    })
    .await
}

async fn run_locked(
    store: &Store,
    rules: &MatchRules,
    actor: &str,
    scope: MatchScope,
    started: Instant,
    lock: &StoreLock,
) -> Result<MatchSummary, MatchRunError> {
    lifecycle::run(store, lock, None, None, async |run_id| {
        match run_inner(store, rules, run_id, scope).await {
            Ok(mut s) => {
                s.total_seconds = started.elapsed().as_secs_f64();
                let counts = RunCounts {
                    read: s.records,
                    inserted: s.auto + s.review,
                    details: serde_json::json!({
                        "scope": s.scope,
                        "auto": s.auto,
                        "review": s.review,
                        "kept": s.kept,
                        "already_matched": s.already_matched,
                        "persons": s.persons,
                        "pairs_scored": s.pairs_scored,
                        "capped_blocks": s.capped_blocks,
                        "largest_capped": s.largest_capped,
                        "events": s.events,
                        "flagged_events": s.flagged_events,
                        "rules_version": s.rules_version,
                        "index_from": s.index_from,
                    }),
                    ..Default::default()
                };
                let end = RunEnd::ok(counts).audited(
                    actor,
                    "match.run",
                    &format!("run {run_id}"),
                    serde_json::json!({
                        "run_id": run_id,
                        "scope": s.scope,
                        "rules_version": s.rules_version,
                        "records": s.records,
                        "auto": s.auto,
                        "review": s.review,
                        "kept": s.kept,
                    }),
                );
                (Ok(s), end)
            }
            Err(e) => {
                // What the run claimed goes back before it is marked failed.
                let _ = store.drop_match_claims(run_id).await;
                (Err(e), RunEnd::ok(RunCounts::default()))
            }
        }
    })
    .await
}

async fn run_inner(
    store: &Store,
    rules: &MatchRules,
    run_id: i64,
    scope: MatchScope,
) -> Result<MatchSummary, MatchRunError> {
    let started = Instant::now();
    if scope == MatchScope::Pending {
        store.claim_match_records(run_id, &rules.version).await?;
        // A claimed record may be another person's death that a stored
        // `review` match's record fits as well: that record is matched
        // again too, so a pending run judges it as a full run would.
        let (candidates, claimed) = store.twin_claim_candidates(run_id).await?;
        let twins = super::fuse::twin_claims(&candidates, &claimed, rules);
        store.claim_more_records(run_id, &twins).await?;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "claimed the records to match"
        );
    }
    // Evidence of life after a death date blocks `auto` and shows on the
    // match. Millions of events: read on a connection and core of its own
    // while the roster loads.
    let life_loading = {
        let store = store.clone();
        tokio::spawn(async move { store.load_life_evidence().await })
    };
    // A full run reads every record with its version in one table scan;
    // those versions are what its commit records as matched.
    let load_records = {
        let store = store.clone();
        async move {
            match scope {
                MatchScope::All => store.load_match_records_versioned().await,
                MatchScope::Pending => Ok((store.load_claimed_records(run_id).await?, Vec::new())),
            }
        }
    };
    // The death records load beside the roster when the pool has a
    // connection for them besides the roster's (two scans on SQLite, one
    // on PostgreSQL) and the evidence of life's: they take the core the
    // evidence gives back while the roster is still loading (one after the
    // other, they left a core idle for over a second at ten million
    // pensioners). A smaller pool loads them afterwards.
    let beside = match store.backend() {
        crate::store::Backend::Sqlite => 4,
        crate::store::Backend::Postgres => 3,
    };
    let loaded: Result<_, MatchRunError> = if store.max_connections() >= beside {
        let records_loading = tokio::spawn(load_records);
        let persons = store.load_match_persons().await;
        // Waited for whatever the roster load gave: a failed run ends with
        // no load still reading on its own.
        let records = records_loading
            .await
            .map_err(|e| MatchRunError::Worker(e.to_string()));
        persons
            .map_err(MatchRunError::from)
            .and_then(|p| Ok((p, records??)))
    } else {
        match store.load_match_persons().await {
            Ok(p) => load_records
                .await
                .map(|r| (p, r))
                .map_err(MatchRunError::from),
            Err(e) => Err(e.into()),
        }
    };
    let (persons, (mut records, versions)) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            let _ = life_loading.await;
            return Err(e);
        }
    };
    crate::model::widen_age_ranges(&mut records, rules.blocking.age_slack_years);
    // Deaths of other people a record may fit as well as its pensioner: a
    // full run has every record in hand; a pending run reads the stored ones
    // it did not claim that share a name key with a record it claimed.
    let mut others = match scope {
        MatchScope::All => Vec::new(),
        MatchScope::Pending => {
            let mut keys: Vec<String> = records.iter().map(|r| r.name_key.clone()).collect();
            keys.sort_unstable();
            keys.dedup();
            store.load_other_deaths(run_id, &keys).await?
        }
    };
    crate::model::widen_age_ranges(&mut others, rules.blocking.age_slack_years);
    let kept = match scope {
        MatchScope::All => Vec::new(),
        MatchScope::Pending => store.load_kept_matches(run_id).await?,
    };
    let started = Instant::now();
    let rejected: RejectedPairs = store.rejected_pairs().await?.into_iter().collect();
    let life: LifeEvidence = life_loading
        .await
        .map_err(|e| MatchRunError::Worker(e.to_string()))??;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "loaded the rejected pairs and waited for the evidence of life"
    );
    let rules_owned = rules.clone();
    let index_path = store.roster_index_path().await?;
    let (mut summary, matches, to_fuse) = tokio::task::spawn_blocking(move || {
        // Mapped from the index file when it was made from this roster and
        // these rules; else built (and written for the next run while the
        // records are matched).
        let ((mut batch, match_seconds, index_mib), index_from, index_seconds) =
            super::index_file::with_index(index_path.as_deref(), &persons, &rules_owned, |index| {
                let started = Instant::now();
                let batch = match_batch(index, &records, &rules_owned, &life, &rejected);
                (
                    batch,
                    started.elapsed().as_secs_f64(),
                    index.approx_bytes() >> 20,
                )
            });
        tracing::info!(
            index_seconds,
            index_from = index_from.as_str(),
            match_seconds,
            index_mib,
            "matched"
        );
        // The index is done with (`with_index` dropped it): its memory went
        // before the explanations and events are built (the run's peak at
        // ten million pensioners).
        let started = Instant::now();

        // One pensioner, one death per source, across runs too.
        let mut held: AHashMap<(u32, &str), &str> = AHashMap::new();
        for (record, person_no, _) in &kept {
            if let Some(p) = position(&persons, person_no) {
                held.insert((p, record.source.as_str()), record.record_key.as_str());
            }
        }
        let mut already_matched = 0;
        for m in &mut batch.matches {
            if let Some(other) = held.get(&(m.person_index, m.source.as_str())) {
                already_matched += 1;
                m.band = Band::Review;
                m.explanation.band = Band::Review;
                m.explanation.safeguards.push(Safeguard::AlreadyMatched {
                    record_key: (*other).to_string(),
                });
            }
        }
        drop(held);
        let marking = Instant::now();
        let other_deaths = super::fuse::mark_other_deaths(
            &mut batch.matches,
            &records,
            &others,
            &persons,
            &rules_owned,
        );
        drop(others);
        tracing::info!(
            other_deaths,
            seconds = marking.elapsed().as_secs_f64(),
            "looked for other people's deaths that review records fit as well"
        );

        let mut summary = MatchSummary {
            run_id,
            rules_version: rules_owned.version.clone(),
            scope: match scope {
                MatchScope::All => "full",
                MatchScope::Pending => "pending",
            }
            .to_string(),
            persons: persons.len() as u64,
            records: records.len() as u64,
            kept: kept.len() as u64,
            already_matched,
            other_deaths: other_deaths as u64,
            pairs_scored: batch.pairs_scored as u64,
            capped_blocks: batch.capped_blocks.len() as u64,
            largest_capped: largest_capped(&batch.capped_blocks),
            index_seconds,
            index_from: index_from.as_str().to_string(),
            match_seconds,
            ..Default::default()
        };
        summary.auto = batch
            .matches
            .iter()
            .filter(|m| m.band == Band::Auto)
            .count() as u64;
        summary.review = batch.matches.len() as u64 - summary.auto;
        let assigned: Vec<(usize, u32, Band)> = batch
            .matches
            .iter()
            .map(|m| (m.record_index, m.person_index, m.band))
            .collect();
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "judged the matches"
        );
        let to_fuse = ToFuse {
            persons,
            records: std::sync::Arc::new(records),
            kept,
            assigned,
        };
        (summary, batch.matches, to_fuse)
    })
    .await
    .map_err(|e| MatchRunError::Worker(e.to_string()))?;
    let records = std::sync::Arc::clone(&to_fuse.records);
    // The explanations are written as JSON (on the cores the store leaves)
    // while the store deletes the old matches and records the progress;
    // the death events are fused on one core while the other writes the
    // matches (the store is one thread). All in the same transaction.
    let explaining = {
        let version = rules.version.clone();
        tokio::task::spawn_blocking(move || stored_matches(matches, &version, run_id))
    };
    let explained = async move {
        explaining
            .await
            .map_err(|e| format!("the explanation thread stopped: {e}"))
    };
    let fusing = {
        let rules = rules.clone();
        tokio::task::spawn_blocking(move || to_fuse.fuse(&rules, run_id))
    };
    let fused = async move {
        fusing
            .await
            .map_err(|e| format!("the fuse thread stopped: {e}"))
    };
    let started = std::time::Instant::now();
    let progress = match scope {
        MatchScope::All => Progress::All {
            records: &records,
            versions: &versions,
        },
        MatchScope::Pending => Progress::Claimed,
    };
    let events = store
        .commit_match_run_with(run_id, &rules.version, progress, explained, fused)
        .await?;
    summary.events = events.len() as u64;
    summary.flagged_events = events.iter().filter(|e| !e.flags.is_empty()).count() as u64;
    tracing::info!(
        matches = summary.auto + summary.review,
        events = events.len(),
        seconds = started.elapsed().as_secs_f64(),
        "stored the matches"
    );
    Ok(summary)
}

/// The run's matches as the store keeps them, their explanations as JSON,
/// on every core.
fn stored_matches(
    matches: Vec<super::Match>,
    rules_version: &str,
    run_id: i64,
) -> Vec<StoredMatch> {
    let started = Instant::now();
    let stored = matches
        .par_iter()
        .map(|m| StoredMatch {
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
            rules_version: rules_version.to_string(),
            run_id,
            matched_at: String::new(),
            may_carry: m.may_carry,
        })
        .collect();
    // Freed beside the store's writing.
    std::thread::spawn(move || drop(matches));
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "wrote the explanations"
    );
    stored
}

/// Persons are in person-number order: positions by binary search.
fn position(persons: &[Person], person_no: &str) -> Option<u32> {
    persons
        .binary_search_by(|p| p.person_no.as_str().cmp(person_no))
        .ok()
        .map(|i| i as u32)
}

/// What fusing a run's matches into death events needs, handed to a
/// thread of its own.
struct ToFuse {
    persons: Vec<Person>,
    records: std::sync::Arc<Vec<MatchRecord>>,
    kept: Vec<(MatchRecord, String, String)>,
    /// The run's matches: (record index, person index, band).
    assigned: Vec<(usize, u32, Band)>,
}

impl ToFuse {
    /// The matched records, new and kept, fused into death events.
    /// Borrowed, not copied: 650,000 records of eight strings each at ten
    /// million pensioners.
    fn fuse(self, rules: &MatchRules, run_id: i64) -> Vec<StoredEvent> {
        let started = Instant::now();
        let mut fused_records: Vec<&MatchRecord> =
            Vec::with_capacity(self.assigned.len() + self.kept.len());
        let mut assigned: Vec<(usize, u32, Band)> =
            Vec::with_capacity(self.assigned.len() + self.kept.len());
        for &(record, person, band) in &self.assigned {
            assigned.push((fused_records.len(), person, band));
            fused_records.push(&self.records[record]);
        }
        for (record, person_no, band) in &self.kept {
            let Some(p) = position(&self.persons, person_no) else {
                continue;
            };
            let band = if band.as_str() == "auto" {
                Band::Auto
            } else {
                Band::Review
            };
            assigned.push((fused_records.len(), p, band));
            fused_records.push(record);
        }
        let events: Vec<StoredEvent> =
            fuse_assigned(&assigned, &fused_records, &self.persons, rules)
                .into_iter()
                .filter_map(|e| {
                    Some(StoredEvent {
                        person_no: e.person_no?,
                        death_date: e.death_date,
                        band: e.band.as_str().to_string(),
                        sources: e.sources,
                        evidence_strength: e.evidence_strength,
                        flags: e
                            .flags
                            .iter()
                            .filter_map(|f| serde_json::to_value(f).ok())
                            .collect(),
                        records: e
                            .records
                            .iter()
                            .map(|r| {
                                serde_json::json!({
                                    "source": r.source,
                                    "record_key": r.record_key,
                                    "death_date": r.death_date,
                                    "digest": fused_records[r.record_index].digest(),
                                })
                            })
                            .collect(),
                        rules_version: rules.version.clone(),
                        run_id,
                    })
                })
                .collect();
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "fused the death events"
        );
        drop(fused_records);
        // Freeing the roster (1.8 GiB at ten million pensioners) took over
        // a second: on a thread of its own, beside the store's writing.
        std::thread::spawn(move || drop(self));
        events
    }
}

/// A matched record with the verdict of its match
/// ([`super::fuse::match_verdict`]): what `vigil matches export` writes and
/// `vigil eval` scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchVerdict {
    pub source: String,
    pub record_key: String,
    pub person_no: String,
    /// The match's score and band as this record carries them.
    pub score: f64,
    pub band: Band,
    /// The record's own, before its match carried it.
    pub record_score: f64,
    pub record_band: String,
    /// Carried to `auto` by another source's record of the same death.
    pub carried: bool,
    pub runner_up: Option<String>,
    pub margin: Option<f64>,
    pub rules_version: String,
}

/// Every stored match with its match's verdict, in (source, record_key)
/// order.
pub async fn match_verdicts(
    store: &Store,
    rules: &MatchRules,
) -> Result<Vec<MatchVerdict>, MatchRunError> {
    let band_of = |s: &str| match s {
        "auto" => Band::Auto,
        "review" => Band::Review,
        _ => Band::None,
    };
    let rows = store.list_match_rows().await?;
    if let Some(r) = rows.iter().find(|r| r.rules_version != rules.version) {
        return Err(MatchRunError::RulesMismatch {
            stored: r.rules_version.clone(),
            given: rules.version.clone(),
        });
    }
    // Each pensioner's records that are `auto` on their own: the anchors
    // that may carry the pensioner's other records.
    let mut anchors: AHashMap<&str, Vec<super::fuse::Anchor<'_>>> = AHashMap::new();
    for r in rows.iter().filter(|r| r.record_band == "auto") {
        anchors
            .entry(r.person_no.as_str())
            .or_default()
            .push(super::fuse::Anchor {
                source: &r.source,
                death_date: r.record_death_date,
                score: r.record_score,
            });
    }
    let verdicts = rows
        .iter()
        .map(|r| {
            let own = (r.record_score, band_of(&r.record_band));
            let (score, band, carried) = super::fuse::match_verdict(
                own,
                r.margin,
                &r.source,
                r.record_death_date,
                r.may_carry,
                anchors.get(r.person_no.as_str()).map_or(&[], Vec::as_slice),
                rules,
            );
            MatchVerdict {
                source: r.source.clone(),
                record_key: r.record_key.clone(),
                person_no: r.person_no.clone(),
                score,
                band,
                record_score: r.record_score,
                record_band: r.record_band.clone(),
                carried,
                runner_up: r.runner_up.clone(),
                margin: r.margin,
                rules_version: r.rules_version.clone(),
            }
        })
        .collect();
    Ok(verdicts)
}

/// The ten largest capped blocks, each once, with how many records hit it.
fn largest_capped(capped: &[(usize, super::blocking::CappedBlock)]) -> Vec<CappedReport> {
    let mut by_block: AHashMap<(String, Option<&str>), CappedReport> = AHashMap::new();
    for (_, c) in capped {
        let kind = format!("{:?}", c.kind);
        let e = by_block
            .entry((kind.clone(), c.name_key.as_deref()))
            .or_insert_with(|| CappedReport {
                kind,
                name_key: c.name_key.clone(),
                size: c.size as u64,
                kept: c.kept as u64,
                records: 0,
            });
        e.size = e.size.max(c.size as u64);
        e.records += 1;
    }
    let mut v: Vec<CappedReport> = by_block.into_values().collect();
    v.sort_by(|a, b| {
        b.size
            .cmp(&a.size)
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.name_key.cmp(&b.name_key))
    });
    v.truncate(10);
    v
}
