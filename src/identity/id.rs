//! Resident ID numbers (GB 11643-1999): normalising what clerks and other
//! agencies actually type, validating it, upgrading the 15-digit form, and
//! proposing the few valid numbers one typing error away from a broken one.
//! This module owns the only constructor of [`IdNumber`], so an `IdNumber`
//! always holds a valid number. It must never do I/O, and it must never let a
//! full ID number out through an error, `Display` or `Debug`: those show the
//! masked form, because log lines and error reports travel further than the
//! people entitled to see a full number. Reading the clock is confined to
//! [`today_in_china`]; every rule that depends on the date has an `*_on`
//! variant taking the date as an argument.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use unicode_normalization::UnicodeNormalization;

use super::Sex;
use super::region;

/// ISO 7064 MOD 11-2 weights for all 18 positions; the check character's
/// own weight is 1, which is what makes the incremental repair arithmetic
/// below a single congruence: a number is valid iff the weighted sum ≡ 1.
const WEIGHTS: [u32; 18] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2, 1];

/// Check characters indexed by the weighted sum of the first 17 digits mod 11.
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// Nobody born before this year draws a pension today; an earlier year in an
/// ID number is a typing error, not a person.
const EARLIEST_BIRTH_YEAR: i32 = 1880;

/// Why a string is not a usable resident ID number, in words a caseworker can
/// act on. No variant carries the number itself: the region code (6 digits)
/// and single characters are all an error may show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("the ID number is empty")]
    Empty,
    #[error("the ID number has {len} characters; it must have 18 (or 15 for the old form)")]
    BadLength { len: usize },
    /// `position` is 1-based and counts characters after spaces and dashes
    /// have been removed, as a caseworker would count on the card.
    #[error("character {position} of the ID number is not allowed there")]
    BadCharacter { position: usize },
    #[error("the birth date in the ID number is not a real date")]
    BadBirthDate,
    #[error("the birth date in the ID number is in the future")]
    BirthDateInFuture,
    #[error("the ID number starts with unknown region code {code}")]
    UnknownRegion { code: String },
    #[error(
        "the ID number's check character is {found} but the other digits require {expected}: \
         a digit is probably mistyped"
    )]
    BadCheckCharacter { expected: char, found: char },
}

/// A valid, normalised 18-character resident ID number.
///
/// The only ways to get one are [`parse`], [`parse_on`], `FromStr` and
/// [`repair_candidates`], all of which validate, so the accessors can rely on
/// the digits being well formed. `Display` and `Debug` print the masked form;
/// call [`IdNumber::as_str`] where the full number is really needed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdNumber([u8; 18]);

impl IdNumber {
    /// The full number. Every use of this is a place where the full number
    /// leaves the type's protection; keep them few and deliberate.
    pub fn as_str(&self) -> &str {
        // Construction only admits ASCII digits and `X`, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The birth date encoded in positions 7 to 14.
    pub fn birth_date(&self) -> NaiveDate {
        // Validated at construction; the fallback is unreachable and only
        // avoids a panic path.
        birth_date_of(&self.0).unwrap_or_default()
    }

    /// The sex encoded by the parity of the sequence's last digit.
    pub fn sex(&self) -> Sex {
        Sex::from_id_sequence_digit(self.0[16].wrapping_sub(b'0'))
    }

    /// The 6-digit region code where the number was first issued, which is
    /// not necessarily where the person lives or is insured.
    pub fn region_code(&self) -> &str {
        &self.as_str()[..6]
    }

    /// `440304********1223`: enough for a caseworker to tell two numbers
    /// apart on a screen, not enough to impersonate anyone.
    pub fn masked(&self) -> String {
        let s = self.as_str();
        let mut out = String::with_capacity(18);
        out.push_str(&s[..6]);
        out.push_str("********");
        out.push_str(&s[14..]);
        out
    }
}

impl fmt::Display for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({})", self.masked())
    }
}

