//! The one run lifecycle every kind of run goes through, on both backends:
//! what it records when the body succeeds, fails, or finds a dead run.

use vigil::audit;
use vigil::lifecycle::{self, RunEnd};
use vigil::store::runs::RunCounts;
use vigil::store::{LockKey, StoreError};

use crate::both_backends;
use crate::support::{TestDb, assert_abandoned, dead_run};

fn counts(read: u64, inserted: u64) -> RunCounts {
    RunCounts {
        read,
        inserted,
        ..Default::default()
    }
}

both_backends!(
    a_run_that_ends_well_records_its_counts_file_and_audit_entry,
    ends_well
);
async fn ends_well(db: &TestDb) {
    let store = &db.store;
    let run_id = lifecycle::with_run_lock(store, LockKey::Match, async |lock| {
        lifecycle::run(store, lock, Some("input.csv"), None, async |run_id| {
            let end = RunEnd::ok(counts(5, 3)).with_file_sha256("ab12").audited(
                "system:test",
                "test.run",
                "input.csv",
                serde_json::json!({"run_id": run_id}),
            );
            (Ok::<_, StoreError>(run_id), end)
        })
        .await
    })
    .await
    .unwrap();
    let run = store.get_run(run_id).await.unwrap().unwrap();
    assert_eq!(
        (run.kind.as_str(), run.status.as_str()),
        ("match", "ok"),
        "{run:?}"
    );
    assert_eq!((run.read_count, run.inserted), (5, 3), "{run:?}");
    assert_eq!(run.file.as_deref(), Some("input.csv"));
    assert_eq!(run.file_sha256.as_deref(), Some("ab12"));
    assert!(run.finished_at.is_some());
    assert_eq!(audit::verify(store).await.unwrap().entries, 1);
}

both_backends!(
    a_failed_body_is_recorded_failed_with_what_it_kept_and_no_audit_entry,
    fails
);
async fn fails(db: &TestDb) {
    let store = &db.store;
    let mut seen = None;
    let result = lifecycle::with_run_lock(store, LockKey::Match, async |lock| {
        lifecycle::run(store, lock, None, None, async |run_id| {
            seen = Some(run_id);
            let end = RunEnd::ok(counts(7, 2)).audited(
                "system:test",
                "test.run",
                "never",
                serde_json::Value::Null,
            );
            (
                Err::<(), _>(StoreError::Corrupt("the disk said no".into())),
                end,
            )
        })
        .await
    })
    .await;
    assert!(result.is_err());
    let run = store.get_run(seen.unwrap()).await.unwrap().unwrap();
    assert_eq!(run.status, "failed", "{run:?}");
    assert_eq!((run.read_count, run.inserted), (7, 2), "{run:?}");
    assert!(
        run.message
            .as_deref()
            .unwrap_or_default()
            .contains("the disk said no"),
        "{run:?}"
    );
    assert_eq!(run.file_sha256, None);
    assert_eq!(audit::verify(store).await.unwrap().entries, 0);
    // The lock went back: the next run of the kind starts.
    lifecycle::with_run_lock(store, LockKey::Match, async |_| Ok::<_, StoreError>(()))
        .await
        .unwrap();
}

both_backends!(
    taking_the_lock_marks_a_dead_run_of_the_kind_abandoned,
    dead_run_abandoned
);
async fn dead_run_abandoned(db: &TestDb) {
    let store = &db.store;
    let (kind, source) = LockKey::Match.run();
    let dead = dead_run(store, kind, source).await;
    let other = dead_run(store, "pull", "funeral").await;
    lifecycle::with_run_lock(store, LockKey::Match, async |_| Ok::<_, StoreError>(()))
        .await
        .unwrap();
    assert_abandoned(store, dead).await;
    let untouched = store.get_run(other).await.unwrap().unwrap();
    assert_eq!(
        untouched.status, "running",
        "another kind's run is not ours"
    );
}
