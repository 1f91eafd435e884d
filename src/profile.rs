//! `postergrad profile`: training steps of a model on random data with every
//! kernel timed (GPU timestamp queries, or the wall clock per submission
//! where the adapter has none), summed per kernel, beside the step's wall
//! time, its effective GFLOP/s and the share of the adapter's own peak.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Timer};
use crate::nn::{LayerSpec, Model, ModelKind};
use crate::ops::conv2d::{BackwardWeight, ConvGeometry, Forward, BACKWARD_INPUT};
use crate::ops::{Adam, AdamConfig, Conv2dConfig};
use crate::rng::Rng;
use crate::shaders::Precision;
use crate::tape::{Mode, Tape};
use crate::tensor::Tensor;
use std::time::Instant;

/// What to profile.
#[derive(Clone, Copy, Debug)]
pub struct ProfileConfig {
    pub model: ModelKind,
    pub size: usize,
    pub batch: usize,
    /// Timed steps, after one untimed warm-up step (compilation, allocation).
    pub steps: usize,
    pub labels: usize,
    pub pass: Pass,
}

/// Which pass a profiled step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    /// Forward, BCE, backward, Adam: a training step.
    #[default]
    Training,
    /// The forward alone in inference mode, its output read back: what
    /// scoring a batch (or extracting a frozen backbone's features) costs.
    Inference,
}

impl std::str::FromStr for Pass {
    type Err = Error;
    fn from_str(s: &str) -> Result<Pass> {
        match s {
            "training" => Ok(Pass::Training),
            "inference" => Ok(Pass::Inference),
            _ => Err(Error::Config {
                what: "--pass".into(),
                message: format!("unknown pass `{s}`; choose training or inference"),
            }),
        }
    }
}

/// One kernel's total over the timed steps, per step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelRow {
    pub name: String,
    pub calls: f64,
    pub ms: f64,
    pub share: f64,
    /// Bytes of the buffers its dispatches bound, per step.
    pub bytes: f64,
    /// Convolution / dense FLOP it computes per step (0 for the others).
    pub flop: f64,
    /// `bytes` over `ms`: the bandwidth of the memory-bound kernels.
    pub gb_per_s: f64,
    /// `flop` over `ms`, for the compute-bound kernels (None for the others).
    pub gflops: Option<f64>,
}

/// The profiler's result (`--json` prints it).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProfileReport {
    pub adapter: String,
    pub timer: String,
    pub model: String,
    pub pass: Pass,
    pub size: usize,
    pub batch: usize,
    pub steps: usize,
    /// Wall time of one step (training: forward, backward, Adam, loss read;
    /// inference: forward, probabilities read).
    pub step_ms: f64,
    pub ms_per_sample: f64,
    /// Sum of the kernel times of one step.
    pub kernel_ms: f64,
    /// How the kernels that read through `tex_at` (conv forward, 3×3 weight
    /// gradient, batch-norm backward) get their inputs on this device:
    /// "texture copies" (f32) or "storage buffers" (f64).
    pub input_reads: String,
    /// The kernel variants this adapter runs for the model's 3×3 stride-1
    /// convolutions, and why.
    pub conv_kernels: String,
    /// Texture copies per step and the megabytes they move (recorded between
    /// the kernels; their time is in `step_ms`, not in `kernel_ms`).
    pub texture_copies: f64,
    pub texture_copy_mb: f64,
    /// Convolution and dense FLOP of one step (forward + both backward
    /// products; a multiply-add counts 2), per sample.
    pub gflop_per_sample: f64,
    /// Those FLOP over the step's wall time.
    pub gflops: f64,
    /// The adapter's register-only multiply-add rate (`peak_fma`).
    pub peak_gflops: f64,
    pub kernels: Vec<KernelRow>,
}

/// Convolution and dense FLOP of one training step per sample: forward,
/// input gradient (not for the first layer, whose input is the image) and
/// weight gradient — the sum of [`kernel_flop`] for one sample.
pub fn step_flop_per_sample(model: ModelKind, size: usize, labels: usize) -> Result<f64> {
    Ok(flop_by_kernel(model, size, labels, 1, &|_| {
        (Forward::Strips, BackwardWeight::Tiles, String::new())
    })?
    .iter()
    .map(|(_, f)| f)
    .sum())
}

/// Convolution and dense FLOP of one inference pass per sample.
pub fn forward_flop_per_sample(model: ModelKind, size: usize, labels: usize) -> Result<f64> {
    Ok(flop_by_kernel(model, size, labels, 1, &|_| {
        (Forward::Strips, BackwardWeight::Tiles, String::new())
    })?
    .iter()
    .filter(|(k, _)| k == "conv2d_forward" || k.starts_with("dense_forward"))
    .map(|(_, f)| f)
    .sum())
}

