//! The pensioners themselves, and every per-pensioner file: the roster, the
//! payment ledger, evidence of life and video results. Generation runs in
//! fixed-size chunks, each from its own random stream, in two passes: first
//! the people (in parallel), then, after ID numbers were made unique across
//! chunks in index order, their rows (in parallel again). A pensioner's fate
//! (dies in the window, falsely reported dead, emigrates, or serves as the
//! model for a hard-negative outsider) is decided here too, so that the files
//! written now already agree with the death records written later.

use chrono::{Datelike, Days, Months, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::fmt::{id_key, id15_of, id18, push_date, push_padded, push_uint, push_yuan};
use super::names::{Name, sample_name};
use super::regions::Regions;
use super::sample::{FastSet, Stage, Weighted, stream};
use crate::identity::Sex;

/// Pensioners per chunk: big enough to amortise a chunk's overhead, small
/// enough that a batch of chunks in flight stays a few tens of megabytes.
pub(crate) const CHUNK: u64 = 65_536;

/// Youngest and oldest age at the export date.
const MIN_AGE: u32 = 55;
const MAX_AGE: u32 = 105;

/// Relative number of pensioners per age, 55..=105: most are 60–80, few
/// pass 95 (the shape of China's retired population).
fn age_weight(age: u32) -> u64 {
    match age {
        55..=59 => 700,
        60..=69 => 1000,
        70..=74 => 800,
        75..=79 => 600,
        80..=84 => 400,
        85..=89 => 200,
        90..=94 => 80,
        95..=99 => 20,
        _ => 3,
    }
}

/// Relative mortality by age (Gompertz: doubles about every 8 years).
fn mortality(age: u32) -> f64 {
    (0.085 * (f64::from(age) - 75.0)).exp()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Active,
    Suspended,
    Terminated,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Terminated => "terminated",
        }
    }
}

/// The hard negatives an outsider death can be built on, each modelled on a
/// living pensioner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HardKind {
    /// Same name and birth date, different person and ID.
    Doppelganger,
    /// Opposite sex, close age, same address: the husband or wife.
    Spouse,
    /// A relative whose death record carries the pensioner's ID.
    Informant,
}

/// What happens to a pensioner in the death sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Alive,
    /// Died on this date, still active in the roster and still paid.
    Dies(NaiveDate),
    /// Wrongly reported dead on this date by one source; alive, with proof after it.
    FalseDeath(NaiveDate),
    /// A non-death household cancellation on this date (emigration, moving away).
    NonDeath(NaiveDate, &'static str),
    /// Alive; a dead outsider resembling them appears in the sources.
    Template(HardKind),
}

#[derive(Debug, Clone)]
pub(crate) struct Pensioner {
    /// Position in the roster; also the tail of the person number.
    pub index: u64,
    pub name: Name,
    pub sex: Sex,
    pub birth: NaiveDate,
    /// Region part of the ID number (where it was issued).
    pub id_county: u32,
    /// Sequence part of the ID number; odd for men, even for women.
    pub seq: u16,
    /// The roster still shows the pre-1999 15-digit number.
    pub legacy15: bool,
    pub insured: u32,
    pub residence: u32,
    pub employee: bool,
    pub amount_fen: u32,
    pub bank: u64,
    pub start: NaiveDate,
    pub status: Status,
    pub last_certified: Option<NaiveDate>,
    /// 0 when the roster has no phone.
    pub phone: u64,
    pub fate: Fate,
}

impl Pensioner {
    pub(crate) fn person_no(&self) -> u64 {
        u64::from(self.insured) * 10_000_000_000 + self.index
    }

    pub(crate) fn id(&self) -> [u8; 18] {
        id18(self.id_county, self.birth, self.seq)
    }

    pub(crate) fn id_key(&self) -> u64 {
        id_key(self.id_county, self.birth, self.seq)
    }
}

/// Everything run-wide the chunks need, computed once.
pub(crate) struct Plan {
    pub seed: u64,
    pub pensioners: u64,
    pub as_of: NaiveDate,
    pub regions: Regions,
    ages: Weighted,
    /// Death probability per unit of `mortality(age)` for an active pensioner.
    death_scale: f64,
    p_false_death: f64,
    p_non_death: f64,
    p_template: f64,
    /// The payment period (the month before `as_of`) and its pay day.
    pub period: NaiveDate,
    pub paid_on: NaiveDate,
}

