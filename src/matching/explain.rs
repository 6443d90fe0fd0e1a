//! Explanations: why a match scored what it did, level by level, kept with
//! every match so that the caseworker who must decide sees the same reasons
//! the engine used, and a waterfall rendering of them. This module owns the
//! explanation's shape and its text; it must never recompute a score (it
//! renders what scoring recorded) and never show a full ID number.

use std::borrow::Cow;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::compare::Comparison;
use super::rules::MatchRules;
use super::score::{PairScore, Safeguard, TfAdjustment};
use crate::model::Band;

/// One field's contribution to a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldWeight {
    /// `id`, `name`, `birth`, `sex` or `region`.
    pub field: Cow<'static, str>,
    /// The comparison level, in the rules file's words.
    pub level: Cow<'static, str>,
    pub weight: f64,
}

/// The best other candidate for the same death record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerUp {
    pub person_no: String,
    pub score: f64,
    /// Best score minus the runner-up's.
    pub margin: f64,
}

/// Everything needed to show why a match has its score and band.
///
/// Stored as compact JSON ([`Compact`]: the fields as `[field, level,
/// weight]`, the term frequency, thresholds and runner-up as arrays),
/// about 330 bytes where the named form took 590: a full run writes
/// hundreds of thousands. Explanations stored in the named form by
/// earlier versions are read as before.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub rules_version: String,
    pub prior: f64,
    pub fields: Vec<FieldWeight>,
    pub tf: Option<TfAdjustment>,
    pub score: f64,
    pub band: Band,
    pub auto_threshold: f64,
    pub review_threshold: f64,
    pub runner_up: Option<RunnerUp>,
    pub safeguards: Vec<Safeguard>,
}

/// The compact stored form (`"v": 2`).
#[derive(Serialize, Deserialize)]
struct Compact<'a> {
    v: u8,
    #[serde(borrow)]
    rules: Cow<'a, str>,
    prior: f64,
    /// `[field, level, weight]`, in waterfall order.
    fields: Vec<(Cow<'a, str>, Cow<'a, str>, f64)>,
    /// `[name_key, frequency, u_average, adjustment]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tf: Option<(Cow<'a, str>, f64, f64, f64)>,
    score: f64,
    band: Band,
    /// `[auto, review]`.
    thresholds: (f64, f64),
    /// `[person_no, score, margin]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    runner_up: Option<(Cow<'a, str>, f64, f64)>,
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    safeguards: Cow<'a, [Safeguard]>,
}

const COMPACT: u8 = 2;

/// The named form earlier versions stored.
#[derive(Deserialize)]
struct Named {
    rules_version: String,
    prior: f64,
    fields: Vec<FieldWeight>,
    tf: Option<TfAdjustment>,
    score: f64,
    band: Band,
    auto_threshold: f64,
    review_threshold: f64,
    runner_up: Option<RunnerUp>,
    safeguards: Vec<Safeguard>,
}

impl Serialize for Explanation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Compact {
            v: COMPACT,
            rules: Cow::Borrowed(&self.rules_version),
            prior: self.prior,
            fields: self
                .fields
                .iter()
                .map(|f| (Cow::Borrowed(&*f.field), Cow::Borrowed(&*f.level), f.weight))
                .collect(),
            tf: self.tf.as_ref().map(|t| {
                (
                    Cow::Borrowed(t.name_key.as_str()),
                    t.frequency,
                    t.u_average,
                    t.adjustment,
                )
            }),
            score: self.score,
            band: self.band,
            thresholds: (self.auto_threshold, self.review_threshold),
            runner_up: self
                .runner_up
                .as_ref()
                .map(|r| (Cow::Borrowed(r.person_no.as_str()), r.score, r.margin)),
            safeguards: Cow::Borrowed(&self.safeguards),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Explanation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Explanation, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored<'a> {
            #[serde(borrow)]
            Compact(Compact<'a>),
            Named(Named),
        }
        Ok(match Stored::deserialize(d)? {
            Stored::Compact(c) => Explanation {
                rules_version: c.rules.into_owned(),
                prior: c.prior,
                fields: c
                    .fields
                    .into_iter()
                    .map(|(field, level, weight)| FieldWeight {
                        field: Cow::Owned(field.into_owned()),
                        level: Cow::Owned(level.into_owned()),
                        weight,
                    })
                    .collect(),
                tf: c.tf.map(
                    |(name_key, frequency, u_average, adjustment)| TfAdjustment {
                        name_key: name_key.into_owned(),
                        frequency,
                        u_average,
                        adjustment,
                    },
                ),
                score: c.score,
                band: c.band,
                auto_threshold: c.thresholds.0,
                review_threshold: c.thresholds.1,
                runner_up: c.runner_up.map(|(person_no, score, margin)| RunnerUp {
                    person_no: person_no.into_owned(),
                    score,
                    margin,
                }),
                safeguards: c.safeguards.into_owned(),
            },
            Stored::Named(n) => Explanation {
                rules_version: n.rules_version,
                prior: n.prior,
                fields: n.fields,
                tf: n.tf,
                score: n.score,
                band: n.band,
                auto_threshold: n.auto_threshold,
                review_threshold: n.review_threshold,
                runner_up: n.runner_up,
                safeguards: n.safeguards,
            },
        })
    }
}