impl FromStr for IdNumber {
    type Err = IdError;

    /// Parses against today's date in China; use [`parse_on`] for a fixed date.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).map(|parsed| parsed.id)
    }
}

/// A parsed ID number and how it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedId {
    pub id: IdNumber,
    /// The input was the pre-1999 15-digit form; the record is older or comes
    /// from a source that never migrated, which lowers trust in its other
    /// fields too.
    pub upgraded_from_15: bool,
}

/// Today's date in China (UTC+8). This is the only function of the identity
/// module that is not pure: it reads the system clock. Everything else takes
/// the date as an argument so tests and replays are deterministic.
pub fn today_in_china() -> NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

/// Brings an ID number as typed into the canonical character form: NFKC
/// (full-width digits and letters become ASCII), lower-case `x` becomes `X`,
/// and whitespace of every kind, zero-width characters and dashes of every
/// kind are removed. It does not validate anything.
pub fn normalize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut keep = |c: char| {
        if c == 'x' {
            out.push('X');
        } else if !is_ignorable(c) {
            out.push(c);
        }
    };
    if raw.is_ascii() {
        // The common case needs no Unicode tables.
        raw.chars().for_each(&mut keep);
    } else {
        raw.nfkc().for_each(&mut keep);
    }
    out
}

/// Characters that separate groups of digits for the eye and carry no digit.
fn is_ignorable(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '\u{2010}'..='\u{2015}' // hyphen, non-breaking hyphen, figure dash, en/em dash, bar
                | '\u{2212}' // minus sign
                | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' // small and full-width dashes
                | '\u{30FC}' // katakana long sound mark, typed for a dash by CJK IMEs
                | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' // zero-width characters, BOM
        )
}

/// The MOD 11-2 check character for the first 17 digits of an ID number:
/// `b'0'..=b'9'` or `b'X'`.
///
/// Takes ASCII digits. It does not allocate or panic; given anything other
/// than 17 ASCII digits it returns some character that is meaningless.
#[inline]
pub fn check_char(first17: &[u8]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS.iter())
        .map(|(&b, &w)| u32::from(b.wrapping_sub(b'0')) * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize]
}

/// Parses and validates an ID number against today's date in China.
/// See [`parse_on`].
pub fn parse(raw: &str) -> Result<ParsedId, IdError> {
    parse_on(raw, today_in_china())
}

/// Normalises `raw` and accepts it if it is a valid 18-character number or a
/// valid 15-digit one (upgraded to 18). Checks, in order: characters and
/// length, the birth date (a real date, from 1880, not after `today`), the
/// province of the region code, and the check character.
pub fn parse_on(raw: &str, today: NaiveDate) -> Result<ParsedId, IdError> {
    let normalized = normalize(raw);
    let (bytes, upgraded_from_15) = structural_bytes(&normalized)?;
    validate_content(&bytes, today)?;
    let expected = check_char(&bytes[..17]);
    if bytes[17] != expected {
        return Err(IdError::BadCheckCharacter {
            expected: char::from(expected),
            found: char::from(bytes[17]),
        });
    }
    Ok(ParsedId {
        id: IdNumber(bytes),
        upgraded_from_15,
    })
}

/// Turns a 15-digit number into its 18-character form: `19` inserted before
/// the two-digit year and the check character appended. Only the shape is
/// checked (15 digits); use [`parse_on`] to validate date and region as well.
pub fn upgrade_15(raw15: &str) -> Result<String, IdError> {
    let normalized = normalize(raw15);
    let bytes = upgraded_bytes(&normalized)?;
    Ok(bytes.iter().copied().map(char::from).collect())
}

/// Masks anything that may be an ID number, valid or not, for a log line:
/// after normalisation, the first 6 and last 4 characters are kept when
/// there are at least 10, and the rest becomes `*`; shorter input is all `*`.
/// A 10-character input thus shows in full: it cannot be a whole ID number.
pub fn mask(raw: &str) -> String {
    let normalized = normalize(raw);
    let len = normalized.chars().count();
    if len < 10 {
        return "*".repeat(len);
    }
    normalized
        .chars()
        .enumerate()
        .map(|(i, c)| if i < 6 || i >= len - 4 { c } else { '*' })
        .collect()
}

