//! Deaths and the records the three death sources hold about them. The
//! events come from the roster pass (pensioners who die, are falsely reported
//! dead, or emigrate; living pensioners chosen as models for hard negatives)
//! plus outsiders made here. Each event then appears in each source
//! independently, and each record is damaged with that source's rates. One
//! random stream, events in roster order: the same inputs give the same records.

use chrono::{Days, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::corrupt::{self, Corruptions, Rates};
use super::fmt::{date_compact_string, date_string, id_key, id15_of, id18};
use super::names::{Name, homophone, sample_name, sample_surname, sample_with_surname};
use super::roster::{Fate, HardKind, Pensioner, Plan, age_on, birth_for_age};
use super::sample::{FastSet, Stage, stable_hash, stream};
use crate::identity::Sex;

/// A person as they truly are (the identity every record is a copy of).
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub name: Name,
    pub sex: Sex,
    pub birth: NaiveDate,
    pub id: [u8; 18],
    /// Where they lived: the civil-affairs office and funeral home are here.
    pub residence: u32,
    /// Household registration: the public-security record is here.
    pub hukou: u32,
}

#[derive(Debug, Clone)]
enum Kind {
    Pensioner,
    Outsider,
    Doppelganger,
    Spouse,
    /// The living pensioner's ID as the roster shows it.
    Informant(Vec<u8>),
    FalseDeath,
    NonDeath(&'static str),
}

#[derive(Debug, Clone)]
struct Event {
    person: Person,
    /// The pensioner the event is about, if any.
    person_no: Option<u64>,
    kind: Kind,
    /// Death date, or for a non-death the cancellation date.
    date: NaiveDate,
}

/// The truth about one source record.
#[derive(Debug, Clone)]
pub(crate) struct Truth {
    pub person_no: Option<u64>,
    pub kind: &'static str,
    pub corruptions: Corruptions,
}

#[derive(Debug, Clone)]
pub(crate) struct PsRecord {
    /// Creation order, the tie-break when sorting by cancellation date.
    pub order: usize,
    pub xm: String,
    pub gmsfhm: String,
    pub xb: &'static str,
    pub csrq: String,
    pub swrq: String,
    pub zxrq: NaiveDate,
    pub zxyy: &'static str,
    pub hjdz_xzqh: String,
    pub truth: Truth,
}

#[derive(Debug, Clone)]
pub(crate) struct CaRow {
    pub name: String,
    pub id: String,
    pub sex: &'static str,
    pub birth: String,
    pub death: String,
    pub place: String,
}

#[derive(Debug, Clone)]
pub(crate) struct CaRecord {
    /// 登记机关代码: a county code and a three-digit office number.
    pub office: u64,
    pub registered: NaiveDate,
    /// The content in the final (last-sorting) file.
    pub row: CaRow,
    /// When corrected: the first delivery's (wrong) content.
    pub first: Option<CaRow>,
    pub truth: Truth,
}

#[derive(Debug, Clone)]
pub(crate) struct FhRecord {
    pub home: String,
    pub deceased_name: String,
    pub id_no: String,
    pub gender: &'static str,
    pub age: i32,
    pub death_date: NaiveDate,
    pub cremation_date: NaiveDate,
    pub address_region: String,
    pub truth: Truth,
}

#[derive(Default)]
pub(crate) struct Records {
    pub public_security: Vec<PsRecord>,
    pub civil_affairs: Vec<CaRecord>,
    pub funeral: Vec<FhRecord>,
    pub pensioner_deaths: u64,
    pub outsider_deaths: u64,
    pub hard_negatives: u64,
    pub false_deaths: u64,
    pub non_deaths: u64,
}

/// Shares of outsider deaths built as hard negatives, and of deaths seen by each source.
const HARD_SHARE: f64 = 0.45;
const P_PUBLIC_SECURITY: f64 = 0.85;
const P_CIVIL_AFFAIRS: f64 = 0.60;
const P_FUNERAL: f64 = 0.70;

/// Builds every death-source record. `featured` holds the pensioners whose
/// fate is not plain `Alive`, in roster order; `taken` every ID in the
/// roster, so that outsiders get numbers nobody has.
pub(crate) fn records(
    plan: &Plan,
    outsider_share: f64,
    featured: &[Pensioner],
    taken: &mut FastSet,
) -> Records {
    let mut rng = stream(plan.seed, Stage::Deaths, 0);
    let mut events = Vec::new();
    let mut templates = Vec::new();
    let mut out = Records::default();
    for p in featured {
        let person = person_of(p);
        let person_no = Some(p.person_no());
        match p.fate {
            Fate::Dies(date) => {
                out.pensioner_deaths += 1;
                events.push(Event {
                    person,
                    person_no,
                    kind: Kind::Pensioner,
                    date,
                });
            }
            Fate::FalseDeath(date) => {
                out.false_deaths += 1;
                events.push(Event {
                    person,
                    person_no,
                    kind: Kind::FalseDeath,
                    date,
                });
            }
            Fate::NonDeath(date, reason) => {
                out.non_deaths += 1;
                events.push(Event {
                    person,
                    person_no,
                    kind: Kind::NonDeath(reason),
                    date,
                });
            }
            Fate::Template(k) => templates.push((p, k)),
            Fate::Alive => {}
        }
    }
    let outsiders = (out.pensioner_deaths as f64 * outsider_share).round() as usize;
    let hard = ((outsiders as f64 * HARD_SHARE).round() as usize).min(templates.len());
    // Spread the models evenly over the roster rather than taking the first ones.
    for i in 0..hard {
        let (t, kind) = templates[i * templates.len() / hard];
        events.push(hard_negative(plan, t, kind, taken, &mut rng));
    }
    for _ in hard..outsiders {
        let person = outsider(plan, taken, &mut rng, None);
        let date = plan.days_before(rng.random_range(1..=60));
        events.push(Event {
            person,
            person_no: None,
            kind: Kind::Outsider,
            date,
        });
    }
    out.hard_negatives = hard as u64;
    out.outsider_deaths = outsiders as u64;
    let other_non_deaths =
        ((out.pensioner_deaths as f64 * 0.2).round() as u64).saturating_sub(out.non_deaths);
    for _ in 0..other_non_deaths {
        let (age, reason) = match rng.random_range(0..10) {
            0..6 => (rng.random_range(18..=80), "迁出"),
            6..8 => (rng.random_range(18..=80), "出国"),
            8 => (rng.random_range(18..=22), "服兵役"),
            _ => (rng.random_range(18..=80), "其他"),
        };
        let person = outsider(plan, taken, &mut rng, Some(age));
        let date = plan.days_before(rng.random_range(0..=60));
        events.push(Event {
            person,
            person_no: None,
            kind: Kind::NonDeath(reason),
            date,
        });
        out.non_deaths += 1;
    }
    for e in &events {
        emit(plan, e, &mut rng, &mut out);
    }
    out
}

fn person_of(p: &Pensioner) -> Person {
    Person {
        name: p.name,
        sex: p.sex,
        birth: p.birth,
        id: p.id(),
        residence: p.residence,
        hukou: p.insured,
    }
}

/// A fresh valid ID number nobody in the roster (or already generated) has.
fn fresh_id(
    county: u32,
    birth: NaiveDate,
    sex: Sex,
    taken: &mut FastSet,
    rng: &mut ChaCha8Rng,
) -> [u8; 18] {
    let male = u16::from(sex == Sex::Male);
    let mut seq = 2 * rng.random_range(0..500u16) + male;
    for _ in 0..500 {
        if taken.insert(id_key(county, birth, seq)) {
            break;
        }
        seq = (seq + 2) % 1000;
    }
    id18(county, birth, seq)
}

fn other_sex(s: Sex) -> Sex {
    match s {
        Sex::Male => Sex::Female,
        Sex::Female => Sex::Male,
    }
}

/// Someone not in the roster: of pensioner age unless `age` says otherwise
/// (with a fifth younger, since not only the old die).
fn outsider(plan: &Plan, taken: &mut FastSet, rng: &mut ChaCha8Rng, age: Option<u32>) -> Person {
    let age = age.unwrap_or_else(|| {
        if rng.random_bool(0.2) {
            rng.random_range(30..55)
        } else {
            plan.sample_age(rng)
        }
    });
    let sex = if rng.random_bool(0.5) {
        Sex::Male
    } else {
        Sex::Female
    };
    let minority = rng.random_bool(0.008);
    let name = sample_name(rng, sex, minority);
    let birth = birth_for_age(plan.as_of, age, rng);
    let county = if minority {
        plan.regions.minority_county(rng)
    } else {
        plan.regions.county(rng)
    };
    let residence = if rng.random_bool(0.9) {
        county
    } else {
        plan.regions.same_city(county, rng)
    };
    Person {
        name,
        sex,
        birth,
        id: fresh_id(county, birth, sex, taken, rng),
        residence,
        hukou: county,
    }
}

fn hard_negative(
    plan: &Plan,
    t: &Pensioner,
    kind: HardKind,
    taken: &mut FastSet,
    rng: &mut ChaCha8Rng,
) -> Event {
    let date = plan.days_before(rng.random_range(1..=60));
    let t_age = age_on(t.birth, plan.as_of).max(0) as u32;
    let (person, kind) = match kind {
        HardKind::Doppelganger => {
            // Same name, birth date and sex; only the region and sequence of
            // the ID tell them apart (and sometimes only the sequence).
            let county = if rng.random_bool(0.4) {
                t.id_county
            } else {
                plan.regions.county(rng)
            };
            let residence = if rng.random_bool(0.3) {
                t.residence
            } else {
                county
            };
            let person = Person {
                name: t.name,
                sex: t.sex,
                birth: t.birth,
                id: fresh_id(county, t.birth, t.sex, taken, rng),
                residence,
                hukou: county,
            };
            (person, Kind::Doppelganger)
        }
        HardKind::Spouse => {
            let sex = other_sex(t.sex);
            // Husbands are usually a few years older than their wives.
            let gap = rng.random_range(0..=5);
            let age = match sex {
                Sex::Male => (t_age + gap).min(104),
                Sex::Female => t_age.saturating_sub(gap).max(50),
            };
            let birth = birth_for_age(plan.as_of, age, rng);
            let mut name = sample_name(rng, sex, t.name.minority);
            for _ in 0..8 {
                if name.family != t.name.family {
                    break;
                }
                name = sample_name(rng, sex, t.name.minority);
            }
            let county = if rng.random_bool(0.6) {
                t.id_county
            } else {
                t.residence
            };
            let person = Person {
                name,
                sex,
                birth,
                id: fresh_id(county, birth, sex, taken, rng),
                residence: t.residence,
                hukou: t.insured,
            };
            (person, Kind::Spouse)
        }
        HardKind::Informant => {
            // A parent when the pensioner is young enough to have one
            // alive, otherwise a sibling; same surname either way.
            let age = if t_age + 20 <= 104 && rng.random_bool(0.5) {
                t_age + rng.random_range(20..=(104 - t_age).min(32))
            } else {
                (t_age + rng.random_range(0..=8))
                    .saturating_sub(4)
                    .clamp(50, 104)
            };
            let sex = if rng.random_bool(0.5) {
                Sex::Male
            } else {
                Sex::Female
            };
            // Families do not give two of their own the same name, nor
            // one that sounds the same: the relative's name differs from
            // the pensioner's in its toneless pinyin.
            let key_of = |n: &Name| crate::identity::pinyin_key(&n.render());
            let theirs = key_of(&t.name);
            let mut name = t.name;
            for _ in 0..32 {
                name = if t.name.minority {
                    let n = sample_name(rng, sex, true);
                    Name {
                        family: t.name.family,
                        ..n
                    }
                } else {
                    sample_with_surname(rng, sex, t.name.family)
                };
                if key_of(&name) != theirs {
                    break;
                }
            }
            let birth = birth_for_age(plan.as_of, age, rng);
            let person = Person {
                name,
                sex,
                birth,
                id: fresh_id(t.id_county, birth, sex, taken, rng),
                residence: t.residence,
                hukou: t.insured,
            };
            let typed = if t.legacy15 {
                id15_of(&t.id()).to_vec()
            } else {
                t.id().to_vec()
            };
            (person, Kind::Informant(typed))
        }
    };
    Event {
        person,
        person_no: None,
        kind,
        date,
    }
}

/// Which sources see this event.
fn sources(e: &Event, rng: &mut ChaCha8Rng) -> (bool, bool, bool) {
    match e.kind {
        Kind::NonDeath(_) => return (true, false, false),
        // A false report comes from one source alone; that is why it is false.
        Kind::FalseDeath => {
            return if rng.random_bool(0.4) {
                (false, true, false)
            } else {
                (false, false, true)
            };
        }
        _ => {}
    }
    loop {
        let ps = rng.random_bool(P_PUBLIC_SECURITY);
        let mut ca = rng.random_bool(P_CIVIL_AFFAIRS);
        let mut fh = rng.random_bool(P_FUNERAL);
        if let Kind::Informant(_) = e.kind
            && !ca
            && !fh
        {
            // The typed-in ID lives in a record filled from what the family said.
            if rng.random_bool(0.5) {
                ca = true;
            } else {
                fh = true;
            }
        }
        if ps || ca || fh {
            return (ps, ca, fh);
        }
    }
}

fn kind_name(k: &Kind) -> &'static str {
    match k {
        Kind::Pensioner => "pensioner",
        Kind::Outsider | Kind::Informant(_) => "outsider",
        Kind::Doppelganger => "doppelganger",
        Kind::Spouse => "spouse",
        Kind::FalseDeath => "false_death",
        Kind::NonDeath(_) => "non_death",
    }
}

