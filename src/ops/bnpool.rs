//! bnpool: batch norm → 2×2 max-pool at stride 2 → dropout, fused into one
//! op — the tail of every conv block of the poster model (Keras's
//! `BatchNormalization`, `MaxPool2D()`, `Dropout`). The same function as
//! [`batch_norm`](super::batch_norm), [`maxpool`](super::maxpool) and
//! [`dropout`](super::dropout) in a row (same statistics, tie rule and
//! masks), but neither the normalised tensor nor the pooled one is ever
//! stored: the forward reads z once and writes the pooled output, the
//! backward finds each window's maximum again from z. Shaders
//! `bnpool_forward`, `bnpool_backward_partials`, `bnpool_backward_input`
//! (+ batchnorm's `batchnorm_partials`, `batchnorm_stats`,
//! `batchnorm_backward_params` and `reduce_partials`); page
//! `docs/kernels/bnpool.md`.

use crate::error::{Error, Result};
use crate::gpu::ReadWindow;
use crate::gpu::{Bind, Gpu};
use crate::ops::batchnorm::{backward_params, statistics_keeping_copy};
use crate::ops::reduce::reduce_partials;
use crate::ops::{BatchNormConfig, BatchNormState, BnInput, DropoutConfig};
use crate::tape::{GradWrite, Mode, Tape, Var};
use crate::tensor::Tensor;

/// The batch norm's settings (its `input` says whether the conv's relu is
/// fused in) and the dropout after the pool (`None`: no dropout).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct BnPoolConfig {
    pub batchnorm: BatchNormConfig,
    pub dropout: Option<DropoutConfig>,
}

crate::uniform! {
    /// Uniforms of the bnpool kernels.
    pub struct BnPoolParams {
        /// Samples in the batch window.
        pub n: u32,
        pub c: u32,
        pub h: u32,
        pub w: u32,
        /// Pooled height and width: ⌊H/2⌋, ⌊W/2⌋.
        pub oh: u32,
        pub ow: u32,
        /// First element of the window in z's texture copy.
        pub z_base: u32,
        /// First element of the window in p (forward: the bound output window;
        /// backward: dp's texture copy).
        pub p_base: u32,
        /// 1: z is the pre-activation and the batch norm normalises relu(z).
        pub relu_input: u32,
        /// 1 in training mode (batch statistics), 0 in inference.
        pub training: u32,
        /// M = N·H·W, the values per channel over the whole batch.
        pub count: u32,
        /// Quads (four windows of a pooled row) per chunk of the split sums.
        pub chunk: u32,
        /// Index of this window's first chunk among all chunks.
        pub chunk_offset: u32,
        /// First element of the bound dz window.
        pub dz_base: u32,
        /// Global index of the window's first pooled element (dropout's hash).
        pub first: u32,
        /// 1: dropout after the pool.
        pub dropout: u32,
        pub seed: u32,
        pub step: u32,
        pub rate: f32,
        /// 1 / (1 − rate).
        pub scale: f32,
        pub _pad: [u32; 4],
    }
}

/// Quads per chunk of `bnpool_backward_partials` (1,024 windows).
const CHUNK: usize = 256;

/// The chunk in force: [`CHUNK`], or the device's tuning
/// (`Tuning::bnpool_chunk`: the gradient checks' small-limits pass makes
/// chunks small enough that a small tensor's sums need a folded grid).
fn chunk(gpu: &Gpu) -> usize {
    gpu.tuning().bnpool_chunk.unwrap_or(CHUNK)
}

/// Bytes of the channel window: the kernels' `chan`, one uniform binding.
const CHANNEL_WINDOW_BYTES: usize = 65536;

