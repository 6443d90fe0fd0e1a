//! The pull: one run per source, under the source's lock.

use std::sync::Arc;
use std::time::Instant;

use super::definition::{Definition, TransportKind};

use super::Ctx;
use super::counts::{PullCounts, PullProgress, PullSummary};
use super::cursor::pull_cursor;
use super::dir::pull_dir;
use super::errors::PullError;
use super::index::pull_index;
use crate::identity::id::today_in_china;
use crate::lifecycle::{self, RunEnd};
use crate::store::runs::RunStatus;
use crate::store::{LockKey, Store, StoreLock};

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
    lifecycle::with_run_lock(store, LockKey::Pull(&def.name), async |lock| {
        pull_locked(store, def, lock, progress).await
    })
    .await
}

/// [`pull_one`] for a caller that holds the source's lock, taken by
/// [`Store::lock_run`] (which marked the source's dead pulls abandoned).
pub(super) async fn pull_locked(
    store: &Store,
    def: &Definition,
    lock: &StoreLock,
    progress: &(dyn Fn(&PullProgress<'_>) + Sync),
) -> Result<PullSummary, PullError> {
    let started = Instant::now();
    lifecycle::run(store, lock, None, None, async |run_id| {
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
        // A source that fails is a failed run, not an error: what it stored
        // is kept and said, and the other sources still run.
        let error = result.err().map(|e| {
            let kept = format!(
                "; kept: {} new, {} updated, {} duplicate, {} non-death, {} quarantined",
                counts.inserted,
                counts.updated,
                counts.duplicate,
                counts.non_death,
                counts.quarantined
            );
            tracing::error!(source = %def.name, error = %e, "pull failed");
            format!("{e}{kept}")
        });
        let mut end = RunEnd::ok(counts.run_counts());
        if let Some(message) = &error {
            end.status = RunStatus::Failed;
            end.message = Some(message.clone());
        }
        let summary = PullSummary {
            source: def.name.clone(),
            kind: def.kind.as_str(),
            run_id,
            counts,
            error,
            elapsed: started.elapsed(),
        };
        (Ok::<_, PullError>(summary), end)
    })
    .await
}
