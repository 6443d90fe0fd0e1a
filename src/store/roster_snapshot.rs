//! The matcher's roster snapshot: the roster as the matcher reads it,
//! written beside a SQLite database in a plain binary form and read back by
//! every match run while the roster has not changed.
//!
//! Decoding ten million rows out of SQLite is the largest part of a match
//! run's loading (about six seconds at ten million pensioners on two cores),
//! and the roster changes once a month while matches run every day. The
//! snapshot is read through a memory map in chunks on every core, straight
//! into the matcher's [`Person`]s, in person-number order.
//!
//! It is used only while its stamp is the database's
//! ([`RosterStamp`]: the database's instance, the roster's generation,
//! which triggers raise on every update of a column the matcher reads or a
//! delete, and the largest rowid, which every insert raises). Anything else
//! (missing, stale, written by another version, cut short) is read from the
//! database as before and the snapshot written again. Whoever changes a
//! pensioner, through vigil or behind its back, makes the snapshot stale.
//!
//! The snapshot holds the roster the matcher read when it was written
//! (pensioners being paid, and those with a match whatever their status),
//! each with whether they were being paid. Without a change of the roster,
//! that set can only shrink: a match is only ever made to a pensioner the
//! matcher read. So a reader keeps those being paid and those of the
//! others that still have a match.
//!
//! The file holds names and ID numbers in full, like the database beside
//! it; it is written readable by its owner only.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ahash::AHashSet;
use chrono::{Datelike, NaiveDate};
use compact_str::CompactString;
use rayon::prelude::*;

use super::matches_bulk::Slots;
use super::with_pool;
use super::{Result, Store, StoreError};
use crate::files;
use crate::model::Person;

/// What the database says of its roster now; a snapshot is read only when
/// its own stamp is equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterStamp {
    /// Tells this database from any other (random, set by its migration).
    pub instance: String,
    /// Raised by a trigger on every change of a column the matcher reads.
    pub generation: i64,
    /// Raised by every insert.
    pub max_rowid: i64,
}

/// The first eight bytes: the format and its version.
const MAGIC: &[u8; 8] = b"VIGILRS2";
const INSTANCE_BYTES: usize = 32;
/// magic, instance, generation, max rowid, persons, inactive, chunks, data length.
const HEADER_BYTES: usize = 8 + INSTANCE_BYTES + 8 * 6;
/// Persons per chunk: the unit each core decodes.
const CHUNK: usize = 1 << 16;
/// Per chunk: its data offset (u64) and its persons (u64).
const CHUNK_ENTRY_BYTES: usize = 16;

const ACTIVE: u8 = 1;
/// The registered name is its normalised form: stored once.
const NAME_IS_NORM: u8 = 2;

/// Where the snapshot of the database at `db` lives: beside it.
pub fn path_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".roster");
    PathBuf::from(name)
}

/// A snapshot that matched the stamp, mapped and ready to decode.
pub struct Snapshot {
    map: memmap2::Mmap,
    persons: usize,
    inactive: usize,
    /// Per chunk: its bytes in the data, and its persons.
    chunks: Vec<(std::ops::Range<usize>, usize)>,
    data_start: usize,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("roster snapshot {}: {what}", path.display()))
}

