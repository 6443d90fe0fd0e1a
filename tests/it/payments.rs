//! The payment ledger (spec §7), on both backends: the import (fen exact,
//! bad rows quarantined with line and reason, re-imports changing nothing,
//! the run's counts and audit entry, one import at a time), the questions
//! the reconciliation asks of the stored ledger, and `vigil payments
//! import` through the real binary.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use chrono::NaiveDate;
use vigil::ingest::payments::{
    PaymentsImportError, PaymentsImportOptions, PaymentsImportSummary, import_payments,
};
use vigil::model::Period;
use vigil::store::{LockKey, Store, StoreError};

use crate::both_backends;
use crate::support::{TestDb, write};

const HEADER: &str = "person_no,period,amount,bank_account,paid_on";
const ACCOUNT_1: &str = "6222021200000000011";
const ACCOUNT_2: &str = "6222021200000000022";
const ACCOUNT_3: &str = "6217001234567890333";

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn period(s: &str) -> Period {
    Period::parse(s).unwrap()
}

fn opts() -> PaymentsImportOptions {
    PaymentsImportOptions {
        batch_rows: 3,
        actor: "system:test".to_string(),
        today: day("2026-11-27"),
    }
}

async fn import(store: &Store, path: &Path) -> Result<PaymentsImportSummary, PaymentsImportError> {
    import_payments(store, path, &opts(), &|_| {}).await
}

