//! The ops. Each file holds one op end to end: its `#[repr(C)]` uniform
//! struct, the host wrappers that launch its kernels (`<op>_forward`,
//! `<op>_backward_*`, named like the shaders), the tape-aware function used
//! by models (`<op>(tape, ...)`), and a plain-loop f64 CPU reference in
//! `mod cpu`. Its shaders are `shaders/<op>_*.wgsl`, its page
//! `docs/kernels/<op>.md`, its gradient check `gradcheck::<op>`.

pub mod adam;
pub mod bce;
pub mod dense;
pub mod relu;
pub mod sigmoid;

pub use adam::{Adam, AdamConfig};
pub use bce::{binary_cross_entropy, BCE_EPSILON};
pub use dense::dense;
pub use relu::relu;
pub use sigmoid::sigmoid;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::Tensor;

/// Uniforms of the one-input elementwise kernels (relu, sigmoid).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ElementwiseParams {
    pub n: u32,
    pub _pad: [u32; 3],
}

impl ElementwiseParams {
    pub fn new(n: usize) -> Self {
        ElementwiseParams {
            n: n as u32,
            _pad: [0; 3],
        }
    }
}

/// Uniforms of `fill`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FillParams {
    pub n: u32,
    pub value: f32,
    pub _pad: [u32; 2],
}

/// Sets every element of `x` to `value` (recorded, no host round trip).
pub fn fill(gpu: &Gpu, x: &Tensor, value: f32) -> Result<()> {
    let params = FillParams {
        n: x.numel() as u32,
        value,
        _pad: [0; 2],
    };
    gpu.dispatch("fill", &params, &[x], gpu.grid_1d(x.numel(), 256))
}

/// Uniforms of `add_scaled`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AddScaledParams {
    pub n: u32,
    pub alpha: f32,
    pub _pad: [u32; 2],
}

/// y += alpha · x (recorded, no host round trip).
pub fn add_scaled(gpu: &Gpu, x: &Tensor, alpha: f32, y: &Tensor) -> Result<()> {
    y.expect_shape("add_scaled", "y must match x", x.dims())?;
    let params = AddScaledParams {
        n: x.numel() as u32,
        alpha,
        _pad: [0; 2],
    };
    gpu.dispatch("add_scaled", &params, &[x, y], gpu.grid_1d(x.numel(), 256))
}

/// Runs a one-input elementwise kernel `x → y` into a new tensor.
pub(crate) fn unary(gpu: &Gpu, kernel: &'static str, x: &Tensor) -> Result<Tensor> {
    let y = Tensor::uninit(gpu, x.shape().clone(), kernel)?;
    let params = ElementwiseParams::new(x.numel());
    gpu.dispatch(kernel, &params, &[x, &y], gpu.grid_1d(x.numel(), 256))?;
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
    for (what, t) in [("dy", dy), ("dx", dx)] {
        if t.shape() != y.shape() {
            return Err(crate::Error::Shape {
                op: kernel,
                what: format!("{what} must match the forward output"),
                got: t.shape().clone(),
                expected: y.shape().to_string(),
            });
        }
    }
    let params = ElementwiseParams::new(y.numel());
    gpu.dispatch(kernel, &params, &[y, dy, dx], gpu.grid_1d(y.numel(), 256))
}
