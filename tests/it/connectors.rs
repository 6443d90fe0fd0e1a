//! Connectors (issue 3), on both backends, against the simulated source
//! server on loopback, fed from `fixtures/` (see `fixtures/truth.csv`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use vigil::ingest::connectors::sim::{Fault, RunningSim, Sim};
use vigil::ingest::connectors::{
    Definition, PullError, PullSummary, Secret, check_definitions, load_definitions, pull,
};
use vigil::store::{LockKey, Store, StoreError};

use crate::both_backends;
use crate::support::TestDb;

const TOKEN: &str = "fixture-token-123";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("fixtures")
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The repository's definitions pointed at the test server and directory,
/// with fast retries.
fn definition(name: &str, base_url: &str, ca_dir: &Path) -> Definition {
    let defs = load_definitions(&root().join("connectors")).expect("definitions load");
    let def = defs.into_iter().find(|d| d.name == name).expect(name);
    let mut def = def
        .with_base_url(base_url)
        .with_dir(ca_dir)
        .with_token(Secret::new(TOKEN))
        .with_retry_delays(Duration::from_millis(10), Duration::from_millis(40));
    def.http.max_attempts = 4;
    def
}

async fn start_sim() -> RunningSim {
    let sim = Sim::load(&fixtures(), Some(TOKEN)).expect("fixtures load");
    RunningSim::start(sim).await.expect("sim starts")
}

async fn pull_one(store: &Store, def: &Definition) -> PullSummary {
    let mut s = pull(store, std::slice::from_ref(def), &[], &|_| {})
        .await
        .expect("pull starts");
    let s = s.remove(0);
    assert!(
        s.counts.balanced(),
        "read = inserted + updated + duplicate + stale + non_death + quarantined: {:?}",
        s.counts
    );
    s
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Every key the store holds for a source: deaths, non-death events and
/// quarantined records.
async fn stored_keys(db: &TestDb, source: &str, runs: &[i64]) -> Vec<String> {
    let mut keys: Vec<String> = db
        .store
        .death_records(source)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.record_key)
        .collect();
    keys.extend(
        db.store
            .non_death_events(source)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.record_key),
    );
    for run in runs {
        for q in db.store.quarantine_for_run(*run).await.unwrap() {
            keys.push(q.record_key.unwrap_or_default());
        }
    }
    keys.sort();
    keys
}

fn fixture_ps_ids() -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("public_security/records.jsonl")).unwrap();
    let ids: BTreeSet<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["record_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.into_iter().collect()
}