impl Plan {
    pub(crate) fn new(
        seed: u64,
        pensioners: u64,
        as_of: NaiveDate,
        death_rate: f64,
        outsider_deaths: f64,
        false_deaths: f64,
        regions: Regions,
    ) -> Self {
        let ages = Weighted::new((MIN_AGE..=MAX_AGE).map(age_weight));
        let total: u64 = (MIN_AGE..=MAX_AGE).map(age_weight).sum();
        let mean_mortality: f64 = (MIN_AGE..=MAX_AGE)
            .map(|a| age_weight(a) as f64 * mortality(a))
            .sum::<f64>()
            / total as f64;
        // Only active pensioners die in the window (the point is that they
        // are still active), so the rate is scaled up by the active share.
        let death_scale = death_rate / 0.97 / mean_mortality;
        let first_of_month = as_of.with_day(1).unwrap_or(as_of);
        let period = first_of_month
            .checked_sub_months(Months::new(1))
            .unwrap_or(first_of_month);
        Plan {
            seed,
            pensioners,
            as_of,
            regions,
            ages,
            death_scale,
            p_false_death: death_rate * false_deaths,
            // Non-death cancellations are ~20% of deaths; about a third of
            // those are pensioners (mostly emigrating).
            p_non_death: death_rate * 0.2 * 0.35,
            // A little more than needed: the deaths stage uses what it must.
            p_template: (death_rate * outsider_deaths * 0.5).min(0.3),
            period,
            paid_on: period.with_day(15).unwrap_or(period),
        }
    }

    pub(crate) fn chunks(&self) -> u64 {
        self.pensioners.div_ceil(CHUNK)
    }

    pub(crate) fn sample_age(&self, rng: &mut impl Rng) -> u32 {
        MIN_AGE + self.ages.pick(rng) as u32
    }

    pub(crate) fn days_before(&self, days: u64) -> NaiveDate {
        self.as_of
            .checked_sub_days(Days::new(days))
            .unwrap_or(self.as_of)
    }
}

/// A birth date that makes the person exactly `age` at `as_of`.
pub(crate) fn birth_for_age(as_of: NaiveDate, age: u32, rng: &mut impl Rng) -> NaiveDate {
    let anchor = as_of
        .checked_sub_months(Months::new(12 * age))
        .unwrap_or(as_of);
    anchor
        .checked_sub_days(Days::new(rng.random_range(0..365)))
        .unwrap_or(anchor)
}

/// Whole years from `birth` to `on` (周岁).
pub(crate) fn age_on(birth: NaiveDate, on: NaiveDate) -> i32 {
    let mut years = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years
}

/// Bank BINs of the big state banks' debit cards, which pensions are paid to.
const BINS: [u64; 6] = [622202, 622848, 621700, 621661, 622262, 621799];

/// A 19-digit card number: BIN, 12 digits, Luhn check digit.
fn bank_account(rng: &mut impl Rng) -> u64 {
    let body = BINS[rng.random_range(0..BINS.len())] * 1_000_000_000_000
        + rng.random_range(0..1_000_000_000_000);
    let mut sum = 0;
    let mut v = body;
    let mut double = true;
    while v > 0 {
        let mut d = v % 10;
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
        v /= 10;
    }
    body * 10 + (10 - sum % 10) % 10
}

const PHONE_PREFIXES: [u64; 20] = [
    130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 153, 158, 159, 180, 186, 187, 188,
    189,
];

/// The first pass: one chunk's pensioners, without output.
pub(crate) fn people(plan: &Plan, chunk: u64) -> Vec<Pensioner> {
    let mut rng = stream(plan.seed, Stage::People, chunk);
    let first = chunk * CHUNK;
    let last = (first + CHUNK).min(plan.pensioners);
    (first..last)
        .map(|index| pensioner(plan, index, &mut rng))
        .collect()
}

