//! Money owed either way, month by month: what was paid after a death (an
//! overpayment, to recover) and what was held from a living person (back
//! pay, owed to them). Pure: plain values in, an itemised answer out; no
//! store, no clock, no rounding (money is integer fen throughout, and every
//! figure is a sum of whole monthly amounts or ledger amounts).
//!
//! Both answers list every month they considered, also those that come to
//! nothing, and say of each whether its figure is the ledger's or an
//! estimate: a caseworker recovering money, or a reviewer approving back
//! pay, must be able to show where each month's figure came from.
//!
//! The ledger is passed as `(period, fen)` pairs for one person (any number
//! per month, in any order) and `covered`: the months the ledger holds any
//! rows for at all, for anyone. A month the ledger covers is known: what it
//! shows for the person was paid, and nothing shown means nothing was paid.
//! A month it does not cover is unknown, and estimated.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::Serialize;

use crate::model::LedgerEntry;
pub use crate::model::Period;

/// One month of an [`Overpayment`] or [`BackPay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MonthOwed {
    pub period: Period,
    /// Fen owed for the month; never negative, may be zero.
    pub fen: i64,
    /// `true` when the ledger does not cover the month and the figure is
    /// the roster's monthly amount (or zero), not a payment seen.
    pub estimated: bool,
}

/// What was paid in a dead person's name after the month of death.
/// `amount_fen = ledger_fen + estimated_fen` = the sum of `months`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overpayment {
    pub amount_fen: i64,
    /// The part the ledger shows was paid.
    pub ledger_fen: i64,
    /// The part estimated for months the ledger does not cover.
    pub estimated_fen: i64,
    /// Every month after the death month up to the last one the payroll may
    /// have paid, in order.
    pub months: Vec<MonthOwed>,
}

/// What is owed to a person whose payment was held and is now resumed.
/// `amount_fen` = the sum of `months`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackPay {
    pub amount_fen: i64,
    /// Every month from the hold's month to the month before the
    /// resumption's, in order.
    pub months: Vec<MonthOwed>,
}

/// The person's ledger as `(period, fen)` pairs, for [`overpayment`] and
/// [`back_pay`].
pub fn ledger_amounts(entries: &[LedgerEntry]) -> Vec<(Period, i64)> {
    entries
        .iter()
        .map(|e| (e.payment.period, e.payment.amount_fen))
        .collect()
}

/// The person's ledger summed per month. A month whose rows sum below zero
/// (only possible if a caller passes reversals; the import refuses them)
/// counts as nothing paid: money owed is never negative.
fn paid_per_month(ledger: &[(Period, i64)]) -> BTreeMap<Period, i64> {
    let mut paid: BTreeMap<Period, i64> = BTreeMap::new();
    for &(period, fen) in ledger {
        let e = paid.entry(period).or_default();
        *e = e.saturating_add(fen);
    }
    for fen in paid.values_mut() {
        *fen = (*fen).max(0);
    }
    paid
}