#[test]
fn the_repository_definitions_pass_the_check() {
    let problems = check_definitions(&root().join("connectors"));
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn check_names_the_file_and_the_key_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(root().join("connectors/public_security.toml")).unwrap();
    std::fs::write(
        dir.path().join("limit.toml"),
        good.replace("limit = 500", "limit = 5000"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("typo.toml"),
        good.replace("[paging]", "[paging]\npage_sise = 3"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("plain.toml"),
        good.replace(
            "https://hjzx.gaj.example.gov.cn",
            "http://hjzx.gaj.example.gov.cn",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("dates.toml"),
        good.replace("\"%Y%m%d\", ", "\"%Y%m\", "),
    )
    .unwrap();
    let problems: Vec<String> = check_definitions(dir.path())
        .iter()
        .map(|e| e.to_string())
        .collect();
    let has = |file: &str, key: &str| problems.iter().any(|p| p.contains(file) && p.contains(key));
    assert!(has("limit.toml", "paging.limit"), "{problems:#?}");
    assert!(has("typo.toml", "page_sise"), "{problems:#?}");
    assert!(has("plain.toml", "base_url"), "{problems:#?}");
    assert!(has("plain.toml", "allow_insecure"), "{problems:#?}");
    assert!(has("dates.toml", "date_formats"), "{problems:#?}");
    // Every file is reported, not just the first.
    assert_eq!(problems.len(), 4, "{problems:#?}");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let s = Secret::new("super-secret");
    assert!(!format!("{s:?} {s}").contains("super"));
}

both_backends!(public_security_pages_and_since, ps_pages_and_since);
async fn ps_pages_and_since(db: &TestDb) {
    let server = start_sim().await;
    let mut def = definition("public_security", &server.base_url, &db.path("ca"));
    def.paging.as_mut().unwrap().limit = 2;

    // The server's day is 2026-11-06 in China: records up to that day.
    server.sim.set_now(Some(instant("2026-11-06T02:00:00Z")));
    let s = pull_one(&db.store, &def).await;
    assert!(s.ok(), "{:?}", s.error);
    let c = &s.counts;
    assert_eq!(
        (c.read, c.inserted, c.duplicate, c.non_death, c.quarantined),
        (7, 4, 1, 2, 0)
    );
    assert_eq!(c.pages, 4);
    assert_eq!(
        db.store
            .connector_state("public_security", "since")
            .await
            .unwrap()
            .as_deref(),
        Some("2026-11-06T02:00:00Z")
    );
    assert_eq!(
        db.store
            .connector_state("public_security", "cursor")
            .await
            .unwrap(),
        None
    );

    // Later: the boundary day 2026-11-06 comes back and is a duplicate.
    server.sim.set_now(Some(instant("2026-11-21T00:00:00Z")));
    let s2 = pull_one(&db.store, &def).await;
    assert!(s2.ok(), "{:?}", s2.error);
    let c = &s2.counts;
    assert_eq!(
        (
            c.read,
            c.inserted,
            c.duplicate,
            c.non_death,
            c.quarantined,
            c.updated
        ),
        (9, 3, 1, 2, 3, 0)
    );

    // Nothing new: nothing read, nothing changed.
    let s3 = pull_one(&db.store, &def).await;
    assert_eq!(s3.counts.read, 0);

    let deaths = db.store.death_records("public_security").await.unwrap();
    assert_eq!(deaths.len(), 7);
    let non = db.store.non_death_events("public_security").await.unwrap();
    let reasons: BTreeSet<&str> = non.iter().map(|n| n.reason.as_str()).collect();
    assert_eq!(reasons, BTreeSet::from(["其他", "出国", "服兵役", "迁出"]));
    assert!(
        deaths
            .iter()
            .all(|d| !non.iter().any(|n| n.record_key == d.record_key))
    );

    let get = |k: &str| deaths.iter().find(|d| d.record_key == k).unwrap();
    let r1 = get("PS-2026-000001");
    assert_eq!(r1.name_key, "wangxiuying");
    assert_eq!(r1.id_status, "valid");
    assert_eq!(r1.sex, Some(2));
    assert_eq!(r1.birth_date, Some(day("1942-03-15")));
    assert_eq!(r1.death_date, day("2026-10-30"));
    assert_eq!(r1.region.as_deref(), Some("440304"));
    assert_eq!(r1.raw_sha256.len(), 64);
    assert!(r1.raw.contains("\"record_id\":\"PS-2026-000001\""));
    let r3 = get("PS-2026-000003");
    assert!(r3.death_date_latest);
    assert_eq!(r3.death_date, day("2026-11-03"));
    assert_eq!(get("PS-2026-000006").id_status, "upgraded");
    assert_eq!(get("PS-2026-000006").id_number.as_ref().unwrap().len(), 18);
    let r7 = get("PS-2026-000007");
    assert_eq!(
        (r7.id_status.as_str(), r7.id_number.as_deref()),
        ("invalid", None)
    );
    assert!(r7.id_candidates >= 1);

    let q = db.store.quarantine_for_run(s2.run_id).await.unwrap();
    let reasons: Vec<&str> = q.iter().map(|q| q.reason.as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("csrq")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("before the birth date")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("name")), "{reasons:?}");
    for e in &q {
        assert!(
            !e.reason
                .chars()
                .filter(|c| c.is_ascii_digit())
                .collect::<String>()
                .contains("4403041"),
            "a reason quotes an ID number: {}",
            e.reason
        );
        assert!(!e.raw.is_empty());
    }
    let run = db.store.get_run(s2.run_id).await.unwrap().unwrap();
    assert_eq!(
        (
            run.kind.as_str(),
            run.status.as_str(),
            run.read_count,
            run.inserted,
            run.unchanged,
            run.quarantined
        ),
        ("pull", "ok", 9, 3, 1, 3)
    );
    let details: serde_json::Value = serde_json::from_str(&run.details).unwrap();
    assert_eq!(details["non_death"], 2);
    server.stop().await.unwrap();
}

both_backends!(
    unauthorized_is_a_clear_error_and_moves_no_watermark,
    unauthorized
);
async fn unauthorized(db: &TestDb) {
    let server = start_sim().await;
    let def = definition("public_security", &server.base_url, &db.path("ca"))
        .with_token(Secret::new("wrong-token"));
    let s = pull_one(&db.store, &def).await;
    let err = s.error.expect("fails");
    assert!(err.contains("refused the token"), "{err}");
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("wrong-token"), "the token leaked: {err}");
    assert_eq!(s.counts.retries, 0, "401 is not retried");
    assert!(
        db.store
            .connector_states("public_security")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.store
            .count_death_records("public_security")
            .await
            .unwrap(),
        0
    );
    let run = db.store.get_run(s.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, "failed");

    // No token at all: the variable is named, the pull does not start.
    let mut def = definition("public_security", &server.base_url, &db.path("ca"));
    def.token_override = None;
    def.auth.as_mut().unwrap().bearer_token_env = "VIGIL_TEST_TOKEN_THAT_IS_NOT_SET".into();
    let s = pull_one(&db.store, &def).await;
    assert!(
        s.error
            .unwrap()
            .contains("VIGIL_TEST_TOKEN_THAT_IS_NOT_SET"),
    );
    server.stop().await.unwrap();
}

both_backends!(too_many_requests_waits_for_retry_after, too_many_requests);
async fn too_many_requests(db: &TestDb) {
    let server = start_sim().await;
    let def = definition("public_security", &server.base_url, &db.path("ca"));
    server.sim.inject(Fault::TooManyRequests {
        retry_after_secs: 1,
    });
    let started = Instant::now();
    let s = pull_one(&db.store, &def).await;
    assert!(s.ok(), "{:?}", s.error);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(s.counts.retries, 1);
    assert_eq!(s.counts.read, 15);
    server.stop().await.unwrap();
}

both_backends!(server_errors_are_retried_until_success, server_errors);
async fn server_errors(db: &TestDb) {
    let server = start_sim().await;
    let mut def = definition("public_security", &server.base_url, &db.path("ca"));
    def.paging.as_mut().unwrap().limit = 4;
    server.sim.inject_after(1, Fault::Status(500));
    server.sim.inject(Fault::Status(503));
    let s = pull_one(&db.store, &def).await;
    assert!(s.ok(), "{:?}", s.error);
    assert_eq!(s.counts.retries, 2);
    assert_eq!((s.counts.read, s.counts.duplicate), (15, 1));
    assert_eq!(
        stored_keys(db, "public_security", &[s.run_id]).await,
        fixture_ps_ids()
    );
    server.stop().await.unwrap();
}

both_backends!(the_same_page_sent_twice_is_recognised, same_page_twice);
async fn same_page_twice(db: &TestDb) {
    let server = start_sim().await;
    let mut def = definition("public_security", &server.base_url, &db.path("ca"));
    def.paging.as_mut().unwrap().limit = 3;
    server.sim.inject_after(1, Fault::RepeatPrevious);
    let s = pull_one(&db.store, &def).await;
    assert!(s.ok(), "{:?}", s.error);
    // 15 lines, plus the first page (3 records) again.
    assert_eq!((s.counts.read, s.counts.duplicate), (18, 4));
    assert_eq!(
        stored_keys(db, "public_security", &[s.run_id]).await,
        fixture_ps_ids()
    );
    server.stop().await.unwrap();
}

both_backends!(a_body_cut_mid_json_is_retried_never_half_stored, cut_body);
async fn cut_body(db: &TestDb) {
    let server = start_sim().await;
    let mut def = definition("public_security", &server.base_url, &db.path("ca"));
    def.paging.as_mut().unwrap().limit = 4;
    server.sim.inject_after(2, Fault::CutBody);
    let s = pull_one(&db.store, &def).await;
    assert!(s.ok(), "{:?}", s.error);
    assert_eq!(s.counts.retries, 1);
    assert_eq!(
        (s.counts.read, s.counts.duplicate, s.counts.quarantined),
        (15, 1, 3)
    );
    server.stop().await.unwrap();
}

both_backends!(
    dropped_connections_then_a_second_run_lose_and_double_nothing,
    dropped
);
async fn dropped(db: &TestDb) {
    let server = start_sim().await;
    let mut def = definition("public_security", &server.base_url, &db.path("ca"));
    def.paging.as_mut().unwrap().limit = 2;
    def.http.max_attempts = 3;
    server.sim.drop_after_pages(Some(3));
    let s1 = pull_one(&db.store, &def).await;
    let err = s1.error.clone().expect("the first run fails");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(err.contains("kept"), "{err}");
    assert_eq!(s1.counts.read, 6, "three pages of two were committed");
    assert_eq!(s1.counts.retries, 2);
    assert!(
        db.store
            .connector_state("public_security", "cursor")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        db.store
            .connector_state("public_security", "since")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        db.store.get_run(s1.run_id).await.unwrap().unwrap().status,
        "failed"
    );

    server.sim.drop_after_pages(None);
    let s2 = pull_one(&db.store, &def).await;
    assert!(s2.ok(), "{:?}", s2.error);
    // The second run resumed from the cursor: together exactly the source.
    assert_eq!(s1.counts.read + s2.counts.read, 15);
    assert_eq!(s1.counts.duplicate + s2.counts.duplicate, 1);
    assert_eq!(
        stored_keys(db, "public_security", &[s1.run_id, s2.run_id]).await,
        fixture_ps_ids()
    );
    assert!(
        db.store
            .connector_state("public_security", "cursor")
            .await
            .unwrap()
            .is_none()
    );
    server.stop().await.unwrap();
}

both_backends!(
    a_second_pull_of_a_source_is_refused_at_once_while_one_runs,
    one_pull_per_source
);
async fn one_pull_per_source(db: &TestDb) {
    let dir = db.path("civil_affairs");
    copy_dir(&fixtures().join("civil_affairs"), &dir);
    let def = definition("civil_affairs", "https://unused.example", &dir);
    // Another pull of civil affairs (here: its lock) is running.
    let held = db.store.lock(LockKey::Pull("civil_affairs")).await.unwrap();
    let err = pull(&db.store, std::slice::from_ref(&def), &[], &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PullError::Store(StoreError::PullRunning { source_name, .. })
            if source_name == "civil_affairs"),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("another pull of civil_affairs is running") && text.contains("wait"),
        "{text}"
    );
    // Refused before anything started: no run, no record, no watermark.
    assert!(db.store.list_runs(10).await.unwrap().is_empty());
    assert_eq!(
        db.store.count_death_records("civil_affairs").await.unwrap(),
        0
    );
    assert!(
        db.store
            .taken_files("civil_affairs")
            .await
            .unwrap()
            .is_empty()
    );
    // Another source is not held by it, nor is the roster import.
    let other = db.store.lock(LockKey::Pull("funeral")).await.unwrap();
    other.release().await;
    let roster = db.store.lock(LockKey::RosterImport).await.unwrap();
    roster.release().await;

    // The real binary, in a process of its own, is refused too, and says
    // which source and what to do.
    let connectors = db.path("connectors");
    std::fs::create_dir_all(&connectors).unwrap();
    let toml = std::fs::read_to_string(root().join("connectors/civil_affairs.toml"))
        .unwrap()
        .replace(
            "dir = \"data/civil_affairs\"",
            &format!("dir = {:?}", dir.display().to_string()),
        );
    std::fs::write(connectors.join("civil_affairs.toml"), toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(db.dir.path())
        .env_remove("VIGIL_CONFIG")
        .env("VIGIL_LOG", "warn")
        .args(["--database-url", &db.url, "pull", "--connectors"])
        .arg(&connectors)
        .arg("civil_affairs")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("another pull of civil_affairs is running"),
        "{stderr}"
    );
    assert_eq!(
        db.store.count_death_records("civil_affairs").await.unwrap(),
        0
    );

    // Once the other pull ends, this one runs.
    held.release().await;
    let s = pull_one(&db.store, &def).await;
    assert!(s.ok(), "{:?}", s.error);
    assert_eq!(s.counts.inserted, 5);
    // And it let go of the lock when it ended.
    db.store
        .lock(LockKey::Pull("civil_affairs"))
        .await
        .unwrap()
        .release()
        .await;
}

