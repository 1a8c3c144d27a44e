//! What a trainer may do with an optical system (SPEC B3), and the digital model.
//!
//! [`PhysicalSystem`] is the whole interface of the bench: load a complex field, show a phase
//! pattern on one layer's modulator, let the light cross one layer's fixed propagation, and
//! measure the complex field that comes out (phase-shifting holography, with its noise). There
//! is no adjoint and no way to read the system's internals: an in-situ trainer that receives a
//! `PhysicalSystem` can only run it forward. [`DigitalChain`] is the noise-free digital model
//! `y = T_L M_L ⋯ T_1 M_1 x`, which implements the same interface (so in-silico training uses the
//! same FFM code) and, when its components expose `Tᴴ`, the reverse-mode baseline.

use num_complex::Complex;

use crate::component::{AdjointPropagation, Propagation};
use crate::scalar::Real;

/// A forward-only optical system of `num_layers` layers (modulator `M_l` then propagation `T_l`).
pub trait PhysicalSystem<F: Real = f32> {
    /// Number of layers `L`.
    fn num_layers(&self) -> usize;
    /// Number of complex entries of a field (modulator pixels).
    fn field_len(&self) -> usize;
    /// Loads `field`, passes it through the modulator of layer `modulator.0` showing the phase
    /// pattern `modulator.1` (or through no modulator when `None`), then through the fixed
    /// propagation of layer `propagation`, and overwrites `field` with the measured output.
    /// `shot` labels the measurement: the measurement noise of a shot is a function of the
    /// system's own seed and `shot` only, so results do not depend on thread scheduling.
    ///
    /// # Panics
    /// On a layer index `≥ num_layers()` or a field / pattern of the wrong length (programming
    /// errors of the trainer).
    fn run(&mut self, modulator: Option<(usize, &[F])>, propagation: usize, field: &mut [Complex<F>], shot: u64);
}

/// A borrowed system is the same system (a trainer can wrap a caller's bench, e.g. in a
/// run counter, without taking it).
impl<F: Real, S: PhysicalSystem<F> + ?Sized> PhysicalSystem<F> for &mut S {
    fn num_layers(&self) -> usize {
        (**self).num_layers()
    }
    fn field_len(&self) -> usize {
        (**self).field_len()
    }
    fn run(&mut self, modulator: Option<(usize, &[F])>, propagation: usize, field: &mut [Complex<F>], shot: u64) {
        (**self).run(modulator, propagation, field, shot);
    }
}

/// Multiplies `field` by `e^{iφ}` elementwise (an ideal phase-only modulator).
pub fn apply_phase_mask<F: Real>(phase: &[F], field: &mut [Complex<F>]) {
    assert_eq!(phase.len(), field.len(), "phase mask and field lengths differ");
    for (f, &p) in field.iter_mut().zip(phase) {
        *f *= F::cis(p);
    }
}

/// A modulator's complex transmission for the last phase pattern it was shown, recomputed only
/// when the pattern changes bit for bit. A spatial light modulator keeps a pattern while a
/// mini-batch's samples pass, so this is the physical procedure, and the values are those of
/// computing them anew (the same function of the same bits). One per layer and worker.
#[derive(Clone, Debug)]
pub(crate) struct PatternCache<F: Real> {
    pattern: Vec<F>,
    transmission: Vec<Complex<F>>,
}

impl<F: Real> PatternCache<F> {
    /// An empty cache (the first pattern is always computed).
    pub(crate) fn new() -> Self {
        Self {
            pattern: Vec::new(),
            transmission: Vec::new(),
        }
    }

    /// The transmission of `pattern`: `compute(pattern, out)` fills `out` (cleared) unless
    /// `pattern` has the bits of the last one.
    pub(crate) fn get(&mut self, pattern: &[F], compute: impl FnOnce(&[F], &mut Vec<Complex<F>>)) -> &[Complex<F>] {
        let same =
            self.pattern.len() == pattern.len() && self.pattern.iter().zip(pattern).all(|(&a, &b)| F::same_bits(a, b));
        if !same {
            self.pattern.clear();
            self.pattern.extend_from_slice(pattern);
            self.transmission.clear();
            compute(pattern, &mut self.transmission);
        }
        &self.transmission
    }

    /// `e^{iφ}` of `phase` (an ideal phase-only modulator).
    pub(crate) fn phase_mask(&mut self, phase: &[F]) -> &[Complex<F>] {
        self.get(phase, |p, out| out.extend(p.iter().map(|&x| F::cis(x))))
    }
}

