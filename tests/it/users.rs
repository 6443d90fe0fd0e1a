//! Users and roles (issue 19 item 5) and the audit export, on both
//! backends: through the library, and through the real binary.

use std::process::{Command, Output, Stdio};

use vigil::audit;
use vigil::cases::Role;
use vigil::cases::users::{
    AuthError, MIN_PASSWORD_CHARS, UserError, add_user, authenticate, disable_user, enable_user,
    list_users,
};

use crate::both_backends;
use crate::support::{TestDb, with_pool};

const BY: &str = "system:tester";

/// Every audit entry, in order.
async fn audit_entries(db: &TestDb) -> Vec<audit::AuditEntry> {
    with_pool!(&db.store, pool => {
        sqlx::query_as::<_, audit::AuditEntry>(
            "SELECT seq, at, actor, action, subject, details, prev_hash, hash \
             FROM audit_log ORDER BY seq",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    })
}

both_backends!(
    users_are_added_listed_by_name_disabled_and_enabled,
    add_list_disable_enable
);
async fn add_list_disable_enable(db: &TestDb) {
    let s = &db.store;
    add_user(s, "zhao", Role::Checker, "zhao-password", BY)
        .await
        .unwrap();
    let li = add_user(s, "li", Role::Caseworker, "li-password", BY)
        .await
        .unwrap();
    assert_eq!(
        (li.name.as_str(), li.role, li.enabled),
        ("li", Role::Caseworker, true)
    );
    add_user(s, "wang", Role::Reviewer, "wang-password", BY)
        .await
        .unwrap();

    let listed: Vec<_> = list_users(s)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.name, u.role, u.enabled))
        .collect();
    assert_eq!(
        listed,
        [
            ("li".to_string(), Role::Caseworker, true),
            ("wang".to_string(), Role::Reviewer, true),
            ("zhao".to_string(), Role::Checker, true),
        ]
    );

    let (wang, changed) = disable_user(s, "wang", BY).await.unwrap();
    assert!(changed && !wang.enabled, "{wang:?}");
    let (_, changed) = disable_user(s, "wang", BY).await.unwrap();
    assert!(!changed, "disabling a disabled user changes nothing");
    let enabled: Vec<_> = list_users(s)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.name, u.enabled))
        .collect();
    assert_eq!(
        enabled,
        [
            ("li".to_string(), true),
            ("wang".to_string(), false),
            ("zhao".to_string(), true),
        ]
    );

    let (wang, changed) = enable_user(s, "wang", BY).await.unwrap();
    assert!(changed && wang.enabled, "{wang:?}");
    assert!(wang.changed_at > wang.created_at, "{wang:?}");

    let missing = disable_user(s, "nobody", BY).await.unwrap_err();
    assert!(matches!(missing, UserError::NoSuchUser(_)), "{missing}");
    let missing = enable_user(s, "nobody", BY).await.unwrap_err();
    assert!(
        missing.to_string().contains("no user named nobody"),
        "{missing}"
    );
}

both_backends!(a_second_user_of_the_same_name_is_refused, duplicate);
async fn duplicate(db: &TestDb) {
    let s = &db.store;
    add_user(s, "li", Role::Caseworker, "first-password", BY)
        .await
        .unwrap();
    let err = add_user(s, "li", Role::Supervisor, "second-password", BY)
        .await
        .unwrap_err();
    assert!(matches!(err, UserError::Duplicate(_)), "{err}");
    assert!(err.to_string().contains("already a user named li"), "{err}");

    // The first one stands: its role and its password.
    let all = list_users(s).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].role, Role::Caseworker);
    authenticate(s, "li", "first-password").await.unwrap();
    assert!(authenticate(s, "li", "second-password").await.is_err());
    assert_eq!(
        audit_entries(db).await.len(),
        1,
        "only the first add is audited"
    );
}

