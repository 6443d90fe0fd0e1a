//! Roster import (spec §1), on both backends.

use chrono::NaiveDate;
use vigil::ingest::roster::{ImportError, ImportOptions, ImportSummary, import_roster};
use vigil::store::{LockKey, Store, StoreError};

use crate::both_backends;
use crate::support::{HEADER, TestDb, person, roster_text, valid_id, write};

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn opts(as_of: &str) -> ImportOptions {
    ImportOptions {
        as_of: day(as_of),
        batch_rows: 2,
        actor: "system:test".to_string(),
    }
}

async fn import(
    store: &Store,
    path: &std::path::Path,
    as_of: &str,
) -> Result<ImportSummary, ImportError> {
    import_roster(store, path, &opts(as_of), &|_| {}).await
}

async fn all_pensioners(store: &Store) -> Vec<vigil::model::Pensioner> {
    let mut out = Vec::new();
    for n in 0..50 {
        if let Some(p) = store.get_pensioner(&person(n).person_no).await.unwrap() {
            out.push(p);
        }
    }
    out
}

both_backends!(valid_rows_are_stored_normalised_and_counted, valid_rows);
async fn valid_rows(db: &TestDb) {
    let rows: Vec<_> = (0..5).map(person).collect();
    let file = write(&db.path("roster.csv"), roster_text(&rows));
    let s = import(&db.store, &file, "2026-11-01").await.unwrap();
    assert_eq!(
        (
            s.read,
            s.inserted,
            s.changed,
            s.unchanged,
            s.quarantined,
            s.missing
        ),
        (5, 5, 0, 0, 0, 0)
    );
    assert_eq!(s.encoding, "UTF-8");
    let p = db
        .store
        .get_pensioner(&rows[0].person_no)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.monthly_amount_fen, 326_850);
    assert_eq!(p.name_key, "wangxiuying");
    assert_eq!(p.id_number, rows[0].id_number);
    assert_eq!(p.first_seen, day("2026-11-01"));
    assert_eq!(p.missing_since, None);

    let run = db.store.get_run(s.run_id).await.unwrap().unwrap();
    assert_eq!(
        (run.status.as_str(), run.read_count, run.inserted),
        ("ok", 5, 5)
    );
    assert_eq!(run.file_sha256.as_deref(), Some(s.sha256.as_str()));

    let report = vigil::audit::verify(&db.store).await.unwrap();
    assert_eq!(report.entries, 1);
    assert!(report.first_broken.is_none());
}

both_backends!(
    the_same_file_imported_twice_changes_nothing,
    same_file_twice
);
async fn same_file_twice(db: &TestDb) {
    let rows: Vec<_> = (0..7).map(person).collect();
    let file = write(&db.path("roster.csv"), roster_text(&rows));
    import(&db.store, &file, "2026-11-01").await.unwrap();
    let before = all_pensioners(&db.store).await;
    let s = import(&db.store, &file, "2026-11-01").await.unwrap();
    assert_eq!(
        (
            s.read,
            s.inserted,
            s.changed,
            s.unchanged,
            s.quarantined,
            s.missing
        ),
        (7, 0, 0, 7, 0, 0)
    );
    assert_eq!(all_pensioners(&db.store).await, before);
    assert!(db.store.history_for_run(s.run_id).await.unwrap().is_empty());
}