/// The per-channel values the bnpool kernels read, gathered into one 64 KiB
/// tensor that they bind as a uniform buffer (`chan` in the shaders): the
/// statistics (mean, invstd) at 0 and C, γ at 2C, β at 3C;
/// [`bnpool_backward`] copies Σdy and Σdy·x̂ to 4C and 5C once it has them.
/// A uniform window because on lavapipe a storage load at a per-invocation
/// index is a loop over the SIMD lanes through memory, far costlier than a
/// uniform load (docs/kernels/bnpool.md has the measurement).
fn channel_window(gpu: &Gpu, stats: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let c = gamma.numel();
    let len = CHANNEL_WINDOW_BYTES / gpu.real_bytes();
    if 6 * c > len {
        return Err(Error::Shape {
            op: "bnpool",
            what: format!(
                "bnpool reads six values per channel from one 64 KiB uniform window: \
                 at most {} channels in {}; use batch_norm, maxpool and dropout one \
                 by one for wider layers",
                len / 6,
                gpu.precision()
            ),
            got: gamma.shape().clone(),
            expected: format!("[≤ {}]", len / 6),
        });
    }
    stats.expect_shape(
        "bnpool",
        "stats must be [2, channels] (mean, invstd)",
        &[2, c],
    )?;
    let window = Tensor::uninit(gpu, [len], "bnpool channel window")?;
    gpu.copy_into(stats, &window, 0)?;
    gpu.copy_into(gamma, &window, 2 * c)?;
    gpu.copy_into(beta, &window, 3 * c)?;
    Ok(window)
}

/// The shapes of one call: z [n, c, h, w] and the pooled [n, c, oh, ow].
#[derive(Clone, Copy, Debug)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    fn new(z: &Tensor) -> Result<Geometry> {
        match *z.dims() {
            [n, c, h, w] if h >= 2 && w >= 2 => Ok(Geometry {
                n,
                c,
                h,
                w,
                oh: h / 2,
                ow: w / 2,
            }),
            _ => Err(Error::Shape {
                op: "bnpool",
                what: "batch norm + 2×2 max-pool needs an input [batch, channels, ≥2, ≥2]".into(),
                got: z.shape().clone(),
                expected: "[batch, channels, ≥2, ≥2]".into(),
            }),
        }
    }
    fn z_per_sample(&self) -> usize {
        self.c * self.h * self.w
    }
    fn p_per_sample(&self) -> usize {
        self.c * self.oh * self.ow
    }
    /// Quads (four neighbouring windows of a pooled row) per sample and channel.
    fn quads_per_plane(&self) -> usize {
        self.oh * self.ow.div_ceil(4)
    }
    /// Sample ranges whose z fits one binding and one texture copy.
    fn ranges(&self, gpu: &Gpu) -> Vec<std::ops::Range<usize>> {
        gpu.batch_chunks(self.n, &[(self.z_per_sample() * gpu.real_bytes()) as u64])
    }
    fn params(&self, config: &BnPoolConfig, mode: Mode) -> BnPoolParams {
        let d = config.dropout.unwrap_or(DropoutConfig {
            rate: 0.0,
            seed: 0,
            step: 0,
        });
        BnPoolParams {
            n: self.n as u32,
            c: self.c as u32,
            h: self.h as u32,
            w: self.w as u32,
            oh: self.oh as u32,
            ow: self.ow as u32,
            z_base: 0,
            p_base: 0,
            relu_input: (config.batchnorm.input == BnInput::Relu) as u32,
            training: (mode == Mode::Training) as u32,
            count: (self.n * self.h * self.w) as u32,
            chunk: 0, // set by bnpool_backward_partials, the kernel that reads it
            chunk_offset: 0,
            dz_base: 0,
            first: 0,
            dropout: config.dropout.is_some() as u32,
            seed: d.seed,
            step: d.step,
            rate: d.rate,
            scale: 1.0 / (1.0 - d.rate),
            _pad: [0; 4],
        }
    }
}

/// The pooled output [n, c, ⌊h/2⌋, ⌊w/2⌋] of z [n, c, h, w]: the batch norm
/// with `stats` (mean, 1/√(var + ε); see
/// [`batchnorm_statistics`](crate::ops::batchnorm::batchnorm_statistics)), the max
/// of each 2×2 window, then `config.dropout`'s mask.
pub fn bnpool_forward(
    gpu: &Gpu,
    z: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    stats: &Tensor,
    config: BnPoolConfig,
) -> Result<Tensor> {
    let g = checked(z, gamma, beta, &config)?;
    forward_from(gpu, g, z, gamma, beta, stats, config, None)
}

/// The geometry of z, after checking γ, β and the dropout rate against it.
fn checked(z: &Tensor, gamma: &Tensor, beta: &Tensor, config: &BnPoolConfig) -> Result<Geometry> {
    let g = Geometry::new(z)?;
    gamma.expect_shape("bnpool", "gamma must be [channels]", &[g.c])?;
    beta.expect_shape("bnpool", "beta must be [channels]", &[g.c])?;
    if let Some(d) = &config.dropout {
        crate::ops::dropout::check(d)?;
    }
    Ok(g)
}

