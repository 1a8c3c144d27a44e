use insitu_linalg::Par;
use rayon::prelude::*;
fn main() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for &n in &[10_100usize, 78_500] {
        for &block in &[8192usize, 2048] {
            let mut v = vec![1.0f32; n];
            pool.install(|| {
                let par = Par::of_current_pool();
                par.with_polling_workers(|| {
                    for rep in 0..3 {
                        let t = std::time::Instant::now();
                        for _ in 0..10_000 {
                            v.par_chunks_mut(block)
                                .with_min_len(par.min_blocks_per_job())
                                .for_each(|b| b.iter_mut().for_each(|x| *x *= 1.0000001));
                        }
                        let par_t = t.elapsed().as_secs_f64() / 1e4;
                        let t = std::time::Instant::now();
                        for _ in 0..10_000 {
                            v.chunks_mut(block)
                                .for_each(|b| b.iter_mut().for_each(|x| *x *= 1.0000001));
                        }
                        let seq_t = t.elapsed().as_secs_f64() / 1e4;
                        if rep == 2 {
                            println!(
                                "n={n} block={block}: parallel region {:.2} us, sequential {:.2} us",
                                par_t * 1e6,
                                seq_t * 1e6
                            );
                        }
                    }
                })
            });
        }
    }
}
