//! batchnorm: Keras's BatchNormalization — per channel after a conv
//! ([N, C, H, W]), per feature after a dense layer ([N, F]). Training mode
//! normalises with the batch's statistics and updates the moving ones;
//! inference mode uses the moving ones. Shaders `batchnorm_partials`,
//! `batchnorm_stats`, `batchnorm_forward`, `batchnorm_backward_partials`,
//! `batchnorm_backward_input`, `batchnorm_backward_params` (+ `reduce_partials`);
//! page `docs/kernels/batchnorm.md`.

use crate::error::{Error, Result};
use crate::gpu::{Bind, Gpu, ReadWindow};
use crate::ops::reduce::reduce_partials;
use crate::tape::{Mode, Tape, Var};
use crate::tensor::Tensor;

/// What the batch norm normalises: its input as given, or the relu of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BnInput {
    #[default]
    AsIs,
    /// The input is z, the pre-activation of a conv or dense layer whose relu
    /// is fused into this batch norm: it normalises relu(z) and its input
    /// gradient is the gradient of z. One op instead of three passes over the
    /// tensor (relu forward, relu backward, and the zeroing of relu's
    /// gradient), and relu(z) is never stored.
    Relu,
}

/// Which statistics a batch norm normalises with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BnStatistics {
    /// The tape's mode decides: the batch's statistics while training (and
    /// the moving ones updated), the moving ones at inference.
    #[default]
    FollowTape,
    /// Frozen: the moving statistics always, never updated, also while
    /// training (a frozen backbone; Keras's `trainable = False`). The
    /// gradient still flows: dx = dy·γ·invstd, dγ = Σ dy·x̂, dβ = Σ dy.
    Frozen,
}

/// Which batch variance the moving variance averages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MovingVariance {
    /// The biased one (÷ M), the one that normalises: Keras.
    #[default]
    Biased,
    /// The unbiased one (÷ (M − 1)): PyTorch's `running_var`.
    Unbiased,
}

/// Keras's defaults: momentum 0.99, ε 1e-3; the input as given; the
/// statistics the tape's mode picks. (torchvision's: momentum 0.9 in these
/// terms, ε 1e-5: [`BatchNormConfig::TORCH`].)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    pub momentum: f32,
    pub epsilon: f32,
    pub input: BnInput,
    pub statistics: BnStatistics,
    pub moving_variance: MovingVariance,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            momentum: 0.99,
            epsilon: 1e-3,
            input: BnInput::AsIs,
            statistics: BnStatistics::FollowTape,
            moving_variance: MovingVariance::Biased,
        }
    }
}

impl BatchNormConfig {
    /// PyTorch's BatchNorm2d defaults: moving = 0.9·moving + 0.1·batch
    /// (the unbiased variance), ε 1e-5.
    pub const TORCH: BatchNormConfig = BatchNormConfig {
        momentum: 0.9,
        epsilon: 1e-5,
        input: BnInput::AsIs,
        statistics: BnStatistics::FollowTape,
        moving_variance: MovingVariance::Unbiased,
    };

    /// The mode the batch norm runs in on a tape in `tape` mode.
    pub fn mode(&self, tape: Mode) -> Mode {
        match self.statistics {
            BnStatistics::FollowTape => tape,
            BnStatistics::Frozen => Mode::Inference,
        }
    }
}

/// The moving statistics: state (not trained by gradients) that a checkpoint saves.
pub struct BatchNormState {
    pub moving_mean: Tensor,
    pub moving_var: Tensor,
}

impl BatchNormState {
    /// Moving mean 0 and moving variance 1, as Keras starts them.
    pub fn new(gpu: &Gpu, channels: usize) -> Result<BatchNormState> {
        let moving_var = Tensor::uninit(gpu, [channels], "moving variance")?;
        crate::ops::fill(gpu, &moving_var, 1.0)?;
        Ok(BatchNormState {
            moving_mean: Tensor::zeros(gpu, [channels], "moving mean")?,
            moving_var,
        })
    }
}