/// [`bnpool_forward`], reading the last sample range of z from `kept` when
/// given (the copy the statistics read, see `statistics_keeping_copy`); the
/// ranges run backwards, so that copy is used first.
#[allow(clippy::too_many_arguments)] // the forward's geometry, inputs and the statistics' kept copy, passed on once
fn forward_from(
    gpu: &Gpu,
    g: Geometry,
    z: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    stats: &Tensor,
    config: BnPoolConfig,
    mut kept: Option<ReadWindow>,
) -> Result<Tensor> {
    let chan = channel_window(gpu, stats, gamma, beta)?;
    let p = Tensor::uninit(gpu, [g.n, g.c, g.oh, g.ow], "bnpool_forward")?;
    let base = g.params(&config, Mode::Inference);
    let (zs, ps) = (g.z_per_sample(), g.p_per_sample());
    for r in g.ranges(gpu).into_iter().rev() {
        let zt = match kept.take() {
            Some(copy) => copy,
            None => gpu.read_window(z, r.start * zs, r.len() * zs)?,
        };
        let (pw, pb) = gpu.window(&p, r.start * ps, r.len() * ps);
        let params = BnPoolParams {
            n: r.len() as u32,
            z_base: zt.base(),
            p_base: pb,
            first: (r.start * ps) as u32,
            ..base
        };
        gpu.dispatch_bound(
            "bnpool_forward",
            &params,
            &[zt.bind(), Bind::whole(&chan), pw],
            gpu.grid_1d(r.len() * g.c * g.quads_per_plane(), 256),
        )?;
    }
    Ok(p)
}

/// Gradients of bnpool from dp, the gradient of the pooled output: dz (the
/// batch norm's training or inference rule; with the relu fused in, the
/// gradient of the pre-activation), dγ and dβ; each accumulates (+=), except
/// dz with [`GradWrite::Write`]: then every element of dz is written.
pub fn bnpool_backward(
    gpu: &Gpu,
    saved: &BnPoolSaved,
    dp: &Tensor,
    mode: Mode,
    config: BnPoolConfig,
    grads: BnPoolGrads,
) -> Result<()> {
    let z = saved.z;
    let g = Geometry::new(z)?;
    dp.expect_shape(
        "bnpool_backward",
        "dp must match the pooled output",
        &[g.n, g.c, g.oh, g.ow],
    )?;
    if let Some((dz, _)) = grads.dz {
        dz.expect_shape("bnpool_backward", "dz must match the input", z.dims())?;
    }
    let base = g.params(&config, mode);
    let chan = channel_window(gpu, saved.stats, saved.gamma, saved.beta)?;
    let (sums, kept) = bnpool_backward_partials(gpu, &g, &base, z, dp, &chan)?;
    if let Some((dz, write)) = grads.dz {
        gpu.copy_into(&sums, &chan, 4 * g.c)?;
        bnpool_backward_input(gpu, &g, &base, z, dp, &chan, kept, dz, write)?;
    }
    backward_params(gpu, &sums, g.c, grads.dgamma, grads.dbeta)
}

/// What bnpool's backward reads: the conv output z and the batch norm's
/// parameters and statistics.
pub struct BnPoolSaved<'t> {
    pub z: &'t Tensor,
    pub gamma: &'t Tensor,
    pub beta: &'t Tensor,
    pub stats: &'t Tensor,
}

/// The gradients bnpool's backward writes, each only where asked for: dz
/// added to or written ([`GradWrite`]), dγ and dβ written.
#[derive(Default)]
pub struct BnPoolGrads<'t> {
    pub dz: Option<(&'t Tensor, GradWrite)>,
    pub dgamma: Option<&'t Tensor>,
    pub dbeta: Option<&'t Tensor>,
}

/// Texture copies of z and dp of one sample range, kept from the partial
/// sums for the input gradient.
type KeptCopies<'t> = Option<(ReadWindow<'t>, ReadWindow<'t>)>;