fn pensioner(plan: &Plan, index: u64, rng: &mut ChaCha8Rng) -> Pensioner {
    let as_of = plan.as_of;
    let age = plan.sample_age(rng);
    // Women retire at 50 or 55, men at 60, and women live longer.
    let female = if age < 60 {
        rng.random_bool(0.85)
    } else {
        rng.random_bool(0.55)
    };
    let sex = if female { Sex::Female } else { Sex::Male };
    let minority = rng.random_bool(0.008);
    let name = sample_name(rng, sex, minority);
    let birth = birth_for_age(as_of, age, rng);
    let id_county = if minority {
        plan.regions.minority_county(rng)
    } else {
        plan.regions.county(rng)
    };
    let seq = 2 * rng.random_range(0..500u16) + u16::from(sex == Sex::Male);
    let legacy15 = birth.year() < 2000 && rng.random_bool(0.002);
    let insured = if rng.random_bool(0.85) {
        id_county
    } else {
        plan.regions.same_city(id_county, rng)
    };
    let residence = if rng.random_bool(0.08) {
        plan.regions.other_province(insured, rng)
    } else {
        insured
    };
    // Under 60 only the employee scheme pays; overall ~60% employee.
    let employee = age < 60 || rng.random_bool(0.56);
    let amount_fen = if employee {
        200_000 + (400_000.0 * rng.random::<f64>().powf(1.6)) as u32
    } else {
        15_000 + (45_000.0 * rng.random::<f64>().powi(2)) as u32
    };
    let bank = bank_account(rng);
    let start_age = if !employee {
        60
    } else if female {
        if rng.random_bool(0.6) { 50 } else { 55 }
    } else if rng.random_bool(0.9) {
        60
    } else {
        55
    };
    let start = benefit_start(birth, start_age, employee, as_of);
    let status = match rng.random_range(0..100) {
        0..97 => Status::Active,
        97..99 => Status::Suspended,
        _ => Status::Terminated,
    };
    let fate = if status == Status::Active {
        draw_fate(plan, age, rng)
    } else {
        Fate::Alive
    };
    let last_certified = if rng.random_bool(0.05) {
        None
    } else if let Fate::Dies(d) = fate {
        // Certified while still alive, never after the death.
        d.checked_sub_days(Days::new(rng.random_range(1..=300)))
    } else {
        Some(plan.days_before(rng.random_range(0..365)))
    };
    let phone = if rng.random_bool(0.1) {
        0
    } else {
        PHONE_PREFIXES[rng.random_range(0..PHONE_PREFIXES.len())] * 100_000_000
            + rng.random_range(0..100_000_000)
    };
    Pensioner {
        index,
        name,
        sex,
        birth,
        id_county,
        seq,
        legacy15,
        insured,
        residence,
        employee,
        amount_fen,
        bank,
        start,
        status,
        last_certified,
        phone,
        fate,
    }
}

/// Benefits start the month after the retirement birthday; the resident
/// scheme only began paying in 2009–2011.
fn benefit_start(birth: NaiveDate, start_age: u32, employee: bool, as_of: NaiveDate) -> NaiveDate {
    let birthday = birth
        .checked_add_months(Months::new(12 * start_age + 1))
        .unwrap_or(birth);
    let mut start = birthday.with_day(1).unwrap_or(birthday);
    if !employee {
        let scheme = NaiveDate::from_ymd_opt(2011, 7, 1).unwrap_or(start);
        start = start.max(scheme);
    }
    start.min(as_of.with_day(1).unwrap_or(as_of))
}

fn draw_fate(plan: &Plan, age: u32, rng: &mut ChaCha8Rng) -> Fate {
    let p_die = (plan.death_scale * mortality(age)).min(0.9);
    let u: f64 = rng.random();
    let mut edge = p_die;
    if u < edge {
        return Fate::Dies(plan.days_before(rng.random_range(1..=60)));
    }
    edge += plan.p_false_death;
    if u < edge {
        return Fate::FalseDeath(plan.days_before(rng.random_range(5..=60)));
    }
    edge += plan.p_non_death;
    if u < edge {
        let reason = if rng.random_bool(0.7) {
            "出国"
        } else {
            "迁出"
        };
        return Fate::NonDeath(plan.days_before(rng.random_range(0..=60)), reason);
    }
    edge += plan.p_template;
    if u < edge {
        let kind = match rng.random_range(0..3) {
            0 => HardKind::Doppelganger,
            1 => HardKind::Spouse,
            _ => HardKind::Informant,
        };
        return Fate::Template(kind);
    }
    Fate::Alive
}

