//! What both benchmarks use.

use std::time::Instant;

/// Microseconds per call of `f`: the best of 7 batches of `n` calls.
pub fn best_of(n: u32, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / f64::from(n));
    }
    best
}