/// The convolution and dense FLOP of one training step of `batch` samples,
/// per kernel (entry point): which kernel computes each product follows the
/// ops' own choices on this adapter (the forward's variant from
/// [`Forward::for_geometry`], which also runs stride-1 backward-input; the
/// weight gradient's from [`BackwardWeight::for_geometry`]).
pub fn kernel_flop(
    gpu: &Gpu,
    model: ModelKind,
    size: usize,
    labels: usize,
    batch: usize,
) -> Result<Vec<(String, f64)>> {
    flop_by_kernel(model, size, labels, batch, &|g| {
        (
            Forward::for_geometry(gpu, g),
            BackwardWeight::for_geometry(gpu, g),
            crate::ops::conv2d::backward_input_row(gpu, g),
        )
    })
}

pub use crate::gpu::row_name;

fn flop_by_kernel(
    model: ModelKind,
    size: usize,
    labels: usize,
    batch: usize,
    kernels: &dyn Fn(&ConvGeometry) -> (Forward, BackwardWeight, String),
) -> Result<Vec<(String, f64)>> {
    let layers = model.describe(size, labels)?;
    let mut input = vec![3usize, size, size];
    let mut out: Vec<(String, f64)> = Vec::new();
    let mut add = |name: String, f: f64| match out.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => *v += f,
        None => out.push((name, f)),
    };
    if let Some(spec) = model.resnet() {
        for (i, g) in spec.convs(size, batch)?.iter().enumerate() {
            let f = g.flops() as f64;
            let (forward, weight, dx) = kernels(g);
            add(forward.row(), f);
            if i > 0 {
                // the stem's input is the image: no input gradient
                add(dx, f);
            }
            add(weight.row(), f);
        }
        let f = 2.0 * (batch * spec.features() * labels) as f64;
        for k in [
            "dense_forward",
            "dense_backward_input",
            "dense_backward_weight",
        ] {
            add(k.into(), f);
        }
        return Ok(out);
    }
    for (i, l) in layers.iter().enumerate() {
        match &l.spec {
            LayerSpec::Conv2d {
                filters, kernel, ..
            } => {
                let f = 2.0
                    * (batch * filters * l.output[1] * l.output[2] * input[0] * kernel * kernel)
                        as f64;
                let g = ConvGeometry::new(
                    &[batch, input[0], input[1], input[2]],
                    &[*filters, input[0], *kernel, *kernel],
                    Conv2dConfig::default(),
                )?;
                let (forward, weight, _) = kernels(&g);
                add(forward.kernel().into(), f);
                if i > 0 {
                    // stride 1: dx is the forward kernel with the roles swapped
                    add(row_name(forward.kernel(), Some(BACKWARD_INPUT)), f);
                }
                add(weight.kernel().into(), f);
            }
            LayerSpec::Dense { units, .. } => {
                let f = 2.0 * (batch * units * input.iter().product::<usize>()) as f64;
                add("dense_forward".into(), f);
                if i > 0 {
                    add("dense_backward_input".into(), f);
                }
                add("dense_backward_weight".into(), f);
            }
            _ => {}
        }
        input = l.output.clone();
    }
    Ok(out)
}

pub use crate::ops::peak::peak_gflops;

/// Training steps of a model on one fixed random batch (uniform pixels,
/// 10 % positive labels): what `profile` and `examples/poster_step.rs` time.
pub struct RandomStep<'g> {
    gpu: &'g Gpu,
    pub model: Model,
    adam: Adam,
    x: Tensor,
    y: Tensor,
}

