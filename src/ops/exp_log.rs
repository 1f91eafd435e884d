//! exp_log: y = exp(x) or y = log(x), elementwise. Shader `exp_log`; the
//! transcendental functions sigmoid and bce are built on, exposed on their
//! own so that their accuracy can be measured in each precision (in f64 they
//! come from `shaders/lib/f64_math.wgsl`; see `docs/kernels/sigmoid.md`).

use super::{elementwise, Arg};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::Tensor;

crate::uniform! {
    /// Uniforms of `exp_log`.
    pub struct ExpLogParams {
        /// Elements in this range.
        pub n: u32,
        /// First element of the range in the bound window.
        pub base: u32,
        /// 0: exp, 1: log.
        pub mode: u32,
        pub _pad: u32,
    }
}

/// Which function `exp_log` computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transcendental {
    Exp,
    Log,
}

/// y = exp(x) or log(x), in the device's precision.
pub fn exp_log(gpu: &Gpu, x: &Tensor, function: Transcendental) -> Result<Tensor> {
    let y = Tensor::uninit(gpu, x.shape().clone(), "exp_log")?;
    let mode = match function {
        Transcendental::Exp => 0,
        Transcendental::Log => 1,
    };
    let args = [Arg::Ranged(x), Arg::Ranged(&y)];
    elementwise(gpu, "exp_log", x.numel(), &args, |n, base| ExpLogParams {
        n,
        base,
        mode,
        _pad: 0,
    })?;
    Ok(y)
}
