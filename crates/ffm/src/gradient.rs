//! The FFM gradient (SPEC B2; seed 002 main text "FFM learning" and Methods) and the
//! reverse-mode baseline it replaces. Derivation: `docs/ffm.md`.
//!
//! Network: `a_0 = x`; for `l = 1..L`: `u_l = e^{iφ_l} ⊙ a_{l−1}`, `v_l = T_l u_l`,
//! `a_l = f_l(v_l)` (or `v_l` where layer `l` has no activation); `y = a_L`.
//!
//! * Data propagation: `L` forward runs, recording `a_{l−1}` (so `u_l` is known) and `v_l`.
//! * Error propagation: `ε ← conj(∂L/∂ȳ)`; for `l = L..1`: pass `M_{l+1}` (none for `l = L`),
//!   cross the activation `f_l` if there is one (`ε ← f_u ε + conj(f_ū) conj(ε)`), run forward
//!   through `T_l`, giving `e_l`; then `∂L/∂φ_l = −2 Im(u_l ⊙ e_l)`. `L` forward runs, the same
//!   components in reverse order, unconjugated masks.

use num_complex::Complex;

use crate::activation::ElementwiseActivation;
use crate::component::AdjointPropagation;
use crate::loss::FieldLoss;
use crate::scalar::Real;
use crate::system::{DigitalChain, PatternCache, PhysicalSystem};

/// An optional activation after each layer's propagation (`None`, or a missing entry at the
/// end of the slice, means linear).
pub type Activations<'a, F> = [Option<&'a dyn ElementwiseActivation<F>>];

/// Reusable buffers for one sample's data and error propagation (no allocation per sample).
#[derive(Clone, Debug)]
pub struct FfmWorkspace<F: Real> {
    /// `a_{l−1}`: the field entering layer `l` (before its mask), `l = 1..L`.
    layer_inputs: Vec<Vec<Complex<F>>>,
    /// `v_l = T_l u_l`: the field leaving layer `l`'s propagation (before its activation).
    pre_activations: Vec<Vec<Complex<F>>>,
    /// The output `y` after a data pass; the travelling error during the error pass.
    field: Vec<Complex<F>>,
    /// `∂L/∂ȳ`.
    delta: Vec<Complex<F>>,
    /// `e^{iφ_l}` per layer, for the gradient's digital part (`u_l = e^{iφ_l} a_{l−1}`), kept
    /// while the phases stay the same (a mini-batch's samples).
    masks: Vec<PatternCache<F>>,
}

impl<F: Real> FfmWorkspace<F> {
    /// Buffers for `layers` layers on fields of `field_len` entries.
    pub fn new(layers: usize, field_len: usize) -> Self {
        let z = Complex::new(F::zero(), F::zero());
        Self {
            layer_inputs: vec![vec![z; field_len]; layers],
            pre_activations: vec![vec![z; field_len]; layers],
            field: vec![z; field_len],
            delta: vec![z; field_len],
            masks: (0..layers).map(|_| PatternCache::new()).collect(),
        }
    }

    /// The output field of the last data pass.
    pub fn output(&self) -> &[Complex<F>] {
        &self.field
    }

    /// `u_l = e^{iφ_l} ⊙ a_{l−1}` recorded by the last data pass is `layer_input(l)` times the
    /// mask; this is `a_{l−1}` (0-based `layer`).
    pub fn layer_input(&self, layer: usize) -> &[Complex<F>] {
        &self.layer_inputs[layer]
    }
}

fn activation_of<'a, F: Real>(acts: &Activations<'a, F>, l: usize) -> Option<&'a dyn ElementwiseActivation<F>> {
    acts.get(l).copied().flatten()
}

/// Data propagation: runs `input` through all layers of `system` (`L` forward runs, shots
/// `shot_base..shot_base + L`), recording what the error pass needs; the output is left in
/// [`FfmWorkspace::output`].
///
/// # Panics
/// On inconsistent lengths (programming errors).
pub fn data_pass<F: Real, S: PhysicalSystem<F> + ?Sized>(
    system: &mut S,
    phases: &[Vec<F>],
    activations: &Activations<'_, F>,
    input: &[Complex<F>],
    ws: &mut FfmWorkspace<F>,
    shot_base: u64,
) {
    let layers = system.num_layers();
    assert_eq!(phases.len(), layers, "one phase mask per layer");
    assert_eq!(ws.layer_inputs.len(), layers, "workspace built for another depth");
    ws.field.copy_from_slice(input);
    for l in 0..layers {
        ws.layer_inputs[l].copy_from_slice(&ws.field);
        system.run(Some((l, &phases[l])), l, &mut ws.field, shot_base + l as u64);
        if let Some(f) = activation_of(activations, l) {
            ws.pre_activations[l].copy_from_slice(&ws.field);
            for w in ws.field.iter_mut() {
                *w = f.apply(*w);
            }
        }
    }
}

