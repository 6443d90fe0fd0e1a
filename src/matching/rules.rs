//! The matching rules: every weight, threshold and limit the matcher uses,
//! read from `rules/matching.toml` and validated before any record is
//! scored. Weights are match weights in the Fellegi-Sunter sense, log2 of
//! the Bayes factor m/u of a comparison level. This module owns the rules'
//! shape, their defaults and their validation; it must never read files
//! (the caller hands it the TOML text) and never change a rule silently:
//! an unknown or missing key, or a value out of range, is an error that
//! names the key.

use serde::{Deserialize, Serialize};

/// The default rules, the same text as `rules/matching.toml`.
pub const DEFAULT_RULES_TOML: &str = include_str!("../../rules/matching.toml");

/// Why a rules file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The TOML does not parse or does not have the expected keys; the
    /// message names the line and the key.
    #[error("the matching rules are not valid TOML of the expected shape: {0}")]
    Parse(#[from] toml::de::Error),
    /// A key has a value the matcher cannot work with.
    #[error("matching rule `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRules {
    /// Stored on every match, so a match can be traced to the rules that made it.
    pub version: String,
    /// The starting weight of every pair (log2 prior odds), shown first in
    /// the waterfall.
    pub prior: f64,
    pub thresholds: Thresholds,
    pub id: IdWeights,
    pub name: NameWeights,
    pub birth: BirthWeights,
    pub sex: SexWeights,
    pub region: RegionWeights,
    pub tf: TfRules,
    pub blocking: BlockingRules,
    pub fusion: FusionRules,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Score at or above which a match may be `auto` (safeguards permitting).
    pub auto: f64,
    /// Score at or above which a match goes to a caseworker.
    pub review: f64,
    /// A best candidate must beat the runner-up by at least this much to be `auto`.
    pub ambiguity_margin: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdWeights {
    pub exact: f64,
    pub repaired: f64,
    pub same_but_region: f64,
    pub different: f64,
    pub missing: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameWeights {
    pub exact: f64,
    pub normalised: f64,
    pub toned_pinyin: f64,
    pub toneless_pinyin: f64,
    pub confusable: f64,
    pub similar: f64,
    pub different: f64,
    pub missing: f64,
    /// Jaro-Winkler similarity of the pinyin keys at or above which two
    /// names are `similar`.
    pub similar_threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BirthWeights {
    pub exact: f64,
    pub day_month_swapped: f64,
    pub one_part_off: f64,
    pub year_only: f64,
    pub different: f64,
    pub missing: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SexWeights {
    pub agree: f64,
    pub disagree: f64,
    pub missing: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionWeights {
    /// The same county: for a record with a home address and no ID, what
    /// tells one namesake of a city from the others.
    #[serde(default = "default_county_weight")]
    pub county: f64,
    pub city: f64,
    pub province: f64,
    pub different: f64,
    pub missing: f64,
}

/// Term-frequency adjustment of name agreement (Splink's `tf_adjustment`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TfRules {
    pub enabled: bool,
    /// Floor for a name's roster frequency, so a name absent from the
    /// roster does not earn an unbounded boost.
    pub min_frequency: f64,
    /// Largest upward adjustment (rare names), in bits.
    pub max_boost: f64,
    /// Largest downward adjustment (common names), in bits, as a positive number.
    pub max_penalty: f64,
    /// Share of the adjustment applied on the fuzzy name levels
    /// (confusable, similar), where the frequency is less telling.
    pub fuzzy_factor: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockingRules {
    /// Largest number of persons one block lookup may contribute; larger
    /// blocks are cut (keeping those agreeing on sex and region) and reported.
    pub max_block: usize,
    /// Levenshtein distance for name keys of at most `short_key_len` characters.
    pub fst_distance_short: u32,
    /// Levenshtein distance for longer name keys.
    pub fst_distance_long: u32,
    pub short_key_len: usize,
    /// Most distinct near-spelled keys taken from the fst per record.
    pub max_fuzzy_keys: usize,
    /// Years added on each side of the birth-year range a record that only
    /// gives an age allows: nominal age (虚岁) runs a year or two over the
    /// age in full years, and clerks slip by one. Used for blocking and for
    /// the `year_only` birth level alike.
    #[serde(default = "default_age_slack_years")]
    pub age_slack_years: i32,
}

fn default_county_weight() -> f64 {
    3.5
}

fn default_age_slack_years() -> i32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionRules {
    /// Sources in order of trust for the death date: the first present wins.
    pub death_date_precedence: Vec<String>,
    /// Evidence strength each independent source adds to a fused death.
    pub public_security: f64,
    pub civil_affairs: f64,
    pub funeral: f64,
    /// Age at death above which the timeline is flagged.
    pub max_age: i32,
    /// A record that is not `auto` on its own evidence (a funeral record
    /// with only a name and an age, say) is carried to `auto` by its
    /// match, another source's `auto` record of the same pensioner, only
    /// when its death date is within this many days of the match's: a
    /// namesake's death on another day is not the same death.
    #[serde(default = "default_carry_within_days")]
    pub carry_within_days: i64,
    /// ... and only when no runner-up fits the record within this margin.
    #[serde(default = "default_carry_min_margin")]
    pub carry_min_margin: f64,
}

fn default_carry_within_days() -> i64 {
    0
}

fn default_carry_min_margin() -> f64 {
    0.5
}

pub const SOURCES: [&str; 3] = ["public_security", "civil_affairs", "funeral"];

impl MatchRules {
    /// Parses and validates rules from TOML text.
    pub fn from_toml(text: &str) -> Result<MatchRules, RulesError> {
        let rules: MatchRules = toml::from_str(text)?;
        rules.validate()?;
        Ok(rules)
    }

    /// The rules shipped in `rules/matching.toml`.
    pub fn default_rules() -> MatchRules {
        // The shipped file is checked by a test; failing here is a build defect.
        MatchRules::from_toml(DEFAULT_RULES_TOML).expect("the shipped matching rules are valid")
    }

    /// TOML text of these rules (for a proposed rules file).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The highest score a pair can reach with no ID, birth years only (an
    /// age) and a name of another key that does not sound alike (`similar`
    /// or `different`; the fuzzy levels earn no rarity bonus). Below the
    /// `review` threshold, such pairs need not be looked for at all.
    pub fn best_without_id_or_sound_by_age(&self) -> f64 {
        let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        self.prior
            + self.id.missing
            + max(&[self.name.similar, self.name.different])
            + max(&[self.birth.year_only, self.birth.different])
            + max(&[self.sex.agree, self.sex.disagree, self.sex.missing])
            + max(&[
                self.region.county,
                self.region.city,
                self.region.province,
                self.region.different,
                self.region.missing,
            ])
    }

    /// The evidence strength of one source in a fused death.
    pub fn source_strength(&self, source: &str) -> f64 {
        match source {
            "public_security" => self.fusion.public_security,
            "civil_affairs" => self.fusion.civil_affairs,
            "funeral" => self.fusion.funeral,
            _ => 0.0,
        }
    }

    pub fn validate(&self) -> Result<(), RulesError> {
        let bad = |key: &str, reason: &str| {
            Err(RulesError::Invalid {
                key: key.to_string(),
                reason: reason.to_string(),
            })
        };
        if self.version.trim().is_empty() {
            return bad("version", "must not be empty");
        }
        let weights: [(&str, f64); 31] = [
            ("prior", self.prior),
            ("thresholds.auto", self.thresholds.auto),
            ("thresholds.review", self.thresholds.review),
            (
                "thresholds.ambiguity_margin",
                self.thresholds.ambiguity_margin,
            ),
            ("id.exact", self.id.exact),
            ("id.repaired", self.id.repaired),
            ("id.same_but_region", self.id.same_but_region),
            ("id.different", self.id.different),
            ("id.missing", self.id.missing),
            ("name.exact", self.name.exact),
            ("name.normalised", self.name.normalised),
            ("name.toned_pinyin", self.name.toned_pinyin),
            ("name.toneless_pinyin", self.name.toneless_pinyin),
            ("name.confusable", self.name.confusable),
            ("name.similar", self.name.similar),
            ("name.different", self.name.different),
            ("name.missing", self.name.missing),
            ("birth.exact", self.birth.exact),
            ("birth.day_month_swapped", self.birth.day_month_swapped),
            ("birth.one_part_off", self.birth.one_part_off),
            ("birth.year_only", self.birth.year_only),
            ("birth.different", self.birth.different),
            ("birth.missing", self.birth.missing),
            ("sex.agree", self.sex.agree),
            ("sex.disagree", self.sex.disagree),
            ("sex.missing", self.sex.missing),
            ("region.city", self.region.city),
            ("region.province", self.region.province),
            ("region.different", self.region.different),
            ("region.missing", self.region.missing),
            ("tf.min_frequency", self.tf.min_frequency),
        ];
        for (key, w) in weights {
            if !w.is_finite() {
                return bad(key, "must be a finite number");
            }
        }
        if self.thresholds.auto <= self.thresholds.review {
            return bad("thresholds.auto", "must be greater than thresholds.review");
        }
        if self.thresholds.ambiguity_margin < 0.0 {
            return bad("thresholds.ambiguity_margin", "must not be negative");
        }
        // Better evidence must never weigh less than weaker evidence of the
        // same field: a reordering is almost always a typo in the file.
        let ordered: [(&str, &[(&str, f64)]); 5] = [
            (
                "id",
                &[
                    ("exact", self.id.exact),
                    ("repaired", self.id.repaired),
                    ("same_but_region", self.id.same_but_region),
                    ("different", self.id.different),
                ],
            ),
            (
                "name",
                &[
                    ("exact", self.name.exact),
                    ("normalised", self.name.normalised),
                    ("toned_pinyin", self.name.toned_pinyin),
                    ("toneless_pinyin", self.name.toneless_pinyin),
                    ("confusable", self.name.confusable),
                    ("similar", self.name.similar),
                    ("different", self.name.different),
                ],
            ),
            (
                "birth",
                &[
                    ("exact", self.birth.exact),
                    ("day_month_swapped", self.birth.day_month_swapped),
                    ("one_part_off", self.birth.one_part_off),
                    ("year_only", self.birth.year_only),
                    ("different", self.birth.different),
                ],
            ),
            (
                "sex",
                &[("agree", self.sex.agree), ("disagree", self.sex.disagree)],
            ),
            (
                "region",
                &[
                    ("city", self.region.city),
                    ("province", self.region.province),
                    ("different", self.region.different),
                ],
            ),
        ];
        for (field, levels) in ordered {
            for pair in levels.windows(2) {
                if pair[1].1 > pair[0].1 {
                    return bad(
                        &format!("{field}.{}", pair[1].0),
                        &format!("must not exceed {field}.{} (weaker evidence)", pair[0].0),
                    );
                }
            }
        }
        if !(0.0..=1.0).contains(&self.name.similar_threshold) {
            return bad("name.similar_threshold", "must be between 0 and 1");
        }
        if !(self.tf.min_frequency > 0.0 && self.tf.min_frequency <= 1.0) {
            return bad("tf.min_frequency", "must be in (0, 1]");
        }
        for (key, v) in [
            ("tf.max_boost", self.tf.max_boost),
            ("tf.max_penalty", self.tf.max_penalty),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(key, "must be a non-negative number");
            }
        }
        if !(0.0..=1.0).contains(&self.tf.fuzzy_factor) {
            return bad("tf.fuzzy_factor", "must be between 0 and 1");
        }
        if !(0..=3).contains(&self.blocking.age_slack_years) {
            return bad("blocking.age_slack_years", "must be between 0 and 3");
        }
        if self.blocking.max_block == 0 {
            return bad("blocking.max_block", "must be at least 1");
        }
        if self.blocking.max_fuzzy_keys == 0 {
            return bad("blocking.max_fuzzy_keys", "must be at least 1");
        }
        for (key, d) in [
            (
                "blocking.fst_distance_short",
                self.blocking.fst_distance_short,
            ),
            (
                "blocking.fst_distance_long",
                self.blocking.fst_distance_long,
            ),
        ] {
            if d > 2 {
                return bad(key, "must be 0, 1 or 2 (larger automata explode)");
            }
        }
        let p = &self.fusion.death_date_precedence;
        for s in p {
            if !SOURCES.contains(&s.as_str()) {
                return bad(
                    "fusion.death_date_precedence",
                    &format!("unknown source `{s}`"),
                );
            }
        }
        for s in SOURCES {
            if p.iter().filter(|x| x.as_str() == s).count() != 1 {
                return bad(
                    "fusion.death_date_precedence",
                    &format!("must name `{s}` exactly once"),
                );
            }
        }
        for (key, v) in [
            ("fusion.public_security", self.fusion.public_security),
            ("fusion.civil_affairs", self.fusion.civil_affairs),
            ("fusion.funeral", self.fusion.funeral),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(key, "must be a non-negative number");
            }
        }
        if !(0..=31).contains(&self.fusion.carry_within_days) {
            return bad("fusion.carry_within_days", "must be between 0 and 31");
        }
        if self.fusion.carry_min_margin.is_nan() || self.fusion.carry_min_margin < 0.0 {
            return bad("fusion.carry_min_margin", "must not be negative");
        }
        if !(80..=150).contains(&self.fusion.max_age) {
            return bad("fusion.max_age", "must be between 80 and 150");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_parse_and_validate() {
        let r = MatchRules::default_rules();
        assert!(r.thresholds.auto > r.thresholds.review);
        assert_eq!(MatchRules::from_toml(&r.to_toml()).unwrap(), r);
    }

    #[test]
    fn a_missing_key_is_named() {
        let text = DEFAULT_RULES_TOML.replace("repaired =", "# repaired =");
        let err = MatchRules::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("repaired"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let text = DEFAULT_RULES_TOML.replace("[id]\n", "[id]\nexactly = 3.0\n");
        let err = MatchRules::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("exactly"), "{err}");
    }

    #[test]
    fn auto_threshold_below_review_is_refused_naming_the_key() {
        let mut r = MatchRules::default_rules();
        r.thresholds.auto = r.thresholds.review - 1.0;
        let err = r.validate().unwrap_err().to_string();
        assert!(err.contains("thresholds.auto"), "{err}");
    }

    #[test]
    fn weaker_evidence_weighing_more_is_refused_naming_the_key() {
        let mut r = MatchRules::default_rules();
        r.name.similar = r.name.exact + 1.0;
        let err = r.validate().unwrap_err().to_string();
        assert!(err.contains("name.similar"), "{err}");
    }

    #[test]
    fn precedence_must_name_every_source_once() {
        let mut r = MatchRules::default_rules();
        r.fusion.death_date_precedence = vec!["funeral".into(), "funeral".into()];
        let err = r.validate().unwrap_err().to_string();
        assert!(err.contains("fusion.death_date_precedence"), "{err}");
    }

    #[test]
    fn fst_distance_above_two_is_refused() {
        let mut r = MatchRules::default_rules();
        r.blocking.fst_distance_long = 3;
        let err = r.validate().unwrap_err().to_string();
        assert!(err.contains("blocking.fst_distance_long"), "{err}");
    }
}
