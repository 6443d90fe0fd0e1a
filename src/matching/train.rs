//! Training: proposes new level weights from the data, as Splink does.
//! u-probabilities (how often a level occurs between two different people)
//! come from random pairs of roster persons drawn with a seeded generator;
//! m-probabilities (how often it occurs for the same person) come from
//! expectation-maximisation over the candidate pairs blocking proposes, with
//! u held fixed. The new weight of a level is log2(m/u). This module owns
//! the estimation; it must never overwrite the rules it started from (it
//! returns new rules for the caller to write beside the current file), never
//! change thresholds, the prior or the `missing` levels (whose frequency
//! says how a source is filled, not who the person is), and never read the
//! clock or any unseeded randomness.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::blocking::RosterIndex;
use super::compare::{
    BirthLevel, Comparison, IdLevel, NameLevel, PreparedRecord, RegionLevel, SexLevel, compare,
    compare_prepared,
};
use super::rules::{MatchRules, RulesError};
use crate::model::{IdStatus, MatchRecord, Person};

const FIELDS: usize = 5;
const LEVELS: [usize; FIELDS] = [
    IdLevel::ALL.len(),
    NameLevel::ALL.len(),
    BirthLevel::ALL.len(),
    SexLevel::ALL.len(),
    RegionLevel::ALL.len(),
];

/// A comparison as level positions per field; `None` for a level that
/// carries no information of its own (`implied_by_id`).
type Coded = [Option<usize>; FIELDS];

fn pos<T: PartialEq>(all: &[T], x: T) -> Option<usize> {
    all.iter().position(|y| *y == x)
}

fn code(c: &Comparison) -> Coded {
    [
        pos(&IdLevel::ALL, c.id),
        pos(&NameLevel::ALL, c.name),
        (c.birth != BirthLevel::ImpliedById)
            .then(|| pos(&BirthLevel::ALL, c.birth))
            .flatten(),
        (c.sex != SexLevel::ImpliedById)
            .then(|| pos(&SexLevel::ALL, c.sex))
            .flatten(),
        pos(&RegionLevel::ALL, c.region),
    ]
}

/// Probabilities per field and level, in the order of each level enum's `ALL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelProbabilities(pub [Vec<f64>; FIELDS]);

impl LevelProbabilities {
    fn from_counts(counts: &[Vec<f64>; FIELDS]) -> LevelProbabilities {
        // Add-half smoothing: a level never seen is rare, not impossible.
        LevelProbabilities(std::array::from_fn(|f| {
            let total: f64 = counts[f].iter().sum::<f64>() + 0.5 * counts[f].len() as f64;
            counts[f].iter().map(|c| (c + 0.5) / total).collect()
        }))
    }

    pub fn id(&self, l: IdLevel) -> f64 {
        self.0[0][IdLevel::ALL.iter().position(|&x| x == l).unwrap_or(0)]
    }
    pub fn name(&self, l: NameLevel) -> f64 {
        self.0[1][NameLevel::ALL.iter().position(|&x| x == l).unwrap_or(0)]
    }
}

