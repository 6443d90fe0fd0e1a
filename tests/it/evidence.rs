//! Evidence of life (spec §5) and video results (spec §6), on both
//! backends: the import, what counts as proof of life, the matcher holding
//! a death back from `auto` because of it, and `vigil rules train`.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::NaiveDate;
use vigil::generate::{GenerateOptions, generate};
use vigil::ingest::connectors::{self, sim::pull_through_sim};
use vigil::ingest::evidence::{
    EvidenceImportError, EvidenceImportOptions, EvidenceImportSummary, EvidenceKind,
    import_life_evidence, import_video_results,
};
use vigil::ingest::roster::{ImportOptions, import_roster};
use vigil::matching::Safeguard;
use vigil::matching::explain::{Explanation, render_waterfall};
use vigil::matching::propose::{ProposeError, ProposeOptions, propose_rules};
use vigil::matching::rules::MatchRules;
use vigil::matching::run::{run_match, run_match_scoped};
use vigil::matching::train::TrainingOptions;
use vigil::store::match_state::MatchScope;
use vigil::store::{Store, StoreError};

use crate::both_backends;
use crate::support::{TestDb, person, valid_id, write};

const EVIDENCE_HEADER: &str = "id_number,event_type,event_date,source_ref";
const VIDEO_HEADER: &str = "id_number,session_at,result,operator,note";

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn opts() -> EvidenceImportOptions {
    EvidenceImportOptions {
        batch_rows: 3,
        actor: "system:test".to_string(),
        today: day("2026-11-27"),
    }
}

async fn evidence(
    store: &Store,
    path: &Path,
) -> Result<EvidenceImportSummary, EvidenceImportError> {
    import_life_evidence(store, path, &opts(), &|_| {}).await
}

async fn video(store: &Store, path: &Path) -> Result<EvidenceImportSummary, EvidenceImportError> {
    import_video_results(store, path, &opts(), &|_| {}).await
}

fn lines(header: &str, rows: &[String]) -> String {
    let mut s = format!("{header}\n");
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

fn id(n: u32) -> String {
    person(n).id_number
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

fn counts(s: &EvidenceImportSummary) -> (u64, u64, u64, u64) {
    (s.read, s.inserted, s.duplicate, s.quarantined)
}

both_backends!(a_good_evidence_file_is_stored_and_counted, good_file);
async fn good_file(db: &TestDb) {
    let rows = vec![
        format!("{},medical_settlement,2026-11-20,MS-1", id(1)),
        format!("{},face_app,2026-11-21,FA-1", id(1)),
        format!("{},bank_counter,2026-10-02,BC-7", id(2)),
        format!("{},in_person_service,2026-09-30,", id(3)),
        format!("{},video_verified,2026-11-01,VV-3", id(4)),
    ];
    // With a byte-order mark, as some exports have.
    let mut text = vec![0xEF, 0xBB, 0xBF];
    text.extend_from_slice(lines(EVIDENCE_HEADER, &rows).as_bytes());
    let file = write(&db.path("evidence.csv"), text);
    let s = evidence(&db.store, &file).await.unwrap();
    assert_eq!(counts(&s), (5, 5, 0, 0));
    assert_eq!(s.upgraded_ids, 0);
    assert_eq!(s.by_type.get("medical_settlement"), Some(&1));
    assert_eq!(db.store.count_life_evidence().await.unwrap(), (5, 0));

    let run = db.store.get_run(s.run_id).await.unwrap().unwrap();
    assert_eq!(
        (run.kind.as_str(), run.status.as_str()),
        ("evidence_import", "ok")
    );
    assert_eq!(
        (run.read_count, run.inserted, run.unchanged, run.quarantined),
        (5, 5, 0, 0)
    );
    assert_eq!(run.file_sha256.as_deref(), Some(s.sha256.as_str()));
    let entries = audit_entries(&db.store).await;
    let (action, details) = entries.last().unwrap();
    assert_eq!(action, "evidence.import");
    assert!(details.contains(&s.sha256), "{details}");

    let events = db.store.life_evidence_for(&id(1)).await.unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.event_type.as_str(), e.event_date, e.proves_life))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("face_app", day("2026-11-21"), true),
            ("medical_settlement", day("2026-11-20"), true),
        ]
    );
    let latest = db.store.latest_life_dates().await.unwrap();
    assert!(latest.contains(&(id(1), day("2026-11-21"))), "{latest:?}");
    assert_eq!(latest.len(), 4);
}

