//! Field-by-field comparison of a pensioner with a death record into
//! comparison levels (ID, name, birth date, sex, region), and the weight the
//! rules give each level. This module owns what each level means; it must
//! never add weights up, decide a band or look at anyone but the two records
//! in hand (term frequencies and safeguards live in `score`).
//!
//! Birth date and sex are read off the ID number: when the ID agrees (exact,
//! repaired, or same but region), the record's birth date and sex are mostly
//! the ID's own digits again, and counting them would add the same evidence
//! twice, pushing a pair past `auto` on one fact. They are then level
//! `implied_by_id` with weight 0. The one exception is a record whose own
//! birth date or sex plainly contradicts the ID it carries (level
//! `different` / `disagree`): that is the mark of an informant's ID typed
//! into a relative's death record, real counter-evidence that is kept.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::rules::MatchRules;
use crate::identity::{self, IdNumber};
use crate::model::death::{id_birth_date, id_sex};
use crate::model::{IdStatus, MatchRecord, Person};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdLevel {
    Exact,
    /// The record's ID is invalid and the person's is one of the valid
    /// numbers one substitution or adjacent swap away.
    Repaired,
    /// Digits 7-17 (birth date and sequence) equal, region part differs.
    /// The check digit (18) is left out: it changes with the region.
    SameButRegion,
    Different,
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameLevel {
    /// Character for character as written.
    Exact,
    /// Equal after normalisation (NFKC, traditional folded, separators),
    /// with a dropped middle dot forgiven.
    Normalised,
    /// Same pinyin with tones: a homophone typed for a character.
    TonedPinyin,
    /// Same pinyin without tones (or a character typed as its pinyin).
    TonelessPinyin,
    /// Same syllables once commonly confused sounds are folded
    /// (n-l, zh-z, ch-c, sh-s, f-h, an-ang, en-eng, in-ing).
    Confusable,
    /// Jaro-Winkler of the pinyin keys at or above the rules' threshold.
    Similar,
    Different,
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BirthLevel {
    Exact,
    DayMonthSwapped,
    /// Exactly one of year, month, day differs.
    OnePartOff,
    /// Same year only, or the person's birth year inside a funeral
    /// record's age range.
    YearOnly,
    Different,
    Missing,
    /// Read off an ID that agrees: not counted twice.
    ImpliedById,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SexLevel {
    Agree,
    Disagree,
    Missing,
    ImpliedById,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionLevel {
    /// Same county (all six digits, not a city's own `..00` code) as the
    /// insured or residence region.
    County,
    /// Same city (first 4 digits) as the insured or residence region.
    City,
    Province,
    Different,
    Missing,
}

/// The levels of one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Comparison {
    pub id: IdLevel,
    pub name: NameLevel,
    pub birth: BirthLevel,
    pub sex: SexLevel,
    pub region: RegionLevel,
}

impl IdLevel {
    pub const ALL: [IdLevel; 5] = [
        IdLevel::Exact,
        IdLevel::Repaired,
        IdLevel::SameButRegion,
        IdLevel::Different,
        IdLevel::Missing,
    ];
    pub fn weight(self, r: &MatchRules) -> f64 {
        let w = &r.id;
        match self {
            IdLevel::Exact => w.exact,
            IdLevel::Repaired => w.repaired,
            IdLevel::SameButRegion => w.same_but_region,
            IdLevel::Different => w.different,
            IdLevel::Missing => w.missing,
        }
    }
    pub fn weight_mut(self, r: &mut MatchRules) -> &mut f64 {
        let w = &mut r.id;
        match self {
            IdLevel::Exact => &mut w.exact,
            IdLevel::Repaired => &mut w.repaired,
            IdLevel::SameButRegion => &mut w.same_but_region,
            IdLevel::Different => &mut w.different,
            IdLevel::Missing => &mut w.missing,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            IdLevel::Exact => "exact",
            IdLevel::Repaired => "repaired",
            IdLevel::SameButRegion => "same_but_region",
            IdLevel::Different => "different",
            IdLevel::Missing => "missing",
        }
    }
    /// The ID says it is this person (the levels that imply birth and sex).
    pub fn agrees(self) -> bool {
        matches!(
            self,
            IdLevel::Exact | IdLevel::Repaired | IdLevel::SameButRegion
        )
    }
}

impl NameLevel {
    pub const ALL: [NameLevel; 8] = [
        NameLevel::Exact,
        NameLevel::Normalised,
        NameLevel::TonedPinyin,
        NameLevel::TonelessPinyin,
        NameLevel::Confusable,
        NameLevel::Similar,
        NameLevel::Different,
        NameLevel::Missing,
    ];
    pub fn weight(self, r: &MatchRules) -> f64 {
        let w = &r.name;
        match self {
            NameLevel::Exact => w.exact,
            NameLevel::Normalised => w.normalised,
            NameLevel::TonedPinyin => w.toned_pinyin,
            NameLevel::TonelessPinyin => w.toneless_pinyin,
            NameLevel::Confusable => w.confusable,
            NameLevel::Similar => w.similar,
            NameLevel::Different => w.different,
            NameLevel::Missing => w.missing,
        }
    }
    pub fn weight_mut(self, r: &mut MatchRules) -> &mut f64 {
        let w = &mut r.name;
        match self {
            NameLevel::Exact => &mut w.exact,
            NameLevel::Normalised => &mut w.normalised,
            NameLevel::TonedPinyin => &mut w.toned_pinyin,
            NameLevel::TonelessPinyin => &mut w.toneless_pinyin,
            NameLevel::Confusable => &mut w.confusable,
            NameLevel::Similar => &mut w.similar,
            NameLevel::Different => &mut w.different,
            NameLevel::Missing => &mut w.missing,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            NameLevel::Exact => "exact",
            NameLevel::Normalised => "normalised",
            NameLevel::TonedPinyin => "toned_pinyin",
            NameLevel::TonelessPinyin => "toneless_pinyin",
            NameLevel::Confusable => "confusable",
            NameLevel::Similar => "similar",
            NameLevel::Different => "different",
            NameLevel::Missing => "missing",
        }
    }
    /// Any level above `different`: what the `auto` safeguard calls agreeing.
    pub fn agrees(self) -> bool {
        !matches!(self, NameLevel::Different | NameLevel::Missing)
    }
    /// The fuzzy levels, where term frequency is applied at a reduced share.
    pub fn is_fuzzy(self) -> bool {
        matches!(self, NameLevel::Confusable | NameLevel::Similar)
    }
}

impl BirthLevel {
    pub const ALL: [BirthLevel; 7] = [
        BirthLevel::Exact,
        BirthLevel::DayMonthSwapped,
        BirthLevel::OnePartOff,
        BirthLevel::YearOnly,
        BirthLevel::Different,
        BirthLevel::Missing,
        BirthLevel::ImpliedById,
    ];
    pub fn weight(self, r: &MatchRules) -> f64 {
        let w = &r.birth;
        match self {
            BirthLevel::Exact => w.exact,
            BirthLevel::DayMonthSwapped => w.day_month_swapped,
            BirthLevel::OnePartOff => w.one_part_off,
            BirthLevel::YearOnly => w.year_only,
            BirthLevel::Different => w.different,
            BirthLevel::Missing => w.missing,
            BirthLevel::ImpliedById => 0.0,
        }
    }
    /// `None` for `implied_by_id`, whose weight is 0 by construction.
    pub fn weight_mut(self, r: &mut MatchRules) -> Option<&mut f64> {
        let w = &mut r.birth;
        match self {
            BirthLevel::Exact => Some(&mut w.exact),
            BirthLevel::DayMonthSwapped => Some(&mut w.day_month_swapped),
            BirthLevel::OnePartOff => Some(&mut w.one_part_off),
            BirthLevel::YearOnly => Some(&mut w.year_only),
            BirthLevel::Different => Some(&mut w.different),
            BirthLevel::Missing => Some(&mut w.missing),
            BirthLevel::ImpliedById => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BirthLevel::Exact => "exact",
            BirthLevel::DayMonthSwapped => "day_month_swapped",
            BirthLevel::OnePartOff => "one_part_off",
            BirthLevel::YearOnly => "year_only",
            BirthLevel::Different => "different",
            BirthLevel::Missing => "missing",
            BirthLevel::ImpliedById => "implied_by_id",
        }
    }
}

impl SexLevel {
    pub const ALL: [SexLevel; 4] = [
        SexLevel::Agree,
        SexLevel::Disagree,
        SexLevel::Missing,
        SexLevel::ImpliedById,
    ];
    pub fn weight(self, r: &MatchRules) -> f64 {
        match self {
            SexLevel::Agree => r.sex.agree,
            SexLevel::Disagree => r.sex.disagree,
            SexLevel::Missing => r.sex.missing,
            SexLevel::ImpliedById => 0.0,
        }
    }
    pub fn weight_mut(self, r: &mut MatchRules) -> Option<&mut f64> {
        match self {
            SexLevel::Agree => Some(&mut r.sex.agree),
            SexLevel::Disagree => Some(&mut r.sex.disagree),
            SexLevel::Missing => Some(&mut r.sex.missing),
            SexLevel::ImpliedById => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SexLevel::Agree => "agree",
            SexLevel::Disagree => "disagree",
            SexLevel::Missing => "missing",
            SexLevel::ImpliedById => "implied_by_id",
        }
    }
}

impl RegionLevel {
    pub const ALL: [RegionLevel; 5] = [
        RegionLevel::County,
        RegionLevel::City,
        RegionLevel::Province,
        RegionLevel::Different,
        RegionLevel::Missing,
    ];
    pub fn weight(self, r: &MatchRules) -> f64 {
        match self {
            RegionLevel::County => r.region.county,
            RegionLevel::City => r.region.city,
            RegionLevel::Province => r.region.province,
            RegionLevel::Different => r.region.different,
            RegionLevel::Missing => r.region.missing,
        }
    }
    pub fn weight_mut(self, r: &mut MatchRules) -> &mut f64 {
        match self {
            RegionLevel::County => &mut r.region.county,
            RegionLevel::City => &mut r.region.city,
            RegionLevel::Province => &mut r.region.province,
            RegionLevel::Different => &mut r.region.different,
            RegionLevel::Missing => &mut r.region.missing,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RegionLevel::County => "county",
            RegionLevel::City => "city",
            RegionLevel::Province => "province",
            RegionLevel::Different => "different",
            RegionLevel::Missing => "missing",
        }
    }
}

/// A death record with what every comparison against it needs computed
/// once: repair candidates of a broken ID and the pinyin forms of its name.
#[derive(Debug, Clone)]
pub struct PreparedRecord<'r> {
    pub record: &'r MatchRecord,
    /// Valid numbers one edit from a broken ID (empty unless `Invalid`).
    pub repairs: Vec<IdNumber>,
    name_plain: String,
    toned: String,
    folded: Vec<String>,
    /// The record's name as [`NameForm`] hashes (its key id is the index's
    /// business: see [`compare_indexed`]).
    form: NameForm,
    /// The city of the record's region as [`city_of`] reads it; `None` when
    /// the region is missing or shorter than four characters.
    city: Option<u16>,
    /// [`county_of`] the record's region (0: unknown or the city itself).
    county: u8,
}

impl<'r> PreparedRecord<'r> {
    /// The record's toned pinyin, hashed as [`NameForm`]s hash it: what
    /// ranks the namesakes of an oversized block by how closely their name
    /// sounds like the record's.
    pub(crate) fn toned_hash(&self) -> u64 {
        self.form.toned
    }

    /// See [`NameForm::folded_hash`].
    pub(crate) fn folded_hash(&self) -> u64 {
        self.form.folded
    }

    pub fn new(record: &'r MatchRecord) -> PreparedRecord<'r> {
        let repairs = if record.id_status == IdStatus::Invalid {
            identity::repair_candidates_on(&record.id_raw, record.death_date)
        } else {
            Vec::new()
        };
        let (toned, folded) = if record.name_norm.is_empty() {
            (String::new(), Vec::new())
        } else {
            (
                identity::pinyin_toned(&record.name_norm),
                fold_syllables(&identity::pinyin_syllables(&record.name_norm)),
            )
        };
        let form = NameForm::of(&record.name_norm, &toned, &folded, None);
        let city = record
            .region
            .as_deref()
            .filter(|r| r.len() >= 4)
            .map(city_of);
        PreparedRecord {
            record,
            repairs,
            name_plain: without_dots(&record.name_norm),
            toned,
            folded,
            form,
            city,
            county: record.region.as_deref().map_or(0, county_of),
        }
    }
}

/// What comparing a name needs beyond the strings themselves, computed once
/// per distinct roster name (and once per record): the key's id in the
/// roster's frequencies, and 64-bit hashes of the toned pinyin and of the
/// folded syllables, so that the per-pair path compares numbers instead of
/// building pinyin. Two different names whose hashes collide (about one
/// chance in 2^64 per pair) would be taken for homophones or confusable
/// spellings, never for the same name.
///
/// Plain data (`repr(C)`, no padding), so that the index file maps the
/// forms in place ([`super::index_file`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct NameForm {
    toned: u64,
    folded: u64,
    /// The key's id, or [`NameForm::NO_KEY`].
    key: u32,
    has_dot: u8,
    _pad: [u8; 3],
}

impl NameForm {
    const NO_KEY: u32 = u32::MAX;

    /// The name key's id in the roster's frequencies; `None` for a name
    /// without a key.
    pub fn key_id(&self) -> Option<u32> {
        (self.key != NameForm::NO_KEY).then_some(self.key)
    }

    pub(crate) fn toned_hash(&self) -> u64 {
        self.toned
    }

    /// The name's syllables with confusable sounds folded (n-l, zh-z,
    /// f-h, ...), hashed: equal for two names at the `confusable` level.
    pub(crate) fn folded_hash(&self) -> u64 {
        self.folded
    }
}

fn hash_parts<'s>(parts: impl Iterator<Item = &'s str>) -> u64 {
    // Length-prefixed, so that different splits never hash alike by construction.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in (part.len() as u32)
            .to_le_bytes()
            .iter()
            .chain(part.as_bytes())
        {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

impl NameForm {
    /// The form of a roster name, `key_id` being its key's id.
    pub fn new(norm: &str, key_id: Option<u32>) -> NameForm {
        if norm.is_empty() {
            return NameForm::of(norm, "", &[], key_id);
        }
        let toned = identity::pinyin_toned(norm);
        let folded = fold_syllables(&identity::pinyin_syllables(norm));
        NameForm::of(norm, &toned, &folded, key_id)
    }

    fn of(norm: &str, toned: &str, folded: &[String], key_id: Option<u32>) -> NameForm {
        NameForm {
            toned: hash_parts(std::iter::once(toned)),
            folded: hash_parts(folded.iter().map(String::as_str)),
            key: key_id.unwrap_or(NameForm::NO_KEY),
            has_dot: u8::from(norm.contains('·')),
            _pad: [0; 3],
        }
    }
}

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

/// Marks a region whose first four characters are not digits: compared as text.
pub const NOT_A_CITY: u16 = u16::MAX;

/// The first four digits of a region code (its city) as a number, or
/// [`NOT_A_CITY`].
pub fn city_of(region: &str) -> u16 {
    region
        .get(..4)
        .and_then(|c| {
            c.bytes().try_fold(0u16, |acc, b| {
                b.is_ascii_digit().then(|| acc * 10 + u16::from(b - b'0'))
            })
        })
        .unwrap_or(NOT_A_CITY)
}

/// What comparing a roster person with a record that has no ID reads,
/// packed into 16 bytes: the matcher's index keeps one per person, so
/// that the hundreds of namesakes a funeral record without an ID meets are
/// compared without touching the roster's strings. Plain data (`repr(C)`,
/// no padding), so that the index file maps the views in place
/// ([`super::index_file`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct PersonView {
    /// The birth date packed as `year << 9 | month << 5 | day`
    /// ([`PersonView::birth`]): its year is a shift away, which the
    /// comparison of a record giving only an age reads per candidate.
    pub birth_ymd: i32,
    /// The person's name form (see [`NameForm`]) in the index.
    pub form: u32,
    /// [`city_of`] the insured and residence regions.
    pub insured_city: u16,
    pub residence_city: u16,
    pub sex: u8,
    /// The registered name needed no normalising (`name == name_norm`),
    /// so "same name as written" is a property of the name form (0 or 1).
    pub name_is_norm: u8,
    /// [`county_of`] the insured and residence regions.
    pub insured_county: u8,
    pub residence_county: u8,
}

impl PersonView {
    pub fn of(p: &Person, form: u32) -> PersonView {
        PersonView {
            birth_ymd: p.birth_date.year() << 9
                | (p.birth_date.month() << 5 | p.birth_date.day()) as i32,
            form,
            insured_city: city_of(&p.insured_region),
            residence_city: city_of(&p.residence_region),
            sex: p.sex,
            name_is_norm: u8::from(p.name == p.name_norm),
            insured_county: county_of(&p.insured_region),
            residence_county: county_of(&p.residence_region),
        }
    }

    pub fn birth(&self) -> NaiveDate {
        let (md, year) = (self.birth_ymd as u32 & 0x1ff, self.birth_ymd >> 9);
        NaiveDate::from_ymd_opt(year, md >> 5, md & 0x1f).unwrap_or_default()
    }
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

/// Digits 5-6 of a region code (the county within its city) as a number;
/// 0 for `00` (the city itself) and for anything that is not two digits:
/// 0 never counts as agreeing.
pub fn county_of(region: &str) -> u8 {
    region
        .get(4..6)
        .and_then(|c| {
            c.bytes().try_fold(0u8, |acc, b| {
                b.is_ascii_digit().then(|| acc * 10 + (b - b'0'))
            })
        })
        .unwrap_or(0)
}

/// What a record's name comes to against one name form, except the
/// `exact` level (which depends on the name as written).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameVerdict {
    /// The level when the names as written differ (`Missing` when either
    /// normalised name is empty).
    below_exact: NameLevel,
    /// The form's normalised name equals the record's name as written.
    norm_is_their_name: bool,
}

/// Name verdicts of one record by name form: persons sharing a form compare
/// alike, so a record met by hundreds of namesakes judges the name once.
pub(crate) type NameCache = ahash::AHashMap<u32, NameVerdict>;

fn name_verdict(
    person: &Person,
    form: &NameForm,
    rec: &PreparedRecord<'_>,
    record_key_id: Option<u32>,
    rules: &MatchRules,
) -> NameVerdict {
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
    let v = *name_cache
        .entry(form_id)
        .or_insert_with(|| name_verdict(person, form, rec, record_key_id, rules));
    let name = if v.below_exact == NameLevel::Missing {
        NameLevel::Missing
    } else if person.name == rec.record.name {
        NameLevel::Exact
    } else {
        v.below_exact
    };
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
    let v = *name_cache
        .entry(view.form)
        .or_insert_with(|| name_verdict(person, form, rec, record_key_id, rules));
    let exact = if view.name_is_norm != 0 {
        v.norm_is_their_name
    } else {
        person.name == record.name
    };
    let name = if v.below_exact == NameLevel::Missing {
        NameLevel::Missing
    } else if exact {
        NameLevel::Exact
    } else {
        v.below_exact
    };
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
fn compare_with_name(person: &Person, rec: &PreparedRecord<'_>, name: NameLevel) -> Comparison {
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

fn compare_id(person: &Person, rec: &PreparedRecord<'_>) -> IdLevel {
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

fn without_dots(s: &str) -> String {
    s.chars().filter(|&c| c != '·').collect()
}

fn compare_name(person: &Person, rec: &PreparedRecord<'_>, similar_threshold: f64) -> NameLevel {
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

/// Folds the sounds speakers of many dialects merge, so that `liu`/`niu`,
/// `zhang`/`zang`, `fu`/`hu`, `lin`/`ling` compare equal.
pub fn fold_syllables(syllables: &[String]) -> Vec<String> {
    syllables.iter().map(|s| fold_syllable(s)).collect()
}

fn fold_syllable(s: &str) -> String {
    let (initial, rest) = if let Some(r) = s.strip_prefix("zh") {
        ("z", r)
    } else if let Some(r) = s.strip_prefix("ch") {
        ("c", r)
    } else if let Some(r) = s.strip_prefix("sh") {
        ("s", r)
    } else if let Some(r) = s.strip_prefix('n').filter(|r| !r.is_empty() && *r != "g") {
        ("l", r)
    } else if let Some(r) = s.strip_prefix('h').filter(|r| !r.is_empty()) {
        ("f", r)
    } else {
        ("", s)
    };
    let rest = rest
        .strip_suffix("ng")
        .filter(|r| r.ends_with('a') || r.ends_with('e') || r.ends_with('i'))
        .map(|r| format!("{r}n"))
        .unwrap_or_else(|| rest.to_string());
    format!("{initial}{rest}")
}

fn compare_dates(theirs: NaiveDate, ours: NaiveDate) -> BirthLevel {
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

fn compare_birth(ours: NaiveDate, record: &MatchRecord) -> BirthLevel {
    compare_birth_with(ours.year(), || ours, record)
}

/// [`compare_birth`] of a birth date given by its year and, only when the
/// record has a full date to compare it with, the date itself.
fn compare_birth_with(
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

fn compare_region(person: &Person, record: &MatchRecord) -> RegionLevel {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::identity::check_char;

    pub(crate) fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// A valid ID for a region, birth date and sequence.
    pub(crate) fn id_for(region: &str, birth: NaiveDate, seq: u16) -> String {
        let mut s = format!("{region}{}{seq:03}", birth.format("%Y%m%d"));
        let c = check_char(s.as_bytes());
        s.push(char::from(c));
        s
    }

    pub(crate) fn person(no: &str, name: &str, region: &str, birth: NaiveDate, seq: u16) -> Person {
        let id = id_for(region, birth, seq);
        let sex = if seq % 2 == 1 { 1 } else { 2 };
        Person::new(no, name, &id, sex, birth, region, region, d(2000, 1, 1))
    }

    /// A public-security style record copying the person's fields.
    pub(crate) fn record_of(p: &Person, key: &str) -> MatchRecord {
        let mut r = MatchRecord::new(
            "public_security",
            key,
            &p.name,
            &p.id_number,
            d(2026, 10, 1),
        );
        r.sex = Some(p.sex);
        r.birth_date = Some(p.birth_date);
        r.region = Some(p.insured_region.to_string());
        r
    }

    fn rules() -> MatchRules {
        MatchRules::default_rules()
    }

    fn wang() -> Person {
        person("P1", "王秀英", "440304", d(1942, 3, 15), 122)
    }

    #[test]
    fn the_same_id_is_exact() {
        let p = wang();
        assert_eq!(
            compare(&p, &record_of(&p, "k"), &rules()).id,
            IdLevel::Exact
        );
    }

    #[test]
    fn a_broken_id_one_digit_from_the_persons_is_repaired() {
        let p = wang();
        let mut r = record_of(&p, "k");
        let mut wrong = p.id_number.as_bytes().to_vec();
        wrong[9] = if wrong[9] == b'7' { b'8' } else { b'7' };
        let wrong = String::from_utf8(wrong).unwrap();
        r = MatchRecord {
            ..MatchRecord::new("civil_affairs", "k", &r.name, &wrong, r.death_date)
        };
        assert_eq!(r.id_status, IdStatus::Invalid);
        assert_eq!(compare(&p, &r, &rules()).id, IdLevel::Repaired);
    }

    #[test]
    fn swapped_adjacent_digits_are_repaired() {
        let p = wang();
        let mut b = p.id_number.as_bytes().to_vec();
        let i = (0..16).find(|&i| b[i] != b[i + 1]).unwrap();
        b.swap(i, i + 1);
        let r = MatchRecord::new(
            "funeral",
            "k",
            "王秀英",
            &String::from_utf8(b).unwrap(),
            d(2026, 10, 1),
        );
        assert_eq!(compare(&p, &r, &rules()).id, IdLevel::Repaired);
    }

    #[test]
    fn a_recoded_region_with_the_same_birth_and_sequence_is_same_but_region() {
        let p = wang();
        let other = id_for("440305", p.birth_date, 122);
        let r = MatchRecord::new("public_security", "k", "王秀英", &other, d(2026, 10, 1));
        assert_eq!(compare(&p, &r, &rules()).id, IdLevel::SameButRegion);
    }

    #[test]
    fn another_valid_id_is_different_and_an_empty_one_missing() {
        let p = wang();
        let other = id_for("440304", p.birth_date, 124);
        let r = MatchRecord::new("public_security", "k", "王秀英", &other, d(2026, 10, 1));
        assert_eq!(compare(&p, &r, &rules()).id, IdLevel::Different);
        let r = MatchRecord::new("funeral", "k", "王秀英", "", d(2026, 10, 1));
        assert_eq!(compare(&p, &r, &rules()).id, IdLevel::Missing);
    }

    #[test]
    fn a_fifteen_digit_id_is_upgraded_and_exact() {
        let p = wang();
        let id15 = format!("{}{}", &p.id_number[..6], &p.id_number[8..17]);
        let r = MatchRecord::new("funeral", "k", "王秀英", &id15, d(2026, 10, 1));
        assert_eq!(r.id_status, IdStatus::Upgraded);
        assert_eq!(compare(&p, &r, &rules()).id, IdLevel::Exact);
    }

    fn name_level(ours: &str, theirs: &str) -> NameLevel {
        let p = person("P", ours, "440304", d(1942, 3, 15), 122);
        let r = MatchRecord::new("funeral", "k", theirs, "", d(2026, 10, 1));
        compare(&p, &r, &rules()).name
    }

    #[test]
    fn name_levels_from_exact_to_different() {
        assert_eq!(name_level("王秀英", "王秀英"), NameLevel::Exact);
        assert_eq!(name_level("王秀英", "王 秀英"), NameLevel::Normalised);
        assert_eq!(name_level("陳秀英", "陈秀英"), NameLevel::Normalised);
        assert_eq!(
            name_level("阿依古丽·买买提", "阿依古丽买买提"),
            NameLevel::Normalised
        );
        assert_eq!(name_level("王秀英", "王秀瑛"), NameLevel::TonedPinyin);
        assert_eq!(name_level("王秀英", "王xiu英"), NameLevel::TonelessPinyin);
        assert_eq!(name_level("王秀英", "王秀影"), NameLevel::TonelessPinyin);
        assert_eq!(name_level("刘秀英", "牛秀英"), NameLevel::Confusable);
        assert_eq!(name_level("张建林", "章建凌"), NameLevel::Confusable);
        assert_eq!(name_level("胡建国", "符建国"), NameLevel::Confusable);
        assert_eq!(name_level("王秀英", "王秀英华"), NameLevel::Similar);
        assert_eq!(name_level("王秀英", "李建国"), NameLevel::Different);
        assert_eq!(name_level("王秀英", ""), NameLevel::Missing);
    }

    #[test]
    fn a_sibling_with_the_same_surname_is_not_similar() {
        assert_eq!(name_level("王秀英", "王建国"), NameLevel::Different);
    }

    fn birth_level(theirs: Option<NaiveDate>, range: Option<(i32, i32)>) -> BirthLevel {
        let p = wang();
        let mut r = MatchRecord::new("civil_affairs", "k", "王秀英", "", d(2026, 10, 1));
        r.birth_date = theirs;
        r.birth_year_range = range;
        compare(&p, &r, &rules()).birth
    }

    #[test]
    fn birth_levels() {
        assert_eq!(birth_level(Some(d(1942, 3, 15)), None), BirthLevel::Exact);
        let p = person("P", "王秀英", "440304", d(1942, 3, 5), 122);
        let mut r = MatchRecord::new("civil_affairs", "k", "王秀英", "", d(2026, 10, 1));
        r.birth_date = Some(d(1942, 5, 3));
        assert_eq!(compare(&p, &r, &rules()).birth, BirthLevel::DayMonthSwapped);
        assert_eq!(
            birth_level(Some(d(1943, 3, 15)), None),
            BirthLevel::OnePartOff
        );
        assert_eq!(
            birth_level(Some(d(1942, 3, 16)), None),
            BirthLevel::OnePartOff
        );
        assert_eq!(birth_level(Some(d(1942, 8, 1)), None), BirthLevel::YearOnly);
        assert_eq!(birth_level(None, Some((1941, 1943))), BirthLevel::YearOnly);
        assert_eq!(birth_level(None, Some((1950, 1952))), BirthLevel::Different);
        assert_eq!(
            birth_level(Some(d(1950, 1, 1)), None),
            BirthLevel::Different
        );
        assert_eq!(birth_level(None, None), BirthLevel::Missing);
    }

    #[test]
    fn birth_and_sex_read_off_an_agreeing_id_are_implied_not_counted_twice() {
        let p = wang();
        let c = compare(&p, &record_of(&p, "k"), &rules());
        assert_eq!(c.birth, BirthLevel::ImpliedById);
        assert_eq!(c.sex, SexLevel::ImpliedById);
        assert_eq!(c.birth.weight(&rules()), 0.0);
        assert_eq!(c.sex.weight(&rules()), 0.0);
    }

    #[test]
    fn a_record_whose_birth_date_contradicts_its_own_id_keeps_the_difference() {
        let p = wang();
        let mut r = record_of(&p, "k");
        r.birth_date = Some(d(1918, 6, 2));
        assert_eq!(compare(&p, &r, &rules()).birth, BirthLevel::Different);
    }

    #[test]
    fn sex_levels() {
        let p = wang();
        let mut r = MatchRecord::new("funeral", "k", "王秀英", "", d(2026, 10, 1));
        r.sex = Some(p.sex);
        assert_eq!(compare(&p, &r, &rules()).sex, SexLevel::Agree);
        r.sex = Some(3 - p.sex);
        assert_eq!(compare(&p, &r, &rules()).sex, SexLevel::Disagree);
        r.sex = None;
        assert_eq!(compare(&p, &r, &rules()).sex, SexLevel::Missing);
    }

    #[test]
    fn the_county_counts_as_the_city_next_to_an_agreeing_id() {
        let p = wang();
        let mut r = record_of(&p, "k");
        r.region = Some(p.residence_region.to_string());
        assert_eq!(compare(&p, &r, &rules()).region, RegionLevel::City);
        r.id_raw = String::new();
        r.id_number = None;
        r.id_status = IdStatus::Empty;
        assert_eq!(compare(&p, &r, &rules()).region, RegionLevel::County);
    }

    #[test]
    fn region_levels() {
        let p = wang();
        let mut r = MatchRecord::new("funeral", "k", "王秀英", "", d(2026, 10, 1));
        for (code, level) in [
            (Some("440304"), RegionLevel::County),
            (Some("440300"), RegionLevel::City),
            (Some("440306"), RegionLevel::City),
            (Some("441402"), RegionLevel::Province),
            (Some("510104"), RegionLevel::Different),
            (None, RegionLevel::Missing),
        ] {
            r.region = code.map(str::to_string);
            assert_eq!(compare(&p, &r, &rules()).region, level, "{code:?}");
        }
    }
}
