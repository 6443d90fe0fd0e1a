//! The generator's contract, checked on real files in a temporary directory:
//! reproducible bytes, valid identities, the shapes of spec/sources.md, and a
//! truth file that accounts for every death-source record and nothing else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use encoding_rs::GBK;

use super::*;
use crate::identity::id::check_char;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
}

fn run(n: u64, seed: u64, dir: &Path) -> GenerateSummary {
    let mut opts = GenerateOptions::new(n, seed, dir.to_path_buf(), as_of());
    opts.death_rate = 0.03;
    generate(&opts, &|_| {}).unwrap()
}

/// Every file under `dir`, by relative path, with its bytes.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&path).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(String::from).collect();
    (header, r.records().map(Result::unwrap).collect())
}

fn gbk_text(bytes: &[u8]) -> String {
    GBK.decode_without_bom_handling_and_without_replacement(bytes)
        .expect("civil-affairs file is valid GBK")
        .into_owned()
}

#[test]
fn same_seed_gives_the_same_bytes_whatever_the_thread_count() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    run(70_000, 42, a.path());
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    one_thread.install(|| run(70_000, 42, b.path()));
    run(70_000, 43, c.path());
    let (ca, cb, cc) = (contents(a.path()), contents(b.path()), contents(c.path()));
    assert_eq!(ca.keys().collect::<Vec<_>>(), cb.keys().collect::<Vec<_>>());
    for (path, bytes) in &ca {
        assert!(
            bytes == &cb[path],
            "{} differs between runs",
            path.display()
        );
    }
    assert_ne!(ca[Path::new(ROSTER_FILE)], cc[Path::new(ROSTER_FILE)]);
    assert_ne!(ca[Path::new(TRUTH_FILE)], cc[Path::new(TRUTH_FILE)]);
}

#[test]
fn roster_identities_are_valid_and_agree_with_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(20_000, 7, dir.path());
    let (header, rows) = csv_rows(&dir.path().join(ROSTER_FILE));
    assert_eq!(header.join(","), roster::ROSTER_HEADER.trim_end());
    assert_eq!(rows.len() as u64, summary.pensioners);
    let mut person_nos = BTreeSet::new();
    let mut ids = BTreeSet::new();
    let (mut elsewhere, mut legacy) = (0, 0);
    for row in &rows {
        let (no, id, sex, birth) = (&row[0], &row[2], &row[3], &row[4]);
        assert_eq!(no.len(), 16);
        assert!(
            person_nos.insert(no.to_string()),
            "duplicate person_no {no}"
        );
        let birth_digits = birth.replace('-', "");
        let b = id.as_bytes();
        let (born, seq_last) = match b.len() {
            18 => {
                assert_eq!(check_char(&b[..17]), b[17], "bad check char in {id}");
                (id[6..14].to_string(), b[16])
            }
            15 => {
                legacy += 1;
                (format!("19{}", &id[6..12]), b[14])
            }
            n => panic!("ID of length {n}: {id}"),
        };
        assert_eq!(born, birth_digits, "{id} vs {birth}");
        let male = (seq_last - b'0') % 2 == 1;
        assert_eq!(sex, if male { "1" } else { "2" }, "{id}");
        assert!(
            ids.insert(born + &id[..6] + &id[id.len() - 4..id.len() - 1]),
            "duplicate ID {id}"
        );
        let age = crate::generate::roster::age_on(
            NaiveDate::parse_from_str(birth, "%Y-%m-%d").unwrap(),
            as_of(),
        );
        assert!((55..=105).contains(&age), "age {age}");
        if row[5][..2] != row[6][..2] {
            elsewhere += 1;
        }
        assert!(row[9].len() == 19 && row[9].starts_with("62"));
        let phone = &row[13];
        assert!(
            phone.is_empty() || (phone.len() == 11 && ["13", "15", "18"].contains(&&phone[..2]))
        );
    }
    let share = f64::from(elsewhere) / rows.len() as f64;
    assert!(
        (0.065..0.095).contains(&share),
        "residence elsewhere {share}"
    );
    assert!(legacy > 0 && legacy < 200, "legacy 15-digit IDs: {legacy}");
}

/// (source, record key) of every record in the three death sources.
fn source_keys(dir: &Path) -> BTreeSet<(String, String)> {
    let mut keys = BTreeSet::new();
    let ps = fs::read_to_string(dir.join(PUBLIC_SECURITY_FILE)).unwrap();
    for line in ps.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let fields: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(fields.len(), 9);
        keys.insert((
            "public_security".into(),
            v["record_id"].as_str().unwrap().to_string(),
        ));
    }
    for entry in fs::read_dir(dir.join(CIVIL_AFFAIRS_DIR)).unwrap() {
        let text = gbk_text(&fs::read(entry.unwrap().path()).unwrap());
        let mut r = csv::Reader::from_reader(text.as_bytes());
        for row in r.records() {
            let row = row.unwrap();
            assert_eq!(row.len(), 8);
            keys.insert(("civil_affairs".into(), format!("{}:{}", &row[6], &row[7])));
        }
    }
    let fh = dir.join(FUNERAL_DIR);
    let index: Vec<String> =
        serde_json::from_slice(&fs::read(fh.join("index.json")).unwrap()).unwrap();
    for rel in index {
        for line in fs::read_to_string(fh.join(rel)).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["age"].is_i64());
            keys.insert((
                "funeral".into(),
                format!(
                    "{}:{}",
                    v["home_code"].as_str().unwrap(),
                    v["serial"].as_str().unwrap()
                ),
            ));
        }
    }
    keys
}

