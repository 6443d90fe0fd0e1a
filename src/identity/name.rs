//! Personal names: the normal form two records are compared in, and the
//! pinyin keys that let a homophone typed for a character (`王秀英` /
//! `王秀瑛`), a rare character typed as its pinyin (`王xiu英`), a dropped
//! middle dot or a traditional form still meet. This module owns those
//! folding rules and the surname readings of polyphonic characters. It must
//! never decide that two names are the same person: a shared pinyin key only
//! makes two records worth comparing on the other fields, since two people
//! with one common name and one birth date are ordinary in a large roster.
//! It does no I/O and keeps no state.

use pinyin::{Pinyin, ToPinyin};
use unicode_normalization::UnicodeNormalization;

/// The one separator kept in minority and foreign names.
const MIDDLE_DOT: char = '·';

/// Surnames whose characters read differently as a surname than by the
/// dictionary's first reading, and the compound surnames that must be read as
/// a unit. Each entry: surname, toneless syllables, syllables with tone
/// numbers. Compound surnames come first so they win over a single-character
/// entry for their first character (`尉迟` over `尉`, `万俟` over `万`).
const SURNAMES: &[(&str, &[&str], &[&str])] = &[
    ("欧阳", &["ou", "yang"], &["ou1", "yang2"]),
    ("司马", &["si", "ma"], &["si1", "ma3"]),
    ("诸葛", &["zhu", "ge"], &["zhu1", "ge3"]),
    ("上官", &["shang", "guan"], &["shang4", "guan1"]),
    ("东方", &["dong", "fang"], &["dong1", "fang1"]),
    ("皇甫", &["huang", "fu"], &["huang2", "fu3"]),
    ("令狐", &["ling", "hu"], &["ling2", "hu2"]),
    ("慕容", &["mu", "rong"], &["mu4", "rong2"]),
    ("司徒", &["si", "tu"], &["si1", "tu2"]),
    ("夏侯", &["xia", "hou"], &["xia4", "hou2"]),
    ("尉迟", &["yu", "chi"], &["yu4", "chi2"]),
    ("万俟", &["mo", "qi"], &["mo4", "qi2"]),
    ("长孙", &["zhang", "sun"], &["zhang3", "sun1"]),
    ("宇文", &["yu", "wen"], &["yu3", "wen2"]),
    ("公孙", &["gong", "sun"], &["gong1", "sun1"]),
    ("端木", &["duan", "mu"], &["duan1", "mu4"]),
    ("轩辕", &["xuan", "yuan"], &["xuan1", "yuan2"]),
    ("澹台", &["tan", "tai"], &["tan2", "tai2"]),
    ("呼延", &["hu", "yan"], &["hu1", "yan2"]),
    ("单", &["shan"], &["shan4"]),
    ("曾", &["zeng"], &["zeng1"]),
    ("解", &["xie"], &["xie4"]),
    ("仇", &["qiu"], &["qiu2"]),
    ("区", &["ou"], &["ou1"]),
    ("朴", &["piao"], &["piao2"]),
    ("查", &["zha"], &["zha1"]),
    ("盖", &["ge"], &["ge3"]),
    ("乐", &["yue"], &["yue4"]),
    ("召", &["shao"], &["shao4"]),
    ("缪", &["miao"], &["miao4"]),
    ("翟", &["zhai"], &["zhai2"]),
    ("覃", &["qin"], &["qin2"]),
    ("种", &["chong"], &["chong2"]),
    ("秘", &["bi"], &["bi4"]),
    ("繁", &["po"], &["po2"]),
    ("员", &["yun"], &["yun4"]),
    ("尉", &["yu"], &["yu4"]),
    ("重", &["chong"], &["chong2"]),
    ("相", &["xiang"], &["xiang1"]),
    ("便", &["pian"], &["pian2"]),
    ("折", &["she"], &["she2"]),
    ("宓", &["fu"], &["fu2"]),
    ("藏", &["zang"], &["zang4"]),
    ("能", &["nai"], &["nai4"]),
    ("句", &["gou"], &["gou1"]),
    ("阚", &["kan"], &["kan4"]),
    ("薄", &["bo"], &["bo2"]),
];

