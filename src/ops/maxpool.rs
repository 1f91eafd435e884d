//! maxpool: max over KH×KW windows at stride (SH, SW), NCHW, without
//! padding (Keras) or with PyTorch's `padding=p` (taps in the padding never
//! win: ResNet's 3×3 stride-2 pool with padding 1); any window and stride,
//! kernel ≠ stride included. Shaders
//! `maxpool_forward`, `maxpool_backward` (any windows) and
//! `maxpool_backward_windows` (windows that do not overlap); page
//! `docs/kernels/maxpool.md`.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// Window, stride and padding (Keras's default: 2×2 windows at stride 2,
/// no padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPoolConfig {
    pub pool: (usize, usize),
    pub stride: (usize, usize),
    /// Rows above and below, columns left and right, that windows may
    /// overlap but never take their maximum from (at most half the window).
    pub padding: (usize, usize),
}

impl Default for MaxPoolConfig {
    fn default() -> Self {
        MaxPoolConfig {
            pool: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
        }
    }
}

impl MaxPoolConfig {
    /// torchvision ResNet's pool after the stem: 3×3, stride 2, padding 1.
    pub const RESNET: MaxPoolConfig = MaxPoolConfig {
        pool: (3, 3),
        stride: (2, 2),
        padding: (1, 1),
    };
}

crate::uniform! {
    /// Uniforms of the maxpool kernels.
    pub struct PoolParams {
        pub n: u32,
        pub c: u32,
        pub h: u32,
        pub w: u32,
        pub kh: u32,
        pub kw: u32,
        pub sh: u32,
        pub sw: u32,
        pub oh: u32,
        pub ow: u32,
        pub x_base: u32,
        pub y_base: u32,
        pub ph: u32,
        pub pw: u32,
        pub _pad: [u32; 2],
    }
}

/// [n, c, oh, ow] for an input [n, c, h, w], or an error naming the sizes.
pub fn output_shape(x: &[usize], config: MaxPoolConfig) -> Result<[usize; 4]> {
    let (kh, kw) = config.pool;
    let (sh, sw) = config.stride;
    if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
        return Err(Error::Config {
            what: "maxpool".into(),
            message: format!(
                "pool {:?} and stride {:?} must be at least 1",
                config.pool, config.stride
            ),
        });
    }
    let (ph, pw) = config.padding;
    if 2 * ph > kh || 2 * pw > kw {
        return Err(Error::Config {
            what: "maxpool".into(),
            message: format!(
                "padding {:?} must be at most half the {kh}×{kw} pool (as PyTorch), so that \
                 every window holds an input element",
                config.padding
            ),
        });
    }
    let (mh, mw) = (kh.saturating_sub(2 * ph), kw.saturating_sub(2 * pw));
    if x.len() != 4 || x[2] < mh.max(1) || x[3] < mw.max(1) {
        return Err(Error::Shape {
            op: "maxpool",
            what: format!(
                "a {kh}×{kw} pool with padding {:?} needs an input [batch, channels, ≥{mh}, ≥{mw}]",
                config.padding
            ),
            got: crate::Shape(x.to_vec()),
            expected: format!("[batch, channels, ≥{}, ≥{}]", mh.max(1), mw.max(1)),
        });
    }
    Ok([
        x[0],
        x[1],
        (x[2] + 2 * ph - kh) / sh + 1,
        (x[3] + 2 * pw - kw) / sw + 1,
    ])
}

fn params(
    x: &[usize],
    o: &[usize; 4],
    config: MaxPoolConfig,
    n: usize,
    x_base: u32,
    y_base: u32,
) -> PoolParams {
    PoolParams {
        n: n as u32,
        c: x[1] as u32,
        h: x[2] as u32,
        w: x[3] as u32,
        kh: config.pool.0 as u32,
        kw: config.pool.1 as u32,
        sh: config.stride.0 as u32,
        sw: config.stride.1 as u32,
        oh: o[2] as u32,
        ow: o[3] as u32,
        x_base,
        y_base,
        ph: config.padding.0 as u32,
        pw: config.padding.1 as u32,
        _pad: [0; 2],
    }
}

/// y = max over each window.
pub fn maxpool_forward(gpu: &Gpu, x: &Tensor, config: MaxPoolConfig) -> Result<Tensor> {
    let o = output_shape(x.dims(), config)?;
    let y = Tensor::uninit(gpu, o, "maxpool_forward")?;
    let (xs, ys) = (x.numel() / o[0], y.numel() / o[0]);
    for r in gpu.batch_chunks(o[0], &[(xs * gpu.real_bytes()) as u64]) {
        let (xw, xb) = gpu.window(x, r.start * xs, r.len() * xs);
        let (yw, yb) = gpu.window(&y, r.start * ys, r.len() * ys);
        let p = params(x.dims(), &o, config, r.len(), xb, yb);
        gpu.dispatch_bound(
            "maxpool_forward",
            &p,
            &[xw, yw],
            gpu.grid_1d(r.len() * ys, 256),
        )?;
    }
    Ok(y)
}

/// The two backward kernels (see `docs/kernels/maxpool.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxPoolBackward {
    /// `maxpool_backward`: one invocation per input element, re-scanning
    /// every window that covers it. Any windows.
    PerInput,
    /// `maxpool_backward_windows`: one invocation per window, writing only
    /// its maximum. Windows that do not overlap (stride ≥ pool).
    PerWindow,
}

