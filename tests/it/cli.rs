//! The command line as a user runs it: the real binary, a real SQLite file.

use std::process::Command;

use crate::support::{person, roster_text, write};

fn vigil(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(dir)
        .env_remove("VIGIL_DATABASE_URL")
        .env_remove("VIGIL_CONFIG")
        .env("VIGIL_LOG", "warn");
    c
}

#[test]
fn config_show_masks_the_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = vigil(dir.path())
        .args([
            "--database-url",
            "postgres://vigil:hunter2@db.internal/vigil",
            "config",
            "show",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("postgres://vigil:****@db.internal/vigil"),
        "{text}"
    );
    assert!(!text.contains("hunter2"));
}

#[test]
fn settings_file_and_environment_layer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("vigil.toml"),
        "[import]\nbatch_rows = 777\n[identity]\nelsewhere_level = \"city\"\n",
    );
    let out = vigil(dir.path()).args(["config", "show"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("batch_rows = 777") && text.contains("elsewhere_level = \"city\""),
        "{text}"
    );
    assert!(text.contains("sqlite://vigil.db"), "{text}");
    let out = vigil(dir.path())
        .env("VIGIL__IMPORT__BATCH_ROWS", "555")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("batch_rows = 555"));
}

#[test]
fn import_then_verify_on_the_default_sqlite_file_piped_output_has_no_progress_bar() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir.path().join("roster.csv"),
        roster_text(&[person(1), person(2)]),
    );
    let out = vigil(dir.path())
        .args([
            "roster",
            "import",
            file.to_str().unwrap(),
            "--as-of",
            "2026-11-01",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("inserted              2"), "{stdout}");
    assert!(
        !stderr.contains("importing ["),
        "progress bar drawn into a pipe: {stderr}"
    );
    assert!(
        dir.path().join("vigil.db").exists(),
        "default database is sqlite://vigil.db"
    );

    let out = vigil(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 entries verified"));

    let out = vigil(dir.path()).args(["runs"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("roster_import"));
}

#[test]
fn a_refused_file_exits_non_zero_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir.path().join("nocols.csv"), "person_no,name\n1,王五\n");
    let out = vigil(dir.path())
        .args(["roster", "import", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nocols.csv") && stderr.contains("id_number"),
        "{stderr}"
    );
}

#[test]
fn the_demo_runs_the_whole_pipeline_and_matches_export_with_the_exact_header() {
    let dir = tempfile::tempdir().unwrap();
    let out = vigil(dir.path())
        .args([
            "demo",
            "--pensioners",
            "3000",
            "--db",
            "demo.db",
            "--data-dir",
            "demo-data",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "importing the roster",
        "next month's export",
        "pulling",
        "importing evidence of life",
        "matching",
        "evidence of life after the death date held",
        "intact",
    ] {
        assert!(stdout.contains(step), "demo output lacks {step}: {stdout}");
    }
    let out = vigil(dir.path())
        .args([
            "--database-url",
            "sqlite://demo.db",
            "matches",
            "export",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("source,record_key,person_no,score,band"));
    let first = lines.next().expect("at least one match");
    assert_eq!(first.split(',').count(), 5, "{first}");
    assert!(
        first.ends_with(",auto") || first.ends_with(",review"),
        "{first}"
    );
    // The same export judged by rules of another version is refused, and
    // says how to mend it.
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/matching.toml"),
    )
    .unwrap();
    let other = shipped.replacen("version = \"", "version = \"other-", 1);
    assert_ne!(other, shipped);
    let other = write(&dir.path().join("other.toml"), other);
    for command in [
        &["matches", "export"][..],
        &["eval", "--truth", "demo-data/truth.csv"],
    ] {
        let out = vigil(dir.path())
            .args(["--database-url", "sqlite://demo.db"])
            .args(command)
            .args(["--rules", other.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command:?}");
        assert!(
            stderr.contains("other-") && stderr.contains("--rules FILE"),
            "{command:?}: {stderr}"
        );
    }
    let key = first.split(',').nth(1).unwrap();
    let out = vigil(dir.path())
        .args([
            "--database-url",
            "sqlite://demo.db",
            "match",
            "explain",
            key,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("final score"),
        "{text}"
    );
}

#[test]
fn a_plain_run_logs_only_warnings_and_v_shows_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir.path().join("roster.csv"),
        roster_text(&[person(1), person(2)]),
    );
    let run = |extra: &[&str]| {
        let out = vigil(dir.path())
            .env_remove("VIGIL_LOG")
            .args(extra)
            .args(["match"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let out = vigil(dir.path())
        .args(["roster", "import", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let plain = run(&[]);
    assert!(!plain.contains("INFO"), "{plain}");
    let verbose = run(&["-v"]);
    assert!(verbose.contains("INFO"), "{verbose}");
    assert!(!verbose.contains("DEBUG"), "{verbose}");
    // Piped, the log carries no colour codes.
    assert!(!verbose.contains('\x1b'), "{verbose:?}");
    // VIGIL_LOG wins over -v.
    let out = vigil(dir.path()).args(["-v", "match"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("INFO"));
}
