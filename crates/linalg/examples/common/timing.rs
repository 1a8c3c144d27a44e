//! Timing and operands shared by the probes of this folder (`#[path]`-included: not an example
//! itself).

use std::time::Instant;

/// Fastest seconds of one call of `f` over `calls` calls, after `warm_up` untimed calls.
pub fn fastest(calls: usize, warm_up: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warm_up {
        f();
    }
    (0..calls)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// `len` deterministic values in [−0.5, 0.5): value `i` is `((i·step + offset) mod 97)/97 − 0.5`
/// (the probes' operands: `A` with step 131 and offset 1, `B` with 17 and 3).
pub fn operand(len: usize, step: usize, offset: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * step + offset) % 97) as f32 / 97.0 - 0.5)
        .collect()
}