fn lines(header: &str, rows: &[&str]) -> String {
    let mut s = format!("{header}\n");
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

fn counts(s: &PaymentsImportSummary) -> (u64, u64, u64, u64) {
    (s.read, s.inserted, s.duplicate, s.quarantined)
}

/// The audit log's (action, details), in order.
async fn audit_entries(store: &Store) -> Vec<(String, String)> {
    crate::support::with_pool!(store, pool => {
        sqlx::query_as::<_, (String, String)>("SELECT action, details FROM audit_log ORDER BY seq")
            .fetch_all(pool)
            .await
    })
    .unwrap()
}

/// Two people over three months: P1 paid each month (two rows in
/// October), P2 paid in September only.
fn ledger_rows() -> Vec<String> {
    vec![
        format!("P1,2026-08,3268.50,{ACCOUNT_1},2026-08-15"),
        format!("P1,2026-09,3268.50,{ACCOUNT_1},2026-09-15"),
        format!("P2,2026-09,2100,{ACCOUNT_2},2026-09-15"),
        format!("P1,2026-10,3000.5,{ACCOUNT_1},2026-10-15"),
        format!("P1,2026-10,268.07,{ACCOUNT_1},2026-10-20"),
    ]
}

both_backends!(a_valid_ledger_is_stored_in_exact_fen_and_counted, valid);
async fn valid(db: &TestDb) {
    let rows = ledger_rows();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let file = write(&db.path("payments.csv"), lines(HEADER, &rows));
    let s = import(&db.store, &file).await.unwrap();
    assert_eq!(counts(&s), (5, 5, 0, 0));
    assert_eq!(s.inserted_fen, 326_850 * 2 + 210_000 + 300_050 + 26_807);
    assert_eq!(s.by_period.get(&period("2026-10")), Some(&2));
    assert_eq!(db.store.count_payments().await.unwrap(), 5);

    let ledger = db.store.ledger_for("P1").await.unwrap();
    let got: Vec<(String, i64, NaiveDate, &str, i64)> = ledger
        .iter()
        .map(|e| {
            (
                e.payment.period.to_string(),
                e.payment.amount_fen,
                e.payment.paid_on,
                e.payment.bank_account.as_str(),
                e.run_id,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "2026-08".into(),
                326_850,
                day("2026-08-15"),
                ACCOUNT_1,
                s.run_id
            ),
            (
                "2026-09".into(),
                326_850,
                day("2026-09-15"),
                ACCOUNT_1,
                s.run_id
            ),
            (
                "2026-10".into(),
                300_050,
                day("2026-10-15"),
                ACCOUNT_1,
                s.run_id
            ),
            (
                "2026-10".into(),
                26_807,
                day("2026-10-20"),
                ACCOUNT_1,
                s.run_id
            ),
        ]
    );
    assert!(db.store.ledger_for("P9").await.unwrap().is_empty());

    let covered = db.store.ledger_periods().await.unwrap();
    let want: BTreeSet<Period> = ["2026-08", "2026-09", "2026-10"]
        .into_iter()
        .map(period)
        .collect();
    assert_eq!(covered, want);

    // Still paid after a stop effective September? P1 yes (two rows in
    // October summed), P2 only in September itself, nobody from November.
    assert_eq!(
        db.store
            .paid_periods_since("P1", period("2026-09"))
            .await
            .unwrap(),
        vec![(period("2026-09"), 326_850), (period("2026-10"), 326_857)]
    );
    assert_eq!(
        db.store
            .paid_periods_since("P2", period("2026-10"))
            .await
            .unwrap(),
        vec![]
    );
    assert!(
        db.store
            .paid_periods_since("P1", period("2026-11"))
            .await
            .unwrap()
            .is_empty()
    );

    let run = db.store.get_run(s.run_id).await.unwrap().unwrap();
    assert_eq!(
        (run.kind.as_str(), run.source.as_str(), run.status.as_str()),
        ("payments_import", "payment_ledger", "ok")
    );
    assert_eq!(
        (run.read_count, run.inserted, run.unchanged, run.quarantined),
        (5, 5, 0, 0)
    );
    assert_eq!(run.file_sha256.as_deref(), Some(s.sha256.as_str()));
    assert_eq!(s.sha256.len(), 64);
    let entries = audit_entries(&db.store).await;
    let (action, details) = entries.last().unwrap();
    assert_eq!(action, "payments.import");
    assert!(details.contains(&s.sha256), "{details}");
    assert!(!details.contains(ACCOUNT_1), "{details}");
}

both_backends!(an_empty_ledger_covers_no_month, empty_ledger);
async fn empty_ledger(db: &TestDb) {
    assert!(db.store.ledger_periods().await.unwrap().is_empty());
    // A header and nothing else: a run that read nothing.
    let file = write(&db.path("payments.csv"), format!("{HEADER}\n"));
    let s = import(&db.store, &file).await.unwrap();
    assert_eq!(counts(&s), (0, 0, 0, 0));
    assert!(db.store.ledger_periods().await.unwrap().is_empty());
}

both_backends!(
    columns_in_another_order_and_a_byte_order_mark_are_read_by_the_header,
    reordered
);
async fn reordered(db: &TestDb) {
    let mut text = vec![0xEF, 0xBB, 0xBF];
    text.extend_from_slice(
        format!(
            "paid_on, Amount ,person_no,bank_account,period\n\
             2026-10-15,3268.50,P1,{ACCOUNT_1},2026-10\n"
        )
        .as_bytes(),
    );
    let file = write(&db.path("payments.csv"), text);
    let s = import(&db.store, &file).await.unwrap();
    assert_eq!(counts(&s), (1, 1, 0, 0));
    let ledger = db.store.ledger_for("P1").await.unwrap();
    assert_eq!(ledger[0].payment.amount_fen, 326_850);
    assert_eq!(ledger[0].payment.period, period("2026-10"));
}

both_backends!(
    bad_ledger_rows_are_quarantined_with_line_and_reason_and_the_rest_goes_in,
    bad_rows
);
async fn bad_rows(db: &TestDb) {
    let rows = [
        format!("P1,2026-10,3268.50,{ACCOUNT_1},2026-10-15"), // line 2
        format!("P2,2026-13,3268.50,{ACCOUNT_2},2026-10-15"), // line 3
        format!("P2,2026-10,3268.505,{ACCOUNT_2},2026-10-15"), // line 4
        format!("P2,2026-10,-3268.50,{ACCOUNT_2},2026-10-15"), // line 5
        format!("P2,2026-10,3268.50,{ACCOUNT_2},2026-10-32"), // line 6
        format!(",2026-10,3268.50,{ACCOUNT_2},2026-10-15"),   // line 7
        format!("P3,2026-10,100.00,{ACCOUNT_3},2026-10-15"),  // line 8
        "P2,2026-10,3268.50,6222-0212,2026-10-15".to_string(), // line 9
        format!("P2,2026-10,3268.50,{ACCOUNT_2}"),            // line 10
        format!("P2,2026-10,3268.50,{ACCOUNT_2},2026-12-01"), // line 11
        format!("P2,2026-10,\"3,268.50\",{ACCOUNT_2},2026-10-15"), // line 12
    ];
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let file = write(&db.path("payments.csv"), lines(HEADER, &rows));
    let s = import(&db.store, &file).await.unwrap();
    assert_eq!(counts(&s), (11, 2, 0, 9));
    assert_eq!(s.read, s.inserted + s.duplicate + s.quarantined);
    assert_eq!(db.store.count_payments().await.unwrap(), 2);
    assert!(db.store.ledger_for("P2").await.unwrap().is_empty());
    assert_eq!(
        db.store.ledger_for("P3").await.unwrap()[0]
            .payment
            .amount_fen,
        10_000
    );

    let q = db.store.quarantine_for_run(s.run_id).await.unwrap();
    let got: Vec<(i64, &str)> = q
        .iter()
        .map(|e| (e.line.unwrap(), e.reason.as_str()))
        .collect();
    let want = [
        (3, "period 2026-13 has no month 13"),
        (4, "amount '3268.505' is not a yuan amount"),
        (5, "amount -3268.50 is negative"),
        (6, "paid_on 2026-10-32 is not a real calendar date"),
        (7, "person_no is empty"),
        (9, "bank_account is not 10 to 32 digits"),
        (10, "expected 5 fields as in the header, found 4"),
        (11, "paid_on 2026-12-01 is in the future"),
        (12, "amount '3,268.50' is not a yuan amount"),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((line, reason), (want_line, want_text)) in got.iter().zip(want) {
        assert_eq!(*line, want_line, "{got:?}");
        assert!(reason.contains(want_text), "line {line}: {reason}");
    }
    for e in &q {
        assert_eq!(e.source, "payment_ledger");
        assert_eq!(e.file.as_deref(), Some(file.display().to_string().as_str()));
        // The reason is shown and logged: never a whole bank account.
        assert!(!e.reason.contains(ACCOUNT_2), "{}", e.reason);
    }
    // The raw row is kept for whoever may see it.
    assert!(q[0].raw.contains(ACCOUNT_2), "{}", q[0].raw);
    let run = db.store.get_run(s.run_id).await.unwrap().unwrap();
    assert_eq!(
        (run.read_count, run.inserted, run.unchanged, run.quarantined),
        (11, 2, 0, 9)
    );
}

both_backends!(
    a_ledger_imported_again_is_all_duplicates_and_changes_nothing,
    reimport
);
async fn reimport(db: &TestDb) {
    let rows = ledger_rows();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let file = write(&db.path("payments.csv"), lines(HEADER, &rows));
    let first = import(&db.store, &file).await.unwrap();
    let before = db.store.ledger_for("P1").await.unwrap();
    let again = import(&db.store, &file).await.unwrap();
    assert_eq!(counts(&again), (5, 0, 5, 0));
    assert_eq!(again.inserted_fen, 0);
    // Recognised rows still count for their month.
    assert_eq!(again.by_period.get(&period("2026-10")), Some(&2));
    assert_eq!(again.sha256, first.sha256);
    assert_eq!(db.store.count_payments().await.unwrap(), 5);
    // The stored rows still name the run that brought them.
    assert_eq!(db.store.ledger_for("P1").await.unwrap(), before);
    let run = db.store.get_run(again.run_id).await.unwrap().unwrap();
    assert_eq!(
        (run.read_count, run.inserted, run.unchanged, run.quarantined),
        (5, 0, 5, 0)
    );
    assert_eq!(run.status, "ok");
}

both_backends!(
    a_payment_repeated_is_a_duplicate_but_into_another_account_it_is_quarantined,
    conflicts
);
async fn conflicts(db: &TestDb) {
    let first = write(
        &db.path("first.csv"),
        lines(
            HEADER,
            &[&format!("P1,2026-10,3268.50,{ACCOUNT_1},2026-10-15")],
        ),
    );
    let first = import(&db.store, &first).await.unwrap();
    // Batches of three rows: lines 2-4 are one batch, 5-6 the next.
    let rows = [
        format!("P2,2026-10,2100.00,{ACCOUNT_2},2026-10-15"), // line 2
        // Line 2 again, in the same file: the same payment.
        format!("P2,2026-10,2100,{ACCOUNT_2},2026-10-15"), // line 3
        // Line 2 into another account.
        format!("P2,2026-10,2100.00,{ACCOUNT_3},2026-10-15"), // line 4
        // The stored payment, into another account.
        format!("P1,2026-10,3268.50,{ACCOUNT_3},2026-10-15"), // line 5
        // Another amount on the same day is another payment.
        format!("P2,2026-10,50.00,{ACCOUNT_2},2026-10-15"), // line 6
    ];
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let file = write(&db.path("second.csv"), lines(HEADER, &rows));
    let s = import(&db.store, &file).await.unwrap();
    assert_eq!(counts(&s), (5, 2, 1, 2));
    let q = db.store.quarantine_for_run(s.run_id).await.unwrap();
    let got: Vec<i64> = q.iter().map(|e| e.line.unwrap()).collect();
    assert_eq!(got, [4, 5]);
    assert!(
        q[0].reason.contains("line 2 has this payment"),
        "{}",
        q[0].reason
    );
    assert!(
        q[1].reason
            .contains(&format!("already stored (run {})", first.run_id)),
        "{}",
        q[1].reason
    );
    for e in &q {
        for account in [ACCOUNT_1, ACCOUNT_2, ACCOUNT_3] {
            assert!(!e.reason.contains(account), "{}", e.reason);
        }
    }
    // The stored one is kept.
    let p1 = db.store.ledger_for("P1").await.unwrap();
    assert_eq!(p1.len(), 1);
    assert_eq!(p1[0].payment.bank_account, ACCOUNT_1);
    let p2: Vec<(i64, String)> = db
        .store
        .ledger_for("P2")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.payment.amount_fen, e.payment.bank_account))
        .collect();
    assert_eq!(
        p2,
        vec![
            (5_000, ACCOUNT_2.to_string()),
            (210_000, ACCOUNT_2.to_string())
        ]
    );
}

