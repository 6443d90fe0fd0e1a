//! The matcher's bulk reads and writes on SQLite through the C API: the
//! active roster and the death records read straight from SQLite's row
//! buffers into the matcher's plain types, and the matches written with one
//! prepared statement. At ten million pensioners, sqlx's owned row copies,
//! its worker-thread hand-off and its date decoding were most of the load,
//! and holding every row before converting it doubled the memory.
//!
//! Statements go through [`super::sqlite_c`]; the `unsafe` left here is the
//! roster's two-thread fill of one vector in place ([`Slots`]), each block
//! with its reason.

use std::ffi::{CStr, CString};
use std::ptr::{self, NonNull};
use std::sync::LazyLock;

use compact_str::CompactString;
use libsqlite3_sys as ffi;

use super::matches::{StoredMatch, all_records_sql, funeral_home_city};
use super::sqlite_c::{BulkError, Statement, Value, date};
use super::{Result, StoreError};
use crate::model::LifeEvidence;
use crate::model::{IdStatus, MatchRecord, Person};

/// The database file memory-mapped on one connection for the length of a
/// bulk scan, unmapped when dropped.
///
/// A mapped scan reads each page where it lies in the operating system's
/// page cache; an unmapped one copies every page into SQLite's own cache
/// first (page copies were a tenth of the roster load's CPU at ten million
/// pensioners; the wall-clock gain was inside our machines' noise in an
/// interleaved A/B at 10M, commit a361b78: BENCHMARKS.md, History).
/// Unmapping afterwards keeps the file's pages out of the process's
/// resident memory while the matcher works, and
/// keeps mapping out of every other statement (a failing disk under a
/// mapping is a SIGBUS, not an error). The cap comes from the build
/// (`LIBSQLITE3_FLAGS` in `.cargo/config.toml`); a smaller one only maps less.
struct Mapped {
    db: NonNull<ffi::sqlite3>,
}

impl Mapped {
    const PRAGMA: &CStr = c"PRAGMA mmap_size = 1099511627776";
    const UNMAP: &CStr = c"PRAGMA mmap_size = 0";

    fn new(db: NonNull<ffi::sqlite3>) -> Result<Mapped> {
        let mut s = Statement::prepare(db, Mapped::PRAGMA)?;
        while s.next()? {}
        Ok(Mapped { db })
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // Best effort: an unmapped connection is only slower, never wrong.
        if let Ok(mut s) = Statement::prepare(self.db, Mapped::UNMAP) {
            while let Ok(true) = s.next() {}
        }
    }
}

fn unreadable(what: &str, whose: &str, text: Option<&str>) -> StoreError {
    StoreError::Corrupt(format!("{whose}: {what} {text:?} is not a date"))
}

/// In table order: the rows are not stored in person-number order (an
/// export is sorted by region first), and reading them through the primary
/// key's index made every row a random read (two minutes at ten million
/// rows, against a few seconds for the scan and a sort in memory).
const PERSONS: &CStr = c"SELECT person_no, name, name_norm, name_key, id_number, sex, birth_date, \
    insured_region, residence_region, benefit_start FROM pensioners \
    WHERE rowid BETWEEN ?1 AND ?2 \
    AND (status <> 'terminated' OR person_no IN (SELECT person_no FROM matches))";

/// A connection handle a scan thread may use while its owner waits.
struct Db(NonNull<ffi::sqlite3>);

// SAFETY: the bundled SQLite is built thread-safe; the owner holds the
// handle locked and joins the thread before it uses the handle again, so
// one thread at a time uses it.
unsafe impl Send for Db {}

