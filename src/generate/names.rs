//! Chinese names as a roster of older people really has them: surnames with
//! the national skew (王 李 张 alone are a fifth of everyone), the given
//! names favoured by people born 1920–1970 (秀英, 建国 ...), a few compound
//! and polyphonic surnames, and the occasional minority name with a middle
//! dot. The skew matters: it is what makes same-name-same-birthday strangers
//! appear by themselves at millions of rows, as they do in real data.
//!
//! Also the tables the corruptions draw on: homophones, traditional forms and
//! the pinyin of rarer characters. Pure data and pure functions, no I/O.

use std::sync::OnceLock;

use rand::Rng;

use super::sample::Weighted;
use crate::identity::Sex;

/// A name in its parts, all static: copying one costs nothing, and writing it
/// into the roster needs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Name {
    /// Surname; for a minority name, the father's name that follows the dot.
    pub family: &'static str,
    /// Given name, or its first character when composed.
    pub given: &'static str,
    /// Second given character when composed, else "".
    pub given2: &'static str,
    /// Written `given·family` (阿依古丽·买买提) instead of `family given`.
    pub minority: bool,
}

impl Name {
    pub(crate) fn push_to(&self, buf: &mut Vec<u8>) {
        if self.minority {
            buf.extend_from_slice(self.given.as_bytes());
            buf.extend_from_slice("·".as_bytes());
            buf.extend_from_slice(self.family.as_bytes());
        } else {
            buf.extend_from_slice(self.family.as_bytes());
            buf.extend_from_slice(self.given.as_bytes());
            buf.extend_from_slice(self.given2.as_bytes());
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut b = Vec::with_capacity(24);
        self.push_to(&mut b);
        String::from_utf8(b).unwrap_or_default()
    }

    /// How many leading characters are the surname, which corruptions leave
    /// alone (a clerk mistypes a given name far more often than a surname).
    pub(crate) fn family_chars(&self) -> usize {
        if self.minority {
            0
        } else {
            self.family.chars().count()
        }
    }
}

/// Surnames with weights in per-100 000 of the population (2020 census order),
/// then rarer ones that matter for matching: compound surnames and
/// polyphonic ones whose pinyin differs from the character's usual reading.
static SURNAMES: &[(&str, u64)] = &[
    ("王", 7120),
    ("李", 7090),
    ("张", 6630),
    ("刘", 5380),
    ("陈", 4610),
    ("杨", 3220),
    ("黄", 2450),
    ("赵", 2290),
    ("吴", 2050),
    ("周", 2000),
    ("徐", 1670),
    ("孙", 1540),
    ("马", 1480),
    ("朱", 1450),
    ("胡", 1300),
    ("郭", 1190),
    ("何", 1170),
    ("林", 1110),
    ("高", 1080),
    ("罗", 1060),
    ("郑", 1040),
    ("梁", 970),
    ("谢", 820),
    ("宋", 730),
    ("唐", 710),
    ("许", 670),
    ("韩", 660),
    ("冯", 650),
    ("邓", 640),
    ("曹", 630),
    ("彭", 610),
    ("曾", 580),
    ("肖", 560),
    ("田", 540),
    ("董", 510),
    ("袁", 500),
    ("潘", 490),
    ("于", 490),
    ("蒋", 480),
    ("蔡", 470),
    ("余", 460),
    ("杜", 450),
    ("叶", 440),
    ("程", 430),
    ("苏", 420),
    ("魏", 410),
    ("吕", 400),
    ("丁", 390),
    ("任", 380),
    ("沈", 370),
    ("姚", 360),
    ("卢", 360),
    ("姜", 350),
    ("崔", 340),
    ("钟", 340),
    ("谭", 330),
    ("陆", 320),
    ("汪", 310),
    ("范", 300),
    ("金", 300),
    ("石", 290),
    ("廖", 290),
    ("贾", 280),
    ("夏", 270),
    ("韦", 270),
    ("付", 260),
    ("方", 260),
    ("白", 250),
    ("邹", 250),
    ("孟", 240),
    ("熊", 240),
    ("秦", 230),
    ("邱", 230),
    ("江", 220),
    ("尹", 220),
    ("薛", 210),
    ("闫", 210),
    ("段", 200),
    ("雷", 200),
    ("侯", 190),
    ("龙", 190),
    ("史", 180),
    ("陶", 180),
    ("黎", 170),
    ("贺", 170),
    ("顾", 170),
    ("毛", 160),
    ("郝", 160),
    ("龚", 150),
    ("邵", 150),
    ("万", 150),
    ("钱", 140),
    ("严", 140),
    ("覃", 140),
    ("武", 130),
    ("戴", 130),
    ("莫", 130),
    ("孔", 120),
    ("向", 120),
    ("汤", 120),
    // rarer, kept because they trip up pinyin and name keys
    ("欧阳", 30),
    ("司马", 5),
    ("诸葛", 3),
    ("上官", 3),
    ("司徒", 8),
    ("单", 20),
    ("解", 15),
    ("查", 15),
    ("区", 8),
    ("仇", 10),
    ("朴", 10),
    ("盖", 8),
    ("缪", 10),
    ("乐", 10),
    ("尉迟", 2),
];

/// Surnames ranked about 101st to 230th, in rank order: each is rare, together
/// they are the few per cent that keep the top hundred from covering everyone.
static SURNAME_TAIL: &[&str] = &[
    "常", "邢", "聂", "温", "康", "施", "文", "牛", "樊", "葛", "安", "齐", "易", "乔", "伍", "庞",
    "颜", "倪", "庄", "章", "鲁", "岳", "翟", "殷", "詹", "申", "欧", "耿", "关", "兰", "焦", "俞",
    "左", "柳", "甘", "祝", "包", "宁", "尚", "符", "舒", "阮", "柯", "纪", "梅", "童", "凌", "毕",
    "季", "裴", "霍", "涂", "成", "苗", "谷", "盛", "曲", "翁", "冉", "骆", "蓝", "路", "游", "辛",
    "靳", "管", "柴", "蒙", "鲍", "华", "喻", "祁", "蒲", "房", "滕", "屈", "饶", "牟", "艾", "尤",
    "阳", "时", "穆", "农", "司", "卓", "古", "吉", "简", "车", "项", "连", "芦", "麦", "褚", "娄",
    "窦", "戚", "岑", "景", "党", "宫", "费", "卜", "冷", "晏", "席", "卫", "米", "柏", "宗", "瞿",
    "桂", "全", "佟", "应", "臧", "闵", "苟", "邬", "边", "卞", "姬", "师",
];

/// Given names that were everywhere among women born 1920–1970, most common first.
static FEMALE_CLASSIC: &[&str] = &[
    "秀英", "桂英", "秀兰", "玉兰", "桂兰", "秀珍", "凤英", "玉珍", "玉英", "兰英", "玉梅", "凤兰",
    "淑珍", "淑英", "淑兰", "秀荣", "秀芳", "桂珍", "秀云", "桂芳", "玉华", "素珍", "秀梅", "丽华",
    "桂荣", "玉芳", "凤珍", "翠英", "秀华", "淑华", "美英", "金花", "桂香", "素英", "桂花", "春梅",
    "秀清", "冬梅", "红梅", "丽娟", "凤琴", "玉琴", "淑芬", "美华", "月英", "金凤", "爱华", "爱英",
    "秀琴", "建华", "淑琴", "玉凤",
];

/// Given names that were everywhere among men born 1920–1970, most common first.
static MALE_CLASSIC: &[&str] = &[
    "建国", "建华", "国强", "建军", "国华", "志强", "建平", "国庆", "德明", "德胜", "永明", "永祥",
    "明华", "文华", "卫国", "卫东", "红兵", "建新", "志明", "国平", "学文", "振华", "宝山", "福生",
    "长江", "德才", "金生", "玉成", "树林", "春生", "跃进", "爱国", "援朝", "抗美", "解放", "胜利",
    "和平", "新民", "光明", "国栋", "有才", "根生", "水生", "福林", "金宝", "荣华", "国良", "建民",
    "文明", "志刚",
];

static FEMALE_FIRST: &[&str] = &[
    "秀", "玉", "桂", "淑", "凤", "美", "素", "翠", "丽", "春", "冬", "金", "月", "爱", "惠", "兰",
    "彩", "雪", "红", "海", "小", "晓", "建", "志", "银", "珍",
];

/// Also used alone as one-character given names. The last few are rare
/// characters that clerks sometimes cannot type (see `PINYIN`).
static FEMALE_SECOND: &[&str] = &[
    "英", "兰", "珍", "芳", "华", "梅", "萍", "红", "敏", "静", "丽", "霞", "燕", "玲", "琴", "云",
    "娟", "凤", "莲", "荣", "菊", "香", "群", "秋", "慧", "洁", "颖", "芬", "琼", "娥", "枝", "瑛",
    "琇", "玥", "淼",
];

static MALE_FIRST: &[&str] = &[
    "建", "国", "志", "德", "永", "明", "文", "卫", "学", "振", "宝", "福", "金", "玉", "树", "春",
    "长", "新", "光", "有", "根", "水", "荣", "立", "庆", "红", "海", "家", "俊", "世", "兴", "继",
    "传",
];

static MALE_SECOND: &[&str] = &[
    "军", "强", "伟", "勇", "刚", "明", "杰", "斌", "平", "辉", "林", "华", "东", "兵", "峰", "涛",
    "波", "国", "成", "龙", "忠", "生", "福", "贵", "发", "山", "海", "祥", "才", "民", "义", "仁",
    "礼", "顺", "贤", "堃", "喆", "燊", "昇", "犇", "翀", "焱",
];

/// Uyghur personal names; a name is `personal·father's`.
static MINORITY_FEMALE: &[&str] = &[
    "阿依古丽",
    "古丽娜尔",
    "热依汗古丽",
    "帕提古丽",
    "阿依努尔",
    "努尔古丽",
    "再努尔",
    "米热古丽",
    "阿米娜",
    "海力其汗",
];
static MINORITY_MALE: &[&str] = &[
    "买买提",
    "艾力",
    "艾尔肯",
    "阿不都拉",
    "吐尔逊",
    "努尔买买提",
    "阿里木",
    "热合曼",
    "亚森",
    "玉素甫",
    "艾买提",
    "肉孜",
];

/// Pairs read the same in toneless pinyin, the usual slip when a clerk picks
/// a character from an input method's list: 王秀英 / 王秀瑛.
static HOMOPHONES: &[(char, char)] = &[
    ('英', '瑛'),
    ('兰', '岚'),
    ('华', '桦'),
    ('芳', '方'),
    ('珍', '贞'),
    ('玲', '苓'),
    ('丽', '莉'),
    ('红', '虹'),
    ('梅', '玫'),
    ('明', '鸣'),
    ('军', '君'),
    ('国', '帼'),
    ('建', '健'),
    ('伟', '玮'),
    ('文', '雯'),
    ('平', '萍'),
    ('云', '芸'),
    ('霞', '侠'),
    ('敏', '民'),
    ('静', '靖'),
    ('淑', '书'),
    ('桂', '贵'),
    ('玉', '钰'),
    ('琴', '芹'),
    ('燕', '艳'),
    ('娟', '鹃'),
    ('志', '智'),
    ('成', '诚'),
    ('林', '琳'),
    ('金', '锦'),
    ('德', '得'),
    ('福', '富'),
    ('永', '勇'),
    ('忠', '中'),
    ('秀', '琇'),
    ('荣', '蓉'),
    ('宝', '保'),
    ('新', '欣'),
    ('兵', '斌'),
    ('刚', '钢'),
    ('涛', '滔'),
    ('辉', '晖'),
    ('杰', '洁'),
    ('东', '冬'),
    ('生', '升'),
    ('香', '湘'),
    ('菊', '桔'),
    ('翠', '萃'),
    ('凤', '峰'),
    ('峰', '锋'),
];

/// Simplified → traditional for characters common in names, as an older
/// system or a Hong Kong / Taiwan-trained clerk writes them.
static TRADITIONAL: &[(char, char)] = &[
    ('国', '國'),
    ('华', '華'),
    ('兰', '蘭'),
    ('凤', '鳳'),
    ('红', '紅'),
    ('丽', '麗'),
    ('张', '張'),
    ('刘', '劉'),
    ('陈', '陳'),
    ('杨', '楊'),
    ('赵', '趙'),
    ('黄', '黃'),
    ('吴', '吳'),
    ('孙', '孫'),
    ('马', '馬'),
    ('郑', '鄭'),
    ('罗', '羅'),
    ('谢', '謝'),
    ('冯', '馮'),
    ('邓', '鄧'),
    ('东', '東'),
    ('荣', '榮'),
    ('庆', '慶'),
    ('宝', '寶'),
    ('贵', '貴'),
    ('龙', '龍'),
    ('军', '軍'),
    ('兴', '興'),
    ('义', '義'),
    ('伟', '偉'),
    ('杰', '傑'),
    ('发', '發'),
    ('云', '雲'),
    ('爱', '愛'),
    ('顺', '順'),
    ('静', '靜'),
    ('琼', '瓊'),
    ('莲', '蓮'),
    ('卫', '衛'),
    ('广', '廣'),
    ('长', '長'),
    ('进', '進'),
    ('乐', '樂'),
    ('学', '學'),
    ('书', '書'),
    ('贞', '貞'),
    ('阳', '陽'),
    ('欧', '歐'),
    ('叶', '葉'),
    ('苏', '蘇'),
    ('韩', '韓'),
    ('汤', '湯'),
    ('邹', '鄒'),
    ('龚', '龔'),
    ('顾', '顧'),
    ('钱', '錢'),
    ('贺', '賀'),
    ('陆', '陸'),
    ('卢', '盧'),
    ('许', '許'),
    ('万', '萬'),
    ('严', '嚴'),
    ('蒋', '蔣'),
    ('韦', '韋'),
    ('钟', '鍾'),
    ('谭', '譚'),
    ('贾', '賈'),
    ('闫', '閆'),
    ('吕', '呂'),
    ('胜', '勝'),
    ('强', '強'),
    ('树', '樹'),
    ('跃', '躍'),
    ('栋', '棟'),
    ('刚', '剛'),
    ('辉', '輝'),
    ('涛', '濤'),
    ('洁', '潔'),
    ('颖', '穎'),
    ('银', '銀'),
    ('礼', '禮'),
    ('贤', '賢'),
    ('继', '繼'),
    ('传', '傳'),
    ('庄', '莊'),
];

/// Rarer characters a clerk may not find in the input method and types as
/// pinyin instead (王yue for 王玥).
static PINYIN: &[(char, &str)] = &[
    ('瑛', "ying"),
    ('琇', "xiu"),
    ('玥', "yue"),
    ('堃', "kun"),
    ('喆', "zhe"),
    ('燊', "shen"),
    ('昇', "sheng"),
    ('淼', "miao"),
    ('焱', "yan"),
    ('犇', "ben"),
    ('珺', "jun"),
    ('翀', "chong"),
    ('桦', "hua"),
    ('岚', "lan"),
    ('帼', "guo"),
    ('钰', "yu"),
    ('鹃', "juan"),
    ('玮', "wei"),
    ('雯', "wen"),
    ('芸', "yun"),
    ('苓', "ling"),
    ('晖', "hui"),
    ('湘', "xiang"),
    ('萃', "cui"),
];

struct Tables {
    surnames: Weighted,
    female_classic: Weighted,
    male_classic: Weighted,
    female_first: Weighted,
    female_second: Weighted,
    male_first: Weighted,
    male_second: Weighted,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| Tables {
        surnames: Weighted::new(
            SURNAMES
                .iter()
                .map(|&(_, w)| w)
                .chain((0..SURNAME_TAIL.len() as u64).map(|i| 115 - i * 3 / 4)),
        ),
        female_classic: Weighted::zipf(FEMALE_CLASSIC.len()),
        male_classic: Weighted::zipf(MALE_CLASSIC.len()),
        female_first: Weighted::zipf(FEMALE_FIRST.len()),
        female_second: Weighted::zipf(FEMALE_SECOND.len()),
        male_first: Weighted::zipf(MALE_FIRST.len()),
        male_second: Weighted::zipf(MALE_SECOND.len()),
    })
}