/// A report date `1..=max_lag` days after `d`, never after the export date.
fn after(plan: &Plan, d: NaiveDate, min_lag: u64, max_lag: u64, rng: &mut ChaCha8Rng) -> NaiveDate {
    d.checked_add_days(Days::new(rng.random_range(min_lag..=max_lag)))
        .unwrap_or(d)
        .min(plan.as_of)
}

fn sex_code(s: Sex) -> &'static str {
    match s {
        Sex::Male => "1",
        Sex::Female => "2",
    }
}

fn emit(plan: &Plan, e: &Event, rng: &mut ChaCha8Rng, out: &mut Records) {
    let (ps, ca, fh) = sources(e, rng);
    let p = &e.person;
    if ps {
        let r = &corrupt::PUBLIC_SECURITY;
        let mut done = Vec::new();
        let xm = corrupt::name(&p.name, r, rng, &mut done);
        let gmsfhm = corrupt::id(&p.id, r, rng, &mut done);
        let xb = sex_code(corrupt::sex(p.sex, r, rng, &mut done));
        let csrq = date_compact_string(corrupt::birth(p.birth, r, rng, &mut done));
        let (swrq, zxrq, zxyy) = match e.kind {
            Kind::NonDeath(reason) => (String::new(), e.date, reason),
            _ => {
                let swrq = if rng.random_bool(0.03) {
                    done.push("death_date_empty");
                    String::new()
                } else {
                    date_compact_string(e.date)
                };
                (swrq, after(plan, e.date, 1, 10, rng), "死亡")
            }
        };
        out.public_security.push(PsRecord {
            order: out.public_security.len(),
            xm,
            gmsfhm,
            xb,
            csrq,
            swrq,
            zxrq,
            zxyy,
            hjdz_xzqh: format!("{:06}", p.hukou),
            truth: Truth {
                person_no: e.person_no,
                kind: kind_name(&e.kind),
                corruptions: done,
            },
        });
    }
    if ca {
        out.civil_affairs.push(civil_affairs(plan, e, rng));
    }
    if fh {
        out.funeral.push(funeral(plan, e, rng));
    }
}

