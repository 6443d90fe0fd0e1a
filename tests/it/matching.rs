//! The matcher end to end on both backends: generated roster and death
//! data, imported and pulled through the real connectors from a local
//! server, matched, checked against the generator's truth.

use chrono::NaiveDate;
use vigil::generate::{GenerateOptions, generate};
use vigil::ingest::connectors::{self, sim::pull_through_sim};
use vigil::ingest::roster::{ImportOptions, import_roster};
use vigil::matching::eval::{Judged, TruthRow, evaluate};
use vigil::matching::rules::MatchRules;
use vigil::matching::run::run_match;

use crate::both_backends;
use crate::support::TestDb;

async fn prepared(db: &TestDb) -> std::path::PathBuf {
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
    let defs = connectors::load_definitions(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors"),
    )
    .unwrap();
    let pulled = pull_through_sim(&db.store, &defs, &[], &data, &|_| {})
        .await
        .unwrap();
    assert!(pulled.iter().all(|s| s.ok()), "{pulled:?}");
    data
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
    let judged: Vec<Judged> = stored
        .iter()
        .map(|m| Judged {
            source: m.source.clone(),
            record_key: m.record_key.clone(),
            person_no: m.person_no.clone(),
            band: m.band.clone(),
        })
        .collect();
    let report = evaluate(&judged, &truth(&data.join("truth.csv")));
    // A small sample: the thresholds here catch regressions, BENCHMARKS.md
    // has the measurement at size.
    assert!(report.auto_precision >= 0.995, "{report:?}");
    assert!(report.auto_or_review_recall >= 0.97, "{report:?}");
    assert!(report.false_auto_by_kind.is_empty(), "{report:?}");
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
    vigil::with_pool!(&db.store, pool => {
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
