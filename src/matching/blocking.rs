//! Blocking: the in-memory indexes over the active roster that propose, for
//! each death record, the few pensioners worth comparing, and the per-name
//! features every comparison with a roster person reads. This module owns
//! the indexes and the block caps; it must never score or judge a pair, and
//! it must never let one block explode: a lookup that would return more than
//! `blocking.max_block` persons is cut (keeping those who agree on sex and
//! region, then roster order) and reported in [`Candidates::capped_blocks`].
//!
//! Memory: every index is a sorted vector of (64-bit key, u32 roster index)
//! pairs with a directory over the keys' top bits, so a lookup is one
//! directory read and a short search, and ten million pensioners cost about
//! 16 bytes per entry and index. No name or ID string is copied except the
//! distinct name keys. Name keys in the composite keys are hashed (FNV-1a);
//! a hash collision only adds a candidate, which scoring then rejects.
//!
//! Near spellings (one edit on the pinyin key) are found through a
//! deletion index: every distinct key and every key with one character
//! deleted, hashed; two keys within one edit share an entry. That answers
//! in a few lookups what a Levenshtein automaton over the fst of keys took
//! tens of microseconds to build per record; the fst is still used for the
//! distance-2 setting.

use ahash::AHashMap;
use chrono::{Datelike, NaiveDate};
use compact_str::CompactString;
use fst::automaton::Levenshtein;
use fst::{IntoStreamer, Streamer};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::compare::{
    NOT_A_CITY, NameForm, PersonView, PreparedRecord, RegionLevel, city_of, coded_region_level,
    county_of,
};
use super::index_file::Slab;
use super::rules::{BlockingRules, MatchRules};
use super::score::NameFrequencies;
use crate::model::{IdStatus, MatchRecord, Person};

/// Which index a block came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    ExactId,
    RepairedId,
    IdWithoutRegion,
    NameBirthDate,
    NameBirthYear,
    FuzzyNameBirthDate,
    FuzzyNameBirthYear,
}

/// A block that was larger than the cap and was cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CappedBlock {
    pub kind: BlockKind,
    /// The name key searched, for name blocks (never an ID).
    pub name_key: Option<String>,
    /// Persons in the block before the cut.
    pub size: usize,
    /// Persons kept.
    pub kept: usize,
}

/// The persons a record should be compared with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    /// Indices into the roster slice, sorted and without duplicates.
    pub person_indices: Vec<u32>,
    pub capped_blocks: Vec<CappedBlock>,
}

/// splitmix64's finaliser: a bijection that spreads keys (ID digits are
/// far from uniform) over the directory's top bits without adding collisions.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A sorted multimap from 64-bit keys to roster indices.
#[derive(Debug)]
pub(super) struct KeyIndex {
    /// Mixed keys, ascending; `values[i]` belongs to `keys[i]`.
    keys: Slab<u64>,
    values: Slab<u32>,
    /// `dir[b]..dir[b + 1]` is the range of keys whose top bits are `b`.
    dir: Slab<u32>,
    shift: u32,
}

/// A [`KeyIndex`]'s arrays as the index file gives them back.
pub(super) struct KeyIndexParts {
    pub keys: Slab<u64>,
    pub values: Slab<u32>,
    pub dir: Slab<u32>,
    pub shift: u32,
}

impl KeyIndex {
    fn build(mut pairs: Vec<(u64, u32)>) -> KeyIndex {
        pairs.par_iter_mut().for_each(|p| p.0 = mix(p.0));
        // Values of one key stay in ascending (roster) order.
        pairs.par_sort_unstable();
        pairs.dedup();
        // About one key per directory slot.
        let bits = (usize::BITS - 1 - pairs.len().max(2).leading_zeros()).clamp(1, 26);
        let shift = 64 - bits;
        let mut dir = vec![0u32; (1usize << bits) + 1];
        for &(k, _) in &pairs {
            dir[(k >> shift) as usize + 1] += 1;
        }
        for b in 1..dir.len() {
            dir[b] += dir[b - 1];
        }
        let (keys, values): (Vec<u64>, Vec<u32>) = pairs.into_iter().unzip();
        KeyIndex {
            keys: keys.into(),
            values: values.into(),
            dir: dir.into(),
            shift,
        }
    }

    /// The arrays and the shift, for the index file.
    pub(super) fn parts(&self) -> (&[u64], &[u32], &[u32], u32) {
        (&self.keys, &self.values, &self.dir, self.shift)
    }

    /// Back from the index file, checked so that no lookup can leave the
    /// arrays or return a position outside a roster of `persons`.
    fn from_parts(p: KeyIndexParts, persons: usize) -> Result<KeyIndex, String> {
        let bits = 64u32.checked_sub(p.shift).filter(|b| (1..=26).contains(b));
        let Some(bits) = bits else {
            return Err(format!("a key index with shift {}", p.shift));
        };
        let dir_ok = p.dir.len() == (1usize << bits) + 1
            && p.dir.first() == Some(&0)
            && p.dir.last().map(|&l| l as usize) == Some(p.keys.len())
            && p.dir.windows(2).all(|w| w[0] <= w[1]);
        if !dir_ok || p.keys.len() != p.values.len() {
            return Err("a key index whose directory does not fit its keys".into());
        }
        if p.values.par_iter().any(|&v| v as usize >= persons) {
            return Err("a key index pointing outside the roster".into());
        }
        Ok(KeyIndex {
            keys: p.keys,
            values: p.values,
            dir: p.dir,
            shift: p.shift,
        })
    }

    fn get(&self, key: u64) -> &[u32] {
        let k = mix(key);
        let b = (k >> self.shift) as usize;
        let (lo, hi) = (self.dir[b] as usize, self.dir[b + 1] as usize);
        let slot = &self.keys[lo..hi];
        let start = slot.partition_point(|&x| x < k);
        let end = start + slot[start..].partition_point(|&x| x == k);
        &self.values[lo + start..lo + end]
    }