/// Makes every ID number in `people` unique against `taken` (and adds them),
/// stepping the sequence by two so the sex digit stays right. Runs in roster
/// order on one thread, so the result does not depend on the thread count.
/// Returns false if some (region, birth date, sex) ran out of sequence numbers.
pub(crate) fn make_ids_unique(people: &mut [Pensioner], taken: &mut FastSet) -> bool {
    for p in people {
        let mut tries = 0;
        while !taken.insert(p.id_key()) {
            p.seq = (p.seq + 2) % 1000;
            tries += 1;
            if tries >= 500 {
                return false;
            }
        }
    }
    true
}

/// One chunk's rows for each per-pensioner file.
#[derive(Default)]
pub(crate) struct ChunkOut {
    pub people: u64,
    pub roster: Vec<u8>,
    pub payments: Vec<u8>,
    pub payment_rows: u64,
    pub evidence: Vec<u8>,
    pub evidence_rows: u64,
    pub video: Vec<u8>,
    pub video_rows: u64,
}

pub(crate) const ROSTER_HEADER: &str = "person_no,name,id_number,sex,birth_date,insured_region,residence_region,benefit_type,monthly_amount,bank_account,benefit_start,status,last_certified,phone\n";
pub(crate) const PAYMENTS_HEADER: &str = "person_no,period,amount,bank_account,paid_on\n";
pub(crate) const EVIDENCE_HEADER: &str = "id_number,event_type,event_date,source_ref\n";
pub(crate) const VIDEO_HEADER: &str = "id_number,session_at,result,operator,note\n";

const EVENT_TYPES: [(&str, &str, u32); 5] = [
    ("medical_settlement", "MS", 35),
    ("bank_counter", "BC", 25),
    ("face_app", "FA", 25),
    ("in_person_service", "IP", 10),
    ("video_verified", "VV", 5),
];

/// The second pass: one chunk's rows. Draws from its own stream so the
/// first pass can change without shifting these.
pub(crate) fn rows(plan: &Plan, chunk: u64, people: &[Pensioner]) -> ChunkOut {
    let mut rng = stream(plan.seed, Stage::Extras, chunk);
    let n = people.len();
    let mut out = ChunkOut {
        people: n as u64,
        roster: Vec::with_capacity(n * 180),
        payments: Vec::with_capacity(n * 64),
        evidence: Vec::with_capacity(n * 30),
        video: Vec::with_capacity(n * 4),
        ..ChunkOut::default()
    };
    for p in people {
        roster_row(&mut out.roster, p);
        if p.status == Status::Active {
            payment_row(&mut out.payments, plan, p);
            out.payment_rows += 1;
        }
        out.evidence_rows += evidence_rows(&mut out.evidence, plan, p, &mut rng);
        out.video_rows += video_rows(&mut out.video, plan, p, &mut rng);
    }
    out
}

fn roster_row(b: &mut Vec<u8>, p: &Pensioner) {
    push_padded(b, p.person_no(), 16);
    b.push(b',');
    p.name.push_to(b);
    b.push(b',');
    let id = p.id();
    if p.legacy15 {
        b.extend_from_slice(&id15_of(&id));
    } else {
        b.extend_from_slice(&id);
    }
    b.push(b',');
    b.push(b'0' + p.sex.code());
    b.push(b',');
    push_date(b, p.birth);
    b.push(b',');
    push_padded(b, u64::from(p.insured), 6);
    b.push(b',');
    push_padded(b, u64::from(p.residence), 6);
    b.extend_from_slice(if p.employee {
        b",employee_basic,"
    } else {
        b",resident_basic,"
    });
    push_yuan(b, u64::from(p.amount_fen));
    b.push(b',');
    push_uint(b, p.bank);
    b.push(b',');
    push_date(b, p.start);
    b.push(b',');
    b.extend_from_slice(p.status.as_str().as_bytes());
    b.push(b',');
    if let Some(d) = p.last_certified {
        push_date(b, d);
    }
    b.push(b',');
    if p.phone != 0 {
        push_uint(b, p.phone);
    }
    b.push(b'\n');
}

