//! Fusion: records from different sources describing the same death (the
//! same matched pensioner, or the same valid ID when unmatched) become one
//! death event whose evidence grows with each independent source. This
//! module owns the choice of the death date (the rules' source precedence),
//! the flagging of conflicting dates, and the timeline checks (death before
//! birth, before the pension started, age over the rules' maximum). It must
//! never drop a record's date: conflicting dates are all kept on the event.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::assign::Match;
use super::compare::{BirthLevel, Comparison, IdLevel, NameLevel, RegionLevel, SexLevel};
use super::rules::MatchRules;
use super::score::Safeguard;
use crate::model::Band;
use crate::model::{MatchRecord, Person};

/// Something about a death event a caseworker must look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "flag")]
pub enum TimelineFlag {
    /// The sources give different death dates (all kept in `records`).
    ConflictingDeathDates,
    DeathBeforeBirth,
    DeathBeforeBenefitStart,
    AgeOverMaximum {
        age: i32,
    },
}

/// One source record's part in a death event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub record_index: usize,
    pub source: String,
    pub record_key: String,
    pub death_date: NaiveDate,
}

/// One death, as all sources together describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeathEvent {
    /// The matched pensioner, if the records matched one.
    pub person_index: Option<u32>,
    pub person_no: Option<String>,
    /// Ordered by source precedence, then record key.
    pub records: Vec<EventRecord>,
    /// Distinct sources, in precedence order.
    pub sources: Vec<String>,
    /// Sum of the rules' strengths of the distinct sources: a second
    /// independent source adds, a second record of the same source does not.
    pub evidence_strength: f64,
    /// The date of the most trusted source among the records of the
    /// event's band (its `auto` records when it is `auto`).
    pub death_date: NaiveDate,
    pub flags: Vec<TimelineFlag>,
    /// The strongest band among the event's matches: one `auto` record
    /// (ID and name agreeing) makes the death `auto`; the other sources'
    /// records corroborate it. `None` for unmatched events.
    pub band: Band,
}

/// Groups matched records by person and unmatched ones by valid ID; other
/// unmatched records stand alone. Events are ordered by person_no, then by
/// the first record's (source, key).
pub fn fuse(
    matches: &[Match],
    records: &[MatchRecord],
    persons: &[Person],
    rules: &MatchRules,
) -> Vec<DeathEvent> {
    let assigned: Vec<(usize, u32, Band)> = matches
        .iter()
        .map(|m| (m.record_index, m.person_index, m.band))
        .collect();
    fuse_assigned(&assigned, records, persons, rules)
}

