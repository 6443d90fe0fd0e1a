//! From one source record (a JSON object or a CSV row) to a normalised
//! death record, a non-death event, or a quarantine entry with its reason.
//!
//! Pure: no I/O, the date of "today" is an argument. Reasons never quote an
//! ID number (they go to logs and screens); the raw record, which may, is
//! kept beside them in the database.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use sha2::{Digest, Sha256};

use super::definition::Definition;
use crate::identity::{self, id};
use crate::store::deaths::{DeathRecord, IdStatus, NonDeathEvent};
use crate::store::quarantine::QuarantineEntry;

/// Access to a record's fields by source name.
pub trait Fields {
    fn get(&self, name: &str) -> Option<Cow<'_, str>>;
}

impl Fields for serde_json::Map<String, serde_json::Value> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        match serde_json::Map::get(self, name)? {
            serde_json::Value::String(s) => Some(Cow::Borrowed(s.as_str())),
            serde_json::Value::Null => None,
            serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
            serde_json::Value::Bool(b) => Some(Cow::Owned(b.to_string())),
            other => Some(Cow::Owned(other.to_string())),
        }
    }
}

/// A CSV row with its header's positions.
pub struct CsvRow<'a> {
    pub columns: &'a HashMap<String, usize>,
    pub record: &'a csv::StringRecord,
}

impl Fields for CsvRow<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let i = *self.columns.get(name)?;
        self.record.get(i).map(Cow::Borrowed)
    }
}

/// What one source record became.
#[derive(Debug)]
pub enum Normalised {
    Death(Box<DeathRecord>),
    NonDeath(Box<NonDeathEvent>),
    Quarantined(Box<QuarantineEntry>),
}

impl Normalised {
    pub fn key(&self) -> Option<&str> {
        match self {
            Normalised::Death(d) => Some(&d.record_key),
            Normalised::NonDeath(n) => Some(&n.record_key),
            Normalised::Quarantined(_) => None,
        }
    }
}

/// sha256 of the raw record, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where a record came from, for provenance and quarantine.
pub struct Origin<'a> {
    /// A file name, or the page request.
    pub origin: &'a str,
    /// The line in that file, when there is one.
    pub line: Option<u64>,
    pub received_at: &'a str,
}

fn non_empty(v: Option<Cow<'_, str>>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Tries every format of the definition in turn.
pub fn parse_date(text: &str, formats: &[String]) -> Option<NaiveDate> {
    formats
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(text, f).ok())
}

struct IdInfo {
    raw: String,
    number: Option<String>,
    status: IdStatus,
    candidates: i32,
}

fn id_info(raw: Option<Cow<'_, str>>, today: NaiveDate) -> IdInfo {
    let raw = raw.map(|s| s.into_owned()).unwrap_or_default();
    if id::normalize(&raw).is_empty() {
        return IdInfo {
            raw,
            number: None,
            status: IdStatus::Empty,
            candidates: 0,
        };
    }
    match id::parse_on(&raw, today) {
        Ok(p) => IdInfo {
            number: Some(p.id.as_str().to_string()),
            status: if p.upgraded_from_15 {
                IdStatus::Upgraded
            } else {
                IdStatus::Valid
            },
            candidates: 0,
            raw,
        },
        Err(_) => {
            let candidates = id::repair_candidates_on(&raw, today).len() as i32;
            IdInfo {
                raw,
                number: None,
                status: IdStatus::Invalid,
                candidates,
            }
        }
    }
}

