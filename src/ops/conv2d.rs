//! conv2d: y = conv(x, w) + b in NCHW, Keras semantics (cross-correlation,
//! `valid` or `same` padding, any stride). x: [N, Cin, H, W],
//! w: [Cout, Cin, KH, KW], b: [Cout], y: [N, Cout, OH, OW].
//! Shaders `conv2d_forward` (+ `conv2d_pack_weights`; it also runs
//! backward-input for stride 1), `conv2d_backward_input` (other strides),
//! `conv2d_backward_weight`, `conv2d_backward_bias` (+ `reduce_partials`);
//! page `docs/kernels/conv2d.md`.

use crate::error::{Error, Result};
use crate::gpu::{Bind, Constants, Gpu};
use crate::ops::reduce::reduce_partials;
use crate::tape::{GradWrite, Tape, Var};
use crate::tensor::Tensor;

/// Keras's padding modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: OH = ⌊(H − KH)/s⌋ + 1.
    Valid,
    /// Zero padding so that OH = ⌈H/s⌉; the extra row/column goes at the
    /// bottom/right when the total is odd (as TensorFlow).
    Same,
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

/// How `conv2d_pack_weights` lays out the kernel.
enum Packing<'t> {
    /// As stored, with this bias (the forward).
    WithBias(&'t Tensor),
    /// Transposed and flipped, no bias (backward-input at stride 1).
    TransposedFlipped,
}

/// The kernel packed into 64 KiB windows, one per (group of 16 output
/// channels, chunk of `cc` input channels).
struct PackedWeights {
    tensor: Tensor,
    /// Values per window.
    window: usize,
    chunks: usize,
    cc: usize,
    bias: bool,
}

/// Packs `w` for the convolution `g`, given in the roles `conv2d_forward`
/// sees: input [n, cin, h, w], output [n, cout, oh, ow] (for backward-input:
/// dy in, dx out).
fn pack_weights(
    gpu: &Gpu,
    g: &ConvGeometry,
    w: &Tensor,
    packing: Packing,
) -> Result<PackedWeights> {
    let taps = g.kh * g.kw;
    let window = WINDOW_BYTES / gpu.real_bytes();
    let cc = ((window - GROUP) / (GROUP * taps)).min(g.cin);
    if cc == 0 {
        return Err(Error::Config {
            what: "conv2d kernel size".into(),
            message: format!(
                "a {}×{} kernel does not fit one 64 KiB weight window (at most {} taps)",
                g.kh,
                g.kw,
                (window - GROUP) / GROUP
            ),
        });
    }
    let chunks = g.cin.div_ceil(cc);
    let windows = g.cout.div_ceil(GROUP) * chunks;
    let tensor = Tensor::uninit(gpu, [windows * window], "conv2d_pack_weights")?;
    let (mode, b) = match packing {
        Packing::WithBias(b) => (PACK_BIAS, b),
        // the kernel binds a bias either way; it reads none here
        Packing::TransposedFlipped => (PACK_TRANSPOSED, w),
    };
    let p = PackParams {
        cout: g.cout as u32,
        cin: g.cin as u32,
        kh: g.kh as u32,
        kw: g.kw as u32,
        chunks: chunks as u32,
        cc: cc as u32,
        mode,
        total: (windows * window) as u32,
    };
    gpu.dispatch(
        "conv2d_pack_weights",
        &p,
        &[w, b, &tensor],
        gpu.grid_1d(windows * window, 64),
    )?;
    Ok(PackedWeights {
        tensor,
        window,
        chunks,
        cc,
        bias: mode == PACK_BIAS,
    })
}

/// The two forward kernels (see `docs/kernels/conv2d.md`); both also run
/// backward-input at stride 1. Same dispatches, packed weights and thread
/// mapping: 8 output pixels × 16 output channels per invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// `conv2d_forward`: any kernel size and stride, on every adapter.
    Strips,
    /// `conv2d_forward_3x3`: 3×3 at stride 1, on adapters with subgroups of
    /// at least 8 invocations ([`Gpu::adapter`]`.subgroups`); shares each
    /// weight load across 8 lanes and reads four inputs per texel fetch.
    Subgroup3x3,
}