both_backends!(
    changes_are_kept_as_history_and_the_absent_are_flagged_not_deleted,
    snapshot_changes
);
async fn snapshot_changes(db: &TestDb) {
    let rows: Vec<_> = (0..4).map(person).collect();
    let first = write(&db.path("r1.csv"), roster_text(&rows));
    import(&db.store, &first, "2026-10-01").await.unwrap();

    let mut next = rows.clone();
    next[1].bank_account = "6222029999999999999".to_string();
    next[1].monthly_amount = "3300.00".to_string();
    next[2].status = "suspended".to_string();
    next[2].residence_region = "510104".to_string();
    next.remove(3); // person 3 is absent from the second export
    let second = write(&db.path("r2.csv"), roster_text(&next));
    let s = import(&db.store, &second, "2026-11-01").await.unwrap();
    assert_eq!(
        (s.read, s.inserted, s.changed, s.unchanged, s.missing),
        (3, 0, 2, 1, 1)
    );

    let h1 = db
        .store
        .pensioner_history(&rows[1].person_no)
        .await
        .unwrap();
    let fields: Vec<_> = h1
        .iter()
        .map(|h| (h.field.as_str(), h.before.as_deref(), h.after.as_deref()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("monthly_amount_fen", Some("326850"), Some("330000")),
            (
                "bank_account",
                Some(rows[1].bank_account.as_str()),
                Some("6222029999999999999")
            ),
        ]
    );
    assert!(
        h1.iter()
            .all(|h| h.as_of == day("2026-11-01") && h.run_id == s.run_id)
    );
    let h2: Vec<_> = db
        .store
        .pensioner_history(&rows[2].person_no)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.field)
        .collect();
    assert_eq!(h2, vec!["residence_region", "status"]);

    let gone = db
        .store
        .get_pensioner(&rows[3].person_no)
        .await
        .unwrap()
        .expect("never deleted");
    assert_eq!(gone.missing_since, Some(day("2026-11-01")));
    assert_eq!(db.store.count_pensioners().await.unwrap(), 4);

    // Back in the third export, unchanged: the flag is cleared and the return recorded.
    let third = write(
        &db.path("r3.csv"),
        roster_text(&[next.clone(), vec![rows[3].clone()]].concat()),
    );
    let s3 = import(&db.store, &third, "2026-12-01").await.unwrap();
    assert_eq!((s3.unchanged, s3.reappeared, s3.missing), (4, 1, 0));
    let back = db
        .store
        .get_pensioner(&rows[3].person_no)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.missing_since, None);
    let h3: Vec<_> = db
        .store
        .pensioner_history(&rows[3].person_no)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.field)
        .collect();
    assert_eq!(h3, vec!["missing", "reappeared"]);
}

both_backends!(
    bad_rows_are_quarantined_with_line_and_reason_and_the_rest_goes_in,
    bad_rows
);
async fn bad_rows(db: &TestDb) {
    let good: Vec<_> = (0..3).map(person).collect();
    let mut feb30 = person(10);
    feb30.birth_date = "1942-02-30".to_string();
    let mut comma = person(11);
    comma.monthly_amount = "3,268.5".to_string();
    let mut check = person(12);
    let last = check.id_number.pop().unwrap();
    check.id_number.push(if last == '0' { '1' } else { '0' });
    let mut sex = person(13);
    sex.sex = "2".to_string();
    let mut text = String::from(HEADER);
    text.push('\n');
    text.push_str(&good[0].line()); // line 2
    text.push('\n');
    text.push_str(&feb30.line()); // 3
    text.push('\n');
    text.push_str(&comma.line()); // 4
    text.push('\n');
    text.push_str(&good[1].line()); // 5
    text.push('\n');
    text.push_str(&check.line()); // 6
    text.push('\n');
    text.push_str("4403000099999999,王五,1,2\n"); // 7: wrong column count
    text.push_str(&sex.line()); // 8
    text.push('\n');
    text.push_str(&good[2].line()); // 9
    text.push('\n');
    let cut = person(14).line();
    text.push_str(&cut[..cut.len() / 2]); // 10: truncated, no newline
    let file = write(&db.path("bad.csv"), &text);

    let s = import(&db.store, &file, "2026-11-01").await.unwrap();
    assert_eq!((s.read, s.inserted, s.quarantined), (9, 3, 6));
    let q = db.store.quarantine_for_run(s.run_id).await.unwrap();
    let lines: Vec<_> = q.iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        vec![Some(3), Some(4), Some(6), Some(7), Some(8), Some(10)]
    );
    let reason = |line: i64| {
        q.iter()
            .find(|e| e.line == Some(line))
            .unwrap()
            .reason
            .clone()
    };
    assert!(
        reason(3).contains("birth_date") && reason(3).contains("not a real calendar date"),
        "{}",
        reason(3)
    );
    assert!(
        reason(4).contains("monthly_amount") && reason(4).contains("3,268.5"),
        "{}",
        reason(4)
    );
    assert!(reason(6).contains("check character"), "{}", reason(6));
    assert!(
        reason(7).contains("expected 14 fields, found 4"),
        "{}",
        reason(7)
    );
    assert!(reason(8).contains("sex"), "{}", reason(8));
    assert!(reason(10).contains("truncated"), "{}", reason(10));
    for e in &q {
        assert_eq!(e.file.as_deref(), Some(file.display().to_string().as_str()));
        assert!(!e.raw.is_empty() || e.line == Some(7));
        // Reasons reach screens and logs: no full ID number or account in them.
        assert!(!e.reason.contains(&check.id_number), "{}", e.reason);
        assert!(!e.reason.contains(&feb30.id_number), "{}", e.reason);
        assert!(!e.reason.contains(&comma.bank_account), "{}", e.reason);
    }
    assert!(
        q.iter()
            .find(|e| e.line == Some(6))
            .unwrap()
            .raw
            .contains(&check.id_number)
    );
    for g in &good {
        assert!(
            db.store
                .get_pensioner(&g.person_no)
                .await
                .unwrap()
                .is_some()
        );
    }
    // Nothing stored before is lost when a later file is bad.
    let before = db.store.count_pensioners().await.unwrap();
    let s2 = import(&db.store, &file, "2026-11-02").await.unwrap();
    assert_eq!((s2.unchanged, s2.quarantined, s2.missing), (3, 6, 0));
    assert_eq!(db.store.count_pensioners().await.unwrap(), before);
}

