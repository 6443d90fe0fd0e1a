//! Field-by-field comparison of a pensioner with a death record into
//! comparison levels (ID, name, birth date, sex, region), and the weight the
//! rules give each level. This module owns what each level means; it must
//! never add weights up, decide a band or look at anyone but the two records
//! in hand (term frequencies and safeguards live in `score`).
//!
//! Birth date and sex are read off the ID number: when the ID agrees (exact,
//! repaired, or same but region), the record's birth date and sex are mostly
//! the ID's own digits again, and counting them would add the same evidence
//! twice, pushing a pair past `auto` on one fact. They are then level
//! `implied_by_id` with weight 0. The one exception is a record whose own
//! birth date or sex plainly contradicts the ID it carries (level
//! `different` / `disagree`): that is the mark of an informant's ID typed
//! into a relative's death record, real counter-evidence that is kept.
//!
//! [`levels`] says what each level means and weighs; [`prepared`] computes
//! once what every comparison against a record or a person needs;
//! [`fields`] compares.

mod fields;
mod levels;
mod prepared;

pub use fields::*;
pub use levels::*;
pub use prepared::*;

#[cfg(test)]
pub(crate) mod tests {
    use super::fields::*;

    use super::*;
    use crate::identity::check_char;
    use crate::matching::rules::MatchRules;
    use crate::model::{IdStatus, MatchRecord, Person};
    use chrono::NaiveDate;

    pub(crate) fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// A valid ID for a region, birth date and sequence.
    pub(crate) fn id_for(region: &str, birth: NaiveDate, seq: u16) -> String {
        let mut s = format!("{region}{}{seq:03}", birth.format("%Y%m%d"));
        let c = check_char(s.as_bytes());
        s.push(char::from(c));
        s
    }

    pub(crate) fn person(no: &str, name: &str, region: &str, birth: NaiveDate, seq: u16) -> Person {
        let id = id_for(region, birth, seq);
        let sex = if seq % 2 == 1 { 1 } else { 2 };
        Person::new(no, name, &id, sex, birth, region, region, d(2000, 1, 1))
    }

    /// A public-security style record copying the person's fields.
    pub(crate) fn record_of(p: &Person, key: &str) -> MatchRecord {
        let mut r = MatchRecord::new(
            "public_security",
            key,
            &p.name,
            &p.id_number,
            d(2026, 10, 1),
        );
        r.sex = Some(p.sex);
        r.birth_date = Some(p.birth_date);
        r.region = Some(p.insured_region.to_string());
        r
    }

    fn rules() -> MatchRules {
        MatchRules::default_rules()
    }

    fn wang() -> Person {
        person("P1", "王秀英", "440304", d(1942, 3, 15), 122)
    }

    #[test]
    fn the_same_id_is_exact() {
        let p = wang();
        assert_eq!(
            compare(&p, &record_of(&p, "k"), &rules()).id,
            IdLevel::Exact
        );
    }

    #[test]
    fn a_broken_id_one_digit_from_the_persons_is_repaired() {
        let p = wang();
        let mut r = record_of(&p, "k");
        let mut wrong = p.id_number.as_bytes().to_vec();
        wrong[9] = if wrong[9] == b'7' { b'8' } else { b'7' };
        let wrong = String::from_utf8(wrong).unwrap();
        r = MatchRecord {
            ..MatchRecord::new("civil_affairs", "k", &r.name, &wrong, r.death_date)
        };
        assert_eq!(r.id_status, IdStatus::Invalid);
        assert_eq!(compare(&p, &r, &rules()).id, IdLevel::Repaired);
    }

    #[test]
    fn swapped_adjacent_digits_are_repaired() {
        let p = wang();
        let mut b = p.id_number.as_bytes().to_vec();
        let i = (0..16).find(|&i| b[i] != b[i + 1]).unwrap();
        b.swap(i, i + 1);
        let r = MatchRecord::new(
            "funeral",
            "k",
            "王秀英",
            &String::from_utf8(b).unwrap(),
            d(2026, 10, 1),
        );
        assert_eq!(compare(&p, &r, &rules()).id, IdLevel::Repaired);
    }

    #[test]
    fn a_recoded_region_with_the_same_birth_and_sequence_is_same_but_region() {
        let p = wang();
        let other = id_for("440305", p.birth_date, 122);
        let r = MatchRecord::new("public_security", "k", "王秀英", &other, d(2026, 10, 1));
        assert_eq!(compare(&p, &r, &rules()).id, IdLevel::SameButRegion);
    }

    #[test]
    fn another_valid_id_is_different_and_an_empty_one_missing() {
        let p = wang();
        let other = id_for("440304", p.birth_date, 124);
        let r = MatchRecord::new("public_security", "k", "王秀英", &other, d(2026, 10, 1));
        assert_eq!(compare(&p, &r, &rules()).id, IdLevel::Different);
        let r = MatchRecord::new("funeral", "k", "王秀英", "", d(2026, 10, 1));
        assert_eq!(compare(&p, &r, &rules()).id, IdLevel::Missing);
    }

    #[test]
    fn a_fifteen_digit_id_is_upgraded_and_exact() {
        let p = wang();
        let id15 = format!("{}{}", &p.id_number[..6], &p.id_number[8..17]);
        let r = MatchRecord::new("funeral", "k", "王秀英", &id15, d(2026, 10, 1));
        assert_eq!(r.id_status, IdStatus::Upgraded);
        assert_eq!(compare(&p, &r, &rules()).id, IdLevel::Exact);
    }

    fn name_level(ours: &str, theirs: &str) -> NameLevel {
        let p = person("P", ours, "440304", d(1942, 3, 15), 122);
        let r = MatchRecord::new("funeral", "k", theirs, "", d(2026, 10, 1));
        compare(&p, &r, &rules()).name
    }

