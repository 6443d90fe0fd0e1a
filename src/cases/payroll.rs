//! What vigil hands the payroll system each month (spec §8), and whether
//! the payroll did it. vigil pays no one: its decisions (suspend,
//! terminate, resume, back pay) reach the payroll only through this file,
//! and the ledger read back (spec §7) shows whether they were applied.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::money::Period;
use super::open::PaymentState;
use crate::store::cases::PaymentChangeRow;
use crate::store::{Store, StoreError};

/// The CSV header of the instruction file, exactly.
pub const HEADER: [&str; 5] = [
    "person_no",
    "instruction",
    "effective_from",
    "amount_fen",
    "case_id",
];

/// One line of the instruction file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    pub person_no: String,
    /// `suspend`, `terminate`, `resume` or `back_pay`.
    pub instruction: String,
    pub effective_from: NaiveDate,
    /// The back pay owed; `None` for the other instructions.
    pub amount_fen: Option<i64>,
    pub case_id: i64,
}

/// The instructions of payroll month `period`, from the payment changes
/// vigil decided in it (pure; `changes` are every change, oldest first).
///
/// Per pensioner, the state changes of the month come down to one line:
/// the last one, unless the month ends where it began (held and resumed
/// within it, which leaves nothing for the payroll to change). Each back
/// pay is a line of its own. Lines are in person-number order, a state
/// line before its back pay; the same changes give the same file.
pub fn instructions_for(period: &str, changes: &[PaymentChangeRow]) -> Vec<Instruction> {
    let mut before: HashMap<&str, PaymentState> = HashMap::new();
    let mut in_month: HashMap<&str, Vec<&PaymentChangeRow>> = HashMap::new();
    for c in changes {
        if c.period.as_str() < period {
            let s = before.entry(&c.person_no).or_default();
            *s = s.after(&c.change);
        } else if c.period == period {
            in_month.entry(&c.person_no).or_default().push(c);
        }
    }
    let mut persons: Vec<&str> = in_month.keys().copied().collect();
    persons.sort_unstable();
    let mut out = Vec::new();
    for person in persons {
        let month = &in_month[person];
        let start = before.get(person).copied().unwrap_or_default();
        let last_state = month.iter().rev().find(|c| c.change != "back_pay");
        if let Some(last) = last_state {
            let end = start.after(&last.change);
            let paying =
                |s: PaymentState| matches!(s, PaymentState::Untouched | PaymentState::Resumed);
            let unchanged = end == start || (paying(end) && paying(start));
            if !unchanged {
                out.push(line(last));
            }
        }
        out.extend(
            month
                .iter()
                .filter(|c| c.change == "back_pay")
                .map(|c| line(c)),
        );
    }
    out
}

fn line(c: &PaymentChangeRow) -> Instruction {
    Instruction {
        person_no: c.person_no.clone(),
        instruction: c.change.clone(),
        effective_from: c.effective_from,
        amount_fen: c.amount_fen.filter(|_| c.change == "back_pay"),
        case_id: c.case_id,
    }
}

/// The instructions of payroll month `period`, from the store.
pub async fn instructions(store: &Store, period: Period) -> Result<Vec<Instruction>, StoreError> {
    let changes = store.payment_changes().await?;
    Ok(instructions_for(&period.to_string(), &changes))
}

/// Writes the instruction file as CSV.
pub fn write_csv(w: impl std::io::Write, lines: &[Instruction]) -> std::io::Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    csv.write_record(HEADER)?;
    for l in lines {
        csv.write_record([
            l.person_no.as_str(),
            &l.instruction,
            &l.effective_from.format("%Y-%m-%d").to_string(),
            &l.amount_fen.map(|f| f.to_string()).unwrap_or_default(),
            &l.case_id.to_string(),
        ])?;
    }
    csv.flush()
}

/// A stop the payroll did not apply: the ledger shows the pensioner paid
/// for a month after vigil told it to suspend or terminate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotApplied {
    pub person_no: String,
    pub instruction: String,
    pub effective_from: NaiveDate,
    pub case_id: i64,
    /// The months paid after the instruction's month.
    pub paid_periods: Vec<String>,
}

/// Whether the payroll applied vigil's stop for one pensioner: `None` when
/// vigil has not stopped the payment or the ledger shows nothing paid
/// after the stop's payroll month.
pub async fn stop_not_applied(
    store: &Store,
    person_no: &str,
) -> Result<Option<NotApplied>, StoreError> {
    let changes = store.payment_changes_of(person_no).await?;
    let Some(last) = changes.iter().rev().find(|c| c.change != "back_pay") else {
        return Ok(None);
    };
    if last.change != "suspend" && last.change != "terminate" {
        return Ok(None);
    }
    let Ok(period) = Period::parse(&last.period) else {
        return Ok(None);
    };
    let paid = store.paid_periods_since(person_no, period.succ()).await?;
    if paid.is_empty() {
        return Ok(None);
    }
    Ok(Some(NotApplied {
        person_no: person_no.to_string(),
        instruction: last.change.clone(),
        effective_from: last.effective_from,
        case_id: last.case_id,
        paid_periods: paid.iter().map(|(p, _)| p.to_string()).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(
        id: i64,
        person: &str,
        change: &str,
        period: &str,
        fen: Option<i64>,
    ) -> PaymentChangeRow {
        PaymentChangeRow {
            id,
            person_no: person.into(),
            change: change.into(),
            effective_from: NaiveDate::from_ymd_opt(2026, 11, 5).unwrap(),
            amount_fen: fen,
            case_id: 10 + id,
            period: period.into(),
            at: String::new(),
        }
    }

    #[test]
    fn a_month_gives_one_state_line_per_pensioner_and_each_back_pay() {
        let changes = vec![
            change(1, "B", "suspend", "2026-10", None),
            change(2, "A", "suspend", "2026-11", None),
            change(3, "A", "terminate", "2026-11", None),
            change(4, "B", "resume", "2026-11", None),
            change(5, "B", "back_pay", "2026-11", Some(653_700)),
            change(6, "C", "suspend", "2026-11", None),
            change(7, "C", "resume", "2026-11", None),
        ];
        let lines = instructions_for("2026-11", &changes);
        let got: Vec<(&str, &str, Option<i64>)> = lines
            .iter()
            .map(|l| (l.person_no.as_str(), l.instruction.as_str(), l.amount_fen))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "terminate", None),
                ("B", "resume", None),
                ("B", "back_pay", Some(653_700)),
            ],
            "C was held and resumed within the month: nothing for the payroll"
        );
        assert!(instructions_for("2026-12", &changes).is_empty());
        assert_eq!(instructions_for("2026-10", &changes).len(), 1);
    }

    #[test]
    fn the_same_changes_give_the_same_file() {
        let changes = vec![
            change(1, "B", "suspend", "2026-11", None),
            change(2, "A", "suspend", "2026-11", None),
        ];
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_csv(&mut a, &instructions_for("2026-11", &changes)).unwrap();
        write_csv(&mut b, &instructions_for("2026-11", &changes)).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        assert!(text.starts_with("person_no,instruction,effective_from,amount_fen,case_id\n"));
        assert!(text.contains("\nA,suspend,2026-11-05,,12\n"), "{text}");
    }
}
