//! The comparisons themselves: one pair of records, field by field, into
//! levels.

use chrono::{Datelike, NaiveDate};

use super::levels::{BirthLevel, Comparison, IdLevel, NameLevel, RegionLevel, SexLevel};
use super::prepared::{
    NOT_A_CITY, NameForm, PersonView, PreparedRecord, county_of, fold_syllables, without_dots,
};
use crate::identity;
use crate::matching::rules::MatchRules;
use crate::model::death::{id_birth_date, id_sex};
use crate::model::{IdStatus, MatchRecord, Person};

/// Compares one pair; prepares the record on the way (use
/// [`compare_prepared`] in loops).
pub fn compare(person: &Person, record: &MatchRecord, rules: &MatchRules) -> Comparison {
    compare_prepared(person, &PreparedRecord::new(record), rules)
}

pub fn compare_prepared(
    person: &Person,
    rec: &PreparedRecord<'_>,
    rules: &MatchRules,
) -> Comparison {
    let name = compare_name(person, rec, rules.name.similar_threshold);
    compare_with_name(person, rec, name)
}

/// The region level of a person's insured and residence regions against a
/// record's, each as ([`city_of`], [`county_of`]) with every city a real
/// code: what [`compare_region`] decides on the text, on numbers.
pub(crate) fn coded_region_level(
    insured: (u16, u8),
    residence: (u16, u8),
    record: (u16, u8),
) -> RegionLevel {
    let (c, county) = record;
    let same_county = |(city, k): (u16, u8)| county != 0 && city == c && k == county;
    if same_county(insured) || same_county(residence) {
        RegionLevel::County
    } else if insured.0 == c || residence.0 == c {
        RegionLevel::City
    } else if insured.0 / 100 == c / 100 || residence.0 / 100 == c / 100 {
        RegionLevel::Province
    } else {
        RegionLevel::Different
    }
}

/// What a record's name comes to against one name form, except the
/// `exact` level (which depends on the name as written).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameVerdict {
    /// The level when the names as written differ (`Missing` when either
    /// normalised name is empty).
    pub(super) below_exact: NameLevel,
    /// The form's normalised name equals the record's name as written.
    pub(super) norm_is_their_name: bool,
}

/// Name verdicts of one record by name form: persons sharing a form compare
/// alike, so a record met by hundreds of namesakes judges the name once.
pub(crate) type NameCache = ahash::AHashMap<u32, NameVerdict>;

impl NameVerdict {
    /// The name level, given whether the names as written are equal
    /// (asked only when neither normalised name is empty).
    #[inline]
    fn level(self, exact: impl FnOnce() -> bool) -> NameLevel {
        if self.below_exact == NameLevel::Missing {
            NameLevel::Missing
        } else if exact() {
            NameLevel::Exact
        } else {
            self.below_exact
        }
    }
}

/// The verdict of name form `form_id` (`form`, `person`'s) against the
/// record, judged once per record and form (`name_cache`).
fn name_verdict(
    name_cache: &mut NameCache,
    form_id: u32,
    person: &Person,
    form: &NameForm,
    rec: &PreparedRecord<'_>,
    record_key_id: Option<u32>,
    rules: &MatchRules,
) -> NameVerdict {
    *name_cache.entry(form_id).or_insert_with(|| {
        let record = rec.record;
        let below_exact = if person.name_norm.is_empty() || record.name_norm.is_empty() {
            NameLevel::Missing
        } else if person.name_norm == record.name_norm
            || ((form.has_dot != 0 || rec.form.has_dot != 0)
                && person
                    .name_norm
                    .chars()
                    .filter(|&c| c != '·')
                    .eq(rec.name_plain.chars()))
        {
            NameLevel::Normalised
        } else if match form.key_id() {
            Some(id) => Some(id) == record_key_id,
            None => person.name_key == record.name_key,
        } {
            if form.toned == rec.form.toned {
                NameLevel::TonedPinyin
            } else {
                NameLevel::TonelessPinyin
            }
        } else if form.folded == rec.form.folded {
            NameLevel::Confusable
        } else if strsim::jaro_winkler(&person.name_key, &record.name_key)
            >= rules.name.similar_threshold
        {
            NameLevel::Similar
        } else {
            NameLevel::Different
        };
        NameVerdict {
            below_exact,
            norm_is_their_name: person.name_norm == record.name,
        }
    })
}