impl Forward {
    /// The faster kernel that is correct for the geometry on this adapter:
    /// `Subgroup3x3` for 3×3 kernels at stride 1 where subgroups exist
    /// (benches/conv.rs).
    pub fn for_geometry(gpu: &Gpu, g: &ConvGeometry) -> Forward {
        if Forward::Subgroup3x3.fits(gpu, g) {
            Forward::Subgroup3x3
        } else {
            Forward::Strips
        }
    }

    fn fits(self, gpu: &Gpu, g: &ConvGeometry) -> bool {
        match self {
            Forward::Strips => true,
            Forward::Subgroup3x3 => {
                gpu.adapter().subgroups && g.kh == 3 && g.kw == 3 && g.stride == 1
            }
        }
    }

    /// The kernel's entry point (its shader's name).
    pub fn kernel(self) -> &'static str {
        match self {
            Forward::Strips => "conv2d_forward",
            Forward::Subgroup3x3 => "conv2d_forward_3x3",
        }
    }
}

/// The error for a kernel variant asked for on a geometry or adapter it does
/// not fit (`needs`: what it requires; `chooser`: the enum whose
/// `for_geometry` picks a fitting one).
fn misfit(gpu: &Gpu, g: &ConvGeometry, kernel: &str, needs: &str, chooser: &str) -> Error {
    Error::Config {
        what: kernel.into(),
        message: format!(
            "needs {needs} (got {}×{}, stride {}, subgroups {}); use {chooser}::for_geometry",
            g.kh,
            g.kw,
            g.stride,
            if gpu.adapter().subgroups { "yes" } else { "no" }
        ),
    }
}

/// Runs the forward kernel over every sample window, channel group and
/// input chunk: y = conv(x, packed) (+ bias) (+ y when `accumulate`), `g` in
/// the roles of [`pack_weights`].
fn forward_tiles(
    gpu: &Gpu,
    g: &ConvGeometry,
    x: &Tensor,
    packed: &PackedWeights,
    y: &Tensor,
    accumulate: bool,
    kernel: Forward,
) -> Result<()> {
    if !kernel.fits(gpu, g) {
        return Err(misfit(
            gpu,
            g,
            kernel.kernel(),
            "a 3×3 kernel at stride 1 and an adapter with subgroups of 8 or more",
            "Forward",
        ));
    }
    let (xs, ys) = (g.cin * g.h * g.w, g.cout * g.oh * g.ow);
    for r in sample_ranges(gpu, g) {
        let n = r.len();
        // x through a texture copy, made once for every group and chunk
        let xt = gpu.read_window(x, r.start * xs, n * xs)?;
        let (yw, yb) = gpu.window(y, r.start * ys, n * ys);
        let strips = n * g.oh * g.ow.div_ceil(8);
        for group in 0..g.cout.div_ceil(GROUP) {
            for k in 0..packed.chunks {
                let first = k == 0 && !accumulate;
                let p = ConvForwardParams {
                    conv: g.params(n, xt.base(), yb, 0),
                    ci0: (k * packed.cc) as u32,
                    cc: packed.cc.min(g.cin - k * packed.cc) as u32,
                    co0: (group * GROUP) as u32,
                    mode: if packed.bias && k == 0 { MODE_BIAS } else { 0 },
                };
                let start = (group * packed.chunks + k) * packed.window;
                let window = Bind::range(&packed.tensor, start, packed.window);
                gpu.dispatch_specialized(
                    kernel.kernel(),
                    if first { &[] } else { ACCUMULATE },
                    &p,
                    &[xt.bind(), window, yw],
                    gpu.grid_1d(strips, 64),
                )?;
            }
        }
    }
    Ok(())
}

/// Output pixels per chunk of the split weight and bias reductions on the
/// CPU adapter: few, long chunks (lavapipe runs a handful of invocations per
/// core; each chunk's partial sums are extra traffic).
const CPU_CHUNK: usize = 4096;

/// The same on GPUs: about `pixels / 1024`, a power of two within these
/// bounds, so that `conv2d_backward_weight` gets ~1000 chunks where the
/// layer is large and short chunks where it is small. Measured on an H100
/// at the poster model's layers (`benches/conv.rs`, docs/performance.md):
/// 512 is best at 128×128 and on the small layers at 350×350, 2048 on the
/// first layer at 350×350 (3.9 M pixels); 4096 is 1.3–4× slower everywhere.
const GPU_CHUNK_MIN: usize = 512;
const GPU_CHUNK_MAX: usize = 2048;

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

