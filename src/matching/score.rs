//! Scoring: the sum of a pair's level weights, the term-frequency
//! adjustment of name agreement, the band the sum falls in, and the
//! safeguards that no weight can override. This module owns the rule that
//! a living person is never suspended automatically on weak or conflicting
//! evidence: `auto` needs an ID that agrees exactly or by repair, a name
//! that agrees, no evidence of life after the death and a clear margin over
//! the runner-up. It must never look at more than one pair at a time (the
//! runner-up arrives as a number) and never touch storage.

use ahash::AHashMap;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::compare::{Comparison, IdLevel};
use super::rules::MatchRules;
use crate::model::Band;

/// A hard rule that kept a pair out of `auto` (or, for counter-evidence,
/// that must be shown with the match whatever its band).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "safeguard")]
pub enum Safeguard {
    /// No ID agreeing exactly or by repair: a name with a birth date alone
    /// never proves a death (identity.md).
    NoIdAgreement,
    /// The name does not agree, whatever the ID says.
    NameDoesNotAgree,
    /// The ID matches but the name is different: the pattern of an
    /// informant typing a living relative's ID into a death record.
    InformantPattern,
    /// Evidence of life dated after the death date.
    CounterEvidence { alive_on: chrono::NaiveDate },
    /// Another pensioner fits almost as well.
    Ambiguous { margin: f64 },
    /// The ID agrees but the record's own birth date contradicts it: the
    /// ID was probably copied from someone else's card.
    BirthContradictsId,
    /// Another record of the same source, matched in an earlier run,
    /// already holds this pensioner: one person dies once.
    AlreadyMatched { record_key: String },
    /// Another person's recorded death (a valid ID that is not the
    /// pensioner's) fits this record as well: the same name, birth year,
    /// city and death date. The record is not carried to `auto` by the
    /// pensioner's other records ([`super::fuse::mark_other_deaths`]).
    AnotherDeath { source: String, record_key: String },
}

impl Safeguard {
    pub fn describe(&self) -> String {
        match self {
            Safeguard::NoIdAgreement => {
                "no ID agreeing exactly or by repair: a name and birth date alone never prove a death"
                    .to_string()
            }
            Safeguard::NameDoesNotAgree => "the name does not agree".to_string(),
            Safeguard::InformantPattern => {
                "the ID matches but the name is different (an informant's or relative's ID?)"
                    .to_string()
            }
            Safeguard::CounterEvidence { alive_on } => {
                format!("evidence of life on {alive_on}, after the death date")
            }
            Safeguard::Ambiguous { margin } => {
                format!("another pensioner fits almost as well (margin {margin:.2})")
            }
            Safeguard::BirthContradictsId => {
                "the record's birth date contradicts the ID it carries".to_string()
            }
            Safeguard::AlreadyMatched { record_key } => {
                format!("record {record_key} of the same source already holds this pensioner")
            }
            Safeguard::AnotherDeath { source, record_key } => format!(
                "another person's death fits this record as well ({source} {record_key}: same name, birth year, city and death date, another ID)"
            ),
        }
    }
}

/// How often each pinyin name key occurs in the active roster. Each
/// distinct key also has an id, its position in lexicographic order, so
/// that the matcher can keep a person's key frequency as a number.
#[derive(Debug, Clone, Default)]
pub struct NameFrequencies {
    /// Distinct keys, ascending; a key's id is its position.
    keys: Vec<CompactString>,
    counts: Vec<u32>,
    ids: AHashMap<CompactString, u32>,
    total: u64,
    /// Probability that two random roster persons share a name key
    /// (sum of squared shares): Splink's `u` for name agreement on average.
    u_average: f64,
}

impl NameFrequencies {
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> NameFrequencies {
        let mut counts: AHashMap<CompactString, u32> = AHashMap::new();
        for k in keys.into_iter().filter(|k| !k.is_empty()) {
            match counts.get_mut(k) {
                Some(c) => *c += 1,
                None => {
                    counts.insert(k.into(), 1);
                }
            }
        }
        NameFrequencies::from_counts(counts)
    }

