//! Region codes (GB/T 2260): the six digits at the start of an ID number and
//! in the roster's insured and residence fields. This module owns the
//! embedded table of provinces and prefecture-level cities (for names in
//! reports), the list of real county-level codes (for the test-data
//! generator), and the rule for "lives elsewhere". It must never reject a
//! record for a city or county code it does not know: codes are re-issued
//! and re-drawn as districts merge, and an ID number keeps the code of the
//! place that issued it decades ago, so only the province is checked.

use std::str::FromStr;

use super::region_data::{CITIES, COUNTIES, PROVINCES};

/// How finely two region codes are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RegionLevel {
    #[default]
    Province,
    City,
    County,
}

impl RegionLevel {
    /// How many leading digits of a code identify a region at this level.
    pub fn prefix_len(self) -> usize {
        match self {
            RegionLevel::Province => 2,
            RegionLevel::City => 4,
            RegionLevel::County => 6,
        }
    }
}

/// The unknown level, as typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown region level {0:?}: expected province, city or county")]
pub struct UnknownRegionLevel(pub String);

impl FromStr for RegionLevel {
    type Err = UnknownRegionLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "province" => Ok(RegionLevel::Province),
            "city" => Ok(RegionLevel::City),
            "county" => Ok(RegionLevel::County),
            _ => Err(UnknownRegionLevel(s.to_string())),
        }
    }
}

/// The leading `len` digits of `code` as a number, if `code` is six ASCII
/// digits.
fn prefix(code: &str, len: usize) -> Option<u32> {
    let bytes = code.as_bytes();
    if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        bytes[..len]
            .iter()
            .fold(0, |acc, &b| acc * 10 + u32::from(b - b'0')),
    )
}

fn lookup<K: Ord + Copy>(table: &'static [(K, &'static str)], key: K) -> Option<&'static str> {
    table
        .binary_search_by_key(&key, |&(k, _)| k)
        .ok()
        .map(|i| table[i].1)
}

/// The province (or autonomous region, municipality, SAR) of a 6-digit code.
pub fn province_name(code: &str) -> Option<&'static str> {
    lookup(PROVINCES, prefix(code, 2)?)
}

/// The prefecture-level city of a 6-digit code; for the four municipalities
/// this is the municipality's own name.
pub fn city_name(code: &str) -> Option<&'static str> {
    lookup(CITIES, prefix(code, 4)?)
}

/// A human-readable description for reports: `广东省 深圳市`, or
/// `广东省 (4499 unknown city)` when only the province is known, or
/// `unknown region 991234`.
pub fn describe(code: &str) -> String {
    match (province_name(code), city_name(code)) {
        (Some(province), Some(city)) => format!("{province} {city}"),
        (Some(province), None) => format!("{province} ({} unknown city)", &code[..4]),
        // `prefix` accepted the code, so it is six ASCII digits and safe to show.
        (None, _) if prefix(code, 6).is_some() => format!("unknown region {code}"),
        (None, _) => "unknown region".to_string(),
    }
}

/// Whether `code` is six ASCII digits starting with a known province.
///
/// Deliberately no stricter: city and county codes are re-coded over the
/// years, and an ID number keeps the code of the office that first issued
/// it, so a valid number may carry a city code no current table lists.
pub fn is_valid_region(code: &str) -> bool {
    province_name(code).is_some()
}

/// Whether a pensioner's residence lies outside the region that insures them,
/// compared at `level`.
///
/// Returns `false` when either code is empty or invalid: an unknown residence
/// is not evidence of living elsewhere, and treating it so would flag every
/// record with a missing field.
pub fn lives_elsewhere(insured: &str, residence: &str, level: RegionLevel) -> bool {
    if !is_valid_region(insured) || !is_valid_region(residence) {
        return false;
    }
    let n = level.prefix_len();
    insured[..n] != residence[..n]
}

/// Every real county-level code in the embedded table, sorted ascending.
/// Meant for generating realistic test data; not a validity list.
pub fn county_codes() -> &'static [u32] {
    COUNTIES
}

/// The county-level codes of one province (`prefix2` like 44), sorted; empty
/// for an unknown province.
pub fn county_codes_in_province(prefix2: u32) -> &'static [u32] {
    let start = COUNTIES.partition_point(|&c| c < prefix2.saturating_mul(10_000));
    let end = COUNTIES.partition_point(|&c| c < prefix2.saturating_add(1).saturating_mul(10_000));
    &COUNTIES[start..end]
}

/// The county-level codes of one prefecture-level city (`prefix4` like
/// 4403), sorted; empty for an unknown city.
pub fn county_codes_in_city(prefix4: u32) -> &'static [u32] {
    let start = COUNTIES.partition_point(|&c| c < prefix4.saturating_mul(100));
    let end = COUNTIES.partition_point(|&c| c < prefix4.saturating_add(1).saturating_mul(100));
    &COUNTIES[start..end]
}

