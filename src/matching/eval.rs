//! Evaluation against a truth file (the generator's `truth.csv`): how many
//! `auto` matches point at the right pensioner, how many true deaths the
//! bands find, and what kinds of records the wrong `auto` matches came from.
//! Pure: the caller reads the files and the stored matches.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// One row of `truth.csv`: `source,record_key,person_no,kind,corruptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthRow {
    pub source: String,
    pub record_key: String,
    /// The pensioner the record is really about; `None` for outsiders.
    pub person_no: Option<String>,
    /// `pensioner`, `outsider`, `doppelganger`, `spouse`, `informant`,
    /// `non_death`, `false_death`.
    pub kind: String,
    /// The stored record carries a usable ID (valid, or one edit from a
    /// valid number) or a name with a full birth date: the records issue
    /// 4 asks 99.9% `auto` + `review` recall of. Filled by the caller from
    /// the stored record ([`record_is_usable`]); `false` when unknown.
    pub usable: bool,
}

/// Whether a stored death record carries a usable ID (valid, or with a
/// repair candidate one substitution or adjacent swap away) or a name with
/// a full birth date.
pub fn record_is_usable(record: &crate::model::MatchRecord) -> bool {
    use crate::model::IdStatus;
    match record.id_status {
        IdStatus::Valid => true,
        IdStatus::Invalid
            if !crate::identity::repair_candidates_on(&record.id_raw, record.death_date)
                .is_empty() =>
        {
            true
        }
        _ => !record.name_norm.is_empty() && record.birth_date.is_some(),
    }
}