impl<'g> RandomStep<'g> {
    pub fn new(
        gpu: &'g Gpu,
        kind: ModelKind,
        size: usize,
        batch: usize,
        labels: usize,
    ) -> Result<RandomStep<'g>> {
        let model = Model::new(gpu, kind, size, labels, 0)?;
        let adam = Adam::new(gpu, &model.params(), AdamConfig::default())?;
        let mut rng = Rng::new(1);
        let x = Tensor::from_slice(
            gpu,
            [batch, 3, size, size],
            &rng.vec_f32(batch * 3 * size * size, 0.0, 1.0),
        )?;
        let y: Vec<f32> = (0..batch * labels)
            .map(|_| (rng.uniform() < 0.1) as u8 as f32)
            .collect();
        let y = Tensor::from_slice(gpu, [batch, labels], &y)?;
        Ok(RandomStep {
            gpu,
            model,
            adam,
            x,
            y,
        })
    }

    /// The forward alone in inference mode; returns the first probability,
    /// read back with the rest (which waits for the GPU).
    pub fn infer(&mut self) -> Result<f32> {
        let tape = Tape::new(self.gpu, Mode::Inference);
        let p = self
            .model
            .forward(&tape, &tape.constant(self.x.clone()), 0)?;
        Ok(p.value.to_vec(self.gpu)?[0])
    }

    /// One step (forward, BCE, backward, Adam) with dropout step `step`;
    /// returns the loss, read back (which waits for the GPU).
    pub fn step(&mut self, step: u32) -> Result<f32> {
        let tape = Tape::new(self.gpu, Mode::Training);
        let loss = self.model.loss(
            &tape,
            &tape.constant(self.x.clone()),
            &tape.constant(self.y.clone()),
            step,
        )?;
        tape.backward(&loss)?;
        self.adam.step(self.gpu, &self.model.params())?;
        Ok(loss.value.to_vec(self.gpu)?[0])
    }
}

/// Runs 1 + `steps` training steps and times every kernel of the last `steps`.
pub fn profile(gpu: &Gpu, config: ProfileConfig) -> Result<ProfileReport> {
    if config.batch == 0 || config.steps == 0 {
        return Err(Error::Config {
            what: "profile".into(),
            message: "--batch and --steps must be at least 1".into(),
        });
    }
    let mut run = RandomStep::new(gpu, config.model, config.size, config.batch, config.labels)?;
    let once = |run: &mut RandomStep, i: u32| match config.pass {
        Pass::Training => run.step(i),
        Pass::Inference => run.infer(),
    };
    once(&mut run, 0)?;
    let mut wall = 0.0;
    let mut rows: Vec<KernelRow> = Vec::new();
    let mut timer = Timer::Timestamps;
    let before = gpu.stats();
    for i in 1..=config.steps {
        gpu.profile_begin()?;
        let t = Instant::now();
        once(&mut run, i as u32)?;
        wall += t.elapsed().as_secs_f64();
        let prof = gpu.profile_end()?;
        timer = prof.timer;
        for d in prof.dispatches {
            let name = row_name(d.kernel, d.pass);
            match rows.iter_mut().find(|r| r.name == name) {
                Some(r) => {
                    r.calls += 1.0;
                    r.ms += d.seconds * 1e3;
                    r.bytes += d.bytes as f64;
                }
                None => rows.push(KernelRow {
                    name,
                    calls: 1.0,
                    ms: d.seconds * 1e3,
                    share: 0.0,
                    bytes: d.bytes as f64,
                    flop: 0.0,
                    gb_per_s: 0.0,
                    gflops: None,
                }),
            }
        }
    }
    let n = config.steps as f64;
    let after = gpu.stats();
    let kernel_ms: f64 = rows.iter().map(|r| r.ms).sum::<f64>() / n;
    let mut flop_by_kernel =
        kernel_flop(gpu, config.model, config.size, config.labels, config.batch)?;
    if config.pass == Pass::Inference {
        // the forward kernels' own rows (no backward-input share)
        flop_by_kernel.retain(|(k, _)| {
            k.starts_with("conv2d_forward") && !k.contains('(') || k.starts_with("dense_forward")
        });
    }
    for r in &mut rows {
        r.calls /= n;
        r.ms /= n;
        r.bytes /= n;
        r.share = r.ms / kernel_ms.max(1e-12);
        r.gb_per_s = r.bytes / (r.ms * 1e-3).max(1e-12) / 1e9;
        if let Some((_, f)) = flop_by_kernel.iter().find(|(k, _)| *k == r.name) {
            r.flop = *f;
            r.gflops = Some(f / (r.ms * 1e-3).max(1e-12) / 1e9);
        }
    }
    rows.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    let step_ms = wall / n * 1e3;
    let (size, batch) = (config.size, config.batch);
    let flop = match config.pass {
        Pass::Training => step_flop_per_sample(config.model, size, config.labels)?,
        Pass::Inference => forward_flop_per_sample(config.model, size, config.labels)?,
    };
    let gflops = flop * batch as f64 / (step_ms * 1e-3) / 1e9;
    Ok(ProfileReport {
        adapter: gpu.adapter().to_string(),
        timer: match timer {
            Timer::Timestamps => "GPU timestamp queries".into(),
            Timer::WallClock => {
                "wall clock per submission (the adapter has no timestamp queries)".into()
            }
        },
        model: config.model.name().into(),
        pass: config.pass,
        size,
        batch,
        steps: config.steps,
        step_ms,
        ms_per_sample: step_ms / batch as f64,
        kernel_ms,
        input_reads: match gpu.precision() {
            Precision::F32 => "texture copies".into(),
            Precision::F64 => "storage buffers".into(),
        },
        conv_kernels: conv_kernels(gpu)?,
        texture_copies: (after.texture_copies - before.texture_copies) as f64 / n,
        texture_copy_mb: (after.texture_copy_bytes - before.texture_copy_bytes) as f64 / n / 1e6,
        gflop_per_sample: flop / 1e9,
        gflops,
        peak_gflops: peak_gflops(gpu)?,
        kernels: rows,
    })
}

