//! dropout: inverted dropout with a counter-based hash mask, recomputed in
//! backward instead of stored. Shaders `dropout_forward`, `dropout_backward`;
//! page `docs/kernels/dropout.md`.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::{elementwise, Arg};
use crate::tape::{Mode, Tape, Var};
use crate::tensor::Tensor;

/// One dropout layer's draw: the rate, and the (seed, step) pair that with the
/// element index determines the mask. Use a different `step` each training
/// step (and a different `seed` per layer) for fresh masks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutConfig {
    /// Probability of dropping an element, in [0, 1).
    pub rate: f32,
    pub seed: u32,
    pub step: u32,
}

crate::uniform! {
    /// Uniforms of the dropout kernels.
    pub struct DropoutParams {
        pub n: u32,
        pub base: u32,
        pub first: u32,
        pub seed: u32,
        pub step: u32,
        pub rate: f32,
        pub scale: f32,
        pub _pad: u32,
    }
}

pub(crate) fn check(config: &DropoutConfig) -> Result<()> {
    if !(0.0..1.0).contains(&config.rate) {
        return Err(Error::Config {
            what: "dropout rate".into(),
            message: format!("must be in [0, 1), got {}", config.rate),
        });
    }
    Ok(())
}

fn launch(
    gpu: &Gpu,
    kernel: &'static str,
    a: &Tensor,
    b: &Tensor,
    config: DropoutConfig,
) -> Result<()> {
    check(&config)?;
    // first = global index of the range start: the windows split the work,
    // the hash must still see each element's own index.
    let mut first = 0u32;
    elementwise(
        gpu,
        kernel,
        a.numel(),
        &[Arg::Ranged(a), Arg::Ranged(b)],
        |n, base| {
            let p = DropoutParams {
                n,
                base,
                first,
                seed: config.seed,
                step: config.step,
                rate: config.rate,
                scale: 1.0 / (1.0 - config.rate),
                _pad: 0,
            };
            first += n;
            p
        },
    )
}

/// y = x · keep / (1 − rate).
pub fn dropout_forward(gpu: &Gpu, x: &Tensor, config: DropoutConfig) -> Result<Tensor> {
    let y = Tensor::uninit(gpu, x.shape().clone(), "dropout_forward")?;
    launch(gpu, "dropout_forward", x, &y, config)?;
    Ok(y)
}

/// dx += dy · keep / (1 − rate), the same mask as the forward.
pub fn dropout_backward(gpu: &Gpu, dy: &Tensor, dx: &Tensor, config: DropoutConfig) -> Result<()> {
    dx.expect_shape("dropout_backward", "dx must match dy", dy.dims())?;
    launch(gpu, "dropout_backward", dy, dx, config)
}

/// dropout on the tape: the identity in inference mode; saves nothing.
pub fn dropout(tape: &Tape, x: &Var, config: DropoutConfig) -> Result<Var> {
    check(&config)?;
    if tape.mode() == Mode::Inference || config.rate == 0.0 {
        return Ok(x.clone());
    }
    let y = dropout_forward(tape.gpu(), &x.value, config)?;
    Ok(tape.record(y, &[x], move |gpu, dy, grads| {
        if let Some(dx) = &grads[0] {
            dropout_backward(gpu, dy, dx, config)?;
        }
        Ok(())
    }))
}

/// The mask on the CPU: the same PCG hash in u32 arithmetic.
pub mod cpu {
    use super::DropoutConfig;

    pub fn pcg_hash(v: u32) -> u32 {
        let state = v.wrapping_mul(747796405).wrapping_add(2891336453);
        let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
        (word >> 22) ^ word
    }

    /// Whether element `index` is kept.
    pub fn keep(config: &DropoutConfig, index: u32) -> bool {
        let h = pcg_hash(index ^ pcg_hash(config.seed ^ pcg_hash(config.step)));
        (h as f32) * 2.328_306_4e-10 >= config.rate
    }

    pub fn dropout_forward(x: &[f64], config: &DropoutConfig) -> Vec<f64> {
        // The scale the kernel receives: an f32 uniform in either precision.
        let scale = (1.0 / (1.0 - config.rate)) as f64;
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                if keep(config, i as u32) {
                    v * scale
                } else {
                    0.0
                }
            })
            .collect()
    }

    pub fn dropout_backward(dy: &[f64], config: &DropoutConfig) -> Vec<f64> {
        dropout_forward(dy, config)
    }
}
