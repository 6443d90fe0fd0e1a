//! What clerks, forms and old systems do to an identity on its way into a
//! death record (identity.md): ID numbers with a lower-case x, full-width
//! digits, spaces, one wrong digit, two digits swapped, the 15-digit form or
//! nothing at all; names with a homophone, a traditional form, pinyin for a
//! rare character or a lost middle dot; birth dates with day and month
//! swapped or one part off; the wrong sex. Each source has its own rates.
//! Every change is named in the list it returns, which becomes the truth
//! file's `corruptions` column, so the engine can be scored per kind of damage.

use chrono::{Datelike, NaiveDate};
use rand::Rng;

use super::fmt::id15_of;
use super::names::{Name, homophone, pinyin_for_rare, traditional};
use crate::identity::Sex;

/// How often each kind of damage happens in one source's records.
pub(crate) struct Rates {
    pub id_empty: f64,
    pub id_15: f64,
    pub id_digit: f64,
    pub id_swap: f64,
    /// Share of IDs ending in X that are written with a lower-case x.
    pub id_lower_x: f64,
    pub id_fullwidth: f64,
    pub id_spaced: f64,
    pub homophone: f64,
    /// Applies only to names with a character in the pinyin table.
    pub pinyin: f64,
    pub traditional: f64,
    /// Apply only to dotted minority names.
    pub dot_dropped: f64,
    pub dot_variant: f64,
    pub birth_swap: f64,
    pub birth_off: f64,
    pub sex_wrong: f64,
    /// The file is GBK: only separators GBK can encode.
    pub gbk: bool,
}

/// Public security reads from the household register: clean, mostly.
pub(crate) const PUBLIC_SECURITY: Rates = Rates {
    id_empty: 0.002,
    id_15: 0.003,
    id_digit: 0.004,
    id_swap: 0.003,
    id_lower_x: 0.3,
    id_fullwidth: 0.002,
    id_spaced: 0.003,
    homophone: 0.01,
    pinyin: 0.05,
    traditional: 0.005,
    dot_dropped: 0.1,
    dot_variant: 0.05,
    birth_swap: 0.003,
    birth_off: 0.003,
    sex_wrong: 0.002,
    gbk: false,
};

/// Civil affairs registrations are typed at a counter from what the family says.
pub(crate) const CIVIL_AFFAIRS: Rates = Rates {
    id_empty: 0.03,
    id_15: 0.01,
    id_digit: 0.02,
    id_swap: 0.015,
    id_lower_x: 0.4,
    id_fullwidth: 0.03,
    id_spaced: 0.03,
    homophone: 0.03,
    pinyin: 0.2,
    traditional: 0.02,
    dot_dropped: 0.3,
    dot_variant: 0.1,
    birth_swap: 0.01,
    birth_off: 0.01,
    sex_wrong: 0.005,
    gbk: true,
};

/// Funeral homes: fast, and the weakest identity evidence. Empty and
/// 15-digit numbers are decided separately (they are the common case here).
pub(crate) const FUNERAL: Rates = Rates {
    id_empty: 0.0,
    id_15: 0.0,
    id_digit: 0.04,
    id_swap: 0.03,
    id_lower_x: 0.5,
    id_fullwidth: 0.05,
    id_spaced: 0.05,
    homophone: 0.05,
    pinyin: 0.3,
    traditional: 0.03,
    dot_dropped: 0.4,
    dot_variant: 0.15,
    birth_swap: 0.0,
    birth_off: 0.0,
    sex_wrong: 0.01,
    gbk: false,
};

pub(crate) type Corruptions = Vec<&'static str>;

/// The ID as a source writes it. `id` is the true 18-digit number.
pub(crate) fn id(id: &[u8; 18], r: &Rates, rng: &mut impl Rng, done: &mut Corruptions) -> String {
    let u: f64 = rng.random();
    let mut edge = r.id_empty;
    if u < edge {
        done.push("id_empty");
        return String::new();
    }
    let mut s = id.to_vec();
    edge += r.id_15;
    if u < edge && &id[6..8] == b"19" {
        done.push("id_15");
        s = id15_of(id).to_vec();
    } else if u < edge + r.id_digit {
        wrong_digit(&mut s, rng);
        done.push("id_digit");
    } else if u < edge + r.id_digit + r.id_swap && swap_adjacent(&mut s, rng) {
        done.push("id_swap");
    }
    format_id(s, r, rng, done)
}

/// The ID of a pensioner as an informant would type it (they copy it from
/// the pensioner's card, so only its formatting suffers).
pub(crate) fn typed_id(id: &[u8], r: &Rates, rng: &mut impl Rng, done: &mut Corruptions) -> String {
    format_id(id.to_vec(), r, rng, done)
}

/// One digit of the first 17 replaced by another.
pub(crate) fn wrong_digit(s: &mut [u8], rng: &mut impl Rng) {
    let pos = rng.random_range(0..17.min(s.len()));
    let old = s[pos];
    let mut new = b'0' + rng.random_range(0..9u8);
    if new >= old {
        new += 1;
    }
    s[pos] = new;
}

/// Two adjacent different digits among the first 17 swapped; false if none differ.
fn swap_adjacent(s: &mut [u8], rng: &mut impl Rng) -> bool {
    for _ in 0..16 {
        let i = rng.random_range(0..16.min(s.len() - 1));
        if s[i] != s[i + 1] {
            s.swap(i, i + 1);
            return true;
        }
    }
    false
}

