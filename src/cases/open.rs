//! Which cases a match run opens and updates: pure, plain values in, steps
//! out.
//!
//! A fused death (one pensioner, every record that points at them) is one
//! case, however many records and sources it has. Against the cases already
//! stored, each death:
//! - opens a case when the pensioner has no active one (an active case is
//!   undecided, or decided by confirming the death). A case decided
//!   otherwise (a false match, a resumption, a duplicate) is left as it is
//!   while the death's records are the ones it was decided on; a record it
//!   has not seen opens a new case;
//! - updates the active case when its records, their content, the band or
//!   the death date changed, saying what changed;
//! - holds the payment at once when the band is `auto` and the case is not
//!   decided, unless vigil already holds or ended it.
//!
//! An active case whose records all left the matches updates too, saying
//! for each record whether it was withdrawn (no longer a stored death
//! record) or only no longer matched to this pensioner. A case decided by
//! confirming the death whose every record was withdrawn reopens, saying
//! which. Nothing is ever resumed by the engine: a held payment stays held
//! until two people decide otherwise (DESIGN.md, invariant 4).

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::machine::Action;
use crate::model::Band;

/// One death record behind a case, as the case remembers it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Evidence {
    pub source: String,
    pub record_key: String,
    pub death_date: NaiveDate,
    /// [`crate::model::MatchRecord::digest`]: changes when the record is
    /// corrected.
    #[serde(default)]
    pub digest: String,
}

impl Evidence {
    pub fn key(&self) -> (String, String) {
        (self.source.clone(), self.record_key.clone())
    }
}

/// A death as the latest match run fused it.
#[derive(Debug, Clone, PartialEq)]
pub struct Death {
    pub person_no: String,
    pub death_date: NaiveDate,
    pub band: Band,
    /// Sorted.
    pub evidence: Vec<Evidence>,
}

/// A stored death-match case, as the planner needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCase {
    pub id: i64,
    pub person_no: String,
    pub band: Option<Band>,
    pub death_date: Option<NaiveDate>,
    /// Sorted.
    pub evidence: Vec<Evidence>,
    pub decision: Option<Action>,
}

impl StoredCase {
    /// Undecided, or decided by confirming the death: the case a death of
    /// this pensioner belongs to.
    fn active(&self) -> bool {
        matches!(self.decision, None | Some(Action::ConfirmDeath))
    }
}

/// vigil's own payment state for a pensioner (apart from the roster's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaymentState {
    /// vigil has decided nothing: the roster's status stands.
    #[default]
    Untouched,
    Held,
    Terminated,
    Resumed,
}

impl PaymentState {
    /// The state the latest change leaves (`suspend`, `terminate`,
    /// `resume`; back pay changes nothing).
    pub fn after(self, change: &str) -> PaymentState {
        match change {
            "suspend" => PaymentState::Held,
            "terminate" => PaymentState::Terminated,
            "resume" => PaymentState::Resumed,
            _ => self,
        }
    }

    fn stopped(self) -> bool {
        matches!(self, PaymentState::Held | PaymentState::Terminated)
    }
}

/// Why a record left a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gone {
    /// No longer a stored death record (withdrawn, or re-delivered as a
    /// cancellation for another reason).
    Withdrawn,
    /// Still stored, but no longer matched to this pensioner (a false
    /// match suppressed, or matched to someone else).
    NoLongerMatched,
}

/// What changed in an active case's evidence.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvidenceChange {
    pub added: Vec<Evidence>,
    pub removed: Vec<(Evidence, Gone)>,
    /// Records still there whose content changed (before, after).
    pub corrected: Vec<(Evidence, Evidence)>,
    pub band: Option<(Option<Band>, Option<Band>)>,
    pub death_date: Option<(Option<NaiveDate>, Option<NaiveDate>)>,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Open {
        person_no: String,
        band: Band,
        death_date: NaiveDate,
        evidence: Vec<Evidence>,
        /// Hold the payment now (`auto`, not already stopped by vigil).
        hold: bool,
    },
    Update {
        case_id: i64,
        person_no: String,
        band: Option<Band>,
        death_date: Option<NaiveDate>,
        evidence: Vec<Evidence>,
        change: EvidenceChange,
        hold: bool,
        /// A confirmed death whose every record was withdrawn: reopen,
        /// saying this.
        reopen: Option<String>,
    },
}