both_backends!(
    a_header_missing_required_columns_is_refused_before_anything_is_written,
    missing_columns
);
async fn missing_columns(db: &TestDb) {
    let rows: Vec<_> = (0..2).map(person).collect();
    let text = roster_text(&rows)
        .replacen("bank_account,", "", 1)
        .replacen("status,", "", 1);
    let file = write(&db.path("cols.csv"), text);
    let err = import(&db.store, &file, "2026-11-01").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImportError::MissingColumns { .. }), "{msg}");
    assert!(
        msg.contains("bank_account, status") && msg.contains("cols.csv"),
        "{msg}"
    );
    assert_eq!(db.store.count_pensioners().await.unwrap(), 0);
    assert!(db.store.list_runs(10).await.unwrap().is_empty());
}

both_backends!(an_empty_file_is_refused_with_its_name, empty_file);
async fn empty_file(db: &TestDb) {
    let file = write(&db.path("empty.csv"), "");
    let err = import(&db.store, &file, "2026-11-01").await.unwrap_err();
    assert!(matches!(err, ImportError::Empty { .. }));
    assert!(err.to_string().contains("empty.csv"));
    assert_eq!(db.store.count_pensioners().await.unwrap(), 0);
}

both_backends!(gbk_and_bom_exports_are_detected_and_read_alike, encodings);
async fn encodings(db: &TestDb) {
    let rows: Vec<_> = (0..3).map(person).collect();
    let text = roster_text(&rows);
    let (gbk, _, _) = encoding_rs::GBK.encode(&text);
    let gbk_file = write(&db.path("gbk.csv"), &gbk[..]);
    let s = import(&db.store, &gbk_file, "2026-11-01").await.unwrap();
    assert_eq!((s.encoding.as_str(), s.inserted), ("GBK", 3));
    let p = db
        .store
        .get_pensioner(&rows[1].person_no)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.name, "李建国");

    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(text.as_bytes());
    let bom_file = write(&db.path("bom.csv"), bom);
    let s = import(&db.store, &bom_file, "2026-11-01").await.unwrap();
    assert_eq!(
        (s.encoding.as_str(), s.unchanged, s.quarantined),
        ("UTF-8 with BOM", 3, 0)
    );

    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    let u16_file = write(&db.path("utf16.csv"), utf16);
    let err = import(&db.store, &u16_file, "2026-11-01")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("UTF-16") && err.to_string().contains("utf16.csv"),
        "{err}"
    );
    assert_eq!(db.store.count_pensioners().await.unwrap(), 3);
}