both_backends!(
    a_pull_of_several_sources_takes_every_lock_first_and_refuses_whole,
    several_sources_locked
);
async fn several_sources_locked(db: &TestDb) {
    let dir = db.path("civil_affairs");
    copy_dir(&fixtures().join("civil_affairs"), &dir);
    let defs = [
        definition("civil_affairs", "https://unused.example", &dir),
        definition("funeral", "https://unused.example", &db.path("fh")),
    ];
    let dead_ca = crate::support::dead_run(&db.store, "pull", "civil_affairs").await;
    let dead_fh = crate::support::dead_run(&db.store, "pull", "funeral").await;
    // A pull of funeral is running: the pull of both refuses before it
    // pulls anything, and lets go of civil affairs' lock again.
    let held = db.store.lock(LockKey::Pull("funeral")).await.unwrap();
    let err = pull(&db.store, &defs, &[], &|_| {}).await.unwrap_err();
    assert!(
        matches!(&err, PullError::Store(StoreError::PullRunning { source_name, .. })
            if source_name == "funeral"),
        "{err}"
    );
    assert_eq!(
        db.store.count_death_records("civil_affairs").await.unwrap(),
        0
    );
    db.store
        .lock(LockKey::Pull("civil_affairs"))
        .await
        .unwrap()
        .release()
        .await;
    // Civil affairs' lock was held for a moment: its dead pull is marked
    // abandoned; funeral's, whose lock someone else holds, is not.
    crate::support::assert_abandoned(&db.store, dead_ca).await;
    let run = db.store.get_run(dead_fh).await.unwrap().unwrap();
    assert_eq!(run.status, "running");
    assert_eq!(
        db.store.list_runs(10).await.unwrap().len(),
        2,
        "no run started"
    );
    held.release().await;
}