/// The records of `cases` no longer behind any death: whether each is
/// still stored decides how its leaving is told ([`plan`]'s `present`).
pub fn gone_records(cases: &[StoredCase], deaths: &[Death]) -> Vec<(String, String)> {
    let now: HashSet<(&str, &str)> = deaths
        .iter()
        .flat_map(|d| d.evidence.iter())
        .map(|e| (e.source.as_str(), e.record_key.as_str()))
        .collect();
    let mut gone: BTreeSet<(String, String)> = BTreeSet::new();
    for case in latest_per_person(cases).into_values() {
        if !case.active() {
            continue;
        }
        for e in &case.evidence {
            if !now.contains(&(e.source.as_str(), e.record_key.as_str())) {
                gone.insert(e.key());
            }
        }
    }
    gone.into_iter().collect()
}

fn latest_per_person(cases: &[StoredCase]) -> HashMap<&str, &StoredCase> {
    let mut latest: HashMap<&str, &StoredCase> = HashMap::with_capacity(cases.len());
    for c in cases {
        match latest.get(c.person_no.as_str()) {
            Some(l) if l.id > c.id => {}
            _ => {
                latest.insert(c.person_no.as_str(), c);
            }
        }
    }
    latest
}

/// The steps that bring the stored cases in line with the latest deaths.
/// `present` holds which of [`gone_records`] are still stored death
/// records; `payments` vigil's payment state of each pensioner who has one.
/// Steps come in person-number order (deterministic).
pub fn plan(
    cases: &[StoredCase],
    deaths: &[Death],
    present: &HashSet<(String, String)>,
    payments: &HashMap<String, PaymentState>,
) -> Vec<Step> {
    let latest = latest_per_person(cases);
    let payment = |p: &str| payments.get(p).copied().unwrap_or_default();
    let mut steps = Vec::new();
    let mut seen: HashSet<&str> = HashSet::with_capacity(deaths.len());
    for death in deaths {
        seen.insert(death.person_no.as_str());
        let hold_if_auto = |decided: bool| {
            death.band == Band::Auto && !decided && !payment(&death.person_no).stopped()
        };
        match latest.get(death.person_no.as_str()) {
            Some(case) if case.active() => {
                let change = compare(case, Some(death), present);
                if change == EvidenceChange::default() {
                    // Nothing new; an `auto` death still holds the payment
                    // of an undecided case if nothing holds it yet.
                    if hold_if_auto(case.decision.is_some()) {
                        steps.push(update(case, Some(death), change, true, None));
                    }
                    continue;
                }
                let hold = hold_if_auto(case.decision.is_some());
                steps.push(update(case, Some(death), change, hold, None));
            }
            Some(case) => {
                // Decided otherwise: only a record it has not seen opens a
                // new case.
                let known: HashSet<(&str, &str)> = case
                    .evidence
                    .iter()
                    .map(|e| (e.source.as_str(), e.record_key.as_str()))
                    .collect();
                if death
                    .evidence
                    .iter()
                    .any(|e| !known.contains(&(e.source.as_str(), e.record_key.as_str())))
                {
                    steps.push(open(death, hold_if_auto(false)));
                }
            }
            None => steps.push(open(death, hold_if_auto(false))),
        }
    }
    // Active cases with no death behind them any more.
    let mut orphans: Vec<&StoredCase> = latest
        .values()
        .filter(|c| c.active() && !c.evidence.is_empty() && !seen.contains(c.person_no.as_str()))
        .copied()
        .collect();
    orphans.sort_by(|a, b| a.person_no.cmp(&b.person_no));
    for case in orphans {
        let change = compare(case, None, present);
        let all_withdrawn = change
            .removed
            .iter()
            .all(|(_, gone)| *gone == Gone::Withdrawn);
        let reopen = (case.decision == Some(Action::ConfirmDeath) && all_withdrawn).then(|| {
            let records: Vec<String> = change
                .removed
                .iter()
                .map(|(e, _)| format!("{}/{}", e.source, e.record_key))
                .collect();
            format!(
                "every death record the death was confirmed on was withdrawn by its source: {}",
                records.join(", ")
            )
        });
        steps.push(update(case, None, change, false, reopen));
    }
    steps.sort_by(|a, b| person_of(a).cmp(person_of(b)));
    steps
}

fn person_of(step: &Step) -> &str {
    match step {
        Step::Open { person_no, .. } | Step::Update { person_no, .. } => person_no,
    }
}

fn open(death: &Death, hold: bool) -> Step {
    Step::Open {
        person_no: death.person_no.clone(),
        band: death.band,
        death_date: death.death_date,
        evidence: death.evidence.clone(),
        hold,
    }
}