/// Normalises one record. `raw` is its exact text, kept and hashed.
pub fn normalise(
    def: &Definition,
    fields: &dyn Fields,
    raw: &str,
    at: &Origin<'_>,
    today: NaiveDate,
) -> Normalised {
    let quarantine = |key: Option<String>, reason: String| {
        Normalised::Quarantined(Box::new(QuarantineEntry {
            source: def.name.clone(),
            file: Some(at.origin.to_string()),
            line: at.line,
            record_key: key,
            reason,
            raw: raw.to_string(),
        }))
    };
    let f = &def.fields;
    // The key first: a quarantine entry is most useful with it.
    let mut parts = Vec::with_capacity(def.record.key.len());
    for k in &def.record.key {
        match non_empty(fields.get(k)) {
            Some(v) => parts.push(v),
            None => return quarantine(None, format!("the record key field {k} is empty")),
        }
    }
    let key = parts.join(":");
    if raw.contains('\u{FFFD}') {
        return quarantine(
            Some(key),
            "the record holds bytes that are not valid in the source's encoding".into(),
        );
    }
    let name_raw = fields
        .get(&f.name)
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let name_norm = identity::normalize_name(&name_raw);
    if name_norm.is_empty() {
        return quarantine(Some(key), format!("the name ({}) is empty", f.name));
    }
    let date = |field: &Option<String>| -> Result<Option<NaiveDate>, String> {
        let Some(name) = field else { return Ok(None) };
        match non_empty(fields.get(name)) {
            None => Ok(None),
            Some(text) => parse_date(&text, &def.date_formats)
                .map(Some)
                .ok_or_else(|| format!("{name} {text:?} is not a date in any of the formats")),
        }
    };
    let birth_date = match date(&f.birth_date) {
        Ok(d) => d,
        Err(m) => return quarantine(Some(key), m),
    };
    let event_date = match date(&f.event_date) {
        Ok(d) => d,
        Err(m) => return quarantine(Some(key), m),
    };
    let sex = f
        .sex
        .as_ref()
        .and_then(|s| non_empty(fields.get(s)))
        .and_then(|v| def.sex_codes.get(&v).copied());
    let region = f.region.as_ref().and_then(|s| non_empty(fields.get(s)));
    let ident = id_info(f.id_number.as_ref().and_then(|s| fields.get(s)), today);
    let name_key = identity::pinyin_key(&name_norm);
    let raw_sha256 = sha256_hex(raw.as_bytes());

    if let Some(filter) = &def.filter {
        let value = non_empty(fields.get(&filter.field)).unwrap_or_default();
        if !filter.death_values.contains(&value) {
            if value.is_empty() {
                return quarantine(
                    Some(key),
                    format!(
                        "{} is empty: cannot tell a death from another event",
                        filter.field
                    ),
                );
            }
            return Normalised::NonDeath(Box::new(NonDeathEvent {
                source: def.name.clone(),
                record_key: key,
                reason: value,
                event_date,
                name_raw,
                name_norm,
                name_key,
                id_raw: ident.raw,
                id_number: ident.number,
                id_status: ident.status.as_str().to_string(),
                sex,
                birth_date,
                region,
                origin: at.origin.to_string(),
                received_at: at.received_at.to_string(),
                raw_sha256,
                raw: raw.to_string(),
                run_id: 0,
                version: 1,
            }));
        }
    }

    let (death_date, death_date_latest) = match date(&Some(f.death_date.clone())) {
        Err(m) => return quarantine(Some(key), m),
        Ok(Some(d)) => (d, false),
        Ok(None) => match date(&f.death_date_fallback) {
            Err(m) => return quarantine(Some(key), m),
            Ok(Some(d)) => (d, true),
            Ok(None) => {
                return quarantine(
                    Some(key),
                    format!("the death date ({}) is empty", f.death_date),
                );
            }
        },
    };
    if death_date > today + chrono::Duration::days(1) {
        return quarantine(
            Some(key),
            format!("the death date {death_date} is in the future"),
        );
    }
    if let Some(b) = birth_date
        && death_date < b
    {
        return quarantine(
            Some(key),
            format!("the death date {death_date} is before the birth date {b}"),
        );
    }
    let (mut birth_year_min, mut birth_year_max) = (None, None);
    if let Some(age_field) = &f.age
        && let Some(text) = non_empty(fields.get(age_field))
    {
        match text.parse::<i32>() {
            Ok(a) if (0..=130).contains(&a) => {
                if birth_date.is_none() {
                    // Age a in whole years at d: born after d - (a+1) years,
                    // on or before d - a years.
                    birth_year_min = Some(death_date.year() - a - 1);
                    birth_year_max = Some(death_date.year() - a);
                }
            }
            _ => {
                return quarantine(
                    Some(key),
                    format!("the age {text:?} ({age_field}) is not a whole number from 0 to 130"),
                );
            }
        }
    }
    let place = f.place.as_ref().and_then(|s| non_empty(fields.get(s)));
    Normalised::Death(Box::new(DeathRecord {
        source: def.name.clone(),
        record_key: key,
        name_raw,
        name_norm,
        name_key,
        id_raw: ident.raw,
        id_number: ident.number,
        id_status: ident.status.as_str().to_string(),
        id_candidates: ident.candidates,
        sex,
        birth_date,
        birth_year_min,
        birth_year_max,
        death_date,
        death_date_latest,
        event_date,
        region,
        place,
        origin: at.origin.to_string(),
        received_at: at.received_at.to_string(),
        raw_sha256,
        raw: raw.to_string(),
        run_id: 0,
        version: 1,
    }))
}
