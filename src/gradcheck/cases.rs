//! Each op's cases: the shapes checked, with their inputs, the GPU forward
//! and the f64 CPU reference forward and backward.

use super::check::*;
use super::*;
use crate::error::Result;
use crate::ops;
use crate::rng::Rng;
use crate::tape::{Tape, Var};

/// The shapes each op is checked at: batch 1, sizes that are not multiples of
/// the workgroup or tile size, and tensors with tens of thousands of elements.
pub fn cases(op: &str, seed: u64) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    let rng = &mut rng;
    match op {
        "dense" => dense_cases(rng),
        "relu" => relu_cases(rng),
        "sigmoid" => sigmoid_cases(rng),
        "conv2d" => conv2d_cases(rng),
        "batchnorm" => batchnorm_cases(rng),
        "maxpool" => maxpool_cases(rng),
        "dropout" => dropout_cases(rng),
        "bnpool" => bnpool_cases(rng),
        "bce" => bce_cases(rng),
        "avgpool" => avgpool_cases(rng),
        "add_relu" => add_relu_cases(rng),
        _ => vec![],
    }
}

fn dense_cases(rng: &mut Rng) -> Vec<Case> {
    [(1, 7, 5), (3, 33, 17), (32, 128, 25), (32, 2048, 25)]
        .into_iter()
        .map(|(r, k, c)| dense_case(rng, r, k, c))
        .collect()
}

fn relu_cases(rng: &mut Rng) -> Vec<Case> {
    [vec![1, 1], vec![3, 37], vec![64, 1000]]
        .into_iter()
        .map(|s| {
            let n = s.iter().product();
            unary_case(
                "relu",
                s,
                rng.vec_away_from_zero(n, 0.1, 2.0),
                ops::relu::relu,
                ops::relu::cpu::relu_forward,
                ops::relu::cpu::relu_backward,
            )
        })
        .collect()
}

fn sigmoid_cases(rng: &mut Rng) -> Vec<Case> {
    [vec![1, 1], vec![3, 37], vec![64, 1000]]
        .into_iter()
        .map(|s| {
            let n = s.iter().product();
            unary_case(
                "sigmoid",
                s,
                rng.vec_f32(n, -6.0, 6.0),
                ops::sigmoid::sigmoid,
                ops::sigmoid::cpu::sigmoid_forward,
                ops::sigmoid::cpu::sigmoid_backward,
            )
        })
        .collect()
}