fn update(
    case: &StoredCase,
    death: Option<&Death>,
    change: EvidenceChange,
    hold: bool,
    reopen: Option<String>,
) -> Step {
    Step::Update {
        case_id: case.id,
        person_no: case.person_no.clone(),
        band: death.map(|d| d.band).or(case.band),
        death_date: death.map(|d| d.death_date).or(case.death_date),
        evidence: death.map(|d| d.evidence.clone()).unwrap_or_default(),
        change,
        hold,
        reopen,
    }
}

/// What differs between a case's evidence and the death now behind it.
fn compare(
    case: &StoredCase,
    death: Option<&Death>,
    present: &HashSet<(String, String)>,
) -> EvidenceChange {
    let now: &[Evidence] = death.map_or(&[], |d| &d.evidence);
    let by_key = |list: &[Evidence]| -> HashMap<(String, String), Evidence> {
        list.iter().map(|e| (e.key(), e.clone())).collect()
    };
    let (before, after) = (by_key(&case.evidence), by_key(now));
    let mut change = EvidenceChange::default();
    for e in now {
        match before.get(&e.key()) {
            None => change.added.push(e.clone()),
            Some(old) if old != e => change.corrected.push((old.clone(), e.clone())),
            Some(_) => {}
        }
    }
    for e in &case.evidence {
        if !after.contains_key(&e.key()) {
            let gone = if present.contains(&e.key()) {
                Gone::NoLongerMatched
            } else {
                Gone::Withdrawn
            };
            change.removed.push((e.clone(), gone));
        }
    }
    if let Some(d) = death {
        if case.band != Some(d.band) {
            change.band = Some((case.band, Some(d.band)));
        }
        if case.death_date != Some(d.death_date) {
            change.death_date = Some((case.death_date, Some(d.death_date)));
        }
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn ev(source: &str, key: &str, digest: &str) -> Evidence {
        Evidence {
            source: source.into(),
            record_key: key.into(),
            death_date: date("2026-05-01"),
            digest: digest.into(),
        }
    }

    fn death(person: &str, band: Band, evidence: Vec<Evidence>) -> Death {
        Death {
            person_no: person.into(),
            death_date: date("2026-05-01"),
            band,
            evidence,
        }
    }

    fn case(
        id: i64,
        person: &str,
        evidence: Vec<Evidence>,
        decision: Option<Action>,
    ) -> StoredCase {
        StoredCase {
            id,
            person_no: person.into(),
            band: Some(Band::Review),
            death_date: Some(date("2026-05-01")),
            evidence,
            decision,
        }
    }

    fn none() -> (HashSet<(String, String)>, HashMap<String, PaymentState>) {
        (HashSet::new(), HashMap::new())
    }

    #[test]
    fn one_case_per_pensioner_however_many_records_and_auto_holds_the_payment() {
        let (present, payments) = none();
        let deaths = vec![
            death(
                "P1",
                Band::Auto,
                vec![ev("civil_affairs", "C1", "a"), ev("funeral", "F1", "b")],
            ),
            death("P2", Band::Review, vec![ev("public_security", "S1", "c")]),
        ];
        let steps = plan(&[], &deaths, &present, &payments);
        assert_eq!(steps.len(), 2);
        match &steps[0] {
            Step::Open {
                person_no,
                evidence,
                hold,
                band,
                ..
            } => {
                assert_eq!(person_no, "P1");
                assert_eq!(evidence.len(), 2);
                assert_eq!(*band, Band::Auto);
                assert!(*hold, "an auto match holds the payment at once");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&steps[1], Step::Open { hold: false, .. }),
            "review: payment continues"
        );
    }

    #[test]
    fn nothing_changes_when_nothing_changed() {
        let (present, mut payments) = none();
        payments.insert("P1".into(), PaymentState::Held);
        let e = vec![ev("civil_affairs", "C1", "a")];
        let mut c = case(1, "P1", e.clone(), None);
        c.band = Some(Band::Auto);
        let steps = plan(&[c], &[death("P1", Band::Auto, e)], &present, &payments);
        assert!(steps.is_empty(), "{steps:?}");
    }

    #[test]
    fn an_auto_death_holds_an_undecided_case_not_yet_held() {
        let (present, payments) = none();
        let e = vec![ev("civil_affairs", "C1", "a")];
        let mut c = case(1, "P1", e.clone(), None);
        c.band = Some(Band::Auto);
        let steps = plan(&[c], &[death("P1", Band::Auto, e)], &present, &payments);
        assert!(
            matches!(&steps[..], [Step::Update { hold: true, .. }]),
            "{steps:?}"
        );
    }

    #[test]
    fn a_new_source_a_correction_and_a_stronger_band_update_the_case() {
        let (present, payments) = none();
        let c = case(7, "P1", vec![ev("civil_affairs", "C1", "a")], None);
        let now = death(
            "P1",
            Band::Auto,
            vec![ev("civil_affairs", "C1", "a2"), ev("funeral", "F9", "f")],
        );
        let steps = plan(&[c], &[now], &present, &payments);
        let [
            Step::Update {
                case_id,
                change,
                hold,
                reopen,
                ..
            },
        ] = &steps[..]
        else {
            panic!("{steps:?}");
        };
        assert_eq!(*case_id, 7);
        assert_eq!(change.added.len(), 1);
        assert_eq!(change.corrected.len(), 1);
        assert_eq!(change.band, Some((Some(Band::Review), Some(Band::Auto))));
        assert!(*hold);
        assert!(reopen.is_none());
    }

    #[test]
    fn a_confirmed_death_whose_records_are_all_withdrawn_reopens_and_says_why() {
        let (present, payments) = none();
        let c = case(
            3,
            "P1",
            vec![ev("civil_affairs", "C1", "a")],
            Some(Action::ConfirmDeath),
        );
        let gone = gone_records(std::slice::from_ref(&c), &[]);
        assert_eq!(gone, vec![("civil_affairs".to_string(), "C1".to_string())]);
        let steps = plan(&[c], &[], &present, &payments);
        let [
            Step::Update {
                reopen: Some(why),
                change,
                ..
            },
        ] = &steps[..]
        else {
            panic!("{steps:?}");
        };
        assert!(why.contains("civil_affairs/C1"), "{why}");
        assert_eq!(change.removed[0].1, Gone::Withdrawn);
    }

    #[test]
    fn a_record_matched_elsewhere_updates_without_reopening() {
        let (mut present, payments) = none();
        present.insert(("civil_affairs".into(), "C1".into()));
        let c = case(
            3,
            "P1",
            vec![ev("civil_affairs", "C1", "a")],
            Some(Action::ConfirmDeath),
        );
        let steps = plan(&[c], &[], &present, &payments);
        let [
            Step::Update {
                reopen: None,
                change,
                ..
            },
        ] = &steps[..]
        else {
            panic!("{steps:?}");
        };
        assert_eq!(change.removed[0].1, Gone::NoLongerMatched);
    }

    #[test]
    fn a_false_match_stays_decided_until_a_record_it_never_saw_arrives() {
        let (present, payments) = none();
        let e = ev("civil_affairs", "C1", "a");
        let c = case(3, "P1", vec![e.clone()], Some(Action::FalseMatch));
        // The suppressed pair still stored until the next run: no new case.
        let steps = plan(
            std::slice::from_ref(&c),
            &[death("P1", Band::Review, vec![e.clone()])],
            &present,
            &payments,
        );
        assert!(steps.is_empty(), "{steps:?}");
        // Another record of a death of the same pensioner: a new case.
        let steps = plan(
            &[c],
            &[death("P1", Band::Auto, vec![e, ev("funeral", "F1", "x")])],
            &present,
            &payments,
        );
        assert!(
            matches!(&steps[..], [Step::Open { hold: true, .. }]),
            "{steps:?}"
        );
    }

    #[test]
    fn a_payment_vigil_already_stopped_is_not_held_again() {
        let (present, mut payments) = none();
        payments.insert("P1".into(), PaymentState::Terminated);
        let steps = plan(
            &[],
            &[death(
                "P1",
                Band::Auto,
                vec![ev("civil_affairs", "C1", "a")],
            )],
            &present,
            &payments,
        );
        assert!(matches!(&steps[..], [Step::Open { hold: false, .. }]));
    }

    #[test]
    fn steps_come_in_person_order_whatever_the_input_order() {
        let (present, payments) = none();
        let deaths = vec![
            death("P3", Band::Review, vec![ev("funeral", "F3", "")]),
            death("P1", Band::Review, vec![ev("funeral", "F1", "")]),
        ];
        let orphan = case(9, "P2", vec![ev("funeral", "F2", "")], None);
        let steps = plan(&[orphan], &deaths, &present, &payments);
        let order: Vec<&str> = steps.iter().map(person_of).collect();
        assert_eq!(order, ["P1", "P2", "P3"]);
    }
}
