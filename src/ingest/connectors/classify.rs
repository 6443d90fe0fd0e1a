//! Classifying a batch against what is stored (new, duplicate, correction,
//! stale, non-death) and committing it with its watermarks in one
//! transaction.

use std::collections::HashMap;

use super::definition::Precedence;
use super::definition::{Secret, check_url};
use super::http::Fetcher;
use super::normalise::Normalised;

use super::Ctx;
use super::counts::{PullCounts, PullProgress};
use super::errors::ConnectorError;
use crate::store::deaths::{RecordTable, SourceBatch, StaleVersion, StoredVersion, Watermark};
use crate::store::quarantine::QuarantineEntry;

/// A Bloom filter of record keys, of a fixed size whatever the number of
/// records (memory stays flat; at 10M keys about one in four unseen keys
/// is a false "maybe", which only costs a lookup).
///
/// Why: on a first load nothing is stored but what this pull stored, so a
/// key the filter has never seen cannot be stored, and the stored-version
/// lookup (with the insert, most of the committing thread's time) is needed
/// only for the keys it may have seen. No other writer adds records of the
/// source meanwhile: the pull holds the source's lock.
///
/// Blocked: a key's four bits lie in one 64-bit word, so testing and adding
/// it costs one cache miss, not eight.
pub(super) struct KeyFilter {
    pub(super) words: Vec<u64>,
    pub(super) hasher: ahash::RandomState,
}

impl KeyFilter {
    /// 2^19 words of 64 bits: 4 MiB.
    const WORDS_LOG2: u32 = 19;

    pub(super) fn new() -> KeyFilter {
        KeyFilter {
            words: vec![0; 1 << Self::WORDS_LOG2],
            hasher: ahash::RandomState::new(),
        }
    }

    /// The word of `key` and its four bits there, from one 64-bit hash:
    /// the top bits choose the word, four 6-bit pieces the bits.
    pub(super) fn place(&self, key: &str) -> (usize, u64) {
        let h = self.hasher.hash_one(key);
        let word = (h >> (64 - Self::WORDS_LOG2)) as usize;
        let bits = (0..4).fold(0u64, |m, i| m | 1 << ((h >> (6 * i)) & 63));
        (word, bits)
    }

    /// Adds `key`; `false` only if it was never added before.
    pub(super) fn check_and_add(&mut self, key: &str) -> bool {
        let (word, bits) = self.place(key);
        let seen = self.words[word] & bits == bits;
        self.words[word] |= bits;
        seen
    }
}

/// Where an item of a batch was placed in the [`SourceBatch`].
#[derive(Clone, Copy)]
pub(super) enum Slot {
    Inserted(usize),
    Changed(usize),
    InsertedNonDeath(usize),
    NonDeathChanged(usize),
}

/// The latest version of a key while a batch is classified, borrowed from
/// what is stored or from the batch itself (no copies per record).
pub(super) struct Known<'a> {
    pub(super) sha: &'a str,
    pub(super) origin: &'a str,
    pub(super) version: i32,
    /// The item of this batch that brings this version, when not stored.
    pub(super) pending: Option<usize>,
}

/// What an item of a batch becomes, decided before any item is moved.
#[derive(Clone, Copy)]
pub(super) enum Decision {
    Quarantine,
    Duplicate,
    /// Older than the stored version (by file): kept in the history only.
    Stale,
    /// A new record (or one that left the other table: `moved`).
    Insert {
        version: i32,
        moved: bool,
    },
    /// A correction of the stored version, which goes to the history.
    Change {
        version: i32,
    },
    /// A correction of the version the item `pending` of this batch brings.
    Replace {
        version: i32,
        pending: usize,
    },
}

/// Orders the versions of a civil-affairs file: `X.csv` < `X_v2.csv` <
/// `X_v10.csv`; different base names by name.
pub(super) fn file_rank(origin: &str) -> (String, u32) {
    let stem = origin.rsplit_once('.').map_or(origin, |(s, _)| s);
    if let Some((base, v)) = stem.rsplit_once("_v")
        && let Ok(n) = v.parse::<u32>()
    {
        return (base.to_string(), n);
    }
    (stem.to_string(), 1)
}

