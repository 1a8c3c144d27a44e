//! The synthetic regression sets of seed 000, eq. (15) and Supplementary 5.3:
//!
//! - `f1(x1, x2) = sin x1 + cos x2` (2-D),
//! - `f2(x1..x5) = e^{x1} sin x2 + x3 cos x4 − x5 x1` (5-D);
//!
//! generated exactly as Supplementary 5.3 describes:
//! 1. 12,000 inputs drawn independently and uniformly on `[-1, 1]^d`
//!    (stream 0 of the task's domain seed; stored as `f32`, and the targets are computed from
//!    the stored `f32` inputs, in `f64`);
//! 2. randomly permuted (stream 1) and split 10,000 train / 2,000 test;
//! 3. zero-mean Gaussian noise of standard deviation 5 % of the (population, `ddof = 0`)
//!    standard deviation of the clean **training** targets added to the training targets only
//!    (stream 2);
//! 4. both sets min–max scaled with the noisy training minimum and maximum:
//!    `ỹ = 2 (y − y_min) / (y_max − y_min) − 1`. Training targets then span exactly `[-1, 1]`;
//!    test targets may fall slightly outside it.
//!
//! The streams are `substream(domain_seed(seed, DOMAIN_SYNTHETIC), 4 · k + s)` with `k` = 0 for
//! f1 and 1 for f2, so f1 and f2 of one seed are independent.

use crate::random::{domain_stream, shuffle, standard_normal, uniform01, DOMAIN_SYNTHETIC};
use crate::{DataError, Dataset, Mat, Targets, TrainTest};

/// One of the two functions of seed 000's eq. (15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyntheticFunction {
    /// `sin x1 + cos x2`, 2 inputs.
    F1,
    /// `e^{x1} sin x2 + x3 cos x4 − x5 x1`, 5 inputs.
    F2,
}

impl SyntheticFunction {
    /// Input dimension `d`.
    pub fn dim(self) -> usize {
        match self {
            SyntheticFunction::F1 => 2,
            SyntheticFunction::F2 => 5,
        }
    }

    /// The clean function value at `x` (`x.len() == dim()`).
    pub fn eval(self, x: &[f64]) -> f64 {
        match self {
            SyntheticFunction::F1 => x[0].sin() + x[1].cos(),
            SyntheticFunction::F2 => x[0].exp() * x[1].sin() + x[2] * x[3].cos() - x[4] * x[0],
        }
    }

    fn stream_base(self) -> u64 {
        match self {
            SyntheticFunction::F1 => 0,
            SyntheticFunction::F2 => 4,
        }
    }
}

/// The sizes and noise level of a synthetic set; [`SyntheticSpec::PAPER`] is Supplementary 5.3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticSpec {
    /// Training samples (paper: 10,000).
    pub n_train: usize,
    /// Test samples (paper: 2,000).
    pub n_test: usize,
    /// Noise standard deviation as a fraction of the clean training targets' (paper: 0.05).
    pub noise_fraction: f64,
}

impl SyntheticSpec {
    /// Seed 000, Supplementary 5.3: 12,000 samples, 10,000 / 2,000, 5 % noise.
    pub const PAPER: SyntheticSpec = SyntheticSpec {
        n_train: 10_000,
        n_test: 2_000,
        noise_fraction: 0.05,
    };
}

/// A generated synthetic set together with the numbers used to build it, so that predictions
/// can be mapped back to the function's scale: `y = (ỹ + 1) / 2 · (y_max − y_min) + y_min`.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticData {
    /// Inputs `d × n`, targets `1 × n`, scaled.
    pub split: TrainTest,
    /// Minimum of the noisy training targets (before scaling).
    pub y_min: f64,
    /// Maximum of the noisy training targets (before scaling).
    pub y_max: f64,
    /// Standard deviation of the noise that was added to the training targets.
    pub noise_std: f64,
}

