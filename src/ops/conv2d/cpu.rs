//! Plain-loop f64 reference of conv2d (the gradient check's trusted side).

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
