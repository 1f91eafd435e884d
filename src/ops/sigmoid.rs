//! sigmoid: y = 1 / (1 + e^(−x)). Shaders `sigmoid_forward`,
//! `sigmoid_backward`; page `docs/kernels/sigmoid.md`.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// y = σ(x), overflow-free.
pub fn sigmoid_forward(gpu: &Gpu, x: &Tensor) -> Result<Tensor> {
    super::unary(gpu, "sigmoid_forward", x)
}

/// dx += dy · y · (1 − y), from the saved output y.
pub fn sigmoid_backward(gpu: &Gpu, y: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<()> {
    super::unary_backward(gpu, "sigmoid_backward", y, dy, dx)
}

/// sigmoid on the tape; saves its output for the backward pass.
pub fn sigmoid(tape: &Tape, x: &Var) -> Result<Var> {
    let y = sigmoid_forward(tape.gpu(), &x.value)?;
    let saved = y.clone();
    Ok(tape.record(y, &[x], move |gpu, dy, grads| {
        if let Some(dx) = &grads[0] {
            sigmoid_backward(gpu, &saved, dy, dx)?;
        }
        Ok(())
    }))
}

/// Plain-loop f64 reference.
pub mod cpu {
    pub fn sigmoid_forward(x: &[f64]) -> Vec<f64> {
        x.iter()
            .map(|&v| {
                if v >= 0.0 {
                    1.0 / (1.0 + (-v).exp())
                } else {
                    let e = v.exp();
                    e / (1.0 + e)
                }
            })
            .collect()
    }
    pub fn sigmoid_backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
        sigmoid_forward(x)
            .iter()
            .zip(dy)
            .map(|(&s, &g)| g * s * (1.0 - s))
            .collect()
    }
}