pub(crate) fn sample_surname(rng: &mut impl Rng) -> &'static str {
    let i = tables().surnames.pick(rng);
    SURNAMES
        .get(i)
        .map_or_else(|| SURNAME_TAIL[i - SURNAMES.len()], |s| s.0)
}

/// A name for a person of this sex; `minority` asks for a dotted name.
pub(crate) fn sample_name(rng: &mut impl Rng, sex: Sex, minority: bool) -> Name {
    let t = tables();
    if minority {
        let given = match sex {
            Sex::Female => MINORITY_FEMALE[rng.random_range(0..MINORITY_FEMALE.len())],
            Sex::Male => MINORITY_MALE[rng.random_range(0..MINORITY_MALE.len())],
        };
        let family = MINORITY_MALE[rng.random_range(0..MINORITY_MALE.len())];
        return Name {
            family,
            given,
            given2: "",
            minority: true,
        };
    }
    let family = sample_surname(rng);
    sample_given(rng, sex, family, t)
}

/// A name with a fixed surname (a relative's, for the informant case).
pub(crate) fn sample_with_surname(rng: &mut impl Rng, sex: Sex, family: &'static str) -> Name {
    sample_given(rng, sex, family, tables())
}

fn sample_given(rng: &mut impl Rng, sex: Sex, family: &'static str, t: &Tables) -> Name {
    let r: f64 = rng.random();
    let (classic, classic_w, first, first_w, second, second_w) = match sex {
        Sex::Female => (
            FEMALE_CLASSIC,
            &t.female_classic,
            FEMALE_FIRST,
            &t.female_first,
            FEMALE_SECOND,
            &t.female_second,
        ),
        Sex::Male => (
            MALE_CLASSIC,
            &t.male_classic,
            MALE_FIRST,
            &t.male_first,
            MALE_SECOND,
            &t.male_second,
        ),
    };
    let (given, given2) = if r < 0.45 {
        (classic[classic_w.pick(rng)], "")
    } else if r < 0.62 {
        (second[second_w.pick(rng)], "")
    } else {
        (first[first_w.pick(rng)], second[second_w.pick(rng)])
    };
    Name {
        family,
        given,
        given2,
        minority: false,
    }
}

