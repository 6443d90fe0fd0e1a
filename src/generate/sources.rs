//! Writes the death-source records in each source's own shape (spec §2–§4):
//! public security as one JSON Lines file sorted by cancellation date, civil
//! affairs as GBK CSV files per office and day (plus correction files), the
//! funeral platform as one JSON Lines file per home and day with an index,
//! and `truth.csv` saying what every record really is. Record keys (record
//! IDs, registration numbers, serials) are assigned here, after sorting, so
//! that they run in the order a real system would hand them out.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use encoding_rs::GBK;
use rand::Rng;
use serde::Serialize;

use super::GenerateError;
use super::deaths::{CaRow, Records, Truth};
use super::fmt::{date_compact_string, date_string, push_csv_field};
use super::sample::{Stage, stream};

pub(crate) const PUBLIC_SECURITY_FILE: &str = "public_security/records.jsonl";
pub(crate) const CIVIL_AFFAIRS_DIR: &str = "civil_affairs";
pub(crate) const FUNERAL_DIR: &str = "funeral/cremations";
pub(crate) const TRUTH_FILE: &str = "truth.csv";
const CIVIL_AFFAIRS_HEADER: &str =
    "姓名,身份证号,性别,出生日期,死亡日期,死亡地点,登记机关代码,登记编号\n";
const TRUTH_HEADER: &str = "source,record_key,person_no,kind,corruptions\n";

/// Line and file counts of what was written.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub public_security_lines: u64,
    pub public_security_records: u64,
    pub civil_affairs_files: u64,
    pub civil_affairs_rows: u64,
    pub civil_affairs_records: u64,
    pub funeral_files: u64,
    pub funeral_records: u64,
    pub truth_rows: u64,
}

#[derive(Serialize)]
struct PsJson<'a> {
    record_id: &'a str,
    xm: &'a str,
    gmsfhm: &'a str,
    xb: &'a str,
    csrq: &'a str,
    swrq: &'a str,
    zxrq: &'a str,
    zxyy: &'a str,
    hjdz_xzqh: &'a str,
}