crate::uniform! {
    /// Uniforms of every batchnorm kernel.
    pub struct BnParams {
        /// Samples in the bound window.
        pub n: u32,
        pub c: u32,
        /// Values per channel per sample (H·W, or 1 after a dense layer).
        pub plane: u32,
        pub x_base: u32,
        pub y_base: u32,
        /// Values per chunk of the split sums.
        pub chunk: u32,
        /// Index of this window's first chunk among all chunks.
        pub chunk_offset: u32,
        /// Chunks in all (for the merge).
        pub chunks: u32,
        pub epsilon: f32,
        pub momentum: f32,
        /// 1 in training mode, 0 in inference.
        pub training: u32,
        /// M = N·plane, the values per channel over the whole batch.
        pub count: u32,
        /// 1: the kernels read z and use relu(z) ([`BnInput::Relu`]).
        pub relu_input: u32,
        /// First element of the dx window (`batchnorm_backward_input`, whose x
        /// may be a texture copy starting at 0).
        pub dx_base: u32,
        /// 1: the moving update keeps the unbiased batch variance, M2/(M − 1)
        /// ([`MovingVariance::Unbiased`]; computed in the kernel, in its
        /// precision); 0: the biased one, M2/M.
        pub unbiased: u32,
        pub _pad: u32,
    }
}

const CHUNK: usize = 4096;

/// (n, c, plane) of a [N, C, H, W] or [N, F] input.
fn layout(x: &Tensor) -> Result<(usize, usize, usize)> {
    match x.dims() {
        [n, c] => Ok((*n, *c, 1)),
        [n, c, h, w] => Ok((*n, *c, h * w)),
        _ => Err(Error::Shape {
            op: "batchnorm",
            what: "input must be [batch, features] or [batch, channels, height, width]".into(),
            got: x.shape().clone(),
            expected: "rank 2 or 4".into(),
        }),
    }
}

struct Plan {
    n: usize,
    c: usize,
    plane: usize,
    ranges: Vec<std::ops::Range<usize>>,
    /// First chunk of each range, and the total.
    chunk_offsets: Vec<usize>,
    chunks: usize,
}

fn plan(gpu: &Gpu, x: &Tensor) -> Result<Plan> {
    let (n, c, plane) = layout(x)?;
    let ranges = gpu.batch_chunks(n, &[(c * plane * gpu.real_bytes()) as u64]);
    let mut chunk_offsets = Vec::with_capacity(ranges.len());
    let mut chunks = 0;
    for r in &ranges {
        chunk_offsets.push(chunks);
        chunks += (r.len() * plane).div_ceil(CHUNK);
    }
    Ok(Plan {
        n,
        c,
        plane,
        ranges,
        chunk_offsets,
        chunks,
    })
}

impl Plan {
    fn params(&self, config: BatchNormConfig, mode: Mode) -> BnParams {
        BnParams {
            n: self.n as u32,
            c: self.c as u32,
            plane: self.plane as u32,
            x_base: 0,
            y_base: 0,
            chunk: CHUNK as u32,
            chunk_offset: 0,
            chunks: self.chunks as u32,
            epsilon: config.epsilon,
            momentum: config.momentum,
            training: (mode == Mode::Training) as u32,
            count: (self.n * self.plane) as u32,
            relu_input: (config.input == BnInput::Relu) as u32,
            dx_base: 0,
            unbiased: (config.moving_variance == MovingVariance::Unbiased) as u32,
            _pad: 0,
        }
    }
    fn per_sample(&self) -> usize {
        self.c * self.plane
    }
    /// Invocations per sample of the elementwise kernels (batchnorm_forward,
    /// batchnorm_backward_input): one per strip of 8 elements of a plane.
    fn strips_per_sample(&self) -> usize {
        self.c * self.plane.div_ceil(8)
    }
}

/// The normalisation statistics `[2, C]` (mean, then 1/√(var + ε)): the
/// batch's in training (updating `state` in place), the moving ones in inference.
pub fn batchnorm_statistics(
    gpu: &Gpu,
    x: &Tensor,
    state: &BatchNormState,
    config: BatchNormConfig,
    mode: Mode,
) -> Result<Tensor> {
    Ok(statistics_keeping_copy(gpu, x, state, config, mode)?.0)
}