    fn bytes(&self) -> usize {
        self.keys.heap_bytes() + self.values.heap_bytes() + self.dir.heap_bytes()
    }
}

/// The blocking indexes over one roster.
pub struct RosterIndex<'a> {
    persons: &'a [Person],
    rules: BlockingRules,
    exact_id: KeyIndex,
    id_without_region: KeyIndex,
    /// Persons by name key: those whose key has id `k` in `frequencies` are
    /// `name_persons[name_start[k]..name_start[k + 1]]`, ordered by birth
    /// date, whose day numbers `name_days` holds alongside. A name-and-date
    /// block and a name-and-years block are both one range of it.
    name_start: Slab<u32>,
    name_persons: Slab<u32>,
    name_days: Slab<i32>,
    /// The same persons' sex and cities, alongside: an oversized name block
    /// is ranked reading this slice in order, not the whole roster at random.
    name_traits: Slab<Traits>,
    /// Each person's packed comparison fields (name form, birth, sex,
    /// cities): what ranks an oversized block and compares a record without
    /// an ID, without reading the roster itself.
    views: Slab<PersonView>,
    /// Each person's position in person-number order (the tie-break of
    /// equal scores); `None` when the roster is in that order already, as
    /// the store loads it.
    rank: Option<Slab<u32>>,
    /// Distinct name keys and every one-deletion of each, hashed, to the
    /// key's id in `frequencies` (built when a distance of 1 is configured).
    deletions: Option<KeyIndex>,
    /// Distinct name keys (value: count), searched with Levenshtein
    /// automata (built only when a distance of 2 is configured).
    names: Option<fst::Map<Vec<u8>>>,
    frequencies: NameFrequencies,
    /// What comparing a name needs, once per distinct (name_norm, name_key).
    forms: Slab<NameForm>,
    /// By key id: the folded hash ([`NameForm::folded_hash`]) all the key's
    /// forms share, or [`MIXED_FOLDS`] when they differ.
    key_folded: Slab<u64>,
    /// Near spellings of a record with birth years only are searched only
    /// when they sound alike: set by [`RosterIndex::build_for`] when the
    /// scoring rules let no other such pair reach `review`.
    near_years_sound_alike_only: bool,
}

/// A [`RosterIndex`]'s arrays, borrowed for the index file.
pub(super) struct IndexPartsRef<'i> {
    pub exact_id: &'i KeyIndex,
    pub id_without_region: &'i KeyIndex,
    pub deletions: Option<&'i KeyIndex>,
    pub name_start: &'i [u32],
    pub name_persons: &'i [u32],
    pub name_days: &'i [i32],
    pub name_traits: &'i [Traits],
    pub views: &'i [PersonView],
    pub rank: Option<&'i [u32]>,
    pub names: Option<&'i [u8]>,
    pub forms: &'i [NameForm],
    pub key_folded: &'i [u64],
}

/// A [`RosterIndex`]'s arrays as the index file gives them back.
pub(super) struct IndexParts {
    pub exact_id: KeyIndexParts,
    pub id_without_region: KeyIndexParts,
    pub deletions: Option<KeyIndexParts>,
    pub name_start: Slab<u32>,
    pub name_persons: Slab<u32>,
    pub name_days: Slab<i32>,
    pub name_traits: Slab<Traits>,
    pub views: Slab<PersonView>,
    pub rank: Option<Slab<u32>>,
    pub names: Option<fst::Map<Vec<u8>>>,
    pub forms: Slab<NameForm>,
    pub key_folded: Slab<u64>,
    pub frequencies: NameFrequencies,
}

/// [`RosterIndex::key_folded`] of a key whose forms fold differently.
const MIXED_FOLDS: u64 = u64::MAX;

/// By key id, the folded hash shared by all the key's forms.
fn key_folds(forms: &[NameForm], keys: usize) -> Vec<u64> {
    let mut out: Vec<Option<u64>> = vec![None; keys];
    for f in forms {
        if let Some(k) = f.key_id() {
            let slot = &mut out[k as usize];
            *slot = match *slot {
                None => Some(f.folded_hash()),
                Some(h) if h == f.folded_hash() => Some(h),
                Some(_) => Some(MIXED_FOLDS),
            };
        }
    }
    out.into_iter().map(|h| h.unwrap_or(MIXED_FOLDS)).collect()
}

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// A person's name form, sex, and the cities and counties of their two
/// regions ([`city_of`], [`county_of`]): what ranks the persons of an
/// oversized block.
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub(super) struct Traits {
    form: u32,
    insured_city: u16,
    residence_city: u16,
    sex: u8,
    insured_county: u8,
    residence_county: u8,
    _pad: u8,
}

impl From<&PersonView> for Traits {
    fn from(v: &PersonView) -> Traits {
        Traits {
            form: v.form,
            insured_city: v.insured_city,
            residence_city: v.residence_city,
            sex: v.sex,
            insured_county: v.insured_county,
            residence_county: v.residence_county,
            _pad: 0,
        }
    }
}

/// The first 17 digits as a number (the 18th is implied by them).
fn id_key(id: &str) -> Option<u64> {
    digits(id.get(..17)?)
}

/// Digits 7-17: birth date and sequence, without region or check digit.
fn id_without_region_key(id: &str) -> Option<u64> {
    digits(id.get(6..17)?)
}

