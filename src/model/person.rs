//! A pensioner: as the roster export gives them and the store keeps them
//! ([`Pensioner`]), and the identity fields the matcher compares
//! ([`Person`], a projection kept small because ten million are held in
//! memory at once).

use chrono::NaiveDate;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::death::names_of;

/// A pensioner as stored. Field names follow spec §1 where they can.
///
/// The text fields are [`CompactString`]s: each is short (a person number,
/// a name, an 18-character ID, a region code...) and so kept inline, and a
/// roster import builds millions of these, where ten heap allocations and
/// frees per row were a tenth of the import's CPU time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Pensioner {
    /// The agency's own person number: the stable key.
    #[sqlx(try_from = "String")]
    pub person_no: CompactString,
    /// As registered, for display.
    #[sqlx(try_from = "String")]
    pub name: CompactString,
    /// After NFKC, separator folding and traditional→simplified: what
    /// comparisons use.
    #[sqlx(try_from = "String")]
    pub name_norm: CompactString,
    /// Toneless pinyin, for blocking homophones together.
    #[sqlx(try_from = "String")]
    pub name_key: CompactString,
    /// Normalised 18-character number (legacy 15-digit ones upgraded).
    #[sqlx(try_from = "String")]
    pub id_number: CompactString,
    /// The export carried the legacy 15-digit form.
    pub id_upgraded: bool,
    /// GB/T 2261.1: 1 male, 2 female.
    pub sex: i32,
    pub birth_date: NaiveDate,
    #[sqlx(try_from = "String")]
    pub insured_region: CompactString,
    #[sqlx(try_from = "String")]
    pub residence_region: CompactString,
    #[sqlx(try_from = "String")]
    pub benefit_type: CompactString,
    /// Integer fen: money is never a float.
    pub monthly_amount_fen: i64,
    #[sqlx(try_from = "String")]
    pub bank_account: CompactString,
    pub benefit_start: NaiveDate,
    #[sqlx(try_from = "String")]
    pub status: CompactString,
    pub last_certified: Option<NaiveDate>,
    pub phone: Option<String>,
    /// Hash of every source field, so an unchanged row is recognised
    /// without reading it back.
    pub content_hash: i64,
    /// Snapshot date of the import that first brought the person in.
    pub first_seen: NaiveDate,
    /// Snapshot date of the first export the person was absent from.
    pub missing_since: Option<NaiveDate>,
}

/// A pensioner's identity as the matcher compares it: the fields of a
/// [`Pensioner`] that blocking and scoring read, derived the same way as a
/// death record's.
///
/// The text fields are [`CompactString`]s: every one of them is short (a
/// 16-digit person number, an 18-character ID, a name of a few characters,
/// a 6-digit region) and fits inline, so ten million pensioners take about
/// 1.8 GB and no allocation each instead of about 4 GB and seven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The agency's own stable person number: what a match points at.
    pub person_no: CompactString,
    /// The name as registered; only used to tell an exact match from one
    /// that needed normalising.
    pub name: CompactString,
    /// [`identity::normalize_name`] of the registered name.
    pub name_norm: CompactString,
    /// [`identity::pinyin_key`] of `name_norm`: the blocking and frequency key.
    pub name_key: CompactString,
    /// A valid 18-character resident ID (legacy 15-digit rows upgraded).
    pub id_number: CompactString,
    /// GB/T 2261.1: 1 male, 2 female (always known for pensioners).
    pub sex: u8,
    pub birth_date: NaiveDate,
    /// 6-digit region of the paying agency.
    pub insured_region: CompactString,
    /// 6-digit region where the person lives now; death records are often
    /// filed where people live, not where they are insured.
    pub residence_region: CompactString,
    /// A death before the pension started is a timeline error worth a flag.
    pub benefit_start: NaiveDate,
}

impl Person {
    /// A pensioner with name fields derived from the registered name.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        person_no: &str,
        name: &str,
        id_number: &str,
        sex: u8,
        birth_date: NaiveDate,
        insured_region: &str,
        residence_region: &str,
        benefit_start: NaiveDate,
    ) -> Person {
        let (name_norm, name_key) = names_of(name);
        Person {
            person_no: person_no.into(),
            name: name.into(),
            name_norm: name_norm.into(),
            name_key: name_key.into(),
            id_number: id_number.into(),
            sex,
            birth_date,
            insured_region: insured_region.into(),
            residence_region: residence_region.into(),
            benefit_start,
        }
    }
}