impl Snapshot {
    /// The snapshot at `path` if its stamp is `stamp`: `Ok(None)` when
    /// there is none or it is stale; an error when it cannot be read.
    pub fn open(path: &Path, stamp: &RosterStamp) -> Result<Option<Snapshot>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(corrupt(path, e)),
        };
        // SAFETY: the snapshot is only ever replaced by a rename, never
        // written in place, so the mapped file does not change under the
        // map (a rename leaves the old file whole for whoever maps it).
        // Truncating it by hand would make reads past its new end fault;
        // nothing of vigil does.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| corrupt(path, e))?;
        let b: &[u8] = &map;
        if b.len() < HEADER_BYTES || &b[..8] != MAGIC {
            // Another format (an older vigil's): stale, not broken.
            return Ok(None);
        }
        let instance = &b[8..8 + INSTANCE_BYTES];
        let at = 8 + INSTANCE_BYTES;
        let field = |i: usize| u64_at(b, at + 8 * i);
        let generation = field(0) as i64;
        let max_rowid = field(1) as i64;
        if instance != instance_bytes(&stamp.instance)
            || generation != stamp.generation
            || max_rowid != stamp.max_rowid
        {
            return Ok(None);
        }
        let too_big = |v: u64| usize::try_from(v).map_err(|_| corrupt(path, "sizes overflow"));
        let persons = too_big(field(2))?;
        let inactive = too_big(field(3))?;
        let n_chunks = too_big(field(4))?;
        let data_len = too_big(field(5))?;
        let data_start = n_chunks
            .checked_mul(CHUNK_ENTRY_BYTES)
            .and_then(|t| t.checked_add(HEADER_BYTES))
            .ok_or_else(|| corrupt(path, "sizes overflow"))?;
        if data_start.checked_add(data_len) != Some(b.len()) {
            return Err(corrupt(
                path,
                format_args!(
                    "{} bytes where the header says {}",
                    b.len(),
                    data_start + data_len
                ),
            ));
        }
        let mut chunks = Vec::with_capacity(n_chunks);
        let mut counted = 0usize;
        for i in 0..n_chunks {
            let e = HEADER_BYTES + i * CHUNK_ENTRY_BYTES;
            let (offset, n) = (too_big(u64_at(b, e))?, too_big(u64_at(b, e + 8))?);
            if offset > data_len || n > CHUNK {
                return Err(corrupt(path, format_args!("chunk {i} is out of bounds")));
            }
            counted += n;
            chunks.push((offset, n));
        }
        // Each chunk ends where the next begins, the last at the end.
        let ends = chunks.iter().skip(1).map(|&(o, _)| o).chain([data_len]);
        let chunks: Vec<(std::ops::Range<usize>, usize)> = chunks
            .iter()
            .zip(ends)
            .map(|(&(offset, n), end)| (offset..end, n))
            .collect();
        if chunks.iter().any(|(r, _)| r.start > r.end) {
            return Err(corrupt(path, "its chunks overlap"));
        }
        // Every chunk but the last is full: chunk `i` decodes into slots
        // `i * CHUNK ..`.
        let full = chunks.iter().rev().skip(1).all(|(_, n)| *n == CHUNK);
        if n_chunks != persons.div_ceil(CHUNK) || !full {
            return Err(corrupt(
                path,
                "its chunks are not the sizes it was written in",
            ));
        }
        if counted != persons {
            return Err(corrupt(
                path,
                format_args!("{counted} persons in its chunks, {persons} in its header"),
            ));
        }
        Ok(Some(Snapshot {
            map,
            persons,
            inactive,
            chunks,
            data_start,
        }))
    }

    /// Persons in the snapshot whose benefit was terminated when it was
    /// written (kept by a reader only while they still have a match).
    pub fn inactive(&self) -> usize {
        self.inactive
    }

    /// The roster: every person being paid, and of the others those whose
    /// number `matched` holds, in person-number order. Decoded on every
    /// core, a chunk each, each into its own part of one vector.
    pub fn decode(&self, path: &Path, matched: &AHashSet<CompactString>) -> Result<Vec<Person>> {
        let _ = self.map.advise(memmap2::Advice::WillNeed);
        let data = &self.map[self.data_start..];
        let mut persons: Vec<Person> = Vec::with_capacity(self.persons);
        let spare = &mut persons.spare_capacity_mut()[..self.persons];
        let parts: Vec<Result<Slots<'_>>> = spare
            .par_chunks_mut(CHUNK)
            .zip(self.chunks.par_iter())
            .enumerate()
            .map(|(i, (slots, (bytes, n)))| {
                decode_chunk(&data[bytes.clone()], *n, Slots::new(slots), matched)
                    .map_err(|what| corrupt(path, format_args!("chunk {i}: {what}")))
            })
            .collect();
        let mut decoded = Vec::with_capacity(parts.len());
        let mut failed = None;
        for part in parts {
            match part {
                Ok(slots) => decoded.push(slots),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        // A failed chunk: every decoded person is dropped with its part.
        if let Some(e) = failed {
            return Err(e);
        }
        let kept: Vec<usize> = decoded.into_iter().map(Slots::keep).collect();
        // SAFETY: chunk `i`'s persons are slots `i * CHUNK .. i * CHUNK +
        // kept[i]`, all written (`Slots::keep`); each copy moves them down
        // to just after the ones before (the ranges may overlap, which
        // `ptr::copy` allows), and the length then covers exactly them.
        unsafe {
            let base = persons.as_mut_ptr();
            let mut len = 0;
            for (i, &n) in kept.iter().enumerate() {
                std::ptr::copy(base.add(i * CHUNK), base.add(len), n);
                len += n;
            }
            persons.set_len(len);
        }
        Ok(persons)
    }
}

/// Decodes the `n` persons that `data` holds into `out`, keeping those
/// being paid and those with a match.
fn decode_chunk<'s>(
    data: &[u8],
    n: usize,
    mut out: Slots<'s>,
    matched: &AHashSet<CompactString>,
) -> std::result::Result<Slots<'s>, String> {
    let mut r = Reader { data, at: 0 };
    for _ in 0..n {
        let flags = r.byte()?;
        let sex = r.byte()?;
        let birth_date = r.date()?;
        let benefit_start = r.date()?;
        let person_no = r.text()?;
        let name = if flags & NAME_IS_NORM != 0 {
            None
        } else {
            Some(r.text()?)
        };
        let name_norm = r.text()?;
        let person = Person {
            name: name.unwrap_or_else(|| name_norm.clone()),
            name_norm,
            name_key: r.text()?,
            id_number: r.text()?,
            insured_region: r.text()?,
            residence_region: r.text()?,
            sex,
            birth_date,
            benefit_start,
            person_no,
        };
        if flags & ACTIVE != 0 || matched.contains(&person.person_no) {
            out.push(person).map_err(|e| e.to_string())?;
        }
    }
    if r.at != data.len() {
        return Err(format!(
            "{n} persons end at byte {} of its {}",
            r.at,
            data.len()
        ));
    }
    Ok(out)
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("ends inside a person at byte {}", self.at))?;
        let b = &self.data[self.at..end];
        self.at = end;
        Ok(b)
    }

    fn byte(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn date(&mut self) -> std::result::Result<NaiveDate, String> {
        let b = self.take(4)?;
        let days = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        NaiveDate::from_num_days_from_ce_opt(days).ok_or_else(|| format!("{days} is not a date"))
    }

    fn text(&mut self) -> std::result::Result<CompactString, String> {
        let len = match self.byte()? {
            LONG => {
                let b = self.take(4)?;
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
            }
            n => usize::from(n),
        };
        let b = self.take(len)?;
        let s = std::str::from_utf8(b).map_err(|e| format!("a text is not UTF-8: {e}"))?;
        Ok(CompactString::from(s))
    }
}