fn digits(s: &str) -> Option<u64> {
    s.bytes().try_fold(0u64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// The hash of `key` with the character at byte range `skip` left out
/// (`skip` empty: the whole key). Deletions that give the same string give
/// the same hash, whichever character went.
fn deletion_hash(key: &str, skip: std::ops::Range<usize>) -> u64 {
    let b = key.as_bytes();
    fnv(&b[skip.end..], fnv(&b[..skip.start], FNV_OFFSET ^ 0xd1))
}

/// The key itself and each of its one-character deletions, hashed.
fn deletion_variants(key: &str) -> impl Iterator<Item = u64> + '_ {
    std::iter::once(deletion_hash(key, 0..0)).chain(
        key.char_indices()
            .map(move |(i, c)| deletion_hash(key, i..i + c.len_utf8())),
    )
}

/// Levenshtein distance (on characters) of at most one.
fn within_one_edit(a: &str, b: &str) -> bool {
    let prefix: usize = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .sum();
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    fn tail(s: &str) -> &str {
        s.chars().next().map_or("", |c| &s[c.len_utf8()..])
    }
    let (ta, tb) = (tail(ra), tail(rb));
    ra == rb || ta == tb || ta == rb || ra == tb
}

impl<'a> RosterIndex<'a> {
    /// Builds every index over the roster, in parallel.
    /// [`RosterIndex::build`] for matching under `rules`: near spellings of
    /// a record that gives only an age are looked up only when they sound
    /// alike, if the rules let no pair of another sounding name, no ID and
    /// an age reach `review` (they would be scored only to be dropped).
    pub fn build_for(persons: &'a [Person], rules: &MatchRules) -> RosterIndex<'a> {
        let mut index = RosterIndex::build(persons, &rules.blocking);
        index.set_rules_for(rules);
        index
    }

    /// The indexes over `persons`; every near spelling is searched (see
    /// [`RosterIndex::build_for`]).
    pub fn build(persons: &'a [Person], rules: &BlockingRules) -> RosterIndex<'a> {
        assert!(
            persons.len() < u32::MAX as usize,
            "roster larger than u32 indices"
        );
        let collect = |f: &(dyn Fn(&Person) -> Option<u64> + Sync)| -> Vec<(u64, u32)> {
            persons
                .par_iter()
                .enumerate()
                .filter_map(|(i, p)| f(p).map(|k| (k, i as u32)))
                .collect()
        };
        let ((exact_id, id_without_region), (frequencies, forms, form_of)) = rayon::join(
            || {
                rayon::join(
                    || KeyIndex::build(collect(&|p| id_key(&p.id_number))),
                    || KeyIndex::build(collect(&|p| id_without_region_key(&p.id_number))),
                )
            },
            || name_forms(persons),
        );
        let (views, rank) = rayon::join(
            || {
                persons
                    .par_iter()
                    .zip(form_of.par_iter())
                    .map(|(p, &f)| PersonView::of(p, f))
                    .collect::<Vec<_>>()
            },
            || person_ranks(persons),
        );
        drop(form_of);
        let (name_start, name_persons, name_days, name_traits) =
            by_name(&views, &forms, frequencies.len());
        let key_folded = key_folds(&forms, frequencies.len());
        let wants = |d: u32| rules.fst_distance_short == d || rules.fst_distance_long == d;
        let deletions = wants(1).then(|| {
            KeyIndex::build(
                (0..frequencies.len() as u32)
                    .into_par_iter()
                    .flat_map_iter(|id| {
                        let key = frequencies.key(id);
                        deletion_variants(key)
                            .map(move |h| (h, id))
                            .collect::<Vec<_>>()
                    })
                    .collect(),
            )
        });
        let names = (rules.fst_distance_short >= 2 || rules.fst_distance_long >= 2).then(|| {
            fst::Map::from_iter(
                (0..frequencies.len() as u32).map(|id| (frequencies.key(id), u64::from(id))),
            )
            .unwrap_or_default()
        });
        RosterIndex {
            persons,
            rules: rules.clone(),
            exact_id,
            id_without_region,
            name_start: name_start.into(),
            name_persons: name_persons.into(),
            name_days: name_days.into(),
            name_traits: name_traits.into(),
            views: views.into(),
            rank: rank.map(Slab::from),
            deletions,
            names,
            frequencies,
            forms: forms.into(),
            key_folded: key_folded.into(),
            near_years_sound_alike_only: false,
        }
    }

    /// What [`RosterIndex::build_for`] sets from the scoring rules, for an
    /// index that came from the file.
    pub(super) fn set_rules_for(&mut self, rules: &MatchRules) {
        self.near_years_sound_alike_only =
            rules.best_without_id_or_sound_by_age() < rules.thresholds.review;
    }

    /// Every array, for the index file.
    pub(super) fn parts(&self) -> IndexPartsRef<'_> {
        IndexPartsRef {
            exact_id: &self.exact_id,
            id_without_region: &self.id_without_region,
            deletions: self.deletions.as_ref(),
            name_start: &self.name_start,
            name_persons: &self.name_persons,
            name_days: &self.name_days,
            name_traits: &self.name_traits,
            views: &self.views,
            rank: self.rank.as_deref(),
            names: self.names.as_ref().map(|n| n.as_fst().as_bytes()),
            forms: &self.forms,
            key_folded: &self.key_folded,
        }
    }

    /// An index back from the file over `persons`, checked so that no
    /// lookup can leave its arrays or the roster: every stored position
    /// inside the roster, every range inside its array, every form and key
    /// id inside theirs. (Whether the entries are right for these persons
    /// is [`RosterIndex::check_sample`]'s question.)
    pub(super) fn from_parts(
        persons: &'a [Person],
        rules: &BlockingRules,
        p: IndexParts,
    ) -> Result<RosterIndex<'a>, String> {
        let n = persons.len();
        let keys = p.frequencies.len();
        let forms = p.forms.len();
        let exact_id = KeyIndex::from_parts(p.exact_id, n)?;
        let id_without_region = KeyIndex::from_parts(p.id_without_region, n)?;
        let deletions = p
            .deletions
            .map(|d| KeyIndex::from_parts(d, keys))
            .transpose()?;
        let entries = p.name_persons.len();
        let checks = [
            (p.views.len() == n, "one view per person"),
            (p.name_start.len() == keys + 1, "one name range per key"),
            (
                p.name_start.first() == Some(&0)
                    && p.name_start.last().map(|&l| l as usize) == Some(entries)
                    && p.name_start.windows(2).all(|w| w[0] <= w[1]),
                "name ranges in order and inside the name entries",
            ),
            (
                p.name_days.len() == entries && p.name_traits.len() == entries,
                "name entries of one length",
            ),
            (
                p.name_persons.par_iter().all(|&i| (i as usize) < n),
                "name entries inside the roster",
            ),
            (
                p.views.par_iter().all(|v| (v.form as usize) < forms)
                    && p.name_traits.par_iter().all(|t| (t.form as usize) < forms),
                "name forms inside the forms",
            ),
            (
                p.forms
                    .iter()
                    .all(|f| f.key_id().is_none_or(|k| (k as usize) < keys)),
                "name keys inside the keys",
            ),
            (p.key_folded.len() == keys, "one folded hash per key"),
            (
                p.rank.as_ref().is_none_or(|r| r.len() == n),
                "one rank per person",
            ),
        ];
        if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(format!("the index file does not have {what}"));
        }
        Ok(RosterIndex {
            persons,
            rules: rules.clone(),
            exact_id,
            id_without_region,
            name_start: p.name_start,
            name_persons: p.name_persons,
            name_days: p.name_days,
            name_traits: p.name_traits,
            views: p.views,
            rank: p.rank,
            deletions,
            names: p.names,
            frequencies: p.frequencies,
            forms: p.forms,
            key_folded: p.key_folded,
            near_years_sound_alike_only: false,
        })
    }

    /// Recomputes the entries of `samples` persons spread over the roster
    /// from the persons themselves and compares: their view, their name
    /// form, their key's frequency, their place in the ID index. A file
    /// written by a build that derived any of these otherwise fails here.
    pub(super) fn check_sample(&self, samples: usize) -> Result<(), String> {
        let n = self.persons.len();
        if n == 0 {
            return Ok(());
        }
        let step = (n / samples.max(1)).max(1);
        for i in (0..n).step_by(step).chain([n - 1]) {
            let p = &self.persons[i];
            let view = &self.views[i];
            let key_id = self.frequencies.id(&p.name_key);
            let form = NameForm::new(&p.name_norm, key_id);
            let id_ok =
                id_key(&p.id_number).is_none_or(|k| self.exact_id.get(k).contains(&(i as u32)));
            let ok = *view == PersonView::of(p, view.form)
                && self.forms[view.form as usize] == form
                && key_id.is_none_or(|k| self.frequencies.key(k) == p.name_key)
                && id_ok;
            if !ok {
                return Err(format!(
                    "the index file's entries for person {i} are not what this roster gives"
                ));
            }
        }
        Ok(())
    }

    pub fn persons(&self) -> &'a [Person] {
        self.persons
    }

    pub fn name_frequencies(&self) -> &NameFrequencies {
        &self.frequencies
    }

    /// Orders two persons by person number (through their ranks).
    pub(crate) fn person_order(&self, a: u32, b: u32) -> std::cmp::Ordering {
        self.person_rank(a).cmp(&self.person_rank(b))
    }

    /// Person `i`'s position in person-number order.
    pub(crate) fn person_rank(&self, i: u32) -> u32 {
        match &self.rank {
            None => i,
            Some(r) => r[i as usize],
        }
    }

    /// The name features of person `i` (see [`NameForm`]) and the id of
    /// their name form: persons with the same form compare alike by name.
    #[cfg(test)]
    pub(crate) fn name_form(&self, i: u32) -> (u32, &NameForm) {
        let f = self.views[i as usize].form;
        (f, &self.forms[f as usize])
    }

    /// The name form numbered `f`.
    pub(crate) fn form(&self, f: u32) -> &NameForm {
        &self.forms[f as usize]
    }

    /// Person `i`'s packed comparison fields.
    pub(crate) fn view(&self, i: u32) -> &PersonView {
        &self.views[i as usize]
    }

    /// Approximate heap bytes of the indexes (not of the roster itself).
    pub fn approx_bytes(&self) -> usize {
        self.exact_id.bytes()
            + self.id_without_region.bytes()
            + self.name_start.heap_bytes()
            + self.name_persons.heap_bytes()
            + self.name_days.heap_bytes()
            + self.name_traits.heap_bytes()
            + self.views.heap_bytes()
            + self.rank.as_ref().map_or(0, Slab::heap_bytes)
            + self.deletions.as_ref().map_or(0, KeyIndex::bytes)
            + self
                .names
                .as_ref()
                .map_or(0, |n| n.as_fst().as_bytes().len())
            + self.frequencies.approx_bytes()
            + self.forms.heap_bytes()
            + self.key_folded.heap_bytes()
    }

    /// The persons whose valid ID is exactly this number.
    pub fn by_id(&self, id: &str) -> &[u32] {
        id_key(id).map_or(&[], |k| self.exact_id.get(k))
    }

    pub fn candidates(&self, record: &MatchRecord) -> Candidates {
        self.candidates_prepared(&PreparedRecord::new(record))
    }

    pub fn candidates_prepared(&self, rec: &PreparedRecord<'_>) -> Candidates {
        let record = rec.record;
        let mut out = Candidates::default();
        let mut found: Vec<u32> = Vec::new();
        let id = record.id_number.as_deref();
        if let Some(id) = id {
            self.take(
                BlockKind::ExactId,
                None,
                self.by_id(id),
                None,
                rec,
                &mut found,
                &mut out,
            );
            if let Some(k) = id_without_region_key(id) {
                self.take(
                    BlockKind::IdWithoutRegion,
                    None,
                    self.id_without_region.get(k),
                    None,
                    rec,
                    &mut found,
                    &mut out,
                );
            }
        }
        if record.id_status == IdStatus::Invalid {
            for c in &rec.repairs {
                self.take(
                    BlockKind::RepairedId,
                    None,
                    self.by_id(c.as_str()),
                    None,
                    rec,
                    &mut found,
                    &mut out,
                );
            }
        }
        let id_found = !found.is_empty();
        let key = record.name_key.as_str();
        if !key.is_empty() {
            let birth = record.effective_birth_date();
            let years = birth_years(record);
            if let Some(id) = self.frequencies.id(key) {
                self.name_blocks(id, birth, years, false, rec, &mut found, &mut out);
            }
            // Near spellings only when the record has no valid ID (none, or
            // a broken one that led nowhere): the costliest lookups. An
            // agreeing ID already found the person; a valid ID that is no
            // pensioner's says the person most likely is none (the exact
            // name with the birth date is still looked up, since one
            // mistyped digit can make another valid number, but a mistyped
            // ID and a misspelled name together are beyond the search).
            if (birth.is_some() || years.is_some())
                && !id_found
                && record.id_status != IdStatus::Valid
            {
                for near in self.near_keys(key) {
                    // With birth years only, a near spelling's namesakes
                    // reach `review` only when the names sound alike
                    // (`confusable`): at `similar` a name, an age, the sex
                    // and the county sum to less than the threshold
                    // (`build_for`). The others would be scored only to be
                    // dropped; for records of an age and a common name
                    // they were most of the matcher's work.
                    let folded = self.key_folded[near as usize];
                    let sounds_alike = !self.near_years_sound_alike_only
                        || folded == rec.folded_hash()
                        || folded == MIXED_FOLDS;
                    let years = years.filter(|_| sounds_alike);
                    self.name_blocks(near, birth, years, true, rec, &mut found, &mut out);
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        out.person_indices = found;
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn name_blocks(
        &self,
        key_id: u32,
        birth: Option<NaiveDate>,
        years: Option<(i32, i32)>,
        fuzzy: bool,
        rec: &PreparedRecord<'_>,
        found: &mut Vec<u32>,
        out: &mut Candidates,
    ) {
        let (date_kind, year_kind) = if fuzzy {
            (BlockKind::FuzzyNameBirthDate, BlockKind::FuzzyNameBirthYear)
        } else {
            (BlockKind::NameBirthDate, BlockKind::NameBirthYear)
        };
        let key = self.frequencies.key(key_id);
        let (lo, hi) = (
            self.name_start[key_id as usize] as usize,
            self.name_start[key_id as usize + 1] as usize,
        );
        let days = &self.name_days[lo..hi];
        let born = |from: i32, to: i32| {
            let a = days.partition_point(|&d| d < from);
            let b = a + days[a..].partition_point(|&d| d <= to);
            (
                &self.name_persons[lo + a..lo + b],
                Some(&self.name_traits[lo + a..lo + b]),
            )
        };
        if let Some(b) = birth {
            let d = b.num_days_from_ce();
            let (hits, traits) = born(d, d);
            self.take(date_kind, Some(key), hits, traits, rec, found, out);
            // A day and month swapped by a clerk still meets its person.
            if let Some(s) =
                NaiveDate::from_ymd_opt(b.year(), b.day(), b.month()).filter(|&s| s != b)
            {
                let d = s.num_days_from_ce();
                let (hits, traits) = born(d, d);
                self.take(date_kind, Some(key), hits, traits, rec, found, out);
            }
        }
        if let Some((lo, hi)) = years {
            let from = NaiveDate::from_ymd_opt(lo, 1, 1).map_or(i32::MIN, |d| d.num_days_from_ce());
            let to = NaiveDate::from_ymd_opt(hi, 12, 31).map_or(i32::MAX, |d| d.num_days_from_ce());
            let (hits, traits) = born(from, to);
            self.take(year_kind, Some(key), hits, traits, rec, found, out);
        }
    }

    /// Distinct roster name keys within the configured edit distance, the
    /// key itself excluded, at most `max_fuzzy_keys`, in lexicographic order
    /// (most frequent first would favour the wrong people; lexicographic
    /// order is deterministic). Returned as ids in `frequencies`, whose ids
    /// follow the keys' lexicographic order.
    fn near_keys(&self, key: &str) -> Vec<u32> {
        let dist = if key.chars().count() <= self.rules.short_key_len {
            self.rules.fst_distance_short
        } else {
            self.rules.fst_distance_long
        };
        let mut out = Vec::new();
        match dist {
            0 => {}
            1 => {
                let Some(del) = &self.deletions else {
                    return out;
                };
                for h in deletion_variants(key) {
                    for &id in del.get(h) {
                        let k = self.frequencies.key(id);
                        if k != key && within_one_edit(k, key) {
                            out.push(id);
                        }
                    }
                }
                out.sort_unstable();
                out.dedup();
                out.truncate(self.rules.max_fuzzy_keys);
            }
            _ => {
                let (Some(names), Ok(aut)) = (&self.names, Levenshtein::new(key, dist)) else {
                    return out;
                };
                let mut stream = names.search(aut).into_stream();
                while let Some((k, id)) = stream.next() {
                    if k != key.as_bytes() {
                        out.push(id as u32);
                        if out.len() >= self.rules.max_fuzzy_keys {
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// Adds a block's persons, cutting it to the cap when oversized.
    /// `traits`, when given, holds the hits' traits in the same order.
    #[allow(clippy::too_many_arguments)]
    fn take(
        &self,
        kind: BlockKind,
        name_key: Option<&str>,
        hits: &[u32],
        traits: Option<&[Traits]>,
        rec: &PreparedRecord<'_>,
        found: &mut Vec<u32>,
        out: &mut Candidates,
    ) {
        let cap = self.rules.max_block;
        if hits.len() <= cap {
            found.extend_from_slice(hits);
            return;
        }
        // Keep those most like the record first: the same city (2), the
        // same county within it (1), the same sex (1), a name that sounds
        // the same with its tones (1); then roster order.
        let record = rec.record;
        let theirs = record.region.as_deref().and_then(|r| r.get(..4));
        let their_city = theirs.map_or(NOT_A_CITY, city_of);
        let their_county = record.region.as_deref().map_or(0, county_of);
        let their_toned = rec.toned_hash();
        let mut ranked: Vec<(u8, u32)> = hits
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let t = traits.map_or_else(|| Traits::from(&self.views[i as usize]), |ts| ts[k]);
                let sex = record.sex.is_some_and(|s| s == t.sex);
                let (city, county) = match theirs {
                    None => (false, false),
                    Some(_)
                        if their_city != NOT_A_CITY
                            && t.insured_city != NOT_A_CITY
                            && t.residence_city != NOT_A_CITY =>
                    {
                        let level = coded_region_level(
                            (t.insured_city, t.insured_county),
                            (t.residence_city, t.residence_county),
                            (their_city, their_county),
                        );
                        let county = level == RegionLevel::County;
                        (county || level == RegionLevel::City, county)
                    }
                    Some(r) => {
                        let p = &self.persons[i as usize];
                        let city = p.insured_region.get(..4) == Some(r)
                            || p.residence_region.get(..4) == Some(r);
                        (city, false)
                    }
                };
                let toned = self.forms[t.form as usize].toned_hash() == their_toned;
                let closeness =
                    2 * u8::from(city) + u8::from(county) + u8::from(sex) + u8::from(toned);
                (5 - closeness, i)
            })
            .collect();
        // The cap smallest (rank, roster index); their order does not
        // matter, the candidates are sorted in the end.
        ranked.select_nth_unstable(cap.saturating_sub(1));
        found.extend(ranked.iter().take(cap).map(|&(_, i)| i));
        out.capped_blocks.push(CappedBlock {
            kind,
            name_key: name_key.map(str::to_string),
            size: hits.len(),
            kept: cap,
        });
    }
}

/// The roster's distinct names: their keys' frequencies, one [`NameForm`]
/// per distinct (name_norm, name_key), and each person's form. Forms are
/// numbered in (name_norm, name_key) order, keys in key order, so the same
/// roster always gives the same numbers.
fn name_forms(persons: &[Person]) -> (NameFrequencies, Vec<NameForm>, Vec<u32>) {
    type Forms<'p> = AHashMap<(&'p str, &'p str), u32>;
    /// A part's forms in order of first sight with their counts, and each
    /// of its persons' form in that numbering.
    type Part<'p> = (Vec<((&'p str, &'p str), u32)>, Vec<u32>);
    // One look-up per person: each core numbers the forms of its own part
    // of the roster in order of first sight, counting them; the parts'
    // forms are then merged, sorted, and renumbered part by part. (A count
    // and then a second look-up per person were half the index build at
    // ten million pensioners.)
    let part = persons
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(1);
    let parts: Vec<Part<'_>> = persons
        .par_chunks(part)
        .map(|ps| {
            let mut ids: Forms<'_> = Forms::new();
            let mut seen: Vec<((&str, &str), u32)> = Vec::new();
            let local = ps
                .iter()
                .map(|p| {
                    let form = (p.name_norm.as_str(), p.name_key.as_str());
                    let id = *ids.entry(form).or_insert_with(|| {
                        seen.push((form, 0));
                        (seen.len() - 1) as u32
                    });
                    seen[id as usize].1 += 1;
                    id
                })
                .collect();
            (seen, local)
        })
        .collect();
    let mut counts: Forms<'_> = Forms::new();
    for (seen, _) in &parts {
        for &(form, n) in seen {
            *counts.entry(form).or_insert(0) += n;
        }
    }
    let mut distinct: Vec<((&str, &str), u32)> = counts.into_iter().collect();
    distinct.par_sort_unstable();
    let mut key_counts: AHashMap<CompactString, u32> = AHashMap::new();
    for &((_, key), n) in &distinct {
        if !key.is_empty() {
            *key_counts.entry(CompactString::from(key)).or_insert(0) += n;
        }
    }
    let frequencies = NameFrequencies::from_counts(key_counts);
    let forms: Vec<NameForm> = distinct
        .par_iter()
        .map(|&((norm, key), _)| NameForm::new(norm, frequencies.id(key)))
        .collect();
    let ids: Forms<'_> = distinct
        .iter()
        .enumerate()
        .map(|(i, &(k, _))| (k, i as u32))
        .collect();
    let mut form_of = Vec::with_capacity(persons.len());
    for (seen, local) in &parts {
        let renumber: Vec<u32> = seen.par_iter().map(|(form, _)| ids[form]).collect();
        form_of.par_extend(local.par_iter().map(|&l| renumber[l as usize]));
    }
    (frequencies, forms, form_of)
}

/// The name index (see `RosterIndex::name_start`): persons with a name
/// key, grouped by key id, by birth date within a key, then roster order,
/// with their traits alongside.
fn by_name(
    views: &[PersonView],
    forms: &[NameForm],
    keys: usize,
) -> (Vec<u32>, Vec<u32>, Vec<i32>, Vec<Traits>) {
    let mut entries: Vec<(u32, i32, u32)> = views
        .par_iter()
        .enumerate()
        .filter_map(|(i, v)| {
            forms[v.form as usize]
                .key_id()
                .map(|k| (k, v.birth().num_days_from_ce(), i as u32))
        })
        .collect();
    entries.par_sort_unstable();
    let mut start = vec![0u32; keys + 1];
    for &(k, _, _) in &entries {
        start[k as usize + 1] += 1;
    }
    for k in 1..start.len() {
        start[k] += start[k - 1];
    }
    let traits = entries
        .par_iter()
        .map(|&(_, _, i)| Traits::from(&views[i as usize]))
        .collect();
    let (days, who): (Vec<i32>, Vec<u32>) = entries.into_par_iter().map(|(_, d, i)| (d, i)).unzip();
    (start, who, days, traits)
}

/// Each person's position in person-number order, or `None` when the
/// roster is in that order (equal numbers keep roster order, as a stable
/// sort by person number would).
fn person_ranks(persons: &[Person]) -> Option<Vec<u32>> {
    if persons
        .par_windows(2)
        .all(|w| w[0].person_no <= w[1].person_no)
    {
        return None;
    }
    let mut order: Vec<u32> = (0..persons.len() as u32).collect();
    order.par_sort_by(|&a, &b| {
        persons[a as usize]
            .person_no
            .cmp(&persons[b as usize].person_no)
    });
    let mut rank = vec![0u32; persons.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i as usize] = r as u32;
    }
    Some(rank)
}

/// The birth years to search: a funeral record's age range; none when the
/// record has a full birth date (its date blocks are narrower).
fn birth_years(record: &MatchRecord) -> Option<(i32, i32)> {
    if record.effective_birth_date().is_some() {
        return None;
    }
    record
        .birth_year_range
        .filter(|(lo, hi)| lo <= hi && hi - lo <= 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::compare::tests::{d, id_for, person, record_of};
    use crate::matching::rules::MatchRules;
    use crate::model::birth_year_range_from_age;

    fn roster() -> Vec<Person> {
        let mut v = vec![
            person("P0", "王秀英", "440304", d(1942, 3, 15), 122),
            person("P1", "李建国", "440304", d(1950, 7, 2), 131),
            person("P2", "欧阳澹", "510104", d(1938, 11, 30), 57),
            person("P3", "张伟", "110101", d(1955, 1, 9), 13),
        ];
        for i in 0..40u16 {
            v.push(person(
                &format!("Q{i}"),
                "刘芳",
                "320102",
                d(1948, 1 + u32::from(i % 12), 1 + u32::from(i % 28)),
                200 + 2 * i,
            ));
        }
        v
    }

    fn rules() -> BlockingRules {
        MatchRules::default_rules().blocking
    }

    fn finds(idx: &RosterIndex<'_>, r: &MatchRecord, want: u32) -> bool {
        idx.candidates(r).person_indices.contains(&want)
    }

    #[test]
    fn an_exact_id_finds_its_person() {
        let ps = roster();
        let idx = RosterIndex::build(&ps, &rules());
        assert!(finds(&idx, &record_of(&ps[1], "k"), 1));
    }

    #[test]
    fn a_swapped_digit_id_finds_the_true_person() {
        let ps = roster();
        let idx = RosterIndex::build(&ps, &rules());
        let mut b = ps[2].id_number.as_bytes().to_vec();
        let i = (8..16).find(|&i| b[i] != b[i + 1]).unwrap();
        b.swap(i, i + 1);
        let r = MatchRecord::new(
            "civil_affairs",
            "k",
            "某某",
            &String::from_utf8(b).unwrap(),
            d(2026, 10, 1),
        );
        assert_eq!(r.id_status, IdStatus::Invalid);
        assert!(finds(&idx, &r, 2));
    }

    #[test]
    fn a_wrong_digit_id_finds_the_true_person() {
        let ps = roster();
        let idx = RosterIndex::build(&ps, &rules());
        let mut b = ps[0].id_number.as_bytes().to_vec();
        b[15] = if b[15] == b'3' { b'4' } else { b'3' };
        let r = MatchRecord::new(
            "funeral",
            "k",
            "某某",
            &String::from_utf8(b).unwrap(),
            d(2026, 10, 1),
        );
        assert!(finds(&idx, &r, 0));
    }

    #[test]
    fn a_fifteen_digit_id_finds_the_true_person() {
        let ps = roster();
        let idx = RosterIndex::build(&ps, &rules());
        let id = &ps[1].id_number;
        let id15 = format!("{}{}", &id[..6], &id[8..17]);
        let r = MatchRecord::new("funeral", "k", "", &id15, d(2026, 10, 1));
        assert!(finds(&idx, &r, 1));
    }

    #[test]
    fn a_recoded_region_finds_the_true_person() {
        let ps = roster();
        let idx = RosterIndex::build(&ps, &rules());
        let recoded = id_for("440399", ps[0].birth_date, 122);
        let r = MatchRecord::new("public_security", "k", "", &recoded, d(2026, 10, 1));
        assert!(finds(&idx, &r, 0));
    }

    #[test]
    fn a_homophone_name_with_birth_date_finds_the_true_person() {
        let ps = roster();
        let idx = RosterIndex::build(&ps, &rules());
        let mut r = MatchRecord::new("civil_affairs", "k", "王秀瑛", "", d(2026, 10, 1));
        r.birth_date = Some(d(1942, 3, 15));
        assert!(finds(&idx, &r, 0));
    }

    #[test]
    fn a_near_spelled_name_is_found_through_the_fst() {
        let ps = roster();
        let idx = RosterIndex::build(&ps, &rules());
        // liu -> niu: one edit on the pinyin key.
        let mut r = MatchRecord::new("civil_affairs", "k", "牛建国", "", d(2026, 10, 1));
        r.birth_date = Some(d(1950, 7, 2));
        let mut r2 = r.clone();
        r2.name_key = "lijianguo".into();
        r.name_key = "lijiangu".into();
        assert!(finds(&idx, &r, 1));
        assert!(finds(&idx, &r2, 1));
    }

    #[test]
    fn an_empty_id_funeral_record_with_age_only_finds_the_true_person() {
        let ps = roster();
        let idx = RosterIndex::build(&ps, &rules());
        let death = d(2026, 10, 1);
        let mut r = MatchRecord::new("funeral", "k", "欧阳澹", "", death);
        r.birth_year_range = Some(birth_year_range_from_age(87, death, 1));
        assert!(finds(&idx, &r, 2));
    }

    #[test]
    fn near_spellings_are_searched_only_for_a_record_without_a_valid_id() {
        let ps = roster();
        let idx = RosterIndex::build(&ps, &rules());
        let mut r = MatchRecord::new("civil_affairs", "k", "李建固", "", d(2026, 10, 1));
        r.birth_date = Some(d(1950, 7, 2));
        assert!(finds(&idx, &r, 1), "no ID: the near spelling is searched");
        // A valid ID that is nobody's on the roster: the person is most
        // likely no pensioner; a misspelled name is not searched as well.
        let stranger = id_for("110101", d(1960, 1, 1), 77);
        let mut valid = MatchRecord::new("civil_affairs", "k", "李建固", &stranger, d(2026, 10, 1));
        valid.birth_date = Some(d(1950, 7, 2));
        assert_eq!(valid.id_status, IdStatus::Valid);
        assert!(!finds(&idx, &valid, 1));
        // The exact name with its birth date still is.
        let mut exact = valid.clone();
        exact.name_key = "lijianguo".into();
        assert!(finds(&idx, &exact, 1));
    }

    #[test]
    fn an_age_only_record_searches_only_near_spellings_that_sound_alike() {
        let ps = roster();
        let rules = MatchRules::default_rules();
        assert!(rules.best_without_id_or_sound_by_age() < rules.thresholds.review);
        let pruned = RosterIndex::build_for(&ps, &rules);
        let full = RosterIndex::build(&ps, &rules.blocking);
        let death = d(2026, 10, 1);
        let aged = |name: &str| {
            let mut r = MatchRecord::new("funeral", "k", name, "", death);
            r.birth_year_range = Some(birth_year_range_from_age(76, death, 1));
            r
        };
        // 尼建国 (ni-) sounds like 李建国 (li-): searched either way.
        let alike = aged("尼建国");
        assert!(finds(&pruned, &alike, 1) && finds(&full, &alike, 1));
        // 李建固 (gu, not guo) is one edit away but does not sound alike:
        // with an age only it cannot reach review, so it is not searched.
        let unlike = aged("李建固");
        assert!(finds(&full, &unlike, 1));
        assert!(!finds(&pruned, &unlike, 1));
        // With a full birth date it still is.
        let mut dated = unlike.clone();
        dated.birth_year_range = None;
        dated.birth_date = Some(d(1950, 7, 2));
        assert!(finds(&pruned, &dated, 1));
    }

    #[test]
    fn oversized_blocks_are_capped_and_reported() {
        let ps = roster();
        let mut rules = rules();
        rules.max_block = 5;
        let idx = RosterIndex::build(&ps, &rules);
        let death = d(2026, 10, 1);
        let mut r = MatchRecord::new("funeral", "k", "刘芳", "", death);
        r.birth_year_range = Some((1947, 1949));
        let c = idx.candidates(&r);
        assert!(c.person_indices.len() <= 5 + 5 * rules.max_fuzzy_keys);
        let cap = c
            .capped_blocks
            .iter()
            .find(|b| b.kind == BlockKind::NameBirthYear)
            .unwrap();
        assert_eq!((cap.size, cap.kept), (40, 5));
        assert_eq!(cap.name_key.as_deref(), Some("liufang"));
    }

    #[test]
    fn candidates_are_sorted_and_deduplicated() {
        let ps = roster();
        let idx = RosterIndex::build(&ps, &rules());
        let c = idx.candidates(&record_of(&ps[0], "k"));
        let mut s = c.person_indices.clone();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s, c.person_indices);
        assert_eq!(c.person_indices.iter().filter(|&&i| i == 0).count(), 1);
    }

    #[test]
    fn indexed_and_packed_comparisons_agree_with_the_reference_comparison() {
        use crate::matching::compare::{
            NameCache, compare_indexed, compare_prepared, compare_without_id,
        };
        let mut ps = roster();
        ps.push(person("T0", "陳秀英", "440304", d(1942, 3, 15), 124));
        ps.push(person("T1", "阿依古丽·买买提", "650102", d(1950, 1, 2), 11));
        ps.push(person("T2", "王 秀英", "44a304", d(1942, 3, 15), 126));
        ps.push(person("T3", "刘秀英", "440305", d(1942, 3, 16), 128));
        let r = MatchRules::default_rules();
        let idx = RosterIndex::build(&ps, &r.blocking);
        let death = d(2026, 10, 1);
        let mut records = Vec::new();
        for (name, id, region) in [
            ("王秀英", "", Some("440304")),
            ("王秀瑛", "", Some("441402")),
            ("陈秀英", "", Some("4403")),
            ("阿依古丽买买提", "", Some("650102")),
            ("牛秀英", "", None),
            ("王秀英华", "", Some("44a3")),
            ("刘芳", "", Some("320102")),
            ("", "", Some("440304")),
            ("王秀英", ps[0].id_number.as_str(), Some("440304")),
            ("李建国", ps[0].id_number.as_str(), Some("110101")),
        ] {
            let mut rec = MatchRecord::new("funeral", "k", name, id, death);
            rec.region = region.map(str::to_string);
            rec.sex = Some(2);
            rec.birth_year_range = Some((1941, 1943));
            records.push(rec);
        }
        for rec in &records {
            let prepared = PreparedRecord::new(rec);
            let key_id = idx.name_frequencies().id(&rec.name_key);
            let (mut a, mut b) = (NameCache::new(), NameCache::new());
            for i in 0..ps.len() as u32 {
                let want = compare_prepared(&ps[i as usize], &prepared, &r);
                let (f, form) = idx.name_form(i);
                let p = &ps[i as usize];
                let got = compare_indexed(p, f, form, &prepared, key_id, &mut a, &r);
                assert_eq!(got, want, "{} vs {}", p.name, rec.name);
                if rec.id_status == IdStatus::Empty {
                    let got =
                        compare_without_id(p, idx.view(i), form, &prepared, key_id, &mut b, &r);
                    assert_eq!(got, want, "{} vs {} (packed)", p.name, rec.name);
                }
            }
        }
    }

    #[test]
    fn name_frequencies_come_from_the_roster() {
        let ps = roster();
        let idx = RosterIndex::build(&ps, &rules());
        let f = idx.name_frequencies();
        assert!(f.frequency("liufang") > f.frequency("wangxiuying"));
        assert_eq!(f.total(), ps.len() as u64);
    }
}