/// Compound entries sit at the head of [`SURNAMES`].
fn is_compound(surname: &str) -> bool {
    surname.chars().nth(1).is_some()
}

/// Brings a name as typed into the form names are compared in: NFKC, no
/// whitespace (nor zero-width characters), every separator variant folded to
/// one `·`, repeated separators collapsed and leading or trailing ones
/// dropped, traditional characters folded to simplified, and ASCII letters
/// lower-cased.
pub fn normalize_name(raw: &str) -> String {
    // Most names are nothing but CJK Unified Ideographs: NFKC leaves those
    // as they are and none is a space, separator or upper-case letter, so
    // only the traditional → simplified step applies.
    if !raw.is_empty() && raw.chars().all(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c)) {
        return fast2s::convert(raw);
    }
    normalize_any(raw)
}

/// [`normalize_name`] without its fast path, for any text.
fn normalize_any(raw: &str) -> String {
    let mut folded = String::with_capacity(raw.len());
    for c in raw.nfkc() {
        if c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}') {
            continue;
        }
        if is_separator(c) {
            // Collapse runs and never start with a separator.
            if !folded.is_empty() && !folded.ends_with(MIDDLE_DOT) {
                folded.push(MIDDLE_DOT);
            }
            continue;
        }
        folded.push(c.to_ascii_lowercase());
    }
    while folded.ends_with(MIDDLE_DOT) {
        folded.pop();
    }
    if folded.is_ascii() {
        return folded;
    }
    fast2s::convert(&folded)
}

/// Separators people type between the parts of a minority or foreign name.
/// NFKC has already turned full-width and half-width forms into these.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        '·' | '•'
            | '・'
            | '.'
            | '-'
            | '‧'
            | '･'
            | '．'
            | '\u{0387}' // Greek ano teleia, which some fonts render as `·`
            | '\u{2010}'
            ..='\u{2015}' // hyphens and dashes
            | '\u{2219}' // bullet operator
            | '\u{22C5}' // dot operator
            | '\u{2E31}' // word separator middle dot
            | '\u{318D}' // Hangul araea, typed for a middle dot by Korean IMEs
            | '\u{FE52}' // small full stop
            | '\u{FE63}' // small hyphen-minus
            | '\u{FF0D}' // full-width hyphen-minus
            | '\u{30FC}' // katakana long sound mark
    )
}

/// The surname of a normalised name: a compound surname from the known list,
/// otherwise its first character (empty for an empty name).
pub fn surname(normalized: &str) -> &str {
    if let Some(compound) = compound_surname(normalized) {
        return compound;
    }
    normalized
        .chars()
        .next()
        .map_or("", |c| &normalized[..c.len_utf8()])
}

fn compound_surname(normalized: &str) -> Option<&str> {
    SURNAMES
        .iter()
        .take_while(|(s, _, _)| is_compound(s))
        .find(|(s, _, _)| normalized.starts_with(s))
        .map(|(s, _, _)| &normalized[..s.len()])
}

/// Toneless lower-case pinyin, one syllable per Chinese character (`ü`
/// written `v`), of a normalised name. Runs of ASCII letters are kept as one
/// item each (a rare character typed as its pinyin), `·` is dropped, and
/// characters without pinyin (digits included) are kept as they are.
///
/// The start of the name is read as a surname: compound surnames and the
/// surname readings of polyphonic characters (`单` shan, `曾` zeng) take the
/// place of the dictionary's first reading. This applies to every name,
/// transliterated ones included, so a name and the same name with its
/// middle dot dropped always give the same syllables.
pub fn pinyin_syllables(normalized: &str) -> Vec<String> {
    syllables(normalized, false)
}

/// The toneless pinyin syllables concatenated: `王秀英`, `王秀瑛` and `王xiu英`
/// all give `wangxiuying`. Built in one string, without the per-syllable
/// strings of [`pinyin_syllables`]: every roster row computes one.
pub fn pinyin_key(normalized: &str) -> String {
    let mut out = String::with_capacity(normalized.len() * 2);
    for_each_syllable(normalized, false, |s| out.push_str(s));
    out
}