/// The kind and ID text of a record filled from what the family said: in
/// the informant case, the living pensioner's ID typed in the deceased's field.
fn family_filled_id(
    e: &Event,
    r: &Rates,
    rng: &mut ChaCha8Rng,
    done: &mut Corruptions,
) -> (&'static str, String) {
    match &e.kind {
        Kind::Informant(typed) => {
            done.push("id_informant");
            ("informant", corrupt::typed_id(typed, r, rng, done))
        }
        k => (kind_name(k), corrupt::id(&e.person.id, r, rng, done)),
    }
}

fn civil_affairs(plan: &Plan, e: &Event, rng: &mut ChaCha8Rng) -> CaRecord {
    let r = &corrupt::CIVIL_AFFAIRS;
    let p = &e.person;
    let offices = 1 + stable_hash(u64::from(p.residence)) % 2;
    let office = u64::from(p.residence) * 1000 + rng.random_range(1..=offices);
    let registered = after(plan, e.date, 0, 12, rng);
    // Each office keeps to one date style; a tenth of its clerks do not.
    let style = if rng.random_bool(0.1) {
        rng.random_range(0..3)
    } else {
        stable_hash(office) % 3
    };
    let mut done = Vec::new();
    let name = corrupt::name(&p.name, r, rng, &mut done);
    let (kind, id) = family_filled_id(e, r, rng, &mut done);
    let sex = match corrupt::sex(p.sex, r, rng, &mut done) {
        Sex::Male => "男",
        Sex::Female => "女",
    };
    let birth = civil_date(corrupt::birth(p.birth, r, rng, &mut done), style);
    let row = CaRow {
        name,
        id,
        sex,
        birth,
        death: civil_date(e.date, style),
        place: death_place(rng),
    };
    // A correction file fixes a first delivery that had one more mistake.
    let first = rng.random_bool(0.015).then(|| {
        done.push("corrected");
        let mut wrong = row.clone();
        // A one-character slip in the name, one wrong ID digit, or a wrong
        // death date: what a correction typically fixes.
        let slip = match rng.random_range(0..3) {
            0 => homophone(&row.name, p.name.family_chars(), rng),
            _ => None,
        };
        if let Some(name) = slip {
            wrong.name = name;
        } else if rng.random_bool(0.5) {
            let mut b = p.id.to_vec();
            corrupt::wrong_digit(&mut b, rng);
            wrong.id = String::from_utf8(b).unwrap_or_default();
        } else {
            let off = e
                .date
                .checked_sub_days(Days::new(rng.random_range(1..=30)))
                .unwrap_or(e.date);
            wrong.death = civil_date(off, style);
        }
        wrong
    });
    CaRecord {
        office,
        registered,
        row,
        first,
        truth: Truth {
            person_no: e.person_no,
            kind,
            corruptions: done,
        },
    }
}

