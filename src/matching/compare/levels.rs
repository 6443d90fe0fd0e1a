//! The comparison levels of each field (ID, name, birth date, sex, region),
//! what each means, and the weight the rules give it.

use serde::{Deserialize, Serialize};

use crate::matching::rules::MatchRules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdLevel {
    Exact,
    /// The record's ID is invalid and the person's is one of the valid
    /// numbers one substitution or adjacent swap away.
    Repaired,
    /// Digits 7-17 (birth date and sequence) equal, region part differs.
    /// The check digit (18) is left out: it changes with the region.
    SameButRegion,
    Different,
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameLevel {
    /// Character for character as written.
    Exact,
    /// Equal after normalisation (NFKC, traditional folded, separators),
    /// with a dropped middle dot forgiven.
    Normalised,
    /// Same pinyin with tones: a homophone typed for a character.
    TonedPinyin,
    /// Same pinyin without tones (or a character typed as its pinyin).
    TonelessPinyin,
    /// Same syllables once commonly confused sounds are folded
    /// (n-l, zh-z, ch-c, sh-s, f-h, an-ang, en-eng, in-ing).
    Confusable,
    /// Jaro-Winkler of the pinyin keys at or above the rules' threshold.
    Similar,
    Different,
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BirthLevel {
    Exact,
    DayMonthSwapped,
    /// Exactly one of year, month, day differs.
    OnePartOff,
    /// Same year only, or the person's birth year inside a funeral
    /// record's age range.
    YearOnly,
    Different,
    Missing,
    /// Read off an ID that agrees: not counted twice.
    ImpliedById,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SexLevel {
    Agree,
    Disagree,
    Missing,
    ImpliedById,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionLevel {
    /// Same county (all six digits, not a city's own `..00` code) as the
    /// insured or residence region.
    County,
    /// Same city (first 4 digits) as the insured or residence region.
    City,
    Province,
    Different,
    Missing,
}

/// The levels of one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Comparison {
    pub id: IdLevel,
    pub name: NameLevel,
    pub birth: BirthLevel,
    pub sex: SexLevel,
    pub region: RegionLevel,
}

impl IdLevel {
    pub const ALL: [IdLevel; 5] = [
        IdLevel::Exact,
        IdLevel::Repaired,
        IdLevel::SameButRegion,
        IdLevel::Different,
        IdLevel::Missing,
    ];
    #[inline]
    pub fn weight(self, r: &MatchRules) -> f64 {
        let w = &r.id;
        match self {
            IdLevel::Exact => w.exact,
            IdLevel::Repaired => w.repaired,
            IdLevel::SameButRegion => w.same_but_region,
            IdLevel::Different => w.different,
            IdLevel::Missing => w.missing,
        }
    }
    pub fn weight_mut(self, r: &mut MatchRules) -> &mut f64 {
        let w = &mut r.id;
        match self {
            IdLevel::Exact => &mut w.exact,
            IdLevel::Repaired => &mut w.repaired,
            IdLevel::SameButRegion => &mut w.same_but_region,
            IdLevel::Different => &mut w.different,
            IdLevel::Missing => &mut w.missing,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            IdLevel::Exact => "exact",
            IdLevel::Repaired => "repaired",
            IdLevel::SameButRegion => "same_but_region",
            IdLevel::Different => "different",
            IdLevel::Missing => "missing",
        }
    }
    /// The ID says it is this person (the levels that imply birth and sex).
    #[inline]
    pub fn agrees(self) -> bool {
        matches!(
            self,
            IdLevel::Exact | IdLevel::Repaired | IdLevel::SameButRegion
        )
    }
}

impl NameLevel {
    pub const ALL: [NameLevel; 8] = [
        NameLevel::Exact,
        NameLevel::Normalised,
        NameLevel::TonedPinyin,
        NameLevel::TonelessPinyin,
        NameLevel::Confusable,
        NameLevel::Similar,
        NameLevel::Different,
        NameLevel::Missing,
    ];
    #[inline]
    pub fn weight(self, r: &MatchRules) -> f64 {
        let w = &r.name;
        match self {
            NameLevel::Exact => w.exact,
            NameLevel::Normalised => w.normalised,
            NameLevel::TonedPinyin => w.toned_pinyin,
            NameLevel::TonelessPinyin => w.toneless_pinyin,
            NameLevel::Confusable => w.confusable,
            NameLevel::Similar => w.similar,
            NameLevel::Different => w.different,
            NameLevel::Missing => w.missing,
        }
    }
    pub fn weight_mut(self, r: &mut MatchRules) -> &mut f64 {
        let w = &mut r.name;
        match self {
            NameLevel::Exact => &mut w.exact,
            NameLevel::Normalised => &mut w.normalised,
            NameLevel::TonedPinyin => &mut w.toned_pinyin,
            NameLevel::TonelessPinyin => &mut w.toneless_pinyin,
            NameLevel::Confusable => &mut w.confusable,
            NameLevel::Similar => &mut w.similar,
            NameLevel::Different => &mut w.different,
            NameLevel::Missing => &mut w.missing,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            NameLevel::Exact => "exact",
            NameLevel::Normalised => "normalised",
            NameLevel::TonedPinyin => "toned_pinyin",
            NameLevel::TonelessPinyin => "toneless_pinyin",
            NameLevel::Confusable => "confusable",
            NameLevel::Similar => "similar",
            NameLevel::Different => "different",
            NameLevel::Missing => "missing",
        }
    }
    /// Any level above `different`: what the `auto` safeguard calls agreeing.
    #[inline]
    pub fn agrees(self) -> bool {
        !matches!(self, NameLevel::Different | NameLevel::Missing)
    }
    /// The fuzzy levels, where term frequency is applied at a reduced share.
    #[inline]
    pub fn is_fuzzy(self) -> bool {
        matches!(self, NameLevel::Confusable | NameLevel::Similar)
    }
}

impl BirthLevel {
    pub const ALL: [BirthLevel; 7] = [
        BirthLevel::Exact,
        BirthLevel::DayMonthSwapped,
        BirthLevel::OnePartOff,
        BirthLevel::YearOnly,
        BirthLevel::Different,
        BirthLevel::Missing,
        BirthLevel::ImpliedById,
    ];
    #[inline]
    pub fn weight(self, r: &MatchRules) -> f64 {
        let w = &r.birth;
        match self {
            BirthLevel::Exact => w.exact,
            BirthLevel::DayMonthSwapped => w.day_month_swapped,
            BirthLevel::OnePartOff => w.one_part_off,
            BirthLevel::YearOnly => w.year_only,
            BirthLevel::Different => w.different,
            BirthLevel::Missing => w.missing,
            BirthLevel::ImpliedById => 0.0,
        }
    }
    /// `None` for `implied_by_id`, whose weight is 0 by construction.
    pub fn weight_mut(self, r: &mut MatchRules) -> Option<&mut f64> {
        let w = &mut r.birth;
        match self {
            BirthLevel::Exact => Some(&mut w.exact),
            BirthLevel::DayMonthSwapped => Some(&mut w.day_month_swapped),
            BirthLevel::OnePartOff => Some(&mut w.one_part_off),
            BirthLevel::YearOnly => Some(&mut w.year_only),
            BirthLevel::Different => Some(&mut w.different),
            BirthLevel::Missing => Some(&mut w.missing),
            BirthLevel::ImpliedById => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BirthLevel::Exact => "exact",
            BirthLevel::DayMonthSwapped => "day_month_swapped",
            BirthLevel::OnePartOff => "one_part_off",
            BirthLevel::YearOnly => "year_only",
            BirthLevel::Different => "different",
            BirthLevel::Missing => "missing",
            BirthLevel::ImpliedById => "implied_by_id",
        }
    }
}

impl SexLevel {
    pub const ALL: [SexLevel; 4] = [
        SexLevel::Agree,
        SexLevel::Disagree,
        SexLevel::Missing,
        SexLevel::ImpliedById,
    ];
    #[inline]
    pub fn weight(self, r: &MatchRules) -> f64 {
        match self {
            SexLevel::Agree => r.sex.agree,
            SexLevel::Disagree => r.sex.disagree,
            SexLevel::Missing => r.sex.missing,
            SexLevel::ImpliedById => 0.0,
        }
    }
    pub fn weight_mut(self, r: &mut MatchRules) -> Option<&mut f64> {
        match self {
            SexLevel::Agree => Some(&mut r.sex.agree),
            SexLevel::Disagree => Some(&mut r.sex.disagree),
            SexLevel::Missing => Some(&mut r.sex.missing),
            SexLevel::ImpliedById => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SexLevel::Agree => "agree",
            SexLevel::Disagree => "disagree",
            SexLevel::Missing => "missing",
            SexLevel::ImpliedById => "implied_by_id",
        }
    }
}

impl RegionLevel {
    pub const ALL: [RegionLevel; 5] = [
        RegionLevel::County,
        RegionLevel::City,
        RegionLevel::Province,
        RegionLevel::Different,
        RegionLevel::Missing,
    ];
    #[inline]
    pub fn weight(self, r: &MatchRules) -> f64 {
        match self {
            RegionLevel::County => r.region.county,
            RegionLevel::City => r.region.city,
            RegionLevel::Province => r.region.province,
            RegionLevel::Different => r.region.different,
            RegionLevel::Missing => r.region.missing,
        }
    }
    pub fn weight_mut(self, r: &mut MatchRules) -> &mut f64 {
        match self {
            RegionLevel::County => &mut r.region.county,
            RegionLevel::City => &mut r.region.city,
            RegionLevel::Province => &mut r.region.province,
            RegionLevel::Different => &mut r.region.different,
            RegionLevel::Missing => &mut r.region.missing,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RegionLevel::County => "county",
            RegionLevel::City => "city",
            RegionLevel::Province => "province",
            RegionLevel::Different => "different",
            RegionLevel::Missing => "missing",
        }
    }
}
