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
use crate::model::{DeathRecord, IdStatus, NonDeathEvent};
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

/// A CSV file's header: column name to position.
pub type Columns = HashMap<String, usize, ahash::RandomState>;

/// A CSV row with its header's positions: its fields (unquoted)
/// concatenated, and where each ends, borrowed from the file's buffers so a
/// row costs no allocation of its own.
pub struct CsvRow<'a> {
    pub columns: &'a Columns,
    pub fields: &'a str,
    pub ends: &'a [usize],
}

impl Fields for CsvRow<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let i = *self.columns.get(name)?;
        let end = *self.ends.get(i)?;
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1],
        };
        self.fields.get(start..end).map(Cow::Borrowed)
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

/// sha256 of the raw record, hex: one allocation, the digits written
/// straight into it (`hex::encode` pushed them one `char` at a time).
pub fn sha256_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
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

/// A region as the matcher compares it: a 6-digit code. A longer code of
/// digits that begins with one (a civil-affairs office, 登记机关代码, is its
/// county's code and a three-digit office number) gives its first six
/// digits; anything else is kept as written.
fn region_code(v: String) -> String {
    if v.len() > 6 && v.bytes().all(|b| b.is_ascii_digit()) {
        v[..6].to_string()
    } else {
        v
    }
}

/// A field's trimmed text, borrowed when the source's field is, `None`
/// when missing or blank.
fn trimmed(v: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    match v? {
        Cow::Borrowed(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(Cow::Borrowed),
        Cow::Owned(s) => Some(s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| Cow::Owned(s.into())),
    }
}

/// Tries every format of the definition in turn, with exactly the result of
/// `NaiveDate::parse_from_str` for each (see [`parse_date_fast`]).
pub fn parse_date(text: &str, formats: &[String]) -> Option<NaiveDate> {
    formats.iter().find_map(|f| match parse_date_fast(text, f) {
        Fast::Date(d) => Some(d),
        Fast::NotADate => None,
        Fast::Unsure => NaiveDate::parse_from_str(text, f).ok(),
    })
}

/// What the fast date parser concluded.
#[derive(Debug, PartialEq, Eq)]
enum Fast {
    Date(NaiveDate),
    /// chrono would refuse the text too.
    NotADate,
    /// The format or the text is beyond the fast path: ask chrono.
    Unsure,
}

/// `NaiveDate::parse_from_str` for the formats the sources use (`%Y`, `%m`,
/// `%d`, `%e` with any padding flag, literal characters and spaces),
/// without chrono's allocation-free but slow generic machinery: walking the
/// format and the text together. chrono tried up to three formats per date
/// and re-parsed each format string every time, a large part of a CSV
/// row's cost. It follows chrono 0.4's parser step by step: a literal must
/// match exactly; whitespace in the format skips any whitespace in the text;
/// a number skips leading whitespace, then reads 1 to 4 digits for a year
/// and 1 or 2 for a month or day (more digits are left for what follows);
/// month 1-12 and day 1-31 or the text is refused; no text may be left over;
/// and the year, month and day must make a real date. Anything else (a
/// signed year, another specifier, a field given twice or not at all) is
/// [`Fast::Unsure`], left to chrono. Tested against chrono on many inputs.
fn parse_date_fast(text: &str, format: &str) -> Fast {
    let (mut s, mut f) = (text, format);
    let (mut year, mut month, mut day) = (None, None, None);
    while let Some(c) = f.chars().next() {
        if c == '%' {
            let spec = &f[1..];
            let spec = spec.strip_prefix(['-', '0', '_']).unwrap_or(spec);
            // (field, digits at most, smallest, largest)
            let (slot, width, min, max) = match spec.as_bytes().first() {
                Some(b'Y') => (&mut year, 4, 0, 9999),
                Some(b'm') => (&mut month, 2, 1, 12),
                Some(b'd' | b'e') => (&mut day, 2, 1, 31),
                _ => return Fast::Unsure,
            };
            if slot.is_some() {
                return Fast::Unsure;
            }
            f = &spec[1..];
            s = s.trim_start();
            if width == 4 && s.starts_with(['-', '+']) {
                return Fast::Unsure;
            }
            let digits = s.bytes().take(width).take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Fast::NotADate;
            }
            let value = s.as_bytes()[..digits]
                .iter()
                .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
            s = &s[digits..];
            if !(min..=max).contains(&value) {
                return Fast::NotADate;
            }
            *slot = Some(value);
        } else if c.is_whitespace() {
            f = f.trim_start();
            s = s.trim_start();
        } else {
            match s.strip_prefix(c) {
                Some(rest) => s = rest,
                None => return Fast::NotADate,
            }
            f = &f[c.len_utf8()..];
        }
    }
    let (Some(y), Some(m), Some(d)) = (year, month, day) else {
        return Fast::Unsure;
    };
    if !s.is_empty() {
        return Fast::NotADate;
    }
    match NaiveDate::from_ymd_opt(y as i32, m, d) {
        Some(date) => Fast::Date(date),
        None => Fast::NotADate,
    }
}

struct IdInfo {
    raw: String,
    number: Option<String>,
    status: IdStatus,
    candidates: i32,
}