/// A length byte that says a four-byte length follows.
const LONG: u8 = u8::MAX;

fn put_text(out: &mut Vec<u8>, s: &str) {
    match u8::try_from(s.len()) {
        Ok(n) if n != LONG => out.push(n),
        _ => {
            out.push(LONG);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        }
    }
    out.extend_from_slice(s.as_bytes());
}

fn encode(out: &mut Vec<u8>, p: &Person, active: bool) {
    let name_is_norm = p.name == p.name_norm;
    let mut flags = 0;
    if active {
        flags |= ACTIVE;
    }
    if name_is_norm {
        flags |= NAME_IS_NORM;
    }
    out.push(flags);
    out.push(p.sex);
    out.extend_from_slice(&p.birth_date.num_days_from_ce().to_le_bytes());
    out.extend_from_slice(&p.benefit_start.num_days_from_ce().to_le_bytes());
    put_text(out, &p.person_no);
    if !name_is_norm {
        put_text(out, &p.name);
    }
    for s in [
        &p.name_norm,
        &p.name_key,
        &p.id_number,
        &p.insured_region,
        &p.residence_region,
    ] {
        put_text(out, s);
    }
}

fn instance_bytes(instance: &str) -> [u8; INSTANCE_BYTES] {
    let mut b = [0u8; INSTANCE_BYTES];
    let s = instance.as_bytes();
    let n = s.len().min(INSTANCE_BYTES);
    b[..n].copy_from_slice(&s[..n]);
    b
}

