//! A stored record's row as the cells its columns hold, in the columns'
//! order: the one place the columns of `death_records`,
//! `non_death_events`, `life_evidence` and `video_sessions` are listed, for
//! every way a row is written (sqlx binds on either backend, PostgreSQL's
//! `COPY` text, SQLite's C API).
//!
//! It only encodes; it never decides what a row is.

use chrono::{Datelike, NaiveDate};

use super::Backend;
use crate::model::{DeathRecord, EvidenceEvent, NonDeathEvent, VideoSession};

/// One column's value, borrowed from the row, typed as its column is (a
/// NULL keeps its type: PostgreSQL will not put a text NULL in a date).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cell<'a> {
    Text(Option<&'a str>),
    I32(Option<i32>),
    I64(Option<i64>),
    Date(Option<NaiveDate>),
    Bool(bool),
}

impl<'a> Cell<'a> {
    fn text(s: &'a str) -> Cell<'a> {
        Cell::Text(Some(s))
    }
}

/// The columns of `death_records`, in the order of [`death_cells`].
pub(crate) const DEATH_COLUMNS: [&str; 24] = [
    "source",
    "record_key",
    "name_raw",
    "name_norm",
    "name_key",
    "id_raw",
    "id_number",
    "id_status",
    "id_candidates",
    "sex",
    "birth_date",
    "birth_year_min",
    "birth_year_max",
    "death_date",
    "death_date_latest",
    "event_date",
    "region",
    "place",
    "origin",
    "received_at",
    "raw_sha256",
    "raw",
    "run_id",
    "version",
];

/// A death record's cells, in [`DEATH_COLUMNS`] order.
pub(crate) fn death_cells(r: &DeathRecord) -> [Cell<'_>; 24] {
    [
        Cell::text(&r.source),
        Cell::text(&r.record_key),
        Cell::text(&r.name_raw),
        Cell::text(&r.name_norm),
        Cell::text(&r.name_key),
        Cell::text(&r.id_raw),
        Cell::Text(r.id_number.as_deref()),
        Cell::text(&r.id_status),
        Cell::I32(Some(r.id_candidates)),
        Cell::I32(r.sex),
        Cell::Date(r.birth_date),
        Cell::I32(r.birth_year_min),
        Cell::I32(r.birth_year_max),
        Cell::Date(Some(r.death_date)),
        Cell::Bool(r.death_date_latest),
        Cell::Date(r.event_date),
        Cell::Text(r.region.as_deref()),
        Cell::Text(r.place.as_deref()),
        Cell::text(&r.origin),
        Cell::text(&r.received_at),
        Cell::text(&r.raw_sha256),
        Cell::text(&r.raw),
        Cell::I64(Some(r.run_id)),
        Cell::I32(Some(r.version)),
    ]
}

/// The columns of `non_death_events`, in the order of [`non_death_cells`].
pub(crate) const NON_DEATH_COLUMNS: [&str; 19] = [
    "source",
    "record_key",
    "reason",
    "event_date",
    "name_raw",
    "name_norm",
    "name_key",
    "id_raw",
    "id_number",
    "id_status",
    "sex",
    "birth_date",
    "region",
    "origin",
    "received_at",
    "raw_sha256",
    "raw",
    "run_id",
    "version",
];

/// A non-death event's cells, in [`NON_DEATH_COLUMNS`] order.
pub(crate) fn non_death_cells(r: &NonDeathEvent) -> [Cell<'_>; 19] {
    [
        Cell::text(&r.source),
        Cell::text(&r.record_key),
        Cell::text(&r.reason),
        Cell::Date(r.event_date),
        Cell::text(&r.name_raw),
        Cell::text(&r.name_norm),
        Cell::text(&r.name_key),
        Cell::text(&r.id_raw),
        Cell::Text(r.id_number.as_deref()),
        Cell::text(&r.id_status),
        Cell::I32(r.sex),
        Cell::Date(r.birth_date),
        Cell::Text(r.region.as_deref()),
        Cell::text(&r.origin),
        Cell::text(&r.received_at),
        Cell::text(&r.raw_sha256),
        Cell::text(&r.raw),
        Cell::I64(Some(r.run_id)),
        Cell::I32(Some(r.version)),
    ]
}

/// The columns of `life_evidence`: [`life_cells`], then the import's run
/// and the time it was received.
pub(crate) const LIFE_COLUMNS: [&str; 6] = [
    "id_number",
    "event_type",
    "event_date",
    "source_ref",
    "run_id",
    "received_at",
];

/// An evidence-of-life event's own cells, in [`LIFE_COLUMNS`] order.
pub(crate) fn life_cells(r: &EvidenceEvent) -> [Cell<'_>; 4] {
    [
        Cell::text(&r.id_number),
        Cell::text(&r.event_type),
        Cell::Date(Some(r.event_date)),
        Cell::text(&r.source_ref),
    ]
}

/// The columns of `video_sessions`: [`video_cells`], then the import's run
/// and the time it was received.
pub(crate) const VIDEO_COLUMNS: [&str; 9] = [
    "id_number",
    "session_at",
    "session_utc",
    "session_date",
    "result",
    "operator",
    "note",
    "run_id",
    "received_at",
];

/// A video session's own cells, in [`VIDEO_COLUMNS`] order.
pub(crate) fn video_cells(r: &VideoSession) -> [Cell<'_>; 7] {
    [
        Cell::text(&r.id_number),
        Cell::text(&r.session_at),
        Cell::text(&r.session_utc),
        Cell::Date(Some(r.session_date)),
        Cell::text(&r.result),
        Cell::text(&r.operator),
        Cell::text(&r.note),
    ]
}

/// Binds `cells` in order to the sqlx query `q`; compiled once per backend
/// inside `with_pool!` (or a backend's own arm), so every cell binds with
/// its column's type.
macro_rules! bind_cells {
    ($q:expr, $cells:expr) => {{
        let mut q = $q;
        for cell in $cells {
            q = match cell {
                $crate::store::rows::Cell::Text(v) => q.bind(v),
                $crate::store::rows::Cell::I32(v) => q.bind(v),
                $crate::store::rows::Cell::I64(v) => q.bind(v),
                $crate::store::rows::Cell::Date(v) => q.bind(v),
                $crate::store::rows::Cell::Bool(v) => q.bind(v),
            };
        }
        q
    }};
}
pub(crate) use bind_cells;

/// Rows as PostgreSQL `COPY … FROM STDIN` text: one line per row, its
/// cells tab-separated, `\N` for NULL. `None` when a date is outside years
/// 1-9999, which the text form of a date would not carry as is (the caller
/// then uses `INSERT`).
pub(crate) fn copy_text<'r, T, const N: usize>(
    rows: &'r [T],
    cells: impl Fn(&'r T) -> [Cell<'r>; N],
) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(rows.len() * 512);
    for r in rows {
        for (i, cell) in cells(r).into_iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            match cell {
                Cell::Text(Some(s)) => {
                    for b in s.bytes() {
                        match b {
                            b'\\' => out.extend_from_slice(b"\\\\"),
                            b'\t' => out.extend_from_slice(b"\\t"),
                            b'\n' => out.extend_from_slice(b"\\n"),
                            b'\r' => out.extend_from_slice(b"\\r"),
                            _ => out.push(b),
                        }
                    }
                }
                Cell::I32(Some(n)) => write!(out, "{n}").expect("writing to a Vec"),
                Cell::I64(Some(n)) => write!(out, "{n}").expect("writing to a Vec"),
                Cell::Date(Some(d)) => {
                    if !(1..=9999).contains(&d.year()) {
                        return None;
                    }
                    write!(out, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
                        .expect("writing to a Vec");
                }
                Cell::Bool(b) => out.push(if b { b't' } else { b'f' }),
                Cell::Text(None) | Cell::I32(None) | Cell::I64(None) | Cell::Date(None) => {
                    out.extend_from_slice(b"\\N")
                }
            }
        }
        out.push(b'\n');
    }
    Some(out)
}