/// `bnpool_backward_partials`: Σ dy and Σ dy·x̂ per channel, split over
/// chunks then reduced into `[2, C]`. z and dp are read through texture
/// copies; the last range's are returned for the input gradient, which
/// walks the ranges backwards (as batchnorm does).
fn bnpool_backward_partials<'t>(
    gpu: &Gpu,
    g: &Geometry,
    base: &BnPoolParams,
    z: &'t Tensor,
    dp: &'t Tensor,
    chan: &Tensor,
) -> Result<(Tensor, KeptCopies<'t>)> {
    let (zs, ps) = (g.z_per_sample(), g.p_per_sample());
    let ranges = g.ranges(gpu);
    // chunks of the split sums per range, and each range's first chunk
    let chunk = chunk(gpu);
    let range_chunks: Vec<usize> = ranges
        .iter()
        .map(|r| (r.len() * g.quads_per_plane()).div_ceil(chunk))
        .collect();
    let mut chunk_offsets = Vec::with_capacity(ranges.len());
    let mut chunks = 0;
    for &k in &range_chunks {
        chunk_offsets.push(chunks);
        chunks += k;
    }
    let sums = Tensor::zeros(gpu, [2, g.c], "bnpool sums")?;
    let partial = Tensor::uninit(gpu, [chunks, 2, g.c], "bnpool_backward_partials")?;
    let mut kept = None;
    for ((r, &k), &offset) in ranges.iter().zip(&range_chunks).zip(&chunk_offsets) {
        drop(kept.take()); // the previous range's textures go back to the pool first
        let zt = gpu.read_window(z, r.start * zs, r.len() * zs)?;
        let dpt = gpu.read_window(dp, r.start * ps, r.len() * ps)?;
        let params = BnPoolParams {
            n: r.len() as u32,
            z_base: zt.base(),
            p_base: dpt.base(),
            first: (r.start * ps) as u32,
            chunk: chunk as u32,
            chunk_offset: offset as u32,
            ..*base
        };
        gpu.dispatch_bound(
            "bnpool_backward_partials",
            &params,
            &[
                zt.bind(),
                dpt.bind(),
                Bind::whole(chan),
                Bind::whole(&partial),
            ],
            gpu.grid_1d(k * g.c, 64),
        )?;
        kept = Some((zt, dpt));
    }
    reduce_partials(gpu, &partial, chunks, &sums)?;
    Ok((sums, kept))
}

/// `bnpool_backward_input`: dz from the sums (in the channel window),
/// range by range from the last, whose copies the partial sums kept.
#[allow(clippy::too_many_arguments)] // the backward's shared state, passed on once
fn bnpool_backward_input(
    gpu: &Gpu,
    g: &Geometry,
    base: &BnPoolParams,
    z: &Tensor,
    dp: &Tensor,
    chan: &Tensor,
    mut kept: KeptCopies,
    dz: &Tensor,
    write: GradWrite,
) -> Result<()> {
    let (zs, ps) = (g.z_per_sample(), g.p_per_sample());
    for r in g.ranges(gpu).iter().rev() {
        let (zt, dpt) = match kept.take() {
            Some(copies) => copies,
            None => (
                gpu.read_window(z, r.start * zs, r.len() * zs)?,
                gpu.read_window(dp, r.start * ps, r.len() * ps)?,
            ),
        };
        let (dzw, dzb) = gpu.window(dz, r.start * zs, r.len() * zs);
        let params = BnPoolParams {
            n: r.len() as u32,
            z_base: zt.base(),
            p_base: dpt.base(),
            dz_base: dzb,
            first: (r.start * ps) as u32,
            ..*base
        };
        let blocks = r.len() * g.c * g.h.div_ceil(2) * g.w.div_ceil(8);
        // writing dz (=) instead of adding into it is a pipeline constant
        gpu.dispatch_specialized(
            "bnpool_backward_input",
            match write {
                GradWrite::Write => &[("WRITE", 1.0)],
                GradWrite::Add => &[],
            },
            &params,
            &[zt.bind(), dpt.bind(), Bind::whole(chan), dzw],
            gpu.grid_1d(blocks, 256),
        )?;
    }
    Ok(())
}