/// Writes the snapshot of `persons` (in person-number order) stamped
/// `stamp`; `inactive` holds the numbers of those whose benefit is terminated. Written
/// to a file of its own, synced, then renamed over the old one: a reader
/// sees the old snapshot or the new one, whole, and a crash leaves at most
/// a stray temporary file.
pub fn write(
    path: &Path,
    stamp: &RosterStamp,
    persons: &[Person],
    inactive: &AHashSet<CompactString>,
) -> Result<u64> {
    let io = |e: std::io::Error| corrupt(path, format_args!("cannot be written: {e}"));
    // A roster import and a match run may both find the snapshot stale and
    // write it at once: each through a temporary file of its own.
    let n_chunks = persons.len().div_ceil(CHUNK);
    let data_start = HEADER_BYTES + n_chunks * CHUNK_ENTRY_BYTES;
    files::write_atomically(path, ".roster-", |w| {
        w.seek(SeekFrom::Start(data_start as u64))?;
        let mut table = Vec::with_capacity(n_chunks * CHUNK_ENTRY_BYTES);
        let mut offset = 0u64;
        let mut buf = Vec::with_capacity(CHUNK * 96);
        let mut n_inactive = 0u64;
        for chunk in persons.chunks(CHUNK) {
            buf.clear();
            for p in chunk {
                let active = !inactive.contains(&p.person_no);
                n_inactive += u64::from(!active);
                encode(&mut buf, p, active);
            }
            table.extend_from_slice(&offset.to_le_bytes());
            table.extend_from_slice(&(chunk.len() as u64).to_le_bytes());
            w.write_all(&buf)?;
            offset += buf.len() as u64;
        }
        let mut header = Vec::with_capacity(HEADER_BYTES);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&instance_bytes(&stamp.instance));
        for v in [
            stamp.generation as u64,
            stamp.max_rowid as u64,
            persons.len() as u64,
            n_inactive,
            n_chunks as u64,
            offset,
        ] {
            header.extend_from_slice(&v.to_le_bytes());
        }
        w.seek(SeekFrom::Start(0))?;
        w.write_all(&header)?;
        w.write_all(&table)?;
        Ok(data_start as u64 + offset)
    })
    .map_err(io)
}

/// Where a match run's roster came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterFrom {
    /// The snapshot beside the database, unchanged since it was written.
    Snapshot,
    /// The database (PostgreSQL always; SQLite when the snapshot was
    /// missing, stale or unreadable, and then written again).
    Database,
}

impl Store {
    /// What the database says of its roster now (see [`RosterStamp`]).
    pub async fn roster_stamp(&self) -> Result<RosterStamp> {
        let (instance, generation): (String, i64) = with_pool!(self, pool => {
            sqlx::query_as("SELECT instance, generation FROM roster_state WHERE id = 1")
                .fetch_one(pool)
                .await
        })?;
        let max_rowid = match self {
            // Inserts fire no trigger there (see the migration).
            Store::Sqlite(pool) => {
                sqlx::query_scalar("SELECT coalesce(max(rowid), 0) FROM pensioners")
                    .fetch_one(pool)
                    .await?
            }
            Store::Postgres(_) => 0,
        };
        Ok(RosterStamp {
            instance,
            generation,
            max_rowid,
        })
    }

    /// Where the roster snapshot of this database lives: beside a SQLite
    /// database file; none for an in-memory one or on PostgreSQL (whose
    /// server the matcher does not share a disk with).
    pub async fn roster_snapshot_path(&self) -> Result<Option<PathBuf>> {
        let Store::Sqlite(pool) = self else {
            return Ok(None);
        };
        let file: Option<String> =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_optional(pool)
                .await?;
        Ok(file
            .filter(|f| !f.is_empty())
            .map(|f| path_for(Path::new(&f))))
    }

    /// Where the matcher's index file of this database lives
    /// (written and mapped by the matcher): beside a SQLite database file, as
    /// the roster snapshot; none for an in-memory one or on PostgreSQL.
    pub async fn roster_index_path(&self) -> Result<Option<PathBuf>> {
        Ok(self
            .roster_snapshot_path()
            .await?
            .map(|roster| roster.with_extension("index")))
    }

