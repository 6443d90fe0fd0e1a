//! What a pull did: its counts (see the module documentation of
//! [`super`] for the equation they satisfy), its summary and its progress.

use std::time::Duration;

use serde::Serialize;

use crate::store::runs::RunCounts;

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

    pub(super) fn add(&mut self, d: &PullCounts) {
        self.read += d.read;
        self.inserted += d.inserted;
        self.updated += d.updated;
        self.duplicate += d.duplicate;
        self.stale += d.stale;
        self.non_death += d.non_death;
        self.quarantined += d.quarantined;
        self.reclassified += d.reclassified;
    }

    pub(super) fn run_counts(&self) -> RunCounts {
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