/// [`batchnorm_statistics`], also handing back the texture copy of x's last
/// sample range that the partial sums read (training mode), for a kernel
/// that reads the same window next (bnpool's forward): with one range, x is
/// then copied once for both.
pub(crate) fn statistics_keeping_copy<'t>(
    gpu: &Gpu,
    x: &'t Tensor,
    state: &BatchNormState,
    config: BatchNormConfig,
    mode: Mode,
) -> Result<(Tensor, Option<ReadWindow<'t>>)> {
    let p = plan(gpu, x)?;
    state
        .moving_mean
        .expect_shape("batchnorm", "moving mean must be [channels]", &[p.c])?;
    state
        .moving_var
        .expect_shape("batchnorm", "moving variance must be [channels]", &[p.c])?;
    let stats = Tensor::uninit(gpu, [2, p.c], "batchnorm_stats")?;
    let base = p.params(config, mode);
    let mut kept = None;
    let partial = match mode {
        Mode::Training => {
            let partial = Tensor::uninit(gpu, [p.chunks, p.c, 3], "batchnorm_partials")?;
            for (r, &offset) in p.ranges.iter().zip(&p.chunk_offsets) {
                drop(kept.take()); // the previous range's copy goes back to the pool first
                let xt = gpu.read_window(x, r.start * p.per_sample(), r.len() * p.per_sample())?;
                let params = BnParams {
                    n: r.len() as u32,
                    x_base: xt.base(),
                    chunk_offset: offset as u32,
                    ..base
                };
                let invocations = (r.len() * p.plane).div_ceil(CHUNK) * p.c;
                gpu.dispatch_bound(
                    "batchnorm_partials",
                    &params,
                    &[xt.bind(), Bind::whole(&partial)],
                    gpu.grid_1d(invocations, 64),
                )?;
                kept = Some(xt);
            }
            partial
        }
        // not read in inference, but the binding must exist
        Mode::Inference => Tensor::uninit(gpu, [3], "batchnorm_partials")?,
    };
    gpu.dispatch(
        "batchnorm_stats",
        &base,
        &[&partial, &state.moving_mean, &state.moving_var, &stats],
        [p.c.div_ceil(64) as u32, 1, 1],
    )?;
    Ok((stats, kept))
}

/// y = γ·(x − mean)·invstd + β with the given statistics (x replaced by
/// relu(x) for [`BnInput::Relu`]).
pub fn batchnorm_forward(
    gpu: &Gpu,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    stats: &Tensor,
    input: BnInput,
) -> Result<Tensor> {
    let p = plan(gpu, x)?;
    gamma.expect_shape("batchnorm", "gamma must be [channels]", &[p.c])?;
    beta.expect_shape("batchnorm", "beta must be [channels]", &[p.c])?;
    let y = Tensor::uninit(gpu, x.shape().clone(), "batchnorm_forward")?;
    let config = BatchNormConfig {
        input,
        ..BatchNormConfig::default()
    };
    let base = p.params(config, Mode::Inference);
    let s = p.per_sample();
    for r in &p.ranges {
        let (xw, xb) = gpu.window(x, r.start * s, r.len() * s);
        let (yw, yb) = gpu.window(&y, r.start * s, r.len() * s);
        let params = BnParams {
            n: r.len() as u32,
            x_base: xb,
            y_base: yb,
            ..base
        };
        gpu.dispatch_bound(
            "batchnorm_forward",
            &params,
            &[
                xw,
                Bind::whole(gamma),
                Bind::whole(beta),
                Bind::whole(stats),
                yw,
            ],
            gpu.grid_1d(r.len() * p.strips_per_sample(), 256),
        )?;
    }
    Ok(y)
}

/// What batchnorm's backward reads: its input (the pre-activation z for
/// [`BnInput::Relu`]), γ, and the `[2, C]` statistics.
pub struct BnSaved<'t> {
    pub x: &'t Tensor,
    pub gamma: &'t Tensor,
    pub stats: &'t Tensor,
}

