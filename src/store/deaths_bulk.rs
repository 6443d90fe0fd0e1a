//! Bulk insertion of new death records on SQLite through the C API
//! ([`super::sqlite_c`] says why, and holds every `unsafe`): sqlx copies
//! every bound value, formats every date through chrono's strftime
//! machinery, and a multi-row `INSERT` makes SQLite keep a statement
//! journal; at hundreds of thousands of records that was most of a pull's
//! time. One prepared single-row statement, bound with borrowed text,
//! stepped per row.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::LazyLock;

use libsqlite3_sys as ffi;

use super::Backend;
use super::rows::{Cell, DEATH_COLUMNS, death_cells, insert_sql};
use super::sqlite_c::{BulkError, Statement, Value, date_text};
use crate::model::DeathRecord;

/// One row of [`DEATH_COLUMNS`], bound from [`death_cells`].
static INSERT: LazyLock<CString> = LazyLock::new(|| {
    CString::new(insert_sql(
        Backend::Sqlite,
        "death_records",
        &DEATH_COLUMNS,
        1,
    ))
    .expect("no NUL in SQL")
});

/// Inserts `rows` (none of which is stored yet) with one prepared statement;
/// the caller holds the connection locked inside an open transaction.
pub fn insert_death_records(
    db: NonNull<ffi::sqlite3>,
    rows: &[DeathRecord],
) -> Result<(), BulkError> {
    let mut s = Statement::prepare(db, &INSERT)?;
    // Dates as `YYYY-MM-DD` text, each in the buffer of its column.
    let mut dates = [[0u8; 10]; DEATH_COLUMNS.len()];
    for r in rows {
        let cells = death_cells(r);
        for (cell, buf) in cells.iter().zip(&mut dates) {
            if let Cell::Date(Some(d)) = cell {
                date_text(*d, buf);
            }
        }
        let values: [Value<'_>; DEATH_COLUMNS.len()] = std::array::from_fn(|i| match cells[i] {
            Cell::Text(v) => Value::opt_text(v),
            Cell::I32(v) => Value::opt_int(v),
            Cell::I64(v) => Value::opt_int(v),
            Cell::Date(Some(_)) => Value::Text(&dates[i]),
            Cell::Date(None) => Value::Null,
            Cell::Bool(b) => Value::Int(i64::from(b)),
        });
        s.execute(&values)?;
    }
    Ok(())
}