/// What was paid after a death, month by month.
///
/// The rules, as the agency applies them:
///
/// 1. The pension is due for the month the person died in; nothing in or
///    before that month is ever counted. Counting starts with the month
///    after `death_date`'s month.
/// 2. Counting ends with `paid_until`, included: the last month the payroll
///    may have paid, which is the month before the payment was stopped
///    (held or terminated) or, while it still runs, the current month.
///    When `paid_until` is not after the death month, nothing is owed.
/// 3. For a month the ledger covers (`covered` holds it: the ledger has rows
///    for that month, for anyone), the figure is what the ledger shows paid
///    to this person that month, all rows summed (zero when it shows none:
///    the ledger proves nothing was paid). Not an estimate.
/// 4. For a month the ledger does not cover, the figure is estimated: the
///    roster's `monthly_amount_fen` when the roster said the person was
///    being paid (`roster_was_paying`: status active), else zero.
/// 5. No figure is negative (a negative monthly amount counts as zero), and
///    sums saturate rather than wrap.
pub fn overpayment(
    death_date: NaiveDate,
    monthly_amount_fen: i64,
    ledger: &[(Period, i64)],
    covered: &BTreeSet<Period>,
    paid_until: Period,
    roster_was_paying: bool,
) -> Overpayment {
    let paid = paid_per_month(ledger);
    let monthly = monthly_amount_fen.max(0);
    let months: Vec<MonthOwed> = Period::of(death_date)
        .succ()
        .through(paid_until)
        .map(|period| {
            if covered.contains(&period) {
                MonthOwed {
                    period,
                    fen: paid.get(&period).copied().unwrap_or(0),
                    estimated: false,
                }
            } else {
                MonthOwed {
                    period,
                    fen: if roster_was_paying { monthly } else { 0 },
                    estimated: true,
                }
            }
        })
        .collect();
    let sum = |estimated: bool| {
        months
            .iter()
            .filter(|m| m.estimated == estimated)
            .fold(0i64, |acc, m| acc.saturating_add(m.fen))
    };
    let (ledger_fen, estimated_fen) = (sum(false), sum(true));
    Overpayment {
        amount_fen: ledger_fen.saturating_add(estimated_fen),
        ledger_fen,
        estimated_fen,
        months,
    }
}

