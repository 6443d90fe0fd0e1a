//! Evidence that a pensioner was alive: events of the evidence-of-life feed
//! (spec §5), remote video sessions (spec §6), either as shown to a person
//! ([`LifeEvent`]), and the latest proof of life per ID number that the
//! matcher weighs against a death ([`LifeEvidence`]).

use ahash::AHashMap;
use chrono::NaiveDate;
use serde::Serialize;

/// The event types of spec §5; any of them proves the person was alive on
/// the event's date.
pub const EVENT_TYPES: [&str; 5] = [
    "medical_settlement",
    "in_person_service",
    "bank_counter",
    "face_app",
    "video_verified",
];

/// The results of spec §6. Only `passed` proves life: `failed` means the
/// face did not match or someone else appeared, `no_show` that nobody came.
pub const VIDEO_RESULTS: [&str; 3] = ["passed", "failed", "no_show"];

/// One event of the evidence-of-life feed, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceEvent {
    /// Normalised 18-character number.
    pub id_number: String,
    /// One of [`EVENT_TYPES`].
    pub event_type: String,
    pub event_date: NaiveDate,
    /// The feed's reference, empty when it gave none; part of the key, so
    /// two events of one kind on one day with different references are two.
    pub source_ref: String,
}

/// One remote video session, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VideoSession {
    /// Normalised 18-character number.
    pub id_number: String,
    /// RFC 3339 with the offset the file gave: with `id_number`, the key.
    pub session_at: String,
    /// The same instant in UTC (RFC 3339), for ordering across offsets.
    pub session_utc: String,
    /// The calendar date of the session in China (UTC+8), the day a death
    /// date is compared with.
    pub session_date: NaiveDate,
    /// One of [`VIDEO_RESULTS`].
    pub result: String,
    pub operator: String,
    pub note: String,
}

/// One thing that shows a person alive, or tried to: an event of the feed,
/// or a video session whatever its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifeEvent {
    /// An event type of spec §5, or `video_session`.
    pub event_type: String,
    pub event_date: NaiveDate,
    /// The feed's reference; for a video session, its time with offset.
    pub source_ref: String,
    /// For a video session: `passed`, `failed` or `no_show`.
    pub result: Option<String>,
    /// For a video session: who ran it.
    pub operator: Option<String>,
    /// Whether this proves the person was alive on `event_date` (every
    /// feed event; a video session only when passed).
    pub proves_life: bool,
    /// The import that brought it.
    pub run_id: i64,
}

/// Evidence of life (spec §5-6) by ID number: the latest date each person
/// was seen alive. A date after a record's death date blocks `auto`.
/// Millions of events are loaded for every run: an 18-character number is
/// kept as one integer (no string per event), anything else as text.
#[derive(Debug, Clone, Default)]
pub struct LifeEvidence {
    latest: AHashMap<u64, NaiveDate>,
    other: AHashMap<String, NaiveDate>,
}

/// An 18-character ID number (17 digits and a digit or `X`) as one integer.
fn packed_id(id: &str) -> Option<u64> {
    let b = id.as_bytes();
    if b.len() != 18 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in &b[..17] {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(c - b'0');
    }
    let check = match b[17] {
        c @ b'0'..=b'9' => u64::from(c - b'0'),
        b'X' => 10,
        _ => return None,
    };
    Some(n * 11 + check)
}

impl LifeEvidence {
    pub fn new() -> LifeEvidence {
        LifeEvidence::default()
    }

    /// Records that the person with this ID was alive on `date`.
    #[inline]
    pub fn insert(&mut self, id_number: &str, date: NaiveDate) {
        let e = match packed_id(id_number) {
            Some(k) => self.latest.entry(k).or_insert(date),
            None => match self.other.get_mut(id_number) {
                Some(e) => e,
                None => self.other.entry(id_number.to_string()).or_insert(date),
            },
        };
        if date > *e {
            *e = date;
        }
    }

    /// The latest proof of life strictly after `death`, if any.
    #[inline]
    pub fn alive_after(&self, id_number: &str, death: NaiveDate) -> Option<NaiveDate> {
        match packed_id(id_number) {
            Some(k) => self.latest.get(&k),
            None => self.other.get(id_number),
        }
        .copied()
        .filter(|&d| d > death)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn evidence_of_life_keeps_the_latest_date_per_id_however_it_is_written() {
        let mut life = LifeEvidence::new();
        let id = "44030419420315122X";
        life.insert(id, d(2026, 9, 1));
        life.insert(id, d(2026, 11, 3));
        life.insert(id, d(2026, 10, 1));
        assert_eq!(life.alive_after(id, d(2026, 10, 1)), Some(d(2026, 11, 3)));
        assert_eq!(life.alive_after(id, d(2026, 11, 3)), None);
        // Numbers differing only in the check character are different keys.
        assert_eq!(life.alive_after("440304194203151220", d(2026, 1, 1)), None);
        // Anything that is not 18 characters is kept as text.
        life.insert("440304420315122", d(2026, 8, 1));
        assert_eq!(
            life.alive_after("440304420315122", d(2026, 7, 1)),
            Some(d(2026, 8, 1))
        );
        assert_eq!(packed_id("44030419420315122x"), None);
        assert_ne!(packed_id(id), packed_id("440304194203151229"));
    }
}
