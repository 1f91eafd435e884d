//! How one case is built: its inputs (away from kinks and ties), the GPU
//! op on the tape, the f64 CPU reference forward and backward, and the
//! tolerances. `cases.rs` chooses the shapes and calls these.

use super::check::*;
use super::*;
use crate::error::Result;
use crate::ops;
use crate::rng::Rng;
use crate::tape::{Tape, Var};

pub(super) fn shape_str(s: &[usize]) -> String {
    crate::tensor::Shape(s.to_vec()).to_string()
}

pub(super) fn dense_case(rng: &mut Rng, rows: usize, k: usize, cols: usize) -> Case {
    let limit = (6.0 / (k + cols) as f64).sqrt();
    let x = rng.vec_f32(rows * k, -1.0, 1.0);
    let w = rng.vec_f32(k * cols, -limit, limit);
    let b = rng.vec_f32(cols, -0.5, 0.5);
    Case {
        op: "dense",
        shape: format!("{rows}x{k}->{cols}"),
        inputs: vec![
            Input {
                name: "x",
                shape: vec![rows, k],
                data: x,
                grad: true,
            },
            Input {
                name: "w",
                shape: vec![k, cols],
                data: w,
                grad: true,
            },
            Input {
                name: "b",
                shape: vec![cols],
                data: b,
                grad: true,
            },
        ],
        gpu: Box::new(|tape, v| ops::dense(tape, &v[0], &v[1], &v[2])),
        cpu_forward: Box::new(move |x| {
            ops::dense::cpu::dense_forward(&x[0], &x[1], &x[2], rows, k)
        }),
        cpu_backward: Box::new(move |x, dy| {
            let (dx, dw, db) = ops::dense::cpu::dense_backward(&x[0], &x[1], dy, rows, k, cols);
            vec![Some(dx), Some(dw), Some(db)]
        }),
        ref_tol: REF_TOL_SUMS,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: k.max(rows).max(cols),
        forward_reduction: k,
    }
}

/// Whether a conv case has a bias input (torchvision's convs have none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bias {
    Added,
    None,
}

pub(super) fn conv_case(
    rng: &mut Rng,
    xs: [usize; 4],
    ws: [usize; 4],
    stride: usize,
    padding: ops::conv2d::Padding,
    bias: Bias,
) -> Case {
    let config = ops::Conv2dConfig { stride, padding };
    let g = ops::conv2d::ConvGeometry::new(&xs, &ws, config).expect("valid case");
    let fan_in = ws[1] * ws[2] * ws[3];
    let limit = (6.0 / (fan_in + ws[0] * ws[2] * ws[3]) as f64).sqrt();
    let x = rng.vec_f32(xs.iter().product(), -1.0, 1.0);
    let w = rng.vec_f32(ws.iter().product(), -limit, limit);
    let mut inputs = vec![
        Input {
            name: "x",
            shape: xs.to_vec(),
            data: x,
            grad: true,
        },
        Input {
            name: "w",
            shape: ws.to_vec(),
            data: w,
            grad: true,
        },
    ];
    if bias == Bias::Added {
        inputs.push(Input {
            name: "b",
            shape: vec![ws[0]],
            data: rng.vec_f32(ws[0], -0.5, 0.5),
            grad: true,
        });
    }
    let cout = ws[0];
    Case {
        op: "conv2d",
        shape: format!(
            "{}x{}x{}x{} k{} s{} {}{}",
            xs[0],
            xs[1],
            xs[2],
            xs[3],
            ws[2],
            stride,
            padding,
            if bias == Bias::None { " nobias" } else { "" }
        ),
        inputs,
        gpu: Box::new(move |tape, v| ops::conv2d(tape, &v[0], &v[1], v.get(2), config)),
        cpu_forward: Box::new(move |x| {
            let zero = vec![0.0; cout];
            let b = x.get(2).map_or(&zero[..], |b| &b[..]);
            ops::conv2d::cpu::conv2d_forward(&g, &x[0], &x[1], b)
        }),
        cpu_backward: Box::new(move |x, dy| {
            let (dx, dw, db) = ops::conv2d::cpu::conv2d_backward(&g, &x[0], &x[1], dy);
            let mut grads = vec![Some(dx), Some(dw)];
            if bias == Bias::Added {
                grads.push(Some(db));
            }
            grads
        }),
        ref_tol: REF_TOL_SUMS,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: fan_in.max(ws[0] * ws[2] * ws[3]).max(g.n * g.oh * g.ow),
        forward_reduction: fan_in,
    }
}

