//! The suspension queue on both backends: cases opened by a real match run
//! over a roster and civil-affairs files pulled through the real
//! connector, tips, two-person decisions and what they carry out on
//! vigil's own payment state, the ledger's overpayment and back pay, the
//! payroll instructions, and the audit entries of each step.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use vigil::cases::machine::{Action, Actor, Role};
use vigil::cases::queue::{self, QueueError};
use vigil::cases::{CaseRules, ProposalRequest, payroll};
use vigil::ingest::connectors;
use vigil::ingest::roster::{ImportOptions, import_roster};
use vigil::matching::rules::MatchRules;
use vigil::matching::run::run_match_scoped;
use vigil::store::cases::CaseFilter;
use vigil::store::match_state::MatchScope;

use crate::both_backends;
use crate::support::{Row, TestDb, person, roster_text, write};

const OFFICE: &str = "440304001";

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// 2026-12-03 10:00 in China.
fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 2, 0, 0).unwrap()
}

/// Six pensioners; the third is suspended in the roster.
fn people() -> Vec<Row> {
    (1..=6)
        .map(|n| {
            let mut p = person(n);
            if n == 3 {
                p.status = "suspended".into();
            }
            p
        })
        .collect()
}

async fn import(db: &TestDb, rows: &[Row], as_of: &str) {
    let path = write(&db.path(&format!("roster-{as_of}.csv")), roster_text(rows));
    let opts = ImportOptions {
        as_of: day(as_of),
        batch_rows: 100,
        actor: "system:test".into(),
    };
    import_roster(&db.store, &path, &opts, &|_| {})
        .await
        .unwrap();
}

/// One civil-affairs death registration of `p` (spec §3), as a CSV line.
fn registration(p: &Row, number: &str, died: &str, id: &str) -> String {
    let sex = if p.sex == "1" { "男" } else { "女" };
    format!(
        "{},{id},{sex},{},{died},福田区人民医院,{OFFICE},{number}\n",
        p.name, p.birth_date
    )
}

/// Writes a GBK civil-affairs file of `lines` into `dir`.
fn civil_file(dir: &Path, name: &str, lines: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut text =
        String::from("姓名,身份证号,性别,出生日期,死亡日期,死亡地点,登记机关代码,登记编号\n");
    for l in lines {
        text.push_str(l);
    }
    std::fs::write(dir.join(name), encoding_rs::GBK.encode(&text).0).unwrap();
}

