//! Connectors: pulling death data from public security (cursor-paged JSON
//! over HTTP), civil affairs (GBK CSV files in a directory) and funeral homes
//! (an HTTP index of JSON Lines files), as `connectors/*.toml` describe them.
//!
//! This module owns the pull: fetching, normalising, classifying each
//! record against what is stored, and committing records with the watermark
//! that covers them in one transaction. It must never move a watermark past
//! data that is not committed, never store half a page, never drop a record
//! without a quarantine entry, and never log a token or a full ID number.
//!
//! Every pull of a source is one run. Its counts always satisfy
//!
//! ```text
//! read = inserted + updated + duplicate + stale + non_death + quarantined
//! ```
//!
//! where `read` counts source records (JSON objects, CSV rows, JSONL lines;
//! a CSV file whose header lacks a mapped column counts as one record, and
//! is quarantined whole), `duplicate` are re-deliveries with identical
//! content (deaths and non-death events alike), `updated` are deaths whose
//! content changed (the earlier version kept in the history), `stale` are
//! versions older than the stored one (kept in the history, not applied),
//! and `non_death` are new or changed non-death events. In the `runs` row,
//! `inserted`, `changed` (= updated), `unchanged` (= duplicate) and
//! `quarantined` hold their namesakes; `details` holds `non_death`, `stale`,
//! `retries`, `errors`, `pages`, `files_taken`, `files_unchanged`.

pub mod definition;
mod http;
pub mod normalise;
pub mod sim;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use definition::{
    Definition, DefinitionError, Secret, TransportKind, check_definitions, check_url,
    load_definition, load_definitions,
};
use definition::{Precedence, SourceEncoding};
use http::{Fetched, Fetcher};
use normalise::{Columns, CsvRow, Normalised, Origin, normalise, sha256_hex};

use crate::identity::id::today_in_china;
use crate::store::deaths::{
    DeathWriter, RecordTable, SourceBatch, StaleVersion, StoredVersion, Watermark,
};
use crate::store::quarantine::QuarantineEntry;
use crate::store::runs::{RunCounts, RunStatus};
use crate::store::{LockKey, Store, StoreError, StoreLock, now_utc_text};

/// Records per transaction for file sources: enough that a transaction's
/// fixed costs (the stored-version lookup, the commit) stay small per record.
const FILE_BATCH: usize = 10_000;

/// Why a source's pull stopped. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error(
        "{source_name}: the server refused the token (HTTP {status}); check the token in the \
         variable named by auth.bearer_token_env. No watermark was moved past what was kept."
    )]
    Unauthorized { source_name: String, status: u16 },
    #[error(
        "{source_name}: environment variable {var} is not set; set it to the source's bearer token"
    )]
    MissingToken { source_name: String, var: String },
    #[error("{source_name}: {message}")]
    Insecure {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: the definition has no {key}; add it to the TOML file")]
    Incomplete {
        source_name: String,
        key: &'static str,
    },
    #[error(
        "{source_name}: {what}: gave up after {attempts} attempts (last: {last}); what was \
         committed before stays, and the next pull resumes from there"
    )]
    GaveUp {
        source_name: String,
        what: String,
        attempts: u32,
        last: String,
    },
    #[error(
        "{source_name}: {what} answered HTTP {status}; check base_url and the paths in the definition"
    )]
    Refused {
        source_name: String,
        what: String,
        status: u16,
    },
    #[error("{source_name}: cannot build an HTTP client: {message}")]
    Client {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: cannot read {path}: {error}")]
    Io {
        source_name: String,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{source_name}: normalising a batch failed unexpectedly: {message}; this is a bug, please report it"
    )]
    Internal {
        source_name: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a pull could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("no connector named {name}; the definitions name: {known}")]
    UnknownSource { name: String, known: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one source's pull did. See the module documentation for the
/// equation the counts satisfy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PullCounts {
    pub read: u64,
    pub inserted: u64,
    pub updated: u64,
    pub duplicate: u64,
    pub stale: u64,
    pub non_death: u64,
    pub quarantined: u64,
    /// Requests repeated after a failure.
    pub retries: u64,
    /// Index entries that could not be taken (a name that escapes the
    /// platform's directory); each also logged.
    pub errors: u64,
    pub pages: u64,
    pub files_taken: u64,
    pub files_unchanged: u64,
    /// Records that moved between deaths and other cancellations (counted
    /// again as updated deaths or as non-deaths).
    pub reclassified: u64,
}

