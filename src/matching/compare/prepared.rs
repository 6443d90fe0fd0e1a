//! What every comparison against a record or a person needs computed
//! once: a record's repair candidates and name forms, a person's packed
//! view, region codes as numbers.

use chrono::{Datelike, NaiveDate};

use crate::identity::{self, IdNumber};
use crate::model::{IdStatus, MatchRecord, Person};

/// A death record with what every comparison against it needs computed
/// once: repair candidates of a broken ID and the pinyin forms of its name.
#[derive(Debug, Clone)]
pub struct PreparedRecord<'r> {
    pub record: &'r MatchRecord,
    /// Valid numbers one edit from a broken ID (empty unless `Invalid`).
    pub repairs: Vec<IdNumber>,
    pub(super) name_plain: String,
    pub(super) toned: String,
    pub(super) folded: Vec<String>,
    /// The record's name as [`NameForm`] hashes (its key id is the index's
    /// business: see [`compare_indexed`]).
    pub(super) form: NameForm,
    /// The city of the record's region as [`city_of`] reads it; `None` when
    /// the region is missing or shorter than four characters.
    pub(super) city: Option<u16>,
    /// [`county_of`] the record's region (0: unknown or the city itself).
    pub(super) county: u8,
}

impl<'r> PreparedRecord<'r> {
    /// The record's toned pinyin, hashed as [`NameForm`]s hash it: what
    /// ranks the namesakes of an oversized block by how closely their name
    /// sounds like the record's.
    #[inline]
    pub(crate) fn toned_hash(&self) -> u64 {
        self.form.toned
    }

    /// See [`NameForm::folded_hash`].
    #[inline]
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
/// forms in place ([`crate::matching::index_file`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct NameForm {
    pub(super) toned: u64,
    pub(super) folded: u64,
    /// The key's id, or [`NameForm::NO_KEY`].
    pub(super) key: u32,
    pub(super) has_dot: u8,
    pub(super) _pad: [u8; 3],
}

impl NameForm {
    const NO_KEY: u32 = u32::MAX;

    /// The name key's id in the roster's frequencies; `None` for a name
    /// without a key.
    #[inline]
    pub fn key_id(&self) -> Option<u32> {
        (self.key != NameForm::NO_KEY).then_some(self.key)
    }

    #[inline]
    pub(crate) fn toned_hash(&self) -> u64 {
        self.toned
    }

    /// The name's syllables with confusable sounds folded (n-l, zh-z,
    /// f-h, ...), hashed: equal for two names at the `confusable` level.
    #[inline]
    pub(crate) fn folded_hash(&self) -> u64 {
        self.folded
    }
}

pub(super) fn hash_parts<'s>(parts: impl Iterator<Item = &'s str>) -> u64 {
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

    pub(super) fn of(norm: &str, toned: &str, folded: &[String], key_id: Option<u32>) -> NameForm {
        NameForm {
            toned: hash_parts(std::iter::once(toned)),
            folded: hash_parts(folded.iter().map(String::as_str)),
            key: key_id.unwrap_or(NameForm::NO_KEY),
            has_dot: u8::from(norm.contains('·')),
            _pad: [0; 3],
        }
    }
}

/// Marks a region whose first four characters are not digits: compared as text.
pub const NOT_A_CITY: u16 = u16::MAX;

/// The first four digits of a region code (its city) as a number, or
/// [`NOT_A_CITY`].
#[inline]
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
/// ([`crate::matching::index_file`]).
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

    #[inline]
    pub fn birth(&self) -> NaiveDate {
        let (md, year) = (self.birth_ymd as u32 & 0x1ff, self.birth_ymd >> 9);
        NaiveDate::from_ymd_opt(year, md >> 5, md & 0x1f).unwrap_or_default()
    }
}

/// Digits 5-6 of a region code (the county within its city) as a number;
/// 0 for `00` (the city itself) and for anything that is not two digits:
/// 0 never counts as agreeing.
#[inline]
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

pub(super) fn without_dots(s: &str) -> String {
    s.chars().filter(|&c| c != '·').collect()
}

/// Folds the sounds speakers of many dialects merge, so that `liu`/`niu`,
/// `zhang`/`zang`, `fu`/`hu`, `lin`/`ling` compare equal.
pub fn fold_syllables(syllables: &[String]) -> Vec<String> {
    syllables.iter().map(|s| fold_syllable(s)).collect()
}

pub(super) fn fold_syllable(s: &str) -> String {
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
