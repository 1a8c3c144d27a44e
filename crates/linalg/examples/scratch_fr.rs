use insitu_linalg::{fma_peak_gflops, matmul, Accum, MatMut, MatRef, Par};
use std::time::Instant;
fn fastest(mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..20 {
        f();
    }
    for _ in 0..3000 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}
fn main() {
    let peak = fma_peak_gflops().unwrap();
    println!("peak {peak:.0}");
    for &(m, k, n) in &[
        (10usize, 100usize, 256usize),
        (10, 100, 128),
        (10, 784, 256),
        (4, 100, 256),
        (10, 10, 256),
        (1, 100, 256),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 131 + 1) % 97) as f32 / 97.0 - 0.5).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 17 + 3) % 97) as f32 / 97.0 - 0.5).collect();
        let mut c = vec![0f32; m * n];
        let fl = 2.0 * (m * k * n) as f64;
        for (name, av) in [
            ("A cols", MatRef::from_col_major(&a, m, k)),
            ("A rows", MatRef::from_row_major(&a, m, k)),
        ] {
            let t = fastest(|| {
                matmul(
                    MatMut::from_col_major(&mut c, m, n),
                    Accum::Replace,
                    av,
                    MatRef::from_col_major(&b, k, n),
                    1.0,
                    Par::Seq,
                );
                std::hint::black_box(&c);
            });
            println!(
                "({m},{k},{n}) {name}: {:.3} us {:.0}%",
                t * 1e6,
                fl / t / 1e9 / peak * 100.0
            );
        }
    }
}