fn conv2d_cases(rng: &mut Rng) -> Vec<Case> {
    use ops::conv2d::Padding::{Explicit, Same, Valid};
    // (n, cin, h, w, cout, k, stride, padding)
    [
        (1, 1, 5, 5, 2, 3, 1, Valid),
        (2, 3, 9, 7, 5, 3, 1, Valid),
        (2, 3, 11, 9, 4, 5, 1, Valid),
        (1, 3, 9, 9, 3, 3, 2, Valid),
        (2, 2, 8, 7, 3, 3, 2, Same),
        (1, 3, 7, 7, 2, 5, 1, Same),
        // 3×3 stride 1 with padding: the row-sliding weight gradient
        // reads zeros at every edge of the window
        (2, 3, 8, 9, 4, 3, 1, Same),
        (2, 16, 20, 20, 9, 3, 1, Valid),
        // the subgroup weight gradient (8+ input channels): 12 input
        // channels leave lanes with none, 20 outputs a partial tile
        // of 16, width 11 a row that ends mid-step
        (2, 12, 13, 11, 20, 3, 1, Same),
        // and its pixel chunks: 4,624 output pixels, 2 chunks
        (1, 8, 70, 70, 16, 3, 1, Valid),
        // 18,432 inputs (4,608 texels): the texture copy's second
        // row, read by the strips kernel (5×5 runs it on every adapter)
        (1, 2, 96, 96, 3, 5, 1, Same),
        // 4,624 output pixels: the split weight/bias sums use 2 chunks
        (1, 3, 70, 70, 2, 3, 1, Valid),
        // the poster model's first layer on one 350×350 poster
        (1, 3, 350, 350, 16, 3, 1, Valid),
        // 48 input channels of a 5×5 kernel: the general forward splits
        // them into two chunks of its 64 KiB weight window (ci0 > 0)
        (1, 48, 9, 9, 4, 5, 1, Valid),
        // width 15 with "same" padding: a strip of eight starts one column
        // left of the input and its twelve-column read ends one past the
        // right edge, which must read 0
        (1, 4, 6, 15, 3, 3, 1, Same),
        // and at stride 2, whose loop over the chunk's channels is its own
        (1, 48, 11, 11, 4, 5, 2, Valid),
    ]
    .into_iter()
    .map(|(n, cin, h, w, cout, k, s, pad)| (n, cin, h, w, cout, k, s, pad, Bias::Added))
    // torchvision's ResNet convs (no bias, symmetric padding) at their real
    // widths, one image: the 7×7 stem on 224→112, the bottleneck's strided
    // 3×3 (56→28), the strided 1×1 downsample, a 1×1 expansion, and small
    // ones that cut a strip of eight mid-row at stride 2
    .chain([
        (1, 3, 224, 224, 64, 7, 2, Explicit(3), Bias::None),
        (1, 128, 56, 56, 128, 3, 2, Explicit(1), Bias::None),
        (1, 256, 56, 56, 512, 1, 2, Explicit(0), Bias::None),
        (1, 64, 56, 56, 256, 1, 1, Explicit(0), Bias::None),
        (2, 5, 13, 11, 6, 3, 2, Explicit(1), Bias::None),
        (2, 3, 10, 21, 4, 7, 2, Explicit(3), Bias::Added),
        (2, 9, 7, 7, 18, 1, 1, Explicit(0), Bias::None),
    ])
    .map(|(n, cin, h, w, cout, k, s, pad, bias)| {
        conv_case(rng, [n, cin, h, w], [cout, cin, k, k], s, pad, bias)
    })
    .collect()
}

/// Whether a conv case has a bias input (torchvision's convs have none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bias {
    Added,
    None,
}

fn batchnorm_cases(rng: &mut Rng) -> Vec<Case> {
    [
        vec![1, 3, 5, 5], // batch 1: statistics over one poster's pixels
        vec![4, 7],       // after a dense layer: per feature
        vec![2, 3, 7, 9],
        vec![3, 16, 20, 20],
        vec![2, 2, 70, 70],    // 9,800 values per channel: 3 chunks merged
        vec![2, 1, 9, 9],      // one channel
        vec![1, 16, 348, 348], // the first block's batch norm on one 350×350 poster
    ]
    .into_iter()
    .map(|s| (s, ops::BnInput::AsIs))
    // the conv's or dense layer's relu fused in: batchnorm(relu(z)), gradient of z
    .chain(
        [vec![4, 7], vec![2, 3, 7, 9], vec![2, 2, 70, 70]]
            .into_iter()
            .map(|s| (s, ops::BnInput::Relu)),
    )
    .map(|(s, input)| batchnorm_case(rng, s, input))
    .collect::<Vec<_>>()
    .into_iter()
    // frozen (moving statistics while training, as a frozen ResNet
    // backbone): ResNet-50's first batch norm on one 224×224 image (64
    // channels of 112×112), a bottleneck's at 7×7, a small odd one
    .chain(
        [vec![1, 64, 112, 112], vec![2, 512, 7, 7], vec![3, 5, 3, 7]]
            .into_iter()
            .map(|s| batchnorm_frozen_case(rng, s))
            .collect::<Vec<_>>(),
    )
    .collect()
}

