//! conv2d's forward: weights packed into 64 KiB uniform windows, the
//! general and 3×3 kernels, and which one runs where.

use super::*;

/// How `conv2d_pack_weights` lays out the kernel.
pub(super) enum Packing<'t> {
    /// As stored, with this bias or none (the forward).
    AsStored(Option<&'t Tensor>),
    /// Transposed and flipped, no bias (backward-input at stride 1).
    TransposedFlipped,
}

/// The kernel packed into 64 KiB windows, one per (group of 16 output
/// channels, chunk of `cc` input channels).
pub(super) struct PackedWeights {
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
pub(super) fn pack_weights(
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
        Packing::AsStored(Some(b)) => (PACK_BIAS, b),
        // the kernel binds a bias either way; it reads none here
        Packing::AsStored(None) => (0, w),
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
    /// `dense_forward` per sample: 1×1 at stride 1 without padding or bias
    /// (ResNet's bottleneck convs), on every adapter (`gemm`).
    Gemm1x1,
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
        let preferred = [Forward::Strips, Forward::Subgroup3x3, Forward::Gemm1x1]
            .into_iter()
            .find(|v| gpu.tuning().prefers(v.kernel()) && v.fits(gpu, g));
        if let Some(v) = preferred {
            return v;
        }
        if Forward::Gemm1x1.fits(gpu, g) {
            Forward::Gemm1x1
        } else if Forward::Subgroup3x3.fits(gpu, g) {
            Forward::Subgroup3x3
        } else {
            Forward::Strips
        }
    }

    fn fits(self, gpu: &Gpu, g: &ConvGeometry) -> bool {
        match self {
            Forward::Strips => true,
            Forward::Gemm1x1 => gemm::fits(g),
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
            Forward::Gemm1x1 => "dense_forward",
        }
    }

    /// Its profile row: the kernel, labelled when it serves a conv's GEMM.
    pub fn row(self) -> String {
        match self {
            Forward::Gemm1x1 => crate::gpu::row_name(self.kernel(), Some(gemm::GEMM_1X1)),
            _ => self.kernel().to_string(),
        }
    }
}

/// The error for a kernel variant asked for on a geometry or adapter it does
/// not fit (`needs`: what it requires; `chooser`: the enum whose
/// `for_geometry` picks a fitting one).
pub(super) fn misfit(
    gpu: &Gpu,
    g: &ConvGeometry,
    kernel: &str,
    needs: &str,
    chooser: &str,
) -> Error {
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
pub(super) fn forward_tiles(
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

/// y = conv(x, w) + b (no bias for `b` None).
pub fn conv2d_forward(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
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
    b: Option<&Tensor>,
    config: Conv2dConfig,
    kernel: Forward,
) -> Result<Tensor> {
    let g = ConvGeometry::new(x.dims(), w.dims(), config)?;
    if let Some(b) = b {
        b.expect_shape("conv2d", "bias must be [out channels]", &[g.cout])?;
    }
    // the GEMM has no per-channel bias: with one, the strips kernel runs
    let kernel = match (kernel, b) {
        (Forward::Gemm1x1, Some(_)) => Forward::Strips,
        (k, _) => k,
    };
    if kernel == Forward::Gemm1x1 {
        if !gemm::fits(&g) {
            return Err(misfit(
                gpu,
                &g,
                "conv2d 1x1 GEMM",
                "a 1×1 kernel at stride 1 without padding",
                "Forward",
            ));
        }
        return gemm::forward(gpu, &g, x, w);
    }
    let y = Tensor::uninit(gpu, g.output_shape(), "conv2d_forward")?;
    let packed = pack_weights(gpu, &g, w, Packing::AsStored(b))?;
    forward_tiles(gpu, &g, x, &packed, &y, false, kernel)?;
    Ok(y)
}
