//! conv2d's 1×1 convolutions at stride 1 without padding, as GEMMs on the
//! dense kernels. In NCHW a sample's output is Y[n] = W · X[n], with W the
//! kernel viewed [Cout, Cin] and X[n] [Cin, H·W]: exactly `dense_forward`
//! with x = W and w = X[n] (rows Cout, k Cin, cols H·W). Its gradients are
//! the dense kernels' other two products with the roles kept:
//! dX[n] = Wᵀ · dY[n] is `dense_backward_weight` (x = W, dy = dY[n]), and
//! dW = Σₙ dY[n] · X[n]ᵀ is `dense_backward_input` (dy = dY[n], w = X[n]),
//! added up sample by sample. One dispatch per sample, on windows of the
//! NCHW tensors (`DenseParams::out_base`); ResNet-50 spends most of its
//! FLOP in these convolutions (docs/kernels/conv2d.md has the ladder).

use super::*;
use crate::ops::dense::{params, tiles, DenseParams};

/// The pass label of the dense kernels when they run a 1×1 convolution
/// (profile rows read `dense_forward (conv2d 1x1)`).
pub const GEMM_1X1: &str = "conv2d 1x1";

/// Whether the geometry is a 1×1 convolution at stride 1 without padding
/// (output as large as the input: not the dilated input gradient of a
/// strided one, whose input is one pixel short).
pub fn fits(g: &ConvGeometry) -> bool {
    g.kh == 1
        && g.kw == 1
        && g.stride == 1
        && g.pad_top == 0
        && g.pad_left == 0
        && (g.oh, g.ow) == (g.h, g.w)
}

/// One dense product per sample: `a` (bound whole), `b` a window of
/// `b_len` values at `b_start`, into a window of `out` at `out_start`.
#[allow(clippy::too_many_arguments)] // the product's two inputs and output, each with its window
fn product(
    gpu: &Gpu,
    kernel: &'static str,
    p: DenseParams,
    a: (&Tensor, usize, usize),
    b: (&Tensor, usize, usize),
    extra: Option<&Tensor>,
    out: (&Tensor, usize, usize),
    groups: [u32; 3],
) -> Result<()> {
    let at = gpu.read_window(a.0, a.1, a.2)?;
    let bt = gpu.read_window(b.0, b.1, b.2)?;
    let (ow, ob) = gpu.window(out.0, out.1, out.2);
    let p = DenseParams {
        a_base: at.base(),
        b_base: bt.base(),
        out_base: ob,
        ..p
    };
    let mut binds = vec![at.bind(), bt.bind()];
    binds.extend(extra.map(Bind::whole));
    binds.push(ow);
    gpu.in_pass(GEMM_1X1, || gpu.dispatch_bound(kernel, &p, &binds, groups))
}

/// y = conv(x, w) for a 1×1 kernel, no bias.
pub(super) fn forward(gpu: &Gpu, g: &ConvGeometry, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let pixels = g.h * g.w;
    let y = Tensor::uninit(gpu, g.output_shape(), "conv2d_forward")?;
    let zeros = Tensor::zeros(gpu, [pixels], "conv2d 1x1 bias")?;
    let (xs, ys) = (g.cin * pixels, g.cout * pixels);
    let p = params(g.cout, g.cin, pixels);
    let groups = [tiles(pixels), tiles(g.cout), 1];
    for n in 0..g.n {
        product(
            gpu,
            "dense_forward",
            p,
            (w, 0, w.numel()),
            (x, n * xs, xs),
            Some(&zeros),
            (&y, n * ys, ys),
            groups,
        )?;
    }
    Ok(y)
}

/// dx += Wᵀ · dy, sample by sample (dx cleared first for `GradWrite::Write`).
pub(super) fn backward_input(
    gpu: &Gpu,
    g: &ConvGeometry,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
    write: GradWrite,
) -> Result<()> {
    if write == GradWrite::Write {
        gpu.clear(dx);
    }
    let pixels = g.h * g.w;
    let (xs, ys) = (g.cin * pixels, g.cout * pixels);
    // dense_backward_weight: dw[k, cols] += x[rows, k]ᵀ · dy[rows, cols]
    // with x = W [Cout, Cin], dy = dY[n] [Cout, P]: dw = dX[n] [Cin, P]
    let p = params(g.cout, g.cin, pixels);
    let groups = [tiles(pixels), tiles(g.cin), 1];
    for n in 0..g.n {
        product(
            gpu,
            "dense_backward_weight",
            p,
            (w, 0, w.numel()),
            (dy, n * ys, ys),
            None,
            (dx, n * xs, xs),
            groups,
        )?;
    }
    Ok(())
}

/// dw += Σₙ dY[n] · X[n]ᵀ.
pub(super) fn backward_weight(
    gpu: &Gpu,
    g: &ConvGeometry,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
) -> Result<()> {
    let pixels = g.h * g.w;
    let (xs, ys) = (g.cin * pixels, g.cout * pixels);
    // dense_backward_input: dx[rows, k] += dy[rows, cols] · w[k, cols]ᵀ with
    // dy = dY[n] [Cout, P], w = X[n] [Cin, P]: dx = dW [Cout, Cin]
    let p = params(g.cout, g.cin, pixels);
    let groups = [tiles(g.cin), tiles(g.cout), 1];
    for n in 0..g.n {
        product(
            gpu,
            "dense_backward_input",
            p,
            (dy, n * ys, ys),
            (x, n * xs, xs),
            None,
            (dw, 0, dw.numel()),
            groups,
        )?;
    }
    Ok(())
}
