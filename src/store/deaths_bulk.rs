//! Bulk insertion of new death records on SQLite through the C API, for
//! the same reason as `sqlite_bulk`: sqlx copies every bound value, formats
//! every date through chrono's strftime machinery, and a multi-row `INSERT`
//! makes SQLite keep a statement journal; at hundreds of thousands of
//! records that was most of a pull's time. One prepared single-row
//! statement, bound with borrowed text, stepped per row.
//!
//! Every `unsafe` block relies on the two facts `sqlite_bulk` states: `db` is
//! a live handle the caller holds locked inside an open transaction, and
//! every bound buffer outlives the `sqlite3_step` that reads it.

use std::ffi::{CStr, c_int};
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;

use super::deaths::DeathRecord;
use super::sqlite_bulk::{BulkError, date_text, error};

const INSERT: &CStr = c"INSERT INTO death_records (source, record_key, name_raw, name_norm, \
    name_key, id_raw, id_number, id_status, id_candidates, sex, birth_date, birth_year_min, \
    birth_year_max, death_date, death_date_latest, event_date, region, place, origin, \
    received_at, raw_sha256, raw, run_id, version) \
    VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

/// Inserts `rows` (none of which is stored yet) with one prepared statement.
pub fn insert_death_records(
    db: NonNull<ffi::sqlite3>,
    rows: &[DeathRecord],
) -> Result<(), BulkError> {
    let db = db.as_ptr();
    let mut stmt: *mut ffi::sqlite3_stmt = ptr::null_mut();
    // SAFETY: see the module comment; INSERT is NUL-terminated.
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
    rows: &[DeathRecord],
) -> Result<(), BulkError> {
    let mut birth = [0u8; 10];
    let mut death = [0u8; 10];
    let mut event = [0u8; 10];
    for r in rows {
        if let Some(d) = r.birth_date {
            date_text(d, &mut birth);
        }
        date_text(r.death_date, &mut death);
        if let Some(d) = r.event_date {
            date_text(d, &mut event);
        }
        // SAFETY: 24 parameters; every text pointer stays valid until the
        // reset below (neither the row nor the buffers change until then).
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
            let opt_text = |i: c_int, s: Option<&[u8]>| match s {
                Some(s) => text(i, s),
                None => ffi::sqlite3_bind_null(stmt, i),
            };
            let opt_int = |i: c_int, v: Option<i32>| match v {
                Some(v) => ffi::sqlite3_bind_int(stmt, i, v),
                None => ffi::sqlite3_bind_null(stmt, i),
            };
            let mut rc = 0;
            rc |= text(1, r.source.as_bytes());
            rc |= text(2, r.record_key.as_bytes());
            rc |= text(3, r.name_raw.as_bytes());
            rc |= text(4, r.name_norm.as_bytes());
            rc |= text(5, r.name_key.as_bytes());
            rc |= text(6, r.id_raw.as_bytes());
            rc |= opt_text(7, r.id_number.as_deref().map(str::as_bytes));
            rc |= text(8, r.id_status.as_bytes());
            rc |= ffi::sqlite3_bind_int(stmt, 9, r.id_candidates);
            rc |= opt_int(10, r.sex);
            rc |= opt_text(11, r.birth_date.map(|_| &birth[..]));
            rc |= opt_int(12, r.birth_year_min);
            rc |= opt_int(13, r.birth_year_max);
            rc |= text(14, &death);
            rc |= ffi::sqlite3_bind_int(stmt, 15, c_int::from(r.death_date_latest));
            rc |= opt_text(16, r.event_date.map(|_| &event[..]));
            rc |= opt_text(17, r.region.as_deref().map(str::as_bytes));
            rc |= opt_text(18, r.place.as_deref().map(str::as_bytes));
            rc |= text(19, r.origin.as_bytes());
            rc |= text(20, r.received_at.as_bytes());
            rc |= text(21, r.raw_sha256.as_bytes());
            rc |= text(22, r.raw.as_bytes());
            rc |= ffi::sqlite3_bind_int64(stmt, 23, r.run_id);
            rc |= ffi::sqlite3_bind_int(stmt, 24, r.version);
            if rc != ffi::SQLITE_OK {
                return Err(error(db, rc));
            }
            // No sqlite3_clear_bindings: every parameter is bound again
            // (NULL included) before the next step.
            let step = ffi::sqlite3_step(stmt);
            ffi::sqlite3_reset(stmt);
            if step != ffi::SQLITE_DONE {
                return Err(error(db, step));
            }
        }
    }
    Ok(())
}