#[test]
fn every_truth_row_names_a_source_record_and_every_record_has_one() {
    let dir = tempfile::tempdir().unwrap();
    run(20_000, 11, dir.path());
    let (header, rows) = csv_rows(&dir.path().join(TRUTH_FILE));
    assert_eq!(
        header.join(","),
        "source,record_key,person_no,kind,corruptions"
    );
    let truth: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r[0].to_string(), r[1].to_string()))
        .collect();
    assert_eq!(
        truth.len(),
        rows.len(),
        "a record key appears twice in truth.csv"
    );
    assert_eq!(truth, source_keys(dir.path()));

    let kinds: BTreeSet<&str> = rows.iter().map(|r| &r[3]).collect();
    for k in [
        "pensioner",
        "outsider",
        "doppelganger",
        "spouse",
        "informant",
        "non_death",
    ] {
        assert!(kinds.contains(k), "no {k} records");
    }
    let (_, roster) = csv_rows(&dir.path().join(ROSTER_FILE));
    let by_no: HashMap<&str, &csv::StringRecord> = roster.iter().map(|r| (&r[0], r)).collect();
    for r in &rows {
        match &r[3] {
            "pensioner" | "false_death" => assert_eq!(&by_no[&r[2]][11], "active"),
            "non_death" => {}
            _ => assert!(r[2].is_empty(), "outsider with a person_no"),
        }
    }
}

#[test]
fn dead_pensioners_are_still_active_and_paid() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(20_000, 5, dir.path());
    let (_, truth) = csv_rows(&dir.path().join(TRUTH_FILE));
    let dead: BTreeSet<String> = truth
        .iter()
        .filter(|r| &r[3] == "pensioner")
        .map(|r| r[2].to_string())
        .collect();
    assert_eq!(dead.len() as u64, summary.deaths);
    let (_, payments) = csv_rows(&dir.path().join(PAYMENTS_FILE));
    let paid: BTreeSet<&str> = payments.iter().map(|r| &r[0]).collect();
    assert!(dead.iter().all(|no| paid.contains(no.as_str())));
    assert!(
        payments
            .iter()
            .all(|r| &r[1] == "2026-10" && &r[4] == "2026-10-15")
    );
}

#[test]
fn civil_affairs_files_are_gbk_with_all_three_date_styles() {
    let dir = tempfile::tempdir().unwrap();
    run(20_000, 3, dir.path());
    let (mut dashed, mut slashed, mut chinese, mut v2) = (0, 0, 0, 0);
    for entry in fs::read_dir(dir.path().join(CIVIL_AFFAIRS_DIR)).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.len() == 22 || name.len() == 25, "{name}");
        v2 += usize::from(name.ends_with("_v2.csv"));
        let text = gbk_text(&fs::read(&path).unwrap());
        assert!(
            text.starts_with(
                "姓名,身份证号,性别,出生日期,死亡日期,死亡地点,登记机关代码,登记编号\n"
            )
        );
        let mut r = csv::Reader::from_reader(text.as_bytes());
        for row in r.records() {
            let row = row.unwrap();
            assert!(&row[2] == "男" || &row[2] == "女");
            assert_eq!(&row[6], &name[..9]);
            let death = &row[4];
            if death.contains('年') {
                chinese += 1;
            } else if death.contains('/') {
                slashed += 1;
            } else {
                assert_eq!(death.len(), 10);
                dashed += 1;
            }
        }
    }
    assert!(
        dashed > 0 && slashed > 0 && chinese > 0,
        "{dashed} {slashed} {chinese}"
    );
    assert!(v2 > 0, "no correction files");
}

#[test]
fn funeral_index_lists_exactly_the_files_present() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(20_000, 9, dir.path());
    let fh = dir.path().join(FUNERAL_DIR);
    let index: BTreeSet<String> =
        serde_json::from_slice::<Vec<String>>(&fs::read(fh.join("index.json")).unwrap())
            .unwrap()
            .into_iter()
            .collect();
    let present: BTreeSet<String> = contents(&fh)
        .into_keys()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p != "index.json")
        .collect();
    assert_eq!(index, present);
    assert_eq!(index.len() as u64, summary.funeral_files);
    assert!(
        index
            .iter()
            .all(|p| p.starts_with("FH") && p.ends_with(".jsonl"))
    );
}

