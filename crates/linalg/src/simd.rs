//! Run-time dispatch of elementwise loops to the widest vector instructions the CPU has.

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
