//! dense: y = x · w + b, with x: [batch, in], w: [in, out] (Keras's kernel
//! layout), b: [out]. Shaders `dense_forward`, `dense_backward_input`,
//! `dense_backward_weight`, `dense_backward_bias`; page `docs/kernels/dense.md`.

use crate::error::{Error, Result};
use crate::gpu::{Bind, Gpu, ReadWindow};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

crate::uniform! {
    /// Uniforms of the four dense kernels.
    pub struct DenseParams {
        /// Batch size.
        pub rows: u32,
        /// Input features.
        pub k: u32,
        /// Output features.
        pub cols: u32,
        /// First element of the kernel's first input in its texture copy
        /// (`Gpu::read_window`): x, dy (backward input) or x (backward weight).
        pub a_base: u32,
        /// First element of its second input in its copy: w, w or dy.
        pub b_base: u32,
        /// `dense_forward`: values of k per slice of a split-K dispatch
        /// (workgroup z = slice; a multiple of 4); unused by the other kernels.
        pub k_slice: u32,
        /// First element of the output in its bound window: 0, but for
        /// conv2d's 1×1 convolutions, which run these kernels per sample on
        /// windows of their NCHW tensors (`ops::conv2d::gemm`).
        pub out_base: u32,
        pub _pad: u32,
    }
}

/// Each invocation of the matmul kernels owns an 8×8 tile; workgroups are 8×8.
const TILE: usize = 8;
const WG: usize = 8;

pub(crate) fn tiles(n: usize) -> u32 {
    n.div_ceil(TILE * WG) as u32
}

/// The matmul kernels read their two inputs whole through `tex4_at`: a
/// texture copy on f32 devices, the buffer itself in f64.
fn whole<'t>(gpu: &Gpu, t: &'t Tensor) -> Result<ReadWindow<'t>> {
    gpu.read_window(t, 0, t.numel())
}