both_backends!(
    a_corrected_civil_affairs_row_updates_and_keeps_history,
    civil_affairs
);
async fn civil_affairs(db: &TestDb) {
    let dir = db.path("civil_affairs");
    copy_dir(&fixtures().join("civil_affairs"), &dir);
    let def = definition("civil_affairs", "https://unused.example", &dir);
    let s = pull_one(&db.store, &def).await;
    assert!(s.ok(), "{:?}", s.error);
    let c = &s.counts;
    assert_eq!(
        (c.read, c.inserted, c.updated, c.quarantined, c.files_taken),
        (8, 5, 1, 2, 3)
    );
    let key = "440304001:2026000002";
    let r = db
        .store
        .get_death_record("civil_affairs", key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.death_date, day("2026-11-02"));
    assert_eq!(r.version, 2);
    assert_eq!(r.origin, "440304001_20261105_v2.csv");
    assert_eq!(r.birth_date, Some(day("1937-10-02")));
    assert_eq!(r.sex, Some(1));
    let h = db.store.record_history("civil_affairs", key).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!((h[0].version, h[0].why.as_str()), (1, "updated"));
    assert!(h[0].raw.contains("2026/11/3"));
    let r3 = db
        .store
        .get_death_record("civil_affairs", "440304001:2026000003")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r3.birth_date, Some(day("1941-05-17")));
    assert_eq!(r3.death_date, day("2026-11-04"));
    assert_eq!(r3.place.as_deref(), Some("福田区, 莲花街道"));
    assert_eq!(r3.name_raw, "何淑英");
    let empty_id = db
        .store
        .get_death_record("civil_affairs", "440305002:2026000003")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(empty_id.id_status, "empty");

    // Again: every file already taken.
    let s2 = pull_one(&db.store, &def).await;
    assert_eq!((s2.counts.read, s2.counts.files_unchanged), (0, 3));

    // The base file re-posted with that row changed: the newer _v2 still
    // wins; the base file's version is kept as stale history.
    let base = dir.join("440304001_20261105.csv");
    let text = encoding_rs::GBK
        .decode(&std::fs::read(&base).unwrap())
        .0
        .into_owned();
    let text = text.replace("福田区家中", "福田区家里");
    std::fs::write(&base, encoding_rs::GBK.encode(&text).0).unwrap();
    let s3 = pull_one(&db.store, &def).await;
    assert_eq!(
        (
            s3.counts.read,
            s3.counts.duplicate,
            s3.counts.stale,
            s3.counts.files_taken
        ),
        (4, 3, 1, 1)
    );
    let r = db
        .store
        .get_death_record("civil_affairs", key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.version, r.death_date), (2, day("2026-11-02")));
    let h = db.store.record_history("civil_affairs", key).await.unwrap();
    assert_eq!(h.last().unwrap().why, "stale");
}