/// The matcher's roster (see `Store::load_match_persons`) in person-number
/// order, read by two threads on two connections, half of the table each
/// by rowid: decoding ten million rows was the larger part of a full match
/// run's loading. Without a second connection, one thread reads it all.
///
/// Both threads write into one vector sized once for the whole rowid
/// range, and it is put in order where it lies: on the machines this runs
/// on, first touching memory costs about a second per GiB, and a vector per
/// thread joined into a third touched twice the roster's size again.
pub fn load_persons(
    first: NonNull<ffi::sqlite3>,
    second: Option<NonNull<ffi::sqlite3>>,
) -> Result<Vec<Person>> {
    // Two subqueries: SQLite answers a lone min() or max() from the end of
    // the table, but scans every row for both in one SELECT.
    let mut rows = Statement::prepare(
        first,
        c"SELECT (SELECT min(rowid) FROM pensioners), (SELECT max(rowid) FROM pensioners)",
    )?;
    let (lo, hi) = if rows.next()? {
        (rows.int(0).unwrap_or(0), rows.int(1).unwrap_or(-1))
    } else {
        (0, -1)
    };
    drop(rows);
    if hi < lo {
        return Ok(Vec::new());
    }
    let span = |from: i64, to: i64| usize::try_from(to - from + 1).unwrap_or(0);
    let mid = match second {
        Some(_) => lo + (hi - lo) / 2,
        None => hi,
    };
    let mut persons: Vec<Person> = Vec::with_capacity(span(lo, hi));
    let first_len = span(lo, mid);
    let (a_slots, b_slots) = persons.spare_capacity_mut().split_at_mut(first_len);
    let (mine, theirs) = std::thread::scope(|scope| {
        let other = second.map(|b| {
            let b = Db(b);
            scope.spawn(move || scan_persons(b, mid + 1, hi, Slots::new(b_slots)))
        });
        let mine = scan_persons(Db(first), lo, mid, Slots::new(a_slots));
        let theirs = other.map(|t| {
            t.join().unwrap_or_else(|_| {
                Err(StoreError::Corrupt(
                    "the roster scan thread panicked".to_string(),
                ))
            })
        });
        (mine, theirs)
    });
    // A failed half drops what the other half read (`Slots`' drop).
    let (na, nb) = match (mine, theirs.transpose()) {
        (Ok(a), Ok(b)) => (a.keep(), b.map_or(0, Slots::keep)),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    // SAFETY: the first half's rows are slots `0..na`, the second half's
    // `first_len..first_len + nb`, all written (`Slots::keep`); the copy
    // closes the gap between them (it may overlap) and the length then
    // covers exactly the written rows.
    unsafe {
        let base = persons.as_mut_ptr();
        ptr::copy(base.add(first_len), base.add(na), nb);
        persons.set_len(na + nb);
    }
    sort_by_person_no(&mut persons);
    Ok(persons)
}

/// Uninitialised roster slots a scan fills in order; the rows written so
/// far are dropped with it unless [`Slots::keep`] hands them on.
pub(super) struct Slots<'s> {
    slots: &'s mut [std::mem::MaybeUninit<Person>],
    filled: usize,
}

impl<'s> Slots<'s> {
    pub(super) fn new(slots: &'s mut [std::mem::MaybeUninit<Person>]) -> Slots<'s> {
        Slots { slots, filled: 0 }
    }

    pub(super) fn push(&mut self, person: Person) -> Result<()> {
        let Some(slot) = self.slots.get_mut(self.filled) else {
            return Err(StoreError::Corrupt(
                "the roster scan read more rows than its rowid range holds".to_string(),
            ));
        };
        slot.write(person);
        self.filled += 1;
        Ok(())
    }

    /// How many rows were written; they are the caller's from now on.
    pub(super) fn keep(self) -> usize {
        let n = self.filled;
        std::mem::forget(self);
        n
    }
}

impl Drop for Slots<'_> {
    fn drop(&mut self) {
        for slot in &mut self.slots[..self.filled] {
            // SAFETY: the first `filled` slots were written by `push`.
            unsafe { slot.assume_init_drop() };
        }
    }
}

