//! Assignment: scores every candidate of a batch of death records and makes
//! the one-to-one choice between deaths and pensioners, producing [`Match`]es
//! with their band and explanation. This module owns the ambiguity rule (a
//! runner-up within the margin means no `auto`) and the assignment order;
//! it must never store anything, and the same records, roster and rules
//! must always give the same matches in the same order.
//!
//! One pensioner, one death: a pensioner is given to at most one record of
//! each source, and each record to at most one pensioner. Records of
//! *different* sources about the same death are expected to land on the same
//! pensioner and are fused later (`fuse`), so they do not compete. The
//! choice is greedy: all (record, person) pairs at or above the review
//! threshold, by score descending, ties broken by person_no, then source,
//! then record_key (a total order, so the result does not depend on input
//! order or thread scheduling). A record that lost its best person to a
//! higher-scoring record keeps that person as its runner-up, so its margin
//! is negative and it cannot be `auto`.

use ahash::{AHashMap, AHashSet};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::blocking::{CappedBlock, RosterIndex};
use super::compare::{
    Comparison, NameCache, PersonView, PreparedRecord, compare_indexed, compare_without_id,
};
use super::explain::{Explanation, RunnerUp};
use super::rules::MatchRules;
use super::score::{Context, band, pair_total, score_pair};
use crate::model::{Band, LifeEvidence};
use crate::model::{IdStatus, MatchRecord};

/// A death record matched to a pensioner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// Position of the record in the batch.
    pub record_index: usize,
    pub source: String,
    pub record_key: String,
    /// Position of the person in the roster slice.
    pub person_index: u32,
    pub person_no: String,
    pub score: f64,
    pub band: Band,
    pub explanation: Explanation,
    /// Nothing in the record's own evidence speaks against its pensioner
    /// ([`super::fuse::may_carry`]): another source's `auto` record of the
    /// same death may carry it to `auto`.
    pub may_carry: bool,
}

/// The result of matching a batch.
#[derive(Debug, Clone, Default)]
pub struct MatchBatch {
    /// Review and auto matches, ordered by (source, record_key).
    pub matches: Vec<Match>,
    /// Oversized blocks met while finding candidates, by record index.
    pub capped_blocks: Vec<(usize, CappedBlock)>,
    /// Candidate pairs scored (for throughput reports).
    pub pairs_scored: usize,
}

/// Pairs reviewers have rejected: (source, record_key, person_no). They are
/// never proposed again.
pub type RejectedPairs = AHashSet<(String, String, String)>;

/// One candidate of a record, with its levels and total (the explanation's
/// parts are built for the chosen candidates only).
struct Scored {
    person: u32,
    total: f64,
    comparison: Comparison,
}

/// What one record's candidates came to.
struct RecordResult {
    /// Best first; only the top two and those at or above the review
    /// threshold are kept: the assignment looks at no others, and a
    /// record's runner-up is always one of its top two.
    scored: Vec<Scored>,
    capped: Vec<CappedBlock>,
    /// Candidates scored, the dropped ones included.
    pairs: usize,
    /// How many of `scored` reach the review threshold (its first ones).
    reaching_review: usize,
}

/// A pair's place in the assignment order, packed: see [`match_batch`].
struct PairOrder {
    score: u64,
    person: u32,
    record: u32,
    /// The record's index in the batch and the pair's rank in its list.
    r: u32,
    k: u32,
}

/// A key that sorts scores from the highest down, as `f64::total_cmp`
/// orders them.
fn descending(score: f64) -> u64 {
    let bits = score.to_bits();
    // total_cmp's order on the bits: negative numbers' bits are flipped.
    let ascending = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    !ascending
}

/// Each record's position in (source, record_key) order; `None` when the
/// batch is in that order already, as the store loads it.
fn record_ranks(records: &[MatchRecord]) -> Option<Vec<u32>> {
    fn key(r: &MatchRecord) -> (&str, &str) {
        (r.source.as_str(), r.record_key.as_str())
    }
    if records.par_windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
        return None;
    }
    let mut order: Vec<u32> = (0..records.len() as u32).collect();
    order.par_sort_by(|&a, &b| key(&records[a as usize]).cmp(&key(&records[b as usize])));
    let mut rank = vec![0u32; records.len()];
    for (i, &r) in order.iter().enumerate() {
        rank[r as usize] = i as u32;
    }
    Some(rank)
}