fn payment_row(b: &mut Vec<u8>, plan: &Plan, p: &Pensioner) {
    push_padded(b, p.person_no(), 16);
    b.push(b',');
    push_padded(b, plan.period.year() as u64, 4);
    b.push(b'-');
    push_padded(b, u64::from(plan.period.month()), 2);
    b.push(b',');
    push_yuan(b, u64::from(p.amount_fen));
    b.push(b',');
    push_uint(b, p.bank);
    b.push(b',');
    push_date(b, plan.paid_on);
    b.push(b'\n');
}

/// Proof-of-life events: a sample of the living in the last year; a few of
/// the dead, always before their death; and for the falsely reported dead,
/// after the supposed death (that is how the error is caught).
fn evidence_rows(b: &mut Vec<u8>, plan: &Plan, p: &Pensioner, rng: &mut ChaCha8Rng) -> u64 {
    let (count, lo, hi) = match p.fate {
        Fate::Dies(d) => {
            if !rng.random_bool(0.3) {
                return 0;
            }
            (
                rng.random_range(1..=2),
                plan.days_before(365),
                d.pred_opt().unwrap_or(d),
            )
        }
        Fate::FalseDeath(d) => (
            rng.random_range(1..=2),
            d.succ_opt().unwrap_or(d),
            plan.as_of,
        ),
        _ => {
            if p.status == Status::Terminated || !rng.random_bool(0.2) {
                return 0;
            }
            (rng.random_range(1..=3), plan.days_before(365), plan.as_of)
        }
    };
    let span = (hi - lo).num_days().max(0) as u64;
    let id = p.id();
    for k in 0..count {
        let date = lo
            .checked_add_days(Days::new(rng.random_range(0..=span)))
            .unwrap_or(lo);
        let mut pick = rng.random_range(0..100);
        let mut event = EVENT_TYPES[0];
        for e in EVENT_TYPES {
            if pick < e.2 {
                event = e;
                break;
            }
            pick -= e.2;
        }
        b.extend_from_slice(&id);
        b.push(b',');
        b.extend_from_slice(event.0.as_bytes());
        b.push(b',');
        push_date(b, date);
        b.push(b',');
        b.extend_from_slice(event.1.as_bytes());
        b.push(b'-');
        push_padded(b, p.index, 10);
        b.push(b'-');
        push_uint(b, k);
        b.push(b'\n');
    }
    count
}

/// Remote video sessions: a sample of the living, and some of the dead with a
/// session after the death nobody could have passed honestly.
fn video_rows(b: &mut Vec<u8>, plan: &Plan, p: &Pensioner, rng: &mut ChaCha8Rng) -> u64 {
    let (date, result, note) = match p.fate {
        Fate::Dies(d) => {
            if !rng.random_bool(0.1) {
                return 0;
            }
            let span = (plan.as_of - d).num_days().max(1) as u64;
            let date = d
                .checked_add_days(Days::new(rng.random_range(1..=span)))
                .unwrap_or(d);
            match rng.random_range(0..3) {
                0 => (date, "failed", "他人代答"),
                1 => (date, "failed", "人脸比对未通过"),
                _ => (date, "no_show", "电话无人接听"),
            }
        }
        _ => {
            if p.status == Status::Terminated || !rng.random_bool(0.02) {
                return 0;
            }
            let date = plan.days_before(rng.random_range(0..180));
            match rng.random_range(0..100) {
                0..88 => (date, "passed", ""),
                88..92 => (date, "failed", "人脸比对未通过"),
                92..95 => (date, "no_show", "电话无人接听"),
                _ => (date, "no_show", ""),
            }
        }
    };
    b.extend_from_slice(&p.id());
    b.push(b',');
    push_date(b, date);
    b.push(b'T');
    let minute = rng.random_range(8 * 60 + 30..17 * 60 + 30);
    push_padded(b, minute / 60, 2);
    b.push(b':');
    push_padded(b, minute % 60, 2);
    b.extend_from_slice(b":00+08:00,");
    b.extend_from_slice(result.as_bytes());
    b.extend_from_slice(b",op");
    push_padded(b, rng.random_range(1..=40), 3);
    b.push(b',');
    b.extend_from_slice(note.as_bytes());
    b.push(b'\n');
    1
}