/// The kernels the ops pick on this adapter for a 3×3 stride-1 convolution
/// (every conv layer of the poster model), as `profile` prints them.
pub fn conv_kernels(gpu: &Gpu) -> Result<String> {
    let few = ConvGeometry::new(&[1, 3, 3, 3], &[1, 3, 3, 3], Conv2dConfig::default())?;
    let many = ConvGeometry::new(&[1, 16, 3, 3], &[1, 16, 3, 3], Conv2dConfig::default())?;
    let (first, rest) = (
        BackwardWeight::for_geometry(gpu, &few),
        BackwardWeight::for_geometry(gpu, &many),
    );
    let (slices, _) = crate::ops::dense::forward_k_split(gpu, 32, 51_200, 128);
    Ok(format!(
        "3×3 forward and backward-input {} ({}), weight gradient {} over {}; dense_forward at 32×128 over k = 51,200: {} slice(s) of k",
        Forward::for_geometry(gpu, &many).kernel(),
        if gpu.adapter().subgroups {
            "subgroups of 8 or more"
        } else {
            "no subgroups"
        },
        if first == rest {
            first.kernel().to_string()
        } else {
            format!(
                "{} (3 input channels), {} (16 or more)",
                first.kernel(),
                rest.kernel()
            )
        },
        crate::ops::conv2d::weight_chunk_rule(gpu),
        slices
    ))
}

/// The report as a table.
pub fn table(r: &ProfileReport) -> String {
    let mut out = format!(
        "adapter: {}\ntimer: {}\nkernels: {}\n{} at {}×{}, batch {}, {} timed {} step(s) after 1 warm-up\n\n",
        r.adapter,
        r.timer,
        r.conv_kernels,
        r.model,
        r.size,
        r.size,
        r.batch,
        r.steps,
        match r.pass {
            Pass::Training => "training",
            Pass::Inference => "inference",
        }
    );
    // the name column as wide as the longest kernel name
    let width = r
        .kernels
        .iter()
        .map(|k| k.name.len())
        .max()
        .unwrap_or(0)
        .max(28);
    out += &format!(
        "{:<width$} {:>6} {:>11} {:>7} {:>9}\n",
        "kernel", "calls", "ms/step", "share", "rate"
    );
    for k in &r.kernels {
        // compute-bound kernels (conv, dense products) in GFLOP/s, the
        // others in GB/s of the buffers they bind
        let rate = match k.gflops {
            Some(g) => format!("{g:.2} GFLOP/s"),
            None => format!("{:.2} GB/s", k.gb_per_s),
        };
        out += &format!(
            "{:<width$} {:>6.0} {:>11.2} {:>6.1}%  {rate}\n",
            k.name,
            k.calls,
            k.ms,
            100.0 * k.share
        );
    }
    out += &format!(
        "\nkernels {:.1} ms of a {:.1} ms step ({:.1} ms/sample, {:.2} samples/s)\n",
        r.kernel_ms,
        r.step_ms,
        r.ms_per_sample,
        1e3 / r.ms_per_sample.max(1e-12)
    );
    out += &format!(
        "inputs of the conv and dense kernels, the batch-norm statistics and backward, bnpool, Adam and the non-finite guard: {}; {:.0} texture copies per step ({:.1} MB), timed with the rest of the step outside the kernels ({:.1} ms)\n",
        r.input_reads,
        r.texture_copies,
        r.texture_copy_mb,
        r.step_ms - r.kernel_ms
    );
    out += &format!(
        "conv + dense work {:.3} GFLOP/sample → {:.2} GFLOP/s; adapter peak (peak_fma) {:.1} GFLOP/s: {:.1}% of peak\n",
        r.gflop_per_sample,
        r.gflops,
        r.peak_gflops,
        100.0 * r.gflops / r.peak_gflops
    );
    out
}