#[derive(Serialize)]
struct FhJson<'a> {
    home_code: &'a str,
    serial: &'a str,
    deceased_name: &'a str,
    id_no: &'a str,
    gender: &'a str,
    age: i32,
    death_date: &'a str,
    cremation_date: &'a str,
    address_region: &'a str,
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), GenerateError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|source| GenerateError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    fs::write(path, bytes).map_err(|source| GenerateError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn json_line(buf: &mut Vec<u8>, value: &impl Serialize, path: &Path) -> Result<(), GenerateError> {
    serde_json::to_writer(&mut *buf, value).map_err(|e| GenerateError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    buf.push(b'\n');
    Ok(())
}

fn truth_row(out: &mut String, source: &str, key: &str, truth: &Truth) {
    out.push_str(source);
    out.push(',');
    out.push_str(key);
    out.push(',');
    if let Some(no) = truth.person_no {
        out.push_str(&format!("{no:016}"));
    }
    out.push(',');
    out.push_str(truth.kind);
    out.push(',');
    out.push_str(&truth.corruptions.join(";"));
    out.push('\n');
}

pub(crate) fn write(
    out_dir: &Path,
    seed: u64,
    mut records: Records,
) -> Result<Written, GenerateError> {
    let mut written = Written::default();
    let mut truth = String::from(TRUTH_HEADER);

    // Public security: record IDs handed out in cancellation order.
    let ps_path = out_dir.join(PUBLIC_SECURITY_FILE);
    let ps = &mut records.public_security;
    ps.sort_by_key(|r| (r.zxrq, r.order));
    // A handful of exact re-deliveries, as the server sends on retries.
    let mut rng = stream(seed, Stage::Deaths, 1);
    let repeats = if ps.len() >= 20 {
        (ps.len() / 2000).max(1)
    } else {
        0
    };
    let mut repeated = vec![false; ps.len()];
    for _ in 0..repeats {
        repeated[rng.random_range(0..ps.len())] = true;
    }
    let mut buf = Vec::with_capacity(ps.len() * 220);
    for (n, r) in ps.iter().enumerate() {
        let record_id = format!("PS-{}-{:06}", r.zxrq.year(), n + 1);
        let zxrq = date_string(r.zxrq);
        let line = PsJson {
            record_id: &record_id,
            xm: &r.xm,
            gmsfhm: &r.gmsfhm,
            xb: r.xb,
            csrq: &r.csrq,
            swrq: &r.swrq,
            zxrq: &zxrq,
            zxyy: r.zxyy,
            hjdz_xzqh: &r.hjdz_xzqh,
        };
        let copies = if repeated[n] { 2 } else { 1 };
        for _ in 0..copies {
            json_line(&mut buf, &line, &ps_path)?;
            written.public_security_lines += 1;
        }
        written.public_security_records += 1;
        truth_row(&mut truth, "public_security", &record_id, &r.truth);
    }
    write_file(&ps_path, &buf)?;

    // Civil affairs: per office, registration numbers in registration order.
    let mut by_file: BTreeMap<(u64, NaiveDate), Vec<usize>> = BTreeMap::new();
    for (i, r) in records.civil_affairs.iter().enumerate() {
        by_file.entry((r.office, r.registered)).or_default().push(i);
    }
    let ca_dir = out_dir.join(CIVIL_AFFAIRS_DIR);
    fs::create_dir_all(&ca_dir).map_err(|source| GenerateError::Write {
        path: ca_dir.clone(),
        source,
    })?;
    let mut office_seq: BTreeMap<u64, u64> = BTreeMap::new();
    for ((office, day), idx) in &by_file {
        let mut first = String::from(CIVIL_AFFAIRS_HEADER);
        let mut corrected = String::from(CIVIL_AFFAIRS_HEADER);
        let mut corrections = 0;
        for &i in idx {
            let r = &records.civil_affairs[i];
            let seq = office_seq.entry(*office).or_insert(0);
            *seq += 1;
            let reg_no = format!("{}{:06}", day.year(), seq);
            ca_line(
                &mut first,
                r.first.as_ref().unwrap_or(&r.row),
                *office,
                &reg_no,
            );
            written.civil_affairs_rows += 1;
            if r.first.is_some() {
                ca_line(&mut corrected, &r.row, *office, &reg_no);
                written.civil_affairs_rows += 1;
                corrections += 1;
            }
            written.civil_affairs_records += 1;
            truth_row(
                &mut truth,
                "civil_affairs",
                &format!("{office:09}:{reg_no}"),
                &r.truth,
            );
        }
        let stem = format!("{office:09}_{}", date_compact_string(*day));
        write_gbk(&ca_dir.join(format!("{stem}.csv")), &first)?;
        written.civil_affairs_files += 1;
        if corrections > 0 {
            write_gbk(&ca_dir.join(format!("{stem}_v2.csv")), &corrected)?;
            written.civil_affairs_files += 1;
        }
    }

    // Funeral homes: serials per home and day, one file each, and the index.
    let mut by_file: BTreeMap<(&str, NaiveDate), Vec<usize>> = BTreeMap::new();
    for (i, r) in records.funeral.iter().enumerate() {
        by_file
            .entry((r.home.as_str(), r.cremation_date))
            .or_default()
            .push(i);
    }
    let fh_dir = out_dir.join(FUNERAL_DIR);
    let mut index = Vec::new();
    for ((home, day), idx) in &by_file {
        let rel = format!("{home}/{}.jsonl", date_string(*day));
        let path = fh_dir.join(&rel);
        let mut buf = Vec::with_capacity(idx.len() * 250);
        for (n, &i) in idx.iter().enumerate() {
            let r = &records.funeral[i];
            let serial = format!("{}-{:04}", date_compact_string(*day), n + 1);
            let death_date = date_string(r.death_date);
            let cremation_date = date_string(r.cremation_date);
            let line = FhJson {
                home_code: home,
                serial: &serial,
                deceased_name: &r.deceased_name,
                id_no: &r.id_no,
                gender: r.gender,
                age: r.age,
                death_date: &death_date,
                cremation_date: &cremation_date,
                address_region: &r.address_region,
            };
            json_line(&mut buf, &line, &path)?;
            written.funeral_records += 1;
            truth_row(&mut truth, "funeral", &format!("{home}:{serial}"), &r.truth);
        }
        write_file(&path, &buf)?;
        index.push(rel);
        written.funeral_files += 1;
    }
    let index_path = fh_dir.join("index.json");
    let mut buf = Vec::new();
    json_line(&mut buf, &index, &index_path)?;
    write_file(&index_path, &buf)?;

    written.truth_rows =
        written.public_security_records + written.civil_affairs_records + written.funeral_records;
    write_file(&out_dir.join(TRUTH_FILE), truth.as_bytes())?;
    Ok(written)
}

fn ca_line(out: &mut String, row: &CaRow, office: u64, reg_no: &str) {
    for field in [
        &row.name, &row.id, row.sex, &row.birth, &row.death, &row.place,
    ] {
        push_csv_field(out, field);
        out.push(',');
    }
    out.push_str(&format!("{office:09},{reg_no}\n"));
}

/// Civil-affairs files are GBK. Everything put in them is GBK-encodable by
/// construction; if something is not, that is a generator bug worth failing on.
fn write_gbk(path: &Path, text: &str) -> Result<(), GenerateError> {
    let (bytes, _, unmappable) = GBK.encode(text);
    if unmappable {
        return Err(GenerateError::Encoding {
            path: path.to_path_buf(),
        });
    }
    write_file(path, &bytes)
}