    /// From (key, count) pairs with distinct, non-empty keys.
    pub fn from_counts(counts: impl IntoIterator<Item = (CompactString, u32)>) -> NameFrequencies {
        let mut pairs: Vec<(CompactString, u32)> = counts.into_iter().collect();
        pairs.sort_unstable();
        let total: u64 = pairs.iter().map(|&(_, c)| u64::from(c)).sum();
        let t = total.max(1) as f64;
        // Summed in a fixed order: floating-point addition is not
        // associative, and a map's iteration order changes from run to
        // run, which made identical runs differ in the last digit.
        let mut squares: Vec<u64> = pairs
            .iter()
            .map(|&(_, c)| u64::from(c) * u64::from(c))
            .collect();
        squares.sort_unstable();
        let u_average = squares.iter().map(|&sq| sq as f64 / (t * t)).sum();
        let (keys, counts) = pairs.into_iter().unzip();
        NameFrequencies::from_parts(keys, counts, total, u_average)
    }

    /// Share of the roster with this name key (0 when absent).
    pub fn frequency(&self, key: &str) -> f64 {
        self.id(key).map_or(0.0, |id| self.frequency_of(id))
    }

    /// Share of the roster with the key whose id this is.
    pub fn frequency_of(&self, id: u32) -> f64 {
        f64::from(self.counts[id as usize]) / self.total.max(1) as f64
    }

    /// The id of a key present in the roster.
    pub fn id(&self, key: &str) -> Option<u32> {
        self.ids.get(key).copied()
    }

    /// The key whose id this is.
    pub fn key(&self, id: u32) -> &str {
        &self.keys[id as usize]
    }

    /// Distinct keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn u_average(&self) -> f64 {
        self.u_average
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The keys (ascending), their counts, the total and `u_average`: what
    /// [`NameFrequencies::from_parts`] takes back.
    pub(crate) fn parts(&self) -> (&[CompactString], &[u32], u64, f64) {
        (&self.keys, &self.counts, self.total, self.u_average)
    }

    /// Frequencies from their keys (ascending), counts and sums: as
    /// [`NameFrequencies::parts`] gave them (the index file), the sums not
    /// recomputed, so that they come back to the last bit.
    pub(crate) fn from_parts(
        keys: Vec<CompactString>,
        counts: Vec<u32>,
        total: u64,
        u_average: f64,
    ) -> NameFrequencies {
        let ids = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as u32))
            .collect();
        NameFrequencies {
            keys,
            counts,
            ids,
            total,
            u_average,
        }
    }

    pub(crate) fn approx_bytes(&self) -> usize {
        self.keys.capacity() * 24 + self.counts.capacity() * 4 + self.ids.capacity() * 32
    }
}

/// The term-frequency adjustment applied to one pair's name agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TfAdjustment {
    /// The pinyin key whose frequency was used.
    pub name_key: String,
    /// Its share of the roster (after the floor).
    pub frequency: f64,
    pub u_average: f64,
    /// Bits added to the score (negative for common names).
    pub adjustment: f64,
}

/// The weights of one pair, before safeguards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairScore {
    pub comparison: Comparison,
    /// Prior + field weights + TF adjustment.
    pub total: f64,
    pub tf: Option<TfAdjustment>,
}

/// The numbers of a TF adjustment: whether the record's key was the one
/// used, its floored frequency, the floored average, and the bits added.
/// Both the per-pair path and the explanation go through here, so they
/// cannot disagree.
fn tf_numbers(
    c: &Comparison,
    person_frequency: f64,
    record_frequency: f64,
    freqs: &NameFrequencies,
    rules: &MatchRules,
) -> Option<(bool, f64, f64, f64)> {
    if !rules.tf.enabled || !c.name.agrees() || freqs.total() == 0 {
        return None;
    }
    let (record_key, f) = if record_frequency > person_frequency {
        (true, record_frequency)
    } else {
        (false, person_frequency)
    };
    let frequency = f.max(rules.tf.min_frequency);
    let u_average = freqs.u_average().max(rules.tf.min_frequency);
    let mut adjustment = (u_average / frequency)
        .log2()
        .clamp(-rules.tf.max_penalty, rules.tf.max_boost);
    if c.name.is_fuzzy() {
        // A near spelling of a rare name earns no rarity bonus: the rare
        // spelling may be the slip. Common names still weigh less.
        adjustment = adjustment.min(0.0) * rules.tf.fuzzy_factor;
    }
    Some((record_key, frequency, u_average, adjustment))
}