both_backends!(
    bad_rows_are_quarantined_with_line_and_reason_and_the_rest_goes_in,
    bad_rows
);
async fn bad_rows(db: &TestDb) {
    let good = id(1);
    let broken = format!(
        "{}{}",
        &good[..17],
        if good.ends_with('1') { '2' } else { '1' }
    );
    let rows = vec![
        format!("{good},medical_settlement,2026-11-20,MS-1"), // line 2
        format!("{broken},face_app,2026-11-21,FA-1"),         // line 3
        format!("{good},hospital,2026-11-21,H-1"),            // line 4
        format!("{good},face_app,2026-02-30,FA-2"),           // line 5
        format!("{good},face_app,2026-11-21"),                // line 6
        format!("{},bank_counter,2026-10-02,BC-7", id(2)),    // line 7
        format!("{good},face_app,2027-01-05,FA-3"),           // line 8
    ];
    let file = write(&db.path("evidence.csv"), lines(EVIDENCE_HEADER, &rows));
    let s = evidence(&db.store, &file).await.unwrap();
    assert_eq!(counts(&s), (7, 2, 0, 5));
    assert_eq!(db.store.count_life_evidence().await.unwrap(), (2, 0));
    let q = db.store.quarantine_for_run(s.run_id).await.unwrap();
    let got: Vec<(i64, &str)> = q
        .iter()
        .map(|e| (e.line.unwrap(), e.reason.as_str()))
        .collect();
    let want = [
        (3, "check character"),
        (4, "event_type 'hospital'"),
        (5, "not a real calendar date"),
        (6, "expected 4 fields"),
        (8, "in the future"),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((line, reason), (want_line, want_text)) in got.iter().zip(want) {
        assert_eq!(*line, want_line, "{got:?}");
        assert!(reason.contains(want_text), "line {line}: {reason}");
    }
    for e in &q {
        assert_eq!(e.source, "evidence_of_life");
        assert_eq!(e.file.as_deref(), Some(file.display().to_string().as_str()));
        // The reason is shown and logged: never a full ID number.
        assert!(
            !e.reason.contains(&good) && !e.reason.contains(&broken),
            "{}",
            e.reason
        );
    }
    // The raw row is kept for whoever may see it.
    assert!(q[0].raw.contains(&broken));
}

both_backends!(
    a_file_lacking_a_column_is_refused_before_anything_is_written,
    missing_column
);
async fn missing_column(db: &TestDb) {
    let file = write(
        &db.path("evidence.csv"),
        format!("id_number,event_type,source_ref\n{},face_app,FA-1\n", id(1)),
    );
    let err = evidence(&db.store, &file).await.unwrap_err();
    assert!(
        matches!(&err, EvidenceImportError::MissingColumns { missing, .. } if missing == &["event_date"]),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("evidence.csv") && text.contains("event_date"),
        "{text}"
    );
    let file = write(
        &db.path("video.csv"),
        format!(
            "id_number,session_at,operator,note\n{},2026-11-26T09:30:00+08:00,op1,\n",
            id(1)
        ),
    );
    let err = video(&db.store, &file).await.unwrap_err();
    assert!(err.to_string().contains("result"), "{err}");
    assert_eq!(db.store.count_life_evidence().await.unwrap(), (0, 0));
    assert!(db.store.list_runs(10).await.unwrap().is_empty());
    assert!(audit_entries(&db.store).await.is_empty());
}

/// Whether `err` is the refusal of an import of `source` while another runs.
fn refused_as_running(err: &EvidenceImportError, source: &str) -> bool {
    matches!(
        err,
        EvidenceImportError::Store(StoreError::EvidenceImportRunning { source_name, .. })
            if source_name == source
    )
}

both_backends!(
    one_import_of_a_kind_at_a_time_and_a_dead_one_is_abandoned,
    import_lock
);
async fn import_lock(db: &TestDb) {
    let rows = vec![format!("{},face_app,2026-11-21,FA-1", id(1))];
    let file = write(&db.path("evidence.csv"), lines(EVIDENCE_HEADER, &rows));
    let clip = vec![format!("{},2026-11-02T10:00:00+08:00,passed,op001,", id(2))];
    let clip = write(&db.path("video.csv"), lines(VIDEO_HEADER, &clip));
    // An import that died: its run still says running.
    let dead = crate::support::dead_run(&db.store, "evidence_import", "evidence_of_life").await;
    let held = db
        .store
        .lock(EvidenceKind::LifeEvidence.lock_key())
        .await
        .unwrap();
    let err = evidence(&db.store, &file).await.unwrap_err();
    assert!(refused_as_running(&err, "evidence_of_life"), "{err}");
    assert!(err.to_string().contains("wait for it"), "{err}");
    assert_eq!(db.store.count_life_evidence().await.unwrap(), (0, 0));
    // Refused before anything: the dead run is left as it was, and no run
    // was started for the refused import.
    let run = db.store.get_run(dead).await.unwrap().unwrap();
    assert_eq!(run.status, "running");
    // Video results are another kind: they go on meanwhile.
    assert_eq!(video(&db.store, &clip).await.unwrap().inserted, 1);
    held.release().await;
    // And have a lock of their own, with the same refusal and clean-up.
    let dead_video = crate::support::dead_run(&db.store, "video_import", "video_results").await;
    let held = db
        .store
        .lock(EvidenceKind::VideoResults.lock_key())
        .await
        .unwrap();
    let err = video(&db.store, &clip).await.unwrap_err();
    assert!(refused_as_running(&err, "video_results"), "{err}");
    held.release().await;
    assert_eq!(video(&db.store, &clip).await.unwrap().duplicate, 1);
    crate::support::assert_abandoned(&db.store, dead_video).await;

    let s = evidence(&db.store, &file).await.unwrap();
    assert_eq!(s.inserted, 1);
    crate::support::assert_abandoned(&db.store, dead).await;
    assert_eq!(
        db.store.get_run(s.run_id).await.unwrap().unwrap().status,
        "ok"
    );
}

both_backends!(the_same_file_twice_gives_duplicates_and_no_new_rows, twice);
async fn twice(db: &TestDb) {
    let rows = vec![
        format!("{},medical_settlement,2026-11-20,MS-1", id(1)),
        format!("{},face_app,2026-11-21,FA-1", id(2)),
        format!("{},face_app,2026-11-21,FA-1", id(2)), // repeated in the file
        format!("{},bank_counter,2026-10-02,BC-7", id(3)),
    ];
    let file = write(&db.path("evidence.csv"), lines(EVIDENCE_HEADER, &rows));
    let first = evidence(&db.store, &file).await.unwrap();
    assert_eq!(counts(&first), (4, 3, 1, 0));
    let second = evidence(&db.store, &file).await.unwrap();
    assert_eq!(counts(&second), (4, 0, 4, 0));
    assert_eq!(second.sha256, first.sha256);
    assert_eq!(db.store.count_life_evidence().await.unwrap(), (3, 0));

    let sessions = vec![
        format!("{},2026-11-26T09:30:00+08:00,passed,op001,", id(1)),
        format!(
            "{},2026-11-25T10:00:00+08:00,failed,op002,人脸比对未通过",
            id(2)
        ),
    ];
    let vfile = write(&db.path("video.csv"), lines(VIDEO_HEADER, &sessions));
    assert_eq!(
        counts(&video(&db.store, &vfile).await.unwrap()),
        (2, 2, 0, 0)
    );
    assert_eq!(
        counts(&video(&db.store, &vfile).await.unwrap()),
        (2, 0, 2, 0)
    );
    assert_eq!(db.store.count_life_evidence().await.unwrap(), (3, 2));
}

both_backends!(
    a_fifteen_digit_id_is_upgraded_and_found_under_its_eighteen_digits,
    fifteen_digits
);
async fn fifteen_digits(db: &TestDb) {
    let full = valid_id("440304", "19420315", 122);
    let short = format!("{}{}", &full[..6], &full[8..17]);
    let file = write(
        &db.path("evidence.csv"),
        lines(
            EVIDENCE_HEADER,
            &[format!("{short},in_person_service,2026-11-02,IP-1")],
        ),
    );
    let s = evidence(&db.store, &file).await.unwrap();
    assert_eq!(counts(&s), (1, 1, 0, 0));
    assert_eq!(s.upgraded_ids, 1);
    let events = db.store.life_evidence_for(&full).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_date, day("2026-11-02"));
    assert!(db.store.life_evidence_for(&short).await.unwrap().is_empty());
    let run = db.store.get_run(s.run_id).await.unwrap().unwrap();
    assert!(
        run.details.contains("\"upgraded_ids\":1"),
        "{}",
        run.details
    );
}

