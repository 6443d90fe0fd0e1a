//! The one place vigil talks to SQLite's C API directly: bulk insertion of
//! pensioners during a roster import.
//!
//! Going through sqlx costs an owned copy of every bound value and a message
//! to its worker thread per statement; at millions of rows that was most of
//! an import's time. Here one prepared statement is bound with borrowed text
//! and stepped per row, inside the transaction sqlx opened on the same
//! connection, so commit and rollback stay with sqlx.
//!
//! Every `unsafe` block below relies on the same two facts: `db` is a live
//! connection handle held locked by the caller for the duration of the call,
//! and every bound buffer outlives the `sqlite3_step` that reads it
//! (bindings use `SQLITE_STATIC` and are cleared before the buffer changes).

use std::ffi::{CStr, c_int};
use std::ptr::{self, NonNull};

use chrono::{Datelike, NaiveDate};
use libsqlite3_sys as ffi;

use super::pensioners::Pensioner;

/// An error from SQLite's C API, with its message.
#[derive(Debug, thiserror::Error)]
#[error("SQLite error {code} during bulk insert: {message}")]
pub struct BulkError {
    pub code: i32,
    pub message: String,
}

/// The connection's last error message with `code`: every C-API caller's error.
pub(super) fn error(db: *mut ffi::sqlite3, code: c_int) -> BulkError {
    // SAFETY: `db` is a live handle; sqlite3_errmsg returns a NUL-terminated
    // string owned by SQLite, copied before any further call.
    let message = unsafe {
        let p = ffi::sqlite3_errmsg(db);
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    BulkError { code, message }
}

/// `YYYY-MM-DD` into a stack buffer, without the formatting machinery
/// (years outside 0..=9999 are clamped: callers with such dates must not
/// use it).
pub(crate) fn date_text(d: NaiveDate, buf: &mut [u8; 10]) {
    let y = d.year().clamp(0, 9999) as u32;
    let (m, day) = (d.month(), d.day());
    let digits = [
        y / 1000,
        y / 100 % 10,
        y / 10 % 10,
        y % 10,
        0,
        m / 10,
        m % 10,
        0,
        day / 10,
        day % 10,
    ];
    for (i, v) in digits.iter().enumerate() {
        buf[i] = if i == 4 || i == 7 {
            b'-'
        } else {
            b'0' + *v as u8
        };
    }
}

const INSERT: &CStr = c"INSERT INTO pensioners (person_no, name, name_norm, name_key, id_number, \
    id_upgraded, sex, birth_date, insured_region, residence_region, benefit_type, \
    monthly_amount_fen, bank_account, benefit_start, status, last_certified, phone, \
    content_hash, first_seen) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

/// Inserts `rows` with one prepared statement. The caller holds the
/// connection locked and inside an open transaction.
pub fn insert_pensioners(db: NonNull<ffi::sqlite3>, rows: &[Pensioner]) -> Result<(), BulkError> {
    let db = db.as_ptr();
    let mut stmt: *mut ffi::sqlite3_stmt = ptr::null_mut();
    // SAFETY: see the module comment; INSERT is a valid NUL-terminated string.
    let rc =
        unsafe { ffi::sqlite3_prepare_v2(db, INSERT.as_ptr(), -1, &mut stmt, ptr::null_mut()) };
    if rc != ffi::SQLITE_OK {
        return Err(error(db, rc));
    }
    let result = insert_with(db, stmt, rows);
    // SAFETY: `stmt` came from a successful prepare and is finalized once.
    unsafe { ffi::sqlite3_finalize(stmt) };
    result
}

fn insert_with(
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    rows: &[Pensioner],
) -> Result<(), BulkError> {
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
        // SAFETY: the statement has 19 parameters; each text pointer stays
        // valid until the reset below (the row and the date buffers are not
        // touched until then).
        unsafe {
            let text = |i: c_int, s: &[u8]| {
                ffi::sqlite3_bind_text(
                    stmt,
                    i,
                    s.as_ptr().cast(),
                    s.len() as c_int,
                    ffi::SQLITE_STATIC(),
                )
            };
            let mut rc = 0;
            rc |= text(1, p.person_no.as_bytes());
            rc |= text(2, p.name.as_bytes());
            rc |= text(3, p.name_norm.as_bytes());
            rc |= text(4, p.name_key.as_bytes());
            rc |= text(5, p.id_number.as_bytes());
            rc |= ffi::sqlite3_bind_int(stmt, 6, c_int::from(p.id_upgraded));
            rc |= ffi::sqlite3_bind_int(stmt, 7, p.sex);
            rc |= text(8, &birth);
            rc |= text(9, p.insured_region.as_bytes());
            rc |= text(10, p.residence_region.as_bytes());
            rc |= text(11, p.benefit_type.as_bytes());
            rc |= ffi::sqlite3_bind_int64(stmt, 12, p.monthly_amount_fen);
            rc |= text(13, p.bank_account.as_bytes());
            rc |= text(14, &start);
            rc |= text(15, p.status.as_bytes());
            rc |= match p.last_certified {
                Some(_) => text(16, &certified),
                None => ffi::sqlite3_bind_null(stmt, 16),
            };
            rc |= match &p.phone {
                Some(phone) => text(17, phone.as_bytes()),
                None => ffi::sqlite3_bind_null(stmt, 17),
            };
            rc |= ffi::sqlite3_bind_int64(stmt, 18, p.content_hash);
            rc |= text(19, &first);
            if rc != ffi::SQLITE_OK {
                return Err(error(db, rc));
            }
            let step = ffi::sqlite3_step(stmt);
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
            if step != ffi::SQLITE_DONE {
                return Err(error(db, step));
            }
        }
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
    let db = db.as_ptr();
    let mut stmt: *mut ffi::sqlite3_stmt = ptr::null_mut();
    // SAFETY: see the module comment; HASHES is a valid NUL-terminated string.
    let rc =
        unsafe { ffi::sqlite3_prepare_v2(db, HASHES.as_ptr(), -1, &mut stmt, ptr::null_mut()) };
    if rc != ffi::SQLITE_OK {
        return Err(error(db, rc));
    }
    let mut n = 0u64;
    let result = loop {
        // SAFETY: `stmt` is a live statement; column pointers are read
        // before the next step, which is when SQLite may invalidate them.
        unsafe {
            match ffi::sqlite3_step(stmt) {
                ffi::SQLITE_ROW => {
                    let p = ffi::sqlite3_column_text(stmt, 0);
                    let len = ffi::sqlite3_column_bytes(stmt, 0);
                    let bytes = if p.is_null() {
                        &[][..]
                    } else {
                        std::slice::from_raw_parts(p, len.max(0) as usize)
                    };
                    let person_no = std::str::from_utf8(bytes).unwrap_or_default();
                    let hash = ffi::sqlite3_column_int64(stmt, 1);
                    let missing = ffi::sqlite3_column_int(stmt, 2) != 0;
                    f(person_no, hash, missing);
                    n += 1;
                }
                ffi::SQLITE_DONE => break Ok(n),
                rc => break Err(error(db, rc)),
            }
        }
    };
    // SAFETY: `stmt` came from a successful prepare and is finalized once.
    unsafe { ffi::sqlite3_finalize(stmt) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_as_iso_text() {
        let mut b = [0u8; 10];
        date_text(NaiveDate::from_ymd_opt(1942, 3, 5).unwrap(), &mut b);
        assert_eq!(&b, b"1942-03-05");
        date_text(NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(), &mut b);
        assert_eq!(&b, b"2026-11-30");
    }
}