pub(super) fn bn_layout(s: &[usize]) -> (usize, usize, usize) {
    (s[0], s[1], s[2..].iter().product())
}

/// The inputs of a batch-norm case (batchnorm, bnpool): the tensor, γ and
/// β, every gradient checked.
pub(super) fn normalised_inputs(
    name: &'static str,
    shape: Vec<usize>,
    data: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
) -> Vec<Input> {
    let c = gamma.len();
    let input = |name, shape, data| Input {
        name,
        shape,
        data,
        grad: true,
    };
    vec![
        input(name, shape, data),
        input("gamma", vec![c], gamma),
        input("beta", vec![c], beta),
    ]
}

pub(super) fn batchnorm_case(rng: &mut Rng, shape: Vec<usize>, input: ops::BnInput) -> Case {
    use ops::batchnorm::cpu as bn;
    let (n, c, plane) = bn_layout(&shape);
    let count = shape.iter().product();
    let relu = input == ops::BnInput::Relu;
    let x: Vec<f32> = if relu {
        // z: about half of it negative, none within a difference step of the kink
        rng.vec_away_from_zero(count, 0.1, 2.0)
    } else {
        // Each sample gets its own offset, so the chunks of a channel have
        // different means and a wrong merge of chunk statistics shows.
        let per_sample = c * plane;
        rng.vec_f32(count, -1.0, 1.5)
            .iter()
            .enumerate()
            .map(|(i, v)| v + 0.75 * (i / per_sample) as f32)
            .collect()
    };
    let gamma = rng.vec_f32(c, 0.5, 1.5);
    let beta = rng.vec_f32(c, -0.5, 0.5);
    let config = ops::BatchNormConfig {
        input,
        ..Default::default()
    };
    let eps = config.epsilon as f64;
    // the values the batch norm normalises
    let seen = move |z: &[f64]| if relu { bn::relu_input(z) } else { z.to_vec() };
    Case {
        op: "batchnorm",
        shape: format!(
            "{} train{}",
            shape_str(&shape),
            if relu { " relu" } else { "" }
        ),
        inputs: normalised_inputs("x", shape.clone(), x, gamma, beta),
        gpu: Box::new(move |tape, v| {
            let state = ops::BatchNormState::new(tape.gpu(), c)?;
            ops::batch_norm(tape, &v[0], &v[1], &v[2], &state, config)
        }),
        cpu_forward: Box::new(move |x| {
            let v = seen(&x[0]);
            let (mean, var) = bn::batch_stats(&v, n, c, plane);
            bn::forward_with(&v, &x[1], &x[2], &mean, &var, eps, c, plane)
        }),
        cpu_backward: Box::new(move |x, dy| {
            let (dx, dg, db) = bn::backward_training(&seen(&x[0]), &x[1], dy, eps, n, c, plane);
            let dx = if relu {
                bn::relu_input_backward(&x[0], &dx)
            } else {
                dx
            };
            vec![Some(dx), Some(dg), Some(db)]
        }),
        ref_tol: REF_TOL_SUMS,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: n * plane,
        forward_reduction: n * plane,
    }
}

/// A frozen batch norm ([`ops::BnStatistics::Frozen`]) on a training
/// tape: torchvision's ε, moving statistics away from 0 and 1 (and away from
/// the batch's, so that normalising with the batch's would fail).
pub(super) fn batchnorm_frozen_case(rng: &mut Rng, shape: Vec<usize>) -> Case {
    use ops::batchnorm::cpu as bn;
    let (_, c, plane) = bn_layout(&shape);
    let count = shape.iter().product();
    let x = rng.vec_f32(count, -1.0, 1.5);
    let gamma = rng.vec_f32(c, 0.5, 1.5);
    let beta = rng.vec_f32(c, -0.5, 0.5);
    let mean: Vec<f32> = rng.vec_f32(c, -0.8, 0.8);
    let var: Vec<f32> = rng.vec_f32(c, 0.3, 2.5);
    let config = ops::BatchNormConfig {
        statistics: ops::BnStatistics::Frozen,
        ..ops::BatchNormConfig::TORCH
    };
    let eps = config.epsilon as f64;
    let moving = |v: &[f32]| v.iter().map(|&m| m as f64).collect::<Vec<f64>>();
    let (m64, v64) = (moving(&mean), moving(&var));
    let (m2, v2) = (m64.clone(), v64.clone());
    Case {
        op: "batchnorm",
        shape: format!("{} frozen", shape_str(&shape)),
        inputs: normalised_inputs("x", shape.clone(), x, gamma, beta),
        gpu: Box::new(move |tape, v| {
            let state = ops::BatchNormState::new(tape.gpu(), c)?;
            state.moving_mean.write(tape.gpu(), &mean)?;
            state.moving_var.write(tape.gpu(), &var)?;
            ops::batch_norm(tape, &v[0], &v[1], &v[2], &state, config)
        }),
        cpu_forward: Box::new(move |x| {
            bn::forward_with(&x[0], &x[1], &x[2], &m64, &v64, eps, c, plane)
        }),
        cpu_backward: Box::new(move |x, dy| {
            let (dx, dg, db) = bn::backward_fixed(&x[0], &x[1], dy, &m2, &v2, eps, c, plane);
            vec![Some(dx), Some(dg), Some(db)]
        }),
        ref_tol: REF_TOL_SUMS,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: count / c,
        forward_reduction: 1,
    }
}