both_backends!(
    funeral_files_are_taken_once_and_again_when_reposted,
    funeral
);
async fn funeral(db: &TestDb) {
    let data = db.path("data");
    copy_dir(
        &fixtures().join("funeral/cremations/FH440300-07"),
        &data.join("funeral/cremations/FH440300-07"),
    );
    copy_dir(
        &fixtures().join("funeral/cremations/FH440300-09"),
        &data.join("funeral/cremations/FH440300-09"),
    );
    std::fs::copy(
        fixtures().join("funeral/cremations/index.json"),
        data.join("funeral/cremations/index.json"),
    )
    .unwrap();
    let server = RunningSim::start(Sim::load(&data, Some(TOKEN)).unwrap())
        .await
        .unwrap();
    let def = definition("funeral", &server.base_url, &db.path("ca"));
    let s = pull_one(&db.store, &def).await;
    assert!(s.ok(), "{:?}", s.error);
    let c = &s.counts;
    assert_eq!(
        (c.read, c.inserted, c.quarantined, c.files_taken),
        (6, 4, 2, 2)
    );
    let r = db
        .store
        .get_death_record("funeral", "FH440300-07:20261122-0001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.birth_year_min, r.birth_year_max),
        (Some(1941), Some(1942))
    );
    assert_eq!(
        (r.birth_date, r.id_status.as_str(), r.sex),
        (None, "empty", Some(2))
    );
    assert_eq!(r.event_date, Some(day("2026-11-22")));
    let r2 = db
        .store
        .get_death_record("funeral", "FH440300-07:20261122-0002")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r2.id_status, "upgraded");

    let s2 = pull_one(&db.store, &def).await;
    assert_eq!((s2.counts.read, s2.counts.files_unchanged), (0, 2));

    // Re-posted under the same name with one line corrected.
    let file = data.join("funeral/cremations/FH440300-07/2026-11-22.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("\"age\":77", "\"age\":78")).unwrap();
    let s3 = pull_one(&db.store, &def).await;
    let c = &s3.counts;
    assert_eq!(
        (
            c.read,
            c.duplicate,
            c.updated,
            c.files_taken,
            c.files_unchanged
        ),
        (3, 2, 1, 1, 1)
    );
    let h = db
        .store
        .record_history("funeral", "FH440300-07:20261122-0003")
        .await
        .unwrap();
    assert_eq!(h.len(), 1);
    assert!(h[0].raw.contains("\"age\":77"));
    server.stop().await.unwrap();
}

