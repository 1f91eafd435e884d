//! `reduce_partials`: the second half of every split reduction. A kernel
//! that sums over many pixels or samples (conv2d's weight and bias
//! gradients, batch-norm's statistics and parameter gradients, dense's
//! split-K forward) writes one partial sum per chunk; this adds the chunks
//! into the output, so no invocation walks the whole reduction alone.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::Tensor;

crate::uniform! {
    /// Uniforms of `reduce_partials`.
    pub struct ReduceParams {
        pub len: u32,
        pub chunks: u32,
        pub _pad: [u32; 2],
    }
}

/// out += Σ_c partial[c, ·] (the second half of a split reduction).
pub fn reduce_partials(gpu: &Gpu, partial: &Tensor, chunks: usize, out: &Tensor) -> Result<()> {
    let p = ReduceParams {
        len: out.numel() as u32,
        chunks: chunks as u32,
        _pad: [0; 2],
    };
    gpu.dispatch(
        "reduce_partials",
        &p,
        &[partial, out],
        gpu.grid_1d(out.numel(), 64),
    )
}