pub(super) fn maxpool_case(rng: &mut Rng, x: [usize; 4], config: ops::MaxPoolConfig) -> Case {
    // No ties, and no finite-difference step may change which element is a
    // window's maximum. Small or overlapping cases: distinct values 0.05
    // apart (a shuffled ramp; ±1e-2 steps never reorder them). Large cases
    // with disjoint windows (probed along unit directions, where a ramp
    // would outgrow f32's resolution): values in [−1, 0] with one element of
    // every window lifted into [0.5, 1] — a margin of 0.5.
    let n: usize = x.iter().product();
    let overlapping = config.stride.0 < config.pool.0
        || config.stride.1 < config.pool.1
        || config.padding != (0, 0);
    let data: Vec<f32> = if n <= ELEMENTWISE_MAX || overlapping {
        let mut d: Vec<f32> = (0..n)
            .map(|i| (i as f64 * 0.05 - n as f64 * 0.025) as f32)
            .collect();
        rng.shuffle(&mut d);
        d
    } else {
        let mut d = rng.vec_f32(n, -1.0, 0.0);
        let o = ops::maxpool::output_shape(&x, config).expect("valid case");
        for plane in 0..x[0] * x[1] {
            for oy in 0..o[2] {
                for ox in 0..o[3] {
                    let iy = oy * config.stride.0 + rng.below(config.pool.0);
                    let ix = ox * config.stride.1 + rng.below(config.pool.1);
                    d[(plane * x[2] + iy) * x[3] + ix] = rng.range(0.5, 1.0) as f32;
                }
            }
        }
        d
    };
    let dims = x.to_vec();
    Case {
        op: "maxpool",
        shape: format!(
            "{} k{}x{} s{}x{}{}",
            shape_str(&x),
            config.pool.0,
            config.pool.1,
            config.stride.0,
            config.stride.1,
            match config.padding {
                (0, 0) => String::new(),
                (ph, pw) => format!(" p{ph}x{pw}"),
            }
        ),
        inputs: vec![Input {
            name: "x",
            shape: x.to_vec(),
            data,
            grad: true,
        }],
        gpu: Box::new(move |tape, v| ops::maxpool(tape, &v[0], config)),
        cpu_forward: Box::new({
            let dims = dims.clone();
            move |x| ops::maxpool::cpu::maxpool_forward(&x[0], &dims, config)
        }),
        cpu_backward: Box::new(move |x, dy| {
            vec![Some(ops::maxpool::cpu::maxpool_backward(
                &x[0], &dims, config, dy,
            ))]
        }),
        ref_tol: REF_TOL_ELEMENTWISE,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: config.pool.0 * config.pool.1,
        forward_reduction: 1,
    }
}