/// The gradients batchnorm's backward adds into, each only where asked for.
#[derive(Default)]
pub struct BnGrads<'t> {
    pub dx: Option<&'t Tensor>,
    pub dgamma: Option<&'t Tensor>,
    pub dbeta: Option<&'t Tensor>,
}

/// Gradients of batchnorm: dx (training or inference rule; for
/// [`BnInput::Relu`] the gradient of the pre-activation z), dγ and dβ; each
/// accumulates (+=) into the buffers given.
pub fn batchnorm_backward(
    gpu: &Gpu,
    saved: &BnSaved,
    dy: &Tensor,
    mode: Mode,
    input: BnInput,
    grads: BnGrads,
) -> Result<()> {
    let (x, gamma, stats) = (saved.x, saved.gamma, saved.stats);
    let BnGrads { dx, dgamma, dbeta } = grads;
    let p = plan(gpu, x)?;
    dy.expect_shape("batchnorm_backward", "dy must match the input", x.dims())?;
    if let Some(dx) = dx {
        dx.expect_shape("batchnorm_backward", "dx must match the input", x.dims())?;
    }
    let config = BatchNormConfig {
        input,
        ..BatchNormConfig::default()
    };
    let base = p.params(config, mode);
    let s = p.per_sample();
    // Σ dy and Σ dy·x̂ per channel, split over chunks then reduced.
    let sums = Tensor::zeros(gpu, [2, p.c], "batchnorm sums")?;
    let partial = Tensor::uninit(gpu, [p.chunks, 2, p.c], "batchnorm_backward_partials")?;
    // x and dy are read through texture copies (f32; see the shaders). The
    // last range's copies are kept for the input gradient, which walks the
    // ranges backwards: with one range (every layer but the poster model's
    // first at 350×350) nothing is copied twice, and no more copies are
    // alive at once than in this loop.
    let mut kept = None;
    for (r, &offset) in p.ranges.iter().zip(&p.chunk_offsets) {
        drop(kept.take()); // the previous range's textures go back to the pool first
        let xt = gpu.read_window(x, r.start * s, r.len() * s)?;
        let dyt = gpu.read_window(dy, r.start * s, r.len() * s)?;
        let params = BnParams {
            n: r.len() as u32,
            x_base: xt.base(),
            y_base: dyt.base(),
            chunk_offset: offset as u32,
            ..base
        };
        let invocations = (r.len() * p.plane).div_ceil(CHUNK) * p.c;
        gpu.dispatch_bound(
            "batchnorm_backward_partials",
            &params,
            &[
                xt.bind(),
                dyt.bind(),
                Bind::whole(stats),
                Bind::whole(&partial),
            ],
            gpu.grid_1d(invocations, 64),
        )?;
        kept = Some((xt, dyt));
    }
    reduce_partials(gpu, &partial, p.chunks, &sums)?;
    if let Some(dx) = dx {
        for r in p.ranges.iter().rev() {
            let (xt, dyt) = match kept.take() {
                Some(copies) => copies,
                None => (
                    gpu.read_window(x, r.start * s, r.len() * s)?,
                    gpu.read_window(dy, r.start * s, r.len() * s)?,
                ),
            };
            let (dxw, dxb) = gpu.window(dx, r.start * s, r.len() * s);
            let params = BnParams {
                n: r.len() as u32,
                x_base: xt.base(),
                y_base: dyt.base(),
                dx_base: dxb,
                ..base
            };
            gpu.dispatch_bound(
                "batchnorm_backward_input",
                &params,
                &[
                    xt.bind(),
                    dyt.bind(),
                    Bind::whole(gamma),
                    Bind::whole(stats),
                    Bind::whole(&sums),
                    dxw,
                ],
                gpu.grid_1d(r.len() * p.strips_per_sample(), 256),
            )?;
        }
    }
    backward_params(gpu, &sums, p.c, dgamma, dbeta)
}

