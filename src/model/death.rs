//! A death record: as a source reported it, normalised, with its provenance
//! ([`DeathRecord`], what the store keeps), and the identity fields the
//! matcher compares ([`MatchRecord`]); a public-security cancellation that
//! is not a death ([`NonDeathEvent`]); and what a record's ID number turned
//! out to be ([`IdStatus`]). Nothing here does I/O or prints a full ID.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::identity::{self, IdError};

/// What a death record's ID field turned out to be against GB 11643.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdStatus {
    /// A valid 18-character number.
    Valid,
    /// A valid old 15-digit number, upgraded to 18.
    Upgraded,
    /// Present but not a valid number: repair candidates may explain it
    /// (stored records keep how many in `id_candidates`).
    Invalid,
    /// Nothing was written (common at funeral homes).
    Empty,
}

impl IdStatus {
    /// The stored text: `valid`, `upgraded`, `invalid`, `empty`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdStatus::Valid => "valid",
            IdStatus::Upgraded => "upgraded",
            IdStatus::Invalid => "invalid",
            IdStatus::Empty => "empty",
        }
    }

    /// The status [`IdStatus::as_str`] wrote; anything else reads as
    /// `empty`, as if no number had been given.
    pub fn from_stored(text: &str) -> IdStatus {
        match text {
            "valid" => IdStatus::Valid,
            "upgraded" => IdStatus::Upgraded,
            "invalid" => IdStatus::Invalid,
            _ => IdStatus::Empty,
        }
    }
}

/// A death as one source reported it, normalised, with its provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DeathRecord {
    /// The connector's name (`public_security`, `civil_affairs`, `funeral`).
    pub source: String,
    /// Unique within the source (spec §2-4); re-deliveries share it.
    pub record_key: String,
    /// The name as the source wrote it, for display.
    pub name_raw: String,
    /// After NFKC, separator folding, traditional→simplified.
    pub name_norm: String,
    /// Toneless pinyin, for blocking homophones together.
    pub name_key: String,
    /// The ID number as the source wrote it (may be empty or broken).
    pub id_raw: String,
    /// Normalised 18-character number, only when valid or upgraded.
    pub id_number: Option<String>,
    /// `valid`, `upgraded`, `invalid` or `empty` (see [`IdStatus`]).
    pub id_status: String,
    /// For an invalid number: how many valid numbers are one edit away.
    pub id_candidates: i32,
    /// GB/T 2261.1 code, when the source gave one.
    pub sex: Option<i32>,
    pub birth_date: Option<NaiveDate>,
    /// When only an age at death is known (funeral homes): the person was
    /// born in one of these two years.
    pub birth_year_min: Option<i32>,
    pub birth_year_max: Option<i32>,
    pub death_date: NaiveDate,
    /// The source gave no death date, so `death_date` is the latest it can
    /// be (public security: the cancellation date).
    pub death_date_latest: bool,
    /// The date of the source's own event: cancellation, cremation.
    pub event_date: Option<NaiveDate>,
    pub region: Option<String>,
    /// Free-text place of death (civil affairs).
    pub place: Option<String>,
    /// The file, or the page request, the record came in.
    pub origin: String,
    /// UTC, RFC 3339.
    pub received_at: String,
    /// sha256 of `raw`: identical re-deliveries are recognised by it.
    pub raw_sha256: String,
    /// The record exactly as received (a JSON object, or a CSV line).
    pub raw: String,
    pub run_id: i64,
    /// 1 for the first version, +1 for every correction applied.
    pub version: i32,
}

/// A public-security cancellation that is not a death (moved, emigrated,
/// military service, other). Never matched as a death; the certification
/// scheduler reads them as proof-of-life questions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct NonDeathEvent {
    pub source: String,
    pub record_key: String,
    /// The source's reason, as written (`迁出`, `出国`, `服兵役`, `其他`).
    pub reason: String,
    pub event_date: Option<NaiveDate>,
    pub name_raw: String,
    pub name_norm: String,
    pub name_key: String,
    pub id_raw: String,
    pub id_number: Option<String>,
    pub id_status: String,
    pub sex: Option<i32>,
    pub birth_date: Option<NaiveDate>,
    pub region: Option<String>,
    pub origin: String,
    pub received_at: String,
    pub raw_sha256: String,
    pub raw: String,
    pub run_id: i64,
    pub version: i32,
}

/// A death record as the matcher compares it: the identity fields of a
/// stored [`DeathRecord`], parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchRecord {
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

impl MatchRecord {
    /// A short fingerprint of what the record says about the death (name,
    /// ID as received, sex, birth date, death date, region): a case
    /// compares it run to run to see that a record was corrected. Not the
    /// birth years an age gives: the matcher widens those in place for the
    /// records it matches, so they differ between a run's new and kept
    /// records. Stable across builds: SHA-256 over the fields, separated,
    /// first 16 hex digits.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for field in [
            self.name.as_str(),
            self.id_raw.as_str(),
            &self.sex.map(|s| s.to_string()).unwrap_or_default(),
            &self.birth_date.map(|d| d.to_string()).unwrap_or_default(),
            &self.death_date.to_string(),
            self.region.as_deref().unwrap_or_default(),
        ] {
            h.update(field.as_bytes());
            h.update([0x1f]);
        }
        hex::encode(&h.finalize()[..8])
    }
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
                IdStatus::Upgraded
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
pub fn widen_age_ranges(records: &mut [MatchRecord], slack: i32) {
    for r in records {
        if let Some((lo, hi)) = r.birth_year_range {
            r.birth_year_range = Some((lo - slack, hi + slack));
        }
    }
}

impl MatchRecord {
    /// A record with its identity fields derived from the raw name and ID;
    /// sex, birth, region are left empty for the caller to fill.
    pub fn new(
        source: &str,
        record_key: &str,
        name: &str,
        id_raw: &str,
        death_date: NaiveDate,
    ) -> MatchRecord {
        let (name_norm, name_key) = names_of(name);
        let (id_number, id_status) = parse_death_id(id_raw, death_date);
        MatchRecord {
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
