//! The matcher end to end on both backends: generated roster and death
//! data, imported and pulled through the real connectors from a local
//! server, matched, checked against the generator's truth.

use chrono::NaiveDate;
use vigil::generate::{GenerateOptions, generate};
use vigil::ingest::connectors::{self, sim::pull_through_sim};
use vigil::ingest::roster::{ImportOptions, import_roster};
use vigil::matching::eval::{Judged, TruthRow, evaluate};
use vigil::matching::rules::MatchRules;
use vigil::matching::run::{MatchRunError, match_verdicts, run_match, run_match_scoped};
use vigil::store::match_state::MatchScope;

use crate::both_backends;
use crate::support::TestDb;

async fn prepared(db: &TestDb) -> std::path::PathBuf {
    prepared_from(db, &[]).await
}

/// Generates, imports the roster and pulls the given sources (all if empty).
async fn prepared_from(db: &TestDb, only: &[&str]) -> std::path::PathBuf {
    let data = db.path("data");
    let as_of = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    generate(
        &GenerateOptions::new(4000, 11, data.clone(), as_of),
        &|_| {},
    )
    .unwrap();
    let opts = ImportOptions {
        as_of,
        batch_rows: 5000,
        actor: "system:test".into(),
    };
    import_roster(&db.store, &data.join("roster.csv"), &opts, &|_| {})
        .await
        .unwrap();
    pull(db, &data, only).await;
    data
}

async fn pull(db: &TestDb, data: &std::path::Path, only: &[&str]) {
    let defs = connectors::load_definitions(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors"),
    )
    .unwrap();
    let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
    let pulled = pull_through_sim(&db.store, &defs, &only, data, &|_| {})
        .await
        .unwrap();
    assert!(pulled.iter().all(|s| s.ok()), "{pulled:?}");
}

type Row = (String, String, String, String, String);

async fn matches_now(db: &TestDb) -> Vec<Row> {
    db.store
        .list_matches()
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.source, m.record_key, m.person_no, m.band, m.explanation))
        .collect()
}

/// Stores a copy of a death record under its key plus `suffix`: the same
/// death delivered again under another key.
async fn copy_death_record(db: &TestDb, source: &str, key: &str, suffix: &str) {
    copy_death_record_with_id(db, source, key, suffix, None).await;
}

/// [`copy_death_record`], with another valid ID in place of the record's
/// when `id` is given: another person's death.
async fn copy_death_record_with_id(
    db: &TestDb,
    source: &str,
    key: &str,
    suffix: &str,
    id: Option<&str>,
) {
    let copy = "INSERT INTO death_records (source, record_key, name_raw, name_norm, name_key, \
        id_raw, id_number, id_status, id_candidates, sex, birth_date, birth_year_min, \
        birth_year_max, death_date, death_date_latest, event_date, region, place, origin, \
        received_at, raw_sha256, raw, run_id, version) \
        SELECT source, record_key || $3, name_raw, name_norm, name_key, COALESCE($4, id_raw), \
        COALESCE($4, id_number), id_status, id_candidates, sex, birth_date, birth_year_min, \
        birth_year_max, death_date, death_date_latest, event_date, region, place, origin, \
        received_at, raw_sha256, raw, run_id, version FROM death_records \
        WHERE source = $1 AND record_key = $2";
    crate::support::with_pool!(&db.store, pool => {
        sqlx::query(copy)
            .bind(source)
            .bind(key)
            .bind(suffix)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .unwrap();
}

fn truth(path: &std::path::Path) -> Vec<TruthRow> {
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            TruthRow {
                source: rec[0].to_string(),
                record_key: rec[1].to_string(),
                person_no: Some(rec[2].to_string()).filter(|p| !p.is_empty()),
                kind: rec[3].to_string(),
                usable: false,
            }
        })
        .collect()
}