/// y = conv(x, w) + b.
pub fn conv2d_forward(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    config: Conv2dConfig,
) -> Result<Tensor> {
    let g = ConvGeometry::new(x.dims(), w.dims(), config)?;
    conv2d_forward_with(gpu, x, w, b, config, Forward::for_geometry(gpu, &g))
}

/// [`conv2d_forward`] with a chosen kernel (for benchmarks and tests);
/// `Subgroup3x3` where it does not fit is an error.
pub fn conv2d_forward_with(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    config: Conv2dConfig,
    kernel: Forward,
) -> Result<Tensor> {
    let g = ConvGeometry::new(x.dims(), w.dims(), config)?;
    b.expect_shape("conv2d", "bias must be [out channels]", &[g.cout])?;
    let y = Tensor::uninit(gpu, g.output_shape(), "conv2d_forward")?;
    let packed = pack_weights(gpu, &g, w, Packing::WithBias(b))?;
    forward_tiles(gpu, &g, x, &packed, &y, false, kernel)?;
    Ok(y)
}

/// dx += ∂L/∂x for upstream dy.
pub fn conv2d_backward_input(
    gpu: &Gpu,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
    config: Conv2dConfig,
) -> Result<()> {
    backward_input(gpu, dy, w, dx, config, GradWrite::Add)
}

/// [`conv2d_backward_input_with`] through the kernel the host picks for the
/// geometry on this adapter.
fn backward_input(
    gpu: &Gpu,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
    config: Conv2dConfig,
    write: GradWrite,
) -> Result<()> {
    let g = ConvGeometry::new(dx.dims(), w.dims(), config)?;
    let kernel = Forward::for_geometry(gpu, &g);
    conv2d_backward_input_with(gpu, dy, w, dx, config, kernel, write)
}

/// [`conv2d_backward_input`] with a chosen stride-1 kernel (for benchmarks
/// and tests; other strides run `conv2d_backward_input` whatever the
/// choice), adding into dx ([`GradWrite::Add`]) or writing every element of
/// it ([`GradWrite::Write`], the tape's fresh buffer: no zeroing before and
/// no read of dx in the kernel, which on lavapipe is a storage load per
/// element — docs/kernels/conv2d.md).
pub fn conv2d_backward_input_with(
    gpu: &Gpu,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
    config: Conv2dConfig,
    kernel: Forward,
    write: GradWrite,
) -> Result<()> {
    let g = ConvGeometry::new(dx.dims(), w.dims(), config)?;
    dy.expect_shape(
        "conv2d_backward_input",
        "dy must match the output",
        &g.output_shape(),
    )?;
    if g.stride == 1 {
        // dx = full correlation of dy with the flipped, transposed kernel:
        // the forward kernel with the roles swapped and padding KH − 1 − pt.
        let roles = ConvGeometry {
            n: g.n,
            cin: g.cout,
            h: g.oh,
            w: g.ow,
            cout: g.cin,
            kh: g.kh,
            kw: g.kw,
            stride: 1,
            oh: g.h,
            ow: g.w,
            pad_top: g.kh - 1 - g.pad_top,
            pad_left: g.kw - 1 - g.pad_left,
        };
        let packed = pack_weights(gpu, &roles, w, Packing::TransposedFlipped)?;
        let accumulate = write == GradWrite::Add;
        return forward_tiles(gpu, &roles, dy, &packed, dx, accumulate, kernel);
    }
    // the strided kernel adds into dx
    if write == GradWrite::Write {
        gpu.clear(dx);
    }
    let (xs, ys) = (g.cin * g.h * g.w, g.cout * g.oh * g.ow);
    for r in sample_ranges(gpu, &g) {
        let n = r.len();
        let (dxw, xb) = gpu.window(dx, r.start * xs, n * xs);
        let (dyw, yb) = gpu.window(dy, r.start * ys, n * ys);
        let p = g.params(n, xb, yb, 0);
        let groups = pixel_grid(gpu, (n * g.h * g.w).div_ceil(512), g.cin.div_ceil(8));
        gpu.dispatch_bound(
            "conv2d_backward_input",
            &p,
            &[dyw, crate::gpu::Bind::whole(w), dxw],
            groups,
        )?;
    }
    Ok(())
}