    /// The matcher's roster and where it came from: the snapshot when its
    /// stamp is the database's, else the database (writing the snapshot
    /// again; a snapshot that cannot be written is only slower next time).
    pub async fn load_match_roster(&self) -> Result<(Vec<Person>, RosterFrom)> {
        let started = std::time::Instant::now();
        let path = self.roster_snapshot_path().await?;
        // The stamp is read before the roster: a change while it is read
        // leaves the snapshot stamped older than the database, never used.
        let stamp = match path {
            Some(_) => Some(self.roster_stamp().await?),
            None => None,
        };
        if let (Some(path), Some(stamp)) = (&path, &stamp) {
            match self.read_snapshot(path, stamp).await {
                Ok(Some(persons)) => {
                    tracing::info!(
                        persons = persons.len(),
                        seconds = started.elapsed().as_secs_f64(),
                        from = "snapshot",
                        "loaded the active roster for matching"
                    );
                    return Ok((persons, RosterFrom::Snapshot));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    error = %e,
                    "the roster snapshot cannot be read; reading the roster from the database and writing the snapshot again"
                ),
            }
        }
        let persons = self.load_match_persons_from_database().await?;
        tracing::info!(
            persons = persons.len(),
            seconds = started.elapsed().as_secs_f64(),
            from = "database",
            "loaded the active roster for matching"
        );
        if let (Some(path), Some(stamp)) = (&path, &stamp) {
            let started = std::time::Instant::now();
            match self.write_snapshot(path, stamp, &persons).await {
                Ok(bytes) => tracing::info!(
                    path = %path.display(),
                    mib = bytes >> 20,
                    seconds = started.elapsed().as_secs_f64(),
                    "wrote the roster snapshot"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "the roster snapshot cannot be written; the next match run reads the roster from the database again"
                ),
            }
        }
        Ok((persons, RosterFrom::Database))
    }

    /// Writes the roster snapshot unless it is up to date (the end of a
    /// roster import, so that the next match run reads it). Returns whether
    /// it wrote one.
    pub async fn refresh_roster_snapshot(&self) -> Result<bool> {
        let Some(path) = self.roster_snapshot_path().await? else {
            return Ok(false);
        };
        let stamp = self.roster_stamp().await?;
        if let Ok(Some(_)) = Snapshot::open(&path, &stamp) {
            return Ok(false);
        }
        tracing::info!(path = %path.display(), "writing the matcher's roster snapshot");
        let (_, from) = self.load_match_roster().await?;
        Ok(from == RosterFrom::Database)
    }

    async fn read_snapshot(&self, path: &Path, stamp: &RosterStamp) -> Result<Option<Vec<Person>>> {
        let Some(snapshot) = Snapshot::open(path, stamp)? else {
            return Ok(None);
        };
        // Terminated pensioners are kept only while they have a match.
        let matched: AHashSet<CompactString> = if snapshot.inactive() > 0 {
            let numbers: Vec<String> = with_pool!(self, pool => {
                sqlx::query_scalar("SELECT DISTINCT person_no FROM matches")
                    .fetch_all(pool)
                    .await
            })?;
            numbers.into_iter().map(CompactString::from).collect()
        } else {
            AHashSet::new()
        };
        snapshot.decode(path, &matched).map(Some)
    }