/// Name agreement weighs less for common names: log2(u_average / tf(name)),
/// Splink's adjustment, clamped by the rules and reduced on fuzzy levels.
/// The higher of the two keys' frequencies is used, so a fuzzy match onto a
/// rare spelling of a common name earns no rarity bonus.
pub fn tf_adjustment(
    c: &Comparison,
    person_key: &str,
    record_key: &str,
    freqs: &NameFrequencies,
    rules: &MatchRules,
) -> Option<TfAdjustment> {
    let (fp, fr) = (freqs.frequency(person_key), freqs.frequency(record_key));
    tf_numbers(c, fp, fr, freqs, rules).map(|(rec, frequency, u_average, adjustment)| {
        TfAdjustment {
            name_key: if rec { record_key } else { person_key }.to_string(),
            frequency,
            u_average,
            adjustment,
        }
    })
}

fn total_of(c: &Comparison, tf_bits: f64, rules: &MatchRules) -> f64 {
    rules.prior
        + c.id.weight(rules)
        + c.name.weight(rules)
        + c.birth.weight(rules)
        + c.sex.weight(rules)
        + c.region.weight(rules)
        + tf_bits
}

/// The sum of the level weights, the prior and the TF adjustment.
pub fn score_pair(
    c: Comparison,
    person_key: &str,
    record_key: &str,
    freqs: &NameFrequencies,
    rules: &MatchRules,
) -> PairScore {
    let tf = tf_adjustment(&c, person_key, record_key, freqs, rules);
    let total = total_of(&c, tf.as_ref().map_or(0.0, |t| t.adjustment), rules);
    PairScore {
        comparison: c,
        total,
        tf,
    }
}

/// [`score_pair`]'s total from the two keys' frequencies, without building
/// the explanation's parts: the per-candidate path of the matcher.
pub(crate) fn pair_total(
    c: &Comparison,
    person_frequency: f64,
    record_frequency: f64,
    freqs: &NameFrequencies,
    rules: &MatchRules,
) -> f64 {
    let tf = tf_numbers(c, person_frequency, record_frequency, freqs, rules);
    total_of(c, tf.map_or(0.0, |t| t.3), rules)
}

/// What the safeguards need to know beyond the pair itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Context {
    /// Score of the best other candidate for the same death record.
    pub runner_up: Option<f64>,
    /// Latest evidence of life after the death date, if any.
    pub alive_on: Option<chrono::NaiveDate>,
}

