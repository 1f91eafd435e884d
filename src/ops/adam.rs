//! adam: the Adam optimizer as one in-place kernel per parameter tensor, in
//! Keras's formulation (bias correction folded into the step size α).
//! Shader `adam_step`; page `docs/kernels/adam.md`.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tape::Param;
use crate::tensor::Tensor;

/// Adam's hyper-parameters (defaults: Keras's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub learning_rate: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
        }
    }
}

impl AdamConfig {
    /// Rejects values that cannot train (NaN, negative rates, β outside [0, 1)).
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, message: String| {
            Err(Error::Config {
                what: format!("adam {what}"),
                message,
            })
        };
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "learning rate",
                format!("must be a positive number, got {}", self.learning_rate),
            );
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(name, format!("must be in [0, 1), got {b}"));
            }
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return bad(
                "epsilon",
                format!("must be a positive number, got {}", self.epsilon),
            );
        }
        Ok(())
    }

    /// α at step t (1-based): lr · √(1 − β2ᵗ) / (1 − β1ᵗ).
    pub fn alpha(&self, t: u64) -> f64 {
        let t = t as i32;
        self.learning_rate * (1.0 - self.beta2.powi(t)).sqrt() / (1.0 - self.beta1.powi(t))
    }
}

/// Uniforms of `adam_step`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdamParams {
    pub n: u32,
    pub alpha: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    pub _pad: [u32; 3],
}

/// One Adam update of `p` in place, with moments `m`, `v` (step `t`, 1-based).
pub fn adam_step(
    gpu: &Gpu,
    config: &AdamConfig,
    t: u64,
    g: &Tensor,
    p: &Tensor,
    m: &Tensor,
    v: &Tensor,
) -> Result<()> {
    for (what, x) in [("gradient", g), ("first moment", m), ("second moment", v)] {
        x.expect_shape(
            "adam_step",
            &format!("{what} must match the parameter"),
            p.dims(),
        )?;
    }
    let params = AdamParams {
        n: p.numel() as u32,
        alpha: config.alpha(t) as f32,
        beta1: config.beta1 as f32,
        beta2: config.beta2 as f32,
        epsilon: config.epsilon as f32,
        _pad: [0; 3],
    };
    gpu.dispatch(
        "adam_step",
        &params,
        &[g, p, m, v],
        gpu.grid_1d(p.numel(), 256),
    )
}

/// Adam's state: the step count and two moment tensors per parameter.
pub struct Adam {
    pub config: AdamConfig,
    /// Steps taken so far.
    pub t: u64,
    moments: Vec<(Tensor, Tensor)>,
}

impl Adam {
    /// State for these parameters (moments start at zero).
    pub fn new(gpu: &Gpu, params: &[&Param], config: AdamConfig) -> Result<Adam> {
        config.validate()?;
        let moments = params
            .iter()
            .map(|p| {
                Ok((
                    Tensor::zeros(gpu, p.value.shape().clone(), "adam m")?,
                    Tensor::zeros(gpu, p.value.shape().clone(), "adam v")?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Adam {
            config,
            t: 0,
            moments,
        })
    }

    /// Updates every parameter from its accumulated gradient.
    pub fn step(&mut self, gpu: &Gpu, params: &[&Param]) -> Result<()> {
        if params.len() != self.moments.len() {
            return Err(Error::Config {
                what: "adam".into(),
                message: format!(
                    "built for {} parameters, stepped with {}",
                    self.moments.len(),
                    params.len()
                ),
            });
        }
        self.t += 1;
        for (p, (m, v)) in params.iter().zip(&self.moments) {
            adam_step(gpu, &self.config, self.t, &p.grad, &p.value, m, v)?;
        }
        Ok(())
    }

    /// The moment tensors (m, v) per parameter, for checkpoints.
    pub fn moments(&self) -> &[(Tensor, Tensor)] {
        &self.moments
    }
}

/// Plain-loop f64 reference of one step, in place.
pub mod cpu {
    use super::AdamConfig;

    pub fn adam_step(
        config: &AdamConfig,
        t: u64,
        g: &[f64],
        p: &mut [f64],
        m: &mut [f64],
        v: &mut [f64],
    ) {
        let alpha = config.alpha(t);
        for i in 0..p.len() {
            m[i] += (g[i] - m[i]) * (1.0 - config.beta1);
            v[i] += (g[i] * g[i] - v[i]) * (1.0 - config.beta2);
            p[i] -= alpha * m[i] / (v[i].sqrt() + config.epsilon);
        }
    }
}
