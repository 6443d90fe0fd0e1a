//! Byte-level formatting for the hot path: integers, dates, money and ID
//! numbers written straight into reused buffers. The roster is written
//! millions of rows at a time, so nothing here allocates; the slower
//! `format!` is reserved for the few hundred thousand death-source records.

use chrono::{Datelike, NaiveDate};

use crate::identity::id::check_char;

/// Appends `v` in decimal.
pub(crate) fn push_uint(buf: &mut Vec<u8>, v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut v = v;
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends `v` zero-padded to exactly `width` digits (higher digits are cut:
/// callers pass values that fit).
pub(crate) fn push_padded(buf: &mut Vec<u8>, v: u64, width: usize) {
    let start = buf.len();
    buf.resize(start + width, b'0');
    let mut v = v;
    for slot in buf[start..].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// `YYYY-MM-DD`.
pub(crate) fn push_date(buf: &mut Vec<u8>, d: NaiveDate) {
    push_padded(buf, d.year() as u64, 4);
    buf.push(b'-');
    push_padded(buf, u64::from(d.month()), 2);
    buf.push(b'-');
    push_padded(buf, u64::from(d.day()), 2);
}

/// `YYYYMMDD`, the compact form public security and ID numbers use.
pub(crate) fn push_date_compact(buf: &mut Vec<u8>, d: NaiveDate) {
    push_padded(buf, d.year() as u64, 4);
    push_padded(buf, u64::from(d.month()), 2);
    push_padded(buf, u64::from(d.day()), 2);
}

pub(crate) fn date_string(d: NaiveDate) -> String {
    let mut b = Vec::with_capacity(10);
    push_date(&mut b, d);
    ascii_string(b)
}

pub(crate) fn date_compact_string(d: NaiveDate) -> String {
    let mut b = Vec::with_capacity(8);
    push_date_compact(&mut b, d);
    ascii_string(b)
}

/// Yuan with two decimals from integer fen (money is never a float).
pub(crate) fn push_yuan(buf: &mut Vec<u8>, fen: u64) {
    push_uint(buf, fen / 100);
    buf.push(b'.');
    push_padded(buf, fen % 100, 2);
}

/// Turns bytes that are ASCII by construction into a `String`.
pub(crate) fn ascii_string(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_default()
}

/// The 18-character resident ID: region, birth date, sequence, check char.
pub(crate) fn id18(county: u32, birth: NaiveDate, seq: u16) -> [u8; 18] {
    let mut b = Vec::with_capacity(18);
    push_padded(&mut b, u64::from(county), 6);
    push_date_compact(&mut b, birth);
    push_padded(&mut b, u64::from(seq), 3);
    let c = check_char(&b);
    b.push(c);
    let mut out = [0u8; 18];
    out.copy_from_slice(&b);
    out
}

/// The legacy 15-digit form (pre-1999): the century and the check char dropped.
pub(crate) fn id15_of(id18: &[u8; 18]) -> [u8; 15] {
    let mut out = [0u8; 15];
    out[..6].copy_from_slice(&id18[..6]);
    out[6..15].copy_from_slice(&id18[8..17]);
    out
}

/// The key the generator uses to keep ID numbers unique: the first 17 digits
/// as a number. A legacy 15-digit ID upgrades to the same key as its 18-digit
/// form, so both forms share one slot.
pub(crate) fn id_key(county: u32, birth: NaiveDate, seq: u16) -> u64 {
    let ymd =
        birth.year() as u64 * 10_000 + u64::from(birth.month()) * 100 + u64::from(birth.day());
    (u64::from(county) * 100_000_000 + ymd) * 1000 + u64::from(seq)
}

/// Appends a CSV field, quoted only when it must be (RFC 4180).
pub(crate) fn push_csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_dates_format_like_the_spec() {
        let mut b = Vec::new();
        push_uint(&mut b, 0);
        b.push(b' ');
        push_uint(&mut b, 18_446_744_073_709_551_615);
        b.push(b' ');
        push_yuan(&mut b, 326_850);
        b.push(b' ');
        push_yuan(&mut b, 15_005);
        b.push(b' ');
        push_date(&mut b, NaiveDate::from_ymd_opt(1942, 3, 5).unwrap());
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "0 18446744073709551615 3268.50 150.05 1942-03-05"
        );
    }

    #[test]
    fn id18_carries_a_valid_check_char_and_upgrades_from_15() {
        let id = id18(440304, NaiveDate::from_ymd_opt(1942, 3, 15).unwrap(), 122);
        assert_eq!(&id[..17], b"44030419420315122");
        assert_eq!(id[17], check_char(&id[..17]));
        assert_eq!(&id15_of(&id), b"440304420315122");
    }
}