both_backends!(
    generated_deaths_are_found_and_no_living_person_is_auto,
    finds_deaths
);
async fn finds_deaths(db: &TestDb) {
    let data = prepared(db).await;
    let rules = MatchRules::default_rules();
    let s = run_match(&db.store, &rules, "system:test").await.unwrap();
    assert!(s.records > 0 && s.auto > 0, "{s:?}");
    let stored = db.store.list_matches().await.unwrap();
    assert_eq!(stored.len() as u64, s.auto + s.review);
    assert!(
        stored
            .iter()
            .all(|m| m.band == "auto" || m.band == "review")
    );
    assert!(stored.iter().all(|m| m.rules_version == rules.version));
    let judged: Vec<Judged> = match_verdicts(&db.store, &rules)
        .await
        .unwrap()
        .into_iter()
        .map(|m| Judged {
            source: m.source,
            record_key: m.record_key,
            person_no: m.person_no,
            band: m.band.as_str().to_string(),
            record_band: m.record_band,
        })
        .collect();
    assert_eq!(judged.len(), stored.len());
    // Which records carry a usable ID or a name with a full birth date.
    let usable: std::collections::HashSet<(String, String)> = db
        .store
        .load_match_records()
        .await
        .unwrap()
        .into_iter()
        .filter(vigil::matching::eval::record_is_usable)
        .map(|r| (r.source, r.record_key))
        .collect();
    let mut truth_rows = truth(&data.join("truth.csv"));
    for t in &mut truth_rows {
        t.usable = usable.contains(&(t.source.clone(), t.record_key.clone()));
    }
    let report = evaluate(&judged, &truth_rows);
    // A small sample: the thresholds here catch regressions, BENCHMARKS.md
    // has the measurement at size.
    assert!(report.auto_precision >= 0.995, "{report:?}");
    assert!(report.record_auto_precision >= 0.995, "{report:?}");
    // Records carried by another source's record of the same death.
    assert!(report.auto_recall > report.record_auto_recall, "{report:?}");
    assert!(report.auto_or_review_recall >= 0.97, "{report:?}");
    assert!(report.usable_links > 0, "{report:?}");
    assert!(report.usable_recall >= 0.995, "{report:?}");
    assert!(report.false_auto_by_kind.is_empty(), "{report:?}");
}

both_backends!(
    a_match_survives_its_pensioner_being_terminated,
    suspended_keeps_match
);
async fn suspended_keeps_match(db: &TestDb) {
    prepared(db).await;
    let rules = MatchRules::default_rules();
    run_match(&db.store, &rules, "system:test").await.unwrap();
    let before = matches_now(db).await;
    let held = before.iter().find(|m| m.3 == "auto").unwrap().clone();
    // The pension is terminated (because of the match, or for any
    // reason): a full re-match keeps the match and its evidence.
    crate::support::with_pool!(&db.store, pool => {
        sqlx::query("UPDATE pensioners SET status = 'terminated' WHERE person_no = $1")
            .bind(&held.2)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .unwrap();
    run_match(&db.store, &rules, "system:test").await.unwrap();
    let after = matches_now(db).await;
    assert!(
        after
            .iter()
            .any(|m| (&m.0, &m.1, &m.2, &m.3) == (&held.0, &held.1, &held.2, &held.3)),
        "the match of {} went when the pension was terminated",
        held.2
    );
    assert_eq!(
        after
            .iter()
            .map(|m| (&m.0, &m.1, &m.2, &m.3))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|m| (&m.0, &m.1, &m.2, &m.3))
            .collect::<Vec<_>>()
    );
    assert!(db.store.death_event(&held.2).await.unwrap().is_some());
    // The second run read the roster from the database (its status
    // changed) and wrote the snapshot again, the terminated pensioner in it
    // as not paid: a third run reads that on SQLite, and keeps the match
    // because it is still there.
    let (_, from) = db.store.load_match_roster().await.unwrap();
    if db.store.backend() == vigil::store::Backend::Sqlite {
        assert_eq!(from, vigil::store::roster_snapshot::RosterFrom::Snapshot);
    }
    run_match(&db.store, &rules, "system:test").await.unwrap();
    let third: Vec<_> = matches_now(db)
        .await
        .into_iter()
        .map(|m| (m.0, m.1, m.2, m.3))
        .collect();
    let second: Vec<_> = after.into_iter().map(|m| (m.0, m.1, m.2, m.3)).collect();
    assert_eq!(third, second);
}

both_backends!(
    matching_twice_gives_the_same_matches_in_the_same_order,
    idempotent
);
async fn idempotent(db: &TestDb) {
    prepared(db).await;
    let rules = MatchRules::default_rules();
    run_match(&db.store, &rules, "system:test").await.unwrap();
    let first: Vec<_> = db
        .store
        .list_matches()
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.source, m.record_key, m.person_no, m.band, m.explanation))
        .collect();
    run_match(&db.store, &rules, "system:test").await.unwrap();
    let second: Vec<_> = db
        .store
        .list_matches()
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.source, m.record_key, m.person_no, m.band, m.explanation))
        .collect();
    assert_eq!(first.len(), second.len());
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a, b);
    }
    let audit = vigil::audit::verify(&db.store).await.unwrap();
    assert!(audit.first_broken.is_none());
}