    #[test]
    fn name_levels_from_exact_to_different() {
        assert_eq!(name_level("王秀英", "王秀英"), NameLevel::Exact);
        assert_eq!(name_level("王秀英", "王 秀英"), NameLevel::Normalised);
        assert_eq!(name_level("陳秀英", "陈秀英"), NameLevel::Normalised);
        assert_eq!(
            name_level("阿依古丽·买买提", "阿依古丽买买提"),
            NameLevel::Normalised
        );
        assert_eq!(name_level("王秀英", "王秀瑛"), NameLevel::TonedPinyin);
        assert_eq!(name_level("王秀英", "王xiu英"), NameLevel::TonelessPinyin);
        assert_eq!(name_level("王秀英", "王秀影"), NameLevel::TonelessPinyin);
        assert_eq!(name_level("刘秀英", "牛秀英"), NameLevel::Confusable);
        assert_eq!(name_level("张建林", "章建凌"), NameLevel::Confusable);
        assert_eq!(name_level("胡建国", "符建国"), NameLevel::Confusable);
        assert_eq!(name_level("王秀英", "王秀英华"), NameLevel::Similar);
        assert_eq!(name_level("王秀英", "李建国"), NameLevel::Different);
        assert_eq!(name_level("王秀英", ""), NameLevel::Missing);
    }

    #[test]
    fn a_sibling_with_the_same_surname_is_not_similar() {
        assert_eq!(name_level("王秀英", "王建国"), NameLevel::Different);
    }

    fn birth_level(theirs: Option<NaiveDate>, range: Option<(i32, i32)>) -> BirthLevel {
        let p = wang();
        let mut r = MatchRecord::new("civil_affairs", "k", "王秀英", "", d(2026, 10, 1));
        r.birth_date = theirs;
        r.birth_year_range = range;
        compare(&p, &r, &rules()).birth
    }

    #[test]
    fn birth_levels() {
        assert_eq!(birth_level(Some(d(1942, 3, 15)), None), BirthLevel::Exact);
        let p = person("P", "王秀英", "440304", d(1942, 3, 5), 122);
        let mut r = MatchRecord::new("civil_affairs", "k", "王秀英", "", d(2026, 10, 1));
        r.birth_date = Some(d(1942, 5, 3));
        assert_eq!(compare(&p, &r, &rules()).birth, BirthLevel::DayMonthSwapped);
        assert_eq!(
            birth_level(Some(d(1943, 3, 15)), None),
            BirthLevel::OnePartOff
        );
        assert_eq!(
            birth_level(Some(d(1942, 3, 16)), None),
            BirthLevel::OnePartOff
        );
        assert_eq!(birth_level(Some(d(1942, 8, 1)), None), BirthLevel::YearOnly);
        assert_eq!(birth_level(None, Some((1941, 1943))), BirthLevel::YearOnly);
        assert_eq!(birth_level(None, Some((1950, 1952))), BirthLevel::Different);
        assert_eq!(
            birth_level(Some(d(1950, 1, 1)), None),
            BirthLevel::Different
        );
        assert_eq!(birth_level(None, None), BirthLevel::Missing);
    }

    #[test]
    fn birth_and_sex_read_off_an_agreeing_id_are_implied_not_counted_twice() {
        let p = wang();
        let c = compare(&p, &record_of(&p, "k"), &rules());
        assert_eq!(c.birth, BirthLevel::ImpliedById);
        assert_eq!(c.sex, SexLevel::ImpliedById);
        assert_eq!(c.birth.weight(&rules()), 0.0);
        assert_eq!(c.sex.weight(&rules()), 0.0);
    }

    #[test]
    fn a_record_whose_birth_date_contradicts_its_own_id_keeps_the_difference() {
        let p = wang();
        let mut r = record_of(&p, "k");
        r.birth_date = Some(d(1918, 6, 2));
        assert_eq!(compare(&p, &r, &rules()).birth, BirthLevel::Different);
    }

    #[test]
    fn sex_levels() {
        let p = wang();
        let mut r = MatchRecord::new("funeral", "k", "王秀英", "", d(2026, 10, 1));
        r.sex = Some(p.sex);
        assert_eq!(compare(&p, &r, &rules()).sex, SexLevel::Agree);
        r.sex = Some(3 - p.sex);
        assert_eq!(compare(&p, &r, &rules()).sex, SexLevel::Disagree);
        r.sex = None;
        assert_eq!(compare(&p, &r, &rules()).sex, SexLevel::Missing);
    }

    #[test]
    fn the_county_counts_as_the_city_next_to_an_agreeing_id() {
        let p = wang();
        let mut r = record_of(&p, "k");
        r.region = Some(p.residence_region.to_string());
        assert_eq!(compare(&p, &r, &rules()).region, RegionLevel::City);
        r.id_raw = String::new();
        r.id_number = None;
        r.id_status = IdStatus::Empty;
        assert_eq!(compare(&p, &r, &rules()).region, RegionLevel::County);
    }

    #[test]
    fn region_levels() {
        let p = wang();
        let mut r = MatchRecord::new("funeral", "k", "王秀英", "", d(2026, 10, 1));
        for (code, level) in [
            (Some("440304"), RegionLevel::County),
            (Some("440300"), RegionLevel::City),
            (Some("440306"), RegionLevel::City),
            (Some("441402"), RegionLevel::Province),
            (Some("510104"), RegionLevel::Different),
            (None, RegionLevel::Missing),
        ] {
            r.region = code.map(str::to_string);
            assert_eq!(compare(&p, &r, &rules()).region, level, "{code:?}");
        }
    }
}