both_backends!(a_legacy_15_digit_id_is_upgraded_and_noted, legacy_id);
async fn legacy_id(db: &TestDb) {
    let mut r = person(1);
    let full = r.id_number.clone();
    r.id_number = format!("{}{}", &full[..6], &full[8..17]);
    let file = write(&db.path("legacy.csv"), roster_text(&[r.clone(), person(2)]));
    let s = import(&db.store, &file, "2026-11-01").await.unwrap();
    assert_eq!((s.inserted, s.quarantined, s.upgraded_ids), (2, 0, 1));
    let p = db.store.get_pensioner(&r.person_no).await.unwrap().unwrap();
    assert_eq!(p.id_number, full);
    assert!(p.id_upgraded);
}

both_backends!(an_export_older_than_the_last_one_is_refused, older_export);
async fn older_export(db: &TestDb) {
    let file = write(&db.path("r.csv"), roster_text(&[person(1)]));
    import(&db.store, &file, "2026-11-01").await.unwrap();
    let err = import(&db.store, &file, "2026-10-01").await.unwrap_err();
    assert!(matches!(err, ImportError::OlderSnapshot { .. }), "{err}");
    assert!(err.to_string().contains("2026-11-01"));
}

both_backends!(
    a_person_number_twice_in_one_file_keeps_the_first_row,
    duplicate_person
);
async fn duplicate_person(db: &TestDb) {
    let a = person(1);
    let mut b = person(1);
    b.monthly_amount = "1.00".to_string();
    let file = write(&db.path("dup.csv"), roster_text(&[a.clone(), person(2), b]));
    let s = import(&db.store, &file, "2026-11-01").await.unwrap();
    assert_eq!((s.read, s.inserted, s.quarantined), (3, 2, 1));
    let p = db.store.get_pensioner(&a.person_no).await.unwrap().unwrap();
    assert_eq!(p.monthly_amount_fen, 326_850);
    let q = db.store.quarantine_for_run(s.run_id).await.unwrap();
    assert_eq!(q[0].line, Some(4));
    assert!(q[0].reason.contains("more than once"));
}

both_backends!(many_rows_across_batches_import_completely, many_rows);
async fn many_rows(db: &TestDb) {
    // Enough rows to cross SQLite's multi-row INSERT size and several batches.
    let rows: Vec<_> = (0..1234u32)
        .map(|n| {
            let mut r = vigil_row(n);
            r.person_no = format!("5101{:012}", n);
            r
        })
        .collect();
    let file = write(&db.path("many.csv"), roster_text(&rows));
    let o = ImportOptions {
        batch_rows: 700,
        ..opts("2026-11-01")
    };
    let s = import_roster(&db.store, &file, &o, &|_| {}).await.unwrap();
    assert_eq!((s.read, s.inserted, s.quarantined), (1234, 1234, 0));
    assert_eq!(db.store.count_pensioners().await.unwrap(), 1234);
    let s2 = import_roster(&db.store, &file, &o, &|_| {}).await.unwrap();
    assert_eq!((s2.unchanged, s2.inserted, s2.changed), (1234, 0, 0));
}

fn vigil_row(n: u32) -> crate::support::Row {
    let mut r = person(n % 8);
    let birth = format!("19{:02}0{}1{}", 30 + n % 40, 1 + n % 9, n % 10);
    let seq = (n % 499) * 2 + if r.sex == "1" { 1 } else { 0 };
    r.id_number = valid_id("510104", &birth, seq);
    r.birth_date = format!("{}-{}-{}", &birth[..4], &birth[4..6], &birth[6..]);
    r
}