fn format_id(mut s: Vec<u8>, r: &Rates, rng: &mut impl Rng, done: &mut Corruptions) -> String {
    if s.last() == Some(&b'X') && rng.random_bool(r.id_lower_x) {
        if let Some(last) = s.last_mut() {
            *last = b'x';
        }
        done.push("id_lower_x");
    }
    if rng.random_bool(r.id_spaced) {
        let sep = if rng.random_bool(0.5) { b' ' } else { b'-' };
        let cut2 = if s.len() == 18 { 14 } else { 12 };
        if s.len() > cut2 {
            s.insert(cut2, sep);
            s.insert(6, sep);
            done.push("id_spaced");
        }
    }
    let text = String::from_utf8(s).unwrap_or_default();
    if rng.random_bool(r.id_fullwidth) {
        done.push("id_fullwidth");
        return text
            .chars()
            .map(|c| match c {
                '0'..='9' | 'X' | 'x' => char::from_u32(c as u32 - 0x20 + 0xFF00).unwrap_or(c),
                _ => c,
            })
            .collect();
    }
    text
}

/// The name as a source writes it.
pub(crate) fn name(n: &Name, r: &Rates, rng: &mut impl Rng, done: &mut Corruptions) -> String {
    let mut s = n.render();
    if n.minority {
        if rng.random_bool(r.dot_dropped) {
            s = s.replace('·', "");
            done.push("name_dot_dropped");
        } else if rng.random_bool(r.dot_variant) {
            let variants: &[&str] = if r.gbk {
                &[".", "-"]
            } else {
                &["•", "・", ".", "-"]
            };
            s = s.replace('·', variants[rng.random_range(0..variants.len())]);
            done.push("name_dot_variant");
        }
        return s;
    }
    if rng.random_bool(r.homophone)
        && let Some(h) = homophone(&s, n.family_chars(), rng)
    {
        s = h;
        done.push("name_homophone");
    }
    if rng.random_bool(r.traditional)
        && let Some(t) = traditional(&s)
    {
        s = t;
        done.push("name_traditional");
    }
    if rng.random_bool(r.pinyin)
        && let Some(p) = pinyin_for_rare(&s)
    {
        s = p;
        done.push("name_pinyin");
    }
    s
}

/// The birth date as a source writes it.
pub(crate) fn birth(
    d: NaiveDate,
    r: &Rates,
    rng: &mut impl Rng,
    done: &mut Corruptions,
) -> NaiveDate {
    if rng.random_bool(r.birth_swap)
        && d.day() <= 12
        && d.day() != d.month()
        && let Some(s) = NaiveDate::from_ymd_opt(d.year(), d.day(), d.month())
    {
        done.push("birth_swap");
        return s;
    }
    if rng.random_bool(r.birth_off) {
        let delta: i32 = if rng.random_bool(0.5) { 1 } else { -1 };
        let (y, m, day) = (d.year(), d.month() as i32, d.day() as i32);
        let off = match rng.random_range(0..3) {
            0 => NaiveDate::from_ymd_opt(y + delta, m as u32, day as u32),
            1 => NaiveDate::from_ymd_opt(y, (m + delta).clamp(1, 12) as u32, day as u32),
            _ => NaiveDate::from_ymd_opt(y, m as u32, (day + delta).max(1) as u32),
        };
        if let Some(o) = off.filter(|&o| o != d) {
            done.push("birth_off");
            return o;
        }
    }
    d
}

pub(crate) fn sex(s: Sex, r: &Rates, rng: &mut impl Rng, done: &mut Corruptions) -> Sex {
    if rng.random_bool(r.sex_wrong) {
        done.push("sex_wrong");
        match s {
            Sex::Male => Sex::Female,
            Sex::Female => Sex::Male,
        }
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::fmt::id18;
    use crate::generate::sample::{Stage, stream};
    use crate::identity::id::check_char;

    fn valid(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 18 && check_char(&b[..17]) == b[17]
    }

    #[test]
    fn a_wrong_digit_or_swap_always_breaks_the_check_char() {
        let mut rng = stream(3, Stage::Deaths, 9);
        let always = Rates {
            id_digit: 1.0,
            ..PUBLIC_SECURITY
        };
        let swap = Rates {
            id_digit: 0.0,
            id_swap: 1.0,
            ..PUBLIC_SECURITY
        };
        for k in 0..2000u16 {
            let id = id18(
                440304,
                NaiveDate::from_ymd_opt(1940, 1, 1).unwrap() + chrono::Days::new(u64::from(k)),
                k % 1000,
            );
            let mut done = Vec::new();
            let quiet = |r: &Rates| Rates {
                id_empty: 0.0,
                id_15: 0.0,
                id_lower_x: 0.0,
                id_fullwidth: 0.0,
                id_spaced: 0.0,
                ..*r
            };
            let a = super::id(&id, &quiet(&always), &mut rng, &mut done);
            assert!(!valid(&a) && a.len() == 18, "{a}");
            let b = super::id(&id, &quiet(&swap), &mut rng, &mut done);
            assert!(!valid(&b) && b.len() == 18, "{b}");
        }
    }
}
