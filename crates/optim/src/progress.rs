//! Progress events of a training run (FFzero's `train`, FFM's `run_with_progress`), so a caller
//! (the CLI's bars, xtask's multi-bar) can show them; the libraries themselves print nothing.
//! Here because every trainer depends on this crate.

/// Receives progress of a run. Every method has a no-op default.
pub trait Progress {
    /// A unit (a layer for FF, the network for BP, one training mode for FFM) starts: `epochs` ×
    /// `steps_per_epoch` steps.
    fn phase(&mut self, _label: &str, _epochs: usize, _steps_per_epoch: usize) {}
    /// One optimisation step done.
    fn step(&mut self) {}
    /// One epoch of the current unit done, with its mean loss.
    fn epoch_done(&mut self, _epoch: usize, _mean_loss: f64) {}
}

/// Ignores every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
