//! Randomness that stays reproducible: one ChaCha8 stream per (seed, stage,
//! chunk), so a chunk's content never depends on which thread made it or on
//! what other chunks drew; weighted tables for skewed choices; and the set
//! that keeps ID numbers unique across chunks.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which part of the generation a random stream feeds. Separate streams let
/// one stage change how much it draws without shifting any other stage.
#[derive(Clone, Copy)]
pub(crate) enum Stage {
    People = 1,
    Extras = 2,
    Deaths = 3,
}

/// The stream for one chunk of one stage.
pub(crate) fn stream(seed: u64, stage: Stage, chunk: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&chunk.to_le_bytes());
    key[16..24].copy_from_slice(&(stage as u64).to_le_bytes());
    key[24..].copy_from_slice(b"vigilgen");
    ChaCha8Rng::from_seed(key)
}

/// A cumulative-weight table: draws index `i` with probability w_i / sum(w).
pub(crate) struct Weighted {
    cumulative: Vec<u64>,
}

impl Weighted {
    pub(crate) fn new(weights: impl IntoIterator<Item = u64>) -> Self {
        let mut total = 0u64;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                total += w;
                total
            })
            .collect();
        Weighted { cumulative }
    }

    /// Zipf-like weights over `n` items in order of popularity: real name
    /// characters are that skewed, which is what makes namesakes common.
    pub(crate) fn zipf(n: usize) -> Self {
        Weighted::new((0..n).map(|i| 1_000_000 / (i as u64 + 3)))
    }

    pub(crate) fn pick(&self, rng: &mut impl Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return 0;
        }
        let x = rng.random_range(0..total);
        self.cumulative.partition_point(|&c| c <= x)
    }
}

/// FxHash-style multiplicative hashing: the keys are already well spread
/// numbers and the set holds millions of them, so SipHash is wasted time.
#[derive(Default)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub(crate) type FastSet = HashSet<u64, BuildHasherDefault<FastHasher>>;

/// A stable per-value hash for choices that must not consume randomness,
/// e.g. how many registration offices a county has.
pub(crate) fn stable_hash(v: u64) -> u64 {
    let mut x = v.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