impl MaxPoolBackward {
    /// The faster kernel that is correct for `config`, on every adapter:
    /// per window when the windows do not overlap (benches/layers.rs).
    pub fn for_config(config: MaxPoolConfig) -> MaxPoolBackward {
        if config.stride.0 >= config.pool.0 && config.stride.1 >= config.pool.1 {
            MaxPoolBackward::PerWindow
        } else {
            MaxPoolBackward::PerInput
        }
    }

    /// The kernel's entry point (its shader's name).
    pub fn kernel(self) -> &'static str {
        match self {
            MaxPoolBackward::PerInput => "maxpool_backward",
            MaxPoolBackward::PerWindow => "maxpool_backward_windows",
        }
    }
}

/// dx += dy routed to each window's first maximum.
pub fn maxpool_backward(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    config: MaxPoolConfig,
) -> Result<()> {
    maxpool_backward_with(gpu, x, dy, dx, config, MaxPoolBackward::for_config(config))
}

/// [`maxpool_backward`] with a chosen kernel (for benchmarks and tests);
/// `PerWindow` on overlapping windows is an error.
pub fn maxpool_backward_with(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
    config: MaxPoolConfig,
    kernel: MaxPoolBackward,
) -> Result<()> {
    let o = output_shape(x.dims(), config)?;
    dy.expect_shape("maxpool_backward", "dy must match the output", &o)?;
    dx.expect_shape("maxpool_backward", "dx must match the input", x.dims())?;
    if kernel == MaxPoolBackward::PerWindow && MaxPoolBackward::for_config(config) != kernel {
        return Err(Error::Config {
            what: kernel.kernel().into(),
            message: format!(
                "pool {:?} at stride {:?}: the windows overlap; use the per-input kernel",
                config.pool, config.stride
            ),
        });
    }
    let (xs, ys) = (x.numel() / o[0], dy.numel() / o[0]);
    for r in gpu.batch_chunks(o[0], &[(xs * gpu.real_bytes()) as u64]) {
        let (xw, xb) = gpu.window(x, r.start * xs, r.len() * xs);
        let (dxw, _) = gpu.window(dx, r.start * xs, r.len() * xs);
        let (dyw, yb) = gpu.window(dy, r.start * ys, r.len() * ys);
        let p = params(x.dims(), &o, config, r.len(), xb, yb);
        let items = match kernel {
            MaxPoolBackward::PerInput => r.len() * xs,
            MaxPoolBackward::PerWindow => r.len() * ys,
        };
        gpu.dispatch_bound(
            kernel.kernel(),
            &p,
            &[xw, dyw, dxw],
            gpu.grid_1d(items, 256),
        )?;
    }
    Ok(())
}

/// maxpool on the tape; saves its input (the backward re-finds each maximum).
pub fn maxpool(tape: &Tape, x: &Var, config: MaxPoolConfig) -> Result<Var> {
    let y = maxpool_forward(tape.gpu(), &x.value, config)?;
    let xs = x.value.clone();
    Ok(tape.record(y, &[x], move |gpu, dy, grads| {
        if let Some(dx) = &grads[0] {
            maxpool_backward(gpu, &xs, dy, dx, config)?;
        }
        Ok(())
    }))
}

/// Plain-loop f64 reference (same tie rule: first maximum in scan order).
pub mod cpu {
    use super::MaxPoolConfig;

    fn argmax(
        x: &[f64],
        dims: &[usize],
        c: MaxPoolConfig,
        plane: usize,
        oy: usize,
        ox: usize,
    ) -> usize {
        let (h, w) = (dims[2] as isize, dims[3] as isize);
        let mut best = (f64::NEG_INFINITY, 0);
        for ky in 0..c.pool.0 {
            for kx in 0..c.pool.1 {
                let iy = (oy * c.stride.0 + ky) as isize - c.padding.0 as isize;
                let ix = (ox * c.stride.1 + kx) as isize - c.padding.1 as isize;
                if iy < 0 || ix < 0 || iy >= h || ix >= w {
                    continue; // padding never wins
                }
                let i = ((plane as isize * h + iy) * w + ix) as usize;
                if x[i] > best.0 {
                    best = (x[i], i);
                }
            }
        }
        best.1
    }

    pub fn maxpool_forward(x: &[f64], dims: &[usize], c: MaxPoolConfig) -> Vec<f64> {
        let o = super::output_shape(dims, c).unwrap();
        let mut y = Vec::with_capacity(o.iter().product());
        for plane in 0..o[0] * o[1] {
            for oy in 0..o[2] {
                for ox in 0..o[3] {
                    y.push(x[argmax(x, dims, c, plane, oy, ox)]);
                }
            }
        }
        y
    }

    pub fn maxpool_backward(x: &[f64], dims: &[usize], c: MaxPoolConfig, dy: &[f64]) -> Vec<f64> {
        let o = super::output_shape(dims, c).unwrap();
        let mut dx = vec![0.0; x.len()];
        let mut k = 0;
        for plane in 0..o[0] * o[1] {
            for oy in 0..o[2] {
                for ox in 0..o[3] {
                    dx[argmax(x, dims, c, plane, oy, ox)] += dy[k];
                    k += 1;
                }
            }
        }
        dx
    }
}