/// [`fuse`] from bare assignments: (record index, person index, band), for
/// callers whose matches come partly from storage. The records may be
/// borrowed (`&[&MatchRecord]`): a match run fuses its new and kept records
/// without copying them.
pub fn fuse_assigned<R: std::borrow::Borrow<MatchRecord>>(
    assigned: &[(usize, u32, Band)],
    records: &[R],
    persons: &[Person],
    rules: &MatchRules,
) -> Vec<DeathEvent> {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Group<'a> {
        Person(&'a str, u32),
        Id(&'a str),
        Alone(&'a str, &'a str),
    }
    let mut groups: BTreeMap<Group<'_>, Vec<usize>> = BTreeMap::new();
    let mut matched = vec![None; records.len()];
    let mut bands = vec![Band::None; records.len()];
    for &(r, p, band) in assigned {
        if r < records.len() {
            matched[r] = Some(p);
            bands[r] = band;
        }
    }
    for (i, r) in records.iter().enumerate() {
        let r = r.borrow();
        let g = match (matched[i], r.id_number.as_deref()) {
            (Some(p), _) => Group::Person(persons[p as usize].person_no.as_str(), p),
            (None, Some(id)) => Group::Id(id),
            (None, None) => Group::Alone(&r.source, &r.record_key),
        };
        groups.entry(g).or_default().push(i);
    }
    let rank = |s: &str| {
        rules
            .fusion
            .death_date_precedence
            .iter()
            .position(|p| p == s)
            .unwrap_or(usize::MAX)
    };
    let mut events: Vec<DeathEvent> = groups
        .into_iter()
        .map(|(g, idx)| {
            let mut recs: Vec<EventRecord> = idx
                .iter()
                .map(|&i| {
                    let r = records[i].borrow();
                    EventRecord {
                        record_index: i,
                        source: r.source.clone(),
                        record_key: r.record_key.clone(),
                        death_date: r.death_date,
                    }
                })
                .collect();
            recs.sort_by(|a, b| {
                (rank(&a.source), &a.record_key).cmp(&(rank(&b.source), &b.record_key))
            });
            let mut sources: Vec<String> = Vec::new();
            for r in &recs {
                if !sources.contains(&r.source) {
                    sources.push(r.source.clone());
                }
            }
            let evidence_strength = sources.iter().map(|s| rules.source_strength(s)).sum();
            let band = idx.iter().map(|&i| bands[i]).max().unwrap_or(Band::None);
            // The date of the most trusted source among the records that
            // give the event its band: an `auto` death is dated by what
            // proves it, not by a weaker record fused beside it.
            let death_date = recs
                .iter()
                .find(|r| bands[r.record_index] == band)
                .unwrap_or(&recs[0])
                .death_date;
            let mut flags = Vec::new();
            if recs.iter().any(|r| r.death_date != death_date) {
                flags.push(TimelineFlag::ConflictingDeathDates);
            }
            let person_index = match g {
                Group::Person(_, p) => Some(p),
                _ => None,
            };
            if let Some(p) = person_index.map(|p| &persons[p as usize]) {
                flags.extend(timeline(p, death_date, rules));
            }
            DeathEvent {
                band,
                person_index,
                person_no: person_index.map(|p| persons[p as usize].person_no.to_string()),
                records: recs,
                sources,
                evidence_strength,
                death_date,
                flags,
            }
        })
        .collect();
    events.sort_by(|a, b| {
        (
            a.person_no.is_none(),
            &a.person_no,
            &a.records[0].source,
            &a.records[0].record_key,
        )
            .cmp(&(
                b.person_no.is_none(),
                &b.person_no,
                &b.records[0].source,
                &b.records[0].record_key,
            ))
    });
    events
}

/// Whether nothing in a record's own comparison with its pensioner speaks
/// against them: no ID of someone else (an ID that disagrees, or agrees
/// only without its region), a name that agrees at least in its toneless
/// pinyin, no other birth date or sex, not another province or a far region,
/// no evidence of life after the death. Only such a record may be carried
/// to `auto` by another source's `auto` record of the same death
/// ([`match_verdict`]): a namesake who died the same week elsewhere, a
/// spouse, a relative whose death record holds the pensioner's ID, never.
pub fn may_carry(c: &Comparison, safeguards: &[Safeguard]) -> bool {
    matches!(c.id, IdLevel::Missing | IdLevel::Exact | IdLevel::Repaired)
        && matches!(
            c.name,
            NameLevel::Exact
                | NameLevel::Normalised
                | NameLevel::TonedPinyin
                | NameLevel::TonelessPinyin
        )
        && !matches!(c.birth, BirthLevel::Different)
        && c.sex != SexLevel::Disagree
        && !matches!(c.region, RegionLevel::Province | RegionLevel::Different)
        && !safeguards.iter().any(|s| {
            matches!(
                s,
                Safeguard::CounterEvidence { .. }
                    | Safeguard::InformantPattern
                    | Safeguard::BirthContradictsId
                    | Safeguard::AlreadyMatched { .. }
                    | Safeguard::AnotherDeath { .. }
            )
        })
}

/// A record `auto` on its own evidence, of a pensioner's death: what may
/// carry the pensioner's other records (see [`match_verdict`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor<'a> {
    pub source: &'a str,
    pub death_date: NaiveDate,
    pub score: f64,
}