/// Puts the roster in person-number order in place: sorts positions, not
/// the ~180-byte persons, by the number read as an integer when every
/// number is digits of one length (the agency's 16-digit numbers; their
/// text order is then their numeric order), else by text; then moves each
/// person once along the permutation's cycles.
fn sort_by_person_no(persons: &mut [Person]) {
    use rayon::prelude::*;
    if persons
        .par_windows(2)
        .all(|w| w[0].person_no <= w[1].person_no)
    {
        return;
    }
    let width = persons.first().map_or(0, |p| p.person_no.len());
    let numeric = width <= 19
        && persons
            .par_iter()
            .all(|p| p.person_no.len() == width && p.person_no.bytes().all(|b| b.is_ascii_digit()));
    let order: Vec<u32> = if numeric {
        let mut keyed: Vec<(u64, u32)> = persons
            .par_iter()
            .enumerate()
            .map(|(i, p)| {
                let n = p
                    .person_no
                    .bytes()
                    .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
                (n, i as u32)
            })
            .collect();
        keyed.par_sort_unstable();
        keyed.into_par_iter().map(|(_, i)| i).collect()
    } else {
        let mut order: Vec<u32> = (0..persons.len() as u32).collect();
        order.par_sort_by(|&a, &b| {
            persons[a as usize]
                .person_no
                .cmp(&persons[b as usize].person_no)
        });
        order
    };
    permute(persons, order);
}

