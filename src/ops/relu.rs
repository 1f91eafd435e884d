//! relu: y = max(x, 0). Shaders `relu_forward`, `relu_backward`; page
//! `docs/kernels/relu.md`.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// y = max(x, 0).
pub fn relu_forward(gpu: &Gpu, x: &Tensor) -> Result<Tensor> {
    super::unary(gpu, "relu_forward", x)
}

/// dx += dy · [y > 0], from the saved output y.
pub fn relu_backward(gpu: &Gpu, y: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<()> {
    super::unary_backward(gpu, "relu_backward", y, dy, dx)
}

/// relu on the tape; saves its output for the backward pass.
pub fn relu(tape: &Tape, x: &Var) -> Result<Var> {
    let y = relu_forward(tape.gpu(), &x.value)?;
    let saved = y.clone();
    Ok(tape.record(y, &[x], move |gpu, dy, grads| {
        if let Some(dx) = &grads[0] {
            relu_backward(gpu, &saved, dy, dx)?;
        }
        Ok(())
    }))
}

/// Plain-loop f64 reference.
pub mod cpu {
    pub fn relu_forward(x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| v.max(0.0)).collect()
    }
    /// dx = dy · [x > 0] (0 at the kink x = 0).
    pub fn relu_backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(dy)
            .map(|(&v, &g)| if v > 0.0 { g } else { 0.0 })
            .collect()
    }
}