/// The band of a scored pair and the safeguards that fired. Safeguards are
/// listed when they kept a pair that scored `auto` from being `auto`;
/// counter-evidence is listed whenever it exists, since a caseworker must
/// see it on any match.
pub fn band(score: &PairScore, ctx: Context, rules: &MatchRules) -> (Band, Vec<Safeguard>) {
    let t = &rules.thresholds;
    let mut fired = Vec::new();
    if let Some(alive_on) = ctx.alive_on {
        fired.push(Safeguard::CounterEvidence { alive_on });
    }
    if score.total < t.review {
        return (Band::None, fired);
    }
    if score.total < t.auto {
        return (Band::Review, fired);
    }
    let c = &score.comparison;
    if !matches!(c.id, IdLevel::Exact | IdLevel::Repaired) {
        fired.push(Safeguard::NoIdAgreement);
    }
    if !c.name.agrees() {
        fired.push(Safeguard::NameDoesNotAgree);
        if matches!(c.id, IdLevel::Exact | IdLevel::Repaired) {
            fired.push(Safeguard::InformantPattern);
        }
    }
    if c.id.agrees() && c.birth == super::compare::BirthLevel::Different {
        fired.push(Safeguard::BirthContradictsId);
    }
    if let Some(r) = ctx.runner_up {
        let margin = score.total - r;
        if margin < t.ambiguity_margin {
            fired.push(Safeguard::Ambiguous { margin });
        }
    }
    let blocked = fired
        .iter()
        .any(|s| !matches!(s, Safeguard::CounterEvidence { .. }))
        || ctx.alive_on.is_some();
    (if blocked { Band::Review } else { Band::Auto }, fired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::compare::tests::{d, person, record_of};
    use crate::matching::compare::{BirthLevel, NameLevel, RegionLevel, SexLevel, compare};
    use crate::model::MatchRecord;

    fn rules() -> MatchRules {
        MatchRules::default_rules()
    }

    fn comparison(id: IdLevel, name: NameLevel, birth: BirthLevel) -> Comparison {
        Comparison {
            id,
            name,
            birth,
            sex: SexLevel::Agree,
            region: RegionLevel::City,
        }
    }

    /// A roster where 王秀英 is common and 欧阳澹 is one of a kind.
    fn freqs() -> NameFrequencies {
        let mut keys = vec!["wangxiuying"; 300];
        keys.push("ouyangdan");
        for i in 0..700 {
            keys.push(Box::leak(format!("name{i}").into_boxed_str()));
        }
        NameFrequencies::from_keys(keys)
    }

    fn scored(c: Comparison, key: &str) -> PairScore {
        score_pair(c, key, key, &freqs(), &rules())
    }

    #[test]
    fn the_tf_adjustment_lowers_a_common_names_weight_below_a_rare_ones() {
        let c = comparison(IdLevel::Missing, NameLevel::Exact, BirthLevel::Exact);
        let common = scored(c, "wangxiuying");
        let rare = scored(c, "ouyangdan");
        assert!(common.tf.as_ref().unwrap().adjustment < 0.0);
        assert!(rare.tf.as_ref().unwrap().adjustment > 0.0);
        assert!(common.total < rare.total);
    }

    #[test]
    fn the_tf_adjustment_also_applies_to_fuzzy_name_levels_at_a_reduced_share() {
        let exact = scored(
            comparison(IdLevel::Missing, NameLevel::Exact, BirthLevel::Exact),
            "wangxiuying",
        );
        let fuzzy = scored(
            comparison(IdLevel::Missing, NameLevel::Confusable, BirthLevel::Exact),
            "wangxiuying",
        );
        let (e, f) = (exact.tf.unwrap().adjustment, fuzzy.tf.unwrap().adjustment);
        assert!(f < 0.0 && f > e, "{e} {f}");
    }

    #[test]
    fn a_different_name_gets_no_tf_adjustment() {
        let s = scored(
            comparison(
                IdLevel::Exact,
                NameLevel::Different,
                BirthLevel::ImpliedById,
            ),
            "wangxiuying",
        );
        assert!(s.tf.is_none());
    }

    #[test]
    fn the_score_is_the_sum_of_the_level_weights() {
        let r = rules();
        let c = comparison(
            IdLevel::Exact,
            NameLevel::Different,
            BirthLevel::ImpliedById,
        );
        let s = score_pair(c, "x", "y", &NameFrequencies::default(), &r);
        let want = r.prior + r.id.exact + r.name.different + r.sex.agree + r.region.city;
        assert!((s.total - want).abs() < 1e-9);
    }

    #[test]
    fn id_exact_and_name_exact_is_auto() {
        let p = person("P1", "王秀英", "440304", d(1942, 3, 15), 122);
        let c = compare(&p, &record_of(&p, "k"), &rules());
        let s = score_pair(c, &p.name_key, &p.name_key, &freqs(), &rules());
        assert_eq!(band(&s, Context::default(), &rules()).0, Band::Auto);
    }

    #[test]
    fn a_name_and_birth_date_alone_is_never_auto() {
        let mut r = rules();
        r.name.exact = 40.0;
        r.name.normalised = 40.0;
        let c = comparison(IdLevel::Missing, NameLevel::Exact, BirthLevel::Exact);
        let s = score_pair(c, "ouyangdan", "ouyangdan", &freqs(), &r);
        assert!(s.total >= r.thresholds.auto);
        let (b, fired) = band(&s, Context::default(), &r);
        assert_eq!(b, Band::Review);
        assert!(fired.contains(&Safeguard::NoIdAgreement));
    }

    #[test]
    fn an_id_same_but_region_is_never_auto() {
        let mut r = rules();
        r.id.same_but_region = 19.0;
        let c = comparison(
            IdLevel::SameButRegion,
            NameLevel::Exact,
            BirthLevel::ImpliedById,
        );
        let s = score_pair(c, "ouyangdan", "ouyangdan", &freqs(), &r);
        assert!(s.total >= r.thresholds.auto);
        assert_eq!(band(&s, Context::default(), &r).0, Band::Review);
    }

    #[test]
    fn an_informant_case_id_exact_but_name_different_is_never_auto() {
        let mut r = rules();
        r.id.exact = 60.0;
        let c = comparison(
            IdLevel::Exact,
            NameLevel::Different,
            BirthLevel::ImpliedById,
        );
        let s = score_pair(c, "a", "b", &freqs(), &r);
        assert!(s.total >= r.thresholds.auto);
        let (b, fired) = band(&s, Context::default(), &r);
        assert_eq!(b, Band::Review);
        assert!(fired.contains(&Safeguard::InformantPattern));
    }

    #[test]
    fn an_exact_id_whose_record_states_another_birth_date_is_never_auto() {
        let mut r = rules();
        r.id.exact = 60.0;
        let c = comparison(IdLevel::Exact, NameLevel::Exact, BirthLevel::Different);
        let s = score_pair(c, "a", "a", &freqs(), &r);
        let (b, fired) = band(&s, Context::default(), &r);
        assert_eq!(b, Band::Review);
        assert!(fired.contains(&Safeguard::BirthContradictsId));
    }

    #[test]
    fn a_near_spelling_of_a_rare_name_earns_no_rarity_bonus() {
        let s = scored(
            comparison(IdLevel::Exact, NameLevel::Similar, BirthLevel::ImpliedById),
            "ouyangdan",
        );
        assert!(s.tf.unwrap().adjustment <= 0.0);
    }

    #[test]
    fn a_missing_name_with_an_exact_id_is_never_auto() {
        let mut r = rules();
        r.id.exact = 60.0;
        let c = comparison(IdLevel::Exact, NameLevel::Missing, BirthLevel::ImpliedById);
        let s = score_pair(c, "", "", &freqs(), &r);
        let (b, fired) = band(&s, Context::default(), &r);
        assert_eq!(b, Band::Review);
        assert!(fired.contains(&Safeguard::NameDoesNotAgree));
    }

    #[test]
    fn evidence_of_life_after_the_death_blocks_auto_and_is_shown() {
        let c = comparison(IdLevel::Exact, NameLevel::Exact, BirthLevel::ImpliedById);
        let s = scored(c, "ouyangdan");
        let ctx = Context {
            runner_up: None,
            alive_on: Some(d(2026, 11, 2)),
        };
        let (b, fired) = band(&s, ctx, &rules());
        assert_eq!(b, Band::Review);
        assert!(matches!(fired[0], Safeguard::CounterEvidence { .. }));
    }

    #[test]
    fn a_close_runner_up_makes_the_best_ambiguous_and_not_auto() {
        let c = comparison(IdLevel::Exact, NameLevel::Exact, BirthLevel::ImpliedById);
        let s = scored(c, "ouyangdan");
        let ctx = Context {
            runner_up: Some(s.total - 1.0),
            alive_on: None,
        };
        let (b, fired) = band(&s, ctx, &rules());
        assert_eq!(b, Band::Review);
        assert!(matches!(fired[0], Safeguard::Ambiguous { .. }));
    }

    #[test]
    fn low_scores_fall_in_review_or_none() {
        let r = rules();
        let c = comparison(
            IdLevel::Missing,
            NameLevel::Different,
            BirthLevel::Different,
        );
        assert_eq!(band(&scored(c, "x"), Context::default(), &r).0, Band::None);
        let c = comparison(IdLevel::Missing, NameLevel::Exact, BirthLevel::Exact);
        assert_eq!(
            band(&scored(c, "wangxiuying"), Context::default(), &r).0,
            Band::Review
        );
    }

    #[test]
    fn a_spouse_sharing_address_but_not_name_or_birth_is_not_a_match() {
        let p = person("P1", "王秀英", "440304", d(1942, 3, 15), 122);
        let mut r = MatchRecord::new("civil_affairs", "k", "李建国", "", d(2026, 10, 1));
        r.birth_date = Some(d(1939, 7, 2));
        r.region = Some("440304".into());
        r.sex = Some(1);
        let c = compare(&p, &r, &rules());
        let s = score_pair(c, &p.name_key, &r.name_key, &freqs(), &rules());
        assert_eq!(band(&s, Context::default(), &rules()).0, Band::None);
    }
}