both_backends!(plain_http_to_another_host_is_refused, insecure);
async fn insecure(db: &TestDb) {
    let def = definition("public_security", "http://10.1.2.3:8080", &db.path("ca"));
    let s = pull_one(&db.store, &def).await;
    let err = s.error.unwrap();
    assert!(err.contains("plain http://"), "{err}");
    assert!(err.contains("allow_insecure"), "{err}");
    assert!(vigil::ingest::connectors::check_url("http://10.1.2.3:8080", true).is_ok());
    assert!(vigil::ingest::connectors::check_url("http://localhost:8080", false).is_ok());
    assert!(vigil::ingest::connectors::check_url("http://[::1]:8080", false).is_ok());
}

both_backends!(
    a_cancellation_corrected_between_death_and_another_reason_moves_and_keeps_its_history,
    reclassified
);
async fn reclassified(db: &TestDb) {
    let line = |id: &str, reason: &str, zxrq: &str| {
        format!(
            "{{\"record_id\":\"{id}\",\"xm\":\"王秀英\",\"gmsfhm\":\"440304194203151223\",\
             \"xb\":\"2\",\"csrq\":\"19420315\",\"swrq\":\"20261030\",\"zxrq\":\"{zxrq}\",\
             \"zxyy\":\"{reason}\",\"hjdz_xzqh\":\"440304\"}}\n"
        )
    };
    let serve = |lines: String, dir: PathBuf, now: &'static str| async move {
        std::fs::create_dir_all(dir.join("public_security")).unwrap();
        std::fs::write(dir.join("public_security/records.jsonl"), lines).unwrap();
        let sim = Sim::load(&dir, Some(TOKEN)).unwrap();
        sim.set_now(Some(instant(now)));
        RunningSim::start(sim).await.unwrap()
    };
    // First delivery: A is a death, B moved away.
    let first = line("PS-A", "死亡", "2026-11-01") + &line("PS-B", "迁出", "2026-11-01");
    let server = serve(first, db.path("v1"), "2026-11-05T00:00:00Z").await;
    let def = definition("public_security", &server.base_url, &db.path("ca"));
    let s = pull_one(&db.store, &def).await;
    assert_eq!((s.counts.inserted, s.counts.non_death), (1, 1), "{s:?}");

    // Corrections, re-delivered later: A was in fact a move, B a death.
    let second = line("PS-A", "迁出", "2026-11-10") + &line("PS-B", "死亡", "2026-11-10");
    let server = serve(second, db.path("v2"), "2026-11-21T00:00:00Z").await;
    let def = definition("public_security", &server.base_url, &db.path("ca"));
    let s = pull_one(&db.store, &def).await;
    assert!(s.ok(), "{:?}", s.error);
    assert_eq!(
        (
            s.counts.read,
            s.counts.updated,
            s.counts.non_death,
            s.counts.reclassified
        ),
        (2, 1, 1, 2),
        "{s:?}"
    );

    let deaths = db.store.death_records("public_security").await.unwrap();
    let non = db.store.non_death_events("public_security").await.unwrap();
    let keys = |v: Vec<String>| v.into_iter().collect::<Vec<_>>();
    assert_eq!(
        keys(deaths.iter().map(|d| d.record_key.clone()).collect()),
        ["PS-B"]
    );
    assert_eq!(
        keys(non.iter().map(|n| n.record_key.clone()).collect()),
        ["PS-A"]
    );
    assert_eq!(deaths[0].version, 2);
    assert_eq!(non[0].version, 2);
    // The retired versions are kept.
    for key in ["PS-A", "PS-B"] {
        let h = db
            .store
            .record_history("public_security", key)
            .await
            .unwrap();
        assert_eq!(h.len(), 1, "{key}: {h:?}");
        assert_eq!(h[0].version, 1);
    }
}

