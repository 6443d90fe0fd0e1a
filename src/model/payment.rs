//! The payment ledger (spec §7): what the payroll really paid, month by
//! month, read back so vigil can reconcile it with its own instructions and
//! compute what was paid after a death. A [`Period`] is a payroll month; a
//! [`Payment`] one validated row of the ledger; a [`LedgerEntry`] one as
//! stored, with the import that brought it.
//!
//! A bank account is held whole (the reconciliation needs it) but never
//! shown whole: `Debug` and `Serialize` mask it, so a payment written to a
//! log line or a JSON answer keeps the first six and last four digits only.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Serialize, Serializer};

use crate::identity::id::mask;

/// A payroll month, `YYYY-MM`. Ordered in time; its text form sorts the
/// same way for the years a ledger holds (four digits), which is how the
/// database compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    // Field order is the ordering: year first, then month.
    year: i32,
    /// 1 to 12.
    month: u32,
}

/// Why a text is not a period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("is not a month as YYYY-MM")]
    Shape,
    #[error("has no month {0} (months are 01 to 12)")]
    Month(u32),
}

impl Period {
    /// The month `month` (1 to 12) of `year`; `None` for another month.
    pub fn new(year: i32, month: u32) -> Option<Period> {
        (1..=12).contains(&month).then_some(Period { year, month })
    }

    /// Exactly `YYYY-MM`: four digits, a dash, two digits, a month 01-12.
    /// Anything else (`2026-1`, `2026/11`, `202611`) is refused rather than
    /// guessed.
    pub fn parse(s: &str) -> Result<Period, PeriodError> {
        let b = s.as_bytes();
        let shaped = b.len() == 7
            && b[4] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || c.is_ascii_digit());
        if !shaped {
            return Err(PeriodError::Shape);
        }
        let num = |r: std::ops::Range<usize>| {
            b[r].iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        let month = num(5..7);
        Period::new(num(0..4) as i32, month).ok_or(PeriodError::Month(month))
    }

    /// The month a day falls in.
    pub fn of(date: NaiveDate) -> Period {
        Period {
            year: date.year(),
            month: date.month(),
        }
    }

    /// The next month.
    pub fn succ(self) -> Period {
        if self.month == 12 {
            Period {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Period {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The month before.
    pub fn pred(self) -> Period {
        if self.month == 1 {
            Period {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Period {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    /// The first day of the month (`None` only beyond chrono's years).
    pub fn first_day(self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
    }

    /// The months from `self` to `last`, both included, in order (empty
    /// when `last` is earlier).
    pub fn through(self, last: Period) -> impl Iterator<Item = Period> {
        std::iter::successors(Some(self), move |p| Some(p.succ())).take_while(move |p| *p <= last)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Period {
    type Err = PeriodError;
    fn from_str(s: &str) -> Result<Period, PeriodError> {
        Period::parse(s)
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn masked<S: Serializer>(account: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mask(account))
}

/// One row of the ledger (spec §7), validated: `person_no` was paid
/// `amount_fen` for the month `period` into `bank_account` on `paid_on`.
/// The key is (person_no, period, paid_on, amount_fen): the same row sent
/// again is the same payment, not a second one.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    /// The pensioner's number in the core system, as the roster has it.
    pub person_no: String,
    pub period: Period,
    /// Integer fen, never negative (a reversal is not a payment).
    pub amount_fen: i64,
    /// Digits only. Masked in `Debug` and `Serialize`.
    #[serde(serialize_with = "masked")]
    pub bank_account: String,
    pub paid_on: NaiveDate,
}

impl fmt::Debug for Payment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payment")
            .field("person_no", &self.person_no)
            .field("period", &self.period)
            .field("amount_fen", &self.amount_fen)
            .field("bank_account", &mask(&self.bank_account))
            .field("paid_on", &self.paid_on)
            .finish()
    }
}

/// A payment as stored, with the import run that brought it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    #[serde(flatten)]
    pub payment: Payment,
    pub run_id: i64,
}

impl fmt::Debug for LedgerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerEntry")
            .field("payment", &self.payment)
            .field("run_id", &self.run_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_exactly_four_digits_a_dash_and_a_real_month() {
        assert_eq!(Period::parse("2026-11"), Ok(Period::new(2026, 11).unwrap()));
        assert_eq!(Period::parse("2026-11").unwrap().to_string(), "2026-11");
        assert_eq!(Period::parse("2026-13"), Err(PeriodError::Month(13)));
        assert_eq!(Period::parse("2026-00"), Err(PeriodError::Month(0)));
        for bad in [
            "2026-1",
            "2026/11",
            "202611",
            "26-11",
            "2026-11-01",
            "",
            "２０２６-11",
        ] {
            assert_eq!(Period::parse(bad), Err(PeriodError::Shape), "{bad}");
        }
    }

    #[test]
    fn periods_follow_the_calendar_across_years() {
        let dec = Period::new(2025, 12).unwrap();
        assert_eq!(dec.succ(), Period::new(2026, 1).unwrap());
        assert_eq!(dec.succ().pred(), dec);
        assert!(dec < dec.succ());
        let d = NaiveDate::from_ymd_opt(2026, 2, 28).unwrap();
        assert_eq!(Period::of(d).to_string(), "2026-02");
        let months: Vec<String> = dec
            .through(Period::new(2026, 2).unwrap())
            .map(|p| p.to_string())
            .collect();
        assert_eq!(months, ["2025-12", "2026-01", "2026-02"]);
        assert_eq!(dec.succ().through(dec).count(), 0);
    }

    #[test]
    fn a_payment_never_shows_its_whole_bank_account() {
        let p = Payment {
            person_no: "4403000000000001".into(),
            period: Period::new(2026, 10).unwrap(),
            amount_fen: 326_850,
            bank_account: "6222021234567890123".into(),
            paid_on: NaiveDate::from_ymd_opt(2026, 10, 15).unwrap(),
        };
        let debug = format!("{p:?}");
        let json = serde_json::to_string(&p).unwrap();
        for shown in [&debug, &json] {
            assert!(!shown.contains("6222021234567890123"), "{shown}");
            assert!(shown.contains("622202*********0123"), "{shown}");
        }
        assert!(json.contains("\"period\":\"2026-10\""), "{json}");
    }
}
