//! conv2d's backward: the input gradient (the forward kernel on flipped
//! weights at stride 1, the strided kernel otherwise), the weight and bias
//! gradients (three weight-gradient variants), and which runs where.

use super::*;

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
/// The pass label of the forward kernels when they compute the stride-1
/// input gradient (`Gpu::in_pass`; profile rows read
/// `conv2d_forward_3x3 (backward-input)`).
pub const BACKWARD_INPUT: &str = "backward-input";

pub(super) fn backward_input(
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

/// How an input gradient is computed: one choice, which the op runs and
/// the profiler names its row after.
enum InputPath {
    /// Wᵀ · dY per sample: a 1×1 at stride 1 without padding.
    Gemm,
    /// The forward `kernel` over dy, roles flipped: stride 1.
    Flipped(Forward),
    /// The forward `kernel` over dy dilated to `size`: strided.
    Dilated {
        size: (usize, usize),
        kernel: Forward,
    },
    /// A strided 1×1: the GEMM on the output's grid, then spread.
    Strided1x1,
    /// The direct strided kernel (a variant: `Tuning::prefer`).
    Direct,
}

/// The path for `g` when the stride-1 forward kernel is `kernel`.
fn input_path(gpu: &Gpu, g: &ConvGeometry, kernel: Forward) -> InputPath {
    // the GEMM variant fits only a same-size 1×1: flipped roles run strips
    let not_gemm = |k| match k {
        Forward::Gemm1x1 => Forward::Strips,
        k => k,
    };
    if kernel == Forward::Gemm1x1 && gemm::fits(g) {
        InputPath::Gemm
    } else if g.stride == 1 {
        // dx = full correlation of dy with the flipped, transposed kernel:
        // the forward kernel with the roles swapped and padding KH − 1 − pt
        InputPath::Flipped(not_gemm(kernel))
    } else if gpu.tuning().prefers("conv2d_backward_input") {
        InputPath::Direct
    } else if strided_1x1(g) {
        InputPath::Strided1x1
    } else {
        // dy spread out by the stride (conv2d_dilate), then the same
        // stride-1 correlation over it
        let size = ((g.oh - 1) * g.stride + 1, (g.ow - 1) * g.stride + 1);
        let kernel = not_gemm(Forward::for_geometry(gpu, &flipped_roles(g, size)));
        InputPath::Dilated { size, kernel }
    }
}

/// [`conv2d_backward_input`] with a chosen stride-1 kernel (for benchmarks
/// and tests; strided geometries take their own path whatever the
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
    match input_path(gpu, &g, kernel) {
        InputPath::Gemm => gemm::backward_input(gpu, &g, dy, w, dx, write),
        InputPath::Flipped(kernel) => flipped(gpu, &g, dy, (g.oh, g.ow), w, dx, write, kernel),
        InputPath::Dilated { size, kernel } => {
            let d = dilate(gpu, &g, dy, size.0, size.1)?;
            flipped(gpu, &g, &d, size, w, dx, write, kernel)
        }
        InputPath::Strided1x1 => strided_1x1_input(gpu, &g, dy, w, dx, write),
        InputPath::Direct => direct_input(gpu, &g, dy, w, dx, write),
    }
}