/// dγ += Σ dy·x̂ and dβ += Σ dy from the reduced sums `[2, C]` (batchnorm and
/// bnpool); a missing buffer gets a scratch one, since the kernel binds both.
pub(crate) fn backward_params(
    gpu: &Gpu,
    sums: &Tensor,
    c: usize,
    dgamma: Option<&Tensor>,
    dbeta: Option<&Tensor>,
) -> Result<()> {
    let params = BnParams {
        c: c as u32,
        ..bytemuck::Zeroable::zeroed()
    };
    let scratch;
    let (dg, db) = match (dgamma, dbeta) {
        (Some(g), Some(b)) => (g, b),
        (Some(g), None) => {
            scratch = Tensor::zeros(gpu, [c], "dbeta scratch")?;
            (g, &scratch)
        }
        (None, Some(b)) => {
            scratch = Tensor::zeros(gpu, [c], "dgamma scratch")?;
            (&scratch, b)
        }
        (None, None) => return Ok(()),
    };
    gpu.dispatch(
        "batchnorm_backward_params",
        &params,
        &[sums, dg, db],
        [c.div_ceil(64) as u32, 1, 1],
    )
}

/// batchnorm on the tape. Training: batch statistics, moving statistics
/// updated; inference, or [`BnStatistics::Frozen`]: moving statistics. Saves x and the statistics. With
/// `config.input` = [`BnInput::Relu`] it is batchnorm(relu(x)) in one op.
pub fn batch_norm(
    tape: &Tape,
    x: &Var,
    gamma: &Var,
    beta: &Var,
    state: &BatchNormState,
    config: BatchNormConfig,
) -> Result<Var> {
    let gpu = tape.gpu();
    let mode = config.mode(tape.mode());
    let stats = batchnorm_statistics(gpu, &x.value, state, config, mode)?;
    let input = config.input;
    let y = batchnorm_forward(gpu, &x.value, &gamma.value, &beta.value, &stats, input)?;
    let (xs, gs) = (x.value.clone(), gamma.value.clone());
    Ok(tape.record(y, &[x, gamma, beta], move |gpu, dy, grads| {
        let saved = BnSaved {
            x: &xs,
            gamma: &gs,
            stats: &stats,
        };
        let wanted = BnGrads {
            dx: grads[0].as_ref(),
            dgamma: grads[1].as_ref(),
            dbeta: grads[2].as_ref(),
        };
        batchnorm_backward(gpu, &saved, dy, mode, input, wanted)
    }))
}

/// Plain-loop f64 reference over [N, C, plane] data.
pub mod cpu {
    use super::BatchNormConfig;

    /// (mean, biased variance) per channel.
    pub fn batch_stats(x: &[f64], n: usize, c: usize, plane: usize) -> (Vec<f64>, Vec<f64>) {
        let m = (n * plane) as f64;
        let mut mean = vec![0.0; c];
        let mut var = vec![0.0; c];
        for ch in 0..c {
            for s in 0..n {
                for p in 0..plane {
                    mean[ch] += x[(s * c + ch) * plane + p];
                }
            }
            mean[ch] /= m;
            for s in 0..n {
                for p in 0..plane {
                    var[ch] += (x[(s * c + ch) * plane + p] - mean[ch]).powi(2);
                }
            }
            var[ch] /= m;
        }
        (mean, var)
    }

