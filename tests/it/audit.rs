//! The audit log's hash chain, on both backends.

use vigil::audit;

use crate::both_backends;
use crate::support::TestDb;

both_backends!(an_edited_entry_is_found_by_verify, edited_entry);
async fn edited_entry(db: &TestDb) {
    for i in 0..4 {
        audit::append(
            &db.store,
            "system:test",
            "test.action",
            &format!("subject {i}"),
            &serde_json::json!({"i": i}),
        )
        .await
        .unwrap();
    }
    let ok = audit::verify(&db.store).await.unwrap();
    assert_eq!((ok.entries, ok.first_broken), (4, None));

    // The database refuses edits outright…
    let refused = match &db.store {
        vigil::store::Store::Sqlite(p) => {
            sqlx::query("UPDATE audit_log SET details = '{}' WHERE seq = 3")
                .execute(p)
                .await
                .is_err()
        }
        vigil::store::Store::Postgres(p) => {
            sqlx::query("UPDATE audit_log SET details = '{}' WHERE seq = 3")
                .execute(p)
                .await
                .is_err()
        }
    };
    assert!(refused, "audit_log must refuse updates");

    // …and someone who drops the guard is still caught by the chain.
    match &db.store {
        vigil::store::Store::Sqlite(p) => {
            sqlx::query("DROP TRIGGER audit_log_no_update")
                .execute(p)
                .await
                .unwrap();
            sqlx::query("UPDATE audit_log SET details = '{\"i\":99}' WHERE seq = 3")
                .execute(p)
                .await
                .unwrap();
        }
        vigil::store::Store::Postgres(p) => {
            sqlx::query("DROP TRIGGER audit_log_no_change ON audit_log")
                .execute(p)
                .await
                .unwrap();
            sqlx::query("UPDATE audit_log SET details = '{\"i\":99}' WHERE seq = 3")
                .execute(p)
                .await
                .unwrap();
        }
    }
    let report = audit::verify(&db.store).await.unwrap();
    assert_eq!(report.entries, 2);
    let broken = report.first_broken.expect("the edit is found");
    assert_eq!(broken.seq, 3);
    assert!(broken.reason.contains("changed"), "{}", broken.reason);
}

both_backends!(
    concurrent_appends_keep_one_unbroken_chain,
    concurrent_appends
);
async fn concurrent_appends(db: &TestDb) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            audit::append(
                &store,
                "system:test",
                "test.concurrent",
                &format!("t{i}"),
                &serde_json::json!({}),
            )
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = audit::verify(&db.store).await.unwrap();
    assert_eq!((report.entries, report.first_broken), (8, None));
}
