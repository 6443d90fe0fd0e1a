//! Bulk insertion of pensioners during a roster import, and the stream of
//! stored content hashes it classifies rows against, on SQLite through the
//! C API ([`super::sqlite_c`] says why, and holds every `unsafe`).

use std::ffi::CStr;
use std::ptr::NonNull;

use libsqlite3_sys as ffi;

use super::sqlite_c::{BulkError, Statement, Value, date_text};
use crate::model::Pensioner;

const INSERT: &CStr = c"INSERT INTO pensioners (person_no, name, name_norm, name_key, id_number, \
    id_upgraded, sex, birth_date, insured_region, residence_region, benefit_type, \
    monthly_amount_fen, bank_account, benefit_start, status, last_certified, phone, \
    content_hash, first_seen) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

/// Inserts `rows` with one prepared statement. The caller holds the
/// connection locked and inside an open transaction.
pub fn insert_pensioners(db: NonNull<ffi::sqlite3>, rows: &[Pensioner]) -> Result<(), BulkError> {
    let mut s = Statement::prepare(db, INSERT)?;
    let mut birth = [0u8; 10];
    let mut start = [0u8; 10];
    let mut certified = [0u8; 10];
    let mut first = [0u8; 10];
    for p in rows {
        date_text(p.birth_date, &mut birth);
        date_text(p.benefit_start, &mut start);
        date_text(p.first_seen, &mut first);
        if let Some(d) = p.last_certified {
            date_text(d, &mut certified);
        }
        s.execute(&[
            Value::text(&p.person_no),
            Value::text(&p.name),
            Value::text(&p.name_norm),
            Value::text(&p.name_key),
            Value::text(&p.id_number),
            Value::Int(i64::from(p.id_upgraded)),
            Value::Int(i64::from(p.sex)),
            Value::Text(&birth),
            Value::text(&p.insured_region),
            Value::text(&p.residence_region),
            Value::text(&p.benefit_type),
            Value::Int(p.monthly_amount_fen),
            Value::text(&p.bank_account),
            Value::Text(&start),
            Value::text(&p.status),
            match p.last_certified {
                Some(_) => Value::Text(&certified),
                None => Value::Null,
            },
            Value::opt_text(p.phone.as_deref()),
            Value::Int(p.content_hash),
            Value::Text(&first),
        ])?;
    }
    Ok(())
}

const HASHES: &CStr = c"SELECT person_no, content_hash, missing_since IS NOT NULL FROM pensioners";

/// Streams `(person_no, content_hash, is_missing)` of every pensioner into
/// `f`, straight from SQLite's row buffers (no per-row allocation).
pub fn for_each_hash(
    db: NonNull<ffi::sqlite3>,
    mut f: impl FnMut(&str, i64, bool),
) -> Result<u64, BulkError> {
    let mut s = Statement::prepare(db, HASHES)?;
    let mut n = 0u64;
    while s.next()? {
        f(
            s.text(0).unwrap_or_default(),
            s.int(1).unwrap_or_default(),
            s.int(2).unwrap_or_default() != 0,
        );
        n += 1;
    }
    Ok(n)
}