/// [`compare_prepared`] for a roster person whose name features the index
/// computed (`form`, number `form_id`), against a record whose key has id
/// `record_key_id` in the same index. Gives the same levels as
/// [`compare_prepared`]; only faster.
pub(crate) fn compare_indexed(
    person: &Person,
    form_id: u32,
    form: &NameForm,
    rec: &PreparedRecord<'_>,
    record_key_id: Option<u32>,
    name_cache: &mut NameCache,
    rules: &MatchRules,
) -> Comparison {
    let v = name_verdict(name_cache, form_id, person, form, rec, record_key_id, rules);
    let name = v.level(|| person.name == rec.record.name);
    compare_with_name(person, rec, name)
}

/// [`compare_indexed`] for a record with no ID (`IdStatus::Empty`): its ID
/// level is `missing` whoever the person is, and everything else is read
/// off the person's [`PersonView`]; `person` itself is read only for a
/// name that needed normalising or a region that is not a plain code.
pub(crate) fn compare_without_id(
    person: &Person,
    view: &PersonView,
    form: &NameForm,
    rec: &PreparedRecord<'_>,
    record_key_id: Option<u32>,
    name_cache: &mut NameCache,
    rules: &MatchRules,
) -> Comparison {
    debug_assert_eq!(rec.record.id_status, IdStatus::Empty);
    let record = rec.record;
    let v = name_verdict(
        name_cache,
        view.form,
        person,
        form,
        rec,
        record_key_id,
        rules,
    );
    let name = v.level(|| {
        if view.name_is_norm != 0 {
            v.norm_is_their_name
        } else {
            person.name == record.name
        }
    });
    let sex = match record.sex {
        Some(s) if s == view.sex => SexLevel::Agree,
        Some(_) => SexLevel::Disagree,
        None => SexLevel::Missing,
    };
    let (ic, rc) = (view.insured_city, view.residence_city);
    let region = match rec.city {
        None => RegionLevel::Missing,
        Some(c) if c != NOT_A_CITY && ic != NOT_A_CITY && rc != NOT_A_CITY => coded_region_level(
            (ic, view.insured_county),
            (rc, view.residence_county),
            (c, rec.county),
        ),
        Some(_) => compare_region(person, record),
    };
    Comparison {
        id: IdLevel::Missing,
        name,
        birth: compare_birth_with(view.birth_ymd >> 9, || view.birth(), record),
        sex,
        region,
    }
}

/// Every level but the name's, which the caller has judged.
pub(super) fn compare_with_name(
    person: &Person,
    rec: &PreparedRecord<'_>,
    name: NameLevel,
) -> Comparison {
    let record = rec.record;
    let id = compare_id(person, rec);
    let mut birth = compare_birth(person.birth_date, record);
    let mut sex = match record.sex {
        Some(s) if s == person.sex => SexLevel::Agree,
        Some(_) => SexLevel::Disagree,
        None => SexLevel::Missing,
    };
    if id.agrees() {
        // See the module comment: agreement read off the ID is not counted
        // again; a plain contradiction of the record's own ID is.
        if birth != BirthLevel::Different {
            birth = BirthLevel::ImpliedById;
        }
        let own = record.id_number.as_deref();
        let contradicts_own_id = matches!(
            (record.sex, own.and_then(id_sex)),
            (Some(s), Some(i)) if s != i
        );
        if sex != SexLevel::Disagree || !contradicts_own_id {
            sex = SexLevel::ImpliedById;
        }
        if birth == BirthLevel::Different
            && record
                .birth_date
                .zip(own.and_then(id_birth_date))
                .is_some_and(|(b, i)| compare_dates(b, i) != BirthLevel::Different)
        {
            // The record agrees with its own ID; the difference is between
            // the ID and the roster, which the ID level has judged already.
            birth = BirthLevel::ImpliedById;
        }
    }
    let mut region = compare_region(person, record);
    if id.agrees() && region == RegionLevel::County {
        // The county tells namesakes apart when there is no ID; next to an
        // agreeing ID (whose first six digits are a county again) it would
        // lift a fuzzy name, an informant's relative, over `auto`.
        region = RegionLevel::City;
    }
    Comparison {
        id,
        name,
        birth,
        sex,
        region,
    }
}