#[test]
fn informant_records_carry_a_living_relatives_id() {
    let dir = tempfile::tempdir().unwrap();
    run(20_000, 13, dir.path());
    let (_, roster) = csv_rows(&dir.path().join(ROSTER_FILE));
    let by_id: HashMap<&str, &csv::StringRecord> = roster.iter().map(|r| (&r[2], r)).collect();
    let fh = dir.path().join(FUNERAL_DIR);
    let (_, truth) = csv_rows(&dir.path().join(TRUTH_FILE));
    let informants: BTreeSet<String> = truth
        .iter()
        .filter(|r| &r[0] == "funeral" && &r[3] == "informant")
        .map(|r| r[1].to_string())
        .collect();
    assert!(!informants.is_empty());
    let mut seen = 0;
    for entry in contents(&fh) {
        if entry.0.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        for line in String::from_utf8(entry.1).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let key = format!(
                "{}:{}",
                v["home_code"].as_str().unwrap(),
                v["serial"].as_str().unwrap()
            );
            if !informants.contains(&key) {
                continue;
            }
            let id: String = v["id_no"]
                .as_str()
                .unwrap()
                .chars()
                .filter(|c| !matches!(c, ' ' | '-'))
                .map(|c| match c {
                    '０'..='９' | 'Ｘ' | 'ｘ' => {
                        char::from_u32(c as u32 - 0xFF00 + 0x20).unwrap()
                    }
                    c => c,
                })
                .collect::<String>()
                .to_uppercase();
            let pensioner = by_id.get(id.as_str()).expect("informant ID is a roster ID");
            let name = v["deceased_name"].as_str().unwrap();
            assert_ne!(&pensioner[1], name);
            seen += 1;
        }
    }
    assert_eq!(seen, informants.len());
}

/// A civil-affairs date in any of its three styles.
fn civil_date(s: &str) -> NaiveDate {
    let norm = s.replace(['年', '月', '/'], "-").replace('日', "");
    NaiveDate::parse_from_str(&norm, "%Y-%m-%d").unwrap()
}

#[test]
fn false_deaths_have_proof_of_life_after_the_reported_death() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = GenerateOptions::new(40_000, 21, dir.path().to_path_buf(), as_of());
    opts.death_rate = 0.2;
    let summary = generate(&opts, &|_| {}).unwrap();
    assert!(summary.false_deaths > 0);
    let (_, truth) = csv_rows(&dir.path().join(TRUTH_FILE));
    let false_keys: HashMap<String, String> = truth
        .iter()
        .filter(|r| &r[3] == "false_death")
        .map(|r| (r[1].to_string(), r[2].to_string()))
        .collect();
    assert_eq!(false_keys.len() as u64, summary.false_deaths);
    // The reported death date of each false death, by person number.
    let mut reported: HashMap<String, NaiveDate> = HashMap::new();
    for (path, bytes) in contents(dir.path()) {
        let p = path.to_string_lossy();
        if p.starts_with(CIVIL_AFFAIRS_DIR) {
            let text = gbk_text(&bytes);
            for row in csv::Reader::from_reader(text.as_bytes()).records() {
                let row = row.unwrap();
                if let Some(no) = false_keys.get(&format!("{}:{}", &row[6], &row[7])) {
                    reported.insert(no.clone(), civil_date(&row[4]));
                }
            }
        } else if p.ends_with(".jsonl") && p.starts_with("funeral") {
            for line in String::from_utf8(bytes).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let key = format!(
                    "{}:{}",
                    v["home_code"].as_str().unwrap(),
                    v["serial"].as_str().unwrap()
                );
                if let Some(no) = false_keys.get(&key) {
                    reported.insert(
                        no.clone(),
                        v["death_date"].as_str().unwrap().parse().unwrap(),
                    );
                }
            }
        }
    }
    assert_eq!(reported.len(), false_keys.len());
    let (_, roster) = csv_rows(&dir.path().join(ROSTER_FILE));
    let (_, evidence) = csv_rows(&dir.path().join(EVIDENCE_FILE));
    for (no, died) in reported {
        let person = roster.iter().find(|r| r[0] == *no).unwrap();
        let id = &person[2];
        let later = evidence
            .iter()
            .filter(|e| id.len() == 18 && &e[0] == id)
            .any(|e| e[2].parse::<NaiveDate>().unwrap() > died);
        assert!(
            later || id.len() == 15,
            "no proof of life after {died} for {no}"
        );
    }
}

#[test]
fn an_empty_roster_still_gives_every_file_with_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(0, 1, dir.path());
    assert_eq!(summary.deaths, 0);
    let roster = fs::read_to_string(dir.path().join(ROSTER_FILE)).unwrap();
    assert_eq!(roster, roster::ROSTER_HEADER);
    assert_eq!(
        fs::read_to_string(dir.path().join(FUNERAL_DIR).join("index.json")).unwrap(),
        "[]\n"
    );
}

#[test]
fn bad_options_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = GenerateOptions::new(10, 1, dir.path().join("out"), as_of());
    opts.death_rate = 0.9;
    assert!(matches!(
        generate(&opts, &|_| {}),
        Err(GenerateError::InvalidOptions(_))
    ));
    assert!(!dir.path().join("out").exists());
}