/// The verdict a record carries as part of its match: a match is a
/// pensioner's fused death, and one record whose ID and name agree makes
/// it `auto`. A record that is `review` on its own (a funeral record with
/// only a name and an age, say) is carried to `auto`, with the best such
/// record's score, when
/// - nothing in its own evidence speaks against the pensioner
///   (`may_carry`, see [`may_carry`]);
/// - a record of another source is `auto` on its own for the same
///   pensioner (an anchor) and gives a death date within
///   `fusion.carry_within_days` of the record's (dying on the day a
///   pensioner is proven to have died is itself strong evidence);
/// - no runner-up fits the record within `fusion.carry_min_margin` (a
///   record that fits two people equally is not carried).
///
/// Otherwise it keeps its own. Returns (score, band, carried).
pub fn match_verdict(
    own: (f64, Band),
    own_margin: Option<f64>,
    own_source: &str,
    own_death_date: NaiveDate,
    may_carry: bool,
    anchors: &[Anchor<'_>],
    rules: &MatchRules,
) -> (f64, Band, bool) {
    let clear = own_margin.is_none_or(|m| m >= rules.fusion.carry_min_margin);
    if own.1 != Band::Review || !may_carry || !clear {
        return (own.0, own.1, false);
    }
    let best = anchors
        .iter()
        .filter(|a| {
            a.source != own_source
                && (own_death_date - a.death_date).num_days().abs()
                    <= rules.fusion.carry_within_days
        })
        .map(|a| a.score)
        .max_by(f64::total_cmp);
    match best {
        Some(score) => (score, Band::Auto, true),
        None => (own.0, own.1, false),
    }
}

/// Timeline checks of a death date against a pensioner.
pub fn timeline(p: &Person, death: NaiveDate, rules: &MatchRules) -> Vec<TimelineFlag> {
    let mut flags = Vec::new();
    if death < p.birth_date {
        flags.push(TimelineFlag::DeathBeforeBirth);
    }
    if death < p.benefit_start {
        flags.push(TimelineFlag::DeathBeforeBenefitStart);
    }
    let mut age = death.year() - p.birth_date.year();
    if (death.month(), death.day()) < (p.birth_date.month(), p.birth_date.day()) {
        age -= 1;
    }
    if age > rules.fusion.max_age {
        flags.push(TimelineFlag::AgeOverMaximum { age });
    }
    flags
}

/// Another person's recorded death that fits a record as well as the
/// record's pensioner does: a record of another source or another record
/// of the same source, with the same pinyin name key, a death date within
/// `fusion.carry_within_days`, a birth year the record allows, the same city
/// when both give a region, and a valid ID that is not the pensioner's (not
/// the same number, not the same number re-coded to another region, not one
/// typing error away from it). A funeral record with a name and an age that
/// fits a pensioner who died that day fits this person just as well: the
/// death of a namesake, a spouse or a stranger, it is never carried to
/// `auto` by the pensioner's own records.
///
/// `others` are stored records beside `records` (a pending run's batch
/// holds only the records it claimed); a record in both is the same record.
/// Only matches that could be carried are looked at: `review` and
/// [`Match::may_carry`]. Each one fitted gets [`Safeguard::AnotherDeath`]
/// (the first such record in (death date, source, record_key) order) and may no longer
/// be carried. Returns how many were marked.
pub fn mark_other_deaths(
    matches: &mut [Match],
    records: &[MatchRecord],
    others: &[MatchRecord],
    persons: &[Person],
    rules: &MatchRules,
) -> usize {
    use ahash::{AHashMap, AHashSet};
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let open = |m: &Match| m.band == Band::Review && m.may_carry;
    let keys: AHashSet<&str> = matches
        .iter()
        .filter(|m| open(m))
        .map(|m| records[m.record_index].name_key.as_str())
        .collect();
    if keys.is_empty() {
        return 0;
    }
    // The records that could be someone else's death: a valid ID and a name
    // key some open match has.
    let mut by_key: AHashMap<&str, Vec<&MatchRecord>> = AHashMap::new();
    for d in records.iter().chain(others) {
        if d.id_number.is_some() && keys.contains(d.name_key.as_str()) {
            by_key.entry(d.name_key.as_str()).or_default().push(d);
        }
    }
    // By death date within a name key: a match looks only at the records
    // that died within the window (a common name has thousands of records).
    for list in by_key.values_mut() {
        list.sort_by(|a, b| {
            (a.death_date, &a.source, &a.record_key).cmp(&(b.death_date, &b.source, &b.record_key))
        });
        list.dedup_by(|a, b| (&a.source, &a.record_key) == (&b.source, &b.record_key));
    }
    let days = chrono::Days::new(rules.fusion.carry_within_days.max(0) as u64);
    let marked = AtomicUsize::new(0);
    matches.par_iter_mut().filter(|m| open(m)).for_each(|m| {
        let r = &records[m.record_index];
        let person = &persons[m.person_index as usize];
        let Some(list) = by_key.get(r.name_key.as_str()) else {
            return;
        };
        let from = r
            .death_date
            .checked_sub_days(days)
            .unwrap_or(NaiveDate::MIN);
        let to = r
            .death_date
            .checked_add_days(days)
            .unwrap_or(NaiveDate::MAX);
        let start = list.partition_point(|d| d.death_date < from);
        let other = list[start..]
            .iter()
            .take_while(|d| d.death_date <= to)
            .find(|d| {
                (d.source != r.source || d.record_key != r.record_key)
                    && d.id_number
                        .as_deref()
                        .is_some_and(|id| !same_person_id(id, &person.id_number))
                    && births_agree(r, d)
                    && same_city(r, d)
            });
        if let Some(d) = other {
            m.may_carry = false;
            m.explanation.safeguards.push(Safeguard::AnotherDeath {
                source: d.source.clone(),
                record_key: d.record_key.clone(),
            });
            marked.fetch_add(1, Ordering::Relaxed);
        }
    });
    marked.into_inner()
}

/// Of the stored `review` matches' records a pending run found sharing a
/// name key with a record it claimed (`candidates`, with their pensioners'
/// IDs), those that a claimed record (`claimed`: name key, valid ID, death
/// date) may be another person's death of: not the pensioner's ID, a death
/// date within `fusion.carry_within_days`. A pending run matches them again
/// ([`mark_other_deaths`] then judges them with everything in hand).
pub fn twin_claims<'a>(
    candidates: &'a [crate::model::TwinCandidate],
    claimed: &[(String, String, NaiveDate)],
    rules: &MatchRules,
) -> Vec<&'a crate::model::TwinCandidate> {
    let mut by_key: ahash::AHashMap<&str, Vec<(&str, NaiveDate)>> = ahash::AHashMap::new();
    for (key, id, date) in claimed {
        by_key.entry(key).or_default().push((id, *date));
    }
    candidates
        .iter()
        .filter(|c| {
            by_key.get(c.name_key.as_str()).is_some_and(|news| {
                news.iter().any(|(id, date)| {
                    (*date - c.death_date).num_days().abs() <= rules.fusion.carry_within_days
                        && !same_person_id(id, &c.person_id)
                })
            })
        })
        .collect()
}