/// Generates a synthetic regression set (see the module docs for the exact procedure).
/// Errors if `n_train == 0`, `noise_fraction` is negative or not finite, or all noisy training
/// targets are equal (the scaling would divide by zero).
pub fn generate_synthetic(f: SyntheticFunction, spec: &SyntheticSpec, seed: u64) -> Result<SyntheticData, DataError> {
    if spec.n_train == 0 || !(spec.noise_fraction >= 0.0 && spec.noise_fraction.is_finite()) {
        return Err(DataError::InvalidArgument(format!("synthetic set spec {spec:?}")));
    }
    let d = f.dim();
    let n = spec.n_train + spec.n_test;

    // 1. Inputs, uniform on [-1, 1]^d, stored as f32.
    let mut rng = domain_stream(seed, DOMAIN_SYNTHETIC, f.stream_base());
    let x: Vec<f32> = (0..n * d).map(|_| (2.0 * uniform01(&mut rng) - 1.0) as f32).collect();

    // 2. Random permutation and split.
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(
        &mut domain_stream(seed, DOMAIN_SYNTHETIC, f.stream_base() + 1),
        &mut order,
    );
    let build_inputs = |idx: &[usize]| {
        let mut m = Mat::zeros(d, idx.len());
        for (dst, &j) in m.as_mut_slice().chunks_exact_mut(d).zip(idx) {
            dst.copy_from_slice(&x[j * d..(j + 1) * d]);
        }
        m
    };
    let (train_idx, test_idx) = order.split_at(spec.n_train);
    let (x_train, x_test) = (build_inputs(train_idx), build_inputs(test_idx));
    let clean = |m: &Mat| -> Vec<f64> {
        m.as_slice()
            .chunks_exact(d)
            .map(|c| {
                let xs: Vec<f64> = c.iter().map(|&v| f64::from(v)).collect();
                f.eval(&xs)
            })
            .collect()
    };
    let mut y_train = clean(&x_train);
    let y_test = clean(&x_test);

    // 3. Noise on the training targets only.
    let mean = y_train.iter().sum::<f64>() / y_train.len() as f64;
    let std = (y_train.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / y_train.len() as f64).sqrt();
    let noise_std = spec.noise_fraction * std;
    let mut rng = domain_stream(seed, DOMAIN_SYNTHETIC, f.stream_base() + 2);
    for y in &mut y_train {
        *y += noise_std * standard_normal(&mut rng);
    }

    // 4. Min–max scaling with the noisy training extremes.
    let y_min = y_train.iter().copied().fold(f64::INFINITY, f64::min);
    let y_max = y_train.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if y_max <= y_min {
        return Err(DataError::InvalidArgument(
            "synthetic set: all training targets are equal".into(),
        ));
    }
    let scale = |ys: &[f64]| {
        Mat::from_iterator(
            1,
            ys.len(),
            ys.iter().map(|y| (2.0 * (y - y_min) / (y_max - y_min) - 1.0) as f32),
        )
    };
    Ok(SyntheticData {
        split: TrainTest {
            train: Dataset {
                inputs: x_train,
                targets: Targets::Values(scale(&y_train)),
            },
            test: Dataset {
                inputs: x_test,
                targets: Targets::Values(scale(&y_test)),
            },
        },
        y_min,
        y_max,
        noise_std,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unscale(data: &SyntheticData, t: f32) -> f64 {
        (f64::from(t) + 1.0) / 2.0 * (data.y_max - data.y_min) + data.y_min
    }

    fn check(f: SyntheticFunction) {
        let data = generate_synthetic(f, &SyntheticSpec::PAPER, 11).unwrap();
        let (train, test) = (&data.split.train, &data.split.test);
        assert_eq!((train.features(), train.len(), test.len()), (f.dim(), 10_000, 2_000));
        let yt = train.values().unwrap();
        assert_eq!(yt.nrows(), 1);
        // Scaled training targets span exactly [-1, 1].
        let (lo, hi) = (yt.min(), yt.max());
        assert!((lo + 1.0).abs() < 1e-6 && (hi - 1.0).abs() < 1e-6, "{lo} {hi}");
        // Inputs are uniform on [-1, 1]^d: in range, mean 0, variance 1/3.
        let all: Vec<f64> = train
            .inputs
            .iter()
            .chain(test.inputs.iter())
            .map(|&v| f64::from(v))
            .collect();
        assert!(all.iter().all(|v| (-1.0..=1.0).contains(v)));
        let m = all.iter().sum::<f64>() / all.len() as f64;
        let v = all.iter().map(|x| (x - m).powi(2)).sum::<f64>() / all.len() as f64;
        assert!(m.abs() < 0.02 && (v - 1.0 / 3.0).abs() < 0.01, "{m} {v}");
        // Test targets are the clean function, scaled (no noise).
        for j in 0..test.len() {
            let x: Vec<f64> = test.inputs.column(j).iter().map(|&v| f64::from(v)).collect();
            let y = unscale(&data, test.values().unwrap()[(0, j)]);
            assert!((y - f.eval(&x)).abs() < 1e-5 * (data.y_max - data.y_min), "sample {j}");
        }
        // Training residuals are the noise: std 5 % of the clean training targets' std.
        let clean: Vec<f64> = (0..train.len())
            .map(|j| f.eval(&train.inputs.column(j).iter().map(|&v| f64::from(v)).collect::<Vec<_>>()))
            .collect();
        let cm = clean.iter().sum::<f64>() / clean.len() as f64;
        let cstd = (clean.iter().map(|y| (y - cm).powi(2)).sum::<f64>() / clean.len() as f64).sqrt();
        assert!((data.noise_std - 0.05 * cstd).abs() < 1e-12);
        let res: Vec<f64> = (0..train.len())
            .map(|j| unscale(&data, yt[(0, j)]) - clean[j])
            .collect();
        let rm = res.iter().sum::<f64>() / res.len() as f64;
        let rstd = (res.iter().map(|r| (r - rm).powi(2)).sum::<f64>() / res.len() as f64).sqrt();
        assert!(
            (rstd / data.noise_std - 1.0).abs() < 0.04,
            "{rstd} vs {}",
            data.noise_std
        );
        assert!(rm.abs() < 4.0 * data.noise_std / 100.0, "{rm}");
    }

    #[test]
    fn f1_follows_supplementary_5_3() {
        check(SyntheticFunction::F1);
    }

    #[test]
    fn f2_follows_supplementary_5_3() {
        check(SyntheticFunction::F2);
    }

    #[test]
    fn functions_match_eq_15() {
        let x = [0.3, -0.7, 0.2, 0.9, -0.4];
        assert_eq!(SyntheticFunction::F1.eval(&x), 0.3f64.sin() + (-0.7f64).cos());
        let f2 = 0.3f64.exp() * (-0.7f64).sin() + 0.2 * 0.9f64.cos() - (-0.4) * 0.3;
        assert_eq!(SyntheticFunction::F2.eval(&x), f2);
    }

    #[test]
    fn seeded_and_distinct() {
        let spec = SyntheticSpec {
            n_train: 50,
            n_test: 10,
            noise_fraction: 0.05,
        };
        let a = generate_synthetic(SyntheticFunction::F1, &spec, 1).unwrap();
        assert_eq!(a, generate_synthetic(SyntheticFunction::F1, &spec, 1).unwrap());
        assert_ne!(
            a.split,
            generate_synthetic(SyntheticFunction::F1, &spec, 2).unwrap().split
        );
        let bad = SyntheticSpec { n_train: 0, ..spec };
        assert!(generate_synthetic(SyntheticFunction::F1, &bad, 1).is_err());
        let bad = SyntheticSpec {
            noise_fraction: f64::NAN,
            ..spec
        };
        assert!(generate_synthetic(SyntheticFunction::F1, &bad, 1).is_err());
    }
}
