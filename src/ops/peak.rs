//! `peak_fma`: the adapter's register-only multiply-add rate, the yardstick
//! `profile` divides every kernel's GFLOP/s by. No gradient: it measures
//! the adapter, not a layer.

use std::time::Instant;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::Tensor;

crate::uniform! {
    /// Uniforms of `peak_fma`.
    pub struct PeakParams {
        pub iters: u32,
        pub count: u32,
        pub _pad: [u32; 2],
    }
}

/// The adapter's multiply-add throughput in GFLOP/s: `peak_fma` on enough
/// invocations to fill it, best of three.
pub fn peak_gflops(gpu: &Gpu) -> Result<f64> {
    let count = 1 << 16;
    let iters = if gpu.adapter().is_cpu { 256 } else { 16384 };
    let out = Tensor::uninit(gpu, [count], "peak_fma")?;
    let p = PeakParams {
        iters,
        count: count as u32,
        _pad: [0; 2],
    };
    let mut best = f64::INFINITY;
    for _ in 0..4 {
        let t = Instant::now();
        gpu.dispatch("peak_fma", &p, &[&out], gpu.grid_1d(count, 64))?;
        gpu.sync()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(count as f64 * iters as f64 * 256.0 / best / 1e9)
}
