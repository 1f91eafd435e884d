//! conv2d: y = conv(x, w) (+ b) in NCHW, cross-correlation with Keras's
//! `valid` or `same` padding or PyTorch's symmetric `padding=p`, any
//! stride, bias optional (torchvision's convs have none). x: [N, Cin, H, W],
//! w: [Cout, Cin, KH, KW], b: [Cout], y: [N, Cout, OH, OW].
//! Shaders `conv2d_forward` (+ `conv2d_pack_weights`; it also runs
//! backward-input, at other strides over dy spread out by
//! `conv2d_dilate`), `conv2d_backward_input` (the direct strided kernel,
//! a variant),
//! `conv2d_backward_weight`, `conv2d_backward_bias` (+ `reduce_partials`);
//! page `docs/kernels/conv2d.md`.

use crate::error::{Error, Result};
use crate::gpu::{Bind, Constants, Gpu};
use crate::ops::reduce::reduce_partials;
use crate::tape::{GradWrite, Tape, Var};
use crate::tensor::Tensor;
use std::fmt;

mod backward;
pub mod cpu;
mod forward;
pub mod gemm;

pub use backward::*;
pub use forward::*;

/// Keras's padding modes and PyTorch's explicit one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: OH = ⌊(H − KH)/s⌋ + 1.
    Valid,
    /// Zero padding so that OH = ⌈H/s⌉; the extra row/column goes at the
    /// bottom/right when the total is odd (as TensorFlow).
    Same,
    /// PyTorch's `padding=p`: p zero rows and columns on every side,
    /// OH = ⌊(H + 2p − KH)/s⌋ + 1. Unlike `Same`, a stride-2 conv of an
    /// even input starts its windows p rows above it (torchvision's ResNets).
    Explicit(usize),
}

impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Padding::Valid => f.write_str("valid"),
            Padding::Same => f.write_str("same"),
            Padding::Explicit(p) => write!(f, "p{p}"),
        }
    }
}

/// Stride and padding of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub stride: usize,
    pub padding: Padding,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            stride: 1,
            padding: Padding::Valid,
        }
    }
}

/// Every size of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub oh: usize,
    pub ow: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl ConvGeometry {
    /// Output size and padding for an input [n, cin, h, w] and a kernel
    /// [cout, cin, kh, kw]; an error names the op when the output would be empty.
    pub fn new(x: &[usize], w: &[usize], config: Conv2dConfig) -> Result<ConvGeometry> {
        let shape_err = |what: &str, got: &[usize], expected: String| Error::Shape {
            op: "conv2d",
            what: what.into(),
            got: crate::Shape(got.to_vec()),
            expected,
        };
        if x.len() != 4 {
            return Err(shape_err(
                "input must be [batch, channels, height, width]",
                x,
                "rank 4".into(),
            ));
        }
        if w.len() != 4 || w[1] != x[1] {
            return Err(shape_err(
                "kernel must be [out channels, in channels, kh, kw] with the input's channels",
                w,
                format!("[out, {}, kh, kw]", x[1]),
            ));
        }
        if config.stride == 0 {
            return Err(Error::Config {
                what: "conv2d stride".into(),
                message: "must be at least 1".into(),
            });
        }
        let (h, wd, kh, kw, s) = (x[2], x[3], w[2], w[3], config.stride);
        let (oh, ow, pad_top, pad_left) = match config.padding {
            Padding::Valid => {
                if h < kh || wd < kw {
                    return Err(shape_err(
                        &format!(
                            "a {kh}×{kw} valid convolution needs an input of at least {kh}×{kw}"
                        ),
                        x,
                        format!("[{}, {}, ≥{kh}, ≥{kw}]", x[0], x[1]),
                    ));
                }
                ((h - kh) / s + 1, (wd - kw) / s + 1, 0, 0)
            }
            Padding::Same => {
                let (oh, ow) = (h.div_ceil(s), wd.div_ceil(s));
                let pad_h = ((oh - 1) * s + kh).saturating_sub(h);
                let pad_w = ((ow - 1) * s + kw).saturating_sub(wd);
                (oh, ow, pad_h / 2, pad_w / 2)
            }
            Padding::Explicit(p) => {
                if h + 2 * p < kh || wd + 2 * p < kw {
                    return Err(shape_err(
                        &format!(
                            "a {kh}×{kw} convolution with padding {p} needs an input of at \
                             least {}×{}",
                            kh.saturating_sub(2 * p).max(1),
                            kw.saturating_sub(2 * p).max(1)
                        ),
                        x,
                        format!(
                            "[{}, {}, ≥{}, ≥{}]",
                            x[0],
                            x[1],
                            kh.saturating_sub(2 * p).max(1),
                            kw.saturating_sub(2 * p).max(1)
                        ),
                    ));
                }
                if p >= kh || p >= kw {
                    return Err(Error::Config {
                        what: "conv2d padding".into(),
                        message: format!(
                            "padding {p} must be smaller than the {kh}×{kw} kernel (every output would see padding only)"
                        ),
                    });
                }
                ((h + 2 * p - kh) / s + 1, (wd + 2 * p - kw) / s + 1, p, p)
            }
        };
        Ok(ConvGeometry {
            n: x[0],
            cin: x[1],
            h,
            w: wd,
            cout: w[0],
            kh,
            kw,
            stride: s,
            oh,
            ow,
            pad_top,
            pad_left,
        })
    }

    pub fn output_shape(&self) -> [usize; 4] {
        [self.n, self.cout, self.oh, self.ow]
    }

    fn params(&self, n: usize, x_base: u32, y_base: u32, chunk: usize) -> ConvParams {
        ConvParams {
            n: n as u32,
            cin: self.cin as u32,
            h: self.h as u32,
            w: self.w as u32,
            cout: self.cout as u32,
            kh: self.kh as u32,
            kw: self.kw as u32,
            stride: self.stride as u32,
            oh: self.oh as u32,
            ow: self.ow as u32,
            pad_top: self.pad_top as u32,
            pad_left: self.pad_left as u32,
            x_base,
            y_base,
            chunk: chunk as u32,
            _pad: 0,
        }
    }

    /// FLOP of one forward pass (a multiply-add counts 2).
    pub fn flops(&self) -> u64 {
        2 * (self.n * self.cout * self.oh * self.ow * self.cin * self.kh * self.kw) as u64
    }
}

