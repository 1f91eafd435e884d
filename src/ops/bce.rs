//! bce: binary cross-entropy on probabilities, Keras semantics — predictions
//! clipped to [ε, 1 − ε] with ε = 1e-7, the mean over labels and batch.
//! Shaders `bce_forward`, `bce_backward`; page `docs/kernels/bce.md`.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::{elementwise, Arg};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// Keras's `epsilon()`: the clip applied to predictions.
pub const BCE_EPSILON: f32 = 1e-7;

crate::uniform! {
    /// Uniforms of the two bce kernels.
    pub struct BceParams {
        /// Elements in this dispatch's range.
        pub n: u32,
        pub epsilon: f32,
        /// First element of the range in the bound window.
        pub base: u32,
        /// All elements: the mean divides by this.
        pub count: u32,
    }
}

fn check(p: &Tensor, t: &Tensor) -> Result<BceParams> {
    if p.shape() != t.shape() {
        return Err(Error::Shape {
            op: "binary_cross_entropy",
            what: "labels must have the predictions' shape".into(),
            got: t.shape().clone(),
            expected: p.shape().to_string(),
        });
    }
    Ok(BceParams {
        n: p.numel() as u32,
        epsilon: BCE_EPSILON,
        base: 0,
        count: p.numel() as u32,
    })
}

/// loss[0] = mean BCE of predictions p against labels t.
pub fn bce_forward(gpu: &Gpu, p: &Tensor, t: &Tensor) -> Result<Tensor> {
    let params = check(p, t)?;
    let loss = Tensor::uninit(gpu, [1], "bce_forward")?;
    gpu.dispatch("bce_forward", &params, &[p, t, &loss], [1, 1, 1])?;
    Ok(loss)
}

/// dp += dloss · ∂loss/∂p.
pub fn bce_backward(gpu: &Gpu, p: &Tensor, t: &Tensor, dloss: &Tensor, dp: &Tensor) -> Result<()> {
    let params = check(p, t)?;
    dloss.expect_shape("bce_backward", "the loss gradient is a scalar", &[1])?;
    dp.expect_shape("bce_backward", "dp must match the predictions", p.dims())?;
    let args = [
        Arg::Ranged(p),
        Arg::Ranged(t),
        Arg::Whole(dloss),
        Arg::Ranged(dp),
    ];
    elementwise(gpu, "bce_backward", p.numel(), &args, |n, base| BceParams {
        n,
        base,
        ..params
    })
}

/// Binary cross-entropy on the tape. `p` are probabilities (after sigmoid),
/// `t` the 0/1 labels (no gradient flows to them). Returns a `[1]` loss.
pub fn binary_cross_entropy(tape: &Tape, p: &Var, t: &Var) -> Result<Var> {
    let loss = bce_forward(tape.gpu(), &p.value, &t.value)?;
    let (ps, ts) = (p.value.clone(), t.value.clone());
    Ok(tape.record(loss, &[p], move |gpu, dloss, grads| {
        if let Some(dp) = &grads[0] {
            bce_backward(gpu, &ps, &ts, dloss, dp)?;
        }
        Ok(())
    }))
}

/// Plain-loop f64 reference (ε as in the kernels).
pub mod cpu {
    const EPS: f64 = super::BCE_EPSILON as f64;

    pub fn bce_forward(p: &[f64], t: &[f64]) -> f64 {
        let mut acc = 0.0;
        for (&pi, &ti) in p.iter().zip(t) {
            let q = pi.clamp(EPS, 1.0 - EPS);
            acc += ti * q.ln() + (1.0 - ti) * (1.0 - q).ln();
        }
        -acc / p.len() as f64
    }

    /// dp for upstream dloss; zero where the clip is active.
    pub fn bce_backward(p: &[f64], t: &[f64], dloss: f64) -> Vec<f64> {
        let n = p.len() as f64;
        p.iter()
            .zip(t)
            .map(|(&q, &ti)| {
                if (EPS..=1.0 - EPS).contains(&q) {
                    dloss * (q - ti) / (q * (1.0 - q)) / n
                } else {
                    0.0
                }
            })
            .collect()
    }
}