/// Pinyin with tone numbers, space-separated (`wang2 xiu4 ying1`), with the
/// same surname and ASCII rules as [`pinyin_syllables`]. A neutral-tone
/// syllable carries no number. Lets a caller tell "same toned pinyin" (a
/// likely homophone slip) from "same toneless pinyin" (weaker).
pub fn pinyin_toned(normalized: &str) -> String {
    syllables(normalized, true).join(" ")
}

fn syllables(normalized: &str, toned: bool) -> Vec<String> {
    let mut out = Vec::with_capacity(normalized.chars().count());
    for_each_syllable(normalized, toned, |s| out.push(s.to_string()));
    out
}

/// Hands each syllable of a normalised name to `emit`, in order (the rules
/// are those of [`pinyin_syllables`]).
fn for_each_syllable(normalized: &str, toned: bool, mut emit: impl FnMut(&str)) {
    let mut rest = normalized;
    if let Some((surname, plain, with_tone)) =
        SURNAMES.iter().find(|(s, _, _)| normalized.starts_with(s))
    {
        let readings = if toned { with_tone } else { plain };
        for r in readings.iter() {
            emit(r);
        }
        rest = &normalized[surname.len()..];
    }

    // A run of ASCII letters is one syllable: it is a slice of the name.
    let mut ascii_run: Option<usize> = None;
    let mut syllable = String::new();
    for (i, c) in rest.char_indices() {
        if c.is_ascii_alphabetic() {
            ascii_run.get_or_insert(i);
            continue;
        }
        if let Some(start) = ascii_run.take() {
            emit(&rest[start..i]);
        }
        if c == MIDDLE_DOT || c.is_whitespace() {
            continue;
        }
        match c.to_pinyin() {
            Some(p) => {
                syllable.clear();
                push_reading(&mut syllable, p, toned);
                emit(&syllable);
            }
            None => emit(&rest[i..i + c.len_utf8()]),
        }
    }
    if let Some(start) = ascii_run {
        emit(&rest[start..]);
    }
}

