//! Identity: who a record says a person is. This module owns the rules for
//! resident ID numbers (GB 11643-1999), the normalisation and pinyin keys of
//! Chinese names, and the GB/T 2260 region codes embedded in both. Everything
//! here is a pure function over plain data: it must never do I/O, print, log,
//! or read configuration, and it must never put a full ID number into an
//! error message, a `Display` or a `Debug` string. The one exception to
//! purity is [`id::today_in_china`], which reads the clock and is kept apart so
//! that every rule can be tested with a fixed date through the `*_on` variants.

pub mod id;
pub mod name;
pub mod region;
mod region_data;

pub use id::{
    IdError, IdNumber, ParsedId, check_char, mask, normalize, parse, parse_on, repair_candidates,
    repair_candidates_on, today_in_china, upgrade_15,
};
pub use name::{normalize_name, pinyin_key, pinyin_syllables, pinyin_toned, surname};
pub use region::{
    RegionLevel, UnknownRegionLevel, city_name, county_codes, county_codes_in_city,
    county_codes_in_province, describe, is_valid_region, lives_elsewhere, province_name,
};

/// Sex as GB/T 2261.1 codes it for pensioners, whose sex is always known;
/// the "unknown" (0) and "unstated" (9) codes of the standard are refused by
/// [`Sex::from_code`] so that a caller has to decide what they mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    /// The GB/T 2261.1 code: 1 for male, 2 for female.
    pub fn code(self) -> u8 {
        match self {
            Sex::Male => 1,
            Sex::Female => 2,
        }
    }

    /// Reads a GB/T 2261.1 code; 0 (unknown), 9 (unstated) and anything
    /// else give `None`, because guessing a sex would bias the matching.
    pub fn from_code(code: u8) -> Option<Sex> {
        match code {
            1 => Some(Sex::Male),
            2 => Some(Sex::Female),
            _ => None,
        }
    }

    /// The sex carried by the last digit of an ID number's sequence
    /// (position 17): odd for men, even for women. Takes the digit's value,
    /// not its ASCII byte.
    pub fn from_id_sequence_digit(d: u8) -> Sex {
        if d % 2 == 1 { Sex::Male } else { Sex::Female }
    }
}

#[cfg(test)]
mod tests {
    use super::Sex;

    #[test]
    fn sex_codes_round_trip_and_unknown_codes_are_refused() {
        for sex in [Sex::Male, Sex::Female] {
            assert_eq!(Sex::from_code(sex.code()), Some(sex));
        }
        assert_eq!(Sex::from_code(0), None);
        assert_eq!(Sex::from_code(9), None);
    }

    #[test]
    fn odd_sequence_digit_is_male_even_is_female() {
        assert_eq!(Sex::from_id_sequence_digit(1), Sex::Male);
        assert_eq!(Sex::from_id_sequence_digit(9), Sex::Male);
        assert_eq!(Sex::from_id_sequence_digit(0), Sex::Female);
        assert_eq!(Sex::from_id_sequence_digit(2), Sex::Female);
    }
}