    async fn write_snapshot(
        &self,
        path: &Path,
        stamp: &RosterStamp,
        persons: &[Person],
    ) -> Result<u64> {
        let inactive: Vec<String> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT person_no FROM pensioners WHERE status = 'terminated'")
                .fetch_all(pool)
                .await
        })?;
        let inactive: AHashSet<CompactString> =
            inactive.into_iter().map(CompactString::from).collect();
        write(path, stamp, persons, &inactive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(i: usize) -> Person {
        let name_norm = CompactString::from(["王秀英", "李娜", "欧阳建国"][i % 3]);
        Person {
            person_no: format!("{i:016}").into(),
            // Every fifth registered name needed normalising.
            name: if i.is_multiple_of(5) {
                format!("{name_norm} ").into()
            } else {
                name_norm.clone()
            },
            name_key: ["wang xiu ying", "li na", "ou yang jian guo"][i % 3].into(),
            name_norm,
            id_number: format!("44030119{:02}0101{:04}", 40 + i % 50, i % 10_000).into(),
            sex: 1 + (i % 2) as u8,
            birth_date: NaiveDate::from_ymd_opt(1940 + (i % 50) as i32, 1, 1).unwrap(),
            insured_region: "440301".into(),
            residence_region: if i.is_multiple_of(7) { "" } else { "110105" }.into(),
            benefit_start: NaiveDate::from_ymd_opt(2000, 1 + (i % 12) as u32, 1).unwrap(),
        }
    }

    fn stamp() -> RosterStamp {
        RosterStamp {
            instance: "0123456789abcdef0123456789abcdef".into(),
            generation: 7,
            max_rowid: 42,
        }
    }

    fn numbers(persons: &[Person]) -> AHashSet<CompactString> {
        persons.iter().map(|p| p.person_no.clone()).collect()
    }

    #[test]
    fn a_snapshot_reads_back_the_roster_it_was_written_from() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("vigil.db"));
        // Three chunks, the last one short; a name longer than a length
        // byte holds.
        let mut persons: Vec<Person> = (0..2 * CHUNK + 1_000).map(person).collect();
        persons[CHUNK + 3].name = "阿".repeat(100).into();
        write(&path, &stamp(), &persons, &AHashSet::new()).unwrap();
        let snapshot = Snapshot::open(&path, &stamp()).unwrap().unwrap();
        assert_eq!(snapshot.inactive(), 0);
        assert_eq!(snapshot.decode(&path, &AHashSet::new()).unwrap(), persons);
    }

    #[test]
    fn those_not_paid_are_read_back_only_while_they_have_a_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("vigil.db"));
        let persons: Vec<Person> = (0..CHUNK + 10).map(person).collect();
        // Not paid: every hundredth; of them, every other one still matched.
        let inactive: Vec<Person> = persons.iter().step_by(100).cloned().collect();
        let matched: Vec<Person> = inactive.iter().step_by(2).cloned().collect();
        write(&path, &stamp(), &persons, &numbers(&inactive)).unwrap();
        let snapshot = Snapshot::open(&path, &stamp()).unwrap().unwrap();
        assert_eq!(snapshot.inactive(), inactive.len());
        let unmatched = &numbers(&inactive) - &numbers(&matched);
        let want: Vec<Person> = persons
            .iter()
            .filter(|p| !unmatched.contains(&p.person_no))
            .cloned()
            .collect();
        let got = snapshot.decode(&path, &numbers(&matched)).unwrap();
        assert_eq!(got.len(), persons.len() - unmatched.len());
        assert_eq!(got, want);
    }

    #[test]
    fn a_snapshot_of_another_stamp_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("vigil.db"));
        assert!(
            Snapshot::open(&path, &stamp()).unwrap().is_none(),
            "none yet"
        );
        let persons: Vec<Person> = (0..10).map(person).collect();
        write(&path, &stamp(), &persons, &AHashSet::new()).unwrap();
        for other in [
            RosterStamp {
                generation: 8,
                ..stamp()
            },
            RosterStamp {
                max_rowid: 43,
                ..stamp()
            },
            RosterStamp {
                instance: "fedcba9876543210fedcba9876543210".into(),
                ..stamp()
            },
        ] {
            assert!(
                Snapshot::open(&path, &other).unwrap().is_none(),
                "{other:?}"
            );
        }
        assert!(Snapshot::open(&path, &stamp()).unwrap().is_some());
    }

    #[test]
    fn a_snapshot_cut_short_or_damaged_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("vigil.db"));
        let persons: Vec<Person> = (0..100).map(person).collect();
        write(&path, &stamp(), &persons, &AHashSet::new()).unwrap();
        let whole = std::fs::read(&path).unwrap();

        std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
        let e = Snapshot::open(&path, &stamp()).err().unwrap().to_string();
        assert!(
            e.contains("roster snapshot") && e.contains(".roster"),
            "{e}"
        );
        assert!(e.contains("bytes where the header says"), "{e}");

        // A length byte in the data made to reach past the end.
        let mut damaged = whole.clone();
        let data_start = HEADER_BYTES + CHUNK_ENTRY_BYTES;
        damaged[data_start + 10] = 250;
        std::fs::write(&path, &damaged).unwrap();
        let snapshot = Snapshot::open(&path, &stamp()).unwrap().unwrap();
        let e = snapshot.decode(&path, &AHashSet::new()).err().unwrap();
        assert!(e.to_string().contains("chunk 0"), "{e}");

        // Another format is stale, not damaged.
        let mut older = whole;
        older[7] = b'0';
        std::fs::write(&path, &older).unwrap();
        assert!(Snapshot::open(&path, &stamp()).unwrap().is_none());
    }
}