both_backends!(
    only_a_passed_video_session_is_evidence_of_life,
    video_results
);
async fn video_results(db: &TestDb) {
    let sessions = vec![
        format!("{},2026-11-26T09:30:00+08:00,passed,op001,", id(1)),
        format!("{},2026-11-25T10:00:00+08:00,failed,op002,他人代答", id(2)),
        format!(
            "{},2026-11-24T16:10:00+08:00,no_show,op003,电话无人接听",
            id(3)
        ),
        // Late evening UTC: already the next day in China.
        format!("{},2026-11-20T17:00:00Z,passed,op004,", id(4)),
    ];
    let file = write(&db.path("video.csv"), lines(VIDEO_HEADER, &sessions));
    let s = video(&db.store, &file).await.unwrap();
    assert_eq!(counts(&s), (4, 4, 0, 0));
    assert_eq!(s.by_type.get("passed"), Some(&2));
    let latest = db.store.latest_life_dates().await.unwrap();
    assert_eq!(latest, {
        let mut v = vec![(id(1), day("2026-11-26")), (id(4), day("2026-11-21"))];
        v.sort();
        v
    });
    let life = db.store.load_life_evidence().await.unwrap();
    assert_eq!(
        life.alive_after(&id(1), day("2026-11-01")),
        Some(day("2026-11-26"))
    );
    assert_eq!(life.alive_after(&id(2), day("2026-11-01")), None);
    assert_eq!(life.alive_after(&id(3), day("2026-11-01")), None);
    // Shown to the caseworker all the same, marked as no proof.
    let failed = db.store.life_evidence_for(&id(2)).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].event_type, "video_session");
    assert_eq!(failed[0].result.as_deref(), Some("failed"));
    assert!(!failed[0].proves_life);

    // The same session sent again with another result is not a duplicate:
    // it is quarantined, and the stored one stays.
    let again = vec![
        format!("{},2026-11-26T09:30:00+08:00,failed,op001,他人代答", id(1)),
        format!("{},2026-11-26T09:30:00+08:00,passed,op001,", id(1)),
    ];
    let file = write(&db.path("video2.csv"), lines(VIDEO_HEADER, &again));
    let s = video(&db.store, &file).await.unwrap();
    assert_eq!(counts(&s), (2, 0, 1, 1));
    let q = db.store.quarantine_for_run(s.run_id).await.unwrap();
    assert_eq!(q[0].line, Some(2));
    assert!(q[0].reason.contains("already stored"), "{}", q[0].reason);
    let events = db.store.life_evidence_for(&id(1)).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].result.as_deref(), Some("passed"));
}