impl Ctx<'_> {
    /// Classifies `items` against what is stored and commits them with
    /// `watermarks` in one transaction; counts move only once committed.
    pub(super) async fn commit(
        &mut self,
        items: Vec<Normalised>,
        watermarks: Vec<Watermark>,
    ) -> Result<(), ConnectorError> {
        let source = self.def.name.as_str();
        let mut d = PullCounts {
            read: items.len() as u64,
            ..PullCounts::default()
        };
        if self.writer.is_none() {
            let mut writer = self.store.death_writer().await?;
            if !writer.holds_source(source).await? {
                self.first_load = Some(KeyFilter::new());
            }
            self.writer = Some(writer);
        }
        let writer = self.writer.as_mut().expect("taken above");
        let stored = {
            // On a first load only keys this pull may have stored can be
            // stored (see `KeyFilter`); the rest need no lookup. Each key is
            // added as it is tested: a key repeated in this batch is then
            // looked up too (and not found), which changes nothing.
            let (mut death_keys, mut non_keys): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
            for item in &items {
                let (keys, key) = match item {
                    Normalised::Death(r) => (&mut death_keys, r.record_key.as_str()),
                    Normalised::NonDeath(r) => (&mut non_keys, r.record_key.as_str()),
                    Normalised::Quarantined(_) => continue,
                };
                if self
                    .first_load
                    .as_mut()
                    .is_none_or(|f| f.check_and_add(key))
                {
                    keys.push(key);
                }
            }
            // A source that separates deaths from other events may move a
            // record between them (a correction of the reason): look every
            // key up in both tables.
            let (death_lookup, non_lookup) = if self.def.filter.is_some() {
                let all: Vec<&str> = death_keys.iter().chain(&non_keys).copied().collect();
                (all.clone(), all)
            } else {
                (death_keys, non_keys)
            };
            let mut stored = Vec::new();
            for (table, keys) in [
                (RecordTable::Deaths, death_lookup),
                (RecordTable::NonDeaths, non_lookup),
            ] {
                if !keys.is_empty() {
                    stored.push((table, writer.stored_versions(table, source, &keys).await?));
                }
            }
            stored
        };
        let by_file = self.def.record.precedence == Precedence::FileVersion;
        let decisions = Self::classify(by_file, &items, &stored);
        drop(stored);
        // Sized once: growing it copied every record again.
        let deaths = items
            .iter()
            .filter(|i| matches!(i, Normalised::Death(_)))
            .count();
        let mut batch = SourceBatch {
            new_deaths: Vec::with_capacity(deaths),
            watermarks,
            ..SourceBatch::default()
        };
        // Where each item went, for a later item of the batch that
        // replaces it.
        let mut slots: Vec<Option<Slot>> = vec![None; items.len()];
        let run_id = self.run_id;
        for ((i, item), decision) in items.into_iter().enumerate().zip(decisions) {
            match (decision, item) {
                (Decision::Quarantine, Normalised::Quarantined(q)) => {
                    batch.quarantine.push(*q);
                    d.quarantined += 1;
                }
                (Decision::Duplicate, _) => d.duplicate += 1,
                (Decision::Stale, item) => {
                    let (table, record_key, origin, received_at, raw_sha256, raw) = match item {
                        Normalised::Death(r) => (
                            RecordTable::Deaths,
                            r.record_key,
                            r.origin,
                            r.received_at,
                            r.raw_sha256,
                            r.raw,
                        ),
                        Normalised::NonDeath(r) => (
                            RecordTable::NonDeaths,
                            r.record_key,
                            r.origin,
                            r.received_at,
                            r.raw_sha256,
                            r.raw,
                        ),
                        Normalised::Quarantined(_) => unreachable!("quarantine is decided apart"),
                    };
                    batch.stale.push(StaleVersion {
                        table,
                        version: 0,
                        why: "stale",
                        source: source.to_string(),
                        record_key,
                        origin,
                        received_at,
                        raw_sha256,
                        raw,
                    });
                    d.stale += 1;
                }
                (Decision::Insert { version, moved }, Normalised::Death(mut r)) => {
                    if moved {
                        // Stored in the other table: that version is
                        // retired and this one goes in as the next version.
                        batch
                            .reclassified
                            .push((RecordTable::NonDeaths, r.record_key.clone()));
                        d.reclassified += 1;
                        d.updated += 1;
                    } else {
                        d.inserted += 1;
                    }
                    r.run_id = run_id;
                    r.version = version;
                    slots[i] = Some(Slot::Inserted(batch.new_deaths.len()));
                    batch.new_deaths.push(*r);
                }
                (Decision::Insert { version, moved }, Normalised::NonDeath(mut r)) => {
                    if moved {
                        batch
                            .reclassified
                            .push((RecordTable::Deaths, r.record_key.clone()));
                        d.reclassified += 1;
                    }
                    r.run_id = run_id;
                    r.version = version;
                    slots[i] = Some(Slot::InsertedNonDeath(batch.new_non_deaths.len()));
                    batch.new_non_deaths.push(*r);
                    d.non_death += 1;
                }
                (Decision::Change { version }, Normalised::Death(mut r)) => {
                    r.run_id = run_id;
                    r.version = version;
                    slots[i] = Some(Slot::Changed(batch.changed_deaths.len()));
                    batch.changed_deaths.push(*r);
                    d.updated += 1;
                }
                (Decision::Change { version }, Normalised::NonDeath(mut r)) => {
                    r.run_id = run_id;
                    r.version = version;
                    slots[i] = Some(Slot::NonDeathChanged(batch.changed_non_deaths.len()));
                    batch.changed_non_deaths.push(*r);
                    d.non_death += 1;
                }
                (Decision::Replace { version, pending }, Normalised::Death(mut r)) => {
                    // Changed twice within one batch: the pending version
                    // goes to the history, this one takes its place.
                    r.run_id = run_id;
                    r.version = version;
                    let slot = slots[pending];
                    let target = match slot {
                        Some(Slot::Inserted(j)) => &mut batch.new_deaths[j],
                        Some(Slot::Changed(j)) => &mut batch.changed_deaths[j],
                        _ => unreachable!("a death key only points at deaths"),
                    };
                    let old = std::mem::replace(target, *r);
                    batch.stale.push(StaleVersion {
                        table: RecordTable::Deaths,
                        version: old.version,
                        why: "updated",
                        source: old.source,
                        record_key: old.record_key,
                        origin: old.origin,
                        received_at: old.received_at,
                        raw_sha256: old.raw_sha256,
                        raw: old.raw,
                    });
                    slots[i] = slot;
                    d.updated += 1;
                }
                (Decision::Replace { version, pending }, Normalised::NonDeath(mut r)) => {
                    r.run_id = run_id;
                    r.version = version;
                    let slot = slots[pending];
                    let target = match slot {
                        Some(Slot::InsertedNonDeath(j)) => &mut batch.new_non_deaths[j],
                        Some(Slot::NonDeathChanged(j)) => &mut batch.changed_non_deaths[j],
                        _ => unreachable!("a non-death key only points at non-deaths"),
                    };
                    let old = std::mem::replace(target, *r);
                    batch.stale.push(StaleVersion {
                        table: RecordTable::NonDeaths,
                        version: old.version,
                        why: "updated",
                        source: old.source,
                        record_key: old.record_key,
                        origin: old.origin,
                        received_at: old.received_at,
                        raw_sha256: old.raw_sha256,
                        raw: old.raw,
                    });
                    slots[i] = slot;
                    d.non_death += 1;
                }
                _ => unreachable!("a decision fits its item"),
            }
        }
        writer
            .apply_source_batch(source, self.run_id, &batch)
            .await?;
        // A batch is a few hundred thousand allocations: freed off the
        // thread that commits.
        tokio::task::spawn_blocking(move || drop(batch));
        self.counts.add(&d);
        (self.progress)(&PullProgress {
            source,
            read: self.counts.read,
            pages: self.counts.pages,
            files: self.counts.files_taken,
        });
        Ok(())
    }

    /// Decides, item by item and in order, what each item of a batch is
    /// against what is stored (`stored`) and the items before it; with
    /// `by_file`, a version from an earlier file than the known one is stale.
    pub(super) fn classify(
        by_file: bool,
        items: &[Normalised],
        stored: &[(RecordTable, HashMap<String, StoredVersion>)],
    ) -> Vec<Decision> {
        let mut known: HashMap<(RecordTable, &str), Known<'_>, ahash::RandomState> =
            HashMap::with_capacity_and_hasher(
                items.len() + stored.iter().map(|s| s.1.len()).sum::<usize>(),
                ahash::RandomState::new(),
            );
        for (table, versions) in stored {
            for (k, v) in versions {
                known.insert(
                    (*table, k.as_str()),
                    Known {
                        sha: &v.raw_sha256,
                        origin: &v.origin,
                        version: v.version,
                        pending: None,
                    },
                );
            }
        }
        let mut decisions = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let (table, key, sha, origin) = match item {
                Normalised::Quarantined(_) => {
                    decisions.push(Decision::Quarantine);
                    continue;
                }
                Normalised::Death(r) => (
                    RecordTable::Deaths,
                    r.record_key.as_str(),
                    r.raw_sha256.as_str(),
                    r.origin.as_str(),
                ),
                Normalised::NonDeath(r) => (
                    RecordTable::NonDeaths,
                    r.record_key.as_str(),
                    r.raw_sha256.as_str(),
                    r.origin.as_str(),
                ),
            };
            let other = (table.other(), key);
            let moved = match (known.get(&(table, key)), known.get(&other)) {
                (None, Some(k)) if k.pending.is_none() => Some(k.version),
                _ => None,
            };
            if moved.is_some() {
                known.remove(&other);
            }
            let decision = match (moved, known.get(&(table, key))) {
                (Some(v), _) => Decision::Insert {
                    version: v + 1,
                    moved: true,
                },
                (None, None) => Decision::Insert {
                    version: 1,
                    moved: false,
                },
                (None, Some(k)) if k.sha == sha => {
                    decisions.push(Decision::Duplicate);
                    continue;
                }
                (None, Some(k)) if by_file && file_rank(origin) < file_rank(k.origin) => {
                    decisions.push(Decision::Stale);
                    continue;
                }
                (None, Some(k)) => match k.pending {
                    None => Decision::Change {
                        version: k.version + 1,
                    },
                    Some(pending) => Decision::Replace {
                        version: k.version + 1,
                        pending,
                    },
                },
            };
            let version = match decision {
                Decision::Insert { version, .. }
                | Decision::Change { version }
                | Decision::Replace { version, .. } => version,
                _ => unreachable!("only these three are stored"),
            };
            known.insert(
                (table, key),
                Known {
                    sha,
                    origin,
                    version,
                    pending: Some(i),
                },
            );
            decisions.push(decision);
        }
        decisions
    }

    pub(super) fn quarantine_raw(
        &self,
        origin: &str,
        line: Option<u64>,
        reason: String,
        raw: &str,
    ) -> Normalised {
        Normalised::Quarantined(Box::new(QuarantineEntry {
            source: self.def.name.clone(),
            file: Some(origin.to_string()),
            line,
            record_key: None,
            reason,
            raw: raw.to_string(),
        }))
    }

    /// A setting the source's kind needs, or the error naming its key.
    pub(super) fn required<T>(
        &self,
        value: Option<T>,
        key: &'static str,
    ) -> Result<T, ConnectorError> {
        value.ok_or_else(|| ConnectorError::Incomplete {
            source_name: self.def.name.clone(),
            key,
        })
    }

    pub(super) fn base_url(&self) -> Result<reqwest::Url, ConnectorError> {
        let def = self.def;
        let base = self.required(def.base_url.as_deref(), "base_url")?;
        check_url(base, def.allow_insecure).map_err(|message| ConnectorError::Insecure {
            source_name: def.name.clone(),
            message,
        })?;
        let mut url = reqwest::Url::parse(base).map_err(|e| ConnectorError::Insecure {
            source_name: def.name.clone(),
            message: format!("base_url is not a URL: {e}"),
        })?;
        if !url.path().ends_with('/') {
            let p = format!("{}/", url.path());
            url.set_path(&p);
        }
        Ok(url)
    }

    pub(super) fn fetcher(&self) -> Result<Fetcher, ConnectorError> {
        let def = self.def;
        let token = match (&def.token_override, &def.auth) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(auth)) => match std::env::var(&auth.bearer_token_env) {
                Ok(v) if !v.is_empty() => Some(Secret::new(v)),
                _ => {
                    return Err(ConnectorError::MissingToken {
                        source_name: def.name.clone(),
                        var: auth.bearer_token_env.clone(),
                    });
                }
            },
            (None, None) => None,
        };
        Fetcher::new(def, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn corrections_sort_after_the_files_they_correct() {
        let mut names = vec![
            "440304001_20261101_v10.csv",
            "440304001_20261101_v2.csv",
            "440304001_20261101.csv",
        ];
        names.sort_by_key(|n| file_rank(n));
        assert_eq!(
            names,
            [
                "440304001_20261101.csv",
                "440304001_20261101_v2.csv",
                "440304001_20261101_v10.csv"
            ]
        );
    }

    #[test]
    pub(super) fn the_first_load_filter_never_forgets_a_key_and_rarely_imagines_one() {
        let mut f = KeyFilter::new();
        let key = |i: u32| format!("440304{:03}:{i:010}", i % 1000);
        let imagined = (0..200_000).filter(|i| f.check_and_add(&key(*i))).count();
        assert!(
            imagined < 200,
            "{imagined} false maybes in 200,000 new keys"
        );
        assert!((0..200_000).all(|i| f.check_and_add(&key(i))));
    }
}