both_backends!(
    every_field_of_a_new_pensioner_reads_back_as_imported,
    round_trip
);
async fn round_trip(db: &TestDb) {
    use vigil::model::Pensioner;
    // A: every optional field present, an amount past 32 bits.
    let mut a = person(0);
    a.monthly_amount = "123456789012.99".to_string();
    // B: a traditional-script name, a legacy 15-digit ID, no certification
    // date and no phone (NULLs), a start date before PostgreSQL's epoch.
    let mut b = person(3);
    let b_full = b.id_number.clone();
    b.id_number = format!("{}{}", &b_full[..6], &b_full[8..17]);
    b.name = "劉德華".to_string();
    b.residence_region = "110101".to_string();
    b.benefit_type = "resident_basic".to_string();
    b.monthly_amount = "0.07".to_string();
    b.benefit_start = "1999-12-31".to_string();
    b.status = "suspended".to_string();
    b.last_certified = String::new();
    b.phone = String::new();
    // C: no certification date, a phone with + and -, arriving in a later
    // import when the table is no longer empty (the other write path:
    // indexes kept, rows checked against them).
    let mut c = person(5);
    c.last_certified = String::new();
    c.phone = "+86-755-1234567".to_string();
    c.status = "terminated".to_string();

    let first = write(&db.path("r1.csv"), roster_text(&[a.clone(), b.clone()]));
    let s = import(&db.store, &first, "2026-11-01").await.unwrap();
    assert_eq!((s.inserted, s.quarantined), (2, 0));
    let second = write(
        &db.path("r2.csv"),
        roster_text(&[a.clone(), b.clone(), c.clone()]),
    );
    let s = import(&db.store, &second, "2026-11-02").await.unwrap();
    assert_eq!((s.inserted, s.unchanged, s.quarantined), (1, 2, 0));

    let expect = |mut p: Pensioner| {
        p.content_hash = vigil::ingest::roster::content_hash(&p) as i64;
        p
    };
    let want_a = expect(Pensioner {
        person_no: a.person_no.as_str().into(),
        name: "王秀英".into(),
        name_norm: "王秀英".into(),
        name_key: "wangxiuying".into(),
        id_number: a.id_number.as_str().into(),
        id_upgraded: false,
        sex: 2,
        birth_date: day("1940-01-10"),
        insured_region: "440304".into(),
        residence_region: "440304".into(),
        benefit_type: "employee_basic".into(),
        monthly_amount_fen: 12_345_678_901_299,
        bank_account: "6222021200000000000".into(),
        benefit_start: day("2002-04-01"),
        status: "active".into(),
        last_certified: Some(day("2026-02-11")),
        phone: Some("13800138000".to_string()),
        content_hash: 0,
        first_seen: day("2026-11-01"),
        missing_since: None,
    });
    let want_b = expect(Pensioner {
        person_no: b.person_no.as_str().into(),
        name: "劉德華".into(),
        name_norm: "刘德华".into(),
        name_key: "liudehua".into(),
        id_number: b_full.into(),
        id_upgraded: true,
        sex: 1,
        birth_date: day("1943-04-13"),
        insured_region: "440304".into(),
        residence_region: "110101".into(),
        benefit_type: "resident_basic".into(),
        monthly_amount_fen: 7,
        bank_account: "6222021200000000003".into(),
        benefit_start: day("1999-12-31"),
        status: "suspended".into(),
        last_certified: None,
        phone: None,
        content_hash: 0,
        first_seen: day("2026-11-01"),
        missing_since: None,
    });
    let want_c = expect(Pensioner {
        person_no: c.person_no.as_str().into(),
        name: "杨国强".into(),
        name_norm: "杨国强".into(),
        name_key: "yangguoqiang".into(),
        id_number: c.id_number.as_str().into(),
        id_upgraded: false,
        sex: 1,
        birth_date: day("1945-06-15"),
        insured_region: "440304".into(),
        residence_region: "440304".into(),
        benefit_type: "employee_basic".into(),
        monthly_amount_fen: 326_850,
        bank_account: "6222021200000000005".into(),
        benefit_start: day("2002-04-01"),
        status: "terminated".into(),
        last_certified: None,
        phone: Some("+86-755-1234567".to_string()),
        content_hash: 0,
        first_seen: day("2026-11-02"),
        missing_since: None,
    });
    for want in [want_a, want_b, want_c] {
        let got = db.store.get_pensioner(&want.person_no).await.unwrap();
        assert_eq!(got.as_ref(), Some(&want));
    }
}