fn id_info(raw: Option<Cow<'_, str>>, today: NaiveDate) -> IdInfo {
    let raw = raw.map(|s| s.into_owned()).unwrap_or_default();
    // A number that parses is not empty: the emptiness test (another
    // normalisation) is only needed when parsing fails.
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
        Err(_) if id::normalize(&raw).is_empty() => IdInfo {
            raw,
            number: None,
            status: IdStatus::Empty,
            candidates: 0,
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
    let mut key = String::new();
    for (i, k) in def.record.key.iter().enumerate() {
        match trimmed(fields.get(k)) {
            Some(v) => {
                if i > 0 {
                    key.push(':');
                }
                key.push_str(&v);
            }
            None => return quarantine(None, format!("the record key field {k} is empty")),
        }
    }
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
        match trimmed(fields.get(name)) {
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
        .and_then(|s| trimmed(fields.get(s)))
        .and_then(|v| def.sex_codes.get(&*v).copied());
    let region = f
        .region
        .as_ref()
        .and_then(|s| non_empty(fields.get(s)))
        .map(region_code);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_office_code_gives_the_region_it_begins_with() {
        assert_eq!(region_code("440304001".into()), "440304");
        assert_eq!(region_code("440304".into()), "440304");
        assert_eq!(region_code("深圳市南山区".into()), "深圳市南山区");
        assert_eq!(region_code("44030X001".into()), "44030X001");
    }
    use proptest::prelude::*;

    /// The formats of the shipped definitions, and a few more shapes.
    const FORMATS: &[&str] = &[
        "%Y-%m-%d",
        "%Y/%-m/%-d",
        "%Y年%-m月%-d日",
        "%Y%m%d",
        "%Y/%m/%d",
        "%e.%m.%Y",
        "%Y %m %d",
        "%d/%m/%Y",
        "%Y-%m",
        "%F",
        "%Y-%m-%d%%",
    ];

    fn same_as_chrono(text: &str) {
        for f in FORMATS {
            let want = NaiveDate::parse_from_str(text, f).ok();
            assert_eq!(
                parse_date(text, &[f.to_string()]),
                want,
                "{text:?} in {f:?}"
            );
        }
    }

    #[test]
    fn dates_in_the_three_civil_affairs_styles_and_compact_form_are_read_without_chrono() {
        let want = NaiveDate::from_ymd_opt(1942, 3, 5);
        for (text, f) in [
            ("1942-03-05", "%Y-%m-%d"),
            ("1942/3/5", "%Y/%-m/%-d"),
            ("1942年3月5日", "%Y年%-m月%-d日"),
            ("19420305", "%Y%m%d"),
        ] {
            assert_eq!(
                parse_date_fast(text, f),
                Fast::Date(want.unwrap()),
                "{text}"
            );
        }
        assert_eq!(parse_date_fast("1942/3/5", "%Y-%m-%d"), Fast::NotADate);
        assert_eq!(parse_date_fast("1942-02-30", "%Y-%m-%d"), Fast::NotADate);
    }

    #[test]
    fn every_day_month_and_style_reads_as_chrono_reads_it() {
        for y in [0, 1, 99, 1900, 1942, 2000, 2024, 2026, 9999] {
            for m in 0..=13 {
                for d in 0..=32 {
                    for text in [
                        format!("{y:04}-{m:02}-{d:02}"),
                        format!("{y}-{m}-{d}"),
                        format!("{y:04}/{m}/{d}"),
                        format!("{y:04}/{m:02}/{d:02}"),
                        format!("{y:04}年{m}月{d}日"),
                        format!("{y:04}年{m:02}月{d:02}日"),
                        format!("{y:04}{m:02}{d:02}"),
                        format!("{y}{m}{d}"),
                        format!("{d}.{m:02}.{y}"),
                        format!("{y} {m} {d}"),
                    ] {
                        same_as_chrono(&text);
                    }
                }
            }
        }
    }

    #[test]
    fn odd_texts_read_as_chrono_reads_them() {
        for text in [
            "",
            " ",
            "1942-02-30",
            "1942-02-29",
            "2000-02-29",
            "1900-02-29",
            "1942-2-3",
            "1942- 2- 3",
            "1942 -02-03",
            " 1942-02-03",
            "1942-02-03 ",
            "1942-02-031",
            "19420-02-03",
            "+1942-02-03",
            "-1942-02-03",
            "1942-+2-03",
            "1942--2-03",
            "１９４２-02-03",
            "1942\u{3000}年3月5日",
            "1942年 3月 5日",
            "1942年3月5",
            "1942年3月5日日",
            "1942/3/5/",
            "1942/03/05",
            "1942/003/5",
            "194235",
            "1942035",
            "19421231",
            "194212310",
            "2026%",
            "2026-10-01%",
        ] {
            same_as_chrono(text);
        }
    }

    fn token() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "0", "1", "2", "3", "9", "00", "02", "12", "13", "29", "30", "31", "1942", "2026", "-",
            "/", "+", " ", "\u{3000}", "\t", "年", "月", "日", ".", "%", "x", "１",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn any_text_reads_as_chrono_reads_it(tokens in prop::collection::vec(token(), 0..9)) {
            same_as_chrono(&tokens.concat());
        }
    }
}