/// The three weight-gradient kernels (see `docs/kernels/conv2d.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackwardWeight {
    /// `conv2d_backward_weight`: 8 output channels × 8 flattened taps per
    /// invocation. Any kernel size and stride.
    Tiles,
    /// `conv2d_backward_weight_3x3`: 8 output channels × the 18 taps of a
    /// pair of input channels, sliding the input windows along each row.
    /// 3×3, stride 1.
    Rows3x3,
    /// `conv2d_backward_weight_3x3_subgroup`: 16 output channels × the 9
    /// taps of one input channel, the same walk; the lanes of a subgroup
    /// take different input channels and share dy through subgroup
    /// shuffles. 3×3, stride 1, at least 8 input channels, on adapters with
    /// subgroups of at least 8 invocations.
    Subgroup3x3,
}

/// Input channels from which `Subgroup3x3` is picked: with fewer, most
/// lanes of a subgroup have no channel (benches/conv.rs, layer 1).
const SUBGROUP_MIN_CIN: usize = 8;

impl BackwardWeight {
    /// The fastest kernel that is correct for the geometry on this adapter
    /// (benches/conv.rs): on GPUs `Tiles` (on an H100 it beats `Rows3x3` by
    /// 1.3–3× and `Subgroup3x3` by 12–50× at the poster model's layers: the
    /// two 3×3 kernels keep 144 accumulators per invocation, made for
    /// lavapipe's few long invocations); on the CPU adapter, for 3×3
    /// kernels at stride 1, `Subgroup3x3` where subgroups exist and the
    /// layer has at least 8 input channels, else `Rows3x3`; `Tiles`
    /// otherwise.
    pub fn for_geometry(gpu: &Gpu, g: &ConvGeometry) -> BackwardWeight {
        if !gpu.adapter().is_cpu {
            BackwardWeight::Tiles
        } else if BackwardWeight::Subgroup3x3.fits(gpu, g) && g.cin >= SUBGROUP_MIN_CIN {
            BackwardWeight::Subgroup3x3
        } else if BackwardWeight::Rows3x3.fits(gpu, g) {
            BackwardWeight::Rows3x3
        } else {
            BackwardWeight::Tiles
        }
    }

    /// Whether the kernel is correct for the geometry on this adapter.
    fn fits(self, gpu: &Gpu, g: &ConvGeometry) -> bool {
        let three = g.kh == 3 && g.kw == 3 && g.stride == 1;
        match self {
            BackwardWeight::Tiles => true,
            BackwardWeight::Rows3x3 => three,
            // a subgroup must not span workgroups (64 invocations)
            BackwardWeight::Subgroup3x3 => {
                three && gpu.adapter().subgroups && gpu.adapter().subgroup_max_size <= 64
            }
        }
    }

    /// The kernel's entry point (its shader's name).
    pub fn kernel(self) -> &'static str {
        match self {
            BackwardWeight::Tiles => "conv2d_backward_weight",
            BackwardWeight::Rows3x3 => "conv2d_backward_weight_3x3",
            BackwardWeight::Subgroup3x3 => "conv2d_backward_weight_3x3_subgroup",
        }
    }
}

/// dw += ∂L/∂w (split over pixel chunks, then reduced).
pub fn conv2d_backward_weight(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    config: Conv2dConfig,
) -> Result<()> {
    let g = ConvGeometry::new(x.dims(), dw.dims(), config)?;
    conv2d_backward_weight_with(
        gpu,
        x,
        dy,
        dw,
        config,
        BackwardWeight::for_geometry(gpu, &g),
    )
}

/// [`conv2d_backward_weight`] with a chosen kernel (for benchmarks and
/// tests); a kernel that does not fit the geometry or the adapter is an
/// error.
pub fn conv2d_backward_weight_with(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    config: Conv2dConfig,
    kernel: BackwardWeight,
) -> Result<()> {
    weight_pass(gpu, x, dy, dw, None, config, kernel)
}

