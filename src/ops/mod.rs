//! The ops. Each file holds one op end to end: its `#[repr(C)]` uniform
//! struct, the host wrappers that launch its kernels (`<op>_forward`,
//! `<op>_backward_*`, named like the shaders), the tape-aware function used
//! by models (`<op>(tape, ...)`), and a plain-loop f64 CPU reference in
//! `mod cpu`. Its shaders are `shaders/<op>_*.wgsl`, its page
//! `docs/kernels/<op>.md`, its gradient check `gradcheck::<op>`.

pub mod adam;
pub mod add_relu;
pub mod avgpool;
pub mod batchnorm;
pub mod bce;
pub mod bnpool;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod exp_log;
pub mod maxpool;
pub mod nonfinite;
pub mod peak;
pub mod reduce;
pub mod registry;
pub mod relu;
pub mod sigmoid;

pub use crate::tensor::FillParams;
pub use adam::{Adam, AdamConfig};
pub use add_relu::add_relu;
pub use avgpool::avgpool;
pub use batchnorm::{
    batch_norm, BatchNormConfig, BatchNormState, BnInput, BnStatistics, MovingVariance,
};
pub use bce::{binary_cross_entropy, BCE_EPSILON};
pub use bnpool::{bnpool, BnPoolConfig};
pub use conv2d::{conv2d, Conv2dConfig, Padding};
pub use dense::dense;
pub use dropout::{dropout, DropoutConfig};
pub use maxpool::{maxpool, MaxPoolConfig};
pub use relu::relu;
pub use sigmoid::sigmoid;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::Tensor;

crate::uniform! {
    /// Uniforms of the one-input elementwise kernels (relu, sigmoid).
    pub struct ElementwiseParams {
        /// Elements in this range.
        pub n: u32,
        /// First element of the range in the bound window.
        pub base: u32,
        pub _pad: [u32; 2],
    }
}

/// How an elementwise kernel binds one tensor.
pub(crate) enum Arg<'t> {
    /// Same element count as the op: bound as a window per range.
    Ranged(&'t Tensor),
    /// Bound whole in every range (a scalar such as the loss gradient).
    Whole(&'t Tensor),
}

/// Launches an elementwise kernel over `n` elements, in ranges whose windows
/// fit one storage binding (one range unless a tensor is larger than a
/// binding). Every ranged tensor is bound at the same aligned offset, so one
/// `base` serves them all; `params(len, base)` builds the uniforms, called
/// once per range in order.
pub(crate) fn elementwise<P: crate::gpu::Uniform>(
    gpu: &Gpu,
    kernel: &'static str,
    n: usize,
    args: &[Arg],
    mut params: impl FnMut(u32, u32) -> P,
) -> Result<()> {
    for range in gpu.batch_chunks(n, &[gpu.real_bytes() as u64]) {
        let mut binds = Vec::with_capacity(args.len());
        let mut base = 0;
        for a in args {
            binds.push(match a {
                Arg::Ranged(t) => {
                    let (b, off) = gpu.window(t, range.start, range.len());
                    base = off;
                    b
                }
                Arg::Whole(t) => crate::gpu::Bind::whole(t),
            });
        }
        let p = params(range.len() as u32, base);
        gpu.dispatch_bound(kernel, &p, &binds, gpu.grid_1d(range.len(), 256))?;
    }
    Ok(())
}

/// Sets every element of `x` to `value` (recorded, no host round trip);
/// the kernel is [`Tensor::fill`]'s.
pub fn fill(gpu: &Gpu, x: &Tensor, value: f32) -> Result<()> {
    x.fill(gpu, value)
}

crate::uniform! {
    /// Uniforms of `add_scaled`.
    pub struct AddScaledParams {
        pub n: u32,
        pub alpha: f32,
        pub base: u32,
        pub _pad: u32,
    }
}

/// y += alpha · x (recorded, no host round trip).
pub fn add_scaled(gpu: &Gpu, x: &Tensor, alpha: f32, y: &Tensor) -> Result<()> {
    y.expect_shape("add_scaled", "y must match x", x.dims())?;
    let args = [Arg::Ranged(x), Arg::Ranged(y)];
    elementwise(gpu, "add_scaled", x.numel(), &args, |n, base| {
        AddScaledParams {
            n,
            alpha,
            base,
            _pad: 0,
        }
    })
}

/// Flattens [N, ...] to [N, features] without copying (a view of the same
/// buffer). Backward adds the gradient, viewed in the input's shape, into the
/// input's gradient.
pub fn flatten(tape: &crate::Tape, x: &crate::Var) -> Result<crate::Var> {
    let dims = x.value.dims();
    let n = dims.first().copied().unwrap_or(1);
    let y = x.value.reshape([n, x.value.numel() / n.max(1)])?;
    Ok(tape.record(y, &[x], move |gpu, dy, grads| {
        if let Some(dx) = &grads[0] {
            add_scaled(gpu, &dy.reshape(dx.shape().clone())?, 1.0, dx)?;
        }
        Ok(())
    }))
}

/// Runs a one-input elementwise kernel `x → y` into a new tensor.
pub(crate) fn unary(gpu: &Gpu, kernel: &'static str, x: &Tensor) -> Result<Tensor> {
    let y = Tensor::uninit(gpu, x.shape().clone(), kernel)?;
    let args = [Arg::Ranged(x), Arg::Ranged(&y)];
    elementwise(gpu, kernel, x.numel(), &args, |n, base| ElementwiseParams {
        n,
        base,
        _pad: [0; 2],
    })?;
    Ok(y)
}

/// Runs an elementwise backward kernel `(y, dy) → dx +=`.
pub(crate) fn unary_backward(
    gpu: &Gpu,
    kernel: &'static str,
    y: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
) -> Result<()> {
    dy.expect_shape(kernel, "dy must match the forward output", y.dims())?;
    dx.expect_shape(kernel, "dx must match the forward output", y.dims())?;
    let args = [Arg::Ranged(y), Arg::Ranged(dy), Arg::Ranged(dx)];
    elementwise(gpu, kernel, y.numel(), &args, |n, base| ElementwiseParams {
        n,
        base,
        _pad: [0; 2],
    })
}