impl Explanation {
    /// Reads an explanation as the store keeps it (`StoredMatch::explanation`):
    /// the compact form, or the named form earlier versions wrote. The one
    /// way back from the stored text: the explain view, the demo and the
    /// counter-evidence tally all read through it.
    pub fn from_stored(json: &str) -> Result<Explanation, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn new(
        score: &PairScore,
        band: Band,
        runner_up: Option<RunnerUp>,
        safeguards: Vec<Safeguard>,
        rules: &MatchRules,
    ) -> Explanation {
        Explanation {
            rules_version: rules.version.clone(),
            prior: rules.prior,
            fields: field_weights(&score.comparison, rules),
            tf: score.tf.clone(),
            score: score.total,
            band,
            auto_threshold: rules.thresholds.auto,
            review_threshold: rules.thresholds.review,
            runner_up,
            safeguards,
        }
    }
}

/// The five fields' levels and weights, in waterfall order.
pub fn field_weights(c: &Comparison, rules: &MatchRules) -> Vec<FieldWeight> {
    // Borrowed names: a run explains hundreds of thousands of matches.
    let fw = |field: &'static str, level: &'static str, weight: f64| FieldWeight {
        field: Cow::Borrowed(field),
        level: Cow::Borrowed(level),
        weight,
    };
    vec![
        fw("id", c.id.as_str(), c.id.weight(rules)),
        fw("name", c.name.as_str(), c.name.weight(rules)),
        fw("birth", c.birth.as_str(), c.birth.weight(rules)),
        fw("sex", c.sex.as_str(), c.sex.weight(rules)),
        fw("region", c.region.as_str(), c.region.weight(rules)),
    ]
}