/// A generated roster and its death records, imported and pulled through
/// the real connectors; returns the data directory.
async fn prepared(db: &TestDb) -> PathBuf {
    let data = db.path("data");
    let as_of = day("2026-11-01");
    generate(&GenerateOptions::new(3000, 5, data.clone(), as_of), &|_| {}).unwrap();
    let opts = ImportOptions {
        as_of,
        batch_rows: 5000,
        actor: "system:test".into(),
    };
    import_roster(&db.store, &data.join("roster.csv"), &opts, &|_| {})
        .await
        .unwrap();
    let defs =
        connectors::load_definitions(&Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors"))
            .unwrap();
    let pulled = pull_through_sim(&db.store, &defs, &[], &data, &|_| {})
        .await
        .unwrap();
    assert!(pulled.iter().all(|s| s.ok()), "{pulled:?}");
    data
}

both_backends!(
    evidence_of_life_after_the_death_takes_an_auto_match_out_of_auto_and_shows_on_it,
    counter_evidence
);
async fn counter_evidence(db: &TestDb) {
    prepared(db).await;
    let rules = MatchRules::default_rules();
    run_match(&db.store, &rules, "system:test").await.unwrap();
    let auto = db
        .store
        .list_matches()
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.band == "auto")
        .expect("an auto match");
    let record = db
        .store
        .get_death_record(&auto.source, &auto.record_key)
        .await
        .unwrap()
        .unwrap();
    let pensioner = db
        .store
        .get_pensioner(&auto.person_no)
        .await
        .unwrap()
        .unwrap();
    let seen = record.death_date.succ_opt().unwrap();
    // Evidence on the death date itself proves nothing against it; a
    // failed video session after it proves nothing either.
    let file = write(
        &db.path("evidence.csv"),
        lines(
            EVIDENCE_HEADER,
            &[format!(
                "{},bank_counter,{},BC-1",
                pensioner.id_number, record.death_date
            )],
        ),
    );
    evidence(&db.store, &file).await.unwrap();
    let vfile = write(
        &db.path("video.csv"),
        lines(
            VIDEO_HEADER,
            &[format!(
                "{},{seen}T10:00:00+08:00,failed,op009,他人代答",
                pensioner.id_number
            )],
        ),
    );
    video(&db.store, &vfile).await.unwrap();
    run_match(&db.store, &rules, "system:test").await.unwrap();
    let still = find(&db.store, &auto.source, &auto.record_key).await;
    assert_eq!(still.band, "auto");

    let file = write(
        &db.path("evidence2.csv"),
        lines(
            EVIDENCE_HEADER,
            &[format!(
                "{},medical_settlement,{seen},MS-77",
                pensioner.id_number
            )],
        ),
    );
    evidence(&db.store, &file).await.unwrap();
    // A plain (pending) match takes the records whose pensioner has new
    // evidence of life after the death, and only those.
    let s = run_match_scoped(&db.store, &rules, "system:test", MatchScope::Pending)
        .await
        .unwrap();
    let of_person = db
        .store
        .list_matches()
        .await
        .unwrap()
        .iter()
        .filter(|m| m.person_no == auto.person_no)
        .count();
    assert_eq!(s.records as usize, of_person, "{s:?}");
    let after = find(&db.store, &auto.source, &auto.record_key).await;
    assert_eq!(after.person_no, auto.person_no);
    assert_ne!(after.band, "auto");
    let e: Explanation = serde_json::from_str(&after.explanation).unwrap();
    assert!(
        e.safeguards
            .contains(&Safeguard::CounterEvidence { alive_on: seen }),
        "{:?}",
        e.safeguards
    );
    let text = render_waterfall(&e);
    assert!(
        text.contains(&format!("evidence of life on {seen}, after the death date")),
        "{text}"
    );
}