both_backends!(
    short_passwords_and_blank_names_are_refused_and_store_nothing,
    refused_inputs
);
async fn refused_inputs(db: &TestDb) {
    let s = &db.store;
    assert_eq!(MIN_PASSWORD_CHARS, 8);
    let err = add_user(s, "li", Role::Caseworker, "1234567", BY)
        .await
        .unwrap_err();
    assert!(matches!(err, UserError::PasswordTooShort), "{err}");
    assert!(err.to_string().contains("at least 8 characters"), "{err}");
    // Characters are counted, not bytes: seven Chinese characters are 21
    // bytes and still too short; eight are enough.
    let err = add_user(s, "li", Role::Caseworker, "一二三四五六七", BY)
        .await
        .unwrap_err();
    assert!(matches!(err, UserError::PasswordTooShort), "{err}");
    for blank in ["", "   ", "\t"] {
        let err = add_user(s, blank, Role::Caseworker, "long enough", BY)
            .await
            .unwrap_err();
        assert!(matches!(err, UserError::BlankName), "{blank:?}: {err}");
    }
    let err = add_user(s, " li", Role::Caseworker, "long enough", BY)
        .await
        .unwrap_err();
    assert!(matches!(err, UserError::InvalidName(_)), "{err}");

    assert!(list_users(s).await.unwrap().is_empty());
    assert!(
        audit_entries(db).await.is_empty(),
        "a refused add is not audited"
    );

    add_user(s, "li", Role::Caseworker, "一二三四五六七八", BY)
        .await
        .unwrap();
    authenticate(s, "li", "一二三四五六七八").await.unwrap();
}

both_backends!(
    authentication_gives_the_actor_and_one_answer_for_unknown_name_or_wrong_password,
    authentication
);
async fn authentication(db: &TestDb) {
    let s = &db.store;
    add_user(s, "wang", Role::Reviewer, "correct horse", BY)
        .await
        .unwrap();

    let actor = authenticate(s, "wang", "correct horse").await.unwrap();
    assert_eq!(actor, vigil::cases::Actor::new("wang", Role::Reviewer));

    let wrong = authenticate(s, "wang", "correct horsE").await.unwrap_err();
    let unknown = authenticate(s, "nobody", "correct horse")
        .await
        .unwrap_err();
    let empty = authenticate(s, "wang", "").await.unwrap_err();
    for e in [&wrong, &unknown, &empty] {
        assert!(matches!(e, AuthError::Rejected), "{e}");
        assert_eq!(e.to_string(), "unknown user or wrong password");
    }
    // Not the name with a space, nor in other case: names are exact.
    assert!(authenticate(s, "Wang", "correct horse").await.is_err());
}

both_backends!(
    a_disabled_user_authenticates_as_a_disabled_actor_the_machine_refuses,
    disabled_actor
);
async fn disabled_actor(db: &TestDb) {
    let s = &db.store;
    add_user(s, "li", Role::Caseworker, "li-password", BY)
        .await
        .unwrap();
    disable_user(s, "li", BY).await.unwrap();
    let actor = authenticate(s, "li", "li-password").await.unwrap();
    assert_eq!(
        (actor.user.as_str(), actor.role, actor.enabled),
        ("li", Role::Caseworker, false)
    );
    // The case machine refuses them with its own message.
    let refused = vigil::cases::propose(
        &vigil::cases::Case::new(),
        &vigil::cases::CaseRules::default_rules(),
        &actor,
        vigil::cases::ProposalRequest {
            action: vigil::cases::Action::SendToVideo,
            reason: "any".to_string(),
            note: "a note".to_string(),
            death_date: None,
        },
        vigil::cases::ProposalId(1),
        chrono::Utc::now(),
    )
    .unwrap_err();
    assert!(
        matches!(refused, vigil::cases::Refusal::UserDisabled { ref user } if user == "li"),
        "{refused}"
    );
    // …and a wrong password is still refused the same way.
    let err = authenticate(s, "li", "wrong-password").await.unwrap_err();
    assert_eq!(err.to_string(), "unknown user or wrong password");

    enable_user(s, "li", BY).await.unwrap();
    assert!(authenticate(s, "li", "li-password").await.unwrap().enabled);
}

