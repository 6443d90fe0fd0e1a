//! The roster index in a file: the matcher's indexes over the active roster
//! ([`RosterIndex`]), written beside a SQLite database by the run that
//! builds them and mapped in place by every later run over the same roster
//! and blocking rules.
//!
//! Building the indexes takes seconds at ten million pensioners, and the
//! roster changes once a month while matches run every day. On our
//! machines a page of memory touched for the first time costs about 2.4 s
//! per GiB (BENCHMARKS.md, Matcher, "Method: cold and warm runs, A/B"),
//! so the file is not read into the
//! heap: its arrays are plain data ([`bytemuck::Pod`]) that the matcher
//! reads where they lie in the operating system's page cache ([`Slab`]).
//!
//! The file is used only while it was made from exactly this roster and
//! these rules: its header holds a fingerprint of every field of every
//! person the index reads, in order ([`roster_fingerprint`]), and of the
//! blocking rules; anything else (missing, stale, another format, cut
//! short, inconsistent) is ignored, and the index built and written again.
//! Opening also checks the structure (every stored position inside the
//! roster, every range inside its array) and recomputes a sample of
//! persons' entries from the persons themselves, so that a file written by
//! a build whose name rules differed is caught rather than trusted.
//!
//! The file holds ID numbers (as the keys of the ID indexes) and name keys;
//! like the database beside it, it is written readable by its owner only.
//! It is written to a temporary file, synced, and renamed into place: a
//! reader sees a whole file or none.