both_backends!(
    a_field_with_line_breaks_tabs_and_backslashes_is_stored_exactly,
    awkward_text
);
async fn awkward_text(db: &TestDb) {
    let dir = db.path("civil_affairs_awkward");
    std::fs::create_dir_all(&dir).unwrap();
    let place = "福田区\t\"家中\"\n二楼\\N \\. \\\\x\r";
    let text = format!(
        "姓名,身份证号,性别,出生日期,死亡日期,死亡地点,登记机关代码,登记编号\n\
         王秀英,440304194203151223,女,1942-03-15,2026-10-30,\"{}\",440304001,2026000009\n",
        place.replace('"', "\"\"")
    );
    std::fs::write(
        dir.join("440304001_20261107.csv"),
        encoding_rs::GBK.encode(&text).0,
    )
    .unwrap();
    let def = definition("civil_affairs", "https://unused.example", &dir);
    let s = pull_one(&db.store, &def).await;
    assert!(s.ok(), "{:?}", s.error);
    assert_eq!((s.counts.read, s.counts.inserted), (1, 1));
    let r = db
        .store
        .get_death_record("civil_affairs", "440304001:2026000009")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.place.as_deref(), Some(place.trim()));
    let line = text.lines().nth(1).unwrap();
    assert!(r.raw.starts_with(line), "{:?}", r.raw);
    assert!(r.raw.contains("\\N \\. \\\\x\r"), "{:?}", r.raw);
    // The office code 440304001 gives the record's region.
    assert_eq!(r.region.as_deref(), Some("440304"));
    assert_eq!(r.birth_date, Some(day("1942-03-15")));
}

both_backends!(
    a_pull_that_died_is_marked_abandoned_by_the_next_pull_of_its_source,
    dead_pull_abandoned
);
async fn dead_pull_abandoned(db: &TestDb) {
    let server = start_sim().await;
    let def = definition("public_security", &server.base_url, &db.path("ca"));
    // A pull of this source and one of another, both killed mid-run.
    let dead = crate::support::dead_run(&db.store, "pull", "public_security").await;
    let other = crate::support::dead_run(&db.store, "pull", "civil_affairs").await;
    let s = pull_one(&db.store, &def).await;
    assert!(s.ok(), "{:?}", s.error);
    let run = |id| async move { db.store.get_run(id).await.unwrap().unwrap() };
    crate::support::assert_abandoned(&db.store, dead).await;
    // Another source's pull may still be alive: its own lock says so, not ours.
    assert_eq!(run(other).await.status, "running");
    assert_eq!(run(s.run_id).await.status, "ok");
    server.stop().await.unwrap();
}