crate::uniform! {
    /// Uniforms of every conv2d kernel.
    pub struct ConvParams {
        pub n: u32,
        pub cin: u32,
        pub h: u32,
        pub w: u32,
        pub cout: u32,
        pub kh: u32,
        pub kw: u32,
        pub stride: u32,
        pub oh: u32,
        pub ow: u32,
        pub pad_top: u32,
        pub pad_left: u32,
        /// First element of the x (or dx) window.
        pub x_base: u32,
        /// First element of the y (or dy) window.
        pub y_base: u32,
        /// Pixels per chunk of a split reduction.
        pub chunk: u32,
        pub _pad: u32,
    }
}

crate::uniform! {
    /// Uniforms of `conv2d_forward` (which also runs backward-input for
    /// stride 1, with the roles of x/y and Cin/Cout swapped): the sizes every
    /// conv kernel gets (`conv.chunk` unused), then the dispatch's slice.
    pub struct ConvForwardParams {
        pub conv: ConvParams,
        /// First input channel of this dispatch's chunk.
        pub ci0: u32,
        /// Input channels in the chunk.
        pub cc: u32,
        /// First output channel of this dispatch's group of 16.
        pub co0: u32,
        /// Bit 1: add the bias (adding into the output is the pipeline constant
        /// `ACCUMULATE`, not a mode bit).
        pub mode: u32,
    }
}

crate::uniform! {
    /// Uniforms of `conv2d_pack_weights`.
    pub struct PackParams {
        pub cout: u32,
        pub cin: u32,
        pub kh: u32,
        pub kw: u32,
        pub chunks: u32,
        pub cc: u32,
        /// Bit 1: pack the bias; bit 2: transposed and flipped (backward-input).
        pub mode: u32,
        pub total: u32,
    }
}

/// Bytes of one uniform weight window (64 KiB, the uniform binding size
/// every wgpu adapter allows): 16384 values in f32, 8192 in f64 (the
/// shaders' `WINDOW`); the last 16 values hold the group's biases.
const WINDOW_BYTES: usize = 65536;

/// Output channels per `conv2d_forward` dispatch.
const GROUP: usize = 16;

/// `ConvForwardParams::mode` bit: add the bias.
const MODE_BIAS: u32 = 1;

/// The forward kernels' pipeline constant for adding into y (a dispatch
/// without it writes y).
const ACCUMULATE: Constants = &[("ACCUMULATE", 1.0)];

/// `PackParams::mode` bits.
const PACK_BIAS: u32 = 1;

const PACK_TRANSPOSED: u32 = 2;

/// Output pixels per chunk of the split weight and bias reductions on the
/// CPU adapter: few, long chunks (lavapipe runs a handful of invocations per
/// core; each chunk's partial sums are extra traffic).
const CPU_CHUNK: usize = 4096;

