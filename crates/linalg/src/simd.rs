//! Run-time dispatch of elementwise loops to the widest vector instructions the CPU has, and
//! the measured f32 peak of one core that kernels are compared with.

/// A loop for [`vectorized`]: the captured operands and a `run` that does the work.
///
/// **`run` must be `#[inline(always)]`**, and so must every helper it calls: only code inlined
/// into the dispatching function is compiled with its wider instruction set (a closure would
/// not be inlined, which is why this is a trait and not an `FnOnce`).
pub trait VectorKernel {
    /// What the loop returns.
    type Output;
    /// The loop.
    fn run(self) -> Self::Output;
}

/// Whether [`vectorized`] takes a path with hardware fused multiply-add (AVX-512 or AVX2 with
/// FMA), so that `f32::mul_add` in a kernel is one instruction rather than a libm call.
pub fn fma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma")
            && (std::arch::is_x86_feature_detected!("avx512f") || std::arch::is_x86_feature_detected!("avx2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the CPU has AVX-512F and AVX-512VL, what the f32 kernels of `matmul` beside faer's
/// need (`false` off x86-64; the check is a cached atomic load).
pub(crate) fn avx512_f_and_vl() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Runs `kernel` compiled for AVX-512 (`avx512f`) or else AVX2 (each with FMA) when the CPU has them (checked
/// at run time; the check is a cached atomic load), and at the build's baseline otherwise.
///
/// The workspace is built for baseline x86-64 (SSE2), so the compiler vectorises an elementwise
/// loop with 4-lane registers; here it may use 16.
///
/// **The result does not depend on the path taken.** Rust never contracts `a * b + c` into a
/// fused multiply-add and never reorders floating-point operations, so a loop performs the same
/// IEEE operations in the same order on every path; only the register width changes (tests
/// compare the paths bitwise, e.g. `NormalStream`'s).
#[inline(always)]
pub fn vectorized<K: VectorKernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features `with_avx512` is compiled for.
            return unsafe { with_avx512(kernel) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above, for AVX2.
            return unsafe { with_avx2(kernel) };
        }
    }
    kernel.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,avx,fma")]
unsafe fn with_avx512<K: VectorKernel>(kernel: K) -> K::Output {
    let result = kernel.run();
    // Leave no dirty upper vector state behind (why `matmul` ends with `vzeroupper`).
    std::arch::x86_64::_mm256_zeroupper();
    result
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx,fma")]
unsafe fn with_avx2<K: VectorKernel>(kernel: K) -> K::Output {
    let result = kernel.run();
    std::arch::x86_64::_mm256_zeroupper();
    result
}

/// One core's f32 peak in GFLOP/s, measured: 16 independent chains of 512-bit FMAs (the method
/// of `../shared/research/gemm-bench.md`), 2 flops × 16 lanes per FMA, best of 5 runs of about
/// 10 ms. The yardstick of `cargo xtask bench`'s products table and of the kernels' fractions
/// of the peak in docs/performance.md. `None` where AVX-512F is missing (the loop would not
/// run) or off x86-64.
pub fn fma_peak_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return None;
        }
        #[target_feature(enable = "avx512f")]
        fn chains(iters: u64) -> f32 {
            use std::arch::x86_64::*;
            let mut acc = [_mm512_set1_ps(0.0); 16];
            let (a, b) = (_mm512_set1_ps(1.000_001), _mm512_set1_ps(0.999_999));
            for _ in 0..iters {
                for v in acc.iter_mut() {
                    *v = _mm512_fmadd_ps(*v, a, b);
                }
            }
            _mm512_reduce_add_ps(acc.iter().fold(_mm512_set1_ps(0.0), |s, v| _mm512_add_ps(s, *v)))
        }
        let iters = 5_000_000u64;
        let best = (0..5)
            .map(|_| {
                let start = std::time::Instant::now();
                // SAFETY: AVX-512F is present (checked above).
                std::hint::black_box(unsafe { chains(std::hint::black_box(iters)) });
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        Some(iters as f64 * 16.0 * 16.0 * 2.0 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(test)]
mod tests {
    /// A rate where the loop can run (finite, above a scalar core's few GFLOP/s), none where it
    /// cannot.
    #[test]
    fn fma_peak_is_measured_where_avx512_exists() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            let peak = super::fma_peak_gflops().expect("AVX-512F is present");
            assert!(peak.is_finite() && peak > 10.0, "{peak} GFLOP/s");
            return;
        }
        assert_eq!(super::fma_peak_gflops(), None);
    }
}