/// Every valid ID number one typing error away from `raw`, judged against
/// today's date in China. See [`repair_candidates_on`].
pub fn repair_candidates(raw: &str) -> Vec<IdNumber> {
    repair_candidates_on(raw, today_in_china())
}

/// Every valid ID number (by the rules of [`parse_on`] with `today`) that is
/// one single-character substitution or one adjacent transposition away from
/// the normalised 18-character `raw`, sorted and deduplicated.
///
/// Because MOD 11-2 catches every single substitution and adjacent swap, a
/// valid `raw` has no candidates, and for a broken one the list is short: it
/// is the complete set of numbers the clerk may have meant, if they made one
/// such error. Input that is not 18 characters long gives no candidates.
///
/// The weighted sum is updated per edit instead of re-parsing each of the
/// ~200 neighbours, since this runs for every broken number in a feed; only
/// neighbours that pass the check character are built and date-checked.
pub fn repair_candidates_on(raw: &str, today: NaiveDate) -> Vec<IdNumber> {
    let normalized = normalize(raw);
    let Ok(bytes) = <[u8; 18]>::try_from(normalized.as_bytes()) else {
        return Vec::new();
    };
    // Value of each position, `None` where the character is not allowed there.
    let mut values = [None; 18];
    let mut bad_positions = 0usize;
    let mut sum = 0u32;
    for (i, &b) in bytes.iter().enumerate() {
        values[i] = value_at(i, b);
        match values[i] {
            Some(v) => sum += WEIGHTS[i] * v,
            None => bad_positions += 1,
        }
    }
    let mut found = Vec::new();
    let mut consider = |candidate: [u8; 18]| {
        if validate_content(&candidate, today).is_ok() {
            found.push(IdNumber(candidate));
        }
    };

    for (i, &old) in values.iter().enumerate() {
        // A substitution fixes at most the position it touches.
        if bad_positions > usize::from(old.is_none()) {
            continue;
        }
        let base = sum - old.map_or(0, |v| WEIGHTS[i] * v);
        let max_value = if i == 17 { 10 } else { 9 };
        for v in 0..=max_value {
            if Some(v) == old || (base + WEIGHTS[i] * v) % 11 != 1 {
                continue;
            }
            let mut candidate = bytes;
            candidate[i] = char_of_value(v);
            consider(candidate);
        }
    }

    for i in 0..17 {
        let j = i + 1;
        if bytes[i] == bytes[j] {
            continue;
        }
        let bad_here = usize::from(values[i].is_none()) + usize::from(values[j].is_none());
        if bad_positions > bad_here {
            continue;
        }
        let (Some(vi), Some(vj)) = (value_at(i, bytes[j]), value_at(j, bytes[i])) else {
            continue;
        };
        let rest =
            sum - values[i].map_or(0, |v| WEIGHTS[i] * v) - values[j].map_or(0, |v| WEIGHTS[j] * v);
        if (rest + WEIGHTS[i] * vi + WEIGHTS[j] * vj) % 11 != 1 {
            continue;
        }
        let mut candidate = bytes;
        candidate.swap(i, j);
        consider(candidate);
    }

    found.sort_unstable();
    found.dedup();
    found
}

/// The numeric value of byte `b` at position `i` (0-based) of an 18-character
/// number, `X` counting 10 and allowed only as the check character.
fn value_at(i: usize, b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'X' if i == 17 => Some(10),
        _ => None,
    }
}

fn char_of_value(v: u32) -> u8 {
    match v {
        10 => b'X',
        // Callers only pass 0..=10.
        _ => b'0' + (v % 10) as u8,
    }
}

