//! The memory-bound kernels at the poster model's four conv blocks (batch 32
//! at 350×350 by default): relu, batch norm (statistics + forward, backward
//! in training mode), max-pool and dropout, forward and backward. Prints a
//! markdown table: time and effective bandwidth (each element read or
//! written counts its 4 bytes once).
//!
//!     cargo bench --bench layers
//!     POSTERGRAD_BENCH_BATCH=8 POSTERGRAD_BENCH_SIZE=128 POSTERGRAD_BENCH_REPS=5 cargo bench --bench layers
//!     POSTERGRAD_BENCH_KERNELS=maxpool cargo bench --bench layers    # rows whose kernel contains it
//!
//! The block's tail (batch norm with the conv's relu, max-pool, dropout)
//! runs both ways: one op per layer, and fused into one op (`bnpool`, what
//! the poster model runs).
//!
//! maxpool_backward runs in both variants: `maxpool_backward` (per input, any
//! windows) and `maxpool_backward_windows` (per window, the one the host picks
//! for the model's non-overlapping 2×2 pools).
//!
//! Not criterion, for the reason given in benches/conv.rs: one pass over the
//! first block's 124 M activations takes about a second on a CPU adapter.

use postergrad::ops::batchnorm::{batchnorm_backward, batchnorm_forward, batchnorm_statistics};
use postergrad::ops::bnpool::{bnpool_backward, bnpool_forward, BnPoolGrads, BnPoolSaved};
use postergrad::ops::dropout::{dropout_backward, dropout_forward};
use postergrad::ops::maxpool::{maxpool_backward_with, maxpool_forward, MaxPoolBackward};
use postergrad::ops::relu::{relu_backward, relu_forward};
use postergrad::ops::{
    BatchNormConfig, BatchNormState, BnInput, BnPoolConfig, DropoutConfig, MaxPoolConfig,
};
use postergrad::rng::Rng;
use postergrad::{GradWrite, Mode, Tensor};

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
    )) = common::start("conv blocks")
    else {
        return;
    };
    println!("| block | tensor | kernel | MB moved | time ms | GB/s |\n|---|---|---|---|---|---|");
    let mut rng = Rng::new(0);
    let channels = [16usize, 32, 64, 128];
    let dropout_rates = [0.3f32, 0.3, 0.4, 0.5];
    let pool = MaxPoolConfig {
        pool: (2, 2),
        stride: (2, 2),
        padding: (0, 0),
    };
    let bn = BatchNormConfig::default();
    let fused = BatchNormConfig {
        input: BnInput::Relu,
        ..bn
    };
    let mut s = size;
    for (block, (&c, &rate)) in channels.iter().zip(&dropout_rates).enumerate() {
        let h = s - 2; // after the 3×3 valid convolution
        let shape = [batch, c, h, h];
        let n = batch * c * h * h;
        let pooled = batch * c * (h / 2) * (h / 2);
        let x = Tensor::from_slice(&gpu, shape, &rng.vec_f32(n, -1.0, 1.0)).unwrap();
        let dy = Tensor::from_slice(&gpu, shape, &rng.vec_f32(n, -1.0, 1.0)).unwrap();
        let dx = Tensor::zeros(&gpu, shape, "dx").unwrap();
        let dz = Tensor::zeros(&gpu, shape, "dz").unwrap();
        let gamma = Tensor::from_slice(&gpu, [c], &vec![1.0f32; c]).unwrap();
        let beta = Tensor::zeros(&gpu, [c], "beta").unwrap();
        let (dgamma, dbeta) = (
            Tensor::zeros(&gpu, [c], "dgamma").unwrap(),
            Tensor::zeros(&gpu, [c], "dbeta").unwrap(),
        );
        let state = BatchNormState::new(&gpu, c).unwrap();
        let y = maxpool_forward(&gpu, &x, pool).unwrap();
        let dpool =
            Tensor::from_slice(&gpu, y.shape().clone(), &rng.vec_f32(pooled, -1.0, 1.0)).unwrap();
        let ddrop = Tensor::zeros(&gpu, y.shape().clone(), "ddrop").unwrap();
        let dropout = DropoutConfig {
            rate,
            seed: 1,
            step: 0,
        };
        let stats = batchnorm_statistics(&gpu, &x, &state, bn, Mode::Training).unwrap();
        let bn_backward = |input: BnInput, dx: &Tensor| {
            let (g, b) = (Some(&dgamma), Some(&dbeta));
            let saved = postergrad::ops::batchnorm::BnSaved {
                x: &x,
                gamma: &gamma,
                stats: &stats,
            };
            let grads = postergrad::ops::batchnorm::BnGrads {
                dx: Some(dx),
                dgamma: g,
                dbeta: b,
            };
            batchnorm_backward(&gpu, &saved, &dy, Mode::Training, input, grads).unwrap()
        };
        let tail = BnPoolConfig {
            batchnorm: fused,
            dropout: Some(dropout),
        };
        let dtail =
            Tensor::from_slice(&gpu, y.shape().clone(), &rng.vec_f32(pooled, -1.0, 1.0)).unwrap();
        // (kernel, elements moved, tensor, the work)
        type Work<'a> = Box<dyn FnMut() + 'a>;
        let rows: Vec<(&str, usize, &str, Work)> = vec![
            (
                "relu_forward",
                2 * n,
                "conv output",
                Box::new(|| drop_t(relu_forward(&gpu, &x).unwrap())),
            ),
            (
                "relu_backward",
                4 * n,
                "conv output",
                Box::new(|| relu_backward(&gpu, &x, &dy, &dx).unwrap()),
            ),
            (
                "batchnorm_statistics (partials + stats)",
                n,
                "conv output",
                Box::new(|| {
                    drop_t(batchnorm_statistics(&gpu, &x, &state, bn, Mode::Training).unwrap())
                }),
            ),
            (
                "batchnorm_forward",
                2 * n,
                "conv output",
                Box::new(|| {
                    drop_t(
                        batchnorm_forward(&gpu, &x, &gamma, &beta, &stats, BnInput::AsIs).unwrap(),
                    )
                }),
            ),
            (
                "batchnorm_backward (partials + input + params)",
                5 * n,
                "conv output",
                Box::new(|| bn_backward(BnInput::AsIs, &dx)),
            ),
            (
                "relu → batchnorm forward, separate (relu_forward, statistics, forward)",
                5 * n,
                "conv output",
                Box::new(|| {
                    let r = relu_forward(&gpu, &x).unwrap();
                    let st = batchnorm_statistics(&gpu, &r, &state, bn, Mode::Training).unwrap();
                    drop_t(batchnorm_forward(&gpu, &r, &gamma, &beta, &st, BnInput::AsIs).unwrap())
                }),
            ),
            (
                "relu → batchnorm forward, fused (BnInput::Relu: statistics, forward)",
                3 * n,
                "conv output",
                Box::new(|| {
                    let st = batchnorm_statistics(&gpu, &x, &state, fused, Mode::Training).unwrap();
                    drop_t(batchnorm_forward(&gpu, &x, &gamma, &beta, &st, BnInput::Relu).unwrap())
                }),
            ),
            (
                "relu → batchnorm backward, separate (partials + input + params, relu_backward)",
                9 * n,
                "conv output",
                Box::new(|| {
                    bn_backward(BnInput::AsIs, &dx);
                    relu_backward(&gpu, &x, &dx, &dz).unwrap()
                }),
            ),
            (
                "relu → batchnorm backward, fused (BnInput::Relu)",
                5 * n,
                "conv output",
                Box::new(|| bn_backward(BnInput::Relu, &dz)),
            ),
            (
                "maxpool_forward",
                n + pooled,
                "conv output",
                Box::new(|| drop_t(maxpool_forward(&gpu, &x, pool).unwrap())),
            ),
            (
                "maxpool_backward (per input)",
                3 * n + pooled,
                "conv output",
                Box::new(|| {
                    maxpool_backward_with(&gpu, &x, &dpool, &dx, pool, MaxPoolBackward::PerInput)
                        .unwrap()
                }),
            ),
            (
                "maxpool_backward_windows (per window)",
                n + 3 * pooled,
                "conv output",
                Box::new(|| {
                    maxpool_backward_with(&gpu, &x, &dpool, &dx, pool, MaxPoolBackward::PerWindow)
                        .unwrap()
                }),
            ),
            (
                "dropout_forward",
                2 * pooled,
                "pooled",
                Box::new(|| drop_t(dropout_forward(&gpu, &y, dropout).unwrap())),
            ),
            (
                "dropout_backward",
                3 * pooled,
                "pooled",
                Box::new(|| dropout_backward(&gpu, &dpool, &ddrop, dropout).unwrap()),
            ),
            (
                "block tail forward, one op per layer (batchnorm_forward, maxpool_forward, dropout_forward)",
                3 * n + 3 * pooled,
                "conv output",
                Box::new(|| {
                    let b = batchnorm_forward(&gpu, &x, &gamma, &beta, &stats, BnInput::Relu);
                    let p = maxpool_forward(&gpu, &b.unwrap(), pool).unwrap();
                    drop_t(dropout_forward(&gpu, &p, dropout).unwrap())
                }),
            ),
            (
                "block tail forward, fused (bnpool_forward)",
                n + pooled,
                "conv output",
                Box::new(|| {
                    drop_t(bnpool_forward(&gpu, &x, &gamma, &beta, &stats, tail).unwrap())
                }),
            ),
            (
                "block tail backward, one op per layer (dropout, maxpool_backward_windows, batchnorm_backward)",
                6 * n + 6 * pooled,
                "conv output",
                Box::new(|| {
                    dropout_backward(&gpu, &dtail, &ddrop, dropout).unwrap();
                    let per = MaxPoolBackward::PerWindow;
                    maxpool_backward_with(&gpu, &x, &ddrop, &dx, pool, per).unwrap();
                    bn_backward(BnInput::Relu, &dz)
                }),
            ),
            (
                "block tail backward, fused (bnpool_backward: partials + input + params, dz written)",
                3 * n + 2 * pooled,
                "conv output",
                Box::new(|| {
                    let (g, b) = (Some(&dgamma), Some(&dbeta));
                    let mode = Mode::Training;
                    let saved = BnPoolSaved {
                        z: &x,
                        gamma: &gamma,
                        beta: &beta,
                        stats: &stats,
                    };
                    let grads = BnPoolGrads {
                        dz: Some((&dz, GradWrite::Write)),
                        dgamma: g,
                        dbeta: b,
                    };
                    bnpool_backward(&gpu, &saved, &dtail, mode, tail, grads).unwrap()
                }),
            ),
        ];
        for (kernel, elements, what, mut work) in rows {
            if !kernel.contains(&only) {
                continue;
            }
            let (best, mean) = time(&gpu, reps, &mut work);
            let mb = elements as f64 * 4.0 / 1e6;
            let dims = if what == "pooled" {
                format!("{batch}×{c}×{}×{}", h / 2, h / 2)
            } else {
                format!("{batch}×{c}×{h}×{h}")
            };
            println!(
                "| {} | {dims} | `{kernel}` | {mb:.1} | {:.1} ({:.1}) | {:.2} |",
                block + 1,
                best * 1e3,
                mean * 1e3,
                mb / 1e3 / best
            );
        }
        s = h / 2;
    }
}

/// Drops a result tensor (its buffer goes back to the pool for the next rep).
fn drop_t(t: Tensor) {
    drop(t)
}