fn avgpool_cases(rng: &mut Rng) -> Vec<Case> {
    // ResNet-50's head at 224×224 (2048 planes of 7×7, batch 2), one plane
    // of one pixel, planes wider than a workgroup, 300 planes (two workgroups
    // of the forward, a partial second)
    [
        [2, 2048, 7, 7],
        [1, 1, 1, 1],
        [2, 3, 17, 19],
        [3, 100, 2, 3],
    ]
    .into_iter()
    .map(|s| {
        let plane = s[2] * s[3];
        let n: usize = s.iter().product();
        Case {
            op: "avgpool",
            shape: shape_str(&s),
            inputs: vec![Input {
                name: "x",
                shape: s.to_vec(),
                data: rng.vec_f32(n, -1.0, 1.0),
                grad: true,
            }],
            gpu: Box::new(|tape, v| ops::avgpool(tape, &v[0])),
            cpu_forward: Box::new(move |x| ops::avgpool::cpu::avgpool_forward(&x[0], plane)),
            cpu_backward: Box::new(move |_, dy| {
                vec![Some(ops::avgpool::cpu::avgpool_backward(dy, plane))]
            }),
            ref_tol: REF_TOL_SUMS,
            fd_eps: FD_EPS,
            fd_tol: FD_TOL,
            reduction: plane,
            forward_reduction: plane,
        }
    })
    .collect()
}

fn add_relu_cases(rng: &mut Rng) -> Vec<Case> {
    // a bottleneck's output at layer1 (256 × 56 × 56, one image: 802,816
    // elements, a folded grid) and at layer4, a single element, an odd size
    [
        vec![1, 1],
        vec![3, 37],
        // 192 workgroups, exactly 64 folded rows of 3 in the folded-grid
        // pass: no slack in the last row, so an index that skips or
        // overlaps leaves the last elements unwritten (NaN there)
        vec![96, 512],
        vec![2, 2048, 7, 7],
        vec![1, 256, 56, 56],
    ]
    .into_iter()
    .map(|s| {
        let n: usize = s.iter().product();
        // a + b away from the kink by at least 0.1 (so no difference
        // step crosses it): a random, b = target − a
        let a = rng.vec_f32(n, -1.0, 1.0);
        let target = rng.vec_away_from_zero(n, 0.1, 2.0);
        let b: Vec<f32> = a.iter().zip(&target).map(|(a, t)| t - a).collect();
        Case {
            op: "add_relu",
            shape: shape_str(&s),
            inputs: vec![
                Input {
                    name: "a",
                    shape: s.clone(),
                    data: a,
                    grad: true,
                },
                Input {
                    name: "b",
                    shape: s.clone(),
                    data: b,
                    grad: true,
                },
            ],
            gpu: Box::new(|tape, v| ops::add_relu(tape, &v[0], &v[1])),
            cpu_forward: Box::new(|x| ops::add_relu::cpu::add_relu_forward(&x[0], &x[1])),
            cpu_backward: Box::new(|x, dy| {
                let g = ops::add_relu::cpu::add_relu_backward(&x[0], &x[1], dy);
                vec![Some(g.clone()), Some(g)]
            }),
            ref_tol: REF_TOL_ELEMENTWISE,
            fd_eps: FD_EPS,
            fd_tol: FD_TOL,
            reduction: 1,
            forward_reduction: 1,
        }
    })
    .collect()
}

