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

mod classify;
mod counts;
mod cursor;
mod dir;
mod errors;
mod index;
mod pipeline;
mod pull;

use std::sync::Arc;

use chrono::NaiveDate;

use classify::KeyFilter;
pub use definition::{
    Definition, DefinitionError, Secret, TransportKind, check_definitions, check_url,
    load_definition, load_definitions,
};

use crate::store::Store;
use crate::store::deaths::DeathWriter;

/// Records per transaction for file sources: enough that a transaction's
/// fixed costs (the stored-version lookup, the commit) stay small per record.
const FILE_BATCH: usize = 10_000;

pub use counts::{PullCounts, PullProgress, PullSummary};
pub use errors::{ConnectorError, PullError};
pub use pull::{pull, pull_one};

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

/// Joins a path (absolute or relative) onto the base URL's path.
fn join(base: &reqwest::Url, path: &str) -> reqwest::Url {
    let mut url = base.clone();
    let joined = format!("{}{}", base.path(), path.trim_start_matches('/'));
    url.set_path(&joined);
    url
}