/// bnpool on the tape: batch statistics (moving ones updated) and dropout in
/// training; moving statistics and no dropout in inference. Saves z and the
/// statistics.
pub fn bnpool(
    tape: &Tape,
    z: &Var,
    gamma: &Var,
    beta: &Var,
    state: &BatchNormState,
    config: BnPoolConfig,
) -> Result<Var> {
    let gpu = tape.gpu();
    if config.batchnorm.statistics != crate::ops::BnStatistics::FollowTape {
        // its kernels tie the statistics to the tape's mode (dropout only
        // while training); a frozen batch norm runs as batch_norm + maxpool
        return Err(crate::Error::Config {
            what: "bnpool".into(),
            message: "a frozen batch norm cannot run fused; use batch_norm then maxpool".into(),
        });
    }
    let mode = tape.mode();
    let (zv, gv, bv) = (&z.value, &gamma.value, &beta.value);
    let g = checked(zv, gv, bv, &config)?;
    let config = BnPoolConfig {
        dropout: config
            .dropout
            .filter(|d| mode == Mode::Training && d.rate > 0.0),
        ..config
    };
    // the statistics' copy of z (its last sample range) serves the forward too
    let (stats, kept) = statistics_keeping_copy(gpu, zv, state, config.batchnorm, mode)?;
    let p = forward_from(gpu, g, zv, gv, bv, &stats, config, kept)?;
    let (zs, gs, bs) = (z.value.clone(), gamma.value.clone(), beta.value.clone());
    Ok(
        tape.record_writing_first(p, &[z, gamma, beta], move |gpu, dp, grads, write| {
            let saved = BnPoolSaved {
                z: &zs,
                gamma: &gs,
                beta: &bs,
                stats: &stats,
            };
            let wanted = BnPoolGrads {
                dz: grads[0].as_ref().map(|dz| (dz, write)),
                dgamma: grads[1].as_ref(),
                dbeta: grads[2].as_ref(),
            };
            bnpool_backward(gpu, &saved, dp, mode, config, wanted)
        }),
    )
}

/// The f64 reference: batchnorm's, maxpool's and dropout's references in a
/// row (training mode: batch statistics).
pub mod cpu {
    use super::BnPoolConfig;
    use crate::ops::batchnorm::cpu as bn;
    use crate::ops::dropout::cpu as drop;
    use crate::ops::maxpool::cpu as pool;
    use crate::ops::{BnInput, MaxPoolConfig};

    /// The batch norm's input and output for z [n, c, h, w].
    fn normalised(
        z: &[f64],
        gamma: &[f64],
        beta: &[f64],
        dims: &[usize],
        config: &BnPoolConfig,
    ) -> (Vec<f64>, Vec<f64>) {
        let (n, c, plane) = (dims[0], dims[1], dims[2] * dims[3]);
        let v = match config.batchnorm.input {
            BnInput::Relu => bn::relu_input(z),
            BnInput::AsIs => z.to_vec(),
        };
        let (mean, var) = bn::batch_stats(&v, n, c, plane);
        let eps = config.batchnorm.epsilon as f64;
        let y = bn::forward_with(&v, gamma, beta, &mean, &var, eps, c, plane);
        (v, y)
    }

    pub fn forward(
        z: &[f64],
        gamma: &[f64],
        beta: &[f64],
        dims: &[usize],
        config: &BnPoolConfig,
    ) -> Vec<f64> {
        let (_, y) = normalised(z, gamma, beta, dims, config);
        let p = pool::maxpool_forward(&y, dims, MaxPoolConfig::default());
        match &config.dropout {
            Some(d) => drop::dropout_forward(&p, d),
            None => p,
        }
    }

    /// (dz, dγ, dβ) for the gradient dp of the output.
    pub fn backward(
        z: &[f64],
        gamma: &[f64],
        beta: &[f64],
        dims: &[usize],
        config: &BnPoolConfig,
        dp: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (n, c, plane) = (dims[0], dims[1], dims[2] * dims[3]);
        let (v, y) = normalised(z, gamma, beta, dims, config);
        let dpool = match &config.dropout {
            Some(d) => drop::dropout_backward(dp, d),
            None => dp.to_vec(),
        };
        let dy = pool::maxpool_backward(&y, dims, MaxPoolConfig::default(), &dpool);
        let eps = config.batchnorm.epsilon as f64;
        let (dx, dg, db) = bn::backward_training(&v, gamma, &dy, eps, n, c, plane);
        let dz = match config.batchnorm.input {
            BnInput::Relu => bn::relu_input_backward(z, &dx),
            BnInput::AsIs => dx,
        };
        (dz, dg, db)
    }
}