both_backends!(
    every_user_change_is_audited_without_the_password_or_its_hash,
    audited_changes
);
async fn audited_changes(db: &TestDb) {
    let s = &db.store;
    let password = "tell-no-one-42";
    add_user(s, "zhao", Role::Supervisor, password, BY)
        .await
        .unwrap();
    disable_user(s, "zhao", "system:other").await.unwrap();
    disable_user(s, "zhao", BY).await.unwrap(); // no change, no entry
    enable_user(s, "zhao", BY).await.unwrap();

    let stored_hash = s.get_user("zhao").await.unwrap().unwrap().password_hash;
    assert!(stored_hash.starts_with("$argon2id$"), "{stored_hash}");
    assert!(!stored_hash.contains(password));

    let entries = audit_entries(db).await;
    let seen: Vec<_> = entries
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.subject.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (BY, "user.add", "zhao"),
            ("system:other", "user.disable", "zhao"),
            (BY, "user.enable", "zhao"),
        ]
    );
    let details: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(
        details[0],
        serde_json::json!({"before": null, "after": {"role": "supervisor", "enabled": true}})
    );
    assert_eq!(
        details[1],
        serde_json::json!({
            "before": {"role": "supervisor", "enabled": true},
            "after": {"role": "supervisor", "enabled": false},
        })
    );
    assert_eq!(details[2]["after"]["enabled"], true);
    // The salt and the hash proper, too: no part of the PHC string leaks.
    let hash_parts: Vec<&str> = stored_hash.rsplit('$').take(2).collect();
    for e in &entries {
        let text = format!("{e:?}");
        assert!(!text.contains(password), "{text}");
        for part in &hash_parts {
            assert!(!text.contains(part), "{text}");
        }
    }
    let report = audit::verify(s).await.unwrap();
    assert_eq!((report.entries, report.first_broken), (3, None));
    // Debug of a stored user hides its hash.
    let debug = format!("{:?}", s.get_user("zhao").await.unwrap().unwrap());
    assert!(
        !debug.contains(&stored_hash) && debug.contains("<hidden>"),
        "{debug}"
    );
}

// ---- through the real binary ----