/// The same on GPUs: about `pixels / 1024`, a power of two within these
/// bounds, so that `conv2d_backward_weight` gets ~1000 chunks where the
/// layer is large and short chunks where it is small: the bounds that a
/// sweep on an H100 found best at the poster model's layers (the figures:
/// docs/kernels/conv2d.md, "On an H100").
const GPU_CHUNK_MIN: usize = 512;

const GPU_CHUNK_MAX: usize = 2048;

/// The sets of variants the gradient checks run conv2d's cases with,
/// beside an adapter's own picks: the general kernels (what GL and GPUs
/// run), the 3×3 rows weight gradient, and the subgroup kernels; each is a
/// [`Tuning::prefer`](crate::gpu::Tuning), with whether it needs subgroups.
pub const VARIANT_SETS: &[(&[&str], bool)] = &[
    (
        &[
            "conv2d_forward",
            "conv2d_backward_weight",
            "conv2d_backward_input",
        ],
        false,
    ),
    (&["conv2d_backward_weight_3x3"], false),
    (
        &["conv2d_forward_3x3", "conv2d_backward_weight_3x3_subgroup"],
        true,
    ),
];

/// The [`VARIANT_SETS`] this adapter can run.
pub fn variant_sets(gpu: &Gpu) -> Vec<&'static [&'static str]> {
    VARIANT_SETS
        .iter()
        .filter(|(_, subgroups)| !subgroups || gpu.adapter().subgroups)
        .map(|(set, _)| *set)
        .collect()
}

/// Output pixels per chunk of the split weight and bias reductions over
/// `pixels` output pixels on this adapter: [`CPU_CHUNK`], or the GPU rule
/// above, unless the device's [`Tuning`](crate::gpu::Tuning) fixes it.
pub fn weight_chunk(gpu: &Gpu, pixels: usize) -> usize {
    match gpu.tuning().weight_chunk {
        Some(c) => c,
        None if gpu.adapter().is_cpu => CPU_CHUNK,
        None => pixels
            .div_ceil(1024)
            .next_power_of_two()
            .clamp(GPU_CHUNK_MIN, GPU_CHUNK_MAX),
    }
}

/// How [`weight_chunk`] chooses on this adapter, in words (`info`, `profile`).
pub fn weight_chunk_rule(gpu: &Gpu) -> String {
    match gpu.tuning().weight_chunk {
        Some(c) => format!("chunks of {c} output pixels (tuning override)"),
        None if gpu.adapter().is_cpu => format!("chunks of {CPU_CHUNK} output pixels"),
        None => {
            format!("chunks of {GPU_CHUNK_MIN}–{GPU_CHUNK_MAX} output pixels (about pixels / 1024)")
        }
    }
}

/// Workgroups for `tiles` pixel tiles × `ct` channel tiles, folding the
/// pixel tiles into z past the per-dimension limit.
fn pixel_grid(gpu: &Gpu, tiles: usize, ct: usize) -> [u32; 3] {
    let [x, z, _] = gpu.grid_1d(tiles, 1);
    [x, ct as u32, z]
}

fn sample_ranges(gpu: &Gpu, g: &ConvGeometry) -> Vec<std::ops::Range<usize>> {
    let x_bytes = (g.cin * g.h * g.w * gpu.real_bytes()) as u64;
    let y_bytes = (g.cout * g.oh * g.ow * gpu.real_bytes()) as u64;
    gpu.batch_chunks(g.n, &[x_bytes, y_bytes])
}

/// conv2d on the tape, with a bias or without (`b` None: torchvision's
/// convs, followed by a batch norm); saves x and w for the backward pass.
pub fn conv2d(tape: &Tape, x: &Var, w: &Var, b: Option<&Var>, config: Conv2dConfig) -> Result<Var> {
    let y = conv2d_forward(tape.gpu(), &x.value, &w.value, b.map(|b| &b.value), config)?;
    let (xs, ws) = (x.value.clone(), w.value.clone());
    let inputs: Vec<&Var> = [Some(x), Some(w), b].into_iter().flatten().collect();
    // dx may be the tape's fresh buffer (GradWrite::Write): the stride-1
    // kernel then writes it instead of adding into a zeroed one
    Ok(
        tape.record_writing_first(y, &inputs, move |gpu, dy, grads, write| {
            if let Some(dx) = &grads[0] {
                backward_input(gpu, dy, &ws, dx, config, write)?;
            }
            match (&grads[1], grads.get(2).and_then(|g| g.as_ref())) {
                (Some(dw), Some(db)) => conv2d_backward_params(gpu, &xs, dy, dw, db, config)?,
                (Some(dw), None) => conv2d_backward_weight(gpu, &xs, dy, dw, config)?,
                (None, Some(db)) => conv2d_backward_bias(gpu, dy, db)?,
                (None, None) => {}
            }
            Ok(())
        }),
    )
}