/// Rearranges `items` so that position `i` holds what was at `order[i]`
/// (`order` a permutation of the positions), by swaps along its cycles.
fn permute<T>(items: &mut [T], mut order: Vec<u32>) {
    const DONE: u32 = u32::MAX;
    for start in 0..items.len() {
        if order[start] == DONE {
            continue;
        }
        let mut at = start;
        loop {
            let from = order[at] as usize;
            order[at] = DONE;
            if from == start {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

/// The roster rows with rowids in `lo..=hi`, written into `out`.
fn scan_persons<'s>(db: Db, lo: i64, hi: i64, mut out: Slots<'s>) -> Result<Slots<'s>> {
    let _mapped = Mapped::new(db.0)?;
    let mut s = Statement::prepare(db.0, PERSONS)?;
    s.bind_int(1, lo)?;
    s.bind_int(2, hi)?;
    while s.next()? {
        let t = |i| CompactString::from(s.text(i).unwrap_or_default());
        let person_no = t(0);
        let birth = s.text(6);
        let start = s.text(9);
        out.push(Person {
            birth_date: birth.and_then(date).ok_or_else(|| {
                unreadable("birth date", &format!("pensioner {person_no}"), birth)
            })?,
            benefit_start: start.and_then(date).ok_or_else(|| {
                unreadable("benefit start", &format!("pensioner {person_no}"), start)
            })?,
            name: t(1),
            name_norm: t(2),
            name_key: t(3),
            id_number: t(4),
            sex: s.int(5).and_then(|v| u8::try_from(v).ok()).unwrap_or(0),
            insured_region: t(7),
            residence_region: t(8),
            person_no,
        })?;
    }
    Ok(out)
}

static RECORDS: LazyLock<CString> =
    LazyLock::new(|| CString::new(all_records_sql("")).expect("no NUL in SQL"));

/// Every stored death record, ordered by (source, record_key), with the
/// version read of each alongside.
pub fn load_records(db: NonNull<ffi::sqlite3>) -> Result<(Vec<MatchRecord>, Vec<i64>)> {
    let _mapped = Mapped::new(db)?;
    // Sized once from the row count (a push at a time copied a million
    // records into fresh memory over and over).
    let mut count = Statement::prepare(db, c"SELECT count(*) FROM death_records")?;
    let rows = if count.next()? {
        usize::try_from(count.int(0).unwrap_or(0)).unwrap_or(0)
    } else {
        0
    };
    drop(count);
    let mut s = Statement::prepare(db, &RECORDS)?;
    let mut out = Vec::with_capacity(rows);
    let mut versions = Vec::with_capacity(rows);
    while s.next()? {
        versions.push(s.int(14).unwrap_or_default());
        let t = |i| s.text(i).unwrap_or_default().to_string();
        let (source, record_key) = (t(0), t(1));
        let whose = || format!("death record {source} {record_key}");
        let birth = s.text(9);
        let birth_date = match birth {
            None | Some("") => None,
            Some(text) => {
                Some(date(text).ok_or_else(|| unreadable("birth date", &whose(), birth))?)
            }
        };
        let death = s.text(12);
        let death_date = death
            .and_then(date)
            .ok_or_else(|| unreadable("death date", &whose(), death))?;
        let year = |i| s.int(i).and_then(|v| i32::try_from(v).ok());
        let region = s
            .text(13)
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .or_else(|| {
                (source == "funeral")
                    .then(|| funeral_home_city(&record_key))
                    .flatten()
            });
        out.push(MatchRecord {
            name: t(2),
            name_norm: t(3),
            name_key: t(4),
            id_raw: t(5),
            id_number: s.text(6).map(str::to_string),
            id_status: IdStatus::from_stored(s.text(7).unwrap_or_default()),
            sex: s
                .int(8)
                .and_then(|v| u8::try_from(v).ok())
                .filter(|v| *v == 1 || *v == 2),
            birth_date,
            birth_year_range: year(10).zip(year(11)),
            death_date,
            region,
            source,
            record_key,
        });
    }
    Ok((out, versions))
}

/// Every proof of life (the `proofs_of_life` view), streamed into the
/// matcher's latest date per ID number: millions of events, read without
/// grouping them in SQL or copying rows first.
pub fn load_life_evidence(db: NonNull<ffi::sqlite3>) -> Result<LifeEvidence> {
    let _mapped = Mapped::new(db)?;
    let mut s = Statement::prepare(db, c"SELECT id_number, proven_on FROM proofs_of_life")?;
    let mut life = LifeEvidence::new();
    while s.next()? {
        let (Some(id), Some(on)) = (s.text(0), s.text(1)) else {
            continue;
        };
        let on = date(on).ok_or_else(|| {
            let whose = format!("proof of life of {}", crate::identity::id::mask(id));
            unreadable("date", &whose, Some(on))
        })?;
        life.insert(id, on);
    }
    Ok(life)
}

const INSERT_MATCH: &CStr = c"INSERT INTO matches (source, record_key, person_no, score, band, \
    runner_up, margin, explanation, rules_version, run_id, matched_at, may_carry) \
    VALUES (?,?,?,?,?,?,?,?,?,?,?,?)";

/// Inserts `matches` with one prepared statement; the caller holds the
/// connection locked inside an open transaction.
pub fn insert_matches(
    db: NonNull<ffi::sqlite3>,
    run_id: i64,
    now: &str,
    matches: &[StoredMatch],
) -> Result<(), BulkError> {
    let mut s = Statement::prepare(db, INSERT_MATCH)?;
    for m in matches {
        s.execute(&[
            Value::text(&m.source),
            Value::text(&m.record_key),
            Value::text(&m.person_no),
            Value::Real(m.score),
            Value::text(&m.band),
            Value::opt_text(m.runner_up.as_deref()),
            Value::opt_real(m.margin),
            Value::text(&m.explanation),
            Value::text(&m.rules_version),
            Value::Int(run_id),
            Value::text(now),
            Value::Int(i64::from(m.may_carry)),
        ])?;
    }
    Ok(())
}

const INSERT_PROGRESS: &CStr = c"INSERT INTO match_progress \
    (source, record_key, record_version, rules_version, run_id) VALUES (?,?,?,?,?)";

/// Records each of `records` as matched at the version read (`versions`,
/// alongside) under `rules_version`, into an emptied `match_progress`; the
/// caller holds the connection locked inside an open transaction.
pub fn insert_progress(
    db: NonNull<ffi::sqlite3>,
    run_id: i64,
    rules_version: &str,
    records: &[MatchRecord],
    versions: &[i64],
) -> Result<(), BulkError> {
    let mut s = Statement::prepare(db, INSERT_PROGRESS)?;
    for (r, &version) in records.iter().zip(versions) {
        s.execute(&[
            Value::text(&r.source),
            Value::text(&r.record_key),
            Value::Int(version),
            Value::text(rules_version),
            Value::Int(run_id),
        ])?;
    }
    Ok(())
}

const INSERT_EVENT: &CStr = c"INSERT INTO death_events (person_no, death_date, band, sources, \
    evidence_strength, flags, records, rules_version, run_id, updated_at) \
    VALUES (?,?,?,?,?,?,?,?,?,?)";

/// Inserts the death events, each already encoded, with one prepared
/// statement; the caller holds the connection locked inside an open
/// transaction.
pub fn insert_events(
    db: NonNull<ffi::sqlite3>,
    now: &str,
    events: &[super::match_state::EncodedEvent<'_>],
) -> Result<(), BulkError> {
    let mut s = Statement::prepare(db, INSERT_EVENT)?;
    for e in events {
        s.execute(&[
            Value::text(e.person_no),
            Value::text(&e.death_date),
            Value::text(e.band),
            Value::text(&e.sources),
            Value::Real(e.evidence_strength),
            Value::text(&e.flags),
            Value::text(&e.records),
            Value::text(e.rules_version),
            Value::Int(e.run_id),
            Value::text(now),
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn stored_dates_are_read_with_or_without_the_fast_path() {
        let d = NaiveDate::from_ymd_opt(1942, 3, 5);
        assert_eq!(date("1942-03-05"), d);
        assert_eq!(date("1942-3-5"), d);
        assert_eq!(date("1942-13-05"), None);
        assert_eq!(date(""), None);
    }

    fn numbered(nos: &[&str]) -> Vec<Person> {
        let day = NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or_default();
        nos.iter()
            .enumerate()
            .map(|(i, no)| Person {
                person_no: (*no).into(),
                name: format!("p{i}").into(),
                name_norm: CompactString::default(),
                name_key: CompactString::default(),
                id_number: CompactString::default(),
                sex: 1,
                birth_date: day,
                insured_region: CompactString::default(),
                residence_region: CompactString::default(),
                benefit_start: day,
            })
            .collect()
    }

    fn order_of(persons: &[Person]) -> Vec<(&str, &str)> {
        persons
            .iter()
            .map(|p| (p.person_no.as_str(), p.name.as_str()))
            .collect()
    }

    #[test]
    fn the_roster_is_put_in_person_number_order_in_place() {
        // Same-length digits: sorted as integers.
        let mut v = numbered(&["4403000000000003", "1101000000000009", "4403000000000001"]);
        sort_by_person_no(&mut v);
        assert_eq!(
            order_of(&v),
            [
                ("1101000000000009", "p1"),
                ("4403000000000001", "p2"),
                ("4403000000000003", "p0"),
            ]
        );
        // Mixed lengths and letters: text order, which is not numeric order
        // ("9" after "10"); equal numbers keep roster order.
        let mut v = numbered(&["9", "P2", "10", "P10", "9", "A"]);
        sort_by_person_no(&mut v);
        assert_eq!(
            order_of(&v),
            [
                ("10", "p2"),
                ("9", "p0"),
                ("9", "p4"),
                ("A", "p5"),
                ("P10", "p3"),
                ("P2", "p1"),
            ]
        );
    }

    #[test]
    fn a_permutation_moves_every_item_along_its_cycles() {
        // Cycles (0 3 1) and (2 4), and 5 in place.
        let mut items = vec!['a', 'b', 'c', 'd', 'e', 'f'];
        permute(&mut items, vec![3, 0, 4, 1, 2, 5]);
        assert_eq!(items, ['d', 'a', 'e', 'b', 'c', 'f']);
    }
}
