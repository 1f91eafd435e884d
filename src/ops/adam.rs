//! adam: the Adam optimizer as one in-place kernel per parameter tensor, in
//! Keras's formulation (bias correction folded into the step size α).
//! Shader `adam_step`; page `docs/kernels/adam.md`.

use crate::error::{Error, Result};
use crate::gpu::{Bind, Gpu, ReadWindow};
use crate::shaders::Precision;
use crate::tape::Param;
use crate::tensor::Tensor;

use super::nonfinite::Counters;

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

crate::uniform! {
    /// Uniforms of `adam_step`.
    pub struct AdamParams {
        pub n: u32,
        pub alpha: f32,
        pub beta1: f32,
        pub beta2: f32,
        pub epsilon: f32,
        pub _pad: [u32; 3],
    }
}

/// One Adam update of `p` in place, with moments `(m, v)` (step `t`,
/// 1-based), skipped when the total of `guard` (a [`Counters`] buffer) is
/// not zero.
pub fn adam_step(
    gpu: &Gpu,
    config: &AdamConfig,
    t: u64,
    g: &Tensor,
    p: &Tensor,
    (m, v): (&Tensor, &Tensor),
    guard: &Counters,
) -> Result<()> {
    check(g, p, (m, v))?;
    let gw = gpu.read_window(g, 0, g.numel())?;
    step_from_copy(gpu, config, t, &gw, p, (m, v), guard)
}

/// The gradient and the moments must have the parameter's shape.
fn check(g: &Tensor, p: &Tensor, (m, v): (&Tensor, &Tensor)) -> Result<()> {
    for (what, x) in [("gradient", g), ("first moment", m), ("second moment", v)] {
        x.expect_shape(
            "adam_step",
            &format!("{what} must match the parameter"),
            p.dims(),
        )?;
    }
    Ok(())
}

/// [`adam_step`] with g already copied for reading (`Adam::step_guarded`
/// counts the non-finite values of each gradient from the same copy). p, m
/// and v are read through copies taken here, before the kernel overwrites
/// them.
fn step_from_copy(
    gpu: &Gpu,
    config: &AdamConfig,
    t: u64,
    g: &ReadWindow,
    p: &Tensor,
    (m, v): (&Tensor, &Tensor),
    guard: &Counters,
) -> Result<()> {
    let n = p.numel();
    // On f64 devices a read window is the buffer itself, which the kernel
    // also writes: read from copies there.
    let snapshots = match gpu.precision() {
        Precision::F32 => vec![],
        Precision::F64 => [p, m, v]
            .into_iter()
            .map(|t| {
                let copy = Tensor::uninit(gpu, t.shape().clone(), "adam_step snapshot")?;
                gpu.copy(t, &copy)?;
                Ok(copy)
            })
            .collect::<Result<Vec<_>>>()?,
    };
    let [ps, ms, vs] = match &snapshots[..] {
        [a, b, c] => [a, b, c],
        _ => [p, m, v],
    };
    let (pw, mw, vw) = (
        gpu.read_window(ps, 0, n)?,
        gpu.read_window(ms, 0, n)?,
        gpu.read_window(vs, 0, n)?,
    );
    let params = AdamParams {
        n: n as u32,
        alpha: config.alpha(t) as f32,
        beta1: config.beta1 as f32,
        beta2: config.beta2 as f32,
        epsilon: config.epsilon as f32,
        _pad: [0; 3],
    };
    gpu.dispatch_bound(
        "adam_step",
        &params,
        &[
            g.bind(),
            pw.bind(),
            mw.bind(),
            vw.bind(),
            Bind::whole(p),
            Bind::whole(m),
            Bind::whole(v),
            Bind::whole(&guard.buffer),
        ],
        gpu.grid_1d(n.div_ceil(4), 256),
    )
}

/// A tensor of the last step that held NaN or ±Inf values.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// "loss" or the parameter's gradient ("dense_1.kernel gradient").
    pub what: String,
    /// How many of its elements are non-finite.
    pub count: u32,
    pub numel: usize,
}