/// bnpool on z [n, c, h, w]. No finite-difference step may change which
/// element is a window's maximum of y = γ·x̂ + β: one corner of every window
/// (drawn at random) lies in ±[1, 2], with the sign of its channel's γ, the
/// others in ±[0.1, 0.6] (away from relu's kink); elements in no window
/// (a last odd row or column) in ±[0.1, 2]. With `negative`, every other
/// channel has γ < 0, so its windows' maxima of y sit at minima of z.
pub(super) fn bnpool_case(
    rng: &mut Rng,
    z: [usize; 4],
    input: ops::BnInput,
    dropout: Option<ops::DropoutConfig>,
    negative: bool,
) -> Case {
    use ops::bnpool::cpu;
    let [n, c, h, w] = z;
    let gamma: Vec<f32> = (0..c)
        .map(|ch| {
            let g = rng.range(0.5, 1.5) as f32;
            if negative && ch % 2 == 1 {
                -g
            } else {
                g
            }
        })
        .collect();
    let beta = rng.vec_f32(c, -0.5, 0.5);
    let mut data = rng.vec_away_from_zero(n * c * h * w, 0.1, 2.0);
    for plane in 0..n * c {
        let sign = gamma[plane % c].signum();
        for oy in 0..h / 2 {
            for ox in 0..w / 2 {
                let winner = rng.below(4);
                for k in 0..4 {
                    let i = (plane * h + 2 * oy + k / 2) * w + 2 * ox + k % 2;
                    data[i] = if k == winner {
                        sign * rng.range(1.0, 2.0) as f32
                    } else {
                        rng.vec_away_from_zero(1, 0.1, 0.6)[0]
                    };
                }
            }
        }
    }
    let config = ops::BnPoolConfig {
        batchnorm: ops::BatchNormConfig {
            input,
            ..Default::default()
        },
        dropout,
    };
    let dims = z.to_vec();
    let plane = h * w;
    Case {
        op: "bnpool",
        shape: format!(
            "{}{}{}{}",
            shape_str(&z),
            if input == ops::BnInput::Relu {
                " relu"
            } else {
                ""
            },
            dropout
                .map(|d| format!(" p={}", d.rate))
                .unwrap_or_default(),
            if negative { " γ<0" } else { "" }
        ),
        inputs: normalised_inputs("z", dims.clone(), data, gamma, beta),
        gpu: Box::new(move |tape, v| {
            let state = ops::BatchNormState::new(tape.gpu(), c)?;
            ops::bnpool(tape, &v[0], &v[1], &v[2], &state, config)
        }),
        cpu_forward: Box::new({
            let dims = dims.clone();
            move |x| cpu::forward(&x[0], &x[1], &x[2], &dims, &config)
        }),
        cpu_backward: Box::new(move |x, dp| {
            let (dz, dg, db) = cpu::backward(&x[0], &x[1], &x[2], &dims, &config, dp);
            vec![Some(dz), Some(dg), Some(db)]
        }),
        ref_tol: REF_TOL_SUMS,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: n * plane,
        forward_reduction: n * plane,
    }
}

pub(super) fn unary_case(
    op: &'static str,
    shape: Vec<usize>,
    x: Vec<f32>,
    gpu: fn(&Tape, &Var) -> Result<Var>,
    fwd: fn(&[f64]) -> Vec<f64>,
    bwd: fn(&[f64], &[f64]) -> Vec<f64>,
) -> Case {
    Case {
        op,
        shape: shape_str(&shape),
        inputs: vec![Input {
            name: "x",
            shape,
            data: x,
            grad: true,
        }],
        gpu: Box::new(move |tape, v| gpu(tape, &v[0])),
        cpu_forward: Box::new(move |x| fwd(&x[0])),
        cpu_backward: Box::new(move |x, dy| vec![Some(bwd(&x[0], dy))]),
        ref_tol: REF_TOL_ELEMENTWISE,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: 1,
        forward_reduction: 1,
    }
}

pub(super) fn bce_case(rng: &mut Rng, shape: Vec<usize>) -> Case {
    let n: usize = shape.iter().product();
    // Predictions keep a margin from 0 and 1; labels are exact 0/1.
    let p = rng.vec_f32(n, 0.2, 0.8);
    let t: Vec<f32> = (0..n).map(|_| (rng.uniform() < 0.3) as u8 as f32).collect();
    Case {
        op: "bce",
        shape: shape_str(&shape),
        inputs: vec![
            Input {
                name: "p",
                shape: shape.clone(),
                data: p,
                grad: true,
            },
            Input {
                name: "t",
                shape,
                data: t,
                grad: false,
            },
        ],
        gpu: Box::new(|tape, v| ops::binary_cross_entropy(tape, &v[0], &v[1])),
        cpu_forward: Box::new(|x| vec![ops::bce::cpu::bce_forward(&x[0], &x[1])]),
        cpu_backward: Box::new(|x, dy| {
            vec![Some(ops::bce::cpu::bce_backward(&x[0], &x[1], dy[0])), None]
        }),
        ref_tol: REF_TOL_ELEMENTWISE,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: n,
        forward_reduction: n,
    }
}