/// All provincial-level codes (2 digits) with their names, sorted.
pub fn provinces() -> &'static [(u32, &'static str)] {
    PROVINCES
}

/// All prefecture-level codes (4 digits) with their names, sorted.
pub fn cities() -> &'static [(u32, &'static str)] {
    CITIES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_so_binary_search_works() {
        assert!(PROVINCES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(CITIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(COUNTIES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn all_34_provincial_regions_and_the_taiwan_permit_code_are_known() {
        assert_eq!(PROVINCES.len(), 35);
        for code in ["710000", "810000", "820000", "830000"] {
            assert!(is_valid_region(code), "{code}");
        }
    }

    #[test]
    fn every_city_and_county_lies_in_a_known_province_and_city() {
        for &(city, _) in CITIES {
            assert!(lookup(PROVINCES, city / 100).is_some(), "{city}");
        }
        for &county in COUNTIES {
            let code = format!("{county:06}");
            assert!(province_name(&code).is_some(), "{code}");
            assert!(city_name(&code).is_some(), "{code}");
        }
    }

    #[test]
    fn every_prefecture_city_has_real_county_codes() {
        for &(city, name) in CITIES {
            // 三沙 has issued no ID numbers of its own worth generating.
            let n = county_codes_in_city(city).len();
            assert!(n >= 1 || city == 4603, "{city} {name} has no county codes");
        }
    }

    #[test]
    fn shenzhen_futian_is_named() {
        assert_eq!(province_name("440304"), Some("广东省"));
        assert_eq!(city_name("440304"), Some("深圳市"));
        assert_eq!(describe("440304"), "广东省 深圳市");
    }

    #[test]
    fn chengdu_jinjiang_is_named() {
        assert_eq!(province_name("510104"), Some("四川省"));
        assert_eq!(city_name("510104"), Some("成都市"));
    }

    #[test]
    fn beijing_chaoyang_is_named_after_the_municipality() {
        assert_eq!(province_name("110105"), Some("北京市"));
        assert_eq!(city_name("110105"), Some("北京市"));
        assert_eq!(describe("110105"), "北京市 北京市");
    }

    #[test]
    fn describe_falls_back_to_province_then_to_the_code() {
        assert_eq!(describe("449912"), "广东省 (4499 unknown city)");
        assert_eq!(describe("991234"), "unknown region 991234");
        assert_eq!(describe("44x"), "unknown region");
    }

    #[test]
    fn region_must_be_six_digits_in_a_known_province() {
        assert!(is_valid_region("440304"));
        assert!(
            is_valid_region("449999"),
            "unknown city in a known province"
        );
        assert!(!is_valid_region("991234"));
        assert!(!is_valid_region("44030"));
        assert!(!is_valid_region("4403044"));
        assert!(!is_valid_region("44030x"));
        assert!(!is_valid_region(""));
    }

    #[test]
    fn lives_elsewhere_at_province_level() {
        assert!(lives_elsewhere("440304", "510104", RegionLevel::Province));
        assert!(!lives_elsewhere("440304", "440106", RegionLevel::Province));
    }

    #[test]
    fn lives_elsewhere_at_city_level() {
        assert!(lives_elsewhere("440304", "440106", RegionLevel::City));
        assert!(!lives_elsewhere("440304", "440305", RegionLevel::City));
        assert!(lives_elsewhere("440304", "440305", RegionLevel::County));
    }

    #[test]
    fn unknown_residence_is_not_elsewhere() {
        assert!(!lives_elsewhere("440304", "", RegionLevel::Province));
        assert!(!lives_elsewhere("440304", "991234", RegionLevel::Province));
        assert!(!lives_elsewhere("", "510104", RegionLevel::Province));
    }

    #[test]
    fn region_level_parses_from_its_lower_case_name() {
        assert_eq!("province".parse(), Ok(RegionLevel::Province));
        assert_eq!("city".parse(), Ok(RegionLevel::City));
        assert_eq!("County".parse(), Ok(RegionLevel::County));
        assert!("town".parse::<RegionLevel>().is_err());
        assert_eq!(RegionLevel::default(), RegionLevel::Province);
        assert_eq!(RegionLevel::City.prefix_len(), 4);
    }

    #[test]
    fn county_codes_can_be_picked_by_province() {
        let guangdong = county_codes_in_province(44);
        assert!(guangdong.contains(&440304));
        assert!(guangdong.iter().all(|c| c / 10_000 == 44));
        assert!(county_codes_in_province(99).is_empty());
        assert!(county_codes_in_province(u32::MAX).is_empty());
        assert_eq!(county_codes_in_city(4403).len(), 9);
        assert!(county_codes().len() >= 1000);
    }
}
