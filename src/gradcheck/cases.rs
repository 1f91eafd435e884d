//! Each op's cases: the shapes checked and why (`builders.rs` builds each
//! case: inputs, GPU forward, f64 CPU references).

pub(super) use super::builders::*;
use super::check::*;
use super::*;
use crate::ops;
use crate::rng::Rng;

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

/// Elementwise shapes: one element, not a multiple of 256, 12 workgroups
/// (exactly 4 folded rows of 3 in the small-limits pass: no slack in the
/// last row, so an index that overlaps rows leaves its last elements
/// unwritten, NaN there), 64,000 elements.
const ELEMENTWISE_SHAPES: [[usize; 2]; 4] = [[1, 1], [3, 37], [3, 1024], [64, 1000]];

fn relu_cases(rng: &mut Rng) -> Vec<Case> {
    ELEMENTWISE_SHAPES
        .into_iter()
        .map(|s| {
            let n = s.iter().product();
            unary_case(
                "relu",
                s.to_vec(),
                rng.vec_away_from_zero(n, 0.1, 2.0),
                ops::relu::relu,
                ops::relu::cpu::relu_forward,
                ops::relu::cpu::relu_backward,
            )
        })
        .collect()
}

fn sigmoid_cases(rng: &mut Rng) -> Vec<Case> {
    ELEMENTWISE_SHAPES
        .into_iter()
        .map(|s| {
            let n = s.iter().product();
            unary_case(
                "sigmoid",
                s.to_vec(),
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
        // (20 outputs: two groups of 16, whose second the first's store
        // loop must not reach while the chunks add into y)
        (1, 48, 9, 9, 20, 5, 1, Valid),
        // width 15 with "same" padding: a strip of eight starts one column
        // left of the input and its twelve-column read ends one past the
        // right edge, which must read 0
        (1, 4, 6, 15, 3, 3, 1, Same),
        // and at stride 2, whose loop over the chunk's channels is its own
        (1, 48, 11, 11, 20, 5, 2, Valid),
        // 3,072 output pixels × 16 channels: in the small-limits pass's
        // chunks of 64 pixels, 768 bias sums (conv2d_backward_bias: not a
        // 3×3, whose weight kernels sum the bias), exactly 4 folded rows
        // of three 64-invocation workgroups (no slack in the last row)
        (1, 2, 48, 64, 16, 5, 1, Same),
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
        // 646 input pixels: the direct strided input-gradient kernel's
        // second tile of 512
        (2, 3, 17, 19, 4, 3, 2, Explicit(1), Bias::Added),
        (2, 9, 7, 7, 18, 1, 1, Explicit(0), Bias::None),
        // a strided 1×1 (the downsample): its input gradient spreads the
        // GEMM's result over dx, 3,072 elements: 12 workgroups of
        // conv2d_dilate, exactly 4 folded rows of 3 in the small-limits pass
        (1, 3, 32, 32, 8, 1, 2, Explicit(0), Bias::None),
    ])
    .map(|(n, cin, h, w, cout, k, s, pad, bias)| {
        conv_case(rng, [n, cin, h, w], [cout, cin, k, k], s, pad, bias)
    })
    .collect()
}

fn batchnorm_cases(rng: &mut Rng) -> Vec<Case> {
    [
        vec![1, 3, 5, 5], // batch 1: statistics over one poster's pixels
        vec![4, 7],       // after a dense layer: per feature
        vec![2, 3, 7, 9],
        vec![3, 16, 20, 20],
        vec![2, 2, 70, 70],    // 9,800 values per channel: 3 chunks merged
        vec![2, 1, 9, 9],      // one channel
        vec![2, 3, 5, 6],      // 30 per plane: a last group of four holding two
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
        // 192 quads: in the small-limits pass's chunks of 4, 48 chunks × 16
        // channels = 12 workgroups, exactly 4 folded rows of 3 (no slack)
        ([2, 16, 16, 96], Relu, Some(0.3), false),
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