/// The direct strided input gradient (`conv2d_backward_input`).
fn direct_input(
    gpu: &Gpu,
    g: &ConvGeometry,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
    write: GradWrite,
) -> Result<()> {
    // the direct strided kernel adds into dx
    if write == GradWrite::Write {
        gpu.clear(dx);
    }
    let (xs, ys) = (g.cin * g.h * g.w, g.cout * g.oh * g.ow);
    for r in sample_ranges(gpu, g) {
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

/// The profile row that computes `g`'s input gradient on this adapter
/// (its useful FLOP are `g.flops()`; a strided one runs s² as many
/// multiply-adds over the dilated dy).
pub fn backward_input_row(gpu: &Gpu, g: &ConvGeometry) -> String {
    use crate::gpu::row_name;
    match input_path(gpu, g, Forward::for_geometry(gpu, g)) {
        InputPath::Gemm | InputPath::Strided1x1 => {
            row_name("dense_backward_weight", Some(gemm::GEMM_1X1))
        }
        InputPath::Direct => "conv2d_backward_input".into(),
        InputPath::Flipped(kernel) | InputPath::Dilated { kernel, .. } => {
            row_name(kernel.kernel(), Some(BACKWARD_INPUT))
        }
    }
}

/// The geometry the forward kernels see when they compute an input
/// gradient: dy (or its dilation, `dy_size`) in, dx out, the kernel
/// transposed and flipped, padding KH − 1 − pt.
fn flipped_roles(g: &ConvGeometry, dy_size: (usize, usize)) -> ConvGeometry {
    ConvGeometry {
        n: g.n,
        cin: g.cout,
        h: dy_size.0,
        w: dy_size.1,
        cout: g.cin,
        kh: g.kh,
        kw: g.kw,
        stride: 1,
        oh: g.h,
        ow: g.w,
        pad_top: g.kh - 1 - g.pad_top,
        pad_left: g.kw - 1 - g.pad_left,
    }
}

/// dx (+)= the stride-1 correlation of `dy` (of size `dy_size`) with the
/// flipped, transposed kernel, on the forward kernels.
#[allow(clippy::too_many_arguments)] // the gradient's tensors and the choices made for it
fn flipped(
    gpu: &Gpu,
    g: &ConvGeometry,
    dy: &Tensor,
    dy_size: (usize, usize),
    w: &Tensor,
    dx: &Tensor,
    write: GradWrite,
    kernel: Forward,
) -> Result<()> {
    let roles = flipped_roles(g, dy_size);
    let accumulate = write == GradWrite::Add;
    gpu.in_pass(BACKWARD_INPUT, || {
        let packed = pack_weights(gpu, &roles, w, Packing::TransposedFlipped)?;
        forward_tiles(gpu, &roles, dy, &packed, dx, accumulate, kernel)
    })
}

/// dy spread out by the stride with zeros between: [N, Cout, dh, dw].
fn dilate(gpu: &Gpu, g: &ConvGeometry, dy: &Tensor, dh: usize, dw: usize) -> Result<Tensor> {
    let d = Tensor::uninit(gpu, [g.n, g.cout, dh, dw], "conv2d_dilate")?;
    dilate_into(gpu, g, dy, &d)?;
    Ok(d)
}

/// Writes `src` [N, g.cout, g.oh, g.ow] spread out by g.stride into every
/// element of `dst` [N, g.cout, dh, dw] (zeros off the grid and past the
/// source).
fn dilate_into(gpu: &Gpu, g: &ConvGeometry, src: &Tensor, dst: &Tensor) -> Result<()> {
    let (dh, dw) = (dst.dims()[2], dst.dims()[3]);
    let (ys, ds) = (g.cout * g.oh * g.ow, g.cout * dh * dw);
    for r in gpu.batch_chunks(g.n, &[(ds * gpu.real_bytes()) as u64]) {
        let n = r.len();
        let (dyw, yb) = gpu.window(src, r.start * ys, n * ys);
        let (dw_, db) = gpu.window(dst, r.start * ds, n * ds);
        let p = ConvParams {
            n: n as u32,
            cout: g.cout as u32,
            oh: g.oh as u32,
            ow: g.ow as u32,
            stride: g.stride as u32,
            h: dh as u32,
            w: dw as u32,
            y_base: yb,
            x_base: db,
            ..bytemuck::Zeroable::zeroed()
        };
        gpu.dispatch_bound("conv2d_dilate", &p, &[dyw, dw_], gpu.grid_1d(n * ds, 256))?;
    }
    Ok(())
}

/// Whether `g` is a strided 1×1 convolution without padding (ResNet's
/// downsamples), whose input gradient is a GEMM on the stride's grid.
fn strided_1x1(g: &ConvGeometry) -> bool {
    g.kh == 1 && g.kw == 1 && g.stride > 1 && g.pad_top == 0 && g.pad_left == 0
}

/// A strided 1×1 convolution's input gradient: Wᵀ · dY[n] on the output's
/// grid (the GEMM of `gemm::backward_input`, [N, Cin, OH, OW]), then spread
/// onto dx's grid by `conv2d_dilate` — no multiply-add on a zero.
fn strided_1x1_input(
    gpu: &Gpu,
    g: &ConvGeometry,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
    write: GradWrite,
) -> Result<()> {
    let on_grid = ConvGeometry {
        h: g.oh,
        w: g.ow,
        stride: 1,
        ..*g
    };
    let grad = Tensor::uninit(gpu, [g.n, g.cin, g.oh, g.ow], "conv2d 1x1 strided dx")?;
    gemm::backward_input(gpu, &on_grid, dy, w, &grad, GradWrite::Write)?;
    let spread = ConvGeometry { cout: g.cin, ..*g };
    match write {
        GradWrite::Write => dilate_into(gpu, &spread, &grad, dx),
        GradWrite::Add => {
            let d = Tensor::uninit(gpu, dx.shape().clone(), "conv2d_dilate")?;
            dilate_into(gpu, &spread, &grad, &d)?;
            crate::ops::add_scaled(gpu, &d, 1.0, dx)
        }
    }
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
    /// `dense_backward_input` per sample: dW += dY[n] · X[n]ᵀ. 1×1, stride
    /// 1, no padding (`gemm`).
    Gemm1x1,
}

/// Input channels from which `Subgroup3x3` is picked: with fewer, most
/// lanes of a subgroup have no channel (benches/conv.rs, layer 1).
pub(super) const SUBGROUP_MIN_CIN: usize = 8;

impl BackwardWeight {
    /// The fastest kernel that is correct for the geometry on this adapter
    /// (benches/conv.rs): on GPUs `Tiles` (on an H100 it beats `Rows3x3`
    /// and `Subgroup3x3` at the poster model's layers: the
    /// two 3×3 kernels keep 144 accumulators per invocation, made for
    /// lavapipe's few long invocations); on the CPU adapter, for 3×3
    /// kernels at stride 1, `Subgroup3x3` where subgroups exist and the
    /// layer has at least 8 input channels, else `Rows3x3`; `Tiles`
    /// otherwise.
    pub fn for_geometry(gpu: &Gpu, g: &ConvGeometry) -> BackwardWeight {
        let variants = [
            BackwardWeight::Tiles,
            BackwardWeight::Rows3x3,
            BackwardWeight::Subgroup3x3,
            BackwardWeight::Gemm1x1,
        ];
        let preferred = variants
            .into_iter()
            .find(|v| gpu.tuning().prefers(v.kernel()) && v.fits(gpu, g));
        if let Some(v) = preferred {
            return v;
        }
        if BackwardWeight::Gemm1x1.fits(gpu, g) {
            BackwardWeight::Gemm1x1
        } else if !gpu.adapter().is_cpu {
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
            BackwardWeight::Gemm1x1 => gemm::fits(g),
        }
    }

    /// Its profile row: the kernel, labelled when it serves a conv's GEMM.
    pub fn row(self) -> String {
        match self {
            BackwardWeight::Gemm1x1 => crate::gpu::row_name(self.kernel(), Some(gemm::GEMM_1X1)),
            _ => self.kernel().to_string(),
        }
    }

    /// The kernel's entry point (its shader's name).
    pub fn kernel(self) -> &'static str {
        match self {
            BackwardWeight::Tiles => "conv2d_backward_weight",
            BackwardWeight::Rows3x3 => "conv2d_backward_weight_3x3",
            BackwardWeight::Subgroup3x3 => "conv2d_backward_weight_3x3_subgroup",
            BackwardWeight::Gemm1x1 => "dense_backward_input",
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
        k @ (BackwardWeight::Tiles | BackwardWeight::Gemm1x1) => {
            weight_pass(gpu, x, dy, dw, None, config, k)?;
            conv2d_backward_bias(gpu, dy, db)
        }
    }
}

/// The weight-gradient pass; `db` (only with the 3×3 kernels) receives the
/// bias gradient from the same pass.
pub(super) fn weight_pass(
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
        let needs = match kernel {
            BackwardWeight::Subgroup3x3 => {
                "a 3×3 kernel at stride 1 and an adapter with subgroups of 8 to 64 invocations"
            }
            BackwardWeight::Gemm1x1 => "a 1×1 kernel at stride 1 without padding",
            _ => "a 3×3 kernel at stride 1",
        };
        return Err(misfit(gpu, &g, kernel.kernel(), needs, "BackwardWeight"));
    }
    if kernel == BackwardWeight::Gemm1x1 {
        return gemm::backward_weight(gpu, &g, x, dy, dw);
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
            BackwardWeight::Gemm1x1 => unreachable!("handled above"),
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