/// Adam's state: the step count, two moment tensors per parameter, and the
/// non-finite counters that guard every step.
pub struct Adam {
    pub config: AdamConfig,
    /// Steps taken so far.
    pub t: u64,
    moments: Vec<(Tensor, Tensor)>,
    /// Slot 1: the loss; slot 2 + i: parameter i's gradient.
    guard: Counters,
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
            guard: Counters::new(gpu, params.len() + 1)?,
        })
    }

    /// Updates every parameter from its accumulated gradient.
    pub fn step(&mut self, gpu: &Gpu, params: &[&Param]) -> Result<()> {
        self.step_guarded(gpu, params, None)
    }

    /// Counts the non-finite values of `loss` and of every gradient, then
    /// updates every parameter — unless a count is not zero, in which case
    /// the GPU leaves weights and moments as they were; [`Adam::faults`]
    /// tells which tensors were at fault. All recorded, no host round trip.
    pub fn step_guarded(
        &mut self,
        gpu: &Gpu,
        params: &[&Param],
        loss: Option<&Tensor>,
    ) -> Result<()> {
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
        self.guard.clear(gpu);
        if let Some(loss) = loss {
            self.guard.count(gpu, loss, 1)?;
        }
        for (p, (m, v)) in params.iter().zip(&self.moments) {
            check(&p.grad, &p.value, (m, v))?;
        }
        // one texture copy of each gradient, counted, then read by its update
        let grads = params
            .iter()
            .map(|p| gpu.read_window(&p.grad, 0, p.grad.numel()))
            .collect::<Result<Vec<_>>>()?;
        for (i, (p, g)) in params.iter().zip(&grads).enumerate() {
            self.guard.count_window(gpu, g, p.grad.numel(), i + 2)?;
        }
        self.t += 1;
        for ((p, g), (m, v)) in params.iter().zip(&grads).zip(&self.moments) {
            step_from_copy(gpu, &self.config, self.t, g, &p.value, (m, v), &self.guard)?;
        }
        Ok(())
    }

    /// The tensors of the last step that held non-finite values (empty when
    /// the step was applied). One read from the GPU.
    pub fn faults(&self, gpu: &Gpu, params: &[&Param]) -> Result<Vec<Fault>> {
        let counts = self.guard.read(gpu)?;
        if counts[0] == 0 {
            return Ok(vec![]);
        }
        let mut out = vec![];
        if counts[1] > 0 {
            out.push(Fault {
                what: "loss".into(),
                count: counts[1],
                numel: 1,
            });
        }
        for (p, &c) in params.iter().zip(&counts[2..]) {
            if c > 0 {
                out.push(Fault {
                    what: format!("{} gradient", p.name),
                    count: c,
                    numel: p.grad.numel(),
                });
            }
        }
        Ok(out)
    }

    /// The moment tensors (m, v) per parameter, for checkpoints.
    pub fn moments(&self) -> &[(Tensor, Tensor)] {
        &self.moments
    }
}

/// Plain-loop f64 reference of one step, in place. It uses the
/// hyperparameters as the kernel receives them — f32 uniforms in either
/// precision — so that an f64 kernel is compared on its arithmetic alone.
pub mod cpu {
    use super::AdamConfig;

    fn as_uniform(x: f64) -> f64 {
        x as f32 as f64
    }

    pub fn adam_step(
        config: &AdamConfig,
        t: u64,
        g: &[f64],
        p: &mut [f64],
        m: &mut [f64],
        v: &mut [f64],
    ) {
        let alpha = as_uniform(config.alpha(t));
        let (beta1, beta2) = (as_uniform(config.beta1), as_uniform(config.beta2));
        let epsilon = as_uniform(config.epsilon);
        for i in 0..p.len() {
            m[i] += (g[i] - m[i]) * (1.0 - beta1);
            v[i] += (g[i] * g[i] - v[i]) * (1.0 - beta2);
            p[i] -= alpha * m[i] / (v[i].sqrt() + epsilon);
        }
    }
}
