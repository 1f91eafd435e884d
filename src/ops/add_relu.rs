//! add_relu: y = max(a + b, 0), the end of a residual block (torchvision's
//! `out += identity; out = relu(out)`) in one pass. Shaders
//! `add_relu_forward`, `add_relu_backward`; page `docs/kernels/add_relu.md`.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::{elementwise, relu::relu_backward, Arg, ElementwiseParams};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

fn params(n: u32, base: u32) -> ElementwiseParams {
    ElementwiseParams {
        n,
        base,
        _pad: [0; 2],
    }
}

/// y = max(a + b, 0).
pub fn add_relu_forward(gpu: &Gpu, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    b.expect_shape(
        "add_relu",
        "the shortcut b must match the block's output a",
        a.dims(),
    )?;
    let y = Tensor::uninit(gpu, a.shape().clone(), "add_relu_forward")?;
    let args = [Arg::Ranged(a), Arg::Ranged(b), Arg::Ranged(&y)];
    elementwise(gpu, "add_relu_forward", a.numel(), &args, params)?;
    Ok(y)
}

/// da += dy · [y > 0] and db += dy · [y > 0] from the saved output y, in
/// one pass; a gradient not asked for is skipped, and one buffer given
/// for both gets both shares (relu_backward twice: the fused kernel needs
/// two distinct buffers).
pub fn add_relu_backward(
    gpu: &Gpu,
    y: &Tensor,
    dy: &Tensor,
    da: Option<&Tensor>,
    db: Option<&Tensor>,
) -> Result<()> {
    dy.expect_shape("add_relu_backward", "dy must match the output", y.dims())?;
    match (da, db) {
        (Some(da), Some(db)) if !da.same_buffer(db) => {
            da.expect_shape("add_relu_backward", "da must match the output", y.dims())?;
            db.expect_shape("add_relu_backward", "db must match the output", y.dims())?;
            let args = [
                Arg::Ranged(y),
                Arg::Ranged(dy),
                Arg::Ranged(da),
                Arg::Ranged(db),
            ];
            elementwise(gpu, "add_relu_backward", y.numel(), &args, params)
        }
        (da, db) => {
            for d in [da, db].into_iter().flatten() {
                relu_backward(gpu, y, dy, d)?;
            }
            Ok(())
        }
    }
}

/// add_relu on the tape; saves its output for the backward pass.
pub fn add_relu(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    let y = add_relu_forward(tape.gpu(), &a.value, &b.value)?;
    let saved = y.clone();
    Ok(tape.record(y, &[a, b], move |gpu, dy, grads| {
        add_relu_backward(gpu, &saved, dy, grads[0].as_ref(), grads[1].as_ref())
    }))
}

/// Plain-loop f64 reference.
pub mod cpu {
    pub fn add_relu_forward(a: &[f64], b: &[f64]) -> Vec<f64> {
        a.iter().zip(b).map(|(&a, &b)| (a + b).max(0.0)).collect()
    }

    /// The gradient each input receives: dy · [a + b > 0].
    pub fn add_relu_backward(a: &[f64], b: &[f64], dy: &[f64]) -> Vec<f64> {
        a.iter()
            .zip(b)
            .zip(dy)
            .map(|((&a, &b), &g)| if a + b > 0.0 { g } else { 0.0 })
            .collect()
    }
}