/// `1942-03-15`, `1942/3/15` or `1942年3月15日`.
fn civil_date(d: NaiveDate, style: u64) -> String {
    use chrono::Datelike;
    match style {
        0 => date_string(d),
        1 => format!("{}/{}/{}", d.year(), d.month(), d.day()),
        _ => format!("{}年{}月{}日", d.year(), d.month(), d.day()),
    }
}

const HOSPITALS: &[&str] = &[
    "市人民医院",
    "市第一人民医院",
    "市第二人民医院",
    "市中医院",
    "区人民医院",
    "县人民医院",
    "市中心医院",
    "镇卫生院",
    "社区卫生服务中心",
    "市肿瘤医院",
    "医科大学附属第一医院",
];
const WARDS: &[&str] = &["住院部", "急诊科", "重症监护室", "老年病科"];
const ROADS: &[&str] = &[
    "人民", "解放", "中山", "建设", "和平", "胜利", "新华", "幸福", "朝阳", "东风", "光明", "文化",
    "长江", "黄河",
];
const INSTITUTIONS: &[&str] = &["家中", "养老院", "敬老院", "颐养中心", "福利院"];

/// 死亡地点 as a clerk writes it: a hospital, a home address, an institution,
/// a village; now and then with a comma inside.
fn death_place(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..100) {
        0..45 => {
            let h = HOSPITALS[rng.random_range(0..HOSPITALS.len())];
            if rng.random_bool(0.1) {
                format!("{h},{}", WARDS[rng.random_range(0..WARDS.len())])
            } else {
                h.to_string()
            }
        }
        45..85 => {
            let road = ROADS[rng.random_range(0..ROADS.len())];
            let mut s = format!(
                "{road}路{}号{}栋{}单元{}室",
                rng.random_range(1..300),
                rng.random_range(1..30),
                rng.random_range(1..6),
                rng.random_range(101..1802)
            );
            if rng.random_bool(0.05) {
                s.push_str(",家中");
            }
            s
        }
        85..95 => INSTITUTIONS[rng.random_range(0..INSTITUTIONS.len())].to_string(),
        _ => format!("{}家村{}组", sample_surname(rng), rng.random_range(1..12)),
    }
}