both_backends!(
    a_run_maps_the_index_an_earlier_run_wrote_until_the_roster_changes,
    index_file
);
async fn index_file(db: &TestDb) {
    prepared(db).await;
    let rules = MatchRules::default_rules();
    let sqlite = db.store.backend() == vigil::store::Backend::Sqlite;
    // SQLite: the index file beside the database; PostgreSQL: always built.
    let from_file = if sqlite { "file" } else { "built" };
    let path = db.store.roster_index_path().await.unwrap();
    assert_eq!(path.is_some(), sqlite);
    let first = run_match(&db.store, &rules, "system:test").await.unwrap();
    assert_eq!(first.index_from, "built");
    if let Some(path) = &path {
        assert!(path.exists(), "the first run wrote {}", path.display());
    }
    let built = matches_now(db).await;
    let second = run_match(&db.store, &rules, "system:test").await.unwrap();
    assert_eq!(second.index_from, from_file);
    assert_eq!(
        matches_now(db).await,
        built,
        "matched through the mapped index"
    );

    // Other blocking rules: built again, then mapped.
    let mut wider = rules.clone();
    wider.blocking.max_block += 1;
    let run = run_match(&db.store, &wider, "system:test").await.unwrap();
    assert_eq!(run.index_from, "built");
    let run = run_match(&db.store, &wider, "system:test").await.unwrap();
    assert_eq!(run.index_from, from_file);

    // A matched pensioner renamed behind vigil's back: the index is built
    // again, and their match sees the new name.
    let renamed = built.iter().find(|m| m.3 == "auto").unwrap().2.clone();
    crate::support::with_pool!(&db.store, pool => {
        sqlx::query(
            "UPDATE pensioners SET name = '司马懿', name_norm = '司马懿', name_key = 'si ma yi' \
             WHERE person_no = $1",
        )
        .bind(&renamed)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .unwrap();
    let run = run_match(&db.store, &rules, "system:test").await.unwrap();
    assert_eq!(run.index_from, "built");
    let after = matches_now(db).await;
    let theirs =
        |rows: &[Row]| -> Vec<Row> { rows.iter().filter(|m| m.2 == renamed).cloned().collect() };
    assert_ne!(theirs(&after), theirs(&built), "the new name was not seen");
    // What the mapped index gives is what a fresh build gives.
    let run = run_match(&db.store, &rules, "system:test").await.unwrap();
    assert_eq!(run.index_from, from_file);
    assert_eq!(matches_now(db).await, after);
    if let Some(path) = &path {
        std::fs::remove_file(path).unwrap();
        let run = run_match(&db.store, &rules, "system:test").await.unwrap();
        assert_eq!(run.index_from, "built");
        assert_eq!(matches_now(db).await, after);
    }
}

both_backends!(
    a_pool_of_one_connection_matches_the_same_loading_in_turn,
    pool_of_one
);
async fn pool_of_one(db: &TestDb) {
    prepared(db).await;
    let rules = MatchRules::default_rules();
    // The test pool (4 connections) loads the records beside the roster.
    run_match(&db.store, &rules, "system:test").await.unwrap();
    let beside = matches_now(db).await;
    assert!(!beside.is_empty());
    // One connection: roster, records and evidence of life in turn, for a
    // full run and for a pending one.
    let one = vigil::store::Store::open(&db.url, 1).await.unwrap();
    assert_eq!(one.max_connections(), 1);
    let full = run_match(&one, &rules, "system:test").await.unwrap();
    assert!(full.records as usize >= beside.len());
    assert_eq!(matches_now(db).await, beside);
    let pending = run_match_scoped(&one, &rules, "system:test", MatchScope::Pending)
        .await
        .unwrap();
    assert_eq!(pending.records, 0, "nothing changed since the full run");
    assert_eq!(matches_now(db).await, beside);
    one.close().await;
}

both_backends!(a_pair_reviewers_rejected_never_comes_back, rejected_pair);
async fn rejected_pair(db: &TestDb) {
    prepared(db).await;
    let rules = MatchRules::default_rules();
    run_match(&db.store, &rules, "system:test").await.unwrap();
    let victim = db
        .store
        .list_matches()
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("a match");
    let sql = "INSERT INTO rejected_pairs (source, record_key, person_no, rejected_by, rejected_at) \
               VALUES ($1, $2, $3, 'reviewer:test', '2026-11-26T00:00:00Z')";
    crate::support::with_pool!(&db.store, pool => {
        sqlx::query(sql)
            .bind(&victim.source)
            .bind(&victim.record_key)
            .bind(&victim.person_no)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .unwrap();
    run_match(&db.store, &rules, "system:test").await.unwrap();
    let again = db.store.list_matches().await.unwrap();
    assert!(!again.iter().any(|m| m.source == victim.source
        && m.record_key == victim.record_key
        && m.person_no == victim.person_no));
}

both_backends!(
    matching_only_new_records_gives_what_a_full_match_gives,
    incremental
);
async fn incremental(db: &TestDb) {
    let data = prepared_from(db, &["public_security"]).await;
    let rules = MatchRules::default_rules();
    let first = run_match_scoped(&db.store, &rules, "system:test", MatchScope::Pending)
        .await
        .unwrap();
    assert!(first.records > 0 && first.kept == 0, "{first:?}");
    let after_first = matches_now(db).await;

    // Nothing new: nothing is matched, every match is kept as it was.
    let idle = run_match_scoped(&db.store, &rules, "system:test", MatchScope::Pending)
        .await
        .unwrap();
    assert_eq!((idle.records, idle.kept), (0, after_first.len() as u64));
    assert_eq!(matches_now(db).await, after_first);

    // New records from the other sources: only they are matched.
    pull(db, &data, &["civil_affairs", "funeral"]).await;
    let pending = db
        .store
        .count_pending_match_records(&rules.version)
        .await
        .unwrap();
    let second = run_match_scoped(&db.store, &rules, "system:test", MatchScope::Pending)
        .await
        .unwrap();
    // Besides the new records, stored `review` matches whose record one of
    // them may be another person's death of are matched again (none here:
    // the other sources' records are of the same deaths).
    assert_eq!(second.records as i64, pending);
    assert_eq!(second.kept, after_first.len() as u64);
    let incremental = matches_now(db).await;
    assert!(after_first.iter().all(|m| incremental.contains(m)));
    assert!(incremental.len() > after_first.len());

    // A full match of the same data gives exactly the same matches.
    let full = run_match_scoped(&db.store, &rules, "system:test", MatchScope::All)
        .await
        .unwrap();
    assert_eq!(full.kept, 0);
    assert_eq!(matches_now(db).await, incremental);

    // Other rules: every record is pending again.
    let mut other = rules.clone();
    other.version = format!("{}-other", rules.version);
    let all = db
        .store
        .count_pending_match_records(&other.version)
        .await
        .unwrap();
    assert_eq!(all as u64, full.records);
    assert_eq!(
        db.store
            .count_pending_match_records(&rules.version)
            .await
            .unwrap(),
        0
    );
}

both_backends!(
    a_changed_record_is_matched_again_and_a_second_record_of_one_death_goes_to_review,
    changed_and_duplicate
);
async fn changed_and_duplicate(db: &TestDb) {
    prepared(db).await;
    let rules = MatchRules::default_rules();
    run_match_scoped(&db.store, &rules, "system:test", MatchScope::Pending)
        .await
        .unwrap();
    let auto = db
        .store
        .list_matches()
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.band == "auto" && m.source == "public_security")
        .expect("an auto public-security match");

    // The connector stored a new version of one record (a correction).
    let sql = "UPDATE death_records SET version = version + 1 \
               WHERE source = $1 AND record_key = $2";
    crate::support::with_pool!(&db.store, pool => {
        sqlx::query(sql).bind(&auto.source).bind(&auto.record_key).execute(pool).await.map(|_| ())
    })
    .unwrap();
    // And the same death arrived a second time under another key.
    copy_death_record(db, &auto.source, &auto.record_key, "-again").await;

    let s = run_match_scoped(&db.store, &rules, "system:test", MatchScope::Pending)
        .await
        .unwrap();
    assert_eq!(s.records, 2, "{s:?}");
    let now = db.store.list_matches().await.unwrap();
    let again = now
        .iter()
        .find(|m| m.record_key == auto.record_key)
        .expect("the changed record is matched again");
    assert_eq!(
        (&again.person_no, again.band.as_str()),
        (&auto.person_no, "auto")
    );
    assert!(again.run_id > auto.run_id);
    // Both new: the assignment gives the person to one record only, and the
    // other is not auto.
    let dup = now
        .iter()
        .find(|m| m.record_key == format!("{}-again", auto.record_key));
    assert!(dup.is_none_or(|m| m.band == "review"), "{dup:?}");

    // Once the first is kept, a third copy arriving later is held back by it.
    copy_death_record(db, &auto.source, &auto.record_key, "-third").await;
    let s = run_match_scoped(&db.store, &rules, "system:test", MatchScope::Pending)
        .await
        .unwrap();
    assert_eq!((s.records, s.already_matched), (1, 1), "{s:?}");
    let held = db
        .store
        .list_matches()
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.record_key == format!("{}-third", auto.record_key))
        .expect("the third copy is proposed for review");
    assert_eq!(
        (held.person_no.as_str(), held.band.as_str()),
        (auto.person_no.as_str(), "review")
    );
    assert!(
        held.explanation.contains(&auto.record_key),
        "{}",
        held.explanation
    );
}

both_backends!(
    verdicts_are_judged_only_by_the_rules_the_matches_were_made_with,
    verdicts_under_other_rules
);
async fn verdicts_under_other_rules(db: &TestDb) {
    prepared(db).await;
    let made = MatchRules::default_rules();
    run_match(&db.store, &made, "system:test").await.unwrap();
    let under_made = match_verdicts(&db.store, &made).await.unwrap();
    // Records carried although a runner-up fits them (within a clear
    // margin under the shipped rules).
    let carried_with_runner_up = |vs: &[vigil::matching::run::MatchVerdict]| {
        vs.iter()
            .filter(|v| v.carried && v.margin.is_some())
            .count()
    };
    assert!(carried_with_runner_up(&under_made) > 0);
    // Rules of another version for which no margin is clear enough: judged
    // by them, the stored matches would change band. Refused.
    let mut other = made.clone();
    other.version = "2026.9-other".into();
    other.fusion.carry_min_margin = 1e9;
    match match_verdicts(&db.store, &other).await {
        Err(MatchRunError::RulesMismatch { stored, given }) => {
            assert_eq!(
                (stored.as_str(), given.as_str()),
                (made.version.as_str(), "2026.9-other")
            );
        }
        got => panic!("expected a rules mismatch, got {:?}", got.map(|v| v.len())),
    }
    // Matched again under them, they judge: only a record that no runner-up
    // fits at all is carried any more.
    run_match(&db.store, &other, "system:test").await.unwrap();
    let under_other = match_verdicts(&db.store, &other).await.unwrap();
    assert_eq!(under_other.len(), under_made.len());
    assert_eq!(carried_with_runner_up(&under_other), 0);
    assert!(
        under_other
            .iter()
            .all(|v| v.rules_version == "2026.9-other")
    );
    assert!(matches!(
        match_verdicts(&db.store, &made).await,
        Err(MatchRunError::RulesMismatch { .. })
    ));
}

both_backends!(
    matched_records_are_fused_into_one_death_event_per_pensioner,
    death_events
);
async fn death_events(db: &TestDb) {
    prepared(db).await;
    let rules = MatchRules::default_rules();
    let s = run_match(&db.store, &rules, "system:test").await.unwrap();
    let events = db.store.list_death_events().await.unwrap();
    let matches = db.store.list_matches().await.unwrap();
    assert_eq!(events.len() as u64, s.events);
    let persons: std::collections::BTreeSet<_> = matches.iter().map(|m| &m.person_no).collect();
    assert_eq!(events.len(), persons.len());
    // Every matched record is in its pensioner's event, and only there.
    let in_events: usize = events.iter().map(|e| e.records.len()).sum();
    assert_eq!(in_events, matches.len());
    for m in &matches {
        let e = db.store.death_event(&m.person_no).await.unwrap().unwrap();
        assert!(
            e.records
                .iter()
                .any(|r| r["record_key"] == m.record_key.as_str())
        );
    }
    // Each independent source adds to the evidence; a second record of a
    // source does not.
    for e in &events {
        let sum: f64 = e.sources.iter().map(|s| rules.source_strength(s)).sum();
        assert!((e.evidence_strength - sum).abs() < 1e-9, "{e:?}");
        for s in &e.sources {
            if e.sources.len() > 1 {
                assert!(e.evidence_strength > rules.source_strength(s), "{e:?}");
            }
        }
    }
    assert!(events.iter().any(|e| e.sources.len() > 1));
    // A record of an auto match that is not auto on its own is carried by
    // it when it tells of the same death (the same date, give or take the
    // rules' days): it takes the match's band and best score.
    let verdicts = match_verdicts(&db.store, &rules).await.unwrap();
    assert_eq!(verdicts.len(), matches.len());
    let mut carried = 0;
    for v in &verdicts {
        let e = events.iter().find(|e| e.person_no == v.person_no).unwrap();
        let own = matches
            .iter()
            .find(|m| (&m.source, &m.record_key) == (&v.source, &v.record_key))
            .unwrap();
        assert_eq!((v.record_score, &v.record_band), (own.score, &own.band));
        let date = |r: &serde_json::Value| r["death_date"].as_str().unwrap().to_string();
        let own_date = e
            .records
            .iter()
            .find(|r| r["record_key"] == v.record_key.as_str())
            .map(date)
            .unwrap();
        let days = (own_date.parse::<NaiveDate>().unwrap() - e.death_date)
            .num_days()
            .abs();
        let clear = own
            .margin
            .is_none_or(|m| m >= rules.fusion.carry_min_margin);
        let should = e.band == "auto"
            && own.band == "review"
            && own.may_carry
            && clear
            && days <= rules.fusion.carry_within_days;
        assert_eq!(v.carried, should, "{v:?} {e:?}");
        if v.carried {
            carried += 1;
            assert_eq!(v.band.as_str(), "auto");
            let best = matches
                .iter()
                .filter(|m| m.person_no == v.person_no)
                .map(|m| m.score)
                .fold(f64::MIN, f64::max);
            assert_eq!(v.score, best);
        } else {
            assert_eq!((v.score, v.band.as_str()), (own.score, own.band.as_str()));
        }
    }
    assert!(
        carried > 0,
        "no record was carried by another source's auto record"
    );
    // Conflicting dates are flagged and every record keeps its own date.
    for e in &events {
        let dates: std::collections::BTreeSet<_> = e
            .records
            .iter()
            .map(|r| r["death_date"].as_str().unwrap().to_string())
            .collect();
        let flagged = e
            .flags
            .iter()
            .any(|f| f["flag"] == "conflicting_death_dates");
        assert_eq!(flagged, dates.len() > 1, "{e:?}");
    }
}

both_backends!(
    a_record_changed_after_a_full_run_read_it_stays_pending,
    changed_during_full_run
);
async fn changed_during_full_run(db: &TestDb) {
    use vigil::store::match_state::Progress;
    prepared_from(db, &["public_security"]).await;
    let rules = MatchRules::default_rules();
    let run_id = db
        .store
        .start_run("match", "matcher", None, None)
        .await
        .unwrap();
    // What a full run reads; then a pull stores a newer version of one
    // record before the run commits.
    let (records, versions) = db.store.load_match_records_versioned().await.unwrap();
    assert_eq!(records.len(), versions.len());
    assert!(versions.iter().all(|&v| v >= 1), "{versions:?}");
    let changed = &records[0];
    crate::support::with_pool!(&db.store, pool => {
        sqlx::query(
            "UPDATE death_records SET version = version + 1 \
             WHERE source = $1 AND record_key = $2",
        )
        .bind(&changed.source)
        .bind(&changed.record_key)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .unwrap();
    db.store
        .commit_match_run(
            run_id,
            &rules.version,
            Progress::All {
                records: &records,
                versions: &versions,
            },
            &[],
            &[],
        )
        .await
        .unwrap();
    // Only the changed record is left to match, and a pending run takes it.
    assert_eq!(
        db.store
            .count_pending_match_records(&rules.version)
            .await
            .unwrap(),
        1
    );
    let next = run_match_scoped(&db.store, &rules, "system:test", MatchScope::Pending)
        .await
        .unwrap();
    assert_eq!(next.records, 1, "{next:?}");
}

async fn claims_of(db: &TestDb, run_id: i64) -> i64 {
    crate::support::with_pool!(&db.store, pool => {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM match_claims WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(pool)
            .await
    })
    .unwrap()
}

both_backends!(
    a_match_run_that_died_is_marked_abandoned_and_its_claims_released,
    dead_run_abandoned
);
async fn dead_run_abandoned(db: &TestDb) {
    prepared(db).await;
    let rules = MatchRules::default_rules();
    // A pending run that claimed its records and was then killed: its row
    // still says running and its claims stay, as a SIGKILL leaves them.
    let dead = crate::support::dead_run(&db.store, "match", "matcher").await;
    let claimed = db
        .store
        .claim_match_records(dead, &rules.version)
        .await
        .unwrap();
    assert!(claimed > 0);
    assert_eq!(claims_of(db, dead).await, claimed as i64);

    let s = run_match_scoped(&db.store, &rules, "system:test", MatchScope::Pending)
        .await
        .unwrap();
    // The next run marks it, drops its claims and matches its records.
    assert_eq!(s.records, claimed);
    crate::support::assert_abandoned(&db.store, dead).await;
    assert_eq!(claims_of(db, dead).await, 0);
    // Runs that finished are never touched, and the new run is ok.
    let this = db.store.get_run(s.run_id).await.unwrap().unwrap();
    assert_eq!(this.status, "ok");
    let again = run_match(&db.store, &rules, "system:test").await.unwrap();
    assert_eq!(
        db.store.get_run(s.run_id).await.unwrap().unwrap().status,
        "ok"
    );
    assert_eq!(
        db.store
            .get_run(again.run_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        "ok"
    );
}

both_backends!(
    a_second_match_run_is_refused_while_one_runs,
    second_match_refused
);
async fn second_match_refused(db: &TestDb) {
    prepared_from(db, &["funeral"]).await;
    let rules = MatchRules::default_rules();
    // What a match run in another process holds while it works.
    let held = db.store.lock(vigil::store::LockKey::Match).await.unwrap();
    let err = run_match(&db.store, &rules, "system:test")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            vigil::matching::run::MatchRunError::Store(vigil::store::StoreError::MatchRunning(_))
        ),
        "{err}"
    );
    assert!(err.to_string().contains("another match run"), "{err}");
    // Refused before it started: no run recorded, nothing claimed.
    let runs = db.store.list_runs(100).await.unwrap();
    assert!(runs.iter().all(|r| r.kind != "match"), "{runs:?}");
    held.release().await;
    let s = run_match(&db.store, &rules, "system:test").await.unwrap();
    assert!(s.records > 0);
}

both_backends!(
    a_commit_whose_explanations_or_death_events_fail_writes_nothing,
    failed_fuse_writes_nothing
);
async fn failed_fuse_writes_nothing(db: &TestDb) {
    use vigil::store::StoreError;
    use vigil::store::match_state::Progress;
    prepared(db).await;
    let rules = MatchRules::default_rules();
    run_match(&db.store, &rules, "system:test").await.unwrap();
    let before = matches_now(db).await;
    assert!(!before.is_empty());
    let events_before = db.store.list_death_events().await.unwrap();
    // A run that matched nothing would empty the table: its fuse fails
    // after the matches are written inside the transaction.
    let (records, versions) = db.store.load_match_records_versioned().await.unwrap();
    let run_id = db
        .store
        .start_run(
            vigil::store::run_kind::MATCH,
            vigil::store::run_source::MATCHER,
            None,
            None,
        )
        .await
        .unwrap();
    // The explanations fail (after the old matches are deleted and the
    // progress recorded inside the transaction), or the fuse does (after
    // the matches are written): either way nothing is written.
    async fn fails<T>(what: &str) -> std::result::Result<Vec<T>, String> {
        Err(format!("the {what} thread stopped: test"))
    }
    for failing in ["explanation", "fuse"] {
        let progress = Progress::All {
            records: &records,
            versions: &versions,
        };
        let failed = if failing == "explanation" {
            db.store
                .commit_match_run_with(run_id, &rules.version, progress, fails(failing), async {
                    Ok(Vec::new())
                })
                .await
        } else {
            db.store
                .commit_match_run_with(
                    run_id,
                    &rules.version,
                    progress,
                    async { Ok(Vec::new()) },
                    fails(failing),
                )
                .await
        };
        assert!(
            matches!(&failed, Err(StoreError::Interrupted(m)) if m.contains(failing)),
            "{failed:?}"
        );
        assert_eq!(matches_now(db).await, before);
        assert_eq!(db.store.list_death_events().await.unwrap(), events_before);
        let progress_of_run: i64 = crate::support::with_pool!(&db.store, pool => {
            sqlx::query_scalar("SELECT count(*) FROM match_progress WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(pool)
                .await
        })
        .unwrap();
        assert_eq!(
            progress_of_run, 0,
            "the {failing} failure left progress behind"
        );
    }
}

both_backends!(
    a_record_another_persons_recorded_death_fits_is_never_carried_to_auto,
    another_death
);
async fn another_death(db: &TestDb) {
    prepared(db).await;
    let rules = MatchRules::default_rules();
    run_match_scoped(&db.store, &rules, "system:test", MatchScope::Pending)
        .await
        .unwrap();
    let before = match_verdicts(&db.store, &rules).await.unwrap();
    // A funeral record with no ID carried to auto by its pensioner's
    // public-security record of the same death.
    let (carried, anchor) = before
        .iter()
        .filter(|v| v.carried && v.source == "funeral" && v.margin.is_none())
        .find_map(|v| {
            let anchor = before.iter().find(|a| {
                a.person_no == v.person_no && a.source != "funeral" && a.record_band == "auto"
            })?;
            Some((v.clone(), anchor.clone()))
        })
        .expect("a funeral record carried to auto by another source's record");
    // Then the death of another person is registered (by a copy of the
    // anchor record): the same name, birth date, city and day as the
    // pensioner's, another ID (a sequence number
    // far from the pensioner's; the check character made right).
    let own_id: String = crate::support::with_pool!(&db.store, pool => {
        sqlx::query_scalar("SELECT id_number FROM pensioners WHERE person_no = $1")
            .bind(&carried.person_no)
            .fetch_one(pool)
            .await
    })
    .unwrap();
    let mut other = own_id[..14].to_string();
    let seq: u32 = own_id[14..17].parse().unwrap();
    other.push_str(&format!("{:03}", (seq + 500) % 1000));
    let check = vigil::identity::check_char(other.as_bytes());
    other.push(char::from(check));
    copy_death_record_with_id(
        db,
        &anchor.source,
        &anchor.record_key,
        "-TWIN-1",
        Some(&other),
    )
    .await;

    // The next pending run matches the funeral record again: it is no
    // longer carried, and its explanation says why.
    run_match_scoped(&db.store, &rules, "system:test", MatchScope::Pending)
        .await
        .unwrap();
    let judged = |vs: &[vigil::matching::run::MatchVerdict]| {
        vs.iter()
            .find(|v| (&v.source, &v.record_key) == (&carried.source, &carried.record_key))
            .cloned()
            .unwrap()
    };
    let after = match_verdicts(&db.store, &rules).await.unwrap();
    let now = judged(&after);
    assert_eq!(
        (now.person_no.as_str(), now.carried, now.band.as_str()),
        (carried.person_no.as_str(), false, "review")
    );
    // The pensioner's own record is as auto as before.
    assert_eq!(judged_anchor(&after, &anchor).band.as_str(), "auto");
    let stored = matches_now(db).await;
    let (.., explanation) = stored
        .iter()
        .find(|m| (&m.0, &m.1) == (&carried.source, &carried.record_key))
        .unwrap();
    assert!(
        explanation.contains("another_death") && explanation.contains("TWIN-1"),
        "{explanation}"
    );
    // Only that: every other verdict is what it was.
    for v in &before {
        if (&v.source, &v.record_key) != (&carried.source, &carried.record_key) {
            assert!(after.contains(v), "{v:?}");
        }
    }
    // A full run judges it the same way.
    run_match_scoped(&db.store, &rules, "system:test", MatchScope::All)
        .await
        .unwrap();
    let full = match_verdicts(&db.store, &rules).await.unwrap();
    assert_eq!(judged(&full), now);
}

fn judged_anchor(
    vs: &[vigil::matching::run::MatchVerdict],
    anchor: &vigil::matching::run::MatchVerdict,
) -> vigil::matching::run::MatchVerdict {
    vs.iter()
        .find(|v| (&v.source, &v.record_key) == (&anchor.source, &anchor.record_key))
        .cloned()
        .unwrap()
}
