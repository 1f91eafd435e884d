//! avgpool: global average pooling, y[n, c] = mean of x[n, c, ·, ·]
//! (torchvision ResNet's `avgpool` followed by `flatten`): [N, C, H, W] →
//! [N, C]. Shaders `avgpool_forward`, `avgpool_backward`; page
//! `docs/kernels/avgpool.md`.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

crate::uniform! {
    /// Uniforms of the avgpool kernels.
    pub struct AvgPoolParams {
        /// Planes (n·C) in this range of samples.
        pub planes: u32,
        /// Values per plane, H·W.
        pub hw: u32,
        /// First element of the bound x (or dx) window.
        pub x_base: u32,
        /// First element of the bound y (or dy) window.
        pub y_base: u32,
    }
}

fn dims4(x: &Tensor) -> Result<[usize; 4]> {
    match *x.dims() {
        [n, c, h, w] if h * w > 0 => Ok([n, c, h, w]),
        _ => Err(Error::Shape {
            op: "avgpool",
            what: "input must be [batch, channels, height, width] with at least one pixel".into(),
            got: x.shape().clone(),
            expected: "[N, C, H ≥ 1, W ≥ 1]".into(),
        }),
    }
}

/// Calls `each(range, x_window, y_window, params)` for every range of
/// samples whose x fits one binding.
fn per_range(
    gpu: &Gpu,
    [n, c, h, w]: [usize; 4],
    x: &Tensor,
    y: &Tensor,
    mut each: impl FnMut(crate::gpu::Bind, crate::gpu::Bind, AvgPoolParams, usize) -> Result<()>,
) -> Result<()> {
    let (xs, hw) = (c * h * w, h * w);
    for r in gpu.batch_chunks(n, &[(xs * gpu.real_bytes()) as u64]) {
        let (xw, xb) = gpu.window(x, r.start * xs, r.len() * xs);
        let (yw, yb) = gpu.window(y, r.start * c, r.len() * c);
        let p = AvgPoolParams {
            planes: (r.len() * c) as u32,
            hw: hw as u32,
            x_base: xb,
            y_base: yb,
        };
        each(xw, yw, p, r.len() * xs)?;
    }
    Ok(())
}

/// y[n, c] = mean over the plane x[n, c].
pub fn avgpool_forward(gpu: &Gpu, x: &Tensor) -> Result<Tensor> {
    let d = dims4(x)?;
    let y = Tensor::uninit(gpu, [d[0], d[1]], "avgpool_forward")?;
    per_range(gpu, d, x, &y, |xw, yw, p, _| {
        let grid = gpu.grid_1d(p.planes as usize, 256);
        gpu.dispatch_bound("avgpool_forward", &p, &[xw, yw], grid)
    })?;
    Ok(y)
}

/// dx[n, c, ·, ·] += dy[n, c] / (H·W).
pub fn avgpool_backward(gpu: &Gpu, dy: &Tensor, dx: &Tensor) -> Result<()> {
    let d = dims4(dx)?;
    dy.expect_shape("avgpool_backward", "dy must be [batch, channels]", &d[..2])?;
    per_range(gpu, d, dx, dy, |dxw, dyw, p, items| {
        let grid = gpu.grid_1d(items, 256);
        gpu.dispatch_bound("avgpool_backward", &p, &[dyw, dxw], grid)
    })
}

/// avgpool on the tape; saves nothing (the backward needs only the shape).
pub fn avgpool(tape: &Tape, x: &Var) -> Result<Var> {
    let y = avgpool_forward(tape.gpu(), &x.value)?;
    Ok(tape.record(y, &[x], move |gpu, dy, grads| {
        if let Some(dx) = &grads[0] {
            avgpool_backward(gpu, dy, dx)?;
        }
        Ok(())
    }))
}

/// Plain-loop f64 reference over [N, C, plane] data.
pub mod cpu {
    /// y[p] = mean of plane p (`plane` values each).
    pub fn avgpool_forward(x: &[f64], plane: usize) -> Vec<f64> {
        x.chunks(plane)
            .map(|p| p.iter().sum::<f64>() / plane as f64)
            .collect()
    }

    /// dx = dy[p] / plane for every element of plane p.
    pub fn avgpool_backward(dy: &[f64], plane: usize) -> Vec<f64> {
        dy.iter()
            .flat_map(|&g| std::iter::repeat_n(g / plane as f64, plane))
            .collect()
    }
}
