//! The one small safe wrapper over SQLite's C API that the bulk paths share
//! (`pensioners_bulk`, `deaths_bulk`, `matches_bulk`).
//!
//! Why the C API at all: going through sqlx costs an owned copy of every
//! bound value and a message to its worker thread per statement; at
//! millions of rows that was most of an import's, a pull's and a match
//! run's storing time. Here one prepared statement is bound with borrowed
//! text and stepped per row, inside the transaction sqlx opened on the same
//! connection, so commit and rollback stay with sqlx.
//!
//! Everything `unsafe` is in this file, and rests on three facts:
//! - a [`Statement`] is prepared on a live connection handle that its
//!   caller holds locked (and, for writes, inside an open transaction) for
//!   as long as the statement lives, and is finalized exactly once, when
//!   dropped;
//! - [`Statement::execute`] binds borrowed buffers (`SQLITE_STATIC`),
//!   steps, then resets and clears the bindings before it returns, so no
//!   bound buffer is read after the call that borrowed it;
//! - a column read ([`Statement::text`], [`Statement::int`]) borrows the
//!   statement, and stepping needs it mutably, so no column outlives the
//!   row it came from.

use std::ffi::{CStr, c_int};
use std::ptr::{self, NonNull};

use chrono::{Datelike, NaiveDate};
use libsqlite3_sys as ffi;

/// An error from SQLite's C API, with its message.
#[derive(Debug, thiserror::Error)]
#[error("SQLite error {code} during bulk insert: {message}")]
pub struct BulkError {
    pub code: i32,
    pub message: String,
}

/// The connection's last error message with `code`.
fn error(db: *mut ffi::sqlite3, code: c_int) -> BulkError {
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

/// One parameter of [`Statement::execute`], borrowed for the call.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Text(&'a [u8]),
    Int(i64),
    Real(f64),
    Null,
}

impl<'a> Value<'a> {
    pub fn text(s: &'a str) -> Value<'a> {
        Value::Text(s.as_bytes())
    }

    /// Text, or NULL for `None`.
    pub fn opt_text(s: Option<&'a str>) -> Value<'a> {
        s.map_or(Value::Null, Value::text)
    }

    /// An integer, or NULL for `None`.
    pub fn opt_int(v: Option<impl Into<i64>>) -> Value<'a> {
        v.map_or(Value::Null, |v| Value::Int(v.into()))
    }

    /// A real, or NULL for `None`.
    pub fn opt_real(v: Option<f64>) -> Value<'a> {
        v.map_or(Value::Null, Value::Real)
    }
}

/// A prepared statement, finalized when dropped.
pub struct Statement {
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
}

impl Statement {
    /// Prepares `sql` on `db`, a live handle the caller holds locked for as
    /// long as the statement lives.
    pub fn prepare(db: NonNull<ffi::sqlite3>, sql: &CStr) -> Result<Statement, BulkError> {
        let db = db.as_ptr();
        let mut stmt = ptr::null_mut();
        // SAFETY: `db` is live and `sql` NUL-terminated.
        let rc =
            unsafe { ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt, ptr::null_mut()) };
        if rc != ffi::SQLITE_OK {
            return Err(error(db, rc));
        }
        Ok(Statement { db, stmt })
    }

    /// Binds `values` to parameters 1.., steps once (a statement that
    /// returns no row: an insert) and readies the statement for the next.
    pub fn execute(&mut self, values: &[Value<'_>]) -> Result<(), BulkError> {
        let mut rc = ffi::SQLITE_OK;
        for (i, v) in values.iter().enumerate() {
            let i = i as c_int + 1;
            // SAFETY: `stmt` is live and not stepping; a text's buffer is
            // borrowed for this call, and the statement is reset and its
            // bindings cleared below, before the call returns.
            rc |= unsafe {
                match *v {
                    Value::Text(s) => ffi::sqlite3_bind_text(
                        self.stmt,
                        i,
                        s.as_ptr().cast(),
                        s.len() as c_int,
                        ffi::SQLITE_STATIC(),
                    ),
                    Value::Int(n) => ffi::sqlite3_bind_int64(self.stmt, i, n),
                    Value::Real(x) => ffi::sqlite3_bind_double(self.stmt, i, x),
                    Value::Null => ffi::sqlite3_bind_null(self.stmt, i),
                }
            };
        }
        // SAFETY: `stmt` is live; every bound buffer is borrowed by `values`.
        let step = if rc == ffi::SQLITE_OK {
            unsafe { ffi::sqlite3_step(self.stmt) }
        } else {
            rc
        };
        // SAFETY: `stmt` is live.
        unsafe {
            ffi::sqlite3_reset(self.stmt);
            ffi::sqlite3_clear_bindings(self.stmt);
        }
        match step {
            ffi::SQLITE_DONE => Ok(()),
            rc => Err(error(self.db, rc)),
        }
    }

    /// Binds parameter `i` (from 1) to an integer, for a query.
    pub fn bind_int(&mut self, i: c_int, v: i64) -> Result<(), BulkError> {
        // SAFETY: `stmt` is a live statement, not stepping.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.stmt, i, v) };
        if rc != ffi::SQLITE_OK {
            return Err(error(self.db, rc));
        }
        Ok(())
    }

    /// Steps to the next row; `false` when done.
    pub fn next(&mut self) -> Result<bool, BulkError> {
        // SAFETY: `stmt` is a live statement.
        match unsafe { ffi::sqlite3_step(self.stmt) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => Err(error(self.db, rc)),
        }
    }

    /// Column `i` of the current row as text; `None` when NULL. Valid
    /// until the next step.
    pub fn text(&self, i: c_int) -> Option<&str> {
        // SAFETY: the statement is on a row; the pointer and length are
        // read together, before any further call on the statement.
        unsafe {
            if ffi::sqlite3_column_type(self.stmt, i) == ffi::SQLITE_NULL {
                return None;
            }
            let p = ffi::sqlite3_column_text(self.stmt, i);
            let len = ffi::sqlite3_column_bytes(self.stmt, i);
            let bytes = if p.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(p, len.max(0) as usize)
            };
            Some(std::str::from_utf8(bytes).unwrap_or_default())
        }
    }

    /// Column `i` of the current row as an integer; `None` when NULL.
    pub fn int(&self, i: c_int) -> Option<i64> {
        // SAFETY: the statement is on a row.
        unsafe {
            (ffi::sqlite3_column_type(self.stmt, i) != ffi::SQLITE_NULL)
                .then(|| ffi::sqlite3_column_int64(self.stmt, i))
        }
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: `stmt` came from a successful prepare and is finalized once.
        unsafe { ffi::sqlite3_finalize(self.stmt) };
    }
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

/// `YYYY-MM-DD` (what the store writes) without the parsing machinery;
/// anything else through chrono.
pub fn date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        return NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
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