/// One syllable in plain ASCII: `ü` as `v`, `ê` as `e`, and the rare
/// syllabic `m`/`n`/`ng` readings without their diacritics.
fn push_reading(out: &mut String, p: Pinyin, toned: bool) {
    let raw = if toned {
        p.with_tone_num_end()
    } else {
        p.plain()
    };
    if raw.is_ascii() {
        out.push_str(raw);
        return;
    }
    out.extend(raw.chars().map(|c| match c {
        'ü' => 'v',
        'ê' => 'e',
        'ḿ' => 'm',
        'ń' | 'ň' | 'ǹ' => 'n',
        other => other,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> String {
        pinyin_key(&normalize_name(raw))
    }

    #[test]
    fn the_key_is_the_syllables_joined() {
        for raw in [
            "王秀英",
            "欧阳修",
            "司马 光",
            "买买提·吐尔逊",
            "Anna·王",
            "王xiu英",
            "张三ü",
            "吕绿",
            "嗯",
            "呣",
            "",
            "·",
            "x",
            "單于",
            "尉迟恭",
            "长孙无忌",
            "乐乐",
            "曾",
            "☃雪",
        ] {
            let n = normalize_name(raw);
            assert_eq!(pinyin_key(&n), syllables(&n, false).concat(), "{raw}");
            assert_eq!(pinyin_key(raw), syllables(raw, false).concat(), "{raw}");
        }
    }

    #[test]
    fn the_cjk_fast_path_normalises_as_the_general_one() {
        let all: Vec<char> = ('\u{4E00}'..='\u{9FFF}').collect();
        for chunk in all.chunks(3) {
            let name: String = chunk.iter().collect();
            assert_eq!(normalize_name(&name), normalize_any(&name), "{name}");
        }
    }

    #[test]
    fn homophone_characters_share_a_key() {
        assert_eq!(key("王秀英"), "wangxiuying");
        assert_eq!(key("王秀瑛"), "wangxiuying");
    }

    #[test]
    fn a_rare_character_typed_as_pinyin_shares_the_key() {
        assert_eq!(key("王xiu英"), "wangxiuying");
        assert_eq!(key("王ＸＩＵ英"), "wangxiuying");
        assert_eq!(pinyin_syllables("王xiu英"), ["wang", "xiu", "ying"]);
    }

    #[test]
    fn traditional_characters_are_folded_to_simplified() {
        assert_eq!(normalize_name("張偉"), "张伟");
        assert_eq!(key("張偉"), key("张伟"));
    }

    #[test]
    fn minority_name_separators_fold_to_one_middle_dot() {
        let expected = "阿依古丽·买买提";
        for raw in [
            "阿依古丽·买买提",
            "阿依古丽•买买提",
            "阿依古丽.买买提",
            "阿依古丽・买买提",
            "阿依古丽-买买提",
            "阿依古丽．买买提",
            "阿依古丽･买买提",
            "阿依古丽‧买买提",
            "阿依古丽 · · 买买提",
            "·阿依古丽..买买提·",
        ] {
            assert_eq!(normalize_name(raw), expected, "{raw}");
        }
    }

    #[test]
    fn a_dropped_middle_dot_gives_the_same_key() {
        assert_eq!(key("阿依古丽·买买提"), key("阿依古丽买买提"));
        assert_eq!(key("阿依古丽.买买提"), "ayigulimaimaiti");
    }

    #[test]
    fn full_width_characters_and_spaces_are_removed() {
        assert_eq!(normalize_name(" 王\u{3000}秀 英\t"), "王秀英");
        assert_eq!(normalize_name("ＷＡＮＧ　Ｘｉｕ"), "wangxiu");
    }

    #[test]
    fn polyphonic_surnames_take_their_surname_reading() {
        assert_eq!(pinyin_syllables("单田芳"), ["shan", "tian", "fang"]);
        assert_eq!(pinyin_syllables("曾国藩"), ["zeng", "guo", "fan"]);
        assert_eq!(pinyin_syllables("解缙")[0], "xie");
        assert_eq!(pinyin_syllables("仇英")[0], "qiu");
        assert_eq!(pinyin_syllables("翟志刚")[0], "zhai");
    }

    #[test]
    fn a_polyphonic_character_after_the_surname_keeps_its_usual_reading() {
        assert_eq!(pinyin_syllables("王单")[1], "dan");
    }

    #[test]
    fn compound_surnames_are_read_and_returned_as_a_unit() {
        assert_eq!(surname("欧阳修"), "欧阳");
        assert_eq!(pinyin_syllables("欧阳修"), ["ou", "yang", "xiu"]);
        assert_eq!(pinyin_syllables("尉迟恭"), ["yu", "chi", "gong"]);
        assert_eq!(pinyin_syllables("万俟卨")[..2], ["mo", "qi"]);
        assert_eq!(surname("长孙无忌"), "长孙");
        assert_eq!(surname("王秀英"), "王");
        assert_eq!(surname(""), "");
    }

    #[test]
    fn toned_pinyin_carries_tone_numbers() {
        assert_eq!(pinyin_toned("王秀英"), "wang2 xiu4 ying1");
        assert_eq!(pinyin_toned("王秀瑛"), "wang2 xiu4 ying1");
        assert_eq!(pinyin_toned("单田芳"), "shan4 tian2 fang1");
        assert_ne!(pinyin_toned("王秀英"), pinyin_toned("王修英"));
        assert_eq!(key("王秀英"), key("王修英"));
    }

    #[test]
    fn u_umlaut_is_written_v() {
        assert_eq!(pinyin_key("吕女"), "lvnv");
        assert_eq!(pinyin_toned("吕女"), "lv3 nv3");
    }

    #[test]
    fn characters_without_pinyin_are_kept() {
        assert_eq!(pinyin_syllables("王☆"), ["wang", "☆"]);
        assert_eq!(pinyin_syllables("王2号"), ["wang", "2", "hao"]);
    }
}