/// Checks length and characters of a normalised number and returns its 18
/// bytes, upgrading the 15-digit form. The check character of an 18-character
/// number is not verified here.
fn structural_bytes(normalized: &str) -> Result<([u8; 18], bool), IdError> {
    let len = normalized.chars().count();
    match len {
        0 => Err(IdError::Empty),
        15 => upgraded_bytes(normalized).map(|bytes| (bytes, true)),
        18 => {
            let mut bytes = [0u8; 18];
            for (i, c) in normalized.chars().enumerate() {
                let allowed = c.is_ascii_digit() || (i == 17 && c == 'X');
                if !allowed {
                    return Err(IdError::BadCharacter { position: i + 1 });
                }
                // ASCII by the test above.
                bytes[i] = c as u8;
            }
            Ok((bytes, false))
        }
        len => Err(IdError::BadLength { len }),
    }
}

/// 15 digits to 18 bytes with the check character computed.
fn upgraded_bytes(normalized: &str) -> Result<[u8; 18], IdError> {
    let len = normalized.chars().count();
    if len == 0 {
        return Err(IdError::Empty);
    }
    if len != 15 {
        return Err(IdError::BadLength { len });
    }
    let mut bytes = [0u8; 18];
    bytes[6] = b'1';
    bytes[7] = b'9';
    for (i, c) in normalized.chars().enumerate() {
        if !c.is_ascii_digit() {
            return Err(IdError::BadCharacter { position: i + 1 });
        }
        let target = if i < 6 { i } else { i + 2 };
        bytes[target] = c as u8;
    }
    bytes[17] = check_char(&bytes[..17]);
    Ok(bytes)
}

/// Birth date and region of an 18-byte number whose characters are known to
/// be digits (and a final `X`).
fn validate_content(bytes: &[u8; 18], today: NaiveDate) -> Result<(), IdError> {
    let birth = birth_date_of(bytes).ok_or(IdError::BadBirthDate)?;
    if birth.year() < EARLIEST_BIRTH_YEAR {
        return Err(IdError::BadBirthDate);
    }
    if birth > today {
        return Err(IdError::BirthDateInFuture);
    }
    let code = std::str::from_utf8(&bytes[..6]).unwrap_or_default();
    if !region::is_valid_region(code) {
        return Err(IdError::UnknownRegion {
            code: code.to_string(),
        });
    }
    Ok(())
}