fn funeral(plan: &Plan, e: &Event, rng: &mut ChaCha8Rng) -> FhRecord {
    let r = &corrupt::FUNERAL;
    let p = &e.person;
    let city = u64::from(p.residence / 100 * 100);
    let homes = 1 + stable_hash(city) % 3;
    let home = format!("FH{city:06}-{:02}", rng.random_range(1..=homes));
    let mut done = Vec::new();
    let deceased_name = corrupt::name(&p.name, r, rng, &mut done);
    let (kind, id_no) = if let Kind::Informant(_) = e.kind {
        family_filled_id(e, r, rng, &mut done)
    } else {
        // Funeral homes mostly do not take the number down at all, and
        // the ones that do often copy an old card.
        let u: f64 = rng.random();
        let id = if u < 0.6 {
            done.push("id_empty");
            String::new()
        } else if u < 0.7 && &p.id[6..8] == b"19" {
            done.push("id_15");
            String::from_utf8(id15_of(&p.id).to_vec()).unwrap_or_default()
        } else {
            corrupt::id(&p.id, r, rng, &mut done)
        };
        (kind_name(&e.kind), id)
    };
    let gender = match corrupt::sex(p.sex, r, rng, &mut done) {
        Sex::Male => "M",
        Sex::Female => "F",
    };
    let mut age = age_on(p.birth, e.date);
    if rng.random_bool(0.05) {
        // Nominal age (虚岁) or a slip: one year off.
        age += if rng.random_bool(0.7) { 1 } else { -1 };
        done.push("age_off");
    }
    let address_region = if rng.random_bool(0.25) {
        String::new()
    } else {
        format!("{:06}", p.residence)
    };
    FhRecord {
        home,
        deceased_name,
        id_no,
        gender,
        age,
        death_date: e.date,
        cremation_date: after(plan, e.date, 1, 5, rng),
        address_region,
        truth: Truth {
            person_no: e.person_no,
            kind,
            corruptions: done,
        },
    }
}