fn maxpool_cases(rng: &mut Rng) -> Vec<Case> {
    [
        // (input, pool, stride)
        ([1, 1, 4, 4], (2, 2), (2, 2)),
        ([2, 3, 7, 9], (2, 2), (2, 2)), // odd edges dropped, as 348→174…
        ([1, 2, 7, 7], (3, 3), (2, 2)), // overlapping windows: kernel > stride
        ([1, 2, 9, 9], (2, 2), (3, 3)), // gaps: kernel < stride
        ([2, 3, 7, 8], (3, 2), (1, 2)), // non-square
        ([2, 4, 24, 24], (3, 3), (2, 2)), // overlapping, past three workgroups
        ([2, 16, 40, 40], (2, 2), (2, 2)),
        ([1, 16, 348, 348], (2, 2), (2, 2)), // the first block's pooling, one poster
    ]
    .into_iter()
    .map(|(x, pool, stride)| (x, pool, stride, (0, 0)))
    // padded windows (PyTorch's padding=p): the padding never wins
    .chain([
        ([2, 3, 7, 7], (3, 3), (2, 2), (1, 1)), // ResNet's pool, odd side
        ([1, 2, 8, 10], (3, 3), (2, 2), (1, 1)), // even sides: the last window hangs over
        ([1, 2, 6, 9], (2, 3), (2, 1), (1, 1)), // non-square, padding = half the window
        // padded windows that do not overlap: the per-window kernel
        ([2, 3, 7, 7], (2, 2), (2, 2), (1, 1)),
        // ResNet's stem pool at its real size (112 → 56), one channel (the
        // distinct values overlapping windows need grow with the count)
        ([1, 1, 112, 112], (3, 3), (2, 2), (1, 1)),
    ])
    .map(|(x, pool, stride, padding)| {
        let config = ops::MaxPoolConfig {
            pool,
            stride,
            padding,
        };
        maxpool_case(rng, x, config)
    })
    .collect()
}

fn dropout_cases(rng: &mut Rng) -> Vec<Case> {
    [
        (vec![1, 1], 0.3),
        (vec![3, 37], 0.5),
        (vec![64, 1000], 0.3),
        (vec![1, 16, 174, 174], 0.3), // the first block's dropout, one poster
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (s, rate))| {
        let config = ops::DropoutConfig {
            rate,
            seed: 17 + i as u32,
            step: 3,
        };
        let n = s.iter().product();
        Case {
            op: "dropout",
            shape: format!("{} p={rate}", shape_str(&s)),
            inputs: vec![Input {
                name: "x",
                shape: s,
                data: rng.vec_f32(n, -1.0, 1.0),
                grad: true,
            }],
            gpu: Box::new(move |tape, v| ops::dropout(tape, &v[0], config)),
            cpu_forward: Box::new(move |x| ops::dropout::cpu::dropout_forward(&x[0], &config)),
            cpu_backward: Box::new(move |_, dy| {
                vec![Some(ops::dropout::cpu::dropout_backward(dy, &config))]
            }),
            ref_tol: REF_TOL_ELEMENTWISE,
            fd_eps: FD_EPS,
            fd_tol: FD_TOL,
            reduction: 1,
            forward_reduction: 1,
        }
    })
    .collect()
}

fn bnpool_cases(rng: &mut Rng) -> Vec<Case> {
    use ops::BnInput::{AsIs, Relu};
    // (z, input, dropout rate, some channels with γ < 0)
    [
        ([1, 1, 4, 4], AsIs, None, false),
        // odd H and W: a last row and column in no window
        ([2, 3, 7, 9], Relu, Some(0.3), false),
        // γ < 0: each window's maximum of y is its minimum of z
        ([2, 3, 6, 10], AsIs, Some(0.5), true),
        ([2, 4, 12, 13], Relu, None, true),
        ([2, 16, 40, 40], Relu, Some(0.3), false),
        // the first block's tail on one 350×350 poster: 30 chunks per
        // channel, a texture copy of several rows
        ([1, 16, 348, 348], Relu, Some(0.3), false),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (z, input, rate, negative))| {
        let dropout = rate.map(|rate| ops::DropoutConfig {
            rate,
            seed: 41 + i as u32,
            step: 5,
        });
        bnpool_case(rng, z, input, dropout, negative)
    })
    .collect()
}

fn bce_cases(rng: &mut Rng) -> Vec<Case> {
    [vec![1, 1], vec![3, 25], vec![1000, 25]]
        .into_iter()
        .map(|s| bce_case(rng, s))
        .collect()
}

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