/// A caseworker-readable waterfall: each step's weight and the running total.
pub fn render_waterfall(e: &Explanation) -> String {
    let mut out = String::new();
    let mut total = e.prior;
    let _ = writeln!(out, "Match explanation (rules {})", e.rules_version);
    let _ = writeln!(out, "  {:<28} {:>8} {:>10}", "step", "weight", "total");
    let _ = writeln!(
        out,
        "  {:<28} {:>+8.2} {:>10.2}",
        "start (prior)", e.prior, total
    );
    for f in &e.fields {
        total += f.weight;
        let label = format!("{} = {}", f.field, f.level);
        let _ = writeln!(out, "  {label:<28} {:>+8.2} {total:>10.2}", f.weight);
        if f.field == "name"
            && let Some(tf) = &e.tf
        {
            total += tf.adjustment;
            let label = format!(
                "name frequency ({:.4}% of roster, average {:.4}%)",
                tf.frequency * 100.0,
                tf.u_average * 100.0
            );
            let _ = writeln!(out, "  {label:<28} {:>+8.2} {total:>10.2}", tf.adjustment);
        }
    }
    if e.tf.is_none() {
        let _ = writeln!(
            out,
            "  {:<28} {:>+8.2} {total:>10.2}",
            "name frequency (not applied)", 0.0
        );
    }
    let _ = writeln!(
        out,
        "  final score {:.2}: band {} (auto at {:.2}, review at {:.2})",
        e.score,
        e.band.as_str(),
        e.auto_threshold,
        e.review_threshold
    );
    match &e.runner_up {
        // A runner-up below review (at ten million pensioners, two in five
        // scored exactly 0: an ID equal but for its region, a different
        // name, another region) is said to be so, not shown as if it
        // competed; its margin stays, since a small one still counts.
        Some(r) if r.score < e.review_threshold => {
            let _ = writeln!(
                out,
                "  runner-up: person {} scored {:.2}, below review, margin {:.2}",
                r.person_no, r.score, r.margin
            );
        }
        Some(r) => {
            let _ = writeln!(
                out,
                "  runner-up: person {} scored {:.2}, margin {:.2}",
                r.person_no, r.score, r.margin
            );
        }
        None => {
            let _ = writeln!(out, "  runner-up: none");
        }
    }
    if e.safeguards.is_empty() {
        let _ = writeln!(out, "  safeguards: none fired");
    } else {
        for s in &e.safeguards {
            let _ = writeln!(out, "  safeguard: {}", s.describe());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::compare::compare;
    use crate::matching::compare::tests::{d, person, record_of};
    use crate::matching::score::{Context, NameFrequencies, band, score_pair};

    fn explanation() -> Explanation {
        let rules = MatchRules::default_rules();
        let p = person("P1", "王秀英", "440304", d(1942, 3, 15), 122);
        let mut r = record_of(&p, "k");
        r.name = "王秀瑛".into();
        let c = compare(&p, &r, &rules);
        let freqs = NameFrequencies::from_keys(["wangxiuying", "wangxiuying", "lijianguo"]);
        let s = score_pair(c, &p.name_key, &p.name_key, &freqs, &rules);
        let ctx = Context {
            runner_up: Some(s.total - 2.0),
            alive_on: Some(d(2026, 11, 3)),
        };
        let (b, fired) = band(&s, ctx, &rules);
        let ru = RunnerUp {
            person_no: "P9".into(),
            score: s.total - 2.0,
            margin: 2.0,
        };
        Explanation::new(&s, b, Some(ru), fired, &rules)
    }

    #[test]
    fn the_waterfall_shows_every_field_with_a_running_total() {
        let text = render_waterfall(&explanation());
        for needle in [
            "start (prior)",
            "id = exact",
            "name = ",
            "name frequency",
            "birth = implied_by_id",
            "sex = implied_by_id",
            "region = city",
            "final score",
            "band review",
            "runner-up: person P9",
            "margin 2.00",
            "evidence of life on 2026-11-03",
            "fits almost as well",
            "rules 2026.5-default",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn a_runner_up_below_review_is_said_to_be_below_review() {
        let mut e = explanation();
        let r = e.runner_up.as_mut().unwrap();
        r.score = 0.0;
        r.margin = e.score;
        let text = render_waterfall(&e);
        let line = text.lines().find(|l| l.contains("runner-up")).unwrap();
        assert_eq!(
            line.trim(),
            format!(
                "runner-up: person P9 scored 0.00, below review, margin {:.2}",
                e.score
            ),
            "{text}"
        );
        // At the review threshold it is a rival again.
        let mut e = explanation();
        let r = e.runner_up.as_mut().unwrap();
        r.score = e.review_threshold;
        let text = render_waterfall(&e);
        assert!(
            text.contains("runner-up: person P9 scored 10.00, margin"),
            "{text}"
        );
        assert!(!text.contains("below review"), "{text}");
    }

    #[test]
    fn the_waterfall_never_shows_an_id_number() {
        let p = person("P1", "王秀英", "440304", d(1942, 3, 15), 122);
        let text = render_waterfall(&explanation());
        assert!(!text.contains(p.id_number.as_str()));
    }

    #[test]
    fn explanations_serialise_and_come_back() {
        let e = explanation();
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.starts_with(r#"{"v":2,"rules":"#), "{json}");
        let back: Explanation = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        // Without a runner-up, term frequency or safeguard too.
        let bare = Explanation {
            tf: None,
            runner_up: None,
            safeguards: Vec::new(),
            ..e
        };
        let json = serde_json::to_string(&bare).unwrap();
        assert_eq!(serde_json::from_str::<Explanation>(&json).unwrap(), bare);
    }

    #[test]
    fn explanations_stored_in_the_named_form_are_read() {
        // As version 2026.5 stored them.
        let named = r#"{"rules_version":"2026.5-default","prior":0.0,"fields":[{"field":"id","level":"exact","weight":20.0},{"field":"name","level":"exact","weight":10.0},{"field":"birth","level":"implied_by_id","weight":0.0},{"field":"sex","level":"implied_by_id","weight":0.0},{"field":"region","level":"city","weight":2.0}],"tf":{"name_key":"chenqiu","frequency":0.00007257034684914811,"u_average":0.0002055678083644317,"adjustment":1.5021622876512524},"score":33.50216228765125,"band":"auto","auto_threshold":24.0,"review_threshold":10.0,"runner_up":{"person_no":"1401070002249774","score":0.0,"margin":33.50216228765125},"safeguards":[{"safeguard":"ambiguous","margin":1.5}]}"#;
        let e = Explanation::from_stored(named).unwrap();
        assert_eq!(e.fields[4].level, "city");
        assert_eq!(e.tf.as_ref().unwrap().name_key, "chenqiu");
        assert_eq!(e.runner_up.as_ref().unwrap().person_no, "1401070002249774");
        assert_eq!(e.safeguards, vec![Safeguard::Ambiguous { margin: 1.5 }]);
        // Written again, compact, and read back the same.
        let compact = serde_json::to_string(&e).unwrap();
        assert!(compact.len() < named.len() * 2 / 3, "{compact}");
        assert_eq!(serde_json::from_str::<Explanation>(&compact).unwrap(), e);
    }
}