impl PullCounts {
    /// `read = inserted + updated + duplicate + stale + non_death + quarantined`.
    pub fn balanced(&self) -> bool {
        self.read
            == self.inserted
                + self.updated
                + self.duplicate
                + self.stale
                + self.non_death
                + self.quarantined
    }

    fn add(&mut self, d: &PullCounts) {
        self.read += d.read;
        self.inserted += d.inserted;
        self.updated += d.updated;
        self.duplicate += d.duplicate;
        self.stale += d.stale;
        self.non_death += d.non_death;
        self.quarantined += d.quarantined;
        self.reclassified += d.reclassified;
    }

    fn run_counts(&self) -> RunCounts {
        RunCounts {
            read: self.read,
            inserted: self.inserted,
            changed: self.updated,
            unchanged: self.duplicate,
            quarantined: self.quarantined,
            missing: 0,
            details: serde_json::json!({
                "non_death": self.non_death,
                "reclassified": self.reclassified,
                "stale": self.stale,
                "retries": self.retries,
                "errors": self.errors,
                "pages": self.pages,
                "files_taken": self.files_taken,
                "files_unchanged": self.files_unchanged,
            }),
        }
    }
}

/// One source's pull, as the CLI reports it.
#[derive(Debug, Clone, Serialize)]
pub struct PullSummary {
    pub source: String,
    pub kind: &'static str,
    pub run_id: i64,
    /// What was committed (also when the pull failed part-way).
    pub counts: PullCounts,
    /// Why the pull stopped early; `None` when it completed.
    pub error: Option<String>,
    pub elapsed: Duration,
}

impl PullSummary {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Progress as records are committed.
#[derive(Debug, Clone)]
pub struct PullProgress<'a> {
    pub source: &'a str,
    pub read: u64,
    pub pages: u64,
    pub files: u64,
}