/// Replaces one given-name character by a homophone, if any has one.
pub(crate) fn homophone(name: &str, family_chars: usize, rng: &mut impl Rng) -> Option<String> {
    let chars: Vec<char> = name.chars().collect();
    let spots: Vec<(usize, char)> = chars
        .iter()
        .enumerate()
        .skip(family_chars)
        .filter_map(|(i, &c)| {
            HOMOPHONES
                .iter()
                .find_map(|&(a, b)| (a == c).then_some(b).or((b == c).then_some(a)))
                .map(|other| (i, other))
        })
        .collect();
    if spots.is_empty() {
        return None;
    }
    let (i, other) = spots[rng.random_range(0..spots.len())];
    let mut out = chars;
    out[i] = other;
    Some(out.into_iter().collect())
}

/// Every character that has a traditional form, in that form.
pub(crate) fn traditional(name: &str) -> Option<String> {
    let out: String = name
        .chars()
        .map(|c| {
            TRADITIONAL
                .iter()
                .find(|&&(s, _)| s == c)
                .map_or(c, |&(_, t)| t)
        })
        .collect();
    (out != name).then_some(out)
}

/// The first rare character spelt out in pinyin.
pub(crate) fn pinyin_for_rare(name: &str) -> Option<String> {
    let (i, c, py) = name.char_indices().find_map(|(i, c)| {
        PINYIN
            .iter()
            .find(|&&(r, _)| r == c)
            .map(|&(_, p)| (i, c, p))
    })?;
    let mut out = String::with_capacity(name.len() + 4);
    out.push_str(&name[..i]);
    out.push_str(py);
    out.push_str(&name[i + c.len_utf8()..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::sample::{Stage, stream};

    #[test]
    fn name_corruptions_change_what_they_claim() {
        let mut rng = stream(1, Stage::Deaths, 0);
        assert_eq!(
            homophone("王秀英", 1, &mut rng)
                .as_deref()
                .map(|s| s.chars().count()),
            Some(3)
        );
        assert_eq!(traditional("刘建国").as_deref(), Some("劉建國"));
        assert_eq!(traditional("王秀英"), None);
        assert_eq!(pinyin_for_rare("李玥").as_deref(), Some("李yue"));
    }

    #[test]
    fn surnames_are_skewed_like_the_population() {
        let mut rng = stream(7, Stage::People, 0);
        let n = 100_000;
        let wang = (0..n).filter(|_| sample_surname(&mut rng) == "王").count();
        let share = wang as f64 / n as f64;
        assert!((0.065..0.085).contains(&share), "王 share {share}");
    }
}
