//! conv2d kernels at the poster model's four conv layers (batch 32 at
//! 350×350 by default): forward, backward-input and backward-weight time and
//! GFLOP/s (a multiply-add counts 2 FLOP; each pass of a 3×3 conv costs the
//! same FLOP as the forward).
//!
//!     cargo bench --bench conv
//!     POSTERGRAD_BENCH_BATCH=8 POSTERGRAD_BENCH_SIZE=128 POSTERGRAD_BENCH_REPS=5 cargo bench --bench conv
//!     POSTERGRAD_BENCH_KERNELS=backward_weight cargo bench --bench conv   # rows whose kernel contains it
//!     POSTERGRAD_BENCH_SHADER_DIR=/tmp/variant cargo bench --bench conv     # time modified shaders, no rebuild
//!
//! Both forward variants run (forward, and backward-input, the same kernel
//! at stride 1, writing dx as the tape's fresh buffer: `GradWrite::Write`): `conv2d_forward` (strips, any kernel, every adapter) and,
//! where the adapter has subgroups, `conv2d_forward_3x3` (the one the host
//! picks there for the model's 3×3 stride-1 layers).
//! conv2d_backward_weight runs in all its variants: `conv2d_backward_weight`
//! (tiles of 8 flattened taps, any kernel; the host's pick on GPUs for every
//! layer), `conv2d_backward_weight_3x3` (rows; the CPU adapter's pick for
//! 3×3 stride-1 layers without subgroups, and for the first layer's 3 input
//! channels) and, where the adapter has subgroups,
//! `conv2d_backward_weight_3x3_subgroup` (rows, dy shared through subgroup
//! shuffles; the CPU adapter's pick for the other layers). The weight
//! kernels' pixel chunk is the adapter's (`conv2d::weight_chunk`), or
//! `POSTERGRAD_WEIGHT_CHUNK=N` for a sweep.
//!
//! Not criterion: one pass of the largest layer takes seconds on a CPU
//! adapter, and criterion's 10-sample minimum would make the run take most
//! of an hour. Each kernel runs once to warm up (compile, allocate), then
//! REPS times (default 2); the table shows the best and the mean.

use postergrad::ops::conv2d::{
    conv2d_backward_bias, conv2d_backward_input_with, conv2d_backward_params,
    conv2d_backward_weight_with, conv2d_forward_with, BackwardWeight, ConvGeometry, Forward,
};
use postergrad::ops::Conv2dConfig;
use postergrad::rng::Rng;
use postergrad::{GradWrite, Tensor};

mod common;
use common::{time, Settings};

fn main() {
    let Some((
        Settings {
            batch,
            size,
            reps,
            only,
        },
        gpu,
    )) = common::start("conv layers")
    else {
        return;
    };
    println!("| layer | input | kernel | GFLOP | time ms | GFLOP/s |\n|---|---|---|---|---|---|");
    let mut rng = Rng::new(0);
    let channels = [3usize, 16, 32, 64, 128];
    let mut s = size;
    let config = Conv2dConfig::default();
    for layer in 0..4 {
        let (cin, cout) = (channels[layer], channels[layer + 1]);
        let g = ConvGeometry::new(&[batch, cin, s, s], &[cout, cin, 3, 3], config).unwrap();
        let x = Tensor::from_slice(
            &gpu,
            [batch, cin, s, s],
            &rng.vec_f32(batch * cin * s * s, 0.0, 1.0),
        )
        .unwrap();
        let w = Tensor::from_slice(
            &gpu,
            [cout, cin, 3, 3],
            &rng.vec_f32(cout * cin * 9, -0.1, 0.1),
        )
        .unwrap();
        let b = Tensor::zeros(&gpu, [cout], "b").unwrap();
        let dy = Tensor::uninit(&gpu, g.output_shape(), "dy").unwrap();
        postergrad::ops::fill(&gpu, &dy, 0.01).unwrap();
        let dx = Tensor::zeros(&gpu, [batch, cin, s, s], "dx").unwrap();
        let dw = Tensor::zeros(&gpu, [cout, cin, 3, 3], "dw").unwrap();
        let db = Tensor::zeros(&gpu, [cout], "db").unwrap();
        let gflop = g.flops() as f64 / 1e9;
        type Work<'a> = Box<dyn FnMut() + 'a>;
        let (gpu, x, w, b, dy, dx) = (&gpu, &x, &w, &b, &dy, &dx);
        let forward = |k: Forward| -> Work {
            Box::new(move || drop(conv2d_forward_with(gpu, x, w, Some(b), config, k).unwrap()))
        };
        let backward_input = |k: Forward| -> Work {
            Box::new(move || {
                conv2d_backward_input_with(gpu, dy, w, dx, config, k, GradWrite::Write).unwrap()
            })
        };
        let mut rows: Vec<(&str, f64, Work)> = vec![
            ("conv2d_forward (strips)", gflop, forward(Forward::Strips)),
            (
                "conv2d_backward_input (strips: conv2d_forward)",
                gflop,
                backward_input(Forward::Strips),
            ),
            (
                "conv2d_backward_weight (tiles)",
                gflop,
                Box::new(|| {
                    conv2d_backward_weight_with(gpu, x, dy, &dw, config, BackwardWeight::Tiles)
                        .unwrap()
                }),
            ),
            (
                "conv2d_backward_weight_3x3 (rows)",
                gflop,
                Box::new(|| {
                    conv2d_backward_weight_with(gpu, x, dy, &dw, config, BackwardWeight::Rows3x3)
                        .unwrap()
                }),
            ),
            (
                "conv2d_backward_bias",
                0.0,
                Box::new(|| conv2d_backward_bias(gpu, dy, &db).unwrap()),
            ),
            (
                // what the tape runs: the 3×3 weight pass sums db as it goes
                "conv2d_backward_weight_3x3 + bias in one pass (conv2d_backward_params)",
                gflop,
                Box::new(|| conv2d_backward_params(gpu, x, dy, &dw, &db, config).unwrap()),
            ),
        ];
        if gpu.adapter().subgroups {
            rows.insert(
                5,
                (
                    "conv2d_backward_weight_3x3_subgroup (rows, dy shuffled)",
                    gflop,
                    Box::new(|| {
                        conv2d_backward_weight_with(
                            gpu,
                            x,
                            dy,
                            &dw,
                            config,
                            BackwardWeight::Subgroup3x3,
                        )
                        .unwrap()
                    }),
                ),
            );
            rows.insert(
                1,
                (
                    "conv2d_forward_3x3 (subgroups)",
                    gflop,
                    forward(Forward::Subgroup3x3),
                ),
            );
            rows.insert(
                3,
                (
                    "conv2d_backward_input (subgroups: conv2d_forward_3x3)",
                    gflop,
                    backward_input(Forward::Subgroup3x3),
                ),
            );
        }
        for (kernel, gf, mut work) in rows {
            if !kernel.contains(&only) {
                continue;
            }
            let (best, mean) = time(gpu, reps, &mut work);
            let rate = if gf > 0.0 {
                format!("{:.1}", gf / best)
            } else {
                "—".into()
            };
            println!(
                "| {} | {batch}×{cin}×{s}×{s} → {cout} | `{kernel}` | {gf:.2} | {:.1} ({:.1}) | {rate} |",
                layer + 1,
                best * 1e3,
                mean * 1e3
            );
        }
        s = (s - 2) / 2;
    }
}
