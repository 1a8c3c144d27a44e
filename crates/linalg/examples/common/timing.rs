//! Timing shared by the probes of this folder (`#[path]`-included: not an example itself).

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
