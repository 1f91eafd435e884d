//! nonfinite: counting NaN and ±Inf values on the GPU, the guard that stops
//! a diverging run at the step it diverges. Shader `nonfinite_count`; page
//! `docs/kernels/nonfinite.md`.
//!
//! A [`Counters`] buffer holds slot 0, the total, and one slot per counted
//! tensor. Counting adds into the slots with atomics, so any number of
//! tensors share one buffer and one read brings every count back.
//! `adam_step` reads slot 0 and skips its update when it is not zero: a
//! step whose loss or gradients went non-finite never reaches the weights.

use crate::error::{Error, Result};
use crate::gpu::{Bind, Gpu, ReadWindow};
use crate::tensor::Tensor;

crate::uniform! {
    /// Uniforms of `nonfinite_count`.
    pub struct NonfiniteParams {
        pub n: u32,
        pub base: u32,
        pub slot: u32,
        pub _pad: u32,
    }
}

/// Slot 0 (the total) and `slots` counters, u32 on the GPU.
pub struct Counters {
    /// Stored as a tensor of `slots + 1` 32-bit words; the shaders see u32.
    pub buffer: Tensor,
}

impl Counters {
    /// Counters for `slots` tensors, all zero.
    pub fn new(gpu: &Gpu, slots: usize) -> Result<Counters> {
        Ok(Counters {
            buffer: Tensor::zeros(gpu, [slots + 1], "nonfinite counters")?,
        })
    }

    /// Sets every counter back to zero (recorded, no host round trip).
    pub fn clear(&self, gpu: &Gpu) {
        gpu.clear(&self.buffer);
    }

    /// Adds the number of non-finite elements of `x` to `slot` (1-based) and
    /// to the total.
    pub fn count(&self, gpu: &Gpu, x: &Tensor, slot: usize) -> Result<()> {
        for range in gpu.batch_chunks(x.numel(), &[gpu.real_bytes() as u64]) {
            let copy = gpu.read_window(x, range.start, range.len())?;
            self.count_window(gpu, &copy, range.len(), slot)?;
        }
        Ok(())
    }

    /// [`Counters::count`] of the `n` elements of a window already copied
    /// for reading (Adam counts each gradient from the copy its update
    /// reads).
    pub(crate) fn count_window(
        &self,
        gpu: &Gpu,
        x: &ReadWindow,
        n: usize,
        slot: usize,
    ) -> Result<()> {
        f32_only(gpu)?;
        if slot == 0 || slot >= self.buffer.numel() {
            return Err(Error::Config {
                what: "nonfinite_count".into(),
                message: format!(
                    "slot {slot} outside 1..={}",
                    self.buffer.numel().saturating_sub(1)
                ),
            });
        }
        let params = NonfiniteParams {
            n: n as u32,
            base: x.base(),
            slot: slot as u32,
            _pad: 0,
        };
        let texels = (x.base() as usize + n).div_ceil(4);
        gpu.dispatch_bound(
            "nonfinite_count",
            &params,
            &[x.bind(), Bind::whole(&self.buffer)],
            gpu.grid_1d(texels, 256),
        )
    }

    /// The counts, slot 0 (the total) first.
    pub fn read(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        f32_only(gpu)?;
        Ok(self
            .buffer
            .to_vec(gpu)?
            .into_iter()
            .map(f32::to_bits)
            .collect())
    }
}

/// Plain-loop reference.
pub mod cpu {
    /// How many elements are NaN or ±Inf.
    pub fn nonfinite_count(x: &[f32]) -> u32 {
        x.iter().filter(|v| !v.is_finite()).count() as u32
    }
}

/// The guard reads f32 bit patterns (shaders/nonfinite_count.wgsl): on an f64
/// device (gradient checks only) it is refused rather than silently wrong.
fn f32_only(gpu: &Gpu) -> Result<()> {
    if gpu.precision() != crate::shaders::Precision::F32 {
        return Err(Error::Precision {
            what: "nonfinite_count".into(),
            message: format!(
                "the non-finite guard works on f32 tensors only; this device stores {}",
                gpu.precision()
            ),
        });
    }
    Ok(())
}
