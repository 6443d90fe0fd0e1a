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
use super::deaths::{DEATH_COLUMNS, insert_sql};
use super::sqlite_c::{BulkError, Statement, Value, date_text};
use crate::model::DeathRecord;

/// One row of [`DEATH_COLUMNS`], bound in that order below.
static INSERT: LazyLock<CString> = LazyLock::new(|| {
    CString::new(insert_sql(
        Backend::Sqlite,
        "death_records",
        DEATH_COLUMNS,
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
        s.execute(&[
            Value::text(&r.source),
            Value::text(&r.record_key),
            Value::text(&r.name_raw),
            Value::text(&r.name_norm),
            Value::text(&r.name_key),
            Value::text(&r.id_raw),
            Value::opt_text(r.id_number.as_deref()),
            Value::text(&r.id_status),
            Value::Int(i64::from(r.id_candidates)),
            Value::opt_int(r.sex),
            match r.birth_date {
                Some(_) => Value::Text(&birth),
                None => Value::Null,
            },
            Value::opt_int(r.birth_year_min),
            Value::opt_int(r.birth_year_max),
            Value::Text(&death),
            Value::Int(i64::from(r.death_date_latest)),
            match r.event_date {
                Some(_) => Value::Text(&event),
                None => Value::Null,
            },
            Value::opt_text(r.region.as_deref()),
            Value::opt_text(r.place.as_deref()),
            Value::text(&r.origin),
            Value::text(&r.received_at),
            Value::text(&r.raw_sha256),
            Value::text(&r.raw),
            Value::Int(r.run_id),
            Value::Int(i64::from(r.version)),
        ])?;
    }
    Ok(())
}