both_backends!(
    a_ledger_lacking_a_column_is_refused_before_anything_is_written,
    missing_column
);
async fn missing_column(db: &TestDb) {
    let file = write(
        &db.path("payments.csv"),
        format!("person_no,period,bank_account,paid_on\nP1,2026-10,{ACCOUNT_1},2026-10-15\n"),
    );
    let err = import(&db.store, &file).await.unwrap_err();
    assert!(
        matches!(&err, PaymentsImportError::MissingColumns { missing, .. } if missing == &["amount"]),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("payments.csv") && text.contains("amount"),
        "{text}"
    );
    let empty = write(&db.path("empty.csv"), "");
    let err = import(&db.store, &empty).await.unwrap_err();
    assert!(matches!(err, PaymentsImportError::Empty { .. }), "{err}");
    assert_eq!(db.store.count_payments().await.unwrap(), 0);
    assert!(db.store.list_runs(10).await.unwrap().is_empty());
    assert!(audit_entries(&db.store).await.is_empty());
}

both_backends!(
    one_ledger_import_at_a_time_and_a_dead_one_is_abandoned,
    import_lock
);
async fn import_lock(db: &TestDb) {
    let file = write(
        &db.path("payments.csv"),
        lines(
            HEADER,
            &[&format!("P1,2026-10,3268.50,{ACCOUNT_1},2026-10-15")],
        ),
    );
    let dead = crate::support::dead_run(&db.store, "payments_import", "payment_ledger").await;
    let held = db.store.lock(LockKey::PaymentsImport).await.unwrap();
    let err = import(&db.store, &file).await.unwrap_err();
    assert!(
        matches!(
            err,
            PaymentsImportError::Store(StoreError::PaymentsImportRunning(_))
        ),
        "{err}"
    );
    assert!(err.to_string().contains("wait for it"), "{err}");
    assert_eq!(db.store.count_payments().await.unwrap(), 0);
    let run = db.store.get_run(dead).await.unwrap().unwrap();
    assert_eq!(run.status, "running");
    held.release().await;
    let s = import(&db.store, &file).await.unwrap();
    assert_eq!(s.inserted, 1);
    crate::support::assert_abandoned(&db.store, dead).await;
}