/// Matches a batch of death records against the roster behind `index`.
pub fn match_batch(
    index: &RosterIndex<'_>,
    records: &[MatchRecord],
    rules: &MatchRules,
    life: &LifeEvidence,
    rejected: &RejectedPairs,
) -> MatchBatch {
    let persons = index.persons();
    let freqs = index.name_frequencies();
    // Rejected person numbers by record, borrowed: nothing cloned per candidate.
    let mut rejected_by_record: AHashMap<(&str, &str), Vec<&str>> = AHashMap::new();
    for (source, key, person_no) in rejected {
        rejected_by_record
            .entry((source.as_str(), key.as_str()))
            .or_default()
            .push(person_no.as_str());
    }
    let review = rules.thresholds.review;
    // Score every record's candidates, best first (in parallel; each record
    // is independent and results are collected in record order).
    let started = std::time::Instant::now();
    let per_record: Vec<RecordResult> = records
        .par_iter()
        .map(|record| {
            let prepared = PreparedRecord::new(record);
            let cands = index.candidates_prepared(&prepared);
            let rejected_here = rejected_by_record
                .get(&(record.source.as_str(), record.record_key.as_str()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let record_key_id = freqs.id(&record.name_key);
            let record_frequency = record_key_id.map_or(0.0, |id| freqs.frequency_of(id));
            let mut name_cache = NameCache::new();
            // A record without an ID compares on the packed person fields.
            let no_id = record.id_status == IdStatus::Empty;
            // The candidates' packed fields first, in one pass of
            // independent loads (the memory system overlaps them), then
            // the comparisons.
            let views: Vec<PersonView> = cands
                .person_indices
                .iter()
                .map(|&i| *index.view(i))
                .collect();
            let scored: Vec<Scored> = cands
                .person_indices
                .iter()
                .zip(&views)
                .filter(|&(&i, _)| {
                    rejected_here.is_empty()
                        || !rejected_here.contains(&persons[i as usize].person_no.as_str())
                })
                .map(|(&i, view)| {
                    let p = &persons[i as usize];
                    let form = index.form(view.form);
                    let comparison = if no_id {
                        compare_without_id(
                            p,
                            view,
                            form,
                            &prepared,
                            record_key_id,
                            &mut name_cache,
                            rules,
                        )
                    } else {
                        compare_indexed(
                            p,
                            view.form,
                            form,
                            &prepared,
                            record_key_id,
                            &mut name_cache,
                            rules,
                        )
                    };
                    let person_frequency = form.key_id().map_or(0.0, |id| freqs.frequency_of(id));
                    Scored {
                        person: i,
                        total: pair_total(
                            &comparison,
                            person_frequency,
                            record_frequency,
                            freqs,
                            rules,
                        ),
                        comparison,
                    }
                })
                .collect();
            let pairs = scored.len();
            let best_first = |a: &Scored, b: &Scored| {
                b.total
                    .total_cmp(&a.total)
                    .then_with(|| index.person_order(a.person, b.person))
            };
            // Those at or above the review threshold, and the best two in
            // any case; only they are sorted.
            let (mut kept, mut rest): (Vec<Scored>, Vec<Scored>) =
                scored.into_iter().partition(|s| s.total >= review);
            let reaching_review = kept.len();
            let wanted = 2usize.saturating_sub(kept.len()).min(rest.len());
            if wanted > 0 {
                rest.select_nth_unstable_by(wanted - 1, best_first);
                kept.extend(rest.drain(..wanted));
            }
            kept.sort_unstable_by(best_first);
            let scored = kept;
            RecordResult {
                scored,
                capped: cands.capped_blocks,
                pairs,
                reaching_review,
            }
        })
        .collect();

    // Every pair at or above `review`, best first: by score, then person
    // number, then (source, record_key). The order is packed into integers
    // once, so the sort of millions of pairs compares numbers, not strings
    // read from all over memory.
    let scored_in = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let record_rank = record_ranks(records);
    // Sized once: growing it a push at a time copied it into fresh memory
    // again and again (on these machines first touching memory costs
    // about two seconds per GiB).
    let mut pairs: Vec<PairOrder> =
        Vec::with_capacity(per_record.iter().map(|r| r.reaching_review).sum());
    let mut pairs_scored = 0;
    for (r, result) in per_record.iter().enumerate() {
        pairs_scored += result.pairs;
        for (k, s) in result.scored.iter().enumerate() {
            if s.total >= review {
                pairs.push(PairOrder {
                    score: descending(s.total),
                    person: index.person_rank(s.person),
                    record: record_rank.as_ref().map_or(r as u32, |rank| rank[r]),
                    r: r as u32,
                    k: k as u32,
                });
            }
        }
    }
    pairs.par_sort_unstable_by_key(|p| (p.score, p.person, p.record));
    let pairs = pairs.into_iter().map(|p| (p.r as usize, p.k as usize));
    let mut chosen: Vec<Option<usize>> = vec![None; records.len()];
    let mut taken: AHashSet<(u32, &str)> = AHashSet::new();
    for (r, k) in pairs {
        if chosen[r].is_some() {
            continue;
        }
        let person = per_record[r].scored[k].person;
        if taken.insert((person, records[r].source.as_str())) {
            chosen[r] = Some(k);
        }
    }

    tracing::debug!(
        scored_in,
        assigned_in = started.elapsed().as_secs_f64(),
        "scored the candidates and assigned the pairs"
    );
    // The chosen pairs' explanations, on both cores, in record order.
    let mut matches: Vec<Match> = chosen
        .par_iter()
        .enumerate()
        .filter_map(|(r, k)| {
            let k = (*k)?;
            let record = &records[r];
            let scored = &per_record[r].scored;
            let best = &scored[k];
            let person = &persons[best.person as usize];
            let runner = scored
                .iter()
                .enumerate()
                .find(|(j, _)| *j != k)
                .map(|(_, s)| s);
            let ctx = Context {
                runner_up: runner.map(|s| s.total),
                alive_on: life.alive_after(&person.id_number, record.death_date),
            };
            // The explanation's parts, for the chosen pair only; the same
            // arithmetic as the candidate's total.
            let score = score_pair(
                best.comparison,
                &person.name_key,
                &record.name_key,
                freqs,
                rules,
            );
            debug_assert_eq!(score.total.to_bits(), best.total.to_bits());
            let (band, fired) = band(&score, ctx, rules);
            if band == Band::None {
                return None;
            }
            let runner_up = runner.map(|s| RunnerUp {
                person_no: persons[s.person as usize].person_no.to_string(),
                score: s.total,
                margin: best.total - s.total,
            });
            Some(Match {
                record_index: r,
                source: record.source.clone(),
                record_key: record.record_key.clone(),
                person_index: best.person,
                person_no: person.person_no.to_string(),
                score: best.total,
                band,
                may_carry: super::fuse::may_carry(&best.comparison, &fired),
                explanation: Explanation::new(&score, band, runner_up, fired, rules),
            })
        })
        .collect();
    matches.sort_by(|a, b| {
        (a.source.as_str(), a.record_key.as_str()).cmp(&(b.source.as_str(), b.record_key.as_str()))
    });
    let capped_blocks = per_record
        .into_iter()
        .enumerate()
        .flat_map(|(r, result)| result.capped.into_iter().map(move |c| (r, c)))
        .collect();
    MatchBatch {
        matches,
        capped_blocks,
        pairs_scored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::compare::tests::{d, person, record_of};
    use crate::model::Person;

    fn rules() -> MatchRules {
        MatchRules::default_rules()
    }

    fn roster() -> Vec<Person> {
        let mut v = vec![
            person("P0", "王秀英", "440304", d(1942, 3, 15), 122),
            person("P1", "李建国", "440304", d(1950, 7, 2), 131),
            person("P2", "欧阳澹", "510104", d(1938, 11, 30), 57),
        ];
        for i in 0..30u16 {
            v.push(person(
                &format!("Z{i:02}"),
                &format!(
                    "赵{}",
                    ["一", "二", "三", "四", "五", "六"][usize::from(i % 6)]
                ),
                "320102",
                d(1960, 1, 1 + u32::from(i)),
                300 + 2 * i,
            ));
        }
        v
    }

    fn run(ps: &[Person], records: &[MatchRecord]) -> MatchBatch {
        let r = rules();
        let idx = RosterIndex::build(ps, &r.blocking);
        match_batch(
            &idx,
            records,
            &r,
            &LifeEvidence::new(),
            &RejectedPairs::new(),
        )
    }

    #[test]
    fn the_packed_score_key_sorts_as_total_cmp_from_the_highest_down() {
        let mut v = vec![
            24.0,
            10.0,
            10.000000000000002,
            -3.5,
            0.0,
            -0.0,
            31.502162287651252,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-300,
            -1e-300,
        ];
        let mut by_key = v.clone();
        by_key.sort_by_key(|&x| descending(x));
        v.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(
            by_key.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn records_out_of_key_order_are_ranked_by_source_and_key() {
        let p = person("P0", "王秀英", "440304", d(1942, 3, 15), 122);
        let recs = vec![record_of(&p, "b"), record_of(&p, "a"), record_of(&p, "c")];
        assert_eq!(record_ranks(&recs), Some(vec![1, 0, 2]));
        assert_eq!(record_ranks(&recs[1..]), None);
    }

    #[test]
    fn a_clean_record_is_an_auto_match_with_its_explanation() {
        let ps = roster();
        let b = run(&ps, &[record_of(&ps[1], "PS-1")]);
        assert_eq!(b.matches.len(), 1);
        let m = &b.matches[0];
        assert_eq!((m.person_no.as_str(), m.band), ("P1", Band::Auto));
        assert_eq!(m.explanation.rules_version, rules().version);
    }

    #[test]
    fn two_persons_fitting_one_death_almost_equally_are_neither_auto() {
        // Two pensioners with one name and birth date; the record has no ID.
        let mut ps = roster();
        ps.push(person("P8", "欧阳澹", "510104", d(1938, 11, 30), 59));
        let mut r = MatchRecord::new("civil_affairs", "CA-1", "欧阳澹", "", d(2026, 10, 1));
        r.birth_date = Some(d(1938, 11, 30));
        r.region = Some("510104".into());
        let b = run(&ps, &[r]);
        assert_eq!(b.matches.len(), 1);
        let m = &b.matches[0];
        assert_ne!(m.band, Band::Auto);
        let ru = m.explanation.runner_up.as_ref().unwrap();
        assert!(ru.margin.abs() < 1e-9);
        // Deterministic tiebreak on person_no.
        assert_eq!(m.person_no, "P2");
    }

    #[test]
    fn an_exact_id_with_a_close_runner_up_is_not_auto() {
        let mut r = rules();
        r.thresholds.ambiguity_margin = 100.0;
        let ps = roster();
        let idx = RosterIndex::build(&ps, &r.blocking);
        let b = match_batch(
            &idx,
            &[record_of(&ps[0], "k")],
            &r,
            &LifeEvidence::new(),
            &RejectedPairs::new(),
        );
        // No other candidate: no runner-up, so the margin cannot block.
        assert_eq!(b.matches[0].band, Band::Auto);
        let mut ps2 = ps.clone();
        ps2.push(person("P9", "王秀英", "440304", d(1942, 3, 15), 124));
        let idx = RosterIndex::build(&ps2, &r.blocking);
        let b = match_batch(
            &idx,
            &[record_of(&ps2[0], "k")],
            &r,
            &LifeEvidence::new(),
            &RejectedPairs::new(),
        );
        assert_eq!(b.matches[0].band, Band::Review);
    }

    #[test]
    fn one_pensioner_gets_at_most_one_record_of_a_source() {
        let ps = roster();
        let a = record_of(&ps[2], "PS-1");
        let mut b = record_of(&ps[2], "PS-2");
        b.name = "欧阳淡".into();
        let (n, k) = crate::model::names_of(&b.name);
        b.name_norm = n;
        b.name_key = k;
        let out = run(&ps, &[b, a]);
        let to_p2: Vec<_> = out.matches.iter().filter(|m| m.person_no == "P2").collect();
        assert_eq!(to_p2.len(), 1);
        assert_eq!(to_p2[0].record_key, "PS-1", "the higher score wins");
    }

    #[test]
    fn records_of_different_sources_about_one_death_all_match() {
        let ps = roster();
        let a = record_of(&ps[2], "PS-1");
        let mut b = record_of(&ps[2], "CA-1");
        b.source = "civil_affairs".into();
        let out = run(&ps, &[a, b]);
        assert_eq!(out.matches.len(), 2);
        assert!(
            out.matches
                .iter()
                .all(|m| m.person_no == "P2" && m.band == Band::Auto)
        );
    }

    #[test]
    fn evidence_of_life_after_the_death_keeps_a_match_out_of_auto() {
        let ps = roster();
        let r = rules();
        let idx = RosterIndex::build(&ps, &r.blocking);
        let mut life = LifeEvidence::new();
        life.insert(&ps[1].id_number, d(2026, 10, 20));
        let b = match_batch(
            &idx,
            &[record_of(&ps[1], "k")],
            &r,
            &life,
            &RejectedPairs::new(),
        );
        assert_eq!(b.matches[0].band, Band::Review);
        life = LifeEvidence::new();
        life.insert(&ps[1].id_number, d(2026, 9, 20));
        let b = match_batch(
            &idx,
            &[record_of(&ps[1], "k")],
            &r,
            &life,
            &RejectedPairs::new(),
        );
        assert_eq!(b.matches[0].band, Band::Auto);
    }

    #[test]
    fn a_pair_rejected_by_reviewers_never_comes_back() {
        let ps = roster();
        let r = rules();
        let idx = RosterIndex::build(&ps, &r.blocking);
        let mut rejected = RejectedPairs::new();
        rejected.insert(("public_security".into(), "k".into(), "P1".into()));
        let b = match_batch(
            &idx,
            &[record_of(&ps[1], "k")],
            &r,
            &LifeEvidence::new(),
            &rejected,
        );
        assert!(b.matches.iter().all(|m| m.person_no != "P1"));
    }

    #[test]
    fn the_same_batch_in_another_order_gives_the_same_matches() {
        let ps = roster();
        let recs: Vec<MatchRecord> = (0..ps.len())
            .map(|i| record_of(&ps[i], &format!("PS-{i:03}")))
            .collect();
        let mut rev = recs.clone();
        rev.reverse();
        let a = run(&ps, &recs);
        let b = run(&ps, &rev);
        let strip = |m: &MatchBatch| {
            m.matches
                .iter()
                .map(|m| (m.record_key.clone(), m.person_no.clone(), m.band))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&a), strip(&b));
    }
}