/// Stores a second row with the same person number as a stored one,
/// behind the import's back.
async fn insert_copy_of(store: &Store, person_no: &str) -> Result<(), sqlx::Error> {
    crate::support::insert_copy_as(store, person_no, person_no).await
}

both_backends!(
    after_a_first_import_a_person_number_cannot_be_stored_twice,
    unique_after_first_import
);
async fn unique_after_first_import(db: &TestDb) {
    let rows: Vec<_> = (0..3).map(person).collect();
    let file = write(&db.path("r.csv"), roster_text(&rows));
    import(&db.store, &file, "2026-11-01").await.unwrap();
    let err = insert_copy_of(&db.store, &rows[1].person_no)
        .await
        .unwrap_err();
    assert!(
        err.as_database_error()
            .is_some_and(|e| e.is_unique_violation()),
        "{err}"
    );
    assert_eq!(db.store.count_pensioners().await.unwrap(), 3);
}

both_backends!(
    indexes_a_crashed_first_import_left_dropped_are_rebuilt_on_open,
    rebuilt_on_open
);
async fn rebuilt_on_open(db: &TestDb) {
    let rows: Vec<_> = (0..3).map(person).collect();
    let file = write(&db.path("r.csv"), roster_text(&rows));
    import(&db.store, &file, "2026-11-01").await.unwrap();
    // As if an import had died between dropping the indexes and building
    // them: the next start builds them.
    db.store.drop_roster_indexes().await.unwrap();
    let reopened = Store::open(&db.url, 2).await.unwrap();
    assert!(insert_copy_of(&reopened, &rows[0].person_no).await.is_err());
    // And if the roster meanwhile holds a person twice, vigil refuses to
    // start rather than run without its key.
    db.store.drop_roster_indexes().await.unwrap();
    insert_copy_of(&db.store, &rows[0].person_no).await.unwrap();
    let err = Store::open(&db.url, 2).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("pensioners_person_no"), "{err}");
    reopened.close().await;
}

both_backends!(
    a_roster_import_is_refused_while_another_runs,
    one_import_at_a_time
);
async fn one_import_at_a_time(db: &TestDb) {
    let file = write(&db.path("r.csv"), roster_text(&[person(1)]));
    // Another import (here: its lock) holds the database.
    let held = db.store.lock(LockKey::RosterImport).await.unwrap();
    let err = import(&db.store, &file, "2026-11-01").await.unwrap_err();
    assert!(
        matches!(err, ImportError::Store(StoreError::ImportRunning(_))),
        "{err}"
    );
    assert_eq!(db.store.count_pensioners().await.unwrap(), 0);
    held.release().await;
    let s = import(&db.store, &file, "2026-11-01").await.unwrap();
    assert_eq!(s.inserted, 1);
}

both_backends!(
    an_import_that_died_is_marked_abandoned_by_the_next_import,
    dead_import_abandoned
);
async fn dead_import_abandoned(db: &TestDb) {
    let dead = db
        .store
        .start_run(
            "roster_import",
            vigil::ingest::roster::SOURCE,
            None,
            Some(day("2026-10-01")),
        )
        .await
        .unwrap();
    let rows: Vec<_> = (0..3).map(person).collect();
    let file = write(&db.path("roster.csv"), roster_text(&rows));
    let s = import(&db.store, &file, "2026-11-01").await.unwrap();
    crate::support::assert_abandoned(&db.store, dead).await;
    assert_eq!(
        db.store.get_run(s.run_id).await.unwrap().unwrap().status,
        "ok"
    );
    // Only the import that finished counts as the roster's snapshot date.
    assert_eq!(
        db.store.last_roster_as_of().await.unwrap(),
        Some(day("2026-11-01"))
    );
}