use std::fmt;
use std::fs::File;
use std::hash::{BuildHasher, Hash, Hasher};
use std::io::{self, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytemuck::Pod;
use compact_str::CompactString;
use rayon::prelude::*;

use super::blocking::RosterIndex;
use super::rules::{BlockingRules, MatchRules};
use crate::files;
use crate::model::Person;

/// A read-only array owned by the index: built in memory, or mapped from
/// the index file. Dereferences to a slice either way.
pub struct Slab<T> {
    ptr: *const T,
    len: usize,
    owner: Owner<T>,
}

enum Owner<T> {
    Heap(Vec<T>),
    /// Keeps the mapping alive while the slice points into it.
    File(#[allow(dead_code)] Arc<memmap2::Mmap>),
}

// SAFETY: a `Slab` is an immutable slice of `T` (plain data when mapped):
// sharing or sending it is sharing or sending `&[T]`.
unsafe impl<T: Sync> Sync for Slab<T> {}
// SAFETY: as above; the owner (a vector or a shared mapping) moves with it.
unsafe impl<T: Send + Sync> Send for Slab<T> {}

impl<T> From<Vec<T>> for Slab<T> {
    fn from(v: Vec<T>) -> Slab<T> {
        // A vector's buffer does not move when the vector does.
        Slab {
            ptr: v.as_ptr(),
            len: v.len(),
            owner: Owner::Heap(v),
        }
    }
}

impl<T> Deref for Slab<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` and `len` describe a slice inside `owner` (a
        // vector's buffer, or a mapping checked for size and alignment in
        // `Sections::slab`), which lives as long as `self` and is never
        // written through.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T> fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = match self.owner {
            Owner::Heap(_) => "heap",
            Owner::File(_) => "file",
        };
        write!(f, "Slab({} items, {from})", self.len)
    }
}

impl<T> Slab<T> {
    /// Heap bytes this slab holds (none when mapped).
    pub fn heap_bytes(&self) -> usize {
        match &self.owner {
            Owner::Heap(v) => v.capacity() * size_of::<T>(),
            Owner::File(_) => 0,
        }
    }
}

/// The first eight bytes: the format and its version. Raise the version
/// whenever what the index holds or how it is derived changes.
const MAGIC: &[u8; 8] = b"VIGILIX2";
/// Scalars after the magic: roster fingerprint, rules fingerprint,
/// persons, flags, three key-index shifts, name total, u_average, sections.
const SCALARS: usize = 10;
/// Sections start on this boundary (a cache line; at least every `T`'s
/// alignment).
const ALIGN: u64 = 64;

const HAS_RANK: u64 = 1;
const HAS_DELETIONS: u64 = 2;
const HAS_NAMES: u64 = 4;

/// What identifies the roster and rules an index was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub roster: u64,
    pub rules: u64,
}

fn stable_hasher() -> ahash::RandomState {
    ahash::RandomState::with_seeds(
        0x7669_6769_6c5f_6978,
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
    )
}

/// A hash of every field the index reads of every person, in roster
/// order (parts hashed on every core, then hashed together in order).
pub fn roster_fingerprint(persons: &[Person]) -> u64 {
    let state = stable_hasher();
    let parts: Vec<u64> = persons
        .par_chunks(1 << 16)
        .map(|chunk| {
            let mut h = state.build_hasher();
            for p in chunk {
                p.person_no.hash(&mut h);
                p.name.hash(&mut h);
                p.name_norm.hash(&mut h);
                p.name_key.hash(&mut h);
                p.id_number.hash(&mut h);
                p.sex.hash(&mut h);
                p.birth_date.hash(&mut h);
                p.insured_region.hash(&mut h);
                p.residence_region.hash(&mut h);
            }
            h.finish()
        })
        .collect();
    let mut h = state.build_hasher();
    persons.len().hash(&mut h);
    parts.hash(&mut h);
    h.finish()
}

/// A hash of the blocking rules (what the index is built with).
pub fn rules_fingerprint(rules: &BlockingRules) -> u64 {
    let text = serde_json::to_string(rules).unwrap_or_default();
    stable_hasher().hash_one(text)
}

/// Where the index of the SQLite database at `db` lives: beside it.
pub fn path_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".index");
    PathBuf::from(name)
}

/// Where a run's index came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexFrom {
    /// Mapped from the index file.
    File,
    /// Built from the roster (and written to the file when there is one).
    Built,
}

impl IndexFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexFrom::File => "file",
            IndexFrom::Built => "built",
        }
    }
}

/// Runs `f` with the index over `persons` for matching under `rules`:
/// mapped from the file at `path` when that was made from this roster and
/// these rules, else built, and written there for the next run (a file
/// that cannot be written only makes the next run build again). A built
/// index is written on a thread of its own while `f` runs (writing and
/// syncing 700 MB at ten million pensioners is mostly waiting on the
/// disk). Returns what `f` returned, where the index came from, and the
/// seconds it took to get.
pub fn with_index<'a, R>(
    path: Option<&Path>,
    persons: &'a [Person],
    rules: &MatchRules,
    f: impl FnOnce(&RosterIndex<'a>) -> R,
) -> (R, IndexFrom, f64) {
    let started = Instant::now();
    let (index, from, to_write) = open_or_build(path, persons, rules);
    let seconds = started.elapsed().as_secs_f64();
    let out = match to_write {
        Some((path, fingerprint)) => std::thread::scope(|s| {
            s.spawn(|| write_logged(&index, path, fingerprint));
            f(&index)
        }),
        None => f(&index),
    };
    (out, from, seconds)
}

/// The index, where it came from, and where to write it with what
/// fingerprint when it was built and has a file.
fn open_or_build<'a, 'p>(
    path: Option<&'p Path>,
    persons: &'a [Person],
    rules: &MatchRules,
) -> (RosterIndex<'a>, IndexFrom, Option<(&'p Path, Fingerprint)>) {
    let Some(path) = path else {
        return (
            RosterIndex::build_for(persons, rules),
            IndexFrom::Built,
            None,
        );
    };
    let started = Instant::now();
    let fingerprint = Fingerprint {
        roster: roster_fingerprint(persons),
        rules: rules_fingerprint(&rules.blocking),
    };
    match open(path, persons, &rules.blocking, fingerprint) {
        Ok(Some(mut index)) => {
            index.set_rules_for(rules);
            tracing::info!(
                path = %path.display(),
                seconds = started.elapsed().as_secs_f64(),
                "mapped the roster index"
            );
            return (index, IndexFrom::File, None);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "the roster index file cannot be read; building the index again"
        ),
    }
    let index = RosterIndex::build_for(persons, rules);
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "built the roster index"
    );
    (index, IndexFrom::Built, Some((path, fingerprint)))
}

fn write_logged(index: &RosterIndex<'_>, path: &Path, fingerprint: Fingerprint) {
    let started = Instant::now();
    match write(index, path, fingerprint) {
        Ok(bytes) => tracing::info!(
            path = %path.display(),
            mib = bytes >> 20,
            seconds = started.elapsed().as_secs_f64(),
            "wrote the roster index"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "the roster index cannot be written; the next match run builds it again"
        ),
    }
}

/// The arrays of an index, in file order, as bytes.
fn sections<'i>(index: &'i RosterIndex<'_>) -> (Vec<&'i [u8]>, [u64; 3], u64) {
    let p = index.parts();
    let empty: &[u8] = &[];
    let mut flags = 0;
    let mut out: Vec<&[u8]> = Vec::with_capacity(SECTIONS);
    let mut shifts = [0u64; 3];
    for (i, k) in [Some(p.exact_id), Some(p.id_without_region), p.deletions]
        .into_iter()
        .enumerate()
    {
        match k {
            Some(k) => {
                let (keys, values, dir, shift) = k.parts();
                out.extend([
                    bytemuck::cast_slice(keys),
                    bytemuck::cast_slice(values),
                    bytemuck::cast_slice(dir),
                ]);
                shifts[i] = u64::from(shift);
                if i == 2 {
                    flags |= HAS_DELETIONS;
                }
            }
            None => out.extend([empty, empty, empty]),
        }
    }
    out.extend([
        bytemuck::cast_slice(p.name_start),
        bytemuck::cast_slice(p.name_persons),
        bytemuck::cast_slice(p.name_days),
        bytemuck::cast_slice(p.name_traits),
        bytemuck::cast_slice(p.views),
    ]);
    match p.rank {
        Some(r) => {
            flags |= HAS_RANK;
            out.push(bytemuck::cast_slice(r));
        }
        None => out.push(empty),
    }
    match p.names {
        Some(n) => {
            flags |= HAS_NAMES;
            out.push(n);
        }
        None => out.push(empty),
    }
    out.extend([
        bytemuck::cast_slice(p.forms),
        bytemuck::cast_slice(p.key_folded),
    ]);
    (out, shifts, flags)
}

/// Sections: 3 key indexes x 3 arrays, 5 name and view arrays, rank, fst,
/// forms, folded hashes, then the name keys' bytes, their ends, counts.
const SECTIONS: usize = 9 + 5 + 2 + 2 + 3;

/// Writes `index` to `path` (through a synced temporary file renamed into
/// place). Returns the bytes written.
pub fn write(index: &RosterIndex<'_>, path: &Path, fingerprint: Fingerprint) -> io::Result<u64> {
    let (mut data, shifts, flags) = sections(index);
    let (keys, counts, total, u_average) = index.name_frequencies().parts();
    let key_bytes: Vec<u8> = keys.iter().flat_map(|k| k.as_bytes()).copied().collect();
    let mut ends: Vec<u64> = Vec::with_capacity(keys.len());
    let mut end = 0u64;
    for k in keys {
        end += k.len() as u64;
        ends.push(end);
    }
    data.extend([
        &key_bytes[..],
        bytemuck::cast_slice(&ends),
        bytemuck::cast_slice(counts),
    ]);
    debug_assert_eq!(data.len(), SECTIONS);

    let header_bytes = (8 + SCALARS * 8 + SECTIONS * 16) as u64;
    let mut table = Vec::with_capacity(SECTIONS);
    let mut offset = header_bytes.next_multiple_of(ALIGN);
    for d in &data {
        table.push((offset, d.len() as u64));
        offset = (offset + d.len() as u64).next_multiple_of(ALIGN);
    }
    let mut header = Vec::with_capacity(header_bytes as usize);
    header.extend_from_slice(MAGIC);
    for v in [
        fingerprint.roster,
        fingerprint.rules,
        index.persons().len() as u64,
        flags,
        shifts[0],
        shifts[1],
        shifts[2],
        total,
        u_average.to_bits(),
        SECTIONS as u64,
    ] {
        header.extend_from_slice(&v.to_le_bytes());
    }
    for (o, l) in &table {
        header.extend_from_slice(&o.to_le_bytes());
        header.extend_from_slice(&l.to_le_bytes());
    }

    files::write_atomically(path, ".vigil-index-", |w| {
        w.write_all(&header)?;
        let mut at = header.len() as u64;
        for (d, (o, _)) in data.iter().zip(&table) {
            w.write_all(&vec![0u8; (o - at) as usize])?;
            w.write_all(d)?;
            at = o + d.len() as u64;
        }
        Ok(at)
    })
}

/// The mapped file, cut into its sections.
struct Sections {
    map: Arc<memmap2::Mmap>,
    table: Vec<(usize, usize)>,
}

impl Sections {
    fn bytes(&self, i: usize) -> &[u8] {
        let (o, l) = self.table[i];
        &self.map[o..o + l]
    }

    /// Section `i` as a slab of `T`; an error when its size or alignment
    /// does not fit `T`.
    fn slab<T: Pod>(&self, i: usize) -> io::Result<Slab<T>> {
        let slice: &[T] = bytemuck::try_cast_slice(self.bytes(i))
            .map_err(|e| invalid(format!("section {i}: {e:?}")))?;
        Ok(Slab {
            ptr: slice.as_ptr(),
            len: slice.len(),
            owner: Owner::File(Arc::clone(&self.map)),
        })
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads the header; `None` when the file is missing, of another format,
/// or made from another roster or rules.
fn open<'a>(
    path: &Path,
    persons: &'a [Person],
    rules: &BlockingRules,
    fingerprint: Fingerprint,
) -> io::Result<Option<RosterIndex<'a>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // SAFETY: the file is only ever replaced by a rename, never written in
    // place, so the mapped pages do not change under the slices; a file
    // cut short by someone else shows as a bad table below, before any
    // slice is made.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
    let header_bytes = 8 + SCALARS * 8 + SECTIONS * 16;
    if map.len() < header_bytes || &map[..8] != MAGIC {
        tracing::info!(path = %path.display(), "the roster index file is of another format");
        return Ok(None);
    }
    let u =
        |i: usize| u64::from_le_bytes(map[8 + i * 8..16 + i * 8].try_into().unwrap_or_default());
    if u(0) != fingerprint.roster || u(1) != fingerprint.rules || u(2) != persons.len() as u64 {
        tracing::info!(path = %path.display(), "the roster index file is of another roster or other blocking rules");
        return Ok(None);
    }
    if u(9) != SECTIONS as u64 {
        return Err(invalid(format!("{} sections, not {SECTIONS}", u(9))));
    }
    let flags = u(3);
    let shifts = [u(4), u(5), u(6)];
    let (total, u_average) = (u(7), f64::from_bits(u(8)));
    let table_at = 8 + SCALARS * 8;
    let mut table = Vec::with_capacity(SECTIONS);
    for i in 0..SECTIONS {
        let at = table_at + i * 16;
        let o = u64::from_le_bytes(map[at..at + 8].try_into().unwrap_or_default());
        let l = u64::from_le_bytes(map[at + 8..at + 16].try_into().unwrap_or_default());
        match o.checked_add(l) {
            Some(end) if end <= map.len() as u64 => table.push((o as usize, l as usize)),
            _ => return Err(invalid(format!("section {i} lies outside the file"))),
        }
    }
    let s = Sections {
        map: Arc::new(map),
        table,
    };

    let key_index = |first: usize, shift: u64| -> io::Result<super::blocking::KeyIndexParts> {
        Ok(super::blocking::KeyIndexParts {
            keys: s.slab(first)?,
            values: s.slab(first + 1)?,
            dir: s.slab(first + 2)?,
            shift: u32::try_from(shift).map_err(|_| invalid("a shift out of range".into()))?,
        })
    };
    let exact_id = key_index(0, shifts[0])?;
    let id_without_region = key_index(3, shifts[1])?;
    let deletions = if flags & HAS_DELETIONS != 0 {
        Some(key_index(6, shifts[2])?)
    } else {
        None
    };
    let rank = if flags & HAS_RANK != 0 {
        Some(s.slab(14)?)
    } else {
        None
    };
    let names = if flags & HAS_NAMES != 0 {
        Some(
            fst::Map::new(s.bytes(15).to_vec())
                .map_err(|e| invalid(format!("the name fst: {e}")))?,
        )
    } else {
        None
    };
    // The name keys, back into strings (hundreds of thousands, not millions).
    let key_bytes = s.bytes(18);
    let ends: &[u64] = bytemuck::try_cast_slice(s.bytes(19))
        .map_err(|e| invalid(format!("the name keys' ends: {e:?}")))?;
    let mut keys: Vec<CompactString> = Vec::with_capacity(ends.len());
    let mut start = 0usize;
    for &end in ends {
        let end = end as usize;
        let k = key_bytes
            .get(start..end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| invalid("a name key outside its section or not UTF-8".into()))?;
        keys.push(CompactString::from(k));
        start = end;
    }
    let counts: Vec<u32> = bytemuck::try_cast_slice(s.bytes(20))
        .map_err(|e| invalid(format!("the name counts: {e:?}")))?
        .to_vec();
    if counts.len() != keys.len() {
        return Err(invalid("name keys and counts differ in number".into()));
    }
    let frequencies = super::score::NameFrequencies::from_parts(keys, counts, total, u_average);

    let parts = super::blocking::IndexParts {
        exact_id,
        id_without_region,
        deletions,
        name_start: s.slab(9)?,
        name_persons: s.slab(10)?,
        name_days: s.slab(11)?,
        name_traits: s.slab(12)?,
        views: s.slab(13)?,
        rank,
        names,
        forms: s.slab(16)?,
        key_folded: s.slab(17)?,
        frequencies,
    };
    let index = RosterIndex::from_parts(persons, rules, parts).map_err(invalid)?;
    index.check_sample(64).map_err(invalid)?;
    Ok(Some(index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::compare::tests::{d, person, record_of};
    use crate::model::MatchRecord;

    fn roster() -> Vec<Person> {
        let names = [
            "王秀英",
            "李建国",
            "欧阳澹",
            "张伟",
            "阿依古丽·买买提",
            "刘德华",
        ];
        let mut v: Vec<Person> = (0..3000u16)
            .map(|i| {
                person(
                    &format!("P{i:05}"),
                    names[usize::from(i) % names.len()],
                    ["440304", "510104", "110101"][usize::from(i) % 3],
                    d(
                        1930 + i32::from(i % 40),
                        1 + u32::from(i % 12),
                        1 + u32::from(i % 28),
                    ),
                    i,
                )
            })
            .collect();
        v.sort_by(|a, b| a.person_no.cmp(&b.person_no));
        v
    }

    /// [`with_index`]'s index, returned, its file written before.
    fn load_or_build<'a>(
        path: Option<&Path>,
        persons: &'a [Person],
        rules: &MatchRules,
    ) -> (RosterIndex<'a>, IndexFrom) {
        let (index, from, to_write) = open_or_build(path, persons, rules);
        if let Some((path, fingerprint)) = to_write {
            write_logged(&index, path, fingerprint);
        }
        (index, from)
    }

    /// Where the index of `persons` under `rules` comes from at `path`.
    fn index_from(path: &Path, persons: &[Person], rules: &MatchRules) -> IndexFrom {
        load_or_build(Some(path), persons, rules).1
    }

    #[test]
    fn a_written_index_maps_back_to_the_same_candidates() {
        let persons = roster();
        let rules = MatchRules::default_rules();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite.index");
        let (built, from) = load_or_build(Some(&path), &persons, &rules);
        assert_eq!(from, IndexFrom::Built);
        assert!(path.exists());
        let (mapped, from) = load_or_build(Some(&path), &persons, &rules);
        assert_eq!(from, IndexFrom::File);
        assert!(built.approx_bytes() > mapped.approx_bytes());
        assert_eq!(
            mapped.name_frequencies().len(),
            built.name_frequencies().len()
        );
        let mut searched = 0;
        for p in persons.iter().step_by(7) {
            // By ID; by name and birth date without one; by a near spelling.
            let by_id = record_of(p, "k");
            let no_id = MatchRecord::new("funeral", "k", &p.name, "", by_id.death_date);
            let mut no_id = MatchRecord {
                birth_date: Some(p.birth_date),
                ..no_id
            };
            let near = p.name.replace('英', "瑛").replace('伟', "玮");
            let mut misspelt = MatchRecord::new("funeral", "k", &near, "", by_id.death_date);
            misspelt.birth_date = Some(p.birth_date);
            no_id.sex = Some(p.sex);
            for record in [by_id, no_id, misspelt] {
                let got = mapped.candidates(&record);
                assert_eq!(got, built.candidates(&record), "{}", p.person_no);
                searched += got.person_indices.len();
            }
        }
        assert!(
            searched > persons.len(),
            "the searches found candidates: {searched}"
        );
    }

    #[test]
    fn another_roster_or_other_rules_build_again() {
        let mut persons = roster();
        let rules = MatchRules::default_rules();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite.index");
        index_from(&path, &persons, &rules);
        // One changed birth date is another roster.
        persons[17].birth_date = d(1931, 2, 3);
        assert_eq!(index_from(&path, &persons, &rules), IndexFrom::Built);
        assert_eq!(index_from(&path, &persons, &rules), IndexFrom::File);
        let mut other = rules.clone();
        other.blocking.max_block += 1;
        assert_eq!(index_from(&path, &persons, &other), IndexFrom::Built);
    }

    #[test]
    fn a_damaged_file_is_built_again_not_trusted() {
        let persons = roster();
        let rules = MatchRules::default_rules();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite.index");
        index_from(&path, &persons, &rules);
        let bytes = std::fs::read(&path).unwrap();
        // Cut short: the table points past the end.
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(index_from(&path, &persons, &rules), IndexFrom::Built);
        // Every person's birth date in their view one day off: the file is
        // well formed, only the sample check can tell.
        let mut bytes = std::fs::read(&path).unwrap();
        let header = 8 + SCALARS * 8;
        let at = header + 13 * 16;
        let views_at = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        for view in bytes[views_at..views_at + 16 * persons.len()].chunks_mut(16) {
            view[0] ^= 0x01;
        }
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(index_from(&path, &persons, &rules), IndexFrom::Built);
        assert_eq!(index_from(&path, &persons, &rules), IndexFrom::File);
    }
}
