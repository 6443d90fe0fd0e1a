//! Where people are: county choices with a population skew, other counties
//! of the same city, and counties in other provinces for those who moved
//! away. Built once per run from `identity::region`, the only list of real
//! codes the generator may use.

use rand::Rng;

use super::sample::{Weighted, stable_hash};
use crate::identity::region::{county_codes, county_codes_in_province};

pub(crate) struct Regions {
    counties: &'static [u32],
    weights: Weighted,
    provinces: Vec<u32>,
    /// Xinjiang's counties, where most dotted (Uyghur) names are registered.
    xinjiang: &'static [u32],
}

impl Regions {
    /// `None` when the region table is empty (nothing to generate from).
    pub(crate) fn new() -> Option<Self> {
        let counties = county_codes();
        if counties.is_empty() {
            return None;
        }
        // Counties differ in size by an order of magnitude; a fixed
        // hash keeps the skew the same from run to run.
        let weights = Weighted::new(counties.iter().map(|&c| 1 + stable_hash(u64::from(c)) % 8));
        let mut provinces: Vec<u32> = counties.iter().map(|&c| c / 10_000).collect();
        provinces.dedup();
        Some(Regions {
            counties,
            weights,
            provinces,
            xinjiang: county_codes_in_province(65),
        })
    }

    pub(crate) fn county(&self, rng: &mut impl Rng) -> u32 {
        self.counties[self.weights.pick(rng)]
    }

    pub(crate) fn minority_county(&self, rng: &mut impl Rng) -> u32 {
        if self.xinjiang.is_empty() || rng.random_bool(0.15) {
            self.county(rng)
        } else {
            self.xinjiang[rng.random_range(0..self.xinjiang.len())]
        }
    }

    /// Another county of the same city (first four digits), or `c` itself
    /// when the city has only one.
    pub(crate) fn same_city(&self, c: u32, rng: &mut impl Rng) -> u32 {
        let city = c / 100;
        let lo = self.counties.partition_point(|&x| x / 100 < city);
        let hi = self.counties.partition_point(|&x| x / 100 <= city);
        if hi <= lo + 1 {
            return c;
        }
        self.counties[rng.random_range(lo..hi)]
    }

    /// A county in a province other than `c`'s, or `c` when there is only one province.
    pub(crate) fn other_province(&self, c: u32, rng: &mut impl Rng) -> u32 {
        let own = c / 10_000;
        let others: usize = self.provinces.len() - usize::from(self.provinces.contains(&own));
        if others == 0 {
            return c;
        }
        let mut k = rng.random_range(0..others);
        for &p in &self.provinces {
            if p == own {
                continue;
            }
            if k == 0 {
                let cs = county_codes_in_province(p);
                if cs.is_empty() {
                    return c;
                }
                return cs[rng.random_range(0..cs.len())];
            }
            k -= 1;
        }
        c
    }
}
