//! The matcher's roster snapshot on both backends: on SQLite the roster is
//! read from the snapshot beside the database while nothing the matcher
//! reads has changed, and from the database (writing the snapshot again)
//! as soon as anything has, through vigil or behind its back. PostgreSQL
//! has no snapshot and reads the database every time; both give the same
//! roster.

use chrono::NaiveDate;
use vigil::ingest::roster::{ImportOptions, import_roster};
use vigil::store::Store;
use vigil::store::roster_snapshot::RosterFrom;

use crate::both_backends;
use crate::support::{TestDb, person, roster_text, write};

async fn import(db: &TestDb, rows: &[crate::support::Row], as_of: &str) {
    let file = write(&db.path(&format!("roster-{as_of}.csv")), roster_text(rows));
    let opts = ImportOptions {
        as_of: as_of.parse::<NaiveDate>().unwrap(),
        batch_rows: 7,
        actor: "system:test".into(),
    };
    import_roster(&db.store, &file, &opts, &|_| {})
        .await
        .unwrap();
}

async fn sql(store: &Store, text: &'static str, person_no: &str) {
    crate::support::with_pool!(store, pool => {
        sqlx::query(text).bind(person_no).execute(pool).await.map(|_| ())
    })
    .unwrap();
}

/// The roster as a match run would load it now, where it came from, and
/// a check that it is the database's.
async fn load(db: &TestDb) -> (Vec<vigil::model::Person>, RosterFrom) {
    let (persons, from) = db.store.load_match_roster().await.unwrap();
    let from_db = db.store.load_match_persons_from_database().await.unwrap();
    assert_eq!(persons, from_db, "read from {from:?}");
    (persons, from)
}

/// SQLite: the snapshot; PostgreSQL: always the database.
fn fresh(db: &TestDb) -> RosterFrom {
    match db.store.backend() {
        vigil::store::Backend::Sqlite => RosterFrom::Snapshot,
        vigil::store::Backend::Postgres => RosterFrom::Database,
    }
}

both_backends!(
    the_roster_is_read_from_its_snapshot_until_anything_the_matcher_reads_changes,
    snapshot_follows_changes
);
async fn snapshot_follows_changes(db: &TestDb) {
    let rows: Vec<_> = (0..30).map(person).collect();
    import(db, &rows, "2026-10-01").await;
    let path = db.store.roster_snapshot_path().await.unwrap();
    match db.store.backend() {
        vigil::store::Backend::Sqlite => {
            let path = path.expect("a SQLite file has a snapshot path");
            assert!(path.exists(), "the import wrote {}", path.display());
        }
        vigil::store::Backend::Postgres => assert_eq!(path, None),
    }
    let (persons, from) = load(db).await;
    assert_eq!((persons.len(), from), (30, fresh(db)));

    // Only the presence column: the matcher's roster is unchanged.
    let stamp = db.store.roster_stamp().await.unwrap();
    sql(
        &db.store,
        "UPDATE pensioners SET missing_since = '2026-10-01' WHERE person_no = $1",
        &rows[1].person_no,
    )
    .await;
    assert_eq!(db.store.roster_stamp().await.unwrap(), stamp);
    assert_eq!(load(db).await.1, fresh(db));

    // A name changed and a pension terminated behind vigil's back (a
    // suspended one is still compared).
    sql(
        &db.store,
        "UPDATE pensioners SET name = '李秀兰', name_norm = '李秀兰', name_key = 'li xiu lan' \
         WHERE person_no = $1",
        &rows[3].person_no,
    )
    .await;
    sql(
        &db.store,
        "UPDATE pensioners SET status = 'terminated' WHERE person_no = $1",
        &rows[5].person_no,
    )
    .await;
    let (persons, from) = load(db).await;
    assert_eq!(from, RosterFrom::Database);
    let renamed = persons.iter().find(|p| p.person_no == rows[3].person_no);
    assert_eq!(renamed.map(|p| p.name.as_str()), Some("李秀兰"));
    assert!(!persons.iter().any(|p| p.person_no == rows[5].person_no));
    assert_eq!(persons.len(), 29);
    // Written again: the next run reads it, with the terminated pension
    // still out.
    let (again, from) = load(db).await;
    assert_eq!((again.len(), from), (29, fresh(db)));

    // A pensioner inserted, another deleted, each behind vigil's back.
    crate::support::insert_copy_as(&db.store, &rows[7].person_no, "4403999900000001")
        .await
        .unwrap();
    let (persons, from) = load(db).await;
    assert_eq!((persons.len(), from), (30, RosterFrom::Database));
    assert!(persons.iter().any(|p| p.person_no == "4403999900000001"));
    sql(
        &db.store,
        "DELETE FROM pensioner_history WHERE person_no = $1",
        &rows[9].person_no,
    )
    .await;
    sql(
        &db.store,
        "DELETE FROM pensioners WHERE person_no = $1",
        &rows[9].person_no,
    )
    .await;
    let (persons, from) = load(db).await;
    assert_eq!((persons.len(), from), (29, RosterFrom::Database));

    // A monthly import that changes someone: written by the import.
    let mut next = rows.clone();
    next[11].name = "赵建军".into();
    import(db, &next, "2026-11-01").await;
    let (persons, from) = load(db).await;
    assert_eq!(from, fresh(db));
    let changed = persons.iter().find(|p| p.person_no == rows[11].person_no);
    assert_eq!(changed.map(|p| p.name.as_str()), Some("赵建军"));
}

both_backends!(
    a_damaged_snapshot_is_read_from_the_database_and_written_again,
    damaged_snapshot
);
async fn damaged_snapshot(db: &TestDb) {
    let rows: Vec<_> = (0..12).map(person).collect();
    import(db, &rows, "2026-10-01").await;
    let Some(path) = db.store.roster_snapshot_path().await.unwrap() else {
        // PostgreSQL: nothing to damage; the database every time.
        assert_eq!(load(db).await.1, RosterFrom::Database);
        return;
    };
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    let (persons, from) = load(db).await;
    assert_eq!((persons.len(), from), (12, RosterFrom::Database));
    assert_eq!(std::fs::read(&path).unwrap(), whole, "written again, whole");
    assert_eq!(load(db).await.1, RosterFrom::Snapshot);
}