pub(super) fn compare_id(person: &Person, rec: &PreparedRecord<'_>) -> IdLevel {
    let record = rec.record;
    match record.id_status {
        IdStatus::Empty => IdLevel::Missing,
        IdStatus::Valid | IdStatus::Upgraded => {
            let Some(theirs) = record.id_number.as_deref() else {
                return IdLevel::Missing;
            };
            let ours = person.id_number.as_str();
            if theirs == ours {
                IdLevel::Exact
            } else if theirs.len() == 18 && ours.len() == 18 && theirs.get(6..17) == ours.get(6..17)
            {
                IdLevel::SameButRegion
            } else {
                IdLevel::Different
            }
        }
        IdStatus::Invalid => {
            if rec
                .repairs
                .iter()
                .any(|c| c.as_str() == person.id_number.as_str())
            {
                IdLevel::Repaired
            } else {
                IdLevel::Different
            }
        }
    }
}

pub(super) fn compare_name(
    person: &Person,
    rec: &PreparedRecord<'_>,
    similar_threshold: f64,
) -> NameLevel {
    let record = rec.record;
    if person.name_norm.is_empty() || record.name_norm.is_empty() {
        return NameLevel::Missing;
    }
    if person.name == record.name {
        return NameLevel::Exact;
    }
    if person.name_norm == record.name_norm || without_dots(&person.name_norm) == rec.name_plain {
        return NameLevel::Normalised;
    }
    if person.name_key == record.name_key {
        if identity::pinyin_toned(&person.name_norm) == rec.toned {
            return NameLevel::TonedPinyin;
        }
        return NameLevel::TonelessPinyin;
    }
    if fold_syllables(&identity::pinyin_syllables(&person.name_norm)) == rec.folded {
        return NameLevel::Confusable;
    }
    if strsim::jaro_winkler(&person.name_key, &record.name_key) >= similar_threshold {
        return NameLevel::Similar;
    }
    NameLevel::Different
}

pub(super) fn compare_dates(theirs: NaiveDate, ours: NaiveDate) -> BirthLevel {
    if theirs == ours {
        return BirthLevel::Exact;
    }
    let (ty, tm, td) = (theirs.year(), theirs.month(), theirs.day());
    let (oy, om, od) = (ours.year(), ours.month(), ours.day());
    if ty == oy && tm == od && td == om {
        return BirthLevel::DayMonthSwapped;
    }
    let same = usize::from(ty == oy) + usize::from(tm == om) + usize::from(td == od);
    if same == 2 {
        return BirthLevel::OnePartOff;
    }
    if ty == oy {
        return BirthLevel::YearOnly;
    }
    BirthLevel::Different
}

pub(super) fn compare_birth(ours: NaiveDate, record: &MatchRecord) -> BirthLevel {
    compare_birth_with(ours.year(), || ours, record)
}

/// [`compare_birth`] of a birth date given by its year and, only when the
/// record has a full date to compare it with, the date itself.
pub(super) fn compare_birth_with(
    year: i32,
    ours: impl FnOnce() -> NaiveDate,
    record: &MatchRecord,
) -> BirthLevel {
    if let Some(theirs) = record.birth_date {
        return compare_dates(theirs, ours());
    }
    if let Some((lo, hi)) = record.birth_year_range {
        return if (lo..=hi).contains(&year) {
            BirthLevel::YearOnly
        } else {
            BirthLevel::Different
        };
    }
    BirthLevel::Missing
}

pub(super) fn compare_region(person: &Person, record: &MatchRecord) -> RegionLevel {
    let Some(theirs) = record.region.as_deref().filter(|r| r.len() >= 4) else {
        return RegionLevel::Missing;
    };
    let ours = [
        person.insured_region.as_str(),
        person.residence_region.as_str(),
    ];
    if county_of(theirs) != 0 && ours.iter().any(|o| o.get(..6) == theirs.get(..6)) {
        RegionLevel::County
    } else if ours.iter().any(|o| o.get(..4) == theirs.get(..4)) {
        RegionLevel::City
    } else if ours.iter().any(|o| o.get(..2) == theirs.get(..2)) {
        RegionLevel::Province
    } else {
        RegionLevel::Different
    }
}