fn birth_date_of(bytes: &[u8; 18]) -> Option<NaiveDate> {
    let num = |range: std::ops::Range<usize>| {
        bytes[range].iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let year = i32::try_from(num(6..10)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(10..12)?, num(12..14)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("test date")
    }

    fn today() -> NaiveDate {
        day(2026, 6, 1)
    }

    /// Builds a valid number from its parts, computing the check character.
    fn make(region: &str, birth: &str, seq: &str) -> String {
        let mut s = format!("{region}{birth}{seq}");
        s.push(char::from(check_char(s.as_bytes())));
        s
    }

    #[test]
    fn classic_example_number_is_valid() {
        let parsed = parse_on("11010519491231002X", today()).expect("valid");
        assert_eq!(parsed.id.as_str(), "11010519491231002X");
        assert!(!parsed.upgraded_from_15);
        assert_eq!(parsed.id.birth_date(), day(1949, 12, 31));
        assert_eq!(parsed.id.sex(), Sex::Female);
        assert_eq!(parsed.id.region_code(), "110105");
    }

    #[test]
    fn check_character_follows_mod_11_2() {
        assert_eq!(check_char(b"11010519491231002"), b'X');
        assert_eq!(check_char(b"44030419420315122"), b'3');
        assert_eq!(make("440304", "19420315", "122"), "440304194203151223");
    }

    #[test]
    fn sex_comes_from_the_sequence_parity() {
        let man = make("440304", "19420315", "121");
        let parsed = parse_on(&man, today()).expect("valid");
        assert_eq!(parsed.id.sex(), Sex::Male);
    }

    #[test]
    fn lower_case_x_is_accepted() {
        let parsed = parse_on("11010519491231002x", today()).expect("valid");
        assert_eq!(parsed.id.as_str(), "11010519491231002X");
    }

    #[test]
    fn full_width_digits_and_letters_are_accepted() {
        let parsed = parse_on("１１０１０５１９４９１２３１００２ｘ", today()).expect("valid");
        assert_eq!(parsed.id.as_str(), "11010519491231002X");
    }

    #[test]
    fn spaces_dashes_and_tabs_are_ignored() {
        for raw in [
            "110105 19491231 002X",
            "110105-19491231-002X",
            "110105–19491231—002X",
            "\t110105\u{3000}19491231　002X ",
            "110105－19491231－002x",
        ] {
            let parsed = parse_on(raw, today()).expect(raw);
            assert_eq!(parsed.id.as_str(), "11010519491231002X");
        }
    }

    #[test]
    fn normalize_does_not_validate() {
        assert_eq!(normalize(" ab-ｃ x "), "abcX");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn fifteen_digit_number_is_upgraded_and_marked() {
        let parsed = parse_on("440304420315122", today()).expect("valid");
        assert_eq!(parsed.id.as_str(), "440304194203151223");
        assert!(parsed.upgraded_from_15);
        assert_eq!(
            upgrade_15("440304420315122").as_deref(),
            Ok("440304194203151223")
        );
    }

    #[test]
    fn upgrade_refuses_anything_but_fifteen_digits() {
        assert_eq!(
            upgrade_15("44030442031512"),
            Err(IdError::BadLength { len: 14 })
        );
        assert_eq!(
            upgrade_15("4403044203151X2"),
            Err(IdError::BadCharacter { position: 14 })
        );
        assert_eq!(upgrade_15(" "), Err(IdError::Empty));
    }

    #[test]
    fn empty_input_is_reported_as_empty() {
        assert_eq!(parse_on("", today()), Err(IdError::Empty));
        assert_eq!(parse_on(" - ", today()), Err(IdError::Empty));
    }

    #[test]
    fn wrong_length_is_reported_with_the_length() {
        assert_eq!(
            parse_on("1101051949123100", today()),
            Err(IdError::BadLength { len: 16 })
        );
    }

    #[test]
    fn bad_character_is_reported_with_its_position() {
        assert_eq!(
            parse_on("1101051949123100XX", today()),
            Err(IdError::BadCharacter { position: 17 })
        );
        assert_eq!(
            parse_on("11010519491231002人", today()),
            Err(IdError::BadCharacter { position: 18 })
        );
        assert_eq!(
            parse_on("1101O519491231002X", today()),
            Err(IdError::BadCharacter { position: 5 })
        );
    }

    #[test]
    fn february_the_thirtieth_is_rejected() {
        let raw = make("440304", "19420230", "122");
        assert_eq!(parse_on(&raw, today()), Err(IdError::BadBirthDate));
    }

    #[test]
    fn leap_day_is_accepted_only_in_leap_years() {
        assert!(parse_on(&make("440304", "19480229", "122"), today()).is_ok());
        assert_eq!(
            parse_on(&make("440304", "19490229", "122"), today()),
            Err(IdError::BadBirthDate)
        );
    }

    #[test]
    fn birth_before_1880_is_rejected() {
        let raw = make("440304", "18791231", "122");
        assert_eq!(parse_on(&raw, today()), Err(IdError::BadBirthDate));
    }

    #[test]
    fn future_birth_date_is_rejected() {
        let raw = make("440304", "20260602", "122");
        assert_eq!(parse_on(&raw, today()), Err(IdError::BirthDateInFuture));
        let born_today = make("440304", "20260601", "122");
        assert!(parse_on(&born_today, today()).is_ok());
    }

    #[test]
    fn unknown_region_is_rejected_with_its_code() {
        let raw = make("991234", "19420315", "122");
        assert_eq!(
            parse_on(&raw, today()),
            Err(IdError::UnknownRegion {
                code: "991234".to_string()
            })
        );
    }

    #[test]
    fn hong_kong_macao_and_taiwan_residence_permits_are_accepted() {
        for region in ["810000", "820000", "830000", "710000"] {
            assert!(
                parse_on(&make(region, "19800101", "001"), today()).is_ok(),
                "{region}"
            );
        }
    }

    #[test]
    fn wrong_check_character_says_what_was_expected_and_found() {
        let err = parse_on("440304194203151224", today()).expect_err("broken");
        assert_eq!(
            err,
            IdError::BadCheckCharacter {
                expected: '3',
                found: '4'
            }
        );
        let message = err.to_string();
        assert!(message.contains('3') && message.contains('4'), "{message}");
    }

    #[test]
    fn error_messages_never_contain_the_full_number() {
        let inputs = [
            "440304194203151224".to_owned(),
            make("440304", "19420230", "122"),
            make("440304", "20990101", "122"),
            make("991234", "19420315", "122"),
            "4403041942031512X3".to_owned(),
            "4403041942031512233".to_owned(),
            "44030442031512X".to_owned(),
        ];
        for raw in inputs.iter().map(String::as_str) {
            let err = parse_on(raw, today()).expect_err(raw);
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(raw), "{shown}");
            assert!(!shown.contains(&raw[..15.min(raw.len())]), "{shown}");
        }
    }

    #[test]
    fn display_and_debug_show_only_the_masked_number() {
        let id: IdNumber = "440304194203151223".parse().expect("valid");
        assert_eq!(id.masked(), "440304********1223");
        assert_eq!(id.to_string(), "440304********1223");
        let debug = format!("{id:?}");
        assert!(debug.contains("440304********1223"), "{debug}");
        assert!(!debug.contains("19420315"), "{debug}");
        let parsed = parse_on("440304194203151223", today()).expect("valid");
        assert!(!format!("{parsed:?}").contains("19420315"));
    }

    #[test]
    fn mask_keeps_first_six_and_last_four() {
        assert_eq!(mask("440304194203151223"), "440304********1223");
        assert_eq!(mask("440304 1942 0315 122x"), "440304********122X");
        assert_eq!(mask("440304420315122"), "440304*****5122");
        assert_eq!(mask("12345"), "*****");
        assert_eq!(mask(""), "");
    }

    #[test]
    fn broken_check_digit_is_repaired_to_the_one_valid_neighbour() {
        // Only the check character is wrong here; every repair must be a
        // valid number and the original must be among them.
        let candidates = repair_candidates_on("440304194203151224", today());
        let strings: Vec<&str> = candidates.iter().map(IdNumber::as_str).collect();
        assert!(strings.contains(&"440304194203151223"), "{strings:?}");
        for c in &candidates {
            assert!(parse_on(c.as_str(), today()).is_ok());
        }
        assert!(strings.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn swapped_digits_are_repaired_by_swapping_back() {
        let candidates = repair_candidates_on("440304194203511223", today());
        assert!(
            candidates
                .iter()
                .any(|c| c.as_str() == "440304194203151223")
        );
    }

    #[test]
    fn an_x_in_the_wrong_place_is_repaired() {
        // "…02X" typed as "…0X2": only a swap can fix it.
        let candidates = repair_candidates_on("1101051949123100X2", today());
        assert!(
            candidates
                .iter()
                .any(|c| c.as_str() == "11010519491231002X")
        );
    }

    #[test]
    fn a_valid_number_has_no_repair_candidates() {
        assert!(repair_candidates_on("11010519491231002X", today()).is_empty());
    }

    #[test]
    fn input_that_is_not_eighteen_characters_has_no_repair_candidates() {
        assert!(repair_candidates_on("440304420315122", today()).is_empty());
        assert!(repair_candidates_on("", today()).is_empty());
    }

    #[test]
    fn repair_candidates_respect_date_and_region_rules() {
        let candidates = repair_candidates_on("440304194203151224", today());
        for c in candidates {
            assert!(c.birth_date() <= today());
            assert!(region::is_valid_region(c.region_code()));
        }
    }

    /// A valid number with a random real county, date and sequence.
    fn valid_id() -> impl Strategy<Value = String> {
        let counties = region::county_codes();
        (
            0..counties.len(),
            0i64..(day(2019, 12, 31) - day(1900, 1, 1)).num_days(),
            0u32..1000,
        )
            .prop_map(move |(ci, offset, seq)| {
                let birth = day(1900, 1, 1) + chrono::Duration::days(offset);
                make(
                    &format!("{:06}", counties[ci]),
                    &birth.format("%Y%m%d").to_string(),
                    &format!("{seq:03}"),
                )
            })
    }

    fn to_full_width(s: &str) -> String {
        s.chars()
            .map(|c| char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c))
            .collect()
    }

    proptest! {
        #[test]
        fn every_generated_valid_number_parses_back(id in valid_id()) {
            let parsed = parse_on(&id, today()).expect("valid");
            prop_assert_eq!(parsed.id.as_str(), id.as_str());
            prop_assert!(!parsed.upgraded_from_15);
            let display = parsed.id.to_string();
            prop_assert!(!display.contains(&id[6..14]));
        }

        #[test]
        fn valid_numbers_survive_normalisation_noise(id in valid_id(), dash in 0usize..18, style in 0u8..4) {
            let noisy = match style {
                0 => id.to_lowercase(),
                1 => to_full_width(&id),
                2 => format!("{}-{}", &id[..dash], &id[dash..]),
                _ => format!(" {} {}\u{3000}", &id[..dash], to_full_width(&id[dash..]).to_lowercase()),
            };
            let parsed = parse_on(&noisy, today()).expect("valid after noise");
            prop_assert_eq!(parsed.id.as_str(), id.as_str());
        }

        #[test]
        fn every_single_substitution_is_detected_and_repairable(id in valid_id()) {
            for pos in 0..18 {
                let replacements: &[u8] = if pos == 17 { b"0123456789X" } else { b"0123456789" };
                for &replacement in replacements {
                    let mut bytes = id.clone().into_bytes();
                    if bytes[pos] == replacement {
                        continue;
                    }
                    bytes[pos] = replacement;
                    let broken = String::from_utf8(bytes).expect("ascii");
                    prop_assert!(parse_on(&broken, today()).is_err(), "{} undetected", mask(&broken));
                    let candidates = repair_candidates_on(&broken, today());
                    prop_assert!(candidates.iter().any(|c| c.as_str() == id));
                }
            }
        }

        #[test]
        fn every_adjacent_swap_is_detected_and_repairable(id in valid_id()) {
            for pos in 0..17 {
                let mut bytes = id.clone().into_bytes();
                if bytes[pos] == bytes[pos + 1] {
                    continue;
                }
                bytes.swap(pos, pos + 1);
                let broken = String::from_utf8(bytes).expect("ascii");
                prop_assert!(parse_on(&broken, today()).is_err(), "{} undetected", mask(&broken));
                let candidates = repair_candidates_on(&broken, today());
                prop_assert!(candidates.iter().any(|c| c.as_str() == id));
            }
        }

        #[test]
        fn repair_candidates_are_all_valid_sorted_and_unique(id in valid_id(), pos in 0usize..17) {
            let mut bytes = id.into_bytes();
            bytes[pos] = if bytes[pos] == b'9' { b'0' } else { bytes[pos] + 1 };
            let broken = String::from_utf8(bytes).expect("ascii");
            let candidates = repair_candidates_on(&broken, today());
            for c in &candidates {
                prop_assert!(parse_on(c.as_str(), today()).is_ok());
            }
            prop_assert!(candidates.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