/// `ε ← f_u ε + conj(f_ū) conj(ε)` at the recorded activation inputs `v` (SPEC B2).
fn cross_activation_ffm<F: Real>(f: &dyn ElementwiseActivation<F>, v: &[Complex<F>], eps: &mut [Complex<F>]) {
    for (e, &vi) in eps.iter_mut().zip(v) {
        let (fu, fubar) = f.wirtinger(vi);
        *e = fu * *e + fubar.conj() * e.conj();
    }
}

/// One sample's FFM gradient: a data pass, the loss, and the error pass, all through
/// `system.run` (`2L` forward runs, shots `shot_base..shot_base + 2L`). The gradient
/// `∂L/∂φ_l` is **added** to `grads[l]`; returns the loss.
///
/// # Panics
/// On inconsistent lengths (programming errors).
pub fn ffm_gradient<F: Real, S: PhysicalSystem<F> + ?Sized>(
    system: &mut S,
    phases: &[Vec<F>],
    activations: &Activations<'_, F>,
    input: &[Complex<F>],
    loss: &FieldLoss<'_, F>,
    ws: &mut FfmWorkspace<F>,
    grads: &mut [Vec<F>],
    shot_base: u64,
) -> f64 {
    let layers = system.num_layers();
    data_pass(system, phases, activations, input, ws, shot_base);
    let value = loss.eval(&ws.field, &mut ws.delta);
    // ε = conj(∂L/∂ȳ), loaded at the output plane and sent forward through the mirror system
    for (e, d) in ws.field.iter_mut().zip(&ws.delta) {
        *e = d.conj();
    }
    let two = F::of(2.0);
    for l in (0..layers).rev() {
        // From the output side the order is M_{l+1}, f_l, T_l. Without an activation the
        // modulator and the propagation are one physical run; with one, the field must leave
        // the optics between them, so the (commanded) mask is applied where the error field is
        // loaded, then the activation is crossed, then T_l runs with no modulator.
        let modulator = match activation_of(activations, l) {
            Some(f) => {
                if l + 1 < layers {
                    let mask = ws.masks[l + 1].phase_mask(&phases[l + 1]);
                    for (e, &m) in ws.field.iter_mut().zip(mask) {
                        *e *= m;
                    }
                }
                cross_activation_ffm(f, &ws.pre_activations[l], &mut ws.field);
                None
            }
            None if l + 1 < layers => Some((l + 1, phases[l + 1].as_slice())),
            None => None,
        };
        system.run(modulator, l, &mut ws.field, shot_base + (2 * layers - 1 - l) as u64);
        // e_l = ws.field; u_l = e^{iφ_l} a_{l−1}
        let mask = ws.masks[l].phase_mask(&phases[l]);
        for ((g, (&a, &e)), &m) in grads[l]
            .iter_mut()
            .zip(ws.layer_inputs[l].iter().zip(&ws.field))
            .zip(mask)
        {
            let u = a * m;
            *g -= two * (u * e).im;
        }
    }
    value
}

/// Reverse-mode (adjoint) gradient on the digital model: the baseline FFM replaces. It uses
/// `T_lᴴ` (which a physical system does not offer), `λ = ∂L/∂ū` travelling backward:
/// `λ ← Tᴴ λ`, `∂L/∂φ = −2 Im(conj(λ) ⊙ u)`, `λ ← e^{−iφ} ⊙ λ`, and through an activation
/// `λ_v = conj(λ_w) f_ū + λ_w conj(f_u)`. Adds into `grads`; returns the loss.
pub fn adjoint_gradient<F: Real, P: AdjointPropagation<F>>(
    model: &mut DigitalChain<P, F>,
    phases: &[Vec<F>],
    activations: &Activations<'_, F>,
    input: &[Complex<F>],
    loss: &FieldLoss<'_, F>,
    ws: &mut FfmWorkspace<F>,
    grads: &mut [Vec<F>],
) -> f64 {
    let layers = model.num_layers();
    data_pass(model, phases, activations, input, ws, 0);
    let value = loss.eval(&ws.field, &mut ws.delta);
    let two = F::of(2.0);
    // λ lives in ws.delta
    for l in (0..layers).rev() {
        if let Some(f) = activation_of(activations, l) {
            for (lam, &v) in ws.delta.iter_mut().zip(&ws.pre_activations[l]) {
                let (fu, fubar) = f.wirtinger(v);
                *lam = lam.conj() * fubar + *lam * fu.conj();
            }
        }
        model.propagate_adjoint(l, &mut ws.delta);
        let mask = ws.masks[l].phase_mask(&phases[l]);
        for ((g, (&a, &lam)), &m) in grads[l]
            .iter_mut()
            .zip(ws.layer_inputs[l].iter().zip(&ws.delta))
            .zip(mask)
        {
            let u = a * m;
            *g -= two * (lam.conj() * u).im;
        }
        for (lam, &m) in ws.delta.iter_mut().zip(mask) {
            *lam *= m.conj();
        }
    }
    value
}
