//! Version-stable random draws on top of [`insitu_linalg::Rng64`].
//!
//! `rand`'s `shuffle`, `random_range` and `rand_distr`'s normal sampler are free to change their
//! algorithms between releases; data sets and batch orders must not change with a dependency
//! bump, so the few draws this crate needs are written out here from raw `u64`s:
//! Lemire's unbiased bounded integers, 53-bit uniform doubles, Box–Muller normals and
//! Fisher–Yates shuffles.

use insitu_linalg::{splitmix64, substream, Rng64};
use rand::RngCore;

/// Domain label of the mini-batch permutations ([`crate::epoch_permutation`]).
pub const DOMAIN_BATCHES: u64 = 0x6261_7463_6865_7331; // "batches1"
/// Domain label of the synthetic regression sets.
pub const DOMAIN_SYNTHETIC: u64 = 0x7379_6e74_6865_7431; // "synthet1"
/// Domain label of seeded train/test splits ([`crate::iris_split`]).
pub const DOMAIN_SPLIT: u64 = 0x7370_6c69_7431_0000; // "split1"

/// SplitMix64 finaliser of `seed ^ domain`: a key for [`substream`] that differs per domain, so
/// that a data stream never coincides with another crate's `substream(seed, k)` for the same run
/// seed (same key and stream label would give the same numbers).
pub fn domain_seed(seed: u64, domain: u64) -> u64 {
    splitmix64(seed ^ domain)
}

/// The generator for `stream` within `domain` of the run seed `seed`.
pub fn domain_stream(seed: u64, domain: u64, stream: u64) -> Rng64 {
    substream(domain_seed(seed, domain), stream)
}

/// A uniform integer in `0..n` (Lemire's multiply-and-reject; unbiased). `n` must be positive.
pub fn uniform_below(rng: &mut Rng64, n: u64) -> u64 {
    assert!(n > 0, "uniform_below(0)");
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// A uniform double in `[0, 1)` with 53 random bits.
pub fn uniform01(rng: &mut Rng64) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal draw (Box–Muller, cosine branch; two `u64`s per draw).
pub fn standard_normal(rng: &mut Rng64) -> f64 {
    let u1 = 1.0 - uniform01(rng); // (0, 1]: ln is finite
    let u2 = uniform01(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Fisher–Yates shuffle in place.
pub fn shuffle<T>(rng: &mut Rng64, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = uniform_below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_integers_are_uniform() {
        let mut rng = insitu_linalg::rng(1);
        let mut counts = [0usize; 7];
        let n = 70_000;
        for _ in 0..n {
            counts[uniform_below(&mut rng, 7) as usize] += 1;
        }
        // Each count is Binomial(70000, 1/7): mean 10000, sd ≈ 92.6; 5 sd.
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 463.0, "{counts:?}");
        }
    }

    #[test]
    fn normals_have_unit_variance() {
        let mut rng = insitu_linalg::rng(2);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| standard_normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let kurt = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n as f64 / var.powi(2);
        assert!(mean.abs() < 0.016, "{mean}"); // 5 sd = 5/sqrt(n)
        assert!((var - 1.0).abs() < 0.023, "{var}"); // sd of the variance ≈ sqrt(2/n)
        assert!((kurt - 3.0).abs() < 0.1, "{kurt}");
    }

    #[test]
    fn shuffle_is_a_permutation_and_reaches_every_position() {
        let mut rng = insitu_linalg::rng(3);
        let mut first_positions = [0usize; 5];
        for _ in 0..5000 {
            let mut v = [0, 1, 2, 3, 4];
            shuffle(&mut rng, &mut v);
            let mut s = v;
            s.sort_unstable();
            assert_eq!(s, [0, 1, 2, 3, 4]);
            first_positions[v[0]] += 1;
        }
        for c in first_positions {
            assert!((c as f64 - 1000.0).abs() < 150.0, "{first_positions:?}");
        }
    }

    #[test]
    fn domains_separate_streams() {
        let a = domain_stream(5, DOMAIN_BATCHES, 0).next_u64();
        let b = domain_stream(5, DOMAIN_SYNTHETIC, 0).next_u64();
        let c = substream(5, 0).next_u64();
        assert!(a != b && a != c && b != c);
    }
}