/// Pulls every source in `defs` (or only those named in `only`), one run
/// each, one after the other. A source that fails is reported in its
/// summary (with what was kept) and the others still run; only an unknown
/// name in `only`, a source another pull is pulling (nothing is pulled
/// then: [`StoreError::PullRunning`]) or a database that cannot record a
/// run stops everything.
pub async fn pull(
    store: &Store,
    defs: &[Definition],
    only: &[String],
    progress: &(dyn Fn(&PullProgress<'_>) + Sync),
) -> Result<Vec<PullSummary>, PullError> {
    for name in only {
        if !defs.iter().any(|d| &d.name == name) {
            return Err(PullError::UnknownSource {
                name: name.clone(),
                known: defs
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let chosen: Vec<&Definition> = defs
        .iter()
        .filter(|d| only.is_empty() || only.contains(&d.name))
        .collect();
    // Every source's lock before any pull starts: a pull that would meet
    // another on one of its sources refuses at once, having pulled nothing
    // (the sources it locked meanwhile have had their dead pulls abandoned).
    let mut locks = Vec::with_capacity(chosen.len());
    for def in &chosen {
        match store.lock_run(LockKey::Pull(&def.name)).await {
            Ok(lock) => locks.push(lock),
            Err(e) => {
                for lock in locks {
                    lock.release().await;
                }
                return Err(e.into());
            }
        }
    }
    let mut out = Vec::new();
    let mut result = Ok(());
    for (def, lock) in chosen.into_iter().zip(&locks) {
        match pull_locked(store, def, lock, progress).await {
            Ok(s) => out.push(s),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    for lock in locks {
        lock.release().await;
    }
    result.map(|()| out)
}

/// Pulls one source as one run, or fails at once with
/// [`StoreError::PullRunning`] while another pull of it runs.
pub async fn pull_one(
    store: &Store,
    def: &Definition,
    progress: &(dyn Fn(&PullProgress<'_>) + Sync),
) -> Result<PullSummary, PullError> {
    let lock = store.lock_run(LockKey::Pull(&def.name)).await?;
    let result = pull_locked(store, def, &lock, progress).await;
    lock.release().await;
    result
}

/// [`pull_one`] for a caller that holds the source's lock, taken by
/// [`Store::lock_run`] (which marked the source's dead pulls abandoned).
async fn pull_locked(
    store: &Store,
    def: &Definition,
    lock: &StoreLock,
    progress: &(dyn Fn(&PullProgress<'_>) + Sync),
) -> Result<PullSummary, PullError> {
    let started = Instant::now();
    let run_id = store.start_locked_run(lock, None, None).await?;
    let mut ctx = Ctx {
        store,
        def,
        shared: Arc::new(def.clone()),
        run_id,
        counts: PullCounts::default(),
        today: today_in_china(),
        progress,
        writer: None,
        first_load: None,
    };
    let result = match def.kind {
        TransportKind::HttpCursorJson => pull_cursor(&mut ctx).await,
        TransportKind::CsvDir => pull_dir(&mut ctx).await,
        TransportKind::HttpJsonlIndex => pull_index(&mut ctx).await,
    };
    // Back to the pool before finishing the run (the pool may be small).
    drop(ctx.writer.take());
    let counts = ctx.counts;
    let error = result.err().map(|e| {
        let kept = format!(
            "; kept: {} new, {} updated, {} duplicate, {} non-death, {} quarantined",
            counts.inserted, counts.updated, counts.duplicate, counts.non_death, counts.quarantined
        );
        tracing::error!(source = %def.name, error = %e, "pull failed");
        format!("{e}{kept}")
    });
    let status = if error.is_some() {
        RunStatus::Failed
    } else {
        RunStatus::Ok
    };
    store
        .finish_run(run_id, status, &counts.run_counts(), None, error.as_deref())
        .await?;
    Ok(PullSummary {
        source: def.name.clone(),
        kind: def.kind.as_str(),
        run_id,
        counts,
        error,
        elapsed: started.elapsed(),
    })
}

struct Ctx<'a> {
    store: &'a Store,
    def: &'a Definition,
    /// The same definition, for normalising on blocking threads.
    shared: Arc<Definition>,
    run_id: i64,
    counts: PullCounts,
    today: NaiveDate,
    progress: &'a (dyn Fn(&PullProgress<'_>) + Sync),
    /// The connection every batch is classified and committed through,
    /// taken at the first batch (see [`DeathWriter`] for why one).
    writer: Option<DeathWriter>,
    /// On a first load (the source held nothing when the pull's first batch
    /// came, and the pull holds its lock): the keys this pull has seen, so
    /// only keys it may have stored are looked up. `None` otherwise: every
    /// key is looked up.
    first_load: Option<KeyFilter>,
}

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
struct KeyFilter {
    words: Vec<u64>,
    hasher: ahash::RandomState,
}

impl KeyFilter {
    /// 2^19 words of 64 bits: 4 MiB.
    const WORDS_LOG2: u32 = 19;

    fn new() -> KeyFilter {
        KeyFilter {
            words: vec![0; 1 << Self::WORDS_LOG2],
            hasher: ahash::RandomState::new(),
        }
    }

    /// The word of `key` and its four bits there, from one 64-bit hash:
    /// the top bits choose the word, four 6-bit pieces the bits.
    fn place(&self, key: &str) -> (usize, u64) {
        let h = self.hasher.hash_one(key);
        let word = (h >> (64 - Self::WORDS_LOG2)) as usize;
        let bits = (0..4).fold(0u64, |m, i| m | 1 << ((h >> (6 * i)) & 63));
        (word, bits)
    }

    /// Adds `key`; `false` only if it was never added before.
    fn check_and_add(&mut self, key: &str) -> bool {
        let (word, bits) = self.place(key);
        let seen = self.words[word] & bits == bits;
        self.words[word] |= bits;
        seen
    }
}

/// Where an item of a batch was placed in the [`SourceBatch`].
#[derive(Clone, Copy)]
enum Slot {
    Inserted(usize),
    Changed(usize),
    InsertedNonDeath(usize),
    NonDeathChanged(usize),
}

/// The latest version of a key while a batch is classified, borrowed from
/// what is stored or from the batch itself (no copies per record).
struct Known<'a> {
    sha: &'a str,
    origin: &'a str,
    version: i32,
    /// The item of this batch that brings this version, when not stored.
    pending: Option<usize>,
}

/// What an item of a batch becomes, decided before any item is moved.
#[derive(Clone, Copy)]
enum Decision {
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
fn file_rank(origin: &str) -> (String, u32) {
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
    async fn commit(
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
    fn classify(
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

    fn quarantine_raw(
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

    fn base_url(&self) -> Result<reqwest::Url, ConnectorError> {
        let def = self.def;
        let base = def.base_url.as_deref().ok_or(ConnectorError::Incomplete {
            source_name: def.name.clone(),
            key: "base_url",
        })?;
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

    fn fetcher(&self) -> Result<Fetcher, ConnectorError> {
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

/// One source record before normalisation.
enum Raw {
    /// A JSON object's text, with its line in a JSON Lines file.
    Json(String, Option<u64>),
    /// A row of the CSV file in [`Work::csv`].
    Csv(CsvLine),
}

/// Where one CSV row lies in its file's [`CsvText`].
#[derive(Clone, Copy)]
struct CsvLine {
    line: u64,
    /// Its exact text in [`CsvText::text`], line break excluded.
    raw: (usize, usize),
    /// Its fields in [`CsvText::fields`].
    fields: (usize, usize),
    /// Its field ends in [`CsvText::ends`].
    ends: (usize, usize),
}

/// A decoded CSV file whose rows are [`CsvLine`]s: one buffer for the text,
/// one for all the fields, instead of a record and a line copied per row.
#[derive(Default)]
struct CsvText {
    columns: Columns,
    text: String,
    fields: String,
    /// The end of each field, counted from the start of its row's fields.
    ends: Vec<usize>,
}

/// What normalising a batch needs, owned, so it can run on blocking threads.
struct Work {
    def: Arc<Definition>,
    /// The CSV file the batch's rows come from (empty for JSON).
    csv: Arc<CsvText>,
    origin: Arc<str>,
    received_at: Arc<str>,
    today: NaiveDate,
}

impl Work {
    fn one(&self, raw: Raw) -> Normalised {
        let def = &*self.def;
        let quarantine = |line: Option<u64>, reason: String, raw: &str| {
            Normalised::Quarantined(Box::new(QuarantineEntry {
                source: def.name.clone(),
                file: Some(self.origin.to_string()),
                line,
                record_key: None,
                reason,
                raw: raw.to_string(),
            }))
        };
        match raw {
            Raw::Json(text, line) => {
                let at = Origin {
                    origin: &self.origin,
                    line,
                    received_at: &self.received_at,
                };
                match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text) {
                    Ok(map) => normalise(def, &map, &text, &at, self.today),
                    Err(e) => {
                        let reason = match line {
                            Some(n) => format!("line {n} is not a JSON object: {e}"),
                            None => format!("the record is not a JSON object: {e}"),
                        };
                        quarantine(line, reason, &text)
                    }
                }
            }
            Raw::Csv(l) => {
                let at = Origin {
                    origin: &self.origin,
                    line: Some(l.line),
                    received_at: &self.received_at,
                };
                let csv = &*self.csv;
                let row = CsvRow {
                    columns: &csv.columns,
                    fields: &csv.fields[l.fields.0..l.fields.1],
                    ends: &csv.ends[l.ends.0..l.ends.1],
                };
                normalise(def, &row, &csv.text[l.raw.0..l.raw.1], &at, self.today)
            }
        }
    }

    /// Normalises `raws` on a blocking thread, so the async threads keep
    /// fetching and committing meanwhile. JSON records (parsed here, the
    /// heavier work) are spread over rayon's threads; CSV rows, already
    /// split by the file's own blocking thread, are normalised in order on
    /// this one: with the commit on another thread that fills two cores,
    /// and on a shared two-core machine rayon's extra threads cost more in
    /// switching than they gained (1M rows: 7.3-9.0 CPU s instead of
    /// 9.5-9.6, and no slower).
    fn spawn(self, raws: Vec<Raw>) -> tokio::task::JoinHandle<Vec<Normalised>> {
        tokio::task::spawn_blocking(move || {
            use rayon::prelude::*;
            if matches!(raws.first(), Some(Raw::Csv(_))) {
                raws.into_iter().map(|r| self.one(r)).collect()
            } else {
                raws.into_par_iter().map(|r| self.one(r)).collect()
            }
        })
    }
}

/// Commits batch k while batch k+1 is being normalised. Batches are
/// committed in order, each with its own watermarks, so the overlap changes
/// nothing about what a crash can leave behind.
#[derive(Default)]
struct Pipeline {
    pending: Option<(tokio::task::JoinHandle<Vec<Normalised>>, Vec<Watermark>)>,
}

impl Pipeline {
    async fn push(
        &mut self,
        ctx: &mut Ctx<'_>,
        job: tokio::task::JoinHandle<Vec<Normalised>>,
        watermarks: Vec<Watermark>,
    ) -> Result<(), ConnectorError> {
        let previous = self.pending.replace((job, watermarks));
        if let Some((job, watermarks)) = previous {
            ctx.commit_job(job, watermarks).await?;
        }
        Ok(())
    }

    async fn finish(&mut self, ctx: &mut Ctx<'_>) -> Result<(), ConnectorError> {
        if let Some((job, watermarks)) = self.pending.take() {
            ctx.commit_job(job, watermarks).await?;
        }
        Ok(())
    }
}

impl Ctx<'_> {
    async fn commit_job(
        &mut self,
        job: tokio::task::JoinHandle<Vec<Normalised>>,
        watermarks: Vec<Watermark>,
    ) -> Result<(), ConnectorError> {
        let items = job.await.map_err(|e| ConnectorError::Internal {
            source_name: self.def.name.clone(),
            message: e.to_string(),
        })?;
        self.commit(items, watermarks).await
    }

    fn work(&self, origin: &str, csv: Arc<CsvText>) -> Work {
        Work {
            def: self.shared.clone(),
            csv,
            origin: Arc::from(origin),
            received_at: Arc::from(now_utc_text().as_str()),
            today: self.today,
        }
    }
}

/// Joins a path (absolute or relative) onto the base URL's path.
fn join(base: &reqwest::Url, path: &str) -> reqwest::Url {
    let mut url = base.clone();
    let joined = format!("{}{}", base.path(), path.trim_start_matches('/'));
    url.set_path(&joined);
    url
}

/// One public-security page (spec §2).
#[derive(Deserialize)]
struct Page {
    records: Vec<Box<serde_json::value::RawValue>>,
    next_cursor: Option<String>,
    server_time: String,
}

/// The in-progress cursor, valid only with the `since` and `limit` it was
/// issued for.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct CursorState {
    since: String,
    limit: u32,
    cursor: String,
    /// `server_time` of the first page of this sequence: the next `since`
    /// once the sequence is complete.
    server_time: String,
}

const STATE_SINCE: &str = "since";
const STATE_CURSOR: &str = "cursor";

async fn pull_cursor(ctx: &mut Ctx<'_>) -> Result<(), ConnectorError> {
    let def = ctx.def;
    let paging = def.paging.as_ref().ok_or(ConnectorError::Incomplete {
        source_name: def.name.clone(),
        key: "paging",
    })?;
    let base = ctx.base_url()?;
    let mut fetcher = ctx.fetcher()?;
    let since = ctx
        .store
        .connector_state(&def.name, STATE_SINCE)
        .await?
        .unwrap_or_else(|| paging.initial_since.clone());
    let resume = ctx
        .store
        .connector_state(&def.name, STATE_CURSOR)
        .await?
        .and_then(|s| serde_json::from_str::<CursorState>(&s).ok())
        .filter(|c| c.since == since && c.limit == paging.limit);
    let (mut cursor, mut first_time) = match resume {
        Some(c) => (Some(c.cursor), Some(c.server_time)),
        None => (None, None),
    };
    let endpoint = join(&base, &paging.path);
    let mut pipe = Pipeline::default();
    loop {
        let mut url = endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("since", &since);
            q.append_pair("limit", &paging.limit.to_string());
            if let Some(c) = &cursor {
                q.append_pair("cursor", c);
            }
        }
        // The next page is fetched while the previous one commits.
        let fetch = fetcher.get(&url, None, |b| {
            let page: Page = serde_json::from_slice(b)
                .map_err(|e| format!("the page does not parse (cut off?): {e}"))?;
            chrono::DateTime::parse_from_rfc3339(&page.server_time)
                .map_err(|_| "server_time is not an RFC 3339 instant".to_string())?;
            Ok(page)
        });
        let (fetched, committed) = tokio::join!(fetch, pipe.finish(ctx));
        ctx.counts.retries = fetcher.retries;
        committed?;
        // On failure, what was fetched whole before it is committed above.
        let fetched = fetched?;
        let Fetched::Body(page) = fetched else {
            continue;
        };
        let first_time = first_time
            .get_or_insert_with(|| page.server_time.clone())
            .clone();
        ctx.counts.pages += 1;
        let origin = match &cursor {
            Some(c) => format!("since={since} cursor={c}"),
            None => format!("since={since}"),
        };
        let raws: Vec<Raw> = page
            .records
            .into_iter()
            .map(|r| Raw::Json(String::from(Box::<str>::from(r)), None))
            .collect();
        let job = ctx.work(&origin, Arc::default()).spawn(raws);
        let watermarks = match &page.next_cursor {
            Some(next) => vec![Watermark::Set {
                name: STATE_CURSOR.into(),
                value: serde_json::to_string(&CursorState {
                    since: since.clone(),
                    limit: paging.limit,
                    cursor: next.clone(),
                    server_time: first_time.clone(),
                })
                .expect("plain strings serialise"),
            }],
            None => vec![
                Watermark::Set {
                    name: STATE_SINCE.into(),
                    value: first_time.clone(),
                },
                Watermark::Clear {
                    name: STATE_CURSOR.into(),
                },
            ],
        };
        pipe.push(ctx, job, watermarks).await?;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return pipe.finish(ctx).await,
        }
    }
}

/// A name from the funeral index must stay below the platform's prefix.
fn safe_relative(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains("://")
        && !name
            .split('/')
            .any(|p| p == ".." || p == "." || p.is_empty())
}

async fn pull_index(ctx: &mut Ctx<'_>) -> Result<(), ConnectorError> {
    let def = ctx.def;
    let index_path = def
        .files
        .index
        .as_deref()
        .ok_or(ConnectorError::Incomplete {
            source_name: def.name.clone(),
            key: "files.index",
        })?;
    let prefix = match &def.files.prefix {
        Some(p) => p.clone(),
        None => index_path
            .rsplit_once('/')
            .map(|(d, _)| format!("{d}/"))
            .unwrap_or_default(),
    };
    let base = ctx.base_url()?;
    let mut fetcher = ctx.fetcher()?;
    // One pipeline across files: a file is normalised while the previous
    // one commits.
    let mut pipe = Pipeline::default();
    let index_url = join(&base, index_path);
    let fetched = fetcher
        .get(&index_url, None, |b| {
            serde_json::from_slice::<Vec<String>>(b)
                .map_err(|e| format!("the index is not a JSON list of names (cut off?): {e}"))
        })
        .await;
    ctx.counts.retries = fetcher.retries;
    let Fetched::Body(mut names) = fetched? else {
        return Ok(());
    };
    names.sort();
    names.dedup();
    let taken = ctx.store.taken_files(&def.name).await?;
    for name in names {
        if !safe_relative(&name) {
            ctx.counts.errors += 1;
            tracing::warn!(source = %def.name, name = %name, "index entry refused: not a plain relative path");
            continue;
        }
        let url = join(&base, &format!("{prefix}{name}"));
        let old = taken.get(&name).map(String::as_str);
        let fetched = fetcher
            .get(&url, old, |b| {
                if b.is_empty() || b.ends_with(b"\n") {
                    Ok(b.to_vec())
                } else {
                    Err("the file is cut off: it does not end with a newline".into())
                }
            })
            .await;
        ctx.counts.retries = fetcher.retries;
        let bytes = match fetched? {
            Fetched::NotModified => {
                ctx.counts.files_unchanged += 1;
                continue;
            }
            Fetched::Body(bytes) => bytes,
        };
        let sha = sha256_hex(&bytes);
        if old == Some(sha.as_str()) {
            ctx.counts.files_unchanged += 1;
            continue;
        }
        take_jsonl(ctx, &mut pipe, &name, &bytes, sha).await?;
    }
    pipe.finish(ctx).await?;
    Ok(())
}

/// Stores one JSON Lines file; the last batch marks it taken.
async fn take_jsonl(
    ctx: &mut Ctx<'_>,
    pipe: &mut Pipeline,
    name: &str,
    bytes: &[u8],
    sha: String,
) -> Result<(), ConnectorError> {
    let text = String::from_utf8_lossy(bytes);
    let raws: Vec<Raw> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Raw::Json(l.to_string(), Some(i as u64 + 1)))
        .collect();
    let records = raws.len() as u64;
    take_raws(ctx, pipe, name, raws, Arc::default(), sha, records).await
}

/// Normalises and commits the records of one file in batches; the last
/// batch marks the file taken.
async fn take_raws(
    ctx: &mut Ctx<'_>,
    pipe: &mut Pipeline,
    name: &str,
    raws: Vec<Raw>,
    csv: Arc<CsvText>,
    sha: String,
    records: u64,
) -> Result<(), ConnectorError> {
    let mut raws = raws.into_iter().peekable();
    loop {
        let chunk: Vec<Raw> = raws.by_ref().take(FILE_BATCH).collect();
        let last = raws.peek().is_none();
        let watermarks = if last {
            vec![Watermark::File {
                name: name.to_string(),
                sha256: sha.clone(),
                records,
            }]
        } else {
            Vec::new()
        };
        let job = ctx.work(name, csv.clone()).spawn(chunk);
        pipe.push(ctx, job, watermarks).await?;
        if last {
            break;
        }
    }
    ctx.counts.files_taken += 1;
    Ok(())
}

async fn pull_dir(ctx: &mut Ctx<'_>) -> Result<(), ConnectorError> {
    let def = ctx.def;
    let dir = def.dir.clone().ok_or(ConnectorError::Incomplete {
        source_name: def.name.clone(),
        key: "dir",
    })?;
    let io = |path: &Path, error| ConnectorError::Io {
        source_name: def.name.clone(),
        path: path.to_path_buf(),
        error,
    };
    let mut names = Vec::new();
    let mut entries = tokio::fs::read_dir(&dir).await.map_err(|e| io(&dir, e))?;
    while let Some(e) = entries.next_entry().await.map_err(|e| io(&dir, e))? {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(&def.files.suffix) && e.file_type().await.is_ok_and(|t| t.is_file()) {
            names.push(name);
        }
    }
    // Corrections after the files they correct, whatever the other names.
    names.sort_by_key(|n| file_rank(n));
    let taken = ctx.store.taken_files(&def.name).await?;
    // One pipeline across files: a file is normalised while the previous
    // one commits.
    let mut pipe = Pipeline::default();
    let mut required: Vec<String> = def.record.key.clone();
    required.push(def.fields.name.clone());
    required.push(def.fields.death_date.clone());
    let required = Arc::new(required);
    // The next file is read, hashed, decoded and split on a blocking thread
    // while this one is normalised and committed (hashing a file on the
    // async thread that commits took a tenth of that thread's time).
    type Job = tokio::task::JoinHandle<std::io::Result<Option<(String, ParsedCsv)>>>;
    let mut reading: Option<(String, Job)> = None;
    for name in names.into_iter().map(Some).chain(std::iter::once(None)) {
        let next = name.map(|name| {
            let path = dir.join(&name);
            let taken = taken.get(&name).cloned();
            let (encoding, required) = (def.encoding, required.clone());
            let job = tokio::task::spawn_blocking(move || {
                let bytes = std::fs::read(&path)?;
                let sha = sha256_hex(&bytes);
                if taken.as_ref() == Some(&sha) {
                    return Ok(None);
                }
                Ok(Some((sha, parse_csv(encoding, &required, &bytes))))
            });
            (name, job)
        });
        if let Some((name, job)) = std::mem::replace(&mut reading, next) {
            let read = job.await.map_err(|e| ConnectorError::Internal {
                source_name: def.name.clone(),
                message: e.to_string(),
            })?;
            match read.map_err(|e| io(&dir.join(&name), e))? {
                None => ctx.counts.files_unchanged += 1,
                Some((sha, parsed)) => take_csv(ctx, &mut pipe, &name, parsed, sha).await?,
            }
        }
    }
    pipe.finish(ctx).await?;
    Ok(())
}

/// A CSV file split into rows, off the async threads.
struct ParsedCsv {
    /// Required columns the header lacks (then nothing else is parsed, and
    /// `csv.text` is kept only to quarantine the file whole).
    missing: Vec<String>,
    csv: CsvText,
    rows: Vec<CsvLine>,
    /// Rows the CSV reader could not split: line, reason, raw text.
    bad: Vec<(u64, String, String)>,
}

/// Decodes and splits one CSV file (pure; runs on a blocking thread).
fn parse_csv(encoding: SourceEncoding, required: &[String], bytes: &[u8]) -> ParsedCsv {
    let text = match encoding {
        SourceEncoding::Gbk => encoding_rs::GBK.decode_without_bom_handling(bytes).0,
        SourceEncoding::Utf8 => {
            String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
        }
    }
    .into_owned();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let columns: Columns = match reader.headers() {
        Ok(h) => h
            .iter()
            .enumerate()
            .map(|(i, c)| (c.trim().to_string(), i))
            .collect(),
        Err(_) => Columns::default(),
    };
    let missing: Vec<String> = required
        .iter()
        .filter(|c| !columns.contains_key(c.as_str()))
        .cloned()
        .collect();
    let mut csv = CsvText {
        columns,
        ..CsvText::default()
    };
    if !missing.is_empty() {
        csv.text = text;
        return ParsedCsv {
            missing,
            csv,
            rows: Vec::new(),
            bad: Vec::new(),
        };
    }
    /// A row read, before its end (the next row's start) is known.
    enum Read {
        Row(CsvLine),
        Blank,
        Bad(String),
    }
    // Positions first, so each row's raw text is the exact line it came from.
    let mut read: Vec<(u64, usize, Read)> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let pos = reader.position().clone();
        let (line, start) = (pos.line(), pos.byte() as usize);
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) if record.iter().all(|f| f.trim().is_empty()) => {
                read.push((line, start, Read::Blank))
            }
            Ok(true) => {
                let (from, first) = (csv.fields.len(), csv.ends.len());
                for f in &record {
                    csv.fields.push_str(f);
                    csv.ends.push(csv.fields.len() - from);
                }
                let row = CsvLine {
                    line,
                    raw: (start, start),
                    fields: (from, csv.fields.len()),
                    ends: (first, csv.ends.len()),
                };
                read.push((line, start, Read::Row(row)));
            }
            Err(e) => read.push((line, start, Read::Bad(e.to_string()))),
        }
    }
    drop(reader);
    let ends: Vec<usize> = read
        .iter()
        .skip(1)
        .map(|r| r.1)
        .chain(std::iter::once(text.len()))
        .collect();
    let mut rows = Vec::with_capacity(read.len());
    let mut bad = Vec::new();
    for ((line, start, r), end) in read.into_iter().zip(ends) {
        let raw = text
            .get(start..end)
            .unwrap_or_default()
            .trim_end_matches(['\r', '\n']);
        match r {
            Read::Blank => {}
            Read::Row(mut row) => {
                // An out-of-range span reads as empty, as `get` above.
                row.raw = match text.get(start..end) {
                    Some(_) => (start, start + raw.len()),
                    None => (0, 0),
                };
                rows.push(row);
            }
            Read::Bad(e) => bad.push((
                line,
                format!("line {line} is not valid CSV: {e}"),
                raw.to_string(),
            )),
        }
    }
    csv.text = text;
    ParsedCsv {
        missing,
        csv,
        rows,
        bad,
    }
}

/// Stores one parsed CSV file; the last batch marks it taken.
async fn take_csv(
    ctx: &mut Ctx<'_>,
    pipe: &mut Pipeline,
    name: &str,
    parsed: ParsedCsv,
    sha: String,
) -> Result<(), ConnectorError> {
    if !parsed.missing.is_empty() {
        let item = ctx.quarantine_raw(
            name,
            Some(1),
            format!(
                "the header lacks column(s) {}; the whole file is quarantined",
                parsed.missing.join(", ")
            ),
            &parsed.csv.text,
        );
        let mark = Watermark::File {
            name: name.to_string(),
            sha256: sha,
            records: 0,
        };
        ctx.commit(vec![item], vec![mark]).await?;
        ctx.counts.files_taken += 1;
        return Ok(());
    }
    // Rows the CSV reader could not split go in with the first batch.
    if !parsed.bad.is_empty() {
        let bad = parsed
            .bad
            .iter()
            .map(|(line, reason, raw)| ctx.quarantine_raw(name, Some(*line), reason.clone(), raw))
            .collect();
        ctx.commit(bad, Vec::new()).await?;
    }
    let records = parsed.rows.len() as u64;
    let raws = parsed.rows.into_iter().map(Raw::Csv).collect();
    take_raws(ctx, pipe, name, raws, Arc::new(parsed.csv), sha, records).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrections_sort_after_the_files_they_correct() {
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
    fn the_first_load_filter_never_forgets_a_key_and_rarely_imagines_one() {
        let mut f = KeyFilter::new();
        let key = |i: u32| format!("440304{:03}:{i:010}", i % 1000);
        let imagined = (0..200_000).filter(|i| f.check_and_add(&key(*i))).count();
        assert!(
            imagined < 200,
            "{imagined} false maybes in 200,000 new keys"
        );
        assert!((0..200_000).all(|i| f.check_and_add(&key(i))));
    }

    #[test]
    fn index_names_may_not_escape_the_platform_directory() {
        assert!(safe_relative("FH440300-07/2026-11-25.jsonl"));
        for bad in ["../etc/passwd", "/abs", "a//b", "http://x/y", "a/./b", ""] {
            assert!(!safe_relative(bad), "{bad}");
        }
    }
}