/// What training found, with the proposed rules.
#[derive(Debug, Clone)]
pub struct TrainingReport {
    pub rules: MatchRules,
    pub u: LevelProbabilities,
    pub m: LevelProbabilities,
    /// Share of candidate pairs EM believes to be matches.
    pub match_share: f64,
    pub iterations: usize,
    pub random_pairs: usize,
    pub candidate_pairs: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct TrainingOptions {
    pub random_pairs: usize,
    pub seed: u64,
    pub max_iterations: usize,
}

impl Default for TrainingOptions {
    fn default() -> Self {
        TrainingOptions {
            random_pairs: 1_000_000,
            seed: 20_261_101,
            max_iterations: 50,
        }
    }
}

/// The person as a death source would describe them, for random pairs.
fn as_record(p: &Person) -> MatchRecord {
    MatchRecord {
        source: "roster".into(),
        record_key: p.person_no.to_string(),
        name: p.name.to_string(),
        name_norm: p.name_norm.to_string(),
        name_key: p.name_key.to_string(),
        id_raw: p.id_number.to_string(),
        id_number: Some(p.id_number.to_string()),
        id_status: IdStatus::Valid,
        sex: Some(p.sex),
        birth_date: Some(p.birth_date),
        birth_year_range: None,
        death_date: p.birth_date,
        region: Some(p.insured_region.to_string()),
    }
}

/// u-probabilities from `n` random pairs of distinct roster persons.
pub fn estimate_u(
    persons: &[Person],
    rules: &MatchRules,
    n: usize,
    seed: u64,
) -> LevelProbabilities {
    let mut counts: [Vec<f64>; FIELDS] = std::array::from_fn(|f| vec![0.0; LEVELS[f]]);
    if persons.len() < 2 {
        return LevelProbabilities::from_counts(&counts);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pairs: Vec<(usize, usize)> = (0..n)
        .map(|_| {
            let i = rng.random_range(0..persons.len());
            let mut j = rng.random_range(0..persons.len() - 1);
            if j >= i {
                j += 1;
            }
            (i, j)
        })
        .collect();
    let coded: Vec<Coded> = pairs
        .par_iter()
        .map(|&(i, j)| code(&compare(&persons[i], &as_record(&persons[j]), rules)))
        .collect();
    for c in &coded {
        for f in 0..FIELDS {
            if let Some(l) = c[f] {
                counts[f][l] += 1.0;
            }
        }
    }
    LevelProbabilities::from_counts(&counts)
}

/// m-probabilities by EM on coded candidate pairs with `u` fixed; starts
/// from the m the current weights imply (m = u * 2^w, renormalised).
fn estimate_m(
    pairs: &[Coded],
    u: &LevelProbabilities,
    rules: &MatchRules,
    max_iterations: usize,
) -> (LevelProbabilities, f64, usize) {
    let weights: [Vec<f64>; FIELDS] = [
        IdLevel::ALL.iter().map(|l| l.weight(rules)).collect(),
        NameLevel::ALL.iter().map(|l| l.weight(rules)).collect(),
        BirthLevel::ALL.iter().map(|l| l.weight(rules)).collect(),
        SexLevel::ALL.iter().map(|l| l.weight(rules)).collect(),
        RegionLevel::ALL.iter().map(|l| l.weight(rules)).collect(),
    ];
    let mut m: [Vec<f64>; FIELDS] = std::array::from_fn(|f| {
        let raw: Vec<f64> = (0..LEVELS[f])
            .map(|l| u.0[f][l] * weights[f][l].exp2())
            .collect();
        let s: f64 = raw.iter().sum();
        raw.iter().map(|x| x / s).collect()
    });
    let mut lambda = 0.5;
    let mut iterations = 0;
    for _ in 0..max_iterations {
        iterations += 1;
        let (sums, total_p) = pairs
            .par_iter()
            .fold(
                || {
                    (
                        std::array::from_fn::<Vec<f64>, FIELDS, _>(|f| vec![0.0; LEVELS[f]]),
                        0.0,
                    )
                },
                |(mut acc, mut tp), c| {
                    let (mut pm, mut pu) = (lambda, 1.0 - lambda);
                    for f in 0..FIELDS {
                        if let Some(l) = c[f] {
                            pm *= m[f][l];
                            pu *= u.0[f][l];
                        }
                    }
                    let p = if pm + pu > 0.0 { pm / (pm + pu) } else { 0.0 };
                    for f in 0..FIELDS {
                        if let Some(l) = c[f] {
                            acc[f][l] += p;
                        }
                    }
                    tp += p;
                    (acc, tp)
                },
            )
            .reduce(
                || (std::array::from_fn(|f| vec![0.0; LEVELS[f]]), 0.0),
                |(mut a, ta), (b, tb)| {
                    for f in 0..FIELDS {
                        for l in 0..LEVELS[f] {
                            a[f][l] += b[f][l];
                        }
                    }
                    (a, ta + tb)
                },
            );
        let new_m = LevelProbabilities::from_counts(&sums).0;
        let new_lambda = (total_p / pairs.len().max(1) as f64).clamp(1e-9, 1.0 - 1e-9);
        let delta = new_m
            .iter()
            .zip(m.iter())
            .flat_map(|(a, b)| a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()))
            .fold((new_lambda - lambda).abs(), f64::max);
        m = new_m;
        lambda = new_lambda;
        if delta < 1e-7 {
            break;
        }
    }
    (LevelProbabilities(m), lambda, iterations)
}

/// Trains on the roster and a sample of death records; returns proposed
/// rules (version suffixed `-trained`) and what was estimated.
pub fn train(
    index: &RosterIndex<'_>,
    records: &[MatchRecord],
    rules: &MatchRules,
    opts: TrainingOptions,
) -> Result<TrainingReport, RulesError> {
    let persons = index.persons();
    let u = estimate_u(persons, rules, opts.random_pairs, opts.seed);
    let pairs: Vec<Coded> = records
        .par_iter()
        .flat_map_iter(|r| {
            let prepared = PreparedRecord::new(r);
            let cands = index.candidates_prepared(&prepared);
            cands
                .person_indices
                .into_iter()
                .map(|i| code(&compare_prepared(&persons[i as usize], &prepared, rules)))
                .collect::<Vec<_>>()
        })
        .collect();
    let (m, match_share, iterations) = estimate_m(&pairs, &u, rules, opts.max_iterations);
    let mut out = rules.clone();
    out.version = format!("{}-trained", rules.version);
    let w = |f: usize, l: usize| (m.0[f][l] / u.0[f][l]).log2().clamp(-30.0, 30.0);
    for (l, level) in IdLevel::ALL.iter().enumerate() {
        if *level != IdLevel::Missing {
            *level.weight_mut(&mut out) = w(0, l);
        }
    }
    for (l, level) in NameLevel::ALL.iter().enumerate() {
        if *level != NameLevel::Missing {
            *level.weight_mut(&mut out) = w(1, l);
        }
    }
    for (l, level) in BirthLevel::ALL.iter().enumerate() {
        if *level != BirthLevel::Missing
            && let Some(x) = level.weight_mut(&mut out)
        {
            *x = w(2, l);
        }
    }
    for (l, level) in SexLevel::ALL.iter().enumerate() {
        if *level != SexLevel::Missing
            && let Some(x) = level.weight_mut(&mut out)
        {
            *x = w(3, l);
        }
    }
    for (l, level) in RegionLevel::ALL.iter().enumerate() {
        if *level != RegionLevel::Missing {
            *level.weight_mut(&mut out) = w(4, l);
        }
    }
    monotone(&mut out);
    out.validate()?;
    Ok(TrainingReport {
        rules: out,
        u,
        m,
        match_share,
        iterations,
        random_pairs: opts.random_pairs,
        candidate_pairs: pairs.len(),
    })
}

/// Weaker evidence never weighs more than stronger evidence of the same
/// field: where sparse data says otherwise, the weaker level is lowered to
/// the stronger one's weight.
fn monotone(r: &mut MatchRules) {
    fn down(ws: &mut [&mut f64]) {
        for i in 1..ws.len() {
            if *ws[i] > *ws[i - 1] {
                *ws[i] = *ws[i - 1];
            }
        }
    }
    let id = &mut r.id;
    down(&mut [
        &mut id.exact,
        &mut id.repaired,
        &mut id.same_but_region,
        &mut id.different,
    ]);
    let n = &mut r.name;
    down(&mut [
        &mut n.exact,
        &mut n.normalised,
        &mut n.toned_pinyin,
        &mut n.toneless_pinyin,
        &mut n.confusable,
        &mut n.similar,
        &mut n.different,
    ]);
    let b = &mut r.birth;
    down(&mut [
        &mut b.exact,
        &mut b.day_month_swapped,
        &mut b.one_part_off,
        &mut b.year_only,
        &mut b.different,
    ]);
    down(&mut [&mut r.sex.agree, &mut r.sex.disagree]);
    let g = &mut r.region;
    down(&mut [
        &mut g.county,
        &mut g.city,
        &mut g.province,
        &mut g.different,
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::compare::tests::{d, person};

    const SURNAMES: [&str; 12] = [
        "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙",
    ];
    const GIVEN: [&str; 12] = [
        "秀英", "建国", "桂兰", "志强", "玉兰", "国华", "淑珍", "德明", "丽华", "文斌", "海燕",
        "春生",
    ];

    /// A roster, and death records of some of its persons (damaged) and of strangers.
    fn sample() -> (Vec<Person>, Vec<MatchRecord>) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut persons = Vec::new();
        for i in 0..3000u32 {
            let name = format!(
                "{}{}",
                SURNAMES[rng.random_range(0..12)],
                GIVEN[rng.random_range(0..12)]
            );
            let birth = d(
                1935 + rng.random_range(0..30),
                rng.random_range(1..=12),
                rng.random_range(1..=28),
            );
            let region = ["440304", "510104", "110101", "320102"][rng.random_range(0..4)];
            persons.push(person(
                &format!("P{i:05}"),
                &name,
                region,
                birth,
                (2 * i % 1000) as u16,
            ));
        }
        let mut records = Vec::new();
        for k in 0..600usize {
            let (p, key) = if k % 2 == 0 {
                (persons[k * 4].clone(), format!("R{k}"))
            } else {
                let name = format!("{}{}", SURNAMES[k % 12], GIVEN[(k / 12) % 12]);
                let birth = d(
                    1935 + (k % 30) as i32,
                    1 + (k % 12) as u32,
                    1 + (k % 28) as u32,
                );
                (
                    person("X", &name, "440304", birth, (1 + 2 * k % 999) as u16),
                    format!("R{k}"),
                )
            };
            let id = if k % 5 == 0 {
                String::new()
            } else {
                p.id_number.to_string()
            };
            let mut r = MatchRecord::new("civil_affairs", &key, &p.name, &id, d(2026, 10, 1));
            r.birth_date = Some(p.birth_date);
            r.sex = Some(p.sex);
            r.region = Some(p.insured_region.to_string());
            records.push(r);
        }
        (persons, records)
    }

    #[test]
    fn training_recovers_sensible_weights_on_a_synthetic_sample() {
        let (persons, records) = sample();
        let rules = MatchRules::default_rules();
        let index = RosterIndex::build(&persons, &rules.blocking);
        let opts = TrainingOptions {
            random_pairs: 200_000,
            ..TrainingOptions::default()
        };
        let report = train(&index, &records, &rules, opts).unwrap();
        assert!(
            report.m.id(IdLevel::Exact) > 0.6,
            "m(id exact) {:?}",
            report.m
        );
        assert!(
            report.u.id(IdLevel::Exact) < 1e-3,
            "u(id exact) {:?}",
            report.u
        );
        assert!(report.u.name(NameLevel::Exact) < 0.05);
        let r = &report.rules;
        assert!(r.id.exact > 10.0, "{}", r.id.exact);
        assert!(r.id.different < 0.0);
        assert!(r.name.exact > 0.0 && r.name.different < 0.0);
        assert!(r.birth.exact > 5.0);
        assert!(r.version.ends_with("-trained"));
        assert_eq!(r.thresholds, rules.thresholds);
        assert!(report.match_share > 0.3, "{}", report.match_share);
    }

    #[test]
    fn training_is_deterministic_and_leaves_the_input_rules_alone() {
        let (persons, records) = sample();
        let rules = MatchRules::default_rules();
        let before = rules.clone();
        let index = RosterIndex::build(&persons, &rules.blocking);
        let opts = TrainingOptions {
            random_pairs: 20_000,
            ..TrainingOptions::default()
        };
        let a = train(&index, &records, &rules, opts).unwrap();
        let b = train(&index, &records, &rules, opts).unwrap();
        assert_eq!(a.rules, b.rules);
        assert_eq!(rules, before);
    }
}