async fn pull_civil(db: &TestDb, dir: &Path) {
    let defs =
        connectors::load_definitions(&Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors"))
            .unwrap();
    let defs: Vec<_> = defs
        .into_iter()
        .filter(|d| d.name == "civil_affairs")
        .map(|d| d.with_dir(dir))
        .collect();
    let pulled = connectors::pull(&db.store, &defs, &["civil_affairs".into()], &|_| {})
        .await
        .unwrap();
    assert!(pulled.iter().all(|s| s.ok()), "{pulled:?}");
}

/// A match run and the case step that follows it, as `vigil match` does.
async fn match_and_sync(db: &TestDb, scope: MatchScope) -> Option<queue::SyncSummary> {
    run_match_scoped(
        &db.store,
        &MatchRules::default_rules(),
        "system:test",
        scope,
    )
    .await
    .unwrap();
    queue::sync_death_cases(&db.store, "system:test", at())
        .await
        .unwrap()
}

/// The roster, and deaths of pensioners 1 (active) and 3 (suspended),
/// each registered with their own ID, matched and turned into cases.
async fn world(db: &TestDb) -> (Vec<Row>, PathBuf) {
    let people = people();
    import(db, &people, "2026-11-01").await;
    let dir = db.path("civil_affairs");
    civil_file(
        &dir,
        &format!("{OFFICE}_20260601.csv"),
        &[
            registration(&people[0], "R1", "2026-05-20", &people[0].id_number),
            registration(&people[2], "R3", "2026-04-02", &people[2].id_number),
        ],
    );
    pull_civil(db, &dir).await;
    (people, dir)
}

async fn user(db: &TestDb, name: &str, role: Role) -> Actor {
    vigil::cases::users::add_user(
        &db.store,
        name,
        role,
        "correct horse battery",
        "system:test",
    )
    .await
    .unwrap();
    vigil::cases::users::authenticate(&db.store, name, "correct horse battery")
        .await
        .unwrap()
}

async fn case_of(db: &TestDb, person_no: &str) -> vigil::store::cases::CaseListRow {
    let cases = db
        .store
        .list_cases(&CaseFilter {
            person_no: Some(person_no.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cases.len(), 1, "{cases:?}");
    cases.into_iter().next().unwrap()
}

async fn audit_actions(db: &TestDb) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    vigil::audit::export_jsonl(&db.store, &mut buf)
        .await
        .unwrap();
    for line in String::from_utf8(buf).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        out.push(v["action"].as_str().unwrap().to_string());
    }
    out
}

fn confirm(reason: &str, date: &str) -> ProposalRequest {
    ProposalRequest {
        action: Action::ConfirmDeath,
        reason: reason.into(),
        note: "民政死亡登记与本人信息一致".into(),
        death_date: Some(day(date)),
    }
}

both_backends!(
    a_match_run_opens_one_case_per_pensioner_holds_auto_and_suspended_deaths_are_found,
    opens_cases
);
async fn opens_cases(db: &TestDb) {
    let (people, dir) = world(db).await;
    let s = match_and_sync(db, MatchScope::Pending).await.unwrap();
    assert_eq!(s.opened, 2, "{s:?}");
    let first = case_of(db, &people[0].person_no).await;
    assert_eq!(
        (
            first.reason.as_str(),
            first.band.as_deref(),
            first.state.as_str()
        ),
        ("death_match", Some("auto"), "open")
    );
    assert_eq!(
        first.payment, "suspended",
        "an auto match holds the payment at once"
    );
    // The suspended pensioner's death is found: a case on the held payment.
    let held = case_of(db, &people[2].person_no).await;
    assert_eq!(held.payment, "suspended");
    assert_eq!(s.held, 2);
    let view = queue::case_view(&db.store, first.id, None).await.unwrap();
    assert_eq!(view.history[0].kind, "opened");
    assert_eq!(view.history[0].details["payment_held"]["period"], "2026-12");

    // Nothing new: the case step does nothing, and a match run changes no case.
    assert!(
        queue::sync_death_cases(&db.store, "t", at())
            .await
            .unwrap()
            .is_none()
    );
    let again = match_and_sync(db, MatchScope::All).await;
    assert!(
        again.as_ref().is_none_or(|s| s.opened + s.updated == 0),
        "a full run of the same data changes no case: {again:?}"
    );

    // The same death from a second registration: still one case, with both
    // records as its evidence, and its history says so.
    civil_file(
        &dir,
        &format!("{OFFICE}_20260602.csv"),
        &[registration(
            &people[0],
            "R1B",
            "2026-05-20",
            &people[0].id_number,
        )],
    );
    pull_civil(db, &dir).await;
    let s = match_and_sync(db, MatchScope::Pending).await.unwrap();
    assert_eq!((s.opened, s.updated), (0, 1), "{s:?}");
    let view = queue::case_view(&db.store, first.id, None).await.unwrap();
    assert_eq!(view.evidence.len(), 2, "{:?}", view.evidence);
    let changed = view
        .history
        .iter()
        .find(|h| h.kind == "evidence_changed")
        .unwrap();
    assert_eq!(changed.details["added"].as_array().unwrap().len(), 1);
    // A payment already held is not held twice.
    assert_eq!(view.payment_changes.len(), 1);

    // A corrected registration updates the case and says it was corrected.
    civil_file(
        &dir,
        &format!("{OFFICE}_20260601_v2.csv"),
        &[registration(
            &people[0],
            "R1",
            "2026-05-21",
            &people[0].id_number,
        )],
    );
    pull_civil(db, &dir).await;
    match_and_sync(db, MatchScope::Pending).await.unwrap();
    let view = queue::case_view(&db.store, first.id, None).await.unwrap();
    let last = view
        .history
        .iter()
        .rev()
        .find(|h| h.kind == "evidence_changed")
        .unwrap();
    assert_eq!(
        last.details["corrected"].as_array().unwrap().len(),
        1,
        "{last:?}"
    );
    assert!(audit_actions(db).await.iter().any(|a| a == "cases.sync"));
}

both_backends!(tips_open_a_case_or_join_the_open_one, tips);
async fn tips(db: &TestDb) {
    let people = people();
    import(db, &people, "2026-11-01").await;
    let p = &people[4].person_no;
    let first = queue::add_tip(
        &db.store,
        p,
        "邻居反映老人已去世半年",
        Some("13900001111"),
        "clerk",
    )
    .await
    .unwrap();
    assert!(first.opened);
    let second = queue::add_tip(&db.store, p, "又一人反映", None, "clerk")
        .await
        .unwrap();
    assert_eq!((second.case_id, second.opened), (first.case_id, false));
    let case = case_of(db, p).await;
    assert_eq!((case.reason.as_str(), case.band.as_deref()), ("tip", None));
    assert_eq!(case.payment, "paid", "a tip holds nothing by itself");
    // The contact is private: only a supervisor sees it.
    let caseworker = user(db, "wang", Role::Caseworker).await;
    let supervisor = user(db, "zhao", Role::Supervisor).await;
    let seen = queue::case_view(&db.store, case.id, Some(&caseworker))
        .await
        .unwrap();
    assert!(seen.tips.iter().all(|t| t.contact.is_none()));
    let seen = queue::case_view(&db.store, case.id, Some(&supervisor))
        .await
        .unwrap();
    assert_eq!(seen.tips[0].contact.as_deref(), Some("13900001111"));
    let mut audit = Vec::new();
    vigil::audit::export_jsonl(&db.store, &mut audit)
        .await
        .unwrap();
    let audit = String::from_utf8(audit).unwrap();
    assert!(audit.contains("case.tip"));
    assert!(
        !audit.contains("13900001111"),
        "the reporter's contact never reaches the log"
    );
    // Refused: an unknown pensioner, an empty note.
    assert!(matches!(
        queue::add_tip(&db.store, "9999", "x", None, "clerk").await,
        Err(QueueError::NoPensioner(_))
    ));
    assert!(matches!(
        queue::add_tip(&db.store, p, "  ", None, "clerk").await,
        Err(QueueError::EmptyTip)
    ));
}

/// A ledger of `months` paying `fen` to each of `people`.
fn ledger(db: &TestDb, people: &[&Row], months: &[&str], fen: &str) -> PathBuf {
    let mut text = String::from("person_no,period,amount,bank_account,paid_on\n");
    for m in months {
        for p in people {
            text.push_str(&format!(
                "{},{m},{fen},{},{m}-10\n",
                p.person_no, p.bank_account
            ));
        }
    }
    write(&db.path("ledger.csv"), text)
}

async fn import_ledger(db: &TestDb, path: &Path) {
    let opts = vigil::ingest::payments::PaymentsImportOptions {
        batch_rows: 100,
        actor: "system:test".into(),
        today: day("2026-12-03"),
    };
    vigil::ingest::payments::import_payments(&db.store, path, &opts, &|_| {})
        .await
        .unwrap();
}

both_backends!(
    a_confirmed_death_terminates_from_the_death_date_and_counts_the_overpayment,
    confirmed_death
);
async fn confirmed_death(db: &TestDb) {
    let (people, _) = world(db).await;
    // The ledger covers June to September; October and November are
    // estimated from the monthly amount.
    let path = ledger(
        db,
        &[&people[0], &people[1]],
        &["2026-05", "2026-06", "2026-07", "2026-08", "2026-09"],
        "3268.50",
    );
    import_ledger(db, &path).await;
    match_and_sync(db, MatchScope::Pending).await.unwrap();
    let case = case_of(db, &people[0].person_no).await;
    let rules = CaseRules::default_rules();
    let wang = user(db, "wang", Role::Caseworker).await;
    let li = user(db, "li", Role::Reviewer).await;
    let p = queue::propose(
        &db.store,
        &rules,
        &wang,
        case.id,
        confirm("death_confirmed_by_registry", "2026-05-20"),
        at(),
    )
    .await
    .unwrap();
    assert_eq!(p.state, "proposed");
    let proposal = p.proposal.unwrap();
    // The proposer never approves their own proposal.
    let own = queue::approve(&db.store, &wang, proposal, "ok", at()).await;
    assert!(matches!(own, Err(QueueError::Refused(_))), "{own:?}");
    assert_eq!(
        case_of(db, &people[0].person_no).await.state,
        "proposed",
        "a refusal changes nothing"
    );
    let done = queue::approve(&db.store, &li, proposal, "核实无误", at())
        .await
        .unwrap();
    assert_eq!(done.state, "approved");
    // Died 2026-05-20: June to September from the ledger (4 × 3268.50),
    // October and November estimated, December not (held since 12-03).
    let months_ledger = 4 * 326_850;
    let estimated = 2 * 326_850;
    assert_eq!(done.amount_fen, Some(months_ledger + estimated));
    let view = queue::case_view(&db.store, case.id, None).await.unwrap();
    let o = view.overpayment.unwrap();
    assert_eq!(
        (o.ledger_fen, o.estimated_fen, o.status.as_str()),
        (months_ledger, estimated, "to_recover")
    );
    assert_eq!(view.payment, "terminated");
    assert_eq!(view.decision.as_deref(), Some("confirm_death"));

    // The payroll is told: the hold and the termination of this month come
    // down to one line, the termination from the death date.
    let lines = payroll::instructions(&db.store, "2026-12".parse().unwrap())
        .await
        .unwrap();
    let mine: Vec<_> = lines
        .iter()
        .filter(|l| l.person_no == people[0].person_no)
        .collect();
    assert_eq!(mine.len(), 1, "{lines:?}");
    assert_eq!(
        (
            mine[0].instruction.as_str(),
            mine[0].effective_from,
            mine[0].case_id
        ),
        ("terminate", day("2026-05-20"), case.id)
    );
    // The suspended pensioner's hold is there too; the same state gives the same file.
    assert!(
        lines
            .iter()
            .any(|l| l.person_no == people[2].person_no && l.instruction == "suspend")
    );
    assert_eq!(
        lines,
        payroll::instructions(&db.store, "2026-12".parse().unwrap())
            .await
            .unwrap()
    );

    // Recovered in two parts.
    let o = queue::record_recovery(&db.store, &wang, case.id, 500_000, day("2026-12-20"))
        .await
        .unwrap();
    assert_eq!(o.status, "to_recover");
    let o = queue::record_recovery(
        &db.store,
        &wang,
        case.id,
        months_ledger + estimated - 500_000,
        day("2027-01-05"),
    )
    .await
    .unwrap();
    assert_eq!(
        (o.status.as_str(), o.recovered_fen),
        ("recovered", months_ledger + estimated)
    );
    let actions = audit_actions(db).await;
    for a in ["case.propose", "case.approve", "case.recovery"] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
}

both_backends!(
    a_false_match_resumes_with_back_pay_and_stays_suppressed_across_a_full_match,
    false_match
);
async fn false_match(db: &TestDb) {
    let (people, _) = world(db).await;
    match_and_sync(db, MatchScope::Pending).await.unwrap();
    let case = case_of(db, &people[0].person_no).await;
    let rules = CaseRules::default_rules();
    let wang = user(db, "wang", Role::Caseworker).await;
    let li = user(db, "li", Role::Reviewer).await;
    let request = ProposalRequest {
        action: Action::FalseMatch,
        reason: "alive_verified".into(),
        note: "本人到社保窗口办理业务".into(),
        death_date: None,
    };
    // Held on 2026-12-03, resumed on 2027-02-10: December and January were
    // held back (the ledger does not cover them: estimated).
    let proposal = queue::propose(&db.store, &rules, &wang, case.id, request, at())
        .await
        .unwrap()
        .proposal
        .unwrap();
    let later = Utc.with_ymd_and_hms(2027, 2, 10, 2, 0, 0).unwrap();
    let done = queue::approve(&db.store, &li, proposal, "核实本人生存", later)
        .await
        .unwrap();
    assert_eq!(done.amount_fen, Some(2 * 326_850));
    let view = queue::case_view(&db.store, case.id, None).await.unwrap();
    assert_eq!(view.payment, "paid");
    let changes: Vec<&str> = view
        .payment_changes
        .iter()
        .map(|c| c.change.as_str())
        .collect();
    assert_eq!(changes, ["suspend", "resume", "back_pay"]);
    let lines = payroll::instructions(&db.store, "2027-02".parse().unwrap())
        .await
        .unwrap();
    let got: Vec<(&str, Option<i64>)> = lines
        .iter()
        .map(|l| (l.instruction.as_str(), l.amount_fen))
        .collect();
    assert_eq!(got, [("resume", None), ("back_pay", Some(653_700))]);

    // The pair is suppressed: a full match no longer matches it, and no new
    // case opens for it.
    let s = match_and_sync(db, MatchScope::All).await;
    let matched: Vec<_> = db
        .store
        .matches_of_person(&people[0].person_no)
        .await
        .unwrap();
    assert!(matched.is_empty(), "{matched:?}");
    assert!(s.as_ref().is_none_or(|s| s.opened == 0), "{s:?}");
    let cases = db
        .store
        .list_cases(&CaseFilter {
            person_no: Some(people[0].person_no.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].decision.as_deref(), Some("false_match"));
}

both_backends!(
    a_confirmed_death_whose_record_is_withdrawn_reopens_and_says_why,
    withdrawn
);
async fn withdrawn(db: &TestDb) {
    let (people, _) = world(db).await;
    match_and_sync(db, MatchScope::Pending).await.unwrap();
    let case = case_of(db, &people[0].person_no).await;
    let rules = CaseRules::default_rules();
    let wang = user(db, "wang", Role::Caseworker).await;
    let li = user(db, "li", Role::Reviewer).await;
    let proposal = queue::propose(
        &db.store,
        &rules,
        &wang,
        case.id,
        confirm("death_confirmed_by_registry", "2026-05-20"),
        at(),
    )
    .await
    .unwrap()
    .proposal
    .unwrap();
    queue::approve(&db.store, &li, proposal, "ok", at())
        .await
        .unwrap();
    // The source withdraws the registration (as a cancellation corrected to
    // another reason leaves death_records).
    crate::support::with_pool!(&db.store, pool => {
        sqlx::query("DELETE FROM death_records WHERE source = 'civil_affairs' AND record_key = $1")
            .bind(format!("{OFFICE}:R1"))
            .execute(pool)
            .await
            .map(|_| ())
    })
    .unwrap();
    let s = match_and_sync(db, MatchScope::Pending).await.unwrap();
    assert_eq!(s.reopened, 1, "{s:?}");
    let view = queue::case_view(&db.store, case.id, None).await.unwrap();
    assert_eq!(
        (view.state.as_str(), view.decision.as_deref()),
        ("open", None)
    );
    let reopened = view.history.iter().find(|h| h.kind == "reopened").unwrap();
    assert!(
        reopened.details["why"].as_str().unwrap().contains("R1"),
        "{reopened:?}"
    );
    // The engine never resumes by itself: the termination stands until
    // two people decide otherwise.
    assert_eq!(view.payment, "terminated");
}

both_backends!(
    every_role_may_do_what_the_rules_allow_and_nothing_else,
    roles
);
async fn roles(db: &TestDb) {
    let (people, _) = world(db).await;
    match_and_sync(db, MatchScope::Pending).await.unwrap();
    let case = case_of(db, &people[0].person_no).await;
    let rules = CaseRules::default_rules();
    let mut actors = Vec::new();
    for role in Role::ALL {
        actors.push(user(db, &format!("u-{}", role.as_str()), role).await);
    }
    let reason = |a: Action| rules.rule(a).reasons.keys().next().unwrap().clone();
    for action in [
        Action::ConfirmDeath,
        Action::FalseMatch,
        Action::Resume,
        Action::SendToVideo,
        Action::CloseDuplicate,
    ] {
        for actor in &actors {
            let request = ProposalRequest {
                action,
                reason: reason(action),
                note: "n".into(),
                death_date: (action == Action::ConfirmDeath).then(|| day("2026-05-20")),
            };
            let r = queue::propose(&db.store, &rules, actor, case.id, request, at()).await;
            let allowed = rules.rule(action).proposers.contains(&actor.role);
            match r {
                Ok(done) => {
                    assert!(allowed, "{} proposed {action}", actor.role);
                    // Only the roles the rule names approve; the others are refused.
                    let p = done.proposal.unwrap();
                    for other in actors.iter().filter(|a| a.user != actor.user) {
                        let needed = rules.rule(action).approvers.contains(&other.role);
                        if !needed {
                            let refused = queue::approve(&db.store, other, p, "n", at()).await;
                            assert!(
                                matches!(refused, Err(QueueError::Refused(_))),
                                "{} approved {action}",
                                other.role
                            );
                        }
                    }
                    queue::withdraw(&db.store, actor, p, at()).await.unwrap();
                }
                Err(QueueError::Refused(_)) => assert!(!allowed, "{} refused {action}", actor.role),
                Err(e) => panic!("{e}"),
            }
        }
    }
    // A disabled user can do nothing.
    vigil::cases::users::disable_user(&db.store, "u-caseworker", "system:test")
        .await
        .unwrap();
    let disabled =
        vigil::cases::users::authenticate(&db.store, "u-caseworker", "correct horse battery")
            .await
            .unwrap();
    let r = queue::propose(
        &db.store,
        &rules,
        &disabled,
        case.id,
        confirm("death_confirmed_by_registry", "2026-05-20"),
        at(),
    )
    .await;
    assert!(matches!(r, Err(QueueError::Refused(_))), "{r:?}");
    let view = queue::case_view(&db.store, case.id, None).await.unwrap();
    assert_eq!(view.state, "open");
    assert!(
        view.proposals
            .iter()
            .all(|p| p.status.to_string() == "withdrawn")
    );
}

both_backends!(
    writing_off_takes_a_checker_and_a_reviewer_besides_the_proposer,
    write_off
);
async fn write_off(db: &TestDb) {
    let (people, _) = world(db).await;
    match_and_sync(db, MatchScope::Pending).await.unwrap();
    let case = case_of(db, &people[0].person_no).await;
    let rules = CaseRules::default_rules();
    let wang = user(db, "wang", Role::Caseworker).await;
    let zhou = user(db, "zhou", Role::Checker).await;
    let li = user(db, "li", Role::Reviewer).await;
    let p = queue::propose(
        &db.store,
        &rules,
        &wang,
        case.id,
        confirm("death_confirmed_by_registry", "2026-05-20"),
        at(),
    )
    .await
    .unwrap()
    .proposal
    .unwrap();
    queue::approve(&db.store, &li, p, "ok", at()).await.unwrap();
    let request = ProposalRequest {
        action: Action::WriteOff,
        reason: "no_heir".into(),
        note: "无继承人".into(),
        death_date: None,
    };
    let p = queue::propose(&db.store, &rules, &wang, case.id, request, at())
        .await
        .unwrap()
        .proposal
        .unwrap();
    let half = queue::approve(&db.store, &li, p, "同意", at())
        .await
        .unwrap();
    assert!(half.outcome.is_none(), "one approval of two is not enough");
    assert_eq!(
        queue::case_view(&db.store, case.id, None)
            .await
            .unwrap()
            .overpayment
            .unwrap()
            .status,
        "to_recover"
    );
    let done = queue::approve(&db.store, &zhou, p, "复核同意", at())
        .await
        .unwrap();
    assert!(done.outcome.is_some());
    assert_eq!(
        queue::case_view(&db.store, case.id, None)
            .await
            .unwrap()
            .overpayment
            .unwrap()
            .status,
        "written_off"
    );
}

/// The real binary on a SQLite file: the queue from the command line.
fn vigil(dir: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write as _;
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(dir)
        .env_remove("VIGIL_DATABASE_URL")
        .env_remove("VIGIL_CONFIG")
        .env("VIGIL_LOG", "warn")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_queue_from_the_command_line_lists_proposes_refuses_approves_and_instructs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let people = people();
    write(&dir.join("roster.csv"), roster_text(&people));
    ok(&vigil(
        dir,
        &["roster", "import", "roster.csv", "--as-of", "2026-11-01"],
        None,
    ));
    civil_file(
        &dir.join("data/civil_affairs"),
        &format!("{OFFICE}_20260601.csv"),
        &[registration(
            &people[0],
            "R1",
            "2026-05-20",
            &people[0].id_number,
        )],
    );
    std::fs::create_dir_all(dir.join("connectors")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors/civil_affairs.toml"),
        dir.join("connectors/civil_affairs.toml"),
    )
    .unwrap();
    ok(&vigil(dir, &["pull", "civil_affairs"], None));
    let matched = ok(&vigil(dir, &["match"], None));
    assert!(matched.contains("cases: 1 opened"), "{matched}");
    ok(&vigil(
        dir,
        &["user", "add", "wang", "--role", "caseworker"],
        Some("correct horse battery\n"),
    ));
    ok(&vigil(
        dir,
        &["user", "add", "li", "--role", "reviewer"],
        Some("correct horse battery\n"),
    ));

    let list = ok(&vigil(dir, &["cases", "list", "--band", "auto"], None));
    let mut lines = list.lines();
    assert_eq!(
        lines.next(),
        Some("case_id,person_no,reason,band,state,payment,opened_at")
    );
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        &row[..6],
        [
            "1",
            people[0].person_no.as_str(),
            "death_match",
            "auto",
            "open",
            "suspended"
        ]
    );
    let json = ok(&vigil(
        dir,
        &["cases", "list", "--format", "json", "--state", "approved"],
        None,
    ));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        serde_json::json!([])
    );

    let proposed = ok(&vigil(
        dir,
        &[
            "case",
            "propose",
            "1",
            "--action",
            "confirm_death",
            "--reason",
            "death_confirmed_by_registry",
            "--note",
            "民政登记一致",
            "--user",
            "wang",
        ],
        Some("correct horse battery\n"),
    ));
    let proposal = proposed.split_whitespace().last().unwrap().to_string();
    assert!(proposal.parse::<i64>().is_ok(), "{proposed}");
    // Refused: the proposer approving, a wrong password; nothing changes.
    let own = vigil(
        dir,
        &[
            "case", "approve", &proposal, "--note", "ok", "--user", "wang",
        ],
        Some("correct horse battery\n"),
    );
    assert!(!own.status.success());
    assert!(
        String::from_utf8_lossy(&own.stderr).contains("two different people"),
        "{own:?}"
    );
    let wrong = vigil(
        dir,
        &["case", "approve", &proposal, "--note", "ok", "--user", "li"],
        Some("wrong password\n"),
    );
    assert!(!wrong.status.success());
    let approved = ok(&vigil(
        dir,
        &[
            "case", "approve", &proposal, "--note", "核实", "--user", "li",
        ],
        Some("correct horse battery\n"),
    ));
    assert!(
        approved.contains("pension terminated from 2026-05-20"),
        "{approved}"
    );
    assert!(approved.contains("overpayment to recover"), "{approved}");

    let period = vigil::cases::money::Period::of(queue::local_day(Utc::now())).to_string();
    ok(&vigil(
        dir,
        &[
            "payments",
            "instructions",
            "--period",
            &period,
            "--out",
            "instructions.csv",
        ],
        None,
    ));
    let text = std::fs::read_to_string(dir.join("instructions.csv")).unwrap();
    assert_eq!(
        text,
        format!(
            "person_no,instruction,effective_from,amount_fen,case_id\n{},terminate,2026-05-20,,1\n",
            people[0].person_no
        )
    );
    let shown = ok(&vigil(dir, &["case", "show", "1"], None));
    assert!(
        shown.contains("confirm_death") && shown.contains("overpayment since 2026-05-20"),
        "{shown}"
    );
    assert!(
        !shown.contains(&people[0].id_number),
        "a full ID number never shows"
    );
    ok(&vigil(
        dir,
        &["audit", "export", "--out", "audit.jsonl"],
        None,
    ));
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    for action in ["cases.sync", "case.propose", "case.approve"] {
        assert!(audit.contains(action), "{action}");
    }
    assert!(!audit.contains("correct horse battery"));
}
