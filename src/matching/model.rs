//! The plain data the matcher reads: a pensioner from the active roster
//! ([`Person`]) and one death-source record ([`DeathRecord`]), already
//! normalised by the store and the connectors. This module owns only their
//! shape and the small helpers that fill the derived fields (normalised name,
//! pinyin key, parsed ID) the same way on both sides. It must never do I/O,
//! and nothing here may print a full ID number.

use chrono::{Datelike, NaiveDate};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::identity::{self, IdError};

/// A pensioner of the active roster, as the store loads it for matching.
///
/// The text fields are [`CompactString`]s: every one of them is short (a
/// 16-digit person number, an 18-character ID, a name of a few characters,
/// a 6-digit region) and fits inline, so ten million pensioners take about
/// 1.8 GB and no allocation each instead of about 4 GB and seven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The agency's own stable person number: what a match points at.
    pub person_no: CompactString,
    /// The name as registered; only used to tell an exact match from one
    /// that needed normalising.
    pub name: CompactString,
    /// [`identity::normalize_name`] of the registered name.
    pub name_norm: CompactString,
    /// [`identity::pinyin_key`] of `name_norm`: the blocking and frequency key.
    pub name_key: CompactString,
    /// A valid 18-character resident ID (legacy 15-digit rows upgraded).
    pub id_number: CompactString,
    /// GB/T 2261.1: 1 male, 2 female (always known for pensioners).
    pub sex: u8,
    pub birth_date: NaiveDate,
    /// 6-digit region of the paying agency.
    pub insured_region: CompactString,
    /// 6-digit region where the person lives now; death records are often
    /// filed where people live, not where they are insured.
    pub residence_region: CompactString,
    /// A death before the pension started is a timeline error worth a flag.
    pub benefit_start: NaiveDate,
}

/// What a death record's ID field turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdStatus {
    /// A valid 18-character number.
    Valid,
    /// A valid old 15-digit number, upgraded to 18.
    Upgraded15,
    /// Present but not a valid number: repair candidates may explain it.
    Invalid,
    /// Nothing was written (common at funeral homes).
    Empty,
}

/// One record from a death source, as the connectors stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeathRecord {
    /// `public_security`, `civil_affairs` or `funeral`.
    pub source: String,
    /// Unique within the source (spec §2-4); with `source`, the record's key.
    pub record_key: String,
    /// The name as the source wrote it.
    pub name: String,
    pub name_norm: String,
    pub name_key: String,
    /// The ID text as received, needed to propose repairs for a broken one.
    pub id_raw: String,
    /// The valid (or upgraded) 18-character number, when there is one.
    pub id_number: Option<String>,
    pub id_status: IdStatus,
    /// 1 or 2; unknown and unstated codes are `None`.
    pub sex: Option<u8>,
    pub birth_date: Option<NaiveDate>,
    /// Funeral records give an age only: the inclusive range of birth years
    /// that age allows (see [`birth_year_range_from_age`]).
    pub birth_year_range: Option<(i32, i32)>,
    pub death_date: NaiveDate,
    /// 6-digit region code the record is filed under, when it has one.
    pub region: Option<String>,
}

/// The normalised name and its pinyin key, computed the same way for the
/// roster and the death records so that both sides meet.
pub fn names_of(raw: &str) -> (String, String) {
    let norm = identity::normalize_name(raw);
    let key = identity::pinyin_key(&norm);
    (norm, key)
}

/// Parses a death record's ID text. The death date stands in for "today":
/// nobody is born after their own death, so a birth date past it makes the
/// number invalid (and open to repair) rather than valid.
pub fn parse_death_id(raw: &str, death_date: NaiveDate) -> (Option<String>, IdStatus) {
    match identity::parse_on(raw, death_date) {
        Ok(parsed) => {
            let status = if parsed.upgraded_from_15 {
                IdStatus::Upgraded15
            } else {
                IdStatus::Valid
            };
            (Some(parsed.id.as_str().to_string()), status)
        }
        Err(IdError::Empty) => (None, IdStatus::Empty),
        Err(_) => (None, IdStatus::Invalid),
    }
}

/// Birth years an age at death (周岁) allows, widened by `slack` years on
/// each side for the nominal age (虚岁) and slips funeral homes write.
pub fn birth_year_range_from_age(age: i32, death_date: NaiveDate, slack: i32) -> (i32, i32) {
    let y = death_date.year() - age;
    (y - 1 - slack, y + slack)
}

/// Widens the birth-year range of every record that only gives an age by
/// `slack` years on each side (the rules' `blocking.age_slack_years`): the
/// connectors store the range the age allows exactly, the matcher decides
/// how far to trust it.
pub fn widen_age_ranges(records: &mut [DeathRecord], slack: i32) {
    for r in records {
        if let Some((lo, hi)) = r.birth_year_range {
            r.birth_year_range = Some((lo - slack, hi + slack));
        }
    }
}

impl DeathRecord {
    /// A record with its identity fields derived from the raw name and ID;
    /// sex, birth, region are left empty for the caller to fill.
    pub fn new(
        source: &str,
        record_key: &str,
        name: &str,
        id_raw: &str,
        death_date: NaiveDate,
    ) -> DeathRecord {
        let (name_norm, name_key) = names_of(name);
        let (id_number, id_status) = parse_death_id(id_raw, death_date);
        DeathRecord {
            source: source.to_string(),
            record_key: record_key.to_string(),
            name: name.to_string(),
            name_norm,
            name_key,
            id_raw: id_raw.to_string(),
            id_number,
            id_status,
            sex: None,
            birth_date: None,
            birth_year_range: None,
            death_date,
            region: None,
        }
    }

    /// The birth date the record gives, or failing that the one its valid ID
    /// carries: what name-and-birth blocking searches with.
    pub fn effective_birth_date(&self) -> Option<NaiveDate> {
        self.birth_date
            .or_else(|| self.id_number.as_deref().and_then(id_birth_date))
    }
}

impl Person {
    /// A pensioner with name fields derived from the registered name.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        person_no: &str,
        name: &str,
        id_number: &str,
        sex: u8,
        birth_date: NaiveDate,
        insured_region: &str,
        residence_region: &str,
        benefit_start: NaiveDate,
    ) -> Person {
        let (name_norm, name_key) = names_of(name);
        Person {
            person_no: person_no.into(),
            name: name.into(),
            name_norm: name_norm.into(),
            name_key: name_key.into(),
            id_number: id_number.into(),
            sex,
            birth_date,
            insured_region: insured_region.into(),
            residence_region: residence_region.into(),
            benefit_start,
        }
    }
}

/// Birth date in positions 7-14 of a valid 18-character number.
pub(crate) fn id_birth_date(id: &str) -> Option<NaiveDate> {
    let b = id.as_bytes();
    if b.len() != 18 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> { id.get(r)?.parse().ok() };
    NaiveDate::from_ymd_opt(num(6..10)? as i32, num(10..12)?, num(12..14)?)
}

/// Sex code (1 male, 2 female) carried by position 17 of an 18-character number.
pub(crate) fn id_sex(id: &str) -> Option<u8> {
    let d = id.as_bytes().get(16)?.checked_sub(b'0')?;
    (d <= 9).then_some(if d % 2 == 1 { 1 } else { 2 })
}
