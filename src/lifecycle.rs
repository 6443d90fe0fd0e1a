//! The life of a run, written once for every kind: take the run's lock
//! (which marks the kind's dead runs `abandoned` and gives back what they
//! claimed), record the run as started, let the body work, then record how
//! it ended (counts, the file's hash, the message of a failure) and, when it
//! ended well, its audit entry. The roster import, the evidence imports, the
//! pull and the match run all go through [`with_run_lock`] and [`run`]; so
//! will every later kind (case sync, schedule, report, scheduled jobs).
//!
//! It owns only the order of those steps. It never decides what a run does
//! or counts, and never lets a failed run pass for a finished one: a body's
//! error is recorded as `failed` (best effort, the error itself wins) and
//! handed back unchanged.

use chrono::NaiveDate;

use crate::audit;
use crate::store::runs::{RunCounts, RunStatus};
use crate::store::{LockKey, Store, StoreError, StoreLock};

/// How a run ended, as its body reports it alongside its result.
#[derive(Debug, Clone)]
pub struct RunEnd {
    /// `Ok` unless the body finished but failed in part (a pull that gave
    /// up on its source keeps what it stored and says so). An `Err` from
    /// the body is always recorded as `failed`.
    pub status: RunStatus,
    /// What was done, also when the body failed midway: the run row then
    /// says what was kept before the stop.
    pub counts: RunCounts,
    /// SHA-256 of the file the run read, once it was read whole.
    pub file_sha256: Option<String>,
    /// Why a run with status `failed` failed (an `Err`'s own message is
    /// used for an `Err`).
    pub message: Option<String>,
    /// The audit entry written when the run ends `ok`.
    pub audit: Option<RunAudit>,
}

impl RunEnd {
    /// An `ok` end with these counts, no file and no audit entry.
    pub fn ok(counts: RunCounts) -> RunEnd {
        RunEnd {
            status: RunStatus::Ok,
            counts,
            file_sha256: None,
            message: None,
            audit: None,
        }
    }

    /// The same end with the hash of the file the run read.
    pub fn with_file_sha256(mut self, sha256: impl Into<String>) -> RunEnd {
        self.file_sha256 = Some(sha256.into());
        self
    }

    /// The same end, audited as `action` on `subject` by `actor`.
    pub fn audited(
        mut self,
        actor: &str,
        action: &str,
        subject: &str,
        details: serde_json::Value,
    ) -> RunEnd {
        self.audit = Some(RunAudit {
            actor: actor.to_string(),
            action: action.to_string(),
            subject: subject.to_string(),
            details,
        });
        self
    }
}

/// The audit entry of a run that ended well.
#[derive(Debug, Clone)]
pub struct RunAudit {
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: serde_json::Value,
}

/// Runs `body` holding the lock of `key`, taken with [`Store::lock_run`]
/// (so no run of the kind still marked `running` is alive), and releases
/// the lock whatever the body returns. Fails at once, before the body, when
/// another process holds the lock.
pub async fn with_run_lock<T, E>(
    store: &Store,
    key: LockKey<'_>,
    body: impl AsyncFnOnce(&StoreLock) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    let lock = store.lock_run(key).await?;
    let result = body(&lock).await;
    lock.release().await;
    result
}

/// One run under `lock`: recorded as started (with the file it reads and
/// the snapshot date it is as of), then `body` with the run's id, then
/// recorded as the body's [`RunEnd`] says, with the end's audit entry when
/// the body succeeded. A body's `Err` is recorded as `failed` with its
/// message and the counts the body reported, and returned.
pub async fn run<T, E>(
    store: &Store,
    lock: &StoreLock,
    file: Option<&str>,
    as_of: Option<NaiveDate>,
    body: impl AsyncFnOnce(i64) -> (Result<T, E>, RunEnd),
) -> Result<T, E>
where
    E: From<StoreError> + std::fmt::Display,
{
    let run_id = store.start_locked_run(lock, file, as_of).await?;
    let (result, end) = body(run_id).await;
    match result {
        Ok(value) => {
            store
                .finish_run(
                    run_id,
                    end.status,
                    &end.counts,
                    end.file_sha256.as_deref(),
                    end.message.as_deref(),
                )
                .await?;
            if let Some(a) = end.audit {
                audit::append(store, &a.actor, &a.action, &a.subject, &a.details).await?;
            }
            Ok(value)
        }
        Err(e) => {
            // Best effort: the run row says what was done before the stop;
            // the body's error is what the caller must see.
            let _ = store
                .finish_run(
                    run_id,
                    RunStatus::Failed,
                    &end.counts,
                    None,
                    Some(&e.to_string()),
                )
                .await;
            Err(e)
        }
    }
}