/// dw += ∂L/∂w and db += ∂L/∂b. With the 3×3 kernels one pass over dy
/// yields both (the kernel sums dy as it goes); otherwise the weight kernel
/// and [`conv2d_backward_bias`] each read dy.
pub fn conv2d_backward_params(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    db: &Tensor,
    config: Conv2dConfig,
) -> Result<()> {
    let g = ConvGeometry::new(x.dims(), dw.dims(), config)?;
    match BackwardWeight::for_geometry(gpu, &g) {
        k @ (BackwardWeight::Rows3x3 | BackwardWeight::Subgroup3x3) => {
            db.expect_shape("conv2d_backward_bias", "db must be [channels]", &[g.cout])?;
            weight_pass(gpu, x, dy, dw, Some(db), config, k)
        }
        BackwardWeight::Tiles => {
            weight_pass(gpu, x, dy, dw, None, config, BackwardWeight::Tiles)?;
            conv2d_backward_bias(gpu, dy, db)
        }
    }
}

/// The weight-gradient pass; `db` (only with the 3×3 kernels) receives the
/// bias gradient from the same pass.
fn weight_pass(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    db: Option<&Tensor>,
    config: Conv2dConfig,
    kernel: BackwardWeight,
) -> Result<()> {
    let g = ConvGeometry::new(x.dims(), dw.dims(), config)?;
    dy.expect_shape(
        "conv2d_backward_weight",
        "dy must match the output",
        &g.output_shape(),
    )?;
    if !kernel.fits(gpu, &g) {
        let needs = if kernel == BackwardWeight::Subgroup3x3 {
            "a 3×3 kernel at stride 1 and an adapter with subgroups of 8 to 64 invocations"
        } else {
            "a 3×3 kernel at stride 1"
        };
        return Err(misfit(gpu, &g, kernel.kernel(), needs, "BackwardWeight"));
    }
    let (xs, ys) = (g.cin * g.h * g.w, g.cout * g.oh * g.ow);
    let taps = g.cin * g.kh * g.kw;
    let chunk = weight_chunk(gpu, g.n * g.oh * g.ow);
    for r in sample_ranges(gpu, &g) {
        let n = r.len();
        let chunks = (n * g.oh * g.ow).div_ceil(chunk);
        let partial = Tensor::uninit(gpu, [chunks, g.cout, taps], "conv2d_backward_weight")?;
        let whole = crate::gpu::Bind::whole;
        match kernel {
            BackwardWeight::Tiles => {
                let (xw, xb) = gpu.window(x, r.start * xs, n * xs);
                let (dyw, yb) = gpu.window(dy, r.start * ys, n * ys);
                gpu.dispatch_bound(
                    kernel.kernel(),
                    &g.params(n, xb, yb, chunk),
                    &[xw, dyw, whole(&partial)],
                    gpu.grid_1d(chunks * taps.div_ceil(8) * g.cout.div_ceil(8), 64),
                )?
            }
            BackwardWeight::Rows3x3 | BackwardWeight::Subgroup3x3 => {
                // x and dy through texture copies (f32; see the shaders)
                let xt = gpu.read_window(x, r.start * xs, n * xs)?;
                let dyt = gpu.read_window(dy, r.start * ys, n * ys)?;
                let bias_partial = Tensor::uninit(gpu, [chunks, g.cout], "conv2d_backward_bias")?;
                let invocations = if kernel == BackwardWeight::Rows3x3 {
                    // a pair of input channels × 8 output channels each
                    chunks * g.cin.div_ceil(2) * g.cout.div_ceil(8)
                } else {
                    // one input channel × 16 output channels each, the input
                    // channels in whole subgroups of the largest size
                    let lanes = gpu.adapter().subgroup_max_size as usize;
                    chunks * g.cin.next_multiple_of(lanes) * g.cout.div_ceil(16)
                };
                gpu.dispatch_bound(
                    kernel.kernel(),
                    &g.params(n, xt.base(), dyt.base(), chunk),
                    &[xt.bind(), dyt.bind(), whole(&partial), whole(&bias_partial)],
                    gpu.grid_1d(invocations, 64),
                )?;
                if let Some(db) = db {
                    reduce_partials(gpu, &bias_partial, chunks, db)?;
                }
            }
        }
        reduce_partials(gpu, &partial, chunks, dw)?;
    }
    Ok(())
}