    /// y for given statistics.
    #[allow(clippy::too_many_arguments)] // the reference mirrors the formula's symbols one by one
    pub fn forward_with(
        x: &[f64],
        gamma: &[f64],
        beta: &[f64],
        mean: &[f64],
        var: &[f64],
        eps: f64,
        c: usize,
        plane: usize,
    ) -> Vec<f64> {
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = (i / plane) % c;
                gamma[ch] * (v - mean[ch]) / (var[ch] + eps).sqrt() + beta[ch]
            })
            .collect()
    }

    /// Training-mode forward: (y, new moving mean, new moving variance).
    #[allow(clippy::too_many_arguments)] // the reference mirrors the formula's symbols one by one
    pub fn forward_training(
        x: &[f64],
        gamma: &[f64],
        beta: &[f64],
        moving: (&[f64], &[f64]),
        config: BatchNormConfig,
        n: usize,
        c: usize,
        plane: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mean, var) = batch_stats(x, n, c, plane);
        let y = forward_with(x, gamma, beta, &mean, &var, config.epsilon as f64, c, plane);
        let mo = config.momentum as f64;
        // PyTorch's running variance is the unbiased one: var · M/(M − 1)
        let m = (n * plane) as f64;
        let unbias = match config.moving_variance {
            super::MovingVariance::Unbiased if m > 1.0 => m / (m - 1.0),
            _ => 1.0,
        };
        let mm = moving
            .0
            .iter()
            .zip(&mean)
            .map(|(a, b)| mo * a + (1.0 - mo) * b)
            .collect();
        let mv = moving
            .1
            .iter()
            .zip(&var)
            .map(|(a, b)| mo * a + (1.0 - mo) * b * unbias)
            .collect();
        (y, mm, mv)
    }

    /// Backward with fixed statistics (inference, or a frozen batch norm):
    /// (dx, dγ, dβ) with dx = dy·γ/√(var + ε), dγ = Σ dy·x̂, dβ = Σ dy.
    #[allow(clippy::too_many_arguments)] // the reference mirrors the formula's symbols one by one
    pub fn backward_fixed(
        x: &[f64],
        gamma: &[f64],
        dy: &[f64],
        mean: &[f64],
        var: &[f64],
        eps: f64,
        c: usize,
        plane: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut dx = vec![0.0; x.len()];
        let (mut dg, mut db) = (vec![0.0; c], vec![0.0; c]);
        for (i, (&v, &g)) in x.iter().zip(dy).enumerate() {
            let ch = (i / plane) % c;
            let invstd = 1.0 / (var[ch] + eps).sqrt();
            dx[i] = g * gamma[ch] * invstd;
            dg[ch] += g * (v - mean[ch]) * invstd;
            db[ch] += g;
        }
        (dx, dg, db)
    }

    /// Training-mode backward: (dx, dγ, dβ), differentiating through the
    /// batch mean and variance.
    #[allow(clippy::too_many_arguments)] // the reference mirrors the formula's symbols one by one
    pub fn backward_training(
        x: &[f64],
        gamma: &[f64],
        dy: &[f64],
        eps: f64,
        n: usize,
        c: usize,
        plane: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mean, var) = batch_stats(x, n, c, plane);
        let m = (n * plane) as f64;
        let mut dgamma = vec![0.0; c];
        let mut dbeta = vec![0.0; c];
        let idx = |s: usize, ch: usize, p: usize| (s * c + ch) * plane + p;
        for ch in 0..c {
            let invstd = 1.0 / (var[ch] + eps).sqrt();
            for s in 0..n {
                for p in 0..plane {
                    let i = idx(s, ch, p);
                    dbeta[ch] += dy[i];
                    dgamma[ch] += dy[i] * (x[i] - mean[ch]) * invstd;
                }
            }
        }
        let mut dx = vec![0.0; x.len()];
        for ch in 0..c {
            let invstd = 1.0 / (var[ch] + eps).sqrt();
            for s in 0..n {
                for p in 0..plane {
                    let i = idx(s, ch, p);
                    let xhat = (x[i] - mean[ch]) * invstd;
                    dx[i] = gamma[ch] * invstd * (dy[i] - dbeta[ch] / m - xhat * dgamma[ch] / m);
                }
            }
        }
        (dx, dgamma, dbeta)
    }

    /// [`BnInput::Relu`]: the batch norm of relu(z) (relu's own reference).
    pub fn relu_input(z: &[f64]) -> Vec<f64> {
        crate::ops::relu::cpu::relu_forward(z)
    }

    /// [`BnInput::Relu`] backward: the gradient of relu(z) masked to the
    /// gradient of z (0 at the kink), by relu's own reference.
    pub fn relu_input_backward(z: &[f64], dx: &[f64]) -> Vec<f64> {
        crate::ops::relu::cpu::relu_backward(z, dx)
    }
}