fn vigil(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(db.dir.path())
        .env_remove("VIGIL_CONFIG")
        .env("VIGIL_DATABASE_URL", &db.url)
        .env("VIGIL_ACTOR", "tester")
        .env("VIGIL_LOG", "warn")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

both_backends!(
    the_user_commands_take_the_password_from_stdin_and_list_and_disable,
    cli_users
);
async fn cli_users(db: &TestDb) {
    let out = vigil(
        db,
        &["user", "add", "li", "--role", "caseworker"],
        Some("a pass phrase\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("user li added as caseworker"));
    // The line ending is not part of the password; the spaces are.
    let actor = authenticate(&db.store, "li", "a pass phrase")
        .await
        .unwrap();
    assert_eq!((actor.role, actor.enabled), (Role::Caseworker, true));

    let out = vigil(
        db,
        &["user", "add", "wang", "--role", "reviewer"],
        Some("short\n"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("too short"),
        "{}",
        text(&out.stderr)
    );

    let out = vigil(
        db,
        &["user", "add", "wang", "--role", "boss"],
        Some("long enough\n"),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for role in Role::ALL {
        assert!(err.contains(role.as_str()), "{err}");
    }

    let out = vigil(db, &["user", "add", "wang", "--role", "reviewer"], None);
    assert!(!out.status.success(), "no password, no user");
    assert!(text(&out.stderr).contains("standard input is empty"));

    let out = vigil(
        db,
        &["user", "add", "wang", "--role", "reviewer"],
        Some("long enough"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = vigil(db, &["user", "disable", "wang"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("user wang disabled"));

    let out = vigil(db, &["user", "list"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    let lines: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert_eq!(lines[0], ["name", "role", "enabled", "created_at"]);
    assert_eq!(lines[1][..3], ["li", "caseworker", "yes"], "{listed}");
    assert_eq!(lines[2][..3], ["wang", "reviewer", "no"], "{listed}");
    assert!(!listed.contains("argon2"), "{listed}");

    let out = vigil(db, &["user", "enable", "nobody"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no user named nobody"));

    let audited: Vec<_> = audit_entries(db)
        .await
        .into_iter()
        .map(|e| (e.actor, e.action))
        .collect();
    let by = "system:tester".to_string();
    assert_eq!(
        audited,
        [
            (by.clone(), "user.add".to_string()),
            (by.clone(), "user.add".to_string()),
            (by, "user.disable".to_string()),
        ]
    );
}

both_backends!(
    audit_export_writes_one_json_object_per_entry_that_rechecks_the_chain,
    cli_audit_export
);
async fn cli_audit_export(db: &TestDb) {
    let s = &db.store;
    add_user(s, "li", Role::Caseworker, "li-password", BY)
        .await
        .unwrap();
    disable_user(s, "li", BY).await.unwrap();
    audit::append(
        s,
        BY,
        "test.nested",
        "引号\"与换行\n",
        &serde_json::json!({"list": [1, 2], "name": "王秀英", "n": null}),
    )
    .await
    .unwrap();
    let stored = audit_entries(db).await;
    assert_eq!(stored.len(), 3);

    let out_file = db.path("export/audit.jsonl");
    std::fs::create_dir_all(out_file.parent().unwrap()).unwrap();
    let out = vigil(
        db,
        &["audit", "export", "--out", out_file.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!(
            "3 audit entries written to {}",
            out_file.display()
        )),
        "{}",
        text(&out.stdout)
    );

    let exported = std::fs::read_to_string(&out_file).unwrap();
    assert!(!exported.contains("li-password"));
    let lines: Vec<&str> = exported.lines().collect();
    assert_eq!(lines.len(), stored.len(), "{exported}");
    let mut prev_hash = audit::GENESIS_HASH.to_string();
    for (line, entry) in lines.iter().zip(&stored) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "action",
                "actor",
                "at",
                "details",
                "hash",
                "prev_hash",
                "seq",
                "subject"
            ]
        );
        assert_eq!(v["seq"], entry.seq);
        assert_eq!(v["at"], entry.at.as_str());
        assert_eq!(v["actor"], entry.actor.as_str());
        assert_eq!(v["action"], entry.action.as_str());
        assert_eq!(v["subject"], entry.subject.as_str());
        assert!(
            v["details"].is_object(),
            "details is JSON, not a string: {line}"
        );
        assert_eq!(
            v["details"],
            serde_json::from_str::<serde_json::Value>(&entry.details).unwrap()
        );
        // The export alone rechecks the chain.
        assert_eq!(v["prev_hash"], prev_hash.as_str());
        let recomputed = audit::entry_hash(
            &prev_hash,
            v["seq"].as_i64().unwrap(),
            v["at"].as_str().unwrap(),
            v["actor"].as_str().unwrap(),
            v["action"].as_str().unwrap(),
            v["subject"].as_str().unwrap(),
            &v["details"].to_string(),
        );
        assert_eq!(v["hash"], recomputed.as_str());
        prev_hash = recomputed;
    }
    let seqs: Vec<i64> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3]);

    // `--out -` (or none) writes the same lines to standard output.
    let out = vigil(db, &["audit", "export", "--out", "-"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), exported);
    let out = vigil(db, &["audit", "export"], None);
    assert_eq!(text(&out.stdout), exported);

    // No temporary file is left beside the export.
    let names: Vec<_> = std::fs::read_dir(out_file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["audit.jsonl"]);
}

both_backends!(an_empty_audit_log_exports_an_empty_file, empty_export);
async fn empty_export(db: &TestDb) {
    let mut buf = Vec::new();
    let n = audit::export_jsonl(&db.store, &mut buf).await.unwrap();
    assert_eq!((n, buf.len()), (0, 0));
    add_user(&db.store, "li", Role::Auditor, "li-password", BY)
        .await
        .unwrap();
    let n = audit::export_jsonl(&db.store, &mut buf).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
}