// ---------------------------------------------------------------------------
// The command line, on each backend's database.

fn vigil(dir: &Path, db: &TestDb) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(dir)
        .env("VIGIL_DATABASE_URL", &db.url)
        .env_remove("VIGIL_CONFIG")
        .env("VIGIL_LOG", "warn");
    c
}

both_backends!(
    payments_import_prints_a_one_line_summary_and_exits_non_zero_on_a_refused_file,
    cli_import
);
async fn cli_import(db: &TestDb) {
    let dir = db.dir.path();
    let file = write(
        &db.path("payments.csv"),
        lines(
            HEADER,
            &[
                &format!("P1,2026-10,3268.50,{ACCOUNT_1},2026-10-15"),
                &format!("P2,2026-10,12.345,{ACCOUNT_2},2026-10-15"),
            ],
        ),
    );
    let out = vigil(dir, db)
        .args(["payments", "import", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains("payment ledger")
            && first.contains("read 2, inserted 1 (3268.50 yuan), duplicate 0, quarantined 1"),
        "{stdout}"
    );
    assert!(stdout.contains("line 3: amount '12.345'"), "{stdout}");
    for account in [ACCOUNT_1, ACCOUNT_2] {
        assert!(
            !stdout.contains(account) && !stderr.contains(account),
            "{stdout}{stderr}"
        );
    }
    assert_eq!(
        db.store.ledger_for("P1").await.unwrap()[0]
            .payment
            .amount_fen,
        326_850
    );

    // Again, as JSON: all duplicates now.
    let out = vigil(dir, db)
        .args(["payments", "import", "--json", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["read"], 2);
    assert_eq!(json["inserted"], 0);
    assert_eq!(json["duplicate"], 1);
    assert_eq!(json["quarantined"], 1);

    let bad = write(&db.path("nocols.csv"), "person_no,period\nP1,2026-10\n");
    let out = vigil(dir, db)
        .args(["payments", "import", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nocols.csv") && stderr.contains("amount, bank_account, paid_on"),
        "{stderr}"
    );
}