/// The ideal digital model: ideal phase-only modulators and the given propagations, on fields
/// of `Complex<F>` (`f32` unless said otherwise).
#[derive(Clone, Debug)]
pub struct DigitalChain<P, F: Real = f32> {
    propagations: Vec<P>,
    /// Each modulator's `e^{iφ}` for the pattern it shows ([`apply_phase_mask`]'s values, kept
    /// while the pattern stays the same).
    masks: Vec<PatternCache<F>>,
}

impl<P, F: Real> DigitalChain<P, F> {
    /// A chain of `propagations.len()` layers. Returns `None` when there is no layer or the
    /// components disagree on the field length.
    pub fn new(propagations: Vec<P>) -> Option<Self>
    where
        P: Propagation<F>,
    {
        let n = propagations.first()?.field_len();
        if propagations.iter().any(|p| p.field_len() != n) {
            return None;
        }
        let masks = (0..propagations.len()).map(|_| PatternCache::new()).collect();
        Some(Self { propagations, masks })
    }

    /// The propagation components.
    pub fn propagations(&self) -> &[P] {
        &self.propagations
    }

    /// The propagation components, to change the scene they model (a hidden object moved in:
    /// a simulated bench's business, never a trainer's, which only sees a [`PhysicalSystem`]).
    pub fn propagations_mut(&mut self) -> &mut [P] {
        &mut self.propagations
    }
}

impl<F: Real, P: Propagation<F>> PhysicalSystem<F> for DigitalChain<P, F> {
    fn num_layers(&self) -> usize {
        self.propagations.len()
    }
    fn field_len(&self) -> usize {
        self.propagations[0].field_len()
    }
    fn run(&mut self, modulator: Option<(usize, &[F])>, propagation: usize, field: &mut [Complex<F>], _shot: u64) {
        if let Some((layer, phase)) = modulator {
            assert!(layer < self.propagations.len(), "modulator index {layer} out of range");
            assert_eq!(phase.len(), field.len(), "phase mask and field lengths differ");
            for (f, &m) in field.iter_mut().zip(self.masks[layer].phase_mask(phase)) {
                *f *= m;
            }
        }
        self.propagations[propagation].propagate(field);
    }
}

impl<P, F: Real> DigitalChain<P, F> {
    /// `field ← T_lᴴ field` with the digital model's adjoint (the reverse-mode baseline only).
    pub fn propagate_adjoint(&mut self, layer: usize, field: &mut [Complex<F>])
    where
        P: AdjointPropagation<F>,
    {
        self.propagations[layer].propagate_adjoint(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::DenseTransfer;
    use nalgebra::DMatrix;

    #[test]
    fn a_pattern_is_recomputed_exactly_when_its_bits_change() {
        let mut cache = PatternCache::<f32>::new();
        let mut computed = 0;
        let mut get = |cache: &mut PatternCache<f32>, p: &[f32]| {
            cache.get(p, |p, out| {
                computed += 1;
                out.extend(p.iter().map(|&x| Complex::new(x, 0.0)));
            });
        };
        let mut pattern = vec![0.5f32, 1.0, 0.0];
        get(&mut cache, &pattern);
        get(&mut cache, &pattern.clone());
        pattern[1] = 1.0 + f32::EPSILON; // one bit of one value
        get(&mut cache, &pattern);
        pattern[2] = -0.0; // equal as a number, other bits
        get(&mut cache, &pattern);
        get(&mut cache, &pattern[..2]); // another length
        let nan = [f32::NAN];
        get(&mut cache, &nan);
        get(&mut cache, &nan); // the same NaN bits: kept
        assert_eq!(computed, 5);
    }

    #[test]
    fn a_chain_that_keeps_its_masks_gives_the_fields_of_a_fresh_one() {
        let n = 6;
        let t = DMatrix::from_fn(n, n, |i, j| {
            Complex::new(((i * 7 + j * 3) % 5) as f64 - 2.0, (i + j) as f64 * 0.1)
        });
        let fresh = || DigitalChain::<_, f64>::new(vec![DenseTransfer::new(t.clone()).unwrap()]).unwrap();
        let mut kept = fresh();
        let input: Vec<Complex<f64>> = (0..n).map(|i| Complex::new(1.0, i as f64)).collect();
        for step in 0..3 {
            let phase: Vec<f64> = (0..n).map(|i| (i * (step + 1)) as f64 * 0.3).collect();
            for _ in 0..2 {
                let (mut a, mut b) = (input.clone(), input.clone());
                kept.run(Some((0, &phase)), 0, &mut a, 0);
                fresh().run(Some((0, &phase)), 0, &mut b, 0);
                assert_eq!(a, b, "step {step}");
            }
        }
    }
}