/// Checks x: [rows, k], w: [k, cols], b: [cols]; returns the params.
fn check(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<DenseParams> {
    x.expect_rank("dense", "input x must be [batch, features]", 2)?;
    w.expect_rank("dense", "weight w must be [in, out]", 2)?;
    let (rows, k) = (x.dims()[0], x.dims()[1]);
    if w.dims()[0] != k {
        return Err(Error::Shape {
            op: "dense",
            what: format!("weight rows must equal the input's {k} features"),
            got: w.shape().clone(),
            expected: format!("[{k}, out]"),
        });
    }
    let cols = w.dims()[1];
    b.expect_shape("dense", "bias must be [out]", &[cols])?;
    Ok(params(rows, k, cols))
}

pub(crate) fn params(rows: usize, k: usize, cols: usize) -> DenseParams {
    DenseParams {
        rows: rows as u32,
        k: k as u32,
        cols: cols as u32,
        a_base: 0,
        b_base: 0,
        k_slice: k.next_multiple_of(4) as u32,
        out_base: 0,
        _pad: 0,
    }
}

/// Runs one of the three products: its inputs `a` and `b` through
/// [`whole`] (their offsets into `a_base` / `b_base`), then `rest` bound
/// whole, in the shader's binding order.
fn product(
    gpu: &Gpu,
    kernel: &'static str,
    p: DenseParams,
    a: &Tensor,
    b: &Tensor,
    rest: &[&Tensor],
    groups: [u32; 3],
) -> Result<()> {
    let (at, bt) = (whole(gpu, a)?, whole(gpu, b)?);
    let p = DenseParams {
        a_base: at.base(),
        b_base: bt.base(),
        ..p
    };
    let mut binds = vec![at.bind(), bt.bind()];
    binds.extend(rest.iter().map(Bind::whole));
    gpu.dispatch_bound(kernel, &p, &binds, groups)
}

/// Invocations a dense_forward dispatch should have before its k is split:
/// a few per core of the CPU adapter, enough to fill a real GPU.
fn forward_target_invocations(gpu: &Gpu) -> usize {
    if gpu.adapter().is_cpu {
        256
    } else {
        32_768
    }
}

/// Slices of k for `dense_forward` on `rows`×`cols` outputs: 1 where the
/// 8×8 tiles alone give the adapter enough invocations, otherwise as many as
/// fill it, each at least 256 values of k. Returns (slices, k per slice).
pub fn forward_k_split(gpu: &Gpu, rows: usize, k: usize, cols: usize) -> (usize, usize) {
    let tiles = rows.div_ceil(TILE) * cols.div_ceil(TILE);
    let wanted = forward_target_invocations(gpu).div_ceil(tiles);
    let slices = wanted.min(k / 256).max(1);
    let k_slice = k.div_ceil(slices).next_multiple_of(4);
    (k.div_ceil(k_slice), k_slice)
}

/// y = x · w + b. Where the output is small and k long (the poster model's
/// first dense layer: 32×128 outputs over 51,200 inputs), k is split into
/// slices ([`forward_k_split`]) whose partial products `reduce_partials`
/// adds up.
pub fn dense_forward(gpu: &Gpu, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let p = check(x, w, b)?;
    let (rows, k, cols) = (p.rows as usize, p.k as usize, p.cols as usize);
    let (slices, k_slice) = forward_k_split(gpu, rows, k, cols);
    let p = DenseParams {
        k_slice: k_slice as u32,
        ..p
    };
    let groups = [tiles(cols), tiles(rows), slices as u32];
    if slices == 1 {
        let y = Tensor::uninit(gpu, [rows, cols], "dense_forward")?;
        product(gpu, "dense_forward", p, x, w, &[b, &y], groups)?;
        return Ok(y);
    }
    let partial = Tensor::uninit(gpu, [slices, rows, cols], "dense_forward")?;
    product(gpu, "dense_forward", p, x, w, &[b, &partial], groups)?;
    let y = Tensor::zeros(gpu, [rows, cols], "dense_forward")?;
    crate::ops::reduce::reduce_partials(gpu, &partial, slices, &y)?;
    Ok(y)
}

/// dx += dy · wᵀ.
pub fn dense_backward_input(gpu: &Gpu, dy: &Tensor, w: &Tensor, dx: &Tensor) -> Result<()> {
    let (k, cols) = (w.dims()[0], w.dims()[1]);
    let rows = dx.dims()[0];
    dy.expect_shape(
        "dense_backward_input",
        "dy must be [batch, out]",
        &[rows, cols],
    )?;
    dx.expect_shape("dense_backward_input", "dx must be [batch, in]", &[rows, k])?;
    let groups = [tiles(k), tiles(rows), 1];
    let p = params(rows, k, cols);
    product(gpu, "dense_backward_input", p, dy, w, &[dx], groups)
}

/// dw += xᵀ · dy.
pub fn dense_backward_weight(gpu: &Gpu, x: &Tensor, dy: &Tensor, dw: &Tensor) -> Result<()> {
    let (rows, k) = (x.dims()[0], x.dims()[1]);
    let cols = dw.dims()[1];
    dy.expect_shape(
        "dense_backward_weight",
        "dy must be [batch, out]",
        &[rows, cols],
    )?;
    dw.expect_shape("dense_backward_weight", "dw must be [in, out]", &[k, cols])?;
    let groups = [tiles(cols), tiles(k), 1];
    let p = params(rows, k, cols);
    product(gpu, "dense_backward_weight", p, x, dy, &[dw], groups)
}

/// db += Σ_batch dy.
pub fn dense_backward_bias(gpu: &Gpu, dy: &Tensor, db: &Tensor) -> Result<()> {
    dy.expect_rank("dense_backward_bias", "dy must be [batch, out]", 2)?;
    let (rows, cols) = (dy.dims()[0], dy.dims()[1]);
    db.expect_shape("dense_backward_bias", "db must be [out]", &[cols])?;
    let p = params(rows, 0, cols);
    gpu.dispatch(
        "dense_backward_bias",
        &p,
        &[dy, db],
        [cols.div_ceil(64) as u32, 1, 1],
    )
}

/// dense on the tape; saves x and w for the backward pass.
pub fn dense(tape: &Tape, x: &Var, w: &Var, b: &Var) -> Result<Var> {
    let y = dense_forward(tape.gpu(), &x.value, &w.value, &b.value)?;
    let (xs, ws) = (x.value.clone(), w.value.clone());
    Ok(tape.record(y, &[x, w, b], move |gpu, dy, grads| {
        if let Some(dx) = &grads[0] {
            dense_backward_input(gpu, dy, &ws, dx)?;
        }
        if let Some(dw) = &grads[1] {
            dense_backward_weight(gpu, &xs, dy, dw)?;
        }
        if let Some(db) = &grads[2] {
            dense_backward_bias(gpu, dy, db)?;
        }
        Ok(())
    }))
}

/// Plain-loop f64 reference. Shapes: x [rows, k], w [k, cols], b [cols].
pub mod cpu {
    pub fn dense_forward(x: &[f64], w: &[f64], b: &[f64], rows: usize, k: usize) -> Vec<f64> {
        let cols = b.len();
        let mut y = vec![0.0; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                let mut acc = b[c];
                for i in 0..k {
                    acc += x[r * k + i] * w[i * cols + c];
                }
                y[r * cols + c] = acc;
            }
        }
        y
    }

    /// Returns (dx, dw, db) for upstream dy.
    pub fn dense_backward(
        x: &[f64],
        w: &[f64],
        dy: &[f64],
        rows: usize,
        k: usize,
        cols: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut dx, mut dw, mut db) = (vec![0.0; rows * k], vec![0.0; k * cols], vec![0.0; cols]);
        for r in 0..rows {
            for c in 0..cols {
                let g = dy[r * cols + c]; // y[r,c] = b[c] + Σ_i x[r,i] w[i,c]
                db[c] += g;
                for i in 0..k {
                    dx[r * k + i] += g * w[i * cols + c];
                    dw[i * cols + c] += g * x[r * k + i];
                }
            }
        }
        (dx, dw, db)
    }
}