/// `INSERT INTO t (cols) VALUES (...), (...)`. SQLite gets `?`: its lookup
/// of `$N` names is a linear scan per parameter, quadratic in a statement of
/// thousands of binds; PostgreSQL only knows `$N`.
pub(crate) fn insert_sql(backend: Backend, table: &str, columns: &[&str], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..columns.len() {
            if c > 0 {
                sql.push(',');
            }
            n += 1;
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// `$1, $2, …` (or `?, ?, …`) for an `IN` list starting after `skip` binds.
pub(crate) fn in_list(backend: Backend, skip: usize, n: usize) -> String {
    (0..n)
        .map(|i| match backend {
            Backend::Sqlite => "?".to_string(),
            Backend::Postgres => format!("${}", skip + i + 1),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_text_marks_nulls_and_refuses_dates_it_cannot_write() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 3).unwrap();
        let row = [
            Cell::Text(Some("a\tb\\c\nd")),
            Cell::Text(None),
            Cell::I32(Some(-7)),
            Cell::Date(Some(d)),
            Cell::Bool(true),
        ];
        let text = copy_text(&[()], |_| row).unwrap();
        assert_eq!(text, b"a\\tb\\\\c\\nd\t\\N\t-7\t2026-11-03\tt\n");
        let far = NaiveDate::from_ymd_opt(10000, 1, 1).unwrap();
        assert_eq!(copy_text(&[()], |_| [Cell::Date(Some(far))]), None);
    }
}