/// A stored match, reduced to what evaluation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub source: String,
    pub record_key: String,
    pub person_no: String,
    /// The band of the match the record takes part in (a pensioner's
    /// fused death): `auto` or `review`.
    pub band: String,
    /// The record's own band, before fusion.
    pub record_band: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EvalReport {
    /// Truth rows that are deaths of a pensioner (kind `pensioner`).
    pub true_links: u64,
    pub auto: u64,
    pub auto_correct: u64,
    pub auto_precision: f64,
    pub auto_recall: f64,
    /// Records `auto` on their own evidence (without another source's
    /// record of the same death carrying them).
    pub record_auto: u64,
    pub record_auto_correct: u64,
    pub record_auto_precision: f64,
    pub record_auto_recall: f64,
    pub auto_or_review: u64,
    pub auto_or_review_correct: u64,
    pub auto_or_review_precision: f64,
    pub auto_or_review_recall: f64,
    /// True links whose record is usable ([`TruthRow::usable`]), those of
    /// them found by `auto` or `review`, and the recall.
    pub usable_links: u64,
    pub usable_found: u64,
    pub usable_recall: f64,
    /// Usable true links found by neither band, by source.
    pub usable_missed_by_source: BTreeMap<String, u64>,
    /// Wrong `auto` matches by the truth kind of their record.
    pub false_auto_by_kind: BTreeMap<String, u64>,
    /// Wrong `auto` matches whose pensioner is alive in the truth (no
    /// record of kind `pensioner` is theirs): the error that stops a living
    /// person's pension. The other wrong `auto` matches put someone else's
    /// record on a pensioner who did die.
    pub false_auto_living: u64,
    /// Wrong `review` matches by truth kind (a caseworker's wasted time).
    pub false_review_by_kind: BTreeMap<String, u64>,
    /// True links found by neither band, by source.
    pub missed_by_source: BTreeMap<String, u64>,
    /// Matches whose record is not in the truth file.
    pub unknown_records: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// Scores `matches` against `truth`.
pub fn evaluate(matches: &[Judged], truth: &[TruthRow]) -> EvalReport {
    let by_key: HashMap<(&str, &str), &TruthRow> = truth
        .iter()
        .map(|t| ((t.source.as_str(), t.record_key.as_str()), t))
        .collect();
    let mut r = EvalReport {
        true_links: truth
            .iter()
            .filter(|t| t.kind == "pensioner" && t.person_no.is_some())
            .count() as u64,
        ..Default::default()
    };
    let dead: std::collections::HashSet<&str> = truth
        .iter()
        .filter(|t| t.kind == "pensioner")
        .filter_map(|t| t.person_no.as_deref())
        .collect();
    let mut found: HashMap<(&str, &str), bool> = HashMap::new();
    for m in matches {
        let Some(t) = by_key.get(&(m.source.as_str(), m.record_key.as_str())) else {
            r.unknown_records += 1;
            continue;
        };
        let correct = t.kind == "pensioner" && t.person_no.as_deref() == Some(m.person_no.as_str());
        r.auto_or_review += 1;
        if correct {
            r.auto_or_review_correct += 1;
            found.insert((t.source.as_str(), t.record_key.as_str()), true);
        }
        if m.band == "auto" {
            r.auto += 1;
            if correct {
                r.auto_correct += 1;
            } else {
                *r.false_auto_by_kind.entry(t.kind.clone()).or_default() += 1;
                r.false_auto_living += u64::from(!dead.contains(m.person_no.as_str()));
            }
        } else if !correct {
            *r.false_review_by_kind.entry(t.kind.clone()).or_default() += 1;
        }
        if m.record_band == "auto" {
            r.record_auto += 1;
            r.record_auto_correct += u64::from(correct);
        }
    }
    for t in truth {
        if t.kind != "pensioner" || t.person_no.is_none() {
            continue;
        }
        let hit = found.contains_key(&(t.source.as_str(), t.record_key.as_str()));
        if !hit {
            *r.missed_by_source.entry(t.source.clone()).or_default() += 1;
        }
        if t.usable {
            r.usable_links += 1;
            if hit {
                r.usable_found += 1;
            } else {
                *r.usable_missed_by_source
                    .entry(t.source.clone())
                    .or_default() += 1;
            }
        }
    }
    r.auto_precision = ratio(r.auto_correct, r.auto);
    r.auto_recall = ratio(r.auto_correct, r.true_links);
    r.record_auto_precision = ratio(r.record_auto_correct, r.record_auto);
    r.record_auto_recall = ratio(r.record_auto_correct, r.true_links);
    r.auto_or_review_precision = ratio(r.auto_or_review_correct, r.auto_or_review);
    r.auto_or_review_recall = ratio(r.auto_or_review_correct, r.true_links);
    r.usable_recall = ratio(r.usable_found, r.usable_links);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(source: &str, key: &str, person: Option<&str>, kind: &str) -> TruthRow {
        TruthRow {
            source: source.into(),
            record_key: key.into(),
            person_no: person.map(Into::into),
            kind: kind.into(),
            usable: true,
        }
    }

    fn judged(key: &str, person: &str, band: &str) -> Judged {
        Judged {
            source: "ps".into(),
            record_key: key.into(),
            person_no: person.into(),
            band: band.into(),
            record_band: band.into(),
        }
    }

    #[test]
    fn precision_recall_and_false_kinds_are_counted() {
        let t = vec![
            truth("ps", "1", Some("A"), "pensioner"),
            truth("ps", "2", Some("B"), "pensioner"),
            truth("ps", "3", None, "doppelganger"),
            truth("ps", "4", Some("D"), "pensioner"),
        ];
        let m = vec![
            judged("1", "A", "auto"),
            judged("2", "B", "review"),
            judged("3", "C", "auto"),
        ];
        let r = evaluate(&m, &t);
        assert_eq!((r.true_links, r.auto, r.auto_correct), (3, 2, 1));
        assert_eq!(r.auto_precision, 0.5);
        assert!((r.auto_or_review_recall - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.false_auto_by_kind.get("doppelganger"), Some(&1));
        // C is alive in the truth: the wrong auto stops a living pension.
        assert_eq!(r.false_auto_living, 1);
        assert_eq!(r.missed_by_source.get("ps"), Some(&1));
        assert_eq!((r.usable_links, r.usable_found), (3, 2));
    }

    #[test]
    fn a_wrong_auto_on_a_pensioner_who_did_die_is_not_counted_as_living() {
        // A namesake's funeral record put on A, whose own death another
        // record proves: wrong, but it stops no living person's pension.
        let t = vec![
            truth("ps", "1", Some("A"), "pensioner"),
            truth("fh", "2", None, "outsider"),
            truth("fh", "3", None, "spouse"),
        ];
        let mut namesake = judged("2", "A", "auto");
        namesake.source = "fh".into();
        let mut spouse = judged("3", "B", "auto");
        spouse.source = "fh".into();
        let r = evaluate(&[judged("1", "A", "auto"), namesake, spouse], &t);
        assert_eq!((r.auto, r.auto_correct), (3, 1));
        assert_eq!(r.false_auto_by_kind.get("outsider"), Some(&1));
        assert_eq!(r.false_auto_living, 1, "only B is alive");
    }

    #[test]
    fn usable_recall_counts_only_records_with_a_usable_id_or_full_birth_date() {
        let mut age_only = truth("fh", "2", Some("B"), "pensioner");
        age_only.usable = false;
        let t = vec![
            truth("ps", "1", Some("A"), "pensioner"),
            age_only,
            truth("ps", "3", None, "outsider"),
        ];
        let r = evaluate(&[judged("1", "A", "review")], &t);
        assert_eq!(
            (r.usable_links, r.usable_found, r.usable_recall),
            (1, 1, 1.0)
        );
        assert_eq!(r.auto_or_review_recall, 0.5);
        assert!(r.usable_missed_by_source.is_empty());
        assert_eq!(r.missed_by_source.get("fh"), Some(&1));
    }

    #[test]
    fn a_record_is_usable_with_a_valid_or_repairable_id_or_a_full_birth_date() {
        use crate::matching::compare::tests::{d, person, record_of};
        use crate::model::IdStatus;
        let p = person("P0", "王秀英", "440304", d(1942, 3, 15), 122);
        let mut r = record_of(&p, "k");
        assert!(record_is_usable(&r), "a valid ID");
        // One digit typed wrong: a repair is one substitution away.
        let mut broken = r.id_raw.clone().into_bytes();
        broken[14] = if broken[14] == b'9' {
            b'0'
        } else {
            broken[14] + 1
        };
        r.id_raw = String::from_utf8(broken).unwrap();
        r.id_number = None;
        r.id_status = IdStatus::Invalid;
        r.birth_date = None;
        assert!(record_is_usable(&r), "a repairable ID");
        r.id_raw = String::new();
        r.id_status = IdStatus::Empty;
        assert!(!record_is_usable(&r), "no ID, no birth date");
        r.birth_date = Some(d(1942, 3, 15));
        assert!(record_is_usable(&r), "a name with a full birth date");
        r.name_norm = String::new();
        assert!(!record_is_usable(&r), "a birth date without a name");
    }

    #[test]
    fn a_record_carried_by_its_match_counts_as_auto_but_not_on_its_own() {
        let t = vec![
            truth("ps", "1", Some("A"), "pensioner"),
            truth("ps", "2", Some("A"), "pensioner"),
        ];
        let mut carried = judged("2", "A", "auto");
        carried.record_band = "review".into();
        let r = evaluate(&[judged("1", "A", "auto"), carried], &t);
        assert_eq!((r.auto, r.auto_correct, r.auto_recall), (2, 2, 1.0));
        assert_eq!((r.record_auto, r.record_auto_correct), (1, 1));
        assert_eq!(r.record_auto_recall, 0.5);
    }
}