/// Whether an ID read off a death record is (very probably) the
/// pensioner's own: the same number, the same number under a re-coded
/// region, or one substitution or adjacent swap away (a typing error that
/// happened to give another valid number).
fn same_person_id(id: &str, own: &str) -> bool {
    let (a, b) = (id.as_bytes(), own.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if a.len() > 6 && a[6..] == b[6..] {
        return true;
    }
    let mut differ = (0..a.len()).filter(|&i| a[i] != b[i]);
    match (differ.next(), differ.next(), differ.next()) {
        (Some(_), None, _) => true,
        (Some(i), Some(j), None) => j == i + 1 && a[i] == b[j] && a[j] == b[i],
        _ => false,
    }
}

/// The birth years a record allows: its birth date's, or the range its age
/// gives, or the year in its ID.
fn birth_years(d: &MatchRecord) -> Option<(i32, i32)> {
    if let Some(b) = d.birth_date {
        return Some((b.year(), b.year()));
    }
    if let Some(range) = d.birth_year_range {
        return Some(range);
    }
    let year = d.id_number.as_deref()?.get(6..10)?.parse().ok()?;
    Some((year, year))
}

fn births_agree(a: &MatchRecord, b: &MatchRecord) -> bool {
    match (birth_years(a), birth_years(b)) {
        (Some((a0, a1)), Some((b0, b1))) => a0 <= b1 && b0 <= a1,
        _ => true,
    }
}

/// The same city (the first four digits of the region) when both records
/// give a region, their own or their ID's.
fn same_city(a: &MatchRecord, b: &MatchRecord) -> bool {
    let city = |d: &MatchRecord| {
        d.region
            .as_deref()
            .or(d.id_number.as_deref())
            .and_then(|r| r.get(..4))
            .map(str::to_owned)
    };
    match (city(a), city(b)) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::assign::{MatchBatch, RejectedPairs, match_batch};
    use crate::matching::blocking::RosterIndex;
    use crate::matching::compare::tests::{d, person, record_of};
    use crate::model::LifeEvidence;

    fn setup() -> (Vec<Person>, MatchRules) {
        let ps = vec![
            person("P0", "王秀英", "440304", d(1942, 3, 15), 122),
            person("P1", "李建国", "440304", d(1950, 7, 2), 131),
        ];
        (ps, MatchRules::default_rules())
    }

    fn of(p: &Person, source: &str, key: &str, death: NaiveDate) -> MatchRecord {
        let mut r = record_of(p, key);
        r.source = source.into();
        r.death_date = death;
        r
    }

    fn matched(ps: &[Person], recs: &[MatchRecord], rules: &MatchRules) -> MatchBatch {
        let idx = RosterIndex::build(ps, &rules.blocking);
        match_batch(
            &idx,
            recs,
            rules,
            &LifeEvidence::new(),
            &RejectedPairs::new(),
        )
    }

    fn fused(ps: &[Person], recs: &[MatchRecord], rules: &MatchRules) -> Vec<DeathEvent> {
        fuse(&matched(ps, recs, rules).matches, recs, ps, rules)
    }

    #[test]
    fn a_record_is_carried_to_auto_only_by_another_sources_auto_record_of_the_same_death() {
        let rules = MatchRules::default_rules();
        let died = d(2026, 10, 3);
        let anchor = |source, death_date| Anchor {
            source,
            death_date,
            score: 24.0,
        };
        let ps = [anchor("public_security", died)];
        let verdict = |own: (f64, Band), margin, date, may, anchors: &[Anchor<'_>]| {
            match_verdict(own, margin, "funeral", date, may, anchors, &rules)
        };
        // A name-and-age record of the same death takes the anchor's verdict.
        assert_eq!(
            verdict((9.0, Band::Review), None, died, true, &ps),
            (24.0, Band::Auto, true)
        );
        // A day apart is another day under the default rules (a namesake
        // who died the next day in the same city); a wider window takes it.
        assert_eq!(rules.fusion.carry_within_days, 0);
        assert_eq!(
            verdict((9.0, Band::Review), None, d(2026, 10, 4), true, &ps),
            (9.0, Band::Review, false)
        );
        let mut wider = rules.clone();
        wider.fusion.carry_within_days = 1;
        assert_eq!(
            match_verdict(
                (9.0, Band::Review),
                None,
                "funeral",
                d(2026, 10, 4),
                true,
                &ps,
                &wider
            ),
            (24.0, Band::Auto, true)
        );
        // A namesake who died on another day keeps its own.
        assert_eq!(
            verdict((9.0, Band::Review), None, d(2026, 10, 6), true, &ps),
            (9.0, Band::Review, false)
        );
        // The anchor's date counts, not the event's: a record is never
        // carried by its own date.
        assert_eq!(
            verdict(
                (9.0, Band::Review),
                None,
                d(2026, 9, 4),
                true,
                &[anchor("civil_affairs", d(2026, 9, 19))]
            ),
            (9.0, Band::Review, false)
        );
        // A record of the same source carries nothing: one source, one
        // death per pensioner.
        assert_eq!(
            verdict(
                (9.0, Band::Review),
                None,
                died,
                true,
                &[anchor("funeral", died)]
            ),
            (9.0, Band::Review, false)
        );
        // No anchor, nothing carried; an auto record keeps its own score.
        assert_eq!(
            verdict((9.0, Band::Review), None, died, true, &[]),
            (9.0, Band::Review, false)
        );
        assert_eq!(
            verdict((20.0, Band::Auto), None, died, true, &ps),
            (20.0, Band::Auto, false)
        );
        // A record whose own evidence speaks against the pensioner (an ID
        // of someone else, another region) is never carried.
        assert_eq!(
            verdict((12.0, Band::Review), None, died, false, &ps),
            (12.0, Band::Review, false)
        );
        // A record that fits a runner-up almost as well is not carried; one
        // with a clear margin is.
        let near = Some(rules.fusion.carry_min_margin / 2.0);
        assert_eq!(
            verdict((9.0, Band::Review), near, died, true, &ps),
            (9.0, Band::Review, false)
        );
        let clear = Some(rules.fusion.carry_min_margin);
        assert_eq!(
            verdict((9.0, Band::Review), clear, died, true, &ps),
            (24.0, Band::Auto, true)
        );
    }

    #[test]
    fn a_record_that_another_persons_recorded_death_fits_as_well_is_not_carried() {
        use crate::matching::compare::tests::id_for;
        let (ps, rules) = setup();
        let p = &ps[1];
        let died = d(2026, 10, 3);
        // A cremation with a name and an age only, in the pensioner's city.
        let mut cremation =
            MatchRecord::new("funeral", "FH440300-01:20261004-0001", "李建国", "", died);
        cremation.birth_year_range = Some((1949, 1950));
        cremation.region = Some("440305".into());
        cremation.sex = Some(p.sex);
        let twin = |id: &str| {
            let mut t = of(p, "public_security", "PS-2", died);
            t.id_number = Some(id.to_string());
            t
        };
        let other_id = id_for("440304", p.birth_date, 457);
        let recoded = format!("440306{}", &p.id_number[6..]);
        let mut typo = p.id_number.as_bytes().to_vec();
        typo.swap(14, 15);
        let typo = String::from_utf8(typo).unwrap();
        let mut far = twin(&other_id);
        far.region = Some("110105".into());
        let mut later = twin(&other_id);
        later.death_date = died + chrono::Days::new(9);
        let mut older = twin(&other_id);
        older.birth_date = Some(d(1940, 1, 1));
        let cases: [(&str, MatchRecord, bool); 7] = [
            ("another person's ID", twin(&other_id), true),
            ("the pensioner's own ID", twin(&p.id_number), false),
            ("the pensioner's ID re-coded", twin(&recoded), false),
            (
                "the pensioner's ID with two digits swapped",
                twin(&typo),
                false,
            ),
            ("another city", far, false),
            ("another week", later, false),
            ("another birth year", older, false),
        ];
        for (what, other, fits) in cases {
            let recs = [cremation.clone()];
            let mut b = matched(&ps, &recs, &rules);
            assert_eq!(b.matches.len(), 1, "{what}");
            assert_eq!(
                (b.matches[0].band, b.matches[0].may_carry),
                (Band::Review, true),
                "{what}"
            );
            let marked = mark_other_deaths(&mut b.matches, &recs, &[other], &ps, &rules);
            let m = &b.matches[0];
            assert_eq!((marked, m.may_carry), (usize::from(fits), !fits), "{what}");
            let flagged = m.explanation.safeguards.iter().any(|s| {
                *s == Safeguard::AnotherDeath {
                    source: "public_security".into(),
                    record_key: "PS-2".into(),
                }
            });
            assert_eq!(flagged, fits, "{what}");
        }
        // The record among the batch's own records counts the same; the
        // record itself never does.
        let recs = [cremation.clone(), twin(&other_id)];
        let mut b = matched(&ps, &recs, &rules);
        let before = b
            .matches
            .iter()
            .filter(|m| m.may_carry && m.band == Band::Review)
            .count();
        assert_eq!(
            mark_other_deaths(&mut b.matches, &recs, &[], &ps, &rules),
            1
        );
        assert_eq!(before, 1);
        let recs = [cremation.clone()];
        let mut b = matched(&ps, &recs, &rules);
        assert_eq!(
            mark_other_deaths(&mut b.matches, &recs, &[cremation.clone()], &ps, &rules),
            0
        );
    }

    #[test]
    fn only_a_record_that_nothing_speaks_against_may_be_carried() {
        let c = Comparison {
            id: IdLevel::Missing,
            name: NameLevel::Exact,
            birth: BirthLevel::YearOnly,
            sex: SexLevel::Agree,
            region: RegionLevel::County,
        };
        assert!(may_carry(&c, &[]));
        assert!(may_carry(
            &Comparison {
                region: RegionLevel::Missing,
                ..c
            },
            &[]
        ));
        assert!(may_carry(
            &Comparison {
                name: NameLevel::TonelessPinyin,
                ..c
            },
            &[]
        ));
        // Someone else's ID, or the right digits with another region.
        assert!(!may_carry(
            &Comparison {
                id: IdLevel::Different,
                ..c
            },
            &[]
        ));
        assert!(!may_carry(
            &Comparison {
                id: IdLevel::SameButRegion,
                ..c
            },
            &[]
        ));
        // A name only like the pensioner's.
        assert!(!may_carry(
            &Comparison {
                name: NameLevel::Similar,
                ..c
            },
            &[]
        ));
        assert!(!may_carry(
            &Comparison {
                name: NameLevel::Confusable,
                ..c
            },
            &[]
        ));
        // Another birth date or sex; another province or a far region.
        assert!(!may_carry(
            &Comparison {
                birth: BirthLevel::Different,
                ..c
            },
            &[]
        ));
        assert!(!may_carry(
            &Comparison {
                sex: SexLevel::Disagree,
                ..c
            },
            &[]
        ));
        assert!(!may_carry(
            &Comparison {
                region: RegionLevel::Province,
                ..c
            },
            &[]
        ));
        assert!(!may_carry(
            &Comparison {
                region: RegionLevel::Different,
                ..c
            },
            &[]
        ));
        // Evidence of life after the death; an informant's pattern.
        let alive = Safeguard::CounterEvidence {
            alive_on: d(2026, 11, 1),
        };
        assert!(!may_carry(&c, &[alive]));
        assert!(!may_carry(&c, &[Safeguard::InformantPattern]));
        // The safeguard every record without an ID meets does not count.
        assert!(may_carry(&c, &[Safeguard::NoIdAgreement]));
    }

    #[test]
    fn records_of_one_death_from_three_sources_are_one_event_with_stronger_evidence() {
        let (ps, rules) = setup();
        let dd = d(2026, 10, 1);
        let one = fused(&ps, &[of(&ps[0], "funeral", "F1", dd)], &rules);
        let recs = [
            of(&ps[0], "funeral", "F1", dd),
            of(&ps[0], "public_security", "PS1", dd),
            of(&ps[0], "civil_affairs", "CA1", dd),
        ];
        let three = fused(&ps, &recs, &rules);
        assert_eq!(three.len(), 1);
        assert_eq!(three[0].records.len(), 3);
        assert!(three[0].evidence_strength > one[0].evidence_strength);
        assert!(three[0].flags.is_empty());
        assert_eq!(three[0].band, Band::Auto);
    }

    #[test]
    fn conflicting_death_dates_are_kept_flagged_and_chosen_by_precedence() {
        let (ps, rules) = setup();
        let recs = [
            of(&ps[0], "funeral", "F1", d(2026, 10, 3)),
            of(&ps[0], "public_security", "PS1", d(2026, 10, 1)),
        ];
        let ev = &fused(&ps, &recs, &rules)[0];
        assert_eq!(ev.death_date, d(2026, 10, 1));
        assert!(ev.flags.contains(&TimelineFlag::ConflictingDeathDates));
        let dates: Vec<_> = ev.records.iter().map(|r| r.death_date).collect();
        assert_eq!(dates, vec![d(2026, 10, 1), d(2026, 10, 3)]);
        let mut r2 = rules.clone();
        r2.fusion.death_date_precedence = vec![
            "funeral".into(),
            "civil_affairs".into(),
            "public_security".into(),
        ];
        assert_eq!(fused(&ps, &recs, &r2)[0].death_date, d(2026, 10, 3));
    }

    #[test]
    fn unmatched_records_with_the_same_valid_id_are_one_event() {
        let (ps, rules) = setup();
        let stranger = person("X", "赵六", "110101", d(1940, 1, 1), 11);
        let recs = [
            of(&stranger, "funeral", "F1", d(2026, 10, 1)),
            of(&stranger, "civil_affairs", "C1", d(2026, 10, 1)),
        ];
        let ev = fused(&ps, &recs, &rules);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].person_no, None);
        assert_eq!(ev[0].sources, vec!["civil_affairs", "funeral"]);
    }

    #[test]
    fn timeline_checks_flag_death_before_birth_before_benefit_and_over_110() {
        let (ps, rules) = setup();
        let p = &ps[0];
        assert!(timeline(p, d(1930, 1, 1), &rules).contains(&TimelineFlag::DeathBeforeBirth));
        assert!(
            timeline(p, d(1990, 1, 1), &rules).contains(&TimelineFlag::DeathBeforeBenefitStart)
        );
        let old = person("O", "钱七", "440304", d(1910, 1, 1), 11);
        assert_eq!(
            timeline(&old, d(2026, 1, 1), &rules),
            vec![TimelineFlag::AgeOverMaximum { age: 116 }]
        );
        assert!(timeline(p, d(2026, 1, 1), &rules).is_empty());
    }
}
