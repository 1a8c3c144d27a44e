//! A fixed free-space path through thin diagonal screens: `P = T_k D_{k−1} ⋯ D_1 T_1`
//! (seed 002 Methods: `Y = T S T M X` through a scatterer, `Y = T R_ref T R_ob T R_ref T M X`
//! around a corner; SPEC B4).
//!
//! Each `T_i` is a band-limited free-space propagation (symmetric: `T = Tᵀ`), each `D_i` a
//! diagonal screen (a scatterer's phase, a reflector's or a hidden object's reflectance). When
//! the path reads the same from both ends — distances and screens a palindrome — then
//! `Pᵀ = T_1ᵀ D_1 ⋯ D_{k−1} T_kᵀ = P`, and FFM's error pass is a forward run of the same path
//! ([`ScreenPath::is_mirror_symmetric`]). The reverse-mode baseline uses [`AdjointPropagation`],
//! which a physical path does not offer.

use insitu_optics::{Complex32, FreeSpace};

use crate::component::{AdjointPropagation, Propagation};
use crate::FfmError;

/// `P = T_k D_{k−1} ⋯ D_1 T_1`: `propagations.len() = screens.len() + 1`.
#[derive(Clone, Debug)]
pub struct ScreenPath {
    propagations: Vec<FreeSpace>,
    screens: Vec<Vec<Complex32>>,
}

impl ScreenPath {
    /// The path through `screens` (each `n·n` values of the propagations' grid), with
    /// `propagations[i]` before `screens[i]` and the last propagation after the last screen.
    pub fn new(propagations: Vec<FreeSpace>, screens: Vec<Vec<Complex32>>) -> Result<Self, FfmError> {
        let Some(first) = propagations.first() else {
            return Err(FfmError::InvalidSpec("a path needs at least one propagation".into()));
        };
        if propagations.len() != screens.len() + 1 {
            return Err(FfmError::InvalidSpec(format!(
                "a path of {} screens needs {} propagations, got {}",
                screens.len(),
                screens.len() + 1,
                propagations.len()
            )));
        }
        let grid = first.grid();
        if let Some(p) = propagations.iter().find(|p| p.grid() != grid) {
            return Err(FfmError::InvalidSpec(format!(
                "the propagations' grids differ ({:?} and {:?})",
                grid,
                p.grid()
            )));
        }
        if let Some((i, s)) = screens.iter().enumerate().find(|(_, s)| s.len() != grid.len()) {
            return Err(FfmError::InvalidSpec(format!(
                "screen {i} has {} values, the grid {}",
                s.len(),
                grid.len()
            )));
        }
        Ok(Self { propagations, screens })
    }

    /// The screens, in the order the light meets them.
    pub fn screens(&self) -> &[Vec<Complex32>] {
        &self.screens
    }

    /// Replaces screen `i` (a hidden object moved into the scene: the digital model's and a
    /// simulated bench's business, never a trainer's).
    ///
    /// # Errors
    /// When `i` is out of range or `values` has the wrong length.
    pub fn set_screen(&mut self, i: usize, values: &[Complex32]) -> Result<(), FfmError> {
        let (len, count) = (self.field_len(), self.screens.len());
        let screen = self
            .screens
            .get_mut(i)
            .ok_or_else(|| FfmError::InvalidSpec(format!("no screen {i} (the path has {count})")))?;
        if values.len() != len {
            return Err(FfmError::InvalidSpec(format!(
                "screen {i} needs {len} values, got {}",
                values.len()
            )));
        }
        screen.copy_from_slice(values);
        Ok(())
    }

    /// Whether the path reads the same from both ends (distances, methods and paddings of the
    /// propagations, and the screens' values, bit for bit): then `Pᵀ = P` and FFM is exact.
    pub fn is_mirror_symmetric(&self) -> bool {
        let k = self.propagations.len();
        let same = |a: &FreeSpace, b: &FreeSpace| {
            a.distance().to_bits() == b.distance().to_bits()
                && a.method() == b.method()
                && a.padding() == b.padding()
                && a.wavelength().to_bits() == b.wavelength().to_bits()
        };
        let s = self.screens.len();
        (0..k / 2).all(|i| same(&self.propagations[i], &self.propagations[k - 1 - i]))
            && (0..s / 2).all(|i| self.screens[i] == self.screens[s - 1 - i])
    }
}

impl Propagation<f32> for ScreenPath {
    fn field_len(&self) -> usize {
        self.propagations[0].grid().len()
    }
    fn propagate(&mut self, field: &mut [Complex32]) {
        let (last, rest) = self.propagations.split_last_mut().expect("at least one propagation");
        for (t, screen) in rest.iter_mut().zip(&self.screens) {
            t.propagate(field);
            for (f, s) in field.iter_mut().zip(screen) {
                *f *= s;
            }
        }
        last.propagate(field);
    }
}

/// `Pᴴ = T_1ᴴ D̄_1 ⋯ D̄_{k−1} T_kᴴ`, with `Tᴴ` the propagation over `−z` (the band-limited
/// transfer function satisfies `H(−z) = conj H(z)` and is even): the reverse-mode baseline only.
impl AdjointPropagation<f32> for ScreenPath {
    fn propagate_adjoint(&mut self, field: &mut [Complex32]) {
        let reversed = |t: &FreeSpace| t.with_distance(-t.distance()).expect("a finite distance");
        let k = self.propagations.len();
        reversed(&self.propagations[k - 1]).propagate(field);
        for i in (0..k - 1).rev() {
            for (f, s) in field.iter_mut().zip(&self.screens[i]) {
                *f *= s.conj();
            }
            reversed(&self.propagations[i]).propagate(field);
        }
    }
}

/// A plane wave over a centred square aperture of side `side` pixels on an `n × n` grid: 1
/// inside, 0 outside (the illumination `X` of seed 002 Figs. 3 and 4).
pub fn centred_aperture(n: usize, side: usize) -> Vec<Complex32> {
    let lo = (n - side.min(n)) / 2;
    let inside = |i: usize| (lo..lo + side).contains(&i);
    (0..n * n)
        .map(|k| Complex32::new(if inside(k / n) && inside(k % n) { 1.0 } else { 0.0 }, 0.0))
        .collect()
}