/// What is owed to a living person for the months their payment was held,
/// month by month.
///
/// The rules, as the agency applies them:
///
/// 1. The months are those from the month of `held_from` up to the month
///    before `resumed_on`'s month, both included: the resumption's own
///    month is paid by the payroll as usual once resumed. A hold resumed in
///    its own month owes nothing back.
/// 2. For a month the ledger covers: when it shows no payment to the
///    person (nothing, or rows summing to zero), the whole
///    `monthly_amount_fen` is owed; when it shows any payment, nothing is
///    owed for that month (the month was paid; a different amount then is
///    the roster's business, not back pay's).
/// 3. For a month the ledger does not cover, the monthly amount is owed,
///    marked estimated: the person must not lose a month because the
///    ledger was not read back; the reviewer sees which months to check.
/// 4. No figure is negative (a negative monthly amount counts as zero), and
///    sums saturate rather than wrap.
pub fn back_pay(
    held_from: NaiveDate,
    resumed_on: NaiveDate,
    monthly_amount_fen: i64,
    ledger: &[(Period, i64)],
    covered: &BTreeSet<Period>,
) -> BackPay {
    let paid = paid_per_month(ledger);
    let monthly = monthly_amount_fen.max(0);
    let months: Vec<MonthOwed> = Period::of(held_from)
        .through(Period::of(resumed_on).pred())
        .map(|period| {
            if covered.contains(&period) {
                let was_paid = paid.get(&period).is_some_and(|&fen| fen > 0);
                MonthOwed {
                    period,
                    fen: if was_paid { 0 } else { monthly },
                    estimated: false,
                }
            } else {
                MonthOwed {
                    period,
                    fen: monthly,
                    estimated: true,
                }
            }
        })
        .collect();
    BackPay {
        amount_fen: months.iter().fold(0i64, |acc, m| acc.saturating_add(m.fen)),
        months,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Period {
        Period::parse(s).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn set(periods: &[&str]) -> BTreeSet<Period> {
        periods.iter().map(|s| p(s)).collect()
    }

    fn owed(months: &[MonthOwed]) -> Vec<(String, i64, bool)> {
        months
            .iter()
            .map(|m| (m.period.to_string(), m.fen, m.estimated))
            .collect()
    }

    #[test]
    fn the_death_month_is_due_and_later_months_come_from_the_ledger_or_an_estimate() {
        // Died 2026-07-20; stopped in November, so October is the last
        // month the payroll may have paid. The ledger covers Aug and Sep.
        let ledger = [
            (p("2026-07"), 326_850), // the death month: due, never counted
            (p("2026-08"), 326_850),
            (p("2026-09"), 300_000),
            (p("2026-09"), 26_850), // two rows in one month are summed
        ];
        let o = overpayment(
            day("2026-07-20"),
            326_850,
            &ledger,
            &set(&["2026-07", "2026-08", "2026-09"]),
            p("2026-10"),
            true,
        );
        assert_eq!(
            owed(&o.months),
            [
                ("2026-08".into(), 326_850, false),
                ("2026-09".into(), 326_850, false),
                ("2026-10".into(), 326_850, true),
            ]
        );
        assert_eq!(
            (o.ledger_fen, o.estimated_fen, o.amount_fen),
            (653_700, 326_850, 980_550)
        );
    }

    #[test]
    fn a_covered_month_without_a_payment_owes_nothing_and_is_not_an_estimate() {
        let o = overpayment(
            day("2026-07-31"),
            326_850,
            &[],
            &set(&["2026-08"]),
            p("2026-08"),
            true,
        );
        assert_eq!(owed(&o.months), [("2026-08".into(), 0, false)]);
        assert_eq!(o.amount_fen, 0);
    }

    #[test]
    fn uncovered_months_are_estimated_only_when_the_roster_was_paying() {
        let o = overpayment(
            day("2026-07-01"),
            326_850,
            &[],
            &BTreeSet::new(),
            p("2026-09"),
            false,
        );
        assert_eq!(
            owed(&o.months),
            [("2026-08".into(), 0, true), ("2026-09".into(), 0, true)]
        );
        assert_eq!(o.amount_fen, 0);
    }

    #[test]
    fn nothing_is_owed_when_payment_stopped_in_the_death_month() {
        let o = overpayment(
            day("2026-07-20"),
            326_850,
            &[(p("2026-07"), 326_850)],
            &set(&["2026-07"]),
            p("2026-07"),
            true,
        );
        assert!(o.months.is_empty());
        assert_eq!(o.amount_fen, 0);
        // And across a year end: died in December, paid through January.
        let o = overpayment(
            day("2025-12-31"),
            100,
            &[],
            &BTreeSet::new(),
            p("2026-01"),
            true,
        );
        assert_eq!(owed(&o.months), [("2026-01".into(), 100, true)]);
    }

    #[test]
    fn back_pay_owes_unpaid_and_unknown_months_from_the_hold_to_before_the_resumption() {
        // Held 2026-08-10, resumed 2026-11-03: August to October.
        // August was paid before the hold took effect; September the
        // ledger shows unpaid; October it does not cover.
        let b = back_pay(
            day("2026-08-10"),
            day("2026-11-03"),
            326_850,
            &[(p("2026-08"), 326_850), (p("2026-07"), 326_850)],
            &set(&["2026-07", "2026-08", "2026-09"]),
        );
        assert_eq!(
            owed(&b.months),
            [
                ("2026-08".into(), 0, false),
                ("2026-09".into(), 326_850, false),
                ("2026-10".into(), 326_850, true),
            ]
        );
        assert_eq!(b.amount_fen, 653_700);
    }

    #[test]
    fn a_hold_resumed_in_its_own_month_owes_nothing_back() {
        let b = back_pay(
            day("2026-08-10"),
            day("2026-08-25"),
            326_850,
            &[],
            &BTreeSet::new(),
        );
        assert!(b.months.is_empty());
        assert_eq!(b.amount_fen, 0);
        // Resumed before it was held (bad input): still nothing, no panic.
        let b = back_pay(
            day("2026-08-10"),
            day("2026-05-01"),
            326_850,
            &[],
            &BTreeSet::new(),
        );
        assert_eq!(b.amount_fen, 0);
    }

    #[test]
    fn negative_amounts_never_make_a_negative_debt() {
        let o = overpayment(
            day("2026-01-15"),
            -500,
            &[(p("2026-02"), -300)],
            &set(&["2026-02"]),
            p("2026-03"),
            true,
        );
        assert!(o.months.iter().all(|m| m.fen == 0), "{o:?}");
        let b = back_pay(
            day("2026-01-15"),
            day("2026-03-01"),
            -500,
            &[],
            &BTreeSet::new(),
        );
        assert_eq!(b.amount_fen, 0);
    }

    fn arb_period() -> impl Strategy<Value = Period> {
        (2000i32..2030, 1u32..=12).prop_map(|(y, m)| Period::new(y, m).unwrap())
    }

    fn arb_date() -> impl Strategy<Value = NaiveDate> {
        (2000i32..2030, 1u32..=12, 1u32..=28)
            .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    fn arb_ledger() -> impl Strategy<Value = (Vec<(Period, i64)>, BTreeSet<Period>)> {
        (
            prop::collection::vec((arb_period(), -1_000i64..1_000_000), 0..40),
            prop::collection::btree_set(arb_period(), 0..60),
        )
    }

    proptest! {
        #[test]
        fn an_overpayment_adds_up_and_starts_after_the_death_month(
            death in arb_date(),
            monthly in -1_000i64..2_000_000,
            (ledger, covered) in arb_ledger(),
            paid_until in arb_period(),
            paying in any::<bool>(),
        ) {
            let o = overpayment(death, monthly, &ledger, &covered, paid_until, paying);
            let total: i64 = o.months.iter().map(|m| m.fen).sum();
            prop_assert_eq!(total, o.amount_fen);
            prop_assert_eq!(o.ledger_fen + o.estimated_fen, o.amount_fen);
            prop_assert!(o.ledger_fen >= 0 && o.estimated_fen >= 0);
            let mut last = Period::of(death);
            for m in &o.months {
                prop_assert!(m.fen >= 0);
                // Strictly after the death month, consecutive, never past paid_until.
                prop_assert_eq!(m.period, last.succ());
                prop_assert!(m.period <= paid_until);
                prop_assert_eq!(m.estimated, !covered.contains(&m.period));
                if m.estimated && !paying {
                    prop_assert_eq!(m.fen, 0);
                }
                last = m.period;
            }
            // Every month up to paid_until is there.
            match o.months.last() {
                Some(m) => prop_assert_eq!(m.period, paid_until),
                None => prop_assert!(paid_until <= Period::of(death)),
            }
        }

        #[test]
        fn back_pay_adds_up_and_covers_the_held_months_exactly(
            held in arb_date(),
            resumed in arb_date(),
            monthly in -1_000i64..2_000_000,
            (ledger, covered) in arb_ledger(),
        ) {
            let b = back_pay(held, resumed, monthly, &ledger, &covered);
            let total: i64 = b.months.iter().map(|m| m.fen).sum();
            prop_assert_eq!(total, b.amount_fen);
            let first = Period::of(held);
            let end = Period::of(resumed);
            let want: Vec<Period> = first.through(end.pred()).collect();
            let got: Vec<Period> = b.months.iter().map(|m| m.period).collect();
            prop_assert_eq!(got, want);
            for m in &b.months {
                prop_assert!(m.fen == 0 || m.fen == monthly.max(0));
                prop_assert_eq!(m.estimated, !covered.contains(&m.period));
            }
        }

        /// More ledger rows for the person can only lower what back pay
        /// owes, never raise it.
        #[test]
        fn a_payment_seen_never_raises_back_pay(
            held in arb_date(),
            resumed in arb_date(),
            monthly in 0i64..2_000_000,
            (ledger, covered) in arb_ledger(),
            extra in (arb_period(), 1i64..1_000_000),
        ) {
            let before = back_pay(held, resumed, monthly, &ledger, &covered).amount_fen;
            let mut more = ledger.clone();
            more.push(extra);
            let after = back_pay(held, resumed, monthly, &more, &covered).amount_fen;
            prop_assert!(after <= before);
        }
    }
}