async fn find(store: &Store, source: &str, key: &str) -> vigil::store::matches::StoredMatch {
    store
        .list_matches()
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.source == source && m.record_key == key)
        .expect("the match is still there")
}

both_backends!(
    rules_train_writes_a_proposal_beside_the_rules_and_never_over_them,
    train
);
async fn train(db: &TestDb) {
    prepared(db).await;
    let rules_dir = db.path("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    let rules_path = rules_dir.join("matching.toml");
    std::fs::write(&rules_path, vigil::matching::rules::DEFAULT_RULES_TOML).unwrap();
    let rules = MatchRules::default_rules();
    let date = day("2026-11-27");
    let mut opts = ProposeOptions {
        rules_path: Some(rules_path.clone()),
        out: None,
        training: TrainingOptions {
            random_pairs: 50_000,
            ..TrainingOptions::default()
        },
        date,
        actor: "system:test".into(),
    };
    let p = propose_rules(&db.store, &rules, &opts).await.unwrap();
    assert_eq!(p.path, rules_dir.join("matching.proposed.toml"));
    assert!(!p.replaced_earlier);
    assert!(p.persons > 1000 && p.records > 0, "{p:?}");
    let text = std::fs::read_to_string(&p.path).unwrap();
    assert!(text.starts_with("# PROPOSED"), "{text}");
    let proposed = MatchRules::from_toml(&text).unwrap();
    assert_eq!(proposed.version, "2026.5-default-trained-2026-11-27");
    assert_eq!(proposed.thresholds, rules.thresholds);
    assert_ne!(proposed.id, rules.id, "training changed no ID weight");
    assert_eq!(
        std::fs::read_to_string(&rules_path).unwrap(),
        vigil::matching::rules::DEFAULT_RULES_TOML
    );
    assert!(
        p.levels
            .iter()
            .any(|l| l.field == "id" && l.level == "exact" && l.trained)
    );
    let entries = audit_entries(&db.store).await;
    assert_eq!(entries.last().unwrap().0, "rules.propose");

    // Asked to write over the rules in use, under any spelling: refused.
    opts.out = Some(rules_dir.join(".").join("matching.toml"));
    let err = propose_rules(&db.store, &rules, &opts).await.unwrap_err();
    assert!(matches!(err, ProposeError::WouldOverwrite { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(&rules_path).unwrap(),
        vigil::matching::rules::DEFAULT_RULES_TOML
    );
    // The same data and seed give the same proposal again.
    opts.out = None;
    let again = propose_rules(&db.store, &rules, &opts).await.unwrap();
    assert!(again.replaced_earlier);
    assert_eq!(std::fs::read_to_string(&again.path).unwrap(), text);
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
    the_import_commands_print_a_summary_and_exit_non_zero_on_a_refused_file,
    cli_imports
);
async fn cli_imports(db: &TestDb) {
    let dir = db.dir.path();
    let good = write(
        &db.path("evidence.csv"),
        lines(
            EVIDENCE_HEADER,
            &[
                format!("{},face_app,2026-11-21,FA-1", id(1)),
                format!("{},face_app,2026-13-01,FA-2", id(2)),
            ],
        ),
    );
    let out = vigil(dir, db)
        .args(["evidence", "import", good.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("inserted              1"), "{stdout}");
    assert!(stdout.contains("line 3: event_date"), "{stdout}");
    assert!(
        !stdout.contains(&id(2)),
        "a full ID number printed: {stdout}"
    );

    let sessions = write(
        &db.path("video.csv"),
        lines(
            VIDEO_HEADER,
            &[format!(
                "{},2026-11-26T09:30:00+08:00,no_show,op001,",
                id(1)
            )],
        ),
    );
    let out = vigil(dir, db)
        .args(["video", "import", sessions.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("no_show 1"), "{stdout}");

    let refused = write(&db.path("nocols.csv"), "id_number,session_at\n1,2\n");
    let out = vigil(dir, db)
        .args(["video", "import", refused.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nocols.csv") && stderr.contains("result, operator, note"),
        "{stderr}"
    );
    assert_eq!(db.store.count_life_evidence().await.unwrap(), (1, 1));
}