/// db += Σ over batch and pixels of dy.
pub fn conv2d_backward_bias(gpu: &Gpu, dy: &Tensor, db: &Tensor) -> Result<()> {
    dy.expect_rank(
        "conv2d_backward_bias",
        "dy must be [batch, channels, height, width]",
        4,
    )?;
    let d = dy.dims();
    db.expect_shape("conv2d_backward_bias", "db must be [channels]", &[d[1]])?;
    let per_sample = d[1] * d[2] * d[3];
    let chunk = weight_chunk(gpu, d[0] * d[2] * d[3]);
    for r in gpu.batch_chunks(d[0], &[(per_sample * gpu.real_bytes()) as u64]) {
        let n = r.len();
        let (dyw, yb) = gpu.window(dy, r.start * per_sample, n * per_sample);
        let chunks = (n * d[2] * d[3]).div_ceil(chunk);
        let partial = Tensor::uninit(gpu, [chunks, d[1]], "conv2d_backward_bias")?;
        let p = ConvParams {
            n: n as u32,
            cout: d[1] as u32,
            oh: d[2] as u32,
            ow: d[3] as u32,
            y_base: yb,
            chunk: chunk as u32,
            ..bytemuck::Zeroable::zeroed()
        };
        gpu.dispatch_bound(
            "conv2d_backward_bias",
            &p,
            &[dyw, crate::gpu::Bind::whole(&partial)],
            gpu.grid_1d(chunks * d[1], 64),
        )?;
        reduce_partials(gpu, &partial, chunks, db)?;
    }
    Ok(())
}

/// conv2d on the tape; saves x and w for the backward pass.
pub fn conv2d(tape: &Tape, x: &Var, w: &Var, b: &Var, config: Conv2dConfig) -> Result<Var> {
    let y = conv2d_forward(tape.gpu(), &x.value, &w.value, &b.value, config)?;
    let (xs, ws) = (x.value.clone(), w.value.clone());
    // dx may be the tape's fresh buffer (GradWrite::Write): the stride-1
    // kernel then writes it instead of adding into a zeroed one
    Ok(
        tape.record_writing_first(y, &[x, w, b], move |gpu, dy, grads, write| {
            if let Some(dx) = &grads[0] {
                backward_input(gpu, dy, &ws, dx, config, write)?;
            }
            match (&grads[1], &grads[2]) {
                (Some(dw), Some(db)) => conv2d_backward_params(gpu, &xs, dy, dw, db, config)?,
                (Some(dw), None) => conv2d_backward_weight(gpu, &xs, dy, dw, config)?,
                (None, Some(db)) => conv2d_backward_bias(gpu, dy, db)?,
                (None, None) => {}
            }
            Ok(())
        }),
    )
}

/// Plain-loop f64 reference.
pub mod cpu {
    use super::ConvGeometry;

    /// The input index a tap reads, or None in the padding.
    fn tap(g: &ConvGeometry, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let iy = (oy * g.stride + ky) as isize - g.pad_top as isize;
        let ix = (ox * g.stride + kx) as isize - g.pad_left as isize;
        (iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w)
            .then_some((iy as usize, ix as usize))
    }

    pub fn conv2d_forward(g: &ConvGeometry, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; g.n * g.cout * g.oh * g.ow];
        for n in 0..g.n {
            for co in 0..g.cout {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut acc = b[co];
                        for ci in 0..g.cin {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    if let Some((iy, ix)) = tap(g, oy, ox, ky, kx) {
                                        acc += x[((n * g.cin + ci) * g.h + iy) * g.w + ix]
                                            * w[((co * g.cin + ci) * g.kh + ky) * g.kw + kx];
                                    }
                                }
                            }
                        }
                        y[((n * g.cout + co) * g.oh + oy) * g.ow + ox] = acc;
                    }
                }
            }
        }
        y
    }

    /// (dx, dw, db) for upstream dy: each product of the forward sum sends
    /// dy·w to dx and dy·x to dw.
    pub fn conv2d_backward(
        g: &ConvGeometry,
        x: &[f64],
        w: &[f64],
        dy: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let mut db = vec![0.0; g.cout];
        for n in 0..g.n {
            for co in 0..g.cout {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let gy = dy[((n * g.cout + co) * g.oh + oy) * g.ow + ox];
                        db[co] += gy;
                        for ci in 0..g.cin {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    if let Some((iy, ix)) = tap(g, oy, ox, ky, kx) {
                                        let xi = ((n * g.cin + ci) * g.h + iy) * g.w + ix;
                                        let wi = ((co * g.cin + ci) * g.kh + ky) * g.kw + kx;
                                        dx[xi] += gy * w[wi];
                                        dw[wi] += gy * x[xi];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (dx, dw, db)
    }
}
